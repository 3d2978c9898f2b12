//! Completing thin events from the platform's API (`keygate_billing::api`): the one place the
//! server talks to a payment platform. The platform module says what to GET
//! ([`Provider::fetches`]) and turns the answers into facts ([`Provider::complete`]); this
//! module authenticates with the integration's sealed `api_credentials`, goes through the
//! outbound HTTP client (vetted addresses, deadlines) and retries what may pass.
use crate::app::AppState;
use crate::outbound::http;
use crate::signing::{Purpose, Scope};
use base64::Engine;
use hyper::body::Bytes;
use keygate_billing::api::{Auth, Fetch};
use keygate_billing::{BillingEvent, Provider};
use keygate_store::gateway::Integration;
use std::collections::BTreeMap;
use std::time::Duration;

/// Each GET's deadline (connection, TLS, answer and body).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Tries per object within one apply; the inbox worker tries the event again later.
const ATTEMPTS: u32 = 3;
/// The pause before the second try, doubled before each next one.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The most of an API answer read: a page of objects is far smaller.
const ANSWER_LIMIT: usize = 1024 * 1024;

/// Why an event could not be completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incomplete {
    /// The vendor must configure something; the event is `failed` until replayed.
    Configure { code: &'static str, message: String },
    /// The platform or the network failed; the event stays `pending` for the worker.
    Retry { code: &'static str, message: String },
}

impl Incomplete {
    fn configure(code: &'static str, message: impl Into<String>) -> Self {
        Incomplete::Configure {
            code,
            message: message.into(),
        }
    }

    fn retry(code: &'static str, message: impl Into<String>) -> Self {
        Incomplete::Retry {
            code,
            message: message.into(),
        }
    }
}

/// `event` with what the platform's API says about it, or why not.
pub async fn complete(
    state: &AppState,
    integration: &Integration,
    provider: &dyn Provider,
    event: BillingEvent,
) -> Result<BillingEvent, Incomplete> {
    let fetches = provider.fetches(&event);
    if fetches.is_empty() {
        return Ok(event);
    }
    let Some(spec) = provider.api() else {
        return Err(Incomplete::configure(
            "API_CREDENTIALS_REQUIRED",
            format!(
                "{} has no API Keygate can complete this event from",
                provider.name()
            ),
        ));
    };
    let credentials = credentials(state, integration).await?;
    let authorization = authorization(spec.auth, &credentials).ok_or_else(|| {
        Incomplete::configure(
            "API_CREDENTIALS_REQUIRED",
            format!(
                "this {} event lacks what a license needs and is completed from the platform's \
                 API: set the integration's `api_credentials` ({}), then replay the event",
                provider.name(),
                keygate_billing::api::credential_names(provider.name()).join(", ")
            ),
        )
    })?;
    // A base URL the vendor configured was checked when stored (https, or loopback http
    // when the operator allows private addresses) and may be private on purpose (a proxy, a
    // stand-in); the platform's own is vetted like any outbound destination.
    let (base, allow_private) = match integration
        .options
        .get("api_base_url")
        .and_then(|v| v.as_str())
    {
        Some(url) => {
            keygate_billing::api::check_api_base_url(url, state.config.outbound_allow_private)
                .map_err(|e| Incomplete::configure(e.code().as_str(), e.to_string()))?;
            (url.trim_end_matches('/').to_string(), true)
        }
        None => (
            spec.default_base_url.to_string(),
            state.config.outbound_allow_private,
        ),
    };
    let mut fetched = Vec::with_capacity(fetches.len());
    for fetch in fetches {
        let object = request(&base, &fetch, &authorization, allow_private).await?;
        fetched.push((fetch, object));
    }
    provider.complete(event, &fetched).map_err(|e| {
        Incomplete::retry(
            "API_ANSWER_INVALID",
            format!("the platform's API answered what Keygate cannot read: {e}"),
        )
    })
}

async fn credentials(
    state: &AppState,
    integration: &Integration,
) -> Result<BTreeMap<String, String>, Incomplete> {
    let sealed = state
        .store
        .sealed_api_credentials(&integration.account_id, &integration.id)
        .await
        .map_err(|e| Incomplete::retry("API_CREDENTIALS_UNREADABLE", e.to_string()))?;
    if sealed.is_empty() {
        return Ok(BTreeMap::new());
    }
    let opened = state
        .signer
        .open_text(
            &Scope::new(&integration.account_id, Purpose::ApiCredentials),
            &sealed,
        )
        .map_err(|_| {
            Incomplete::configure(
                "API_CREDENTIALS_UNREADABLE",
                "the integration's API credentials cannot be opened: check KEYGATE_MASTER_KEY",
            )
        })?;
    Ok(serde_json::from_str(&opened).unwrap_or_default())
}

/// The `Authorization` (or platform) header, when every credential it takes is set.
fn authorization(auth: Auth, credentials: &BTreeMap<String, String>) -> Option<(String, String)> {
    let value = |name: &str| credentials.get(name).filter(|v| !v.is_empty());
    match auth {
        Auth::Bearer(name) => Some(("authorization".into(), format!("Bearer {}", value(name)?))),
        Auth::Basic { user, password } => {
            let password = match password {
                Some(name) => value(name)?.as_str(),
                None => "",
            };
            let pair = format!("{}:{password}", value(user)?);
            Some((
                "authorization".into(),
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ),
            ))
        }
        Auth::Header { name, credential } => Some((name.into(), value(credential)?.clone())),
        // Needs a token exchange first; no registered platform asks for it yet.
        Auth::ClientCredentials { .. } => None,
    }
}

/// One object: retried with backoff on what may pass (network, 429, 5xx), not on a refusal.
async fn request(
    base: &str,
    fetch: &Fetch,
    authorization: &(String, String),
    allow_private: bool,
) -> Result<serde_json::Value, Incomplete> {
    let url = format!("{base}{}", fetch.path);
    let target = http::parse_url(&url)
        .map_err(|e| Incomplete::configure("OPTION_INVALID", format!("`{url}`: {e}")))?;
    let mut headers = vec![
        (authorization.0.as_str(), authorization.1.clone()),
        ("accept", "application/json".to_string()),
    ];
    let (method, body) = match &fetch.body {
        Some(json) => {
            headers.push(("content-type", "application/json".to_string()));
            (hyper::Method::POST, Bytes::from(json.to_string()))
        }
        None => (hyper::Method::GET, Bytes::new()),
    };
    let verb = fetch.method();
    let mut backoff = FIRST_BACKOFF;
    let mut last = Incomplete::retry("API_FETCH_FAILED", "not tried");
    for attempt in 1..=ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        let answer = match http::api_request(
            &target,
            allow_private,
            method.clone(),
            &headers,
            body.clone(),
            ANSWER_LIMIT,
            REQUEST_TIMEOUT,
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
                    format!("{verb} {}: {} ({})", fetch.path, e, e.code()),
                );
                continue;
            }
        };
        match answer.status {
            200..=299 if answer.truncated => {
                return Err(Incomplete::retry(
                    "API_ANSWER_INVALID",
                    format!(
                        "{verb} {}: the answer exceeds {ANSWER_LIMIT} bytes",
                        fetch.path
                    ),
                ));
            }
            200..=299 => {
                return serde_json::from_str(&answer.body).map_err(|e| {
                    Incomplete::retry(
                        "API_ANSWER_INVALID",
                        format!("{verb} {}: the answer is not JSON: {e}", fetch.path),
                    )
                });
            }
            401 | 403 => {
                return Err(Incomplete::configure(
                    "API_CREDENTIALS_REJECTED",
                    format!(
                        "{verb} {}: the platform refused the integration's API credentials ({}): \
                         set valid `api_credentials`, then replay the event",
                        fetch.path, answer.status
                    ),
                ));
            }
            status => {
                last = Incomplete::retry(
                    "API_FETCH_FAILED",
                    format!("{verb} {}: the platform answered {status}", fetch.path),
                );
                if status != 429 && status < 500 {
                    // 404 and the like do not change by asking at once again; the worker
                    // asks later (an object may not be readable yet right after the event).
                    break;
                }
            }
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_follows_the_platform_scheme() {
        let creds: BTreeMap<String, String> = [
            ("secret_key".to_string(), "sk_test_1".to_string()),
            ("api_key".to_string(), "cb".to_string()),
        ]
        .into();
        assert_eq!(
            authorization(Auth::Bearer("secret_key"), &creds),
            Some(("authorization".into(), "Bearer sk_test_1".into()))
        );
        assert_eq!(
            authorization(
                Auth::Basic {
                    user: "api_key",
                    password: None
                },
                &creds
            ),
            Some(("authorization".into(), "Basic Y2I6".into()))
        );
        assert_eq!(authorization(Auth::Bearer("access_token"), &creds), None);
        assert_eq!(
            authorization(
                Auth::Basic {
                    user: "api_key",
                    password: Some("password")
                },
                &creds
            ),
            None
        );
    }
}
