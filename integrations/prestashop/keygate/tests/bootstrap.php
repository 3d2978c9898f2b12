<?php
/**
 * PHPUnit bootstrap: PrestaShop's constants and stand-ins for the classes the module calls
 * (tests/stubs), then the module itself.
 */
define('_PS_VERSION_', '8.2.0');
define('_DB_PREFIX_', 'ps_');
define('_MYSQL_ENGINE_', 'InnoDB');

foreach (['Configuration', 'Db', 'ObjectModels', 'Context', 'Admin'] as $stub) {
    require __DIR__ . '/stubs/' . $stub . '.php';
}
require __DIR__ . '/../keygate.php';
require __DIR__ . '/../controllers/front/cron.php';
require __DIR__ . '/unit/Fixtures.php';
