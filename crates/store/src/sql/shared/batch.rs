//! How writes reach the database: `WriteBatch` (writes sent together) and the write
//! transaction every change runs in.

use super::engine::{BEGIN_WRITE, COMBINE_STATEMENTS, Db};
use super::{DbConn, DbRow};
use crate::sql::renumber_placeholders;
use crate::{Result, StoreError};
use sqlx::Pool;

/// Writes whose results nobody reads, sent to the database together.
///
/// On SQLite the driver hands every query to its worker thread and back (50-150 µs on a busy
/// two-core machine, far more than the statement itself), so the batch goes as one
/// multi-statement query: one hand-off for all the writes of a webhook event. The driver binds
/// `$N` by absolute position across the statements of one query, so each statement's
/// placeholders are renumbered as it is appended. PostgreSQL's extended protocol takes one
/// statement per query: there they run one after another, in order.
///
/// A batch may end with a query whose rows the caller wants (`fetch`): the writes before it
/// travel in the same round trip. Every statement binds exactly its own placeholders, `$1` to
/// `$k`, in order.
pub(crate) struct WriteBatch {
    statements: Vec<(String, <Db as sqlx::Database>::Arguments<'static>)>,
    /// Values bound to the last query so far (its next placeholder is this plus one).
    bound: usize,
    bind_error: Option<String>,
}

impl WriteBatch {
    pub(crate) fn new() -> Self {
        WriteBatch {
            statements: Vec::new(),
            bound: 0,
            bind_error: None,
        }
    }

    /// Appends a statement; its values follow with `bind`.
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        match self.statements.last_mut() {
            Some((text, _)) if COMBINE_STATEMENTS => {
                text.push_str(";\n");
                renumber_placeholders(text, sql, self.bound);
            }
            _ => {
                self.statements.push((sql.to_string(), Default::default()));
                self.bound = 0;
            }
        }
        self
    }

    pub(crate) fn bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'static + Send + sqlx::Encode<'static, Db> + sqlx::Type<Db>,
    {
        use sqlx::Arguments;
        let Some((_, args)) = self.statements.last_mut() else {
            self.bind_error = Some("bind before push".into());
            return self;
        };
        if let Err(e) = args.add(value) {
            self.bind_error.get_or_insert(e.to_string());
        }
        self.bound += 1;
        self
    }

    /// Runs everything pushed so far, in order, and empties the batch.
    pub(crate) async fn flush(&mut self, conn: &mut DbConn) -> Result<()> {
        self.fetch(conn).await.map(drop)
    }

    /// Runs everything pushed so far, in order, empties the batch, and returns the rows the
    /// statements produced, in order.
    pub(crate) async fn fetch(&mut self, conn: &mut DbConn) -> Result<Vec<DbRow>> {
        if let Some(e) = self.bind_error.take() {
            self.statements.clear();
            return Err(StoreError::Corrupt(format!("binding a value failed: {e}")));
        }
        self.bound = 0;
        let mut rows = Vec::new();
        for (sql, args) in self.statements.drain(..) {
            rows.extend(sqlx::query_with(&sql, args).fetch_all(&mut *conn).await?);
        }
        Ok(rows)
    }
}

/// A write transaction. SQLite takes the write lock at BEGIN (IMMEDIATE), waiting up to the busy
/// timeout for another process (the CLI, a second server) to finish: a deferred transaction that
/// read first could not upgrade after that process's commit and would fail at once.
async fn begin_write(pool: &Pool<Db>) -> Result<sqlx::Transaction<'static, Db>> {
    Ok(match BEGIN_WRITE {
        Some(statement) => pool.begin_with(statement).await?,
        None => pool.begin().await?,
    })
}

/// Runs `work` in a write transaction and commits it: the begin/commit script of every
/// change, written once. An error from `work` drops the transaction, which rolls it back.
pub(crate) async fn in_write_tx<T>(
    pool: &Pool<Db>,
    work: impl AsyncFnOnce(&mut DbConn) -> Result<T>,
) -> Result<T> {
    let mut tx = begin_write(pool).await?;
    let out = work(&mut tx).await?;
    tx.commit().await?;
    Ok(out)
}
