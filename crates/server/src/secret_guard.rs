//! Credentials where they would be stored in clear and shown back.
//!
//! Integration `options` (and an endpoint's URL and description) are stored as given and
//! returned by every GET. A credential put there by mistake leaks to whoever reads the
//! integration, so anything that looks like one is refused with `SECRET_IN_OPTIONS` and a
//! pointer to where it belongs: `secrets` (sealed, never shown) for webhook secrets,
//! `api_credentials` for platform API keys.
use crate::error::{ApiError, ErrorCode};
use serde_json::Value;

/// Parts of an option name that mean "this holds a credential" (matched case-insensitively
/// inside the name, so `webhook_secret`, `apiKey` and `Client-Token` are all caught).
const SECRET_NAME_PARTS: [&str; 10] = [
    "secret",
    "token",
    "password",
    "passwd",
    "passphrase",
    "key",
    "credential",
    "auth",
    "private",
    "bearer",
];

/// Option names that match a part above but hold public material.
const PUBLIC_NAMES: [&str; 2] = ["public_key", "public_key_pem"];

/// Prefixes of credentials the platforms (and Keygate) issue.
const SECRET_PREFIXES: [&str; 12] = [
    "whsec_",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "rk_test_",
    "rk_",
    "pdl_live_",
    "pdl_sdbx_",
    "kg_sk_",
    "ghp_",
    "github_pat_",
    "xoxb-",
];

const WHERE_THEY_GO: &str = "put webhook secrets in `secrets` (sealed, never shown; Chargebee: \"username:password\") and platform API keys in `api_credentials`";

fn refused(what: &str, why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::SecretInOptions,
        format!(
            "`{what}` {why}: it would be stored in clear and shown by every GET; {WHERE_THEY_GO}"
        ),
    )
}

fn secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !PUBLIC_NAMES.contains(&lower.as_str()) && SECRET_NAME_PARTS.iter().any(|p| lower.contains(p))
}

/// A value shaped like a credential: a known prefix, a private key block, or an HTTP
/// credential (`Bearer ...`, `Basic ...`).
pub fn secret_value(text: &str) -> bool {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    SECRET_PREFIXES.iter().any(|p| lower.starts_with(p))
        || (t.len() == 20 && t.starts_with("AKIA") && t.chars().all(|c| c.is_ascii_alphanumeric()))
        || t.contains("PRIVATE KEY-----")
        || lower.starts_with("bearer ")
        || lower.starts_with("basic ")
}

/// Refuses integration options whose names or values (at any depth) look like credentials.
pub fn refuse_credentials_in_options(options: &Value) -> Result<(), ApiError> {
    fn walk(value: &Value, path: &str) -> Result<(), ApiError> {
        match value {
            Value::String(s) if secret_value(s) => {
                Err(refused(path, "holds a value shaped like a credential"))
            }
            Value::Array(items) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, v)| walk(v, &format!("{path}[{i}]"))),
            Value::Object(map) => map.iter().try_for_each(|(name, v)| {
                let here = format!("{path}.{name}");
                if secret_name(name) {
                    return Err(refused(&here, "is named like a credential"));
                }
                walk(v, &here)
            }),
            _ => Ok(()),
        }
    }
    walk(options, "options")
}

/// Refuses a credential-shaped value inside free text that is shown back (an endpoint's URL
/// query or description). Names are not judged here: `?token=` in a receiver's URL is the
/// receiver's own choice, only a value Keygate can recognise as a platform secret is refused.
pub fn refuse_secret_in_text(field: &str, text: &str) -> Result<(), ApiError> {
    let found = text
        .split(|c: char| c.is_whitespace() || "?&=#/,;\"'".contains(c))
        .any(secret_value);
    if found {
        return Err(refused(field, "holds a value shaped like a credential"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refuses_names_and_values_that_look_like_credentials() {
        for bad in [
            json!({"password": "x"}),
            json!({"secret": "x"}),
            json!({"api_key": "x"}),
            json!({"secrets": ["x"]}),
            json!({"webhook_secret": "shouldnotbeinclear"}),
            json!({"token": "x"}),
            json!({"client_secret": "x"}),
            json!({"signing_secret": "x"}),
            json!({"Password": "x"}),
            json!({"apiKey": "x"}),
            json!({"Authorization": "x"}),
            json!({"credentials": {"user": "u"}}),
            json!({"private_key_pem": "x"}),
            json!({"nested": {"deep": {"access_token": "x"}}}),
            json!({"note": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
            json!({"stripe": "sk_live_51H8aaaaaaaaaaaaaaaaaaaa"}),
            json!({"x": "sk_test_abc"}),
            json!({"x": "rk_live_abc"}),
            json!({"list": ["ok", "rk_test_abc"]}),
            json!({"x": "kg_sk_0123456789"}),
            json!({"x": "AKIAIOSFODNN7EXAMPLE"}),
            json!({"x": "-----BEGIN PRIVATE KEY-----\nMIIE...\n-----END PRIVATE KEY-----"}),
            json!({"x": "Bearer abc.def"}),
        ] {
            let e = refuse_credentials_in_options(&bad).unwrap_err();
            assert_eq!(
                (e.status.as_u16(), e.code),
                (422, "SECRET_IN_OPTIONS"),
                "{bad}"
            );
            assert!(e.message.contains("`secrets`"), "{}", e.message);
            assert!(e.message.contains("`api_credentials`"), "{}", e.message);
        }
        let e = refuse_credentials_in_options(&json!({"a": {"webhook_secret": 1}})).unwrap_err();
        assert!(
            e.message.contains("`options.a.webhook_secret`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn keeps_ordinary_options() {
        for ok in [
            json!({}),
            json!({"renewal": "extend", "grace_seconds": 86400}),
            json!({"tolerance_seconds": 300}),
            json!({"refunds": "full"}),
            json!({"api_base_url": "https://api.example.com"}),
            json!({"webhook_id": "WH-4T710742P5371430X-8B8964416K586124V"}),
            json!({"certificate_pem": "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----"}),
            json!({"public_key": "-----BEGIN PUBLIC KEY-----\nMIIB...\n-----END PUBLIC KEY-----"}),
            json!({"username": "keygate", "site": "acme-test"}),
            json!({"description": "risky words in values are fine: token, secret"}),
        ] {
            assert!(refuse_credentials_in_options(&ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn text_fields() {
        assert!(refuse_secret_in_text("url", "https://h.example.com/hook?token=abc").is_ok());
        assert!(refuse_secret_in_text("url", "https://h.example.com/hook?k=whsec_abc").is_err());
        assert!(refuse_secret_in_text("description", "prod hook, sk_live_123").is_err());
        assert!(refuse_secret_in_text("description", "production receiver").is_ok());
    }
}
