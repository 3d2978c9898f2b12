<?php
/**
 * Keygate for PrestaShop: posts signed order events to a Keygate licensing server, which
 * issues a license per paid line and revokes it on a refund, a credit slip or a cancellation.
 *
 * Setup and the event shape: docs/platforms/prestashop.md in the Keygate repository.
 *
 * @author    Keygate
 * @license   MIT
 */
if (!defined('_PS_VERSION_')) {
    exit;
}

require_once __DIR__ . '/src/autoload.php';

use Keygate\PrestaShop\CurlTransport;
use Keygate\PrestaShop\Dispatcher;
use Keygate\PrestaShop\EventBuilder;
use Keygate\PrestaShop\Queue;
use Keygate\PrestaShop\Settings;

class Keygate extends Module
{
    const HOOKS = ['actionOrderStatusPostUpdate', 'actionOrderSlipAdd'];

    /** Rows posted inline by a hook: the shop's own request waits for them... */
    const HOOK_DRAIN_LIMIT = 5;
    /** ...and no new post starts after this many seconds. */
    const HOOK_DRAIN_SECONDS = 5;
    /** Rows posted by one cron call. */
    const CRON_DRAIN_LIMIT = 100;

    /** @var \Keygate\PrestaShop\Transport|null tests inject theirs */
    public $transport;
    /** @var callable|null tests fix the time */
    public $clock;
    /** @var EventBuilder|null */
    public $events;

    public function __construct()
    {
        $this->name = 'keygate';
        $this->tab = 'administration';
        $this->version = '1.0.0';
        $this->author = 'Keygate';
        $this->need_instance = 0;
        $this->ps_versions_compliancy = ['min' => '8.0.0', 'max' => '9.99.99'];
        $this->bootstrap = true;

        parent::__construct();

        $this->displayName = $this->trans('Keygate licensing', [], 'Modules.Keygate.Admin');
        $this->description = $this->trans(
            'Sends paid orders, refunds, credit slips and cancellations to Keygate, which issues and revokes software licenses.',
            [],
            'Modules.Keygate.Admin'
        );
        $this->confirmUninstall = $this->trans(
            'Undelivered events in the queue are deleted. Uninstall?',
            [],
            'Modules.Keygate.Admin'
        );
    }

    public function isUsingNewTranslationSystem()
    {
        return true;
    }

    public function install()
    {
        return parent::install()
            && $this->runSql(__DIR__ . '/sql/install.php')
            && $this->registerHook(self::HOOKS)
            && Configuration::updateValue(Settings::CRON_TOKEN, bin2hex(random_bytes(16)));
    }

    public function uninstall()
    {
        foreach ([Settings::URL, Settings::SECRET, Settings::PREVIOUS_SECRET, Settings::CRON_TOKEN] as $key) {
            Configuration::deleteByName($key);
        }

        return $this->runSql(__DIR__ . '/sql/uninstall.php') && parent::uninstall();
    }

    /**
     * `actionOrderStatusPostUpdate` (`OrderHistory::changeIdOrderState`): params
     * `newOrderStatus` (OrderState), `oldOrderStatus` (OrderState, may be missing) and
     * `id_order`. Every change is sent; Keygate acts on paid, refunded and canceled.
     *
     * @param array $params
     */
    public function hookActionOrderStatusPostUpdate($params)
    {
        $this->guarded('actionOrderStatusPostUpdate', function () use ($params) {
            if (empty($params['newOrderStatus']) || !($params['newOrderStatus'] instanceof OrderState) || empty($params['id_order'])) {
                return;
            }
            $order = new Order((int) $params['id_order']);
            if (!Validate::isLoadedObject($order)) {
                return;
            }
            $old = isset($params['oldOrderStatus']) ? $params['oldOrderStatus'] : null;
            $this->send($this->eventBuilder()->statusChanged($order, $params['newOrderStatus'], $old));
        });
    }

    /**
     * `actionOrderSlipAdd` (`OrderSlipCreator::create`): params `order`, `productList` and
     * `qtyList`. A credit slip is a refund of the lines it names.
     *
     * @param array $params
     */
    public function hookActionOrderSlipAdd($params)
    {
        $this->guarded('actionOrderSlipAdd', function () use ($params) {
            if (empty($params['order']) || !($params['order'] instanceof Order)) {
                return;
            }
            $products = isset($params['productList']) && is_array($params['productList']) ? $params['productList'] : [];
            $quantities = isset($params['qtyList']) && is_array($params['qtyList']) ? $params['qtyList'] : [];
            $this->send($this->eventBuilder()->creditSlipAdded($params['order'], $products, $quantities));
        });
    }

    /**
     * The cron front controller's work (controllers/front/cron.php): drains the queue when
     * `$token` is the module's cron token.
     *
     * @param string $token
     *
     * @return array{0: int, 1: array} HTTP status and JSON answer
     */
    public function runCron($token)
    {
        $expected = (string) Configuration::get(Settings::CRON_TOKEN);
        if ($expected === '' || !is_string($token) || !hash_equals($expected, $token)) {
            return [403, ['error' => 'invalid token']];
        }
        $settings = Settings::load();
        if (!$settings->isComplete()) {
            return [409, ['error' => 'the module is not configured (Keygate webhook URL and secret)']];
        }
        $result = $this->dispatcher($settings)->drain(self::CRON_DRAIN_LIMIT);

        return [200, $result + ['queue' => $this->queue()->stats()]];
    }

    /**
     * The configuration page: Keygate webhook URL and signing secret.
     *
     * @return string
     */
    public function getContent()
    {
        $output = '';
        $current = Settings::load();
        if (Tools::isSubmit('submitKeygate')) {
            $submitted = [
                Settings::URL => Tools::getValue(Settings::URL),
                Settings::SECRET => Tools::getValue(Settings::SECRET),
                'KEYGATE_KEEP_PREVIOUS' => Tools::getValue('KEYGATE_KEEP_PREVIOUS'),
                'KEYGATE_CLEAR_PREVIOUS' => Tools::getValue('KEYGATE_CLEAR_PREVIOUS'),
            ];
            list($errors, $next) = Settings::fromForm($submitted, $current);
            if ($errors) {
                foreach ($errors as $error) {
                    $output .= $this->displayError($this->trans($error, [], 'Modules.Keygate.Admin'));
                }
                // Keep what was typed in the URL field; never echo a secret back.
                $current = new Settings($next->url, $current->secret, $current->previousSecret);
            } else {
                $next->save();
                $current = $next;
                $output .= $this->displayConfirmation($this->trans('Settings saved.', [], 'Admin.Notifications.Success'));
            }
        } elseif (Tools::isSubmit('submitKeygateRetry')) {
            $revived = $this->queue()->revive($this->now());
            if ($current->isComplete()) {
                $this->dispatcher($current)->drain(self::CRON_DRAIN_LIMIT);
            }
            $output .= $this->displayConfirmation($this->trans('%count% events queued again.', ['%count%' => $revived], 'Modules.Keygate.Admin'));
        }

        return $output . $this->renderForm($current) . $this->renderStatus($current);
    }

    private function renderForm(Settings $settings)
    {
        $helper = new HelperForm();
        $helper->module = $this;
        $helper->name_controller = $this->name;
        $helper->table = $this->name;
        $helper->identifier = $this->identifier;
        $helper->token = Tools::getAdminTokenLite('AdminModules');
        $helper->currentIndex = AdminController::$currentIndex . '&configure=' . $this->name;
        $helper->submit_action = 'submitKeygate';
        $helper->default_form_language = (int) Configuration::get('PS_LANG_DEFAULT');
        $helper->fields_value = [
            Settings::URL => $settings->url,
            // Write-only: the stored secret is never sent to the browser.
            Settings::SECRET => '',
            'KEYGATE_KEEP_PREVIOUS' => 0,
            'KEYGATE_CLEAR_PREVIOUS' => 0,
        ];
        $secretHint = $settings->secret !== ''
            ? $this->trans('A secret is stored. Leave empty to keep it; paste a new one to replace it.', [], 'Modules.Keygate.Admin')
            : $this->trans('The whsec_... secret Keygate showed when you created the integration.', [], 'Modules.Keygate.Admin');
        $inputs = [
            [
                'type' => 'text',
                'label' => $this->trans('Keygate webhook URL', [], 'Modules.Keygate.Admin'),
                'name' => Settings::URL,
                'required' => true,
                'desc' => $this->trans('The integration\'s webhook_url, e.g. https://keygate.example.com/v1/webhooks/prestashop/int_...', [], 'Modules.Keygate.Admin'),
            ],
            [
                'type' => 'password',
                'label' => $this->trans('Signing secret', [], 'Modules.Keygate.Admin'),
                'name' => Settings::SECRET,
                'required' => $settings->secret === '',
                'desc' => $secretHint,
            ],
            [
                'type' => 'switch',
                'label' => $this->trans('Keep signing with the old secret too', [], 'Modules.Keygate.Admin'),
                'name' => 'KEYGATE_KEEP_PREVIOUS',
                'is_bool' => true,
                'values' => self::switchValues(),
                'desc' => $this->trans('For a rotation: when you paste a new secret, deliveries carry both signatures until you clear the old one.', [], 'Modules.Keygate.Admin'),
            ],
        ];
        if ($settings->previousSecret !== '') {
            $inputs[] = [
                'type' => 'switch',
                'label' => $this->trans('Stop signing with the old secret', [], 'Modules.Keygate.Admin'),
                'name' => 'KEYGATE_CLEAR_PREVIOUS',
                'is_bool' => true,
                'values' => self::switchValues(),
            ];
        }

        return $helper->generateForm([[
            'form' => [
                'legend' => ['title' => $this->trans('Keygate', [], 'Modules.Keygate.Admin'), 'icon' => 'icon-key'],
                'input' => $inputs,
                'submit' => ['title' => $this->trans('Save', [], 'Admin.Actions')],
            ],
        ]]);
    }

    private function renderStatus(Settings $settings)
    {
        $this->context->smarty->assign([
            'keygate_configured' => $settings->isComplete(),
            'keygate_stats' => $this->queue()->stats(),
            'keygate_cron_url' => $this->context->link->getModuleLink(
                $this->name,
                'cron',
                ['token' => (string) Configuration::get(Settings::CRON_TOKEN)]
            ),
            'keygate_retry_action' => AdminController::$currentIndex . '&configure=' . $this->name
                . '&token=' . Tools::getAdminTokenLite('AdminModules'),
        ]);

        return $this->display(__FILE__, 'views/templates/admin/status.tpl');
    }

    private static function switchValues()
    {
        return [
            ['id' => 'active_on', 'value' => 1, 'label' => 'Yes'],
            ['id' => 'active_off', 'value' => 0, 'label' => 'No'],
        ];
    }

    /**
     * Queues the event, then posts what is due (this event first among the new ones).
     */
    private function send(array $event)
    {
        $settings = Settings::load();
        if (!$settings->isComplete()) {
            // No destination yet: nothing could ever sign or receive it.
            return;
        }
        $this->queue()->push($event, $this->now());
        $this->dispatcher($settings)->drain(self::HOOK_DRAIN_LIMIT, self::HOOK_DRAIN_SECONDS);
    }

    /**
     * A hook must never break the shop's own action (changing a status, creating a slip):
     * a failure is logged, and whatever was queued is retried later.
     */
    private function guarded($hook, callable $work)
    {
        try {
            $work();
        } catch (\Throwable $e) {
            PrestaShopLogger::addLog('Keygate ' . $hook . ': ' . $e->getMessage(), 3, null, 'Module', (int) $this->id);
        }
    }

    private function eventBuilder()
    {
        return $this->events ?: new EventBuilder($this->clock);
    }

    private function queue()
    {
        return new Queue(Db::getInstance());
    }

    private function dispatcher(Settings $settings)
    {
        $transport = $this->transport ?: new CurlTransport('Keygate-PrestaShop/' . $this->version . ' PrestaShop/' . _PS_VERSION_);

        return new Dispatcher($this->queue(), $transport, $settings, $this->clock);
    }

    private function now()
    {
        return (int) call_user_func($this->clock ?: 'time');
    }

    private function runSql($file)
    {
        foreach (require $file as $statement) {
            if (!Db::getInstance()->execute($statement)) {
                return false;
            }
        }

        return true;
    }
}
