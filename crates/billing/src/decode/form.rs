//! `application/x-www-form-urlencoded`, as browsers and platforms send it: `+` is a space,
//! `%XX` a byte; the decoded bytes must be UTF-8.

use crate::BillingError;

/// Decoded fields in received order (a name may repeat, as in 2Checkout's `IPN_PID[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    /// Decodes `input`; malformed UTF-8 after decoding is `MALFORMED_PAYLOAD`. A `%` not
    /// followed by two hex digits is kept as is (as the WHATWG URL standard does).
    pub fn parse(input: &[u8]) -> Result<Form, BillingError> {
        let mut fields = Vec::new();
        for pair in input.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            fields.push((decode(name)?, decode(value)?));
        }
        Ok(Form { fields })
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in received order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// All fields in received order.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }
}

fn decode(bytes: &[u8]) -> Result<String, BillingError> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() && hex_pair(bytes[i + 1], bytes[i + 2]).is_some() => {
                out.push(hex_pair(bytes[i + 1], bytes[i + 2]).unwrap_or_default());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| BillingError::malformed("form field is not UTF-8"))
}

fn hex_pair(high: u8, low: u8) -> Option<u8> {
    let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    Some(digit(high)? << 4 | digit(low)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_a_browser() {
        let form = Form::parse(
            b"bt_signature=a%7Cb&bt_payload=PD94+bWw%3D&x&IPN_PID[]=1&IPN_PID[]=2&pct=100%&end=%4",
        )
        .unwrap();
        assert_eq!(form.get("bt_signature"), Some("a|b"));
        assert_eq!(form.get("bt_payload"), Some("PD94 bWw="));
        assert_eq!(form.get("x"), Some(""));
        assert_eq!(form.get_all("IPN_PID[]").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(form.get("pct"), Some("100%"));
        assert_eq!(form.get("end"), Some("%4"));
        assert_eq!(form.get("nope"), None);
        assert_eq!(form.fields().len(), 7);
        assert_eq!(Form::parse(b"").unwrap().fields().len(), 0);
        assert_eq!(Form::parse(b"a=%C3%A9").unwrap().get("a"), Some("é"));
        assert_eq!(
            Form::parse(b"a=%FF").unwrap_err().code(),
            "MALFORMED_PAYLOAD"
        );
    }
}
