//! Braintree: notifications shaped from the SDK's `webhook_testing_gateway` and a captured
//! subscription notification (the whole subscription with its transactions), base64-encoded
//! with a line break every 76 characters as the SDK's `encodebytes` does, posted as the form
//! fields `bt_signature` and `bt_payload`.
//!
//! A step body is `{"xml": "<notification>…"}`; [`BraintreeKit::form`] encodes and signs it.

use super::{Ids, Kit, MONTH, Settings, SignedHeaders, Steps, rfc};
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

    fn steps(&self, start: i64, failed_at: i64) -> Steps {
        braintree_steps(start, failed_at)
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
        let xml = body["xml"]
            .as_str()
            .ok_or("a Braintree step is {\"xml\": \"<notification>…\"}")?;
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

/// A `<notification>` about the kit's subscription.
pub fn subscription_xml(
    kind: &str,
    at: i64,
    status: &str,
    paid_through: i64,
    add_ons: &[(&str, i64)],
    transactions: &[Transaction],
) -> String {
    let add_ons: String = add_ons
        .iter()
        .map(|(id, qty)| {
            format!(
                "<add-on><amount>5.00</amount><current-billing-cycle type=\"integer\">1</current-billing-cycle>\
                 <id>{id}</id><name>{id}</name><never-expires type=\"boolean\">true</never-expires>\
                 <number-of-billing-cycles nil=\"true\"/><quantity type=\"integer\">{qty}</quantity></add-on>"
            )
        })
        .collect();
    let transactions: String = transactions
        .iter()
        .map(|t| {
            format!(
                "<transaction><id>{id}</id><status>{status}</status><type>sale</type>\
                 <currency-iso-code>USD</currency-iso-code><amount>30.00</amount>\
                 <created-at type=\"datetime\">{created}</created-at>\
                 <customer><id>{CUSTOMER}</id><first-name>Ann</first-name><last-name>Example</last-name>\
                 <company nil=\"true\"/><email>ann@example.com</email></customer>\
                 <plan-id>{PLAN}</plan-id><subscription-id>{SUBSCRIPTION}</subscription-id>\
                 <subscription><billing-period-end-date type=\"date\">{end}</billing-period-end-date>\
                 <billing-period-start-date type=\"date\">{start}</billing-period-start-date></subscription>\
                 <recurring type=\"boolean\">true</recurring></transaction>",
                id = t.id,
                status = t.status,
                created = rfc(t.at),
                end = day(paid_through),
                start = day(paid_through - MONTH),
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<notification>\n  <kind>{kind}</kind>\n  \
         <timestamp type=\"datetime\">{stamp}</timestamp>\n  <subject>\n    <subscription>\
         <add-ons type=\"array\">{add_ons}</add-ons><balance>0.00</balance>\
         <billing-day-of-month type=\"integer\">1</billing-day-of-month>\
         <billing-period-end-date type=\"date\">{end}</billing-period-end-date>\
         <billing-period-start-date type=\"date\">{start}</billing-period-start-date>\
         <current-billing-cycle type=\"integer\">1</current-billing-cycle>\
         <days-past-due nil=\"true\"/><discounts type=\"array\"/>\
         <failure-count type=\"integer\">0</failure-count><id>{SUBSCRIPTION}</id>\
         <merchant-account-id>keygate_test</merchant-account-id>\
         <never-expires type=\"boolean\">true</never-expires>\
         <next-billing-date type=\"date\">{next}</next-billing-date>\
         <number-of-billing-cycles nil=\"true\"/>\
         <paid-through-date type=\"date\">{end}</paid-through-date>\
         <payment-method-token>7js9mb</payment-method-token><plan-id>{PLAN}</plan-id>\
         <price>30.00</price><status>{status}</status>\
         <trial-duration nil=\"true\"/><trial-period type=\"boolean\">false</trial-period>\
         <transactions type=\"array\">{transactions}</transactions>\
         </subscription>\n  </subject>\n</notification>\n",
        stamp = rfc(at),
        end = day(paid_through),
        start = day(paid_through - MONTH),
        next = day(paid_through + 86_400),
    )
}

/// A `<notification>` about a dispute of `transaction`.
pub fn dispute_xml(
    kind: &str,
    at: i64,
    dispute_kind: &str,
    status: &str,
    transaction: &str,
) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<notification>\n  <kind>{kind}</kind>\n  \
         <timestamp type=\"datetime\">{stamp}</timestamp>\n  <subject>\n    <dispute>\
         <id>dp_{transaction}</id><amount>30.00</amount><amount-disputed>30.00</amount-disputed>\
         <amount-won>0.00</amount-won><case-number>CASE-12345</case-number>\
         <currency-iso-code>USD</currency-iso-code><kind>{dispute_kind}</kind>\
         <merchant-account-id>keygate_test</merchant-account-id><reason>fraud</reason>\
         <reason-code nil=\"true\"/><status>{status}</status>\
         <transaction><id>{transaction}</id><amount>30.00</amount>\
         <created-at>{stamp}</created-at><order-id nil=\"true\"/></transaction>\
         </dispute>\n  </subject>\n</notification>\n",
        stamp = rfc(at),
    )
}

fn xml(text: String) -> Value {
    json!({ "xml": text })
}

fn braintree_steps(now: i64, failed_at: i64) -> Steps {
    let p1 = now + MONTH;
    let p2 = now + 2 * MONTH;
    let t1 = Transaction {
        id: "t1fg6b",
        status: "submitted_for_settlement",
        at: now - 100,
    };
    let t2 = Transaction {
        id: "t2kq7c",
        status: "submitted_for_settlement",
        at: now - 90,
    };
    let t3 = Transaction {
        id: "t3zp8d",
        status: "processor_declined",
        at: failed_at,
    };
    let t4 = Transaction {
        id: "t4mr9e",
        status: "submitted_for_settlement",
        at: failed_at + 1,
    };
    let seat = [("pro-seat", 1)];
    Steps {
        created: vec![xml(subscription_xml(
            "subscription_went_active",
            now - 100,
            "Active",
            p1,
            &seat,
            &[t1],
        ))],
        renewed: vec![xml(subscription_xml(
            "subscription_charged_successfully",
            now - 90,
            "Active",
            p2,
            &seat,
            &[t2, t1],
        ))],
        // Braintree plans have no quantity (an add-on's quantity is its own item).
        quantity: Vec::new(),
        failed: vec![
            xml(subscription_xml(
                "subscription_charged_unsuccessfully",
                failed_at,
                "Active",
                p2,
                &seat,
                &[t3, t2, t1],
            )),
            xml(subscription_xml(
                "subscription_went_past_due",
                failed_at,
                "Past Due",
                p2,
                &seat,
                &[t3, t2, t1],
            )),
        ],
        // The retried charge succeeds: the subscription is active again.
        recovered: vec![xml(subscription_xml(
            "subscription_went_active",
            failed_at + 1,
            "Active",
            p2,
            &seat,
            &[t4, t3, t2, t1],
        ))],
        // Canceled: nothing more is charged; what was paid for runs to its end.
        cancelled: vec![xml(subscription_xml(
            "subscription_canceled",
            failed_at + 2,
            "Canceled",
            p2,
            &seat,
            &[t4, t3, t2, t1],
        ))],
        // Braintree notifies no refund: the reversal it sends is a chargeback.
        refunded: vec![xml(dispute_xml(
            "dispute_opened",
            failed_at + 3,
            "chargeback",
            "open",
            "t2kq7c",
        ))],
        cancel_ends_at: day_end(p2),
    }
}
