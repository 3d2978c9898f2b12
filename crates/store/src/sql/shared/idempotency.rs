//! Stored answers to admin `POST`s that carried an `Idempotency-Key`.

use super::SqlStore;
use crate::{IdempotencyStore, IdempotentResponse, Result, now};
use async_trait::async_trait;
use sqlx::Row;

#[async_trait]
impl IdempotencyStore for SqlStore {
    async fn idempotent_response(
        &self,
        account_id: &str,
        key: &str,
    ) -> Result<Option<IdempotentResponse>> {
        let row = sqlx::query(
            "SELECT request_hash, status, body FROM idempotency_keys \
             WHERE account_id = $1 AND idem_key = $2",
        )
        .bind(account_id)
        .bind(key)
        .fetch_optional(&self.write)
        .await?;
        row.map(|r| {
            Ok(IdempotentResponse {
                request_hash: r.try_get("request_hash")?,
                status: r.try_get::<i64, _>("status")? as u16,
                body: r.try_get("body")?,
            })
        })
        .transpose()
    }

    async fn save_idempotent_response(
        &self,
        account_id: &str,
        key: &str,
        response: IdempotentResponse,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO idempotency_keys (account_id, idem_key, request_hash, status, body, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (account_id, idem_key) DO NOTHING",
        )
        .bind(account_id)
        .bind(key)
        .bind(&response.request_hash)
        .bind(response.status as i64)
        .bind(&response.body)
        .bind(now().0)
        .execute(&self.write)
        .await?;
        Ok(())
    }
}
