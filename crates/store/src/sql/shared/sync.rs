//! The periodic sync's schedule and progress, one row per integration that has synced or is
//! scheduled to.

use super::SqlStore;
use super::gateway::load_integration;
use super::rows::ts;
use crate::Result;
use crate::sync::{SyncState, SyncStore};
use async_trait::async_trait;
use keygate_domain::Timestamp;
use sqlx::Row;

#[async_trait]
impl SyncStore for SqlStore {
    async fn schedule_sync(
        &self,
        account_id: &str,
        integration_id: &str,
        interval_seconds: Option<i64>,
    ) -> Result<()> {
        let now = Timestamp::now().0;
        self.write_tx(async |tx| {
            load_integration(tx, account_id, integration_id).await?;
            sqlx::query(
                "INSERT INTO integration_syncs (integration_id, account_id, interval_seconds, \
                 next_run_at) VALUES ($1, $2, $3, $4) ON CONFLICT (integration_id) DO UPDATE SET \
                 interval_seconds = $3, next_run_at = CASE WHEN $3 IS NULL THEN NULL \
                 WHEN integration_syncs.interval_seconds IS NULL \
                 OR integration_syncs.interval_seconds <> $3 THEN $4 \
                 ELSE integration_syncs.next_run_at END",
            )
            .bind(integration_id)
            .bind(account_id)
            .bind(interval_seconds)
            .bind(interval_seconds.map(|_| now))
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
        .await
    }

    async fn sync_state(&self, account_id: &str, integration_id: &str) -> Result<SyncState> {
        let mut conn = self.read.acquire().await?;
        load_integration(&mut conn, account_id, integration_id).await?;
        let row = sqlx::query(
            "SELECT interval_seconds, next_run_at, synced_until, last_run_at, last_error_code, \
             last_error FROM integration_syncs WHERE account_id = $1 AND integration_id = $2",
        )
        .bind(account_id)
        .bind(integration_id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else {
            return Ok(SyncState::default());
        };
        let time = |name: &str| -> Result<Option<Timestamp>> {
            Ok(row.try_get::<Option<i64>, _>(name)?.map(ts))
        };
        Ok(SyncState {
            interval_seconds: row.try_get("interval_seconds")?,
            next_run_at: time("next_run_at")?,
            synced_until: time("synced_until")?,
            last_run_at: time("last_run_at")?,
            last_error_code: row.try_get("last_error_code")?,
            last_error: row.try_get("last_error")?,
        })
    }

    async fn record_sync(
        &self,
        account_id: &str,
        integration_id: &str,
        run_at: Timestamp,
        error: Option<(&str, &str)>,
    ) -> Result<()> {
        let (code, message) = match error {
            Some((code, message)) => (
                Some(code.to_string()),
                Some(message.chars().take(1000).collect::<String>()),
            ),
            None => (None, None),
        };
        let synced = error.is_none().then_some(run_at.0);
        self.write_tx(async |tx| {
            sqlx::query(
                "INSERT INTO integration_syncs (integration_id, account_id, synced_until, \
                 last_run_at, last_error_code, last_error) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (integration_id) DO UPDATE SET \
                 synced_until = COALESCE($3, integration_syncs.synced_until), last_run_at = $4, \
                 last_error_code = $5, last_error = $6, next_run_at = CASE \
                 WHEN integration_syncs.interval_seconds IS NULL THEN NULL \
                 ELSE $4 + integration_syncs.interval_seconds * 1000 END",
            )
            .bind(integration_id)
            .bind(account_id)
            .bind(synced)
            .bind(run_at.0)
            .bind(code)
            .bind(message)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
        .await
    }

    async fn claim_due_syncs(&self, now: Timestamp, limit: i64) -> Result<Vec<(String, String)>> {
        let due = {
            let mut conn = self.read.acquire().await?;
            sqlx::query(
                "SELECT account_id, integration_id, next_run_at, interval_seconds \
                 FROM integration_syncs WHERE next_run_at IS NOT NULL AND next_run_at <= $1 \
                 ORDER BY next_run_at LIMIT $2",
            )
            .bind(now.0)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?
        };
        let mut claimed = Vec::new();
        for row in due {
            let account_id: String = row.try_get("account_id")?;
            let integration_id: String = row.try_get("integration_id")?;
            let seen: i64 = row.try_get("next_run_at")?;
            let interval: i64 = row.try_get("interval_seconds")?;
            let won = self
                .write_tx(async |tx| {
                    let done = sqlx::query(
                        "UPDATE integration_syncs SET next_run_at = $3 \
                         WHERE integration_id = $1 AND next_run_at = $2",
                    )
                    .bind(&integration_id)
                    .bind(seen)
                    .bind(now.0 + interval.max(1) * 1000)
                    .execute(&mut *tx)
                    .await?;
                    Ok(done.rows_affected() == 1)
                })
                .await?;
            if won {
                claimed.push((account_id, integration_id));
            }
        }
        Ok(claimed)
    }
}
