//! Refused webhook deliveries (bad signature, stale timestamp, malformed body): kept in memory
//! per integration and written to the database in batches by a background task (and at
//! shutdown), never one write per refusal. Anyone who knows a webhook URL can send junk to it;
//! this way junk costs a lock and a few bytes, not a turn of SQLite's single writer. Every
//! refusal is also counted in `/metrics` (`keygate_webhook_refusals_total`).
//!
//! What is lost: refusals not yet flushed when the process dies without a clean stop (at most
//! one flush interval's worth), and the oldest of a burst above [`FAILURE_LOG_SIZE`] between
//! two flushes (the log keeps the newest that many anyway).
use crate::app::AppState;
use keygate_domain::{ErrorCode, Timestamp, new_id};
use keygate_store::gateway::{FAILURE_LOG_SIZE, Integration, WebhookFailure};
use keygate_store::{Result, Store};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default)]
pub struct FailureLog {
    pending: Mutex<HashMap<String, Pending>>,
}

/// An integration's refusals not written yet, newest first.
struct Pending {
    account_id: String,
    failures: VecDeque<WebhookFailure>,
}

const KEPT: usize = FAILURE_LOG_SIZE as usize;

impl FailureLog {
    pub fn record(&self, integration: &Integration, code: ErrorCode, message: &str) {
        let failure = WebhookFailure {
            id: new_id(),
            integration_id: integration.id.clone(),
            code: code.as_str().to_string(),
            message: message.chars().take(1000).collect(),
            received_at: Timestamp::now(),
        };
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let entry = pending
            .entry(integration.id.clone())
            .or_insert_with(|| Pending {
                account_id: integration.account_id.clone(),
                failures: VecDeque::new(),
            });
        entry.failures.push_front(failure);
        entry.failures.truncate(KEPT);
    }

    /// The integration's refusals not written yet, newest first.
    fn unwritten(&self, account_id: &str, integration_id: &str) -> Vec<WebhookFailure> {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending
            .get(integration_id)
            .filter(|p| p.account_id == account_id)
            .map(|p| p.failures.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Writes out everything pending: one transaction per integration. Entries leave memory
    /// only once written (a listing meanwhile sees them in one place or both: deduplicated);
    /// what cannot be written stays for the next flush.
    pub async fn flush(&self, store: &dyn Store) -> usize {
        let snapshot: Vec<(String, String, Vec<WebhookFailure>)> = {
            let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending
                .iter()
                // Oldest first, so the time-ordered ids go in as they came.
                .map(|(id, p)| {
                    (
                        id.clone(),
                        p.account_id.clone(),
                        p.failures.iter().rev().cloned().collect(),
                    )
                })
                .collect()
        };
        let mut written = 0;
        for (integration_id, account_id, failures) in snapshot {
            match store
                .record_webhook_failures(&account_id, &integration_id, &failures)
                .await
            {
                Ok(()) => {
                    written += failures.len();
                    let done: std::collections::HashSet<&str> =
                        failures.iter().map(|f| f.id.as_str()).collect();
                    let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(p) = pending.get_mut(&integration_id) {
                        p.failures.retain(|f| !done.contains(f.id.as_str()));
                        if p.failures.is_empty() {
                            pending.remove(&integration_id);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not write refused webhook deliveries");
                }
            }
        }
        written
    }
}

/// The last [`FAILURE_LOG_SIZE`] refusals of an integration of this account, newest first:
/// the written ones and those still in memory.
pub async fn list(
    state: &AppState,
    account_id: &str,
    integration_id: &str,
) -> Result<Vec<WebhookFailure>> {
    // The store answers NotFound for another account's integration.
    let mut all = state
        .store
        .list_webhook_failures(account_id, integration_id)
        .await?;
    let written: std::collections::HashSet<String> = all.iter().map(|f| f.id.clone()).collect();
    all.extend(
        state
            .failure_log
            .unwritten(account_id, integration_id)
            .into_iter()
            .filter(|f| !written.contains(&f.id)),
    );
    all.sort_by(|a, b| b.id.cmp(&a.id));
    all.truncate(KEPT);
    Ok(all)
}

/// The background task: flushes every `KEYGATE_FAILURE_LOG_FLUSH_SECONDS`.
pub async fn flusher(state: AppState) {
    let every = Duration::from_secs_f64(state.config.failure_log_flush_seconds);
    loop {
        tokio::time::sleep(every).await;
        state.failure_log.flush(state.store.as_ref()).await;
    }
}
