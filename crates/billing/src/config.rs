//! What is wrong with an integration's settings, found when it is created or changed (422),
//! and the checks the platforms share.

use keygate_domain::ErrorCode;

use crate::{BillingError, Secrets, Timestamp};

/// A bad integration setting. Each variant has a stable [`code`](ConfigError::code) naming
/// what to fix; the text never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// No usable webhook secret (or credential) at all.
    #[error("secret not configured: {0}")]
    SecretNotConfigured(String),
    /// A secret is not in the form the platform uses (`whsec_<base64>`, `username:password`).
    #[error("secret invalid: {0}")]
    SecretInvalid(String),
    /// A required platform option is absent (PayPal `webhook_id`).
    #[error("option not configured: {0}")]
    OptionNotConfigured(String),
    /// A platform option has a value the platform cannot use (`api_base_url` not https).
    #[error("option invalid: {0}")]
    OptionInvalid(String),
    /// PayPal: no certificate pinned.
    #[error("certificate not configured: {0}")]
    CertificateNotConfigured(String),
    /// PayPal: the pinned certificate does not read, is not RSA, or is not valid now.
    #[error("certificate invalid: {0}")]
    CertificateInvalid(String),
}

impl ConfigError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ConfigError::SecretNotConfigured(_) => ErrorCode::SecretNotConfigured,
            ConfigError::SecretInvalid(_) => ErrorCode::SecretInvalid,
            ConfigError::OptionNotConfigured(_) => ErrorCode::OptionNotConfigured,
            ConfigError::OptionInvalid(_) => ErrorCode::OptionInvalid,
            ConfigError::CertificateNotConfigured(_) => ErrorCode::CertificateNotConfigured,
            ConfigError::CertificateInvalid(_) => ErrorCode::CertificateInvalid,
        }
    }
}

/// The platforms that sign with a shared secret used as-is: at least one non-blank secret.
pub(crate) fn require_secret(secrets: &Secrets, _now: Timestamp) -> Result<(), ConfigError> {
    secrets.required().map(|_| ()).map_err(|e| match e {
        BillingError::SecretNotConfigured(m) => ConfigError::SecretNotConfigured(m),
        other => ConfigError::SecretNotConfigured(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let all = [
            ConfigError::SecretNotConfigured(String::new()),
            ConfigError::SecretInvalid(String::new()),
            ConfigError::OptionNotConfigured(String::new()),
            ConfigError::OptionInvalid(String::new()),
            ConfigError::CertificateNotConfigured(String::new()),
            ConfigError::CertificateInvalid(String::new()),
        ];
        let codes: Vec<_> = all.iter().map(ConfigError::code).collect();
        assert_eq!(
            codes,
            [
                "SECRET_NOT_CONFIGURED",
                "SECRET_INVALID",
                "OPTION_NOT_CONFIGURED",
                "OPTION_INVALID",
                "CERTIFICATE_NOT_CONFIGURED",
                "CERTIFICATE_INVALID"
            ]
        );
        let now = Timestamp::from_unix_seconds(0);
        assert!(require_secret(&Secrets::new(["x"]), now).is_ok());
        let err = require_secret(&Secrets::new([" "]), now).unwrap_err();
        assert_eq!(err.code(), "SECRET_NOT_CONFIGURED");
    }
}
