//! Endpoints for vendors' apps. The license key is the credential; no API key.
use super::Route;
use crate::app::AppState;
use crate::config::SignAnswers;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::ApiJson;
use crate::signing::{AccountKey, signature_header};
use axum::extract::State;
use axum::http::{HeaderName, StatusCode, header};
use axum::response::IntoResponse;
use keygate_domain::{Timestamp, ValidationRequest};
use keygate_store::{ActivateInput, UsageInput};
use serde::{Deserialize, Serialize};

pub fn routes() -> Vec<Route> {
    vec![
        Route::post(
            "/v1/licenses/validate",
            "Is this license good? Always 200 with valid + code for a well-formed request",
            validate,
        )
        .tag("client")
        .public()
        .body("ValidateInput")
        .returns(200, "Validation"),
        Route::post(
            "/v1/licenses/activate",
            "Activate a machine (201 new, 200 already activated; 409 TOO_MANY_ACTIVATIONS)",
            activate,
        )
        .tag("client")
        .public()
        .body("ActivateInput")
        .returns(201, "Activation"),
        Route::post(
            "/v1/licenses/deactivate",
            "Deactivate a machine",
            deactivate,
        )
        .tag("client")
        .public()
        .body("DeactivateInput")
        .no_content(),
        Route::post(
            "/v1/licenses/checkout",
            "Check out a floating seat, or heartbeat a held one (409 NO_SEAT_AVAILABLE)",
            checkout,
        )
        .tag("client")
        .public()
        .body("SeatInput")
        .returns(200, "SeatLease"),
        Route::post("/v1/licenses/checkin", "Give a floating seat back", checkin)
            .tag("client")
            .public()
            .body("SeatInput")
            .no_content(),
        Route::post(
            "/v1/licenses/usage",
            "Record metered usage, atomically against the quota (409 QUOTA_EXCEEDED)",
            usage,
        )
        .tag("client")
        .public()
        .body("UsageInput")
        .returns(200, "UsageOutcome"),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateInput {
    pub key: String,
    #[serde(default)]
    pub fingerprint: Option<String>,
    #[serde(default)]
    pub product: Option<String>,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub nonce: Option<String>,
    /// A floating-seat session: `NO_SEAT_AVAILABLE` if it holds no seat and none is free.
    #[serde(default)]
    pub session: Option<String>,
}

#[derive(Serialize)]
struct ValidationBody {
    valid: bool,
    code: &'static str,
    message: &'static str,
    license: Option<keygate_domain::LicenseView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    ts: Timestamp,
}

const MAX_NONCE: usize = 256;

async fn validate(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<ValidateInput>,
) -> ApiResult<impl IntoResponse> {
    check_nonce(&input.nonce)?;
    let request = ValidationRequest {
        fingerprint: input.fingerprint.as_deref(),
        product: input.product.as_deref(),
        features: &input.features,
        session: input.session.as_deref(),
    };
    let outcome = state.store.validate(&input.key, request).await?;
    state.metrics.record_validation(outcome.code);
    let body = ValidationBody {
        valid: outcome.code.is_valid(),
        code: outcome.code.as_str(),
        message: outcome.code.message(),
        license: outcome.license,
        nonce: input.nonce,
        ts: Timestamp::now(),
    };
    if !should_sign(&state, body.nonce.is_some()) {
        return Ok(json_response(StatusCode::OK, to_json_bytes(&body), None));
    }
    let key = match &outcome.account_id {
        Some(account) => state.signer.key_for(&*state.store, account).await?,
        None => state.signer.anonymous(),
    };
    Ok(signed_json(StatusCode::OK, &key, &body))
}

fn should_sign(state: &AppState, has_nonce: bool) -> bool {
    has_nonce || state.config.sign_answers == SignAnswers::Always
}

/// A client answer, signed by the account's key unless signing is not wanted.
async fn answer<T: Serialize>(
    state: &AppState,
    status: StatusCode,
    account_id: &str,
    body: Signed<T>,
) -> ApiResult<axum::response::Response> {
    if !should_sign(state, body.nonce.is_some()) {
        return Ok((status, axum::Json(body)).into_response());
    }
    let key = state.signer.key_for(&*state.store, account_id).await?;
    Ok(signed_json(status, &key, &body))
}

/// A JSON answer with `Keygate-Signature` over its exact bytes.
pub fn signed_json<T: Serialize>(
    status: StatusCode,
    key: &AccountKey,
    value: &T,
) -> axum::response::Response {
    let body = to_json_bytes(value);
    let signature = signature_header(key, &body);
    json_response(status, body, Some(signature))
}

/// Serialized in one buffer sized for a license answer (no regrowth on the hot path).
fn to_json_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    let mut body = Vec::with_capacity(1536);
    serde_json::to_writer(&mut body, value).unwrap_or_default();
    body
}

fn json_response(
    status: StatusCode,
    body: Vec<u8>,
    signature: Option<String>,
) -> axum::response::Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    if let Some(signature) = signature
        && let Ok(value) = axum::http::HeaderValue::from_str(&signature)
    {
        headers.insert(HeaderName::from_static("keygate-signature"), value);
    }
    response
}

#[derive(Serialize)]
struct Signed<T: Serialize> {
    #[serde(flatten)]
    inner: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    ts: Timestamp,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivateBody {
    key: String,
    fingerprint: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    platform: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

async fn activate(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<ActivateBody>,
) -> ApiResult<impl IntoResponse> {
    check_nonce(&input.nonce)?;
    // Shown in every activation list and signed answer: bounded like names.
    for (field, value) in [("name", &input.name), ("platform", &input.platform)] {
        if value
            .as_ref()
            .is_some_and(|v| v.chars().count() > keygate_domain::limits::MAX_NAME_CHARS)
        {
            return Err(ApiError::new(
                ErrorCode::InvalidField,
                format!(
                    "`{field}` must be at most {} characters",
                    keygate_domain::limits::MAX_NAME_CHARS
                ),
            ));
        }
    }
    let (activation, created) = state
        .store
        .activate(ActivateInput {
            key: input.key,
            fingerprint: input.fingerprint,
            name: input.name,
            platform: input.platform,
        })
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let account_id = activation.account_id.clone();
    let body = Signed {
        inner: activation,
        nonce: input.nonce,
        ts: Timestamp::now(),
    };
    answer(&state, status, &account_id, body).await
}

fn check_nonce(nonce: &Option<String>) -> ApiResult<()> {
    if nonce.as_ref().is_some_and(|n| n.len() > MAX_NONCE) {
        return Err(ApiError::new(
            ErrorCode::InvalidBody,
            format!("`nonce` is longer than {MAX_NONCE} characters"),
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeactivateInput {
    key: String,
    fingerprint: String,
}

async fn deactivate(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<DeactivateInput>,
) -> ApiResult<StatusCode> {
    state
        .store
        .deactivate(&input.key, &input.fingerprint)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeatInput {
    key: String,
    session: String,
    #[serde(default)]
    nonce: Option<String>,
}

async fn checkout(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<SeatInput>,
) -> ApiResult<impl IntoResponse> {
    check_nonce(&input.nonce)?;
    let lease = state.store.checkout(&input.key, &input.session).await?;
    let key = state
        .signer
        .key_for(&*state.store, &lease.account_id)
        .await?;
    let body = Signed {
        inner: lease,
        nonce: input.nonce,
        ts: Timestamp::now(),
    };
    Ok(signed_json(StatusCode::OK, &key, &body))
}

async fn checkin(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<SeatInput>,
) -> ApiResult<StatusCode> {
    state.store.checkin(&input.key, &input.session).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn usage(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<UsageInput>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(state.store.record_usage(input).await?))
}
