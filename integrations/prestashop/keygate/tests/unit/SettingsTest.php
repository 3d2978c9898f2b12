<?php

use Keygate\PrestaShop\Settings;
use PHPUnit\Framework\TestCase;

final class SettingsTest extends TestCase
{
    protected function setUp(): void
    {
        Fixtures::reset();
    }

    /**
     * @dataProvider urls
     */
    public function testUrlValidation($url, $valid)
    {
        $error = Settings::urlError($url);
        $valid ? $this->assertNull($error, (string) $error) : $this->assertNotNull($error, $url);
    }

    public function urls()
    {
        return [
            'https' => ['https://keygate.example.com/v1/webhooks/prestashop/int_1', true],
            'http localhost' => ['http://localhost:8080/v1/webhooks/prestashop/int_1', true],
            'http 127.0.0.1' => ['http://127.0.0.1:8080/v1/webhooks/prestashop/int_1', true],
            'http ::1' => ['http://[::1]:8080/v1/webhooks/prestashop/int_1', true],
            'http elsewhere' => ['http://keygate.example.com/v1/webhooks/prestashop/int_1', false],
            'relative' => ['/v1/webhooks/prestashop/int_1', false],
            'empty' => ['  ', false],
            'ftp' => ['ftp://keygate.example.com/x', false],
            'credentials' => ['https://user:pw@keygate.example.com/x', false],
            'javascript' => ['javascript:alert(1)', false],
            'too long' => ['https://keygate.example.com/' . str_repeat('a', 2000), false],
        ];
    }

    public function testSecretValidation()
    {
        $this->assertNull(Settings::secretError(Fixtures::SECRET));
        $this->assertStringContainsString('required', Settings::secretError(''));
        $this->assertStringContainsString('whsec_', Settings::secretError('my-password'));
    }

    public function testEmptySecretFieldKeepsTheStoredOne()
    {
        $current = new Settings(Fixtures::URL, Fixtures::SECRET);
        list($errors, $next) = Settings::fromForm([Settings::URL => ' https://k.example.com/v1/webhooks/prestashop/int_2 ', Settings::SECRET => ''], $current);
        $this->assertSame([], $errors);
        $this->assertSame('https://k.example.com/v1/webhooks/prestashop/int_2', $next->url);
        $this->assertSame(Fixtures::SECRET, $next->secret);
    }

    public function testFirstSaveNeedsASecretAndAUrl()
    {
        list($errors, $next) = Settings::fromForm([Settings::URL => 'http://keygate.example.com/', Settings::SECRET => ''], new Settings('', ''));
        $this->assertCount(2, $errors);
        $this->assertFalse($next->isComplete());
    }

    public function testRotationKeepsTheOldSecretUntilCleared()
    {
        $current = new Settings(Fixtures::URL, Fixtures::OLD_SECRET);
        list($errors, $next) = Settings::fromForm([Settings::URL => Fixtures::URL, Settings::SECRET => Fixtures::SECRET, 'KEYGATE_KEEP_PREVIOUS' => '1'], $current);
        $this->assertSame([], $errors);
        $this->assertSame([Fixtures::SECRET, Fixtures::OLD_SECRET], $next->signingSecrets());

        list(, $same) = Settings::fromForm([Settings::URL => Fixtures::URL, Settings::SECRET => ''], $next);
        $this->assertSame([Fixtures::SECRET, Fixtures::OLD_SECRET], $same->signingSecrets(), 'saving again keeps the rotation');

        list(, $cleared) = Settings::fromForm([Settings::URL => Fixtures::URL, 'KEYGATE_CLEAR_PREVIOUS' => '1'], $same);
        $this->assertSame([Fixtures::SECRET], $cleared->signingSecrets());

        list(, $replaced) = Settings::fromForm([Settings::URL => Fixtures::URL, Settings::SECRET => Fixtures::SECRET], $current);
        $this->assertSame([Fixtures::SECRET], $replaced->signingSecrets(), 'a new secret without the switch replaces the old one');
    }

    public function testSaveAndLoadRoundTrip()
    {
        (new Settings(Fixtures::URL, Fixtures::SECRET, Fixtures::OLD_SECRET))->save();
        $loaded = Settings::load();
        $this->assertSame(Fixtures::URL, $loaded->url);
        $this->assertSame([Fixtures::SECRET, Fixtures::OLD_SECRET], $loaded->signingSecrets());
        $this->assertTrue($loaded->isComplete());
    }
}
