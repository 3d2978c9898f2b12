//! Characters one engine stores and the other refuses, stopped at the edge.
//!
//! PostgreSQL's `text` cannot hold U+0000; SQLite stores it. Left to the driver, a NUL is a
//! 500 on one engine and accepted on the other. So requests are checked once, before any
//! handler: a NUL in the path is a 404 (no object has such an id), in the query a 400
//! `INVALID_QUERY`, in a JSON body a 422 `INVALID_FIELD` naming the field. A platform's signed
//! payload is not ours to refuse: its NULs become U+FFFD, so the event is still stored and
//! applied (and the license still issued).
use crate::error::{ApiError, ErrorCode};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A character some engine's `text` refuses.
pub fn is_refused(c: char) -> bool {
    c == '\0'
}

pub fn holds_refused(text: &str) -> bool {
    text.chars().any(is_refused)
}

/// What a refused character becomes in data Keygate must keep (platform payloads).
pub const REPLACEMENT: char = char::REPLACEMENT_CHARACTER;

pub fn scrub(text: &str) -> std::borrow::Cow<'_, str> {
    if holds_refused(text) {
        std::borrow::Cow::Owned(text.replace(is_refused, &REPLACEMENT.to_string()))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Replaces refused characters in every string and key of `value`; true if any was found.
pub fn scrub_value(value: &mut Value) -> bool {
    match value {
        Value::String(s) if holds_refused(s) => {
            *s = scrub(s).into_owned();
            true
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |found, v| scrub_value(v) | found),
        Value::Object(map) => {
            let mut found = false;
            if map.keys().any(|k| holds_refused(k)) {
                let entries = std::mem::take(map);
                for (k, v) in entries {
                    map.insert(scrub(&k).into_owned(), v);
                }
                found = true;
            }
            map.values_mut()
                .fold(found, |found, v| scrub_value(v) | found)
        }
        _ => false,
    }
}

/// True when a platform's body may decode to a refused character: a raw NUL byte, or its
/// JSON (`\u0000`), form (`%00`) or XML (`&#0;`, `&#x0;`) escape.
fn payload_may_hold_refused(body: &[u8]) -> bool {
    body.contains(&0)
        || json_may_hold_refused(body)
        || body.windows(3).any(|w| w == b"%00")
        || body
            .windows(4)
            .any(|w| w.eq_ignore_ascii_case(b"&#x0") || w[..3] == *b"&#0")
}

/// A verified platform delivery made storable on both engines: refused characters in the
/// normalized events and in the raw body become U+FFFD (the raw body is kept as lossy UTF-8).
/// Events are only re-built when the body could hold one, so the common case costs a scan.
pub fn scrub_webhook<T: Serialize + DeserializeOwned>(
    events: Vec<T>,
    body: &[u8],
) -> (Vec<T>, String) {
    let raw = String::from_utf8_lossy(body);
    if !payload_may_hold_refused(body) {
        return (events, raw.into_owned());
    }
    let events = events
        .into_iter()
        .map(|event| {
            let Ok(mut value) = serde_json::to_value(&event) else {
                return event;
            };
            if !scrub_value(&mut value) {
                return event;
            }
            serde_json::from_value(value).unwrap_or(event)
        })
        .collect();
    (events, scrub(&raw).into_owned())
}

/// True when a JSON text may hold a refused character: JSON can only carry a NUL as the
/// escape `\u0000` (a raw control byte inside a string is not JSON). A false positive
/// (`\\u0000`, an escaped backslash) only costs the exact walk.
pub fn json_may_hold_refused(bytes: &[u8]) -> bool {
    bytes.windows(6).any(|w| w == b"\\u0000")
}

/// The JSON path (`metadata.tags[2]`) of the first string or key holding a refused
/// character.
pub fn first_refused_path(value: &Value) -> Option<String> {
    fn walk(value: &Value, path: &mut String) -> bool {
        match value {
            Value::String(s) => holds_refused(s),
            Value::Array(items) => items.iter().enumerate().any(|(i, v)| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let found = walk(v, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            Value::Object(map) => map.iter().any(|(k, v)| {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&scrub(k));
                let found = holds_refused(k) || walk(v, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            _ => false,
        }
    }
    let mut path = String::new();
    walk(value, &mut path).then_some(path)
}

/// The 422 for a JSON body holding a refused character.
pub fn check_json_body(bytes: &[u8]) -> Result<(), ApiError> {
    if !json_may_hold_refused(bytes) {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return Ok(());
    };
    match first_refused_path(&value) {
        None => Ok(()),
        Some(path) => {
            let field = if path.is_empty() { "body" } else { &path };
            Err(ApiError::new(
                ErrorCode::InvalidField,
                format!("`{field}` holds a NUL character (U+0000), which Keygate does not store"),
            ))
        }
    }
}

/// The page size the list routes accept (`?limit`).
pub const LIMIT_RANGE: std::ops::RangeInclusive<i64> = 1..=200;

/// Refuses a NUL in the path (404) or query (400), and a `?limit` outside 1-200 (400),
/// before any route runs. A raw NUL cannot reach here (the HTTP parser refuses it), so a NUL
/// is always the escape `%00`.
pub async fn uri_guard(request: Request, next: Next) -> Response {
    if let Err(e) = check_uri(request.uri()) {
        return e.into_response();
    }
    next.run(request).await
}

pub fn check_uri(uri: &axum::http::Uri) -> Result<(), ApiError> {
    if uri.path().contains("%00") {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "no object has an id holding a NUL character (U+0000)",
        ));
    }
    let Some(query) = uri.query() else {
        return Ok(());
    };
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if pair.contains("%00") {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                format!(
                    "query parameter `{}` holds a NUL character (U+0000)",
                    name.replace("%00", "\u{FFFD}")
                ),
            ));
        }
        if name == "limit" && !value.parse::<i64>().is_ok_and(|n| LIMIT_RANGE.contains(&n)) {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                format!(
                    "`limit` must be a whole number from {} to {}",
                    LIMIT_RANGE.start(),
                    LIMIT_RANGE.end()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_field() {
        let body = br#"{"name":"ok","metadata":{"tags":["a","b\u0000"]}}"#;
        let value: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            first_refused_path(&value).as_deref(),
            Some("metadata.tags[1]")
        );
        let err = check_json_body(body).unwrap_err();
        assert_eq!((err.status.as_u16(), err.code), (422, "INVALID_FIELD"));
        assert!(err.message.contains("metadata.tags[1]"), "{}", err.message);
        // A key holding the NUL is named too.
        let value = json!({"metadata": {"a\u{0}b": 1}});
        assert_eq!(
            first_refused_path(&value).as_deref(),
            Some("metadata.a\u{FFFD}b")
        );
        // An escaped backslash before `u0000` is no NUL.
        assert!(check_json_body(br#"{"name":"\\u0000"}"#).is_ok());
        assert!(check_json_body(br#"{"name":"plain"}"#).is_ok());
        assert!(check_json_body(br#""\u0000""#).is_err());
    }

    #[test]
    fn scrubs_in_place() {
        let mut v = json!({"a\u{0}": ["x\u{0}y", 1, {"n": "\u{0}"}], "ok": "fine"});
        assert!(scrub_value(&mut v));
        assert_eq!(
            v,
            json!({"a\u{FFFD}": ["x\u{FFFD}y", 1, {"n": "\u{FFFD}"}], "ok": "fine"})
        );
        assert!(!scrub_value(&mut v));
    }

    #[test]
    fn scrubs_platform_payloads() {
        let body = br#"{"name":"A\u0000nn"}"#;
        let events = vec![json!({"name": "A\u{0}nn", "id": "evt"})];
        let (events, raw) = scrub_webhook(events, body);
        assert_eq!(events[0]["name"], "A\u{FFFD}nn");
        assert_eq!(
            raw, r#"{"name":"A\u0000nn"}"#,
            "the JSON escape is text already"
        );
        // A raw NUL byte (a form or binary body) is replaced in the stored text too.
        let (events, raw) = scrub_webhook(vec![json!({"v": "x\u{0}"})], b"v=x\0&w=%00");
        assert_eq!(events[0]["v"], "x\u{FFFD}");
        assert_eq!(raw, "v=x\u{FFFD}&w=%00");
        // Nothing that could decode to a NUL: the events are passed through untouched.
        let (events, _) = scrub_webhook(vec![json!({"v": "plain"})], b"{\"v\":\"plain\"}");
        assert_eq!(events[0]["v"], "plain");
    }

    #[test]
    fn checks_uris() {
        let code = |u: &str| {
            check_uri(&u.parse().unwrap())
                .err()
                .map(|e| (e.status.as_u16(), e.code))
        };
        assert_eq!(code("/v1/products/a%00b"), Some((404, "NOT_FOUND")));
        assert_eq!(code("/v1/products/a%2500b"), None);
        assert_eq!(
            code("/v1/licenses?email=a%00"),
            Some((400, "INVALID_QUERY"))
        );
        for bad in ["0", "-1", "201", "9223372036854775807", "x", ""] {
            assert_eq!(
                code(&format!("/v1/licenses?limit={bad}")),
                Some((400, "INVALID_QUERY")),
                "{bad}"
            );
        }
        assert_eq!(code("/v1/licenses?limit=1&cursor=x"), None);
        assert_eq!(code("/v1/licenses?limit=200"), None);
    }
}
