//! Braintree: notifications shaped from the SDK's `webhook_testing_gateway` and a captured
//! subscription notification (the whole subscription with its transactions), base64-encoded
//! with a line break every 76 characters as the SDK's `encodebytes` does, posted as the form
//! fields `bt_signature` and `bt_payload`.
//!
//! A step body is the notification as a JSON tree (element names as keys, see [`to_xml`]), so
//! its values can be rewritten like any platform's JSON; [`BraintreeKit::form`] writes the XML,
//! encodes and signs it. A body `{"xml": "<notification>…"}` is sent as that XML (fixtures).

use super::{Delivery, Ids, Kit, MONTH, Settings, SignedHeaders, Steps, rfc};
use crate::scheme::hashed_key_hmac::KeyPair;
use crate::testkit::twocheckout::push;
use crate::{Secrets, Timestamp};
use base64::Engine;
use serde_json::{Value, json};

pub struct BraintreeKit;

const SECRET: &str = "bt_public_test:bt_private_key_for_tests";
const SUBSCRIPTION: &str = "fpps4w";
const CUSTOMER: &str = "86199926";
const PLAN: &str = "pro-monthly";

impl Kit for BraintreeKit {
    fn settings(&self) -> Settings {
        Settings {
            secrets: vec![SECRET.into()],
            options: json!({}),
        }
    }

    /// Braintree signs inside the form (`bt_signature`): no header but the content type.
    fn sign(
        &self,
        secrets: &Secrets,
        _body: &[u8],
        _now: Timestamp,
    ) -> Result<SignedHeaders, String> {
        key_pair(secrets)?;
        Ok(vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        )])
    }

    fn ids(&self) -> Ids {
        Ids {
            mapping: PLAN,
            customer: CUSTOMER,
            subscription: SUBSCRIPTION,
        }
    }

    fn steps(&self, start: i64, failed_at: i64) -> Option<Steps> {
        Some(braintree_steps(start, failed_at))
    }

    /// Paid-through dates are days: the license runs to the end of the day.
    fn expires_after(&self, start: i64, periods: i64) -> i64 {
        day_end(start + periods * MONTH)
    }

    /// `bt_signature` and `bt_payload`, form-encoded (Braintree signs inside the form).
    fn deliver(
        &self,
        secrets: &Secrets,
        body: &Value,
        _now: Timestamp,
    ) -> Result<Delivery, String> {
        Ok(Delivery {
            headers: vec![(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            body: self.form(secrets, body)?,
            query: String::new(),
        })
    }
}

fn key_pair(secrets: &Secrets) -> Result<KeyPair<'_>, String> {
    let secret = super::first_secret(secrets)?;
    KeyPair::parse(secret).ok_or_else(|| "a Braintree secret is `public_key:private_key`".into())
}

impl BraintreeKit {
    /// `bt_signature=…&bt_payload=…` for a step body, signed with the first key pair.
    pub fn form(&self, secrets: &Secrets, body: &Value) -> Result<Vec<u8>, String> {
        let pair = key_pair(secrets)?;
        let xml = match body["xml"].as_str() {
            Some(xml) => xml.to_string(),
            None if body.get("notification").is_some() => to_xml(body),
            None => return Err("a Braintree step is a {\"notification\": …} tree".into()),
        };
        let payload = encode_lines(xml.as_bytes());
        let mut out = String::new();
        push(&mut out, "bt_signature", &pair.sign(&payload));
        push(&mut out, "bt_payload", &payload);
        Ok(out.into_bytes())
    }
}

/// Base64 with a `\n` after every 76 characters and at the end (Python's `encodebytes`).
pub fn encode_lines(bytes: impl AsRef<[u8]>) -> String {
    let flat = base64::engine::general_purpose::STANDARD.encode(bytes.as_ref());
    let mut out = String::with_capacity(flat.len() + flat.len() / 76 + 1);
    for chunk in flat.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out
}

/// The calendar day of `at` (UTC), as Braintree writes billing dates.
pub fn day(at: i64) -> String {
    rfc(at)[..10].to_string()
}

/// The end of the day Braintree writes for `at`: what a paid-through date means.
pub fn day_end(at: i64) -> i64 {
    at - at.rem_euclid(86_400) + 86_400
}

/// One transaction of a subscription (newest first in the XML).
#[derive(Clone, Copy)]
pub struct Transaction<'a> {
    pub id: &'a str,
    pub status: &'a str,
    pub at: i64,
}

/// The XML of a notification tree: an object is elements in order, an array is a
/// `type="array"` element holding its items (each a one-key object naming the item element),
/// `null` is `nil="true"`, a string or number is the element's text (escaped).
pub fn to_xml(tree: &Value) -> String {
    fn write(out: &mut String, name: &str, value: &Value) {
        match value {
            Value::Null => out.push_str(&format!("<{name} nil=\"true\"/>")),
            Value::Object(map) => {
                out.push_str(&format!("<{name}>"));
                for (child, v) in map {
                    write(out, child, v);
                }
                out.push_str(&format!("</{name}>"));
            }
            Value::Array(items) => {
                out.push_str(&format!("<{name} type=\"array\">"));
                for item in items {
                    if let Value::Object(map) = item {
                        for (child, v) in map {
                            write(out, child, v);
                        }
                    }
                }
                out.push_str(&format!("</{name}>"));
            }
            Value::String(text) => {
                let escaped = text
                    .replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;");
                out.push_str(&format!("<{name}>{escaped}</{name}>"));
            }
            other => out.push_str(&format!("<{name}>{other}</{name}>")),
        }
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    if let Value::Object(map) = tree {
        for (name, value) in map {
            write(&mut out, name, value);
        }
    }
    out.push('\n');
    out
}

/// A notification about the kit's subscription (a tree for [`to_xml`]).
pub fn subscription_notification(
    kind: &str,
    at: i64,
    status: &str,
    paid_through: i64,
    add_ons: &[(&str, i64)],
    transactions: &[Transaction],
) -> Value {
    let add_ons: Vec<Value> = add_ons
        .iter()
        .map(|(id, qty)| {
            json!({"add-on": {"amount": "5.00", "current-billing-cycle": "1", "id": id,
                              "name": id, "never-expires": "true",
                              "number-of-billing-cycles": null, "quantity": qty.to_string()}})
        })
        .collect();
    let transactions: Vec<Value> = transactions
        .iter()
        .map(|t| {
            json!({"transaction": {
                "id": t.id, "status": t.status, "type": "sale", "currency-iso-code": "USD",
                "amount": "30.00", "created-at": rfc(t.at),
                "customer": {"id": CUSTOMER, "first-name": "Ann", "last-name": "Example",
                             "company": null, "email": "ann@example.com"},
                "plan-id": PLAN, "subscription-id": SUBSCRIPTION,
                "subscription": {"billing-period-end-date": day(paid_through),
                                 "billing-period-start-date": day(paid_through - MONTH)},
                "recurring": "true"}})
        })
        .collect();
    json!({"notification": {
        "kind": kind,
        "timestamp": rfc(at),
        "subject": {"subscription": {
            "add-ons": add_ons, "balance": "0.00", "billing-day-of-month": "1",
            "billing-period-end-date": day(paid_through),
            "billing-period-start-date": day(paid_through - MONTH),
            "current-billing-cycle": "1", "days-past-due": null, "discounts": [],
            "failure-count": "0", "id": SUBSCRIPTION,
            "merchant-account-id": "keygate_test", "never-expires": "true",
            "next-billing-date": day(paid_through + 86_400),
            "number-of-billing-cycles": null,
            "paid-through-date": day(paid_through),
            "payment-method-token": "7js9mb", "plan-id": PLAN, "price": "30.00",
            "status": status, "trial-duration": null, "trial-period": "false",
            "transactions": transactions}}}})
}

/// A notification about a dispute of `transaction`.
pub fn dispute_notification(
    kind: &str,
    at: i64,
    dispute_kind: &str,
    status: &str,
    transaction: &str,
) -> Value {
    json!({"notification": {
        "kind": kind,
        "timestamp": rfc(at),
        "subject": {"dispute": {
            "id": format!("dp_{transaction}"), "amount": "30.00", "amount-disputed": "30.00",
            "amount-won": "0.00", "case-number": "CASE-12345", "currency-iso-code": "USD",
            "kind": dispute_kind, "merchant-account-id": "keygate_test", "reason": "fraud",
            "reason-code": null, "status": status,
            "transaction": {"id": transaction, "amount": "30.00", "created-at": rfc(at),
                            "order-id": null}}}}})
}

fn braintree_steps(now: i64, failed_at: i64) -> Steps {
    let p1 = now + MONTH;
    let p2 = now + 2 * MONTH;
    // Transaction ids follow the start, so two runs of a scenario never share a payment.
    let ids: Vec<String> = (1..=4).map(|n| format!("t{n}{:x}", now)).collect();
    let t1 = Transaction {
        id: &ids[0],
        status: "submitted_for_settlement",
        at: now - 100,
    };
    let t2 = Transaction {
        id: &ids[1],
        status: "submitted_for_settlement",
        at: now - 90,
    };
    let t3 = Transaction {
        id: &ids[2],
        status: "processor_declined",
        at: failed_at,
    };
    let t4 = Transaction {
        id: &ids[3],
        status: "submitted_for_settlement",
        at: failed_at + 1,
    };
    let seat = [("pro-seat", 1)];
    let sub = subscription_notification;
    Steps {
        created: vec![sub(
            "subscription_went_active",
            now - 100,
            "Active",
            p1,
            &seat,
            &[t1],
        )],
        renewed: vec![sub(
            "subscription_charged_successfully",
            now - 90,
            "Active",
            p2,
            &seat,
            &[t2, t1],
        )],
        // Braintree plans have no quantity (an add-on's quantity is its own item).
        quantity: Vec::new(),
        failed: vec![
            sub(
                "subscription_charged_unsuccessfully",
                failed_at,
                "Active",
                p2,
                &seat,
                &[t3, t2, t1],
            ),
            sub(
                "subscription_went_past_due",
                failed_at,
                "Past Due",
                p2,
                &seat,
                &[t3, t2, t1],
            ),
        ],
        // The retried charge succeeds: the subscription is active again.
        recovered: vec![sub(
            "subscription_went_active",
            failed_at + 1,
            "Active",
            p2,
            &seat,
            &[t4, t3, t2, t1],
        )],
        // Canceled: nothing more is charged; what was paid for runs to its end.
        cancelled: vec![sub(
            "subscription_canceled",
            failed_at + 2,
            "Canceled",
            p2,
            &seat,
            &[t4, t3, t2, t1],
        )],
        // Braintree notifies no refund: the reversal it sends is a chargeback.
        refunded: vec![dispute_notification(
            "dispute_opened",
            failed_at + 3,
            "chargeback",
            "open",
            &ids[1],
        )],
        cancel_ends_at: day_end(p2),
    }
}
