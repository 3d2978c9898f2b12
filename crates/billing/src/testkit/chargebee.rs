//! Chargebee: no signature; HTTP Basic auth with the credentials configured as a secret.

use super::{Ids, Kit, MONTH, Settings, SignedHeaders, Steps};
use crate::providers::chargebee::credentials;
use crate::scheme::basic_auth;
use crate::{Secrets, Timestamp};
use serde_json::{Value, json};

pub struct ChargebeeKit;

const CREDENTIALS: &str = "keygate:cb-webhook-pass";

impl Kit for ChargebeeKit {
    fn settings(&self) -> Settings {
        Settings {
            secrets: vec![CREDENTIALS.into()],
            options: json!({}),
        }
    }

    fn sign(
        &self,
        secrets: &Secrets,
        _body: &[u8],
        _now: Timestamp,
    ) -> Result<SignedHeaders, String> {
        let credential = credentials(secrets)
            .into_iter()
            .next()
            .ok_or("no `username:password` credential is configured")?;
        Ok(vec![(
            "authorization".into(),
            basic_auth::header(&credential),
        )])
    }

    fn ids(&self) -> Ids {
        Ids {
            mapping: "pro-USD-monthly",
            customer: "cb_ann",
            subscription: "cb_sub_1",
        }
    }

    fn steps(&self, start: i64, failed_at: i64) -> Option<Steps> {
        Some(chargebee_steps(start, failed_at))
    }
}

fn chargebee_event(id: &str, event_type: &str, at: i64, content: Value) -> Value {
    json!({"id": id, "occurred_at": at, "source": "scheduled_job", "object": "event",
           "api_version": "v2", "event_type": event_type, "webhook_status": "not_configured",
           "content": content})
}

fn chargebee_customer() -> Value {
    json!({"id": "cb_ann", "first_name": "Ann", "last_name": "Example",
           "email": "ann@example.com", "object": "customer"})
}

fn chargebee_subscription(
    status: &str,
    started: i64,
    qty: i64,
    term_end: i64,
    version: i64,
    cancelled_at: Option<i64>,
) -> Value {
    json!({"id": "cb_sub_1", "customer_id": "cb_ann", "status": status,
           "billing_period": 1, "billing_period_unit": "month",
           "current_term_start": term_end - MONTH, "current_term_end": term_end,
           "next_billing_at": if status == "non_renewing" { Value::Null } else { json!(term_end) },
           "started_at": started, "activated_at": started, "created_at": started,
           "cancelled_at": cancelled_at, "has_scheduled_changes": false,
           "resource_version": version, "object": "subscription", "currency_code": "USD",
           "subscription_items": [
               {"item_price_id": "pro-USD-monthly", "item_type": "plan", "quantity": qty,
                "unit_price": 3000, "amount": 3000 * qty, "object": "subscription_item"}]})
}

fn chargebee_invoice(id: &str, status: &str, dunning: Option<&str>, at: i64) -> Value {
    let mut invoice = json!({"id": id, "customer_id": "cb_ann", "subscription_id": "cb_sub_1",
        "recurring": true, "status": status, "date": at, "total": 15000,
        "amount_paid": if status == "paid" { 15000 } else { 0 }, "object": "invoice"});
    if let Some(d) = dunning {
        invoice["dunning_status"] = json!(d);
    }
    invoice
}

/// A subscription with an unpaid invoice: Chargebee keeps it `active` and says so with
/// `due_invoices_count`, `due_since`, `total_dues`.
fn in_dunning(mut subscription: Value, since: i64) -> Value {
    subscription["due_invoices_count"] = json!(1);
    subscription["due_since"] = json!(since);
    subscription["total_dues"] = json!(15000);
    subscription
}

fn chargebee_steps(now: i64, failed_at: i64) -> Steps {
    let p1 = now + MONTH;
    let p2 = now + 2 * MONTH;
    let started = now - 100;
    // A cancellation scheduled for a specific date before the end of the paid term
    // (Chargebee's `cancel_option: specific_date`): the license ends then.
    let cancel_on = p2 - 86_400;
    Steps {
        created: vec![chargebee_event(
            "ev_cb_created",
            "subscription_created",
            now - 100,
            json!({"subscription": chargebee_subscription("active", started, 1, p1, 1000, None),
                   "customer": chargebee_customer()}),
        )],
        renewed: vec![chargebee_event(
            "ev_cb_renewed",
            "subscription_renewed",
            now - 90,
            json!({"subscription": chargebee_subscription("active", started, 1, p2, 1001, None),
                   "customer": chargebee_customer(),
                   "invoice": chargebee_invoice("inv_2", "paid", None, now - 90)}),
        )],
        quantity: vec![chargebee_event(
            "ev_cb_changed",
            "subscription_changed",
            now - 80,
            json!({"subscription": chargebee_subscription("active", started, 5, p2, 1002, None),
                   "customer": chargebee_customer()}),
        )],
        // Chargebee keeps the subscription `active` during dunning.
        failed: vec![chargebee_event(
            "ev_cb_failed",
            "payment_failed",
            failed_at,
            json!({"subscription": in_dunning(
                       chargebee_subscription("active", started, 5, p2, 1003, None), failed_at),
                   "customer": chargebee_customer(),
                   "invoice": chargebee_invoice("inv_3", "payment_due", Some("in_progress"), failed_at),
                   "transaction": {"id": "txn_3", "status": "failure", "type": "payment",
                                   "object": "transaction"}}),
        )],
        recovered: vec![chargebee_event(
            "ev_cb_recovered",
            "payment_succeeded",
            failed_at + 1,
            json!({"subscription": chargebee_subscription("active", started, 5, p2, 1004, None),
                   "customer": chargebee_customer(),
                   "invoice": chargebee_invoice("inv_3", "paid", Some("stopped"), failed_at + 1),
                   "transaction": {"id": "txn_4", "status": "success", "type": "payment",
                                   "object": "transaction"}}),
        )],
        cancelled: vec![chargebee_event(
            "ev_cb_cancel_scheduled",
            "subscription_cancellation_scheduled",
            failed_at + 2,
            json!({"subscription": chargebee_subscription("non_renewing", started, 5, p2, 1005,
                                                          Some(cancel_on)),
                   "customer": chargebee_customer()}),
        )],
        // The refund names the subscription through the refunded invoice.
        refunded: vec![chargebee_event(
            "ev_cb_refunded",
            "payment_refunded",
            failed_at + 3,
            json!({"invoice": chargebee_invoice("inv_2", "paid", None, now - 90),
                   "credit_note": {"id": "cn_1", "reference_invoice_id": "inv_2",
                                   "subscription_id": "cb_sub_1", "type": "refundable",
                                   "status": "refunded", "total": 15000,
                                   "amount_refunded": 15000, "object": "credit_note"},
                   "transaction": {"id": "txn_r1", "type": "refund", "status": "success",
                                   "amount": 15000, "object": "transaction"}}),
        )],
        cancel_ends_at: cancel_on,
    }
}
