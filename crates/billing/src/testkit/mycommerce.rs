//! MyCommerce: the key generator's form (the Key Generator SDK's input values), authenticated
//! by the URL token; step bodies are `[name, value]` pairs, form-encoded by [`form`].

use super::{Delivery, Ids, Kit, OrderSteps, Settings, SignedHeaders, Steps, first_secret};
use crate::{Secrets, Timestamp};
use serde_json::{Value, json};

pub struct MyCommerceKit;

const TOKEN: &str = "mycommerce-keygen-token-for-tests";
pub const PRODUCT: &str = "300123456";

impl Kit for MyCommerceKit {
    fn settings(&self) -> Settings {
        Settings {
            secrets: vec![TOKEN.into()],
            options: json!({}),
        }
    }

    fn sign(
        &self,
        secrets: &Secrets,
        _body: &[u8],
        _now: Timestamp,
    ) -> Result<SignedHeaders, String> {
        first_secret(secrets)?;
        Ok(vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        )])
    }

    fn ids(&self) -> Ids {
        Ids {
            mapping: PRODUCT,
            customer: "",
            subscription: "",
        }
    }

    /// MyCommerce's subscriptions are not played here: only orders.
    fn steps(&self, _start: i64, _failed_at: i64) -> Option<Steps> {
        None
    }

    /// The order notification (the key generator's form) for 2 units. MyCommerce notifies
    /// one product per call, so the order's unmapped line is a call of its own (answered
    /// NO_MAPPING by the key generator, see tests/mycommerce.rs); and it documents no refund
    /// notification publicly, so `refunded` is empty.
    fn order_steps(&self, _start: i64) -> Option<OrderSteps> {
        Some(OrderSteps {
            paid: vec![call("12345678", 1, PRODUCT, 2)],
            refunded: Vec::new(),
            order: "12345678".into(),
        })
    }

    /// Form-encoded, with the token in the URL.
    fn deliver(&self, secrets: &Secrets, body: &Value, now: Timestamp) -> Result<Delivery, String> {
        let form = form(body).into_bytes();
        Ok(Delivery {
            headers: self.sign(secrets, &form, now)?,
            body: form,
            query: query(secrets)?,
        })
    }
}

/// The URL query that authenticates a call under `secrets`.
pub fn query(secrets: &Secrets) -> Result<String, String> {
    Ok(format!("token={}", first_secret(secrets)?))
}

/// A key generator call for `quantity` units of `product` in purchase `purchase`.
pub fn call(purchase: &str, running_no: u32, product: &str, quantity: i64) -> Value {
    json!([
        ["PURCHASE_ID", purchase],
        ["RUNNING_NO", running_no.to_string()],
        ["PURCHASE_DATE", "01/12/2026"],
        ["PRODUCT_ID", product],
        ["LANGUAGE_ID", "1"],
        ["QUANTITY", quantity.to_string()],
        ["REG_NAME", "Ann Example"],
        ["ADDITIONAL1", ""],
        ["ADDITIONAL2", ""],
        ["RESELLER", ""],
        ["LASTNAME", "Example"],
        ["FIRSTNAME", "Ann"],
        ["COMPANY", "Example Corp"],
        ["EMAIL", "ann@example.com"],
        ["PHONE", ""],
        ["FAX", ""],
        ["STREET", "1 Main St"],
        ["CITY", "Springfield"],
        ["ZIP", "12345"],
        ["STATE", ""],
        ["COUNTRY", "US"],
        ["ENCODING", "UTF-8"]
    ])
}

/// `[name, value]` pairs form-encoded, in order.
pub fn form(pairs: &Value) -> String {
    super::form_encode(pairs)
}
