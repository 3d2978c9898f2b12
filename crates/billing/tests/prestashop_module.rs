//! The PrestaShop module's own tests (PHPUnit, `integrations/prestashop/keygate/tests/`), run
//! by `cargo test` so the README's one test command covers the PHP side too: event building,
//! signing (the Standard Webhooks official vector), the queue and its backoff, configuration
//! validation, install/uninstall, and that the committed fixtures `prestashop.rs` verifies are
//! still what the module produces.
//!
//! Needs `php` (with pdo_sqlite) and `phpunit` (Debian: `php-cli php-curl php-sqlite3 phpunit`;
//! `.ci/run` installs them). Without them the test says so and passes, except where PHPUnit is
//! required: under CI (`CI` set) or with `KEYGATE_REQUIRE_PHPUNIT=1` (`.ci/run` sets it).

use std::path::Path;
use std::process::Command;

fn required() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
        || std::env::var("KEYGATE_REQUIRE_PHPUNIT").is_ok_and(|v| v == "1")
}

#[test]
fn phpunit_passes() {
    let module =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../integrations/prestashop/keygate");
    let found = Command::new("phpunit").arg("--version").output();
    if !found.as_ref().is_ok_and(|o| o.status.success()) {
        assert!(
            !required(),
            "phpunit is required here (CI / KEYGATE_REQUIRE_PHPUNIT=1) but not found: \
             apt-get install -y php-cli php-curl php-sqlite3 phpunit"
        );
        eprintln!(
            "skipped: phpunit not found (apt-get install -y php-cli php-curl php-sqlite3 phpunit); \
             the PrestaShop module's tests did not run"
        );
        return;
    }
    let output = Command::new("phpunit")
        .args(["-c", "tests/phpunit.xml"])
        .current_dir(&module)
        .output()
        .expect("phpunit runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "phpunit failed:\n{text}");
    // A run that found no test, or skipped some, is not a pass.
    assert!(text.contains("OK ("), "{text}");
    assert!(!text.contains("No tests executed"), "{text}");
}
