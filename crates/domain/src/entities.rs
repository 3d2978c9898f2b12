use crate::Timestamp;
use serde::Serialize;
use std::collections::BTreeMap;

/// A vendor: the tenant every other row belongs to.
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
}

/// An API key's public face: the secret itself is never stored, only its SHA-256.
#[derive(Debug, Clone, Serialize)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// The first characters of the key, so a person can tell keys apart.
    pub prefix: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Product {
    pub id: String,
    pub code: String,
    pub name: String,
    pub metadata: serde_json::Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct Customer {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// Platform ids this customer is known by: `{"stripe": "cus_..."}`.
    pub external_ids: BTreeMap<String, String>,
    pub metadata: serde_json::Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct Activation {
    pub id: String,
    #[serde(skip)]
    pub account_id: String,
    pub license_id: String,
    pub fingerprint: String,
    pub name: Option<String>,
    pub platform: Option<String>,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeatLease {
    #[serde(skip)]
    pub account_id: String,
    pub license_id: String,
    pub session: String,
    pub lease_expires_at: Timestamp,
    pub seats_used: i64,
    pub max_seats: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UsageOutcome {
    pub used: i64,
    /// `None` when the quota has no limit (pay-per-use).
    pub remaining: Option<i64>,
    /// Post-pay usage beyond the limit.
    pub overdraft: i64,
}

/// Who caused a change, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    ApiKey(String),
    Operator,
    /// The license's own key, used from a vendor's app (activate, checkout, usage).
    Client,
    System,
    WebhookEvent(String),
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::ApiKey(_) => "api_key",
            Actor::Operator => "operator",
            Actor::Client => "client",
            Actor::System => "system",
            Actor::WebhookEvent(_) => "webhook_event",
        }
    }

    pub fn id(&self) -> Option<&str> {
        match self {
            Actor::ApiKey(id) | Actor::WebhookEvent(id) => Some(id),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub id: String,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub object_type: String,
    pub object_id: String,
    pub license_id: Option<String>,
    pub customer_id: Option<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub created_at: Timestamp,
}

/// One page of a list: `next_cursor` is the id to pass as `cursor` for the next page.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}
