//! Checks of the input the store is given (they belong in the domain's value types: issue 10
//! point 2 moves them there).

use crate::{Result, StoreError};
use keygate_domain::ErrorCode;
use keygate_domain::Overrides;
use keygate_domain::policy::validate_feature_code;

pub(crate) fn validate_text(field: &str, value: &str, max: usize) -> Result<()> {
    // Characters, as the OpenAPI `maxLength` counts them (not UTF-8 bytes).
    if value.trim().is_empty() || value.chars().count() > max {
        return Err(StoreError::invalid(
            ErrorCode::InvalidField,
            format!("`{field}` must be 1-{max} characters"),
        ));
    }
    Ok(())
}

pub(crate) fn validate_code(code: &str) -> Result<()> {
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            ErrorCode::InvalidField,
            "`code` must be 1-64 characters of letters, digits, _ - .",
        ))
    }
}

pub(crate) fn normalize_email(email: Option<String>) -> Result<Option<String>> {
    match email {
        None => Ok(None),
        Some(e) => {
            let e = e.trim().to_lowercase();
            let at = e.find('@');
            if e.len() > 254 || !matches!(at, Some(i) if i > 0 && i < e.len() - 1) {
                return Err(StoreError::invalid(
                    ErrorCode::InvalidField,
                    format!("`email` `{e}` is not an email address"),
                ));
            }
            Ok(Some(e))
        }
    }
}

pub(crate) fn validate_overrides(o: &Overrides) -> Result<()> {
    for f in o.add_features.iter().chain(&o.remove_features) {
        validate_feature_code(f)?;
    }
    for (name, v) in [
        ("overrides.max_activations", o.max_activations),
        ("overrides.max_seats", o.max_seats),
    ] {
        if matches!(v, Some(n) if n <= 0) {
            return Err(StoreError::invalid(
                ErrorCode::InvalidField,
                format!("`{name}` must be a positive number"),
            ));
        }
    }
    if matches!(o.quota_limit, Some(n) if n < 0) {
        return Err(StoreError::invalid(
            ErrorCode::InvalidField,
            "`overrides.quota_limit` must not be negative",
        ));
    }
    Ok(())
}
