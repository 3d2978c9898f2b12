<?php
/**
 * Stand-ins for the back office and front controller pieces the module touches: Module,
 * HelperForm (records the form it was asked to render), Tools (request values),
 * AdminController, ModuleFrontController and PrestaShopLogger (records log lines).
 */
class Module
{
    public $name;
    public $tab;
    public $version;
    public $author;
    public $need_instance;
    public $ps_versions_compliancy;
    public $bootstrap;
    public $displayName;
    public $description;
    public $confirmUninstall;
    public $id = 42;
    public $identifier = 'id_module';
    public $context;

    /** @var string[] hooks registered, for tests */
    public $hooks = [];
    /** @var bool */
    public $installed = false;

    public function __construct()
    {
        $this->context = Context::getContext();
    }

    public function install()
    {
        $this->installed = true;

        return true;
    }

    public function uninstall()
    {
        $this->installed = false;
        $this->hooks = [];

        return true;
    }

    public function registerHook($hooks, $shops = null)
    {
        foreach ((array) $hooks as $hook) {
            $this->hooks[] = $hook;
        }

        return true;
    }

    public function trans($id, array $parameters = [], $domain = null, $locale = null)
    {
        return strtr($id, $parameters);
    }

    public function displayError($error)
    {
        return '<div class="alert alert-danger">' . htmlspecialchars($error) . '</div>';
    }

    public function displayConfirmation($message)
    {
        return '<div class="alert alert-success">' . htmlspecialchars($message) . '</div>';
    }

    public function display($file, $template)
    {
        return '<!-- template ' . $template . ' -->';
    }
}

class HelperForm
{
    /** @var HelperForm|null the last one rendered */
    public static $last;

    public $module;
    public $name_controller;
    public $table;
    public $identifier;
    public $token;
    public $currentIndex;
    public $submit_action;
    public $default_form_language;
    public $fields_value = [];
    /** @var array */
    public $forms = [];

    public function generateForm($forms)
    {
        $this->forms = $forms;
        self::$last = $this;
        $html = '<form>';
        foreach ($forms[0]['form']['input'] as $input) {
            $value = isset($this->fields_value[$input['name']]) ? $this->fields_value[$input['name']] : '';
            $html .= '<input type="' . $input['type'] . '" name="' . $input['name'] . '" value="' . htmlspecialchars((string) $value) . '">';
        }

        return $html . '</form>';
    }
}

class AdminController
{
    public static $currentIndex = 'index.php?controller=AdminModules';
}

class Tools
{
    /** @var array the request */
    public static $request = [];

    public static function getValue($key, $default = false)
    {
        return isset(self::$request[$key]) ? self::$request[$key] : $default;
    }

    public static function isSubmit($key)
    {
        return isset(self::$request[$key]);
    }

    public static function getAdminTokenLite($tab)
    {
        return 'admintoken';
    }
}

class ModuleFrontController
{
    public $module;
    public $rendered;

    public function initContent()
    {
    }

    protected function ajaxRender($value = null, $controller = null, $method = null)
    {
        $this->rendered = $value;
    }
}

class PrestaShopLogger
{
    /** @var array[] */
    public static $lines = [];

    public static function addLog($message, $severity = 1, $errorCode = null, $objectType = null, $objectId = null, $allowDuplicate = false, $idEmployee = null)
    {
        self::$lines[] = ['message' => $message, 'severity' => $severity];

        return true;
    }
}
