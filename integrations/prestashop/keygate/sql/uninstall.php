<?php
/**
 * Keygate for PrestaShop: undoes sql/install.php.
 *
 * @license MIT
 */
if (!defined('_PS_VERSION_')) {
    exit;
}

return [
    'DROP TABLE IF EXISTS `' . _DB_PREFIX_ . 'keygate_queue`',
];
