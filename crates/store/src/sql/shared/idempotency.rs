//! Stored answers to admin `POST`s that carried an `Idempotency-Key`, and the claim that makes
//! concurrent retries do the work once. A claim is a row with status 0 and an empty body,
//! inserted (unique on account and key) before the work; the answer replaces it.

use super::SqlStore;
use crate::{IdempotencyClaim, IdempotencyStore, IdempotentResponse, Result, now};
use async_trait::async_trait;
use keygate_domain::Timestamp;
use sqlx::Row;

#[async_trait]
impl IdempotencyStore for SqlStore {
    async fn claim_idempotency_key(
        &self,
        account_id: &str,
        key: &str,
        request_hash: &str,
        stale_before: Timestamp,
    ) -> Result<IdempotencyClaim> {
        // A claim released between the insert and the read: claim again.
        for _ in 0..3 {
            let at = now();
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (account_id, idem_key, request_hash, status, body, \
                 created_at) VALUES ($1, $2, $3, 0, '', $4) \
                 ON CONFLICT (account_id, idem_key) DO NOTHING",
            )
            .bind(account_id)
            .bind(key)
            .bind(request_hash)
            .bind(at.0)
            .execute(&self.write)
            .await?
            .rows_affected();
            if inserted == 1 {
                return Ok(IdempotencyClaim::Claimed);
            }
            let taken_over = sqlx::query(
                "UPDATE idempotency_keys SET request_hash = $3, created_at = $4 \
                 WHERE account_id = $1 AND idem_key = $2 AND status = 0 AND created_at < $5",
            )
            .bind(account_id)
            .bind(key)
            .bind(request_hash)
            .bind(at.0)
            .bind(stale_before.0)
            .execute(&self.write)
            .await?
            .rows_affected();
            if taken_over == 1 {
                tracing::warn!("an idempotency key's request never answered: running it again");
                return Ok(IdempotencyClaim::Claimed);
            }
            match self.idempotent_response(account_id, key).await? {
                Some(r) if r.status == 0 => {
                    return Ok(IdempotencyClaim::InProgress {
                        request_hash: r.request_hash,
                    });
                }
                Some(r) => return Ok(IdempotencyClaim::Answered(r)),
                None => continue,
            }
        }
        Ok(IdempotencyClaim::InProgress {
            request_hash: request_hash.to_string(),
        })
    }

    async fn release_idempotency_key(&self, account_id: &str, key: &str) -> Result<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE account_id = $1 AND idem_key = $2 AND status = 0",
        )
        .bind(account_id)
        .bind(key)
        .execute(&self.write)
        .await?;
        Ok(())
    }

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
        // Over this request's claim; never over an answer already stored.
        sqlx::query(
            "INSERT INTO idempotency_keys (account_id, idem_key, request_hash, status, body, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (account_id, idem_key) DO UPDATE SET status = excluded.status, \
             body = excluded.body, created_at = excluded.created_at \
             WHERE idempotency_keys.status = 0 \
             AND idempotency_keys.request_hash = excluded.request_hash",
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
