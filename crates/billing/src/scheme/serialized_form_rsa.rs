//! A signature carried inside a form as one of its fields (Paddle Classic's `p_signature`):
//! base64 RSA PKCS#1 v1.5 SHA-1 over PHP `serialize()` of every *other* field, sorted by key,
//! each value as a string ([`super::php_serialize`]), checked with the vendor's public key.
//! No timestamp is signed, so a captured alert replays: the inbox de-duplicates on the
//! platform's alert id.

use super::php_serialize::serialize_sorted;
use super::rsa_signature;
use crate::{BillingError, Form};
use rsa::RsaPublicKey;

#[derive(Debug, Clone, Copy)]
pub struct SerializedFormRsa {
    /// The form field that holds the signature (left out of the signed bytes).
    pub field: &'static str,
}

impl SerializedFormRsa {
    /// The bytes that are signed: every field but the signature, serialized sorted.
    pub fn signed_bytes(&self, fields: &[(String, String)]) -> Vec<u8> {
        serialize_sorted(
            fields
                .iter()
                .filter(|(name, _)| name != self.field)
                .map(|(n, v)| (n.as_str(), v.as_str())),
        )
    }

    /// `Ok` when the signature field verifies with one of `keys` (none = refuse).
    pub fn verify(&self, form: &Form, keys: &[RsaPublicKey]) -> Result<(), BillingError> {
        if keys.is_empty() {
            return Err(BillingError::SecretNotConfigured(
                "configure the vendor public key as the integration's secret".into(),
            ));
        }
        let signature = form
            .get(self.field)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                BillingError::SignatureMissing(format!("the form has no `{}` field", self.field))
            })?;
        // A base64 signature has no spaces: a `+` a sender left unencoded decodes to one.
        let signature = signature.replace(' ', "+");
        rsa_signature::verify_sha1(keys, &self.signed_bytes(form.fields()), &signature)
    }

    /// The signature field's value for `fields`, signed with a PKCS#8 PEM private key.
    #[cfg(feature = "testkit")]
    pub fn sign(&self, private_key_pem: &str, fields: &[(String, String)]) -> String {
        rsa_signature::sign_sha1(private_key_pem, &self.signed_bytes(fields))
    }
}
