<?php
/**
 * Keygate for PrestaShop: the outbox table (see src/Queue.php).
 *
 * @license MIT
 */
if (!defined('_PS_VERSION_')) {
    exit;
}

return [
    'CREATE TABLE IF NOT EXISTS `' . _DB_PREFIX_ . 'keygate_queue` (
        `id_keygate_queue` INT(10) UNSIGNED NOT NULL AUTO_INCREMENT,
        `webhook_id` VARCHAR(64) NOT NULL,
        `event_type` VARCHAR(64) NOT NULL,
        `id_order` INT(10) UNSIGNED NOT NULL DEFAULT 0,
        `body` MEDIUMTEXT NOT NULL,
        `attempts` INT(10) UNSIGNED NOT NULL DEFAULT 0,
        `next_attempt_at` INT(10) UNSIGNED NOT NULL,
        `last_status` INT(10) NOT NULL DEFAULT 0,
        `last_error` VARCHAR(255) NOT NULL DEFAULT \'\',
        `dead` TINYINT(1) UNSIGNED NOT NULL DEFAULT 0,
        `date_add` INT(10) UNSIGNED NOT NULL,
        PRIMARY KEY (`id_keygate_queue`),
        UNIQUE KEY `webhook_id` (`webhook_id`),
        KEY `due` (`dead`, `next_attempt_at`)
    ) ENGINE=' . _MYSQL_ENGINE_ . ' DEFAULT CHARSET=utf8mb4',
];
