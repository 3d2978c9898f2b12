//! Standard Webhooks (<https://www.standardwebhooks.com/>) signatures, `v1` (HMAC-SHA256):
//! shared by the `generic` provider (inbound) and Keygate's outbound webhooks.
//!
//! The signed content is `"{webhook-id}.{webhook-timestamp}.{raw body}"`; the key is the
//! base64-decoded part of a `whsec_...` secret; the signature header is a space-separated list
//! of `v1,<standard base64>`.

use crate::crypto::{Algorithm, any_hmac_matches, decode_base64, encode_base64, hmac};
use crate::{BillingError, Headers, Timestamp};

pub const SECRET_PREFIX: &str = "whsec_";

/// The HMAC key of a secret: the base64 after `whsec_` (a bare base64 secret is accepted too).
/// `None` when it does not decode or is empty.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let secret = secret.trim();
    decode_base64(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret)).filter(|k| !k.is_empty())
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let t = timestamp.to_string();
    let mac = hmac(
        Algorithm::Sha256,
        key,
        &[id.as_bytes(), b".", t.as_bytes(), b".", body],
    );
    format!("v1,{}", encode_base64(&mac))
}

/// The three headers of a delivery of `body`.
pub fn sign_headers(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
    vec![
        ("webhook-id".into(), id.to_string()),
        ("webhook-timestamp".into(), timestamp.to_string()),
        ("webhook-signature".into(), sign(key, id, timestamp, body)),
    ]
}

/// A whole delivery: `secrets` are `whsec_` secrets (several during a rotation); the
/// timestamp must be within ±`tolerance` seconds of `now`.
pub fn verify_request(
    headers: &Headers,
    body: &[u8],
    secrets: &[&str],
    tolerance: i64,
    now: Timestamp,
) -> Result<(), BillingError> {
    let keys: Vec<Vec<u8>> = secrets.iter().copied().filter_map(secret_key).collect();
    if keys.is_empty() {
        return Err(BillingError::SecretNotConfigured(
            "no configured secret is a `whsec_<base64>` key".into(),
        ));
    }
    let id = headers.require("webhook-id")?;
    let timestamp_text = headers.require("webhook-timestamp")?;
    let signature_header = headers.require("webhook-signature")?;
    let timestamp: i64 = timestamp_text.parse().map_err(|_| {
        BillingError::SignatureInvalid("webhook-timestamp is not an integer".into())
    })?;
    let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    match verify(&keys, id, timestamp_text, body, signature_header) {
        None => {
            return Err(BillingError::SignatureInvalid(
                "webhook-signature has no v1 signature".into(),
            ));
        }
        Some(false) => {
            return Err(BillingError::SignatureInvalid(
                "no v1 signature matches a configured secret".into(),
            ));
        }
        Some(true) => {}
    }
    let skew = now.millis().div_euclid(1000) - timestamp;
    if skew.abs() > tolerance {
        return Err(BillingError::TimestampOutOfTolerance(format!(
            "signed {skew} s from now, tolerance ±{tolerance} s"
        )));
    }
    Ok(())
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
    Some(any_hmac_matches(
        Algorithm::Sha256,
        keys,
        &signed,
        &signatures,
    ))
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
        let headers: Headers =
            sign_headers(&key, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, body)
                .into_iter()
                .collect();
        let secret = ["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"];
        let at = |s| Timestamp::from_unix_seconds(s);
        verify_request(&headers, body, &secret, 300, at(1649367553 + 300)).unwrap();
        verify_request(&headers, body, &secret, 300, at(1649367553 - 300)).unwrap();
        for late in [1649367553 + 301, 1649367553 - 301] {
            let err = verify_request(&headers, body, &secret, 300, at(late)).unwrap_err();
            assert_eq!(err.code(), "TIMESTAMP_OUT_OF_TOLERANCE");
        }
        let err = verify_request(&headers, body, &["plain"], 300, at(1649367553)).unwrap_err();
        assert_eq!(err.code(), "SECRET_NOT_CONFIGURED");
    }
}
