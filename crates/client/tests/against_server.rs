//! The client against the real Keygate server over HTTP: everything it accepts is what the server
//! really signed; recorded real answers, replayed or altered, are refused.

mod common;

use common::{Harness, replay_server};
use keygate_client::{Client, ClientError, KeyRing, ValidateOptions, verify_file_with};
use serde_json::{Value, json};

#[test]
fn validate_is_verified_valid_then_suspended() {
    let h = Harness::start();
    let account = h.account("acme");
    let (license_id, key) = h.license(&account, json!({"features": ["pro"]}));
    let client = h.client(&account);
    let current = client.public_keys().iter().next().unwrap().0.to_owned();

    let answer = client
        .validate(&key, &ValidateOptions::new().feature("pro"))
        .unwrap();
    assert!(answer.valid, "{answer:?}");
    assert_eq!(answer.code, "VALID");
    assert!(answer.verified && !answer.from_cache);
    assert_eq!(answer.key_id.as_deref(), Some(current.as_str()));
    assert_eq!(answer.license.as_ref().unwrap()["key"], key.as_str());

    let missing = client
        .validate(&key, &ValidateOptions::new().feature("enterprise"))
        .unwrap();
    assert!(!missing.valid);
    assert_eq!(missing.code, "FEATURE_MISSING");
    assert!(missing.verified);

    h.admin(
        &account.api_key,
        &format!("/v1/licenses/{license_id}/actions/suspend"),
        json!({}),
    );
    let suspended = client.validate(&key, &ValidateOptions::new()).unwrap();
    assert!(!suspended.valid);
    assert_eq!(suspended.code, "SUSPENDED");
    assert!(
        suspended.verified,
        "a SUSPENDED answer is signed by the account key"
    );
}

#[test]
fn unknown_key_is_not_found_and_never_trusted() {
    let h = Harness::start();
    let account = h.account("acme");
    let client = h.client(&account);
    let answer = client
        .validate("NO-SUCH-KEY", &ValidateOptions::new())
        .unwrap();
    assert_eq!(answer.code, "NOT_FOUND");
    assert!(!answer.valid);
    assert!(!answer.verified, "NOT_FOUND is signed by a throwaway key");
    assert!(answer.key_id.is_none());
}

#[test]
fn activate_then_validate_with_fingerprint() {
    let h = Harness::start();
    let account = h.account("acme");
    let (_, key) = h.license(&account, json!({"max_activations": 1}));
    let client = h.client(&account);
    let fp = keygate_client::machine_fingerprint();

    let first = client.activate(&key, &fp, Some("build box")).unwrap();
    assert!(first.created);
    assert_eq!(first.fingerprint, fp);
    assert_eq!(first.name.as_deref(), Some("build box"));
    let again = client.activate(&key, &fp, None).unwrap();
    assert!(!again.created, "already activated → 200, not an error");
    assert_eq!(again.id, first.id);

    let answer = client
        .validate(&key, &ValidateOptions::new().fingerprint(&fp))
        .unwrap();
    assert_eq!(answer.code, "VALID", "{answer:?}");
    assert!(answer.verified);

    let other = client
        .validate(&key, &ValidateOptions::new().fingerprint("other-machine"))
        .unwrap();
    assert!(!other.valid);
    assert_eq!(other.code, "NOT_ACTIVATED");

    let full = client.activate(&key, "other-machine", None).unwrap_err();
    assert_eq!(full.code(), "TOO_MANY_ACTIVATIONS", "{full}");

    client.deactivate(&key, &fp).unwrap();
    let gone = client
        .validate(&key, &ValidateOptions::new().fingerprint(&fp))
        .unwrap();
    assert_eq!(gone.code, "NOT_ACTIVATED");
    assert!(
        client
            .activate(&key, "other-machine", None)
            .unwrap()
            .created
    );
}

#[test]
fn floating_checkout_heartbeat_checkin() {
    let h = Harness::start();
    let account = h.account("acme");
    let (license_id, key) = h.license(
        &account,
        json!({"floating": {"max_seats": 1, "lease_seconds": 120}}),
    );
    let client = h.client(&account);

    let lease = client.checkout(&key, "session-a").unwrap();
    assert_eq!(lease.license_id, license_id);
    assert_eq!(lease.session, "session-a");
    assert_eq!((lease.seats_used, lease.max_seats), (1, 1));
    let beat = client.heartbeat(&key, "session-a").unwrap();
    assert_eq!(
        beat.seats_used, 1,
        "a heartbeat does not take a second seat"
    );
    assert!(beat.lease_expires_at >= lease.lease_expires_at);

    let busy = client.checkout(&key, "session-b").unwrap_err();
    assert_eq!(busy.code(), "NO_SEAT_AVAILABLE", "{busy}");

    client.checkin(&key, "session-a").unwrap();
    let b = client.checkout(&key, "session-b").unwrap();
    assert_eq!(b.session, "session-b");
}

#[test]
fn license_file_verifies_offline_and_not_with_another_account() {
    let h = Harness::start();
    let acme = h.account("acme");
    let other = h.account("other");
    let (_, key) = h.license(&acme, json!({"features": ["pro"]}));
    let client = h.client(&acme);

    let file = client.license_file(&key, Some("fp-1"), Some(3600)).unwrap();
    assert!(file.starts_with(keygate_licfile::ARMOR_BEGIN));
    let verified = client.verify_file(&file, Some("fp-1")).unwrap();
    assert_eq!(verified.fingerprint.as_deref(), Some("fp-1"));
    assert!(verified.valid_until - verified.issued_at <= 3600);
    assert_eq!(verified.payload["license"]["key"], key.as_str());

    let wrong_machine = client.verify_file(&file, Some("fp-2")).unwrap_err();
    assert_eq!(wrong_machine.code(), "FINGERPRINT_MISMATCH");

    let other_keys = h.keys(&other);
    let err =
        verify_file_with(&file, &other_keys, verified.issued_at + 10, Some("fp-1")).unwrap_err();
    assert_eq!(err.code(), "UNKNOWN_KEY_ID", "{err}");

    let later = verify_file_with(
        &file,
        client.public_keys(),
        verified.valid_until,
        Some("fp-1"),
    )
    .unwrap_err();
    assert_eq!(later.code(), "EXPIRED");
}

#[test]
fn key_rotation_keeps_old_files_valid_and_signs_new_ones_with_the_new_key() {
    let h = Harness::start();
    let account = h.account("acme");
    let (_, key) = h.license(&account, json!({}));
    let before = h.keys(&account);
    let old_kid = before.iter().next().unwrap().0.to_owned();
    let client = h.client(&account);
    let old_file = client.license_file(&key, None, None).unwrap();

    let (status, doc, _) = h.request("POST", "/v1/signing-keys/rotate", &account.api_key, None);
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_slice(&doc).unwrap();
    let new_kid = doc["current"]["key_id"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    let rotated = KeyRing::from_public_key_document(&doc.to_string()).unwrap();
    assert!(rotated.get(&old_kid).is_some(), "the old key stays listed");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let old = verify_file_with(&old_file, &rotated, now, None).unwrap();
    assert_eq!(old.key_id, old_kid);

    let rotated_client = Client::builder(&h.base)
        .public_keys(rotated)
        .build()
        .unwrap();
    let new_file = rotated_client.license_file(&key, None, None).unwrap();
    assert_eq!(
        rotated_client.verify_file(&new_file, None).unwrap().key_id,
        new_kid
    );
    let answer = rotated_client
        .validate(&key, &ValidateOptions::new())
        .unwrap();
    assert_eq!(answer.key_id.as_deref(), Some(new_kid.as_str()));

    // A client that only pinned the old key does not trust what the new key signs.
    let err = verify_file_with(&new_file, &before, now, None).unwrap_err();
    assert_eq!(err.code(), "UNKNOWN_KEY_ID");
    let err = client.validate(&key, &ValidateOptions::new()).unwrap_err();
    assert!(
        matches!(err, ClientError::UnknownKeyId(ref k) if *k == new_kid),
        "{err}"
    );
}

/// A validate answer recorded from the real server, for the nonce "recorded-nonce".
fn record_answer(h: &Harness, key: &str) -> (Vec<u8>, String) {
    let (status, body, signature) = h.request(
        "POST",
        "/v1/licenses/validate",
        "",
        Some(json!({"key": key, "nonce": "recorded-nonce"})),
    );
    assert_eq!(status, 200);
    let signature = signature.expect("validate answers are signed");
    let value: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(value["code"], "VALID");
    assert_eq!(value["nonce"], "recorded-nonce");
    (body, signature)
}

#[test]
fn replayed_altered_and_unsigned_answers_are_refused() {
    let h = Harness::start();
    let account = h.account("acme");
    let (_, key) = h.license(&account, json!({}));
    let keys = h.keys(&account);
    let (body, signature) = record_answer(&h, &key);
    keygate_licfile::verify_response(&signature, &body, &keys).expect("the recording is genuine");
    let client_for = |base: String| {
        Client::builder(base)
            .public_keys(keys.clone())
            .build()
            .unwrap()
    };

    // Genuine bytes, but this client sent another nonce: a replay.
    let replay = client_for(replay_server(200, Some(signature.clone()), body.clone()));
    let err = replay.validate(&key, &ValidateOptions::new()).unwrap_err();
    assert!(matches!(err, ClientError::NonceMismatch), "{err}");
    assert_eq!(err.code(), "NONCE_MISMATCH");

    // One byte changed ("VALID" → "VALIE"), genuine signature.
    let mut altered = body.clone();
    let at = altered.windows(7).position(|w| w == b"\"VALID\"").unwrap() + 5;
    altered[at] = b'E';
    let tampered = client_for(replay_server(200, Some(signature.clone()), altered));
    let err = tampered
        .validate(&key, &ValidateOptions::new())
        .unwrap_err();
    assert!(matches!(err, ClientError::BadSignature), "{err}");

    // Every single-byte change of the body is refused.
    for i in 0..body.len() {
        let mut altered = body.clone();
        altered[i] ^= 0x01;
        assert_eq!(
            keygate_licfile::verify_response(&signature, &altered, &keys),
            Err(keygate_licfile::LicfileError::BadSignature),
            "byte {i}"
        );
    }

    // No header at all.
    let unsigned = client_for(replay_server(200, None, body.clone()));
    let err = unsigned
        .validate(&key, &ValidateOptions::new())
        .unwrap_err();
    assert!(matches!(err, ClientError::Unsigned), "{err}");

    // Signed by another account's key.
    let other = h.account("other");
    let foreign = Client::builder(replay_server(200, Some(signature), body))
        .public_keys(h.keys(&other))
        .build()
        .unwrap();
    let err = foreign.validate(&key, &ValidateOptions::new()).unwrap_err();
    assert_eq!(err.code(), "UNKNOWN_KEY_ID", "{err}");
}
