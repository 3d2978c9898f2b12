<?php
/**
 * Stand-in for PrestaShop's Configuration: a key/value store in memory (the real one is the
 * `configuration` table), same static API.
 */
class Configuration
{
    /** @var array<string, string> */
    public static $values = [];

    public static function get($key, $idLang = null, $idShopGroup = null, $idShop = null, $default = false)
    {
        return array_key_exists($key, self::$values) ? self::$values[$key] : $default;
    }

    public static function updateValue($key, $value, $html = false, $idShopGroup = null, $idShop = null)
    {
        // PrestaShop stores strings; what comes back from get() is text.
        self::$values[$key] = (string) $value;

        return true;
    }

    public static function deleteByName($key)
    {
        unset(self::$values[$key]);

        return true;
    }

    /** The defaults of a fresh PrestaShop install (install-dev/data/xml/configuration.xml). */
    public static function reset()
    {
        self::$values = [
            'PS_OS_PAYMENT' => '2',
            'PS_OS_CANCELED' => '6',
            'PS_OS_REFUND' => '7',
            'PS_OS_ERROR' => '8',
            'PS_OS_WS_PAYMENT' => '11',
            'PS_LANG_DEFAULT' => '1',
        ];
    }
}
