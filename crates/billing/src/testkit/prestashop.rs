//! PrestaShop: what Keygate's PrestaShop module (`integrations/prestashop/keygate/`) posts,
//! in the shape of its `EventBuilder` (the committed fixtures are that class's output),
//! signed with Standard Webhooks as its `Signer` signs: the webhook id is the event's `id`.

use super::{Ids, Kit, OrderSteps, Settings, SignedHeaders, Steps, body_id, rfc, unix_seconds};
use crate::scheme::standard_webhooks;
use crate::{Secrets, Timestamp};
use serde_json::{Value, json};

pub struct PrestaShopKit;

/// 32 bytes, as the docs page generates them.
const SECRET: &str = "whsec_a2V5Z2F0ZS1wcmVzdGFzaG9wLW1vZHVsZS10ZXN0LWtleQ==";

/// The order's id, and the mapping's id: the product `reference` of its first line (the
/// line's product id, tried first, is not mapped, so the kit exercises the fallback).
pub const ORDER_ID: i64 = 1042;
pub const MAPPED_REFERENCE: &str = "PHOTO-PRO";
pub const CUSTOMER_ID: i64 = 77;

/// One order line: `(id_order_detail, product_id, product_attribute_id, reference, quantity)`.
pub type Line = (i64, i64, i64, &'static str, i64);

/// The lifecycle order: the mapped line (x2) and an unmapped one.
pub const LINES: [Line; 2] = [(501, 3, 0, MAPPED_REFERENCE, 2), (502, 5, 9, "MUG-RED", 1)];

/// PrestaShop's default order states: `(id, name, paid, role)`.
pub const PAYMENT_ACCEPTED: (i64, &str, bool, &str) = (2, "Payment accepted", true, "paid");
pub const SHIPPED: (i64, &str, bool, &str) = (4, "Shipped", true, "paid");
pub const CANCELED: (i64, &str, bool, &str) = (6, "Canceled", false, "canceled");
pub const REFUNDED: (i64, &str, bool, &str) = (7, "Refunded", false, "refunded");
pub const AWAITING_WIRE: (i64, &str, bool, &str) =
    (10, "Awaiting bank wire payment", false, "pending");

impl PrestaShopKit {
    /// `order.status_changed`: order `order_id` with `lines` moved to `state` at `at`.
    pub fn status_changed(
        &self,
        event_id: &str,
        at: i64,
        order_id: i64,
        lines: &[Line],
        state: (i64, &str, bool, &str),
    ) -> Value {
        envelope(
            event_id,
            "order.status_changed",
            at,
            json!({"order": order(order_id, lines, state)}),
        )
    }

    /// `order.credit_slip_added`: slip `slip_id` refunding `(id_order_detail, quantity)` of
    /// the order's `lines`.
    pub fn credit_slip(
        &self,
        slip_id: i64,
        at: i64,
        order_id: i64,
        lines: &[Line],
        refunded: &[(i64, i64)],
    ) -> Value {
        let slip_lines: Vec<Value> = refunded
            .iter()
            .map(|&(detail, quantity)| {
                let (_, product, attribute, reference, _) = lines
                    .iter()
                    .copied()
                    .find(|l| l.0 == detail)
                    .expect("a slip refunds lines of its order");
                json!({"id_order_detail": detail, "product_id": product,
                       "product_attribute_id": attribute, "reference": reference,
                       "quantity": quantity})
            })
            .collect();
        envelope(
            &format!("slip_{slip_id}"),
            "order.credit_slip_added",
            at,
            json!({"order": order(order_id, lines, PAYMENT_ACCEPTED),
                   "credit_slip": {"id": slip_id, "lines": slip_lines}}),
        )
    }
}

impl Kit for PrestaShopKit {
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
        let key = secrets
            .required()
            .map_err(|e| e.to_string())?
            .into_iter()
            .find_map(standard_webhooks::secret_key)
            .ok_or("no configured secret is a `whsec_` key")?;
        // The module sends the event's id as the webhook id.
        let id = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| format!("evt_{}", body_id(body)));
        Ok(standard_webhooks::sign_headers(
            &key,
            &id,
            unix_seconds(now),
            body,
        ))
    }

    fn ids(&self) -> Ids {
        Ids {
            mapping: MAPPED_REFERENCE,
            customer: "77",
            subscription: "",
        }
    }

    /// PrestaShop core sells no subscriptions.
    fn steps(&self, _start: i64, _failed_at: i64) -> Option<Steps> {
        None
    }

    /// Paid ("Payment accepted"), then refunded (the "Refunded" state: the whole order).
    fn order_steps(&self, start: i64) -> Option<OrderSteps> {
        Some(OrderSteps {
            paid: vec![self.status_changed(
                &format!("evt_{ORDER_ID}_paid"),
                start,
                ORDER_ID,
                &LINES,
                PAYMENT_ACCEPTED,
            )],
            refunded: vec![self.status_changed(
                &format!("evt_{ORDER_ID}_refunded"),
                start + 60,
                ORDER_ID,
                &LINES,
                REFUNDED,
            )],
            order: ORDER_ID.to_string(),
        })
    }
}

fn envelope(event_id: &str, event_type: &str, at: i64, data: Value) -> Value {
    json!({"id": event_id, "type": event_type, "created_at": rfc(at),
           "shop": {"id": 1, "name": "Demo Shop", "domain": "shop.example.com"},
           "data": data})
}

fn order(order_id: i64, lines: &[Line], (id, name, paid, role): (i64, &str, bool, &str)) -> Value {
    let lines: Vec<Value> = lines
        .iter()
        .map(|&(detail, product, attribute, reference, quantity)| {
            json!({"id_order_detail": detail, "product_id": product,
                   "product_attribute_id": attribute, "reference": reference,
                   "name": format!("Product {product}"), "quantity": quantity,
                   "quantity_refunded": 0})
        })
        .collect();
    json!({"id": order_id, "reference": format!("KG{order_id:07}"), "id_shop": 1,
           "currency": "EUR", "total_paid": "159.8",
           "state": {"id": id, "name": name, "paid": paid, "role": role},
           "previous_state": null,
           "customer": {"id": CUSTOMER_ID, "email": "ada@example.com", "firstname": "Ada",
                        "lastname": "Lovelace", "name": "Ada Lovelace"},
           "lines": lines})
}
