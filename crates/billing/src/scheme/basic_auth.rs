//! HTTP Basic auth on the webhook URL, for platforms that sign nothing (Chargebee).
//! `Authorization: Basic base64(username:password)` must equal one configured credential;
//! each comparison hashes both sides first, so neither the content nor the length leaks.

use crate::crypto::{decode_base64, encode_base64, secret_eq};
use crate::{BillingError, Headers};

/// `Ok` only when the presented credential equals one of `credentials` (`username:password`).
/// No credential configured = refuse.
pub fn verify(headers: &Headers, credentials: &[String]) -> Result<(), BillingError> {
    if credentials.is_empty() {
        return Err(BillingError::SecretNotConfigured(
            "configure the webhook's basic-auth username and password".into(),
        ));
    }
    let header = headers.require("authorization")?;
    let (scheme, encoded) = header.split_once(' ').unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(BillingError::SignatureInvalid(
            "Authorization is not Basic".into(),
        ));
    }
    let presented = decode_base64(encoded).ok_or_else(|| {
        BillingError::SignatureInvalid("Authorization Basic is not base64".into())
    })?;
    let mut matched = false;
    for credential in credentials {
        matched |= secret_eq(&presented, credential.as_bytes());
    }
    if !matched {
        return Err(BillingError::SignatureInvalid(
            "basic-auth credentials do not match".into(),
        ));
    }
    Ok(())
}

/// The `Authorization` value a client sends for `credential` (`username:password`).
pub fn header(credential: &str) -> String {
    format!("Basic {}", encode_base64(credential.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_vector_and_refusals() {
        assert_eq!(header("user:pass"), "Basic dXNlcjpwYXNz");
        let ok = Headers::new().with("Authorization", "basic dXNlcjpwYXNz");
        let creds = vec!["old:x".to_string(), "user:pass".to_string()];
        verify(&ok, &creds).unwrap();
        assert_eq!(
            verify(&ok, &[]).unwrap_err().code(),
            "SECRET_NOT_CONFIGURED"
        );
        let wrong = Headers::new().with("authorization", header("user:pas"));
        assert_eq!(
            verify(&wrong, &creds).unwrap_err().code(),
            "SIGNATURE_INVALID"
        );
        let bearer = Headers::new().with("authorization", "Bearer dXNlcjpwYXNz");
        assert_eq!(
            verify(&bearer, &creds).unwrap_err().code(),
            "SIGNATURE_INVALID"
        );
        let missing = verify(&Headers::new(), &creds).unwrap_err();
        assert_eq!(missing.code(), "SIGNATURE_MISSING");
    }
}
