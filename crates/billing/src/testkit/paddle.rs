//! Paddle Billing: `Paddle-Signature: ts=..;h1=hex(HMAC-SHA256(secret, "{ts}:{body}"))`.

use super::{Ids, Kit, MONTH, Settings, SignedHeaders, Steps, first_secret, rfc, unix_seconds};
use crate::providers::paddle::SCHEME;
use crate::{Secrets, Timestamp};
use serde_json::{Value, json};

pub struct PaddleKit;

const SECRET: &str = "pdl_ntfset_01keygate_test_secret";

impl Kit for PaddleKit {
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
        Ok(vec![("paddle-signature".into(), value)])
    }

    fn ids(&self) -> Ids {
        Ids {
            mapping: "pri_pro",
            customer: "ctm_01ann",
            subscription: "sub_01pdl",
        }
    }

    fn steps(&self, start: i64, failed_at: i64) -> Option<Steps> {
        Some(paddle_steps(start, failed_at))
    }
}

fn paddle_envelope(event_id: &str, event_type: &str, at: i64, data: Value) -> Value {
    json!({"event_id": event_id, "event_type": event_type, "occurred_at": rfc(at),
           "notification_id": format!("ntf_{event_id}"), "data": data})
}

fn paddle_items(qty: i64) -> Value {
    json!([{"status": "active", "quantity": qty, "recurring": true,
            "price": {"id": "pri_pro", "product_id": "pro_app", "description": "Pro monthly"}}])
}

#[allow(clippy::too_many_arguments)]
fn paddle_subscription(
    event_id: &str,
    event_type: &str,
    at: i64,
    started: i64,
    status: &str,
    qty: i64,
    period_end: i64,
    cancel_at: Option<i64>,
) -> Value {
    paddle_envelope(
        event_id,
        event_type,
        at,
        json!({
            "id": "sub_01pdl", "status": status, "customer_id": "ctm_01ann",
            "address_id": "add_01", "currency_code": "USD", "collection_mode": "automatic",
            "created_at": rfc(started), "updated_at": rfc(at), "started_at": rfc(started),
            "first_billed_at": rfc(started), "next_billed_at": cancel_at.map_or(json!(rfc(period_end)), |_| Value::Null),
            "paused_at": null, "canceled_at": null,
            "billing_cycle": {"interval": "month", "frequency": 1},
            "current_billing_period": {"starts_at": rfc(period_end - MONTH), "ends_at": rfc(period_end)},
            "scheduled_change": cancel_at.map(|c| json!({"action": "cancel", "effective_at": rfc(c), "resume_at": null})),
            "items": paddle_items(qty),
        }),
    )
}

fn paddle_transaction(
    event_id: &str,
    event_type: &str,
    at: i64,
    txn: &str,
    status: &str,
    qty: i64,
    period_end: i64,
) -> Value {
    paddle_envelope(
        event_id,
        event_type,
        at,
        json!({
            "id": txn, "status": status, "origin": "subscription_recurring",
            "subscription_id": "sub_01pdl", "customer_id": "ctm_01ann", "currency_code": "USD",
            "billing_period": {"starts_at": rfc(period_end - MONTH), "ends_at": rfc(period_end)},
            "items": [{"price": {"id": "pri_pro", "product_id": "pro_app"}, "quantity": qty}],
            "created_at": rfc(at), "updated_at": rfc(at),
        }),
    )
}

fn paddle_steps(now: i64, failed_at: i64) -> Steps {
    let p1 = now + MONTH;
    let p2 = now + 2 * MONTH;
    Steps {
        created: vec![paddle_subscription(
            "evt_01created",
            "subscription.created",
            now - 100,
            now - 100,
            "active",
            1,
            p1,
            None,
        )],
        // The renewal payment, then the subscription with its new billing period.
        renewed: vec![
            paddle_transaction(
                "evt_01renewal_txn",
                "transaction.completed",
                now - 90,
                "txn_02",
                "completed",
                1,
                p2,
            ),
            paddle_subscription(
                "evt_01renewal_sub",
                "subscription.updated",
                now - 89,
                now - 100,
                "active",
                1,
                p2,
                None,
            ),
        ],
        quantity: vec![paddle_subscription(
            "evt_01qty",
            "subscription.updated",
            now - 80,
            now - 100,
            "active",
            5,
            p2,
            None,
        )],
        failed: vec![
            paddle_transaction(
                "evt_01failed_txn",
                "transaction.payment_failed",
                failed_at,
                "txn_03",
                "past_due",
                5,
                p2,
            ),
            paddle_subscription(
                "evt_01past_due",
                "subscription.past_due",
                failed_at,
                now - 100,
                "past_due",
                5,
                p2,
                None,
            ),
        ],
        recovered: vec![paddle_subscription(
            "evt_01recovered",
            "subscription.updated",
            failed_at + 1,
            now - 100,
            "active",
            5,
            p2,
            None,
        )],
        cancelled: vec![paddle_subscription(
            "evt_01cancel",
            "subscription.updated",
            failed_at + 2,
            now - 100,
            "active",
            5,
            p2,
            Some(p2),
        )],
        refunded: vec![paddle_envelope(
            "evt_01refund",
            "adjustment.updated",
            failed_at + 3,
            json!({"id": "adj_01", "action": "refund", "type": "full", "status": "approved",
                   "transaction_id": "txn_02", "subscription_id": "sub_01pdl",
                   "customer_id": "ctm_01ann", "reason": "requested",
                   "created_at": rfc(failed_at + 3), "updated_at": rfc(failed_at + 3)}),
        )],
        cancel_ends_at: p2,
    }
}
