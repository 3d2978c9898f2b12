//! Paddle Billing.
//!
//! Verify: `Paddle-Signature: ts=<unix>;h1=<hex>[;h1=<hex>...]`, HMAC-SHA256 over
//! `"{ts}:{raw body}"` keyed with the destination secret as-is. Any `h1` may match any
//! configured secret (rotation); unknown keys are ignored. `ts` older than the tolerance is
//! refused: Paddle's SDKs allow 5 s (`options.tolerance_seconds` to widen it).
//!
//! Parse: envelope `{event_id, event_type, occurred_at, notification_id, data}`. Paddle
//! payloads carry no test-mode flag (sandbox is a separate account with its own secret), so
//! `livemode` is `true`; the integration knows whether it is a sandbox.

use crate::json::{array, at, bool_at, id_at, int_at, parse_object, required, rfc3339_at, str_at};
use crate::scheme::{Layout, TimestampedHmac, Unit, Window};
use crate::{BillingError, ConfigError, Provider, Request, Secrets};
use keygate_domain::Timestamp;
use keygate_domain::billing::{
    BillingEvent, BillingEventKind as Kind, BillingItem, CustomerRef, OrderRef,
    SubscriptionSnapshot, SubscriptionStatus as Status,
};
use serde_json::Value;

pub struct Paddle;

/// The SDKs' `MAX_VALID_TIME_DIFFERENCE` / `maximum_variance`.
pub const DEFAULT_TOLERANCE_SECONDS: i64 = 5;

/// `Paddle-Signature: ts=<unix s>;h1=<hex>[;h1=...]`, over `"{ts}:{body}"`, the secret as-is.
pub const SCHEME: TimestampedHmac = TimestampedHmac {
    header: "paddle-signature",
    layout: Layout::Pairs {
        pair: ';',
        timestamp: "ts",
        signature: "h1",
        strict: false,
    },
    separator: ":",
    unit: Unit::Seconds,
    window: Window::PastMillis,
    signs_parsed_timestamp: false,
};

impl Provider for Paddle {
    fn name(&self) -> &'static str {
        "paddle"
    }

    #[cfg(feature = "testkit")]
    fn kit(&self) -> &'static dyn crate::testkit::Kit {
        &crate::testkit::PaddleKit
    }

    fn check_config(&self, secrets: &Secrets, now: Timestamp) -> Result<(), ConfigError> {
        crate::config::require_secret(secrets, now)
    }

    fn verify(
        &self,
        request: &Request,
        secrets: &Secrets,
        now: Timestamp,
    ) -> Result<(), BillingError> {
        let keys = secrets.required()?;
        let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
        let tolerance = secrets.tolerance_seconds(DEFAULT_TOLERANCE_SECONDS);
        SCHEME.verify(request.headers, request.body, &keys, Some(tolerance), now)
    }

    fn parse(&self, request: &Request) -> Result<Vec<BillingEvent>, BillingError> {
        let body = request.body;
        let event = parse_object(body)?;
        Ok(vec![parse_event(&event)?])
    }
}

fn parse_event(event: &Value) -> Result<BillingEvent, BillingError> {
    let event_id = required(event, "/event_id")?;
    let event_type = required(event, "/event_type")?;
    let occurred_at = rfc3339_at(event, "/occurred_at")
        .ok_or_else(|| BillingError::malformed("`/occurred_at` is missing or not RFC 3339"))?;
    let mut out = BillingEvent::new(event_id, event_type.as_str(), Kind::Ignored, occurred_at);
    // Paddle's `occurred_at` has microseconds; Keygate's times have milliseconds. The rest
    // orders two events of the same millisecond (compared right after `occurred_at`).
    out.ordering_version = str_at(event, "/occurred_at").and_then(|t| sub_millisecond(&t));
    let Some(data) = at(event, "/data") else {
        return Ok(out);
    };

    match event_type.as_str() {
        "customer.created" | "customer.updated" => {
            out.kind = Kind::CustomerUpserted;
            out.customer = Some(CustomerRef {
                external_id: str_at(data, "/id"),
                email: str_at(data, "/email"),
                name: str_at(data, "/name"),
            });
        }
        "subscription.created"
        | "subscription.imported"
        | "subscription.activated"
        | "subscription.trialing"
        | "subscription.updated"
        | "subscription.canceled"
        | "subscription.paused"
        | "subscription.resumed"
        | "subscription.past_due" => {
            let snapshot = subscription(data)?;
            out.kind = match event_type.as_str() {
                "subscription.created" | "subscription.imported" => match snapshot.status {
                    Some(Status::Trialing) => Kind::TrialStarted,
                    Some(Status::Active) => Kind::SubscriptionActivated,
                    _ => Kind::SubscriptionUpdated,
                },
                "subscription.activated" => Kind::SubscriptionActivated,
                "subscription.trialing" => Kind::TrialStarted,
                "subscription.canceled" => Kind::SubscriptionCanceled,
                "subscription.paused" => Kind::SubscriptionPaused,
                "subscription.resumed" => Kind::SubscriptionResumed,
                "subscription.past_due" => Kind::PaymentFailed,
                _ if str_at(data, "/scheduled_change/action").as_deref() == Some("cancel") => {
                    Kind::SubscriptionCancelScheduled
                }
                _ => Kind::SubscriptionUpdated,
            };
            out.customer = customer_id(data);
            out.subscription = Some(snapshot);
        }
        "transaction.completed" => transaction_completed(&mut out, data),
        "transaction.payment_failed" | "transaction.past_due" => {
            if let Some(sub_id) = str_at(data, "/subscription_id") {
                let mut snapshot = SubscriptionSnapshot::partial(sub_id);
                snapshot.status = Some(Status::PastDue);
                out.kind = Kind::PaymentFailed;
                out.subscription = Some(snapshot);
                out.order = transaction_order(data, false);
                out.customer = customer_id(data);
            }
        }
        "adjustment.created" | "adjustment.updated" => adjustment(&mut out, data),
        _ => {}
    }
    Ok(out)
}

fn status(raw: &str) -> Option<Status> {
    Some(match raw {
        "active" => Status::Active,
        "trialing" => Status::Trialing,
        "past_due" => Status::PastDue,
        "paused" => Status::Paused,
        "canceled" => Status::Canceled,
        _ => return None,
    })
}

fn customer_id(data: &Value) -> Option<CustomerRef> {
    Some(CustomerRef {
        external_id: Some(str_at(data, "/customer_id")?),
        email: None,
        name: None,
    })
}

fn items(data: &Value) -> Vec<BillingItem> {
    items_where(data, |_| true)
}

/// What a subscription is billed for again and again: Paddle lists one-time charges
/// (`recurring: false`, a price without `billing_cycle`), prorations and `inactive` items
/// beside them, in subscriptions and in their transactions ("as well as any prorated or
/// one-time charges", Paddle's renewal scenario). Those are not the subscription's items.
fn recurring_items(data: &Value) -> Vec<BillingItem> {
    items_where(data, |item| {
        let one_time = bool_at(item, "/recurring") == Some(false)
            || at(item, "/price")
                .and_then(Value::as_object)
                .is_some_and(|price| price.get("billing_cycle").is_some_and(Value::is_null));
        let prorated = at(item, "/proration").is_some_and(|p| !p.is_null());
        let inactive = str_at(item, "/status").as_deref() == Some("inactive");
        !(one_time || prorated || inactive)
    })
}

fn items_where(data: &Value, keep: impl Fn(&Value) -> bool) -> Vec<BillingItem> {
    array(data, "/items")
        .iter()
        .filter(|item| keep(item))
        .filter_map(|item| {
            Some(BillingItem {
                external_id: id_at(item, "/price").or_else(|| str_at(item, "/price_id"))?,
                product_external_id: str_at(item, "/price/product_id")
                    .or_else(|| id_at(item, "/product")),
                quantity: int_at(item, "/quantity").unwrap_or(1),
                line_id: None,
                fallback_ids: Vec::new(),
            })
        })
        .collect()
}

fn subscription(data: &Value) -> Result<SubscriptionSnapshot, BillingError> {
    let external_id = required(data, "/id")?;
    let status = str_at(data, "/status").and_then(|s| status(&s));
    let ended = status == Some(Status::Canceled);
    let cancel_scheduled = str_at(data, "/scheduled_change/action").as_deref() == Some("cancel");
    Ok(SubscriptionSnapshot {
        external_id,
        status,
        items: recurring_items(data),
        current_period_end: rfc3339_at(data, "/current_billing_period/ends_at"),
        cancel_at_period_end: cancel_scheduled && !ended,
        cancel_at: if cancel_scheduled {
            rfc3339_at(data, "/scheduled_change/effective_at")
        } else {
            None
        },
        ended_at: if ended {
            rfc3339_at(data, "/canceled_at").or_else(|| rfc3339_at(data, "/updated_at"))
        } else {
            None
        },
        trial_end: array(data, "/items")
            .iter()
            .filter_map(|item| rfc3339_at(item, "/trial_dates/ends_at"))
            .max(),
        partial: false,
    })
}

fn transaction_order(data: &Value, with_lines: bool) -> Option<OrderRef> {
    Some(OrderRef {
        external_id: str_at(data, "/id")?,
        lines: if with_lines { items(data) } else { Vec::new() },
    })
}

/// `transaction.completed`: a renewal when `origin` is `subscription_recurring`, the first
/// payment of a new subscription from checkout (`web`/`api`), a one-time order without a
/// subscription. Other origins (update prorations, payment-method changes, one-off charges)
/// are ignored: `subscription.updated` carries their effect.
fn transaction_completed(out: &mut BillingEvent, data: &Value) {
    out.customer = customer_id(data);
    let origin = str_at(data, "/origin").unwrap_or_default();
    let Some(sub_id) = str_at(data, "/subscription_id") else {
        out.kind = Kind::OrderPaid;
        out.order = transaction_order(data, true);
        return;
    };
    out.kind = match origin.as_str() {
        "subscription_recurring" => Kind::SubscriptionRenewed,
        "web" | "api" => Kind::SubscriptionActivated,
        _ => return,
    };
    let mut snapshot = SubscriptionSnapshot::partial(sub_id);
    snapshot.status = Some(Status::Active);
    snapshot.items = recurring_items(data);
    snapshot.current_period_end = rfc3339_at(data, "/billing_period/ends_at");
    out.subscription = Some(snapshot);
    out.order = transaction_order(data, false);
}

/// `adjustment.*`: an approved refund revokes; a chargeback revokes. Pending or rejected
/// refunds, credits, chargeback warnings and reversals are ignored.
fn adjustment(out: &mut BillingEvent, data: &Value) {
    let action = str_at(data, "/action").unwrap_or_default();
    let adjustment_status = str_at(data, "/status").unwrap_or_default();
    out.kind = match (action.as_str(), adjustment_status.as_str()) {
        ("refund", "approved") => Kind::Refunded,
        ("chargeback", _) => Kind::Chargeback,
        _ => return,
    };
    out.customer = customer_id(data);
    out.subscription = str_at(data, "/subscription_id").map(SubscriptionSnapshot::partial);
    out.order = str_at(data, "/transaction_id").map(|external_id| OrderRef {
        external_id,
        lines: Vec::new(),
    });
}

/// The microseconds below the millisecond of an RFC 3339 time (`.621022Z` → 22), when the
/// fraction has more than three digits.
fn sub_millisecond(time: &str) -> Option<i64> {
    let fraction = time.split_once('.')?.1;
    let digits: String = fraction.chars().take_while(char::is_ascii_digit).collect();
    if digits.len() <= 3 {
        return None;
    }
    let micros: String = digits.chars().skip(3).take(3).collect();
    let micros = format!("{micros:0<3}");
    micros.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn sub_millisecond_orders_within_one_millisecond() {
        use super::sub_millisecond;
        assert_eq!(sub_millisecond("2024-04-12T10:18:49.621022Z"), Some(22));
        assert_eq!(sub_millisecond("2024-04-12T10:18:49.6215Z"), Some(500));
        assert_eq!(sub_millisecond("2024-04-12T10:18:49.621Z"), None);
        assert_eq!(sub_millisecond("2024-04-12T10:18:49Z"), None);
    }
}
