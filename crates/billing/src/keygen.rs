//! Remote key generation: the shop calls Keygate *during* checkout and shows the buyer the keys
//! Keygate answers (MyCommerce's key generator URL, FastSpring's remote license generator).
//!
//! A platform that offers it returns a [`KeyGenerator`] from
//! [`Provider::keygen`](crate::Provider::keygen): how the call is authenticated, what order
//! line it is about, and how the keys are written back. Everything else is the server's,
//! the same for every shop (`POST /v1/keygen/{provider}/{integration_id}`): the call becomes an
//! `order_paid` event ([`KeygenOrder::event`]) stored and applied in one transaction like any
//! webhook, so the inbox de-duplicates a repeated call (the same keys are answered again) and a
//! later refund webhook naming the order revokes them.

use crate::{Ack, BillingError, ConfigError, Request, Secrets};
use keygate_domain::Timestamp;
use keygate_domain::billing::{BillingEvent, BillingEventKind, BillingItem, CustomerRef, OrderRef};

/// How many licenses a line of quantity N gets (`options.license_generator.licenses`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// N licenses of one seat each (default): each unit is a key the buyer can give away.
    PerUnit,
    /// One license whose seats are N (the policy's `seats_from_quantity` applies).
    OneWithSeats,
}

impl Layout {
    /// `options.license_generator.licenses`: `per_unit` (default) or `one_with_seats`.
    pub fn of(secrets: &Secrets) -> Result<Layout, ConfigError> {
        match secrets
            .options
            .pointer("/license_generator/licenses")
            .map(|v| v.as_str())
        {
            None | Some(Some("per_unit")) => Ok(Layout::PerUnit),
            Some(Some("one_with_seats")) => Ok(Layout::OneWithSeats),
            _ => Err(ConfigError::OptionInvalid(
                "`options.license_generator.licenses` must be `per_unit` or `one_with_seats`"
                    .into(),
            )),
        }
    }
}

/// Most units one call may ask for: the answer must stay well inside the shops' timeouts.
pub const MAX_UNITS: i64 = 10_000;

/// One call: one product line of one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeygenOrder {
    /// The shop's order reference (FastSpring `reference`, MyCommerce `PURCHASE_ID`): the order
    /// a later refund names.
    pub order: String,
    /// What tells this line apart within the order (a shop calls once per product bought).
    pub line: String,
    /// The id the integration's mappings are keyed on.
    pub product: String,
    pub quantity: i64,
    pub customer: CustomerRef,
    /// `false` for the shop's test orders.
    pub livemode: bool,
}

impl KeygenOrder {
    /// The inbox id of this call: a repeated call is the same event.
    pub fn event_id(&self) -> String {
        format!("keygen:{}:{}", self.order, self.line)
    }

    /// The order line as the reconcile sees it: one line per unit (`PerUnit`, each its own
    /// license) or one line of the whole quantity.
    pub fn event(&self, provider: &str, layout: Layout, now: Timestamp) -> BillingEvent {
        let line = |quantity| BillingItem::new(self.product.clone(), quantity);
        let lines = match layout {
            Layout::PerUnit => (0..self.quantity).map(|_| line(1)).collect(),
            Layout::OneWithSeats => vec![line(self.quantity)],
        };
        BillingEvent {
            livemode: self.livemode,
            customer: Some(self.customer.clone()).filter(|c| !c.is_empty()),
            order: Some(OrderRef {
                external_id: self.order.clone(),
                lines,
            }),
            ..BillingEvent::new(
                self.event_id(),
                format!("{provider}.keygen"),
                BillingEventKind::OrderPaid,
                now,
            )
        }
    }
}

/// A shop's side of remote key generation.
pub trait KeyGenerator: Sync {
    /// Whether this integration answers key generation calls, and how (`Err`: not set up, the
    /// endpoint answers 404 `KEYGEN_NOT_CONFIGURED`).
    fn layout(&self, secrets: &Secrets) -> Result<Layout, ConfigError>;

    /// Checks the call is the shop's. `Ok` only on a positive match; no secret = refuse.
    fn verify(
        &self,
        request: &Request,
        secrets: &Secrets,
        now: Timestamp,
    ) -> Result<(), BillingError>;

    /// The order line the call is about.
    fn order(&self, request: &Request) -> Result<KeygenOrder, BillingError>;

    /// The answer the shop shows the buyer (default: plain text, one key per line).
    fn answer(&self, keys: &[String]) -> Ack {
        plain_text(keys)
    }
}

/// Plain text, one key per line.
pub fn plain_text(keys: &[String]) -> Ack {
    let mut body = keys.join("\n");
    body.push('\n');
    Ack::text(200, body)
}

/// A quantity as shops send it: a whole number from 1 to [`MAX_UNITS`].
pub(crate) fn quantity(text: Option<&str>) -> Result<i64, BillingError> {
    let text = text.map(str::trim).unwrap_or("1");
    match text.parse::<i64>() {
        Ok(q) if (1..=MAX_UNITS).contains(&q) => Ok(q),
        _ => Err(BillingError::malformed(format!(
            "the quantity `{text}` is not a whole number from 1 to {MAX_UNITS}"
        ))),
    }
}

/// A required, non-blank field of the call.
pub(crate) fn required<'a>(form: &'a crate::Form, name: &str) -> Result<&'a str, BillingError> {
    form.get(name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| BillingError::malformed(format!("`{name}` is missing")))
}

pub(crate) fn optional(form: &crate::Form, name: &str) -> Option<String> {
    form.get(name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(quantity: i64) -> KeygenOrder {
        KeygenOrder {
            order: "REF-1".into(),
            line: "pro".into(),
            product: "pro".into(),
            quantity,
            customer: CustomerRef {
                external_id: None,
                email: Some("ann@example.com".into()),
                name: None,
            },
            livemode: false,
        }
    }

    #[test]
    fn a_call_is_an_order_paid_event_per_layout() {
        let now = Timestamp::from_unix_seconds(1_700_000_000);
        let e = order(3).event("mycommerce", Layout::PerUnit, now);
        assert_eq!(e.event_id, "keygen:REF-1:pro");
        assert_eq!(e.kind, BillingEventKind::OrderPaid);
        assert_eq!(e.order_id(), Some("REF-1"));
        assert_eq!(e.items().len(), 3);
        assert!(e.items().iter().all(|i| i.quantity == 1));
        assert!(!e.livemode);
        let e = order(3).event("mycommerce", Layout::OneWithSeats, now);
        assert_eq!(e.items().len(), 1);
        assert_eq!(e.items()[0].quantity, 3);
    }

    #[test]
    fn layouts_quantities_and_answers() {
        let s = Secrets::new(["x"]);
        assert_eq!(Layout::of(&s).unwrap(), Layout::PerUnit);
        let s = s
            .with_options(serde_json::json!({"license_generator": {"licenses": "one_with_seats"}}));
        assert_eq!(Layout::of(&s).unwrap(), Layout::OneWithSeats);
        let s = Secrets::new(["x"])
            .with_options(serde_json::json!({"license_generator": {"licenses": 2}}));
        assert_eq!(Layout::of(&s).unwrap_err().code(), "OPTION_INVALID");
        assert_eq!(quantity(None).unwrap(), 1);
        assert_eq!(quantity(Some(" 12 ")).unwrap(), 12);
        for bad in ["0", "-1", "1.5", "x", "10001"] {
            assert_eq!(quantity(Some(bad)).unwrap_err().code(), "MALFORMED_PAYLOAD");
        }
        let ack = plain_text(&["A".into(), "B".into()]);
        assert_eq!(ack.body, b"A\nB\n");
        assert_eq!(ack.content_type, "text/plain; charset=utf-8");
    }
}
