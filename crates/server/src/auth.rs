//! Who is calling: an API key (admin endpoints) or the operator's root token.
use crate::app::AppState;
use crate::error::{ApiError, ErrorCode};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use keygate_domain::credentials::secrets_equal;
use keygate_store::Principal;

/// The credential of an `Authorization: Bearer <token>` value. The scheme name is
/// case-insensitive (RFC 7235) and may be followed by any run of spaces or tabs.
pub fn bearer_token(value: &str) -> Option<&str> {
    let value = value.trim_start();
    let split = value.find([' ', '\t'])?;
    let (scheme, token) = value.split_at(split);
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

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
    bearer_token(value.to_str().unwrap_or("")).ok_or_else(|| {
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

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_scheme_is_case_insensitive_and_spaces_are_free() {
        for value in [
            "Bearer kg_sk_1",
            "bearer kg_sk_1",
            "BEARER kg_sk_1",
            "bEaReR kg_sk_1",
            "Bearer   kg_sk_1",
            "Bearer\tkg_sk_1",
            "  Bearer kg_sk_1  ",
        ] {
            assert_eq!(bearer_token(value), Some("kg_sk_1"), "{value:?}");
        }
        for value in [
            "Bearer",
            "Bearer ",
            "Basic kg_sk_1",
            "Bearerkg_sk_1",
            "",
            "kg_sk_1",
        ] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }
}
