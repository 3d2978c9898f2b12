use thiserror::Error;

/// Why an input was refused by a domain rule. `code` is stable and machine-readable.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{message}")]
pub struct DomainError {
    pub code: &'static str,
    pub message: String,
}

impl DomainError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: "INVALID_FIELD",
            message: message.into(),
        }
    }
}
