//! PostgreSQL, for several nodes on one database: one pool for reads and writes, row locks for
//! the check-then-write paths, no process-local cache.

/// What differs on PostgreSQL, for `shared` to use.
mod engine {
    use super::shared::Pools;
    use crate::{Result, StoreError};
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    use std::str::FromStr;
    use std::time::Duration;

    pub type Db = sqlx::Postgres;
    pub const ENGINE: &str = "postgres";
    /// Row locks serialize the check-then-write paths (activation limits, seats, quota)
    /// across connections and nodes.
    pub const FOR_UPDATE: &str = " FOR UPDATE";
    pub const FOR_UPDATE_OF_L: &str = " FOR UPDATE OF l";
    /// The extended protocol prepares one statement per query.
    pub const COMBINE_STATEMENTS: bool = false;
    /// Many connections write in parallel: each delivery has its own transaction.
    pub const GROUP_COMMIT: bool = false;
    pub const BEGIN_WRITE: Option<&str> = None;
    /// Worker claims: rows another node is claiming are skipped, not waited for.
    pub const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";
    /// Migrations run under `pg_advisory_lock`: nodes starting together take turns.
    pub const ADVISORY_LOCKS: bool = true;
    pub const MIGRATIONS: &[crate::migrate::Migration] = crate::migrate::POSTGRES;

    /// Several nodes may write: no process-local cache could see their changes.
    pub fn validation_cache() -> Option<crate::cache::ValidationCache> {
        None
    }

    pub async fn open_pools(url: &str) -> Result<Pools> {
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::Config(format!(
                "bad PostgreSQL URL `{}`: {e}",
                crate::redact_url(url)
            ))
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        Ok(Pools {
            read: pool.clone(),
            write: pool,
            background: None,
        })
    }
}

// One source, compiled once per engine: `sqlite.rs` mounts the same directory.
#[allow(clippy::duplicate_mod)]
#[path = "shared/mod.rs"]
mod shared;

pub use shared::SqlStore as PostgresStore;
