use crate::ErrorCode;
use thiserror::Error;

/// Why an input was refused by a domain rule. `code` is stable and machine-readable.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{message}")]
pub struct DomainError {
    pub code: ErrorCode,
    pub message: String,
}

impl DomainError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::InvalidField,
            message: message.into(),
        }
    }
}
