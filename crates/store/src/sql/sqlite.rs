//! SQLite, the embedded default: one writer connection (with group commit for webhook
//! deliveries), a pool of readers, a WAL checkpointer, and the validation cache (this process is
//! the only writer).

/// What differs on SQLite, for `shared` to use.
mod engine {
    use super::shared::Pools;
    use crate::{Result, StoreError};
    use sqlx::Pool;
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    use std::str::FromStr;
    use std::time::Duration;

    pub type Db = sqlx::Sqlite;
    pub const ENGINE: &str = "sqlite";
    /// SQLite has no row locks: every write goes through the single writer connection,
    /// so a write transaction is already serialized against every other.
    pub const FOR_UPDATE: &str = "";
    pub const FOR_UPDATE_OF_L: &str = "";
    /// One multi-statement query per write batch: one hand-off to the driver's worker thread.
    pub const COMBINE_STATEMENTS: bool = true;
    /// Webhook deliveries queue for the one writer and share transactions.
    pub const GROUP_COMMIT: bool = true;
    /// Take the write lock at BEGIN: see `begin_write`.
    pub const BEGIN_WRITE: Option<&str> = Some("BEGIN IMMEDIATE");
    /// Worker claims: the single writer already makes the claiming UPDATE atomic.
    pub const SKIP_LOCKED: &str = "";
    /// SQLite has no advisory locks: `BEGIN IMMEDIATE` serializes the migrations.
    pub const ADVISORY_LOCKS: bool = false;
    pub const MIGRATIONS: &[crate::migrate::Migration] = crate::migrate::SQLITE;

    /// Licenses kept in the validation cache (`KEYGATE_VALIDATION_CACHE`, 0 = off).
    pub fn validation_cache() -> Option<crate::cache::ValidationCache> {
        let capacity = std::env::var("KEYGATE_VALIDATION_CACHE")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1_000_000);
        (capacity > 0).then(|| crate::cache::ValidationCache::new(capacity))
    }

    /// Readers share a pool; writers share one connection. SQLite allows one writer at a time
    /// anyway, and funnelling writes through one connection avoids lock-upgrade failures
    /// (SQLITE_BUSY) between deferred transactions.
    pub async fn open_pools(url: &str) -> Result<Pools> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("bad SQLite URL `{url}`: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .statement_cache_capacity(256)
            // A backstop: the checkpointer below normally keeps the WAL far smaller.
            .pragma("wal_autocheckpoint", "10000")
            // 32 MiB of page cache per connection (the default is 2 MiB): the writer keeps the
            // hot index pages of a large database.
            .pragma("cache_size", "-32768");
        // A local file does not drop connections: no liveness ping before every acquire
        // (on SQLite that ping costs a full worker-thread round trip). The writer fsyncs the
        // WAL at every commit (FULL): what it answered survives a power loss, not only a crash
        // of the process. Group commit makes that one fsync per group of webhook deliveries.
        let write = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone().synchronous(SqliteSynchronous::Full))
            .await?;
        let readers = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(4)
            .clamp(4, 16);
        let read = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(readers)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone().read_only(true))
            .await?;
        let checkpoint = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .connect_with(options)
            .await?;
        Ok(Pools {
            read,
            write,
            background: Some(spawn_checkpointer(checkpoint)),
        })
    }

    /// Copies the WAL into the database file every second on a connection of its own. PASSIVE
    /// never waits for, nor blocks, the writer or a reader; without it the writer would stop
    /// inside a commit, now and then, to checkpoint thousands of pages itself. Stops when the
    /// store (holding the sender) is dropped.
    fn spawn_checkpointer(pool: Pool<Db>) -> tokio::sync::watch::Sender<()> {
        let (stop, mut stopped) = tokio::sync::watch::channel(());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&pool)
                    .await
                {
                    tracing::debug!(error = %e, "WAL checkpoint");
                }
            }
            pool.close().await;
        });
        stop
    }
}

// One source, compiled once per engine: `postgres.rs` mounts the same directory.
#[allow(clippy::duplicate_mod)]
#[path = "shared/mod.rs"]
mod shared;

pub use shared::SqlStore as SqliteStore;

#[cfg(test)]
mod tests {
    /// Commits are on disk before they are answered: the writer syncs the WAL at every commit;
    /// readers, which commit nothing, keep NORMAL.
    #[tokio::test]
    async fn the_writer_syncs_every_commit() {
        let dir = std::env::temp_dir().join(format!("keygate-sync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("k.db").display());
        let pools = super::engine::open_pools(&url).await.unwrap();
        let level = |pool| async move {
            sqlx::query_scalar::<_, i64>("PRAGMA synchronous")
                .fetch_one(pool)
                .await
                .unwrap()
        };
        assert_eq!(level(&pools.write).await, 2, "FULL");
        assert_eq!(level(&pools.read).await, 1, "NORMAL");
        std::fs::remove_dir_all(&dir).ok();
    }
}
