//! The migration runner against real databases: a fresh SQLite file, a fresh PostgreSQL
//! database on the machine's server (as the server's tests use).
#![cfg(all(feature = "sqlite", feature = "postgres"))]
use keygate_store::sqlx::{self, Connection, Executor};
use sha2::{Digest, Sha256};

const SQLITE_FILES: [&str; 7] = [
    include_str!("../migrations/sqlite/0001_core.sql"),
    include_str!("../migrations/sqlite/0002_signing.sql"),
    include_str!("../migrations/sqlite/0003_gateway.sql"),
    include_str!("../migrations/sqlite/0004_outbound.sql"),
    include_str!("../migrations/sqlite/0005_api_credentials.sql"),
    include_str!("../migrations/sqlite/0006_subscription_orders.sql"),
    include_str!("../migrations/sqlite/0007_order_lines.sql"),
];
const POSTGRES_FILES: [&str; 7] = [
    include_str!("../migrations/postgres/0001_core.sql"),
    include_str!("../migrations/postgres/0002_signing.sql"),
    include_str!("../migrations/postgres/0003_gateway.sql"),
    include_str!("../migrations/postgres/0004_outbound.sql"),
    include_str!("../migrations/postgres/0005_api_credentials.sql"),
    include_str!("../migrations/postgres/0006_subscription_orders.sql"),
    include_str!("../migrations/postgres/0007_order_lines.sql"),
];

fn unique_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "kgt_m{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn sqlite_url() -> String {
    let dir = std::env::temp_dir().join(unique_name());
    std::fs::create_dir_all(&dir).unwrap();
    format!("sqlite://{}", dir.join("keygate.db").display())
}

/// A new, empty PostgreSQL database: (its URL, the admin URL to drop it with).
async fn postgres_url() -> (String, String) {
    let admin = std::env::var("KEYGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let name = unique_name();
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL must be running for the postgres tests (see .ci/run)");
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let base = admin.rsplit_once('/').unwrap().0;
    (format!("{base}/{name}"), admin)
}

async fn drop_postgres(url: &str, admin: &str) {
    let name = url.rsplit_once('/').unwrap().1;
    let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
    let _ = conn
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await;
}

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// (version, checksum) of every recorded migration, in order.
async fn recorded(url: &str) -> Vec<(i64, Option<String>)> {
    let rows: Vec<(i64, Option<String>)> = if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc"))
            .await
            .unwrap();
        sqlx::query_as("SELECT version, checksum FROM keygate_migrations ORDER BY version")
            .fetch_all(&mut c)
            .await
            .unwrap()
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_as("SELECT version, checksum FROM keygate_migrations ORDER BY version")
            .fetch_all(&mut c)
            .await
            .unwrap()
    };
    rows
}

fn expected(files: &[&str]) -> Vec<(i64, Option<String>)> {
    files
        .iter()
        .enumerate()
        .map(|(i, f)| (i as i64 + 1, Some(sha256(f))))
        .collect()
}

async fn execute(url: &str, sql: &str) {
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc"))
            .await
            .unwrap();
        c.execute(sqlx::raw_sql(sql)).await.unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        c.execute(sqlx::raw_sql(sql)).await.unwrap();
    }
}

async fn migrate(url: &str) -> keygate_store::Result<()> {
    keygate_store::connect(url).await?.migrate().await
}

#[tokio::test]
async fn nodes_starting_together_on_a_fresh_postgres_database_all_succeed() {
    let (url, admin) = postgres_url().await;
    // Each its own store (its own pool), as separate nodes would be, all at once.
    let starts = (0..6).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { migrate(&url).await })
    });
    for start in starts.collect::<Vec<_>>() {
        start.await.unwrap().expect("every node starts");
    }
    assert_eq!(recorded(&url).await, expected(&POSTGRES_FILES));
    drop_postgres(&url, &admin).await;
}

#[tokio::test]
async fn processes_starting_together_on_a_fresh_sqlite_file_all_succeed() {
    let url = sqlite_url();
    let starts = (0..4).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { migrate(&url).await })
    });
    for start in starts.collect::<Vec<_>>() {
        start.await.unwrap().expect("every store starts");
    }
    assert_eq!(recorded(&url).await, expected(&SQLITE_FILES));
}

async fn refuses_a_changed_migration(url: &str) {
    migrate(url).await.unwrap();
    // As if 0002_signing.sql had been edited after this database applied it.
    execute(
        url,
        "UPDATE keygate_migrations SET checksum = 'edited' WHERE version = 2",
    )
    .await;
    let err = migrate(url)
        .await
        .expect_err("a changed migration is refused");
    let message = err.to_string();
    assert!(
        message.contains("0002_signing") && message.contains("has changed"),
        "{message}"
    );
    // Nothing else was touched: the other checksums are intact.
    let rows = recorded(url).await;
    assert_eq!(rows[0].1.as_deref().map(str::len), Some(64));
    assert_eq!(rows[1].1.as_deref(), Some("edited"));
}

#[tokio::test]
async fn a_changed_migration_is_refused_on_sqlite() {
    refuses_a_changed_migration(&sqlite_url()).await;
}

#[tokio::test]
async fn a_changed_migration_is_refused_on_postgres() {
    let (url, admin) = postgres_url().await;
    refuses_a_changed_migration(&url).await;
    drop_postgres(&url, &admin).await;
}

/// A database left by the runner before checksums: its table has no `checksum` column, and it
/// stopped at migration 3.
async fn upgrades_an_older_database(url: &str, files: &[&str]) {
    execute(
        url,
        "CREATE TABLE keygate_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
         applied_at BIGINT NOT NULL)",
    )
    .await;
    for (i, (file, name)) in files.iter().zip(["core", "signing", "gateway"]).enumerate() {
        execute(url, file).await;
        execute(
            url,
            &format!(
                "INSERT INTO keygate_migrations (version, name, applied_at) VALUES ({}, '{name}', 0)",
                i + 1
            ),
        )
        .await;
    }
    migrate(url).await.expect("an older database upgrades");
    assert_eq!(recorded(url).await, expected(files));
    // Migrations 4 and 5 really ran: 4's table answers.
    execute(url, "SELECT count(*) FROM outbound_deliveries").await;
    // And a second start is a no-op.
    migrate(url).await.unwrap();
    assert_eq!(recorded(url).await, expected(files));
}

#[tokio::test]
async fn an_older_sqlite_database_upgrades() {
    upgrades_an_older_database(&sqlite_url(), &SQLITE_FILES).await;
}

#[tokio::test]
async fn an_older_postgres_database_upgrades() {
    let (url, admin) = postgres_url().await;
    upgrades_an_older_database(&url, &POSTGRES_FILES).await;
    drop_postgres(&url, &admin).await;
}
