//! The one place errors become HTTP answers:
//! `{"error": {"code": "UPPER_SNAKE_CODE", "message": "human text"}}`.
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keygate_store::StoreError;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("{what} not found"),
        )
    }
}

impl From<keygate_domain::DomainError> for ApiError {
    fn from(e: keygate_domain::DomainError) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code, e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Conflict { code, message } => {
                ApiError::new(StatusCode::CONFLICT, code, message)
            }
            StoreError::Invalid { code, message } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
            }
            StoreError::LicenseRefused(code) => {
                ApiError::new(StatusCode::FORBIDDEN, code.as_str(), code.message())
            }
            StoreError::Database(sqlx_error) if is_overload(&sqlx_error) => {
                tracing::warn!(error = %sqlx_error, "database busy");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    "the database is busy: retry shortly",
                )
            }
            other => {
                tracing::error!(error = %other, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL",
                    "an internal error occurred; it has been logged",
                )
            }
        }
    }
}

fn is_overload(e: &keygate_store_sqlx::Error) -> bool {
    matches!(
        e,
        keygate_store_sqlx::Error::PoolTimedOut | keygate_store_sqlx::Error::PoolClosed
    )
}

/// Re-exported so the server needs no direct sqlx dependency.
use keygate_store::sqlx as keygate_store_sqlx;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
