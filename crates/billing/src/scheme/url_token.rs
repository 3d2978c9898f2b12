//! A secret token in the webhook URL's query, for platforms that sign nothing and send only
//! ids (billwerk Premium: "webhooks only contain an Event field and ... an id field"; the
//! state is fetched from the platform's API). The vendor registers
//! `https://keygate.example/v1/webhooks/{provider}/{id}?token=<secret>` on the platform; each
//! comparison hashes both sides first, so neither the token nor its length leaks by timing.

use crate::crypto::secret_eq;
use crate::{BillingError, Request};

/// The query field that carries the token.
pub const FIELD: &str = "token";

/// `Ok` only when the request's `token` equals one of `secrets` (several during rotation).
/// No secret configured = refuse.
pub fn verify(request: &Request, secrets: &[&str]) -> Result<(), BillingError> {
    if secrets.is_empty() {
        return Err(BillingError::SecretNotConfigured(
            "the integration has no webhook URL token (its secret)".into(),
        ));
    }
    let query = request
        .query_fields()
        .map_err(|_| BillingError::SignatureInvalid("the query string does not decode".into()))?;
    let presented = query.get(FIELD).ok_or_else(|| {
        BillingError::SignatureMissing(format!(
            "the webhook URL has no `{FIELD}`: register the URL with `?{FIELD}=<secret>`"
        ))
    })?;
    let mut matched = false;
    for secret in secrets {
        matched |= secret_eq(presented.as_bytes(), secret.as_bytes());
    }
    if !matched {
        return Err(BillingError::SignatureInvalid(format!(
            "the webhook URL's `{FIELD}` does not match"
        )));
    }
    Ok(())
}

/// The query a platform's webhook URL carries for `secret`.
pub fn query(secret: &str) -> String {
    let mut encoded = String::new();
    for byte in secret.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("{FIELD}={encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Headers;

    #[test]
    fn the_token_must_match() {
        let headers = Headers::new();
        let secret = "bwp_tok+en/with=odd&chars";
        let q = query(secret);
        let ok = Request::post(&headers, b"{}").with_query(&q);
        verify(&ok, &[secret]).unwrap();
        verify(&ok, &["old", secret]).unwrap();
        let code = |q: &str, secrets: &[&str]| {
            verify(&Request::post(&headers, b"{}").with_query(q), secrets)
                .unwrap_err()
                .code()
        };
        assert_eq!(code(&q, &[]), "SECRET_NOT_CONFIGURED");
        assert_eq!(code(&q, &["other"]), "SIGNATURE_INVALID");
        assert_eq!(code("", &[secret]), "SIGNATURE_MISSING");
        assert_eq!(code("tok=1", &[secret]), "SIGNATURE_MISSING");
        assert_eq!(code(&q[..q.len() - 1], &[secret]), "SIGNATURE_INVALID");
        assert_eq!(code("token=", &[secret]), "SIGNATURE_INVALID");
    }
}
