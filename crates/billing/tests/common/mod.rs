//! Helpers shared by the provider tests: fixtures, clocks, and signing with each
//! platform's documented scheme.
#![allow(dead_code)]

use keygate_billing::{
    BillingError, BillingEvent, BillingEventKind, Headers, Provider, Request, Secrets,
    SubscriptionStatus, Timestamp, provider,
};
use std::path::PathBuf;

/// A registered platform, called with (headers, body) as a POST delivery.
#[derive(Clone, Copy)]
pub struct Platform(pub &'static dyn Provider);

impl Platform {
    pub fn named(name: &str) -> Platform {
        Platform(provider(name).unwrap())
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    pub fn verify(
        &self,
        headers: &Headers,
        body: &[u8],
        secrets: &Secrets,
        now: Timestamp,
    ) -> Result<(), BillingError> {
        self.0.verify(&Request::post(headers, body), secrets, now)
    }

    pub fn parse(&self, headers: &Headers, body: &[u8]) -> Result<Vec<BillingEvent>, BillingError> {
        self.0.parse(&Request::post(headers, body))
    }
}

pub fn fixtures_dir(provider: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(provider)
}

pub fn fixture(provider: &str, name: &str) -> Vec<u8> {
    let path = fixtures_dir(provider).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `*.json` fixture of a provider except the ones named in `except`.
pub fn fixture_names(provider: &str, except: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir(provider))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && !except.contains(&n.as_str()))
        .collect();
    names.sort();
    names
}

pub fn secs(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(seconds)
}

pub fn rfc(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

pub fn secrets(list: &[&str]) -> Secrets {
    Secrets::new(list.iter().copied())
}

/// The error code of a refused verification (panics if it was accepted).
pub fn refused(result: Result<(), BillingError>) -> &'static str {
    result
        .expect_err("verification should have failed")
        .code()
        .as_str()
}

/// Parses a fixture that holds exactly one event.
pub fn parse_one(provider_name: &str, name: &str, headers: &Headers) -> BillingEvent {
    let mut events = parse_all(provider_name, name, headers);
    assert_eq!(events.len(), 1, "{name}: one event expected");
    events.remove(0)
}

pub fn parse_all(provider_name: &str, name: &str, headers: &Headers) -> Vec<BillingEvent> {
    let p = Platform::named(provider_name);
    p.parse(headers, &fixture(provider_name, name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// What a fixture must parse to. `None` fields are not checked.
#[derive(Default)]
pub struct Expect {
    pub event_id: Option<&'static str>,
    pub subscription_id: Option<&'static str>,
    pub status: Option<SubscriptionStatus>,
    pub period_end: Option<Timestamp>,
    pub items: Option<Vec<(&'static str, i64)>>,
    pub order_id: Option<&'static str>,
    pub customer_id: Option<&'static str>,
    pub email: Option<&'static str>,
    pub partial: Option<bool>,
    pub cancel_at_period_end: Option<bool>,
}

pub fn check(name: &str, event: &BillingEvent, kind: BillingEventKind, expect: Expect) {
    assert_eq!(event.kind, kind, "{name}: kind");
    if let Some(id) = expect.event_id {
        assert_eq!(event.event_id, id, "{name}: event_id");
    }
    let sub = event.subscription.as_ref();
    if let Some(id) = expect.subscription_id {
        assert_eq!(
            sub.map(|s| s.external_id.as_str()),
            Some(id),
            "{name}: subscription id"
        );
    }
    if let Some(status) = expect.status {
        assert_eq!(sub.and_then(|s| s.status), Some(status), "{name}: status");
    }
    if let Some(end) = expect.period_end {
        assert_eq!(
            sub.and_then(|s| s.current_period_end),
            Some(end),
            "{name}: period end"
        );
    }
    if let Some(items) = expect.items {
        let got: Vec<(&str, i64)> = event
            .items()
            .iter()
            .map(|i| (i.external_id.as_str(), i.quantity))
            .collect();
        assert_eq!(got, items, "{name}: items");
    }
    if let Some(order) = expect.order_id {
        assert_eq!(event.order_id(), Some(order), "{name}: order id");
    }
    if let Some(customer) = expect.customer_id {
        assert_eq!(
            event
                .customer
                .as_ref()
                .and_then(|c| c.external_id.as_deref()),
            Some(customer),
            "{name}: customer id"
        );
    }
    if let Some(email) = expect.email {
        assert_eq!(
            event.customer.as_ref().and_then(|c| c.email.as_deref()),
            Some(email),
            "{name}: email"
        );
    }
    if let Some(partial) = expect.partial {
        assert_eq!(sub.map(|s| s.partial), Some(partial), "{name}: partial");
    }
    if let Some(cancel) = expect.cancel_at_period_end {
        assert_eq!(
            sub.map(|s| s.cancel_at_period_end),
            Some(cancel),
            "{name}: cancel_at_period_end"
        );
    }
    // Every event survives the inbox round trip.
    let json = serde_json::to_string(event).unwrap();
    let back: BillingEvent = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, event, "{name}: JSON round trip");
}
