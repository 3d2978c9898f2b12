use crate::harness::{Reply, TestApp};
use crate::on_both_engines;
use keygate_licfile::{KeyRing, LicfileError, verify_file, verify_response};
use keygate_store::sqlx;
use serde_json::{Value, json};

on_both_engines!(
    answers_are_signed_with_the_account_key,
    rotation_keeps_old_files_valid,
    license_files
);

async fn keys(app: &TestApp, account_id: &str) -> (Value, KeyRing) {
    let doc = app
        .send(
            "GET",
            &format!("/v1/accounts/{account_id}/public-key"),
            None,
            None,
            &[],
        )
        .await;
    assert_eq!(doc.status, 200, "{}", doc.body);
    let ring = KeyRing::from_public_key_document(&doc.body.to_string()).unwrap();
    (doc.body, ring)
}

fn signature(r: &Reply) -> &str {
    r.headers
        .get("keygate-signature")
        .expect("signed answer")
        .to_str()
        .unwrap()
}

async fn account_id(app: &TestApp, api: &str) -> String {
    app.get("/v1/account", api).await.body["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn answers_are_signed_with_the_account_key(app: &TestApp) {
    let api = app.account("Signer").await;
    let account = account_id(app, &api).await;
    let (doc, ring) = keys(app, &account).await;
    assert_eq!(doc["current"]["alg"], "ed25519");
    assert_eq!(doc["keys"].as_array().unwrap().len(), 1);
    let license = app
        .license(
            &api,
            json!({"max_activations": 1, "floating": {"max_seats": 1, "lease_seconds": 60}}),
        )
        .await;
    let key = &license["key"];

    let v = app.validate(json!({"key": key, "nonce": "n-123"})).await;
    assert_eq!(v.body["nonce"], "n-123");
    assert!(v.body["ts"].is_string());
    let header = signature(&v);
    assert!(header.contains(&format!(
        "keyid=\"{}\"",
        doc["current"]["key_id"].as_str().unwrap()
    )));
    verify_response(header, &v.raw, &ring).unwrap();
    // Any one-byte change to the body is refused.
    for i in [0, v.raw.len() / 2, v.raw.len() - 1] {
        let mut tampered = v.raw.to_vec();
        tampered[i] ^= 0x01;
        assert!(verify_response(header, &tampered, &ring).is_err());
    }
    // Another account's key cannot vouch for it.
    let other_api = app.account("Other").await;
    let (_, other_ring) = keys(app, &account_id(app, &other_api).await).await;
    assert!(matches!(
        verify_response(header, &v.raw, &other_ring),
        Err(LicfileError::UnknownKeyId(_))
    ));

    let a = app
        .client(
            "/v1/licenses/activate",
            json!({"key": key, "fingerprint": "m1", "nonce": "act-1"}),
        )
        .await;
    assert_eq!(a.status, 201);
    assert_eq!(a.body["nonce"], "act-1");
    verify_response(signature(&a), &a.raw, &ring).unwrap();
    let c = app
        .client(
            "/v1/licenses/checkout",
            json!({"key": key, "session": "s", "nonce": "co-1"}),
        )
        .await;
    assert_eq!(c.status, 200);
    assert_eq!(c.body["nonce"], "co-1");
    verify_response(signature(&c), &c.raw, &ring).unwrap();

    // An unknown key is answered (and signed) like any other, by a key no client trusts.
    let nf = app
        .validate(json!({"key": "NO-SUCH-KEY", "nonce": "x"}))
        .await;
    assert_eq!(nf.body["code"], "NOT_FOUND");
    assert!(verify_response(signature(&nf), &nf.raw, &ring).is_err());

    let missing = app
        .send(
            "GET",
            "/v1/accounts/no-such-account/public-key",
            None,
            None,
            &[],
        )
        .await;
    assert_eq!(missing.status, 404);
}

async fn rotation_keeps_old_files_valid(app: &TestApp) {
    let api = app.account("Rotate").await;
    let account = account_id(app, &api).await;
    let license = app.license(&api, json!({})).await;
    let key = &license["key"];
    let (before, _) = keys(app, &account).await;
    let old_file = app.client("/v1/licenses/file", json!({"key": key})).await;
    assert_eq!(old_file.status, 200);
    let old_file = String::from_utf8(old_file.raw.to_vec()).unwrap();

    let rotated = app.post("/v1/signing-keys/rotate", &api, json!({})).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_ne!(
        rotated.body["current"]["key_id"],
        before["current"]["key_id"]
    );
    let (after, ring) = keys(app, &account).await;
    assert_eq!(after["keys"].as_array().unwrap().len(), 2);
    let now = keygate_domain::Timestamp::now().millis() / 1000;
    // Files signed before the rotation still verify; new ones use the new key.
    let old = verify_file(&old_file, &ring, now, None).unwrap();
    assert_eq!(old.key_id, before["current"]["key_id"].as_str().unwrap());
    let new_file = app.client("/v1/licenses/file", json!({"key": key})).await;
    let new = verify_file(
        std::str::from_utf8(&new_file.raw).unwrap(),
        &ring,
        now,
        None,
    )
    .unwrap();
    assert_eq!(new.key_id, after["current"]["key_id"].as_str().unwrap());
    let v = app.validate(json!({"key": key})).await;
    assert!(signature(&v).contains(after["current"]["key_id"].as_str().unwrap()));
    verify_response(signature(&v), &v.raw, &ring).unwrap();
    let audit = app.get("/v1/audit", &api).await;
    assert_eq!(audit.body["data"][0]["action"], "signing_key.rotated");
}

async fn license_files(app: &TestApp) {
    let api = app.account("Files").await;
    let account = account_id(app, &api).await;
    let (_, ring) = keys(app, &account).await;
    let now = keygate_domain::Timestamp::now();
    let file_of = |r: &Reply| String::from_utf8(r.raw.to_vec()).unwrap();

    // Default TTL: 30 days for a perpetual license.
    let perpetual = app.license(&api, json!({"features": ["export"]})).await;
    let r = app
        .client("/v1/licenses/file", json!({"key": perpetual["key"]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let text = file_of(&r);
    assert!(text.starts_with("-----BEGIN KEYGATE LICENSE-----"));
    let f = verify_file(&text, &ring, now.millis() / 1000, None).unwrap();
    assert!((f.valid_until - f.issued_at - 30 * 86_400).abs() <= 1);
    assert_eq!(f.payload["license"]["id"], perpetual["id"]);
    assert_eq!(f.payload["entitlements"]["features"], json!(["export"]));
    // Past valid_until it is refused with that reason.
    assert!(matches!(
        verify_file(&text, &ring, f.valid_until, None),
        Err(LicfileError::Expired { .. })
    ));

    // Bounded by the license's own expiry (+ grace)...
    let policy = app
        .policy(&api, json!({"duration_seconds": 3600, "grace_seconds": 60}))
        .await;
    let l = app
        .post("/v1/licenses", &api, json!({"policy_id": policy}))
        .await;
    let r = app
        .client("/v1/licenses/file", json!({"key": l.body["key"]}))
        .await;
    let f = verify_file(&file_of(&r), &ring, now.millis() / 1000, None).unwrap();
    let grace_until =
        keygate_domain::Timestamp::parse_rfc3339(l.body["grace_until"].as_str().unwrap()).unwrap();
    assert_eq!(f.valid_until, grace_until.millis() / 1000);
    // ...unless the policy allows perpetual offline use.
    let offline = app
        .policy(
            &api,
            json!({"duration_seconds": 3600, "perpetual_offline": true}),
        )
        .await;
    let l = app
        .post("/v1/licenses", &api, json!({"policy_id": offline}))
        .await;
    let r = app
        .client(
            "/v1/licenses/file",
            json!({"key": l.body["key"], "ttl_seconds": 864000}),
        )
        .await;
    let f = verify_file(&file_of(&r), &ring, now.millis() / 1000, None).unwrap();
    assert!((f.valid_until - f.issued_at - 864_000).abs() <= 1);

    // Bound to a machine.
    let node = app.license(&api, json!({"max_activations": 1})).await;
    let r = app
        .client(
            "/v1/licenses/file",
            json!({"key": node["key"], "fingerprint": "m1"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "NOT_ACTIVATED"));
    app.client(
        "/v1/licenses/activate",
        json!({"key": node["key"], "fingerprint": "m1"}),
    )
    .await;
    let r = app
        .client(
            "/v1/licenses/file",
            json!({"key": node["key"], "fingerprint": "m1"}),
        )
        .await;
    let text = file_of(&r);
    let t = now.millis() / 1000;
    assert!(verify_file(&text, &ring, t, Some("m1")).is_ok());
    assert!(matches!(
        verify_file(&text, &ring, t, Some("m2")),
        Err(LicfileError::FingerprintMismatch { .. })
    ));

    // No file for a license that is not usable; bad TTL; unknown key.
    let id = perpetual["id"].as_str().unwrap();
    app.post(
        &format!("/v1/licenses/{id}/actions/suspend"),
        &api,
        json!({}),
    )
    .await;
    let r = app
        .client("/v1/licenses/file", json!({"key": perpetual["key"]}))
        .await;
    assert_eq!((r.status, r.code()), (403, "SUSPENDED"));
    let r = app
        .client(
            "/v1/licenses/file",
            json!({"key": node["key"], "ttl_seconds": 1}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "INVALID_FIELD"));
    let r = app
        .client("/v1/licenses/file", json!({"key": "nope"}))
        .await;
    assert_eq!(r.status, 404);

    // The CLI verifies it offline.
    let dir = std::env::temp_dir().join(format!("keygate-verify-{}", crate::harness::uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("license.txt"), &text).unwrap();
    let doc = app
        .send(
            "GET",
            &format!("/v1/accounts/{account}/public-key"),
            None,
            None,
            &[],
        )
        .await;
    std::fs::write(dir.join("keys.json"), &doc.raw).unwrap();
    let run = |fingerprint: &str, file: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
            .args(["license", "verify", "--file"])
            .arg(dir.join(file))
            .arg("--public-key")
            .arg(dir.join("keys.json"))
            .args(["--fingerprint", fingerprint, "--json"])
            .output()
            .unwrap()
    };
    let ok = run("m1", "license.txt");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let out: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(out["valid"], true);
    let wrong = run("m2", "license.txt");
    assert!(!wrong.status.success());
    let out: Value = serde_json::from_slice(&wrong.stdout).unwrap();
    assert_eq!(out["code"], "FINGERPRINT_MISMATCH");
    let mut tampered = text.into_bytes();
    let mid = tampered.len() / 2;
    tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
    std::fs::write(dir.join("tampered.txt"), tampered).unwrap();
    assert!(!run("m1", "tampered.txt").status.success());
    let _ = std::fs::remove_dir_all(dir);
}

const MASTER_KEY: &str = "Y86TedASVrgoamSBWOYeAUV/lMhd4ItOz5/gFij5ZoQ=";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_are_encrypted_at_rest_with_the_master_key() {
    let app = TestApp::sqlite_with(|c| c.master_key = Some(MASTER_KEY.into())).await;
    let api = app.account("Sealed").await;
    let license = app.license(&api, json!({})).await;
    let v = app.validate(json!({"key": license["key"]})).await;
    let account = account_id(&app, &api).await;
    let (_, ring) = keys(&app, &account).await;
    verify_response(signature(&v), &v.raw, &ring).unwrap();
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&app.database_url)
        .await
        .unwrap();
    let sealed: String = sqlx::query_scalar("SELECT private_key FROM signing_keys")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(sealed.starts_with("aes256gcm.v2:"), "{sealed}");
    let url = app.database_url.clone();
    app.server.stop().await;
    // The same database with a wrong master key cannot sign: a clear error, not a bad signature.
    let mut config = keygate_server::Config::for_database(&url);
    config.master_key = Some("bCwaY5gIzlWgROAxz7sl5igEP5qPeSFi/uyf4KsQu4Y=".into());
    let server = keygate_server::Server::start(config).await.unwrap();
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-X",
            "POST",
            &server.url("/v1/licenses/validate"),
            "-d",
        ])
        .arg(json!({"key": license["key"]}).to_string())
        .output();
    if let Ok(out) = out {
        let body: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        assert_eq!(body["error"]["code"], "SIGNING_KEY_UNAVAILABLE");
    }
    server.stop().await;
    if let crate::harness::Db::Sqlite(dir) = &app.db {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_answers_nonce_mode_signs_only_when_asked() {
    let app =
        TestApp::sqlite_with(|c| c.sign_answers = keygate_server::config::SignAnswers::Nonce).await;
    let api = app.account("Lean").await;
    let license = app.license(&api, json!({})).await;
    let plain = app.validate(json!({"key": license["key"]})).await;
    assert_eq!(plain.body["code"], "VALID");
    assert!(plain.headers.get("keygate-signature").is_none());
    let asked = app
        .validate(json!({"key": license["key"], "nonce": "n"}))
        .await;
    let (_, ring) = keys(&app, &account_id(&app, &api).await).await;
    verify_response(signature(&asked), &asked.raw, &ring).unwrap();
    app.finish().await;
}
