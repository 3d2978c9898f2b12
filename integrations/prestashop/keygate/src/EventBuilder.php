<?php
/**
 * Keygate for PrestaShop.
 *
 * @license MIT
 */

namespace Keygate\PrestaShop;

/**
 * Builds the events the module posts to Keygate, from the objects PrestaShop hands its
 * hooks. The shape is documented in docs/platforms/prestashop.md ("The event") and parsed by
 * Keygate's `prestashop` provider (crates/billing/src/providers/prestashop.rs):
 *
 *   {"id": "evt_...", "type": "order.status_changed" | "order.credit_slip_added",
 *    "created_at": RFC 3339 UTC, "shop": {"id", "name", "domain"},
 *    "data": {"order": {"id", "reference", "id_shop", "currency", "total_paid",
 *                       "state": {"id", "name", "paid", "role"}, "previous_state": same | null,
 *                       "customer": {"id", "email", "firstname", "lastname", "name"},
 *                       "lines": [{"id_order_detail", "product_id", "product_attribute_id",
 *                                  "reference", "name", "quantity", "quantity_refunded"}]},
 *             "credit_slip": {"id", "lines": [{"id_order_detail", "product_id",
 *                             "product_attribute_id", "reference", "quantity"}]}  (slips only)}}
 *
 * `state.role` is what the state means to Keygate, decided here because only the shop knows
 * its configured state ids: `refunded` (PS_OS_REFUND), `canceled` (PS_OS_CANCELED),
 * `payment_error` (PS_OS_ERROR), `paid` (any other state with the "paid" flag: Payment
 * accepted, Remote payment accepted, Processing in progress, Shipped, Delivered, On backorder
 * (paid)), else `pending`.
 */
final class EventBuilder
{
    const STATUS_CHANGED = 'order.status_changed';
    const CREDIT_SLIP_ADDED = 'order.credit_slip_added';

    /** @var callable(): int */
    private $clock;
    /** @var callable(): string */
    private $ids;

    /**
     * @param callable|null $clock Unix seconds now (tests fix it)
     * @param callable|null $ids a new event id (tests fix it)
     */
    public function __construct(?callable $clock = null, ?callable $ids = null)
    {
        $this->clock = $clock ?: 'time';
        $this->ids = $ids ?: [self::class, 'randomId'];
    }

    /**
     * A Standard Webhooks message id: no ".", unique per event, kept on every retry.
     *
     * @return string
     */
    public static function randomId()
    {
        return 'evt_' . bin2hex(random_bytes(12));
    }

    /**
     * `actionOrderStatusPostUpdate`: the order moved to `$new` (from `$old`, when known).
     *
     * @param \Order $order
     * @param \OrderState $new
     * @param \OrderState|null $old
     *
     * @return array<string, mixed>
     */
    public function statusChanged(\Order $order, \OrderState $new, $old = null)
    {
        $data = [
            'order' => $this->order($order, $new, $old instanceof \OrderState ? $old : null),
        ];

        return $this->envelope(call_user_func($this->ids), self::STATUS_CHANGED, $order, $data);
    }

    /**
     * `actionOrderSlipAdd`: a credit slip (a refund) was added to the order. PrestaShop 8/9
     * pass `productList` keyed by order detail id, each `{id_order_detail, quantity, amount,
     * ...}`; older callers pass order detail ids with the quantities in `qtyList` under the
     * same keys. Both are read.
     *
     * @param \Order $order
     * @param array $productList
     * @param array $qtyList
     *
     * @return array<string, mixed>
     */
    public function creditSlipAdded(\Order $order, array $productList, array $qtyList)
    {
        $lines = $this->linesById($order);
        $slipLines = [];
        foreach ($productList as $key => $product) {
            if (is_array($product)) {
                $detailId = (int) (isset($product['id_order_detail']) ? $product['id_order_detail'] : $key);
                $quantity = isset($product['quantity']) ? (int) $product['quantity'] : (int) (isset($qtyList[$key]) ? $qtyList[$key] : 0);
            } else {
                $detailId = (int) $product;
                $quantity = (int) (isset($qtyList[$key]) ? $qtyList[$key] : (isset($qtyList[$detailId]) ? $qtyList[$detailId] : 0));
            }
            if ($detailId <= 0 || $quantity <= 0) {
                continue;
            }
            $line = isset($lines[$detailId]) ? $lines[$detailId] : null;
            $slipLines[] = [
                'id_order_detail' => $detailId,
                'product_id' => $line ? $line['product_id'] : 0,
                'product_attribute_id' => $line ? $line['product_attribute_id'] : 0,
                'reference' => $line ? $line['reference'] : '',
                'quantity' => $quantity,
            ];
        }
        $slipId = self::latestSlipId($order);
        $state = new \OrderState((int) $order->current_state, (int) $order->id_lang);
        $data = [
            'order' => $this->order($order, $state, null),
            'credit_slip' => [
                'id' => $slipId,
                'lines' => $slipLines,
            ],
        ];
        // A slip's id names the refund: the same slip posted twice is one event to Keygate.
        $id = $slipId > 0 ? 'slip_' . $slipId : call_user_func($this->ids);

        return $this->envelope($id, self::CREDIT_SLIP_ADDED, $order, $data);
    }

    /**
     * The body bytes: compact JSON, slashes and Unicode unescaped (signed as sent). A product
     * name that is not UTF-8 (an old latin-1 import) is sent with U+FFFD in its place rather
     * than losing the order's event.
     *
     * @param array $event
     *
     * @return string
     */
    public static function encode(array $event)
    {
        $json = json_encode($event, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE);
        if ($json === false) {
            throw new \RuntimeException('event not encodable as JSON: ' . json_last_error_msg());
        }

        return $json;
    }

    /**
     * What `$state` means to Keygate (see the class doc).
     *
     * @param \OrderState $state
     *
     * @return string
     */
    public static function role(\OrderState $state)
    {
        $id = (int) $state->id;
        if ($id > 0 && $id === (int) \Configuration::get('PS_OS_REFUND')) {
            return 'refunded';
        }
        if ($id > 0 && $id === (int) \Configuration::get('PS_OS_CANCELED')) {
            return 'canceled';
        }
        if ($id > 0 && $id === (int) \Configuration::get('PS_OS_ERROR')) {
            return 'payment_error';
        }

        return $state->paid ? 'paid' : 'pending';
    }

    private function envelope($id, $type, \Order $order, array $data)
    {
        $shop = \Context::getContext()->shop;

        return [
            'id' => (string) $id,
            'type' => $type,
            'created_at' => gmdate('Y-m-d\TH:i:s\Z', (int) call_user_func($this->clock)),
            'shop' => [
                'id' => (int) $order->id_shop,
                'name' => $shop ? (string) $shop->name : '',
                'domain' => $shop ? (string) $shop->domain : '',
            ],
            'data' => $data,
        ];
    }

    private function order(\Order $order, \OrderState $state, $old)
    {
        $customer = new \Customer((int) $order->id_customer);
        $currency = new \Currency((int) $order->id_currency);
        $name = trim($customer->firstname . ' ' . $customer->lastname);

        return [
            'id' => (int) $order->id,
            'reference' => (string) $order->reference,
            'id_shop' => (int) $order->id_shop,
            'currency' => (string) $currency->iso_code,
            'total_paid' => self::money($order->total_paid),
            'state' => $this->state($state, (int) $order->id_lang),
            'previous_state' => $old ? $this->state($old, (int) $order->id_lang) : null,
            'customer' => [
                'id' => (int) $customer->id,
                'email' => (string) $customer->email,
                'firstname' => (string) $customer->firstname,
                'lastname' => (string) $customer->lastname,
                'name' => $name,
            ],
            'lines' => array_values($this->linesById($order)),
        ];
    }

    private function state(\OrderState $state, $idLang)
    {
        $name = $state->name;
        if (is_array($name)) {
            // Loaded without a language: every translation, keyed by language id.
            $name = isset($name[$idLang]) ? $name[$idLang] : (string) reset($name);
        }

        return [
            'id' => (int) $state->id,
            'name' => (string) $name,
            'paid' => (bool) $state->paid,
            'role' => self::role($state),
        ];
    }

    /**
     * The order's lines (order details), keyed by order detail id.
     */
    private function linesById(\Order $order)
    {
        $lines = [];
        foreach ($order->getProducts() as $row) {
            $id = (int) $row['id_order_detail'];
            $lines[$id] = [
                'id_order_detail' => $id,
                'product_id' => (int) $row['product_id'],
                'product_attribute_id' => (int) $row['product_attribute_id'],
                'reference' => (string) $row['product_reference'],
                'name' => (string) $row['product_name'],
                'quantity' => (int) $row['product_quantity'],
                'quantity_refunded' => isset($row['product_quantity_refunded']) ? (int) $row['product_quantity_refunded'] : 0,
            ];
        }

        return $lines;
    }

    /**
     * The slip the hook is about: `actionOrderSlipAdd` runs right after the slip is saved and
     * does not pass it, so it is the order's newest.
     */
    private static function latestSlipId(\Order $order)
    {
        $latest = 0;
        foreach (\OrderSlip::getOrdersSlip((int) $order->id_customer, (int) $order->id) as $slip) {
            $latest = max($latest, (int) $slip['id_order_slip']);
        }

        return $latest;
    }

    private static function money($value)
    {
        $text = rtrim(rtrim(sprintf('%.6F', (float) $value), '0'), '.');

        return $text === '' || $text === '-0' ? '0' : $text;
    }
}
