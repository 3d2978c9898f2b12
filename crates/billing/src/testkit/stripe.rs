//! Stripe, on an endpoint pinned to a pre-basil API version (`2024-06-20`): the subscription
//! carries `current_period_end` at the top level and charges still name their `invoice`, the
//! link a refund needs (basil removed it; see the conformance review, S-1).

use super::{Ids, Kit, MONTH, Settings, SignedHeaders, Steps, first_secret, unix_seconds};
use crate::providers::stripe::SCHEME;
use crate::{Secrets, Timestamp};
use serde_json::{Value, json};

pub struct StripeKit;

const SECRET: &str = "whsec_keygate_testkit_stripe";
const API_VERSION: &str = "2024-06-20";

impl Kit for StripeKit {
    fn settings(&self) -> Settings {
        Settings {
            secrets: vec![SECRET.into()],
            options: json!({}),
        }
    }

    fn sign(
        &self,
        secrets: &Secrets,
        body: &[u8],
        now: Timestamp,
    ) -> Result<SignedHeaders, String> {
        let secret = first_secret(secrets)?;
        let value = SCHEME.sign(secret.as_bytes(), unix_seconds(now), body);
        Ok(vec![("stripe-signature".into(), value)])
    }

    fn ids(&self) -> Ids {
        Ids {
            mapping: "price_pro",
            customer: "cus_ann",
            subscription: "sub_1",
        }
    }

    fn steps(&self, now: i64, failed_at: i64) -> Option<Steps> {
        let p1 = now + MONTH;
        let p2 = now + 2 * MONTH;
        let started = now - 100;
        let sub = |id: &str, at: i64, status: &str, period_end: i64, qty: i64, extra: Value| {
            subscription(id, at, started, status, period_end, qty, extra)
        };
        Some(Steps {
            created: vec![subscription_created(now - 100, started, p1)],
            renewed: vec![invoice(
                "evt_renewed",
                now - 90,
                "invoice.paid",
                "in_2",
                p2,
                1,
            )],
            quantity: vec![sub(
                "evt_qty",
                now - 80,
                "active",
                p2,
                5,
                json!({"previous_attributes": {"items": {}}}),
            )],
            failed: vec![invoice(
                "evt_failed",
                failed_at,
                "invoice.payment_failed",
                "in_3",
                now + 3 * MONTH,
                5,
            )],
            recovered: vec![sub(
                "evt_recovered",
                failed_at + 1,
                "active",
                p2,
                5,
                json!({"previous_attributes": {"status": "past_due"}}),
            )],
            cancelled: vec![sub(
                "evt_cancel",
                failed_at + 2,
                "active",
                p2,
                5,
                json!({"cancel_at_period_end": true,
                       "previous_attributes": {"cancel_at_period_end": false}}),
            )],
            refunded: vec![refund("evt_refund", failed_at + 3, "in_2")],
            cancel_ends_at: p2,
        })
    }
}

fn subscription_created(at: i64, started: i64, period_end: i64) -> Value {
    let mut event = subscription(
        "evt_created",
        at,
        started,
        "active",
        period_end,
        1,
        json!({}),
    );
    event["type"] = json!("customer.subscription.created");
    event
}

fn subscription(
    id: &str,
    at: i64,
    started: i64,
    status: &str,
    period_end: i64,
    qty: i64,
    extra: Value,
) -> Value {
    let mut object = json!({
        "id": "sub_1", "object": "subscription", "customer": "cus_ann", "status": status,
        "cancel_at": null, "cancel_at_period_end": false, "canceled_at": null, "ended_at": null,
        "trial_start": null, "trial_end": null, "pause_collection": null, "start_date": started,
        "current_period_start": period_end - MONTH, "current_period_end": period_end,
        "items": {"object": "list", "has_more": false, "data": [{
            "id": "si_1", "object": "subscription_item", "quantity": qty, "subscription": "sub_1",
            "price": {"id": "price_pro", "object": "price", "product": "prod_pro"}}]},
        "livemode": true, "metadata": {}
    });
    let mut previous = Value::Null;
    for (k, v) in extra.as_object().into_iter().flatten() {
        if k == "previous_attributes" {
            previous = v.clone();
        } else {
            object[k] = v.clone();
        }
    }
    let mut data = json!({"object": object});
    if !previous.is_null() {
        data["previous_attributes"] = previous;
    }
    json!({"id": id, "object": "event", "api_version": API_VERSION, "created": at,
           "livemode": true, "type": "customer.subscription.updated", "data": data})
}

fn invoice(id: &str, at: i64, kind: &str, invoice_id: &str, period_end: i64, qty: i64) -> Value {
    let paid = kind == "invoice.paid";
    json!({"id": id, "object": "event", "api_version": API_VERSION, "created": at,
        "livemode": true, "type": kind, "data": {"object": {
            "id": invoice_id, "object": "invoice", "billing_reason": "subscription_cycle",
            "status": if paid { "paid" } else { "open" }, "amount_paid": if paid { 5000 } else { 0 },
            "customer": "cus_ann", "customer_email": "ann@example.com", "customer_name": "Ann",
            "subscription": "sub_1", "charge": format!("ch_{invoice_id}"),
            "payment_intent": format!("pi_{invoice_id}"),
            "lines": {"object": "list", "has_more": false, "data": [{
                "id": "il_1", "object": "line_item", "amount": 5000, "invoice": invoice_id,
                "type": "subscription", "subscription": "sub_1", "subscription_item": "si_1",
                "proration": false, "period": {"start": period_end - MONTH, "end": period_end},
                "price": {"id": "price_pro", "object": "price", "product": "prod_pro"},
                "quantity": qty}]}}}})
}

fn refund(id: &str, at: i64, invoice_id: &str) -> Value {
    json!({"id": id, "object": "event", "api_version": API_VERSION, "created": at,
        "livemode": true, "type": "charge.refunded", "data": {"object": {
            "id": format!("ch_{invoice_id}"), "object": "charge", "amount": 5000,
            "amount_refunded": 5000, "refunded": true, "customer": "cus_ann",
            "invoice": invoice_id, "payment_intent": format!("pi_{invoice_id}"),
            "billing_details": {"email": "ann@example.com", "name": "Ann"}},
        "previous_attributes": {"amount_refunded": 0, "refunded": false}}})
}
