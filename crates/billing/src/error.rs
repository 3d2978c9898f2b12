//! Why a delivery was refused, with stable codes and the HTTP status the endpoint answers.

use keygate_domain::ErrorCode;

/// Why a webhook was refused. Each variant has a stable [`code`](BillingError::code); the
/// text says what exactly was wrong (never a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillingError {
    /// A header the platform always sends is absent.
    #[error("signature missing: {0}")]
    SignatureMissing(String),
    /// The signature (or credentials) did not match, or the signature header is malformed.
    #[error("signature invalid: {0}")]
    SignatureInvalid(String),
    /// The signed timestamp is older (or, where the scheme says so, newer) than allowed.
    #[error("timestamp out of tolerance: {0}")]
    TimestampOutOfTolerance(String),
    /// The integration has no usable secret (or PayPal webhook id): refuse, never accept.
    #[error("secret not configured: {0}")]
    SecretNotConfigured(String),
    /// PayPal: no certificate pinned in the integration's options (this crate never fetches).
    #[error("certificate not configured: {0}")]
    CertificateNotConfigured(String),
    /// PayPal: the pinned certificate cannot be read, is not RSA, or is outside its validity.
    #[error("certificate invalid: {0}")]
    CertificateInvalid(String),
    /// The body is not what the platform sends (not JSON, required field missing).
    #[error("malformed payload: {0}")]
    MalformedPayload(String),
}

impl BillingError {
    /// The stable, machine-readable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            BillingError::SignatureMissing(_) => ErrorCode::SignatureMissing,
            BillingError::SignatureInvalid(_) => ErrorCode::SignatureInvalid,
            BillingError::TimestampOutOfTolerance(_) => ErrorCode::TimestampOutOfTolerance,
            BillingError::SecretNotConfigured(_) => ErrorCode::SecretNotConfigured,
            BillingError::CertificateNotConfigured(_) => ErrorCode::CertificateNotConfigured,
            BillingError::CertificateInvalid(_) => ErrorCode::CertificateInvalid,
            BillingError::MalformedPayload(_) => ErrorCode::MalformedPayload,
        }
    }

    /// The HTTP status a webhook endpoint should answer (the code's): 400 for a malformed
    /// body, 401 for everything about authenticity (including a missing secret: nothing is
    /// applied).
    pub fn http_status(&self) -> u16 {
        self.code().status()
    }

    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        BillingError::MalformedPayload(message.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let all = [
            BillingError::SignatureMissing(String::new()),
            BillingError::SignatureInvalid(String::new()),
            BillingError::TimestampOutOfTolerance(String::new()),
            BillingError::SecretNotConfigured(String::new()),
            BillingError::CertificateNotConfigured(String::new()),
            BillingError::CertificateInvalid(String::new()),
            BillingError::MalformedPayload(String::new()),
        ];
        let codes: Vec<_> = all.iter().map(BillingError::code).collect();
        assert_eq!(
            codes,
            [
                "SIGNATURE_MISSING",
                "SIGNATURE_INVALID",
                "TIMESTAMP_OUT_OF_TOLERANCE",
                "SECRET_NOT_CONFIGURED",
                "CERTIFICATE_NOT_CONFIGURED",
                "CERTIFICATE_INVALID",
                "MALFORMED_PAYLOAD"
            ]
        );
        assert_eq!(all[6].http_status(), 400);
    }
}
