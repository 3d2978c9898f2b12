//! 2Checkout (Verifone, formerly Avangate): IPN (Instant Payment Notification, one per order
//! status change) and LCN (License Change Notification, one per subscription change), both
//! POSTed as `application/x-www-form-urlencoded` to the same URL.
//!
//! Verify ([`length_prefixed_hmac`](crate::scheme::length_prefixed_hmac)): the strongest of
//! `SIGNATURE_SHA3_256`, `SIGNATURE_SHA2_256`, `HASH` = HMAC(Secret Key, every other field's
//! value length-prefixed, in received order). No timestamp is signed. Several secret keys may
//! be configured (rotation).
//!
//! Answer: 2Checkout counts a notification delivered only when the answer body carries the read
//! receipt (`<sig algo=… date=…>…</sig>` or `<EPAYMENT>…</EPAYMENT>`), signed with the
//! algorithm and key the request was signed with; without it, it retries for up to two days.
//! The LCN URL check is a GET that must answer 200.
//!
//! Parse:
//! - IPN (`REFNO` present), `ORDERSTATUS` `COMPLETE` / `PAYMENT_RECEIVED`: products are
//!   parallel arrays (`IPN_PID[]`, `IPN_PCODE[]`, `IPN_QTY[]`, `IPN_LICENSE_REF[]`,
//!   `IPN_LICENSE_TYPE[]`, `IPN_LICENSE_EXP[]`, `IPN_LICENSE_LIFETIME[]`). A product's id is
//!   its code (`IPN_PCODE[]`), else its numeric id (`IPN_PID[]`). Each subscription
//!   (`IPN_LICENSE_REF[]`, not lifetime) is one event: `REGULAR` activated, `TRIAL` trial
//!   started, `RENEW` renewed, `UPGRADE` updated; paid through `IPN_LICENSE_EXP[]`. Lifetime
//!   products (and products with no subscription) are one `order_paid` event for the order.
//!   `REFUND` (`REFUND_TYPE` `FULL`/`PARTIAL`), `REVERSED` (a chargeback) and `CANCELED` reach
//!   the same subscriptions and order. `FRAUD_STATUS=DENIED` and other statuses are ignored.
//! - LCN (`LICENSE_CODE` present): the subscription's state as a full snapshot (no items: an
//!   LCN names the product but not the quantity): `STATUS` `ACTIVE`/`PASTDUE`/`EXPIRED`,
//!   `DISABLED=1` (ended now), `RECURRING=0` (auto-renewal off: ends at the expiration),
//!   paid through `EXPIRATION_DATE_TIME` (else the `EXPIRATION_DATE` day).
//! - Dates are local to `TIMEZONE_OFFSET` (`GMT+03:00`; absent: UTC). `TEST_ORDER` / `TEST`
//!   = 1 is test mode.
//!
//! De-duplication (2Checkout has no event id): IPN `{REFNO}:{ORDERSTATUS}:{MESSAGE_ID}`
//! (`IPN_DATE` when the IPN settings leave `MESSAGE_ID` out), plus `:{IPN_LICENSE_REF}` for a
//! subscription's event; LCN `lcn:{LICENSE_CODE}:{DATE_UPDATED}:{STATUS}`. A retry re-sends
//! the same fields, so it is a duplicate.

use crate::decode::dates::{compact_datetime, compact_utc, gmt_offset, local_datetime};
use crate::decode::form::Form;
use crate::scheme::length_prefixed_hmac as scheme;
use crate::{Ack, BillingError, ConfigError, Provider, Receipt, Request, Secrets};
use keygate_domain::Timestamp;
use keygate_domain::billing::{
    BillingEvent, BillingEventKind as Kind, BillingItem, CustomerRef, OrderRef, Reversal,
    SubscriptionSnapshot, SubscriptionStatus as Status,
};

pub struct TwoCheckout;

/// The expiration 2Checkout writes for a lifetime license.
const LIFETIME: &str = "9999-12-31";

impl Provider for TwoCheckout {
    fn name(&self) -> &'static str {
        "twocheckout"
    }

    #[cfg(feature = "testkit")]
    fn kit(&self) -> &'static dyn crate::testkit::Kit {
        &crate::testkit::TwoCheckoutKit
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
        let form = request.form()?;
        let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
        scheme::verify(&form, &keys).map(|_| ())
    }

    fn parse(&self, request: &Request) -> Result<Vec<BillingEvent>, BillingError> {
        let form = request.form()?;
        if form.get("REFNO").is_some() {
            ipn(&form)
        } else if form.get("LICENSE_CODE").is_some() {
            lcn(&form).map(|e| vec![e])
        } else {
            Err(BillingError::malformed(
                "neither an IPN (REFNO) nor an LCN (LICENSE_CODE)",
            ))
        }
    }

    /// The read receipt, signed with the key and algorithm that verified the request; the
    /// `DATE` is now, UTC. Without a verifying key (cannot happen after `verify`) the answer
    /// has no receipt and 2Checkout retries, which is the safe side.
    fn acknowledge_signed(
        &self,
        request: &Request,
        secrets: &Secrets,
        receipts: &[Receipt],
        now: Timestamp,
    ) -> Ack {
        let receipt = (|| {
            let form = request.form().ok()?;
            let keys = secrets.required().ok()?;
            let key_bytes: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
            let (algorithm, index) = scheme::verify(&form, &key_bytes).ok()?;
            let values: Vec<&str> = if form.get("REFNO").is_some() {
                vec![
                    first(&form, "IPN_PID").unwrap_or(""),
                    first(&form, "IPN_PNAME").unwrap_or(""),
                    form.get("IPN_DATE").unwrap_or(""),
                ]
            } else {
                vec![
                    form.get("LICENSE_CODE").unwrap_or(""),
                    form.get("EXPIRATION_DATE").unwrap_or(""),
                ]
            };
            Some(scheme::read_receipt(
                algorithm,
                key_bytes[index],
                &values,
                &compact_utc(now),
            ))
        })();
        match receipt {
            Some(receipt) => Ack {
                status: 200,
                content_type: "text/html; charset=utf-8",
                body: receipt.into_bytes(),
            },
            None => Ack::receipt(receipts),
        }
    }

    /// The LCN URL check: 2Checkout GETs the listener and wants a 200.
    fn answers_get(&self) -> bool {
        true
    }

    fn challenge(&self, _request: &Request, secrets: &Secrets) -> Result<Ack, BillingError> {
        secrets.required()?;
        Ok(Ack::text(200, "OK"))
    }
}

/// The first value of the array `name` (`name[]`, `name[0]`, ...).
fn first<'a>(form: &'a Form, name: &str) -> Option<&'a str> {
    array(form, name).into_iter().next()
}

/// Every value of the array `name`, in received order.
fn array<'a>(form: &'a Form, name: &str) -> Vec<&'a str> {
    scheme::php_fields(form)
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, values)| values)
        .unwrap_or_default()
}

fn value<'a>(form: &'a Form, name: &str) -> Option<&'a str> {
    form.get(name).map(str::trim).filter(|v| !v.is_empty())
}

fn offset(form: &Form) -> String {
    value(form, "TIMEZONE_OFFSET")
        .and_then(gmt_offset)
        .unwrap_or_else(|| "Z".into())
}

/// A 2Checkout time: `YYYY-MM-DD HH:MM:SS` or `YmdHis`, local to the notification's offset.
fn time(text: &str, offset: &str) -> Option<Timestamp> {
    local_datetime(text, offset).or_else(|| compact_datetime(text, offset))
}

/// An expiration: a time, or a day (valid through its end); `None` for a lifetime license.
fn expiration(text: &str, offset: &str) -> Option<Timestamp> {
    let text = text.trim();
    if text.starts_with(LIFETIME) {
        return None;
    }
    time(text, offset).or_else(|| crate::decode::dates::date_end(text, offset))
}

fn customer(form: &Form, email: &str, first: &str, last: &str) -> Option<CustomerRef> {
    let reference = CustomerRef {
        external_id: value(form, "AVANGATE_CUSTOMER_REFERENCE").map(str::to_string),
        email: value(form, email).map(str::to_string),
        name: crate::json::full_name(
            value(form, first).map(str::to_string),
            value(form, last).map(str::to_string),
        ),
    };
    (!reference.is_empty()).then_some(reference)
}

/// One product line of an IPN (the i-th element of each product array).
struct Line<'a> {
    item: BillingItem,
    license_ref: Option<&'a str>,
    license_type: &'a str,
    expires: Option<&'a str>,
    lifetime: bool,
}

fn lines(form: &Form) -> Result<Vec<Line<'_>>, BillingError> {
    let pids = array(form, "IPN_PID");
    let codes = array(form, "IPN_PCODE");
    let quantities = array(form, "IPN_QTY");
    let refs = array(form, "IPN_LICENSE_REF");
    let types = array(form, "IPN_LICENSE_TYPE");
    let exps = array(form, "IPN_LICENSE_EXP");
    let lifetimes = array(form, "IPN_LICENSE_LIFETIME");
    let count = pids.len().max(codes.len());
    fn at<'a>(values: &[&'a str], i: usize) -> Option<&'a str> {
        values.get(i).map(|v| v.trim()).filter(|v| !v.is_empty())
    }
    (0..count)
        .map(|i| {
            let external_id = at(&codes, i).or_else(|| at(&pids, i)).ok_or_else(|| {
                BillingError::malformed(format!("product {i} has no IPN_PCODE[] or IPN_PID[]"))
            })?;
            let quantity = match at(&quantities, i) {
                Some(q) => q.parse::<i64>().map_err(|_| {
                    BillingError::malformed(format!("IPN_QTY[] `{q}` is not a number"))
                })?,
                None => 1,
            };
            let expires = at(&exps, i);
            Ok(Line {
                item: BillingItem {
                    external_id: external_id.to_string(),
                    product_external_id: at(&pids, i).map(str::to_string),
                    quantity,
                    line_id: None,
                    // A mapping may name the product code or, failing that, its numeric id.
                    fallback_ids: at(&pids, i)
                        .filter(|pid| *pid != external_id)
                        .map(str::to_string)
                        .into_iter()
                        .collect(),
                },
                license_ref: at(&refs, i),
                license_type: at(&types, i).unwrap_or("REGULAR"),
                expires,
                lifetime: at(&lifetimes, i).is_some_and(|l| l.eq_ignore_ascii_case("YES"))
                    || expires.is_some_and(|e| e.starts_with(LIFETIME)),
            })
        })
        .collect()
}

fn ipn(form: &Form) -> Result<Vec<BillingEvent>, BillingError> {
    let refno = value(form, "REFNO").ok_or_else(|| BillingError::malformed("REFNO is empty"))?;
    let status = value(form, "ORDERSTATUS").unwrap_or("");
    let offset = offset(form);
    let occurred_at = ["IPN_DATE", "COMPLETE_DATE", "PAYMENTDATE", "SALEDATE"]
        .iter()
        .find_map(|f| value(form, f).and_then(|v| time(v, &offset)))
        .ok_or_else(|| BillingError::malformed("IPN_DATE is missing or not a date"))?;
    let message = value(form, "MESSAGE_ID")
        .or_else(|| value(form, "IPN_DATE"))
        .unwrap_or("");
    let base_id = format!("{refno}:{status}:{message}");
    let livemode = value(form, "TEST_ORDER") != Some("1");
    let event = |id: String, kind: Kind| BillingEvent {
        livemode,
        customer: customer(form, "CUSTOMEREMAIL", "FIRSTNAME", "LASTNAME"),
        ..BillingEvent::new(
            id,
            format!("ipn.{}", status.to_ascii_lowercase()),
            kind,
            occurred_at,
        )
    };
    let paid = matches!(status, "COMPLETE" | "PAYMENT_RECEIVED");
    let reversal = match status {
        "REFUND" => Some((
            Kind::Refunded,
            match value(form, "REFUND_TYPE") {
                Some(t) if t.eq_ignore_ascii_case("PARTIAL") => Reversal::PartialRefund,
                Some(t) if t.eq_ignore_ascii_case("FULL") => Reversal::FullRefund,
                _ => Reversal::RefundOfUnknownSize,
            },
        )),
        "REVERSED" => Some((Kind::Chargeback, Reversal::Chargeback)),
        // An order cancelled after it was delivered: whatever it granted is taken back.
        "CANCELED" => Some((Kind::Refunded, Reversal::FullRefund)),
        _ => None,
    };
    let denied = value(form, "FRAUD_STATUS").is_some_and(|f| f.eq_ignore_ascii_case("DENIED"));
    if (!paid && reversal.is_none()) || (paid && denied) {
        return Ok(vec![event(base_id, Kind::Ignored)]);
    }

    let lines = lines(form)?;
    let (subscribed, one_time): (Vec<&Line>, Vec<&Line>) = lines
        .iter()
        .partition(|l| l.license_ref.is_some() && !l.lifetime);
    let mut events = Vec::new();
    // One event per subscription the order touches.
    let mut refs: Vec<&str> = Vec::new();
    for license_ref in subscribed.iter().filter_map(|l| l.license_ref) {
        if !refs.contains(&license_ref) {
            refs.push(license_ref);
        }
    }
    for license_ref in refs {
        let of_ref: Vec<&&Line> = subscribed
            .iter()
            .filter(|l| l.license_ref == Some(license_ref))
            .collect();
        let kind_word = of_ref[0].license_type.to_ascii_uppercase();
        let period_end = of_ref
            .iter()
            .filter_map(|l| l.expires.and_then(|e| expiration(e, &offset)))
            .max();
        let mut snapshot = SubscriptionSnapshot::partial(license_ref);
        let kind = match reversal {
            Some((kind, _)) => kind,
            None => {
                snapshot.items = of_ref.iter().map(|l| l.item.clone()).collect();
                snapshot.current_period_end = period_end;
                match kind_word.as_str() {
                    "RENEW" => Kind::SubscriptionRenewed,
                    "UPGRADE" => Kind::SubscriptionUpdated,
                    "TRIAL" => {
                        snapshot.trial_end = period_end;
                        Kind::TrialStarted
                    }
                    _ => Kind::SubscriptionActivated,
                }
            }
        };
        snapshot.status = match kind {
            Kind::TrialStarted => Some(Status::Trialing),
            Kind::SubscriptionActivated | Kind::SubscriptionRenewed | Kind::SubscriptionUpdated => {
                Some(Status::Active)
            }
            _ => None,
        };
        events.push(BillingEvent {
            subscription: Some(snapshot),
            reversal: reversal.map(|(_, r)| r),
            ..event(format!("{base_id}:{license_ref}"), kind)
        });
    }
    if !one_time.is_empty() || events.is_empty() {
        let kind = reversal.map_or(Kind::OrderPaid, |(kind, _)| kind);
        events.push(BillingEvent {
            order: Some(OrderRef {
                external_id: refno.to_string(),
                lines: one_time.iter().map(|l| l.item.clone()).collect(),
            }),
            reversal: reversal.map(|(_, r)| r),
            ..event(base_id, kind)
        });
    }
    Ok(events)
}

fn lcn(form: &Form) -> Result<BillingEvent, BillingError> {
    let code = value(form, "LICENSE_CODE")
        .ok_or_else(|| BillingError::malformed("LICENSE_CODE is empty"))?;
    let offset = offset(form);
    let updated = value(form, "DATE_UPDATED");
    let occurred_at = updated
        .and_then(|u| time(u, &offset))
        .ok_or_else(|| BillingError::malformed("DATE_UPDATED is missing or not a date"))?;
    let expires = value(form, "EXPIRATION_DATE_TIME")
        .or_else(|| value(form, "EXPIRATION_DATE"))
        .and_then(|e| expiration(e, &offset));
    let status_word = value(form, "STATUS")
        .unwrap_or("ACTIVE")
        .to_ascii_uppercase();
    let flag = |name: &str| value(form, name) == Some("1");
    let disabled = flag("DISABLED") || status_word == "DISABLED";
    let expired = flag("EXPIRED") || status_word == "EXPIRED";
    let trial = flag("IS_TRIAL") || value(form, "LICENSE_TYPE") == Some("TRIAL");
    let auto_renews = value(form, "RECURRING") != Some("0");
    let mut snapshot = SubscriptionSnapshot {
        current_period_end: expires,
        partial: false,
        ..SubscriptionSnapshot::partial(code)
    };
    let kind = if disabled {
        snapshot.status = Some(Status::Canceled);
        snapshot.ended_at = Some(occurred_at);
        Kind::SubscriptionCanceled
    } else if expired {
        snapshot.status = Some(Status::Canceled);
        snapshot.ended_at = expires.or(Some(occurred_at));
        Kind::SubscriptionCanceled
    } else if matches!(status_word.as_str(), "PASTDUE" | "PAST_DUE") {
        snapshot.status = Some(Status::PastDue);
        Kind::PaymentFailed
    } else if status_word == "PENDING" {
        snapshot.status = Some(Status::Incomplete);
        Kind::SubscriptionUpdated
    } else {
        snapshot.status = Some(if trial {
            Status::Trialing
        } else {
            Status::Active
        });
        snapshot.trial_end = if trial { expires } else { None };
        if auto_renews {
            Kind::SubscriptionUpdated
        } else {
            snapshot.cancel_at_period_end = true;
            snapshot.cancel_at = expires;
            Kind::SubscriptionCancelScheduled
        }
    };
    let event_id = format!("lcn:{code}:{}:{status_word}", updated.unwrap_or_default());
    Ok(BillingEvent {
        livemode: value(form, "TEST") != Some("1"),
        customer: customer(form, "EMAIL", "FIRST_NAME", "LAST_NAME"),
        subscription: Some(snapshot),
        ..BillingEvent::new(
            event_id,
            format!(
                "lcn.{}",
                value(form, "DISPATCH_REASON")
                    .unwrap_or("LICENCE_CHANGE")
                    .to_ascii_lowercase()
            ),
            kind,
            occurred_at,
        )
    })
}
