//! Paddle Classic: form alerts signed inside the form (`p_signature`, RSA-SHA1 over the
//! PHP-serialized sorted fields) with the kit's own key; the integration holds the kit's
//! public key (generated for the tests, in the PEM format Paddle's dashboard shows). Steps are
//! JSON objects of the alert's fields; [`PaddleClassicKit::form`] signs and encodes them.

use super::{Delivery, Ids, Kit, MONTH, OrderSteps, Settings, SignedHeaders, Steps, first_secret};
use crate::decode::civil;
use crate::providers::paddle_classic::SCHEME;
use crate::scheme::rsa_signature;
use crate::{Secrets, Timestamp};
use serde_json::{Value, json};

pub struct PaddleClassicKit;

/// The kit's key pair (`tests/fixtures/paddle_classic/test_key*.pem`, 2048-bit to keep debug
/// builds quick; the tests also verify a 4096-bit key as Paddle issues them).
pub const PUBLIC_KEY_PEM: &str =
    include_str!("../../tests/fixtures/paddle_classic/test_key.pub.pem");
const PRIVATE_KEY_PEM: &str = include_str!("../../tests/fixtures/paddle_classic/test_key.pem");

const PLAN: &str = "652810";
const USER: &str = "482913";
const SUBSCRIPTION: &str = "3915024";

impl PaddleClassicKit {
    /// The body Paddle posts for `fields` (a JSON object of strings): the fields plus
    /// `p_signature`, form-encoded. `Err` unless `secrets` holds the kit's public key (the
    /// private key of any other is Paddle's, not here).
    pub fn form(&self, secrets: &Secrets, fields: &Value) -> Result<Vec<u8>, String> {
        let key = first_secret(secrets)?;
        let ours = rsa_signature::public_key(PUBLIC_KEY_PEM).map_err(|e| e.to_string())?;
        if rsa_signature::public_key(key).ok() != Some(ours) {
            return Err(
                "simulate paddle_classic signs with the testkit's key: configure its \
                        public key (tests/fixtures/paddle_classic/test_key.pub.pem)"
                    .into(),
            );
        }
        let mut pairs = pairs(fields)?;
        pairs.retain(|(name, _)| name != SCHEME.field);
        let signature = SCHEME.sign(PRIVATE_KEY_PEM, &pairs);
        pairs.push((SCHEME.field.to_string(), signature));
        Ok(super::form_encode(&pairs).into_bytes())
    }
}

/// A JSON object's fields as form pairs (numbers and booleans as PHP casts them: `1`, `true`
/// as `1`, `false` as empty).
pub(crate) fn pairs(fields: &Value) -> Result<Vec<(String, String)>, String> {
    let object = fields
        .as_object()
        .ok_or("the fields are not a JSON object")?;
    Ok(object
        .iter()
        .map(|(name, value)| {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Bool(true) => "1".into(),
                Value::Bool(false) | Value::Null => String::new(),
                other => other.to_string(),
            };
            (name.clone(), text)
        })
        .collect())
}

impl Kit for PaddleClassicKit {
    fn settings(&self) -> Settings {
        Settings {
            secrets: vec![PUBLIC_KEY_PEM.into()],
            options: json!({}),
        }
    }

    /// Paddle Classic signs inside the form ([`deliver`](Kit::deliver)): no header.
    fn sign(
        &self,
        _secrets: &Secrets,
        _body: &[u8],
        _now: Timestamp,
    ) -> Result<SignedHeaders, String> {
        Ok(Vec::new())
    }

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

    fn ids(&self) -> Ids {
        Ids {
            mapping: PLAN,
            customer: USER,
            subscription: SUBSCRIPTION,
        }
    }

    fn steps(&self, start: i64, failed_at: i64) -> Option<Steps> {
        Some(paddle_classic_steps(start, failed_at))
    }

    /// A one-time checkout pays one product (Paddle Classic has no multi-line orders): the
    /// mapped product, quantity 2, then a full refund.
    fn order_steps(&self, start: i64) -> Option<OrderSteps> {
        Some(paddle_classic_order(start))
    }

    fn expires_after(&self, start: i64, periods: i64) -> i64 {
        paid_through(start + periods * MONTH)
    }
}

/// `YYYY-MM-DD` of the UTC day `at` falls in.
fn day(at: i64) -> String {
    Timestamp::from_unix_seconds(at).to_rfc3339()[..10].to_string()
}

/// `YYYY-MM-DD HH:MM:SS` (UTC), Paddle's `event_time`.
fn event_time(at: i64) -> String {
    let text = Timestamp::from_unix_seconds(at).to_rfc3339();
    format!("{} {}", &text[..10], &text[11..19])
}

/// When a license paid until the day `at` falls in expires: the end of that UTC day.
pub fn paid_through(at: i64) -> i64 {
    let midnight = civil::date(&day(at)).expect("a formatted day").millis() / 1000;
    midnight + 86_400
}

/// The fields every subscription alert carries.
fn alert(name: &str, id: u64, at: i64, extra: Value) -> Value {
    let mut fields = json!({
        "alert_name": name, "alert_id": id.to_string(), "event_time": event_time(at),
        "subscription_id": SUBSCRIPTION, "subscription_plan_id": PLAN, "user_id": USER,
        "email": "ann@example.com", "marketing_consent": "1", "currency": "USD",
        "passthrough": "{\"account\":\"ann\"}",
        "checkout_id": "27835673-chre93c81118fc7-b3092639c1",
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        fields[k] = v.clone();
    }
    fields
}

fn urls() -> Value {
    json!({"cancel_url": "https://subscription-management.paddle.com/subscription/3915024/hash/1f2e/cancel",
           "update_url": "https://subscription-management.paddle.com/subscription/3915024/hash/1f2e/update"})
}

fn merged(a: Value, b: Value) -> Value {
    let mut a = a;
    for (k, v) in b.as_object().into_iter().flatten() {
        a[k] = v.clone();
    }
    a
}

/// `subscription_payment_succeeded` for an order, paid until `next_bill` (Unix s).
fn payment(id: u64, at: i64, order: &str, next_bill: i64, quantity: u32, initial: bool) -> Value {
    alert(
        "subscription_payment_succeeded",
        id,
        at,
        json!({"order_id": order, "subscription_payment_id": format!("9{order}"),
               "status": "active", "next_bill_date": day(next_bill),
               "initial_payment": if initial { "1" } else { "0" }, "instalments": "1",
               "quantity": quantity.to_string(), "unit_price": "15.00",
               "sale_gross": format!("{}.00", 15 * quantity), "payment_tax": "0.00",
               "fee": "1.25", "earnings": "13.75", "payment_method": "card",
               "country": "DE", "coupon": "", "customer_name": "Ann Example",
               "plan_name": "Keygate Pro", "next_payment_amount": "15.00",
               "receipt_url": format!("https://my.paddle.com/receipt/{order}/abc123"),
               "balance_currency": "USD", "balance_gross": "15.00", "balance_tax": "0.00",
               "balance_fee": "1.25", "balance_earnings": "13.75"}),
    )
}

fn paddle_classic_steps(now: i64, failed_at: i64) -> Steps {
    let p1 = now + MONTH;
    let p2 = now + 2 * MONTH;
    Steps {
        // A new subscription: `subscription_created` and its first payment, often in the
        // same second (the alert ids order them).
        created: vec![
            alert(
                "subscription_created",
                880_001,
                now - 100,
                merged(
                    urls(),
                    json!({"status": "active", "next_bill_date": day(p1), "quantity": "1",
                           "unit_price": "15.00", "source": "https://example.com/pricing"}),
                ),
            ),
            payment(880_002, now - 100, "11300-1", p1, 1, true),
        ],
        renewed: vec![payment(880_003, now - 90, "11300-2", p2, 1, false)],
        quantity: vec![alert(
            "subscription_updated",
            880_004,
            now - 80,
            merged(
                urls(),
                json!({"status": "active", "old_status": "active",
                       "next_bill_date": day(p2), "old_next_bill_date": day(p2),
                       "old_subscription_plan_id": PLAN, "new_quantity": "5",
                       "old_quantity": "1", "new_unit_price": "15.00",
                       "old_unit_price": "15.00", "new_price": "75.00", "old_price": "15.00"}),
            ),
        )],
        failed: vec![alert(
            "subscription_payment_failed",
            880_005,
            failed_at,
            merged(
                urls(),
                json!({"status": "past_due", "order_id": "11300-3",
                       "subscription_payment_id": "911300-3", "amount": "75.00",
                       "quantity": "5", "unit_price": "15.00", "attempt_number": "1",
                       "instalments": "1", "next_retry_date": day(failed_at + 3 * 86_400)}),
            ),
        )],
        recovered: vec![payment(880_006, failed_at + 1, "11300-3", p2, 5, false)],
        // Cancelled at the end of the paid period: access until the effective date.
        cancelled: vec![alert(
            "subscription_cancelled",
            880_007,
            failed_at + 2,
            json!({"status": "deleted", "cancellation_effective_date": day(p2),
                   "quantity": "5", "unit_price": "15.00"}),
        )],
        refunded: vec![alert(
            "subscription_payment_refunded",
            880_008,
            failed_at + 3,
            json!({"status": "deleted", "order_id": "11300-3",
                   "subscription_payment_id": "911300-3", "refund_type": "full",
                   "refund_reason": "Customer request", "amount": "75.00",
                   "gross_refund": "75.00", "tax_refund": "0.00", "fee_refund": "6.25",
                   "earnings_decrease": "68.75", "quantity": "5", "unit_price": "15.00",
                   "initial_payment": "0", "instalments": "1",
                   "balance_currency": "USD", "balance_gross_refund": "75.00",
                   "balance_tax_refund": "0.00", "balance_fee_refund": "6.25",
                   "balance_earnings_decrease": "68.75"}),
        )],
        cancel_ends_at: paid_through(p2),
    }
}

/// The one-time product the order steps sell (also the mapping's id there: the lifecycle maps
/// `ids().mapping`).
fn paddle_classic_order(now: i64) -> OrderSteps {
    let order = "11301-7";
    let common = json!({"order_id": order, "email": "ann@example.com",
                        "marketing_consent": "0", "currency": "USD",
                        "checkout_id": "27835674-chre93c81118fc8-c3092639d2", "passthrough": ""});
    OrderSteps {
        paid: vec![merged(
            common.clone(),
            json!({"alert_name": "payment_succeeded", "alert_id": "881001",
                   "event_time": event_time(now - 10), "product_id": PLAN,
                   "product_name": "Keygate Desktop", "quantity": "2", "sale_gross": "30.00",
                   "payment_tax": "0.00", "fee": "2.00", "earnings": "28.00",
                   "customer_name": "Ann Example", "country": "DE", "coupon": "",
                   "payment_method": "card", "ip": "203.0.113.9", "used_price_override": "0",
                   "receipt_url": "https://my.paddle.com/receipt/11301-7/aa11",
                   "balance_currency": "USD", "balance_gross": "30.00", "balance_tax": "0.00",
                   "balance_fee": "2.00", "balance_earnings": "28.00"}),
        )],
        refunded: vec![merged(
            common,
            json!({"alert_name": "payment_refunded", "alert_id": "881002",
                   "event_time": event_time(now - 5), "refund_type": "full",
                   "refund_reason": "Customer request", "amount": "30.00",
                   "gross_refund": "30.00", "tax_refund": "0.00", "fee_refund": "2.00",
                   "earnings_decrease": "28.00", "quantity": "2", "balance_currency": "USD",
                   "balance_gross_refund": "30.00", "balance_tax_refund": "0.00",
                   "balance_fee_refund": "2.00", "balance_earnings_decrease": "28.00"}),
        )],
        order: order.to_string(),
    }
}
