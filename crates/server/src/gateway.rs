//! Applying inbox events, in the request (low latency) and from a worker that finishes what a
//! crash left pending. Applying is idempotent: it reconciles licenses from the subscription
//! state, so applying an event twice changes nothing.
use crate::app::AppState;
use crate::platform_api::Incomplete;
use keygate_billing::{BillingEvent, BillingEventKind, Receipt};
use keygate_store::gateway::{InboxStatus, Integration, NewWebhookEvent};
use std::time::Duration;

/// Stores verified events (durable, de-duplicated on the platform's event id) and applies the
/// new ones: a webhook delivery's, or what a sync read (`raw` is the delivery's body, or the
/// object the sync read).
pub async fn receive(
    state: &AppState,
    integration: &Integration,
    events: Vec<BillingEvent>,
    raw: String,
) -> Result<Vec<Receipt>, keygate_store::StoreError> {
    let mut receipts = Vec::new();
    for event in events {
        let ignored = event.kind == BillingEventKind::Ignored;
        let new_event = NewWebhookEvent {
            provider_event_id: event.event_id.clone(),
            event_type: event.event_type.clone(),
            kind: event.kind.as_str().to_string(),
            occurred_at: event.occurred_at,
            raw_body: raw.clone(),
            normalized: serde_json::to_value(&event).unwrap_or_default(),
            verified: true,
            status: if ignored {
                InboxStatus::Ignored
            } else {
                InboxStatus::Pending
            },
        };
        let inserted = if !ignored && !event.needs_fetch.is_empty() {
            // Too thin to apply: stored first (so a slow platform API loses nothing), then
            // completed from the API and applied, or left for the worker or a replay.
            let mut inserted = state.store.insert_event(integration, new_event).await?;
            if inserted.new {
                inserted.status = apply(state, &integration.account_id, &inserted.id).await;
            }
            inserted
        } else {
            state.store.receive_event(integration, new_event).await?
        };
        receipts.push(Receipt {
            id: inserted.id,
            provider_event_id: event.event_id,
            event_type: event.event_type,
            status: inserted.status.to_string(),
            duplicate: !inserted.new,
        });
    }
    Ok(receipts)
}

/// Applies one stored event; returns its status afterwards (`applied`, `failed`, ...).
/// Failures are recorded on the event itself, never lost. An event the platform sent too thin
/// is first completed from the platform's API: until that succeeds it is not applied at all
/// (`pending` when the fetch may pass later, `failed` when the vendor must configure something).
pub async fn apply(state: &AppState, account_id: &str, event_id: &str) -> InboxStatus {
    match complete_then_apply(state, account_id, event_id).await {
        Ok(status) => status,
        Err(e) => {
            tracing::warn!(event_id, error = %e, "applying a billing event failed; it stays pending for the worker");
            InboxStatus::Pending
        }
    }
}

async fn complete_then_apply(
    state: &AppState,
    account_id: &str,
    event_id: &str,
) -> Result<InboxStatus, keygate_store::StoreError> {
    let stored = state.store.get_event(account_id, event_id).await?;
    let thin = serde_json::from_value::<keygate_billing::BillingEvent>(stored.event.clone())
        .ok()
        .filter(|event| stored.status != InboxStatus::Ignored && !event.needs_fetch.is_empty());
    if let (Some(event), Some(provider)) = (thin, keygate_billing::provider(&stored.provider)) {
        let integration = state
            .store
            .get_integration(account_id, &stored.integration_id)
            .await?;
        match crate::platform_api::complete(state, &integration, provider, event).await {
            Ok(completed) => {
                // The API's answer is as untrusted as a delivery: storable on both engines.
                let mut normalized = serde_json::to_value(&completed).unwrap_or_default();
                crate::text_guard::scrub_value(&mut normalized);
                state
                    .store
                    .complete_event(account_id, event_id, normalized)
                    .await?;
            }
            Err(Incomplete::Configure { code, message }) => {
                state
                    .store
                    .hold_event(account_id, event_id, InboxStatus::Failed, code, &message)
                    .await?;
                return Ok(InboxStatus::Failed);
            }
            Err(Incomplete::Retry { code, message }) => {
                tracing::info!(
                    event_id,
                    code,
                    "completing a billing event from the platform's API failed; the worker tries again"
                );
                state
                    .store
                    .hold_event(account_id, event_id, InboxStatus::Pending, code, &message)
                    .await?;
                return Ok(InboxStatus::Pending);
            }
        }
    }
    state.store.apply_event(account_id, event_id).await
}

/// Applies events left `pending` (process killed between storing and applying, or a
/// transient database error), at start and then every `every`.
pub async fn worker(state: AppState, every: Duration) {
    loop {
        match state.store.pending_events(100).await {
            Ok(pending) => {
                for (account_id, event_id) in pending {
                    apply(&state, &account_id, &event_id).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading pending billing events failed"),
        }
        tokio::time::sleep(every).await;
    }
}
