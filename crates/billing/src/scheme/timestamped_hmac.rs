//! A timestamp and one or more HMAC-SHA256 signatures in one header, the signed text being
//! `"{timestamp}{separator}{raw body}"`: Stripe `t=<s>,v1=<hex>`, Paddle `ts=<s>;h1=<hex>`,
//! Recurly `<ms>,<hex>[,<hex>]`.
//!
//! Any signature may match any key (platforms send several while a secret rolls); signatures
//! that are not hex never match; every (key, signature) pair is tried, in constant time each.
//! The signature is checked before the timestamp, so a stale but authentic delivery is told
//! apart from a forged one.

use crate::crypto::{Algorithm, any_hmac_matches, decode_hex, hmac};
use crate::{BillingError, Headers, Timestamp};

/// How the header is laid out.
#[derive(Clone, Copy, Debug)]
pub enum Layout {
    /// `key=value` pairs split on `pair`; `timestamp` and `signature` name the keys (the
    /// signature key may repeat; other keys are ignored). `strict`: a pair without `=` makes
    /// the whole header invalid (Stripe's SDKs), else it is skipped (Paddle's).
    Pairs {
        pair: char,
        timestamp: &'static str,
        signature: &'static str,
        strict: bool,
    },
    /// `<timestamp>{separator}<signature>[{separator}<signature>...]` (Recurly).
    Positional { separator: char },
}

/// What the timestamp counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Millis,
}

/// Which deliveries are too old (or too new).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// `floor(now in s) - t > tolerance` is refused; a future `t` is not (Stripe's SDKs).
    PastWholeSeconds,
    /// `now in ms > (t + tolerance) * 1000` is refused; a future `t` is not (Paddle's SDKs).
    PastMillis,
    /// `|now - t| > tolerance` is refused, both ways (Recurly).
    Both,
}

/// One platform's variant of the scheme.
#[derive(Clone, Copy, Debug)]
pub struct TimestampedHmac {
    /// The header name (any case on the wire).
    pub header: &'static str,
    pub layout: Layout,
    /// Between the timestamp and the body in the signed text.
    pub separator: &'static str,
    pub unit: Unit,
    pub window: Window,
    /// Sign the timestamp as the integer it parses to (Stripe's SDKs), rather than the text
    /// as received (Paddle, Recurly).
    pub signs_parsed_timestamp: bool,
}

/// A header taken apart: the timestamp text, the signatures that decode, and whether a
/// signature entry was present at all (one that does not decode still counts as sent).
struct Parsed<'v> {
    timestamp: Option<&'v str>,
    signatures: Vec<Vec<u8>>,
    signature_seen: bool,
}

impl TimestampedHmac {
    /// `Ok` only when a signature matches a key and the timestamp is within `tolerance`
    /// seconds (`None`: no freshness check).
    pub fn verify(
        &self,
        headers: &Headers,
        body: &[u8],
        keys: &[&[u8]],
        tolerance: Option<i64>,
        now: Timestamp,
    ) -> Result<(), BillingError> {
        let value = headers.require(self.header)?;
        let Parsed {
            timestamp: timestamp_text,
            signatures,
            signature_seen,
        } = self.split(value)?;
        let Some(timestamp_text) = timestamp_text else {
            return Err(self.invalid("has no timestamp"));
        };
        let timestamp: i64 = timestamp_text
            .parse()
            .map_err(|_| self.invalid("has a timestamp that is not an integer"))?;
        if !signature_seen {
            return Err(self.invalid("has no signature of the expected scheme"));
        }
        let canonical = timestamp.to_string();
        let signed_timestamp = if self.signs_parsed_timestamp {
            canonical.as_str()
        } else {
            timestamp_text
        };
        let parts = [signed_timestamp.as_bytes(), self.separator.as_bytes(), body];
        if !any_hmac_matches(Algorithm::Sha256, keys, &parts, &signatures) {
            return Err(self.invalid("matches no configured secret"));
        }
        if let Some(tolerance) = tolerance {
            self.check_window(timestamp, tolerance, now)?;
        }
        Ok(())
    }

    /// The header value the platform sends for `body` signed with `key` at `timestamp` (in
    /// the scheme's unit).
    pub fn sign(&self, key: &[u8], timestamp: i64, body: &[u8]) -> String {
        let t = timestamp.to_string();
        let mac = hex::encode(hmac(
            Algorithm::Sha256,
            key,
            &[t.as_bytes(), self.separator.as_bytes(), body],
        ));
        match self.layout {
            Layout::Pairs {
                pair,
                timestamp,
                signature,
                ..
            } => format!("{timestamp}={t}{pair}{signature}={mac}"),
            Layout::Positional { separator } => format!("{t}{separator}{mac}"),
        }
    }

    fn split<'v>(&self, value: &'v str) -> Result<Parsed<'v>, BillingError> {
        let mut timestamp = None;
        let mut signatures = Vec::new();
        let mut seen = false;
        match self.layout {
            Layout::Pairs {
                pair,
                timestamp: timestamp_key,
                signature: signature_key,
                strict,
            } => {
                for entry in value.split(pair) {
                    let Some((key, v)) = entry.trim().split_once('=') else {
                        if strict {
                            return Err(self.invalid("is not a list of key=value pairs"));
                        }
                        continue;
                    };
                    let key = key.trim();
                    if key == timestamp_key {
                        timestamp = Some(v.trim());
                    } else if key == signature_key {
                        seen = true;
                        signatures.extend(decode_hex(v));
                    }
                }
            }
            Layout::Positional { separator } => {
                let mut entries = value.split(separator).map(str::trim);
                timestamp = entries.next().filter(|t| !t.is_empty());
                for entry in entries {
                    seen = true;
                    signatures.extend(decode_hex(entry));
                }
            }
        }
        Ok(Parsed {
            timestamp,
            signatures,
            signature_seen: seen,
        })
    }

    fn check_window(&self, t: i64, tolerance: i64, now: Timestamp) -> Result<(), BillingError> {
        let t_ms = match self.unit {
            Unit::Seconds => t.saturating_mul(1000),
            Unit::Millis => t,
        };
        let late = match self.window {
            Window::PastWholeSeconds => {
                now.millis().div_euclid(1000) - t_ms.div_euclid(1000) > tolerance
            }
            Window::PastMillis => {
                now.millis() > t_ms.saturating_add(tolerance.saturating_mul(1000))
            }
            Window::Both => (now.millis() - t_ms).abs() > tolerance.saturating_mul(1000),
        };
        if late {
            return Err(BillingError::TimestampOutOfTolerance(format!(
                "signed at {t} ({:?}), now {}, tolerance {tolerance} s",
                self.unit,
                now.millis().div_euclid(1000)
            )));
        }
        Ok(())
    }

    fn invalid(&self, what: &str) -> BillingError {
        BillingError::SignatureInvalid(format!("{} {what}", self.header))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRIPE: TimestampedHmac = crate::providers::stripe::SCHEME;
    const PADDLE: TimestampedHmac = crate::providers::paddle::SCHEME;
    const RECURLY: TimestampedHmac = crate::providers::recurly::SCHEME;

    fn h(name: &str, value: &str) -> Headers {
        Headers::new().with(name, value)
    }

    fn secs(s: i64) -> Timestamp {
        Timestamp::from_unix_seconds(s)
    }

    /// Stripe: the value computed from the SDK tests' inputs (`whsec_test_secret`).
    #[test]
    fn stripe_vector() {
        let body = br#"{"id":"evt_test_webhook","object":"event"}"#;
        let header =
            "t=1700000000,v1=d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990";
        assert_eq!(
            STRIPE.sign(b"whsec_test_secret", 1_700_000_000, body),
            header
        );
        let headers = h("Stripe-Signature", header);
        let keys: [&[u8]; 1] = [b"whsec_test_secret"];
        STRIPE
            .verify(&headers, body, &keys, Some(300), secs(1_700_000_300))
            .unwrap();
        let stale = STRIPE.verify(&headers, body, &keys, Some(300), secs(1_700_000_301));
        assert_eq!(stale.unwrap_err().code(), "TIMESTAMP_OUT_OF_TOLERANCE");
        // A future timestamp is not refused, as in the SDKs.
        STRIPE
            .verify(&headers, body, &keys, Some(300), secs(1_600_000_000))
            .unwrap();
        let wrong: [&[u8]; 1] = [b"whsec_other"];
        let forged = STRIPE.verify(&headers, body, &wrong, Some(300), secs(1_700_000_000));
        assert_eq!(forged.unwrap_err().code(), "SIGNATURE_INVALID");
        let malformed = h("stripe-signature", "t=1700000000,garbage");
        let err = STRIPE
            .verify(&malformed, body, &keys, None, secs(0))
            .unwrap_err();
        assert_eq!(err.code(), "SIGNATURE_INVALID");
    }

    /// Paddle: the node SDK's official vector (`webhooks-validator.node.test.ts`).
    #[test]
    fn paddle_node_sdk_vector() {
        let headers = h(
            "paddle-signature",
            "ts=1698796800;h1=a300428748dce5c70e4da19bffd60769591ea969c99dea3105d0ec9612cf43f9",
        );
        let keys: [&[u8]; 1] = [b"VALID_SECRET"];
        let body = br#"{"data": ["1", "2"]}"#;
        let at = |s| Timestamp::parse_rfc3339(s).unwrap();
        PADDLE
            .verify(&headers, body, &keys, Some(5), at("2023-11-01T00:00:05Z"))
            .unwrap();
        let late = PADDLE.verify(&headers, body, &keys, Some(5), at("2023-11-01T00:00:06Z"));
        assert_eq!(late.unwrap_err().code(), "TIMESTAMP_OUT_OF_TOLERANCE");
        let spaced = br#"{ "data": [ "1", "2" ]}"#;
        let err = PADDLE.verify(&headers, spaced, &keys, Some(5), at("2023-11-01T00:00:00Z"));
        assert_eq!(err.unwrap_err().code(), "SIGNATURE_INVALID");
    }

    /// Recurly: the official vector of `spec/recurly/webhooks_spec.rb` (stale: no window).
    #[test]
    fn recurly_official_vector() {
        let body = br#"{"id":"rjxwmwedwqug","object_type":"account","site_id":"qc326l1hl8k9","event_type":"created","event_time":"2022-09-13T21:18:40Z","account_code":"adfas23zzz14123"}"#;
        let header =
            "1663103925004,ad24699f3beaa24c9af2cc7ada3ce4c835da0090194241b9d3add83d27f14bc3";
        let key: &[u8] = b"354fab5bd35f5a0d50845ee7e30165244468b13c2c343f104e4e730a59326d9d";
        assert_eq!(RECURLY.sign(key, 1_663_103_925_004, body), header);
        let headers = h("Recurly-Signature", &format!("{header},00ff"));
        RECURLY
            .verify(&headers, body, &[key], None, secs(0))
            .unwrap();
        let now = Timestamp::from_unix_seconds(1_663_103_925 + 301);
        let err = RECURLY
            .verify(&headers, body, &[key], Some(300), now)
            .unwrap_err();
        assert_eq!(err.code(), "TIMESTAMP_OUT_OF_TOLERANCE");
        let before = Timestamp::from_unix_seconds(1_663_103_925 - 301);
        let err = RECURLY
            .verify(&headers, body, &[key], Some(300), before)
            .unwrap_err();
        assert_eq!(err.code(), "TIMESTAMP_OUT_OF_TOLERANCE");
        let only_time = h("recurly-signature", "1663103925004");
        let err = RECURLY
            .verify(&only_time, body, &[key], None, secs(0))
            .unwrap_err();
        assert_eq!(err.code(), "SIGNATURE_INVALID");
    }

    #[test]
    fn fails_closed() {
        let body = b"{}";
        let header = STRIPE.sign(b"k", 10, body);
        let headers = h("stripe-signature", &header);
        let none: [&[u8]; 0] = [];
        assert!(
            STRIPE
                .verify(&headers, body, &none, None, secs(10))
                .is_err()
        );
        let missing = STRIPE.verify(&Headers::new(), body, &[b"k"], None, secs(10));
        assert_eq!(missing.unwrap_err().code(), "SIGNATURE_MISSING");
        let no_sig = h("stripe-signature", "t=10,v0=aa");
        assert_eq!(
            STRIPE
                .verify(&no_sig, body, &[b"k"], None, secs(10))
                .unwrap_err()
                .code(),
            "SIGNATURE_INVALID"
        );
    }
}
