<?php
/**
 * Keygate for PrestaShop.
 *
 * @license MIT
 */

namespace Keygate\PrestaShop;

/**
 * The module's configuration (PrestaShop `Configuration` keys) and its validation. The secret
 * is write-only: the configuration page never shows it again, and an empty secret field on
 * save keeps the stored one.
 */
final class Settings
{
    const URL = 'KEYGATE_WEBHOOK_URL';
    const SECRET = 'KEYGATE_WEBHOOK_SECRET';
    /** The secret being rotated out: deliveries are signed with both until it is cleared. */
    const PREVIOUS_SECRET = 'KEYGATE_WEBHOOK_PREVIOUS_SECRET';
    /** Authenticates the cron front controller's URL. */
    const CRON_TOKEN = 'KEYGATE_CRON_TOKEN';

    /** @var string */
    public $url;
    /** @var string */
    public $secret;
    /** @var string */
    public $previousSecret;

    /**
     * @param string $url
     * @param string $secret
     * @param string $previousSecret
     */
    public function __construct($url, $secret, $previousSecret = '')
    {
        $this->url = (string) $url;
        $this->secret = (string) $secret;
        $this->previousSecret = (string) $previousSecret;
    }

    /**
     * @return self
     */
    public static function load()
    {
        return new self(
            (string) \Configuration::get(self::URL),
            (string) \Configuration::get(self::SECRET),
            (string) \Configuration::get(self::PREVIOUS_SECRET)
        );
    }

    /**
     * Whether deliveries can be signed and sent at all.
     *
     * @return bool
     */
    public function isComplete()
    {
        return self::urlError($this->url) === null && Signer::key($this->secret) !== null;
    }

    /**
     * The secrets to sign with, the current one first.
     *
     * @return string[]
     */
    public function signingSecrets()
    {
        $secrets = [$this->secret];
        if (Signer::key($this->previousSecret) !== null) {
            $secrets[] = $this->previousSecret;
        }

        return $secrets;
    }

    /**
     * Why `$url` is not a Keygate webhook URL, or null when it is one: absolute http(s), no
     * credentials in it, and plain http only towards the shop's own machine (the secret
     * signs deliveries but does not hide them).
     *
     * @param string $url
     *
     * @return string|null
     */
    public static function urlError($url)
    {
        $url = trim((string) $url);
        if ($url === '') {
            return 'The Keygate webhook URL is required.';
        }
        if (strlen($url) > 2000) {
            return 'The Keygate webhook URL is too long.';
        }
        $parts = parse_url($url);
        if ($parts === false || empty($parts['scheme']) || empty($parts['host'])) {
            return 'The Keygate webhook URL must be an absolute URL, e.g. https://keygate.example.com/v1/webhooks/prestashop/int_...';
        }
        $scheme = strtolower($parts['scheme']);
        if ($scheme !== 'https' && $scheme !== 'http') {
            return 'The Keygate webhook URL must start with https://.';
        }
        if (isset($parts['user']) || isset($parts['pass'])) {
            return 'The Keygate webhook URL must not carry a user name or password.';
        }
        $host = strtolower(trim($parts['host'], '[]'));
        $local = $host === 'localhost' || $host === '::1' || strpos($host, '127.') === 0;
        if ($scheme === 'http' && !$local) {
            return 'The Keygate webhook URL must use https:// (http:// is accepted only for localhost).';
        }

        return null;
    }

    /**
     * Why `$secret` is not a signing secret, or null.
     *
     * @param string $secret
     *
     * @return string|null
     */
    public static function secretError($secret)
    {
        if (trim((string) $secret) === '') {
            return 'The signing secret is required.';
        }
        if (Signer::key($secret) === null) {
            return 'The signing secret must be the whsec_... value Keygate showed when the integration was created (whsec_ and base64 of 24 to 64 bytes).';
        }

        return null;
    }

    /**
     * Validates a submitted configuration form. `$submitted` holds the raw fields; an empty
     * secret keeps `$current`'s. Returns [errors, settings to store].
     *
     * @param array<string, mixed> $submitted
     * @param self $current
     *
     * @return array{0: string[], 1: self}
     */
    public static function fromForm(array $submitted, self $current)
    {
        $url = trim(isset($submitted[self::URL]) ? (string) $submitted[self::URL] : '');
        $secret = trim(isset($submitted[self::SECRET]) ? (string) $submitted[self::SECRET] : '');
        $rotate = !empty($submitted['KEYGATE_KEEP_PREVIOUS']);
        $errors = [];
        $urlError = self::urlError($url);
        if ($urlError !== null) {
            $errors[] = $urlError;
        }
        $previous = $current->previousSecret;
        if ($secret === '') {
            $secret = $current->secret;
        } elseif ($secret !== $current->secret) {
            // A new secret: during a rotation the old one keeps signing too, until Keygate has
            // the new one (Keygate accepts any matching v1 signature).
            $previous = $rotate ? $current->secret : '';
        }
        $secretError = self::secretError($secret);
        if ($secretError !== null) {
            $errors[] = $secretError;
        }
        if (!empty($submitted['KEYGATE_CLEAR_PREVIOUS'])) {
            $previous = '';
        }

        return [$errors, new self($url, $secret, $previous)];
    }

    public function save()
    {
        \Configuration::updateValue(self::URL, $this->url);
        \Configuration::updateValue(self::SECRET, $this->secret);
        \Configuration::updateValue(self::PREVIOUS_SECRET, $this->previousSecret);
    }
}
