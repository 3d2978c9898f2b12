//! Storage of the periodic sync of an integration with its platform's API: its schedule
//! (`options.sync_interval_seconds`), how far the platform's objects have been read, and the
//! last run's outcome. What a run reads is stored as inbox events, like webhook deliveries.
use crate::Result;
use async_trait::async_trait;
use keygate_domain::Timestamp;
use serde::Serialize;

/// Where an integration's sync stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncState {
    /// `None`: the sync runs only when asked (`POST /v1/integrations/{id}/sync`).
    pub interval_seconds: Option<i64>,
    pub next_run_at: Option<Timestamp>,
    /// Objects changed up to this time have been read (the next run asks for what changed
    /// since, with some overlap).
    pub synced_until: Option<Timestamp>,
    pub last_run_at: Option<Timestamp>,
    pub last_error_code: Option<String>,
    pub last_error: Option<String>,
}

#[async_trait]
pub trait SyncStore: Send + Sync {
    /// Sets how often the integration syncs (`None`: only on request); a newly scheduled sync
    /// is due at once.
    async fn schedule_sync(
        &self,
        account_id: &str,
        integration_id: &str,
        interval_seconds: Option<i64>,
    ) -> Result<()>;
    /// The integration's sync state (the default when it never ran nor was scheduled).
    async fn sync_state(&self, account_id: &str, integration_id: &str) -> Result<SyncState>;
    /// Records a run that started at `run_at`: on success `synced_until` moves to it; a failed
    /// run keeps it (the next run reads the same objects again) and records why. The next
    /// scheduled run is one interval after `run_at`.
    async fn record_sync(
        &self,
        account_id: &str,
        integration_id: &str,
        run_at: Timestamp,
        error: Option<(&str, &str)>,
    ) -> Result<()>;
    /// Scheduled syncs due at `now` (`(account_id, integration_id)`, at most `limit`), each
    /// claimed by moving its next run one interval on, so of several nodes one runs it.
    async fn claim_due_syncs(&self, now: Timestamp, limit: i64) -> Result<Vec<(String, String)>>;
}
