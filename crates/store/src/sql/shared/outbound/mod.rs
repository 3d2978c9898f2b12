//! Outbound webhooks: the outbox every change enqueues into (here), the endpoints it is sent
//! to, the deliveries and their attempts, and the sweep that announces expiries.

mod deliveries;
mod endpoints;
mod sweeper;

use super::DbConn;
use super::batch::WriteBatch;
use crate::{Result, now};
use keygate_domain::new_id;

/// The outbox: one row per subscribed, enabled endpoint of the account, in one statement (and
/// nothing more when the account has no endpoint). `$1` is the message id (`webhook-id`).
const ENQUEUE_SQL: &str = "INSERT INTO outbound_deliveries (id, endpoint_id, account_id, \
     event_type, payload, status, attempts, next_attempt_at, created_at, updated_at) \
     SELECT $1, e.id, $2, $3, '{\"type\":\"' || $3 || '\",\"timestamp\":\"' || $6 || \
     '\",\"data\":' || $4 || '}', 'pending', 0, $5, $5, $5 FROM webhook_endpoints e \
     WHERE e.account_id = $2 AND e.enabled AND (e.event_types = '*' OR e.event_types LIKE $7)";

/// Enqueues `event_type` with `data` (JSON text) for the account's subscribed endpoints, in the
/// caller's transaction: the event is durable exactly when the change is.
pub(crate) async fn enqueue_outbound(
    conn: &mut DbConn,
    account_id: &str,
    event_type: &str,
    data: &str,
) -> Result<()> {
    let mut batch = WriteBatch::new();
    enqueue_outbound_into(&mut batch, account_id, event_type, data);
    batch.flush(conn).await
}

/// The same, as part of a change's write batch.
pub(crate) fn enqueue_outbound_into(
    batch: &mut WriteBatch,
    account_id: &str,
    event_type: &str,
    data: &str,
) {
    let at = now();
    // The payload `{"type", "timestamp", "data"}` is assembled by the statement, only for the
    // endpoints it finds. Event types are a fixed list of plain words: nothing to escape.
    batch
        .push(ENQUEUE_SQL)
        .bind(format!("msg_{}", new_id()))
        .bind(account_id.to_string())
        .bind(event_type.to_string())
        .bind(data.to_string())
        .bind(at.0)
        .bind(at.to_rfc3339())
        .bind(format!("%,{event_type},%"));
    crate::outbound::ENQUEUED.notify_one();
}
