//! Deliveries of outbound events: as the API lists and retries them, and as the worker claims,
//! sends and finishes them.

use super::super::engine::SKIP_LOCKED;
use super::super::rows::{ListQuery, fetch_page, parse_json, placeholders, ts};
use super::super::{DbConn, DbRow, SqlStore};
use super::endpoints::load_endpoint;
use crate::outbound::{
    Attempt, AttemptRecord, Delivery, DeliveryStatus, DeliveryStore, DueDelivery, Outcome,
};
use crate::{PageRequest, Result, StoreError, now};
use async_trait::async_trait;
use keygate_domain::ErrorCode;
use keygate_domain::{Page, Timestamp, new_id};
use sqlx::Row;
use std::collections::HashMap;

const DELIVERY_COLS: &str = "id, endpoint_id, event_type, payload, status, attempts, \
     next_attempt_at, last_status, last_error, last_attempt_at, created_at, updated_at";

fn delivery_from_row(row: &DbRow) -> Result<Delivery> {
    let stored: String = row.try_get("status")?;
    let status = DeliveryStatus::parse(&stored)
        .ok_or_else(|| StoreError::Corrupt(format!("delivery status `{stored}`")))?;
    Ok(Delivery {
        id: row.try_get("id")?,
        endpoint_id: row.try_get("endpoint_id")?,
        event_type: row.try_get("event_type")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: if status == DeliveryStatus::Pending {
            Some(ts(row.try_get("next_attempt_at")?))
        } else {
            None
        },
        status,
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
        last_attempt_at: row.try_get::<Option<i64>, _>("last_attempt_at")?.map(ts),
        created_at: ts(row.try_get("created_at")?),
        updated_at: ts(row.try_get("updated_at")?),
        payload: stored_payload(row.try_get::<&str, _>("payload")?),
        attempt_log: Vec::new(),
    })
}

/// The payload as JSON, or as its text when it cannot be read back: rows written before
/// metadata depth was capped can nest deeper than the parser's recursion limit, and one such
/// row must not make every page of the log that holds it fail (the worker sends the text
/// as stored, unparsed).
fn stored_payload(text: &str) -> serde_json::Value {
    parse_json(text).unwrap_or_else(|_| serde_json::Value::String(text.to_string()))
}

/// Attaches every delivery's attempts (one query for the page).
async fn attach_attempts(
    conn: &mut DbConn,
    endpoint_id: &str,
    deliveries: &mut [Delivery],
) -> Result<()> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT message_id, attempted_at, status_code, error, response_body, duration_ms \
         FROM outbound_attempts WHERE endpoint_id = $1 AND message_id IN ({}) ORDER BY id",
        placeholders(2, deliveries.len())
    );
    let mut q = sqlx::query(&sql).bind(endpoint_id);
    for d in deliveries.iter() {
        q = q.bind(d.id.as_str());
    }
    let index: HashMap<String, usize> = deliveries
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.clone(), i))
        .collect();
    for row in q.fetch_all(&mut *conn).await? {
        let id: String = row.try_get("message_id")?;
        if let Some(&i) = index.get(&id) {
            deliveries[i].attempt_log.push(Attempt {
                attempted_at: ts(row.try_get("attempted_at")?),
                status_code: row.try_get("status_code")?,
                error: row.try_get("error")?,
                response_body: row.try_get("response_body")?,
                duration_ms: row.try_get("duration_ms")?,
            });
        }
    }
    Ok(())
}

#[async_trait]
impl DeliveryStore for SqlStore {
    async fn list_deliveries(
        &self,
        account_id: &str,
        endpoint_id: &str,
        status: Option<String>,
        page: PageRequest,
    ) -> Result<Page<Delivery>> {
        let mut conn = self.read.acquire().await?;
        load_endpoint(&mut conn, account_id, endpoint_id).await?;
        let mut q = ListQuery::new(account_id);
        q.push("endpoint_id = ?", endpoint_id);
        match status.as_deref().map(|s| (s, DeliveryStatus::parse(s))) {
            None => {}
            Some((_, Some(status))) => q.push("status = ?", status.as_str()),
            Some((other, None)) => {
                return Err(StoreError::invalid(
                    ErrorCode::InvalidFilter,
                    format!("`status` must be pending, succeeded or failed, not `{other}`"),
                ));
            }
        }
        let q = q.sql("outbound_deliveries", DELIVERY_COLS, &page);
        let mut page =
            fetch_page(&self.read, q, &page, delivery_from_row, |d| d.id.clone()).await?;
        attach_attempts(&mut conn, endpoint_id, &mut page.data).await?;
        Ok(page)
    }

    async fn retry_delivery(
        &self,
        account_id: &str,
        endpoint_id: &str,
        message_id: &str,
    ) -> Result<Delivery> {
        self.write_tx(async |tx| {
            let endpoint = load_endpoint(tx, account_id, endpoint_id).await?;
            if !endpoint.enabled {
                return Err(StoreError::conflict(
                    ErrorCode::EndpointDisabled,
                    "the endpoint is disabled: enable it first (PATCH enabled: true)",
                ));
            }
            let at = now();
            let sql = format!(
                "UPDATE outbound_deliveries SET status = 'pending', next_attempt_at = $4, \
             locked_until = NULL, updated_at = $4 \
             WHERE account_id = $1 AND endpoint_id = $2 AND id = $3 RETURNING {DELIVERY_COLS}"
            );
            let row = sqlx::query(&sql)
                .bind(account_id)
                .bind(endpoint_id)
                .bind(message_id)
                .bind(at.0)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound("delivery"))?;
            let mut delivery = [delivery_from_row(&row)?];
            attach_attempts(tx, endpoint_id, &mut delivery).await?;
            let [delivery] = delivery;
            Ok(delivery)
        })
        .await
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: i64,
    ) -> Result<Vec<DueDelivery>> {
        // The subquery's row locks (PostgreSQL) re-check its conditions on the newest version
        // of a row another node changed meanwhile; the outer lease test is a second guard that
        // lets the UPDATE find its rows by primary key.
        let sql = format!(
            "UPDATE outbound_deliveries SET locked_until = $2 \
             WHERE (locked_until IS NULL OR locked_until < $1) AND (endpoint_id, id) IN \
             (SELECT d.endpoint_id, d.id FROM outbound_deliveries d \
             WHERE d.status = 'pending' AND d.next_attempt_at <= $1 \
             AND (d.locked_until IS NULL OR d.locked_until < $1) \
             AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = d.endpoint_id AND e.enabled) \
             ORDER BY d.next_attempt_at LIMIT {limit}{SKIP_LOCKED}) \
             RETURNING id, endpoint_id, account_id, event_type, payload, attempts"
        );
        let (rows, endpoints) = self
            .write_tx(async |tx| {
                let rows = sqlx::query(&sql)
                    .bind(now.0)
                    .bind(lease_until.0)
                    .fetch_all(&mut *tx)
                    .await?;
                let mut endpoints: HashMap<String, (String, String, Option<String>)> =
                    HashMap::new();
                if rows.is_empty() {
                    return Ok((rows, endpoints));
                }
                let mut endpoint_ids: Vec<String> = rows
                    .iter()
                    .map(|r| r.try_get("endpoint_id"))
                    .collect::<std::result::Result<_, _>>()?;
                endpoint_ids.sort();
                endpoint_ids.dedup();
                let sql = format!(
                    "SELECT id, url, secret, previous_secret, previous_secret_expires_at \
             FROM webhook_endpoints WHERE id IN ({})",
                    placeholders(1, endpoint_ids.len())
                );
                let mut q = sqlx::query(&sql);
                for id in &endpoint_ids {
                    q = q.bind(id.as_str());
                }
                for row in q.fetch_all(&mut *tx).await? {
                    let previous: Option<String> = row.try_get("previous_secret")?;
                    let until: Option<i64> = row.try_get("previous_secret_expires_at")?;
                    let previous = previous.filter(|_| until.is_some_and(|u| u > now.0));
                    endpoints.insert(
                        row.try_get("id")?,
                        (row.try_get("url")?, row.try_get("secret")?, previous),
                    );
                }
                Ok((rows, endpoints))
            })
            .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let endpoint_id: String = row.try_get("endpoint_id")?;
            let Some((url, secret, previous)) = endpoints.get(&endpoint_id) else {
                continue;
            };
            claimed.push(DueDelivery {
                message_id: row.try_get("id")?,
                account_id: row.try_get("account_id")?,
                event_type: row.try_get("event_type")?,
                payload: row.try_get("payload")?,
                attempts: row.try_get("attempts")?,
                url: url.clone(),
                sealed_secret: secret.clone(),
                sealed_previous_secret: previous.clone(),
                endpoint_id,
            });
        }
        Ok(claimed)
    }

    async fn finish_delivery(
        &self,
        d: &DueDelivery,
        attempt: AttemptRecord,
        outcome: Outcome,
    ) -> Result<()> {
        let at = attempt.attempted_at;
        let (status, next) = match outcome {
            Outcome::Succeeded => (DeliveryStatus::Succeeded, at),
            Outcome::Retry(next) => (DeliveryStatus::Pending, next),
            Outcome::Failed | Outcome::Gone => (DeliveryStatus::Failed, at),
        };
        self.write_tx(async |tx| {
        sqlx::query(
            "UPDATE outbound_deliveries SET status = $3, attempts = attempts + 1, \
             next_attempt_at = $4, locked_until = NULL, last_status = $5, last_error = $6, \
             last_attempt_at = $7, updated_at = $8 WHERE endpoint_id = $1 AND id = $2",
        )
        .bind(&d.endpoint_id)
        .bind(&d.message_id)
        .bind(status.as_str())
        .bind(next.0)
        .bind(attempt.status_code.map(i64::from))
        .bind(&attempt.error)
        .bind(at.0)
        .bind(now().0)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO outbound_attempts (id, endpoint_id, message_id, attempted_at, \
             status_code, error, response_body, duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(new_id())
        .bind(&d.endpoint_id)
        .bind(&d.message_id)
        .bind(at.0)
        .bind(attempt.status_code.map(i64::from))
        .bind(&attempt.error)
        .bind(&attempt.response_body)
        .bind(attempt.duration_ms)
        .execute(&mut *tx)
        .await?;
        if outcome == Outcome::Gone {
            sqlx::query(
                "UPDATE webhook_endpoints SET enabled = $2, disabled_reason = $3, updated_at = $4 \
                 WHERE id = $1",
            )
            .bind(&d.endpoint_id)
            .bind(false)
            .bind(format!(
                "the endpoint answered 410 Gone at {}",
                at.to_rfc3339()
            ))
            .bind(now().0)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
        })
        .await
    }

    async fn prune_deliveries(&self, before: Timestamp, limit: i64) -> Result<u64> {
        // A finished delivery's next_attempt_at is its last attempt: the due index finds them.
        let old = format!(
            "SELECT endpoint_id, id FROM outbound_deliveries WHERE status IN ('succeeded', 'failed') \
             AND next_attempt_at < $1 ORDER BY next_attempt_at LIMIT {limit}"
        );
        self.write_tx(async |tx| {
            sqlx::query(&format!(
                "DELETE FROM outbound_attempts WHERE (endpoint_id, message_id) IN ({old})"
            ))
            .bind(before.0)
            .execute(&mut *tx)
            .await?;
            let deleted = sqlx::query(&format!(
                "DELETE FROM outbound_deliveries WHERE (endpoint_id, id) IN ({old})"
            ))
            .bind(before.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            Ok(deleted)
        })
        .await
    }
}
