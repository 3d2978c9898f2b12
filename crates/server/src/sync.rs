//! The periodic sync (issue: missed webhooks are never redelivered by some platforms —
//! WooCommerce never retries, Lemon Squeezy gives up after minutes): the platform's objects
//! changed since the last sync are read through its API and go the way a webhook delivery
//! goes (stored, de-duplicated on the same event ids, applied). The platform module says what
//! to list and how to read a page (`Provider::sync_requests`, `Provider::parse_sync_page`);
//! nothing here is about one platform.
//!
//! A run starts from `synced_until` minus [`OVERLAP`] (objects modified while the last run
//! read are read again: duplicates, harmless), and only a run that read every page moves
//! `synced_until` to its own start. A failed run records why and keeps the cursor.
use crate::app::AppState;
use crate::platform_api::{ApiClient, Incomplete};
use keygate_billing::Provider;
use keygate_billing::api::ListPage;
use keygate_domain::Timestamp;
use keygate_store::gateway::Integration;
use serde::Serialize;
use std::time::Duration;

/// Read again before the last sync's start: clocks and the platform's own indexing differ.
pub const OVERLAP_SECONDS: i64 = 300;
/// Pages read per listing in one run, at most (the rest is read by the next run, since the
/// cursor does not move).
pub const MAX_PAGES: usize = 100;
/// How often the worker looks for due syncs.
pub const WORKER_TICK: Duration = Duration::from_secs(1);

/// What a sync run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    pub integration_id: String,
    pub started_at: Option<Timestamp>,
    /// Objects changed after this were asked for (`None`: everything, a first sync).
    pub since: Option<Timestamp>,
    pub pages: usize,
    pub objects: usize,
    pub events: usize,
    /// Events Keygate did not have yet (what webhooks missed).
    pub new_events: usize,
    pub duplicates: usize,
    /// Every page of every listing was read; `synced_until` moved to `started_at`.
    pub complete: bool,
    pub error: Option<SyncError>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SyncError {
    pub code: String,
    pub message: String,
}

/// Whether the platform has a sync at all.
pub fn supported(provider: &dyn Provider) -> bool {
    !provider.sync_requests(None).is_empty()
}

/// One run for `integration`; its outcome is recorded on the integration's sync state.
pub async fn run(
    state: &AppState,
    integration: &Integration,
) -> Result<SyncReport, keygate_store::StoreError> {
    let started = Timestamp::now();
    let mut report = SyncReport {
        integration_id: integration.id.clone(),
        started_at: Some(started),
        ..SyncReport::default()
    };
    let outcome = read_all(state, integration, &mut report).await;
    let error = match outcome {
        Ok(()) => None,
        Err(Incomplete::Configure { code, message } | Incomplete::Retry { code, message }) => {
            Some(SyncError {
                code: code.to_string(),
                message,
            })
        }
    };
    report.complete = error.is_none();
    state
        .store
        .record_sync(
            &integration.account_id,
            &integration.id,
            started,
            error
                .as_ref()
                .map(|e| (e.code.as_str(), e.message.as_str())),
        )
        .await?;
    if let Some(e) = &error {
        tracing::warn!(integration_id = %integration.id, code = %e.code, "a platform sync did not complete");
    }
    report.error = error;
    Ok(report)
}

async fn read_all(
    state: &AppState,
    integration: &Integration,
    report: &mut SyncReport,
) -> Result<(), Incomplete> {
    let store_error = |e: keygate_store::StoreError| Incomplete::Retry {
        code: "SYNC_STORE_FAILED",
        message: e.to_string(),
    };
    let Some(provider) = keygate_billing::provider(&integration.provider) else {
        return Ok(());
    };
    let synced = state
        .store
        .sync_state(&integration.account_id, &integration.id)
        .await
        .map_err(store_error)?;
    report.since = synced
        .synced_until
        .map(|t| t.plus_seconds(-OVERLAP_SECONDS));
    let client = ApiClient::connect(state, integration, provider, "sync").await?;
    for first in provider.sync_requests(report.since) {
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(fetch) = next.take() {
            if pages == MAX_PAGES {
                return Err(Incomplete::Retry {
                    code: "SYNC_INCOMPLETE",
                    message: format!(
                        "more than {MAX_PAGES} pages changed since the last sync: the next run \
                         goes on from the same point"
                    ),
                });
            }
            let (body, answer_headers) = client.request(&fetch).await?;
            let headers: keygate_billing::Headers = answer_headers.into_iter().collect();
            let page = provider
                .parse_sync_page(
                    &fetch,
                    &ListPage {
                        headers: &headers,
                        body: &body,
                    },
                )
                .map_err(|e| Incomplete::Retry {
                    code: "API_ANSWER_INVALID",
                    message: format!("GET {}: {e}", fetch.path),
                })?;
            pages += 1;
            report.pages += 1;
            for object in page.objects {
                report.objects += 1;
                let (events, raw) =
                    crate::text_guard::scrub_webhook(object.events, object.raw.as_bytes());
                let receipts = crate::gateway::receive(state, integration, events, raw)
                    .await
                    .map_err(store_error)?;
                for receipt in receipts {
                    report.events += 1;
                    if receipt.duplicate {
                        report.duplicates += 1;
                    } else {
                        report.new_events += 1;
                    }
                }
            }
            next = page.next;
        }
    }
    Ok(())
}

/// Runs the syncs that are due (`options.sync_interval_seconds`), every [`WORKER_TICK`].
pub async fn worker(state: AppState) {
    loop {
        match state.store.claim_due_syncs(Timestamp::now(), 10).await {
            Ok(due) => {
                for (account_id, integration_id) in due {
                    match state
                        .store
                        .get_integration(&account_id, &integration_id)
                        .await
                    {
                        Ok(integration) => {
                            if let Err(e) = run(&state, &integration).await {
                                tracing::warn!(integration_id, error = %e, "recording a sync failed");
                            }
                        }
                        Err(e) => {
                            tracing::warn!(integration_id, error = %e, "reading a due sync's integration failed")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading due syncs failed"),
        }
        tokio::time::sleep(WORKER_TICK).await;
    }
}
