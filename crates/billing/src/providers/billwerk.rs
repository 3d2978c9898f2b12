//! billwerk+ Optimize / Pay (formerly Reepay) webhooks, completed from its API.
//!
//! Verify ([`SCHEME`]): the body field `signature` is hex HMAC-SHA256 with the webhook secret
//! (`webhook_secret_…`, Configurations → Webhooks; several during rotation) over the body
//! strings `timestamp` + `id`, concatenated. No freshness window: billwerk retries a failed
//! webhook with the same `timestamp` and signature, and blocks the customer's later webhooks
//! meanwhile, so an old timestamp is normal.
//!
//! Only `timestamp` and `id` are signed: the event type, customer, subscription and invoice
//! in the body are not. So nothing in the body is acted on: every event is re-fetched from
//! the API before it is applied (`Auth::Basic` with the private API key as user, empty
//! password, as billwerk documents):
//! 1. `GET /v1/event/{event_id}`: the event as billwerk recorded it (its type, customer,
//!    subscription and invoice);
//! 2. `GET /v1/subscription/{handle}`, `GET /v1/invoice/{id}`, `GET /v1/customer/{handle}`:
//!    the current state, from which the event is applied.
//!
//! A fetch that fails leaves the event `pending` for the worker.
//!
//! De-duplication on `event_id` (the webhook `id` differs per URL, the event's does not).
//! Ordering: billwerk delivers FIFO per customer and holds a customer's later webhooks while
//! one fails. Keygate answers 2xx as soon as the event is stored (also when its API fetch
//! failed and it waits for the worker), so it never stalls that queue; the inbox places each
//! event in the subscription's history by its signed `timestamp`, and each is applied from the
//! state fetched when it is applied, so a late one never brings an older state back.
//!
//! Mappings match the subscription's plan handle. One-time invoices (no subscription) are
//! ignored: licenses follow subscriptions here.

use crate::api::{ApiSpec, Auth, Fetch, ObjectKind, path_segment};
use crate::json::{bool_at, int_at, required, rfc3339_at, str_at};
use crate::scheme::{Algorithm, FieldHmac};
use crate::{BillingError, ConfigError, Provider, Request, Secrets};
use keygate_domain::Timestamp;
use keygate_domain::billing::{
    BillingEvent, BillingEventKind as Kind, BillingItem, CustomerRef, OrderRef, Reversal,
    SubscriptionSnapshot, SubscriptionStatus as Status,
};
use serde_json::Value;

pub struct Billwerk;

/// `signature` = hex(HMAC-SHA256(secret, `timestamp` + `id`)).
pub const SCHEME: FieldHmac = FieldHmac {
    signature_field: "signature",
    signed_fields: &["timestamp", "id"],
    algorithm: Algorithm::Sha256,
};

impl Provider for Billwerk {
    fn name(&self) -> &'static str {
        "billwerk"
    }

    #[cfg(feature = "testkit")]
    fn kit(&self) -> &'static dyn crate::testkit::Kit {
        &crate::testkit::BillwerkKit
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
        SCHEME.verify(&request.json()?, &keys)
    }

    fn parse(&self, request: &Request) -> Result<Vec<BillingEvent>, BillingError> {
        let body = request.json()?;
        let event_id = required(&body, "/event_id")?;
        let event_type = required(&body, "/event_type")?;
        let occurred_at = rfc3339_at(&body, "/timestamp")
            .ok_or_else(|| BillingError::malformed("`/timestamp` is missing or not ISO-8601"))?;
        // The body's claims only choose whether to ask; what is applied comes from the API.
        let handled = kind_of(&event_type).is_some()
            && (str_at(&body, "/subscription").is_some() || !event_type.starts_with("invoice_"));
        let mut out = BillingEvent::new(
            event_id.clone(),
            event_type.as_str(),
            Kind::Ignored,
            occurred_at,
        );
        if handled {
            out.kind = Kind::SubscriptionUpdated;
            out.needs_fetch = vec![format!("/v1/event/{}", path_segment(&event_id))];
        }
        Ok(vec![out])
    }

    fn api(&self) -> Option<ApiSpec> {
        Some(ApiSpec {
            default_base_url: "https://api.reepay.com",
            auth: Auth::Basic {
                user: "api_key",
                password: None,
            },
        })
    }

    fn fetches(&self, event: &BillingEvent) -> Vec<Fetch> {
        event
            .needs_fetch
            .iter()
            .map(|path| {
                let object = if path.starts_with("/v1/event/") {
                    ObjectKind::Event
                } else if path.starts_with("/v1/invoice/") {
                    ObjectKind::Invoice
                } else if path.starts_with("/v1/customer/") {
                    ObjectKind::Customer
                } else {
                    ObjectKind::Subscription
                };
                Fetch::get(object, path.clone())
            })
            .collect()
    }

    fn complete(
        &self,
        event: BillingEvent,
        fetched: &[(Fetch, Value)],
    ) -> Result<BillingEvent, BillingError> {
        let object = |kind: ObjectKind| {
            fetched
                .iter()
                .find(|(fetch, _)| fetch.object == kind)
                .map(|(_, value)| value)
        };
        match object(ObjectKind::Event) {
            Some(recorded) => confirmed(event, recorded),
            None => applied(
                event,
                object(ObjectKind::Subscription),
                object(ObjectKind::Invoice),
                object(ObjectKind::Customer),
            ),
        }
    }
}

/// What an event type means, before the state says more.
fn kind_of(event_type: &str) -> Option<Kind> {
    Some(match event_type {
        "subscription_created" => Kind::SubscriptionActivated,
        "subscription_renewal" => Kind::SubscriptionRenewed,
        "subscription_changed" | "subscription_uncancelled" => Kind::SubscriptionUpdated,
        "subscription_cancelled" => Kind::SubscriptionCancelScheduled,
        "subscription_on_hold" | "subscription_on_hold_dunning" => Kind::SubscriptionPaused,
        "subscription_reactivated" => Kind::SubscriptionResumed,
        "subscription_expired" | "subscription_expired_dunning" => Kind::SubscriptionCanceled,
        "invoice_settled" => Kind::SubscriptionRenewed,
        "invoice_dunning" | "invoice_failed" => Kind::PaymentFailed,
        "invoice_refund" | "invoice_credited" => Kind::Refunded,
        "invoice_cancelled" => Kind::SubscriptionUpdated,
        _ => return None,
    })
}

/// Round 1: the event as billwerk recorded it (`GET /v1/event/{id}`) replaces the body's
/// claims; its subscription, invoice and customer are fetched next.
fn confirmed(mut event: BillingEvent, recorded: &Value) -> Result<BillingEvent, BillingError> {
    if str_at(recorded, "/id").as_deref() != Some(event.event_id.as_str()) {
        return Err(BillingError::malformed(format!(
            "`/v1/event/{}` answered another event",
            event.event_id
        )));
    }
    let event_type = required(recorded, "/event_type")?;
    let subscription = str_at(recorded, "/subscription").ok_or_else(|| {
        BillingError::malformed(format!(
            "the event `{}` ({event_type}) names no subscription",
            event.event_id
        ))
    })?;
    event.kind = kind_of(&event_type).unwrap_or(Kind::SubscriptionUpdated);
    event.event_type = event_type;
    let mut next = vec![format!("/v1/subscription/{}", path_segment(&subscription))];
    event.subscription = Some(SubscriptionSnapshot::partial(subscription));
    if let Some(invoice) = str_at(recorded, "/invoice") {
        next.push(format!("/v1/invoice/{}", path_segment(&invoice)));
        event.order = Some(OrderRef {
            external_id: invoice,
            lines: Vec::new(),
        });
    }
    if let Some(customer) = str_at(recorded, "/customer") {
        next.push(format!("/v1/customer/{}", path_segment(&customer)));
        event.customer = Some(CustomerRef {
            external_id: Some(customer),
            ..CustomerRef::default()
        });
    }
    event.needs_fetch = next;
    Ok(event)
}

/// Round 2: the current state decides what the event does.
fn applied(
    mut event: BillingEvent,
    subscription: Option<&Value>,
    invoice: Option<&Value>,
    customer: Option<&Value>,
) -> Result<BillingEvent, BillingError> {
    let asked = event
        .subscription
        .as_ref()
        .map(|s| s.external_id.clone())
        .ok_or_else(|| BillingError::malformed("no subscription was asked for"))?;
    let subscription =
        subscription.ok_or_else(|| BillingError::malformed("the subscription is missing"))?;
    let mut snapshot = snapshot(subscription)?;
    if snapshot.external_id != asked {
        return Err(BillingError::malformed(format!(
            "`/v1/subscription/{asked}` answered `{}`",
            snapshot.external_id
        )));
    }
    event.livemode = bool_at(subscription, "/test") != Some(true);
    if let Some(invoice) = invoice {
        let asked = event.order.as_ref().map(|o| o.external_id.as_str());
        if str_at(invoice, "/id").as_deref() != asked {
            return Err(BillingError::malformed("the invoice answered is another"));
        }
        let state = str_at(invoice, "/state").unwrap_or_default();
        match event.kind {
            Kind::PaymentFailed => match state.as_str() {
                "dunning" | "failed" => {
                    if snapshot.status == Some(Status::Active) {
                        snapshot.status = Some(Status::PastDue);
                    }
                }
                // Paid since: the event is history, the state is that it was recovered.
                "settled" => event.kind = Kind::PaymentRecovered,
                _ => event.kind = Kind::SubscriptionUpdated,
            },
            Kind::SubscriptionRenewed if event.event_type == "invoice_settled" => {
                if state != "settled" {
                    event.kind = Kind::SubscriptionUpdated;
                } else if str_at(invoice, "/dunning_start").is_some() {
                    // The invoice that was in dunning is paid: the payment recovered.
                    event.kind = Kind::PaymentRecovered;
                }
            }
            Kind::Refunded => {
                let refunded = int_at(invoice, "/refunded_amount").unwrap_or(0);
                let settled = int_at(invoice, "/settled_amount")
                    .filter(|s| *s > 0)
                    .or_else(|| int_at(invoice, "/amount"))
                    .unwrap_or(0);
                event.reversal = Some(if refunded <= 0 {
                    Reversal::RefundInitiated
                } else if refunded >= settled {
                    Reversal::FullRefund
                } else {
                    Reversal::PartialRefund
                });
            }
            _ => {}
        }
    }
    if event.kind == Kind::SubscriptionActivated && snapshot.status == Some(Status::Trialing) {
        event.kind = Kind::TrialStarted;
    }
    if let Some(customer) = customer {
        let found = CustomerRef {
            external_id: str_at(customer, "/handle"),
            email: str_at(customer, "/email"),
            name: crate::json::full_name(
                str_at(customer, "/first_name"),
                str_at(customer, "/last_name"),
            ),
        };
        if !found.is_empty() {
            event.customer = Some(found);
        }
    }
    event.subscription = Some(snapshot);
    event.needs_fetch.clear();
    Ok(event)
}

/// A subscription as `GET /v1/subscription/{handle}` answers it.
fn snapshot(subscription: &Value) -> Result<SubscriptionSnapshot, BillingError> {
    let external_id = required(subscription, "/handle")?;
    let state = str_at(subscription, "/state").unwrap_or_default();
    let in_trial = bool_at(subscription, "/in_trial") == Some(true);
    let cancelled = bool_at(subscription, "/is_cancelled") == Some(true);
    let status = match state.as_str() {
        "active" if in_trial => Some(Status::Trialing),
        "active" => Some(Status::Active),
        "on_hold" if str_at(subscription, "/on_hold_reason").as_deref() == Some("dunning") => {
            Some(Status::Unpaid)
        }
        "on_hold" => Some(Status::Paused),
        "expired" => Some(Status::Canceled),
        "pending" => Some(Status::Incomplete),
        _ => None,
    };
    let next_period = rfc3339_at(subscription, "/next_period_start");
    let expires = rfc3339_at(subscription, "/expires");
    let items = str_at(subscription, "/plan")
        .map(|plan| BillingItem {
            external_id: plan,
            product_external_id: None,
            quantity: int_at(subscription, "/quantity").unwrap_or(1),
            line_id: None,
            fallback_ids: Vec::new(),
        })
        .into_iter()
        .collect();
    Ok(SubscriptionSnapshot {
        external_id,
        status,
        items,
        current_period_end: if cancelled {
            expires.or(next_period)
        } else {
            next_period
        },
        cancel_at_period_end: cancelled,
        cancel_at: if cancelled {
            expires.or(next_period)
        } else {
            None
        },
        ended_at: if status == Some(Status::Canceled) {
            rfc3339_at(subscription, "/expired_date")
        } else {
            None
        },
        trial_end: if in_trial {
            rfc3339_at(subscription, "/trial_end")
        } else {
            None
        },
        partial: false,
    })
}
