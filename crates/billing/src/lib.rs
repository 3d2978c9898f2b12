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
mod error;
mod headers;
pub mod keygen;
pub mod providers;
pub mod registry;
mod request;
pub mod scheme;
mod secrets;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use ack::{Ack, Receipt};
pub use config::ConfigError;
pub use decode::form::Form;
pub(crate) use decode::json;
pub use error::BillingError;
pub use headers::Headers;
pub use registry::{PROVIDERS, names, provider};
pub use request::{Method, Request};
pub use scheme::standard_webhooks;
pub use secrets::Secrets;

pub use keygate_domain::Timestamp;
pub use keygate_domain::billing::{
    BillingEvent, BillingEventKind, BillingItem, CustomerRef, OrderRef, SubscriptionSnapshot,
    SubscriptionStatus,
};

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

    /// [`parse`](Provider::parse) with the integration's settings, for a platform whose
    /// payload only reads through its options (Salesforce: which sObject field holds what).
    /// The webhook endpoint calls this one; by default it is `parse`.
    fn parse_configured(
        &self,
        request: &Request,
        _secrets: &Secrets,
        _now: Timestamp,
    ) -> Result<Vec<BillingEvent>, BillingError> {
        self.parse(request)
    }

    /// Remote key generation during the shop's checkout (see [`keygen`]): `None` for the
    /// platforms that only send webhooks.
    fn keygen(&self) -> Option<&'static dyn keygen::KeyGenerator> {
        None
    }

    /// The answer to a delivery once its events are stored: Keygate's JSON receipt unless the
    /// platform reads something else.
    fn acknowledge(&self, _request: &Request, receipts: &[Receipt]) -> Ack {
        Ack::receipt(receipts)
    }

    /// The platform's API, for events too thin to act on (see [`api`]): `None` for a platform
    /// whose deliveries always say enough.
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
    provider.parse_configured(request, secrets, now)
}
