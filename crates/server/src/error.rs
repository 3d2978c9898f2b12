//! The one place errors become HTTP answers:
//! `{"error": {"code": "UPPER_SNAKE_CODE", "message": "human text"}}`.
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keygate_domain::ValidationCode;
use keygate_store::StoreError;
use serde_json::json;

pub use keygate_domain::ErrorCode;

#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    /// An [`ErrorCode`]'s text, or a license's validation code (403, see `license_refused`).
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    /// An error answer; its status is the code's.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::from_u16(code.status()).unwrap_or(StatusCode::BAD_REQUEST),
            code: code.as_str(),
            message: message.into(),
        }
    }

    /// The license's state refuses the operation: 403 with the validation code.
    pub fn license_refused(code: ValidationCode) -> Self {
        ApiError {
            status: StatusCode::FORBIDDEN,
            code: code.as_str(),
            message: code.message().to_string(),
        }
    }

    /// An integration's settings refused by the platform's own check when it is created or
    /// changed: 422 whatever the code, which names what is missing or wrong (some of these
    /// codes are the 401s a delivery would meet later, with the same meaning).
    pub fn settings_refused(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: code.as_str(),
            message: message.into(),
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }
}

impl From<keygate_domain::DomainError> for ApiError {
    fn from(e: keygate_domain::DomainError) -> Self {
        ApiError::new(e.code, e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(what),
            // The code says the status (409 for a conflict, 422 for an invalid input).
            StoreError::Conflict { code, message } | StoreError::Invalid { code, message } => {
                ApiError::new(code, message)
            }
            StoreError::LicenseRefused(code) => ApiError::license_refused(code),
            StoreError::Database(sqlx_error) if is_overload(&sqlx_error) => {
                tracing::warn!(error = %sqlx_error, "database busy");
                ApiError::new(
                    ErrorCode::Unavailable,
                    "the database is busy: retry shortly",
                )
            }
            other => {
                tracing::error!(error = %other, "internal error");
                ApiError::new(
                    ErrorCode::Internal,
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

#[cfg(test)]
mod tests {
    use super::ErrorCode;
    use std::collections::BTreeMap;

    /// The README's error table, as (code, status) pairs.
    fn readme_table() -> BTreeMap<String, u16> {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"));
        let section = readme
            .split("\n## Errors\n")
            .nth(1)
            .expect("the README has an Errors section");
        let mut table = BTreeMap::new();
        for line in section.lines().skip_while(|l| !l.starts_with('|')) {
            if !line.starts_with('|') {
                break;
            }
            let mut cells = line.split('|').skip(1);
            let (Some(status), Some(codes)) = (cells.next(), cells.next()) else {
                continue;
            };
            let Ok(status) = status.trim().parse::<u16>() else {
                continue;
            };
            for quoted in codes.split('`').skip(1).step_by(2) {
                let is_code = quoted.len() > 2
                    && quoted.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
                    && !quoted.starts_with("KEYGATE_");
                if is_code {
                    let previous = table.insert(quoted.to_string(), status);
                    assert!(previous.is_none(), "{quoted} is listed twice in the README");
                }
            }
        }
        table
    }

    #[test]
    fn the_readme_error_table_lists_exactly_the_error_codes() {
        let table = readme_table();
        for code in ErrorCode::ALL {
            assert_eq!(
                table.get(code.as_str()),
                Some(&code.status()),
                "README's error table: `{code}` missing or under another status than {}",
                code.status()
            );
        }
        for listed in table.keys() {
            assert!(
                ErrorCode::parse(listed).is_some(),
                "README's error table lists `{listed}`, which is no ErrorCode"
            );
        }
    }
}
