//! Applying inbox events, in the request (low latency) and from a worker that finishes what a
//! crash left pending. Applying is idempotent: it reconciles licenses from the subscription
//! state, so applying an event twice changes nothing.
use crate::app::AppState;
use crate::platform_api::Incomplete;
use keygate_store::gateway::InboxStatus;
use std::time::Duration;

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
        if let Err(e) = work_once(&state).await {
            tracing::warn!(error = %e, "reading pending billing events failed");
        }
        tokio::time::sleep(every).await;
    }
}

/// One pass of the [`worker`]: applies (completing first, where needed) up to 100 pending
/// events; returns how many it tried.
pub async fn work_once(state: &AppState) -> Result<usize, keygate_store::StoreError> {
    let pending = state.store.pending_events(100).await?;
    for (account_id, event_id) in &pending {
        apply(state, account_id, event_id).await;
    }
    Ok(pending.len())
}
