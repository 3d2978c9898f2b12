use keygate_domain::{DomainError, ErrorCode, ValidationCode};
use thiserror::Error;

/// Everything the store can refuse or fail with. Each variant carries a stable code;
/// the server maps them to HTTP in one place.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The object does not exist in this account (or belongs to another one: same answer).
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict { code: ErrorCode, message: String },
    #[error("{message}")]
    Invalid { code: ErrorCode, message: String },
    /// The license exists but is not in a state that allows the operation.
    #[error("{}", .0.message())]
    LicenseRefused(ValidationCode),
    #[error("configuration: {0}")]
    Config(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        StoreError::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(code: ErrorCode, message: impl Into<String>) -> Self {
        StoreError::Invalid {
            code,
            message: message.into(),
        }
    }
}

impl From<DomainError> for StoreError {
    fn from(e: DomainError) -> Self {
        StoreError::Invalid {
            code: e.code,
            message: e.message,
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}
