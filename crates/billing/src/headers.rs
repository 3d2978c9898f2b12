//! Request headers, matched case-insensitively as HTTP requires.

use crate::BillingError;

/// Request headers with case-insensitive names (stored lowercased, in received order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, String)>,
}

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, name: impl AsRef<str>, value: impl Into<String>) {
        self.entries
            .push((name.as_ref().to_ascii_lowercase(), value.into()));
    }

    /// Builder form of [`insert`](Headers::insert).
    pub fn with(mut self, name: impl AsRef<str>, value: impl Into<String>) -> Self {
        self.insert(name, value);
        self
    }

    /// The first value of the header `name` (any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of the header `name` (any case), in received order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first non-blank value, trimmed.
    pub(crate) fn value(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .find(|v| !v.is_empty())
    }

    pub(crate) fn require(&self, name: &str) -> Result<&str, BillingError> {
        self.value(name)
            .ok_or_else(|| BillingError::SignatureMissing(format!("header `{name}` is missing")))
    }
}

impl<K: AsRef<str>, V: Into<String>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut headers = Headers::new();
        for (k, v) in iter {
            headers.insert(k, v);
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_case_insensitive() {
        let headers = Headers::new()
            .with("Stripe-Signature", "t=1,v1=aa")
            .with("X-Other", " ");
        assert_eq!(headers.get("stripe-signature"), Some("t=1,v1=aa"));
        assert_eq!(headers.get("STRIPE-SIGNATURE"), Some("t=1,v1=aa"));
        assert_eq!(headers.value("x-other"), None);
        assert_eq!(
            headers.require("x-other").unwrap_err().code(),
            "SIGNATURE_MISSING"
        );
        let collected: Headers = [("A", "1"), ("a", "2")].into_iter().collect();
        assert_eq!(collected.get_all("A").collect::<Vec<_>>(), ["1", "2"]);
    }
}
