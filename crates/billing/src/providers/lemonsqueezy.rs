//! Lemon Squeezy.
//!
//! Verify: `X-Signature` = hex HMAC-SHA256(signing secret, raw body). Any configured secret
//! may match (rotation). No timestamp is signed.
//!
//! Parse: JSON:API, `{meta: {event_name, test_mode, custom_data}, data: {type, id,
//! attributes}}`; the event name also comes as `X-Event-Name`. Lemon Squeezy has no event
//! id, so `event_id` is synthetic: `"{event_name}:{data.id}:{attributes.updated_at}"` (the
//! same on a retry, different for the next change). Items are keyed on the variant id.

use crate::json::{at, bool_at, int_at, parse_object, required, rfc3339_at, str_at};
use crate::scheme::{Algorithm, BodyHmac, Encoding};
use crate::{BillingError, ConfigError, Provider, Request, Secrets};
use keygate_domain::Timestamp;
use keygate_domain::billing::{
    BillingEvent, BillingEventKind as Kind, BillingItem, CustomerRef, OrderRef,
    SubscriptionSnapshot, SubscriptionStatus as Status,
};
use serde_json::Value;

pub struct LemonSqueezy;

/// `X-Signature: hex(HMAC-SHA256(secret, body))`.
pub const SCHEME: BodyHmac = BodyHmac {
    header: "x-signature",
    algorithm: Algorithm::Sha256,
    encoding: Encoding::Hex,
    prefix: "",
};

impl Provider for LemonSqueezy {
    fn name(&self) -> &'static str {
        "lemonsqueezy"
    }

    #[cfg(feature = "testkit")]
    fn kit(&self) -> &'static dyn crate::testkit::Kit {
        &crate::testkit::LemonSqueezyKit
    }

    fn check_config(&self, secrets: &Secrets, now: Timestamp) -> Result<(), ConfigError> {
        crate::config::require_secret(secrets, now)
    }

    fn verify(
        &self,
        request: &Request,
        secrets: &Secrets,
        _now: Timestamp,
    ) -> Result<(), BillingError> {
        let keys = secrets.required()?;
        let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
        SCHEME.verify(request.headers, request.body, &keys)
    }

    fn parse(&self, request: &Request) -> Result<Vec<BillingEvent>, BillingError> {
        let (headers, body) = (request.headers, request.body);
        let event = parse_object(body)?;
        let event_name = str_at(&event, "/meta/event_name")
            .or_else(|| headers.value("x-event-name").map(str::to_string))
            .ok_or_else(|| BillingError::malformed("`/meta/event_name` is missing"))?;
        Ok(vec![parse_event(&event, &event_name)?])
    }
}

fn parse_event(event: &Value, event_name: &str) -> Result<BillingEvent, BillingError> {
    let object_id = required(event, "/data/id")?;
    let attributes = at(event, "/data/attributes")
        .ok_or_else(|| BillingError::malformed("`/data/attributes` is missing"))?;
    let updated_raw = str_at(attributes, "/updated_at")
        .or_else(|| str_at(attributes, "/created_at"))
        .ok_or_else(|| BillingError::malformed("`/data/attributes/updated_at` is missing"))?;
    let occurred_at = Timestamp::parse_rfc3339(&updated_raw)
        .map_err(|e| BillingError::malformed(format!("updated_at: {e}")))?;
    let event_id = format!("{event_name}:{object_id}:{updated_raw}");
    let mut out = BillingEvent::new(event_id, event_name, Kind::Ignored, occurred_at);
    out.livemode = !(bool_at(event, "/meta/test_mode")
        .or_else(|| bool_at(attributes, "/test_mode"))
        .unwrap_or(false));

    match event_name {
        // Only a paid order grants anything. A subscription's first order also comes as
        // `order_created` ("always sent alongside" `subscription_created`, in either order):
        // subscription events name that order (`attributes.order_id`), so the gateway routes
        // the order to the subscription, or moves the order's license to the subscription
        // when the order came first. One purchase, one license.
        "order_created" if str_at(attributes, "/status").as_deref() == Some("paid") => {
            out.kind = Kind::OrderPaid;
            out.customer = customer(attributes);
            let first_item = at(attributes, "/first_order_item").unwrap_or(&Value::Null);
            out.order = Some(OrderRef {
                external_id: object_id,
                lines: variant_item(first_item, None).into_iter().collect(),
            });
        }
        "order_refunded" => {
            out.kind = Kind::Refunded;
            out.customer = customer(attributes);
            out.order = Some(OrderRef {
                external_id: object_id,
                lines: Vec::new(),
            });
        }
        "subscription_created"
        | "subscription_updated"
        | "subscription_cancelled"
        | "subscription_resumed"
        | "subscription_expired"
        | "subscription_paused"
        | "subscription_unpaused" => {
            let snapshot = subscription(&object_id, attributes);
            out.kind = match event_name {
                "subscription_created" if snapshot.status == Some(Status::Trialing) => {
                    Kind::TrialStarted
                }
                "subscription_created" => Kind::SubscriptionActivated,
                "subscription_cancelled" => Kind::SubscriptionCancelScheduled,
                "subscription_expired" => Kind::SubscriptionCanceled,
                "subscription_paused" if snapshot.status == Some(Status::Active) => {
                    Kind::SubscriptionUpdated
                }
                "subscription_paused" => Kind::SubscriptionPaused,
                "subscription_unpaused" => Kind::SubscriptionResumed,
                // `subscription_resumed` is an un-cancel: the same subscription goes on.
                _ => Kind::SubscriptionUpdated,
            };
            out.customer = customer(attributes);
            out.subscription = Some(snapshot);
            out.order = str_at(attributes, "/order_id").map(|external_id| OrderRef {
                external_id,
                lines: Vec::new(),
            });
        }
        "subscription_payment_success"
        | "subscription_payment_failed"
        | "subscription_payment_recovered"
        | "subscription_payment_refunded" => {
            // `data` is a subscription invoice; it names the subscription but carries no
            // period (the new `renews_at` comes with `subscription_updated`).
            let Some(sub_id) = str_at(attributes, "/subscription_id") else {
                return Ok(out);
            };
            let mut snapshot = SubscriptionSnapshot::partial(sub_id);
            let reason = str_at(attributes, "/billing_reason").unwrap_or_default();
            out.kind = match event_name {
                "subscription_payment_success" => match reason.as_str() {
                    "renewal" => Kind::SubscriptionRenewed,
                    "initial" => Kind::SubscriptionActivated,
                    _ => Kind::SubscriptionUpdated,
                },
                "subscription_payment_failed" => Kind::PaymentFailed,
                "subscription_payment_recovered" => Kind::PaymentRecovered,
                _ => Kind::Refunded,
            };
            snapshot.status = match out.kind {
                Kind::PaymentFailed => Some(Status::PastDue),
                Kind::Refunded => None,
                _ => Some(Status::Active),
            };
            out.customer = customer(attributes);
            out.subscription = Some(snapshot);
            out.order = Some(OrderRef {
                external_id: object_id,
                lines: Vec::new(),
            });
        }
        _ => {}
    }
    Ok(out)
}

fn customer(attributes: &Value) -> Option<CustomerRef> {
    let reference = CustomerRef {
        external_id: str_at(attributes, "/customer_id"),
        email: str_at(attributes, "/user_email"),
        name: str_at(attributes, "/user_name"),
    };
    (!reference.is_empty()).then_some(reference)
}

/// An item keyed on the variant: `variant_id`, `product_id`, `quantity`.
fn variant_item(item: &Value, quantity: Option<i64>) -> Option<BillingItem> {
    Some(BillingItem {
        external_id: str_at(item, "/variant_id")?,
        product_external_id: str_at(item, "/product_id"),
        quantity: quantity.or_else(|| int_at(item, "/quantity")).unwrap_or(1),
        line_id: None,
        fallback_ids: Vec::new(),
    })
}

fn subscription(id: &str, attributes: &Value) -> SubscriptionSnapshot {
    let raw = str_at(attributes, "/status").unwrap_or_default();
    let status = match raw.as_str() {
        "on_trial" => Some(Status::Trialing),
        // `cancelled` is the grace period: access continues until `ends_at`.
        "active" | "cancelled" => Some(Status::Active),
        // "Payment collection has been paused and the subscription is still active": with
        // `pause.mode: free` the customer gets the service for free meanwhile (access kept);
        // `void` is a pause of the service (suspend).
        "paused" if str_at(attributes, "/pause/mode").as_deref() == Some("free") => {
            Some(Status::Active)
        }
        "paused" => Some(Status::Paused),
        "past_due" => Some(Status::PastDue),
        "unpaid" => Some(Status::Unpaid),
        "expired" => Some(Status::Canceled),
        _ => None,
    };
    let ends_at = rfc3339_at(attributes, "/ends_at");
    let cancelled = raw == "cancelled";
    let quantity = int_at(attributes, "/first_subscription_item/quantity");
    SubscriptionSnapshot {
        external_id: id.to_string(),
        status,
        items: variant_item(attributes, quantity).into_iter().collect(),
        current_period_end: rfc3339_at(attributes, "/renews_at").or(ends_at),
        cancel_at_period_end: cancelled,
        cancel_at: if cancelled { ends_at } else { None },
        ended_at: if status == Some(Status::Canceled) {
            ends_at
        } else {
            None
        },
        trial_end: rfc3339_at(attributes, "/trial_ends_at"),
        partial: false,
    }
}
