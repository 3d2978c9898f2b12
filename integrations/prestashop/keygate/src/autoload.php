<?php
/**
 * Keygate for PrestaShop: the module's classes without Composer (the zip carries no vendor/).
 *
 * @license MIT
 */
spl_autoload_register(function ($class) {
    $prefix = 'Keygate\\PrestaShop\\';
    if (strpos($class, $prefix) !== 0) {
        return;
    }
    $file = __DIR__ . '/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
    if (is_file($file)) {
        require $file;
    }
});
