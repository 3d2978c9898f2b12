//! Recurly (JSON webhooks, API v3 `v2021-02-25`).
//!
//! Verify: `recurly-signature: <ms>,<hex>[,<hex>...]`, each signature hex HMAC-SHA256 over
//! `"{ms}.{raw body}"` keyed with the endpoint's secret key as-is (`Recurly::Webhooks` in the
//! SDKs). Several signatures during a rotation (the old and new key both sign for 24 h), any
//! may match any configured secret. The timestamp is Unix milliseconds; more than
//! `options.tolerance_seconds` (default 300, the SDKs' `DEFAULT_TOLERANCE`) away from now,
//! either way, is refused. XML webhooks are not signed and are not accepted.
//!
//! Parse: the body is thin, ids only (`{id, object_type, site_id, event_type, event_time}`
//! plus `uuid`, `account_code` or `invoice_number`), and Recurly says to confirm the state
//! from the API before acting. The event id is the `recurly-notification-id` header (the same
//! on every retry); a delivery without it (a proxy dropped it) is named by its object, type
//! and time, which a retry repeats. Every handled notification names the objects it needs
//! ([`BillingEvent::needs_fetch`]); [`complete`](Provider::complete) turns the answers into
//! facts:
//! - `subscription.*` (`uuid`): `GET /subscriptions/uuid-{uuid}` (plan code, quantity,
//!   state, `current_period_ends_at`, account) and its past-due invoices
//!   (`/subscriptions/uuid-{uuid}/invoices?state=past_due&limit=1`): Recurly keeps a
//!   subscription `active` while dunning, so an unpaid invoice is what says "past due";
//! - `payment.*` (`uuid`, a transaction): `GET /transactions/uuid-{uuid}` names the
//!   subscription (`subscription_ids`) and invoice; a success then fetches the subscription
//!   as above, a refund fetches the refunded transaction (`original_transaction_id`) to tell
//!   a full refund from a partial one; a void reverses the whole charge;
//! - `dunning_event.created`, `charge_invoice.past_due`, `invoice.past_due`
//!   (`invoice_number`): `GET /invoices/number-{n}`, a failure while the invoice is unpaid;
//! - `account.created|updated|reactivated` (`account_code`): `GET /accounts/code-{code}`.
//!
//! A mapping's `external_id` is the subscription's plan code (`plan.code`); the subscription
//! is named by its Recurly `id` (what transactions and invoices list). Recurly has no test
//! flag (a sandbox is a separate site): `livemode` is `true`.

use crate::api::{ApiSpec, Auth, Fetch, ObjectKind};
use crate::json::{array, at, full_name, parse_object, required, rfc3339_at, str_at};
use crate::scheme::{Layout, TimestampedHmac, Unit, Window};
use crate::{BillingError, ConfigError, Provider, Request, Secrets};
use keygate_domain::Timestamp;
use keygate_domain::billing::{
    BillingEvent, BillingEventKind as Kind, BillingItem, CustomerRef, OrderRef, Reversal,
    SubscriptionSnapshot, SubscriptionStatus as Status,
};
use serde_json::Value;

pub struct Recurly;

/// The SDKs' `DEFAULT_TOLERANCE` (5 minutes).
pub const DEFAULT_TOLERANCE_SECONDS: i64 = 300;

/// The API version Keygate reads (the SDKs' `api_version`), sent in `Accept`.
pub const API_VERSION: &str = "v2021-02-25";

/// The SDKs' `Accept` (`application/vnd.recurly.{api_version}`).
pub const ACCEPT: &str = "application/vnd.recurly.v2021-02-25";

/// `recurly-signature: <ms>,<hex>[,<hex>...]` over `"{ms}.{body}"`. The SDKs sign the
/// timestamp as the integer they parse it to (`Integer(s_timestamp)`).
pub const SCHEME: TimestampedHmac = TimestampedHmac {
    header: "recurly-signature",
    layout: Layout::Positional { separator: ',' },
    separator: ".",
    unit: Unit::Millis,
    window: Window::Both,
    signs_parsed_timestamp: true,
};

/// The header that names a notification, the same on every retry.
pub const NOTIFICATION_ID_HEADER: &str = "recurly-notification-id";

/// `subscription` notifications completed from the subscription object.
const SUBSCRIPTION_EVENTS: &[&str] = &[
    "created",
    "updated",
    "renewed",
    "reactivated",
    "canceled",
    "expired",
    "paused",
    "resumed",
    "pending_change.scheduled",
    "pause.scheduled",
    "pause.modified",
    "pause.canceled",
    "renewal.skipped",
];

impl Provider for Recurly {
    fn name(&self) -> &'static str {
        "recurly"
    }

    #[cfg(feature = "testkit")]
    fn kit(&self) -> &'static dyn crate::testkit::Kit {
        &crate::testkit::RecurlyKit
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
        let body = parse_object(request.body)?;
        let notification = request
            .headers
            .get(NOTIFICATION_ID_HEADER)
            .map(str::trim)
            .filter(|id| !id.is_empty());
        Ok(vec![parse_notification(&body, notification)?])
    }

    fn api(&self) -> Option<ApiSpec> {
        Some(ApiSpec {
            default_base_url: "https://v3.recurly.com",
            auth: Auth::Basic {
                user: "api_key",
                password: None,
            },
            headers: &[("accept", ACCEPT)],
        })
    }

    fn fetches(&self, event: &BillingEvent) -> Vec<Fetch> {
        event
            .needs_fetch
            .iter()
            .map(|path| fetch(object_of(path), path.clone()))
            .collect()
    }

    fn complete(
        &self,
        mut event: BillingEvent,
        fetched: &[(Fetch, Value)],
    ) -> Result<BillingEvent, BillingError> {
        event.needs_fetch.clear();
        let mut subscription = None;
        let mut past_due = None;
        let mut transactions = Vec::new();
        for (fetch, object) in fetched {
            match fetch.object {
                ObjectKind::Subscription => subscription = Some(expect(object, "subscription")?),
                ObjectKind::Invoice if fetch.path.contains("/invoices?") => {
                    expect(object, "list")?;
                    past_due = Some(!array(object, "/data").is_empty());
                }
                ObjectKind::Invoice => unpaid_invoice(&mut event, expect(object, "invoice")?),
                ObjectKind::Transaction | ObjectKind::Order => {
                    transactions.push((fetch.path.as_str(), expect(object, "transaction")?))
                }
                ObjectKind::Customer => {
                    event.kind = Kind::CustomerUpserted;
                    event.customer = customer(expect(object, "account")?);
                }
            }
        }
        match transactions.as_slice() {
            [] => {}
            [(path, tx)] => payment(&mut event, path, tx),
            [(_, refund), (_, charge), ..] => refund_size(&mut event, refund, charge),
        }
        if let Some(object) = subscription {
            subscription_facts(&mut event, object, past_due.unwrap_or(false))?;
        }
        Ok(event)
    }
}

/// A GET of `path` for `object`.
fn fetch(object: ObjectKind, path: String) -> Fetch {
    Fetch {
        object,
        path,
        body: None,
    }
}

/// What each path of [`BillingEvent::needs_fetch`] answers (the paths are this module's own).
fn object_of(path: &str) -> ObjectKind {
    if path.starts_with("/accounts/") {
        ObjectKind::Customer
    } else if path.starts_with("/subscriptions/") && !path.contains("/invoices") {
        ObjectKind::Subscription
    } else if path.starts_with("/transactions/") {
        ObjectKind::Transaction
    } else {
        ObjectKind::Invoice
    }
}

fn expect<'v>(object: &'v Value, kind: &str) -> Result<&'v Value, BillingError> {
    match str_at(object, "/object") {
        Some(found) if found == kind => Ok(object),
        found => Err(BillingError::malformed(format!(
            "expected a Recurly `{kind}`, got `{}`",
            found.unwrap_or_default()
        ))),
    }
}

fn parse_notification(
    body: &Value,
    notification: Option<&str>,
) -> Result<BillingEvent, BillingError> {
    let object_type = required(body, "/object_type")?;
    let event_type = required(body, "/event_type")?;
    let occurred_at = rfc3339_at(body, "/event_time")
        .ok_or_else(|| BillingError::malformed("`/event_time` is missing"))?;
    let event_id = match notification {
        Some(id) => id.to_string(),
        None => format!(
            "{object_type}.{event_type}:{}:{}",
            str_at(body, "/id").unwrap_or_default(),
            occurred_at.to_rfc3339()
        ),
    };
    let full_type = format!("{object_type}.{event_type}");
    let mut out = BillingEvent::new(event_id, full_type, Kind::Ignored, occurred_at);
    let uuid = || str_at(body, "/uuid").map(|u| segment(&u));
    match (object_type.as_str(), event_type.as_str()) {
        ("subscription", e) if SUBSCRIPTION_EVENTS.contains(&e) => {
            if let Some(uuid) = uuid() {
                out.kind = provisional_kind(e);
                out.needs_fetch = subscription_paths(&format!("uuid-{uuid}"));
            }
        }
        ("payment", "succeeded" | "failed" | "refunded" | "voided") => {
            if let Some(uuid) = uuid() {
                out.kind = match event_type.as_str() {
                    "succeeded" => Kind::PaymentRecovered,
                    "failed" => Kind::PaymentFailed,
                    _ => Kind::Refunded,
                };
                out.needs_fetch = vec![format!("/transactions/uuid-{uuid}")];
            }
        }
        ("dunning_event", "created") | ("charge_invoice" | "invoice", "past_due") => {
            if let Some(number) = str_at(body, "/invoice_number") {
                out.kind = Kind::PaymentFailed;
                out.needs_fetch = vec![format!("/invoices/number-{}", segment(&number))];
            }
        }
        ("account", "created" | "updated" | "reactivated") => {
            if let Some(code) = str_at(body, "/account_code") {
                out.kind = Kind::CustomerUpserted;
                out.needs_fetch = vec![format!("/accounts/code-{}", segment(&code))];
            }
        }
        _ => {}
    }
    Ok(out)
}

/// What a subscription notification means before the subscription is read (the inbox row's
/// kind); [`subscription_facts`] settles it from the subscription's state.
fn provisional_kind(event_type: &str) -> Kind {
    match event_type {
        "created" => Kind::SubscriptionActivated,
        "renewed" => Kind::SubscriptionRenewed,
        "canceled" => Kind::SubscriptionCancelScheduled,
        "expired" => Kind::SubscriptionCanceled,
        "paused" => Kind::SubscriptionPaused,
        "resumed" => Kind::SubscriptionResumed,
        _ => Kind::SubscriptionUpdated,
    }
}

/// The subscription and whether it has an unpaid invoice, by id or `uuid-...`.
fn subscription_paths(id: &str) -> Vec<String> {
    vec![
        format!("/subscriptions/{id}"),
        format!("/subscriptions/{id}/invoices?state=past_due&limit=1"),
    ]
}

/// A path segment: ids, codes (which may be emails) and numbers, percent-encoded beyond the
/// unreserved characters, so a notification cannot reach another path.
fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A subscription object (and whether an invoice of it is past due) into the event.
fn subscription_facts(
    event: &mut BillingEvent,
    object: &Value,
    past_due: bool,
) -> Result<(), BillingError> {
    let snapshot = subscription(object, past_due)?;
    let status = snapshot.status;
    let event_type = event
        .event_type
        .strip_prefix("subscription.")
        .unwrap_or(&event.event_type);
    event.kind = match (event_type, status) {
        ("created", Some(Status::Trialing)) => Kind::TrialStarted,
        ("created", Some(Status::Active)) => Kind::SubscriptionActivated,
        ("renewed", Some(Status::Active | Status::Trialing)) => Kind::SubscriptionRenewed,
        ("canceled", Some(Status::Active | Status::PastDue)) if snapshot.cancel_at_period_end => {
            Kind::SubscriptionCancelScheduled
        }
        ("canceled" | "expired", Some(Status::Canceled)) => Kind::SubscriptionCanceled,
        ("paused", Some(Status::Paused)) => Kind::SubscriptionPaused,
        ("resumed", Some(Status::Active | Status::Trialing)) => Kind::SubscriptionResumed,
        // A payment: the subscription as it stands after it (still past due when another
        // invoice is unpaid).
        ("payment.succeeded", Some(Status::Active | Status::Trialing)) => Kind::PaymentRecovered,
        _ => Kind::SubscriptionUpdated,
    };
    if event.customer.is_none() {
        event.customer = at(object, "/account").and_then(customer);
    }
    event.subscription = Some(snapshot);
    Ok(())
}

/// Recurly's subscription `state` → Keygate's view: `canceled` only stops the renewal (access
/// lasts until `expires_at`), `expired` ends access, `future` has not started.
fn subscription(object: &Value, past_due: bool) -> Result<SubscriptionSnapshot, BillingError> {
    let external_id = required(object, "/id")?;
    let state = str_at(object, "/state").unwrap_or_default();
    let current_period_end = rfc3339_at(object, "/current_period_ends_at");
    let trial_end = rfc3339_at(object, "/trial_ends_at");
    let expires_at = rfc3339_at(object, "/expires_at");
    let in_trial = trial_end.is_some() && trial_end == current_period_end;
    let status = match state.as_str() {
        "active" | "canceled" if past_due => Some(Status::PastDue),
        "active" | "canceled" if in_trial => Some(Status::Trialing),
        "active" | "canceled" => Some(Status::Active),
        "paused" => Some(Status::Paused),
        "expired" => Some(Status::Canceled),
        "future" | "pending" | "failed" => Some(Status::Incomplete),
        _ => None,
    };
    let items = str_at(object, "/plan/code")
        .map(|code| BillingItem {
            external_id: code,
            product_external_id: None,
            quantity: at(object, "/quantity").and_then(Value::as_i64).unwrap_or(1),
            line_id: None,
            fallback_ids: Vec::new(),
        })
        .into_iter()
        .collect();
    let canceled = state == "canceled";
    Ok(SubscriptionSnapshot {
        external_id,
        status,
        items,
        current_period_end,
        cancel_at_period_end: canceled,
        cancel_at: if canceled {
            expires_at.or(current_period_end)
        } else {
            None
        },
        ended_at: if state == "expired" { expires_at } else { None },
        trial_end,
        partial: false,
    })
}

/// An account (or the account mini of a subscription or transaction), named by its `code`.
fn customer(account: &Value) -> Option<CustomerRef> {
    let c = CustomerRef {
        external_id: str_at(account, "/code"),
        email: str_at(account, "/email"),
        name: full_name(
            str_at(account, "/first_name"),
            str_at(account, "/last_name"),
        )
        .or_else(|| str_at(account, "/company")),
    };
    (!c.is_empty()).then_some(c)
}

/// The transaction of a `payment.*` notification (fetched from `path`).
fn payment(event: &mut BillingEvent, path: &str, tx: &Value) {
    let Some(subscription_id) = array(tx, "/subscription_ids")
        .iter()
        .find_map(|id| id.as_str().map(str::to_string))
    else {
        // A one-time charge or a billing-info verification: no subscription to change.
        event.kind = Kind::Ignored;
        return;
    };
    event.customer = at(tx, "/account").and_then(customer);
    event.order = str_at(tx, "/invoice/id").map(|id| OrderRef {
        external_id: id,
        lines: Vec::new(),
    });
    match event.event_type.as_str() {
        "payment.succeeded" => {
            event.needs_fetch = subscription_paths(&segment(&subscription_id));
        }
        "payment.failed" => {
            let mut snapshot = SubscriptionSnapshot::partial(subscription_id);
            snapshot.status = Some(Status::PastDue);
            event.kind = Kind::PaymentFailed;
            event.subscription = Some(snapshot);
        }
        "payment.voided" => {
            // A void cancels the whole charge before it settles.
            event.kind = Kind::Refunded;
            event.reversal = Some(Reversal::FullRefund);
            event.subscription = Some(SubscriptionSnapshot::partial(subscription_id));
        }
        _ => {
            event.kind = Kind::Refunded;
            event.reversal = Some(Reversal::RefundOfUnknownSize);
            event.subscription = Some(SubscriptionSnapshot::partial(subscription_id));
            // The refund's size is told by the charge it refunds: read both next.
            if let Some(original) = str_at(tx, "/original_transaction_id") {
                event.needs_fetch = vec![
                    path.to_string(),
                    format!("/transactions/{}", segment(&original)),
                ];
            }
        }
    }
}

/// A refund against the charge it refunds: full when it gives back everything charged. The
/// charge's invoice is the order the licenses were granted under.
fn refund_size(event: &mut BillingEvent, refund: &Value, charge: &Value) {
    let amount = |tx: &Value| at(tx, "/amount").and_then(Value::as_f64);
    event.reversal = Some(match (amount(refund), amount(charge)) {
        // Amounts are decimal currency units; half a cent absorbs their float rendering.
        (Some(r), Some(c)) if r + 0.005 >= c => Reversal::FullRefund,
        (Some(_), Some(_)) => Reversal::PartialRefund,
        _ => Reversal::RefundOfUnknownSize,
    });
    if let Some(invoice) = str_at(charge, "/invoice/id") {
        let credit = event.order.replace(OrderRef {
            external_id: invoice,
            lines: Vec::new(),
        });
        event.order_aliases = credit.map(|o| o.external_id).into_iter().collect();
    }
}

/// The invoice of a dunning notification: a payment failure while it is unpaid (`failed`:
/// dunning gave up), nothing once it is paid.
fn unpaid_invoice(event: &mut BillingEvent, invoice: &Value) {
    let status = match str_at(invoice, "/state").as_deref() {
        Some("past_due") => Status::PastDue,
        Some("failed") => Status::Unpaid,
        _ => {
            event.kind = Kind::Ignored;
            return;
        }
    };
    let Some(subscription_id) = array(invoice, "/subscription_ids")
        .iter()
        .find_map(|id| id.as_str().map(str::to_string))
    else {
        event.kind = Kind::Ignored;
        return;
    };
    let mut snapshot = SubscriptionSnapshot::partial(subscription_id);
    snapshot.status = Some(status);
    event.kind = Kind::PaymentFailed;
    event.subscription = Some(snapshot);
    event.customer = at(invoice, "/account").and_then(customer);
    event.order = str_at(invoice, "/id").map(|id| OrderRef {
        external_id: id,
        lines: Vec::new(),
    });
}
