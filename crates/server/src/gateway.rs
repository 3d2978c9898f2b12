//! Applying inbox events, in the request (low latency) and from a worker that finishes what a
//! crash left pending. Applying is idempotent: it reconciles licenses from the subscription
//! state, so applying an event twice changes nothing.
use crate::app::AppState;
use std::time::Duration;

/// Applies one stored event; returns its status afterwards (`applied`, `failed`, ...).
/// Failures are recorded on the event itself, never lost.
pub async fn apply(state: &AppState, account_id: &str, event_id: &str) -> String {
    match state.store.apply_event(account_id, event_id).await {
        Ok(status) => status.to_string(),
        Err(e) => {
            tracing::warn!(event_id, error = %e, "applying a billing event failed; it stays pending for the worker");
            "pending".to_string()
        }
    }
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
