//! The schema: the migration runner, and whether the database answers.

use super::engine::{ADVISORY_LOCKS, BEGIN_WRITE, ENGINE, MIGRATIONS};
use super::{DbConn, SqlStore};
use crate::migrate::{ADVISORY_LOCK_KEY, Migration};
use crate::{EngineStore, Result, StoreError, now};
use async_trait::async_trait;
use sqlx::{Connection, Executor};

#[async_trait]
impl EngineStore for SqlStore {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    /// Applies the migrations this database lacks. On PostgreSQL under an advisory lock held on
    /// one connection for the whole run: a node that starts while another migrates waits, then
    /// finds the work done. On SQLite each migration's transaction takes the write lock at BEGIN,
    /// so two processes cannot both decide to apply the same file.
    async fn migrate(&self) -> Result<()> {
        let mut conn = self.write.acquire().await?;
        if !ADVISORY_LOCKS {
            return run_migrations(&mut conn).await;
        }
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(ADVISORY_LOCK_KEY)
            .execute(&mut *conn)
            .await?;
        let outcome = run_migrations(&mut conn).await;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(ADVISORY_LOCK_KEY)
            .execute(&mut *conn)
            .await;
        if let Err(e) = unlocked {
            // Closing the session releases the lock: never hand it back to the pool locked.
            tracing::warn!(error = %e, "releasing the migration lock: closing its connection");
            drop(conn.detach());
        }
        outcome
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }
}

async fn run_migrations(conn: &mut DbConn) -> Result<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS keygate_migrations (version BIGINT PRIMARY KEY, \
         name TEXT NOT NULL, applied_at BIGINT NOT NULL, checksum TEXT)",
    )
    .execute(&mut *conn)
    .await?;
    // Databases made before checksums were recorded: add the column (empty until checked).
    let columns = conn
        .describe("SELECT * FROM keygate_migrations")
        .await?
        .columns()
        .iter()
        .map(|c| sqlx::Column::name(c).to_string())
        .collect::<Vec<_>>();
    if !columns.iter().any(|c| c == "checksum") {
        sqlx::query("ALTER TABLE keygate_migrations ADD COLUMN checksum TEXT")
            .execute(&mut *conn)
            .await?;
    }
    for m in MIGRATIONS {
        apply(conn, m).await?;
    }
    Ok(())
}

/// Applies one migration unless it is recorded, in one transaction; checks the checksum of one
/// that is.
async fn apply(conn: &mut DbConn, m: &Migration) -> Result<()> {
    let checksum = m.checksum();
    let mut tx = match BEGIN_WRITE {
        Some(statement) => conn.begin_with(statement).await?,
        None => conn.begin().await?,
    };
    let applied: Option<Option<String>> =
        sqlx::query_scalar("SELECT checksum FROM keygate_migrations WHERE version = $1")
            .bind(m.version)
            .fetch_optional(&mut *tx)
            .await?;
    match applied {
        Some(Some(recorded)) if recorded == checksum => return Ok(()),
        Some(Some(recorded)) => {
            return Err(StoreError::Config(format!(
                "migration {:04}_{} has changed since it was applied to this database (recorded \
                 sha256 {recorded}, the file now has {checksum}): an applied migration must never \
                 be edited; restore it and put the change in a new migration",
                m.version, m.name
            )));
        }
        // Applied before checksums were recorded: trust the file as it is now.
        Some(None) => {
            sqlx::query("UPDATE keygate_migrations SET checksum = $2 WHERE version = $1")
                .bind(m.version)
                .bind(&checksum)
                .execute(&mut *tx)
                .await?;
        }
        None => {
            tracing::info!(
                version = m.version,
                name = m.name,
                engine = ENGINE,
                "applying migration"
            );
            // The whole file in one go (PostgreSQL's simple query protocol; SQLite runs the
            // script statement by statement): no splitting on `;`, so a file may hold a
            // function body or a string with one.
            (&mut *tx).execute(sqlx::raw_sql(m.sql)).await?;
            sqlx::query(
                "INSERT INTO keygate_migrations (version, name, applied_at, checksum) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(now().0)
            .bind(&checksum)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}
