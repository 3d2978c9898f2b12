//! Small readers over `serde_json::Value`: platforms send loosely typed JSON (ids as numbers
//! or strings, objects that may be expanded or not, `null` for absent).

use crate::BillingError;
use keygate_domain::Timestamp;
use serde_json::Value;

/// The body as a JSON object.
pub(crate) fn parse_object(body: &[u8]) -> Result<Value, BillingError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| BillingError::malformed(format!("body is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(BillingError::malformed("body is not a JSON object"));
    }
    Ok(value)
}

/// The value at a JSON pointer (`/a/b/0`), treating `null` as absent.
pub(crate) fn at<'a>(value: &'a Value, pointer: &str) -> Option<&'a Value> {
    value.pointer(pointer).filter(|v| !v.is_null())
}

/// A non-empty string, or an integer written as text.
pub(crate) fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The string at `pointer`.
pub(crate) fn str_at(value: &Value, pointer: &str) -> Option<String> {
    text(at(value, pointer))
}

/// An id: a string or number, or an expanded object's `id`.
pub(crate) fn id(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Object(map) => text(map.get("id")),
        other => text(Some(other)),
    }
}

pub(crate) fn id_at(value: &Value, pointer: &str) -> Option<String> {
    id(at(value, pointer))
}

/// An integer, or an integer written as text (PayPal quantities are strings).
pub(crate) fn int(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(crate) fn int_at(value: &Value, pointer: &str) -> Option<i64> {
    int(at(value, pointer))
}

pub(crate) fn bool_at(value: &Value, pointer: &str) -> Option<bool> {
    match at(value, pointer)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        _ => None,
    }
}

/// Unix seconds (number or text).
pub(crate) fn unix_seconds_at(value: &Value, pointer: &str) -> Option<Timestamp> {
    int_at(value, pointer)
        .filter(|s| *s > 0)
        .map(Timestamp::from_unix_seconds)
}

/// Unix milliseconds (number or text).
pub(crate) fn unix_millis_at(value: &Value, pointer: &str) -> Option<Timestamp> {
    int_at(value, pointer).filter(|s| *s > 0).map(Timestamp)
}

/// An RFC 3339 time; `None` when absent or not parseable.
pub(crate) fn rfc3339_at(value: &Value, pointer: &str) -> Option<Timestamp> {
    at(value, pointer)
        .and_then(Value::as_str)
        .and_then(|s| Timestamp::parse_rfc3339(s.trim()).ok())
}

/// A required string, else `MALFORMED_PAYLOAD` naming the field.
pub(crate) fn required(value: &Value, pointer: &str) -> Result<String, BillingError> {
    str_at(value, pointer).ok_or_else(|| BillingError::malformed(format!("`{pointer}` is missing")))
}

/// An array at `pointer` (empty when absent).
pub(crate) fn array<'a>(value: &'a Value, pointer: &str) -> &'a [Value] {
    at(value, pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// "First Last" from two optional parts.
pub(crate) fn full_name(first: Option<String>, last: Option<String>) -> Option<String> {
    match (first, last) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (f, l) => f.or(l),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn readers() {
        let v = json!({"a": {"n": 3, "s": "7", "e": "", "z": null, "o": {"id": "x"},
                       "t": "2026-01-01T00:00:00Z", "b": "true", "arr": [1]}});
        assert_eq!(str_at(&v, "/a/n").as_deref(), Some("3"));
        assert_eq!(str_at(&v, "/a/e"), None);
        assert_eq!(str_at(&v, "/a/z"), None);
        assert_eq!(id_at(&v, "/a/o").as_deref(), Some("x"));
        assert_eq!(id_at(&v, "/a/s").as_deref(), Some("7"));
        assert_eq!(int_at(&v, "/a/s"), Some(7));
        assert_eq!(bool_at(&v, "/a/b"), Some(true));
        assert_eq!(unix_seconds_at(&v, "/a/n"), Some(Timestamp(3000)));
        assert_eq!(unix_millis_at(&v, "/a/n"), Some(Timestamp(3)));
        assert!(rfc3339_at(&v, "/a/t").is_some());
        assert_eq!(array(&v, "/a/arr").len(), 1);
        assert!(array(&v, "/nope").is_empty());
        assert_eq!(required(&v, "/b").unwrap_err().code(), "MALFORMED_PAYLOAD");
        assert_eq!(
            parse_object(b"[1]").unwrap_err().code(),
            "MALFORMED_PAYLOAD"
        );
        assert_eq!(parse_object(b"{").unwrap_err().code(), "MALFORMED_PAYLOAD");
        assert_eq!(
            full_name(Some("A".into()), Some("B".into())).as_deref(),
            Some("A B")
        );
        assert_eq!(full_name(None, Some("B".into())).as_deref(), Some("B"));
    }
}
