//! What a platform sent: method, headers, query string and the raw body, untouched (every
//! signature is computed over the exact bytes).

use crate::decode::form::Form;
use crate::{BillingError, Headers};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Other,
}

impl Method {
    pub fn from_name(name: &str) -> Method {
        match name.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            _ => Method::Other,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub method: Method,
    pub headers: &'a Headers,
    /// The raw query string, without `?` (empty when there is none).
    pub query: &'a str,
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    /// A webhook delivery: POST with a body, no query.
    pub fn post(headers: &'a Headers, body: &'a [u8]) -> Self {
        Request {
            method: Method::Post,
            headers,
            query: "",
            body,
        }
    }

    /// The same request with the URL's query string (without `?`).
    pub fn with_query(self, query: &'a str) -> Self {
        Request { query, ..self }
    }

    /// A GET (challenge) with its query string.
    pub fn get(headers: &'a Headers, query: &'a str) -> Self {
        Request {
            method: Method::Get,
            headers,
            query,
            body: &[],
        }
    }

    /// The body as a JSON object.
    pub fn json(&self) -> Result<serde_json::Value, BillingError> {
        crate::json::parse_object(self.body)
    }

    /// The body as form fields (`application/x-www-form-urlencoded`).
    pub fn form(&self) -> Result<Form, BillingError> {
        Form::parse(self.body)
    }

    /// The query string's fields.
    pub fn query_fields(&self) -> Result<Form, BillingError> {
        Form::parse(self.query.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_json_form_and_query() {
        let headers = Headers::new();
        let r = Request::post(&headers, br#"{"a":1}"#);
        assert_eq!(r.json().unwrap()["a"], 1);
        assert_eq!(r.method, Method::Post);
        let r = Request::post(&headers, b"a=1&b=x+y");
        assert_eq!(r.form().unwrap().get("b"), Some("x y"));
        assert_eq!(r.json().unwrap_err().code(), "MALFORMED_PAYLOAD");
        let r = Request::get(&headers, "bt_challenge=abc");
        assert_eq!(r.query_fields().unwrap().get("bt_challenge"), Some("abc"));
        assert_eq!(Method::from_name("get"), Method::Get);
        assert_eq!(Method::from_name("PUT"), Method::Other);
    }
}
