//! Generic: Standard Webhooks carrying Keygate's own normalized event, for any shop, CRM or
//! script Keygate has no module for (PrestaShop and Salesforce connectors post here too).
//!
//! # Signature (Standard Webhooks, `v1`)
//!
//! Headers `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`: a
//! space-separated list of `v1,<base64>` (other versions are ignored; any `v1` may match).
//! The signature is standard base64 of HMAC-SHA256 over `"{webhook-id}.{webhook-timestamp}.{raw
//! body}"`, keyed with the base64-decoded part of the secret after `whsec_`. Several secrets
//! may be configured (rotation). The timestamp must be within ±300 s of now
//! (`options.tolerance_seconds`).
//!
//! # Body: one normalized `BillingEvent`, as JSON
//!
//! ```json
//! {
//!   "event_id": "ord-1001-paid",            // optional: defaults to the webhook-id header
//!   "event_type": "order.paid",             // optional: your own name; defaults to `kind`
//!   "kind": "order_paid",                   // required, see below; unknown = ignored
//!   "occurred_at": "2026-01-02T03:04:05Z",  // optional RFC 3339; defaults to webhook-timestamp
//!   "livemode": true,                       // optional, default true
//!   "customer": {"external_id": "c-42", "email": "ann@example.com", "name": "Ann"},
//!   "subscription": {                       // for subscription_* / payment_* kinds
//!     "external_id": "sub-7",
//!     "status": "active",                   // trialing|active|past_due|unpaid|paused|canceled|incomplete
//!     "items": [{"external_id": "pro-monthly", "product_external_id": "pro", "quantity": 5}],
//!     "current_period_end": "2026-02-02T03:04:05Z",   // the paid-through date
//!     "cancel_at_period_end": false,
//!     "cancel_at": null, "ended_at": null, "trial_end": null,
//!     "partial": false                      // true: only the fields you send are news
//!   },
//!   "order": {                              // for order_paid / refunded / chargeback
//!     "external_id": "ord-1001",
//!     "lines": [{"external_id": "pro-lifetime", "quantity": 1}]
//!   },
//!   "ordering_version": null                // optional counter: higher = newer
//! }
//! ```
//!
//! `kind` is one of `customer_upserted`, `subscription_activated`, `subscription_renewed`,
//! `subscription_updated`, `subscription_cancel_scheduled`, `subscription_canceled`,
//! `subscription_paused`, `subscription_resumed`, `payment_failed`, `payment_recovered`,
//! `order_paid`, `refunded`, `chargeback`, `trial_started`, `ignored`. Items and lines are
//! matched against the integration's mappings by `external_id`; `quantity` defaults to 1.
//! Every field of `customer`, `subscription` and `order` other than the `external_id`s may
//! be left out.

use crate::json::{parse_object, rfc3339_at};
use crate::scheme::standard_webhooks;
use crate::{BillingError, ConfigError, Provider, Request, Secrets};
use keygate_domain::Timestamp;
use keygate_domain::billing::{BillingEvent, BillingEventKind};
use serde_json::Value;

pub struct Generic;

/// The Standard Webhooks reference libraries' tolerance.
pub const DEFAULT_TOLERANCE_SECONDS: i64 = 300;

impl Provider for Generic {
    fn name(&self) -> &'static str {
        "generic"
    }

    #[cfg(feature = "testkit")]
    fn kit(&self) -> &'static dyn crate::testkit::Kit {
        &crate::testkit::GenericKit
    }

    fn check_config(&self, secrets: &Secrets, now: Timestamp) -> Result<(), ConfigError> {
        crate::config::require_secret(secrets, now)?;
        if let Some(bad) = secrets
            .secrets
            .iter()
            .position(|s| !s.trim().is_empty() && standard_webhooks::secret_key(s).is_none())
        {
            return Err(ConfigError::SecretInvalid(format!(
                "secret #{} is not a Standard Webhooks key (`whsec_` + base64)",
                bad + 1
            )));
        }
        Ok(())
    }

    fn verify(
        &self,
        request: &Request,
        secrets: &Secrets,
        now: Timestamp,
    ) -> Result<(), BillingError> {
        let tolerance = secrets.tolerance_seconds(DEFAULT_TOLERANCE_SECONDS);
        standard_webhooks::verify_request(
            request.headers,
            request.body,
            &secrets.required()?,
            tolerance,
            now,
        )
    }

    fn parse(&self, request: &Request) -> Result<Vec<BillingEvent>, BillingError> {
        let (headers, body) = (request.headers, request.body);
        let mut event = parse_object(body)?;
        let occurred_at = rfc3339_at(&event, "/occurred_at").or_else(|| {
            headers
                .value("webhook-timestamp")
                .and_then(|t| t.parse::<i64>().ok())
                .map(Timestamp::from_unix_seconds)
        });
        let map = event
            .as_object_mut()
            .expect("parse_object returns an object");
        let text = |v: Option<&Value>| {
            v.and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let event_id = text(map.get("event_id"))
            .or_else(|| headers.value("webhook-id").map(str::to_string))
            .ok_or_else(|| BillingError::malformed("`event_id` is missing (and no webhook-id)"))?;
        let raw_kind = text(map.get("kind"))
            .or_else(|| text(map.get("event_type")))
            .ok_or_else(|| BillingError::malformed("`kind` is missing"))?;
        let kind = BillingEventKind::parse(&raw_kind).unwrap_or(BillingEventKind::Ignored);
        let event_type = text(map.get("event_type")).unwrap_or(raw_kind);
        let occurred_at = occurred_at
            .ok_or_else(|| BillingError::malformed("`occurred_at` is missing or not RFC 3339"))?;
        map.insert("event_id".into(), Value::String(event_id));
        map.insert("event_type".into(), Value::String(event_type));
        map.insert("kind".into(), Value::String(kind.as_str().into()));
        map.insert(
            "occurred_at".into(),
            Value::String(occurred_at.to_rfc3339()),
        );
        let event: BillingEvent = serde_json::from_value(event)
            .map_err(|e| BillingError::malformed(format!("not a Keygate billing event: {e}")))?;
        Ok(vec![event])
    }
}
