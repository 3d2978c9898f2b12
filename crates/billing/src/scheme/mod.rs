//! The signature schemes platforms use, each written once: a platform's `verify` is one call
//! into one of these plus its header names. All fail closed (no key, no header, a signature
//! that does not decode: refused) and compare in constant time.

pub mod basic_auth;
pub mod body_hmac;
pub mod field_hmac;
pub mod rsa_signature;
pub mod standard_webhooks;
pub mod timestamped_hmac;
pub mod url_token;

pub use crate::crypto::Algorithm;
pub use body_hmac::{BodyHmac, Encoding};
pub use field_hmac::FieldHmac;
pub use timestamped_hmac::{Layout, TimestampedHmac, Unit, Window};
