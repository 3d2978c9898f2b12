//! A program a vendor can copy: activate this machine, validate with a feature, keep working offline.
//!
//! ```text
//! KEYGATE_URL=https://licensing.example.com KEYGATE_ACCOUNT=<account id> LICENSE_KEY=<key> \
//!     cargo run -p keygate-client --example activate_and_validate
//! ```
//!
//! Optional: `KEYGATE_PUBLIC_KEYS=<path>` to a pinned copy of `GET /v1/accounts/{id}/public-key`
//! (recommended: ship it inside your app); without it the keys are fetched once and saved next to
//! the cache (trust on first use). `KEYGATE_FEATURE` (default `pro`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use keygate_client::{Client, ClientError, KeyRing, ValidateOptions, machine_fingerprint};

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name}"))
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<bool, String> {
    let url = env("KEYGATE_URL")?;
    let account = env("KEYGATE_ACCOUNT")?;
    let key = env("LICENSE_KEY")?;
    let feature = std::env::var("KEYGATE_FEATURE").unwrap_or_else(|_| "pro".into());
    let data_dir = std::env::var("KEYGATE_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("keygate-example"));
    std::fs::create_dir_all(&data_dir).map_err(|e| e.to_string())?;

    // 1. Trusted keys: pinned file if given, else the saved copy, else fetch once and save it.
    let pinned = std::env::var("KEYGATE_PUBLIC_KEYS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| data_dir.join("public-keys.json"));
    let document = match std::fs::read_to_string(&pinned) {
        Ok(text) => text,
        Err(_) => {
            let text =
                Client::fetch_public_key_document(&url, &account).map_err(|e| e.to_string())?;
            std::fs::write(&pinned, &text).map_err(|e| e.to_string())?;
            println!(
                "fetched and saved the account's public keys to {}",
                pinned.display()
            );
            text
        }
    };
    let keys = KeyRing::from_public_key_document(&document).map_err(|e| e.to_string())?;

    let client = Client::builder(&url)
        .public_keys(keys)
        .cache_path(Some(data_dir.join("license-cache.json")))
        .offline_grace(Duration::from_secs(3 * 24 * 3600))
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;

    // 2. Activate this machine (idempotent: an already-activated machine is fine).
    let fingerprint = machine_fingerprint();
    match client.activate(&key, &fingerprint, Some("example")) {
        Ok(a) if a.created => println!("activated this machine ({})", a.id),
        Ok(a) => println!("this machine was already activated ({})", a.id),
        Err(ClientError::Unreachable(reason)) => {
            println!("cannot activate now ({reason}); trying the cache")
        }
        Err(e) => return Err(format!("activation refused: {} ({})", e, e.code())),
    }

    // 3. Validate with a feature; offline, the last verified answer counts during the grace.
    let options = ValidateOptions::new()
        .fingerprint(&fingerprint)
        .feature(&feature);
    match client.validate(&key, &options) {
        Ok(answer) => {
            let source = if answer.from_cache {
                "cached answer, server unreachable"
            } else {
                "online"
            };
            println!(
                "license {}: {} - {} ({source}, server time {})",
                if answer.valid { "OK" } else { "NOT OK" },
                answer.code,
                answer.message,
                answer.server_time
            );
            Ok(answer.valid)
        }
        Err(e @ ClientError::Offline(_)) => {
            println!("cannot check the license: {e}");
            Ok(false)
        }
        Err(e) => Err(format!("{} ({})", e, e.code())),
    }
}
