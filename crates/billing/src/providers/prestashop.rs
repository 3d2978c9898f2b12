//! PrestaShop, through Keygate's own PrestaShop module (`integrations/prestashop/keygate/`):
//! PrestaShop core sends no webhooks, so the module hooks `actionOrderStatusPostUpdate` and
//! `actionOrderSlipAdd` and posts the events below.
//!
//! # Signature (Standard Webhooks, `v1`)
//!
//! Headers `webhook-id` (the event id, the same on every retry), `webhook-timestamp` (Unix
//! seconds of the attempt, within ±300 s: `options.tolerance_seconds`) and `webhook-signature`
//! (`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{raw body}">`, one per secret during a
//! rotation), keyed with the base64-decoded part of the `whsec_` secret the merchant pastes
//! into the module's configuration page.
//!
//! # Body (built by the module's `EventBuilder`; docs/platforms/prestashop.md)
//!
//! `{id, type, created_at, shop, data: {order: {id, reference, state: {id, name, paid, role},
//! previous_state, customer: {id, email, firstname, lastname, name}, lines: [{id_order_detail,
//! product_id, product_attribute_id, reference, name, quantity, quantity_refunded}]},
//! credit_slip: {id, lines: [{id_order_detail, product_id, product_attribute_id, reference,
//! quantity}]}}}`. The event id is `id` (`slip_{id_order_slip}` for a credit slip), the time
//! `created_at` (when the hook ran, not when it was delivered).
//!
//! - `order.status_changed` with `state.role` `paid` (any state with PrestaShop's "paid"
//!   flag): `order_paid`, a license per mapped line. Later paid states (Shipped, Delivered)
//!   are the same order again and issue nothing new.
//! - `state.role` `refunded` (PS_OS_REFUND) or `canceled` (PS_OS_CANCELED): a full refund,
//!   every license of the order revoked.
//! - `order.credit_slip_added`: a refund of the slip's lines only (line ids = order detail
//!   ids), with the slip's quantities.
//! - Any other state (awaiting payment, payment error, ...) and any other type: ignored.
//!
//! A line is mapped by, in this order: `"{product_id}:{product_attribute_id}"` (a
//! combination, when it has one), `product_id`, the product `reference`.

use crate::json::{array, at, bool_at, int_at, parse_object, rfc3339_at, str_at};
use crate::scheme::standard_webhooks;
use crate::{BillingError, ConfigError, Provider, Request, Secrets};
use keygate_domain::Timestamp;
use keygate_domain::billing::{
    BillingEvent, BillingEventKind as Kind, BillingItem, CustomerRef, OrderRef, Reversal,
};
use serde_json::Value;

pub struct PrestaShop;

/// The Standard Webhooks reference libraries' tolerance.
pub const DEFAULT_TOLERANCE_SECONDS: i64 = 300;

/// The module refuses shorter keys on its configuration page; Keygate refuses them too, so
/// both sides agree on what a valid secret is (Standard Webhooks: 24 to 64 bytes).
pub const MIN_KEY_BYTES: usize = 24;

pub const STATUS_CHANGED: &str = "order.status_changed";
pub const CREDIT_SLIP_ADDED: &str = "order.credit_slip_added";

impl Provider for PrestaShop {
    fn name(&self) -> &'static str {
        "prestashop"
    }

    #[cfg(feature = "testkit")]
    fn kit(&self) -> &'static dyn crate::testkit::Kit {
        &crate::testkit::PrestaShopKit
    }

    fn check_config(&self, secrets: &Secrets, now: Timestamp) -> Result<(), ConfigError> {
        crate::config::require_secret(secrets, now)?;
        for (n, secret) in secrets.secrets.iter().enumerate() {
            if secret.trim().is_empty() {
                continue;
            }
            match standard_webhooks::secret_key(secret) {
                Some(key) if key.len() >= MIN_KEY_BYTES => {}
                _ => {
                    return Err(ConfigError::SecretInvalid(format!(
                        "secret #{} is not a Standard Webhooks key: `whsec_` + base64 of at \
                         least {MIN_KEY_BYTES} bytes, e.g. \"whsec_$(openssl rand -base64 32)\"",
                        n + 1
                    )));
                }
            }
        }
        Ok(())
    }

    fn verify(
        &self,
        request: &Request,
        secrets: &Secrets,
        now: Timestamp,
    ) -> Result<(), BillingError> {
        standard_webhooks::verify_request(
            request.headers,
            request.body,
            &secrets.required()?,
            secrets.tolerance_seconds(DEFAULT_TOLERANCE_SECONDS),
            now,
        )
    }

    fn parse(&self, request: &Request) -> Result<Vec<BillingEvent>, BillingError> {
        let event = parse_object(request.body)?;
        let event_id = str_at(&event, "/id")
            .or_else(|| request.headers.value("webhook-id").map(str::to_string))
            .ok_or_else(|| BillingError::malformed("`id` is missing (and no webhook-id)"))?;
        let event_type =
            str_at(&event, "/type").ok_or_else(|| BillingError::malformed("`type` is missing"))?;
        let occurred_at = rfc3339_at(&event, "/created_at")
            .or_else(|| {
                request
                    .headers
                    .value("webhook-timestamp")
                    .and_then(|t| t.trim().parse::<i64>().ok())
                    .map(Timestamp::from_unix_seconds)
            })
            .ok_or_else(|| BillingError::malformed("`created_at` is missing or not RFC 3339"))?;
        let mut out = BillingEvent::new(event_id, event_type.clone(), Kind::Ignored, occurred_at);
        let Some(order) = at(&event, "/data/order") else {
            return Ok(vec![out]);
        };
        let order_id = str_at(order, "/id")
            .ok_or_else(|| BillingError::malformed("`data.order.id` is missing"))?;
        match event_type.as_str() {
            STATUS_CHANGED => {
                let role = str_at(order, "/state/role").unwrap_or_default();
                let paid = bool_at(order, "/state/paid").unwrap_or(false);
                match role.as_str() {
                    "refunded" | "canceled" => {
                        out.kind = Kind::Refunded;
                        out.reversal = Some(Reversal::FullRefund);
                        out.order = Some(OrderRef {
                            external_id: order_id,
                            lines: Vec::new(),
                        });
                    }
                    "paid" | "" if paid => {
                        out.kind = Kind::OrderPaid;
                        out.order = Some(OrderRef {
                            external_id: order_id,
                            lines: lines(order, "/lines"),
                        });
                    }
                    _ => return Ok(vec![out]),
                }
            }
            CREDIT_SLIP_ADDED => {
                let slip_lines = lines(&event, "/data/credit_slip/lines");
                if slip_lines.is_empty() {
                    // A slip of shipping or an amount only: no line to revoke.
                    return Ok(vec![out]);
                }
                out.kind = Kind::Refunded;
                out.reversal = Some(Reversal::PartialRefund);
                out.order = Some(OrderRef {
                    external_id: order_id,
                    lines: slip_lines,
                });
            }
            _ => return Ok(vec![out]),
        }
        out.customer = customer(order);
        Ok(vec![out])
    }
}

fn customer(order: &Value) -> Option<CustomerRef> {
    let reference = CustomerRef {
        external_id: str_at(order, "/customer/id").filter(|id| id != "0"),
        email: str_at(order, "/customer/email"),
        name: str_at(order, "/customer/name"),
    };
    (!reference.is_empty()).then_some(reference)
}

/// The lines at `pointer` (order lines, or a credit slip's), each with its order detail id as
/// the line id and its candidate mapping ids.
fn lines(value: &Value, pointer: &str) -> Vec<BillingItem> {
    array(value, pointer)
        .iter()
        .filter_map(|line| {
            let product = str_at(line, "/product_id").filter(|id| id != "0")?;
            let mut candidates = Vec::new();
            if let Some(attribute) = str_at(line, "/product_attribute_id").filter(|a| a != "0") {
                candidates.push(format!("{product}:{attribute}"));
            }
            candidates.push(product.clone());
            candidates.extend(str_at(line, "/reference").map(|r| r.trim().to_string()));
            let quantity = int_at(line, "/quantity").unwrap_or(1);
            if quantity <= 0 {
                return None;
            }
            Some(item(
                candidates,
                Some(product),
                quantity,
                str_at(line, "/id_order_detail"),
            ))
        })
        .collect()
}

/// A line: the first candidate is its `external_id`, the rest are tried in order after it.
fn item(
    mut candidates: Vec<String>,
    product: Option<String>,
    quantity: i64,
    line_id: Option<String>,
) -> BillingItem {
    let external_id = candidates.remove(0);
    BillingItem {
        product_external_id: product,
        line_id,
        fallback_ids: candidates,
        ..BillingItem::new(external_id, quantity)
    }
}
