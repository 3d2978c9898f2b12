<?php
/**
 * The module, over the PrestaShop stand-ins, posting the fixture shop's order to a real
 * Keygate with its real transport (ext-curl): paid, then a credit slip for detail 12 (the
 * mug). Keygate's end-to-end test (crates/server/tests/api/prestashop.rs) runs it against the
 * server it started:
 *
 *   php tests/post-to-keygate.php WEBHOOK_URL WHSEC_SECRET
 *
 * Prints the queue afterwards as JSON; exits 0 when every event was delivered.
 */
require __DIR__ . '/bootstrap.php';

if ($argc !== 3) {
    fwrite(STDERR, "usage: php tests/post-to-keygate.php WEBHOOK_URL WHSEC_SECRET\n");
    exit(2);
}
Fixtures::reset();
$module = new Keygate();
$module->install();
Tools::$request = ['submitKeygate' => '1', Keygate\PrestaShop\Settings::URL => $argv[1], Keygate\PrestaShop\Settings::SECRET => $argv[2]];
$page = $module->getContent();
if (strpos($page, 'Settings saved.') === false) {
    fwrite(STDERR, "configuration refused: $page\n");
    exit(1);
}
$module->hookActionOrderStatusPostUpdate(['newOrderStatus' => Fixtures::state(2), 'oldOrderStatus' => Fixtures::state(10), 'id_order' => 42]);
OrderSlip::$slips = [['id_order_slip' => 5, 'id_customer' => 7, 'id_order' => 42]];
$module->hookActionOrderSlipAdd([
    'order' => new Order(42),
    'productList' => [12 => ['id_order_detail' => 12, 'quantity' => 1, 'amount' => 10.0]],
    'qtyList' => [12 => 1],
]);
$stats = (new Keygate\PrestaShop\Queue(Db::getInstance()))->stats();
echo json_encode(['queue' => $stats, 'log' => PrestaShopLogger::$lines]), "\n";
exit($stats['pending'] === 0 && $stats['dead'] === 0 && !PrestaShopLogger::$lines ? 0 : 1);
