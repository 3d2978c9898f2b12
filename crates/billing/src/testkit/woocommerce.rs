//! WooCommerce (+ Subscriptions): `X-WC-Webhook-Signature: base64(HMAC-SHA256(key, body))`
//! with the topic in `X-WC-Webhook-Topic`; bodies are REST v3 orders and subscriptions (shaped
//! from the REST API reference's examples), times in GMT without an offset.

use super::{Ids, Kit, MONTH, OrderSteps, Settings, SignedHeaders, Steps, first_secret};
use crate::providers::woocommerce::{SCHEME, wp_specialchars_decode};
use crate::{Secrets, Timestamp};
use serde_json::{Value, json};

pub struct WooCommerceKit;

/// With an entity, as WooCommerce stores a secret typed with a `<`: signed with `<`.
const SECRET: &str = "wc_secret_&lt;for&amp;tests";

/// The kit's store: one subscription product, variation 2002 of product 2001.
pub const VARIATION: &str = "2002";
pub const PRODUCT: i64 = 2001;
pub const SKU: &str = "KG-PRO-MONTHLY";
pub const CUSTOMER: &str = "7";
pub const SUBSCRIPTION: i64 = 1250;
pub const PARENT_ORDER: i64 = 1249;
pub const RENEWAL_ORDER: i64 = 1301;

impl Kit for WooCommerceKit {
    fn settings(&self) -> Settings {
        Settings {
            secrets: vec![SECRET.into()],
            options: json!({}),
        }
    }

    /// WooCommerce's headers; the topic is read from the body's shape (the REST object of a
    /// subscription has a `billing_period`, an order `line_items`; created when never modified).
    fn sign(
        &self,
        secrets: &Secrets,
        body: &[u8],
        _now: Timestamp,
    ) -> Result<SignedHeaders, String> {
        let secret = wp_specialchars_decode(first_secret(secrets)?);
        let object: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let resource = if object.get("billing_period").is_some() {
            "subscription"
        } else if object.get("line_items").is_some() {
            "order"
        } else if object.get("username").is_some() {
            "customer"
        } else {
            "product"
        };
        let event = if object.get("date_created_gmt") == object.get("date_modified_gmt") {
            "created"
        } else {
            "updated"
        };
        Ok(headers(
            &format!("{resource}.{event}"),
            &SCHEME.sign(secret.as_bytes(), body),
        ))
    }

    fn ids(&self) -> Ids {
        Ids {
            mapping: VARIATION,
            customer: CUSTOMER,
            subscription: "1250",
        }
    }

    fn steps(&self, start: i64, failed_at: i64) -> Option<Steps> {
        let p1 = start + MONTH;
        let p2 = start + 2 * MONTH;
        let created = start - 100;
        let sub = |at: i64, status: &'static str, qty: i64, next: Option<i64>, end: Option<i64>| {
            subscription(SubscriptionAt {
                created,
                modified: at,
                status,
                quantity: qty,
                next_payment: next,
                end,
                last_payment: if at >= start - 89 {
                    start - 90
                } else {
                    created
                },
            })
        };
        Some(Steps {
            // The checkout: the parent order (paid), then the subscription it created.
            created: vec![
                order(OrderAt {
                    id: PARENT_ORDER,
                    created: created - 1,
                    modified: created - 1,
                    status: "processing",
                    paid: Some(created - 1),
                    lines: vec![line(401, 1)],
                    refunds: vec![],
                    renewal_of: None,
                }),
                sub(created, "active", 1, Some(p1), None),
            ],
            // The renewal order (paid), then the subscription's new next payment date.
            renewed: vec![
                order(OrderAt {
                    id: RENEWAL_ORDER,
                    created: start - 91,
                    modified: start - 90,
                    status: "processing",
                    paid: Some(start - 90),
                    lines: vec![line(455, 1)],
                    refunds: vec![],
                    renewal_of: Some(SUBSCRIPTION),
                }),
                sub(start - 89, "active", 1, Some(p2), None),
            ],
            quantity: vec![sub(start - 80, "active", 5, Some(p2), None)],
            // A renewal payment failed: WooCommerce Subscriptions puts it on hold.
            failed: vec![sub(failed_at, "on-hold", 5, Some(p2), None)],
            recovered: vec![sub(failed_at + 1, "active", 5, Some(p2), None)],
            // Cancelled by the customer: `pending-cancel` until the paid period ends.
            cancelled: vec![sub(failed_at + 2, "pending-cancel", 5, None, Some(p2))],
            // The renewal order refunded in full.
            refunded: vec![order(OrderAt {
                id: RENEWAL_ORDER,
                created: start - 91,
                modified: failed_at + 3,
                status: "refunded",
                paid: Some(start - 90),
                lines: vec![line(455, 1)],
                refunds: vec![(1330, "-150.00")],
                renewal_of: Some(SUBSCRIPTION),
            })],
            cancel_ends_at: p2,
        })
    }

    /// A one-time order: the mapped variation twice and an unmapped simple product, paid,
    /// then refunded in full (WooCommerce sets `refunded` when the refunds reach the total).
    fn order_steps(&self, start: i64) -> Option<OrderSteps> {
        let at = |modified: i64, status: &'static str, refunds: Vec<(i64, &'static str)>| {
            order(OrderAt {
                id: 1500,
                created: start - 30,
                modified,
                status,
                paid: Some(start - 29),
                lines: vec![line(701, 2), unmapped_line(702)],
                refunds,
                renewal_of: None,
            })
        };
        Some(OrderSteps {
            paid: vec![at(start - 29, "processing", vec![])],
            refunded: vec![at(start - 10, "refunded", vec![(1510, "-312.00")])],
            order: "1500".into(),
        })
    }
}

/// The headers `WC_Webhook::deliver` sends (besides `Content-Type: application/json`).
pub fn headers(topic: &str, signature: &str) -> SignedHeaders {
    let (resource, event) = topic.split_once('.').unwrap_or((topic, ""));
    [
        ("user-agent", "WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)"),
        ("x-wc-webhook-source", "https://shop.example.com/"),
        ("x-wc-webhook-topic", topic),
        ("x-wc-webhook-resource", resource),
        ("x-wc-webhook-event", event),
        ("x-wc-webhook-signature", signature),
        ("x-wc-webhook-id", "12"),
        (
            "x-wc-webhook-delivery-id",
            "0d1b6cc6a1a2c4cf6c1f1d0b4a3f0c9e",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A WooCommerce GMT time: `2026-01-02T03:04:05`.
pub fn gmt(seconds: i64) -> String {
    let text = Timestamp::from_unix_seconds(seconds).to_rfc3339();
    text.trim_end_matches('Z')
        .split('.')
        .next()
        .unwrap_or_default()
        .to_string()
}

fn opt_gmt(seconds: Option<i64>) -> String {
    seconds.map(gmt).unwrap_or_default()
}

/// The kit's product on an order line (order item `id`), `quantity` of it.
pub fn line(id: i64, quantity: i64) -> Value {
    json!({"id": id, "name": "Keygate Pro - Monthly", "product_id": PRODUCT,
           "variation_id": 2002, "quantity": quantity, "tax_class": "",
           "subtotal": format!("{}.00", 150 * quantity), "subtotal_tax": "0.00",
           "total": format!("{}.00", 150 * quantity), "total_tax": "0.00", "taxes": [],
           "meta_data": [{"id": id * 10, "key": "pa_billing", "value": "monthly",
                          "display_key": "Billing", "display_value": "Monthly"}],
           "sku": SKU, "price": 150, "image": {"id": "", "src": ""}, "parent_name": "Keygate Pro"})
}

/// A product the vendor does not license (a simple product: `variation_id` 0).
pub fn unmapped_line(id: i64) -> Value {
    json!({"id": id, "name": "Printed manual", "product_id": 93, "variation_id": 0,
           "quantity": 1, "tax_class": "", "subtotal": "12.00", "subtotal_tax": "0.00",
           "total": "12.00", "total_tax": "0.00", "taxes": [], "meta_data": [], "sku": "",
           "price": 12, "image": {"id": "", "src": ""}, "parent_name": null})
}

fn billing() -> Value {
    json!({"first_name": "Ann", "last_name": "Example", "company": "", "address_1": "969 Market",
           "address_2": "", "city": "San Francisco", "state": "CA", "postcode": "94103",
           "country": "US", "email": "ann@example.com", "phone": "(555) 555-5555"})
}

pub struct OrderAt {
    pub id: i64,
    pub created: i64,
    pub modified: i64,
    pub status: &'static str,
    pub paid: Option<i64>,
    pub lines: Vec<Value>,
    /// `(refund id, total)`, newest first as WooCommerce lists them.
    pub refunds: Vec<(i64, &'static str)>,
    pub renewal_of: Option<i64>,
}

/// A REST v3 order.
pub fn order(o: OrderAt) -> Value {
    let meta: Vec<Value> = o
        .renewal_of
        .map(|sub| json!({"id": o.id * 10 + 1, "key": "_subscription_renewal", "value": sub.to_string()}))
        .into_iter()
        .collect();
    let head = json!({"id": o.id, "parent_id": 0, "status": o.status, "currency": "USD",
           "version": "9.4.2", "prices_include_tax": false,
           "date_created": gmt(o.created), "date_modified": gmt(o.modified),
           "discount_total": "0.00", "discount_tax": "0.00", "shipping_total": "0.00",
           "shipping_tax": "0.00", "cart_tax": "0.00", "total": "150.00", "total_tax": "0.00",
           "customer_id": 7, "order_key": format!("wc_order_{}", o.id),
           "billing": billing(), "shipping": {"first_name": "Ann", "last_name": "Example"},
           "payment_method": "stripe", "payment_method_title": "Credit card",
           "transaction_id": format!("ch_{}", o.id), "customer_ip_address": "",
           "customer_user_agent": "", "created_via": if o.renewal_of.is_some() { "subscription" } else { "checkout" },
           "customer_note": "", "date_completed": null, "date_paid": o.paid.map(gmt)});
    let rest = json!({"cart_hash": "", "number": o.id.to_string(), "meta_data": meta,
           "line_items": o.lines, "tax_lines": [], "shipping_lines": [], "fee_lines": [],
           "coupon_lines": [],
           "refunds": o.refunds.iter().map(|(id, total)| json!({"id": id, "reason": "", "total": total})).collect::<Vec<_>>(),
           "payment_url": "", "is_editable": false, "needs_payment": false,
           "needs_processing": true,
           "date_created_gmt": gmt(o.created), "date_modified_gmt": gmt(o.modified),
           "date_completed_gmt": null, "date_paid_gmt": o.paid.map(gmt),
           "currency_symbol": "$",
           "_links": {"self": [{"href": format!("https://shop.example.com/wp-json/wc/v3/orders/{}", o.id)}],
                      "collection": [{"href": "https://shop.example.com/wp-json/wc/v3/orders"}]}});
    merged(head, rest)
}

/// `a` with `b`'s fields added (one `json!` of a whole REST object exceeds the macro's depth).
fn merged(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// A REST v3 refund of an order (`GET /orders/{id}/refunds/{refund_id}`): `(order item id,
/// quantity)` per refunded line.
pub fn refund(id: i64, at: i64, lines: &[(i64, i64)]) -> Value {
    let items: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, (item, qty))| {
            json!({"id": id * 10 + i as i64, "name": "Keygate Pro - Monthly",
                   "product_id": PRODUCT, "variation_id": 2002, "quantity": -qty,
                   "tax_class": "", "subtotal": format!("-{}.00", 150 * qty),
                   "subtotal_tax": "0.00", "total": format!("-{}.00", 150 * qty),
                   "total_tax": "0.00", "taxes": [],
                   "meta_data": [{"id": id * 100 + i as i64, "key": "_refunded_item_id", "value": item.to_string()}],
                   "sku": SKU, "price": -150})
        })
        .collect();
    let amount: i64 = lines.iter().map(|(_, q)| 150 * q).sum();
    json!({"id": id, "date_created": gmt(at), "date_created_gmt": gmt(at),
           "amount": format!("{amount}.00"), "reason": "Seat no longer needed",
           "refunded_by": 1, "refunded_payment": true, "meta_data": [], "line_items": items,
           "shipping_lines": [], "tax_lines": [], "fee_lines": []})
}

pub struct SubscriptionAt {
    pub created: i64,
    pub modified: i64,
    pub status: &'static str,
    pub quantity: i64,
    pub next_payment: Option<i64>,
    pub end: Option<i64>,
    pub last_payment: i64,
}

/// A REST v3 subscription of WooCommerce Subscriptions (monthly, parent order 1249).
pub fn subscription(s: SubscriptionAt) -> Value {
    let cancelled = matches!(s.status, "pending-cancel" | "cancelled").then_some(s.modified);
    let head = json!({"id": SUBSCRIPTION, "parent_id": PARENT_ORDER, "status": s.status, "currency": "USD",
           "version": "9.4.2", "prices_include_tax": false,
           "date_created": gmt(s.created), "date_modified": gmt(s.modified),
           "discount_total": "0.00", "discount_tax": "0.00", "shipping_total": "0.00",
           "shipping_tax": "0.00", "cart_tax": "0.00",
           "total": format!("{}.00", 150 * s.quantity), "total_tax": "0.00",
           "customer_id": 7, "order_key": "wc_order_sub_1250", "billing": billing(),
           "shipping": {"first_name": "Ann", "last_name": "Example"},
           "payment_method": "stripe", "payment_method_title": "Credit card",
           "customer_ip_address": "", "customer_user_agent": "", "created_via": "checkout",
           "customer_note": "", "number": "1250", "meta_data": []});
    let rest = json!({
           "line_items": [line(402, s.quantity)], "tax_lines": [], "shipping_lines": [],
           "fee_lines": [], "coupon_lines": [],
           "date_created_gmt": gmt(s.created), "date_modified_gmt": gmt(s.modified),
           "date_completed_gmt": null, "date_paid_gmt": gmt(s.last_payment),
           "billing_period": "month", "billing_interval": "1",
           "start_date_gmt": gmt(s.created), "trial_end_date_gmt": "",
           "next_payment_date_gmt": opt_gmt(s.next_payment), "payment_retry_date_gmt": "",
           "last_payment_date_gmt": gmt(s.last_payment),
           "cancelled_date_gmt": opt_gmt(cancelled), "end_date_gmt": opt_gmt(s.end),
           "resubscribed_from": "", "resubscribed_subscription": "", "removed_line_items": [],
           "_links": {"self": [{"href": "https://shop.example.com/wp-json/wc/v3/subscriptions/1250"}],
                      "up": [{"href": "https://shop.example.com/wp-json/wc/v3/orders/1249"}]}});
    merged(head, rest)
}
