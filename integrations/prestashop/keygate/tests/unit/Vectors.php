<?php

use Keygate\PrestaShop\EventBuilder;
use Keygate\PrestaShop\Signer;

/**
 * The module's output for the fixture shop, as committed under
 * crates/billing/tests/fixtures/prestashop/ (tests/generate-fixtures.php writes them;
 * VectorsTest checks the committed files are still what the module produces, and Keygate's
 * crates/billing/tests/prestashop.rs verifies and parses them).
 */
final class Vectors
{
    /** @return array<string, array> file name => event */
    public static function events()
    {
        Fixtures::reset();
        $builder = Fixtures::builder();
        $order = new Order(42);
        $events = [
            'status_changed.paid.json' => $builder->statusChanged($order, Fixtures::state(2), Fixtures::state(10)),
            'status_changed.shipped.json' => $builder->statusChanged($order, Fixtures::state(4), Fixtures::state(2)),
            'status_changed.awaiting_payment.json' => $builder->statusChanged($order, Fixtures::state(10), null),
            'status_changed.payment_error.json' => $builder->statusChanged($order, Fixtures::state(8), Fixtures::state(10)),
            'status_changed.canceled.json' => $builder->statusChanged($order, Fixtures::state(6), Fixtures::state(10)),
        ];
        OrderSlip::$slips = [['id_order_slip' => 5, 'id_customer' => 7, 'id_order' => 42]];
        $events['credit_slip_added.json'] = $builder->creditSlipAdded(
            $order,
            [11 => ['id_order_detail' => 11, 'quantity' => 1, 'amount' => 49.9, 'unit_price' => 49.9]],
            [11 => 1]
        );
        // The rest refunded: PrestaShop marks the order Refunded after the last slip.
        $refunded = new Order(42);
        $refunded->products[11]['product_quantity_refunded'] = '2';
        $refunded->products[12]['product_quantity_refunded'] = '1';
        $refunded->current_state = 7;
        $events['status_changed.refunded.json'] = $builder->statusChanged($refunded, Fixtures::state(7), Fixtures::state(2));

        return $events;
    }

    /**
     * Signed deliveries: exact bytes and headers. The first is the Standard Webhooks official
     * vector; one is signed during a rotation (two signatures).
     *
     * @return array[]
     */
    public static function signed()
    {
        $vectors = [[
            'name' => 'standard webhooks official vector',
            'secrets' => ['whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD'],
            'webhook-id' => 'msg_27UH4WbU6Z5A5EzD8u03UvzRbpk',
            'webhook-timestamp' => '1649367553',
            'body' => '{"email":"test@example.com","username":"test_user"}',
        ]];
        $timestamp = Fixtures::NOW;
        foreach (self::events() as $file => $event) {
            $vectors[] = [
                'name' => $file,
                'secrets' => [Fixtures::SECRET],
                'webhook-id' => $event['id'],
                'webhook-timestamp' => (string) $timestamp,
                'body' => EventBuilder::encode($event),
            ];
            $timestamp += 7;
        }
        $vectors[] = [
            'name' => 'rotation: new and old secret',
            'secrets' => [Fixtures::SECRET, Fixtures::OLD_SECRET],
            'webhook-id' => 'evt_rotation',
            'webhook-timestamp' => (string) Fixtures::NOW,
            'body' => EventBuilder::encode(self::events()['status_changed.paid.json']),
        ];
        foreach ($vectors as &$vector) {
            $headers = Signer::headers($vector['secrets'], $vector['webhook-id'], (int) $vector['webhook-timestamp'], $vector['body']);
            $vector['webhook-signature'] = $headers['webhook-signature'];
        }

        return $vectors;
    }

    /** @return array<string, string> file name => contents */
    public static function files()
    {
        $files = [];
        foreach (self::events() as $file => $event) {
            $files[$file] = json_encode($event, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE) . "\n";
        }
        $files['module_signatures.json'] = json_encode(self::signed(), JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE) . "\n";

        return $files;
    }

    public static function directory()
    {
        return __DIR__ . '/../../../../../crates/billing/tests/fixtures/prestashop';
    }
}
