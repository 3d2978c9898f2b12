<?php
/**
 * A small shop for the tests (and for tests/generate-vectors.php): order 42 (reference
 * XKBKNABJK) by customer 7, two lines: detail 11 = product 3 "PHOTO-PRO" x2, detail 12 =
 * product 5 combination 9 "MUG-RED" x1; states as a fresh install numbers them.
 */
final class Fixtures
{
    const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const OLD_SECRET = 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD';
    const URL = 'https://keygate.example.com/v1/webhooks/prestashop/int_7Hq2';
    /** 2026-03-01T10:00:00Z */
    const NOW = 1772359200;

    public static function reset()
    {
        ObjectModel::resetAll();
        OrderSlip::$slips = [];
        Configuration::reset();
        Db::reset();
        Context::reset();
        Tools::$request = [];
        HelperForm::$last = null;
        PrestaShopLogger::$lines = [];

        Customer::define(7, ['email' => 'ada@example.com', 'firstname' => 'Ada', 'lastname' => 'Lovelace']);
        Currency::define(1, ['iso_code' => 'EUR']);
        $states = [
            1 => ['Awaiting check payment', false],
            2 => ['Payment accepted', true],
            4 => ['Shipped', true],
            6 => ['Canceled', false],
            7 => ['Refunded', false],
            8 => ['Payment error', false],
            10 => ['Awaiting bank wire payment', false],
        ];
        foreach ($states as $id => list($name, $paid)) {
            OrderState::define($id, ['name' => [1 => $name, 2 => $name . ' (fr)'], 'paid' => $paid]);
        }
        Order::define(42, [
            'id_customer' => 7,
            'id_currency' => 1,
            'id_lang' => 1,
            'id_shop' => 1,
            'current_state' => 2,
            'reference' => 'XKBKNABJK',
            'total_paid' => '159.800000',
            'products' => [
                11 => self::line(11, 3, 0, 'PHOTO-PRO', 'Photo App Pro', 2),
                12 => self::line(12, 5, 9, 'MUG-RED', 'Mug <b>red</b> & "classic"', 1),
            ],
        ]);
    }

    public static function line($detail, $product, $attribute, $reference, $name, $quantity, $refunded = 0)
    {
        return [
            'id_order_detail' => (string) $detail,
            'product_id' => (string) $product,
            'product_attribute_id' => (string) $attribute,
            'product_reference' => $reference,
            'product_name' => $name,
            'product_quantity' => (string) $quantity,
            'product_quantity_refunded' => (string) $refunded,
        ];
    }

    public static function state($id)
    {
        return new OrderState($id, 1);
    }

    public static function configure()
    {
        Configuration::updateValue(Keygate\PrestaShop\Settings::URL, self::URL);
        Configuration::updateValue(Keygate\PrestaShop\Settings::SECRET, self::SECRET);
    }

    /** A builder whose ids are evt_test_1, evt_test_2, ... and whose time is NOW. */
    public static function builder()
    {
        $n = 0;

        return new Keygate\PrestaShop\EventBuilder(
            function () {
                return self::NOW;
            },
            function () use (&$n) {
                return 'evt_test_' . ++$n;
            }
        );
    }
}

/**
 * Records every post and answers from a script (default 204).
 */
final class RecordingTransport implements Keygate\PrestaShop\Transport
{
    /** @var array[] url, headers, body */
    public $posts = [];
    /** @var array[] answers, in order; when empty, 204 */
    public $answers = [];

    public function post($url, array $headers, $body)
    {
        $this->posts[] = ['url' => $url, 'headers' => $headers, 'body' => $body];
        $answer = array_shift($this->answers);
        if ($answer instanceof \Throwable) {
            throw $answer;
        }

        return $answer ?: ['status' => 204, 'retry_after' => null, 'error' => ''];
    }
}
