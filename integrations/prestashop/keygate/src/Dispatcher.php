<?php
/**
 * Keygate for PrestaShop.
 *
 * @license MIT
 */

namespace Keygate\PrestaShop;

/**
 * Posts due queue rows to Keygate, each signed for this attempt: the webhook id and body
 * are the stored ones, the timestamp is now (Keygate refuses timestamps more than 5 minutes
 * off, so a retry cannot reuse the first attempt's signature).
 */
final class Dispatcher
{
    /** @var Queue */
    private $queue;
    /** @var Transport */
    private $transport;
    /** @var Settings */
    private $settings;
    /** @var callable(): int */
    private $clock;

    public function __construct(Queue $queue, Transport $transport, Settings $settings, ?callable $clock = null)
    {
        $this->queue = $queue;
        $this->transport = $transport;
        $this->settings = $settings;
        $this->clock = $clock ?: 'time';
    }

    /**
     * Posts up to `$limit` due rows, oldest first, one claim at a time; stops taking more once
     * `$budgetSeconds` have passed (a hook runs inside the shop's own request).
     *
     * @param int $limit
     * @param int|null $budgetSeconds
     *
     * @return array{delivered: int, failed: int, dead: int}
     */
    public function drain($limit, $budgetSeconds = null)
    {
        $result = ['delivered' => 0, 'failed' => 0, 'dead' => 0];
        if (!$this->settings->isComplete()) {
            return $result;
        }
        $start = $this->now();
        for ($n = 0; $n < $limit; ++$n) {
            if ($budgetSeconds !== null && $this->now() - $start >= $budgetSeconds) {
                break;
            }
            $rows = $this->queue->claimDue($this->now(), 1);
            if (!$rows) {
                break;
            }
            $row = $rows[0];
            $answer = $this->attempt($row);
            if ($answer['status'] >= 200 && $answer['status'] < 300) {
                $this->queue->delivered($row['id_keygate_queue']);
                ++$result['delivered'];
                continue;
            }
            $dead = $this->queue->failed($row, $this->now(), $answer['status'], $answer['error'], $answer['retry_after']);
            ++$result[$dead ? 'dead' : 'failed'];
        }

        return $result;
    }

    private function attempt(array $row)
    {
        try {
            $headers = Signer::headers(
                $this->settings->signingSecrets(),
                (string) $row['webhook_id'],
                $this->now(),
                (string) $row['body']
            );

            return $this->transport->post($this->settings->url, $headers, (string) $row['body']);
        } catch (\Throwable $e) {
            return ['status' => 0, 'retry_after' => null, 'error' => $e->getMessage()];
        }
    }

    private function now()
    {
        return (int) call_user_func($this->clock);
    }
}
