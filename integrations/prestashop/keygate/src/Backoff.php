<?php
/**
 * Keygate for PrestaShop.
 *
 * @license MIT
 */

namespace Keygate\PrestaShop;

/**
 * When a failed delivery is tried again: exponential, 1 min after the first failure,
 * doubling up to 12 h between attempts; after MAX_ATTEMPTS attempts (about 3 days) the
 * event is kept as dead (shown on the configuration page, retried only on request).
 * A `Retry-After` from Keygate (429, 503) is honoured when it asks for longer.
 */
final class Backoff
{
    const FIRST_DELAY = 60;
    const MAX_DELAY = 43200;
    const MAX_ATTEMPTS = 16;
    /** A Retry-After beyond this is read as this (a day). */
    const MAX_RETRY_AFTER = 86400;

    /**
     * Seconds to wait after the `$attempts`-th failed attempt (1-based).
     *
     * @param int $attempts
     * @param int|null $retryAfter seconds Keygate asked to wait, if it did
     *
     * @return int
     */
    public static function delay($attempts, $retryAfter = null)
    {
        $attempts = max(1, (int) $attempts);
        // 2^(n-1) overflows nothing here: the exponent is capped before the shift.
        $delay = min(self::MAX_DELAY, self::FIRST_DELAY << min($attempts - 1, 20));
        if ($retryAfter !== null && $retryAfter > $delay) {
            $delay = min((int) $retryAfter, self::MAX_RETRY_AFTER);
        }

        return $delay;
    }

    /**
     * Whether an event that has failed `$attempts` times is given up.
     *
     * @param int $attempts
     *
     * @return bool
     */
    public static function exhausted($attempts)
    {
        return (int) $attempts >= self::MAX_ATTEMPTS;
    }
}
