//! Stripe.
//!
//! Verify: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`, HMAC-SHA256 over
//! `"{t}.{raw body}"` keyed with the endpoint secret as-is (`whsec_...` is not decoded). Any
//! `v1` may match any configured secret (Stripe sends several during a roll); other schemes
//! are ignored; `v1` values that are not hex never match. `t` older than the tolerance
//! (default 300 s, `options.tolerance_seconds`) is refused; a future `t` is not (as the SDK).
//!
//! Parse: both payload generations. Subscriptions: item-level `current_period_end`
//! (API >= 2025-03-31 basil) or the top-level one before. Invoices: the subscription id in
//! `parent.subscription_details.subscription` (basil) or `subscription` (before), the new
//! paid-through date from the subscription lines' `period.end`.

use crate::api::{ApiSpec, Auth, Fetch, ObjectKind};
use crate::json::{
    array, at, bool_at, id_at, int_at, parse_object, required, str_at, unix_seconds_at,
};
use crate::scheme::{Layout, TimestampedHmac, Unit, Window};
use crate::{BillingError, ConfigError, Provider, Request, Secrets};
use keygate_domain::Timestamp;
use keygate_domain::billing::{
    BillingEvent, BillingEventKind as Kind, BillingItem, CustomerRef, OrderRef, Reversal,
    SubscriptionSnapshot, SubscriptionStatus as Status,
};
use serde_json::Value;

pub struct Stripe;

/// Stripe's default tolerance (`DEFAULT_TOLERANCE` in the SDKs).
pub const DEFAULT_TOLERANCE_SECONDS: i64 = 300;

/// `Stripe-Signature: t=<unix s>,v1=<hex>[,v1=...]`, over `"{t}.{body}"`, the secret as-is.
pub const SCHEME: TimestampedHmac = TimestampedHmac {
    header: "stripe-signature",
    layout: Layout::Pairs {
        pair: ',',
        timestamp: "t",
        signature: "v1",
        strict: true,
    },
    separator: ".",
    unit: Unit::Seconds,
    window: Window::PastWholeSeconds,
    signs_parsed_timestamp: true,
};

impl Provider for Stripe {
    fn name(&self) -> &'static str {
        "stripe"
    }

    #[cfg(feature = "testkit")]
    fn kit(&self) -> &'static dyn crate::testkit::Kit {
        &crate::testkit::StripeKit
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

    fn api(&self) -> Option<ApiSpec> {
        Some(ApiSpec {
            default_base_url: "https://api.stripe.com",
            auth: Auth::Bearer("secret_key"),
        })
    }

    fn fetches(&self, event: &BillingEvent) -> Vec<Fetch> {
        event
            .needs_fetch
            .iter()
            .map(|path| Fetch::get(ObjectKind::Order, path.clone()))
            .collect()
    }

    /// The Checkout Session's line items (`GET /v1/checkout/sessions/{id}/line_items`, a list
    /// of `item` objects with their `price`) become the order's lines.
    fn complete(
        &self,
        mut event: BillingEvent,
        fetched: &[(Fetch, Value)],
    ) -> Result<BillingEvent, BillingError> {
        for (fetch, list) in fetched {
            if str_at(list, "/object").as_deref() != Some("list") {
                return Err(BillingError::malformed(format!(
                    "`{}` did not answer a list",
                    fetch.path
                )));
            }
            if bool_at(list, "/has_more") == Some(true) {
                return Err(BillingError::malformed(format!(
                    "`{}` has more than {CHECKOUT_LINE_ITEMS_PAGE} line items",
                    fetch.path
                )));
            }
            if let Some(order) = &mut event.order {
                order
                    .lines
                    .extend(array(list, "/data").iter().filter_map(price_item));
            }
        }
        event.needs_fetch.clear();
        Ok(event)
    }
}

/// Line items asked for at once: Stripe's largest page (a Checkout Session holds fewer).
const CHECKOUT_LINE_ITEMS_PAGE: u32 = 100;

fn parse_event(event: &Value) -> Result<BillingEvent, BillingError> {
    let event_id = required(event, "/id")?;
    let event_type = required(event, "/type")?;
    let occurred_at = unix_seconds_at(event, "/created")
        .ok_or_else(|| BillingError::malformed("`/created` is missing"))?;
    let mut out = BillingEvent::new(event_id, event_type.as_str(), Kind::Ignored, occurred_at);
    out.livemode = bool_at(event, "/livemode").unwrap_or(true);
    let Some(object) = at(event, "/data/object") else {
        return Ok(out);
    };
    let previous = at(event, "/data/previous_attributes");

    match event_type.as_str() {
        "customer.created" | "customer.updated" => {
            out.kind = Kind::CustomerUpserted;
            out.customer = Some(CustomerRef {
                external_id: str_at(object, "/id"),
                email: str_at(object, "/email"),
                name: str_at(object, "/name"),
            });
        }
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted"
        | "customer.subscription.paused"
        | "customer.subscription.resumed"
        | "customer.subscription.pending_update_applied"
        | "customer.subscription.pending_update_expired" => {
            let snapshot = subscription(object)?;
            out.kind = match event_type.as_str() {
                "customer.subscription.created" => match snapshot.status {
                    Some(Status::Trialing) => Kind::TrialStarted,
                    Some(Status::Active) => Kind::SubscriptionActivated,
                    // incomplete: no license until the first payment (then `updated`).
                    _ => Kind::SubscriptionUpdated,
                },
                "customer.subscription.deleted" => Kind::SubscriptionCanceled,
                "customer.subscription.paused" => Kind::SubscriptionPaused,
                "customer.subscription.resumed" => Kind::SubscriptionResumed,
                "customer.subscription.updated" => updated_kind(object, previous, &snapshot),
                _ => Kind::SubscriptionUpdated,
            };
            out.customer = customer_of(object);
            out.subscription = Some(snapshot);
        }
        "invoice.paid" | "invoice.payment_succeeded" => invoice_paid(&mut out, object),
        "invoice.payment_failed"
        | "invoice.payment_action_required"
        | "invoice.overdue"
        | "invoice.marked_uncollectible" => {
            if let Some(sub_id) = invoice_subscription_id(object) {
                let mut snapshot = SubscriptionSnapshot::partial(sub_id);
                snapshot.status = Some(
                    match (
                        event_type.as_str(),
                        str_at(object, "/billing_reason").as_deref(),
                    ) {
                        ("invoice.marked_uncollectible", _) => Status::Unpaid,
                        (_, Some("subscription_create")) => Status::Incomplete,
                        _ => Status::PastDue,
                    },
                );
                out.kind = Kind::PaymentFailed;
                out.subscription = Some(snapshot);
                out.order = invoice_order(object, false);
                out.order_aliases = invoice_payment_ids(object);
                out.customer = invoice_customer(object);
            }
        }
        // Basil (2025-03-31) removed `payment_intent` and `charge` from invoices: this event
        // is where an invoice's payment is named, so a later refund of it finds the invoice.
        "invoice_payment.paid" => {
            if let Some(invoice) = id_at(object, "/invoice") {
                out.kind = Kind::SubscriptionUpdated;
                out.order = Some(OrderRef {
                    external_id: invoice,
                    lines: Vec::new(),
                });
                out.order_aliases = [
                    id_at(object, "/payment/payment_intent"),
                    id_at(object, "/payment/charge"),
                ]
                .into_iter()
                .flatten()
                .collect();
            }
        }
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            checkout_session(&mut out, object)
        }
        "charge.refunded" | "refund.created" | "charge.dispute.created" => {
            out.kind = if event_type == "charge.dispute.created" {
                Kind::Chargeback
            } else {
                Kind::Refunded
            };
            out.reversal = Some(match event_type.as_str() {
                // `warning_*`: an inquiry, no money taken back (yet).
                "charge.dispute.created"
                    if str_at(object, "/status").is_some_and(|s| s.starts_with("warning_")) =>
                {
                    Reversal::DisputeInquiry
                }
                "charge.dispute.created" => Reversal::Chargeback,
                // A Charge: full when everything captured was refunded (`charge.refunded`
                // fires for partial refunds too).
                "charge.refunded" => match (
                    int_at(object, "/amount_refunded"),
                    int_at(object, "/amount"),
                ) {
                    (Some(refunded), Some(amount)) if refunded >= amount => Reversal::FullRefund,
                    (Some(_), Some(_)) => Reversal::PartialRefund,
                    _ if bool_at(object, "/refunded") == Some(true) => Reversal::FullRefund,
                    _ => Reversal::RefundOfUnknownSize,
                },
                // A Refund names its own amount, not the charge's: `charge.refunded` decides.
                _ if str_at(object, "/status").as_deref() == Some("pending") => {
                    Reversal::RefundInitiated
                }
                _ => Reversal::RefundOfUnknownSize,
            });
            // Pre-basil charges name their invoice; otherwise the payment intent is what the
            // paid order was recorded under (one-time checkout), else the charge itself. The
            // other ids go along: a subscription's invoice knows its payment intent and charge
            // (pre-basil invoice fields, basil `invoice_payment.paid`), not the other way round.
            let charge_id = (str_at(object, "/object").as_deref() == Some("charge"))
                .then(|| str_at(object, "/id"));
            let mut ids: Vec<String> = [
                id_at(object, "/invoice"),
                id_at(object, "/payment_intent"),
                id_at(object, "/charge"),
                charge_id.flatten(),
            ]
            .into_iter()
            .flatten()
            .collect();
            ids.dedup();
            if ids.is_empty()
                && let Some(id) = str_at(object, "/id")
            {
                ids.push(id);
            }
            let mut ids = ids.into_iter();
            out.order = ids.next().map(|external_id| OrderRef {
                external_id,
                lines: Vec::new(),
            });
            out.order_aliases = ids.collect();
            let customer = CustomerRef {
                external_id: id_at(object, "/customer"),
                email: str_at(object, "/billing_details/email")
                    .or_else(|| str_at(object, "/receipt_email")),
                name: str_at(object, "/billing_details/name"),
            };
            out.customer = (!customer.is_empty()).then_some(customer);
        }
        _ => {}
    }
    Ok(out)
}

/// What a `customer.subscription.updated` means, from what changed (`previous_attributes`).
fn updated_kind(object: &Value, previous: Option<&Value>, snapshot: &SubscriptionSnapshot) -> Kind {
    let Some(previous) = previous else {
        return Kind::SubscriptionUpdated;
    };
    let status_now = str_at(object, "/status");
    if let Some(before) = str_at(previous, "/status") {
        match (before.as_str(), status_now.as_deref()) {
            ("incomplete" | "trialing", Some("active")) => return Kind::SubscriptionActivated,
            ("past_due" | "unpaid", Some("active")) => return Kind::PaymentRecovered,
            ("paused", Some("active")) => return Kind::SubscriptionResumed,
            (_, Some("past_due" | "unpaid")) => return Kind::PaymentFailed,
            (_, Some("paused")) => return Kind::SubscriptionPaused,
            (_, Some("canceled" | "incomplete_expired")) => return Kind::SubscriptionCanceled,
            _ => {}
        }
    }
    let prev = previous.as_object();
    let changed = |key: &str| prev.is_some_and(|p| p.contains_key(key));
    if (changed("cancel_at_period_end") || changed("cancel_at")) && snapshot.cancel_at_period_end {
        return Kind::SubscriptionCancelScheduled;
    }
    Kind::SubscriptionUpdated
}

fn status(raw: &str) -> Option<Status> {
    Some(match raw {
        "trialing" => Status::Trialing,
        "active" => Status::Active,
        "past_due" => Status::PastDue,
        "unpaid" => Status::Unpaid,
        "paused" => Status::Paused,
        "canceled" | "incomplete_expired" => Status::Canceled,
        "incomplete" => Status::Incomplete,
        _ => return None,
    })
}

/// A full snapshot from a Subscription object (either payload generation).
fn subscription(object: &Value) -> Result<SubscriptionSnapshot, BillingError> {
    let external_id = required(object, "/id")?;
    // `pause_collection` only stops collecting: "the subscription remains active" and the
    // customer keeps the service (Stripe, pause payment collection), so access stays. Status
    // `paused` (a trial ended without a payment method) is what suspends.
    let status = str_at(object, "/status").and_then(|s| status(&s));
    let item_values = array(object, "/items/data");
    let items = item_values.iter().filter_map(price_item).collect();
    let current_period_end = unix_seconds_at(object, "/current_period_end").or_else(|| {
        item_values
            .iter()
            .filter_map(|item| unix_seconds_at(item, "/current_period_end"))
            .min()
    });
    let cancel_at = unix_seconds_at(object, "/cancel_at");
    let ended = status == Some(Status::Canceled);
    Ok(SubscriptionSnapshot {
        external_id,
        status,
        items,
        current_period_end,
        cancel_at_period_end: !ended
            && (bool_at(object, "/cancel_at_period_end").unwrap_or(false) || cancel_at.is_some()),
        cancel_at,
        ended_at: unix_seconds_at(object, "/ended_at").or_else(|| {
            ended
                .then(|| unix_seconds_at(object, "/canceled_at"))
                .flatten()
        }),
        trial_end: unix_seconds_at(object, "/trial_end"),
        partial: false,
    })
}

/// A subscription item or checkout line item: price (or legacy plan), product, quantity.
fn price_item(item: &Value) -> Option<BillingItem> {
    let external_id = id_at(item, "/price").or_else(|| id_at(item, "/plan"))?;
    Some(BillingItem {
        external_id,
        product_external_id: id_at(item, "/price/product").or_else(|| id_at(item, "/plan/product")),
        quantity: int_at(item, "/quantity").unwrap_or(1),
        line_id: None,
        fallback_ids: Vec::new(),
    })
}

fn customer_of(object: &Value) -> Option<CustomerRef> {
    let external_id = id_at(object, "/customer")?;
    Some(CustomerRef {
        external_id: Some(external_id),
        email: str_at(object, "/customer/email"),
        name: str_at(object, "/customer/name"),
    })
}

fn invoice_customer(invoice: &Value) -> Option<CustomerRef> {
    let customer = CustomerRef {
        external_id: id_at(invoice, "/customer"),
        email: str_at(invoice, "/customer_email"),
        name: str_at(invoice, "/customer_name"),
    };
    (!customer.is_empty()).then_some(customer)
}

/// The invoice's subscription id, in every place the API versions put it.
fn invoice_subscription_id(invoice: &Value) -> Option<String> {
    id_at(invoice, "/subscription")
        .or_else(|| id_at(invoice, "/parent/subscription_details/subscription"))
        .or_else(|| {
            array(invoice, "/lines/data").iter().find_map(|line| {
                id_at(line, "/subscription")
                    .or_else(|| id_at(line, "/parent/subscription_item_details/subscription"))
            })
        })
}

struct Line {
    item: BillingItem,
    period_end: Option<Timestamp>,
    subscription: bool,
    proration: bool,
}

fn invoice_lines(invoice: &Value) -> Vec<Line> {
    array(invoice, "/lines/data")
        .iter()
        .filter_map(|line| {
            let external_id = id_at(line, "/price")
                .or_else(|| id_at(line, "/pricing/price_details/price"))
                .or_else(|| id_at(line, "/plan"))?;
            let product = id_at(line, "/price/product")
                .or_else(|| id_at(line, "/pricing/price_details/product"))
                .or_else(|| id_at(line, "/plan/product"));
            let subscription = str_at(line, "/type").as_deref() == Some("subscription")
                || str_at(line, "/parent/type").as_deref() == Some("subscription_item_details");
            let proration = bool_at(line, "/proration")
                .or_else(|| bool_at(line, "/parent/subscription_item_details/proration"))
                .unwrap_or(false);
            Some(Line {
                item: BillingItem {
                    external_id,
                    product_external_id: product,
                    quantity: int_at(line, "/quantity").unwrap_or(1),
                    line_id: None,
                    fallback_ids: Vec::new(),
                },
                period_end: unix_seconds_at(line, "/period/end"),
                subscription,
                proration,
            })
        })
        .collect()
}

fn invoice_order(invoice: &Value, with_lines: bool) -> Option<OrderRef> {
    Some(OrderRef {
        external_id: str_at(invoice, "/id")?,
        lines: if with_lines {
            invoice_lines(invoice).into_iter().map(|l| l.item).collect()
        } else {
            Vec::new()
        },
    })
}

/// `invoice.paid` / `invoice.payment_succeeded`: a renewal when `billing_reason` is
/// `subscription_cycle`, the first payment on `subscription_create`, a one-time order when
/// the invoice has no subscription.
fn invoice_paid(out: &mut BillingEvent, invoice: &Value) {
    out.customer = invoice_customer(invoice);
    let Some(sub_id) = invoice_subscription_id(invoice) else {
        out.kind = Kind::OrderPaid;
        out.order = invoice_order(invoice, true);
        return;
    };
    let reason = str_at(invoice, "/billing_reason").unwrap_or_default();
    let period_lines: Vec<Line> = invoice_lines(invoice)
        .into_iter()
        .filter(|l| l.subscription && !l.proration)
        .collect();
    let mut snapshot = SubscriptionSnapshot::partial(sub_id);
    snapshot.current_period_end = period_lines.iter().filter_map(|l| l.period_end).max();
    // A page of the lines only (`has_more`): the items are not told, so the ones not on it
    // are not taken for removed.
    if bool_at(invoice, "/lines/has_more") != Some(true) {
        snapshot.items = period_lines.into_iter().map(|l| l.item).collect();
    }
    snapshot.status = Some(Status::Active);
    out.kind = match reason.as_str() {
        "subscription_cycle" => Kind::SubscriptionRenewed,
        "subscription_create" => {
            // A $0 invoice opens a trial: it says nothing about the status.
            if int_at(invoice, "/amount_paid").unwrap_or(0) == 0 {
                snapshot.status = None;
            }
            Kind::SubscriptionActivated
        }
        _ => Kind::SubscriptionUpdated,
    };
    out.subscription = Some(snapshot);
    out.order = invoice_order(invoice, false);
    out.order_aliases = invoice_payment_ids(invoice);
}

/// The payment intent and charge of an invoice (before basil; basil tells them in
/// `invoice_payment.paid`).
fn invoice_payment_ids(invoice: &Value) -> Vec<String> {
    [id_at(invoice, "/payment_intent"), id_at(invoice, "/charge")]
        .into_iter()
        .flatten()
        .collect()
}

/// Checkout: a subscription checkout tells who the customer is (subscription events carry
/// no email); a paid one-time checkout is an order. Its line items are never in a delivery
/// (only when the session is retrieved with `expand[]=line_items`), so the event asks for
/// them from the API unless they are there.
fn checkout_session(out: &mut BillingEvent, session: &Value) {
    let customer = CustomerRef {
        external_id: id_at(session, "/customer"),
        email: str_at(session, "/customer_details/email")
            .or_else(|| str_at(session, "/customer_email")),
        name: str_at(session, "/customer_details/name"),
    };
    let customer = (!customer.is_empty()).then_some(customer);
    // `no_payment_required`: a free or fully discounted purchase is still a purchase.
    let paid = matches!(
        str_at(session, "/payment_status").as_deref(),
        Some("paid" | "no_payment_required")
    );
    match str_at(session, "/mode").as_deref() {
        Some("subscription") => {
            out.kind = Kind::CustomerUpserted;
            out.customer = customer;
            out.subscription = id_at(session, "/subscription").map(SubscriptionSnapshot::partial);
        }
        Some("payment") if paid => {
            out.kind = Kind::OrderPaid;
            out.customer = customer;
            // The id goes into an API path: Stripe's ids are `cs_` and alphanumerics.
            let Some(session_id) = str_at(session, "/id")
                .filter(|id| id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            else {
                return;
            };
            let external_id = id_at(session, "/payment_intent").unwrap_or(session_id.clone());
            let expanded = at(session, "/line_items/data").is_some();
            out.order = Some(OrderRef {
                external_id,
                lines: array(session, "/line_items/data")
                    .iter()
                    .filter_map(price_item)
                    .collect(),
            });
            if !expanded {
                out.needs_fetch.push(format!(
                    "/v1/checkout/sessions/{session_id}/line_items?limit={CHECKOUT_LINE_ITEMS_PAGE}"
                ));
            }
        }
        _ => {}
    }
}
