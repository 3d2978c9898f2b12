//! Applying one delivery: its customer, then its subscription or order and their licenses;
//! the outcome recorded on the inbox row and announced outbound.

use super::super::DbConn;
use super::super::batch::WriteBatch;
use super::super::outbound::enqueue_outbound_into;
use super::super::rows::parse_json;
use super::lookups::{Lookups, upsert_customer};
use super::subscriptions::{ApplyContext, apply_to_order, apply_to_subscription};
use crate::gateway::{InboxStatus, Integration};
use crate::{Result, now};
use keygate_domain::billing::BillingEvent;
use keygate_domain::reconcile::{IntegrationOptions, SubscriptionState};
use keygate_domain::{Actor, Policy};
use sqlx::Row;
use std::collections::HashMap;

/// What applying one event did, recorded on the event (`actions`).
pub(crate) struct Applied {
    pub(crate) actions: Vec<serde_json::Value>,
    /// License keys whose validation may have changed (cache invalidation after commit).
    pub(crate) touched_keys: Vec<String>,
}

/// Applies an event already in hand; its writes go into `batch`, which the caller sends.
pub(crate) async fn apply_loaded(
    tx: &mut DbConn,
    batch: &mut WriteBatch,
    integration: &Integration,
    event_id: &str,
    event: &BillingEvent,
    lookups: &Lookups,
    policies: &mut HashMap<String, Policy>,
) -> Result<ApplyOutcome> {
    let account_id = integration.account_id.as_str();
    let options: IntegrationOptions =
        serde_json::from_value(integration.options.clone()).unwrap_or_default();
    let actor = Actor::WebhookEvent(event_id.to_string());
    let cx = ApplyContext {
        integration,
        options: &options,
        actor: &actor,
    };
    let mut applied = Applied {
        actions: Vec::new(),
        touched_keys: Vec::new(),
    };
    let customer_id = upsert_customer(
        batch,
        account_id,
        &integration.provider,
        event,
        lookups,
        &actor,
        &mut applied,
    );
    // A subscription event; or an order event about an invoice of a known subscription
    // (Stripe refunds name only the invoice); or a one-time order.
    let mut subscription_id = event.subscription.as_ref().map(|s| s.external_id.clone());
    let mut looked_up = lookups.subscription.clone();
    if subscription_id.is_none()
        && let Some(order) = &event.order
    {
        let rows =
            sqlx::query("SELECT external_id, state FROM subscriptions WHERE integration_id = $1")
                .bind(&integration.id)
                .fetch_all(&mut *tx)
                .await?;
        for r in rows {
            let state: SubscriptionState = parse_json(r.try_get::<&str, _>("state")?)?;
            if state.has_order(&order.external_id) {
                subscription_id = Some(r.try_get("external_id")?);
                looked_up = None;
                break;
            }
        }
    }
    let outcome = match (&subscription_id, &event.order) {
        (Some(sub), _) => {
            let mut event = event.clone();
            if event.subscription.is_none() {
                event.subscription = Some(keygate_domain::billing::SubscriptionSnapshot::partial(
                    sub.clone(),
                ));
            }
            apply_to_subscription(
                tx,
                batch,
                &cx,
                &event,
                sub,
                looked_up,
                customer_id,
                policies,
                &mut applied,
            )
            .await?
        }
        (None, Some(order)) => {
            apply_to_order(
                tx,
                batch,
                &cx,
                event,
                &order.external_id,
                customer_id,
                policies,
                &mut applied,
            )
            .await?
        }
        (None, None) => Ok(()),
    };
    let (status, code, message) = match &outcome {
        Ok(()) => (InboxStatus::Applied, None, None),
        Err(e) => (InboxStatus::Failed, Some(e.code()), Some(e.to_string())),
    };
    let actions = serde_json::Value::Array(applied.actions);
    // Outbound: `billing_event.applied` / `billing_event.failed`.
    let (event_type, data) = billing_event_outbound(
        integration,
        event_id,
        event,
        status,
        &actions,
        code,
        &message,
    );
    enqueue_outbound_into(batch, account_id, event_type, &data);
    Ok(ApplyOutcome {
        status,
        actions: actions.to_string(),
        error_code: code,
        error: message,
        applied_at: outcome.is_ok().then(|| now().0),
        touched_keys: applied.touched_keys,
    })
}

/// What applying an event decided, for its inbox row.
pub(crate) struct ApplyOutcome {
    pub(crate) status: InboxStatus,
    pub(crate) actions: String,
    pub(crate) error_code: Option<&'static str>,
    pub(crate) error: Option<String>,
    pub(crate) applied_at: Option<i64>,
    pub(crate) touched_keys: Vec<String>,
}

/// `billing_event.applied` or `billing_event.failed`, and its data: the inbox event as the API
/// shows it, in short.
fn billing_event_outbound(
    integration: &Integration,
    event_id: &str,
    event: &BillingEvent,
    status: InboxStatus,
    actions: &serde_json::Value,
    code: Option<&str>,
    message: &Option<String>,
) -> (&'static str, String) {
    let event_type = if status == InboxStatus::Applied {
        "billing_event.applied"
    } else {
        "billing_event.failed"
    };
    let error = code.map(|c| serde_json::json!({"code": c, "message": message}));
    let data = serde_json::json!({
        "id": event_id,
        "integration_id": integration.id,
        "provider": integration.provider,
        "provider_event_id": event.event_id,
        "event_type": event.event_type,
        "kind": event.kind.as_str(),
        "occurred_at": event.occurred_at,
        "status": status,
        "actions": actions,
        "error": error,
    });
    (event_type, data.to_string())
}
