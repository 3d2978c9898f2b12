//! Deliveries exactly as each platform sends them (feature `testkit`): signed bodies and each
//! platform's canonical lifecycle (created, renewed, quantity change, payment failed,
//! recovered, cancelled, refunded) in the platform's own payload shape, with times relative
//! to a start. The server's end-to-end tests, the bench and `keygate simulate` use it; it is
//! the only signer outside the schemes themselves.
//!
//! Payload shapes follow the fixtures under `tests/fixtures/<provider>/` (taken from the
//! platforms' SDK data), without the fields the conformance review found the platforms never
//! send.

use crate::{Provider, Secrets, Timestamp};
use serde_json::Value;
use sha2::{Digest, Sha256};

mod chargebee;
mod fastspring;
mod generic;
mod lemonsqueezy;
pub mod mycommerce;
mod paddle;
mod paypal;
pub mod salesforce;
mod stripe;

pub use chargebee::ChargebeeKit;
pub use fastspring::FastSpringKit;
pub use generic::GenericKit;
pub use lemonsqueezy::LemonSqueezyKit;
pub use mycommerce::MyCommerceKit;
pub use paddle::PaddleKit;
pub use paypal::PayPalKit;
pub use salesforce::SalesforceKit;
pub use stripe::StripeKit;

/// One billing period in the lifecycles.
pub const MONTH: i64 = 30 * 86_400;

/// A header list, as sent.
pub type SignedHeaders = Vec<(String, String)>;

/// What an integration needs to accept the kit's deliveries.
#[derive(Debug, Clone)]
pub struct Settings {
    pub secrets: Vec<String>,
    pub options: Value,
}

impl Settings {
    pub fn secrets(&self) -> Secrets {
        Secrets::new(self.secrets.iter().cloned()).with_options(self.options.clone())
    }
}

/// The platform ids a lifecycle carries.
#[derive(Debug, Clone, Copy)]
pub struct Ids {
    /// The mapping's external id (price, plan, item price, product path, variant, ...).
    pub mapping: &'static str,
    pub customer: &'static str,
    pub subscription: &'static str,
}

/// The bodies of one lifecycle, step by step (a step may take several deliveries).
#[derive(Debug, Clone)]
pub struct Steps {
    pub created: Vec<Value>,
    pub renewed: Vec<Value>,
    pub quantity: Vec<Value>,
    pub failed: Vec<Value>,
    pub recovered: Vec<Value>,
    pub cancelled: Vec<Value>,
    pub refunded: Vec<Value>,
    /// When the license must end after the cancellation.
    pub cancel_ends_at: i64,
}

impl Steps {
    /// Every step, named, in lifecycle order.
    pub fn all(&self) -> [(&'static str, &[Value]); 7] {
        [
            ("created", &self.created),
            ("renewed", &self.renewed),
            ("quantity", &self.quantity),
            ("failed", &self.failed),
            ("recovered", &self.recovered),
            ("cancelled", &self.cancelled),
            ("refunded", &self.refunded),
        ]
    }
}

/// A platform's side of the conversation.
pub trait Kit: Sync {
    /// Secrets and options under which [`sign`](Kit::sign) verifies (test values).
    fn settings(&self) -> Settings;

    /// The headers that authenticate `body`, signed with `secrets` as the platform signs
    /// (the first usable secret). `Err` says why these secrets cannot sign (PayPal: only the
    /// kit's own certificate has a private key here).
    fn sign(&self, secrets: &Secrets, body: &[u8], now: Timestamp)
    -> Result<SignedHeaders, String>;

    fn ids(&self) -> Ids;

    /// The lifecycle for a subscription that starts at `start` (Unix s) and whose payment
    /// fails at `failed_at`; deterministic, so it can be built again once `failed_at` is known.
    fn steps(&self, start: i64, failed_at: i64) -> Steps;
}

/// The kit of a registered platform.
pub fn kit(provider: &dyn Provider) -> &'static dyn Kit {
    provider.kit()
}

pub(crate) fn rfc(seconds: i64) -> String {
    Timestamp::from_unix_seconds(seconds).to_rfc3339()
}

pub(crate) fn unix_seconds(now: Timestamp) -> i64 {
    now.millis().div_euclid(1000)
}

/// A stable id for a body (the same delivery retried keeps its id, as platforms do).
pub(crate) fn body_id(body: &[u8]) -> String {
    hex::encode(&Sha256::digest(body)[..12])
}

/// `[[name, value], ...]` (or `{name: value}`) form-encoded, in order.
pub fn form_encode(pairs: &Value) -> String {
    fn enc(text: &str) -> String {
        let mut out = String::new();
        for b in text.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let pairs: Vec<(String, String)> = match pairs {
        Value::Array(items) => items.iter().map(|p| (text(&p[0]), text(&p[1]))).collect(),
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        _ => Vec::new(),
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub(crate) fn first_secret(secrets: &Secrets) -> Result<&str, String> {
    secrets.required().map_err(|e| e.to_string()).map(|s| s[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PROVIDERS, Request};

    /// Every registered platform's kit signs what the platform's own verify accepts, and
    /// every body of its lifecycle parses into at least one event.
    #[test]
    fn every_kit_signs_and_parses() {
        let now = Timestamp::now();
        for provider in PROVIDERS {
            let kit = kit(*provider);
            let settings = kit.settings().secrets();
            provider
                .check_config(&settings, now)
                .unwrap_or_else(|e| panic!("{}: {e}", provider.name()));
            let start = unix_seconds(now);
            for (step, bodies) in kit.steps(start, start).all() {
                assert!(!bodies.is_empty(), "{}: {step}", provider.name());
                for body in bodies {
                    let body = body.to_string();
                    let headers: crate::Headers = kit
                        .sign(&settings, body.as_bytes(), now)
                        .unwrap()
                        .into_iter()
                        .collect();
                    let request = Request::post(&headers, body.as_bytes());
                    provider
                        .verify(&request, &settings, now)
                        .unwrap_or_else(|e| panic!("{}: {step}: {e}", provider.name()));
                    let events = provider.parse(&request).unwrap();
                    assert!(!events.is_empty(), "{}: {step}", provider.name());
                    for event in events {
                        assert_ne!(
                            event.kind,
                            crate::BillingEventKind::Ignored,
                            "{}: {step}: {}",
                            provider.name(),
                            event.event_type
                        );
                    }
                }
            }
            // Another secret does not verify.
            let body = b"{}";
            let wrong = Secrets::new(["whsec_dGhlIG90aGVyIGtleQ==", "other:pw"]);
            if let Ok(headers) = kit.sign(&wrong, body, now) {
                let headers: crate::Headers = headers.into_iter().collect();
                let request = Request::post(&headers, body);
                assert!(
                    provider.verify(&request, &settings, now).is_err(),
                    "{}",
                    provider.name()
                );
            }
        }
    }
}
