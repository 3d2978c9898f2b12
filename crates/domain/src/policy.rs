use crate::{DomainError, Timestamp, limits};
use serde::{Deserialize, Serialize};

/// How a license's expiry is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ExpiryKind {
    /// A fixed term from issue (`duration_seconds`), or perpetual when there is none.
    #[default]
    Fixed,
    /// Follows the billing subscription's paid-through date.
    Subscription,
}

impl ExpiryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExpiryKind::Fixed => "fixed",
            ExpiryKind::Subscription => "subscription",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "fixed" => Some(ExpiryKind::Fixed),
            "subscription" => Some(ExpiryKind::Subscription),
            _ => None,
        }
    }
}

/// Concurrent sessions: each holds a lease renewed by heartbeat (checkout again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Floating {
    pub max_seats: i64,
    pub lease_seconds: i64,
}

/// Usage allowed per period (`period_seconds: null` = lifetime). `limit: null` = pay-per-use:
/// usage is recorded and never refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    pub limit: Option<i64>,
    #[serde(default)]
    pub period_seconds: Option<i64>,
}

/// A licensing model, belonging to a product.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    pub id: String,
    pub product_id: String,
    pub name: String,
    pub duration_seconds: Option<i64>,
    pub expiry: ExpiryKind,
    pub trial_seconds: Option<i64>,
    pub grace_seconds: i64,
    pub max_activations: Option<i64>,
    /// Validation with a fingerprint needs that machine activated. Defaults to
    /// `max_activations` being set.
    pub require_activation: bool,
    pub floating: Option<Floating>,
    pub quota: Option<Quota>,
    pub features: Vec<String>,
    pub seats_from_quantity: bool,
    /// Signed license files may outlive the license's expiry (perpetual offline use).
    pub perpetual_offline: bool,
    pub metadata: serde_json::Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The fields a vendor sets on a policy (create, or the full state after a PATCH is merged).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    pub product_id: String,
    pub name: String,
    #[serde(default)]
    pub duration_seconds: Option<i64>,
    #[serde(default)]
    pub expiry: ExpiryKind,
    #[serde(default)]
    pub trial_seconds: Option<i64>,
    #[serde(default)]
    pub grace_seconds: i64,
    #[serde(default)]
    pub max_activations: Option<i64>,
    #[serde(default)]
    pub require_activation: Option<bool>,
    #[serde(default)]
    pub floating: Option<Floating>,
    #[serde(default)]
    pub quota: Option<Quota>,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub seats_from_quantity: bool,
    #[serde(default)]
    pub perpetual_offline: bool,
    #[serde(default = "empty_object")]
    pub metadata: serde_json::Value,
}

pub fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

fn positive(name: &str, value: Option<i64>) -> Result<(), DomainError> {
    match value {
        Some(v) if v <= 0 => Err(DomainError::invalid(format!(
            "`{name}` must be a positive number"
        ))),
        _ => Ok(()),
    }
}

/// A feature code: 1–64 characters of letters, digits, `_`, `-`, `.` and `:`.
pub fn validate_feature_code(code: &str) -> Result<(), DomainError> {
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c));
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(format!(
            "feature code `{code}` must be 1-64 characters of letters, digits, _ - . :"
        )))
    }
}

pub fn validate_metadata(value: &serde_json::Value) -> Result<(), DomainError> {
    if !value.is_object() {
        return Err(DomainError::invalid("`metadata` must be a JSON object"));
    }
    if value.to_string().len() > limits::MAX_METADATA_BYTES {
        return Err(DomainError::invalid("`metadata` is larger than 16 KiB"));
    }
    if limits::depth(value) > limits::MAX_METADATA_DEPTH {
        return Err(DomainError::invalid(format!(
            "`metadata` nests too deep: at most {} levels",
            limits::MAX_METADATA_DEPTH
        )));
    }
    Ok(())
}

impl PolicyInput {
    pub fn validate(&self) -> Result<(), DomainError> {
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err(DomainError::invalid("`name` must be 1-200 characters"));
        }
        positive("duration_seconds", self.duration_seconds)?;
        positive("trial_seconds", self.trial_seconds)?;
        positive("max_activations", self.max_activations)?;
        if self.grace_seconds < 0 {
            return Err(DomainError::invalid("`grace_seconds` must not be negative"));
        }
        if let Some(f) = self.floating {
            positive("floating.max_seats", Some(f.max_seats))?;
            positive("floating.lease_seconds", Some(f.lease_seconds))?;
        }
        if let Some(q) = self.quota {
            if matches!(q.limit, Some(l) if l < 0) {
                return Err(DomainError::invalid("`quota.limit` must not be negative"));
            }
            positive("quota.period_seconds", q.period_seconds)?;
        }
        limits::duration("duration_seconds", self.duration_seconds)?;
        limits::duration("trial_seconds", self.trial_seconds)?;
        limits::duration("grace_seconds", Some(self.grace_seconds))?;
        limits::count("max_activations", self.max_activations)?;
        if let Some(f) = self.floating {
            limits::count("floating.max_seats", Some(f.max_seats))?;
            limits::duration("floating.lease_seconds", Some(f.lease_seconds))?;
        }
        if let Some(q) = self.quota {
            limits::count("quota.limit", q.limit)?;
            limits::duration("quota.period_seconds", q.period_seconds)?;
        }
        limits::features("features", &self.features)?;
        for f in &self.features {
            validate_feature_code(f)?;
        }
        validate_metadata(&self.metadata)?;
        Ok(())
    }

    pub fn require_activation(&self) -> bool {
        self.require_activation
            .unwrap_or(self.max_activations.is_some())
    }

    /// Normalized feature list: sorted, without duplicates.
    pub fn features_normalized(&self) -> Vec<String> {
        let mut f = self.features.clone();
        f.sort();
        f.dedup();
        f
    }
}

impl Policy {
    /// The term a new license gets: the trial when the policy is a trial, else its duration.
    pub fn initial_term_seconds(&self) -> Option<i64> {
        self.trial_seconds.or(self.duration_seconds)
    }

    /// The editable part of a policy, so a PATCH can be merged onto it and validated whole.
    pub fn to_input(&self) -> PolicyInput {
        PolicyInput {
            product_id: self.product_id.clone(),
            name: self.name.clone(),
            duration_seconds: self.duration_seconds,
            expiry: self.expiry,
            trial_seconds: self.trial_seconds,
            grace_seconds: self.grace_seconds,
            max_activations: self.max_activations,
            require_activation: Some(self.require_activation),
            floating: self.floating,
            quota: self.quota,
            features: self.features.clone(),
            seats_from_quantity: self.seats_from_quantity,
            perpetual_offline: self.perpetual_offline,
            metadata: self.metadata.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> PolicyInput {
        serde_json::from_value(serde_json::json!({"product_id": "p", "name": "Pro"})).unwrap()
    }

    #[test]
    fn defaults_are_perpetual_and_unrestricted() {
        let p = input();
        assert_eq!(p.expiry, ExpiryKind::Fixed);
        assert_eq!(p.duration_seconds, None);
        assert!(!p.require_activation());
        p.validate().unwrap();
    }

    #[test]
    fn rejects_bad_numbers_and_feature_codes() {
        let mut p = input();
        p.max_activations = Some(0);
        assert!(p.validate().is_err());
        let mut p = input();
        p.features = vec!["ok".into(), "not ok".into()];
        assert!(p.validate().is_err());
        let mut p = input();
        p.floating = Some(Floating {
            max_seats: 5,
            lease_seconds: 0,
        });
        assert!(p.validate().is_err());
    }

    #[test]
    fn node_locked_requires_activation_by_default() {
        let mut p = input();
        p.max_activations = Some(2);
        assert!(p.require_activation());
        p.require_activation = Some(false);
        assert!(!p.require_activation());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let r: Result<PolicyInput, _> = serde_json::from_value(
            serde_json::json!({"product_id": "p", "name": "x", "max_activation": 3}),
        );
        assert!(r.is_err());
    }
}
