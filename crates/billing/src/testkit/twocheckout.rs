//! 2Checkout: IPN and LCN forms (shaped from the official Python SDK's IPN sample and the LCN
//! parameter list), dates local to `TIMEZONE_OFFSET` `GMT+03:00`, signed with all three of
//! `HASH`, `SIGNATURE_SHA2_256` and `SIGNATURE_SHA3_256` at the end, as 2Checkout sends them.
//!
//! A step body is a JSON array of `[name, value]` pairs in sending order (repeated bracket
//! names for the product arrays); [`TwoCheckoutKit::form`] encodes and signs it.

use super::{Delivery, Ids, Kit, MONTH, OrderSteps, Settings, SignedHeaders, Steps, first_secret};
use crate::decode::form::Form;
use crate::scheme::length_prefixed_hmac::{Algorithm, sign};
use crate::{Secrets, Timestamp};
use serde_json::{Value, json};

pub struct TwoCheckoutKit;

const SECRET: &str = "2co-secret-key-for-tests";
const OFFSET_SECONDS: i64 = 3 * 3600;
const SUBSCRIPTION: &str = "LCS7N0W2Q1";
const CUSTOMER: &str = "756227060";
const PRODUCT_CODE: &str = "PRO-M";

impl Kit for TwoCheckoutKit {
    fn settings(&self) -> Settings {
        Settings {
            secrets: vec![SECRET.into()],
            options: json!({}),
        }
    }

    /// 2Checkout signs inside the form, not in a header: nothing to add.
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
            mapping: PRODUCT_CODE,
            customer: CUSTOMER,
            subscription: SUBSCRIPTION,
        }
    }

    fn steps(&self, start: i64, failed_at: i64) -> Option<Steps> {
        Some(twocheckout_steps(start, failed_at))
    }

    /// A lifetime product (2 seats) beside an unmapped one, then the order's full refund.
    fn order_steps(&self, start: i64) -> Option<OrderSteps> {
        let refno = format!("3{}", start.rem_euclid(100_000_000));
        let lines = [
            ("40898111", "Pro Lifetime", PRODUCT_CODE, 2),
            ("40898222", "Extra Themes", "THEMES", 1),
        ];
        Some(OrderSteps {
            paid: vec![lifetime_ipn(&refno, "COMPLETE", start - 50, &lines, &[])],
            refunded: vec![lifetime_ipn(
                &refno,
                "REFUND",
                start - 40,
                &lines,
                &[("REFUND_TYPE", "FULL")],
            )],
            order: refno,
        })
    }

    /// The step's pairs, form-encoded and signed (2Checkout signs inside the form).
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
}

impl TwoCheckoutKit {
    /// The form body 2Checkout posts for `pairs` (a step body), signed with the first usable
    /// secret.
    pub fn form(&self, secrets: &Secrets, pairs: &Value) -> Result<Vec<u8>, String> {
        let key = first_secret(secrets)?;
        let pairs = pairs
            .as_array()
            .ok_or("a 2Checkout step is an array of [name, value] pairs")?;
        let mut body = String::new();
        for pair in pairs {
            let (Some(name), Some(value)) = (pair[0].as_str(), pair[1].as_str()) else {
                return Err(format!("not a [name, value] pair: {pair}"));
            };
            push(&mut body, name, value);
        }
        let form = Form::parse(body.as_bytes()).map_err(|e| e.to_string())?;
        for algorithm in [Algorithm::Md5, Algorithm::Sha256, Algorithm::Sha3_256] {
            let signature = sign(algorithm, key.as_bytes(), &form);
            push(&mut body, algorithm.field(), &signature);
        }
        Ok(body.into_bytes())
    }
}

/// Appends `name=value`, percent-encoded as a browser encodes a form.
pub(crate) fn push(body: &mut String, name: &str, value: &str) {
    if !body.is_empty() {
        body.push('&');
    }
    encode_into(body, name);
    body.push('=');
    encode_into(body, value);
}

fn encode_into(out: &mut String, text: &str) {
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS` at GMT+03:00.
fn local(at: i64) -> String {
    super::rfc(at + OFFSET_SECONDS)[..19].replace('T', " ")
}

/// `YmdHis` at GMT+03:00.
fn compact(at: i64) -> String {
    local(at).chars().filter(char::is_ascii_digit).collect()
}

/// One product line of an order.
pub(crate) struct Product {
    pub pid: &'static str,
    pub name: &'static str,
    pub code: &'static str,
    pub qty: i64,
    pub license_type: &'static str,
    pub license_ref: &'static str,
    /// `None`: a lifetime license.
    pub expires: Option<i64>,
}

fn pair(name: &str, value: impl Into<String>) -> Value {
    json!([name, value.into()])
}

/// An IPN for order `refno` in `status` at `at`, with `products`.
pub(crate) fn ipn(
    refno: &str,
    status: &str,
    at: i64,
    products: &[Product],
    extra: &[(&str, &str)],
) -> Value {
    let mut fields = vec![
        pair("GIFT_ORDER", "0"),
        pair("SALEDATE", local(at - 60)),
        pair("PAYMENTDATE", local(at - 30)),
        pair("REFNO", refno),
        pair("REFNOEXT", ""),
        pair("SHOPPER_REFERENCE_NUMBER", ""),
        pair("ORDERNO", "0"),
        pair("ORDERSTATUS", status),
        pair("PAYMETHOD", "Visa/MasterCard"),
        pair("PAYMETHOD_CODE", "CCVISAMC"),
        pair("FIRSTNAME", "Ann"),
        pair("LASTNAME", "Example"),
        pair("COMPANY", ""),
        pair("ADDRESS1", "1 Example Street"),
        pair("CITY", "Bucharest"),
        pair("COUNTRY", "Romania"),
        pair("COUNTRY_CODE", "ro"),
        pair("CUSTOMEREMAIL", "ann@example.com"),
        pair("IPADDRESS", "192.0.2.10"),
        pair("COMPLETE_DATE", local(at)),
        pair("TIMEZONE_OFFSET", "GMT+03:00"),
        pair("CURRENCY", "USD"),
        pair("LANGUAGE", "en"),
        pair("ORDERFLOW", "REGULAR"),
    ];
    type Column<'a> = (&'a str, &'a dyn Fn(&Product) -> String);
    let arrays: [Column; 11] = [
        ("IPN_PID[]", &|p| p.pid.into()),
        ("IPN_PNAME[]", &|p| p.name.into()),
        ("IPN_PCODE[]", &|p| p.code.into()),
        ("IPN_QTY[]", &|p| p.qty.to_string()),
        ("IPN_PRICE[]", &|_| "30.00".into()),
        ("IPN_VAT[]", &|_| "0.00".into()),
        ("IPN_ORDER_COSTS[]", &|_| "0".into()),
        ("IPN_LICENSE_PROD[]", &|p| p.pid.into()),
        ("IPN_LICENSE_TYPE[]", &|p| p.license_type.into()),
        ("IPN_LICENSE_REF[]", &|p| p.license_ref.into()),
        ("IPN_LICENSE_EXP[]", &|p| {
            p.expires.map_or("9999-12-31 23:59:59".into(), local)
        }),
    ];
    for (name, value) in arrays {
        fields.extend(products.iter().map(|p| pair(name, value(p))));
    }
    fields.extend(
        products
            .iter()
            .map(|_| pair("IPN_LICENSE_START[]", local(at - 30))),
    );
    fields.extend(products.iter().map(|p| {
        pair(
            "IPN_LICENSE_LIFETIME[]",
            if p.expires.is_none() { "YES" } else { "NO" },
        )
    }));
    fields.extend([
        pair(
            "MESSAGE_ID",
            format!("25{}", refno.trim_start_matches("REF")),
        ),
        pair("MESSAGE_TYPE", status),
        pair("IPN_TOTALGENERAL", "30.00"),
        pair("AVANGATE_CUSTOMER_REFERENCE", CUSTOMER),
        pair("EXTERNAL_CUSTOMER_REFERENCE", "ann-1"),
        pair("REFUND_TYPE", ""),
        pair("CHARGEBACK_RESOLUTION", "NONE"),
        pair("TEST_ORDER", "0"),
        pair("FRAUD_STATUS", "APPROVED"),
        pair("IPN_DATE", compact(at)),
    ]);
    for (name, value) in extra {
        match fields.iter_mut().find(|f| f[0] == *name) {
            Some(field) => field[1] = json!(value),
            None => fields.push(pair(name, *value)),
        }
    }
    Value::Array(fields)
}

/// An LCN for the kit's subscription at `at`.
pub(crate) fn lcn(at: i64, status: &str, expires: i64, extra: &[(&str, &str)]) -> Value {
    let mut fields = vec![
        pair("FIRST_NAME", "Ann"),
        pair("LAST_NAME", "Example"),
        pair("COMPANY", ""),
        pair("EMAIL", "ann@example.com"),
        pair("COUNTRY", "Romania"),
        pair("LICENSE_CODE", SUBSCRIPTION),
        pair("EXPIRATION_DATE_TIME", local(expires)),
        pair("EXPIRATION_DATE", local(expires)[..10].to_string()),
        pair("DATE_UPDATED", local(at)),
        pair("AVANGATE_CUSTOMER_REFERENCE", CUSTOMER),
        pair("EXTERNAL_CUSTOMER_REFERENCE", "ann-1"),
        pair("TEST", "0"),
        pair("CHANGED_BY", "SYSTEM"),
        pair("LICENSE_TYPE", "REGULAR"),
        pair("DISABLED", "0"),
        pair("RECURRING", "1"),
        pair("LICENSE_PRODUCT", "40898000"),
        pair("LICENSE_PRODUCT_CODE", PRODUCT_CODE),
        pair("STATUS", status),
        pair("EXPIRED", "0"),
        pair("TIMEZONE_OFFSET", "GMT+03:00"),
        pair("DISPATCH_REASON", "LICENCE_CHANGE"),
        pair("IS_TRIAL", "0"),
    ];
    for (name, value) in extra {
        match fields.iter_mut().find(|f| f[0] == *name) {
            Some(field) => field[1] = json!(value),
            None => fields.push(pair(name, *value)),
        }
    }
    Value::Array(fields)
}

/// An IPN for order `refno` of lifetime products `(pid, name, code, quantity)` (the one-time
/// purchases of 2Checkout), with `extra` fields set or added.
pub fn lifetime_ipn(
    refno: &str,
    status: &str,
    at: i64,
    lines: &[(&'static str, &'static str, &'static str, i64)],
    extra: &[(&str, &str)],
) -> Value {
    let products: Vec<Product> = lines
        .iter()
        .map(|&(pid, name, code, qty)| Product {
            pid,
            name,
            code,
            qty,
            license_type: "REGULAR",
            license_ref: "",
            expires: None,
        })
        .collect();
    ipn(refno, status, at, &products, extra)
}

fn subscription_line(license_type: &'static str, qty: i64, expires: i64) -> Product {
    Product {
        pid: "40898000",
        name: "Pro Monthly",
        code: PRODUCT_CODE,
        qty,
        license_type,
        license_ref: SUBSCRIPTION,
        expires: Some(expires),
    }
}

fn twocheckout_steps(now: i64, failed_at: i64) -> Steps {
    let p1 = now + MONTH;
    let p2 = now + 2 * MONTH;
    Steps {
        created: vec![ipn(
            "211153389",
            "COMPLETE",
            now - 100,
            &[subscription_line("REGULAR", 1, p1)],
            &[],
        )],
        renewed: vec![ipn(
            "211153390",
            "COMPLETE",
            now - 90,
            &[subscription_line("RENEW", 1, p2)],
            &[],
        )],
        // More seats are an upgrade order.
        quantity: vec![ipn(
            "211153391",
            "COMPLETE",
            now - 80,
            &[subscription_line("UPGRADE", 5, p2)],
            &[],
        )],
        // A renewal payment that fails makes the subscription past due (LCN).
        failed: vec![lcn(
            failed_at,
            "PASTDUE",
            p2,
            &[("DISPATCH_REASON", "LICENCE_PASTDUE")],
        )],
        recovered: vec![lcn(failed_at + 1, "ACTIVE", p2, &[])],
        // Auto-renewal switched off: active until the expiration.
        cancelled: vec![lcn(
            failed_at + 2,
            "ACTIVE",
            p2,
            &[("RECURRING", "0"), ("CHANGED_BY", "CUSTOMER")],
        )],
        refunded: vec![ipn(
            "211153390",
            "REFUND",
            failed_at + 3,
            &[subscription_line("RENEW", 1, p2)],
            &[("REFUND_TYPE", "FULL")],
        )],
        cancel_ends_at: p2,
    }
}
