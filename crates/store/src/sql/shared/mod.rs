//! The SQL store, compiled once per engine: `super::engine` (SQLite's or PostgreSQL's) gives
//! the dialect constants and how connections are opened; everything here is the same text for
//! both. One file per aggregate, each implementing its trait of `crate::traits`.

mod accounts;
mod audit;
mod batch;
mod catalog;
mod checks;
mod client;
mod customers;
mod gateway;
mod idempotency;
mod licenses;
mod outbound;
mod rows;
mod schema;
mod sync;

use super::engine::{self, Db, GROUP_COMMIT, open_pools, validation_cache};
use crate::Result;
use crate::cache::{IntegrationCache, ValidationCache};
use gateway::{GroupCommitQueue, spawn_group_commit};
use keygate_domain::credentials::credential_hash;
use sqlx::Pool;

type DbRow = <Db as sqlx::Database>::Row;
type DbConn = <Db as sqlx::Database>::Connection;

/// The connections a store uses, and what keeps its background task (if any) running.
pub(crate) struct Pools {
    pub(crate) read: Pool<Db>,
    pub(crate) write: Pool<Db>,
    pub(crate) background: Option<tokio::sync::watch::Sender<()>>,
}

pub struct SqlStore {
    /// Dropping it stops the engine's background task.
    _background: Option<tokio::sync::watch::Sender<()>>,
    read: Pool<Db>,
    write: Pool<Db>,
    /// Present only where this process is the only writer (SQLite).
    cache: Option<ValidationCache>,
    /// Likewise: integrations for webhook deliveries.
    integrations: Option<IntegrationCache>,
    /// Where webhook deliveries queue for group commit (SQLite's single writer).
    group_commit: Option<GroupCommitQueue>,
}

impl SqlStore {
    pub async fn connect(url: &str) -> Result<Self> {
        let Pools {
            read,
            write,
            background,
        } = open_pools(url).await?;
        let cache = validation_cache();
        Ok(SqlStore {
            _background: background,
            group_commit: GROUP_COMMIT.then(|| spawn_group_commit(write.clone())),
            integrations: cache.is_some().then(IntegrationCache::default),
            read,
            write,
            cache,
        })
    }

    /// Runs `work` in a write transaction on the writer and commits it.
    async fn write_tx<T>(&self, work: impl AsyncFnOnce(&mut DbConn) -> Result<T>) -> Result<T> {
        batch::in_write_tx(&self.write, work).await
    }

    /// After a commit that changed what validating this license key sees.
    fn invalidate_key(&self, key: &str) {
        if let Some(c) = &self.cache {
            c.invalidate(&credential_hash(key));
        }
    }

    /// After a commit that changed policies or products (many licenses at once).
    fn invalidate_all(&self) {
        if let Some(c) = &self.cache {
            c.clear();
        }
        if let Some(c) = &self.integrations {
            c.clear();
        }
    }
}
