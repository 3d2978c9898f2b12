<?php
/**
 * Keygate for PrestaShop.
 *
 * @license MIT
 */

namespace Keygate\PrestaShop;

/**
 * The outbox, table `PREFIX_keygate_queue` (sql/install.php): every event is stored before it
 * is posted, and a row leaves the table only once Keygate answered 2xx. A failed attempt
 * schedules the next one (Backoff); the hooks and the cron front controller drain what is
 * due. Keygate applies an order's events in any arrival order, so rows are not sequenced.
 */
final class Queue
{
    const TABLE = 'keygate_queue';
    /** How long a claimed row is hidden from other drains while it is being posted. */
    const LEASE_SECONDS = 120;

    /** @var \Db */
    private $db;

    public function __construct(\Db $db)
    {
        $this->db = $db;
    }

    public static function table()
    {
        return _DB_PREFIX_ . self::TABLE;
    }

    /**
     * Stores an event for delivery, due now. The same webhook id twice is stored once.
     *
     * @param array $event as EventBuilder builds it
     * @param int $now
     *
     * @return bool whether a row was added
     */
    public function push(array $event, $now)
    {
        $id = (string) $event['id'];
        if ($this->find($id) !== null) {
            return false;
        }
        $orderId = isset($event['data']['order']['id']) ? (int) $event['data']['order']['id'] : 0;

        return (bool) $this->db->execute(
            'INSERT INTO `' . self::table() . '` (`webhook_id`, `event_type`, `id_order`, `body`,'
            . ' `attempts`, `next_attempt_at`, `last_status`, `last_error`, `dead`, `date_add`) VALUES ('
            . "'" . pSQL($id) . "', '" . pSQL((string) $event['type']) . "', " . $orderId . ', '
            // The body is JSON and must reach Keygate byte for byte: HTML allowed, not stripped.
            . "'" . pSQL(EventBuilder::encode($event), true) . "', 0, " . (int) $now . ", 0, '', 0, " . (int) $now . ')'
        );
    }

    /**
     * Rows due at `$now`, oldest first, each claimed for LEASE_SECONDS so a concurrent drain
     * (a hook and the cron at once) does not post it too.
     *
     * @param int $now
     * @param int $limit
     *
     * @return array[] rows: id_keygate_queue, webhook_id, body, attempts
     */
    public function claimDue($now, $limit)
    {
        $rows = $this->db->executeS(
            'SELECT `id_keygate_queue`, `webhook_id`, `body`, `attempts`, `next_attempt_at` FROM `'
            . self::table() . '` WHERE `dead` = 0 AND `next_attempt_at` <= ' . (int) $now
            . ' ORDER BY `id_keygate_queue` ASC LIMIT ' . max(1, (int) $limit)
        );
        $claimed = [];
        foreach ($rows ?: [] as $row) {
            $this->db->execute(
                'UPDATE `' . self::table() . '` SET `next_attempt_at` = ' . ((int) $now + self::LEASE_SECONDS)
                . ' WHERE `id_keygate_queue` = ' . (int) $row['id_keygate_queue']
                . ' AND `next_attempt_at` = ' . (int) $row['next_attempt_at'] . ' AND `dead` = 0'
            );
            if ((int) $this->db->Affected_Rows() === 1) {
                $claimed[] = $row;
            }
        }

        return $claimed;
    }

    /**
     * Keygate has it: the row goes.
     *
     * @param int $rowId
     */
    public function delivered($rowId)
    {
        $this->db->execute('DELETE FROM `' . self::table() . '` WHERE `id_keygate_queue` = ' . (int) $rowId);
    }

    /**
     * An attempt failed: the next one is scheduled, or the row is kept as dead.
     *
     * @param array $row as claimDue returned it
     * @param int $now
     * @param int $status the HTTP status (0: no answer)
     * @param string $error
     * @param int|null $retryAfter
     *
     * @return bool whether the row is now dead
     */
    public function failed(array $row, $now, $status, $error, $retryAfter = null)
    {
        $attempts = (int) $row['attempts'] + 1;
        $dead = Backoff::exhausted($attempts);
        $next = (int) $now + Backoff::delay($attempts, $retryAfter);
        $this->db->execute(
            'UPDATE `' . self::table() . '` SET `attempts` = ' . $attempts
            . ', `next_attempt_at` = ' . $next . ', `last_status` = ' . (int) $status
            . ", `last_error` = '" . pSQL(self::clip((string) $error)) . "', `dead` = " . ($dead ? 1 : 0)
            . ' WHERE `id_keygate_queue` = ' . (int) $row['id_keygate_queue']
        );

        return $dead;
    }

    /**
     * Dead rows are due again now, with a fresh attempt budget (the configuration page's
     * "retry" button, once what made them fail is fixed).
     *
     * @param int $now
     *
     * @return int how many
     */
    public function revive($now)
    {
        $this->db->execute(
            'UPDATE `' . self::table() . '` SET `dead` = 0, `attempts` = 0, `next_attempt_at` = ' . (int) $now
            . ' WHERE `dead` = 1'
        );

        return (int) $this->db->Affected_Rows();
    }

    /**
     * @param string $webhookId
     *
     * @return array|null the row
     */
    public function find($webhookId)
    {
        $row = $this->db->getRow(
            'SELECT * FROM `' . self::table() . "` WHERE `webhook_id` = '" . pSQL((string) $webhookId) . "'"
        );

        return $row ?: null;
    }

    /**
     * @return array{pending: int, dead: int, last_error: string}
     */
    public function stats()
    {
        $pending = (int) $this->db->getValue('SELECT COUNT(*) FROM `' . self::table() . '` WHERE `dead` = 0');
        $dead = (int) $this->db->getValue('SELECT COUNT(*) FROM `' . self::table() . '` WHERE `dead` = 1');
        $error = (string) $this->db->getValue(
            'SELECT `last_error` FROM `' . self::table() . "` WHERE `last_error` <> '' ORDER BY `id_keygate_queue` DESC"
        );

        return ['pending' => $pending, 'dead' => $dead, 'last_error' => $error];
    }

    private static function clip($text)
    {
        return function_exists('mb_substr') ? mb_substr($text, 0, 250) : substr($text, 0, 250);
    }
}
