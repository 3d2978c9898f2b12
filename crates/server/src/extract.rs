//! Extractors that turn every kind of bad input into the contract error shape.
use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// A JSON body: 413 `PAYLOAD_TOO_LARGE` over the limit, 400 `MALFORMED_JSON` when it is not
/// JSON, 400 `INVALID_BODY` when it is JSON of the wrong shape (types, unknown fields).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PAYLOAD_TOO_LARGE",
                    "the request body is larger than 1 MiB",
                )
            } else {
                ApiError::bad_request("BAD_BODY", rejection.body_text())
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "MALFORMED_JSON",
            "the request body is empty: a JSON object is expected",
        ));
    }
    let parsed = serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::bad_request("INVALID_BODY", e.to_string()),
            _ => {
                ApiError::bad_request("MALFORMED_JSON", format!("the body is not valid JSON: {e}"))
            }
        }
    })?;
    crate::text_guard::check_json_body(bytes)?;
    Ok(parsed)
}

/// Query parameters: 400 `INVALID_QUERY` when they do not fit.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::bad_request("INVALID_QUERY", e.body_text()))
    }
}
