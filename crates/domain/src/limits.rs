//! Upper bounds on what a request may ask for. Each is enforced where the value enters and
//! stated in the OpenAPI document, so a client learns it from the schema, not from a 422.
use crate::{DomainError, Overrides};

/// Features of one policy (and features one license override adds or removes). Every
/// license view, validation answer and license file carries them.
pub const MAX_FEATURES: usize = 256;
/// Nesting of `metadata`: far below serde_json's parse limit (128) even once the outbound
/// envelope and the audit entry wrap it, and deeper than any real configuration needs.
pub const MAX_METADATA_DEPTH: usize = 16;
/// Serialized size of `metadata`.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Any duration (terms, trials, grace, leases, quota periods, extensions): 100 years.
pub const MAX_DURATION_SECONDS: i64 = 3_155_760_000;
/// Activations, seats and quota limits.
pub const MAX_COUNT: i64 = 1_000_000_000;
/// A platform's quantity (seats) per billing item.
pub const MAX_QUANTITY: i64 = 1_000_000;
/// Names (products, policies, customers, keys, integrations).
pub const MAX_NAME_CHARS: usize = 200;

/// Refuses a duration above [`MAX_DURATION_SECONDS`] (lower bounds are the caller's rule).
pub fn duration(name: &str, value: Option<i64>) -> Result<(), DomainError> {
    match value {
        Some(v) if v > MAX_DURATION_SECONDS => Err(DomainError::invalid(format!(
            "`{name}` must be at most {MAX_DURATION_SECONDS} seconds (100 years)"
        ))),
        _ => Ok(()),
    }
}

/// Refuses a count above [`MAX_COUNT`].
pub fn count(name: &str, value: Option<i64>) -> Result<(), DomainError> {
    match value {
        Some(v) if v > MAX_COUNT => Err(DomainError::invalid(format!(
            "`{name}` must be at most {MAX_COUNT}"
        ))),
        _ => Ok(()),
    }
}

pub fn features(name: &str, features: &[String]) -> Result<(), DomainError> {
    if features.len() > MAX_FEATURES {
        return Err(DomainError::invalid(format!(
            "`{name}` lists {} features: at most {MAX_FEATURES}",
            features.len()
        )));
    }
    Ok(())
}

/// How deep a JSON value nests (a scalar is 0, `{}` or `[]` is 1).
pub fn depth(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The bounds of a license's overrides (their signs are checked with the license).
pub fn overrides(o: &Overrides) -> Result<(), DomainError> {
    features("overrides.add_features", &o.add_features)?;
    features("overrides.remove_features", &o.remove_features)?;
    count("overrides.max_activations", o.max_activations)?;
    count("overrides.max_seats", o.max_seats)?;
    count("overrides.quota_limit", o.quota_limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bounds() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!({})), 1);
        assert_eq!(depth(&json!({"a": [1, {"b": []}]})), 4);
        assert!(duration("d", Some(MAX_DURATION_SECONDS)).is_ok());
        assert!(duration("d", Some(MAX_DURATION_SECONDS + 1)).is_err());
        assert!(duration("d", Some(i64::MAX)).is_err());
        assert!(count("c", Some(MAX_COUNT + 1)).is_err());
        let many: Vec<String> = (0..=MAX_FEATURES).map(|i| i.to_string()).collect();
        assert!(features("f", &many[..MAX_FEATURES]).is_ok());
        let e = features("features", &many).unwrap_err();
        assert_eq!(e.code, "INVALID_FIELD");
        assert!(e.message.contains("257"), "{}", e.message);
        let o = Overrides {
            add_features: many,
            ..Default::default()
        };
        assert!(overrides(&o).is_err());
    }
}
