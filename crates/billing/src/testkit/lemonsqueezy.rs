//! Lemon Squeezy: `X-Signature: hex(HMAC-SHA256(secret, body))`; JSON:API payloads, synthetic
//! event ids from `updated_at`.

use super::{Ids, Kit, MONTH, Settings, SignedHeaders, Steps, first_secret, rfc};
use crate::providers::lemonsqueezy::SCHEME;
use crate::{Secrets, Timestamp};
use serde_json::{Value, json};

pub struct LemonSqueezyKit;

const SECRET: &str = "ls-signing-secret-for-tests";

impl Kit for LemonSqueezyKit {
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
            "x-signature".into(),
            SCHEME.sign(secret.as_bytes(), body),
        )])
    }

    fn ids(&self) -> Ids {
        Ids {
            mapping: "8001",
            customer: "9001",
            subscription: "1234",
        }
    }

    fn steps(&self, start: i64, failed_at: i64) -> Option<Steps> {
        Some(lemonsqueezy_steps(start, failed_at))
    }
}

fn lemonsqueezy_event(event_name: &str, data_type: &str, id: &str, attributes: Value) -> Value {
    json!({"meta": {"test_mode": false, "event_name": event_name,
                    "webhook_id": "b5e8a8d2-0f6c-4d8a-9d6c-2b3c4d5e6f70", "custom_data": null},
           "data": {"type": data_type, "id": id, "attributes": attributes,
                    "links": {"self": format!("https://api.lemonsqueezy.com/v1/{data_type}/{id}")}}})
}

fn lemonsqueezy_subscription(
    event_name: &str,
    at: i64,
    status: &str,
    qty: i64,
    renews_at: i64,
    ends_at: Option<i64>,
    created: i64,
) -> Value {
    lemonsqueezy_event(
        event_name,
        "subscriptions",
        "1234",
        json!({"store_id": 4242, "customer_id": 9001, "order_id": 5501, "order_item_id": 6601,
               "product_id": 7001, "variant_id": 8001, "product_name": "Keygate Pro",
               "variant_name": "Monthly", "user_name": "Ann Example",
               "user_email": "ann@example.com", "status": status,
               "cancelled": status == "cancelled", "pause": null, "trial_ends_at": null,
               "billing_anchor": 1,
               "first_subscription_item": {"id": 3301, "subscription_id": 1234, "price_id": 2201,
                   "quantity": qty, "is_usage_based": false,
                   "created_at": rfc(created), "updated_at": rfc(at)},
               "renews_at": rfc(renews_at), "ends_at": ends_at.map(rfc),
               "created_at": rfc(created), "updated_at": rfc(at), "test_mode": false}),
    )
}

fn lemonsqueezy_invoice(event_name: &str, id: &str, at: i64, reason: &str, status: &str) -> Value {
    lemonsqueezy_event(
        event_name,
        "subscription-invoices",
        id,
        json!({"store_id": 4242, "subscription_id": 1234, "customer_id": 9001,
               "user_name": "Ann Example", "user_email": "ann@example.com",
               "billing_reason": reason, "currency": "USD", "status": status,
               "refunded": status == "refunded", "total": 15000,
               "created_at": rfc(at - 1), "updated_at": rfc(at), "test_mode": false}),
    )
}

/// The order of a purchase: `order_created` comes with every `subscription_created` (Lemon
/// Squeezy: "always sent alongside"), for the same order and variant.
pub(crate) fn lemonsqueezy_order(at: i64) -> Value {
    lemonsqueezy_event(
        "order_created",
        "orders",
        "5501",
        json!({"store_id": 4242, "customer_id": 9001,
               "identifier": "3a1f6c2e-8b7d-4e0f-9c5a-1d2e3f4a5b6c", "order_number": 1001,
               "user_name": "Ann Example", "user_email": "ann@example.com",
               "currency": "USD", "currency_rate": "1.0000", "subtotal": 15000,
               "discount_total": 0, "tax": 0, "total": 15000, "subtotal_usd": 15000,
               "discount_total_usd": 0, "tax_usd": 0, "total_usd": 15000,
               "tax_name": null, "tax_rate": "0.00", "status": "paid", "status_formatted": "Paid",
               "refunded": false, "refunded_at": null,
               "first_order_item": {"id": 6601, "order_id": 5501, "product_id": 7001,
                   "variant_id": 8001, "price_id": 2201, "product_name": "Keygate Pro",
                   "variant_name": "Monthly", "price": 15000, "quantity": 1,
                   "created_at": rfc(at), "updated_at": rfc(at), "test_mode": false},
               "urls": {"receipt": "https://app.lemonsqueezy.com/my-orders/3a1f6c2e-8b7d-4e0f-9c5a-1d2e3f4a5b6c"},
               "created_at": rfc(at), "updated_at": rfc(at), "test_mode": false}),
    )
}

fn lemonsqueezy_steps(now: i64, failed_at: i64) -> Steps {
    let p1 = now + MONTH;
    let p2 = now + 2 * MONTH;
    let created = now - 100;
    Steps {
        // The purchase as Lemon Squeezy sends it: the order, then the subscription (either
        // may come first); one license.
        created: vec![
            lemonsqueezy_order(now - 101),
            lemonsqueezy_subscription(
                "subscription_created",
                now - 100,
                "active",
                1,
                p1,
                None,
                created,
            ),
        ],
        // The renewal payment carries no period; `subscription_updated` brings `renews_at`.
        renewed: vec![
            lemonsqueezy_invoice(
                "subscription_payment_success",
                "5551",
                now - 90,
                "renewal",
                "paid",
            ),
            lemonsqueezy_subscription(
                "subscription_updated",
                now - 89,
                "active",
                1,
                p2,
                None,
                created,
            ),
        ],
        quantity: vec![lemonsqueezy_subscription(
            "subscription_updated",
            now - 80,
            "active",
            5,
            p2,
            None,
            created,
        )],
        failed: vec![lemonsqueezy_invoice(
            "subscription_payment_failed",
            "5552",
            failed_at,
            "renewal",
            "pending",
        )],
        recovered: vec![lemonsqueezy_invoice(
            "subscription_payment_recovered",
            "5552",
            failed_at + 1,
            "renewal",
            "paid",
        )],
        // `cancelled` is Lemon Squeezy's grace period: access continues until `ends_at`.
        cancelled: vec![lemonsqueezy_subscription(
            "subscription_cancelled",
            failed_at + 2,
            "cancelled",
            5,
            p2,
            Some(p2),
            created,
        )],
        refunded: vec![lemonsqueezy_invoice(
            "subscription_payment_refunded",
            "5551",
            failed_at + 3,
            "renewal",
            "refunded",
        )],
        cancel_ends_at: p2,
    }
}
