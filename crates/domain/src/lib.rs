//! Keygate's domain: entities, licensing models, license state and the validation decision.
//! Pure data and pure functions: no I/O, no async, so every rule here is unit-testable.

pub mod billing;
pub mod credentials;
pub mod entities;
pub mod error;
pub mod error_code;
pub mod license;
pub mod limits;
pub mod policy;
pub mod reconcile;
pub mod time;
pub mod validation;

pub use entities::*;
pub use error::DomainError;
pub use error_code::ErrorCode;
pub use license::{License, LicenseStatus, LicenseView, Overrides, QuotaView};
pub use policy::{ExpiryKind, Floating, Policy, PolicyInput, Quota};
pub use time::Timestamp;
pub use validation::{PaymentFacts, SeatFacts, ValidationCode, ValidationFacts, ValidationRequest};

/// A new time-ordered identifier (UUIDv7). Its text form sorts by creation time,
/// which is what cursor pagination relies on.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
