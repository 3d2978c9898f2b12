//! OAuth2 client credentials (RFC 6749 §4.4) for the platform APIs that want a bearer token
//! first (`Auth::ClientCredentials`: PayPal, billwerk Premium): `POST {base}{token_path}`
//! with the form `grant_type=client_credentials` and the client id and secret as Basic auth,
//! as both platforms document it.
//!
//! Tokens live in this process's memory only, per integration and credentials, until shortly
//! before the `expires_in` the platform gave (a token answered without one, as billwerk's
//! `"expires": 0`, is kept [`UNDATED_LIFETIME`]); a 401 from the API drops the cached token
//! and asks for a new one once (see `platform_api`). A token is never logged, stored or put
//! in an error message.
use crate::outbound::http;
use crate::platform_api::Incomplete;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// How long before the platform's expiry a token is no longer used: a request started with
/// it must still arrive in time.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
/// The lifetime assumed for a token answered without `expires_in`: short, since the 401
/// that would end it costs a request.
pub const UNDATED_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// The longest a token is kept whatever the platform says.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// The token request's deadline.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Tries of the token request within one apply (network, 429, 5xx only).
const ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The most of a token answer read.
const ANSWER_LIMIT: usize = 64 * 1024;

/// One process, one cache: the key names the integration and a digest of the token URL and
/// credentials, so changed credentials never reuse the old ones' token.
static TOKENS: LazyLock<Mutex<HashMap<String, Cached>>> = LazyLock::new(Default::default);

struct Cached {
    token: String,
    until: Instant,
}

/// Where and with what to ask for a token.
pub struct TokenSource {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub allow_private: bool,
    key: String,
}

impl TokenSource {
    pub fn new(
        integration_id: &str,
        token_url: String,
        client_id: String,
        client_secret: String,
        allow_private: bool,
    ) -> Self {
        let mut digest = Sha256::new();
        for part in [token_url.as_str(), &client_id, &client_secret] {
            digest.update(part.as_bytes());
            digest.update([0]);
        }
        let digest: String = digest
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let key = format!("{integration_id}:{digest}");
        TokenSource {
            token_url,
            client_id,
            client_secret,
            allow_private,
            key,
        }
    }

    /// A token: the cached one unless `fresh` (the API refused it), else a new one.
    pub async fn token(&self, fresh: bool) -> Result<String, Incomplete> {
        if fresh {
            self.forget();
        } else if let Some(token) = self.cached() {
            return Ok(token);
        }
        let (token, lifetime) = self.exchange().await?;
        let until = Instant::now() + lifetime.min(MAX_LIFETIME).saturating_sub(EXPIRY_MARGIN);
        if let Ok(mut tokens) = TOKENS.lock() {
            let now = Instant::now();
            tokens.retain(|_, cached| cached.until > now);
            tokens.insert(
                self.key.clone(),
                Cached {
                    token: token.clone(),
                    until,
                },
            );
        }
        Ok(token)
    }

    fn cached(&self) -> Option<String> {
        let tokens = TOKENS.lock().ok()?;
        tokens
            .get(&self.key)
            .filter(|cached| cached.until > Instant::now())
            .map(|cached| cached.token.clone())
    }

    fn forget(&self) {
        if let Ok(mut tokens) = TOKENS.lock() {
            tokens.remove(&self.key);
        }
    }

    /// The token request, retried on what may pass; a refusal is the vendor's to fix.
    async fn exchange(&self) -> Result<(String, Duration), Incomplete> {
        let target = http::parse_url(&self.token_url).map_err(|e| {
            Incomplete::configure("OPTION_INVALID", format!("`{}`: {e}", self.token_url))
        })?;
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.client_id, self.client_secret));
        let headers = [
            ("authorization", format!("Basic {basic}")),
            ("accept", "application/json".to_string()),
        ];
        let mut backoff = FIRST_BACKOFF;
        let mut last = Incomplete::retry("API_FETCH_FAILED", "not tried");
        for attempt in 1..=ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            let answer = match http::post_form(
                &target,
                self.allow_private,
                &headers,
                "grant_type=client_credentials".to_string(),
                ANSWER_LIMIT,
                TOKEN_TIMEOUT,
            )
            .await
            {
                Ok(answer) => answer,
                Err(e @ http::SendError::PrivateAddress(_)) => {
                    return Err(Incomplete::configure(e.code(), e.to_string()));
                }
                Err(e) => {
                    last = Incomplete::retry(
                        "API_FETCH_FAILED",
                        format!("the OAuth token request failed: {e} ({})", e.code()),
                    );
                    continue;
                }
            };
            match answer.status {
                200..=299 => return read_token(&answer.body),
                // RFC 6749 §5.2: invalid_client is 401, invalid_grant/unauthorized_client 400.
                400 | 401 | 403 => {
                    return Err(Incomplete::configure(
                        "API_CREDENTIALS_REJECTED",
                        format!(
                            "the platform refused the integration's client credentials at its \
                             OAuth token endpoint ({}): set valid `api_credentials`, then replay \
                             the event",
                            answer.status
                        ),
                    ));
                }
                status => {
                    last = Incomplete::retry(
                        "API_FETCH_FAILED",
                        format!("the OAuth token endpoint answered {status}"),
                    );
                    if status != 429 && status < 500 {
                        break;
                    }
                }
            }
        }
        Err(last)
    }
}

/// `{"access_token": "...", "token_type": "Bearer", "expires_in": 32400}`.
fn read_token(body: &str) -> Result<(String, Duration), Incomplete> {
    let invalid = |why: &str| {
        Incomplete::retry(
            "API_ANSWER_INVALID",
            format!("the OAuth token answer {why}"),
        )
    };
    let answer: serde_json::Value =
        serde_json::from_str(body).map_err(|_| invalid("is not JSON"))?;
    let token = answer
        .get("access_token")
        .and_then(|v| v.as_str())
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| invalid("has no usable `access_token`"))?;
    if let Some(kind) = answer.get("token_type").and_then(|v| v.as_str())
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(invalid("is not a bearer token"));
    }
    let lifetime = answer
        .get("expires_in")
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        .map(Duration::from_secs)
        .unwrap_or(UNDATED_LIFETIME);
    Ok((token.to_string(), lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_answers() {
        // PayPal: expires_in in seconds.
        let (token, lifetime) = read_token(
            r#"{"scope":"https://uri.paypal.com/services/subscriptions","access_token":"A21AA",
                "token_type":"Bearer","app_id":"APP-80W284485P519543T","expires_in":32400,
                "nonce":"2020-04-03T15:35:36ZaYZlGvEkV4yVSz8g6bAKFoGSEzuy3CQcz3ljhibkOHg"}"#,
        )
        .unwrap();
        assert_eq!((token.as_str(), lifetime.as_secs()), ("A21AA", 32400));
        // billwerk: no expires_in.
        let (token, lifetime) =
            read_token(r#"{"access_token":"top_secret","expires":0,"token_type":"bearer"}"#)
                .unwrap();
        assert_eq!((token.as_str(), lifetime), ("top_secret", UNDATED_LIFETIME));
        for bad in [
            "not json",
            r#"{"token_type":"Bearer"}"#,
            r#"{"access_token":""}"#,
            r#"{"access_token":"a b"}"#,
            r#"{"access_token":"x","token_type":"mac"}"#,
        ] {
            let err = read_token(bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    Incomplete::Retry {
                        code: "API_ANSWER_INVALID",
                        ..
                    }
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_cache_key_follows_the_credentials() {
        let a = TokenSource::new(
            "int_1",
            "https://x/t".into(),
            "id".into(),
            "s1".into(),
            false,
        );
        let b = TokenSource::new(
            "int_1",
            "https://x/t".into(),
            "id".into(),
            "s2".into(),
            false,
        );
        let c = TokenSource::new(
            "int_2",
            "https://x/t".into(),
            "id".into(),
            "s1".into(),
            false,
        );
        assert_ne!(a.key, b.key);
        assert_ne!(a.key, c.key);
        assert!(!a.key.contains("s1"));
    }
}
