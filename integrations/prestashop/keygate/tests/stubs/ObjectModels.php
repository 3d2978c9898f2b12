<?php
/**
 * Stand-ins for the PrestaShop entities the module reads. `new X($id)` loads from
 * `X::$rows[$id]` as the real ObjectModel loads its table row; an unknown id gives an empty
 * object (id 0), as PrestaShop does.
 */
abstract class ObjectModel
{
    /** @var int|null */
    public $id;

    /** @var array<string, array<int, array>> per class */
    public static $rows = [];

    public function __construct($id = null, $idLang = null)
    {
        $key = static::class;
        if ($id !== null && isset(self::$rows[$key][(int) $id])) {
            foreach (self::$rows[$key][(int) $id] as $field => $value) {
                $this->$field = $value;
            }
            $this->id = (int) $id;
            if ($idLang !== null && property_exists($this, 'name') && is_array($this->name)) {
                $this->name = isset($this->name[$idLang]) ? $this->name[$idLang] : '';
            }
        }
    }

    public static function define($id, array $fields)
    {
        self::$rows[static::class][(int) $id] = $fields;
    }

    public static function resetAll()
    {
        self::$rows = [];
    }
}

class Order extends ObjectModel
{
    public $id_customer;
    public $id_currency;
    public $id_lang = 1;
    public $id_shop = 1;
    public $current_state;
    public $reference;
    public $total_paid;
    /** @var array[] order_detail rows as Order::getProducts() returns them */
    public $products = [];

    public function getProducts($products = false, $selectedProducts = false, $selectedQty = false, $fullInfos = true)
    {
        return $this->products;
    }
}

class OrderState extends ObjectModel
{
    /** @var string|array<int, string> one translation, or all of them keyed by language */
    public $name;
    public $paid = false;
}

class Customer extends ObjectModel
{
    public $email;
    public $firstname;
    public $lastname;
}

class Currency extends ObjectModel
{
    public $iso_code;
}

class OrderSlip extends ObjectModel
{
    /** @var array[] order_slip rows: id_order_slip, id_customer, id_order */
    public static $slips = [];

    public static function getOrdersSlip($customerId, $orderId = false, $onlyValidate = false)
    {
        return array_values(array_filter(self::$slips, function ($slip) use ($customerId, $orderId) {
            return (int) $slip['id_customer'] === (int) $customerId
                && ($orderId === false || (int) $slip['id_order'] === (int) $orderId);
        }));
    }
}

class Validate
{
    public static function isLoadedObject($object)
    {
        return is_object($object) && !empty($object->id);
    }
}
