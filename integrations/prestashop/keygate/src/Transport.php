<?php
/**
 * Keygate for PrestaShop.
 *
 * @license MIT
 */

namespace Keygate\PrestaShop;

/**
 * One HTTP POST. The module's is CurlTransport; the tests record what would be sent.
 */
interface Transport
{
    /**
     * @param string $url
     * @param array<string, string> $headers
     * @param string $body
     *
     * @return array{status: int, retry_after: int|null, error: string}
     *                                                                  status 0 = no answer (connection, timeout), with `error` saying why
     */
    public function post($url, array $headers, $body);
}
