//! The schema: migrations, and whether the database answers.

use super::SqlStore;
use super::engine::{ENGINE, MIGRATIONS};
use crate::{EngineStore, Result, now};
use async_trait::async_trait;

#[async_trait]
impl EngineStore for SqlStore {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    async fn migrate(&self) -> Result<()> {
        let mut conn = self.write.acquire().await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS keygate_migrations (version BIGINT PRIMARY KEY, \
             name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *conn)
        .await?;
        for m in MIGRATIONS {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM keygate_migrations WHERE version = $1")
                    .bind(m.version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_some() {
                continue;
            }
            tracing::info!(
                version = m.version,
                name = m.name,
                engine = ENGINE,
                "applying migration"
            );
            // Migration files hold plain DDL: statements end at `;` and none contains one.
            for statement in m.sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            sqlx::query(
                "INSERT INTO keygate_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(now().0)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }
}
