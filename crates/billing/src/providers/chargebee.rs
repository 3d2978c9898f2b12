//! Chargebee.
//!
//! Verify: Chargebee signs nothing; the webhook URL is protected with HTTP Basic auth.
//! `Authorization: Basic base64(username:password)` must equal one configured credential:
//! `options.username` + `options.password`, or any secret written `username:password`
//! (several during a rotation). Compared in constant time (both sides hashed first, so the
//! length does not leak either). No credential configured = refuse.
//!
//! Parse: envelope `{id, occurred_at (unix s), event_type, api_version, content: {subscription,
//! customer, invoice, transaction, credit_note, ...}}`. Product Catalog 2.0
//! (`subscription_items[].item_price_id`, plans and addons; one-time charges are skipped) and
//! 1.0 (`plan_id`, `plan_quantity`). `ordering_version` is the subscription's
//! `resource_version` (else the customer's). Chargebee has no test flag (a test site is a
//! separate site): `livemode` is `true`.

use crate::json::{array, at, int_at, parse_object, required, str_at, unix_seconds_at};
use crate::scheme::basic_auth;
use crate::{BillingError, ConfigError, Provider, Request, Secrets};
use keygate_domain::Timestamp;
use keygate_domain::billing::{
    BillingEvent, BillingEventKind as Kind, BillingItem, CustomerRef, OrderRef,
    SubscriptionSnapshot, SubscriptionStatus as Status,
};
use serde_json::Value;

pub struct Chargebee;

/// The configured `username:password` credentials: `options.username` + `options.password`,
/// and every secret written `username:password`.
pub fn credentials(secrets: &Secrets) -> Vec<String> {
    let mut credentials: Vec<String> = Vec::new();
    if let (Some(user), Some(pass)) = (
        secrets.option_str("username"),
        secrets.option_str("password"),
    ) {
        credentials.push(format!("{user}:{pass}"));
    }
    credentials.extend(
        secrets
            .secrets
            .iter()
            .filter(|s| s.contains(':') && !s.trim().is_empty())
            .cloned(),
    );
    credentials
}

impl Provider for Chargebee {
    fn name(&self) -> &'static str {
        "chargebee"
    }

    #[cfg(feature = "testkit")]
    fn kit(&self) -> &'static dyn crate::testkit::Kit {
        &crate::testkit::ChargebeeKit
    }

    fn check_config(&self, secrets: &Secrets, _now: Timestamp) -> Result<(), ConfigError> {
        if let Some(bad) = secrets
            .secrets
            .iter()
            .position(|s| !s.trim().is_empty() && !s.contains(':'))
        {
            return Err(ConfigError::SecretInvalid(format!(
                "secret #{} is not `username:password` (the webhook's basic-auth credentials)",
                bad + 1
            )));
        }
        if credentials(secrets).is_empty() {
            return Err(ConfigError::SecretNotConfigured(
                "configure the webhook's basic-auth username and password as a `username:password` secret".into(),
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
        basic_auth::verify(request.headers, &credentials(secrets))
    }

    fn parse(&self, request: &Request) -> Result<Vec<BillingEvent>, BillingError> {
        let body = request.body;
        let event = parse_object(body)?;
        Ok(vec![parse_event(&event)?])
    }
}

fn parse_event(event: &Value) -> Result<BillingEvent, BillingError> {
    let event_id = required(event, "/id")?;
    let event_type = required(event, "/event_type")?;
    let occurred_at = unix_seconds_at(event, "/occurred_at")
        .ok_or_else(|| BillingError::malformed("`/occurred_at` is missing"))?;
    let mut out = BillingEvent::new(event_id, event_type.as_str(), Kind::Ignored, occurred_at);
    let subscription_json = at(event, "/content/subscription");
    let customer_json = at(event, "/content/customer");
    let invoice = at(event, "/content/invoice");
    let mut snapshot = subscription_json.map(subscription).transpose()?;
    // The subscription's own counter only: the customer's counts other changes and would
    // misorder subscription facts within one second.
    out.ordering_version = subscription_json.and_then(|o| int_at(o, "/resource_version"));
    out.customer = customer(customer_json, subscription_json);

    let status = snapshot.as_ref().and_then(|s| s.status);
    // A backdated change is sent instead of the plain one; it means the same here (note
    // `subscription_canceled_with_backdating`, with one *l*).
    let base_type = event_type
        .strip_suffix("_with_backdating")
        .unwrap_or(&event_type);
    out.kind = match base_type {
        "customer_created" | "customer_changed" => Kind::CustomerUpserted,
        "subscription_created" | "subscription_started" => match status {
            Some(Status::Trialing) => Kind::TrialStarted,
            Some(Status::Active) => Kind::SubscriptionActivated,
            _ => Kind::SubscriptionUpdated,
        },
        "subscription_activated" | "subscription_reactivated" => Kind::SubscriptionActivated,
        "subscription_renewed" => Kind::SubscriptionRenewed,
        "subscription_cancellation_scheduled" => Kind::SubscriptionCancelScheduled,
        "subscription_cancelled" | "subscription_canceled" | "subscription_deleted" => {
            Kind::SubscriptionCanceled
        }
        "subscription_changed"
        | "subscription_changes_scheduled"
        | "subscription_items_renewed"
        | "subscription_scheduled_cancellation_removed"
        | "subscription_scheduled_changes_removed"
        | "subscription_pause_scheduled"
        | "subscription_scheduled_pause_removed"
        | "subscription_resumption_scheduled"
        | "subscription_scheduled_resumption_removed" => Kind::SubscriptionUpdated,
        "subscription_paused" => Kind::SubscriptionPaused,
        "subscription_resumed" => Kind::SubscriptionResumed,
        "subscription_trial_extended" => Kind::TrialStarted,
        "payment_failed" => Kind::PaymentFailed,
        "invoice_updated"
            if invoice.is_some_and(|i| {
                at(i, "/dunning_status").is_some()
                    && matches!(
                        str_at(i, "/status").as_deref(),
                        Some("payment_due" | "not_paid")
                    )
            }) =>
        {
            Kind::PaymentFailed
        }
        "payment_succeeded" if invoice.is_some_and(|i| at(i, "/dunning_status").is_some()) => {
            Kind::PaymentRecovered
        }
        "payment_succeeded" if snapshot.is_some() => Kind::SubscriptionUpdated,
        "payment_refunded" | "refund_initiated" => Kind::Refunded,
        _ => Kind::Ignored,
    };

    // Subscription-less payment events still name the subscription through the invoice.
    if snapshot.is_none() {
        snapshot = invoice
            .and_then(|i| str_at(i, "/subscription_id"))
            .map(SubscriptionSnapshot::partial);
    }
    if base_type == "subscription_deleted"
        && let Some(s) = snapshot.as_mut()
    {
        // The subscription no longer exists on Chargebee: access ends now.
        s.status = Some(Status::Canceled);
        s.ended_at = s.ended_at.or(Some(occurred_at));
    }
    if out.kind == Kind::PaymentFailed {
        // Chargebee keeps `active` during dunning.
        if let Some(s) = snapshot.as_mut()
            && matches!(s.status, None | Some(Status::Active))
        {
            s.status = Some(Status::PastDue);
        }
    }
    if out.kind == Kind::PaymentRecovered
        && let Some(s) = snapshot.as_mut().filter(|s| s.partial)
    {
        s.status = Some(Status::Active);
    }
    if out.kind == Kind::Refunded {
        out.reversal = Some(refund_size(base_type, event));
    }
    out.order = match out.kind {
        Kind::Refunded => str_at(event, "/content/credit_note/reference_invoice_id")
            .or_else(|| invoice.and_then(|i| str_at(i, "/id")))
            .or_else(|| str_at(event, "/content/transaction/id")),
        Kind::SubscriptionRenewed | Kind::PaymentFailed | Kind::PaymentRecovered => {
            invoice.and_then(|i| str_at(i, "/id"))
        }
        _ => None,
    }
    .map(|external_id| OrderRef {
        external_id,
        lines: Vec::new(),
    });
    if out.kind != Kind::Ignored {
        out.subscription = snapshot;
    }
    Ok(out)
}

fn status(raw: &str) -> Option<Status> {
    Some(match raw {
        "future" => Status::Incomplete,
        "in_trial" => Status::Trialing,
        "active" | "non_renewing" => Status::Active,
        "paused" => Status::Paused,
        "cancelled" | "transferred" => Status::Canceled,
        _ => return None,
    })
}

fn customer(customer: Option<&Value>, subscription: Option<&Value>) -> Option<CustomerRef> {
    let reference = CustomerRef {
        external_id: customer
            .and_then(|c| str_at(c, "/id"))
            .or_else(|| subscription.and_then(|s| str_at(s, "/customer_id"))),
        email: customer.and_then(|c| str_at(c, "/email")),
        name: customer.and_then(|c| {
            crate::json::full_name(str_at(c, "/first_name"), str_at(c, "/last_name"))
        }),
    };
    (!reference.is_empty()).then_some(reference)
}

fn items(subscription: &Value) -> Vec<BillingItem> {
    let catalog2: Vec<BillingItem> = array(subscription, "/subscription_items")
        .iter()
        .filter(|item| str_at(item, "/item_type").as_deref() != Some("charge"))
        .filter_map(|item| {
            Some(BillingItem {
                external_id: str_at(item, "/item_price_id")?,
                product_external_id: str_at(item, "/item_id"),
                quantity: int_at(item, "/quantity").unwrap_or(1),
                line_id: None,
                fallback_ids: Vec::new(),
            })
        })
        .collect();
    if !catalog2.is_empty() {
        return catalog2;
    }
    str_at(subscription, "/plan_id")
        .map(|plan_id| BillingItem {
            external_id: plan_id,
            product_external_id: None,
            quantity: int_at(subscription, "/plan_quantity").unwrap_or(1),
            line_id: None,
            fallback_ids: Vec::new(),
        })
        .into_iter()
        .collect()
}

fn subscription(subscription: &Value) -> Result<SubscriptionSnapshot, BillingError> {
    let external_id = required(subscription, "/id")?;
    let raw = str_at(subscription, "/status").unwrap_or_default();
    let status = status(&raw);
    // Chargebee keeps `active` while dunning retries: unpaid invoices are the failure, so a
    // later snapshot (a quantity change, a card update) does not wipe it.
    let in_dunning = int_at(subscription, "/due_invoices_count").is_some_and(|n| n > 0)
        || unix_seconds_at(subscription, "/due_since").is_some();
    let status = match status {
        Some(Status::Active) if in_dunning => Some(Status::PastDue),
        other => other,
    };
    let ended = status == Some(Status::Canceled);
    let non_renewing = raw == "non_renewing";
    Ok(SubscriptionSnapshot {
        external_id,
        status,
        items: items(subscription),
        current_period_end: unix_seconds_at(subscription, "/current_term_end"),
        cancel_at_period_end: non_renewing,
        cancel_at: if non_renewing {
            unix_seconds_at(subscription, "/cancelled_at")
                .or_else(|| unix_seconds_at(subscription, "/current_term_end"))
        } else {
            None
        },
        ended_at: if ended {
            unix_seconds_at(subscription, "/cancelled_at")
        } else {
            None
        },
        trial_end: unix_seconds_at(subscription, "/trial_end"),
        partial: false,
    })
}

/// `refund_initiated` is only asked for; `payment_refunded` is full when the refunded amount
/// reaches what the invoice was paid (the credit note's `amount_refunded`, else the refund
/// transaction's `amount`), partial below it, and of unknown size when the event tells neither.
fn refund_size(base_type: &str, event: &Value) -> keygate_domain::billing::Reversal {
    use keygate_domain::billing::Reversal as R;
    if base_type == "refund_initiated" {
        return R::RefundInitiated;
    }
    let refunded = int_at(event, "/content/credit_note/amount_refunded").or_else(|| {
        (str_at(event, "/content/transaction/type").as_deref() == Some("refund"))
            .then(|| int_at(event, "/content/transaction/amount"))
            .flatten()
    });
    let paid = int_at(event, "/content/invoice/amount_paid")
        .or_else(|| int_at(event, "/content/invoice/total"));
    match (refunded, paid) {
        (Some(refunded), Some(paid)) if refunded < paid => R::PartialRefund,
        (Some(_), Some(_)) => R::FullRefund,
        _ => R::RefundOfUnknownSize,
    }
}
