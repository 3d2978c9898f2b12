//! PHP's `serialize()` of a flat array of strings after `ksort()`, byte for byte: what Paddle
//! Classic signs (its verification sample casts every scalar to a string, sorts by key and
//! serializes). `a:<count>:{<key><value>...}` with each string as `s:<byte length>:"<bytes>";`.
//!
//! PHP details reproduced: a key that is a canonical decimal integer (`"0"`, `"42"`, `"-7"`,
//! not `"007"` or `"+1"`) is an integer key in a PHP array, serialized `i:<n>;`, and PHP 8's
//! `ksort` orders two integer keys numerically and anything else as byte strings (an integer
//! key against a non-numeric string compares as its decimal text). A repeated name keeps its
//! last value, as PHP's `$_POST` does. Lengths count UTF-8 bytes, never characters.

use std::cmp::Ordering;
use std::collections::BTreeMap;

/// `serialize(ksort(fields))` for string values.
pub fn serialize_sorted<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<u8> {
    let mut last: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, value) in fields {
        last.insert(name, value);
    }
    let mut entries: Vec<(Key, &str)> = last
        .into_iter()
        .map(|(name, value)| (Key::of(name), value))
        .collect();
    entries.sort_by(|a, b| a.0.cmp_php(&b.0));
    let mut out = format!("a:{}:{{", entries.len()).into_bytes();
    for (key, value) in entries {
        match key {
            Key::Int(n, _) => out.extend_from_slice(format!("i:{n};").as_bytes()),
            Key::Str(s) => string(&mut out, s),
        }
        string(&mut out, value);
    }
    out.push(b'}');
    out
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(format!("s:{}:\"", s.len()).as_bytes());
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(b"\";");
}

enum Key<'a> {
    Int(i64, &'a str),
    Str(&'a str),
}

impl<'a> Key<'a> {
    /// PHP's array-key rule: a decimal integer string in range, without a leading zero or
    /// plus sign (and not `-0`), becomes an integer.
    fn of(name: &'a str) -> Key<'a> {
        let digits = name.strip_prefix('-').unwrap_or(name);
        let canonical = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'))
            && name != "-0";
        match name.parse::<i64>() {
            Ok(n) if canonical => Key::Int(n, name),
            _ => Key::Str(name),
        }
    }

    fn text(&self) -> &str {
        match self {
            Key::Int(_, text) | Key::Str(text) => text,
        }
    }

    fn cmp_php(&self, other: &Key) -> Ordering {
        match (self, other) {
            (Key::Int(a, _), Key::Int(b, _)) => a.cmp(b),
            _ => self.text().as_bytes().cmp(other.text().as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ser(fields: &[(&str, &str)]) -> String {
        String::from_utf8(serialize_sorted(fields.iter().copied())).unwrap()
    }

    #[test]
    fn matches_php_serialize_of_ksorted_strings() {
        // What PHP 8 prints for these arrays after ksort (checked with php -r).
        assert_eq!(
            ser(&[("b", "2"), ("a", "é;\"x")]),
            r#"a:2:{s:1:"a";s:5:"é;"x";s:1:"b";s:1:"2";}"#
        );
        assert_eq!(ser(&[]), "a:0:{}");
        assert_eq!(ser(&[("empty", "")]), r#"a:1:{s:5:"empty";s:0:"";}"#);
        // Upper case sorts before lower case (bytes), `_` between them.
        assert_eq!(
            ser(&[("b", "1"), ("_", "2"), ("B", "3")]),
            r#"a:3:{s:1:"B";s:1:"3";s:1:"_";s:1:"2";s:1:"b";s:1:"1";}"#
        );
        // The last of a repeated name wins.
        assert_eq!(ser(&[("a", "1"), ("a", "2")]), r#"a:1:{s:1:"a";s:1:"2";}"#);
    }

    #[test]
    fn integer_keys_as_php_arrays_hold_them() {
        assert_eq!(
            ser(&[("10", "x"), ("9", "y"), ("007", "z"), ("-0", "w")]),
            r#"a:4:{s:2:"-0";s:1:"w";s:3:"007";s:1:"z";i:9;s:1:"y";i:10;s:1:"x";}"#
        );
    }
}
