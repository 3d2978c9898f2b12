//! Who is calling: an API key (admin endpoints) or the operator's root token.
use crate::app::AppState;
use crate::error::{ApiError, ErrorCode};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use keygate_domain::credentials::secrets_equal;
use keygate_store::Principal;

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::MissingCredentials,
                "send `Authorization: Bearer <key>`",
            )
        })?;
    let value = value.to_str().unwrap_or("");
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::MalformedCredentials,
                "the Authorization header must be `Bearer <key>`",
            )
        })
}

/// An admin request: the API key's account is the only one it can see or touch.
pub struct Admin(pub Principal);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        match state.store.authenticate(token).await? {
            Some(principal) => Ok(Admin(principal)),
            None => Err(ApiError::new(
                ErrorCode::InvalidApiKey,
                "the API key is unknown or revoked",
            )),
        }
    }
}

/// The operator, holding `KEYGATE_ROOT_TOKEN`.
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(root) = state.config.root_token.as_deref().filter(|t| !t.is_empty()) else {
            return Err(ApiError::new(
                ErrorCode::OperatorDisabled,
                "the operator endpoint is off: set KEYGATE_ROOT_TOKEN to enable it",
            ));
        };
        let token = bearer(parts)?;
        if secrets_equal(token, root) {
            Ok(Operator)
        } else {
            Err(ApiError::new(
                ErrorCode::InvalidRootToken,
                "the root token is wrong",
            ))
        }
    }
}
