//! billwerk+ Optimize: the signature is a body field (hex HMAC-SHA256 over `timestamp` +
//! `id`), so [`Kit::deliver`] writes it into the body; the kit is also billwerk's API
//! stand-in (events, subscriptions, invoices, customers as the API reference shapes them,
//! Basic auth with the private key).

use super::{ApiRequest, Delivery, Ids, Kit, MONTH, Settings, SignedHeaders, Stage, Steps};
use super::{body_id, first_secret, rfc};
use crate::providers::billwerk::SCHEME;
use crate::{Secrets, Timestamp};
use base64::Engine;
use serde_json::{Value, json};

pub struct BillwerkKit;

const SECRET: &str = "webhook_secret_dafba2016614418f969fa5697383e47c";
const API_KEY: &str = "priv_12051dfac75143fc827cf63a87f46df3";
const PLAN: &str = "plan-pro-monthly";
const CUSTOMER: &str = "cust-0001";
const SUBSCRIPTION: &str = "sub-0001";

/// The lifecycle's steps, in order (for the stand-in's state).
const ORDER: [&str; 7] = [
    "created",
    "renewed",
    "quantity",
    "failed",
    "recovered",
    "cancelled",
    "refunded",
];

impl Kit for BillwerkKit {
    fn settings(&self) -> Settings {
        Settings {
            secrets: vec![SECRET.into()],
            options: json!({}),
        }
    }

    /// No header: billwerk signs inside the body (see [`deliver`](Kit::deliver)).
    fn sign(
        &self,
        secrets: &Secrets,
        _body: &[u8],
        _now: Timestamp,
    ) -> Result<SignedHeaders, String> {
        first_secret(secrets)?;
        Ok(vec![])
    }

    fn deliver(
        &self,
        secrets: &Secrets,
        body: &Value,
        _now: Timestamp,
    ) -> Result<Delivery, String> {
        let secret = first_secret(secrets)?;
        let mut body = body.clone();
        let signature = SCHEME
            .sign(secret.as_bytes(), &body)
            .map_err(|e| e.to_string())?;
        body["signature"] = json!(signature);
        Ok(Delivery {
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
            query: String::new(),
        })
    }

    fn ids(&self) -> Ids {
        Ids {
            mapping: PLAN,
            customer: CUSTOMER,
            subscription: SUBSCRIPTION,
        }
    }

    fn steps(&self, start: i64, failed_at: i64) -> Option<Steps> {
        Some(Steps {
            created: vec![webhook(
                "ev-created",
                "subscription_created",
                start - 100,
                None,
            )],
            renewed: vec![webhook(
                "ev-renewed",
                "invoice_settled",
                start - 90,
                Some("inv-2"),
            )],
            quantity: vec![webhook(
                "ev-quantity",
                "subscription_changed",
                start - 80,
                None,
            )],
            failed: vec![webhook(
                "ev-failed",
                "invoice_dunning",
                failed_at,
                Some("inv-3"),
            )],
            recovered: vec![webhook(
                "ev-recovered",
                "invoice_settled",
                failed_at + 1,
                Some("inv-3"),
            )],
            cancelled: vec![webhook(
                "ev-cancelled",
                "subscription_cancelled",
                failed_at + 2,
                None,
            )],
            refunded: vec![webhook(
                "ev-refunded",
                "invoice_refund",
                failed_at + 3,
                Some("inv-2"),
            )],
            cancel_ends_at: start + 2 * MONTH,
        })
    }

    fn api_credentials(&self) -> Option<Value> {
        Some(json!({"api_key": API_KEY}))
    }

    fn api_answer(&self, stage: &Stage, request: &ApiRequest) -> Option<(u16, Value)> {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{API_KEY}:"));
        if request.headers.value("authorization") != Some(format!("Basic {basic}").as_str()) {
            return Some((
                401,
                json!({"error": "Unauthorized", "http_status": 401, "http_reason": "Unauthorized",
                       "path": request.path_and_query, "timestamp": rfc(stage.start)}),
            ));
        }
        if request.method != "GET" {
            return None;
        }
        let reached = ORDER.iter().position(|s| *s == stage.step).unwrap_or(0);
        let path = request.path_and_query;
        if let Some(id) = path.strip_prefix("/v1/event/") {
            let steps = self.steps(stage.start, stage.failed_at)?;
            let body = steps
                .all()
                .into_iter()
                .flat_map(|(_, bodies)| bodies.iter())
                .find(|b| b["event_id"] == id)?
                .clone();
            return Some((200, recorded_event(&body)));
        }
        if path == format!("/v1/subscription/{SUBSCRIPTION}") {
            return Some((200, subscription(stage, reached)));
        }
        if path == format!("/v1/customer/{CUSTOMER}") {
            return Some((200, customer(stage.start)));
        }
        let invoice_id = path.strip_prefix("/v1/invoice/")?;
        Some((200, invoice(stage, reached, invoice_id)?))
    }
}

/// A webhook as billwerk posts it (before `deliver` signs it).
fn webhook(event: &str, event_type: &str, at: i64, invoice: Option<&str>) -> Value {
    let event_id = format!("{event}-{}", body_id(event.as_bytes()));
    let mut body = json!({
        "id": body_id(format!("webhook {event_id}").as_bytes()),
        "event_id": event_id,
        "event_type": event_type,
        "timestamp": rfc(at),
        "customer": CUSTOMER,
        "subscription": SUBSCRIPTION,
    });
    if let Some(invoice) = invoice {
        body["invoice"] = json!(invoice);
    }
    body
}

/// `GET /v1/event/{id}`: the event as billwerk recorded it.
fn recorded_event(webhook: &Value) -> Value {
    let mut event = json!({
        "id": webhook["event_id"], "event_type": webhook["event_type"],
        "customer": webhook["customer"], "subscription": webhook["subscription"],
        "created": webhook["timestamp"],
    });
    if let Some(invoice) = webhook.get("invoice") {
        event["invoice"] = invoice.clone();
    }
    event
}

fn at_least(reached: usize, step: &str) -> bool {
    ORDER
        .iter()
        .position(|s| *s == step)
        .is_some_and(|i| reached >= i)
}

/// `GET /v1/subscription/{handle}` once `reached` (an index in [`ORDER`]) happened.
fn subscription(stage: &Stage, reached: usize) -> Value {
    let start = stage.start;
    let renewed = at_least(reached, "renewed");
    let period_start = if renewed { start + MONTH } else { start };
    let dunning = usize::from(at_least(reached, "failed") && !at_least(reached, "recovered"));
    let cancelled = at_least(reached, "cancelled");
    json!({
        "handle": SUBSCRIPTION, "customer": CUSTOMER, "plan": PLAN, "state": "active",
        "test": false, "quantity": if at_least(reached, "quantity") { 5 } else { 1 },
        "timezone": "Europe/Copenhagen", "created": rfc(start - 100), "renewing": !cancelled,
        "plan_version": 1, "start_date": rfc(start - 100),
        "current_period_start": rfc(period_start), "next_period_start": rfc(period_start + MONTH),
        "first_period_start": rfc(start), "is_cancelled": cancelled,
        "expires": if cancelled { json!(rfc(start + 2 * MONTH)) } else { Value::Null },
        "cancelled_date": if cancelled { json!(rfc(stage.failed_at + 2)) } else { Value::Null },
        "in_trial": false, "has_started": true,
        "renewal_count": if renewed { 2 } else { 1 }, "payment_method_added": true,
        "failed_invoices": 0, "failed_amount": 0, "cancelled_invoices": 0, "cancelled_amount": 0,
        "pending_invoices": 0, "pending_amount": 0,
        "dunning_invoices": dunning, "dunning_amount": dunning * 2500,
        "settled_invoices": if renewed { 2 } else { 1 }, "settled_amount": 5000,
        "refunded_amount": if at_least(reached, "refunded") { 2500 } else { 0 },
        "subscription_discounts": [], "subscription_add_ons": [],
    })
}

/// `GET /v1/invoice/{id}`: inv-2 the renewal (refunded at the end), inv-3 the one that
/// went into dunning and was paid.
fn invoice(stage: &Stage, reached: usize, id: &str) -> Option<Value> {
    let start = stage.start;
    let (state, number, from, extra) = match id {
        "inv-2" => {
            let refunded = at_least(reached, "refunded");
            let settled = json!({"settled": rfc(start - 90), "settled_amount": 2500,
                "refunded_amount": if refunded { 2500 } else { 0 },
                "credit_notes": if refunded {
                    json!([{"id": "cn-1", "transaction": "tr-refund-1", "amount": 2500,
                            "created": rfc(stage.failed_at + 3), "credit_note_lines": []}])
                } else { json!([]) }});
            ("settled", 2, start + MONTH, settled)
        }
        "inv-3" if at_least(reached, "failed") => {
            let paid = at_least(reached, "recovered");
            let dunning = json!({"dunning_start": rfc(stage.failed_at), "dunning_count": 1,
                "settled_amount": if paid { 2500 } else { 0 }, "refunded_amount": 0,
                "settled": if paid { json!(rfc(stage.failed_at + 1)) } else { Value::Null }});
            (
                if paid { "settled" } else { "dunning" },
                3,
                start + MONTH,
                dunning,
            )
        }
        _ => return None,
    };
    let mut invoice = json!({
        "id": id, "handle": format!("inv-{number}"), "customer": CUSTOMER,
        "subscription": SUBSCRIPTION, "plan": PLAN, "state": state, "type": "s", "amount": 2500,
        "number": number, "currency": "EUR", "due": rfc(from), "created": rfc(from),
        "credits": [], "discount_amount": 0, "org_amount": 2500, "amount_vat": 500,
        "amount_ex_vat": 2000, "period_number": number, "period_from": rfc(from),
        "period_to": rfc(from + MONTH), "additional_costs": [], "transactions": [],
        "order_lines": [{"id": format!("ol-{number}"), "ordertext": "Pro", "amount": 2500,
            "vat": 0.25, "quantity": 1, "origin": "plan", "timestamp": rfc(from),
            "amount_vat": 500, "amount_ex_vat": 2000, "unit_amount": 2500,
            "unit_amount_vat": 500, "unit_amount_ex_vat": 2000,
            "amount_defined_incl_vat": true, "origin_handle": PLAN,
            "period_from": rfc(from), "period_to": rfc(from + MONTH)}],
    });
    for (k, v) in extra.as_object()? {
        invoice[k] = v.clone();
    }
    Some(invoice)
}

/// `GET /v1/customer/{handle}`.
fn customer(start: i64) -> Value {
    json!({"handle": CUSTOMER, "email": "ann@example.com", "first_name": "Ann",
           "last_name": "Example", "country": "DK", "test": false, "created": rfc(start - 200),
           "active_subscriptions": 1, "trial_active_subscriptions": 0,
           "trial_cancelled_subscriptions": 0, "expired_subscriptions": 0,
           "on_hold_subscriptions": 0, "cancelled_subscriptions": 0,
           "non_renewing_subscriptions": 0, "failed_invoices": 0, "failed_amount": 0,
           "cancelled_invoices": 0, "cancelled_amount": 0, "pending_invoices": 0,
           "pending_amount": 0, "dunning_invoices": 0, "dunning_amount": 0,
           "settled_invoices": 2, "settled_amount": 5000, "refunded_amount": 0})
}
