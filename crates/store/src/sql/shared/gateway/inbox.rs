//! The webhook inbox: every delivery stored once (unique on the platform's event id), applied
//! when it is new; and the platform subscriptions the deliveries keep up to date.

use super::super::batch::WriteBatch;
use super::super::engine::FOR_UPDATE;
use super::super::outbound::enqueue_outbound;
use super::super::rows::{ListQuery, fetch_page, parse_json, ts};
use super::super::{DbConn, DbRow, SqlStore};
use super::apply::apply_loaded;
use super::group_commit::{RECEIVE_ATTEMPTS, ReceiveJob, receive_together};
use super::integrations::load_integration;
use super::lookups::lookups;
use crate::gateway::{
    EventError, EventFilter, InboxStatus, InboxStore, Inserted, Integration, NewWebhookEvent,
    Subscription, WebhookEvent,
};
use crate::sql::is_unique_violation;
use crate::{PageRequest, Result, StoreError, now};
use async_trait::async_trait;
use keygate_domain::billing::BillingEvent;
use keygate_domain::{Page, new_id};
use sqlx::Row;
use std::collections::HashMap;

pub(crate) const EVENT_COLS: &str = "id, account_id, integration_id, provider, provider_event_id, \
     event_type, kind, occurred_at, received_at, normalized, verified, status, actions, \
     error_code, error, attempts, applied_at";
const SUBSCRIPTION_COLS: &str = "id, integration_id, provider, external_id, customer_id, \
     status, current_period_end, last_event_at, state, created_at, updated_at";

pub(crate) fn inbox_status(row: &DbRow) -> Result<InboxStatus> {
    let status: String = row.try_get("status")?;
    InboxStatus::parse(&status)
        .ok_or_else(|| StoreError::Corrupt(format!("inbox event status `{status}`")))
}

fn event_from_row(row: &DbRow) -> Result<WebhookEvent> {
    let code: Option<String> = row.try_get("error_code")?;
    let message: Option<String> = row.try_get("error")?;
    Ok(WebhookEvent {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        integration_id: row.try_get("integration_id")?,
        provider: row.try_get("provider")?,
        provider_event_id: row.try_get("provider_event_id")?,
        event_type: row.try_get("event_type")?,
        kind: row.try_get("kind")?,
        occurred_at: ts(row.try_get("occurred_at")?),
        received_at: ts(row.try_get("received_at")?),
        verified: row.try_get("verified")?,
        status: inbox_status(row)?,
        actions: parse_json(row.try_get::<&str, _>("actions")?)?,
        error: code.map(|code| EventError {
            code,
            message: message.unwrap_or_default(),
        }),
        attempts: row.try_get("attempts")?,
        applied_at: row.try_get::<Option<i64>, _>("applied_at")?.map(ts),
        event: parse_json(row.try_get::<&str, _>("normalized")?)?,
        raw_payload: None,
    })
}

fn subscription_from_row(row: &DbRow) -> Result<Subscription> {
    Ok(Subscription {
        id: row.try_get("id")?,
        integration_id: row.try_get("integration_id")?,
        provider: row.try_get("provider")?,
        external_id: row.try_get("external_id")?,
        customer_id: row.try_get("customer_id")?,
        status: row.try_get("status")?,
        current_period_end: row.try_get::<Option<i64>, _>("current_period_end")?.map(ts),
        last_event_at: row.try_get::<Option<i64>, _>("last_event_at")?.map(ts),
        state: parse_json(row.try_get::<&str, _>("state")?)?,
        created_at: ts(row.try_get("created_at")?),
        updated_at: ts(row.try_get("updated_at")?),
    })
}

async fn insert_event_in(
    conn: &mut DbConn,
    integration: &Integration,
    event: NewWebhookEvent,
) -> Result<Inserted> {
    let id = new_id();
    let inserted = sqlx::query(
        "INSERT INTO webhook_events (id, account_id, integration_id, provider, \
         provider_event_id, event_type, kind, occurred_at, received_at, raw_body, normalized, \
         verified, status, actions, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
         $10, $11, $12, $13, '[]', 0) ON CONFLICT (integration_id, provider_event_id) DO NOTHING",
    )
    .bind(&id)
    .bind(&integration.account_id)
    .bind(&integration.id)
    .bind(&integration.provider)
    .bind(&event.provider_event_id)
    .bind(&event.event_type)
    .bind(&event.kind)
    .bind(event.occurred_at.0)
    .bind(now().0)
    .bind(&event.raw_body)
    .bind(event.normalized.to_string())
    .bind(event.verified)
    .bind(event.status.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Inserted {
            id,
            new: true,
            status: event.status,
        });
    }
    let row = sqlx::query(
        "SELECT id, status FROM webhook_events WHERE integration_id = $1 \
         AND provider_event_id = $2",
    )
    .bind(&integration.id)
    .bind(&event.provider_event_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Inserted {
        id: row.try_get("id")?,
        new: false,
        status: inbox_status(&row)?,
    })
}

#[async_trait]
impl InboxStore for SqlStore {
    async fn insert_event(
        &self,
        integration: &Integration,
        event: NewWebhookEvent,
    ) -> Result<Inserted> {
        self.write_tx(async |tx| insert_event_in(tx, integration, event).await)
            .await
    }

    async fn receive_event(
        &self,
        integration: &Integration,
        event: NewWebhookEvent,
    ) -> Result<Inserted> {
        let parsed: BillingEvent = serde_json::from_value(event.normalized.clone())?;
        let job = ReceiveJob {
            integration: integration.clone(),
            normalized: event.normalized.to_string(),
            event,
            parsed,
        };
        let (inserted, touched) = match &self.group_commit {
            Some(queue) => {
                let (reply, answer) = tokio::sync::oneshot::channel();
                queue
                    .send((job, reply))
                    .await
                    .map_err(|_| StoreError::Config("the gateway writer has stopped".into()))?;
                answer.await.map_err(|_| {
                    StoreError::Config("the gateway writer dropped this delivery".into())
                })??
            }
            None => {
                let mut attempt = 1;
                loop {
                    match receive_together(&self.write, std::slice::from_ref(&job)).await {
                        // Another node took the same new delivery, subscription or customer at
                        // once: applied again, this one sees the winner's rows.
                        Err(StoreError::Database(e))
                            if is_unique_violation(&e) && attempt < RECEIVE_ATTEMPTS =>
                        {
                            attempt += 1;
                        }
                        other => break other.map(|mut all| all.remove(0))?,
                    }
                }
            }
        };
        for key in touched {
            self.invalidate_key(&key);
        }
        Ok(inserted)
    }

    async fn list_events(
        &self,
        account_id: &str,
        filter: EventFilter,
        page: PageRequest,
    ) -> Result<Page<WebhookEvent>> {
        let mut q = ListQuery::new(account_id);
        if let Some(v) = filter.integration_id {
            q.push("integration_id = ?", v);
        }
        if let Some(v) = filter.status {
            q.push("status = ?", v);
        }
        if let Some(v) = filter.event_type {
            let n = q.args.len() + 1;
            q.args.push(v);
            q.conditions
                .push(format!("(event_type = ${n} OR kind = ${n})"));
        }
        let q = q.sql("webhook_events", EVENT_COLS, &page);
        fetch_page(&self.read, q, &page, event_from_row, |e| e.id.clone()).await
    }

    async fn get_event(&self, account_id: &str, id: &str) -> Result<WebhookEvent> {
        let sql = format!(
            "SELECT {EVENT_COLS}, raw_body FROM webhook_events WHERE account_id = $1 AND id = $2"
        );
        let row = sqlx::query(&sql)
            .bind(account_id)
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .ok_or(StoreError::NotFound("event"))?;
        let mut event = event_from_row(&row)?;
        event.raw_payload = Some(row.try_get("raw_body")?);
        Ok(event)
    }

    async fn apply_event(&self, account_id: &str, event_id: &str) -> Result<InboxStatus> {
        let (status, touched) = self.apply_event_tx(account_id, event_id).await?;
        for key in touched {
            self.invalidate_key(&key);
        }
        Ok(status)
    }

    async fn complete_event(
        &self,
        account_id: &str,
        event_id: &str,
        normalized: serde_json::Value,
    ) -> Result<()> {
        self.write_tx(async |tx| {
            sqlx::query(
                "UPDATE webhook_events SET normalized = $3 WHERE account_id = $1 AND id = $2",
            )
            .bind(account_id)
            .bind(event_id)
            .bind(normalized.to_string())
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
        .await
    }

    async fn hold_event(
        &self,
        account_id: &str,
        event_id: &str,
        status: InboxStatus,
        code: &str,
        message: &str,
    ) -> Result<()> {
        let message: String = message.chars().take(1000).collect();
        self.write_tx(async |tx| {
            sqlx::query(
                "UPDATE webhook_events SET status = $3, error_code = $4, error = $5, \
                 attempts = attempts + 1 WHERE account_id = $1 AND id = $2",
            )
            .bind(account_id)
            .bind(event_id)
            .bind(status.as_str())
            .bind(code)
            .bind(&message)
            .execute(&mut *tx)
            .await?;
            if status == InboxStatus::Failed {
                // Held for something the vendor must configure: said to their systems as any
                // other failed event is (a pending one is still being retried).
                let row = sqlx::query(
                    "SELECT e.integration_id, e.provider, e.normalized FROM webhook_events e \
                     WHERE e.account_id = $1 AND e.id = $2",
                )
                .bind(account_id)
                .bind(event_id)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(row) = row {
                    let integration_id: String = row.try_get("integration_id")?;
                    let provider: String = row.try_get("provider")?;
                    let normalized: String = row.try_get("normalized")?;
                    let event: BillingEvent = parse_json(&normalized)?;
                    let data = serde_json::json!({
                        "id": event_id,
                        "integration_id": integration_id,
                        "provider": provider,
                        "provider_event_id": event.event_id,
                        "event_type": event.event_type,
                        "kind": event.kind.as_str(),
                        "occurred_at": event.occurred_at,
                        "status": status,
                        "actions": [],
                        "error": {"code": code, "message": message},
                    });
                    enqueue_outbound(
                        &mut *tx,
                        account_id,
                        "billing_event.failed",
                        &data.to_string(),
                    )
                    .await?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn pending_events(&self, limit: i64) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(&format!(
            "SELECT account_id, id FROM webhook_events WHERE status = '{}' ORDER BY id \
             LIMIT {limit}",
            InboxStatus::Pending
        ))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("account_id")?, r.try_get("id")?)))
            .collect()
    }

    async fn order_license_keys(
        &self,
        integration: &Integration,
        order_external_id: &str,
        item_external_id: &str,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT l.license_key FROM orders o JOIN licenses l \
             ON l.account_id = o.account_id AND l.order_id = o.id \
             WHERE o.integration_id = $1 AND o.external_id = $2 AND o.account_id = $3 \
             AND l.item_external_id = $4 ORDER BY l.id",
        )
        .bind(&integration.id)
        .bind(order_external_id)
        .bind(&integration.account_id)
        .bind(item_external_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("license_key")?)).collect()
    }

    async fn list_subscriptions(
        &self,
        account_id: &str,
        page: PageRequest,
    ) -> Result<Page<Subscription>> {
        let q = ListQuery::new(account_id).sql("subscriptions", SUBSCRIPTION_COLS, &page);
        fetch_page(&self.read, q, &page, subscription_from_row, |s| {
            s.id.clone()
        })
        .await
    }

    async fn get_subscription(&self, account_id: &str, id: &str) -> Result<Subscription> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLS} FROM subscriptions WHERE account_id = $1 AND id = $2"
        );
        let row = sqlx::query(&sql)
            .bind(account_id)
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .ok_or(StoreError::NotFound("subscription"))?;
        subscription_from_row(&row)
    }
}

impl SqlStore {
    async fn apply_event_tx(
        &self,
        account_id: &str,
        event_id: &str,
    ) -> Result<(InboxStatus, Vec<String>)> {
        self.write_tx(async |tx| apply_stored(tx, account_id, event_id).await)
            .await
    }
}

/// Applies a stored inbox event inside the caller's transaction; returns the event's new
/// status and the license keys whose validation may have changed.
async fn apply_stored(
    tx: &mut DbConn,
    account_id: &str,
    event_id: &str,
) -> Result<(InboxStatus, Vec<String>)> {
    let sql = format!(
        "SELECT {EVENT_COLS} FROM webhook_events WHERE account_id = $1 AND id = $2{FOR_UPDATE}"
    );
    let row = sqlx::query(&sql)
        .bind(account_id)
        .bind(event_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("event"))?;
    let stored = event_from_row(&row)?;
    if stored.status == InboxStatus::Ignored {
        return Ok((stored.status, Vec::new()));
    }
    let event: BillingEvent = serde_json::from_value(stored.event.clone())?;
    let integration = load_integration(tx, account_id, &stored.integration_id).await?;
    let mut batch = WriteBatch::new();
    let lookups = lookups(tx, &mut batch, &integration, None, &event).await?;
    let mut policies = HashMap::new();
    let outcome = apply_loaded(
        tx,
        &mut batch,
        &integration,
        event_id,
        &event,
        &lookups,
        &mut policies,
    )
    .await?;
    batch
        .push(
            "UPDATE webhook_events SET status = $2, actions = $3, error_code = $4, error = $5, \
             attempts = attempts + 1, applied_at = $6 WHERE id = $1",
        )
        .bind(event_id.to_string())
        .bind(outcome.status.as_str())
        .bind(outcome.actions)
        .bind(outcome.error_code)
        .bind(outcome.error)
        .bind(outcome.applied_at);
    batch.flush(tx).await?;
    Ok((outcome.status, outcome.touched_keys))
}
