<?php
/**
 * Keygate for PrestaShop.
 *
 * @license MIT
 */

namespace Keygate\PrestaShop;

/**
 * Posts with ext-curl (PrestaShop requires it). Redirects are not followed (a redirect is a
 * failed delivery, as Standard Webhooks recommends); short timeouts, because the hooks post
 * inline during the shop's own request and the queue retries anyway.
 */
final class CurlTransport implements Transport
{
    const CONNECT_TIMEOUT = 5;
    const TIMEOUT = 10;

    /** @var string */
    private $userAgent;

    /**
     * @param string $userAgent
     */
    public function __construct($userAgent)
    {
        $this->userAgent = (string) $userAgent;
    }

    public function post($url, array $headers, $body)
    {
        $lines = ['Content-Type: application/json'];
        foreach ($headers as $name => $value) {
            $lines[] = $name . ': ' . $value;
        }
        $retryAfter = null;
        $curl = curl_init($url);
        curl_setopt_array($curl, [
            CURLOPT_POST => true,
            CURLOPT_POSTFIELDS => $body,
            CURLOPT_HTTPHEADER => $lines,
            CURLOPT_USERAGENT => $this->userAgent,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_FOLLOWLOCATION => false,
            CURLOPT_CONNECTTIMEOUT => self::CONNECT_TIMEOUT,
            CURLOPT_TIMEOUT => self::TIMEOUT,
            CURLOPT_PROTOCOLS => CURLPROTO_HTTPS | CURLPROTO_HTTP,
            CURLOPT_HEADERFUNCTION => function ($curl, $line) use (&$retryAfter) {
                if (preg_match('/^retry-after:\s*(\d+)\s*$/i', $line, $m)) {
                    $retryAfter = (int) $m[1];
                }

                return strlen($line);
            },
        ]);
        $answer = curl_exec($curl);
        $status = (int) curl_getinfo($curl, CURLINFO_RESPONSE_CODE);
        $error = $answer === false ? curl_error($curl) : '';
        curl_close($curl);
        if ($answer === false) {
            return ['status' => 0, 'retry_after' => null, 'error' => $error];
        }
        if ($status < 200 || $status >= 300) {
            // Keygate's error answers are JSON with a stable `code`: worth keeping for the page.
            $error = 'HTTP ' . $status . ': ' . substr((string) $answer, 0, 200);
        }

        return ['status' => $status, 'retry_after' => $retryAfter, 'error' => $error];
    }
}
