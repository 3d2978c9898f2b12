//! The SQL implementation of `Store`, compiled once per engine from the same source
//! (`store_impl.rs`): the SQL text is shared, only the few dialect differences below vary.
//! Both engines accept `$N` placeholders, `RETURNING`, `ON CONFLICT` and `FILTER`.

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Appends `sql` to `out` with every `$N` shifted by `offset`.
fn renumber_placeholders(out: &mut String, sql: &str, offset: usize) {
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    #[test]
    fn renumbers_placeholders_past_the_offset() {
        let mut out = String::from("INSERT INTO a VALUES ($1, $2);\n");
        super::renumber_placeholders(&mut out, "UPDATE b SET x = $2 WHERE id = $1 AND y = $10", 2);
        assert_eq!(
            out,
            "INSERT INTO a VALUES ($1, $2);\nUPDATE b SET x = $4 WHERE id = $3 AND y = $12"
        );
    }
}

pub mod sqlite {
    use super::{is_unique_violation, renumber_placeholders};
    use crate::{Result, StoreError};
    use sqlx::Pool;
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    use std::str::FromStr;
    use std::time::Duration;

    type Db = sqlx::Sqlite;
    const ENGINE: &str = "sqlite";
    /// SQLite has no row locks: every write goes through the single writer connection,
    /// so a write transaction is already serialized against every other.
    const FOR_UPDATE: &str = "";
    const FOR_UPDATE_OF_L: &str = "";
    /// One multi-statement query per write batch: one hand-off to the driver's worker thread.
    const COMBINE_STATEMENTS: bool = true;
    /// Webhook deliveries queue for the one writer and share transactions.
    const GROUP_COMMIT: bool = true;
    /// Take the write lock at BEGIN: see `begin_write`.
    const BEGIN_WRITE: Option<&str> = Some("BEGIN IMMEDIATE");
    /// Worker claims: the single writer already makes the claiming UPDATE atomic.
    const SKIP_LOCKED: &str = "";
    const MIGRATIONS: &[crate::migrate::Migration] = crate::migrate::SQLITE;

    /// Licenses kept in the validation cache (`KEYGATE_VALIDATION_CACHE`, 0 = off).
    fn validation_cache() -> Option<crate::cache::ValidationCache> {
        let capacity = std::env::var("KEYGATE_VALIDATION_CACHE")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1_000_000);
        (capacity > 0).then(|| crate::cache::ValidationCache::new(capacity))
    }

    /// Readers share a pool; writers share one connection. SQLite allows one writer at a time
    /// anyway, and funnelling writes through one connection avoids lock-upgrade failures
    /// (SQLITE_BUSY) between deferred transactions.
    async fn open_pools(url: &str) -> Result<Pools> {
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
        // (on SQLite that ping costs a full worker-thread round trip).
        let write = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
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

    include!("batch.rs");
    include!("store_impl.rs");
    include!("gateway_impl.rs");
    include!("outbound_impl.rs");
}

pub mod postgres {
    use super::{is_unique_violation, renumber_placeholders};
    use crate::{Result, StoreError};
    use sqlx::Pool;
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    use std::str::FromStr;
    use std::time::Duration;

    type Db = sqlx::Postgres;
    const ENGINE: &str = "postgres";
    /// Row locks serialize the check-then-write paths (activation limits, seats, quota)
    /// across connections and nodes.
    const FOR_UPDATE: &str = " FOR UPDATE";
    const FOR_UPDATE_OF_L: &str = " FOR UPDATE OF l";
    /// The extended protocol prepares one statement per query.
    const COMBINE_STATEMENTS: bool = false;
    /// Many connections write in parallel: each delivery has its own transaction.
    const GROUP_COMMIT: bool = false;
    const BEGIN_WRITE: Option<&str> = None;
    /// Worker claims: rows another node is claiming are skipped, not waited for.
    const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";
    const MIGRATIONS: &[crate::migrate::Migration] = crate::migrate::POSTGRES;

    /// Several nodes may write: no process-local cache could see their changes.
    fn validation_cache() -> Option<crate::cache::ValidationCache> {
        None
    }

    async fn open_pools(url: &str) -> Result<Pools> {
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

    include!("batch.rs");
    include!("store_impl.rs");
    include!("gateway_impl.rs");
    include!("outbound_impl.rs");
}
