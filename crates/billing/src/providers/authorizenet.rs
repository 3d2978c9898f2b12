//! Authorize.Net (Webhooks, Automated Recurring Billing, the JSON API).
//!
//! Verify: `X-ANET-Signature: sha512=<HEX>`, HMAC-SHA512 over the raw body keyed with the
//! merchant's **Signature Key as its text** (the 128 hex characters as ASCII bytes, not
//! hex-decoded); upper-case hex, compared in either case. The official webhook reference does
//! not say how the key is read; a real delivery published on Authorize.Net's developer forum
//! (thread 57162: body, key and signature) verifies with the text and not with the decoded
//! bytes, and so do the working answers there. The official SDK samples that hex-decode the key
//! (`sample-code-php/Sha512/compute_trans_hashSHA2.php`) compute the transaction-response
//! `SHA2_Hash`, another protocol; `webhooks-sample-app` verifies nothing. No timestamp is signed
//! and there is no rotation: a new Signature Key replaces the old one (listing both secrets
//! covers the switch).
//!
//! Parse: `{notificationId, eventType, eventDate, webhookId, payload: {entityName, id, ...}}`;
//! the inbox de-duplicates on `notificationId` (the same on every retry). Payloads carry no
//! email, no dates and no product, and a payment names no subscription, so every handled event
//! is completed from the JSON API (`POST /xml/v1/request.api`, the credentials in the body's
//! `merchantAuthentication`, answers prefixed with a byte order mark):
//! - `net.authorize.customer.subscription.*` (`payload.id`): `ARBGetSubscriptionRequest`
//!   (name, status, schedule, profile email);
//! - `net.authorize.payment.authcapture.created`: `getTransactionDetailsRequest`, whose
//!   `transaction.subscription {id, payNum}` names the ARB subscription, then that subscription
//!   (its interval); a payment of no subscription is ignored;
//! - `net.authorize.payment.refund.created`: the refund's details, then the refunded
//!   transaction (`refTransId`) for its subscription and to size the refund;
//! - `net.authorize.payment.void.created`: the voided transaction (a void reverses all of it).
//!
//! Paid-through date: ARB has none. A payment pays one interval from when it was charged
//! (`submitTimeUTC` + `paymentSchedule.interval`), plus a day, since ARB charges in a daily batch
//! whose hour varies; a new subscription before its first payment is valid until the day after
//! its first scheduled charge date. A mapping's `external_id` is the ARB subscription **name**
//! (ARB has no product id); ARB has no quantity (always 1). The customer is the customer
//! profile (`profile.customerProfileId`). Notifications carry no test flag (the sandbox is a
//! separate account): `livemode` is `true`.

use crate::api::{ApiSpec, Auth, Fetch, ObjectKind};
use crate::crypto::Algorithm;
use crate::json::{at, parse_object, required, str_at};
use crate::scheme::{BodyHmac, Encoding};
use crate::{BillingError, ConfigError, Provider, Request, Secrets};
use keygate_domain::Timestamp;
use keygate_domain::billing::{
    BillingEvent, BillingEventKind as Kind, BillingItem, CustomerRef, OrderRef, Reversal,
    SubscriptionSnapshot, SubscriptionStatus as Status,
};
use serde_json::{Value, json};

pub struct AuthorizeNet;

/// `X-ANET-Signature: sha512=<HEX>` over the raw body.
pub const SCHEME: BodyHmac = BodyHmac {
    header: "x-anet-signature",
    algorithm: Algorithm::Sha512,
    encoding: Encoding::UpperHex,
    prefix: "sha512=",
};

/// Where the JSON API answers (production; the sandbox is `https://apitest.authorize.net`).
pub const API_PATH: &str = "/xml/v1/request.api";

/// The margin after a period's computed end: ARB charges once a day, at an hour that varies.
const CHARGE_DAY_SECONDS: i64 = 86_400;

const SUBSCRIPTION_EVENT: &str = "net.authorize.customer.subscription.";
const ARB: &str = "ARBGetSubscriptionRequest";
const TRANSACTION: &str = "getTransactionDetailsRequest";

impl Provider for AuthorizeNet {
    fn name(&self) -> &'static str {
        "authorizenet"
    }

    #[cfg(feature = "testkit")]
    fn kit(&self) -> &'static dyn crate::testkit::Kit {
        &crate::testkit::AuthorizeNetKit
    }

    /// The Signature Key is 128 hex characters; anything else is a pasted Transaction Key or
    /// login id, which would refuse every delivery.
    fn check_config(&self, secrets: &Secrets, now: Timestamp) -> Result<(), ConfigError> {
        crate::config::require_secret(secrets, now)?;
        if secrets
            .secrets
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .any(|s| s.len() != 128 || !s.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(ConfigError::SecretInvalid(
                "an Authorize.Net Signature Key is 128 hexadecimal characters (Account → \
                 Settings → API Credentials & Keys → New Signature Key)"
                    .into(),
            ));
        }
        Ok(())
    }

    fn verify(
        &self,
        request: &Request,
        secrets: &Secrets,
        _now: Timestamp,
    ) -> Result<(), BillingError> {
        let keys = secrets.required()?;
        let keys: Vec<&[u8]> = keys.iter().map(|k| k.trim().as_bytes()).collect();
        SCHEME.verify(request.headers, request.body, &keys)
    }

    fn parse(&self, request: &Request) -> Result<Vec<BillingEvent>, BillingError> {
        Ok(vec![parse_notification(&parse_object(request.body)?)?])
    }

    fn api(&self) -> Option<ApiSpec> {
        Some(ApiSpec {
            default_base_url: "https://api.authorize.net",
            auth: Auth::InBody(&["api_login_id", "transaction_key"]),
            headers: &[],
        })
    }

    fn fetches(&self, event: &BillingEvent) -> Vec<Fetch> {
        event
            .needs_fetch
            .iter()
            .filter_map(|need| request(need))
            .collect()
    }

    fn complete(
        &self,
        mut event: BillingEvent,
        fetched: &[(Fetch, Value)],
    ) -> Result<BillingEvent, BillingError> {
        event.needs_fetch.clear();
        let mut transactions = Vec::new();
        let mut subscription = None;
        for (fetch, answer) in fetched {
            let answer = ok_answer(answer)?;
            match fetch.object {
                ObjectKind::Subscription => {
                    subscription = Some(at(answer, "/subscription").ok_or_else(|| {
                        BillingError::malformed("the answer has no `subscription`")
                    })?)
                }
                _ => {
                    transactions.push(at(answer, "/transaction").ok_or_else(|| {
                        BillingError::malformed("the answer has no `transaction`")
                    })?)
                }
            }
        }
        let subscription_id = event.subscription.as_ref().map(|s| s.external_id.clone());
        match (transactions.as_slice(), subscription, subscription_id) {
            ([], Some(arb), Some(id)) if event.kind == Kind::SubscriptionRenewed => {
                renewal_period(&mut event, &id, arb)
            }
            ([], Some(arb), _) => subscription_facts(&mut event, arb)?,
            ([tx], None, _) => transaction(&mut event, tx),
            ([refund, charge, ..], None, _) => refund_size(&mut event, refund, charge),
            _ => return Err(BillingError::malformed("unexpected answers")),
        }
        Ok(event)
    }
}

/// The answer's `messages.resultCode` is `Ok`, else the API's own error (`E00007` refused
/// credentials, `E00040` not found, ...).
fn ok_answer(answer: &Value) -> Result<&Value, BillingError> {
    if str_at(answer, "/messages/resultCode").as_deref() == Some("Ok") {
        return Ok(answer);
    }
    let first = at(answer, "/messages/message/0");
    Err(BillingError::malformed(format!(
        "Authorize.Net answered {}: {}",
        first.and_then(|m| str_at(m, "/code")).unwrap_or_default(),
        first.and_then(|m| str_at(m, "/text")).unwrap_or_default()
    )))
}

/// A need (`{request}:{id}`) as the JSON API request. The credentials are placeholders the
/// server fills in ([`Auth::InBody`]). Members are written in the schema's order, which the
/// API requires and which `serde_json`'s sorted maps happen to keep for these two requests
/// (`merchantAuthentication` < `subscriptionId` | `transId`).
fn request(need: &str) -> Option<Fetch> {
    let (kind, id) = need.split_once(':')?;
    let auth = json!({"name": {"$credential": "api_login_id"},
                      "transactionKey": {"$credential": "transaction_key"}});
    let (object, body) = match kind {
        ARB => (
            ObjectKind::Subscription,
            json!({ARB: {"merchantAuthentication": auth, "subscriptionId": id}}),
        ),
        TRANSACTION => (
            ObjectKind::Transaction,
            json!({TRANSACTION: {"merchantAuthentication": auth, "transId": id}}),
        ),
        _ => return None,
    };
    Some(Fetch {
        object,
        path: API_PATH.to_string(),
        body: Some(body),
    })
}

fn parse_notification(body: &Value) -> Result<BillingEvent, BillingError> {
    let event_id = required(body, "/notificationId")?;
    let event_type = required(body, "/eventType")?;
    let occurred_at = str_at(body, "/eventDate")
        .and_then(|d| utc(&d))
        .ok_or_else(|| BillingError::malformed("`/eventDate` is missing or not a time"))?;
    let mut out = BillingEvent::new(event_id, event_type.as_str(), Kind::Ignored, occurred_at);
    // The id travels inside a JSON request body, never in a path: any text is safe there.
    let id = str_at(body, "/payload/id").filter(|id| id.len() <= 64);
    let Some(id) = id else {
        return Ok(out);
    };
    if let Some(what) = event_type.strip_prefix(SUBSCRIPTION_EVENT) {
        out.kind = match what {
            "created" => Kind::SubscriptionActivated,
            "updated" => Kind::SubscriptionUpdated,
            "suspended" | "failed" => Kind::PaymentFailed,
            "cancelled" => Kind::SubscriptionCancelScheduled,
            "terminated" | "expired" => Kind::SubscriptionCanceled,
            // `expiring`: a reminder that the last payment is near, nothing changed.
            _ => return Ok(out),
        };
        out.needs_fetch = vec![format!("{ARB}:{id}")];
        out.subscription = Some(SubscriptionSnapshot::partial(id));
        return Ok(out);
    }
    out.kind = match event_type.as_str() {
        "net.authorize.payment.authcapture.created"
        | "net.authorize.payment.capture.created"
        | "net.authorize.payment.priorAuthCapture.created" => {
            // Declined and held captures are not payments.
            if at(body, "/payload/responseCode").and_then(Value::as_i64) != Some(1) {
                return Ok(out);
            }
            Kind::SubscriptionRenewed
        }
        "net.authorize.payment.refund.created" | "net.authorize.payment.void.created" => {
            Kind::Refunded
        }
        _ => return Ok(out),
    };
    out.needs_fetch = vec![format!("{TRANSACTION}:{id}")];
    Ok(out)
}

/// ARB's status → Keygate's view: `suspended` waits for a payment (past due), `canceled` stops
/// the charges (access lasts what was paid), `expired` and `terminated` end it.
fn status(raw: &str) -> Option<Status> {
    Some(match raw {
        "active" | "canceled" => Status::Active,
        "suspended" => Status::PastDue,
        "expired" | "terminated" => Status::Canceled,
        _ => return None,
    })
}

fn customer(arb: &Value) -> Option<CustomerRef> {
    let c = CustomerRef {
        external_id: str_at(arb, "/profile/customerProfileId"),
        email: str_at(arb, "/profile/email"),
        name: str_at(arb, "/profile/paymentProfile/billTo/firstName")
            .map(
                |first| match str_at(arb, "/profile/paymentProfile/billTo/lastName") {
                    Some(last) => format!("{first} {last}"),
                    None => first,
                },
            )
            .or_else(|| str_at(arb, "/profile/description")),
    };
    (!c.is_empty()).then_some(c)
}

fn items(arb: &Value) -> Vec<BillingItem> {
    str_at(arb, "/name")
        .map(|name| BillingItem {
            external_id: name,
            product_external_id: None,
            quantity: 1,
            line_id: None,
            fallback_ids: Vec::new(),
        })
        .into_iter()
        .collect()
}

/// A subscription event completed with the subscription: a partial snapshot (ARB says nothing
/// of the paid-through date but through its payments), except a new subscription's first
/// scheduled period.
fn subscription_facts(event: &mut BillingEvent, arb: &Value) -> Result<(), BillingError> {
    let id = event
        .subscription
        .as_ref()
        .map(|s| s.external_id.clone())
        .ok_or_else(|| BillingError::malformed("no subscription id"))?;
    let mut snapshot = SubscriptionSnapshot::partial(id);
    snapshot.items = items(arb);
    let raw = str_at(arb, "/status").unwrap_or_default();
    snapshot.status = status(&raw);
    match event.kind {
        Kind::PaymentFailed => snapshot.status = Some(Status::PastDue),
        Kind::SubscriptionCancelScheduled => snapshot.status = Some(Status::Active),
        Kind::SubscriptionCanceled => {
            snapshot.status = Some(Status::Canceled);
            snapshot.ended_at = Some(event.occurred_at);
        }
        Kind::SubscriptionActivated => {
            if snapshot.status != Some(Status::Active) {
                event.kind = Kind::SubscriptionUpdated;
            }
            snapshot.current_period_end = first_period_end(arb, event.occurred_at);
        }
        _ => {}
    }
    event.customer = customer(arb);
    event.subscription = Some(snapshot);
    Ok(())
}

/// The transaction of a payment, refund or void.
fn transaction(event: &mut BillingEvent, tx: &Value) {
    let trans_id = str_at(tx, "/transId");
    let subscription = str_at(tx, "/subscription/id");
    match (event.kind, subscription) {
        (Kind::SubscriptionRenewed, Some(id)) => {
            event.order = trans_id.map(|external_id| OrderRef {
                external_id,
                lines: Vec::new(),
            });
            // The interval is the subscription's: read it next.
            event.subscription = Some(SubscriptionSnapshot::partial(id.clone()));
            event.needs_fetch = vec![format!("{ARB}:{id}")];
            // Until the subscription is read, the period end holds when it was charged.
            let charged = str_at(tx, "/submitTimeUTC").and_then(|t| utc(&t));
            if let Some(s) = event.subscription.as_mut() {
                s.current_period_end = charged;
            }
        }
        (Kind::Refunded, _)
            if str_at(tx, "/transactionType").as_deref() == Some("refundTransaction") =>
        {
            // The refund names the charge it refunds; that charge names the subscription.
            if let (Some(refund), Some(charge)) = (trans_id, str_at(tx, "/refTransId")) {
                event.needs_fetch = vec![
                    format!("{TRANSACTION}:{refund}"),
                    format!("{TRANSACTION}:{charge}"),
                ];
            } else {
                event.kind = Kind::Ignored;
            }
        }
        (Kind::Refunded, Some(id)) => {
            // A void: the whole charge is reversed before it settles.
            event.reversal = Some(Reversal::FullRefund);
            event.subscription = Some(SubscriptionSnapshot::partial(id));
            event.order = trans_id.map(|external_id| OrderRef {
                external_id,
                lines: Vec::new(),
            });
        }
        // A payment, refund or void of no subscription (a one-time charge).
        _ => event.kind = Kind::Ignored,
    }
}

/// A refund against the charge it refunds: full when it gives back all that was settled.
fn refund_size(event: &mut BillingEvent, refund: &Value, charge: &Value) {
    let Some(subscription) = str_at(charge, "/subscription/id") else {
        event.kind = Kind::Ignored;
        return;
    };
    let amount = |tx: &Value, field: &str| at(tx, field).and_then(Value::as_f64);
    let refunded = amount(refund, "/settleAmount").or_else(|| amount(refund, "/authAmount"));
    let charged = amount(charge, "/settleAmount").or_else(|| amount(charge, "/authAmount"));
    event.reversal = Some(match (refunded, charged) {
        (Some(r), Some(c)) if r + 0.005 >= c => Reversal::FullRefund,
        (Some(_), Some(_)) => Reversal::PartialRefund,
        _ => Reversal::RefundOfUnknownSize,
    });
    event.subscription = Some(SubscriptionSnapshot::partial(subscription));
    event.order = str_at(charge, "/transId").map(|external_id| OrderRef {
        external_id,
        lines: Vec::new(),
    });
    event.order_aliases = str_at(refund, "/transId").into_iter().collect();
}

/// A renewal payment with its subscription: the period it pays, from when it was charged.
fn renewal_period(event: &mut BillingEvent, id: &str, arb: &Value) {
    let charged = event
        .subscription
        .as_ref()
        .and_then(|s| s.current_period_end)
        .unwrap_or(event.occurred_at);
    let mut snapshot = SubscriptionSnapshot::partial(id);
    snapshot.items = items(arb);
    snapshot.current_period_end =
        add_interval(arb, charged).map(|end| end.plus_seconds(CHARGE_DAY_SECONDS));
    // The payment succeeded: whatever failed before is paid now, unless ARB ended it since.
    snapshot.status = match str_at(arb, "/status").as_deref().and_then(status) {
        Some(Status::Canceled) => Some(Status::Canceled),
        _ => Some(Status::Active),
    };
    event.customer = customer(arb);
    event.subscription = Some(snapshot);
}

/// The day after the first scheduled charge date after `at` (a new subscription's access
/// before its first payment).
fn first_period_end(arb: &Value, at: Timestamp) -> Option<Timestamp> {
    let start = str_at(arb, "/paymentSchedule/startDate").and_then(|d| date(&d))?;
    let today = at.millis().div_euclid(86_400_000);
    let mut charge = start;
    for _ in 0..10_000 {
        if charge.millis().div_euclid(86_400_000) > today {
            return Some(charge.plus_seconds(CHARGE_DAY_SECONDS));
        }
        charge = add_interval(arb, charge)?;
    }
    None
}

/// `from` plus the schedule's interval (`days`, or calendar `months`, the day clamped to the
/// month's last).
fn add_interval(arb: &Value, from: Timestamp) -> Option<Timestamp> {
    let length = at(arb, "/paymentSchedule/interval/length").and_then(|l| {
        l.as_i64()
            .or_else(|| l.as_str().and_then(|s| s.parse().ok()))
    })?;
    if !(1..=365).contains(&length) {
        return None;
    }
    match str_at(arb, "/paymentSchedule/interval/unit").as_deref() {
        Some("days") => Some(from.plus_seconds(length * 86_400)),
        Some("months") => {
            let millis = from.millis();
            let (days, in_day) = (millis.div_euclid(86_400_000), millis.rem_euclid(86_400_000));
            let (y, m, d) = civil_from_days(days);
            let months = y * 12 + (m - 1) + length;
            let (y, m) = (months.div_euclid(12), months.rem_euclid(12) + 1);
            let d = d.min(days_in_month(y, m));
            Some(Timestamp(days_from_civil(y, m, d) * 86_400_000 + in_day))
        }
        _ => None,
    }
}

/// Authorize.Net's times: RFC 3339, or without a zone (`submitTimeUTC` is UTC by name).
fn utc(text: &str) -> Option<Timestamp> {
    Timestamp::parse_rfc3339(text)
        .or_else(|_| Timestamp::parse_rfc3339(&format!("{text}Z")))
        .ok()
}

/// `YYYY-MM-DD` at midnight UTC.
fn date(text: &str) -> Option<Timestamp> {
    let mut parts = text
        .get(..10)?
        .splitn(3, '-')
        .map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
    if !(1..=12).contains(&m) || !(1..=days_in_month(y, m)).contains(&d) {
        return None;
    }
    Some(Timestamp(days_from_civil(y, m, d) * 86_400_000))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_arithmetic() {
        let arb = |unit: &str, length: i64| {
            json!({"paymentSchedule": {"interval": {"length": length, "unit": unit},
                   "startDate": "2024-01-31"}})
        };
        let t = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
        assert_eq!(date("2024-01-31"), Some(t("2024-01-31T00:00:00Z")));
        assert_eq!(date("2024-02-30"), None);
        assert_eq!(
            add_interval(&arb("months", 1), t("2024-01-31T10:00:00Z")),
            Some(t("2024-02-29T10:00:00Z"))
        );
        assert_eq!(
            add_interval(&arb("months", 12), t("2023-03-15T10:00:00Z")),
            Some(t("2024-03-15T10:00:00Z"))
        );
        assert_eq!(
            add_interval(&arb("days", 30), t("2024-01-31T10:00:00Z")),
            Some(t("2024-03-01T10:00:00Z"))
        );
        assert_eq!(
            add_interval(&arb("weeks", 1), t("2024-01-31T10:00:00Z")),
            None
        );
        // Started today: the first charge is tonight, access until the day after the next.
        assert_eq!(
            first_period_end(&arb("months", 1), t("2024-01-31T12:00:00Z")),
            Some(t("2024-03-01T00:00:00Z"))
        );
        // Starting later (the first period paid otherwise): until the day after the start.
        assert_eq!(
            first_period_end(&arb("months", 1), t("2024-01-10T12:00:00Z")),
            Some(t("2024-02-01T00:00:00Z"))
        );
        assert_eq!(
            utc("2017-03-08T17:35:37.155999Z"),
            Some(t("2017-03-08T17:35:37.155Z"))
        );
        assert_eq!(
            utc("2022-08-19T15:34:56.467"),
            Some(t("2022-08-19T15:34:56.467Z"))
        );
    }
}
