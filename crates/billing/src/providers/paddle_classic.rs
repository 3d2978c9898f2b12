//! Paddle Classic (the legacy Paddle, before Paddle Billing): form-encoded "alerts".
//!
//! Verify: the form field `p_signature` is base64 RSA PKCS#1 v1.5 SHA-1 over PHP
//! `serialize()` of every other field, sorted by key, each value a string
//! ([`SerializedFormRsa`]). The key is the vendor's RSA **public** key, pasted as Paddle shows
//! it (Developer Tools > Public Key: an SPKI PEM, 4096-bit): it is the integration's secret
//! (several during a rotation or for sandbox + live). Nothing is timestamped, so a captured
//! alert can be replayed: the inbox de-duplicates on `alert_id`.
//!
//! Parse: `alert_name` is the event type and `alert_id` (an integer sent as text) the event
//! id, also the `ordering_version` (Paddle numbers alerts in order, and `event_time` only has
//! seconds: an activation and its first payment often share one). Dates: Paddle names days
//! (`next_bill_date`, `cancellation_effective_date`, `YYYY-MM-DD`); Keygate reads a day as
//! paid through its end in UTC (the next day's 00:00:00Z), because Paddle charges during that
//! day and the alert can come hours later. Subscriptions are keyed on `subscription_plan_id`,
//! one-time orders on `product_id`. No alert carries a test flag (the sandbox is a separate
//! vendor account with its own public key).

use crate::decode::civil;
use crate::scheme::SerializedFormRsa;
use crate::scheme::rsa_signature;
use crate::{BillingError, ConfigError, Form, Provider, Request, Secrets};
use keygate_domain::Timestamp;
use keygate_domain::billing::{
    BillingEvent, BillingEventKind as Kind, BillingItem, CustomerRef, OrderRef, Reversal,
    SubscriptionSnapshot, SubscriptionStatus as Status,
};

pub struct PaddleClassic;

/// `p_signature`: RSA-SHA1 over the PHP-serialized, sorted other fields.
pub const SCHEME: SerializedFormRsa = SerializedFormRsa {
    field: "p_signature",
};

const DAY: i64 = 86_400;

impl Provider for PaddleClassic {
    fn name(&self) -> &'static str {
        "paddle_classic"
    }

    #[cfg(feature = "testkit")]
    fn kit(&self) -> &'static dyn crate::testkit::Kit {
        &crate::testkit::PaddleClassicKit
    }

    fn check_config(&self, secrets: &Secrets, now: Timestamp) -> Result<(), ConfigError> {
        crate::config::require_secret(secrets, now)?;
        for (index, secret) in usable(secrets).iter().enumerate() {
            rsa_signature::public_key(secret).map_err(|why| {
                ConfigError::SecretInvalid(format!(
                    "secrets[{index}] is not the vendor public key Paddle shows \
                     (-----BEGIN PUBLIC KEY----- ...): {why}"
                ))
            })?;
        }
        Ok(())
    }

    fn verify(
        &self,
        request: &Request,
        secrets: &Secrets,
        _now: Timestamp,
    ) -> Result<(), BillingError> {
        secrets.required()?;
        let keys: Vec<_> = usable(secrets)
            .iter()
            .filter_map(|s| rsa_signature::public_key(s).ok())
            .collect();
        SCHEME.verify(&request.form()?, &keys)
    }

    fn parse(&self, request: &Request) -> Result<Vec<BillingEvent>, BillingError> {
        Ok(vec![parse_alert(&request.form()?)?])
    }
}

fn usable(secrets: &Secrets) -> Vec<&str> {
    secrets.required().unwrap_or_default()
}

/// A non-blank field.
fn field<'a>(form: &'a Form, name: &str) -> Option<&'a str> {
    form.get(name).map(str::trim).filter(|v| !v.is_empty())
}

/// The end (UTC) of the day a date field names.
fn end_of_day(form: &Form, name: &str) -> Option<Timestamp> {
    field(form, name)
        .and_then(civil::date)
        .map(|day| day.plus_seconds(DAY))
}

fn parse_alert(form: &Form) -> Result<BillingEvent, BillingError> {
    let alert_id = field(form, "alert_id")
        .ok_or_else(|| BillingError::malformed("the alert has no `alert_id`"))?;
    let alert_name = field(form, "alert_name").unwrap_or("unknown");
    let occurred_at = field(form, "event_time")
        .and_then(civil::date_time)
        .ok_or_else(|| {
            BillingError::malformed("`event_time` is missing or not `YYYY-MM-DD HH:MM:SS`")
        })?;
    let mut out = BillingEvent::new(alert_id, alert_name, Kind::Ignored, occurred_at);
    out.ordering_version = alert_id.parse().ok();
    out.customer = customer(form);
    let order = field(form, "order_id").map(|id| OrderRef {
        external_id: id.to_string(),
        lines: Vec::new(),
    });

    match alert_name {
        "subscription_created" | "subscription_updated" => {
            let Some(mut snapshot) = subscription(form, false) else {
                return Ok(out);
            };
            snapshot.status = status(form);
            snapshot.current_period_end = end_of_day(form, "next_bill_date");
            if snapshot.status == Some(Status::Trialing) {
                snapshot.trial_end = snapshot.current_period_end;
            }
            if snapshot.status == Some(Status::Canceled) {
                snapshot.ended_at = Some(occurred_at);
            }
            let was_paused = field(form, "old_status") == Some("paused");
            out.kind = match (alert_name, snapshot.status) {
                ("subscription_created", Some(Status::Trialing)) => Kind::TrialStarted,
                ("subscription_created", _) => Kind::SubscriptionActivated,
                (_, Some(Status::Paused)) => Kind::SubscriptionPaused,
                (_, Some(Status::Canceled)) => Kind::SubscriptionCanceled,
                (_, Some(Status::Active | Status::Trialing)) if was_paused => {
                    Kind::SubscriptionResumed
                }
                _ => Kind::SubscriptionUpdated,
            };
            out.subscription = Some(snapshot);
        }
        "subscription_cancelled" => {
            let Some(mut snapshot) = subscription(form, true) else {
                return Ok(out);
            };
            // Access lasts until the end of `cancellation_effective_date` ("the customer
            // should have access to the service until this date"); a date already over is an
            // ended subscription.
            let ends = end_of_day(form, "cancellation_effective_date");
            match ends {
                Some(ends) if ends > occurred_at => {
                    out.kind = Kind::SubscriptionCancelScheduled;
                    snapshot.status = Some(Status::Active);
                    snapshot.cancel_at_period_end = true;
                    snapshot.cancel_at = Some(ends);
                }
                _ => {
                    out.kind = Kind::SubscriptionCanceled;
                    snapshot.status = Some(Status::Canceled);
                    snapshot.ended_at = Some(ends.unwrap_or(occurred_at));
                }
            }
            out.subscription = Some(snapshot);
        }
        "subscription_payment_succeeded" => {
            let Some(mut snapshot) = subscription(form, true) else {
                return Ok(out);
            };
            snapshot.status = status(form).or(Some(Status::Active));
            snapshot.current_period_end = end_of_day(form, "next_bill_date");
            out.kind = if truthy(field(form, "initial_payment")) {
                Kind::SubscriptionActivated
            } else {
                Kind::SubscriptionRenewed
            };
            out.subscription = Some(snapshot);
            out.order = order;
        }
        "subscription_payment_failed" => {
            let Some(mut snapshot) = subscription(form, true) else {
                return Ok(out);
            };
            snapshot.status = status(form).or(Some(Status::PastDue));
            out.kind = Kind::PaymentFailed;
            out.subscription = Some(snapshot);
            out.order = order;
        }
        "subscription_payment_refunded" => {
            let Some(sub_id) = field(form, "subscription_id") else {
                return Ok(out);
            };
            out.kind = Kind::Refunded;
            out.reversal = Some(refund_size(form));
            out.subscription = Some(SubscriptionSnapshot::partial(sub_id));
            out.order = order;
        }
        "payment_succeeded" => {
            let Some(order) = order else {
                return Ok(out);
            };
            out.kind = Kind::OrderPaid;
            out.order = Some(OrderRef {
                lines: field(form, "product_id")
                    .map(|id| BillingItem {
                        external_id: id.to_string(),
                        product_external_id: None,
                        line_id: None,
                        fallback_ids: Vec::new(),
                        quantity: quantity(form, "quantity"),
                    })
                    .into_iter()
                    .collect(),
                ..order
            });
        }
        "payment_refunded" if order.is_some() => {
            out.kind = Kind::Refunded;
            out.reversal = Some(refund_size(form));
            out.order = order;
        }
        "payment_dispute_created" if order.is_some() => {
            out.kind = Kind::Chargeback;
            out.reversal = Some(Reversal::Chargeback);
            out.order = order;
        }
        _ => {}
    }
    Ok(out)
}

/// The subscription the alert names, with its plan as the one item (`new_quantity` on
/// `subscription_updated`, else `quantity`). `partial` for the payment and cancellation
/// alerts, which say less than the created/updated ones.
fn subscription(form: &Form, partial: bool) -> Option<SubscriptionSnapshot> {
    let id = field(form, "subscription_id")?;
    let mut snapshot = SubscriptionSnapshot::partial(id);
    snapshot.partial = partial;
    snapshot.items = field(form, "subscription_plan_id")
        .map(|plan| BillingItem {
            external_id: plan.to_string(),
            product_external_id: None,
            line_id: None,
            fallback_ids: Vec::new(),
            quantity: quantity(form, "new_quantity").max(quantity(form, "quantity")),
        })
        .into_iter()
        .collect();
    Some(snapshot)
}

/// A quantity field (absent = 0, so that `max` picks the one that is sent; at least 1).
fn quantity(form: &Form, name: &str) -> i64 {
    field(form, name)
        .and_then(|q| q.parse::<i64>().ok())
        .unwrap_or(0)
        .max(if name == "quantity" { 1 } else { 0 })
}

fn status(form: &Form) -> Option<Status> {
    match field(form, "status")? {
        "active" => Some(Status::Active),
        "trialing" => Some(Status::Trialing),
        "past_due" => Some(Status::PastDue),
        "paused" => Some(Status::Paused),
        "deleted" => Some(Status::Canceled),
        _ => None,
    }
}

/// `refund_type`: `full`, `vat` (tax only) or `partial`.
fn refund_size(form: &Form) -> Reversal {
    match field(form, "refund_type") {
        Some("full") => Reversal::FullRefund,
        Some("vat") => Reversal::TaxOnlyRefund,
        Some("partial") => Reversal::PartialRefund,
        _ => Reversal::RefundOfUnknownSize,
    }
}

/// Paddle's booleans in forms: `1`/`0` (documented) or `true`/`false`.
fn truthy(value: Option<&str>) -> bool {
    matches!(value, Some("1" | "true"))
}

fn customer(form: &Form) -> Option<CustomerRef> {
    let reference = CustomerRef {
        external_id: field(form, "user_id").map(str::to_string),
        email: field(form, "email").map(str::to_string),
        name: field(form, "customer_name").map(str::to_string),
    };
    (!reference.is_empty()).then_some(reference)
}
