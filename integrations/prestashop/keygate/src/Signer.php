<?php
/**
 * Keygate for PrestaShop.
 *
 * @license MIT
 */

namespace Keygate\PrestaShop;

/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com/), scheme `v1`:
 * `webhook-signature: v1,<base64 HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")>`,
 * the key being the base64-decoded part of a `whsec_...` secret. Keygate's `prestashop`
 * provider verifies exactly this (crates/billing/src/scheme/standard_webhooks.rs).
 */
final class Signer
{
    const SECRET_PREFIX = 'whsec_';

    /** The spec's bounds for a generated key, in bytes. */
    const MIN_KEY_BYTES = 24;
    const MAX_KEY_BYTES = 64;

    /**
     * The HMAC key of a secret, or null when the secret is not `whsec_` + strict base64 of
     * MIN_KEY_BYTES..MAX_KEY_BYTES bytes (Keygate refuses shorter keys at configuration time
     * too, so a typo is caught on the configuration page, not at the first delivery).
     *
     * @param string $secret
     *
     * @return string|null
     */
    public static function key($secret)
    {
        $secret = trim((string) $secret);
        if (strpos($secret, self::SECRET_PREFIX) !== 0) {
            return null;
        }
        $encoded = substr($secret, strlen(self::SECRET_PREFIX));
        $key = base64_decode($encoded, true);
        if ($key === false || base64_encode($key) !== $encoded) {
            return null;
        }
        $length = strlen($key);
        if ($length < self::MIN_KEY_BYTES || $length > self::MAX_KEY_BYTES) {
            return null;
        }

        return $key;
    }

    /**
     * `v1,<base64>` for one key.
     *
     * @param string $key raw key bytes (see key())
     * @param string $id webhook-id
     * @param int $timestamp webhook-timestamp, Unix seconds
     * @param string $body the exact bytes sent
     *
     * @return string
     */
    public static function sign($key, $id, $timestamp, $body)
    {
        $signed = $id . '.' . (int) $timestamp . '.' . $body;

        return 'v1,' . base64_encode(hash_hmac('sha256', $signed, $key, true));
    }

    /**
     * The three headers of one delivery attempt. The id must stay the same on every retry
     * (Keygate de-duplicates on it); the timestamp is the attempt's. Several secrets (during
     * a rotation) give a space-separated list, as the spec says.
     *
     * @param string[] $secrets
     * @param string $id
     * @param int $timestamp
     * @param string $body
     *
     * @return array<string, string>
     */
    public static function headers(array $secrets, $id, $timestamp, $body)
    {
        if (strpos($id, '.') !== false || $id === '') {
            throw new \InvalidArgumentException('a webhook-id is non-empty and has no "."');
        }
        $signatures = [];
        foreach ($secrets as $secret) {
            $key = self::key($secret);
            if ($key === null) {
                throw new \InvalidArgumentException('not a whsec_ secret');
            }
            $signatures[] = self::sign($key, $id, $timestamp, $body);
        }
        if (!$signatures) {
            throw new \InvalidArgumentException('no secret to sign with');
        }

        return [
            'webhook-id' => $id,
            'webhook-timestamp' => (string) (int) $timestamp,
            'webhook-signature' => implode(' ', $signatures),
        ];
    }
}
