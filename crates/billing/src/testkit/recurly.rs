//! Recurly: thin JSON notifications signed in `recurly-signature`, named by the
//! `recurly-notification-id` header, and the v3 API (`v2021-02-25`) that completes them, as
//! the stand-in answers it for the lifecycle step reached.

use super::{
    ApiRequest, Ids, Kit, MONTH, Settings, SignedHeaders, Stage, Steps, body_id, first_secret, rfc,
};
use crate::providers::recurly::{NOTIFICATION_ID_HEADER, SCHEME};
use crate::{Secrets, Timestamp};
use serde_json::{Value, json};

pub struct RecurlyKit;

const SECRET: &str = "8b1f7c2e4a6d9e03f5b7c1d2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c6d8e0f2";
/// The integration's `api_credentials` in the lifecycle (a private API key's shape).
pub const API_KEY: &str = "5a8e0c6f2b4d41e3a9c7f1e2d3b4a5c6";
const SITE: &str = "qc326l1hl8k9";
const SUBSCRIPTION: &str = "rp1xq7mt0ann";
const SUBSCRIPTION_UUID: &str = "63ab531e1d5b1d47eaf1ef44eeb853c3";
const ACCOUNT: &str = "ann";
const PLAN: &str = "pro-monthly";

/// The lifecycle's steps, in order (what [`RecurlyKit::answer`] is told was reached).
const STEPS: [&str; 7] = [
    "created",
    "renewed",
    "quantity",
    "failed",
    "recovered",
    "cancelled",
    "refunded",
];

/// One of the lifecycle's transactions: (uuid, id, step, type, invoice number, amount,
/// refunded id).
type Tx = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    u32,
    f64,
    Option<&'static str>,
);

const TRANSACTIONS: [Tx; 5] = [
    (
        "63b068f7d409d4b4478dea4e6aba5801",
        "tx1ann",
        "created",
        "purchase",
        1001,
        50.0,
        None,
    ),
    (
        "63b068f7d409d4b4478dea4e6aba5802",
        "tx2ann",
        "renewed",
        "purchase",
        1002,
        50.0,
        None,
    ),
    (
        "63b068f7d409d4b4478dea4e6aba5803",
        "tx3ann",
        "failed",
        "purchase",
        1003,
        250.0,
        None,
    ),
    (
        "63b068f7d409d4b4478dea4e6aba5804",
        "tx4ann",
        "recovered",
        "purchase",
        1003,
        250.0,
        None,
    ),
    (
        "63b068f7d409d4b4478dea4e6aba5805",
        "tx5ann",
        "refunded",
        "refund",
        1004,
        50.0,
        Some("tx2ann"),
    ),
];

impl Kit for RecurlyKit {
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
        Ok(vec![
            (
                "recurly-signature".into(),
                SCHEME.sign(secret.as_bytes(), now.millis(), body),
            ),
            (NOTIFICATION_ID_HEADER.into(), notification_id(body)),
        ])
    }

    fn ids(&self) -> Ids {
        Ids {
            mapping: PLAN,
            customer: ACCOUNT,
            subscription: SUBSCRIPTION,
        }
    }

    fn api_credentials(&self) -> Option<Value> {
        Some(json!({"api_key": API_KEY}))
    }

    /// Recurly's v3 API: Basic auth with the key as user (401 otherwise, Recurly's error
    /// shape), the API version in `Accept`; 404 for what does not exist (yet).
    fn api_answer(&self, stage: &Stage, request: &ApiRequest) -> Option<(u16, Value)> {
        let expected = format!(
            "Basic {}",
            crate::crypto::encode_base64(format!("{API_KEY}:").as_bytes())
        );
        if request.headers.get("authorization") != Some(expected.as_str()) {
            return Some((
                401,
                json!({"error": {"type": "unauthorized",
                       "message": "Invalid API key. Please use a valid private API key."}}),
            ));
        }
        if request.method != "GET"
            || request.headers.get("accept") != Some(crate::providers::recurly::ACCEPT)
        {
            return Some((
                406,
                json!({"error": {"type": "invalid_api_version",
                       "message": "Please specify a valid API version in the Accept header."}}),
            ));
        }
        match self.answer(
            stage.start,
            stage.failed_at,
            stage.step,
            request.path_and_query,
        ) {
            Some(object) => Some((200, object)),
            None => Some((
                404,
                json!({"error": {"type": "not_found",
                       "message": format!("Couldn't find {}", request.path_and_query)}}),
            )),
        }
    }

    fn steps(&self, start: i64, failed_at: i64) -> Option<Steps> {
        let at = start - 100;
        let sub = |event: &str, at: i64| notification("subscription", event, at, SUBSCRIPTION_UUID);
        let pay = |event: &str, at: i64, step: &str| {
            let (uuid, ..) = TRANSACTIONS.iter().find(|t| t.2 == step).unwrap();
            notification("payment", event, at, uuid)
        };
        Some(Steps {
            created: vec![sub("created", at), pay("succeeded", at, "created")],
            renewed: vec![
                sub("renewed", at + 10),
                pay("succeeded", at + 10, "renewed"),
            ],
            quantity: vec![sub("updated", at + 20)],
            failed: vec![
                pay("failed", failed_at, "failed"),
                json!({"id": "radnhqhipxkw", "object_type": "dunning_event", "site_id": SITE,
                       "event_type": "created", "event_time": rfc(failed_at),
                       "invoice_number": 1003}),
            ],
            recovered: vec![pay("succeeded", failed_at + 1, "recovered")],
            cancelled: vec![sub("canceled", failed_at + 2)],
            refunded: vec![pay("refunded", failed_at + 3, "refunded")],
            cancel_ends_at: start + 2 * MONTH,
        })
    }
}

impl RecurlyKit {
    /// The Recurly API as it stands once `step` of the lifecycle (started at `start`, failed
    /// at `failed_at`) was reached: `None` = 404. Answers only requests authenticated with
    /// [`API_KEY`] (the caller checks the header).
    pub fn answer(&self, start: i64, failed_at: i64, step: &str, path: &str) -> Option<Value> {
        let reached = STEPS.iter().position(|s| *s == step)?;
        let past = |s: &str| {
            STEPS
                .iter()
                .position(|x| *x == s)
                .is_some_and(|i| i <= reached)
        };
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let by_sub = path
            .strip_prefix("/subscriptions/")
            .map(|rest| rest.split_once('/').unwrap_or((rest, "")));
        if let Some((id, rest)) = by_sub {
            if id != SUBSCRIPTION && id != format!("uuid-{SUBSCRIPTION_UUID}") {
                return None;
            }
            return match rest {
                "" => Some(subscription(start, failed_at, reached)),
                "invoices" => {
                    let unpaid = query.contains("state=past_due") && step == "failed";
                    let data: Vec<Value> = if unpaid {
                        vec![invoice(1003, "past_due", failed_at)]
                    } else {
                        Vec::new()
                    };
                    Some(json!({"object": "list", "has_more": false, "next": null, "data": data}))
                }
                _ => None,
            };
        }
        if let Some(id) = path.strip_prefix("/transactions/") {
            let tx = TRANSACTIONS
                .iter()
                .find(|t| id == format!("uuid-{}", t.0) || id == t.1)?;
            return past(tx.2).then(|| transaction(tx, start, failed_at));
        }
        if let Some(number) = path.strip_prefix("/invoices/number-") {
            let number: u32 = number.parse().ok()?;
            let state = match (number, step) {
                (1003, "failed") => "past_due",
                (1001..=1003, _) => "paid",
                _ => return None,
            };
            return Some(invoice(number, state, failed_at));
        }
        if path == format!("/accounts/code-{ACCOUNT}") {
            return Some(account());
        }
        None
    }
}

/// A notification as Recurly sends it: the object's id and uuid, no event id in the body.
fn notification(object_type: &str, event_type: &str, at: i64, uuid: &str) -> Value {
    json!({"id": format!("r{}", &uuid[uuid.len() - 11..]), "object_type": object_type,
           "site_id": SITE, "event_type": event_type, "event_time": rfc(at), "uuid": uuid})
}

/// Recurly's `recurly-notification-id`: the same for every retry of one notification.
fn notification_id(body: &[u8]) -> String {
    let h = body_id(body);
    format!("{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..24])
}

/// The account mini that subscriptions, invoices and transactions embed.
fn account_mini() -> Value {
    json!({"object": "account", "id": "r3oplsj3zo7a", "code": ACCOUNT,
        "email": "ann@example.com", "first_name": "Ann", "last_name": "Example",
        "company": null, "parent_account_id": null, "bill_to": "self"})
}

/// `GET /accounts/code-{code}`.
fn account() -> Value {
    let mut a = account_mini();
    a["state"] = json!("active");
    a["has_past_due_invoice"] = json!(false);
    a["has_active_subscription"] = json!(true);
    a["created_at"] = json!("2022-06-24T19:55:25Z");
    a
}

fn subscription(start: i64, failed_at: i64, reached: usize) -> Value {
    let renewed = reached >= 1;
    let quantity = if reached >= 2 { 5 } else { 1 };
    let canceled = reached >= 5;
    let period_end = if renewed {
        start + 2 * MONTH
    } else {
        start + MONTH
    };
    let period_start = period_end - MONTH;
    let activated = start - 100;
    json!({"id": SUBSCRIPTION, "object": "subscription", "uuid": SUBSCRIPTION_UUID,
        "account": account_mini(),
        "plan": {"object": "plan", "id": "qzu3ugmg6p4t", "code": PLAN, "name": "Pro monthly"},
        "state": if canceled { "canceled" } else { "active" },
        "quantity": quantity, "unit_amount": 50.0, "currency": "USD", "add_ons": [],
        "auto_renew": !canceled, "collection_method": "automatic",
        "created_at": rfc(activated), "updated_at": rfc(if canceled { failed_at + 2 } else { activated }),
        "activated_at": rfc(activated),
        "canceled_at": if canceled { json!(rfc(failed_at + 2)) } else { Value::Null },
        "expires_at": if canceled { json!(rfc(period_end)) } else { Value::Null },
        "current_period_started_at": rfc(period_start),
        "current_period_ends_at": rfc(period_end),
        "current_term_started_at": rfc(activated),
        "current_term_ends_at": rfc(activated + 12 * MONTH),
        "trial_started_at": null, "trial_ends_at": null,
        "remaining_billing_cycles": null, "total_billing_cycles": null,
        "paused_at": null, "remaining_pause_cycles": null, "pending_change": null})
}

fn invoice(number: u32, state: &str, at: i64) -> Value {
    json!({"id": format!("inv{number}"), "object": "invoice", "type": "charge",
        "origin": if number == 1001 { "purchase" } else { "renewal" },
        "state": state, "account": account_mini(), "subscription_ids": [SUBSCRIPTION],
        "number": number.to_string(), "collection_method": "automatic", "currency": "USD",
        "balance": if state == "paid" { 0.0 } else { 250.0 }, "total": 250.0,
        "created_at": rfc(at), "due_at": rfc(at), "closed_at": null,
        "dunning_events_sent": if state == "past_due" { 1 } else { 0 },
        "final_dunning_event": false})
}

fn transaction(tx: &Tx, start: i64, failed_at: i64) -> Value {
    let (uuid, id, step, kind, number, amount, original) = *tx;
    let succeeded = step != "failed";
    let at = match step {
        "created" => start - 100,
        "renewed" => start - 90,
        "failed" => failed_at,
        "recovered" => failed_at + 1,
        _ => failed_at + 3,
    };
    json!({"id": id, "object": "transaction", "uuid": uuid, "type": kind,
        "origin": if step == "created" { "api" } else { "recurring" },
        "original_transaction_id": original, "account": account_mini(),
        "invoice": {"object": "invoice", "id": format!("inv{number}"),
                    "number": number.to_string(),
                    "type": if kind == "refund" { "credit" } else { "charge" },
                    "state": if kind == "refund" { "closed" } else { "paid" }},
        "subscription_ids": [SUBSCRIPTION], "currency": "USD", "amount": amount,
        "status": if succeeded { "success" } else { "declined" }, "success": succeeded,
        "refunded": false, "collection_method": "automatic",
        "status_code": if succeeded { Value::Null } else { json!("insufficient_funds") },
        "created_at": rfc(at), "collected_at": rfc(at), "voided_at": null})
}
