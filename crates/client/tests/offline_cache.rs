//! The offline cache against the real server: after a verified answer the server is stopped; the
//! cached answer is honoured during the grace, then refused; a cache file survives a restart of the
//! app, and an edited one is refused.

mod common;

use std::time::Duration;

use common::{Harness, temp_dir};
use keygate_client::{Client, ClientError, ValidateOptions};
use serde_json::{Value, json};

#[test]
fn cached_answer_is_honoured_during_the_grace_then_offline() {
    let mut h = Harness::start();
    let account = h.account("acme");
    let (_, key) = h.license(&account, json!({"features": ["pro"]}));
    let client = Client::builder(&h.base)
        .public_keys(h.keys(&account))
        .offline_grace(Duration::from_secs(1))
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let pro = ValidateOptions::new().feature("pro");
    let online = client.validate(&key, &pro).unwrap();
    assert!(online.valid && !online.from_cache);

    h.stop();
    let cached = client.validate(&key, &pro).unwrap();
    assert!(cached.from_cache, "{cached:?}");
    assert!(cached.valid && cached.verified);
    assert_eq!(cached.code, "VALID");
    assert_eq!(cached.server_time, online.server_time);

    // Another question was never answered online: nothing to fall back on.
    let err = client.validate(&key, &ValidateOptions::new()).unwrap_err();
    assert!(matches!(err, ClientError::Offline(_)), "{err}");
    // Other calls report the server unreachable.
    assert_eq!(
        client.checkout(&key, "s").unwrap_err().code(),
        "UNREACHABLE"
    );

    std::thread::sleep(Duration::from_millis(1300));
    let err = client.validate(&key, &pro).unwrap_err();
    assert!(matches!(err, ClientError::Offline(_)), "{err}");
    assert_eq!(err.code(), "OFFLINE");
}

#[test]
fn negative_answers_are_cached_too() {
    let mut h = Harness::start();
    let account = h.account("acme");
    let (license_id, key) = h.license(&account, json!({}));
    let client = h.client(&account);
    assert!(
        client
            .validate(&key, &ValidateOptions::new())
            .unwrap()
            .valid
    );
    h.admin(
        &account.api_key,
        &format!("/v1/licenses/{license_id}/actions/suspend"),
        json!({}),
    );
    assert_eq!(
        client.validate(&key, &ValidateOptions::new()).unwrap().code,
        "SUSPENDED"
    );
    h.stop();
    // Going offline after a SUSPENDED answer does not bring the earlier VALID back.
    let cached = client.validate(&key, &ValidateOptions::new()).unwrap();
    assert!(cached.from_cache && !cached.valid);
    assert_eq!(cached.code, "SUSPENDED");
}

fn cache_client(base: &str, keys: keygate_client::KeyRing, path: &std::path::Path) -> Client {
    Client::builder(base)
        .public_keys(keys)
        .cache_path(Some(path.to_owned()))
        .offline_grace(Duration::from_secs(3600))
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap()
}

#[test]
fn cache_file_survives_a_restart_and_an_edited_one_is_refused() {
    let mut h = Harness::start();
    let account = h.account("acme");
    let (_, key) = h.license(&account, json!({}));
    let keys = h.keys(&account);
    let dir = temp_dir("cache");
    let path = dir.join("cache.json");
    let base = h.base.clone();

    let first = cache_client(&base, keys.clone(), &path);
    assert!(first.validate(&key, &ValidateOptions::new()).unwrap().valid);
    drop(first);
    assert!(path.exists());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains(&key),
        "the license key is not stored in clear"
    );
    h.stop();

    // A new process (new client) offline: the persisted verified answer is used.
    let restarted = cache_client(&base, keys.clone(), &path);
    let cached = restarted.validate(&key, &ValidateOptions::new()).unwrap();
    assert!(
        cached.from_cache && cached.valid && cached.verified,
        "{cached:?}"
    );

    // Used for another license key: refused.
    let err = restarted
        .validate("OTHER-KEY", &ValidateOptions::new())
        .unwrap_err();
    assert!(matches!(err, ClientError::Offline(_)), "{err}");

    // One byte of the cached body changed: refused.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    let entry = doc["entries"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .next()
        .unwrap();
    let mut body = b64.decode(entry["body"].as_str().unwrap()).unwrap();
    let original = String::from_utf8(body.clone()).unwrap();
    let at = original.find("\"valid\":true").expect("a VALID answer") + 9;
    body[at] = b'T';
    entry["body"] = json!(b64.encode(&body));
    let tampered_path = dir.join("tampered.json");
    std::fs::write(&tampered_path, doc.to_string()).unwrap();
    let tampered = cache_client(&base, keys.clone(), &tampered_path);
    let err = tampered
        .validate(&key, &ValidateOptions::new())
        .unwrap_err();
    assert!(matches!(err, ClientError::CacheTampered(_)), "{err}");
    assert_eq!(err.code(), "CACHE_TAMPERED");

    // Moving the unsigned verification time forward does not extend the grace past the signed ts.
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    let entry = doc["entries"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .next()
        .unwrap();
    entry["verified_at_ms"] =
        json!(entry["verified_at_ms"].as_i64().unwrap() + 10 * 24 * 3600 * 1000);
    let forward_path = dir.join("forward.json");
    std::fs::write(&forward_path, doc.to_string()).unwrap();
    let short = Client::builder(&base)
        .public_keys(keys)
        .cache_path(Some(forward_path))
        .offline_grace(Duration::from_secs(1))
        .max_clock_skew(Duration::from_secs(1))
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2200));
    let err = short.validate(&key, &ValidateOptions::new()).unwrap_err();
    assert!(matches!(err, ClientError::Offline(_)), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
