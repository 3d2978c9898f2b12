//! FastSpring.
//!
//! Verify: `X-FS-Signature` = base64(HMAC-SHA256(secret, raw body)), header name in any
//! case. FastSpring's secret is optional on its side; Keygate requires one (fail closed).
//! Any configured secret may match (rotation). No timestamp is signed.
//!
//! Parse: one POST carries several events, `{"events": [{id, type, created (ms), live, data},
//! ...]}`; [`parse`](crate::Provider::parse) returns one [`BillingEvent`] per element, in
//! order, so a partial batch is answered 202 with the ids processed, one per line. `data.account` and
//! `data.subscription` / `data.order` are ids, or objects with Webhook Expansion on.
//! Subscription items are the product path (`product`) plus add-ons.

use crate::json::{
    array, at, bool_at, id_at, int_at, parse_object, required, str_at, unix_millis_at,
    unix_seconds_at,
};
use crate::scheme::{Algorithm, BodyHmac, Encoding};
use crate::{Ack, BillingError, ConfigError, Provider, Receipt, Request, Secrets};
use keygate_domain::Timestamp;
use keygate_domain::billing::{
    BillingEvent, BillingEventKind as Kind, BillingItem, CustomerRef, MissingPeriod, OrderRef,
    SubscriptionSnapshot, SubscriptionStatus as Status,
};
use serde_json::Value;

pub struct FastSpring;

/// `X-FS-Signature: base64(HMAC-SHA256(secret, body))`.
pub const SCHEME: BodyHmac = BodyHmac {
    header: "x-fs-signature",
    algorithm: Algorithm::Sha256,
    encoding: Encoding::Base64,
    prefix: "",
};

impl Provider for FastSpring {
    fn name(&self) -> &'static str {
        "fastspring"
    }

    #[cfg(feature = "testkit")]
    fn kit(&self) -> &'static dyn crate::testkit::Kit {
        &crate::testkit::FastSpringKit
    }

    fn check_config(&self, secrets: &Secrets, now: Timestamp) -> Result<(), ConfigError> {
        crate::config::require_secret(secrets, now)?;
        if secrets.options.get("license_generator").is_some() {
            crate::keygen::KeyGenerator::layout(
                &crate::providers::fastspring_keygen::FastSpringKeygen,
                secrets,
            )?;
        }
        Ok(())
    }

    /// The remote license generator (`options.license_generator`).
    fn keygen(&self) -> Option<&'static dyn crate::keygen::KeyGenerator> {
        Some(&crate::providers::fastspring_keygen::FastSpringKeygen)
    }

    /// A batch where some event failed: 202 with the ids of the events processed, one per
    /// line, as FastSpring reads it (it marks those processed and re-sends the rest; the
    /// re-sent ones are duplicates here, answered processed once replayed). Every event
    /// stored and none failed: 200, all processed.
    fn acknowledge(&self, _request: &Request, receipts: &[Receipt]) -> Ack {
        if receipts.iter().all(|r| r.status != "failed") {
            return Ack::receipt(receipts);
        }
        let processed: Vec<&str> = receipts
            .iter()
            .filter(|r| r.status != "failed")
            .map(|r| r.provider_event_id.as_str())
            .collect();
        let mut body = processed.join("\n");
        if !body.is_empty() {
            body.push('\n');
        }
        Ack::text(202, body)
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
        let body = request.body;
        let envelope = parse_object(body)?;
        let events = at(&envelope, "/events")
            .and_then(Value::as_array)
            .ok_or_else(|| BillingError::malformed("`/events` is missing"))?;
        events.iter().map(parse_event).collect()
    }
}

fn parse_event(event: &Value) -> Result<BillingEvent, BillingError> {
    let event_id = required(event, "/id")?;
    let event_type = required(event, "/type")?;
    let occurred_at = unix_millis_at(event, "/created")
        .ok_or_else(|| BillingError::malformed("`/created` is missing"))?;
    let mut out = BillingEvent::new(event_id, event_type.as_str(), Kind::Ignored, occurred_at);
    let Some(data) = at(event, "/data") else {
        return Ok(out);
    };
    out.livemode = bool_at(event, "/live")
        .or_else(|| bool_at(data, "/live"))
        .unwrap_or(true);

    match event_type.as_str() {
        "account.created" | "account.updated" => {
            out.kind = Kind::CustomerUpserted;
            out.customer = Some(CustomerRef {
                external_id: str_at(data, "/id").or_else(|| str_at(data, "/account")),
                email: str_at(data, "/contact/email"),
                name: crate::json::full_name(
                    str_at(data, "/contact/first"),
                    str_at(data, "/contact/last"),
                ),
            });
        }
        "order.completed" => {
            out.kind = Kind::OrderPaid;
            out.customer = customer(data);
            // Items that started a subscription are licensed through that subscription
            // (`subscription.activated`), not as a one-time line.
            let lines = array(data, "/items")
                .iter()
                .filter(|item| at(item, "/subscription").is_none())
                .filter_map(product_item)
                .collect();
            out.order = order_id(data).map(|external_id| OrderRef { external_id, lines });
            out.order_aliases = order_reference(data).into_iter().collect();
        }
        "subscription.activated"
        | "subscription.updated"
        | "subscription.canceled"
        | "subscription.uncanceled"
        | "subscription.deactivated"
        | "subscription.charge.completed"
        | "subscription.charge.failed"
        | "subscription.payment.overdue"
        | "subscription.paused"
        | "subscription.resumed" => {
            let Some(mut snapshot) = subscription(data) else {
                return Err(BillingError::malformed(format!(
                    "{event_type} names no subscription"
                )));
            };
            out.kind = match event_type.as_str() {
                "subscription.activated" if snapshot.status == Some(Status::Trialing) => {
                    Kind::TrialStarted
                }
                "subscription.activated" => Kind::SubscriptionActivated,
                "subscription.canceled" => Kind::SubscriptionCancelScheduled,
                "subscription.deactivated" => Kind::SubscriptionCanceled,
                "subscription.charge.completed" => Kind::SubscriptionRenewed,
                // "After the subscription is in a paused state, customers will not have
                // access to the services" (FastSpring): suspend until resumed.
                "subscription.paused" => Kind::SubscriptionPaused,
                "subscription.resumed" => Kind::SubscriptionResumed,
                "subscription.charge.failed" | "subscription.payment.overdue" => {
                    Kind::PaymentFailed
                }
                _ => Kind::SubscriptionUpdated,
            };
            match out.kind {
                Kind::SubscriptionRenewed if snapshot.partial => {
                    // Without Webhook Expansion the charge names only ids: no period. The
                    // reconcile extends by the known interval, else the event fails
                    // WEBHOOK_EXPANSION_REQUIRED.
                    snapshot.status = Some(Status::Active);
                    out.period_missing = Some(MissingPeriod::WebhookExpansion);
                }
                Kind::SubscriptionPaused => snapshot.status = Some(Status::Paused),
                Kind::SubscriptionResumed
                    if matches!(snapshot.status, None | Some(Status::Paused)) =>
                {
                    snapshot.status = Some(Status::Active)
                }
                Kind::PaymentFailed if matches!(snapshot.status, None | Some(Status::Active)) => {
                    snapshot.status = Some(Status::PastDue)
                }
                Kind::SubscriptionCanceled if snapshot.ended_at.is_none() => {
                    snapshot.status = Some(Status::Canceled);
                    snapshot.ended_at = Some(occurred_at);
                }
                _ => {}
            }
            if matches!(out.kind, Kind::SubscriptionRenewed | Kind::PaymentFailed) {
                out.order = at(data, "/order").and_then(id_or_order).map(|id| OrderRef {
                    external_id: id,
                    lines: Vec::new(),
                });
            }
            out.customer = customer(data).or_else(|| {
                at(data, "/subscription")
                    .filter(|s| s.is_object())
                    .and_then(customer)
            });
            out.billing_interval_seconds = billing_interval(data);
            out.subscription = Some(snapshot);
        }
        "return.created" => {
            out.kind = Kind::Refunded;
            // A return not yet completed is a refund asked for, not done.
            if data.get("completed").and_then(Value::as_bool) == Some(false) {
                out.reversal = Some(keygate_domain::billing::Reversal::RefundInitiated);
            }
            out.customer = customer(data);
            let original = at(data, "/original");
            let order = original
                .and_then(|o| str_at(o, "/id").or_else(|| str_at(o, "/order")))
                .or_else(|| at(data, "/order").and_then(id_or_order));
            out.order = order.map(|external_id| OrderRef {
                external_id,
                lines: array(data, "/items")
                    .iter()
                    .filter_map(product_item)
                    .collect(),
            });
            // The remote license generator knows the order by its reference only.
            out.order_aliases = original
                .and_then(|o| str_at(o, "/reference"))
                .into_iter()
                .collect();
            out.subscription = array(data, "/items")
                .iter()
                .find_map(|item| id_at(item, "/subscription"))
                .map(SubscriptionSnapshot::partial);
        }
        "order.chargeback" => {
            out.kind = Kind::Chargeback;
            out.customer = customer(data);
            out.order = order_id(data).map(|external_id| OrderRef {
                external_id,
                lines: Vec::new(),
            });
            out.order_aliases = order_reference(data).into_iter().collect();
        }
        _ => {}
    }
    Ok(out)
}

/// An order id: `order` (id or expanded order's `id`/`order`), else `id`.
fn order_id(data: &Value) -> Option<String> {
    at(data, "/order")
        .and_then(id_or_order)
        .or_else(|| str_at(data, "/id"))
}

/// The order's `reference` (`FUR...`), the id the remote license generator was called with.
fn order_reference(data: &Value) -> Option<String> {
    str_at(data, "/order/reference").or_else(|| str_at(data, "/reference"))
}

fn id_or_order(value: &Value) -> Option<String> {
    match value {
        Value::Object(_) => str_at(value, "/id").or_else(|| str_at(value, "/order")),
        other => crate::json::text(Some(other)),
    }
}

/// The customer: `customer` {first, last, email} and/or `account` (id or expanded).
fn customer(data: &Value) -> Option<CustomerRef> {
    let reference = CustomerRef {
        external_id: id_at(data, "/account"),
        email: str_at(data, "/customer/email").or_else(|| str_at(data, "/account/contact/email")),
        name: crate::json::full_name(
            str_at(data, "/customer/first").or_else(|| str_at(data, "/account/contact/first")),
            str_at(data, "/customer/last").or_else(|| str_at(data, "/account/contact/last")),
        ),
    };
    (!reference.is_empty()).then_some(reference)
}

/// `product` is a path string, or an object with `product`.
fn product_item(item: &Value) -> Option<BillingItem> {
    let product = match at(item, "/product")? {
        Value::Object(_) => str_at(item, "/product/product")?,
        other => crate::json::text(Some(other))?,
    };
    Some(BillingItem {
        external_id: product,
        product_external_id: str_at(item, "/sku"),
        quantity: int_at(item, "/quantity").unwrap_or(1),
        line_id: None,
        fallback_ids: Vec::new(),
    })
}

/// `intervalLength` × `intervalUnit` of the subscription object (a month counted as 30 days,
/// a year as 365: a derived date is a stand-in the next full snapshot corrects).
fn billing_interval(data: &Value) -> Option<i64> {
    let object = match at(data, "/subscription") {
        Some(sub @ Value::Object(_)) => sub,
        _ => data,
    };
    const DAY: i64 = 86_400;
    let unit = match str_at(object, "/intervalUnit")?.as_str() {
        "day" => DAY,
        "week" => 7 * DAY,
        "month" => 30 * DAY,
        "year" => 365 * DAY,
        _ => return None,
    };
    let length = int_at(object, "/intervalLength").unwrap_or(1);
    (1..=1000).contains(&length).then_some(unit * length)
}

fn status(state: &str, active: Option<bool>) -> Option<Status> {
    if active == Some(false) {
        return Some(Status::Canceled);
    }
    Some(match state {
        "active" | "canceled" => Status::Active,
        "trial" => Status::Trialing,
        "overdue" => Status::PastDue,
        "deactivated" => Status::Canceled,
        "paused" => Status::Paused,
        _ => return None,
    })
}

/// The subscription of a `subscription.*` event: `data` itself, or `data.subscription` when
/// expanded. Without expansion a charge event only names it: a partial snapshot.
fn subscription(data: &Value) -> Option<SubscriptionSnapshot> {
    let object = match at(data, "/subscription") {
        Some(sub @ Value::Object(_)) => sub,
        _ => data,
    };
    let external_id = id_at(data, "/subscription").or_else(|| str_at(object, "/id"))?;
    let Some(state) = str_at(object, "/state") else {
        return Some(SubscriptionSnapshot::partial(external_id));
    };
    let status = status(&state, bool_at(object, "/active"));
    let next =
        unix_seconds_at(object, "/nextInSeconds").or_else(|| unix_millis_at(object, "/next"));
    let deactivation = unix_seconds_at(object, "/deactivationDateInSeconds")
        .or_else(|| unix_millis_at(object, "/deactivationDate"));
    let cancel_scheduled = state == "canceled" && status == Some(Status::Active);
    let mut items: Vec<BillingItem> = product_item(object).into_iter().collect();
    items.extend(array(object, "/addons").iter().filter_map(product_item));
    Some(SubscriptionSnapshot {
        external_id,
        status,
        items,
        current_period_end: next.or(if cancel_scheduled { deactivation } else { None }),
        cancel_at_period_end: cancel_scheduled,
        cancel_at: if cancel_scheduled { deactivation } else { None },
        ended_at: if status == Some(Status::Canceled) {
            deactivation.or_else(|| {
                unix_seconds_at(object, "/endInSeconds").or_else(|| unix_millis_at(object, "/end"))
            })
        } else {
            None
        },
        trial_end: if status == Some(Status::Trialing) {
            next
        } else {
            None
        },
        partial: false,
    })
}
