use crate::{License, LicenseStatus, Policy, Timestamp};
use serde::Serialize;

/// The answer to "is this license good?" (contract: these exact codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ValidationCode {
    Valid,
    GracePeriod,
    NotFound,
    Expired,
    Suspended,
    Revoked,
    NotActivated,
    TooManyActivations,
    FeatureMissing,
    ProductMismatch,
    QuotaExceeded,
    NoSeatAvailable,
}

impl ValidationCode {
    pub const ALL: [ValidationCode; 12] = [
        ValidationCode::Valid,
        ValidationCode::GracePeriod,
        ValidationCode::NotFound,
        ValidationCode::Expired,
        ValidationCode::Suspended,
        ValidationCode::Revoked,
        ValidationCode::NotActivated,
        ValidationCode::TooManyActivations,
        ValidationCode::FeatureMissing,
        ValidationCode::ProductMismatch,
        ValidationCode::QuotaExceeded,
        ValidationCode::NoSeatAvailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ValidationCode::Valid => "VALID",
            ValidationCode::GracePeriod => "GRACE_PERIOD",
            ValidationCode::NotFound => "NOT_FOUND",
            ValidationCode::Expired => "EXPIRED",
            ValidationCode::Suspended => "SUSPENDED",
            ValidationCode::Revoked => "REVOKED",
            ValidationCode::NotActivated => "NOT_ACTIVATED",
            ValidationCode::TooManyActivations => "TOO_MANY_ACTIVATIONS",
            ValidationCode::FeatureMissing => "FEATURE_MISSING",
            ValidationCode::ProductMismatch => "PRODUCT_MISMATCH",
            ValidationCode::QuotaExceeded => "QUOTA_EXCEEDED",
            ValidationCode::NoSeatAvailable => "NO_SEAT_AVAILABLE",
        }
    }

    pub fn is_valid(self) -> bool {
        matches!(self, ValidationCode::Valid | ValidationCode::GracePeriod)
    }

    pub fn message(self) -> &'static str {
        match self {
            ValidationCode::Valid => "the license is valid",
            ValidationCode::GracePeriod => "the license has expired but is within its grace period",
            ValidationCode::NotFound => "no license has this key",
            ValidationCode::Expired => "the license has expired",
            ValidationCode::Suspended => "the license is suspended",
            ValidationCode::Revoked => "the license has been revoked",
            ValidationCode::NotActivated => "this machine is not activated for the license",
            ValidationCode::TooManyActivations => "the license has more activations than it allows",
            ValidationCode::FeatureMissing => "the license does not grant a requested feature",
            ValidationCode::ProductMismatch => "the license is for another product",
            ValidationCode::QuotaExceeded => "the license's usage quota is used up",
            ValidationCode::NoSeatAvailable => "every floating seat of the license is in use",
        }
    }
}

/// What the app asked to be checked besides the key.
#[derive(Debug, Clone, Copy, Default)]
pub struct ValidationRequest<'a> {
    pub fingerprint: Option<&'a str>,
    /// A product code or id the license must belong to.
    pub product: Option<&'a str>,
    pub features: &'a [String],
    /// A floating-seat session: the license must hold a seat for it, or have one free.
    pub session: Option<&'a str>,
}

/// What the store knows beyond the license row itself.
#[derive(Debug, Clone, Default)]
pub struct ValidationFacts {
    pub product_code: String,
    pub fingerprint_activated: bool,
    pub activation_count: i64,
    pub quota_used: i64,
    /// Only looked up when the request names a session.
    pub seats: Option<SeatFacts>,
    /// The license's billing subscription's payments (`Default`: in order).
    pub payment: PaymentFacts,
}

/// A floating license's seats as the request's session sees them.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeatFacts {
    /// The session holds a live lease.
    pub held: bool,
    /// Live leases of the license.
    pub in_use: i64,
}

/// A subscription payment that failed and has not been recovered (DESIGN "Event → action":
/// payment failed → `GRACE_PERIOD` until the grace has passed since the failure, then
/// `SUSPENDED`; recovered → `VALID`). The store fills it from the license's subscription
/// with `reconcile::payment_facts`; `Default` means "payments are in order".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PaymentFacts {
    /// When the unrecovered payment failure began; `None` = no failure.
    pub payment_failed_at: Option<Timestamp>,
    /// The integration's grace override for payment failures; `None` = the policy's
    /// `grace_seconds`.
    pub grace_seconds: Option<i64>,
}

impl PaymentFacts {
    /// Until when a failed payment still validates (`GRACE_PERIOD`); `None` if none failed.
    pub fn grace_until(&self, policy: &Policy) -> Option<Timestamp> {
        let grace = self.grace_seconds.unwrap_or(policy.grace_seconds).max(0);
        self.payment_failed_at.map(|at| at.plus_seconds(grace))
    }
}

/// The validation decision. Order matters: the most fundamental problem is reported first
/// (revoked before suspended before expired before scope mismatches). A failed subscription
/// payment (`facts.payment`) answers `GRACE_PERIOD` (valid) while `now < failed_at + grace`,
/// then `SUSPENDED`; a revoked or suspended license keeps its own code, and an expiry past its
/// grace still answers `EXPIRED`.
pub fn decide(
    license: &License,
    policy: &Policy,
    request: &ValidationRequest<'_>,
    facts: &ValidationFacts,
    now: Timestamp,
) -> ValidationCode {
    let payment = &facts.payment;
    match license.status {
        LicenseStatus::Revoked => return ValidationCode::Revoked,
        LicenseStatus::Suspended => return ValidationCode::Suspended,
        LicenseStatus::Active => {}
    }
    let mut in_grace = false;
    if let Some(until) = payment.grace_until(policy) {
        if now >= until {
            return ValidationCode::Suspended;
        }
        in_grace = true;
    }
    if license.is_expired(now) {
        match license.grace_until(policy) {
            Some(g) if now < g => in_grace = true,
            _ => return ValidationCode::Expired,
        }
    }
    if let Some(product) = request.product
        && product != facts.product_code
        && product != license.product_id
    {
        return ValidationCode::ProductMismatch;
    }
    if request
        .features
        .iter()
        .any(|f| !license.has_feature(policy, f))
    {
        return ValidationCode::FeatureMissing;
    }
    if let Some(max) = license.max_activations(policy)
        && facts.activation_count > max
    {
        return ValidationCode::TooManyActivations;
    }
    if request.fingerprint.is_some() && policy.require_activation && !facts.fingerprint_activated {
        return ValidationCode::NotActivated;
    }
    if let Some(limit) = license.quota_limit(policy)
        && facts.quota_used >= limit
    {
        return ValidationCode::QuotaExceeded;
    }
    if let (Some(_), Some(seats), Some(max)) =
        (request.session, facts.seats, license.max_seats(policy))
        && !seats.held
        && seats.in_use >= max
    {
        return ValidationCode::NoSeatAvailable;
    }
    if in_grace {
        ValidationCode::GracePeriod
    } else {
        ValidationCode::Valid
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Quota;
    use crate::license::tests::{license, policy};

    fn facts() -> ValidationFacts {
        ValidationFacts {
            product_code: "app".into(),
            ..Default::default()
        }
    }

    #[test]
    fn status_codes_come_first() {
        let p = policy();
        let mut l = license();
        let r = ValidationRequest::default();
        assert_eq!(
            decide(&l, &p, &r, &facts(), Timestamp(0)),
            ValidationCode::Valid
        );
        l.expires_at = Some(Timestamp(10));
        l.status = LicenseStatus::Suspended;
        assert_eq!(
            decide(&l, &p, &r, &facts(), Timestamp(20)),
            ValidationCode::Suspended
        );
        l.status = LicenseStatus::Revoked;
        assert_eq!(
            decide(&l, &p, &r, &facts(), Timestamp(20)),
            ValidationCode::Revoked
        );
    }

    #[test]
    fn expiry_and_grace() {
        let mut p = policy();
        p.grace_seconds = 10;
        let mut l = license();
        l.expires_at = Some(Timestamp(1_000));
        let r = ValidationRequest::default();
        assert_eq!(
            decide(&l, &p, &r, &facts(), Timestamp(999)),
            ValidationCode::Valid
        );
        assert_eq!(
            decide(&l, &p, &r, &facts(), Timestamp(1_000)),
            ValidationCode::GracePeriod
        );
        assert!(ValidationCode::GracePeriod.is_valid());
        assert_eq!(
            decide(&l, &p, &r, &facts(), Timestamp(11_000)),
            ValidationCode::Expired
        );
    }

    #[test]
    fn payment_failure_grace_then_suspended() {
        let mut p = policy();
        p.grace_seconds = 10;
        let mut l = license();
        let r = ValidationRequest::default();
        let failed = PaymentFacts {
            payment_failed_at: Some(Timestamp(5_000)),
            grace_seconds: None,
        };
        let at = |l: &License, p: &Policy, pay: &PaymentFacts, now: i64| {
            let f = ValidationFacts {
                payment: *pay,
                ..facts()
            };
            decide(l, p, &r, &f, Timestamp(now))
        };
        assert_eq!(
            at(&l, &p, &PaymentFacts::default(), 100_000),
            ValidationCode::Valid
        );
        assert_eq!(at(&l, &p, &failed, 5_000), ValidationCode::GracePeriod);
        assert_eq!(at(&l, &p, &failed, 14_999), ValidationCode::GracePeriod);
        assert!(at(&l, &p, &failed, 14_999).is_valid());
        assert_eq!(at(&l, &p, &failed, 15_000), ValidationCode::Suspended);
        // The integration's override wins over the policy's grace.
        let longer = PaymentFacts {
            grace_seconds: Some(60),
            ..failed
        };
        assert_eq!(at(&l, &p, &longer, 15_000), ValidationCode::GracePeriod);
        assert_eq!(at(&l, &p, &longer, 65_000), ValidationCode::Suspended);
        let none = PaymentFacts {
            grace_seconds: Some(0),
            ..failed
        };
        assert_eq!(at(&l, &p, &none, 5_000), ValidationCode::Suspended);
        // Recovered (no failure): valid again.
        assert_eq!(
            at(&l, &p, &PaymentFacts::default(), 15_000),
            ValidationCode::Valid
        );
        // Revoked and suspended statuses still win.
        l.status = LicenseStatus::Revoked;
        assert_eq!(at(&l, &p, &failed, 6_000), ValidationCode::Revoked);
        l.status = LicenseStatus::Suspended;
        assert_eq!(at(&l, &p, &failed, 6_000), ValidationCode::Suspended);
        // An expiry past its own grace is still EXPIRED during the payment grace.
        l.status = LicenseStatus::Active;
        l.expires_at = Some(Timestamp(1_000));
        assert_eq!(at(&l, &p, &longer, 30_000), ValidationCode::Expired);
        // Without a failure, payments change nothing.
        assert_eq!(
            decide(&l, &p, &r, &facts(), Timestamp(500)),
            at(&l, &p, &PaymentFacts::default(), 500)
        );
    }

    #[test]
    fn scopes() {
        let mut p = policy();
        let l = license();
        let features = vec!["export".to_string(), "missing".to_string()];
        let r = ValidationRequest {
            features: &features,
            ..Default::default()
        };
        assert_eq!(
            decide(&l, &p, &r, &facts(), Timestamp(0)),
            ValidationCode::FeatureMissing
        );
        let r = ValidationRequest {
            product: Some("other"),
            ..Default::default()
        };
        assert_eq!(
            decide(&l, &p, &r, &facts(), Timestamp(0)),
            ValidationCode::ProductMismatch
        );
        let r = ValidationRequest {
            product: Some("app"),
            fingerprint: Some("m1"),
            ..Default::default()
        };
        assert_eq!(
            decide(&l, &p, &r, &facts(), Timestamp(0)),
            ValidationCode::Valid
        );
        p.require_activation = true;
        p.max_activations = Some(1);
        assert_eq!(
            decide(&l, &p, &r, &facts(), Timestamp(0)),
            ValidationCode::NotActivated
        );
        let mut f = facts();
        f.fingerprint_activated = true;
        f.activation_count = 1;
        assert_eq!(decide(&l, &p, &r, &f, Timestamp(0)), ValidationCode::Valid);
        f.activation_count = 2;
        assert_eq!(
            decide(&l, &p, &r, &f, Timestamp(0)),
            ValidationCode::TooManyActivations
        );
    }

    #[test]
    fn session_without_a_seat_when_all_are_taken() {
        let mut p = policy();
        p.floating = Some(crate::Floating {
            max_seats: 2,
            lease_seconds: 60,
        });
        let l = license();
        let r = ValidationRequest {
            session: Some("s"),
            ..Default::default()
        };
        let mut f = facts();
        f.seats = Some(SeatFacts {
            held: false,
            in_use: 2,
        });
        assert_eq!(
            decide(&l, &p, &r, &f, Timestamp(0)),
            ValidationCode::NoSeatAvailable
        );
        f.seats = Some(SeatFacts {
            held: true,
            in_use: 2,
        });
        assert_eq!(decide(&l, &p, &r, &f, Timestamp(0)), ValidationCode::Valid);
        f.seats = Some(SeatFacts {
            held: false,
            in_use: 1,
        });
        assert_eq!(decide(&l, &p, &r, &f, Timestamp(0)), ValidationCode::Valid);
    }

    #[test]
    fn quota_used_up() {
        let mut p = policy();
        p.quota = Some(Quota {
            limit: Some(3),
            period_seconds: None,
        });
        let l = license();
        let mut f = facts();
        f.quota_used = 2;
        let r = ValidationRequest::default();
        assert_eq!(decide(&l, &p, &r, &f, Timestamp(0)), ValidationCode::Valid);
        f.quota_used = 3;
        assert_eq!(
            decide(&l, &p, &r, &f, Timestamp(0)),
            ValidationCode::QuotaExceeded
        );
    }
}
