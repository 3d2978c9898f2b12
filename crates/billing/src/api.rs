//! Platform API access, designed once for every platform whose webhooks are too thin to act on
//! (Recurly, Shopify contracts, Authorize.Net, Billwerk, FastSpring without Webhook Expansion,
//! PayPal renewals, Stripe Checkout line items, ...). The server's side is
//! `keygate_server::platform_api`; Stripe is the first platform that uses it.
//!
//! How it runs, with no platform-specific code in the server:
//! 1. An integration holds `api_credentials` (`{name: value}`, the names below), sealed at rest
//!    like `secrets` and never returned (answers list only the names set), and may set
//!    `options.api_base_url` (checked with [`check_api_base_url`]).
//! 2. After `parse`, the server asks [`Provider::fetches`](crate::Provider::fetches) which
//!    objects complete each event. None (today's platforms): nothing changes.
//! 3. The server GETs each [`Fetch`] with its one HTTP client (timeouts, retries with backoff,
//!    no private addresses except the configured base URL), authenticated per [`ApiSpec::auth`],
//!    and hands the JSON back to [`Provider::complete`](crate::Provider::complete).
//! 4. A fetch that fails leaves the event `pending` (the worker retries it), never `applied`
//!    with half the facts; no credentials (or refused ones) leave it `failed` with
//!    `API_CREDENTIALS_REQUIRED` (`API_CREDENTIALS_REJECTED`), replayable once configured.

use crate::ConfigError;

/// The API credentials' names per platform: the contract of `"api_credentials"` in the
/// integration body (outside checks rely on these exact names).
pub const CREDENTIAL_NAMES: &[(&str, &[&str])] = &[
    ("stripe", &["secret_key"]),
    ("paypal", &["client_id", "client_secret"]),
    ("fastspring", &["username", "password"]),
    ("paddle", &["api_key"]),
    ("lemonsqueezy", &["api_key"]),
    ("recurly", &["api_key"]),
    ("billwerk", &["api_key"]),
    ("chargebee", &["site", "api_key"]),
    ("shopify", &["shop_domain", "access_token"]),
    (
        "woocommerce",
        &["store_url", "consumer_key", "consumer_secret"],
    ),
    ("authorizenet", &["api_login_id", "transaction_key"]),
    ("braintree", &["merchant_id", "public_key", "private_key"]),
    ("billwerk_premium", &["client_id", "client_secret"]),
    ("gumroad", &["access_token"]),
];

/// The credential names a platform's API takes (empty: the platform has no API access).
pub fn credential_names(provider: &str) -> &'static [&'static str] {
    CREDENTIAL_NAMES
        .iter()
        .find(|(name, _)| *name == provider)
        .map(|(_, names)| *names)
        .unwrap_or(&[])
}

/// How requests to the platform's API authenticate, from the named credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer {credential}` (Stripe `secret_key`, Paddle/Lemon Squeezy `api_key`).
    Bearer(&'static str),
    /// `Authorization: Basic base64({user}:{password})` (FastSpring, Chargebee with the key as
    /// user and an empty password, Recurly, WooCommerce, Braintree).
    Basic {
        user: &'static str,
        password: Option<&'static str>,
    },
    /// A header carrying a credential as is (Shopify `X-Shopify-Access-Token`).
    Header {
        name: &'static str,
        credential: &'static str,
    },
    /// OAuth2 client credentials: a token from `token_path`, then Bearer (PayPal, Billwerk).
    ClientCredentials {
        token_path: &'static str,
        client_id: &'static str,
        client_secret: &'static str,
    },
}

/// A platform's API: where it is and how to authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiSpec {
    /// Overridden by `options.api_base_url` (tests point it at a local stand-in).
    pub default_base_url: &'static str,
    pub auth: Auth,
}

/// What a thin event needs completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Subscription,
    Customer,
    Order,
    Invoice,
    Transaction,
}

/// One request to the platform's API: `GET {base}{path}`, or a POST of a JSON `body` where
/// the platform's API reads by POST (GraphQL, Authorize.Net's JSON API). The answer is handed
/// back to [`Provider::complete`](crate::Provider::complete) with this same value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    pub object: ObjectKind,
    /// Path and query after the base URL, e.g. `/v1/subscriptions/sub_1`.
    pub path: String,
    /// `Some`: POST this JSON (`content-type: application/json`) instead of a GET.
    pub body: Option<serde_json::Value>,
}

impl Fetch {
    /// `GET {base}{path}`.
    pub fn get(object: ObjectKind, path: impl Into<String>) -> Self {
        Fetch {
            object,
            path: path.into(),
            body: None,
        }
    }

    /// `POST {base}{path}` with a JSON body.
    pub fn post(object: ObjectKind, path: impl Into<String>, body: serde_json::Value) -> Self {
        Fetch {
            object,
            path: path.into(),
            body: Some(body),
        }
    }

    /// `GET` or `POST`, for messages.
    pub fn method(&self) -> &'static str {
        if self.body.is_some() { "POST" } else { "GET" }
    }
}

/// `options.api_base_url`: https only, except loopback over http when private addresses are
/// allowed (`KEYGATE_OUTBOUND_ALLOW_PRIVATE`, for tests and local stand-ins).
pub fn check_api_base_url(url: &str, allow_private: bool) -> Result<(), ConfigError> {
    let invalid = |why: &str| ConfigError::OptionInvalid(format!("options.api_base_url {why}"));
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| invalid("is not a URL"))?;
    let host_port = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host_port.is_empty() || host_port.contains('@') {
        return Err(invalid("has no host (or carries credentials)"));
    }
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.rsplit_once(':').map_or(host_port, |(h, _)| h),
    };
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if allow_private && matches!(host, "127.0.0.1" | "localhost" | "::1") => Ok(()),
        "http" => Err(invalid(
            "must be https (http only for loopback with private addresses allowed)",
        )),
        _ => Err(invalid("must be https")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names_follow_the_contract() {
        assert_eq!(credential_names("stripe"), ["secret_key"]);
        assert_eq!(credential_names("chargebee"), ["site", "api_key"]);
        assert_eq!(
            credential_names("braintree"),
            ["merchant_id", "public_key", "private_key"]
        );
        assert!(credential_names("generic").is_empty());
        // Every registered platform that has an API is in the table.
        for name in [
            "stripe",
            "paypal",
            "fastspring",
            "paddle",
            "lemonsqueezy",
            "chargebee",
        ] {
            assert!(crate::provider(name).is_some());
            assert!(!credential_names(name).is_empty(), "{name}");
        }
    }

    #[test]
    fn base_url_is_https_or_allowed_loopback() {
        check_api_base_url("https://api.stripe.com", false).unwrap();
        check_api_base_url("https://10.0.0.1/v1", false).unwrap();
        check_api_base_url("http://127.0.0.1:9000", true).unwrap();
        check_api_base_url("http://[::1]:9000/x", true).unwrap();
        for (url, allow) in [
            ("http://127.0.0.1:9000", false),
            ("http://example.com", true),
            ("ftp://example.com", true),
            ("https://", false),
            ("https://user:pw@example.com", false),
            ("example.com", false),
        ] {
            let err = check_api_base_url(url, allow).unwrap_err();
            assert_eq!(err.code(), "OPTION_INVALID", "{url}");
        }
    }
}
