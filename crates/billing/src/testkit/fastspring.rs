//! FastSpring: `X-FS-Signature: base64(HMAC-SHA256(secret, body))`; batched `events[]`, with
//! Webhook Expansion on (full objects rather than ids).

use super::{Ids, Kit, MONTH, Settings, SignedHeaders, Steps, first_secret};
use crate::providers::fastspring::SCHEME;
use crate::{Secrets, Timestamp};
use serde_json::{Value, json};

pub struct FastSpringKit;

const SECRET: &str = "fs-hmac-secret-for-tests";

impl Kit for FastSpringKit {
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
        _now: Timestamp,
    ) -> Result<SignedHeaders, String> {
        let secret = first_secret(secrets)?;
        Ok(vec![(
            "x-fs-signature".into(),
            SCHEME.sign(secret.as_bytes(), body),
        )])
    }

    fn ids(&self) -> Ids {
        Ids {
            mapping: "pro-monthly",
            customer: "acct_Ann1",
            subscription: "sub_FS1",
        }
    }

    fn steps(&self, start: i64, failed_at: i64) -> Option<Steps> {
        Some(fastspring_steps(start, failed_at))
    }
}

fn fastspring_batch(events: Vec<Value>) -> Value {
    json!({"events": events})
}

fn fastspring_event(id: &str, event_type: &str, at: i64, data: Value) -> Value {
    json!({"id": id, "processed": false, "created": at * 1000, "type": event_type,
           "live": true, "data": data})
}

/// A subscription object (Webhook Expansion on): `state`, `active`, `nextInSeconds`, ...
fn fastspring_subscription(
    state: &str,
    qty: i64,
    next: Option<i64>,
    deactivation: Option<i64>,
    changed: i64,
) -> Value {
    json!({"id": "sub_FS1", "subscription": "sub_FS1", "active": true, "state": state,
           "changed": changed * 1000, "changedInSeconds": changed, "live": true,
           "currency": "USD", "account": "acct_Ann1",
           "product": "pro-monthly", "sku": "PRO-M", "display": "Pro Monthly", "quantity": qty,
           "price": 30, "subtotal": 30 * qty, "autoRenew": state != "canceled",
           "next": next.map(|n| n * 1000), "nextInSeconds": next,
           "end": null, "endInSeconds": null,
           "canceledDate": deactivation.map(|_| changed * 1000),
           "canceledDateInSeconds": deactivation.map(|_| changed),
           "deactivationDate": deactivation.map(|d| d * 1000),
           "deactivationDateInSeconds": deactivation,
           "intervalUnit": "month", "intervalLength": 1, "addons": []})
}

fn fastspring_charge(
    id: &str,
    event_type: &str,
    at: i64,
    order: &str,
    status: &str,
    subscription: Value,
) -> Value {
    fastspring_event(
        id,
        event_type,
        at,
        json!({"order": {"id": order, "order": order, "reference": format!("REF-{order}"),
                         "completed": status == "successful", "account": "acct_Ann1"},
               "currency": "USD", "total": 150, "status": status,
               "timestamp": at * 1000, "timestampInSeconds": at,
               "account": {"id": "acct_Ann1", "account": "acct_Ann1",
                           "contact": {"first": "Ann", "last": "Example", "email": "ann@example.com"}},
               "subscription": subscription}),
    )
}

fn fastspring_steps(now: i64, failed_at: i64) -> Steps {
    let p1 = now + MONTH;
    let p2 = now + 2 * MONTH;
    let with_customer = |mut sub: Value| {
        sub["customer"] = json!({"first": "Ann", "last": "Example", "email": "ann@example.com"});
        sub
    };
    Steps {
        created: vec![fastspring_batch(vec![fastspring_event(
            "evt_FS_activated",
            "subscription.activated",
            now - 100,
            with_customer(fastspring_subscription(
                "active",
                1,
                Some(p1),
                None,
                now - 100,
            )),
        )])],
        renewed: vec![fastspring_batch(vec![fastspring_charge(
            "evt_FS_charge_2",
            "subscription.charge.completed",
            now - 90,
            "ord_FS2",
            "successful",
            fastspring_subscription("active", 1, Some(p2), None, now - 90),
        )])],
        quantity: vec![fastspring_batch(vec![fastspring_event(
            "evt_FS_updated",
            "subscription.updated",
            now - 80,
            fastspring_subscription("active", 5, Some(p2), None, now - 80),
        )])],
        // Two events in one POST: the failed charge and the overdue notice.
        failed: vec![fastspring_batch(vec![
            fastspring_charge(
                "evt_FS_charge_failed",
                "subscription.charge.failed",
                failed_at,
                "ord_FS3",
                "failed",
                fastspring_subscription("active", 5, Some(p2), None, failed_at),
            ),
            fastspring_event(
                "evt_FS_overdue",
                "subscription.payment.overdue",
                failed_at,
                fastspring_subscription("overdue", 5, Some(p2), None, failed_at),
            ),
        ])],
        // FastSpring has no "recovered" event: the retried charge completes.
        recovered: vec![fastspring_batch(vec![fastspring_charge(
            "evt_FS_charge_3",
            "subscription.charge.completed",
            failed_at + 1,
            "ord_FS3",
            "successful",
            fastspring_subscription("active", 5, Some(p2), None, failed_at + 1),
        )])],
        // Cancelled: `state: canceled`, still `active` until the deactivation date.
        cancelled: vec![fastspring_batch(vec![fastspring_event(
            "evt_FS_canceled",
            "subscription.canceled",
            failed_at + 2,
            fastspring_subscription("canceled", 5, None, Some(p2), failed_at + 2),
        )])],
        // A return of the subscription's renewal order; its item names the subscription.
        refunded: vec![fastspring_batch(vec![fastspring_event(
            "evt_FS_return",
            "return.created",
            failed_at + 3,
            json!({"return": "ret_FS1", "reference": "REF-RET1", "completed": true,
                   "live": true, "account": "acct_Ann1", "currency": "USD",
                   "totalReturn": 150, "reason": "Customer request", "type": "RETURN",
                   "original": {"id": "ord_FS2", "order": "ord_FS2", "account": "acct_Ann1"},
                   "customer": {"first": "Ann", "last": "Example", "email": "ann@example.com"},
                   "items": [{"product": "pro-monthly", "quantity": 5, "subscription": "sub_FS1",
                              "subtotalReturn": 150, "fullReturn": true}]}),
        )])],
        cancel_ends_at: p2,
    }
}
