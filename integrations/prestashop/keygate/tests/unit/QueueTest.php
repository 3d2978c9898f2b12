<?php

use Keygate\PrestaShop\Backoff;
use Keygate\PrestaShop\Dispatcher;
use Keygate\PrestaShop\EventBuilder;
use Keygate\PrestaShop\Queue;
use Keygate\PrestaShop\Settings;
use Keygate\PrestaShop\Signer;
use PHPUnit\Framework\TestCase;

final class QueueTest extends TestCase
{
    /** @var int */
    private $now;
    /** @var RecordingTransport */
    private $transport;
    /** @var Queue */
    private $queue;

    protected function setUp(): void
    {
        Fixtures::reset();
        foreach (require __DIR__ . '/../../sql/install.php' as $sql) {
            Db::getInstance()->execute($sql);
        }
        $this->now = Fixtures::NOW;
        $this->transport = new RecordingTransport();
        $this->queue = new Queue(Db::getInstance());
    }

    private function dispatcher(?Settings $settings = null)
    {
        $settings = $settings ?: new Settings(Fixtures::URL, Fixtures::SECRET);

        return new Dispatcher($this->queue, $this->transport, $settings, function () {
            return $this->now;
        });
    }

    private function event()
    {
        return Fixtures::builder()->statusChanged(new Order(42), Fixtures::state(2));
    }

    private static function failure($status, $retryAfter = null)
    {
        return ['status' => $status, 'retry_after' => $retryAfter, 'error' => 'HTTP ' . $status . ': {"code":"X"}'];
    }

    public function testDeliveredRowLeavesAndIsSignedOverTheStoredBytes()
    {
        $event = $this->event();
        $this->assertTrue($this->queue->push($event, $this->now));
        $this->assertFalse($this->queue->push($event, $this->now), 'the same webhook id is queued once');
        $this->assertSame(['delivered' => 1, 'failed' => 0, 'dead' => 0], $this->dispatcher()->drain(10));

        $this->assertCount(1, $this->transport->posts);
        $post = $this->transport->posts[0];
        $this->assertSame(Fixtures::URL, $post['url']);
        // The product name has HTML in it: the body is stored with pSQL($body, true), not stripped.
        $this->assertSame(EventBuilder::encode($event), $post['body']);
        $this->assertStringContainsString('Mug <b>red</b> & \"classic\"', $post['body']);
        $this->assertSame('evt_test_1', $post['headers']['webhook-id']);
        $this->assertSame((string) $this->now, $post['headers']['webhook-timestamp']);
        $this->assertSame(
            Signer::sign(Signer::key(Fixtures::SECRET), 'evt_test_1', $this->now, $post['body']),
            $post['headers']['webhook-signature']
        );
        $this->assertNull($this->queue->find('evt_test_1'));
        $this->assertSame(0, $this->queue->stats()['pending']);
    }

    public function testFailuresBackOffExponentiallyThenTheRowIsDead()
    {
        $this->queue->push($this->event(), $this->now);
        $start = $this->now;
        $expected = [60, 120, 240, 480, 960, 1920, 3840, 7680, 15360, 30720, 43200, 43200, 43200, 43200, 43200];
        foreach ($expected as $i => $delay) {
            $this->transport->answers[] = self::failure(500);
            $this->assertSame(['delivered' => 0, 'failed' => 1, 'dead' => 0], $this->dispatcher()->drain(10), "attempt $i");
            $row = $this->queue->find('evt_test_1');
            $this->assertSame($i + 1, (int) $row['attempts']);
            $this->assertSame($this->now + $delay, (int) $row['next_attempt_at']);
            $this->assertSame(500, (int) $row['last_status']);
            // Not due a second before the delay is over.
            $this->now += $delay - 1;
            $this->assertSame(['delivered' => 0, 'failed' => 0, 'dead' => 0], $this->dispatcher()->drain(10));
            ++$this->now;
        }
        $this->transport->answers[] = self::failure(0);
        $this->assertSame(['delivered' => 0, 'failed' => 0, 'dead' => 1], $this->dispatcher()->drain(10));
        $this->assertSame(Backoff::MAX_ATTEMPTS, (int) $this->queue->find('evt_test_1')['attempts']);
        $this->assertGreaterThan(3 * 86400, $this->now - $start);

        // Dead rows are not posted again, until revived.
        $this->now += 10 * 86400;
        $this->assertSame(['delivered' => 0, 'failed' => 0, 'dead' => 0], $this->dispatcher()->drain(10));
        $this->assertSame(['pending' => 0, 'dead' => 1, 'last_error' => 'HTTP 0: {"code":"X"}'], $this->queue->stats());
        $this->assertSame(1, $this->queue->revive($this->now));
        $this->assertSame(['delivered' => 1, 'failed' => 0, 'dead' => 0], $this->dispatcher()->drain(10));

        // Every attempt carried the same id and body, each signed at its own time.
        $posts = $this->transport->posts;
        $this->assertCount(Backoff::MAX_ATTEMPTS + 1, $posts);
        $this->assertCount(1, array_unique(array_map(function ($p) { return $p['headers']['webhook-id']; }, $posts)));
        $this->assertCount(1, array_unique(array_column($posts, 'body')));
        $this->assertCount(count($posts), array_unique(array_map(function ($p) { return $p['headers']['webhook-timestamp']; }, $posts)));
    }

    public function testRetryAfterIsHonouredWhenLonger()
    {
        $this->queue->push($this->event(), $this->now);
        $this->transport->answers[] = self::failure(429, 900);
        $this->dispatcher()->drain(10);
        $this->assertSame($this->now + 900, (int) $this->queue->find('evt_test_1')['next_attempt_at']);
        $this->assertSame(60, Backoff::delay(1, 5), 'a shorter Retry-After does not hurry the schedule');
        $this->assertSame(Backoff::MAX_RETRY_AFTER, Backoff::delay(1, 10 * 86400));
    }

    public function testATransportExceptionIsAFailedAttempt()
    {
        $this->queue->push($this->event(), $this->now);
        $this->transport->answers[] = new RuntimeException('connection refused');
        $this->assertSame(['delivered' => 0, 'failed' => 1, 'dead' => 0], $this->dispatcher()->drain(10));
        $row = $this->queue->find('evt_test_1');
        $this->assertSame(0, (int) $row['last_status']);
        $this->assertSame('connection refused', $row['last_error']);
    }

    public function testAClaimedRowIsNotPostedByAConcurrentDrain()
    {
        $this->queue->push($this->event(), $this->now);
        $first = $this->queue->claimDue($this->now, 10);
        $this->assertCount(1, $first);
        $this->assertSame([], $this->queue->claimDue($this->now, 10), 'leased');
        // A drain that died mid-post: the lease runs out and the row is due again.
        $this->assertCount(1, $this->queue->claimDue($this->now + Queue::LEASE_SECONDS, 10));
    }

    public function testDrainTakesOldestFirstUpToTheLimit()
    {
        $builder = Fixtures::builder();
        foreach ([2, 4, 7] as $state) {
            $this->queue->push($builder->statusChanged(new Order(42), Fixtures::state($state)), $this->now);
        }
        $this->assertSame(2, $this->dispatcher()->drain(2)['delivered']);
        $this->assertSame(['evt_test_1', 'evt_test_2'], array_map(function ($p) { return $p['headers']['webhook-id']; }, $this->transport->posts));
        $this->assertSame(1, $this->dispatcher()->drain(2)['delivered']);
    }

    public function testATimeBudgetStopsTakingMoreRows()
    {
        $builder = Fixtures::builder();
        foreach ([2, 4, 7] as $state) {
            $this->queue->push($builder->statusChanged(new Order(42), Fixtures::state($state)), $this->now);
        }
        // Each post takes 3 s (the clock moves while the transport "waits").
        $transport = new class($this) implements Keygate\PrestaShop\Transport {
            private $test;
            public $posts = 0;

            public function __construct($test)
            {
                $this->test = $test;
            }

            public function post($url, array $headers, $body)
            {
                ++$this->posts;
                $this->test->advance(3);

                return ['status' => 204, 'retry_after' => null, 'error' => ''];
            }
        };
        $dispatcher = new Dispatcher($this->queue, $transport, new Settings(Fixtures::URL, Fixtures::SECRET), function () {
            return $this->now;
        });
        $this->assertSame(['delivered' => 2, 'failed' => 0, 'dead' => 0], $dispatcher->drain(10, 5));
        $this->assertSame(1, $this->queue->stats()['pending'], 'the third waits for the next drain');
        $this->assertSame(1, $dispatcher->drain(10)['delivered']);
    }

    public function advance($seconds)
    {
        $this->now += $seconds;
    }

    public function testNothingIsPostedWithoutACompleteConfiguration()
    {
        $this->queue->push($this->event(), $this->now);
        $this->assertSame(['delivered' => 0, 'failed' => 0, 'dead' => 0], $this->dispatcher(new Settings(Fixtures::URL, 'whsec_short'))->drain(10));
        $this->assertSame([], $this->transport->posts);
        $this->assertSame(1, $this->queue->stats()['pending']);
    }

    public function testRotationSendsBothSignatures()
    {
        $this->queue->push($this->event(), $this->now);
        $this->dispatcher(new Settings(Fixtures::URL, Fixtures::SECRET, Fixtures::OLD_SECRET))->drain(10);
        $header = $this->transport->posts[0]['headers']['webhook-signature'];
        $body = $this->transport->posts[0]['body'];
        $this->assertSame(
            Signer::sign(Signer::key(Fixtures::SECRET), 'evt_test_1', $this->now, $body) . ' '
            . Signer::sign(Signer::key(Fixtures::OLD_SECRET), 'evt_test_1', $this->now, $body),
            $header
        );
    }
}
