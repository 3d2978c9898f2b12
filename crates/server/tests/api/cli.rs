//! The `keygate` binary itself: account creation without a server, then the server using it.
use serde_json::Value;
use std::process::Command;

fn keygate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keygate"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_create_works_without_a_server_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("keygate-cli-{}", crate::harness::uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("k.db").display());
    let out = keygate()
        .args([
            "account",
            "create",
            "--name",
            "Acme",
            "--json",
            "--database-url",
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["account"]["name"], "Acme");
    let key = created["api_key"].as_str().unwrap().to_string();
    assert!(key.starts_with("kg_sk_"));

    let out = keygate()
        .args(["migrate", "--database-url", &url])
        .output()
        .unwrap();
    assert!(out.status.success());

    // The server on that database accepts the key.
    let server = keygate_server::Server::start(keygate_server::Config::for_database(&url))
        .await
        .unwrap();
    let res = std::process::Command::new("curl")
        .args([
            "-s",
            "-H",
            &format!("authorization: Bearer {key}"),
            &server.url("/v1/account"),
        ])
        .output();
    if let Ok(res) = res {
        let body: Value = serde_json::from_slice(&res.stdout).unwrap_or_default();
        assert_eq!(body["id"], created["account"]["id"]);
    }
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_create_works_on_postgres() {
    let url = crate::harness::postgres_admin_url();
    let out = keygate()
        .args(["account", "create", "--name", "PgCo", "--json"])
        .env("KEYGATE_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["account"]["name"], "PgCo");
}

#[test]
fn bad_database_url_is_a_clear_error() {
    let out = keygate()
        .args(["migrate", "--database-url", "mysql://nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database URL"));
}
