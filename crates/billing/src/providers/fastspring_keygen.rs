//! FastSpring's remote license generator ("Generate a License" → "Remote Server Request"), on
//! the `fastspring` integration itself, so the refund webhooks it already receives revoke
//! the keys it answered (a return names the order's `reference` too).
//!
//! Enabled by `options.license_generator` (an object, `{}` is enough; `licenses`:
//! `per_unit` or `one_with_seats`). FastSpring posts a form (HTTP POST, UTF-8) with the
//! parameters the product's generator is set to send: `reference`, `internalProductName` and
//! `quantity` are required here, `email`, `name`, `company`, `test` are read when sent.
//!
//! Verify: `security_request_hash` = hex MD5 of every other parameter's value, in the order
//! of the parameters' names (byte order), concatenated, followed by the generator's private
//! key. The private key is one of the integration's `secrets` (beside the webhook's HMAC
//! secret: each is tried, the comparison is constant-time). Answer: the keys as plain text,
//! one per line (the generator's "Multiple Licenses" output: FastSpring gives one line per
//! unit to the buyer).

use crate::keygen::{self, KeyGenerator, KeygenOrder, Layout};
use crate::{BillingError, ConfigError, CustomerRef, Request, Secrets};
use keygate_domain::Timestamp;
use md5::{Digest, Md5};

pub struct FastSpringKeygen;

pub const HASH_PARAMETER: &str = "security_request_hash";

/// The hash FastSpring sends for `fields` (every posted field but the hash) under `private_key`.
pub fn request_hash(fields: &[(String, String)], private_key: &str) -> String {
    let mut sorted: Vec<&(String, String)> = fields
        .iter()
        .filter(|(name, _)| name != HASH_PARAMETER)
        .collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut md5 = Md5::new();
    for (_, value) in sorted {
        md5.update(value.as_bytes());
    }
    md5.update(private_key.as_bytes());
    hex::encode(md5.finalize())
}

impl KeyGenerator for FastSpringKeygen {
    fn layout(&self, secrets: &Secrets) -> Result<Layout, ConfigError> {
        if !secrets
            .options
            .get("license_generator")
            .is_some_and(serde_json::Value::is_object)
        {
            return Err(ConfigError::OptionNotConfigured(
                "this FastSpring integration has no `options.license_generator`: set it (`{}` is enough) to answer FastSpring's remote license generator".into(),
            ));
        }
        Layout::of(secrets)
    }

    fn verify(
        &self,
        request: &Request,
        secrets: &Secrets,
        _now: Timestamp,
    ) -> Result<(), BillingError> {
        let keys = secrets.required()?;
        let form = request.form()?;
        let sent = form.get(HASH_PARAMETER).ok_or_else(|| {
            BillingError::SignatureMissing(format!("`{HASH_PARAMETER}` is missing"))
        })?;
        let sent = sent.trim().to_ascii_lowercase();
        let matched = keys.iter().fold(false, |m, key| {
            let expected = request_hash(form.fields(), key);
            crate::crypto::secret_eq(expected.as_bytes(), sent.as_bytes()) | m
        });
        if matched {
            Ok(())
        } else {
            Err(BillingError::SignatureInvalid(format!(
                "`{HASH_PARAMETER}` does not match under any of the integration's secrets (the generator's private key)"
            )))
        }
    }

    fn order(&self, request: &Request) -> Result<KeygenOrder, BillingError> {
        let form = request.form()?;
        let product = keygen::required(&form, "internalProductName")?.to_string();
        Ok(KeygenOrder {
            order: keygen::required(&form, "reference")?.to_string(),
            line: product.clone(),
            product,
            quantity: keygen::quantity(form.get("quantity"))?,
            customer: CustomerRef {
                external_id: None,
                email: keygen::optional(&form, "email"),
                name: keygen::optional(&form, "name")
                    .or_else(|| keygen::optional(&form, "company")),
            },
            livemode: form.get("test").is_none_or(|t| t.trim() != "true"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The documented recipe by hand: sort by name, concatenate the values, append the key.
    #[test]
    fn hash_is_md5_of_sorted_values_and_the_private_key() {
        let f = fields(&[
            ("reference", "FUR150101-1234-56789"),
            ("internalProductName", "pro"),
            ("email", "ann@example.com"),
            ("quantity", "2"),
        ]);
        // email, internalProductName, quantity, reference
        let by_hand = hex::encode(Md5::digest(
            b"ann@example.compro2FUR150101-1234-56789private-key",
        ));
        assert_eq!(request_hash(&f, "private-key"), by_hand);
        let mut with_hash = f.clone();
        with_hash.push((HASH_PARAMETER.into(), by_hand.clone()));
        assert_eq!(request_hash(&with_hash, "private-key"), by_hand);
        assert_ne!(request_hash(&f, "other-key"), by_hand);
        // Upper case sorts before lower case (byte order, as PHP's ksort and Java's TreeSet).
        let f = fields(&[("b", "1"), ("B", "2"), ("a", "3")]);
        assert_eq!(request_hash(&f, ""), hex::encode(Md5::digest(b"231")));
    }
}
