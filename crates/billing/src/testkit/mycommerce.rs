//! MyCommerce: the key generator's form (the Key Generator SDK's input values), authenticated
//! by the URL token; step bodies are `[name, value]` pairs, form-encoded by [`form`].

use super::{Ids, Kit, Settings, SignedHeaders, Steps, first_secret};
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

    fn steps(&self, _start: i64, _failed_at: i64) -> Steps {
        Steps {
            created: Vec::new(),
            renewed: Vec::new(),
            quantity: Vec::new(),
            failed: Vec::new(),
            recovered: Vec::new(),
            cancelled: Vec::new(),
            refunded: Vec::new(),
            cancel_ends_at: 0,
        }
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
