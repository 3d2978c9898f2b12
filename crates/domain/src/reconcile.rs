//! The reconcile planner: billing events → Keygate's subscription state → license changes.
//!
//! Pure and deterministic (DESIGN "Gateway: from webhook to license", step 5). The gateway
//! 1. folds every event of a subscription into a [`SubscriptionState`] with [`apply_event`]
//!    (persist the result when it returns `Some`), then
//! 2. asks [`plan`] which [`LicenseChange`]s bring the subscription's licenses to the state
//!    the subscription implies, and applies them in one transaction.
//!
//! One-time orders go the same way through [`OrderState`], [`apply_order_event`] and
//! [`plan_order`]. An event that names a subscription is a subscription event; an event
//! with only an order whose id a subscription has seen ([`SubscriptionState::has_order`],
//! e.g. a Stripe refund naming a subscription invoice) is one too; any other order event is
//! a one-time order event.
//!
//! # Why duplicates and out-of-order delivery are harmless
//!
//! [`apply_event`] is order-independent: applying the same set of events in any order, with
//! any number of duplicates, yields the same state as applying them in time order.
//! - Every snapshot field is a last-writer-wins register stamped with the [`EventPosition`]
//!   of the event that last told it (`occurred_at`, then the platform's `ordering_version`,
//!   then full-over-partial, then the event id: a total order). An event only overwrites
//!   the fields it tells (a full snapshot tells all but empty `items`; a partial one what
//!   is `Some`/non-empty, see [`crate::billing`]) and only where it is newer, so an older
//!   event can still fill a field nothing newer has told (a refund that arrives first does
//!   not hide the items of the older activation that arrives after it).
//! - Facts that happen once are sticky: a refund or chargeback (`revoked_at`, terminal), the
//!   subscription having been entitled at least once (`ever_entitled`, so licenses exist
//!   even when the cancellation is the first event seen), the orders/invoices it has seen.
//! - Payment failures are a log of failed/ok signals: `payment_failed_at` is the first
//!   failure after the newest success, so a late duplicate of an old failure cannot bring
//!   a recovered subscription back into grace.
//!
//! [`plan`] is a function of the state and the licenses only, and returns only the changes
//! still needed: after applying them, planning again returns nothing.
//!
//! # Rules (DESIGN "Event → action", made precise)
//!
//! - One license per mapped item (`extend`), or per mapped item and paid period
//!   (`new_license`); policy from the [`Mapping`], `quantity` from the item (policies with
//!   `seats_from_quantity` turn it into seats). An unmapped item (an add-on, a one-time or
//!   prorated charge) is skipped and listed ([`unmapped_items`]: `UNMAPPED_ITEM` in the
//!   event's actions); only when no item maps is it [`ReconcileError::NoMapping`] and no
//!   change at all. A mapped item must have a quantity of 1 to
//!   [`crate::limits::MAX_QUANTITY`], else [`ReconcileError::InvalidQuantity`] (never a seat
//!   count of zero or less).
//! - Expiry, for `expiry: subscription` policies only: the paid-through date
//!   ([`paid_through`]: `current_period_end` — `trial_end` while trialing — capped by a
//!   scheduled `cancel_at`). `fixed` policies keep the expiry the store computed at issue
//!   (a `Create` with `expires_at: None` means "from the policy").
//! - Renewal, `extend`: `SetExpiry` to the new period end on the same license.
//!   `new_license`: a `Create` for the new period (licenses carry the `period_end` they were
//!   issued for, so a period is never issued twice), only while the subscription is active
//!   or trialing with no unrecovered payment failure; older periods' licenses are left
//!   alone (they expire).
//! - Plan change (an item is replaced by another, or its mapping now names another policy):
//!   `ChangePolicy` on the same license (same key), pairing the replaced item's license with
//!   the new item (same product first). Quantity change: `SetQuantity`. A license whose item
//!   left the subscription (and could not be paired) is suspended.
//! - Status: paused or unpaid → `Suspend`; active, trialing or past due → `Reinstate` a
//!   suspended license; cancelled immediately (ended before the paid-through date, or end
//!   unknown) → `Suspend`; cancelled at the period end (ended at or after the paid-through
//!   date) → nothing, the license expires by its date; scheduled cancellation → nothing but
//!   the expiry. Refund or chargeback → `Revoke` every license of the subscription; revoked
//!   is terminal (never reinstated; its other fields still follow the subscription).
//! - Payment failed: no change in the plan; validation answers `GRACE_PERIOD` then
//!   `SUSPENDED` from [`payment_facts`] (see [`crate::validation::decide`]).
//!   Recovered: the failure is cleared, the license is `VALID` again.
//! - Mapping lookup: an item's `external_id`, then its `fallback_ids` in order (Shopify:
//!   variant, product, SKU); the first id a mapping names is the item's id for the plan and
//!   on its license.
//! - Orders: a license per mapped line (quantity = seats), never twice for the same line;
//!   refund / chargeback / cancellation of the whole order revokes the order's licenses. A
//!   refund or chargeback whose lines carry the platform's line ids ([`reversed_lines`])
//!   reaches only those lines' licenses (a line-level refund of one line leaves the others):
//!   under `options.refunds: full` a line refunded in full is revoked and one refunded in
//!   part keeps its license with the seats left; under `any` any refund of a line revokes it.
//!   Both kinds are sticky facts of the order, so a refund delivered before the payment
//!   still yields licenses created revoked (or with the seats left).
//!
//! A manual suspension of a license of an active subscription is undone by the next
//! reconcile (the planner cannot tell it from an automatic one); a manual revocation stays.

use crate::billing::{
    BillingEvent, BillingEventKind, BillingItem, MissingPeriod, SubscriptionStatus,
};
use crate::validation::PaymentFacts;
use crate::{ExpiryKind, LicenseStatus, Policy, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use thiserror::Error;

/// An integration's mapping from a platform product/price/plan/SKU id to a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    pub external_id: String,
    pub policy_id: String,
}

/// What a renewal does (integration option `renewal`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RenewalMode {
    /// Move the license's expiry to the new period end (default).
    #[default]
    Extend,
    /// Issue an additional license for each new period (NetLicensing style).
    NewLicense,
}

/// The integration options the planner needs. Other options (platform credentials, ...)
/// may sit next to them in the stored JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationOptions {
    #[serde(default)]
    pub renewal: RenewalMode,
    /// Overrides the policy's `grace_seconds` for payment failures.
    #[serde(default)]
    pub grace_seconds: Option<i64>,
    /// Which refunds and disputes revoke (`options.refunds`).
    #[serde(default)]
    pub refunds: RefundPolicy,
}

/// `options.refunds`: which refunds and disputes revoke the licenses they reach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundPolicy {
    /// A full refund or a chargeback revokes; a partial, tax-only or only initiated refund and
    /// a dispute inquiry change nothing.
    #[default]
    Full,
    /// Any refund done (of any size) or chargeback revokes.
    Any,
    /// Nothing revokes: refunds and disputes are only recorded.
    Never,
}

impl RefundPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundPolicy::Full => "full",
            RefundPolicy::Any => "any",
            RefundPolicy::Never => "never",
        }
    }
}

/// Whether a refund or dispute event revokes under the integration's policy (`false` for any
/// other event): when not, it changes nothing and is only recorded in the event's actions.
/// A line-level refund ([`reversed_lines`]) is partial for the order but names what it
/// refunds: it goes on to [`plan_order`], which revokes (or reduces) only those lines.
pub fn reversal_revokes(event: &BillingEvent, options: &IntegrationOptions) -> bool {
    use crate::billing::Reversal as R;
    if !matches!(
        event.kind,
        BillingEventKind::Refunded | BillingEventKind::Chargeback
    ) {
        return false;
    }
    let by_line = reversed_lines(event).is_some();
    match (options.refunds, event.reversal) {
        (RefundPolicy::Never, _) => false,
        (_, None | Some(R::FullRefund | R::Chargeback)) => true,
        (_, Some(R::RefundInitiated | R::DisputeInquiry)) => false,
        (RefundPolicy::Any, Some(_)) => true,
        (RefundPolicy::Full, Some(R::PartialRefund)) => by_line,
        (RefundPolicy::Full, Some(_)) => false,
    }
}

/// The order lines a refund or chargeback is limited to: its order's `lines` when there are
/// some and every one carries a `line_id` (`None`: the reversal is about the whole order, as
/// before line identities existed).
pub fn reversed_lines(event: &BillingEvent) -> Option<&[BillingItem]> {
    if !matches!(
        event.kind,
        BillingEventKind::Refunded | BillingEventKind::Chargeback
    ) {
        return None;
    }
    let lines = &event.order.as_ref()?.lines;
    (!lines.is_empty() && lines.iter().all(|l| l.line_id.is_some())).then_some(lines.as_slice())
}

/// Where an event sits in a subscription's history. Ordered by `occurred_at`, then the
/// platform's `ordering_version`, then a full snapshot after a partial one, then the event
/// id: a total order, so which of two events is newer never depends on arrival order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventPosition {
    pub occurred_at: Timestamp,
    #[serde(default)]
    pub version: Option<i64>,
    #[serde(default)]
    pub full: bool,
    pub event_id: String,
}

impl EventPosition {
    fn of(event: &BillingEvent, full: bool) -> Self {
        EventPosition {
            occurred_at: event.occurred_at,
            version: event.ordering_version,
            full,
            event_id: event.event_id.clone(),
        }
    }
}

/// A payment outcome seen on the subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentSignal {
    pub at: EventPosition,
    pub failed: bool,
}

/// Which event last told each field of a [`SubscriptionState`] (its bookkeeping; persist
/// it with the state, e.g. as a JSON column).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StateClock {
    pub customer_id: Option<EventPosition>,
    pub status: Option<EventPosition>,
    pub items: Option<EventPosition>,
    pub current_period_end: Option<EventPosition>,
    pub cancel_at_period_end: Option<EventPosition>,
    pub cancel_at: Option<EventPosition>,
    pub ended_at: Option<EventPosition>,
    pub trial_end: Option<EventPosition>,
    pub billing_interval: Option<EventPosition>,
    /// The newest success and every failure after it, oldest first.
    pub payments: Vec<PaymentSignal>,
}

/// Keygate's stored copy of a platform subscription (what the store persists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionState {
    pub external_id: String,
    /// The platform's customer id.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// `None` until an event tells it (e.g. only a refund has been seen).
    #[serde(default)]
    pub status: Option<SubscriptionStatus>,
    #[serde(default)]
    pub items: Vec<BillingItem>,
    #[serde(default)]
    pub current_period_end: Option<Timestamp>,
    #[serde(default)]
    pub cancel_at_period_end: bool,
    #[serde(default)]
    pub cancel_at: Option<Timestamp>,
    #[serde(default)]
    pub ended_at: Option<Timestamp>,
    #[serde(default)]
    pub trial_end: Option<Timestamp>,
    /// Start of the unrecovered payment failure (derived from `clock.payments`).
    #[serde(default)]
    pub payment_failed_at: Option<Timestamp>,
    /// The first refund or chargeback: every license is revoked, for good.
    #[serde(default)]
    pub revoked_at: Option<Timestamp>,
    /// The subscription was active, trialing or past due at least once.
    #[serde(default)]
    pub ever_entitled: bool,
    /// Orders / invoices / transactions events of this subscription named (sorted), so an
    /// event naming only one of them (a refund) can be routed to the subscription.
    #[serde(default)]
    pub order_ids: Vec<String>,
    /// The newest event applied (bookkeeping and display).
    #[serde(default)]
    pub last_event_at: Option<Timestamp>,
    #[serde(default)]
    pub ordering_version: Option<i64>,
    /// The billing interval the platform last told ([`BillingEvent::billing_interval_seconds`]).
    #[serde(default)]
    pub billing_interval_seconds: Option<i64>,
    /// Payments up to this time are counted in `current_period_end` (the last payment a
    /// snapshot named, or the last renewal payment a period was derived from).
    #[serde(default)]
    pub payments_counted_until: Option<Timestamp>,
    #[serde(default)]
    pub clock: StateClock,
}

impl SubscriptionState {
    /// A subscription nothing is known about yet.
    pub fn new(external_id: impl Into<String>) -> Self {
        SubscriptionState {
            external_id: external_id.into(),
            customer_id: None,
            status: None,
            items: Vec::new(),
            current_period_end: None,
            cancel_at_period_end: false,
            cancel_at: None,
            ended_at: None,
            trial_end: None,
            payment_failed_at: None,
            revoked_at: None,
            ever_entitled: false,
            order_ids: Vec::new(),
            last_event_at: None,
            ordering_version: None,
            billing_interval_seconds: None,
            payments_counted_until: None,
            clock: StateClock::default(),
        }
    }

    /// Whether an event of this subscription named this order / invoice id.
    pub fn has_order(&self, order_id: &str) -> bool {
        self.order_ids
            .binary_search_by(|o| o.as_str().cmp(order_id))
            .is_ok()
    }
}

/// The status an event's kind implies when its partial snapshot does not say.
fn implied_status(kind: BillingEventKind) -> Option<SubscriptionStatus> {
    use BillingEventKind as K;
    match kind {
        K::SubscriptionActivated
        | K::SubscriptionRenewed
        | K::SubscriptionResumed
        | K::PaymentRecovered => Some(SubscriptionStatus::Active),
        K::TrialStarted => Some(SubscriptionStatus::Trialing),
        K::SubscriptionPaused => Some(SubscriptionStatus::Paused),
        K::SubscriptionCanceled => Some(SubscriptionStatus::Canceled),
        K::PaymentFailed => Some(SubscriptionStatus::PastDue),
        _ => None,
    }
}

/// Last writer wins: take `told` if the event is newer than the one that last told it.
fn lww<T>(value: &mut T, clock: &mut Option<EventPosition>, told: Option<T>, at: &EventPosition) {
    if let Some(v) = told
        && clock.as_ref().is_none_or(|c| at > c)
    {
        *value = v;
        *clock = Some(at.clone());
    }
}

fn earliest(current: Option<Timestamp>, seen: Timestamp) -> Option<Timestamp> {
    Some(current.map_or(seen, |c| c.min(seen)))
}

/// Items with one entry per external id (quantities of repeated ids added up).
fn normalized_items(items: &[BillingItem]) -> Vec<BillingItem> {
    let mut out: Vec<BillingItem> = Vec::with_capacity(items.len());
    for item in items {
        match out.iter_mut().find(|i| i.external_id == item.external_id) {
            Some(existing) => existing.quantity = existing.quantity.saturating_add(item.quantity),
            None => out.push(item.clone()),
        }
    }
    out
}

/// How close to the last payment a snapshot counted a renewal payment may be and still be
/// that same payment (PayPal's first sale and the `last_payment` of its activation).
pub const SAME_PAYMENT_SECONDS: i64 = 600;

/// The paid-through date a renewal payment that carries no period implies
/// ([`BillingEvent::period_missing`]): the known paid-through date plus the known billing
/// interval, once per payment. `Ok(None)`: nothing to derive (the event tells its period, is
/// no such renewal, or is a payment the known period already counts). `Err`: nothing known to
/// derive from; the event fails with the need's code and is replayed once it is configured
/// (or once a full snapshot has told the period). A derived date is only a stand-in: the next
/// full snapshot, newer by [`EventPosition`], overwrites it.
pub fn derived_period_end(
    state: Option<&SubscriptionState>,
    event: &BillingEvent,
) -> Result<Option<Timestamp>, ReconcileError> {
    let (Some(needs), Some(snap)) = (event.period_missing, event.subscription.as_ref()) else {
        return Ok(None);
    };
    if event.kind != BillingEventKind::SubscriptionRenewed || snap.current_period_end.is_some() {
        return Ok(None);
    }
    let known = state.and_then(|s| {
        Some((
            s,
            s.current_period_end?,
            s.billing_interval_seconds.filter(|i| *i > 0)?,
        ))
    });
    let Some((state, end, interval)) = known else {
        return Err(ReconcileError::PeriodUnknown { needs });
    };
    let counted = state.payments_counted_until.is_some_and(|c| {
        event.occurred_at.millis() <= c.plus_seconds(SAME_PAYMENT_SECONDS).millis()
    });
    Ok((!counted).then(|| end.plus_seconds(interval)))
}

/// Apply one event to the stored state of its subscription (`None`: none stored yet).
/// Returns the new state, or `None` when the event changes nothing (a duplicate, an event
/// whose every field something newer already told, an event of another subscription or
/// without one, an `ignored` event). See the module doc for why the result does not depend
/// on delivery order.
pub fn apply_event(
    state: Option<&SubscriptionState>,
    event: &BillingEvent,
) -> Option<SubscriptionState> {
    use BillingEventKind as K;
    let snap = event.subscription.as_ref()?;
    if event.kind == K::Ignored || state.is_some_and(|s| s.external_id != snap.external_id) {
        return None;
    }
    let mut next = state
        .cloned()
        .unwrap_or_else(|| SubscriptionState::new(snap.external_id.clone()));
    let full = !snap.partial;
    let at = EventPosition::of(event, full);
    // What this event tells: the outer Option is "told", the inner the value.
    let told = |value: Option<Timestamp>| if full { Some(value) } else { value.map(Some) };
    let status = snap.status.or_else(|| implied_status(event.kind));
    let derived = derived_period_end(state, event).ok().flatten();
    let clock = &mut next.clock;

    lww(
        &mut next.customer_id,
        &mut clock.customer_id,
        event
            .customer
            .as_ref()
            .and_then(|c| c.external_id.clone())
            .map(Some),
        &at,
    );
    lww(&mut next.status, &mut clock.status, status.map(Some), &at);
    lww(
        &mut next.items,
        &mut clock.items,
        (!snap.items.is_empty()).then(|| normalized_items(&snap.items)),
        &at,
    );
    lww(
        &mut next.current_period_end,
        &mut clock.current_period_end,
        told(snap.current_period_end.or(derived)),
        &at,
    );
    lww(
        &mut next.billing_interval_seconds,
        &mut clock.billing_interval,
        event.billing_interval_seconds.map(Some),
        &at,
    );
    let counted = event
        .last_payment_at
        .into_iter()
        .chain(derived.map(|_| event.occurred_at))
        .max();
    if counted.is_some() {
        next.payments_counted_until = next.payments_counted_until.max(counted);
    }
    let cancel_at_period_end = if full {
        Some(snap.cancel_at_period_end)
    } else if event.kind == K::SubscriptionCancelScheduled {
        Some(true)
    } else {
        None
    };
    lww(
        &mut next.cancel_at_period_end,
        &mut clock.cancel_at_period_end,
        cancel_at_period_end,
        &at,
    );
    lww(
        &mut next.cancel_at,
        &mut clock.cancel_at,
        told(snap.cancel_at),
        &at,
    );
    lww(
        &mut next.ended_at,
        &mut clock.ended_at,
        told(snap.ended_at),
        &at,
    );
    lww(
        &mut next.trial_end,
        &mut clock.trial_end,
        told(snap.trial_end),
        &at,
    );

    // Sticky facts.
    if matches!(event.kind, K::Refunded | K::Chargeback) {
        next.revoked_at = earliest(next.revoked_at, event.occurred_at);
    }
    let entitled = match status {
        Some(s) => matches!(
            s,
            SubscriptionStatus::Active | SubscriptionStatus::Trialing | SubscriptionStatus::PastDue
        ),
        None => matches!(
            event.kind,
            K::SubscriptionActivated | K::SubscriptionRenewed | K::PaymentRecovered
        ),
    };
    next.ever_entitled |= entitled;
    for order in event.order_ids() {
        if let Err(index) = next.order_ids.binary_search_by(|o| o.as_str().cmp(order)) {
            next.order_ids.insert(index, order.to_owned());
        }
    }

    // Payment outcomes.
    let signal = match event.kind {
        K::PaymentFailed => Some(true),
        K::PaymentRecovered | K::SubscriptionRenewed | K::SubscriptionActivated => Some(false),
        _ => match status {
            Some(SubscriptionStatus::PastDue | SubscriptionStatus::Unpaid) => Some(true),
            Some(SubscriptionStatus::Active | SubscriptionStatus::Trialing) => Some(false),
            _ => None,
        },
    };
    if let Some(failed) = signal {
        let payments = &mut next.clock.payments;
        let newest_ok = payments.iter().rev().find(|p| !p.failed).map(|p| &p.at);
        let relevant = newest_ok.is_none_or(|ok| at > *ok);
        if relevant && let Err(index) = payments.binary_search_by(|p| p.at.cmp(&at)) {
            payments.insert(index, PaymentSignal { at, failed });
            if let Some(last_ok) = payments.iter().rposition(|p| !p.failed) {
                payments.drain(..last_ok);
            }
        }
        next.payment_failed_at = payments.iter().find(|p| p.failed).map(|p| p.at.occurred_at);
    }

    next.last_event_at = next.last_event_at.max(Some(event.occurred_at));
    next.ordering_version = next.ordering_version.max(event.ordering_version);

    match state {
        Some(before) if *before == next => None,
        _ => Some(next),
    }
}

/// When the subscription's unrecovered payment failure began (for validation).
pub fn payment_failed_at(state: &SubscriptionState) -> Option<Timestamp> {
    state.payment_failed_at
}

/// What validation needs to know about the subscription's payments
/// (`ValidationFacts::payment`, see [`crate::validation::decide`]).
pub fn payment_facts(state: &SubscriptionState, options: &IntegrationOptions) -> PaymentFacts {
    PaymentFacts {
        payment_failed_at: payment_failed_at(state),
        grace_seconds: options.grace_seconds,
    }
}

/// The end of the current period: `current_period_end`, or `trial_end` while trialing.
pub fn period_end(state: &SubscriptionState) -> Option<Timestamp> {
    state.current_period_end.or(match state.status {
        Some(SubscriptionStatus::Trialing) => state.trial_end,
        _ => None,
    })
}

/// The paid-through date: the period end, capped by a scheduled cancellation.
pub fn paid_through(state: &SubscriptionState) -> Option<Timestamp> {
    match (period_end(state), state.cancel_at) {
        (Some(end), Some(cancel)) => Some(end.min(cancel)),
        (end, cancel) => end.or(cancel),
    }
}

/// The license status the subscription implies (`None`: leave it as it is).
pub fn desired_status(state: &SubscriptionState) -> Option<LicenseStatus> {
    if state.revoked_at.is_some() {
        return Some(LicenseStatus::Revoked);
    }
    match state.status? {
        SubscriptionStatus::Active | SubscriptionStatus::Trialing | SubscriptionStatus::PastDue => {
            Some(LicenseStatus::Active)
        }
        SubscriptionStatus::Paused | SubscriptionStatus::Unpaid => Some(LicenseStatus::Suspended),
        SubscriptionStatus::Canceled => {
            let natural_end = matches!(
                (state.ended_at, paid_through(state)),
                (Some(ended), Some(paid)) if ended >= paid
            );
            (!natural_end).then_some(LicenseStatus::Suspended)
        }
        SubscriptionStatus::Incomplete => None,
    }
}

/// A license of the subscription (or order) as the store has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExistingLicense {
    pub id: String,
    pub policy_id: String,
    pub status: LicenseStatus,
    pub expires_at: Option<Timestamp>,
    pub quantity: Option<i64>,
    /// The billing item (or order line) id the license was issued for.
    pub item_external_id: Option<String>,
    /// The period end the license was issued in (`new_license` keys on it).
    pub period_end: Option<Timestamp>,
    /// The order line the license was issued for ([`BillingItem::line_id`]).
    #[serde(default)]
    pub line_id: Option<String>,
}

/// One change to bring a license to its desired state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum LicenseChange {
    /// Issue a license. `expires_at: None` = from the policy (its trial or duration, or
    /// perpetual); `status` other than active when the subscription is already
    /// suspended/revoked by the time it is first reconciled. Record `item_external_id` and
    /// `period_end` on the license: the next plan matches on them.
    Create {
        policy_id: String,
        item_external_id: String,
        quantity: i64,
        expires_at: Option<Timestamp>,
        period_end: Option<Timestamp>,
        status: LicenseStatus,
        /// The order line it is issued for, where the platform identifies lines.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        line_id: Option<String>,
    },
    SetExpiry {
        license_id: String,
        expires_at: Timestamp,
    },
    /// A plan change: the same license (same key) now has this policy (and its product) and
    /// belongs to this item.
    ChangePolicy {
        license_id: String,
        policy_id: String,
        item_external_id: String,
    },
    SetQuantity {
        license_id: String,
        quantity: i64,
    },
    Suspend {
        license_id: String,
    },
    Reinstate {
        license_id: String,
    },
    Revoke {
        license_id: String,
    },
}

impl LicenseChange {
    /// The license the change is about (`None` for a creation).
    pub fn license_id(&self) -> Option<&str> {
        match self {
            LicenseChange::Create { .. } => None,
            LicenseChange::SetExpiry { license_id, .. }
            | LicenseChange::ChangePolicy { license_id, .. }
            | LicenseChange::SetQuantity { license_id, .. }
            | LicenseChange::Suspend { license_id }
            | LicenseChange::Reinstate { license_id }
            | LicenseChange::Revoke { license_id } => Some(license_id),
        }
    }
}

/// Why a plan could not be made; the event is left `failed` with [`ReconcileError::code`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReconcileError {
    #[error(
        "no mapping for the billing item `{external_id}`; add one to the integration, then replay the event"
    )]
    NoMapping { external_id: String },
    #[error("the mapping of `{external_id}` names the unknown policy `{policy_id}`")]
    UnknownPolicy {
        external_id: String,
        policy_id: String,
    },
    /// A quantity that cannot be a number of seats: refused rather than clamped, so no
    /// license gets seats the customer did not buy, and the reason stays on the event.
    #[error(
        "the billing item `{external_id}` has quantity {quantity}: a quantity must be 1 to {max}",
        max = crate::limits::MAX_QUANTITY
    )]
    InvalidQuantity { external_id: String, quantity: i64 },
    /// A renewal payment without its period, and no known paid-through date and billing
    /// interval to derive it from.
    #[error(
        "the renewal payment carries no period and Keygate knows no paid-through date and billing interval to derive it from; {}, then replay the event",
        match needs {
            MissingPeriod::ApiCredentials => "configure the integration's api_credentials (or wait for the platform's next subscription event)",
            MissingPeriod::WebhookExpansion => "enable Webhook Expansion on the platform's webhook",
        }
    )]
    PeriodUnknown { needs: MissingPeriod },
}

impl ReconcileError {
    pub fn code(&self) -> &'static str {
        match self {
            ReconcileError::NoMapping { .. } => "NO_MAPPING",
            ReconcileError::UnknownPolicy { .. } => "POLICY_NOT_FOUND",
            ReconcileError::InvalidQuantity { .. } => "INVALID_QUANTITY",
            ReconcileError::PeriodUnknown { needs } => needs.code(),
        }
    }
}

/// The items no mapping names: skipped by the plan (an add-on, a one-time or prorated charge
/// the vendor does not license), listed in the event's actions as `UNMAPPED_ITEM`. The plan
/// fails with `NO_MAPPING` only when no item maps.
pub fn unmapped_items<'a>(items: &'a [BillingItem], mappings: &[Mapping]) -> Vec<&'a BillingItem> {
    items
        .iter()
        .filter(|item| mapped_id(item, mappings).is_none())
        .collect()
}

/// The first of the item's candidate ids a mapping names ([`BillingItem::candidate_ids`]).
fn mapped_id<'a>(item: &'a BillingItem, mappings: &[Mapping]) -> Option<&'a str> {
    item.mapped_id(|id| mappings.iter().any(|m| m.external_id == id))
}

/// The items as the plan sees them: each one's `external_id` is the candidate id its mapping
/// names (unmapped items keep theirs), so licenses record, and are matched on, the id that
/// mapped.
fn effective_items(items: &[BillingItem], mappings: &[Mapping]) -> Vec<BillingItem> {
    items
        .iter()
        .map(|item| match mapped_id(item, mappings) {
            Some(id) if id != item.external_id => BillingItem {
                external_id: id.to_owned(),
                fallback_ids: Vec::new(),
                ..item.clone()
            },
            _ => item.clone(),
        })
        .collect()
}

/// Every mapped item with its policy (unmapped ones skipped, see [`unmapped_items`]); an
/// error when items exist but none maps, or a mapped item's quantity is out of range or its
/// policy unknown (no partial plans).
fn resolve<'a>(
    items: &'a [BillingItem],
    policies: &'a HashMap<String, Policy>,
    mappings: &[Mapping],
) -> Result<Vec<(&'a BillingItem, &'a Policy)>, ReconcileError> {
    let unmapped = unmapped_items(items, mappings);
    if let Some(first) = unmapped.first()
        && unmapped.len() == items.len()
    {
        return Err(ReconcileError::NoMapping {
            external_id: first.external_id.clone(),
        });
    }
    items
        .iter()
        .filter(|item| mappings.iter().any(|m| m.external_id == item.external_id))
        .map(|item| {
            if !(1..=crate::limits::MAX_QUANTITY).contains(&item.quantity) {
                return Err(ReconcileError::InvalidQuantity {
                    external_id: item.external_id.clone(),
                    quantity: item.quantity,
                });
            }
            let mapping = mappings
                .iter()
                .find(|m| m.external_id == item.external_id)
                .ok_or_else(|| ReconcileError::NoMapping {
                    external_id: item.external_id.clone(),
                })?;
            let policy =
                policies
                    .get(&mapping.policy_id)
                    .ok_or_else(|| ReconcileError::UnknownPolicy {
                        external_id: item.external_id.clone(),
                        policy_id: mapping.policy_id.clone(),
                    })?;
            Ok((item, policy))
        })
        .collect()
}

/// The changes that move one license to its desired state. A revoked license is never
/// reinstated, but its other fields still follow the subscription.
fn update_license(
    license: &ExistingLicense,
    target: Option<(&BillingItem, &Policy)>,
    expires_at: Option<Timestamp>,
    status: Option<LicenseStatus>,
    out: &mut Vec<LicenseChange>,
) {
    let id = || license.id.clone();
    if let Some((item, policy)) = target {
        if license.policy_id != policy.id
            || license.item_external_id.as_deref() != Some(item.external_id.as_str())
        {
            out.push(LicenseChange::ChangePolicy {
                license_id: id(),
                policy_id: policy.id.clone(),
                item_external_id: item.external_id.clone(),
            });
        }
        if license.quantity != Some(item.quantity) {
            out.push(LicenseChange::SetQuantity {
                license_id: id(),
                quantity: item.quantity,
            });
        }
        if policy.expiry == ExpiryKind::Subscription
            && let Some(expires_at) = expires_at
            && license.expires_at != Some(expires_at)
        {
            out.push(LicenseChange::SetExpiry {
                license_id: id(),
                expires_at,
            });
        }
    }
    match (license.status, status) {
        (LicenseStatus::Revoked, _) | (_, None) => {}
        (_, Some(LicenseStatus::Revoked)) => out.push(LicenseChange::Revoke { license_id: id() }),
        (LicenseStatus::Active, Some(LicenseStatus::Suspended)) => {
            out.push(LicenseChange::Suspend { license_id: id() })
        }
        (LicenseStatus::Suspended, Some(LicenseStatus::Active)) => {
            out.push(LicenseChange::Reinstate { license_id: id() })
        }
        _ => {}
    }
}

/// The license changes that bring `licenses` (every license of this subscription) to the
/// state `state` implies. Empty when they are already there, so planning again after the
/// changes are applied returns nothing. `now` is accepted for future time-based rules; the
/// plan does not depend on it today (time-based outcomes — expiry, payment grace — are
/// decided at validation time), which keeps replays reproducible.
pub fn plan(
    state: &SubscriptionState,
    licenses: &[ExistingLicense],
    policies: &HashMap<String, Policy>,
    mappings: &[Mapping],
    options: &IntegrationOptions,
    _now: Timestamp,
) -> Result<Vec<LicenseChange>, ReconcileError> {
    let items = effective_items(&state.items, mappings);
    let slots = resolve(&items, policies, mappings)?;
    let status = desired_status(state);
    let expires_at = paid_through(state);
    let period = period_end(state);
    let new_license = options.renewal == RenewalMode::NewLicense;

    // The licenses the current items are matched with: all of them (`extend`), or the ones
    // of the current period (`new_license`; older periods' licenses only follow the status).
    let in_pool = |l: &ExistingLicense| !new_license || l.period_end == period;
    let mut used = vec![false; licenses.len()];
    let mut matched: Vec<Option<usize>> = vec![None; slots.len()];

    // 1. The license issued for the same item (the best one, if several).
    for (slot, (item, _)) in slots.iter().enumerate() {
        let best = licenses
            .iter()
            .enumerate()
            .filter(|(i, l)| {
                !used[*i]
                    && in_pool(l)
                    && l.item_external_id.as_deref() == Some(item.external_id.as_str())
            })
            .max_by_key(|(_, l)| {
                (
                    l.status != LicenseStatus::Revoked,
                    l.period_end,
                    l.expires_at,
                    &l.id,
                )
            })
            .map(|(i, _)| i);
        if let Some(i) = best {
            used[i] = true;
            matched[slot] = Some(i);
        }
    }
    // 2. Plan changes: a license whose item left the subscription goes to a new item,
    //    preferring one whose policy is of the same product.
    // A license whose item is still on the subscription is no orphan, mapped or not (its
    // mapping may have been removed): it only follows the status.
    let is_orphan = |l: &ExistingLicense| {
        in_pool(l)
            && !items
                .iter()
                .any(|item| l.item_external_id.as_deref() == Some(item.external_id.as_str()))
    };
    let mut orphans: Vec<usize> = (0..licenses.len())
        .filter(|&i| !used[i] && is_orphan(&licenses[i]))
        .collect();
    orphans.sort_by(|&a, &b| licenses[a].id.cmp(&licenses[b].id));
    for same_product_only in [true, false] {
        for (slot, (_, policy)) in slots.iter().enumerate() {
            if matched[slot].is_some() {
                continue;
            }
            let found = orphans.iter().copied().find(|&i| {
                !used[i]
                    && (!same_product_only
                        || policies
                            .get(&licenses[i].policy_id)
                            .is_some_and(|p| p.product_id == policy.product_id))
            });
            if let Some(i) = found {
                used[i] = true;
                matched[slot] = Some(i);
            }
        }
    }

    let mut changes = Vec::new();
    for (slot, (item, policy)) in slots.iter().enumerate() {
        match matched[slot] {
            Some(i) => update_license(
                &licenses[i],
                Some((item, policy)),
                expires_at,
                status,
                &mut changes,
            ),
            None => {
                let issue = state.ever_entitled
                    && (!new_license
                        || (matches!(
                            state.status,
                            Some(SubscriptionStatus::Active | SubscriptionStatus::Trialing)
                        ) && state.payment_failed_at.is_none()
                            && state.revoked_at.is_none())
                        // Converge when the first events seen already ended the subscription.
                        || !licenses.iter().any(|l| {
                            l.item_external_id.as_deref() == Some(item.external_id.as_str())
                        }));
                if issue {
                    changes.push(LicenseChange::Create {
                        policy_id: policy.id.clone(),
                        item_external_id: item.external_id.clone(),
                        quantity: item.quantity,
                        expires_at: match policy.expiry {
                            ExpiryKind::Subscription => expires_at,
                            ExpiryKind::Fixed => None,
                        },
                        period_end: period,
                        status: status.unwrap_or(LicenseStatus::Active),
                        line_id: None,
                    });
                }
            }
        }
    }
    // The rest only follow the subscription's status; a license whose item left the
    // subscription is suspended.
    let mut rest: Vec<usize> = (0..licenses.len()).filter(|&i| !used[i]).collect();
    rest.sort_by(|&a, &b| licenses[a].id.cmp(&licenses[b].id));
    for i in rest {
        let license = &licenses[i];
        let status = match status {
            Some(LicenseStatus::Active) if !slots.is_empty() && is_orphan(license) => {
                Some(LicenseStatus::Suspended)
            }
            other => other,
        };
        update_license(license, None, None, status, &mut changes);
    }
    Ok(changes)
}

/// Keygate's stored copy of a one-time order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderState {
    pub external_id: String,
    #[serde(default)]
    pub customer_id: Option<String>,
    #[serde(default)]
    pub lines: Vec<BillingItem>,
    /// The first "paid" seen.
    #[serde(default)]
    pub paid_at: Option<Timestamp>,
    /// The first refund / chargeback / cancellation of the whole order seen: the order's
    /// licenses are revoked.
    #[serde(default)]
    pub revoked_at: Option<Timestamp>,
    #[serde(default)]
    pub lines_told_by: Option<EventPosition>,
    /// Every line a line-level refund or chargeback named ([`reversed_lines`]), one entry per
    /// event and line, sorted: a set, so duplicates and delivery order do not matter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub line_reversals: Vec<LineReversal>,
}

/// One line of a line-level refund or chargeback.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LineReversal {
    pub line_id: String,
    /// The event that told it: a refund delivered twice counts once.
    pub event_id: String,
    pub at: Timestamp,
    /// The refunded quantity of the line; `None` = all of it (a chargeback).
    #[serde(default)]
    pub quantity: Option<i64>,
}

/// Apply an order event (`order_paid`, `refunded`, `chargeback`) to the stored order
/// (`None`: none yet). Returns the new state, or `None` when nothing changed. Like
/// [`apply_event`], the result does not depend on delivery order: a refund that arrives
/// before the payment still revokes. A refund or chargeback whose lines carry line ids
/// ([`reversed_lines`]) is recorded per line (`line_reversals`) and reaches only those lines'
/// licenses; one naming no lines is about the whole order (`revoked_at`).
pub fn apply_order_event(state: Option<&OrderState>, event: &BillingEvent) -> Option<OrderState> {
    use BillingEventKind as K;
    let order = event.order.as_ref()?;
    // The stored order may be known by another of the ids the event gives it (its aliases).
    let same = |s: &OrderState| event.order_ids().any(|id| id == s.external_id);
    if !matches!(event.kind, K::OrderPaid | K::Refunded | K::Chargeback)
        || state.is_some_and(|s| !same(s))
    {
        return None;
    }
    let mut next = state.cloned().unwrap_or_else(|| OrderState {
        external_id: order.external_id.clone(),
        customer_id: None,
        lines: Vec::new(),
        paid_at: None,
        revoked_at: None,
        lines_told_by: None,
        line_reversals: Vec::new(),
    });
    if event.kind == K::OrderPaid {
        next.paid_at = earliest(next.paid_at, event.occurred_at);
        let at = EventPosition::of(event, true);
        lww(
            &mut next.lines,
            &mut next.lines_told_by,
            (!order.lines.is_empty()).then(|| order.lines.clone()),
            &at,
        );
        if next.customer_id.is_none() {
            next.customer_id = event.customer.as_ref().and_then(|c| c.external_id.clone());
        }
    } else if let Some(lines) = reversed_lines(event) {
        for line in lines {
            let reversal = LineReversal {
                line_id: line.line_id.clone().unwrap_or_default(),
                event_id: event.event_id.clone(),
                at: event.occurred_at,
                quantity: (event.kind == K::Refunded).then_some(line.quantity),
            };
            let found = next.line_reversals.binary_search_by(|r| {
                (&r.line_id, &r.event_id).cmp(&(&reversal.line_id, &reversal.event_id))
            });
            if let Err(index) = found {
                next.line_reversals.insert(index, reversal);
            }
        }
    } else {
        next.revoked_at = earliest(next.revoked_at, event.occurred_at);
    }
    match state {
        Some(before) if *before == next => None,
        _ => Some(next),
    }
}

/// What the line-level reversals of an order leave of one line, under `options.refunds`:
/// `None` = revoked; `Some(seats)` otherwise (the line's quantity, less what was refunded
/// under `full`).
fn line_remaining(state: &OrderState, line: &BillingItem, refunds: RefundPolicy) -> Option<i64> {
    let Some(line_id) = line.line_id.as_deref() else {
        return Some(line.quantity);
    };
    let reversals = state.line_reversals.iter().filter(|r| r.line_id == line_id);
    let mut refunded: i64 = 0;
    let mut any = false;
    for r in reversals {
        any = true;
        match r.quantity {
            None => return None,
            Some(q) => refunded = refunded.saturating_add(q.max(0)),
        }
    }
    match refunds {
        RefundPolicy::Never => Some(line.quantity),
        RefundPolicy::Any if any => None,
        RefundPolicy::Any => Some(line.quantity),
        // A line refunded without a quantity (0) counts as all of it.
        RefundPolicy::Full if any && (refunded == 0 || refunded >= line.quantity) => None,
        RefundPolicy::Full => Some(line.quantity - refunded),
    }
}

/// The license changes for a one-time order, given the licenses already issued for it: a
/// license per mapped line (quantity = seats; `expires_at: None` = from the policy), lines
/// already fulfilled skipped (a line id bought on several lines gets as many licenses);
/// a refunded order's licenses revoked (created revoked if the refund came first).
///
/// Lines with a `line_id` are matched with the license issued for that line id. A line-level
/// refund revokes that line's license only; under `options.refunds: full` a refund of part of
/// a line's quantity reduces its seats instead (`SetQuantity`), and the rest of the line is
/// revoked once all of it is refunded; under `any` any refund of the line revokes it.
pub fn plan_order(
    state: &OrderState,
    licenses: &[ExistingLicense],
    policies: &HashMap<String, Policy>,
    mappings: &[Mapping],
    options: &IntegrationOptions,
) -> Result<Vec<LicenseChange>, ReconcileError> {
    let items = effective_items(&state.lines, mappings);
    let lines = resolve(&items, policies, mappings)?;
    let whole_revoked = state.revoked_at.is_some();
    let mut changes = Vec::new();
    let mut used = vec![false; licenses.len()];
    if state.paid_at.is_some() {
        let mut issued: HashMap<&str, usize> = HashMap::new();
        for license in licenses.iter().filter(|l| l.line_id.is_none()) {
            if let Some(item) = &license.item_external_id {
                *issued.entry(item.as_str()).or_default() += 1;
            }
        }
        for (line, policy) in lines {
            let remaining = line_remaining(state, line, options.refunds);
            let status = if whole_revoked || remaining.is_none() {
                LicenseStatus::Revoked
            } else {
                LicenseStatus::Active
            };
            if let Some(line_id) = line.line_id.as_deref() {
                let found = licenses
                    .iter()
                    .enumerate()
                    .find(|(i, l)| !used[*i] && l.line_id.as_deref() == Some(line_id));
                if let Some((i, license)) = found {
                    used[i] = true;
                    let refunded = state.line_reversals.iter().any(|r| r.line_id == line_id);
                    // Seats follow the refunds even on a revoked license, so the end state
                    // does not depend on whether the whole-order refund came first.
                    if let Some(seats) = remaining
                        && refunded
                        && license.quantity != Some(seats)
                    {
                        changes.push(LicenseChange::SetQuantity {
                            license_id: license.id.clone(),
                            quantity: seats,
                        });
                    }
                    update_license(license, None, None, Some(status), &mut changes);
                    continue;
                }
                changes.push(LicenseChange::Create {
                    policy_id: policy.id.clone(),
                    item_external_id: line.external_id.clone(),
                    quantity: remaining.unwrap_or(line.quantity),
                    expires_at: None,
                    period_end: None,
                    status,
                    line_id: Some(line_id.to_owned()),
                });
                continue;
            }
            match issued.get_mut(line.external_id.as_str()) {
                Some(n) if *n > 0 => *n -= 1,
                _ => changes.push(LicenseChange::Create {
                    policy_id: policy.id.clone(),
                    item_external_id: line.external_id.clone(),
                    quantity: line.quantity,
                    expires_at: None,
                    period_end: None,
                    status,
                    line_id: None,
                }),
            }
        }
    }
    if whole_revoked {
        for (i, license) in licenses.iter().enumerate() {
            if !used[i] {
                update_license(
                    license,
                    None,
                    None,
                    Some(LicenseStatus::Revoked),
                    &mut changes,
                );
            }
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::{CustomerRef, OrderRef, SubscriptionSnapshot};
    use crate::license::tests::{license as base_license, policy as base_policy};
    use crate::validation::{ValidationCode, ValidationFacts, ValidationRequest, decide};
    use BillingEventKind as K;
    use SubscriptionStatus as S;

    const DAY: i64 = 86_400;
    const GRACE_DAYS: i64 = 3;

    fn t(day: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_700_000_000 + day * DAY)
    }

    fn pol(id: &str, product: &str, expiry: ExpiryKind) -> Policy {
        Policy {
            id: id.into(),
            product_id: product.into(),
            expiry,
            grace_seconds: GRACE_DAYS * DAY,
            duration_seconds: (expiry == ExpiryKind::Fixed).then_some(365 * DAY),
            seats_from_quantity: true,
            max_activations: Some(1),
            ..base_policy()
        }
    }

    fn policies() -> HashMap<String, Policy> {
        [
            pol("basic", "app", ExpiryKind::Subscription),
            pol("pro", "app", ExpiryKind::Subscription),
            pol("addon", "addon", ExpiryKind::Subscription),
            pol("yearly", "app", ExpiryKind::Fixed),
        ]
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect()
    }

    fn mappings() -> Vec<Mapping> {
        [
            ("price_basic", "basic"),
            ("price_pro", "pro"),
            ("price_addon", "addon"),
            ("price_yearly", "yearly"),
            ("sku_1", "yearly"),
            ("sku_2", "addon"),
        ]
        .into_iter()
        .map(|(e, p)| Mapping {
            external_id: e.into(),
            policy_id: p.into(),
        })
        .collect()
    }

    fn item(id: &str, quantity: i64) -> BillingItem {
        BillingItem::new(id, quantity)
    }

    fn full(
        status: SubscriptionStatus,
        items: &[(&str, i64)],
        period_end: i64,
    ) -> SubscriptionSnapshot {
        SubscriptionSnapshot {
            items: items.iter().map(|(id, q)| item(id, *q)).collect(),
            status: Some(status),
            current_period_end: Some(t(period_end)),
            partial: false,
            ..SubscriptionSnapshot::partial("sub_1")
        }
    }

    fn partial(
        status: Option<SubscriptionStatus>,
        period_end: Option<i64>,
    ) -> SubscriptionSnapshot {
        SubscriptionSnapshot {
            status,
            current_period_end: period_end.map(t),
            ..SubscriptionSnapshot::partial("sub_1")
        }
    }

    fn ev(id: &str, kind: BillingEventKind, day: i64, snap: SubscriptionSnapshot) -> BillingEvent {
        BillingEvent {
            subscription: Some(snap),
            customer: Some(CustomerRef {
                external_id: Some("cus_1".into()),
                ..Default::default()
            }),
            ..BillingEvent::new(id, "test", kind, t(day))
        }
    }

    fn activated(items: &[(&str, i64)]) -> BillingEvent {
        ev(
            "e_act",
            K::SubscriptionActivated,
            0,
            full(S::Active, items, 30),
        )
    }

    /// Apply plan changes the way the store would (expiry of a `fixed` license: left unset).
    fn apply_changes(licenses: &mut Vec<ExistingLicense>, changes: &[LicenseChange]) {
        for change in changes {
            if let LicenseChange::Create {
                policy_id,
                item_external_id,
                quantity,
                expires_at,
                period_end,
                status,
                line_id,
            } = change
            {
                licenses.push(ExistingLicense {
                    id: format!("lic_{}", licenses.len() + 1),
                    policy_id: policy_id.clone(),
                    status: *status,
                    expires_at: *expires_at,
                    quantity: Some(*quantity),
                    item_external_id: Some(item_external_id.clone()),
                    period_end: *period_end,
                    line_id: line_id.clone(),
                });
                continue;
            }
            let id = change.license_id().unwrap();
            let l = licenses.iter_mut().find(|l| l.id == id).unwrap();
            match change {
                LicenseChange::SetExpiry { expires_at, .. } => l.expires_at = Some(*expires_at),
                LicenseChange::ChangePolicy {
                    policy_id,
                    item_external_id,
                    ..
                } => {
                    l.policy_id = policy_id.clone();
                    l.item_external_id = Some(item_external_id.clone());
                }
                LicenseChange::SetQuantity { quantity, .. } => l.quantity = Some(*quantity),
                LicenseChange::Suspend { .. } => {
                    assert_eq!(l.status, LicenseStatus::Active);
                    l.status = LicenseStatus::Suspended
                }
                LicenseChange::Reinstate { .. } => {
                    assert_eq!(l.status, LicenseStatus::Suspended);
                    l.status = LicenseStatus::Active
                }
                LicenseChange::Revoke { .. } => {
                    assert_ne!(l.status, LicenseStatus::Revoked);
                    l.status = LicenseStatus::Revoked
                }
                LicenseChange::Create { .. } => unreachable!(),
            }
        }
    }

    /// A subscription and its licenses as the gateway would keep them.
    struct World {
        state: Option<SubscriptionState>,
        licenses: Vec<ExistingLicense>,
        options: IntegrationOptions,
        mappings: Vec<Mapping>,
    }

    impl World {
        fn new(renewal: RenewalMode) -> Self {
            World {
                state: None,
                licenses: Vec::new(),
                options: IntegrationOptions {
                    renewal,
                    ..IntegrationOptions::default()
                },
                mappings: mappings(),
            }
        }

        fn plan(&self) -> Result<Vec<LicenseChange>, ReconcileError> {
            plan(
                self.state.as_ref().unwrap(),
                &self.licenses,
                &policies(),
                &self.mappings,
                &self.options,
                t(0),
            )
        }

        /// Apply the event, plan, apply the plan; check that planning again changes nothing.
        fn deliver(&mut self, event: &BillingEvent) -> Result<Vec<LicenseChange>, ReconcileError> {
            let changed = apply_event(self.state.as_ref(), event);
            let unchanged = changed.is_none();
            if let Some(next) = changed {
                self.state = Some(next);
            }
            let changes = self.plan()?;
            if unchanged {
                assert_eq!(
                    changes,
                    vec![],
                    "an event that changed nothing changes no license"
                );
            }
            apply_changes(&mut self.licenses, &changes);
            assert_eq!(
                self.plan()?,
                vec![],
                "applying the plan reconciles: idempotent"
            );
            // And delivering the very same event again is a no-op.
            assert_eq!(apply_event(self.state.as_ref(), event), None, "duplicate");
            Ok(changes)
        }

        fn ok(&mut self, event: &BillingEvent) -> Vec<LicenseChange> {
            self.deliver(event).unwrap()
        }

        fn state(&self) -> &SubscriptionState {
            self.state.as_ref().unwrap()
        }

        fn license(&self, item: &str) -> &ExistingLicense {
            let mut found = self
                .licenses
                .iter()
                .filter(|l| l.item_external_id.as_deref() == Some(item));
            let first = found.next().unwrap();
            assert!(found.next().is_none(), "one license for {item}");
            first
        }

        /// The validation answer for a license at `now`, with the subscription's payments.
        fn validate(&self, id: &str, now: Timestamp) -> ValidationCode {
            let existing = self.licenses.iter().find(|l| l.id == id).unwrap();
            let policy = &policies()[&existing.policy_id];
            let license = crate::License {
                id: existing.id.clone(),
                policy_id: existing.policy_id.clone(),
                status: existing.status,
                expires_at: existing.expires_at,
                quantity: existing.quantity,
                ..base_license()
            };
            decide(
                &license,
                policy,
                &ValidationRequest::default(),
                &ValidationFacts {
                    payment: payment_facts(self.state(), &self.options),
                    ..Default::default()
                },
                now,
            )
        }
    }

    fn create(
        policy: &str,
        item: &str,
        quantity: i64,
        expires: Option<i64>,
        period: i64,
    ) -> LicenseChange {
        LicenseChange::Create {
            policy_id: policy.into(),
            item_external_id: item.into(),
            quantity,
            expires_at: expires.map(t),
            period_end: Some(t(period)),
            status: LicenseStatus::Active,
            line_id: None,
        }
    }

    #[test]
    fn customer_events_do_not_touch_subscriptions() {
        let event = BillingEvent::new("c1", "customer.created", K::CustomerUpserted, t(0));
        assert_eq!(apply_event(None, &event), None);
        let mut ignored = activated(&[("price_pro", 1)]);
        ignored.kind = K::Ignored;
        assert_eq!(apply_event(None, &ignored), None);
    }

    #[test]
    fn activation_creates_a_license_per_mapped_item() {
        let mut w = World::new(RenewalMode::Extend);
        let changes = w.ok(&activated(&[
            ("price_pro", 3),
            ("price_addon", 1),
            ("price_yearly", 1),
        ]));
        assert_eq!(
            changes,
            vec![
                create("pro", "price_pro", 3, Some(30), 30),
                create("addon", "price_addon", 1, Some(30), 30),
                // `fixed` policy: the expiry comes from the policy.
                create("yearly", "price_yearly", 1, None, 30),
            ]
        );
        assert_eq!(w.licenses.len(), 3);
        assert_eq!(w.state().customer_id.as_deref(), Some("cus_1"));
        let pro = w.license("price_pro").id.clone();
        assert_eq!(w.validate(&pro, t(29)), ValidationCode::Valid);
        assert_eq!(w.validate(&pro, t(30)), ValidationCode::GracePeriod);
        assert_eq!(
            w.validate(&pro, t(30 + GRACE_DAYS)),
            ValidationCode::Expired
        );
        // Seats come from the quantity on `seats_from_quantity` policies.
        let license = crate::License {
            quantity: w.license("price_pro").quantity,
            ..base_license()
        };
        assert_eq!(license.max_activations(&policies()["pro"]), Some(3));
    }

    #[test]
    fn incomplete_subscriptions_get_no_license() {
        let mut w = World::new(RenewalMode::Extend);
        let event = ev(
            "e1",
            K::SubscriptionUpdated,
            0,
            full(S::Incomplete, &[("price_pro", 1)], 30),
        );
        assert_eq!(w.ok(&event), vec![]);
        // Stripe's first-invoice failure is a payment failure of an incomplete subscription.
        let failed = ev(
            "e2",
            K::PaymentFailed,
            1,
            partial(Some(S::Incomplete), None),
        );
        assert_eq!(w.ok(&failed), vec![]);
        assert!(!w.state().ever_entitled);
        let paid = ev(
            "e3",
            K::SubscriptionActivated,
            2,
            full(S::Active, &[("price_pro", 1)], 32),
        );
        assert_eq!(
            w.ok(&paid),
            vec![create("pro", "price_pro", 1, Some(32), 32)]
        );
        assert_eq!(w.state().payment_failed_at, None);
    }

    #[test]
    fn trial_license_expires_with_the_trial() {
        let mut w = World::new(RenewalMode::Extend);
        let trial = SubscriptionSnapshot {
            current_period_end: None,
            trial_end: Some(t(14)),
            ..full(S::Trialing, &[("price_pro", 1), ("price_yearly", 1)], 0)
        };
        let changes = w.ok(&ev("e1", K::TrialStarted, 0, trial.clone()));
        assert_eq!(
            changes,
            vec![
                create("pro", "price_pro", 1, Some(14), 14),
                create("yearly", "price_yearly", 1, None, 14),
            ]
        );
        // Extended trial: the expiry follows.
        let extended = SubscriptionSnapshot {
            trial_end: Some(t(21)),
            ..trial
        };
        let id = w.license("price_pro").id.clone();
        assert_eq!(
            w.ok(&ev("e2", K::TrialStarted, 5, extended)),
            vec![LicenseChange::SetExpiry {
                license_id: id,
                expires_at: t(21)
            }]
        );
    }

    #[test]
    fn renewal_extend_moves_the_expiry_of_the_same_license() {
        let mut w = World::new(RenewalMode::Extend);
        w.ok(&activated(&[("price_pro", 1), ("price_yearly", 1)]));
        let pro = w.license("price_pro").id.clone();
        let renewed = ev("e_ren", K::SubscriptionRenewed, 30, partial(None, Some(60)));
        assert_eq!(
            w.ok(&renewed),
            vec![LicenseChange::SetExpiry {
                license_id: pro.clone(),
                expires_at: t(60)
            }]
        );
        assert_eq!(w.licenses.len(), 2, "no new license");
        assert_eq!(w.validate(&pro, t(45)), ValidationCode::Valid);
        // The platform's own subscription update for the same renewal changes nothing more.
        let update = ev(
            "e_upd",
            K::SubscriptionUpdated,
            30,
            full(S::Active, &[("price_pro", 1), ("price_yearly", 1)], 60),
        );
        assert_eq!(w.ok(&update), vec![]);
    }

    #[test]
    fn renewal_new_license_issues_once_per_period() {
        let mut w = World::new(RenewalMode::NewLicense);
        w.ok(&activated(&[("price_pro", 2)]));
        let first = w.licenses[0].clone();
        let renewed = ev("e_ren", K::SubscriptionRenewed, 30, partial(None, Some(60)));
        assert_eq!(
            w.ok(&renewed),
            vec![create("pro", "price_pro", 2, Some(60), 60)]
        );
        // Another event of the same period (different id) issues nothing.
        let update = ev(
            "e_upd",
            K::SubscriptionUpdated,
            31,
            full(S::Active, &[("price_pro", 2)], 60),
        );
        assert_eq!(w.ok(&update), vec![]);
        let again = ev(
            "e_ren_2",
            K::SubscriptionRenewed,
            32,
            partial(None, Some(60)),
        );
        assert_eq!(w.ok(&again), vec![]);
        assert_eq!(w.licenses.len(), 2);
        assert_eq!(
            w.licenses[0], first,
            "the old period's license is left alone"
        );
        // A quantity change in the period updates that period's license only.
        let seats = ev(
            "e_qty",
            K::SubscriptionUpdated,
            40,
            full(S::Active, &[("price_pro", 5)], 60),
        );
        assert_eq!(
            w.ok(&seats),
            vec![LicenseChange::SetQuantity {
                license_id: "lic_2".into(),
                quantity: 5
            }]
        );
        // No license for a period whose payment failed...
        let failed = ev(
            "e_fail",
            K::PaymentFailed,
            60,
            partial(Some(S::PastDue), Some(90)),
        );
        assert_eq!(w.ok(&failed), vec![]);
        // ...until it is paid, then exactly one.
        let paid = ev("e_rec", K::PaymentRecovered, 62, partial(None, Some(90)));
        assert_eq!(
            w.ok(&paid),
            vec![create("pro", "price_pro", 5, Some(90), 90)]
        );
        assert_eq!(w.licenses.len(), 3);
        // Cancelled now: every license of the subscription is suspended.
        let cancel = SubscriptionSnapshot {
            ended_at: Some(t(70)),
            ..full(S::Canceled, &[("price_pro", 5)], 90)
        };
        let changes = w.ok(&ev("e_can", K::SubscriptionCanceled, 70, cancel));
        assert_eq!(changes.len(), 3);
        assert!(
            w.licenses
                .iter()
                .all(|l| l.status == LicenseStatus::Suspended)
        );
    }

    #[test]
    fn plan_change_switches_the_policy_of_the_same_license() {
        let mut w = World::new(RenewalMode::Extend);
        w.ok(&activated(&[("price_basic", 1)]));
        let id = w.licenses[0].id.clone();
        let upgrade = ev(
            "e_up",
            K::SubscriptionUpdated,
            10,
            full(S::Active, &[("price_pro", 1)], 30),
        );
        assert_eq!(
            w.ok(&upgrade),
            vec![LicenseChange::ChangePolicy {
                license_id: id.clone(),
                policy_id: "pro".into(),
                item_external_id: "price_pro".into()
            }]
        );
        assert_eq!(w.licenses.len(), 1, "no new key");
        // The vendor remaps the price: same license again.
        w.mappings
            .iter_mut()
            .find(|m| m.external_id == "price_pro")
            .unwrap()
            .policy_id = "basic".into();
        assert_eq!(
            w.plan().unwrap(),
            vec![LicenseChange::ChangePolicy {
                license_id: id.clone(),
                policy_id: "basic".into(),
                item_external_id: "price_pro".into()
            }]
        );
        w.mappings = mappings();
        // An add-on is added: a license for it only; the plan's license stays.
        let addon = ev(
            "e_add",
            K::SubscriptionUpdated,
            11,
            full(S::Active, &[("price_pro", 1), ("price_addon", 2)], 30),
        );
        assert_eq!(
            w.ok(&addon),
            vec![create("addon", "price_addon", 2, Some(30), 30)]
        );
        // Downgrade and add-on removed at once: the app license follows, the add-on's is
        // suspended (its item is no longer paid for).
        let down = ev(
            "e_down",
            K::SubscriptionUpdated,
            12,
            full(S::Active, &[("price_basic", 1)], 30),
        );
        let addon_id = w.license("price_addon").id.clone();
        assert_eq!(
            w.ok(&down),
            vec![
                LicenseChange::ChangePolicy {
                    license_id: id.clone(),
                    policy_id: "basic".into(),
                    item_external_id: "price_basic".into()
                },
                LicenseChange::Suspend {
                    license_id: addon_id.clone()
                },
            ]
        );
        // The add-on comes back: the same license is reinstated, no new one.
        let back = ev(
            "e_back",
            K::SubscriptionUpdated,
            13,
            full(S::Active, &[("price_basic", 1), ("price_addon", 2)], 30),
        );
        assert_eq!(
            w.ok(&back),
            vec![LicenseChange::Reinstate {
                license_id: addon_id
            }]
        );
        assert_eq!(w.licenses.len(), 2);
    }

    #[test]
    fn quantity_change_sets_seats() {
        let mut w = World::new(RenewalMode::Extend);
        w.ok(&activated(&[("price_pro", 3)]));
        let id = w.licenses[0].id.clone();
        let fewer = ev(
            "e_qty",
            K::SubscriptionUpdated,
            5,
            full(S::Active, &[("price_pro", 1)], 30),
        );
        assert_eq!(
            w.ok(&fewer),
            vec![LicenseChange::SetQuantity {
                license_id: id,
                quantity: 1
            }]
        );
    }

    #[test]
    fn pause_suspends_and_resume_reinstates() {
        let mut w = World::new(RenewalMode::Extend);
        w.ok(&activated(&[("price_pro", 1)]));
        let id = w.licenses[0].id.clone();
        let pause = ev("e_p", K::SubscriptionPaused, 5, partial(None, None));
        assert_eq!(
            w.ok(&pause),
            vec![LicenseChange::Suspend {
                license_id: id.clone()
            }]
        );
        assert_eq!(w.validate(&id, t(6)), ValidationCode::Suspended);
        let resume = ev(
            "e_r",
            K::SubscriptionResumed,
            9,
            full(S::Active, &[("price_pro", 1)], 30),
        );
        assert_eq!(
            w.ok(&resume),
            vec![LicenseChange::Reinstate {
                license_id: id.clone()
            }]
        );
        assert_eq!(w.validate(&id, t(10)), ValidationCode::Valid);
    }

    #[test]
    fn cancel_at_period_end_keeps_the_license_until_the_paid_through_date() {
        let mut w = World::new(RenewalMode::Extend);
        w.ok(&activated(&[("price_pro", 1)]));
        let id = w.licenses[0].id.clone();
        let scheduled = SubscriptionSnapshot {
            cancel_at_period_end: true,
            cancel_at: Some(t(30)),
            ..full(S::Active, &[("price_pro", 1)], 30)
        };
        assert_eq!(
            w.ok(&ev("e_s", K::SubscriptionCancelScheduled, 10, scheduled)),
            vec![]
        );
        assert!(w.state().cancel_at_period_end);
        assert_eq!(w.validate(&id, t(29)), ValidationCode::Valid);
        // The platform ends it at the period end: no suspension, the license just expires.
        let ended = SubscriptionSnapshot {
            ended_at: Some(t(30)),
            cancel_at_period_end: true,
            ..full(S::Canceled, &[("price_pro", 1)], 30)
        };
        assert_eq!(
            w.ok(&ev("e_end", K::SubscriptionCanceled, 30, ended)),
            vec![]
        );
        assert_eq!(
            w.validate(&id, t(30).plus_seconds(-1)),
            ValidationCode::Valid
        );
        assert_eq!(w.validate(&id, t(30 + GRACE_DAYS)), ValidationCode::Expired);

        // A scheduled cancellation before the period end (Stripe `cancel_at`) caps the expiry.
        let mut w = World::new(RenewalMode::Extend);
        w.ok(&activated(&[("price_pro", 1)]));
        let early = SubscriptionSnapshot {
            cancel_at: Some(t(20)),
            ..full(S::Active, &[("price_pro", 1)], 30)
        };
        assert_eq!(
            w.ok(&ev("e_s", K::SubscriptionUpdated, 10, early)),
            vec![LicenseChange::SetExpiry {
                license_id: id.clone(),
                expires_at: t(20)
            }]
        );
        // A partial "cancel scheduled" (no flag in the snapshot) still tells the flag.
        let flag = ev(
            "e_f",
            K::SubscriptionCancelScheduled,
            11,
            partial(None, None),
        );
        assert_eq!(w.ok(&flag), vec![]);
        assert!(w.state().cancel_at_period_end);
    }

    #[test]
    fn immediate_cancel_suspends_now() {
        let mut w = World::new(RenewalMode::Extend);
        w.ok(&activated(&[("price_pro", 1)]));
        let id = w.licenses[0].id.clone();
        let now = SubscriptionSnapshot {
            ended_at: Some(t(10)),
            ..full(S::Canceled, &[("price_pro", 1)], 30)
        };
        assert_eq!(
            w.ok(&ev("e_c", K::SubscriptionCanceled, 10, now)),
            vec![LicenseChange::Suspend {
                license_id: id.clone()
            }]
        );
        assert_eq!(w.validate(&id, t(11)), ValidationCode::Suspended);

        // A partial cancellation without an end time also suspends.
        let mut w = World::new(RenewalMode::Extend);
        w.ok(&activated(&[("price_pro", 1)]));
        assert_eq!(
            w.ok(&ev("e_c", K::SubscriptionCanceled, 10, partial(None, None))),
            vec![LicenseChange::Suspend { license_id: id }]
        );
    }

    #[test]
    fn payment_failure_is_grace_then_suspended_and_recovery_reinstates() {
        let mut w = World::new(RenewalMode::Extend);
        w.ok(&activated(&[("price_pro", 1)]));
        let id = w.licenses[0].id.clone();
        // Stripe-like: the period moves on while the renewal payment is retried.
        let failed = ev(
            "e_f1",
            K::PaymentFailed,
            30,
            partial(Some(S::PastDue), Some(60)),
        );
        let changes = w.ok(&failed);
        assert!(
            changes
                .iter()
                .all(|c| matches!(c, LicenseChange::SetExpiry { .. })),
            "no status change: {changes:?}"
        );
        assert_eq!(payment_failed_at(w.state()), Some(t(30)));
        assert_eq!(w.validate(&id, t(31)), ValidationCode::GracePeriod);
        assert_eq!(
            w.validate(&id, t(30 + GRACE_DAYS).plus_seconds(-1)),
            ValidationCode::GracePeriod
        );
        assert_eq!(
            w.validate(&id, t(30 + GRACE_DAYS)),
            ValidationCode::Suspended
        );
        // A retry that fails again does not restart the grace.
        let retry = ev(
            "e_f2",
            K::PaymentFailed,
            32,
            partial(Some(S::PastDue), None),
        );
        assert_eq!(w.ok(&retry), vec![]);
        assert_eq!(payment_failed_at(w.state()), Some(t(30)));
        // The integration's grace override wins over the policy's.
        w.options.grace_seconds = Some(10 * DAY);
        assert_eq!(w.validate(&id, t(35)), ValidationCode::GracePeriod);
        w.options.grace_seconds = None;
        // Recovered: valid again.
        let recovered = ev("e_rec", K::PaymentRecovered, 35, partial(None, None));
        assert_eq!(w.ok(&recovered), vec![]);
        assert_eq!(payment_failed_at(w.state()), None);
        assert_eq!(w.validate(&id, t(36)), ValidationCode::Valid);
        // A late duplicate-ish failure from before the recovery does not bring grace back.
        let late = ev(
            "e_f0",
            K::PaymentFailed,
            31,
            partial(Some(S::PastDue), None),
        );
        assert_eq!(w.ok(&late), vec![]);
        assert_eq!(payment_failed_at(w.state()), None);
        // A new failure later starts a new grace.
        let again = ev(
            "e_f3",
            K::PaymentFailed,
            60,
            partial(Some(S::PastDue), None),
        );
        w.ok(&again);
        assert_eq!(payment_failed_at(w.state()), Some(t(60)));
        // Retries exhausted (unpaid): suspended by the plan; recovery reinstates.
        let unpaid = ev(
            "e_unp",
            K::SubscriptionUpdated,
            80,
            full(S::Unpaid, &[("price_pro", 1)], 60),
        );
        assert_eq!(
            w.ok(&unpaid),
            vec![LicenseChange::Suspend {
                license_id: id.clone()
            }]
        );
        let paid = ev("e_paid", K::PaymentRecovered, 81, partial(None, Some(90)));
        assert_eq!(
            w.ok(&paid),
            vec![
                LicenseChange::SetExpiry {
                    license_id: id.clone(),
                    expires_at: t(90)
                },
                LicenseChange::Reinstate {
                    license_id: id.clone()
                },
            ]
        );
        assert_eq!(w.validate(&id, t(82)), ValidationCode::Valid);
    }

    #[test]
    fn refund_and_chargeback_revoke_for_good() {
        for kind in [K::Refunded, K::Chargeback] {
            let mut w = World::new(RenewalMode::Extend);
            w.ok(&activated(&[("price_pro", 1), ("price_addon", 1)]));
            let pause = ev("e_p", K::SubscriptionPaused, 3, partial(None, None));
            w.ok(&pause);
            let refund = ev("e_ref", kind, 5, partial(None, None));
            assert_eq!(
                w.ok(&refund),
                vec![
                    LicenseChange::Revoke {
                        license_id: "lic_1".into()
                    },
                    LicenseChange::Revoke {
                        license_id: "lic_2".into()
                    },
                ]
            );
            assert_eq!(w.validate("lic_1", t(6)), ValidationCode::Revoked);
            // Nothing later brings it back.
            let renewed = ev("e_ren", K::SubscriptionRenewed, 30, partial(None, Some(60)));
            let changes = w.ok(&renewed);
            assert!(
                changes
                    .iter()
                    .all(|c| !matches!(c, LicenseChange::Reinstate { .. })),
                "{changes:?}"
            );
            assert!(
                w.licenses
                    .iter()
                    .all(|l| l.status == LicenseStatus::Revoked)
            );
        }
    }

    #[test]
    fn a_renewal_payment_without_its_period_extends_by_the_known_interval() {
        let sale = |id: &str, day: i64| BillingEvent {
            period_missing: Some(MissingPeriod::ApiCredentials),
            ..ev(
                id,
                K::SubscriptionRenewed,
                day,
                partial(Some(S::Active), None),
            )
        };
        // Nothing known yet: the event fails with what to configure, and changes nothing.
        let err = derived_period_end(None, &sale("e_s1", 30)).unwrap_err();
        assert_eq!(err.code(), "API_CREDENTIALS_REQUIRED");
        assert!(err.to_string().contains("api_credentials"), "{err}");
        let mut w = World::new(RenewalMode::Extend);
        let mut act = activated(&[("price_pro", 1)]);
        // Without an interval a period end alone is not enough.
        assert!(derived_period_end(apply_event(None, &act).as_ref(), &sale("e_s1", 30)).is_err());
        act.billing_interval_seconds = Some(30 * DAY);
        act.last_payment_at = Some(t(0));
        w.ok(&act);
        // The first payment, which the activation already counts: nothing derived.
        let first = BillingEvent {
            occurred_at: t(0).plus_seconds(5),
            ..sale("e_s0", 0)
        };
        assert_eq!(derived_period_end(w.state.as_ref(), &first), Ok(None));
        assert_eq!(w.ok(&first), vec![]);
        // The renewal payment: the known end plus one interval.
        assert_eq!(
            derived_period_end(w.state.as_ref(), &sale("e_s1", 30)),
            Ok(Some(t(60)))
        );
        assert_eq!(
            w.ok(&sale("e_s1", 30)),
            vec![LicenseChange::SetExpiry {
                license_id: "lic_1".into(),
                expires_at: t(60)
            }]
        );
        // Once per payment (deliver() checks the duplicate is a no-op); the next one goes on.
        assert_eq!(
            derived_period_end(w.state.as_ref(), &sale("e_s1", 30)),
            Ok(None)
        );
        w.ok(&sale("e_s2", 60));
        assert_eq!(w.state().current_period_end, Some(t(90)));
        // The next full snapshot is the truth.
        w.ok(&ev(
            "e_upd",
            K::SubscriptionUpdated,
            61,
            full(S::Active, &[("price_pro", 1)], 88),
        ));
        assert_eq!(w.state().current_period_end, Some(t(88)));
        assert_eq!(w.licenses[0].expires_at, Some(t(88)));
        // A sale older than that snapshot derives nothing over it.
        let late = sale("e_s_late", 59);
        let after = apply_event(w.state.as_ref(), &late);
        assert!(after.is_none_or(|s| s.current_period_end == Some(t(88))));
    }

    #[test]
    fn refund_naming_only_a_subscription_invoice_is_routable() {
        let mut w = World::new(RenewalMode::Extend);
        let mut paid = ev(
            "e_inv",
            K::SubscriptionRenewed,
            0,
            full(S::Active, &[("price_pro", 1)], 30),
        );
        paid.order = Some(OrderRef {
            external_id: "in_1".into(),
            lines: vec![],
        });
        w.ok(&paid);
        assert!(w.state().has_order("in_1"));
        assert!(!w.state().has_order("in_2"));
    }

    #[test]
    fn an_unmapped_item_is_skipped_and_only_no_mapping_at_all_fails() {
        // Only unmapped items: NO_MAPPING, nothing planned.
        let mut w = World::new(RenewalMode::Extend);
        let err = w.deliver(&activated(&[("price_unknown", 1)])).unwrap_err();
        assert_eq!(
            err,
            ReconcileError::NoMapping {
                external_id: "price_unknown".into()
            }
        );
        assert_eq!(err.code(), "NO_MAPPING");
        assert!(err.to_string().contains("price_unknown"));
        assert!(w.licenses.is_empty());

        // A mapped plan with an unmapped add-on / one-time charge: the plan is licensed, the
        // add-on skipped (and named, for the event's actions).
        let mut w = World::new(RenewalMode::Extend);
        let event = activated(&[("price_pro", 1), ("price_unknown", 3)]);
        let changes = w.ok(&event);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert!(matches!(
            &changes[0],
            LicenseChange::Create { item_external_id, .. } if item_external_id == "price_pro"
        ));
        let skipped = unmapped_items(&w.state().items, &w.mappings);
        assert_eq!(skipped, vec![&item("price_unknown", 3)]);
        // The vendor adds the mapping, the event is replayed: the add-on's license too.
        w.mappings.push(Mapping {
            external_id: "price_unknown".into(),
            policy_id: "addon".into(),
        });
        let changes = w.plan().unwrap();
        assert_eq!(changes.len(), 1);
        apply_changes(&mut w.licenses, &changes);
        // The mapping removed again: its license is not an orphan (the item is still there).
        w.mappings.pop();
        assert_eq!(w.plan().unwrap(), vec![]);
        // A mapping to a policy that does not exist is an error.
        w.mappings.push(Mapping {
            external_id: "price_unknown".into(),
            policy_id: "gone".into(),
        });
        let err = w.plan().unwrap_err();
        assert_eq!(err.code(), "POLICY_NOT_FOUND");
    }

    #[test]
    fn a_quantity_that_is_no_seat_count_fails_the_whole_plan() {
        for quantity in [0, -5, crate::limits::MAX_QUANTITY + 1, i64::MAX] {
            let mut w = World::new(RenewalMode::Extend);
            let err = w
                .deliver(&activated(&[("price_pro", quantity)]))
                .unwrap_err();
            assert_eq!(
                err,
                ReconcileError::InvalidQuantity {
                    external_id: "price_pro".into(),
                    quantity
                }
            );
            assert_eq!(err.code(), "INVALID_QUANTITY");
            assert!(err.to_string().contains(&quantity.to_string()), "{err}");
            assert!(w.licenses.is_empty(), "no license with {quantity} seats");
        }
        let mut w = World::new(RenewalMode::Extend);
        assert!(
            w.deliver(&activated(&[("price_pro", crate::limits::MAX_QUANTITY)]))
                .is_ok()
        );
    }

    #[test]
    fn one_time_orders_license_each_mapped_line_once() {
        let paid = BillingEvent {
            order: Some(OrderRef {
                external_id: "o1".into(),
                lines: vec![item("sku_1", 5), item("sku_2", 1), item("sku_2", 1)],
            }),
            customer: Some(CustomerRef {
                external_id: Some("cus_9".into()),
                ..Default::default()
            }),
            ..BillingEvent::new("e_o1", "order.paid", K::OrderPaid, t(0))
        };
        let refund = BillingEvent {
            order: Some(OrderRef {
                external_id: "o1".into(),
                lines: vec![],
            }),
            ..BillingEvent::new("e_r1", "refund", K::Refunded, t(3))
        };
        let state = apply_order_event(None, &paid).unwrap();
        assert_eq!(state.customer_id.as_deref(), Some("cus_9"));
        assert_eq!(apply_order_event(Some(&state), &paid), None, "duplicate");
        let mut licenses = Vec::new();
        let changes = plan_order(
            &state,
            &licenses,
            &policies(),
            &mappings(),
            &IntegrationOptions::default(),
        )
        .unwrap();
        let creates = |policy: &str, item: &str, quantity: i64, status| LicenseChange::Create {
            policy_id: policy.into(),
            item_external_id: item.into(),
            quantity,
            expires_at: None,
            period_end: None,
            status,
            line_id: None,
        };
        assert_eq!(
            changes,
            vec![
                creates("yearly", "sku_1", 5, LicenseStatus::Active),
                creates("addon", "sku_2", 1, LicenseStatus::Active),
                creates("addon", "sku_2", 1, LicenseStatus::Active),
            ]
        );
        apply_changes(&mut licenses, &changes);
        assert_eq!(
            plan_order(
                &state,
                &licenses,
                &policies(),
                &mappings(),
                &IntegrationOptions::default()
            )
            .unwrap(),
            vec![]
        );
        // Refund: all of the order's licenses revoked, once.
        let refunded = apply_order_event(Some(&state), &refund).unwrap();
        let changes = plan_order(
            &refunded,
            &licenses,
            &policies(),
            &mappings(),
            &IntegrationOptions::default(),
        )
        .unwrap();
        assert_eq!(changes.len(), 3);
        assert!(
            changes
                .iter()
                .all(|c| matches!(c, LicenseChange::Revoke { .. }))
        );
        apply_changes(&mut licenses, &changes);
        assert_eq!(
            plan_order(
                &refunded,
                &licenses,
                &policies(),
                &mappings(),
                &IntegrationOptions::default()
            )
            .unwrap(),
            vec![]
        );

        // Refund delivered before the payment: same end state.
        let early = apply_order_event(None, &refund).unwrap();
        assert_eq!(
            plan_order(
                &early,
                &[],
                &policies(),
                &mappings(),
                &IntegrationOptions::default()
            )
            .unwrap(),
            vec![]
        );
        let late = apply_order_event(Some(&early), &paid).unwrap();
        assert_eq!(late, refunded);
        let changes = plan_order(
            &late,
            &[],
            &policies(),
            &mappings(),
            &IntegrationOptions::default(),
        )
        .unwrap();
        assert_eq!(changes.len(), 3);
        assert!(changes.iter().all(|c| matches!(
            c,
            LicenseChange::Create {
                status: LicenseStatus::Revoked,
                ..
            }
        )));

        // An unmapped line is skipped; only no mapped line at all fails. Non-order kinds are
        // not order events.
        let mut odd = state.clone();
        odd.lines.push(item("sku_x", 1));
        assert_eq!(
            plan_order(
                &odd,
                &[],
                &policies(),
                &mappings(),
                &IntegrationOptions::default()
            )
            .unwrap()
            .len(),
            3
        );
        odd.lines = vec![item("sku_x", 1)];
        assert_eq!(
            plan_order(
                &odd,
                &[],
                &policies(),
                &mappings(),
                &IntegrationOptions::default()
            )
            .unwrap_err()
            .code(),
            "NO_MAPPING"
        );
        let mut other = paid.clone();
        other.kind = K::SubscriptionRenewed;
        assert_eq!(apply_order_event(None, &other), None);
    }

    fn line(id: &str, line_id: &str, quantity: i64) -> BillingItem {
        BillingItem {
            line_id: Some(line_id.into()),
            ..item(id, quantity)
        }
    }

    fn order_event(
        id: &str,
        kind: BillingEventKind,
        day: i64,
        lines: Vec<BillingItem>,
        reversal: Option<crate::billing::Reversal>,
    ) -> BillingEvent {
        BillingEvent {
            order: Some(OrderRef {
                external_id: "o1".into(),
                lines,
            }),
            reversal,
            ..BillingEvent::new(id, "test", kind, t(day))
        }
    }

    /// Folds the events into an order (skipping those the refund policy does not apply, as
    /// the gateway does), planning and applying after each one.
    fn run_order(
        events: &[&BillingEvent],
        options: &IntegrationOptions,
    ) -> (Option<OrderState>, Vec<ExistingLicense>) {
        let mut state: Option<OrderState> = None;
        let mut licenses = Vec::new();
        for event in events {
            let reversal = matches!(event.kind, K::Refunded | K::Chargeback);
            if reversal && !reversal_revokes(event, options) {
                continue;
            }
            if let Some(next) = apply_order_event(state.as_ref(), event) {
                state = Some(next);
            }
            let Some(current) = &state else { continue };
            let changes =
                plan_order(current, &licenses, &policies(), &mappings(), options).unwrap();
            apply_changes(&mut licenses, &changes);
            assert_eq!(
                plan_order(current, &licenses, &policies(), &mappings(), options).unwrap(),
                vec![],
                "planning again after applying changes nothing"
            );
        }
        (state, licenses)
    }

    fn by_line(licenses: &[ExistingLicense]) -> Vec<(String, LicenseStatus, Option<i64>)> {
        let mut out: Vec<_> = licenses
            .iter()
            .map(|l| (l.line_id.clone().unwrap_or_default(), l.status, l.quantity))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn line_level_refunds_revoke_only_the_named_lines() {
        use crate::billing::Reversal as R;
        use LicenseStatus::{Active, Revoked};
        let full_policy = IntegrationOptions::default();
        let paid = order_event(
            "e_paid",
            K::OrderPaid,
            0,
            vec![
                line("sku_1", "l1", 5),
                line("sku_2", "l2", 1),
                line("sku_2", "l3", 1),
            ],
            None,
        );
        let refund_l2 = order_event(
            "e_r1",
            K::Refunded,
            2,
            vec![line("sku_2", "l2", 1)],
            Some(R::PartialRefund),
        );
        let refund_two_seats = order_event(
            "e_r2",
            K::Refunded,
            3,
            vec![line("sku_1", "l1", 2)],
            Some(R::PartialRefund),
        );
        let refund_all = order_event("e_r3", K::Refunded, 5, vec![], None);

        assert_eq!(reversed_lines(&refund_l2).map(<[_]>::len), Some(1));
        assert_eq!(
            reversed_lines(&refund_all),
            None,
            "no lines: the whole order"
        );
        assert_eq!(reversed_lines(&paid), None, "only refunds and chargebacks");
        assert!(reversal_revokes(&refund_l2, &full_policy));
        let mut tax = refund_l2.clone();
        tax.reversal = Some(R::TaxOnlyRefund);
        assert!(!reversal_revokes(&tax, &full_policy));
        let mut whole_partial = refund_l2.clone();
        whole_partial.order.as_mut().unwrap().lines = vec![item("sku_2", 1)];
        assert!(
            !reversal_revokes(&whole_partial, &full_policy),
            "a partial refund without line ids stays a partial refund of the order"
        );

        // Paid: one license per line, each carrying its line id.
        let (_, licenses) = run_order(&[&paid], &full_policy);
        assert_eq!(
            by_line(&licenses),
            vec![
                ("l1".into(), Active, Some(5)),
                ("l2".into(), Active, Some(1)),
                ("l3".into(), Active, Some(1)),
            ]
        );
        // A refund of one line revokes that line only; the same sku's other line stays.
        let (state, licenses) = run_order(&[&paid, &refund_l2], &full_policy);
        assert_eq!(
            by_line(&licenses),
            vec![
                ("l1".into(), Active, Some(5)),
                ("l2".into(), Revoked, Some(1)),
                ("l3".into(), Active, Some(1)),
            ]
        );
        let state = state.unwrap();
        assert_eq!(state.revoked_at, None);
        assert_eq!(
            apply_order_event(Some(&state), &refund_l2),
            None,
            "duplicate"
        );
        // Part of a line's quantity: under `full` the license keeps the seats left.
        let (_, licenses) = run_order(&[&paid, &refund_l2, &refund_two_seats], &full_policy);
        assert_eq!(
            by_line(&licenses),
            vec![
                ("l1".into(), Active, Some(3)),
                ("l2".into(), Revoked, Some(1)),
                ("l3".into(), Active, Some(1)),
            ]
        );
        // Under `any` any refund of a line revokes it.
        let any = IntegrationOptions {
            refunds: RefundPolicy::Any,
            ..IntegrationOptions::default()
        };
        let (_, licenses) = run_order(&[&paid, &refund_two_seats], &any);
        assert_eq!(
            by_line(&licenses),
            vec![
                ("l1".into(), Revoked, Some(5)),
                ("l2".into(), Active, Some(1)),
                ("l3".into(), Active, Some(1)),
            ]
        );
        // Under `never` nothing is revoked.
        let never = IntegrationOptions {
            refunds: RefundPolicy::Never,
            ..IntegrationOptions::default()
        };
        let (_, licenses) = run_order(&[&paid, &refund_l2, &refund_all], &never);
        assert!(licenses.iter().all(|l| l.status == Active));
        // The rest of the line refunded: revoked. A chargeback of a line revokes it whole.
        let rest = order_event(
            "e_r4",
            K::Refunded,
            4,
            vec![line("sku_1", "l1", 3)],
            Some(R::PartialRefund),
        );
        let (_, licenses) = run_order(&[&paid, &refund_two_seats, &rest], &full_policy);
        assert_eq!(by_line(&licenses)[0], ("l1".into(), Revoked, Some(3)));
        let chargeback = order_event("e_cb", K::Chargeback, 4, vec![line("sku_2", "l3", 1)], None);
        let (_, licenses) = run_order(&[&paid, &chargeback], &full_policy);
        assert_eq!(by_line(&licenses)[2], ("l3".into(), Revoked, Some(1)));

        // Then a refund of the whole order: everything revoked.
        let all = [&paid, &refund_l2, &refund_two_seats, &refund_all];
        let (in_order_state, in_order) = run_order(&all, &full_policy);
        assert!(in_order.iter().all(|l| l.status == Revoked));
        assert_eq!(in_order.len(), 3);

        // Any delivery order, with duplicates, ends in the same order state and licenses.
        let mut sequence: Vec<&BillingEvent> = all.iter().chain(all.iter()).copied().collect();
        for seed in 0..40 {
            shuffle(&mut sequence, seed);
            let (state, licenses) = run_order(&sequence, &full_policy);
            assert_eq!(state, in_order_state, "seed {seed}");
            assert_eq!(by_line(&licenses), by_line(&in_order), "seed {seed}");
        }
        // Without the whole-order refund, shuffled: the line-level outcome only.
        let some = [&paid, &refund_l2, &refund_two_seats];
        let (_, expected) = run_order(&some, &full_policy);
        let mut sequence: Vec<&BillingEvent> = some.iter().chain(some.iter()).copied().collect();
        for seed in 0..40 {
            shuffle(&mut sequence, seed);
            let (_, licenses) = run_order(&sequence, &full_policy);
            assert_eq!(by_line(&licenses), by_line(&expected), "seed {seed}");
        }
        // A refund before the payment: the refunded line is created revoked.
        let (_, licenses) = run_order(&[&refund_l2, &paid], &full_policy);
        assert_eq!(by_line(&licenses)[1], ("l2".into(), Revoked, Some(1)));
        assert_eq!(by_line(&licenses)[0], ("l1".into(), Active, Some(5)));
    }

    #[test]
    fn mappings_match_an_items_candidate_ids_in_order() {
        // Shopify-like: variant, then product, then SKU.
        let by_sku = BillingItem {
            fallback_ids: vec!["product_5".into(), "sku_1".into()],
            line_id: Some("l1".into()),
            ..item("variant_77", 2)
        };
        let by_variant = BillingItem {
            fallback_ids: vec!["sku_1".into()],
            ..item("sku_2", 1)
        };
        let nothing = BillingItem {
            fallback_ids: vec!["product_6".into()],
            ..item("variant_78", 1)
        };
        let lines = [by_sku.clone(), by_variant.clone(), nothing.clone()];
        assert_eq!(unmapped_items(&lines, &mappings()), vec![&nothing]);
        assert_eq!(by_sku.mapped_id(|id| id.starts_with("sku")), Some("sku_1"));
        let paid = order_event("e_paid", K::OrderPaid, 0, lines.to_vec(), None);
        let state = apply_order_event(None, &paid).unwrap();
        let changes = plan_order(
            &state,
            &[],
            &policies(),
            &mappings(),
            &IntegrationOptions::default(),
        )
        .unwrap();
        let issued: Vec<(&str, &str)> = changes
            .iter()
            .map(|c| match c {
                LicenseChange::Create {
                    policy_id,
                    item_external_id,
                    ..
                } => (policy_id.as_str(), item_external_id.as_str()),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        // The first candidate a mapping names wins: the variant before the SKU.
        assert_eq!(issued, vec![("yearly", "sku_1"), ("addon", "sku_2")]);

        // Subscriptions too: the license is matched on the id that mapped, so an unchanged
        // item plans nothing the second time.
        let mut world = World::new(RenewalMode::Extend);
        let mut snap = full(S::Active, &[], 30);
        snap.items = vec![by_sku];
        let changes = world
            .deliver(&ev("e_act", K::SubscriptionActivated, 0, snap))
            .unwrap();
        assert!(matches!(
            &changes[..],
            [LicenseChange::Create { item_external_id, quantity: 2, .. }] if item_external_id == "sku_1"
        ));
    }

    /// A deterministic Fisher–Yates shuffle (64-bit LCG).
    fn shuffle<T>(items: &mut [T], seed: u64) {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for i in (1..items.len()).rev() {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let j = ((x >> 33) % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }

    fn lifecycle(with_refund: bool) -> Vec<BillingEvent> {
        let pro5 = [("price_pro", 5)];
        let mut events = vec![
            ev(
                "e01",
                K::SubscriptionActivated,
                0,
                full(S::Active, &[("price_basic", 1)], 30),
            ),
            ev("e02", K::SubscriptionRenewed, 30, partial(None, Some(60))),
            ev(
                "e03",
                K::SubscriptionUpdated,
                35,
                full(S::Active, &[("price_basic", 5)], 60),
            ),
            ev(
                "e04",
                K::SubscriptionUpdated,
                40,
                full(S::Active, &pro5, 60),
            ),
            ev("e05", K::SubscriptionPaused, 45, full(S::Paused, &pro5, 60)),
            ev(
                "e06",
                K::SubscriptionResumed,
                50,
                full(S::Active, &pro5, 60),
            ),
            ev("e07", K::PaymentFailed, 60, partial(Some(S::PastDue), None)),
            ev(
                "e08",
                K::SubscriptionUpdated,
                60,
                full(S::PastDue, &pro5, 90),
            ),
            ev("e09", K::PaymentFailed, 62, partial(Some(S::PastDue), None)),
            ev("e10", K::PaymentRecovered, 63, partial(None, Some(90))),
            ev(
                "e11",
                K::SubscriptionCancelScheduled,
                70,
                SubscriptionSnapshot {
                    cancel_at_period_end: true,
                    cancel_at: Some(t(90)),
                    ..full(S::Active, &pro5, 90)
                },
            ),
            ev(
                "e12",
                K::SubscriptionCanceled,
                90,
                SubscriptionSnapshot {
                    cancel_at_period_end: true,
                    cancel_at: Some(t(90)),
                    ended_at: Some(t(90)),
                    ..full(S::Canceled, &pro5, 90)
                },
            ),
        ];
        if with_refund {
            events.push(ev("e13", K::Refunded, 95, partial(None, None)));
        }
        events
    }

    /// A license without its id (which depends on creation order).
    type Outcome = (
        String,
        Option<String>,
        LicenseStatus,
        Option<Timestamp>,
        Option<i64>,
    );

    /// The licenses without their ids.
    fn outcome(licenses: &[ExistingLicense]) -> Vec<Outcome> {
        let mut out: Vec<_> = licenses
            .iter()
            .map(|l| {
                (
                    l.policy_id.clone(),
                    l.item_external_id.clone(),
                    l.status,
                    l.expires_at,
                    l.quantity,
                )
            })
            .collect();
        out.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        out
    }

    #[test]
    fn out_of_order_delivery_with_duplicates_ends_in_the_in_order_state() {
        for with_refund in [false, true] {
            let events = lifecycle(with_refund);
            let mut in_order = World::new(RenewalMode::Extend);
            for event in &events {
                in_order.ok(event);
            }
            let expected = outcome(&in_order.licenses);
            let final_state = in_order.state().clone();
            assert_eq!(final_state.status, Some(S::Canceled));
            assert_eq!(final_state.items, vec![item("price_pro", 5)]);
            assert_eq!(final_state.payment_failed_at, None);
            assert_eq!(
                expected,
                vec![(
                    "pro".to_string(),
                    Some("price_pro".to_string()),
                    if with_refund {
                        LicenseStatus::Revoked
                    } else {
                        LicenseStatus::Active
                    },
                    Some(t(90)),
                    Some(5)
                )]
            );

            for seed in 0..40 {
                let mut storm: Vec<&BillingEvent> =
                    events.iter().chain(&events).chain(&events).collect();
                shuffle(&mut storm, seed);
                let mut w = World::new(RenewalMode::Extend);
                for event in storm {
                    w.ok(event);
                }
                assert_eq!(
                    *w.state(),
                    final_state,
                    "seed {seed}: same subscription state"
                );
                assert_eq!(outcome(&w.licenses), expected, "seed {seed}: same licenses");
            }
        }
    }

    #[test]
    fn state_ordering_uses_the_platform_version_within_one_instant() {
        let mut older = ev(
            "b",
            K::SubscriptionUpdated,
            0,
            full(S::Active, &[("price_pro", 2)], 30),
        );
        older.ordering_version = Some(1);
        let mut newer = ev(
            "a",
            K::SubscriptionUpdated,
            0,
            full(S::Active, &[("price_pro", 7)], 30),
        );
        newer.ordering_version = Some(2);
        let one = apply_event(apply_event(None, &older).as_ref(), &newer).unwrap();
        let two = apply_event(apply_event(None, &newer).as_ref(), &older);
        assert_eq!(two, None, "older version changes nothing");
        assert_eq!(one.items, vec![item("price_pro", 7)]);
        assert_eq!(one.ordering_version, Some(2));
        assert_eq!(one.last_event_at, Some(t(0)));
        // Events of another subscription are not applied.
        let mut other = newer.clone();
        other.subscription.as_mut().unwrap().external_id = "sub_2".into();
        assert_eq!(apply_event(Some(&one), &other), None);
        // The state survives a JSON round trip (how the store may keep it).
        let json = serde_json::to_string(&one).unwrap();
        assert_eq!(
            serde_json::from_str::<SubscriptionState>(&json).unwrap(),
            one
        );
    }

    #[test]
    fn options_and_changes_serialize_as_snake_case() {
        let options: IntegrationOptions = serde_json::from_str(
            r#"{"renewal":"new_license","grace_seconds":60,"paypal_webhook_id":"x"}"#,
        )
        .unwrap();
        assert_eq!(options.renewal, RenewalMode::NewLicense);
        assert_eq!(options.grace_seconds, Some(60));
        assert_eq!(
            serde_json::from_str::<IntegrationOptions>("{}")
                .unwrap()
                .renewal,
            RenewalMode::Extend
        );
        let change = serde_json::to_value(LicenseChange::Suspend {
            license_id: "l".into(),
        })
        .unwrap();
        assert_eq!(
            change,
            serde_json::json!({"action": "suspend", "license_id": "l"})
        );
    }
}
