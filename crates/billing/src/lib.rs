//! One module per payment platform: verify and parse webhooks into [`BillingEvent`]s.
//!
//! Everything here is a pure function of the [`Request`] (method, headers, query, raw body),
//! the integration's [`Secrets`] and the time: no I/O, no async, no network. The server looks
//! a platform up in the registry ([`PROVIDERS`], [`provider`]), calls [`Provider::verify`] on
//! the raw bytes (fail closed: no secret configured = refuse), then [`Provider::parse`], and
//! answers what [`Provider::acknowledge`] says. Unknown event types parse to
//! [`BillingEventKind::Ignored`], never to an error.
//!
//! Adding a platform: `docs/platforms/ADDING.md` (a module in `src/providers/`, its testkit
//! part, fixtures, tests, a docs page, and one line in [`registry`]).

mod ack;
pub mod api;
pub mod config;
mod crypto;
pub mod decode;
pub mod providers;
pub mod registry;
mod request;
pub mod scheme;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use ack::{Ack, Receipt};
pub use config::ConfigError;
pub use decode::form::Form;
pub(crate) use decode::json;
pub use registry::{PROVIDERS, names, provider};
pub use request::{Method, Request};
pub use scheme::standard_webhooks;

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
    pub fn code(&self) -> &'static str {
        match self {
            BillingError::SignatureMissing(_) => "SIGNATURE_MISSING",
            BillingError::SignatureInvalid(_) => "SIGNATURE_INVALID",
            BillingError::TimestampOutOfTolerance(_) => "TIMESTAMP_OUT_OF_TOLERANCE",
            BillingError::SecretNotConfigured(_) => "SECRET_NOT_CONFIGURED",
            BillingError::CertificateNotConfigured(_) => "CERTIFICATE_NOT_CONFIGURED",
            BillingError::CertificateInvalid(_) => "CERTIFICATE_INVALID",
            BillingError::MalformedPayload(_) => "MALFORMED_PAYLOAD",
        }
    }

    /// The HTTP status a webhook endpoint should answer: 400 for a malformed body, 401 for
    /// everything about authenticity (including a missing secret: nothing is applied).
    pub fn http_status(&self) -> u16 {
        match self {
            BillingError::MalformedPayload(_) => 400,
            _ => 401,
        }
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
    pub fn required(&self) -> Result<Vec<&str>, BillingError> {
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

    pub fn option_str(&self, key: &str) -> Option<&str> {
        self.options
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// `options.tolerance_seconds` when it is a positive integer, else `default`.
    pub fn tolerance_seconds(&self, default: i64) -> i64 {
        self.options
            .get("tolerance_seconds")
            .and_then(|v| v.as_i64())
            .filter(|t| *t > 0)
            .unwrap_or(default)
    }
}

/// A payment platform: checks its settings, verifies and parses its webhooks, and says what
/// the HTTP answer is.
pub trait Provider: Sync {
    /// The name used in webhook URLs and integrations, e.g. `stripe`.
    fn name(&self) -> &'static str;

    /// Checks the integration's secrets and options when it is created or changed, so a bad
    /// setting is a 422 then rather than a refused delivery later.
    fn check_config(&self, secrets: &Secrets, now: Timestamp) -> Result<(), ConfigError>;

    /// Checks the webhook is authentic, on the raw body. `Ok` only on a positive match.
    fn verify(
        &self,
        request: &Request,
        secrets: &Secrets,
        now: Timestamp,
    ) -> Result<(), BillingError>;

    /// Turns a (verified) webhook into zero or more normalized events. Event types Keygate
    /// does not act on come back as [`BillingEventKind::Ignored`].
    fn parse(&self, request: &Request) -> Result<Vec<BillingEvent>, BillingError>;

    /// The answer to a delivery once its events are stored: Keygate's JSON receipt unless the
    /// platform reads something else.
    fn acknowledge(&self, _request: &Request, receipts: &[Receipt]) -> Ack {
        Ack::receipt(receipts)
    }

    /// The platform's API, for events too thin to act on (design stage, see [`api`]): `None`
    /// for every platform registered today.
    fn api(&self) -> Option<api::ApiSpec> {
        None
    }

    /// The objects to fetch from the platform's API to complete `event` (none: the event is
    /// complete as parsed).
    fn fetches(&self, _event: &BillingEvent) -> Vec<api::Fetch> {
        Vec::new()
    }

    /// `event` completed with the fetched objects, in the order of [`fetches`](Provider::fetches).
    fn complete(
        &self,
        event: BillingEvent,
        _fetched: &[(api::Fetch, serde_json::Value)],
    ) -> Result<BillingEvent, BillingError> {
        Ok(event)
    }

    /// How the platform signs and what it sends: the tests' and `keygate simulate`'s side
    /// of the conversation. Required, so no platform is registered without one.
    #[cfg(feature = "testkit")]
    fn kit(&self) -> &'static dyn testkit::Kit;

    /// Whether the platform sends GET requests to the webhook URL (Braintree's challenge).
    /// When not, a GET is answered as any POST-only endpoint answers it (405).
    fn answers_get(&self) -> bool {
        false
    }

    /// The answer to a GET on the webhook URL, for platforms that [`answers_get`](Provider::answers_get).
    fn challenge(&self, _request: &Request, _secrets: &Secrets) -> Result<Ack, BillingError> {
        Err(BillingError::malformed(
            "this platform sends no GET requests",
        ))
    }
}

/// Verify, then parse: what the webhook endpoint does with one POST delivery. The simple
/// entry point for fuzzing and tools.
pub fn receive(
    provider: &dyn Provider,
    headers: &Headers,
    body: &[u8],
    secrets: &Secrets,
    now: Timestamp,
) -> Result<Vec<BillingEvent>, BillingError> {
    receive_request(provider, &Request::post(headers, body), secrets, now)
}

/// [`receive`] for any [`Request`].
pub fn receive_request(
    provider: &dyn Provider,
    request: &Request,
    secrets: &Secrets,
    now: Timestamp,
) -> Result<Vec<BillingEvent>, BillingError> {
    provider.verify(request, secrets, now)?;
    provider.parse(request)
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
