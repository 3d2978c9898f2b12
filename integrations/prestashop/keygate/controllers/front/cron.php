<?php
/**
 * Keygate for PrestaShop: `index.php?fc=module&module=keygate&controller=cron&token=...`
 * (the exact URL is on the configuration page) posts the queue's due events. Call it from
 * cron every few minutes, so retries happen even when no order changes.
 *
 * @license MIT
 */
if (!defined('_PS_VERSION_')) {
    exit;
}

class KeygateCronModuleFrontController extends ModuleFrontController
{
    /** @var bool machine-to-machine: no customer session, no page */
    public $auth = false;
    public $ajax = true;

    public function initContent()
    {
        list($status, $answer) = $this->module->runCron((string) Tools::getValue('token'));
        http_response_code($status);
        header('Content-Type: application/json');
        header('Cache-Control: no-store');
        $this->ajaxRender(json_encode($answer));
    }
}
