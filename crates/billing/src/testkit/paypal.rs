//! PayPal: RSA-SHA256 over "{transmission id}|{transmission time}|{webhook id}|{crc32(body)}",
//! with the kit's own key; the integration pins the kit's certificate (generated for the
//! tests: PayPal's own private key is, of course, not here).

use super::body_id;
use super::{Ids, Kit, MONTH, Settings, SignedHeaders, Steps, first_secret, rfc, unix_seconds};
use crate::providers::paypal::signed_text;
use crate::scheme::rsa_signature;
use crate::{Secrets, Timestamp};
use serde_json::{Value, json};

pub struct PayPalKit;

const WEBHOOK_ID: &str = "8PT597110X687430LKGECATA";
/// The kit's certificate and key (`tests/fixtures/paypal/test_cert.pem`, valid to 2126).
pub const CERTIFICATE_PEM: &str = include_str!("../../tests/fixtures/paypal/test_cert.pem");
const PRIVATE_KEY_PEM: &str = include_str!("../../tests/fixtures/paypal/test_key.pem");

impl Kit for PayPalKit {
    fn settings(&self) -> Settings {
        Settings {
            secrets: vec![],
            options: json!({"webhook_id": WEBHOOK_ID, "certificate_pem": CERTIFICATE_PEM}),
        }
    }

    fn sign(
        &self,
        secrets: &Secrets,
        body: &[u8],
        now: Timestamp,
    ) -> Result<SignedHeaders, String> {
        let webhook_id = secrets
            .option_str("webhook_id")
            .map(str::to_string)
            .or_else(|| first_secret(secrets).ok().map(str::to_string))
            .ok_or("no PayPal webhook_id is configured")?;
        let transmission_id = format!("tx-{}", body_id(body));
        let time = rfc(unix_seconds(now));
        let message = signed_text(&transmission_id, &time, &webhook_id, crc32fast::hash(body));
        let signature = rsa_signature::sign_sha256(PRIVATE_KEY_PEM, message.as_bytes());
        Ok(vec![
            ("paypal-transmission-id".into(), transmission_id),
            ("paypal-transmission-time".into(), time),
            ("paypal-transmission-sig".into(), signature),
            ("paypal-auth-algo".into(), "SHA256withRSA".into()),
            (
                "paypal-cert-url".into(),
                "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-test".into(),
            ),
        ])
    }

    fn ids(&self) -> Ids {
        Ids {
            mapping: "P-PRO",
            customer: "2J6QB8YJQSJRJ",
            subscription: "I-BW452GLLEP1G",
        }
    }

    fn steps(&self, start: i64, failed_at: i64) -> Option<Steps> {
        Some(paypal_steps(start, failed_at))
    }
}

fn paypal_envelope(
    id: &str,
    event_type: &str,
    at: i64,
    resource_type: &str,
    resource: Value,
) -> Value {
    json!({"id": id, "event_version": "1.0", "create_time": rfc(at),
           "resource_type": resource_type, "resource_version": "2.0", "event_type": event_type,
           "summary": event_type, "resource": resource,
           "links": [{"href": format!("https://api.paypal.com/v1/notifications/webhooks-events/{id}"),
                      "rel": "self", "method": "GET"}]})
}

fn paypal_subscription(
    id: &str,
    event_type: &str,
    at: i64,
    status: &str,
    qty: i64,
    next_billing: i64,
    cycles: i64,
) -> Value {
    paypal_envelope(
        id,
        event_type,
        at,
        "subscription",
        json!({
            "id": "I-BW452GLLEP1G", "plan_id": "P-PRO", "start_time": rfc(at - 100),
            "quantity": qty.to_string(),
            "subscriber": {"name": {"given_name": "Ann", "surname": "Example"},
                           "email_address": "ann@example.com", "payer_id": "2J6QB8YJQSJRJ"},
            "billing_info": {
                "outstanding_balance": {"currency_code": "USD", "value": "0.0"},
                "cycle_executions": [{"tenure_type": "REGULAR", "sequence": 1,
                    "cycles_completed": cycles, "cycles_remaining": 0, "total_cycles": 0}],
                "failed_payments_count": i64::from(event_type == "BILLING.SUBSCRIPTION.PAYMENT.FAILED"),
                "last_payment": {"amount": {"currency_code": "USD", "value": "30.0"}, "time": rfc(at - 10)},
                "next_billing_time": rfc(next_billing)},
            "create_time": rfc(at - 100), "update_time": rfc(at),
            "status": status, "status_update_time": rfc(at),
        }),
    )
}

fn paypal_sale(id: &str, event_type: &str, at: i64, sale: &str) -> Value {
    let refund = event_type == "PAYMENT.SALE.REFUNDED";
    let mut resource = json!({
        "id": if refund { format!("R-{sale}") } else { sale.to_string() },
        "state": "completed",
        "amount": {"total": "150.00", "currency": "USD"},
        "billing_agreement_id": "I-BW452GLLEP1G",
        "create_time": rfc(at), "update_time": rfc(at),
    });
    if refund {
        resource["sale_id"] = json!(sale);
    }
    paypal_envelope(
        id,
        event_type,
        at,
        if refund { "refund" } else { "sale" },
        resource,
    )
}

fn paypal_steps(now: i64, failed_at: i64) -> Steps {
    let p1 = now + MONTH;
    let p2 = now + 2 * MONTH;
    Steps {
        // The activation an hour before the rest: its `last_payment` is the first sale, which
        // PayPal also sends as PAYMENT.SALE.COMPLETED and which must not extend anything.
        created: vec![paypal_subscription(
            "WH-1ACTIVATED",
            "BILLING.SUBSCRIPTION.ACTIVATED",
            now - 3600,
            "ACTIVE",
            1,
            p1,
            1,
        )],
        // What PayPal really sends on a renewal: the sale alone, no period and no subscription
        // event. Keygate extends the known paid-through date (p1) by the interval it learnt
        // from the activation (next_billing_time − last_payment.time): p2.
        renewed: vec![paypal_sale(
            "WH-2SALE",
            "PAYMENT.SALE.COMPLETED",
            now - 90,
            "SALE-2",
        )],
        quantity: vec![paypal_subscription(
            "WH-4QTY",
            "BILLING.SUBSCRIPTION.UPDATED",
            now - 80,
            "ACTIVE",
            5,
            p2,
            2,
        )],
        failed: vec![paypal_subscription(
            "WH-5FAILED",
            "BILLING.SUBSCRIPTION.PAYMENT.FAILED",
            failed_at,
            "ACTIVE",
            5,
            p2,
            2,
        )],
        // The retried payment succeeds.
        recovered: vec![paypal_sale(
            "WH-6SALE",
            "PAYMENT.SALE.COMPLETED",
            failed_at + 1,
            "SALE-3",
        )],
        // CANCELLED stops future billing; what was paid for stays until next_billing_time.
        cancelled: vec![cancelled(paypal_subscription(
            "WH-7CANCELLED",
            "BILLING.SUBSCRIPTION.CANCELLED",
            failed_at + 2,
            "CANCELLED",
            5,
            p2,
            2,
        ))],
        refunded: vec![paypal_sale(
            "WH-8REFUND",
            "PAYMENT.SALE.REFUNDED",
            failed_at + 3,
            "SALE-2",
        )],
        cancel_ends_at: p2,
    }
}

/// Real `BILLING.SUBSCRIPTION.CANCELLED` resources carry no `next_billing_time` (the
/// conformance review, PP-3).
fn cancelled(mut event: Value) -> Value {
    if let Some(info) = event["resource"]["billing_info"].as_object_mut() {
        info.remove("next_billing_time");
    }
    event
}
