//! Public keys for offline verification, key rotation, and signed license files.
use super::Route;
use crate::app::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::ApiJson;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use keygate_domain::{Timestamp, ValidationRequest};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/v1/accounts/{id}/public-key",
            "The account's Ed25519 public keys: the current one and earlier ones (public)",
            public_keys,
        )
        .tag("signing")
        .public()
        .returns(200, "PublicKeys"),
        Route::post(
            "/v1/signing-keys/rotate",
            "Make a new signing key current; earlier keys stay listed so old files still verify",
            rotate,
        )
        .tag("signing")
        .returns(200, "PublicKeys"),
        Route::post(
            "/v1/licenses/file",
            "A signed license file for offline use (text, armored)",
            license_file,
        )
        .tag("client")
        .public()
        .body("LicenseFileInput"),
    ]
}

async fn key_document(state: &AppState, account_id: &str) -> ApiResult<Value> {
    state.store.get_account(account_id).await?;
    // Every account has a key: accounts made before keys existed get one now.
    state.signer.key_for(&*state.store, account_id).await?;
    let keys = state.store.signing_keys(account_id).await?;
    let shown: Vec<Value> = keys
        .iter()
        .map(|k| {
            json!({"key_id": k.key_id, "public_key": k.public_key, "alg": "ed25519",
                   "created_at": k.created_at, "retired_at": k.retired_at})
        })
        .collect();
    let current = keys
        .iter()
        .position(|k| k.retired_at.is_none())
        .map(|i| shown[i].clone())
        .unwrap_or(Value::Null);
    Ok(json!({"account_id": account_id, "current": current, "keys": shown}))
}

async fn public_keys(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(key_document(&state, &id).await?))
}

async fn rotate(Admin(who): Admin, State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    state
        .store
        .rotate_signing_key(&who, state.signer.new_record(&who.account_id))
        .await?;
    state.signer.forget(&who.account_id);
    Ok(axum::Json(key_document(&state, &who.account_id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileInput {
    key: String,
    #[serde(default)]
    fingerprint: Option<String>,
    #[serde(default)]
    ttl_seconds: Option<i64>,
}

pub const DEFAULT_FILE_TTL: i64 = 30 * 86_400;
const MAX_FILE_TTL: i64 = 10 * 365 * 86_400;

async fn license_file(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<FileInput>,
) -> ApiResult<impl IntoResponse> {
    let ttl = input.ttl_seconds.unwrap_or(DEFAULT_FILE_TTL);
    if !(60..=MAX_FILE_TTL).contains(&ttl) {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            format!("`ttl_seconds` must be 60..={MAX_FILE_TTL}"),
        ));
    }
    let outcome = state
        .store
        .validate(
            &input.key,
            ValidationRequest {
                fingerprint: input.fingerprint.as_deref(),
                ..Default::default()
            },
        )
        .await?;
    let (Some(license), Some(policy), Some(account_id)) =
        (outcome.license, outcome.policy, outcome.account_id)
    else {
        return Err(ApiError::not_found("license"));
    };
    if !outcome.code.is_valid() {
        // No file for a license the app could not use online either.
        return Err(ApiError::license_refused(outcome.code));
    }
    let now = Timestamp::now();
    let mut valid_until = now.plus_seconds(ttl);
    if let Some(expiry) = license.grace_until.or(license.expires_at)
        && !policy.perpetual_offline
        && expiry < valid_until
    {
        valid_until = expiry;
    }
    let payload = json!({
        "account_id": account_id,
        "product_code": outcome.product_code,
        "license": license,
        "policy": {
            "id": policy.id, "name": policy.name, "product_id": policy.product_id,
            "duration_seconds": policy.duration_seconds, "grace_seconds": policy.grace_seconds,
            "perpetual_offline": policy.perpetual_offline,
        },
        "entitlements": {
            "features": license.features,
            "max_activations": license.max_activations,
            "max_seats": license.max_seats,
            "quota": license.quota,
        },
        "expires_at": license.expires_at,
        "fingerprint": input.fingerprint,
        "issued_at": now.millis() / 1000,
        "valid_until": valid_until.millis() / 1000,
    });
    let key = state.signer.key_for(&*state.store, &account_id).await?;
    let file = keygate_licfile::issue_file(&key.key, &payload);
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], file))
}
