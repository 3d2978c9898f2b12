//! One module per payment platform: verify and parse webhooks into [`BillingEvent`]s.
//!
//! Everything here is a pure function of (headers, raw body, secrets, now): no I/O, no
//! async, no network. The server looks a platform up with [`provider`], calls
//! [`Provider::verify`] on the raw bytes (fail closed: no secret configured = refuse), then
//! [`Provider::parse`]. Unknown event types parse to [`BillingEventKind::Ignored`], never to
//! an error.
//!
//! Adding a platform = one file in `src/providers/`, its fixtures under
//! `tests/fixtures/<provider>/`, and one line in [`provider`].

mod crypto;
mod json;
pub mod providers;
pub mod standard_webhooks;

use keygate_domain::ErrorCode;
pub use keygate_domain::Timestamp;
pub use keygate_domain::billing::{
    BillingEvent, BillingEventKind, BillingItem, CustomerRef, OrderRef, SubscriptionSnapshot,
    SubscriptionStatus,
};

/// Why a webhook was refused. Each variant has a stable [`code`](BillingError::code); the
/// text says what exactly was wrong (never a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillingError {
    /// A header the platform always sends is absent.
    #[error("signature missing: {0}")]
    SignatureMissing(String),
    /// The signature (or credentials) did not match, or the signature header is malformed.
    #[error("signature invalid: {0}")]
    SignatureInvalid(String),
    /// The signed timestamp is older (or, where the scheme says so, newer) than allowed.
    #[error("timestamp out of tolerance: {0}")]
    TimestampOutOfTolerance(String),
    /// The integration has no usable secret (or PayPal webhook id): refuse, never accept.
    #[error("secret not configured: {0}")]
    SecretNotConfigured(String),
    /// PayPal: no certificate pinned in the integration's options (this crate never fetches).
    #[error("certificate not configured: {0}")]
    CertificateNotConfigured(String),
    /// PayPal: the pinned certificate cannot be read, is not RSA, or is outside its validity.
    #[error("certificate invalid: {0}")]
    CertificateInvalid(String),
    /// The body is not what the platform sends (not JSON, required field missing).
    #[error("malformed payload: {0}")]
    MalformedPayload(String),
}

impl BillingError {
    /// The stable, machine-readable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            BillingError::SignatureMissing(_) => ErrorCode::SignatureMissing,
            BillingError::SignatureInvalid(_) => ErrorCode::SignatureInvalid,
            BillingError::TimestampOutOfTolerance(_) => ErrorCode::TimestampOutOfTolerance,
            BillingError::SecretNotConfigured(_) => ErrorCode::SecretNotConfigured,
            BillingError::CertificateNotConfigured(_) => ErrorCode::CertificateNotConfigured,
            BillingError::CertificateInvalid(_) => ErrorCode::CertificateInvalid,
            BillingError::MalformedPayload(_) => ErrorCode::MalformedPayload,
        }
    }

    /// The HTTP status a webhook endpoint should answer (the code's): 400 for a malformed
    /// body, 401 for everything about authenticity (including a missing secret: nothing is
    /// applied).
    pub fn http_status(&self) -> u16 {
        self.code().status()
    }

    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        BillingError::MalformedPayload(message.into())
    }
}

/// Request headers with case-insensitive names (stored lowercased, in received order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, String)>,
}

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, name: impl AsRef<str>, value: impl Into<String>) {
        self.entries
            .push((name.as_ref().to_ascii_lowercase(), value.into()));
    }

    /// Builder form of [`insert`](Headers::insert).
    pub fn with(mut self, name: impl AsRef<str>, value: impl Into<String>) -> Self {
        self.insert(name, value);
        self
    }

    /// The first value of the header `name` (any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of the header `name` (any case), in received order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first non-blank value, trimmed.
    pub(crate) fn value(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .find(|v| !v.is_empty())
    }

    pub(crate) fn require(&self, name: &str) -> Result<&str, BillingError> {
        self.value(name)
            .ok_or_else(|| BillingError::SignatureMissing(format!("header `{name}` is missing")))
    }
}

impl<K: AsRef<str>, V: Into<String>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut headers = Headers::new();
        for (k, v) in iter {
            headers.insert(k, v);
        }
        headers
    }
}

/// An integration's verification material.
///
/// `secrets`: several during a rotation (any one may match; blank entries are ignored).
/// `options` (per provider): `tolerance_seconds` (Stripe 300, Paddle 5, generic 300 by
/// default; PayPal: unset = no check), PayPal `webhook_id` and `certificate_pem` (one or more
/// PEM certificates, a string or an array), Chargebee `username` / `password` (or secrets of
/// the form `username:password`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Secrets {
    pub secrets: Vec<String>,
    pub options: serde_json::Value,
}

impl Secrets {
    pub fn new<S: Into<String>>(secrets: impl IntoIterator<Item = S>) -> Self {
        Secrets {
            secrets: secrets.into_iter().map(Into::into).collect(),
            options: serde_json::Value::Null,
        }
    }

    pub fn with_options(mut self, options: serde_json::Value) -> Self {
        self.options = options;
        self
    }

    /// The usable secrets, or `SECRET_NOT_CONFIGURED` when there is none (fail closed).
    pub(crate) fn required(&self) -> Result<Vec<&str>, BillingError> {
        let usable: Vec<&str> = self
            .secrets
            .iter()
            .map(String::as_str)
            .filter(|s| !s.trim().is_empty())
            .collect();
        if usable.is_empty() {
            return Err(BillingError::SecretNotConfigured(
                "the integration has no webhook secret".into(),
            ));
        }
        Ok(usable)
    }

    pub(crate) fn option_str(&self, key: &str) -> Option<&str> {
        self.options
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// `options.tolerance_seconds` when it is a positive integer, else `default`.
    pub(crate) fn tolerance_seconds(&self, default: i64) -> i64 {
        self.options
            .get("tolerance_seconds")
            .and_then(|v| v.as_i64())
            .filter(|t| *t > 0)
            .unwrap_or(default)
    }
}

/// A payment platform: verifies and parses its webhooks.
pub trait Provider: Sync {
    /// The name used in webhook URLs and integrations, e.g. `stripe`.
    fn name(&self) -> &'static str;

    /// Checks the webhook is authentic, on the raw body. `Ok` only on a positive match.
    fn verify(
        &self,
        headers: &Headers,
        body: &[u8],
        secrets: &Secrets,
        now: Timestamp,
    ) -> Result<(), BillingError>;

    /// Turns a (verified) webhook into zero or more normalized events. Event types Keygate
    /// does not act on come back as [`BillingEventKind::Ignored`].
    fn parse(&self, headers: &Headers, body: &[u8]) -> Result<Vec<BillingEvent>, BillingError>;
}

/// Every provider name [`provider`] knows.
pub const PROVIDER_NAMES: [&str; 7] = [
    "stripe",
    "paddle",
    "paypal",
    "chargebee",
    "fastspring",
    "lemonsqueezy",
    "generic",
];

/// The registry: a provider by name.
pub fn provider(name: &str) -> Option<&'static dyn Provider> {
    match name {
        "stripe" => Some(&providers::stripe::Stripe),
        "paddle" => Some(&providers::paddle::Paddle),
        "paypal" => Some(&providers::paypal::PayPal),
        "chargebee" => Some(&providers::chargebee::Chargebee),
        "fastspring" => Some(&providers::fastspring::FastSpring),
        "lemonsqueezy" => Some(&providers::lemonsqueezy::LemonSqueezy),
        "generic" => Some(&providers::generic::Generic),
        _ => None,
    }
}

/// Verify, then parse: what the webhook endpoint does with one delivery.
pub fn receive(
    provider: &dyn Provider,
    headers: &Headers,
    body: &[u8],
    secrets: &Secrets,
    now: Timestamp,
) -> Result<Vec<BillingEvent>, BillingError> {
    provider.verify(headers, body, secrets, now)?;
    provider.parse(headers, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_case_insensitive() {
        let headers = Headers::new()
            .with("Stripe-Signature", "t=1,v1=aa")
            .with("X-Other", " ");
        assert_eq!(headers.get("stripe-signature"), Some("t=1,v1=aa"));
        assert_eq!(headers.get("STRIPE-SIGNATURE"), Some("t=1,v1=aa"));
        assert_eq!(headers.value("x-other"), None);
        assert_eq!(
            headers.require("x-other").unwrap_err().code(),
            "SIGNATURE_MISSING"
        );
        let collected: Headers = [("A", "1"), ("a", "2")].into_iter().collect();
        assert_eq!(collected.get_all("A").collect::<Vec<_>>(), ["1", "2"]);
    }

    #[test]
    fn blank_secrets_fail_closed() {
        for secrets in [Secrets::default(), Secrets::new(["", "  "])] {
            let err = secrets.required().unwrap_err();
            assert_eq!(err.code(), "SECRET_NOT_CONFIGURED");
            assert_eq!(err.http_status(), 401);
        }
        assert_eq!(Secrets::new(["a", ""]).required().unwrap(), ["a"]);
    }

    #[test]
    fn tolerance_option() {
        let s = Secrets::new(["x"]);
        assert_eq!(s.tolerance_seconds(300), 300);
        let s = s.with_options(serde_json::json!({"tolerance_seconds": 10}));
        assert_eq!(s.tolerance_seconds(300), 10);
        let s = Secrets::new(["x"]).with_options(serde_json::json!({"tolerance_seconds": 0}));
        assert_eq!(s.tolerance_seconds(300), 300);
    }

    #[test]
    fn registry_knows_every_name() {
        for name in PROVIDER_NAMES {
            assert_eq!(provider(name).unwrap().name(), name);
        }
        assert!(provider("nope").is_none());
    }

    #[test]
    fn codes_are_stable() {
        let all = [
            BillingError::SignatureMissing(String::new()),
            BillingError::SignatureInvalid(String::new()),
            BillingError::TimestampOutOfTolerance(String::new()),
            BillingError::SecretNotConfigured(String::new()),
            BillingError::CertificateNotConfigured(String::new()),
            BillingError::CertificateInvalid(String::new()),
            BillingError::MalformedPayload(String::new()),
        ];
        let codes: Vec<_> = all.iter().map(BillingError::code).collect();
        assert_eq!(
            codes,
            [
                "SIGNATURE_MISSING",
                "SIGNATURE_INVALID",
                "TIMESTAMP_OUT_OF_TOLERANCE",
                "SECRET_NOT_CONFIGURED",
                "CERTIFICATE_NOT_CONFIGURED",
                "CERTIFICATE_INVALID",
                "MALFORMED_PAYLOAD"
            ]
        );
        assert_eq!(all[6].http_status(), 400);
    }
}
