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

    /// The fields as a JSON object, bracketed names nested as Rack and Rails read them
    /// (Gumroad's pings): `card[visual]=x` → `{"card": {"visual": "x"}}`, `ids[]=1&ids[]=2` →
    /// `{"ids": ["1", "2"]}`. A name whose brackets do not nest (`a]`, `a[]x`, `a[][b]`), or
    /// that clashes with a value already there, is kept flat. `%5B`/`%5D` left in a name
    /// after decoding are brackets the sender escaped as part of the name: they become `[`/`]`
    /// there, without nesting. A repeated name keeps its first value.
    pub fn nested(&self) -> serde_json::Value {
        use serde_json::{Map, Value};
        let mut root = Map::new();
        for (name, value) in &self.fields {
            let placed = bracket_path(name).is_some_and(|path| place(&mut root, &path, value));
            if !placed {
                // The first of a repeated name, as `get` reads it; never over a nested value.
                root.entry(unescape_brackets(name))
                    .or_insert_with(|| Value::String(value.clone()));
            }
        }
        Value::Object(root)
    }
}

fn unescape_brackets(name: &str) -> String {
    name.replace("%5B", "[")
        .replace("%5b", "[")
        .replace("%5D", "]")
        .replace("%5d", "]")
}

/// `a[b][c]` → `["a", "b", "c"]`, `a[]` → `["a", ""]`; `None` for a flat or malformed name.
fn bracket_path(name: &str) -> Option<Vec<String>> {
    let open = name.find('[')?;
    let (head, mut rest) = name.split_at(open);
    if head.is_empty() {
        return None;
    }
    let mut path = vec![unescape_brackets(head)];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let close = inner.find(']')?;
        let segment = &inner[..close];
        if segment.contains('[') || path.last().is_some_and(String::is_empty) {
            return None;
        }
        path.push(unescape_brackets(segment));
        rest = &inner[close + 1..];
    }
    Some(path)
}

/// Puts `value` at `path` in `root`; `false` when something else is already in the way.
fn place(
    root: &mut serde_json::Map<String, serde_json::Value>,
    path: &[String],
    value: &str,
) -> bool {
    use serde_json::Value;
    let (last, parents) = path.split_last().expect("a path has a head");
    let mut node = root;
    for (i, key) in parents.iter().enumerate() {
        let is_array_parent =
            path.get(i + 1).is_some_and(String::is_empty) && i + 1 == parents.len();
        let entry = node.entry(key.clone()).or_insert_with(|| {
            if is_array_parent {
                Value::Array(Vec::new())
            } else {
                Value::Object(serde_json::Map::new())
            }
        });
        if is_array_parent {
            return match entry {
                Value::Array(items) => {
                    items.push(Value::String(value.to_string()));
                    true
                }
                _ => false,
            };
        }
        match entry {
            Value::Object(map) => node = map,
            _ => return false,
        }
    }
    if node.contains_key(last) {
        return false;
    }
    node.insert(last.clone(), Value::String(value.to_string()));
    true
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

    #[test]
    fn nests_bracketed_names_as_rack_does() {
        let form = Form::parse(
            b"sale_id=s1&card%5Bvisual%5D=**** 4242&card%5Btype%5D=visa&variants%5BTier%5D=Pro\
              &purchase_ids%5B%5D=p1&purchase_ids%5B%5D=p2&new_plan%5Btier%5D%5Bid%5D=t9\
              &Size+%255BEU%255D=42&odd%5D=1&x%5B%5Dy=2&card=clash&a%5B%5D%5Bb%5D=3",
        )
        .unwrap();
        let v = form.nested();
        assert_eq!(v["sale_id"], "s1");
        assert_eq!(v["card"]["visual"], "**** 4242");
        assert_eq!(v["card"]["type"], "visa");
        assert_eq!(v["variants"]["Tier"], "Pro");
        assert_eq!(v["purchase_ids"], serde_json::json!(["p1", "p2"]));
        assert_eq!(v["new_plan"]["tier"]["id"], "t9");
        assert_eq!(v["Size [EU]"], "42");
        assert_eq!(v["odd]"], "1");
        assert_eq!(v["x[]y"], "2");
        assert_eq!(v["a[][b]"], "3");
        // `card` is an object already: the flat `card` does not replace it.
        assert_eq!(v["card"]["visual"], "**** 4242");
    }
}
