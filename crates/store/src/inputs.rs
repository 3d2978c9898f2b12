//! Request shapes the store accepts. They deserialize straight from the API's JSON bodies
//! and refuse unknown fields, so a typo is an error rather than a silently ignored setting.
use keygate_domain::policy::empty_object;
use keygate_domain::{Overrides, Timestamp};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`) in a PATCH.
pub fn nullable<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    pub limit: i64,
}

impl PageRequest {
    pub const DEFAULT_LIMIT: i64 = 50;
    pub const MAX_LIMIT: i64 = 200;

    pub fn new(cursor: Option<String>, limit: Option<i64>) -> Self {
        PageRequest {
            cursor,
            limit: limit
                .unwrap_or(Self::DEFAULT_LIMIT)
                .clamp(1, Self::MAX_LIMIT),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    pub code: String,
    pub name: String,
    #[serde(default = "empty_object")]
    pub metadata: serde_json::Value,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    pub code: Option<String>,
    pub name: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerInput {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub external_ids: BTreeMap<String, String>,
    #[serde(default = "empty_object")]
    pub metadata: serde_json::Value,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerPatch {
    #[serde(default, deserialize_with = "nullable")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub name: Option<Option<String>>,
    /// Replaces the whole set of platform ids.
    pub external_ids: Option<BTreeMap<String, String>>,
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenseInput {
    pub policy_id: String,
    #[serde(default)]
    pub customer_id: Option<String>,
    /// Bring your own key (e.g. when migrating from another system); generated when absent.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub starts_at: Option<Timestamp>,
    /// Overrides the policy's term; `null`/absent = from the policy.
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    #[serde(default)]
    pub overrides: Overrides,
    #[serde(default)]
    pub quantity: Option<i64>,
    #[serde(default = "empty_object")]
    pub metadata: serde_json::Value,
    /// Set by the billing gateway, not the public API.
    #[serde(skip)]
    pub subscription_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicensePatch {
    pub policy_id: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub customer_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub expires_at: Option<Option<Timestamp>>,
    pub overrides: Option<Overrides>,
    #[serde(default, deserialize_with = "nullable")]
    pub quantity: Option<Option<i64>>,
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LicenseAction {
    Suspend,
    Reinstate,
    Revoke,
    /// Adds the policy's duration, from the current expiry or from now if already expired.
    Renew,
    /// Adds these seconds, from the current expiry or from now if already expired.
    Extend(i64),
}

impl LicenseAction {
    pub fn name(self) -> &'static str {
        match self {
            LicenseAction::Suspend => "suspend",
            LicenseAction::Reinstate => "reinstate",
            LicenseAction::Revoke => "revoke",
            LicenseAction::Renew => "renew",
            LicenseAction::Extend(_) => "extend",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct LicenseFilter {
    pub customer_id: Option<String>,
    pub email: Option<String>,
    pub subscription_id: Option<String>,
    pub status: Option<String>,
    pub policy_id: Option<String>,
    pub product_id: Option<String>,
    /// `(integration id, the platform's order id)`: the licenses a one-time order issued.
    pub order: Option<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub license_id: Option<String>,
    pub customer_id: Option<String>,
    /// An API key id, or an actor type (`system`, `client`, `operator`, `webhook_event`).
    pub actor: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivateInput {
    pub key: String,
    pub fingerprint: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub platform: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageMode {
    /// Refused if it would exceed the remaining quota.
    #[default]
    Prepay,
    /// Always recorded; usage beyond the limit is reported as overdraft.
    Postpay,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageInput {
    pub key: String,
    #[serde(default)]
    pub feature: Option<String>,
    pub amount: i64,
    #[serde(default)]
    pub mode: UsageMode,
}
