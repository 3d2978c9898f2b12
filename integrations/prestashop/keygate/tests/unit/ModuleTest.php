<?php

use Keygate\PrestaShop\Queue;
use Keygate\PrestaShop\Settings;
use Keygate\PrestaShop\Signer;
use PHPUnit\Framework\TestCase;

final class ModuleTest extends TestCase
{
    /** @var Keygate */
    private $module;
    /** @var RecordingTransport */
    private $transport;

    protected function setUp(): void
    {
        Fixtures::reset();
        $this->module = new Keygate();
        $this->transport = new RecordingTransport();
        $this->module->transport = $this->transport;
        $this->module->clock = function () {
            return Fixtures::NOW;
        };
        $this->module->events = Fixtures::builder();
        $this->assertTrue($this->module->install());
    }

    private function tableExists()
    {
        return (bool) Db::getInstance()->getValue("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '" . Queue::table() . "'");
    }

    private function pending()
    {
        return (new Queue(Db::getInstance()))->stats()['pending'];
    }

    public function testInstallCreatesTheQueueRegistersHooksAndACronToken()
    {
        $this->assertSame('keygate', $this->module->name);
        $this->assertTrue($this->tableExists());
        $this->assertSame(['actionOrderStatusPostUpdate', 'actionOrderSlipAdd'], $this->module->hooks);
        $this->assertMatchesRegularExpression('/^[0-9a-f]{32}$/', Configuration::get(Settings::CRON_TOKEN));
        foreach ($this->module->hooks as $hook) {
            $this->assertTrue(method_exists($this->module, 'hook' . ucfirst($hook)), $hook);
        }
    }

    public function testUninstallDropsTheQueueAndTheSettings()
    {
        Fixtures::configure();
        $this->assertTrue($this->module->uninstall());
        $this->assertFalse($this->tableExists());
        foreach ([Settings::URL, Settings::SECRET, Settings::PREVIOUS_SECRET, Settings::CRON_TOKEN] as $key) {
            $this->assertFalse(Configuration::get($key), $key);
        }
        $this->assertFalse($this->module->installed);
    }

    public function testStatusHookPostsASignedEvent()
    {
        Fixtures::configure();
        $this->module->hookActionOrderStatusPostUpdate([
            'newOrderStatus' => Fixtures::state(2),
            'oldOrderStatus' => Fixtures::state(10),
            'id_order' => 42,
        ]);
        $this->assertCount(1, $this->transport->posts);
        $post = $this->transport->posts[0];
        $event = json_decode($post['body'], true);
        $this->assertSame('order.status_changed', $event['type']);
        $this->assertSame('paid', $event['data']['order']['state']['role']);
        $this->assertSame(Signer::headers([Fixtures::SECRET], 'evt_test_1', Fixtures::NOW, $post['body']), $post['headers']);
        $this->assertSame(0, $this->pending());
    }

    public function testSlipHookPostsTheSlipsLines()
    {
        Fixtures::configure();
        OrderSlip::$slips = [['id_order_slip' => 8, 'id_customer' => 7, 'id_order' => 42]];
        $this->module->hookActionOrderSlipAdd([
            'order' => new Order(42),
            'productList' => [12 => ['id_order_detail' => 12, 'quantity' => 1, 'amount' => 10.0]],
            'qtyList' => [12 => 1],
        ]);
        $event = json_decode($this->transport->posts[0]['body'], true);
        $this->assertSame('slip_8', $this->transport->posts[0]['headers']['webhook-id']);
        $this->assertSame([['id_order_detail' => 12, 'product_id' => 5, 'product_attribute_id' => 9, 'reference' => 'MUG-RED', 'quantity' => 1]],
            $event['data']['credit_slip']['lines']);
    }

    public function testAFailedPostIsQueuedAndTheShopCarriesOn()
    {
        Fixtures::configure();
        $this->transport->answers[] = ['status' => 503, 'retry_after' => null, 'error' => 'HTTP 503'];
        $this->module->hookActionOrderStatusPostUpdate(['newOrderStatus' => Fixtures::state(2), 'id_order' => 42]);
        $this->assertSame(1, $this->pending());
        $row = (new Queue(Db::getInstance()))->find('evt_test_1');
        $this->assertSame(Fixtures::NOW + 60, (int) $row['next_attempt_at']);

        // The next hook drains what is due by then: a minute later, both go.
        $this->module->clock = function () {
            return Fixtures::NOW + 60;
        };
        $this->module->hookActionOrderStatusPostUpdate(['newOrderStatus' => Fixtures::state(4), 'id_order' => 42]);
        $this->assertSame(['evt_test_1', 'evt_test_1', 'evt_test_2'], array_map(function ($p) { return $p['headers']['webhook-id']; }, $this->transport->posts));
        $this->assertSame(0, $this->pending());
    }

    public function testAHookNeverThrows()
    {
        Fixtures::configure();
        Db::getInstance()->execute('DROP TABLE ' . Queue::table());
        $this->module->hookActionOrderStatusPostUpdate(['newOrderStatus' => Fixtures::state(2), 'id_order' => 42]);
        $this->assertCount(1, PrestaShopLogger::$lines);
        $this->assertStringStartsWith('Keygate actionOrderStatusPostUpdate: ', PrestaShopLogger::$lines[0]['message']);
        // Missing or wrong params: nothing sent, nothing logged.
        $this->module->hookActionOrderStatusPostUpdate(['id_order' => 42]);
        $this->module->hookActionOrderStatusPostUpdate(['newOrderStatus' => Fixtures::state(2), 'id_order' => 999]);
        $this->module->hookActionOrderSlipAdd(['order' => 'nope']);
        $this->assertCount(1, PrestaShopLogger::$lines);
        $this->assertSame([], $this->transport->posts);
    }

    public function testUnconfiguredModuleQueuesNothing()
    {
        $this->module->hookActionOrderStatusPostUpdate(['newOrderStatus' => Fixtures::state(2), 'id_order' => 42]);
        $this->assertSame(0, $this->pending());
        $this->assertSame([], $this->transport->posts);
    }

    public function testConfigurationPageSavesValidSettingsAndNeverShowsTheSecret()
    {
        Tools::$request = ['submitKeygate' => '1', Settings::URL => Fixtures::URL, Settings::SECRET => Fixtures::SECRET];
        $html = $this->module->getContent();
        $this->assertStringContainsString('Settings saved.', $html);
        $this->assertSame(Fixtures::SECRET, Configuration::get(Settings::SECRET));
        $this->assertStringNotContainsString(Fixtures::SECRET, $html);
        $this->assertSame('', HelperForm::$last->fields_value[Settings::SECRET]);
        $this->assertSame(Fixtures::URL, HelperForm::$last->fields_value[Settings::URL]);
        $assigned = Context::getContext()->smarty->assigned;
        $this->assertTrue($assigned['keygate_configured']);
        $this->assertStringContainsString('token=' . Configuration::get(Settings::CRON_TOKEN), $assigned['keygate_cron_url']);

        // Shown again later: still not there.
        Tools::$request = [];
        $this->assertStringNotContainsString(Fixtures::SECRET, $this->module->getContent());
    }

    public function testConfigurationPageRefusesBadSettingsAndKeepsTheStoredOnes()
    {
        Fixtures::configure();
        Tools::$request = ['submitKeygate' => '1', Settings::URL => 'http://keygate.example.com/x', Settings::SECRET => 'whsec_tooshort'];
        $html = $this->module->getContent();
        $this->assertStringContainsString('https://', $html);
        $this->assertStringContainsString('whsec_', $html);
        $this->assertStringNotContainsString('Settings saved.', $html);
        $this->assertSame(Fixtures::URL, Configuration::get(Settings::URL));
        $this->assertSame(Fixtures::SECRET, Configuration::get(Settings::SECRET));
        $this->assertSame('http://keygate.example.com/x', HelperForm::$last->fields_value[Settings::URL], 'what was typed stays in the field');
        $this->assertStringNotContainsString('whsec_tooshort', $html);
    }

    public function testRetryButtonRevivesDeadEvents()
    {
        Fixtures::configure();
        $queue = new Queue(Db::getInstance());
        $queue->push(Fixtures::builder()->statusChanged(new Order(42), Fixtures::state(2)), Fixtures::NOW);
        Db::getInstance()->execute('UPDATE ' . Queue::table() . ' SET dead = 1, attempts = 16');
        Tools::$request = ['submitKeygateRetry' => '1'];
        $this->assertStringContainsString('1 events queued again.', $this->module->getContent());
        $this->assertCount(1, $this->transport->posts);
        $this->assertSame(['pending' => 0, 'dead' => 0, 'last_error' => ''], $queue->stats());
    }

    /**
     * The controller sends headers: its own process.
     *
     * @runInSeparateProcess
     *
     * @preserveGlobalState disabled
     */
    public function testCronNeedsTheTokenAndDrains()
    {
        $controller = new KeygateCronModuleFrontController();
        $controller->module = $this->module;
        $this->assertSame([403, ['error' => 'invalid token']], $this->module->runCron('wrong'));
        $this->assertSame(403, $this->module->runCron('')[0]);
        $token = Configuration::get(Settings::CRON_TOKEN);
        $this->assertSame(409, $this->module->runCron($token)[0], 'not configured');

        Fixtures::configure();
        $queue = new Queue(Db::getInstance());
        $queue->push(Fixtures::builder()->statusChanged(new Order(42), Fixtures::state(2)), Fixtures::NOW);
        Tools::$request = ['token' => $token];
        $controller->initContent();
        $this->assertSame(
            ['delivered' => 1, 'failed' => 0, 'dead' => 0, 'queue' => ['pending' => 0, 'dead' => 0, 'last_error' => '']],
            json_decode($controller->rendered, true)
        );
        $this->assertSame(200, http_response_code());
        $this->assertCount(1, $this->transport->posts);
    }
}
