<?php
/**
 * Stand-ins for PrestaShop's Context, Link, Shop and Smarty: what the configuration page and
 * the event builder read.
 */
class Shop
{
    public $id = 1;
    public $name = 'Demo Shop';
    public $domain = 'shop.example.com';
}

class Link
{
    public function getModuleLink($module, $controller = 'default', array $params = [], $ssl = null)
    {
        return 'https://shop.example.com/module/' . $module . '/' . $controller . ($params ? '?' . http_build_query($params) : '');
    }
}

class Smarty
{
    /** @var array */
    public $assigned = [];

    public function assign($name, $value = null)
    {
        if (is_array($name)) {
            $this->assigned = array_merge($this->assigned, $name);
        } else {
            $this->assigned[$name] = $value;
        }
    }
}

class Context
{
    /** @var Context|null */
    private static $instance;

    public $shop;
    public $link;
    public $smarty;
    public $language;

    public static function getContext()
    {
        if (!self::$instance) {
            self::$instance = new self();
            self::$instance->shop = new Shop();
            self::$instance->link = new Link();
            self::$instance->smarty = new Smarty();
            self::$instance->language = (object) ['id' => 1];
        }

        return self::$instance;
    }

    public static function reset()
    {
        self::$instance = null;
    }
}
