//! Standard Webhooks (<https://www.standardwebhooks.com/>) signatures, `v1` (HMAC-SHA256):
//! shared by the `generic` provider (inbound) and Keygate's outbound webhooks.
//!
//! The signed content is `"{webhook-id}.{webhook-timestamp}.{raw body}"`; the key is the
//! base64-decoded part of a `whsec_...` secret; the signature header is a space-separated list
//! of `v1,<standard base64>`.

use crate::crypto::{any_hmac_matches, decode_base64};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SECRET_PREFIX: &str = "whsec_";

/// The HMAC key of a secret: the base64 after `whsec_` (a bare base64 secret is accepted too).
/// `None` when it does not decode or is empty.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let secret = secret.trim();
    decode_base64(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret)).filter(|k| !k.is_empty())
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Whether any `v1` signature of `header` matches any key, in constant time per comparison
/// (every pair is tried). `None` when the header carries no `v1` signature at all.
pub fn verify(
    keys: &[&[u8]],
    id: &str,
    timestamp: &str,
    body: &[u8],
    header: &str,
) -> Option<bool> {
    let mut v1_seen = false;
    let mut signatures = Vec::new();
    for entry in header.split_whitespace() {
        if let Some(("v1", encoded)) = entry.split_once(',') {
            v1_seen = true;
            signatures.extend(decode_base64(encoded));
        }
    }
    if !v1_seen {
        return None;
    }
    let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body];
    Some(any_hmac_matches(keys, &signed, &signatures))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The official vector of the Standard Webhooks reference library
    /// (`libraries/rust/src/lib.rs`, `test_sign`).
    #[test]
    fn official_vector() {
        let key = secret_key("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let signature = sign(&key, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, body);
        assert_eq!(signature, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
        let header = format!("v1,bm90IGl0 {signature}");
        let ok = verify(
            &[&key],
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            "1649367553",
            body,
            &header,
        );
        assert_eq!(ok, Some(true));
        let tampered = verify(
            &[&key],
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            "1649367554",
            body,
            &header,
        );
        assert_eq!(tampered, Some(false));
        assert_eq!(verify(&[&key], "m", "1", body, "v1a,abc"), None);
        assert_eq!(secret_key("whsec_"), None);
    }
}
