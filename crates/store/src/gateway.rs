//! Storage of the billing gateway: integrations (platform connections and their mappings),
//! the webhook inbox, the bounded log of refused deliveries, and platform subscriptions.
use crate::{PageRequest, Principal, Result};
use async_trait::async_trait;
use keygate_domain::{Page, Timestamp};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mapping {
    pub external_id: String,
    pub policy_id: String,
}

/// An integration as the API shows it: never its secrets.
#[derive(Debug, Clone, Serialize)]
pub struct Integration {
    pub id: String,
    pub provider: String,
    pub name: String,
    pub mappings: Vec<Mapping>,
    pub options: serde_json::Value,
    pub secrets_count: i64,
    /// The names of the platform API credentials set (the values are sealed, never shown).
    pub api_credentials: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[serde(skip)]
    pub account_id: String,
    /// The policies the mappings name, loaded with the integration for a webhook delivery
    /// (empty elsewhere: the apply then reads what it needs).
    #[serde(skip)]
    pub mapped_policies: Vec<keygate_domain::Policy>,
}

/// What to write for an integration; the server seals the secrets before they get here.
#[derive(Debug, Clone)]
pub struct IntegrationWrite {
    pub provider: String,
    pub name: String,
    /// `None` on update = keep the stored secrets.
    pub sealed_secrets: Option<(String, i64)>,
    /// `None` on update = keep the stored API credentials; else (sealed, names set).
    pub sealed_api_credentials: Option<(String, Vec<String>)>,
    pub options: serde_json::Value,
    /// `None` on update = keep the stored mappings.
    pub mappings: Option<Vec<Mapping>>,
}

/// Where an inbox event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InboxStatus {
    /// Stored, not applied yet (or a transient failure left it for the worker).
    Pending,
    /// Applied: its changes are committed with it.
    Applied,
    /// A type Keygate does not act on: kept, never applied.
    Ignored,
    /// Applying it was refused (e.g. `NO_MAPPING`): fix the cause, then replay it.
    Failed,
}

impl InboxStatus {
    pub const ALL: [InboxStatus; 4] = [
        InboxStatus::Pending,
        InboxStatus::Applied,
        InboxStatus::Ignored,
        InboxStatus::Failed,
    ];

    /// As stored and as the API shows it.
    pub const fn as_str(self) -> &'static str {
        match self {
            InboxStatus::Pending => "pending",
            InboxStatus::Applied => "applied",
            InboxStatus::Ignored => "ignored",
            InboxStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for InboxStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// So `status == "applied"` still reads as it did when statuses were strings.
impl PartialEq<&str> for InboxStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[derive(Debug, Clone)]
pub struct NewWebhookEvent {
    pub provider_event_id: String,
    pub event_type: String,
    pub kind: String,
    pub occurred_at: Timestamp,
    pub raw_body: String,
    pub normalized: serde_json::Value,
    pub verified: bool,
    /// `Pending` (to apply) or `Ignored` (a type Keygate does not act on).
    pub status: InboxStatus,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventError {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct WebhookEvent {
    pub id: String,
    pub integration_id: String,
    pub provider: String,
    pub provider_event_id: String,
    pub event_type: String,
    pub kind: String,
    pub occurred_at: Timestamp,
    pub received_at: Timestamp,
    pub verified: bool,
    pub status: InboxStatus,
    pub actions: serde_json::Value,
    pub error: Option<EventError>,
    pub attempts: i64,
    pub applied_at: Option<Timestamp>,
    /// The normalized billing event.
    pub event: serde_json::Value,
    /// The raw body as received (only in single reads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_payload: Option<String>,
    #[serde(skip)]
    pub account_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct WebhookFailure {
    pub id: String,
    pub integration_id: String,
    pub code: String,
    pub message: String,
    pub received_at: Timestamp,
}

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub integration_id: Option<String>,
    pub status: Option<String>,
    /// The platform's event type or Keygate's kind.
    pub event_type: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Subscription {
    pub id: String,
    pub integration_id: String,
    pub provider: String,
    pub external_id: String,
    pub customer_id: Option<String>,
    pub status: String,
    pub current_period_end: Option<Timestamp>,
    pub last_event_at: Option<Timestamp>,
    /// The full normalized state Keygate keeps (items, cancellation, trial, payment failure).
    pub state: serde_json::Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Insert outcome: the inbox row's id, and whether this delivery was new.
#[derive(Debug, Clone)]
pub struct Inserted {
    pub id: String,
    pub new: bool,
    pub status: InboxStatus,
}

/// How many refused deliveries are kept per integration.
pub const FAILURE_LOG_SIZE: i64 = 100;

/// Platform connections: integrations, their mappings, and the log of refused deliveries.
#[async_trait]
pub trait IntegrationStore: Send + Sync {
    async fn create_integration(
        &self,
        who: &Principal,
        input: IntegrationWrite,
    ) -> Result<Integration>;
    async fn list_integrations(&self, account_id: &str) -> Result<Vec<Integration>>;
    async fn get_integration(&self, account_id: &str, id: &str) -> Result<Integration>;
    async fn update_integration(
        &self,
        who: &Principal,
        id: &str,
        input: IntegrationWrite,
    ) -> Result<Integration>;
    /// The integration a webhook URL names, with its sealed secrets (no account known yet).
    async fn integration_for_webhook(&self, id: &str) -> Result<Option<(Integration, String)>>;
    /// The integration's sealed platform API credentials (empty: none set).
    async fn sealed_api_credentials(
        &self,
        account_id: &str,
        integration_id: &str,
    ) -> Result<String>;

    /// Appends refused deliveries (collected in memory by the server, written in batches:
    /// one transaction per call however many there are) and keeps the newest
    /// [`FAILURE_LOG_SIZE`] of the integration.
    async fn record_webhook_failures(
        &self,
        account_id: &str,
        integration_id: &str,
        failures: &[WebhookFailure],
    ) -> Result<()>;
    async fn list_webhook_failures(
        &self,
        account_id: &str,
        integration_id: &str,
    ) -> Result<Vec<WebhookFailure>>;
}

/// The webhook inbox (stored deliveries and applying them) and the platform subscriptions
/// the deliveries keep up to date.
#[async_trait]
pub trait InboxStore: Send + Sync {
    /// Stores a delivery in the inbox, unique on (integration, platform event id).
    async fn insert_event(
        &self,
        integration: &Integration,
        event: NewWebhookEvent,
    ) -> Result<Inserted>;
    /// Stores a delivery and, when it is new, applies it in the same transaction: the answer
    /// to the platform is sent once both are durable (or neither, and the platform retries).
    async fn receive_event(
        &self,
        integration: &Integration,
        event: NewWebhookEvent,
    ) -> Result<Inserted>;
    async fn list_events(
        &self,
        account_id: &str,
        filter: EventFilter,
        page: PageRequest,
    ) -> Result<Page<WebhookEvent>>;
    async fn get_event(&self, account_id: &str, id: &str) -> Result<WebhookEvent>;
    /// Applies a stored event (newer-wins on the subscription, then reconcile its licenses), in
    /// one transaction; records the outcome on the event. Returns the event's new status.
    async fn apply_event(&self, account_id: &str, event_id: &str) -> Result<InboxStatus>;
    /// Replaces a stored event's normalized form by the one completed from the platform's API.
    async fn complete_event(
        &self,
        account_id: &str,
        event_id: &str,
        normalized: serde_json::Value,
    ) -> Result<()>;
    /// Records why a stored event is not applied yet: `pending` (the worker tries again) or
    /// `failed` (until replayed), with a code and a message.
    async fn hold_event(
        &self,
        account_id: &str,
        event_id: &str,
        status: InboxStatus,
        code: &str,
        message: &str,
    ) -> Result<()>;
    /// Events stored but not applied (e.g. the process died in between), oldest first.
    async fn pending_events(&self, limit: i64) -> Result<Vec<(String, String)>>;

    /// The keys of the licenses issued for `item_external_id` in this integration's order
    /// `order_external_id` (remote key generation answers them), oldest first.
    async fn order_license_keys(
        &self,
        integration: &Integration,
        order_external_id: &str,
        item_external_id: &str,
    ) -> Result<Vec<String>>;

    async fn list_subscriptions(
        &self,
        account_id: &str,
        page: PageRequest,
    ) -> Result<Page<Subscription>>;
    async fn get_subscription(&self, account_id: &str, id: &str) -> Result<Subscription>;
}

#[cfg(test)]
mod tests {
    use super::InboxStatus;

    #[test]
    fn inbox_statuses_read_back_and_show_as_before() {
        for s in InboxStatus::ALL {
            assert_eq!(InboxStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        let shown: Vec<_> = InboxStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(shown, ["pending", "applied", "ignored", "failed"]);
        assert!(InboxStatus::Ignored == "ignored");
        assert_eq!(InboxStatus::parse("done"), None);
    }
}
