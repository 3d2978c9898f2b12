<?php

use Keygate\PrestaShop\EventBuilder;
use PHPUnit\Framework\TestCase;

final class EventBuilderTest extends TestCase
{
    protected function setUp(): void
    {
        Fixtures::reset();
    }

    public function testStatusChangedCarriesTheDocumentedShape()
    {
        $event = Fixtures::builder()->statusChanged(new Order(42), Fixtures::state(2), Fixtures::state(10));
        $this->assertSame([
            'id' => 'evt_test_1',
            'type' => 'order.status_changed',
            'created_at' => '2026-03-01T10:00:00Z',
            'shop' => ['id' => 1, 'name' => 'Demo Shop', 'domain' => 'shop.example.com'],
            'data' => [
                'order' => [
                    'id' => 42,
                    'reference' => 'XKBKNABJK',
                    'id_shop' => 1,
                    'currency' => 'EUR',
                    'total_paid' => '159.8',
                    'state' => ['id' => 2, 'name' => 'Payment accepted', 'paid' => true, 'role' => 'paid'],
                    'previous_state' => ['id' => 10, 'name' => 'Awaiting bank wire payment', 'paid' => false, 'role' => 'pending'],
                    'customer' => [
                        'id' => 7,
                        'email' => 'ada@example.com',
                        'firstname' => 'Ada',
                        'lastname' => 'Lovelace',
                        'name' => 'Ada Lovelace',
                    ],
                    'lines' => [
                        ['id_order_detail' => 11, 'product_id' => 3, 'product_attribute_id' => 0, 'reference' => 'PHOTO-PRO',
                            'name' => 'Photo App Pro', 'quantity' => 2, 'quantity_refunded' => 0],
                        ['id_order_detail' => 12, 'product_id' => 5, 'product_attribute_id' => 9, 'reference' => 'MUG-RED',
                            'name' => 'Mug <b>red</b> & "classic"', 'quantity' => 1, 'quantity_refunded' => 0],
                    ],
                ],
            ],
        ], $event);
    }

    /**
     * @dataProvider roles
     */
    public function testRoleComesFromTheShopsConfiguredStates($state, $role)
    {
        $event = Fixtures::builder()->statusChanged(new Order(42), Fixtures::state($state));
        $this->assertSame($role, $event['data']['order']['state']['role']);
        $this->assertNull($event['data']['order']['previous_state']);
    }

    public function roles()
    {
        return [
            'payment accepted' => [2, 'paid'],
            'shipped (paid flag)' => [4, 'paid'],
            'canceled' => [6, 'canceled'],
            'refunded' => [7, 'refunded'],
            'payment error' => [8, 'payment_error'],
            'awaiting payment' => [1, 'pending'],
        ];
    }

    public function testCustomRefundStateIdIsFollowed()
    {
        // A shop whose "Refunded" state is its own (id 20), configured as PS_OS_REFUND.
        OrderState::define(20, ['name' => [1 => 'Remboursé'], 'paid' => false]);
        Configuration::updateValue('PS_OS_REFUND', 20);
        $event = Fixtures::builder()->statusChanged(new Order(42), Fixtures::state(20));
        $this->assertSame('refunded', $event['data']['order']['state']['role']);
        $this->assertSame('Remboursé', $event['data']['order']['state']['name']);
        $this->assertSame('pending', Fixtures::builder()->statusChanged(new Order(42), Fixtures::state(7))['data']['order']['state']['role']);
    }

    public function testStateLoadedWithoutALanguageIsNamedInTheOrdersLanguage()
    {
        $order = new Order(42);
        $order->id_lang = 2;
        $event = Fixtures::builder()->statusChanged($order, new OrderState(2));
        $this->assertSame('Payment accepted (fr)', $event['data']['order']['state']['name']);
    }

    public function testCreditSlipFromPrestaShop8ProductList()
    {
        OrderSlip::$slips = [
            ['id_order_slip' => 3, 'id_customer' => 7, 'id_order' => 42],
            ['id_order_slip' => 5, 'id_customer' => 7, 'id_order' => 42],
            ['id_order_slip' => 9, 'id_customer' => 7, 'id_order' => 41],
        ];
        // OrderRefundCalculator::flattenProductRefunds: keyed by order detail id.
        $productList = [11 => ['id_order_detail' => 11, 'quantity' => 1, 'amount' => 49.9, 'unit_price' => 49.9]];
        $event = Fixtures::builder()->creditSlipAdded(new Order(42), $productList, [11 => 1]);
        $this->assertSame('slip_5', $event['id']);
        $this->assertSame('order.credit_slip_added', $event['type']);
        $this->assertSame([
            'id' => 5,
            'lines' => [['id_order_detail' => 11, 'product_id' => 3, 'product_attribute_id' => 0, 'reference' => 'PHOTO-PRO', 'quantity' => 1]],
        ], $event['data']['credit_slip']);
        $this->assertSame('paid', $event['data']['order']['state']['role']);
        $this->assertCount(2, $event['data']['order']['lines']);
    }

    public function testCreditSlipFromALegacyDetailIdList()
    {
        // Order detail ids with their quantities under the same keys; zero quantities skipped.
        $event = Fixtures::builder()->creditSlipAdded(new Order(42), [11, 12], [1, 0]);
        $this->assertSame('evt_test_1', $event['id'], 'no slip found: a fresh id');
        $this->assertSame(0, $event['data']['credit_slip']['id']);
        $this->assertSame([['id_order_detail' => 11, 'product_id' => 3, 'product_attribute_id' => 0, 'reference' => 'PHOTO-PRO', 'quantity' => 1]],
            $event['data']['credit_slip']['lines']);
    }

    public function testEncodeKeepsSlashesAndUnicodeAndIsCompact()
    {
        $json = EventBuilder::encode(['url' => 'https://a/b', 'name' => 'Café', 'n' => [1]]);
        $this->assertSame('{"url":"https://a/b","name":"Café","n":[1]}', $json);
        $this->assertSame("{\"name\":\"Caf\u{FFFD}1\"}", EventBuilder::encode(['name' => "Caf\xB11"]));
        $this->expectException(RuntimeException::class);
        EventBuilder::encode(['total' => NAN]);
    }

    public function testRandomIdsAreUniqueAndDotFree()
    {
        $a = EventBuilder::randomId();
        $this->assertMatchesRegularExpression('/^evt_[0-9a-f]{24}$/', $a);
        $this->assertNotSame($a, EventBuilder::randomId());
    }
}
