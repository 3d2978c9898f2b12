//! An integration's verification material: secrets (several during a rotation) and options.

use crate::BillingError;

/// An integration's verification material.
///
/// `secrets`: several during a rotation (any one may match; blank entries are ignored).
/// `options` (per provider): `tolerance_seconds` (Stripe 300, Paddle 5, generic 300 by
/// default; PayPal: unset = no check), PayPal `webhook_id` and `certificate_pem` (one or more
/// PEM certificates, a string or an array), Chargebee `username` / `password` (or secrets of
/// the form `username:password`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Secrets {
    pub secrets: Vec<String>,
    pub options: serde_json::Value,
}

impl Secrets {
    pub fn new<S: Into<String>>(secrets: impl IntoIterator<Item = S>) -> Self {
        Secrets {
            secrets: secrets.into_iter().map(Into::into).collect(),
            options: serde_json::Value::Null,
        }
    }

    pub fn with_options(mut self, options: serde_json::Value) -> Self {
        self.options = options;
        self
    }

    /// The usable secrets, or `SECRET_NOT_CONFIGURED` when there is none (fail closed).
    pub fn required(&self) -> Result<Vec<&str>, BillingError> {
        let usable: Vec<&str> = self
            .secrets
            .iter()
            .map(String::as_str)
            .filter(|s| !s.trim().is_empty())
            .collect();
        if usable.is_empty() {
            return Err(BillingError::SecretNotConfigured(
                "the integration has no webhook secret".into(),
            ));
        }
        Ok(usable)
    }

    pub fn option_str(&self, key: &str) -> Option<&str> {
        self.options
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// `options.tolerance_seconds` when it is a positive integer, else `default`.
    pub fn tolerance_seconds(&self, default: i64) -> i64 {
        self.options
            .get("tolerance_seconds")
            .and_then(|v| v.as_i64())
            .filter(|t| *t > 0)
            .unwrap_or(default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_secrets_fail_closed() {
        for secrets in [Secrets::default(), Secrets::new(["", "  "])] {
            let err = secrets.required().unwrap_err();
            assert_eq!(err.code(), "SECRET_NOT_CONFIGURED");
            assert_eq!(err.http_status(), 401);
        }
        assert_eq!(Secrets::new(["a", ""]).required().unwrap(), ["a"]);
    }

    #[test]
    fn tolerance_option() {
        let s = Secrets::new(["x"]);
        assert_eq!(s.tolerance_seconds(300), 300);
        let s = s.with_options(serde_json::json!({"tolerance_seconds": 10}));
        assert_eq!(s.tolerance_seconds(300), 10);
        let s = Secrets::new(["x"]).with_options(serde_json::json!({"tolerance_seconds": 0}));
        assert_eq!(s.tolerance_seconds(300), 300);
    }
}
