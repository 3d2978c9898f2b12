<?php
/**
 * Stand-in for PrestaShop's Db over SQLite in memory, so the module's real SQL runs. MySQL
 * DDL is translated to SQLite's (AUTO_INCREMENT, UNSIGNED, KEY, ENGINE); DML is sent as the
 * module wrote it, so it must stay portable SQL.
 */
class Db
{
    /** @var Db|null */
    private static $instance;

    /** @var PDO */
    public $pdo;
    /** @var int */
    private $affected = 0;
    /** @var string[] every statement sent, for tests */
    public $log = [];

    public static function getInstance($master = true)
    {
        if (!self::$instance) {
            self::$instance = new self();
        }

        return self::$instance;
    }

    public static function reset()
    {
        self::$instance = null;
    }

    public function __construct()
    {
        $this->pdo = new PDO('sqlite::memory:');
        $this->pdo->setAttribute(PDO::ATTR_ERRMODE, PDO::ERRMODE_EXCEPTION);
    }

    public function execute($sql, $useCache = true)
    {
        $this->log[] = $sql;
        $this->affected = $this->pdo->exec(self::translate($sql));

        return true;
    }

    public function executeS($sql, $array = true, $useCache = true)
    {
        $this->log[] = $sql;

        return $this->pdo->query(self::translate($sql))->fetchAll(PDO::FETCH_ASSOC);
    }

    public function getRow($sql, $useCache = true)
    {
        $rows = $this->executeS(self::limitOne($sql));

        return $rows ? $rows[0] : false;
    }

    public function getValue($sql, $useCache = true)
    {
        $row = $this->getRow($sql);

        return $row ? reset($row) : false;
    }

    public function Affected_Rows()
    {
        return $this->affected;
    }

    public function escape($string)
    {
        return str_replace("'", "''", (string) $string);
    }

    private static function limitOne($sql)
    {
        return preg_match('/\bLIMIT\s+\d+\s*$/i', $sql) ? $sql : rtrim($sql) . ' LIMIT 1';
    }

    private static function translate($sql)
    {
        if (!preg_match('/^\s*CREATE TABLE/i', $sql)) {
            return $sql;
        }
        $sql = preg_replace('/`(\w+)` INT\(10\) UNSIGNED NOT NULL AUTO_INCREMENT/i', '`$1` INTEGER PRIMARY KEY AUTOINCREMENT', $sql);
        $sql = preg_replace('/,\s*PRIMARY KEY \([^)]*\)/i', '', $sql);
        $sql = preg_replace('/UNIQUE KEY `\w+` \(/i', 'UNIQUE (', $sql);
        $sql = preg_replace('/,\s*KEY `\w+` \([^)]*\)/i', '', $sql);
        $sql = preg_replace('/\)\s*ENGINE=\w+.*$/is', ')', $sql);
        $sql = preg_replace('/\b(TINYINT|INT)\(\d+\)( UNSIGNED)?/i', 'INTEGER', $sql);
        $sql = str_ireplace('MEDIUMTEXT', 'TEXT', $sql);

        return $sql;
    }
}

/**
 * PrestaShop's pSQL: escapes for the database and, unless `$htmlOK`, strips tags (which is
 * why a JSON body must be passed with `$htmlOK = true`).
 */
function pSQL($string, $htmlOK = false)
{
    if (!$htmlOK) {
        $string = strip_tags((string) $string);
    }

    return Db::getInstance()->escape($string);
}
