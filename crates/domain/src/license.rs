use crate::{Policy, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenseStatus {
    Active,
    Suspended,
    Revoked,
}

impl LicenseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseStatus::Active => "active",
            LicenseStatus::Suspended => "suspended",
            LicenseStatus::Revoked => "revoked",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(LicenseStatus::Active),
            "suspended" => Some(LicenseStatus::Suspended),
            "revoked" => Some(LicenseStatus::Revoked),
            _ => None,
        }
    }
}

/// What a single license changes of its policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    #[serde(default)]
    pub add_features: Vec<String>,
    #[serde(default)]
    pub remove_features: Vec<String>,
    #[serde(default)]
    pub max_activations: Option<i64>,
    #[serde(default)]
    pub max_seats: Option<i64>,
    #[serde(default)]
    pub quota_limit: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct License {
    pub id: String,
    pub key: String,
    pub policy_id: String,
    pub product_id: String,
    pub customer_id: Option<String>,
    pub subscription_id: Option<String>,
    pub status: LicenseStatus,
    pub starts_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub overrides: Overrides,
    /// Seats bought on the billing subscription (used when the policy has `seats_from_quantity`).
    pub quantity: Option<i64>,
    pub metadata: serde_json::Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuotaView {
    pub limit: Option<i64>,
    pub used: i64,
    pub period_seconds: Option<i64>,
    /// When the current period's usage resets (`null` for a lifetime quota).
    pub resets_at: Option<Timestamp>,
}

/// The license as the API shows it: effective values, derived state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LicenseView {
    pub id: String,
    pub key: String,
    pub status: LicenseStatus,
    pub expired: bool,
    pub policy_id: String,
    pub product_id: String,
    pub customer_id: Option<String>,
    pub subscription_id: Option<String>,
    pub starts_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub grace_until: Option<Timestamp>,
    pub features: Vec<String>,
    pub max_activations: Option<i64>,
    pub max_seats: Option<i64>,
    pub quota: Option<QuotaView>,
    pub overrides: Overrides,
    pub metadata: serde_json::Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl License {
    /// The policy's features, plus the license's additions, minus its removals; sorted.
    pub fn effective_features(&self, policy: &Policy) -> Vec<String> {
        let mut features: Vec<String> = policy
            .features
            .iter()
            .chain(self.overrides.add_features.iter())
            .filter(|f| !self.overrides.remove_features.contains(f))
            .cloned()
            .collect();
        features.sort();
        features.dedup();
        features
    }

    pub fn has_feature(&self, policy: &Policy, feature: &str) -> bool {
        !self.overrides.remove_features.iter().any(|f| f == feature)
            && (policy.features.iter().any(|f| f == feature)
                || self.overrides.add_features.iter().any(|f| f == feature))
    }

    fn quantity_seats(&self, policy: &Policy) -> Option<i64> {
        if policy.seats_from_quantity {
            self.quantity
        } else {
            None
        }
    }

    /// Override, else the subscription quantity (when the policy says so), else the policy.
    pub fn max_activations(&self, policy: &Policy) -> Option<i64> {
        self.overrides
            .max_activations
            .or_else(|| {
                policy
                    .max_activations
                    .and_then(|_| self.quantity_seats(policy))
            })
            .or(policy.max_activations)
    }

    pub fn max_seats(&self, policy: &Policy) -> Option<i64> {
        let policy_seats = policy.floating.map(|f| f.max_seats);
        self.overrides
            .max_seats
            .or_else(|| policy_seats.and_then(|_| self.quantity_seats(policy)))
            .or(policy_seats)
    }

    pub fn quota_limit(&self, policy: &Policy) -> Option<i64> {
        self.overrides
            .quota_limit
            .or(policy.quota.and_then(|q| q.limit))
    }

    pub fn is_expired(&self, now: Timestamp) -> bool {
        matches!(self.expires_at, Some(e) if now >= e)
    }

    pub fn grace_until(&self, policy: &Policy) -> Option<Timestamp> {
        self.expires_at
            .map(|e| e.plus_seconds(policy.grace_seconds))
    }

    /// The quota window `now` falls in: a period index counted from `starts_at`
    /// (always 0 for a lifetime quota), and when it ends.
    pub fn quota_window(&self, policy: &Policy, now: Timestamp) -> (i64, Option<Timestamp>) {
        match policy.quota.and_then(|q| q.period_seconds) {
            Some(period) => {
                let period_ms = period.saturating_mul(1000).max(1);
                let elapsed = (now.0 - self.starts_at.0).max(0);
                let index = elapsed / period_ms;
                (
                    index,
                    Some(Timestamp(self.starts_at.0 + (index + 1) * period_ms)),
                )
            }
            None => (0, None),
        }
    }

    /// Where a renewal or extension counts from: the current expiry, or now if already expired.
    pub fn extension_base(&self, now: Timestamp) -> Timestamp {
        match self.expires_at {
            Some(e) if e > now => e,
            _ => now,
        }
    }

    pub fn view(&self, policy: &Policy, quota_used: i64, now: Timestamp) -> LicenseView {
        let quota = policy.quota.map(|q| QuotaView {
            limit: self.quota_limit(policy),
            used: quota_used,
            period_seconds: q.period_seconds,
            resets_at: self.quota_window(policy, now).1,
        });
        LicenseView {
            id: self.id.clone(),
            key: self.key.clone(),
            status: self.status,
            expired: self.is_expired(now),
            policy_id: self.policy_id.clone(),
            product_id: self.product_id.clone(),
            customer_id: self.customer_id.clone(),
            subscription_id: self.subscription_id.clone(),
            starts_at: self.starts_at,
            expires_at: self.expires_at,
            grace_until: self.grace_until(policy),
            features: self.effective_features(policy),
            max_activations: self.max_activations(policy),
            max_seats: self.max_seats(policy),
            quota,
            overrides: self.overrides.clone(),
            metadata: self.metadata.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{ExpiryKind, Floating, Quota};

    pub fn policy() -> Policy {
        Policy {
            id: "pol".into(),
            product_id: "prod".into(),
            name: "Pro".into(),
            duration_seconds: None,
            expiry: ExpiryKind::Fixed,
            trial_seconds: None,
            grace_seconds: 0,
            max_activations: None,
            require_activation: false,
            floating: None,
            quota: None,
            features: vec!["export".into(), "sync".into()],
            seats_from_quantity: false,
            perpetual_offline: false,
            metadata: serde_json::json!({}),
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    pub fn license() -> License {
        License {
            id: "lic".into(),
            key: "K".into(),
            policy_id: "pol".into(),
            product_id: "prod".into(),
            customer_id: None,
            subscription_id: None,
            status: LicenseStatus::Active,
            starts_at: Timestamp(1_000_000),
            expires_at: None,
            overrides: Overrides::default(),
            quantity: None,
            metadata: serde_json::json!({}),
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    #[test]
    fn features_add_and_remove() {
        let mut l = license();
        l.overrides.add_features = vec!["cloud".into()];
        l.overrides.remove_features = vec!["sync".into()];
        let p = policy();
        assert_eq!(l.effective_features(&p), vec!["cloud", "export"]);
        assert!(l.has_feature(&p, "cloud"));
        assert!(!l.has_feature(&p, "sync"));
    }

    #[test]
    fn seats_follow_override_then_quantity_then_policy() {
        let mut p = policy();
        p.max_activations = Some(2);
        p.floating = Some(Floating {
            max_seats: 5,
            lease_seconds: 60,
        });
        let mut l = license();
        assert_eq!(l.max_activations(&p), Some(2));
        assert_eq!(l.max_seats(&p), Some(5));
        l.quantity = Some(10);
        assert_eq!(l.max_seats(&p), Some(5), "quantity ignored unless asked");
        p.seats_from_quantity = true;
        assert_eq!(l.max_seats(&p), Some(10));
        assert_eq!(l.max_activations(&p), Some(10));
        l.overrides.max_seats = Some(3);
        assert_eq!(l.max_seats(&p), Some(3));
    }

    #[test]
    fn quota_windows_count_from_start() {
        let mut p = policy();
        p.quota = Some(Quota {
            limit: Some(10),
            period_seconds: Some(60),
        });
        let l = license();
        assert_eq!(l.quota_window(&p, Timestamp(1_000_000)).0, 0);
        assert_eq!(l.quota_window(&p, Timestamp(1_059_999)).0, 0);
        let (i, resets) = l.quota_window(&p, Timestamp(1_060_000));
        assert_eq!(i, 1);
        assert_eq!(resets, Some(Timestamp(1_120_000)));
    }

    #[test]
    fn extension_counts_from_expiry_or_now() {
        let mut l = license();
        l.expires_at = Some(Timestamp(5_000));
        assert_eq!(l.extension_base(Timestamp(1_000)), Timestamp(5_000));
        assert_eq!(l.extension_base(Timestamp(9_000)), Timestamp(9_000));
        assert!(l.is_expired(Timestamp(5_000)));
        assert!(!l.is_expired(Timestamp(4_999)));
    }
}
