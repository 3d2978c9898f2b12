//! An HMAC over fields of the JSON body, carried in another body field: billwerk+ Optimize
//! (Reepay) signs `signature = hex(HMAC-SHA256(webhook secret, timestamp + id))`, the two
//! body strings concatenated with no separator. Only those fields are authenticated: the
//! rest of the body (event type, customer, subscription, invoice) is not, so a platform
//! using this scheme must confirm everything else from its API before acting.

use crate::BillingError;
use crate::crypto::{Algorithm, any_hmac_matches, decode_hex, hmac};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldHmac {
    /// The body field that carries the hex MAC.
    pub signature_field: &'static str,
    /// The body fields whose string values are signed, concatenated in this order.
    pub signed_fields: &'static [&'static str],
    pub algorithm: Algorithm,
}

impl FieldHmac {
    /// `Ok` only when the MAC of the signed fields under one of `keys` equals the body's
    /// signature field (constant time; every key is tried). No key = refuse.
    pub fn verify(&self, body: &Value, keys: &[&str]) -> Result<(), BillingError> {
        if keys.is_empty() {
            return Err(BillingError::SecretNotConfigured(
                "the integration has no webhook secret".into(),
            ));
        }
        let presented = body
            .get(self.signature_field)
            .and_then(Value::as_str)
            .ok_or_else(|| {
                BillingError::SignatureMissing(format!(
                    "the body has no `{}` string",
                    self.signature_field
                ))
            })?;
        let signature = decode_hex(presented).ok_or_else(|| {
            BillingError::SignatureInvalid(format!("`{}` is not hex", self.signature_field))
        })?;
        let fields = self.signed(body)?;
        let parts: Vec<&[u8]> = fields.iter().map(|f| f.as_bytes()).collect();
        let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
        if !any_hmac_matches(self.algorithm, &keys, &parts, &[signature]) {
            return Err(BillingError::SignatureInvalid(format!(
                "`{}` does not match {}",
                self.signature_field,
                self.signed_fields.join(" + ")
            )));
        }
        Ok(())
    }

    /// The lowercase hex MAC of `body`'s signed fields under `key`.
    pub fn sign(&self, key: &[u8], body: &Value) -> Result<String, BillingError> {
        let fields = self.signed(body)?;
        let parts: Vec<&[u8]> = fields.iter().map(|f| f.as_bytes()).collect();
        Ok(hex::encode(hmac(self.algorithm, key, &parts)))
    }

    fn signed<'a>(&self, body: &'a Value) -> Result<Vec<&'a str>, BillingError> {
        self.signed_fields
            .iter()
            .map(|name| {
                body.get(*name).and_then(Value::as_str).ok_or_else(|| {
                    BillingError::SignatureMissing(format!("the body has no `{name}` string"))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const OPTIMIZE: FieldHmac = FieldHmac {
        signature_field: "signature",
        signed_fields: &["timestamp", "id"],
        algorithm: Algorithm::Sha256,
    };

    /// The documented example's `timestamp` and `id` under the official plugin test's secret
    /// (`test_secret_key`), recomputed with Python's hmac (shared research note §6a).
    #[test]
    fn documented_vector() {
        let body = json!({"id": "8ab4b56439944e62ababca7954355578",
                          "timestamp": "2015-06-25T12:10:00.64Z"});
        let expected = "52593696d7c167c58f89231ff058d3c1fe4936dc2b095ceb04b80821103cfc6c";
        assert_eq!(OPTIMIZE.sign(b"test_secret_key", &body).unwrap(), expected);
        let mut signed = body.clone();
        signed["signature"] = json!(expected);
        OPTIMIZE.verify(&signed, &["test_secret_key"]).unwrap();
        OPTIMIZE
            .verify(&signed, &["old", "test_secret_key"])
            .unwrap();
        signed["signature"] = json!(expected.to_uppercase());
        OPTIMIZE.verify(&signed, &["test_secret_key"]).unwrap();
    }

    #[test]
    fn refusals() {
        let mut body = json!({"id": "wh_1", "timestamp": "2015-06-25T12:10:00.64Z"});
        body["signature"] = json!(OPTIMIZE.sign(b"k", &body).unwrap());
        let code = |b: &Value, keys: &[&str]| OPTIMIZE.verify(b, keys).unwrap_err().code();
        assert_eq!(code(&body, &[]), "SECRET_NOT_CONFIGURED");
        assert_eq!(code(&body, &["other"]), "SIGNATURE_INVALID");
        let mut tampered = body.clone();
        tampered["id"] = json!("wh_2");
        assert_eq!(code(&tampered, &["k"]), "SIGNATURE_INVALID");
        let mut stale = body.clone();
        stale["timestamp"] = json!("2015-06-25T12:10:01.64Z");
        assert_eq!(code(&stale, &["k"]), "SIGNATURE_INVALID");
        let mut missing = body.clone();
        missing.as_object_mut().unwrap().remove("signature");
        assert_eq!(code(&missing, &["k"]), "SIGNATURE_MISSING");
        let mut no_id = body.clone();
        no_id.as_object_mut().unwrap().remove("id");
        assert_eq!(code(&no_id, &["k"]), "SIGNATURE_MISSING");
        let mut not_hex = body.clone();
        not_hex["signature"] = json!("zz");
        assert_eq!(code(&not_hex, &["k"]), "SIGNATURE_INVALID");
        // Only the named fields are signed: the event type is not (the platform module
        // confirms it from the API).
        let mut retyped = body.clone();
        retyped["event_type"] = json!("invoice_refund");
        OPTIMIZE.verify(&retyped, &["k"]).unwrap();
    }
}
