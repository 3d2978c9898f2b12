<?php
/**
 * Writes the module's output for the fixture shop to crates/billing/tests/fixtures/prestashop/
 * (events, and signed deliveries in module_signatures.json), for Keygate's Rust tests:
 *
 *   php integrations/prestashop/keygate/tests/generate-fixtures.php
 *
 * Run it after changing the event shape; VectorsTest fails until the files match.
 */
require __DIR__ . '/bootstrap.php';
require __DIR__ . '/unit/Vectors.php';

$directory = Vectors::directory();
if (!is_dir($directory) && !mkdir($directory, 0777, true)) {
    fwrite(STDERR, "cannot create $directory\n");
    exit(1);
}
foreach (Vectors::files() as $file => $contents) {
    file_put_contents($directory . '/' . $file, $contents);
    echo 'wrote ', realpath($directory . '/' . $file), "\n";
}
