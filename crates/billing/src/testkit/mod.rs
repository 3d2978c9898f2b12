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
pub mod prestashop;
pub mod salesforce;
mod stripe;

pub use chargebee::ChargebeeKit;
pub use fastspring::FastSpringKit;
pub use generic::GenericKit;
pub use lemonsqueezy::LemonSqueezyKit;
pub use mycommerce::MyCommerceKit;
pub use paddle::PaddleKit;
pub use paypal::PayPalKit;
pub use prestashop::PrestaShopKit;
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

/// A one-time order's life, for platforms that sell one-time: an order with one line of the
/// mapping's id (quantity 2) and one unmapped line, paid, then fully refunded. `refunded` is
/// empty where the platform sends no refund notification (MyCommerce): the lifecycle test
/// skips it.
#[derive(Debug, Clone)]
pub struct OrderSteps {
    pub paid: Vec<Value>,
    pub refunded: Vec<Value>,
    /// The order's id on the platform.
    pub order: String,
}

impl OrderSteps {
    /// Every step, named, in order.
    pub fn all(&self) -> [(&'static str, &[Value]); 2] {
        [("paid", &self.paid), ("refunded", &self.refunded)]
    }
}

/// One delivery as the platform sends it: headers (content type included), the raw body,
/// and the webhook URL's query (`token=...` for platforms authenticated by a secret in the
/// URL; empty when none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub headers: SignedHeaders,
    pub body: Vec<u8>,
    pub query: String,
}

impl Delivery {
    /// The headers as a [`Headers`](crate::Headers) map.
    pub fn header_map(&self) -> crate::Headers {
        self.headers.iter().cloned().collect()
    }

    /// The delivery as the request the webhook endpoint sees.
    pub fn request<'a>(&'a self, headers: &'a crate::Headers) -> crate::Request<'a> {
        crate::Request::post(headers, &self.body).with_query(&self.query)
    }
}

/// Where a lifecycle is, for [`Kit::api_answer`]: the same `start`/`failed_at` as
/// [`Kit::steps`], and the last step delivered (`created`, `renewed`, ..., or `paid`,
/// `refunded` for [`Kit::order_steps`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    pub start: i64,
    pub failed_at: i64,
    pub step: &'static str,
}

/// A request Keygate made to the platform's API, as the stand-in received it.
#[derive(Debug, Clone, Copy)]
pub struct ApiRequest<'a> {
    pub method: &'a str,
    pub path_and_query: &'a str,
    pub headers: &'a crate::Headers,
    pub body: &'a [u8],
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
    /// `None`: the platform sells no subscriptions. Only `created` is required: a step the
    /// platform has no event for is empty, and the lifecycle test skips it.
    fn steps(&self, start: i64, failed_at: i64) -> Option<Steps>;

    /// A one-time order's life (see [`OrderSteps`]), starting at `start`; `None` where the
    /// platform sells no one-time orders (or the kit does not play them).
    fn order_steps(&self, _start: i64) -> Option<OrderSteps> {
        None
    }

    /// A step's body as the platform sends it. The default posts the JSON text with
    /// [`sign`](Kit::sign)'s headers; form platforms encode the fields (and sign inside the
    /// form where the platform does), URL-token platforms set the query.
    fn deliver(&self, secrets: &Secrets, body: &Value, now: Timestamp) -> Result<Delivery, String> {
        let body = body.to_string().into_bytes();
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        headers.extend(self.sign(secrets, &body, now)?);
        Ok(Delivery {
            headers,
            body,
            query: String::new(),
        })
    }

    /// The integration's `api_credentials` under which [`api_answer`](Kit::api_answer)'s
    /// stand-in answers (platforms whose events are completed from their API); `None`: the
    /// lifecycle needs no API.
    fn api_credentials(&self) -> Option<Value> {
        None
    }

    /// The platform's API as a stand-in: the status and JSON answer to `request` once
    /// `stage.step` has been delivered, as the platform's API documents it (401 to wrong
    /// credentials, its error shapes); `None` answers 404. OAuth token requests are answered
    /// here too.
    fn api_answer(&self, _stage: &Stage, _request: &ApiRequest) -> Option<(u16, Value)> {
        None
    }
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
            let steps = kit.steps(start, start);
            let orders = kit.order_steps(start);
            assert!(
                steps.is_some() || orders.is_some(),
                "{}: a kit plays a subscription lifecycle, an order, or both",
                provider.name()
            );
            let mut all: Vec<(&str, Vec<Value>)> = Vec::new();
            if let Some(steps) = &steps {
                assert!(!steps.created.is_empty(), "{}: created", provider.name());
                all.extend(steps.all().map(|(n, b)| (n, b.to_vec())));
            }
            if let Some(orders) = &orders {
                assert!(!orders.paid.is_empty(), "{}: paid", provider.name());
                all.extend(orders.all().map(|(n, b)| (n, b.to_vec())));
            }
            for (step, bodies) in &all {
                for body in bodies {
                    let delivery = kit.deliver(&settings, body, now).unwrap();
                    let headers = delivery.header_map();
                    let request = delivery.request(&headers);
                    provider
                        .verify(&request, &settings, now)
                        .unwrap_or_else(|e| panic!("{}: {step}: {e}", provider.name()));
                    let events = provider.parse_configured(&request, &settings, now).unwrap();
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
