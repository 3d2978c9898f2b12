<?php

use Keygate\PrestaShop\Signer;
use PHPUnit\Framework\TestCase;

require_once __DIR__ . '/Vectors.php';

final class VectorsTest extends TestCase
{
    /**
     * The committed fixtures Keygate's Rust tests verify are what the module produces now.
     */
    public function testCommittedFixturesAreTheModulesOutput()
    {
        foreach (Vectors::files() as $file => $contents) {
            $path = Vectors::directory() . '/' . $file;
            $this->assertFileExists($path, 'run tests/generate-fixtures.php');
            $this->assertSame($contents, file_get_contents($path), "$file: run tests/generate-fixtures.php");
        }
    }

    public function testTheOfficialVectorIsAmongThem()
    {
        $official = Vectors::signed()[0];
        $this->assertSame('v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=', $official['webhook-signature']);
        $rotation = Vectors::signed()[count(Vectors::signed()) - 1];
        $this->assertCount(2, explode(' ', $rotation['webhook-signature']));
        $this->assertStringEndsWith(
            Signer::sign(Signer::key(Fixtures::OLD_SECRET), 'evt_rotation', Fixtures::NOW, $rotation['body']),
            $rotation['webhook-signature']
        );
    }
}
