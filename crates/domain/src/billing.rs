//! The normalized billing event every payment platform module produces.
//!
//! A platform webhook is verified and parsed by `keygate-billing` into zero or more
//! [`BillingEvent`]s. The gateway stores them in the inbox (unique on the integration and
//! [`BillingEvent::event_id`]) and the reconcile turns them into license state.
//!
//! Two kinds of subscription information arrive:
//! - a **full snapshot** (`partial: false`): the platform sent the subscription object itself
//!   (Stripe `customer.subscription.*`, Paddle `subscription.*`, ...). Every field is the
//!   platform's current truth; an empty `items` really means "no items".
//! - a **partial snapshot** (`partial: true`): the platform sent an invoice, a payment, a sale
//!   or a refund that names the subscription. Only what is `Some`/non-empty is news: `status:
//!   None` and empty `items` mean "not told", and `cancel_at_period_end` is not told either.
//!   [`SubscriptionSnapshot::merged_over`] applies one onto the snapshot already known.
//!
//! `status` is Keygate's normalized view of the entitlement, not the platform's raw word: a
//! subscription whose cancellation is only scheduled (Chargebee `non_renewing`, Lemon Squeezy
//! `cancelled` in its grace period, PayPal `CANCELLED` before the paid-through date) is
//! `active` with `cancel_at_period_end: true`; `canceled` means access has ended.

use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// What happened, in Keygate's words (DESIGN "Event → action").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingEventKind {
    /// A customer was created or changed: upsert it (match platform id, then email).
    CustomerUpserted,
    /// A subscription started (or its first payment succeeded): a license per mapped item.
    SubscriptionActivated,
    /// Payment for a new period succeeded: move the expiry to the new period end.
    SubscriptionRenewed,
    /// Plan, quantity, status or dates changed: update the same licenses.
    SubscriptionUpdated,
    /// Cancellation at the end of the paid period: licenses stay valid until then.
    SubscriptionCancelScheduled,
    /// The subscription ended now: suspend its licenses.
    SubscriptionCanceled,
    SubscriptionPaused,
    SubscriptionResumed,
    /// A payment failed / invoice overdue / past due: grace, then suspend.
    PaymentFailed,
    /// A failed payment was recovered: reinstate.
    PaymentRecovered,
    /// A one-time order was paid: a license per mapped line.
    OrderPaid,
    /// A refund: revoke the licenses of that order / subscription.
    Refunded,
    /// A chargeback or dispute: revoke.
    Chargeback,
    /// A trial started or was extended.
    TrialStarted,
    /// An event type Keygate does not act on: stored and answered 2xx, nothing applied.
    Ignored,
}

impl BillingEventKind {
    pub const ALL: [BillingEventKind; 15] = [
        BillingEventKind::CustomerUpserted,
        BillingEventKind::SubscriptionActivated,
        BillingEventKind::SubscriptionRenewed,
        BillingEventKind::SubscriptionUpdated,
        BillingEventKind::SubscriptionCancelScheduled,
        BillingEventKind::SubscriptionCanceled,
        BillingEventKind::SubscriptionPaused,
        BillingEventKind::SubscriptionResumed,
        BillingEventKind::PaymentFailed,
        BillingEventKind::PaymentRecovered,
        BillingEventKind::OrderPaid,
        BillingEventKind::Refunded,
        BillingEventKind::Chargeback,
        BillingEventKind::TrialStarted,
        BillingEventKind::Ignored,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BillingEventKind::CustomerUpserted => "customer_upserted",
            BillingEventKind::SubscriptionActivated => "subscription_activated",
            BillingEventKind::SubscriptionRenewed => "subscription_renewed",
            BillingEventKind::SubscriptionUpdated => "subscription_updated",
            BillingEventKind::SubscriptionCancelScheduled => "subscription_cancel_scheduled",
            BillingEventKind::SubscriptionCanceled => "subscription_canceled",
            BillingEventKind::SubscriptionPaused => "subscription_paused",
            BillingEventKind::SubscriptionResumed => "subscription_resumed",
            BillingEventKind::PaymentFailed => "payment_failed",
            BillingEventKind::PaymentRecovered => "payment_recovered",
            BillingEventKind::OrderPaid => "order_paid",
            BillingEventKind::Refunded => "refunded",
            BillingEventKind::Chargeback => "chargeback",
            BillingEventKind::TrialStarted => "trial_started",
            BillingEventKind::Ignored => "ignored",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// The platform subscription's state, normalized (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Trialing,
    Active,
    /// A payment failed; the platform is retrying (grace, then suspend).
    PastDue,
    /// Retries are exhausted and the subscription was left unpaid.
    Unpaid,
    Paused,
    /// Access has ended (cancelled, expired, deactivated).
    Canceled,
    /// Created but not yet paid or approved (Stripe `incomplete`, PayPal `APPROVAL_PENDING`,
    /// Chargebee `future`): no license yet.
    Incomplete,
}

impl SubscriptionStatus {
    pub const ALL: [SubscriptionStatus; 7] = [
        SubscriptionStatus::Trialing,
        SubscriptionStatus::Active,
        SubscriptionStatus::PastDue,
        SubscriptionStatus::Unpaid,
        SubscriptionStatus::Paused,
        SubscriptionStatus::Canceled,
        SubscriptionStatus::Incomplete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Trialing => "trialing",
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::PastDue => "past_due",
            SubscriptionStatus::Unpaid => "unpaid",
            SubscriptionStatus::Paused => "paused",
            SubscriptionStatus::Canceled => "canceled",
            SubscriptionStatus::Incomplete => "incomplete",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// Whether the customer is entitled now (licenses valid, subject to their dates).
    pub fn is_entitled(self) -> bool {
        matches!(
            self,
            SubscriptionStatus::Trialing | SubscriptionStatus::Active
        )
    }
}

/// Who paid, as far as the platform told. Matched by platform id, then by email.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerRef {
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

impl CustomerRef {
    pub fn is_empty(&self) -> bool {
        self.external_id.is_none() && self.email.is_none() && self.name.is_none()
    }
}

/// One bought thing: the id the integration's mappings are keyed on (Stripe price, Paddle
/// price, PayPal plan, Chargebee item price / plan, FastSpring product path, Lemon Squeezy
/// variant, Shopify variant) and how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingItem {
    pub external_id: String,
    #[serde(default)]
    pub product_external_id: Option<String>,
    #[serde(default = "one")]
    pub quantity: i64,
    /// The platform's id of this line of the order (Shopify line item, WooCommerce order item,
    /// PrestaShop order detail): the license issued for the line carries it, so a refund that
    /// names lines revokes only theirs. On a refund's lines, `quantity` is the refunded
    /// quantity of that line. `None` where the platform has no line identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_id: Option<String>,
    /// More ids a mapping may name for this item, tried in this order after `external_id`
    /// (Shopify: the variant is `external_id`, then the product, then the SKU): the first one
    /// a mapping names is the item's id for the plan ([`BillingItem::mapped_id`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback_ids: Vec<String>,
}

impl BillingItem {
    /// An item with only an id and a quantity; set the rest with struct update syntax.
    pub fn new(external_id: impl Into<String>, quantity: i64) -> Self {
        BillingItem {
            external_id: external_id.into(),
            product_external_id: None,
            quantity,
            line_id: None,
            fallback_ids: Vec::new(),
        }
    }

    /// Every id a mapping may name for this item, most specific first.
    pub fn candidate_ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.external_id.as_str())
            .chain(self.fallback_ids.iter().map(String::as_str))
    }

    /// The first candidate id `is_mapped` accepts.
    pub fn mapped_id(&self, is_mapped: impl Fn(&str) -> bool) -> Option<&str> {
        self.candidate_ids().find(|id| is_mapped(id))
    }
}

fn one() -> i64 {
    1
}

/// Keygate's copy of a platform subscription as one event describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionSnapshot {
    pub external_id: String,
    /// `None` only in a partial snapshot that says nothing about the status (e.g. a refund).
    #[serde(default)]
    pub status: Option<SubscriptionStatus>,
    #[serde(default)]
    pub items: Vec<BillingItem>,
    /// The paid-through date.
    #[serde(default)]
    pub current_period_end: Option<Timestamp>,
    /// Billing stops at the end of the period; access lasts until `cancel_at`, else
    /// `current_period_end`.
    #[serde(default)]
    pub cancel_at_period_end: bool,
    /// When a scheduled cancellation takes effect, if the platform says.
    #[serde(default)]
    pub cancel_at: Option<Timestamp>,
    /// When access ended (status `canceled`).
    #[serde(default)]
    pub ended_at: Option<Timestamp>,
    #[serde(default)]
    pub trial_end: Option<Timestamp>,
    /// See the module doc: only `Some`/non-empty fields are news.
    #[serde(default)]
    pub partial: bool,
}

impl SubscriptionSnapshot {
    /// A snapshot that only names the subscription; fill in what the event tells.
    pub fn partial(external_id: impl Into<String>) -> Self {
        SubscriptionSnapshot {
            external_id: external_id.into(),
            status: None,
            items: Vec::new(),
            current_period_end: None,
            cancel_at_period_end: false,
            cancel_at: None,
            ended_at: None,
            trial_end: None,
            partial: true,
        }
    }

    /// The snapshot after applying `self` onto `base` (the one already known for the same
    /// subscription). A full snapshot replaces `base`; a partial one only overwrites what it
    /// tells. The result is partial only if both were.
    pub fn merged_over(&self, base: &SubscriptionSnapshot) -> SubscriptionSnapshot {
        if !self.partial {
            return self.clone();
        }
        SubscriptionSnapshot {
            external_id: self.external_id.clone(),
            status: self.status.or(base.status),
            items: if self.items.is_empty() {
                base.items.clone()
            } else {
                self.items.clone()
            },
            current_period_end: self.current_period_end.or(base.current_period_end),
            cancel_at_period_end: base.cancel_at_period_end,
            cancel_at: self.cancel_at.or(base.cancel_at),
            ended_at: self.ended_at.or(base.ended_at),
            trial_end: self.trial_end.or(base.trial_end),
            partial: base.partial,
        }
    }
}

/// A one-time order (or the invoice / payment / sale an event is about). Refunds and
/// chargebacks name the order whose licenses are revoked: all of them, or, when the refund's
/// `lines` carry `line_id`s, only those lines' (see `reconcile::apply_order_event`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRef {
    pub external_id: String,
    #[serde(default)]
    pub lines: Vec<BillingItem>,
}

/// One platform event, normalized. Serialized as snake_case JSON with RFC 3339 times; this
/// is also the body the generic (Standard Webhooks) endpoint accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingEvent {
    /// The platform's event id (or a synthetic one where the platform has none): the inbox
    /// de-duplicates on it.
    pub event_id: String,
    /// The platform's raw event type, e.g. `invoice.paid`.
    pub event_type: String,
    pub kind: BillingEventKind,
    pub occurred_at: Timestamp,
    #[serde(default = "yes")]
    pub livemode: bool,
    #[serde(default)]
    pub customer: Option<CustomerRef>,
    #[serde(default)]
    pub subscription: Option<SubscriptionSnapshot>,
    #[serde(default)]
    pub order: Option<OrderRef>,
    /// A platform counter that orders changes of the subscription (Chargebee
    /// `resource_version`); `None` where the platform has none: order by `occurred_at`.
    #[serde(default)]
    pub ordering_version: Option<i64>,
    /// Platform API paths whose objects this event still needs before it can be applied
    /// (Stripe Checkout's line items, which a delivery never carries): the server fetches them
    /// and the platform module completes the event, which empties this list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs_fetch: Vec<String>,
    /// Other ids the platform gives the order's payment (Stripe: an invoice's payment intent
    /// and charge), so a refund or dispute naming any of them reaches the same subscription.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order_aliases: Vec<String>,
    /// What a refund or dispute is, where the platform says (`None`: a full refund or a
    /// chargeback, as the kind says). The integration's `options.refunds` decides from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reversal: Option<Reversal>,
    /// The subscription's billing interval, when the event's subscription object tells it
    /// (PayPal: `next_billing_time` − `last_payment.time` in whole days; FastSpring:
    /// `intervalLength` × `intervalUnit`): what a renewal payment that carries no period
    /// extends the known paid-through date by.
    #[serde(default)]
    pub billing_interval_seconds: Option<i64>,
    /// The last payment the snapshot's period already accounts for (PayPal
    /// `billing_info.last_payment.time`): a renewal payment at that time is not a new period.
    #[serde(default)]
    pub last_payment_at: Option<Timestamp>,
    /// Set on a renewal payment that carries no period (PayPal `PAYMENT.SALE.COMPLETED`,
    /// FastSpring `subscription.charge.completed` without Webhook Expansion): Keygate derives
    /// the new period from what it knows, else the event fails with this need's code.
    #[serde(default)]
    pub period_missing: Option<MissingPeriod>,
}

/// The size and stage of a refund or dispute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reversal {
    /// Everything paid was refunded.
    FullRefund,
    /// Part of the payment was refunded.
    PartialRefund,
    /// Only tax was refunded.
    TaxOnlyRefund,
    /// A refund whose size the event does not tell (Stripe `refund.created`: the charge's
    /// `charge.refunded` tells it).
    RefundOfUnknownSize,
    /// A refund asked for but not done yet.
    RefundInitiated,
    /// A dispute opened as a chargeback: the money is taken back.
    Chargeback,
    /// A dispute opened as an inquiry (Stripe `warning_*`, PayPal INQUIRY): no money moved.
    DisputeInquiry,
}

impl Reversal {
    pub fn as_str(self) -> &'static str {
        match self {
            Reversal::FullRefund => "full_refund",
            Reversal::PartialRefund => "partial_refund",
            Reversal::TaxOnlyRefund => "tax_only_refund",
            Reversal::RefundOfUnknownSize => "refund_of_unknown_size",
            Reversal::RefundInitiated => "refund_initiated",
            Reversal::Chargeback => "chargeback",
            Reversal::DisputeInquiry => "dispute_inquiry",
        }
    }
}

/// What completes a renewal that carries no period when Keygate cannot derive it (no known
/// paid-through date or billing interval): the event stays `failed` with [`MissingPeriod::code`]
/// and is replayed once that is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingPeriod {
    /// The platform's API (the subscription object) has it: configure `api_credentials`.
    ApiCredentials,
    /// The platform sends it when Webhook Expansion is enabled (FastSpring).
    WebhookExpansion,
}

impl MissingPeriod {
    pub fn code(self) -> &'static str {
        match self {
            MissingPeriod::ApiCredentials => "API_CREDENTIALS_REQUIRED",
            MissingPeriod::WebhookExpansion => "WEBHOOK_EXPANSION_REQUIRED",
        }
    }
}

fn yes() -> bool {
    true
}

impl BillingEvent {
    /// An event with nothing but its identity; set the rest with struct update syntax.
    pub fn new(
        event_id: impl Into<String>,
        event_type: impl Into<String>,
        kind: BillingEventKind,
        occurred_at: Timestamp,
    ) -> Self {
        BillingEvent {
            event_id: event_id.into(),
            event_type: event_type.into(),
            kind,
            occurred_at,
            livemode: true,
            customer: None,
            subscription: None,
            order: None,
            ordering_version: None,
            needs_fetch: Vec::new(),
            order_aliases: Vec::new(),
            reversal: None,
            billing_interval_seconds: None,
            last_payment_at: None,
            period_missing: None,
        }
    }

    pub fn subscription_id(&self) -> Option<&str> {
        self.subscription.as_ref().map(|s| s.external_id.as_str())
    }

    pub fn order_id(&self) -> Option<&str> {
        self.order.as_ref().map(|o| o.external_id.as_str())
    }

    /// The order's id and its aliases (none without an order).
    pub fn order_ids(&self) -> impl Iterator<Item = &str> {
        self.order_id()
            .into_iter()
            .chain(self.order_aliases.iter().map(String::as_str))
    }

    /// The bought items: the subscription's, else the order's lines.
    pub fn items(&self) -> &[BillingItem] {
        match (&self.subscription, &self.order) {
            (Some(sub), _) if !sub.items.is_empty() => &sub.items,
            (_, Some(order)) => &order.lines,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, quantity: i64) -> BillingItem {
        BillingItem {
            product_external_id: Some("prod_1".into()),
            ..BillingItem::new(id, quantity)
        }
    }

    fn full() -> SubscriptionSnapshot {
        SubscriptionSnapshot {
            external_id: "sub_1".into(),
            status: Some(SubscriptionStatus::Active),
            items: vec![item("price_1", 3)],
            current_period_end: Some(Timestamp::from_unix_seconds(1_700_000_000)),
            cancel_at_period_end: true,
            cancel_at: Some(Timestamp::from_unix_seconds(1_700_000_000)),
            ended_at: None,
            trial_end: None,
            partial: false,
        }
    }

    #[test]
    fn kinds_round_trip_as_snake_case() {
        for kind in BillingEventKind::ALL {
            assert_eq!(BillingEventKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(
                serde_json::from_str::<BillingEventKind>(&json).unwrap(),
                kind
            );
        }
        assert_eq!(
            BillingEventKind::SubscriptionCancelScheduled.as_str(),
            "subscription_cancel_scheduled"
        );
        assert_eq!(BillingEventKind::parse("nope"), None);
    }

    #[test]
    fn statuses_round_trip_as_snake_case() {
        for status in SubscriptionStatus::ALL {
            assert_eq!(SubscriptionStatus::parse(status.as_str()), Some(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert_eq!(SubscriptionStatus::PastDue.as_str(), "past_due");
        assert!(SubscriptionStatus::Trialing.is_entitled());
        assert!(!SubscriptionStatus::PastDue.is_entitled());
        assert_eq!(SubscriptionStatus::parse("PAST_DUE"), None);
    }

    #[test]
    fn event_serializes_with_rfc3339_times_and_round_trips() {
        let event = BillingEvent {
            customer: Some(CustomerRef {
                external_id: Some("cus_1".into()),
                email: Some("a@example.com".into()),
                name: None,
            }),
            subscription: Some(full()),
            ordering_version: Some(7),
            ..BillingEvent::new(
                "evt_1",
                "customer.subscription.updated",
                BillingEventKind::SubscriptionUpdated,
                Timestamp::from_unix_seconds(1_690_000_000),
            )
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["kind"], "subscription_updated");
        assert_eq!(json["occurred_at"], "2023-07-22T04:26:40Z");
        assert_eq!(json["subscription"]["status"], "active");
        assert_eq!(
            json["subscription"]["current_period_end"],
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(json["subscription"]["items"][0]["quantity"], 3);
        let back: BillingEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
        assert_eq!(back.subscription_id(), Some("sub_1"));
        assert_eq!(back.items().len(), 1);
    }

    #[test]
    fn minimal_json_gets_defaults() {
        let event: BillingEvent = serde_json::from_str(
            r#"{"event_id":"e1","event_type":"order.paid","kind":"order_paid",
                "occurred_at":"2026-01-01T00:00:00Z",
                "order":{"external_id":"o1","lines":[{"external_id":"sku-1"}]}}"#,
        )
        .unwrap();
        assert!(event.livemode);
        assert_eq!(event.order_id(), Some("o1"));
        assert_eq!(event.items()[0].quantity, 1);
        assert_eq!(event.items()[0].product_external_id, None);
        assert_eq!(event.subscription_id(), None);
    }

    #[test]
    fn partial_snapshot_merges_only_what_it_tells() {
        let base = full();
        let mut renewal = SubscriptionSnapshot::partial("sub_1");
        renewal.status = Some(SubscriptionStatus::Active);
        renewal.current_period_end = Some(Timestamp::from_unix_seconds(1_702_592_000));
        let merged = renewal.merged_over(&base);
        assert_eq!(merged.items, base.items);
        assert_eq!(merged.current_period_end, renewal.current_period_end);
        assert!(
            merged.cancel_at_period_end,
            "not told by a partial snapshot"
        );
        assert!(!merged.partial);

        let refund = SubscriptionSnapshot::partial("sub_1");
        let merged = refund.merged_over(&base);
        assert_eq!(merged.status, Some(SubscriptionStatus::Active));

        let mut replaced = full();
        replaced.items = vec![];
        replaced.cancel_at_period_end = false;
        assert_eq!(replaced.merged_over(&base), replaced);
    }
}
