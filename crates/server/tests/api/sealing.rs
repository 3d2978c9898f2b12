//! Secrets at rest (issue 13, point 8): the master key goes through HKDF and must be strong;
//! sealed values are bound to their account and purpose; values sealed before (one SHA-256
//! of the master key, `aes256gcm:`) still open, and are sealed anew when written again.
use crate::harness::{Db, TestApp};
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use keygate_store::sqlx;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const MASTER_KEY: &str = "Y86TedASVrgoamSBWOYeAUV/lMhd4ItOz5/gFij5ZoQ=";

mod upgrade_and_binding {
    use crate::harness::TestApp;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = TestApp::sqlite_with(|c| c.master_key = Some(super::MASTER_KEY.into())).await;
        super::upgrade_and_binding(app).await.finish().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let app = TestApp::postgres_with(|c| c.master_key = Some(super::MASTER_KEY.into())).await;
        super::upgrade_and_binding(app).await.finish().await;
    }
}

/// How values were sealed before the KDF: AES-256-GCM under SHA-256(master key), no AAD.
fn legacy_seal(secret: &str) -> String {
    let cipher = Aes256Gcm::new_from_slice(&Sha256::digest(MASTER_KEY.as_bytes())).unwrap();
    let nonce = [9u8; 12];
    let mut out = nonce.to_vec();
    out.extend(
        cipher
            .encrypt(Nonce::from_slice(&nonce), secret.as_bytes())
            .unwrap(),
    );
    format!(
        "aes256gcm:{}",
        base64::engine::general_purpose::STANDARD.encode(out)
    )
}

/// Runs one statement on the app's database directly (either engine) and returns its text column.
pub(crate) async fn sql(app: &TestApp, query: &str, binds: &[&str]) -> Vec<String> {
    match &app.db {
        Db::Sqlite(_) => {
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&app.database_url)
                .await
                .unwrap();
            let mut q = sqlx::query_scalar::<_, String>(query);
            for b in binds {
                q = q.bind(b.to_string());
            }
            q.fetch_all(&mut conn).await.unwrap()
        }
        Db::Postgres(_) => {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&app.database_url)
                .await
                .unwrap();
            let mut q = sqlx::query_scalar::<_, String>(query);
            for b in binds {
                q = q.bind(b.to_string());
            }
            q.fetch_all(&mut conn).await.unwrap()
        }
    }
}

fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::digest([ipad.as_slice(), message].concat());
    let outer = Sha256::digest([opad.as_slice(), inner.as_slice()].concat());
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

async fn stripe_delivery(app: &TestApp, integration: &Value, secret: &str) -> (u16, String) {
    let t = keygate_domain::Timestamp::now().millis() / 1000;
    let body = json!({"id": format!("evt_{t}_{secret}"), "object": "event", "created": t,
        "type": "customer.created", "livemode": true,
        "data": {"object": {"id": "cus_s", "object": "customer", "email": "s@example.com"}}})
    .to_string();
    let sig = hmac_sha256_hex(secret.as_bytes(), format!("{t}.{body}").as_bytes());
    let id = integration["id"].as_str().unwrap();
    let r = app
        .send(
            "POST",
            &format!("/v1/webhooks/stripe/{id}"),
            None,
            Some(Value::String(body)),
            &[("stripe-signature", &format!("t={t},v1={sig}"))],
        )
        .await;
    (r.status, r.code().to_string())
}

async fn upgrade_and_binding(app: TestApp) -> TestApp {
    let api_a = app.account("A").await;
    let api_b = app.account("B").await;
    let mut integrations = Vec::new();
    for (api, secret) in [(&api_a, "whsec_aaa"), (&api_b, "whsec_bbb")] {
        let r = app
            .post(
                "/v1/integrations",
                api,
                json!({"provider": "stripe", "secrets": [secret]}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        integrations.push(r.body);
    }
    let (a, b) = (&integrations[0], &integrations[1]);
    let sealed_of = |v: &Value| v["id"].as_str().unwrap().to_string();
    let stored = sql(
        &app,
        "SELECT secrets FROM integrations WHERE id = $1",
        &[&sealed_of(a)],
    )
    .await;
    assert!(stored[0].starts_with("aes256gcm.v2:"), "{}", stored[0]);
    // Every sealed column uses the new format: signing keys too.
    let account_a = app.get("/v1/api-keys", &api_a).await;
    assert_eq!(account_a.status, 200);
    let license = app.license(&api_a, json!({})).await;
    app.validate(json!({"key": license["key"]})).await;
    for key in sql(&app, "SELECT private_key FROM signing_keys", &[]).await {
        assert!(key.starts_with("aes256gcm.v2:"), "{key}");
    }
    // A's secret as an older Keygate sealed it; B's row given A's (new) sealed value.
    sql(
        &app,
        "UPDATE integrations SET secrets = $1 WHERE id = $2 RETURNING id",
        &[&legacy_seal("[\"whsec_aaa\"]"), &sealed_of(a)],
    )
    .await;
    sql(
        &app,
        "UPDATE integrations SET secrets = $1 WHERE id = $2 RETURNING id",
        &[&stored[0], &sealed_of(b)],
    )
    .await;
    let app = app
        .restart_with(|c| c.master_key = Some(MASTER_KEY.into()))
        .await;
    // The old format opens with the same master key: A's webhooks verify.
    assert_eq!(stripe_delivery(&app, a, "whsec_aaa").await.0, 200);
    // A sealed value moved to another account's row does not open there.
    let (status, code) = stripe_delivery(&app, b, "whsec_aaa").await;
    assert_ne!(status, 200);
    assert_eq!(code, "SIGNING_KEY_UNAVAILABLE");
    // Writing the secrets again seals them in the new format, bound to A.
    let r = app
        .patch(
            &format!("/v1/integrations/{}", sealed_of(a)),
            &api_a,
            json!({"secrets": ["whsec_aaa"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let stored = sql(
        &app,
        "SELECT secrets FROM integrations WHERE id = $1",
        &[&sealed_of(a)],
    )
    .await;
    assert!(stored[0].starts_with("aes256gcm.v2:"), "{}", stored[0]);
    assert_eq!(stripe_delivery(&app, a, "whsec_aaa").await.0, 200);
    app
}

/// A short or visibly non-random master key stops the server at start with a clear message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weak_master_key_is_refused_at_start() {
    let dir = std::env::temp_dir().join(format!("keygate-mk-{}", crate::harness::uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("k.db").display());
    for weak in [
        "correct horse battery staple",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ] {
        let mut config = keygate_server::Config::for_database(&url);
        config.master_key = Some(weak.into());
        let error = match keygate_server::Server::start(config).await {
            Ok(_) => panic!("`{weak}` must be refused"),
            Err(e) => e.to_string(),
        };
        assert!(error.contains("KEYGATE_MASTER_KEY is too weak"), "{error}");
        assert!(error.contains("openssl rand -base64 32"), "{error}");
    }
    let mut config = keygate_server::Config::for_database(&url);
    config.master_key = Some(MASTER_KEY.into());
    let server = keygate_server::Server::start(config)
        .await
        .expect("a strong key starts");
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
