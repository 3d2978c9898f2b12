//! The signature schemes platforms use, each written once: a platform's `verify` is one call
//! into one of these plus its header names. All fail closed (no key, no header, a signature
//! that does not decode: refused) and compare in constant time.

pub mod basic_auth;
pub mod body_hmac;
pub mod php_serialize;
pub mod rsa_signature;
pub mod serialized_form_rsa;
pub mod standard_webhooks;
pub mod timestamped_hmac;

pub use crate::crypto::Algorithm;
pub use body_hmac::{BodyHmac, Encoding};
pub use serialized_form_rsa::SerializedFormRsa;
pub use timestamped_hmac::{Layout, TimestampedHmac, Unit, Window};
