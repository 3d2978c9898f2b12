//! Braintree (PayPal) recurring billing webhooks.
//!
//! Verify ([`hashed_key_hmac`](crate::scheme::hashed_key_hmac)): a form POST with
//! `bt_signature` and `bt_payload`; the pair of `bt_signature` whose public key is configured
//! must be HMAC-SHA1(SHA-1(private key), `bt_payload`). The integration's secrets are the
//! merchant's API key pairs, `public_key:private_key` (several during a rotation). No timestamp
//! is signed. The endpoint check `GET ?bt_challenge=<hex>` is answered
//! `public_key|HMAC(challenge)` with the first configured pair.
//!
//! Parse: `bt_payload` is base64 of the XML `<notification>` (`timestamp`, `kind`,
//! `subject`), read with `roxmltree`. Subscription kinds carry the whole subscription:
//! `status` (`Active`, `Past Due`, `Canceled`, `Expired`, `Pending`), `plan-id` (what a mapping
//! names, quantity 1: Braintree plans have no quantity) and each add-on (`add-ons/add-on`,
//! `id` × `quantity`; map an add-on to license seats), paid through `paid-through-date` (else
//! `billing-period-end-date`): a calendar day, valid through its end (UTC). Its transactions
//! (newest first) are the payments a dispute names, and the first one's `customer` is the
//! customer.
//!
//! - `subscription_went_active` activated (trial: trial started), `subscription_charged_successfully`
//!   renewed: the snapshot's paid-through date is the period, so a mid-cycle proration charge
//!   (same paid-through date) moves nothing and a period is never renewed twice;
//!   `subscription_charged_unsuccessfully` / `subscription_went_past_due` payment failed;
//!   `subscription_canceled` / `subscription_expired` ended at the paid-through date (the
//!   customer keeps what was paid for); `subscription_trial_ended`, `subscription_billing_skipped`
//!   updated.
//! - `dispute_opened` (a `chargeback` or `pre_arbitration`: a chargeback; a `retrieval`: an
//!   inquiry), `dispute_lost` / `dispute_accepted` / `dispute_auto_accepted`: chargebacks of the
//!   disputed transaction, decided by the integration's `refunds` option. `dispute_won` is
//!   ignored (Keygate does not undo a revocation). Braintree notifies no refund.
//!
//! De-duplication (Braintree has no event id; a retry re-sends the same notification): a
//! charge is `{kind}:{transaction id}`, anything else `{kind}:{subject id}:{timestamp}`.

use crate::decode::dates::{date_end, date_start};
use crate::scheme::hashed_key_hmac::{self as scheme, KeyPair};
use crate::{Ack, BillingError, ConfigError, Provider, Request, Secrets};
use base64::Engine;
use keygate_domain::Timestamp;
use keygate_domain::billing::{
    BillingEvent, BillingEventKind as Kind, BillingItem, CustomerRef, OrderRef, Reversal,
    SubscriptionSnapshot, SubscriptionStatus as Status,
};
use roxmltree::{Document, Node};

pub struct Braintree;

impl Provider for Braintree {
    fn name(&self) -> &'static str {
        "braintree"
    }

    #[cfg(feature = "testkit")]
    fn kit(&self) -> &'static dyn crate::testkit::Kit {
        &crate::testkit::BraintreeKit
    }

    fn check_config(&self, secrets: &Secrets, now: Timestamp) -> Result<(), ConfigError> {
        crate::config::require_secret(secrets, now)?;
        key_pairs(secrets).map(|_| ()).map_err(|e| match e {
            BillingError::SecretNotConfigured(m) => ConfigError::SecretInvalid(m),
            other => ConfigError::SecretInvalid(other.to_string()),
        })
    }

    fn verify(
        &self,
        request: &Request,
        secrets: &Secrets,
        _now: Timestamp,
    ) -> Result<(), BillingError> {
        let pairs = key_pairs(secrets)?;
        let form = request.form()?;
        let signature = form
            .get("bt_signature")
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| BillingError::SignatureMissing("bt_signature".into()))?;
        let payload = form
            .get("bt_payload")
            .filter(|p| !p.is_empty())
            .ok_or_else(|| BillingError::SignatureMissing("bt_payload".into()))?;
        scheme::verify(signature, payload, &pairs)
    }

    fn parse(&self, request: &Request) -> Result<Vec<BillingEvent>, BillingError> {
        let form = request.form()?;
        let payload = form
            .get("bt_payload")
            .ok_or_else(|| BillingError::malformed("bt_payload is missing"))?;
        let compact: String = payload.chars().filter(|c| !c.is_whitespace()).collect();
        let xml = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|_| BillingError::malformed("bt_payload is not base64"))?;
        let xml = String::from_utf8(xml)
            .map_err(|_| BillingError::malformed("the notification is not UTF-8"))?;
        let doc = Document::parse(&xml)
            .map_err(|e| BillingError::malformed(format!("the notification is not XML: {e}")))?;
        notification(doc.root_element()).map(|e| vec![e])
    }

    fn answers_get(&self) -> bool {
        true
    }

    fn challenge(&self, request: &Request, secrets: &Secrets) -> Result<Ack, BillingError> {
        let pairs = key_pairs(secrets)?;
        let query = request.query_fields()?;
        let challenge = query
            .get("bt_challenge")
            .ok_or_else(|| BillingError::malformed("bt_challenge is missing"))?;
        scheme::answer_challenge(challenge, &pairs[0]).map(|answer| Ack::text(200, answer))
    }
}

/// The configured `public_key:private_key` pairs (fail closed: none, or one not of that form,
/// is refused).
fn key_pairs(secrets: &Secrets) -> Result<Vec<KeyPair<'_>>, BillingError> {
    secrets
        .required()?
        .into_iter()
        .map(|secret| {
            KeyPair::parse(secret).ok_or_else(|| {
                BillingError::SecretNotConfigured(
                    "a Braintree secret is the API key pair `public_key:private_key`".into(),
                )
            })
        })
        .collect()
}

/// The element child `name` of `node`.
fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

/// The trimmed text of the element at `path` (`a/b/c`), `None` when absent, empty or
/// `nil="true"`.
fn text(node: Node, path: &str) -> Option<String> {
    let mut at = node;
    for name in path.split('/') {
        at = child(at, name)?;
    }
    if at.attribute("nil") == Some("true") {
        return None;
    }
    at.text()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

fn elements<'a, 'i>(node: Node<'a, 'i>, path: &str, name: &'a str) -> Vec<Node<'a, 'i>> {
    let mut at = node;
    for step in path.split('/') {
        match child(at, step) {
            Some(next) => at = next,
            None => return Vec::new(),
        }
    }
    at.children()
        .filter(|c| c.is_element() && c.tag_name().name() == name)
        .collect()
}

fn notification(root: Node) -> Result<BillingEvent, BillingError> {
    if root.tag_name().name() != "notification" {
        return Err(BillingError::malformed(
            "the payload is not a <notification>",
        ));
    }
    let kind = text(root, "kind").ok_or_else(|| BillingError::malformed("<kind> is missing"))?;
    let stamp =
        text(root, "timestamp").ok_or_else(|| BillingError::malformed("<timestamp> is missing"))?;
    let occurred_at = Timestamp::parse_rfc3339(&stamp).map_err(BillingError::malformed)?;
    let subject = child(root, "subject");
    let subscription = subject.and_then(|s| child(s, "subscription"));
    let dispute = subject.and_then(|s| child(s, "dispute"));
    let subject_id = subscription
        .or(dispute)
        .and_then(|n| text(n, "id"))
        .unwrap_or_default();
    let mut out = BillingEvent::new(
        format!("{kind}:{subject_id}:{stamp}"),
        kind.as_str(),
        Kind::Ignored,
        occurred_at,
    );
    if let Some(sub) = subscription.filter(|_| kind.starts_with("subscription_")) {
        subscription_event(&mut out, sub, &kind)?;
    } else if let Some(dispute) = dispute.filter(|_| kind.starts_with("dispute_")) {
        dispute_event(&mut out, dispute, &kind)?;
    }
    Ok(out)
}

fn status(word: &str) -> Option<Status> {
    Some(match word {
        "Active" => Status::Active,
        "Past Due" => Status::PastDue,
        "Canceled" | "Expired" => Status::Canceled,
        "Pending" => Status::Incomplete,
        _ => return None,
    })
}

fn subscription_event(out: &mut BillingEvent, sub: Node, kind: &str) -> Result<(), BillingError> {
    let id =
        text(sub, "id").ok_or_else(|| BillingError::malformed("the subscription has no <id>"))?;
    let transactions = elements(sub, "transactions", "transaction");
    let paid_through = text(sub, "paid-through-date")
        .or_else(|| text(sub, "billing-period-end-date"))
        .and_then(|d| date_end(&d, "Z"));
    let in_trial = text(sub, "trial-period").as_deref() == Some("true")
        && text(sub, "paid-through-date").is_none();
    let told_status = text(sub, "status").and_then(|s| status(&s));
    let mut snapshot = SubscriptionSnapshot::partial(id.clone());
    // The SDK's sample notifications carry only the id: a partial snapshot then.
    if let Some(mut status) = told_status {
        if in_trial && status == Status::Active {
            status = Status::Trialing;
            snapshot.trial_end = text(sub, "first-billing-date")
                .or_else(|| text(sub, "next-billing-date"))
                .and_then(|d| date_start(&d, "Z"));
        }
        snapshot.status = Some(status);
        snapshot.partial = false;
        snapshot.current_period_end = paid_through;
        let plan = text(sub, "plan-id").map(|plan| BillingItem {
            external_id: plan,
            product_external_id: None,
            quantity: 1,
            line_id: None,
            fallback_ids: Vec::new(),
        });
        snapshot.items = plan
            .into_iter()
            .chain(
                elements(sub, "add-ons", "add-on")
                    .into_iter()
                    .filter_map(|a| {
                        Some(BillingItem {
                            external_id: text(a, "id")?,
                            product_external_id: None,
                            quantity: text(a, "quantity")
                                .and_then(|q| q.parse().ok())
                                .unwrap_or(1),
                            line_id: None,
                            fallback_ids: Vec::new(),
                        })
                    }),
            )
            .collect();
    }
    out.kind = match kind {
        "subscription_went_active" if snapshot.status == Some(Status::Trialing) => {
            Kind::TrialStarted
        }
        "subscription_went_active" => Kind::SubscriptionActivated,
        "subscription_charged_successfully" => Kind::SubscriptionRenewed,
        "subscription_charged_unsuccessfully" | "subscription_went_past_due" => Kind::PaymentFailed,
        "subscription_canceled" | "subscription_expired" => Kind::SubscriptionCanceled,
        "subscription_trial_ended" | "subscription_billing_skipped" => Kind::SubscriptionUpdated,
        _ => return Ok(()),
    };
    match out.kind {
        Kind::PaymentFailed if matches!(snapshot.status, None | Some(Status::Active)) => {
            snapshot.status = Some(Status::PastDue)
        }
        Kind::SubscriptionCanceled => {
            snapshot.status = Some(Status::Canceled);
            snapshot.ended_at = paid_through.or(Some(out.occurred_at));
        }
        _ => {}
    }
    let ids: Vec<String> = transactions.iter().filter_map(|t| text(*t, "id")).collect();
    if let Some((newest, older)) = ids.split_first() {
        if matches!(
            kind,
            "subscription_charged_successfully" | "subscription_charged_unsuccessfully"
        ) {
            out.event_id = format!("{kind}:{newest}");
        }
        out.order = Some(OrderRef {
            external_id: newest.clone(),
            lines: Vec::new(),
        });
        out.order_aliases = older.to_vec();
    }
    out.customer = transactions
        .first()
        .and_then(|t| child(*t, "customer"))
        .and_then(|c| {
            let reference = CustomerRef {
                external_id: text(c, "id"),
                email: text(c, "email"),
                name: crate::json::full_name(text(c, "first-name"), text(c, "last-name")),
            };
            (!reference.is_empty()).then_some(reference)
        });
    out.subscription = Some(snapshot);
    Ok(())
}

fn dispute_event(out: &mut BillingEvent, dispute: Node, kind: &str) -> Result<(), BillingError> {
    let transaction = text(dispute, "transaction/id")
        .ok_or_else(|| BillingError::malformed("the dispute names no transaction"))?;
    let inquiry = text(dispute, "kind").as_deref() == Some("retrieval");
    let reversal = match kind {
        "dispute_opened" if inquiry => Reversal::DisputeInquiry,
        "dispute_opened" | "dispute_lost" | "dispute_accepted" | "dispute_auto_accepted" => {
            Reversal::Chargeback
        }
        _ => return Ok(()),
    };
    out.kind = Kind::Chargeback;
    out.reversal = Some(reversal);
    out.order = Some(OrderRef {
        external_id: transaction,
        lines: Vec::new(),
    });
    Ok(())
}
