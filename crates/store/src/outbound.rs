//! Storage of outbound webhooks: the vendor's endpoints, the outbox of deliveries (one row per
//! message and endpoint, written in the transaction of the change that causes it), the log of
//! attempts, and the expiry sweeper's claims.
use crate::{PageRequest, Principal, Result, StoreError};
use async_trait::async_trait;
use keygate_domain::ErrorCode;
use keygate_domain::{Page, Timestamp};
use serde::Serialize;

/// Told whenever this process enqueues an outbound event, so an idle worker looks at once rather
/// than at its next poll. (A worker that looks before the enqueuing transaction commits finds
/// the delivery at its next poll; one that was told for nothing finds nothing.)
pub static ENQUEUED: std::sync::LazyLock<tokio::sync::Notify> =
    std::sync::LazyLock::new(tokio::sync::Notify::new);

/// Every event type an endpoint can subscribe to (or `*` for all).
pub const EVENT_TYPES: &[&str] = &[
    "license.created",
    "license.updated",
    "license.renewed",
    "license.suspended",
    "license.reinstated",
    "license.revoked",
    "license.expired",
    "license.expiring_soon",
    "activation.created",
    "activation.deleted",
    "seat.checked_out",
    "seat.checked_in",
    "billing_event.applied",
    "billing_event.failed",
];

/// The outbound event an audited action announces, if any.
pub fn event_for_action(action: &str) -> Option<&'static str> {
    Some(match action {
        "license.created" => "license.created",
        "license.updated" | "license.policy_changed" => "license.updated",
        "license.renewed" | "license.extended" => "license.renewed",
        "license.suspended" => "license.suspended",
        "license.reinstated" => "license.reinstated",
        "license.revoked" => "license.revoked",
        "license.expired" => "license.expired",
        "license.expiring_soon" => "license.expiring_soon",
        "activation.created" => "activation.created",
        "activation.deleted" => "activation.deleted",
        _ => return None,
    })
}

/// Checks a subscription list and stores it as `*` or `,a,b,` (one LIKE matches it).
pub fn encode_event_types(types: &[String]) -> Result<String> {
    if types.is_empty() {
        return Err(StoreError::invalid(
            ErrorCode::InvalidField,
            "`event_types` must list at least one event type, or `*`",
        ));
    }
    if types.iter().any(|t| t == "*") {
        return Ok("*".into());
    }
    let mut sorted: Vec<&str> = Vec::with_capacity(types.len());
    for t in types {
        let Some(known) = EVENT_TYPES.iter().find(|k| **k == t) else {
            return Err(StoreError::invalid(
                ErrorCode::InvalidField,
                format!(
                    "unknown event type `{t}`: use `*` or some of {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        };
        sorted.push(known);
    }
    sorted.sort_unstable();
    sorted.dedup();
    Ok(format!(",{},", sorted.join(",")))
}

pub fn decode_event_types(stored: &str) -> Vec<String> {
    if stored == "*" {
        return vec!["*".into()];
    }
    stored
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// An endpoint as the API shows it: never its secrets.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookEndpoint {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// Until then the previous secret signs too (after a rotation).
    pub previous_secret_expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[serde(skip)]
    pub account_id: String,
}

/// A new endpoint; the server checks the URL and seals the secret before it gets here.
#[derive(Debug, Clone)]
pub struct EndpointWrite {
    pub url: String,
    pub description: Option<String>,
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub sealed_secret: String,
}

#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub description: Option<Option<String>>,
    pub event_types: Option<Vec<String>>,
    /// `true` also clears the disabled reason.
    pub enabled: Option<bool>,
}

/// One attempt of a delivery, as the log shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub attempted_at: Timestamp,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    /// The first KiB of the answer.
    pub response_body: Option<String>,
    pub duration_ms: i64,
}

/// Where an outbound delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// The endpoint answered 2xx.
    Succeeded,
    /// No attempts left (or the endpoint is gone).
    Failed,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 3] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Succeeded,
        DeliveryStatus::Failed,
    ];

    /// As stored and as the API shows it.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// So `status == "failed"` still reads as it did when statuses were strings.
impl PartialEq<&str> for DeliveryStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A message to one endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// The message id, sent as `webhook-id` (the same for every endpoint and every attempt).
    pub id: String,
    pub endpoint_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<Timestamp>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The body sent: `{"type", "timestamp", "data"}`.
    pub payload: serde_json::Value,
    /// Every attempt, oldest first.
    pub attempt_log: Vec<Attempt>,
}

/// A delivery claimed by a worker, with what it needs to send it.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub message_id: String,
    pub endpoint_id: String,
    pub account_id: String,
    pub event_type: String,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i64,
    pub url: String,
    pub sealed_secret: String,
    /// Still signing (within 24 h of a rotation).
    pub sealed_previous_secret: Option<String>,
}

/// What an attempt ended with, as the worker decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// Try again at this time.
    Retry(Timestamp),
    /// No attempts left.
    Failed,
    /// The endpoint answered `410 Gone`: disable it.
    Gone,
}

#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub attempted_at: Timestamp,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub response_body: Option<String>,
    pub duration_ms: i64,
}

/// What one sweep announced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub expired: usize,
    pub expiring_soon: usize,
}

/// The account's webhook endpoints (where outbound events go).
#[async_trait]
pub trait EndpointStore: Send + Sync {
    async fn create_endpoint(
        &self,
        who: &Principal,
        input: EndpointWrite,
    ) -> Result<WebhookEndpoint>;
    async fn list_endpoints(
        &self,
        account_id: &str,
        page: PageRequest,
    ) -> Result<Page<WebhookEndpoint>>;
    async fn get_endpoint(&self, account_id: &str, id: &str) -> Result<WebhookEndpoint>;
    async fn update_endpoint(
        &self,
        who: &Principal,
        id: &str,
        patch: EndpointPatch,
    ) -> Result<WebhookEndpoint>;
    /// Deletes the endpoint with its deliveries and their log.
    async fn delete_endpoint(&self, who: &Principal, id: &str) -> Result<()>;
    /// Makes `sealed_secret` current; the current one keeps signing until `previous_until`.
    async fn rotate_endpoint_secret(
        &self,
        who: &Principal,
        id: &str,
        sealed_secret: String,
        previous_until: Timestamp,
    ) -> Result<WebhookEndpoint>;
}

/// The outbox: deliveries of outbound events, as the API lists them and the worker sends them.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// The endpoint's deliveries, newest first, with their attempts.
    async fn list_deliveries(
        &self,
        account_id: &str,
        endpoint_id: &str,
        status: Option<String>,
        page: PageRequest,
    ) -> Result<Page<Delivery>>;
    /// Queues a delivery (pending, failed or succeeded) for an attempt now.
    async fn retry_delivery(
        &self,
        account_id: &str,
        endpoint_id: &str,
        message_id: &str,
    ) -> Result<Delivery>;

    /// Claims up to `limit` due deliveries of enabled endpoints until `lease_until` (one
    /// statement; `FOR UPDATE SKIP LOCKED` on PostgreSQL, so two workers never claim one).
    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: i64,
    ) -> Result<Vec<DueDelivery>>;
    /// Records an attempt and its outcome (`Gone` disables the endpoint too).
    async fn finish_delivery(
        &self,
        delivery: &DueDelivery,
        attempt: AttemptRecord,
        outcome: Outcome,
    ) -> Result<()>;

    /// Deletes finished (succeeded or failed) deliveries last attempted before `before`, with
    /// their attempts, at most `limit`; returns how many.
    async fn prune_deliveries(&self, before: Timestamp, limit: i64) -> Result<u64>;
}

/// The periodic sweep that announces expiring and expired licenses.
#[async_trait]
pub trait ExpirySweepStore: Send + Sync {
    /// Announces (audits and enqueues, once per `expires_at`) licenses that expired by `now`,
    /// and licenses expiring within `expiring_soon_seconds`. At most `limit` of each.
    async fn sweep_expiries(
        &self,
        now: Timestamp,
        expiring_soon_seconds: i64,
        limit: i64,
    ) -> Result<Swept>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_round_trip() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let stored = encode_event_types(&t(&[
            "license.revoked",
            "license.created",
            "license.created",
        ]))
        .unwrap();
        assert_eq!(stored, ",license.created,license.revoked,");
        assert_eq!(
            decode_event_types(&stored),
            t(&["license.created", "license.revoked"])
        );
        assert_eq!(
            encode_event_types(&t(&["license.created", "*"])).unwrap(),
            "*"
        );
        assert!(encode_event_types(&t(&["license.nope"])).is_err());
        assert!(encode_event_types(&[]).is_err());
        for t in EVENT_TYPES {
            assert!(!t.contains(',') && !t.contains('%'));
        }
        assert_eq!(
            event_for_action("license.extended"),
            Some("license.renewed")
        );
        assert_eq!(event_for_action("product.created"), None);
    }

    #[test]
    fn delivery_statuses_read_back_and_show_as_before() {
        let shown: Vec<_> = DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(shown, ["pending", "succeeded", "failed"]);
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(DeliveryStatus::parse("sent"), None);
    }
}
