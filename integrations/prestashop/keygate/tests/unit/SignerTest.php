<?php

use Keygate\PrestaShop\Signer;
use PHPUnit\Framework\TestCase;

final class SignerTest extends TestCase
{
    /**
     * The Standard Webhooks reference library's vector (libraries/rust/src/lib.rs,
     * `test_sign`), the same one Keygate's scheme is tested with.
     */
    public function testOfficialVector()
    {
        $key = Signer::key('whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD');
        $this->assertSame(24, strlen($key));
        $this->assertSame(
            'v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=',
            Signer::sign($key, 'msg_27UH4WbU6Z5A5EzD8u03UvzRbpk', 1649367553, '{"email":"test@example.com","username":"test_user"}')
        );
    }

    public function testHeadersSignWithEverySecretForARotation()
    {
        $body = '{"a":1}';
        $headers = Signer::headers([Fixtures::SECRET, Fixtures::OLD_SECRET], 'evt_1', 1700000000, $body);
        $this->assertSame('evt_1', $headers['webhook-id']);
        $this->assertSame('1700000000', $headers['webhook-timestamp']);
        $signatures = explode(' ', $headers['webhook-signature']);
        $this->assertCount(2, $signatures);
        $this->assertSame(Signer::sign(Signer::key(Fixtures::SECRET), 'evt_1', 1700000000, $body), $signatures[0]);
        $this->assertSame(Signer::sign(Signer::key(Fixtures::OLD_SECRET), 'evt_1', 1700000000, $body), $signatures[1]);
        // Any change to the signed content changes the signature.
        $this->assertNotSame($signatures[0], Signer::sign(Signer::key(Fixtures::SECRET), 'evt_1', 1700000001, $body));
        $this->assertNotSame($signatures[0], Signer::sign(Signer::key(Fixtures::SECRET), 'evt_1', 1700000000, $body . ' '));
    }

    /**
     * @dataProvider badSecrets
     */
    public function testKeyRefusesWhatIsNotAWhsecKey($secret)
    {
        $this->assertNull(Signer::key($secret));
    }

    public function badSecrets()
    {
        return [
            'empty' => [''],
            'no prefix' => ['C2FVsBQIhrscChlQIMV+b5sSYspob7oD'],
            'not base64' => ['whsec_not*base64*at*all*!!!!!!!!!!!'],
            'too short' => ['whsec_' . base64_encode(str_repeat('k', 23))],
            'too long' => ['whsec_' . base64_encode(str_repeat('k', 65))],
            'loose base64' => ['whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7o'],
        ];
    }

    public function testKeyAcceptsTheSpecsBounds()
    {
        $this->assertSame(str_repeat('k', 24), Signer::key('whsec_' . base64_encode(str_repeat('k', 24))));
        $this->assertSame(str_repeat('k', 64), Signer::key('  whsec_' . base64_encode(str_repeat('k', 64)) . "\n"));
    }

    public function testHeadersRefuseAnIdWithADotAndNoSecret()
    {
        try {
            Signer::headers([Fixtures::SECRET], 'evt.1', 1, '{}');
            $this->fail('a dot in the id must be refused');
        } catch (InvalidArgumentException $e) {
            $this->assertStringContainsString('"."', $e->getMessage());
        }
        $this->expectException(InvalidArgumentException::class);
        Signer::headers([], 'evt_1', 1, '{}');
    }
}
