//! 2Checkout (Verifone, formerly Avangate): an HMAC over the form's values, each prefixed with
//! its length in bytes, carried in the form itself (IPN and LCN alike).
//!
//! - Source: every received field except the three signature fields, in received order;
//!   each value written as `byteLen(value) + value` (an empty value is `0`, the value `0` is
//!   `10`).
//! - Repeated bracket fields (`IPN_PID[]`) are read as the official listeners read them, as
//!   PHP's `$_POST` does: one array per name at the place of the name's first field, its
//!   values in received order; a plain name sent twice keeps its last value at its first
//!   place. 2Checkout sends each array's fields together, so this is the received order.
//! - Key: the account's Secret Key as text. Output: hex, compared in either case.
//! - Algorithms, in the order the official plugins prefer them: HMAC-SHA3-256
//!   (`SIGNATURE_SHA3_256`), HMAC-SHA256 (`SIGNATURE_SHA2_256`), HMAC-MD5 (`HASH`). The
//!   strongest one present is the one checked; a weaker one beside it is not a fallback.
//!
//! The read receipt (the answer 2Checkout needs, else it retries) is an HMAC of the same kind,
//! with the request's algorithm, over a few values and the answer's `DATE`
//! ([`read_receipt`]).
//!
//! Sources: 2Checkout/woocommerce `TwoCheckoutIpnHelperApi.php` (`is_ipn_response_valid`,
//! `_calculate_ipn_response`), 2Checkout/2checkout-python-sdk `ipn_helper.py`, the
//! "Calculate the IPN HASH signature" and "IPN/LCN read receipt response" pages.

use crate::BillingError;
use crate::decode::form::Form;
use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::Sha256;
use sha3::Sha3_256;

/// A hash 2Checkout signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Sha3_256,
    Sha256,
    Md5,
}

impl Algorithm {
    /// Strongest first: the order in which a delivery's signature fields are looked for.
    pub const PREFERENCE: [Algorithm; 3] = [Algorithm::Sha3_256, Algorithm::Sha256, Algorithm::Md5];

    /// The form field that carries this algorithm's signature.
    pub fn field(self) -> &'static str {
        match self {
            Algorithm::Sha3_256 => "SIGNATURE_SHA3_256",
            Algorithm::Sha256 => "SIGNATURE_SHA2_256",
            Algorithm::Md5 => "HASH",
        }
    }

    /// The `algo` of a `<sig>` read receipt (`None`: MD5 answers `<EPAYMENT>`).
    pub fn receipt_name(self) -> Option<&'static str> {
        match self {
            Algorithm::Sha3_256 => Some("sha3-256"),
            Algorithm::Sha256 => Some("sha256"),
            Algorithm::Md5 => None,
        }
    }
}

/// Whether `name` is one of the signature fields (left out of the signed source).
pub fn is_signature_field(name: &str) -> bool {
    Algorithm::PREFERENCE.iter().any(|a| a.field() == name)
}

/// `byteLen(value) + value` for each value, concatenated (the empty value is `0`).
pub fn length_prefixed<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut out = Vec::new();
    for value in values {
        out.extend_from_slice(value.len().to_string().as_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// The form as PHP's `$_POST` holds it: (name, values) in first-appearance order, a bracket
/// field's values gathered under its name (`IPN_PID[]` → `IPN_PID`).
pub fn php_fields(form: &Form) -> Vec<(&str, Vec<&str>)> {
    /// (base name, is an array, [(array key, value)]).
    type Field<'a> = (&'a str, bool, Vec<(&'a str, &'a str)>);
    let mut fields: Vec<Field> = Vec::new();
    for (name, value) in form.fields() {
        let (base, key) = match name.find('[') {
            Some(i) if name.ends_with(']') => (&name[..i], Some(&name[i + 1..name.len() - 1])),
            _ => (name.as_str(), None),
        };
        let entry = match fields.iter().position(|(n, _, _)| *n == base) {
            Some(i) => &mut fields[i],
            None => {
                fields.push((base, key.is_some(), Vec::new()));
                fields.last_mut().expect("just pushed")
            }
        };
        match key {
            // A scalar after an array of the same name (or the reverse) replaces it, as PHP does.
            None => {
                entry.1 = false;
                entry.2 = vec![("", value)];
            }
            Some(key) => {
                if !entry.1 {
                    entry.1 = true;
                    entry.2.clear();
                }
                match entry
                    .2
                    .iter_mut()
                    .find(|(k, _)| !key.is_empty() && *k == key)
                {
                    Some(slot) => slot.1 = value,
                    None => entry.2.push((key, value)),
                }
            }
        }
    }
    fields
        .into_iter()
        .map(|(name, _, values)| (name, values.into_iter().map(|(_, v)| v).collect()))
        .collect()
}

/// The signed source of a delivery: every value but the signature fields'.
pub fn signed_source(form: &Form) -> Vec<u8> {
    length_prefixed(
        php_fields(form)
            .into_iter()
            .filter(|(name, _)| !is_signature_field(name))
            .flat_map(|(_, values)| values),
    )
}

/// HMAC(`key`, `source`) with `algorithm`.
pub fn mac(algorithm: Algorithm, key: &[u8], source: &[u8]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], source: &[u8]) -> Vec<u8> {
        let mut mac =
            <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(source);
        mac.finalize().into_bytes().to_vec()
    }
    match algorithm {
        Algorithm::Sha3_256 => run::<Hmac<Sha3_256>>(key, source),
        Algorithm::Sha256 => run::<Hmac<Sha256>>(key, source),
        Algorithm::Md5 => run::<Hmac<Md5>>(key, source),
    }
}

fn matches(algorithm: Algorithm, key: &[u8], source: &[u8], expected: &[u8]) -> bool {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], source: &[u8], expected: &[u8]) -> bool {
        let Ok(mut mac) = <M as hmac::digest::KeyInit>::new_from_slice(key) else {
            return false;
        };
        mac.update(source);
        mac.verify_slice(expected).is_ok()
    }
    match algorithm {
        Algorithm::Sha3_256 => run::<Hmac<Sha3_256>>(key, source, expected),
        Algorithm::Sha256 => run::<Hmac<Sha256>>(key, source, expected),
        Algorithm::Md5 => run::<Hmac<Md5>>(key, source, expected),
    }
}

/// The strongest signature the form carries, with its algorithm (`None`: no signature field
/// holds a value).
pub fn signature(form: &Form) -> Option<(Algorithm, &str)> {
    Algorithm::PREFERENCE.into_iter().find_map(|algorithm| {
        form.get(algorithm.field())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| (algorithm, v))
    })
}

/// Checks the delivery under `keys` (rotation: any may match). `Ok` names the algorithm
/// used and the index of the key that matched (the read receipt is signed with it).
pub fn verify(form: &Form, keys: &[&[u8]]) -> Result<(Algorithm, usize), BillingError> {
    let (algorithm, text) = signature(form).ok_or_else(|| {
        BillingError::SignatureMissing(
            "none of SIGNATURE_SHA3_256, SIGNATURE_SHA2_256, HASH is in the form".into(),
        )
    })?;
    let expected = hex::decode(text)
        .map_err(|_| BillingError::SignatureInvalid(format!("{} is not hex", algorithm.field())))?;
    let source = signed_source(form);
    let mut matched = None;
    // Every key is tried, so the time does not tell which one matched.
    for (index, key) in keys.iter().enumerate() {
        if matches(algorithm, key, &source, &expected) && matched.is_none() {
            matched = Some(index);
        }
    }
    matched.map(|index| (algorithm, index)).ok_or_else(|| {
        BillingError::SignatureInvalid(format!(
            "{} does not match a configured secret key",
            algorithm.field()
        ))
    })
}

/// The lower-case hex signature 2Checkout would send for `form` (its signature fields left
/// out of the source).
pub fn sign(algorithm: Algorithm, key: &[u8], form: &Form) -> String {
    hex::encode(mac(algorithm, key, &signed_source(form)))
}

/// The read receipt: `<sig algo="sha3-256|sha256" date="DATE">HASH</sig>`, or for MD5
/// `<EPAYMENT>DATE|HASH</EPAYMENT>`, where HASH is the HMAC of `values` then `date`, each
/// length-prefixed (IPN: `IPN_PID[0]`, `IPN_PNAME[0]`, `IPN_DATE`; LCN: `LICENSE_CODE`,
/// `EXPIRATION_DATE`), and `date` is the answer's time, `YmdHis`.
pub fn read_receipt(algorithm: Algorithm, key: &[u8], values: &[&str], date: &str) -> String {
    let source = length_prefixed(values.iter().copied().chain([date]));
    let hash = hex::encode(mac(algorithm, key, &source));
    match algorithm.receipt_name() {
        Some(algo) => format!(r#"<sig algo="{algo}" date="{date}">{hash}</sig>"#),
        None => format!("<EPAYMENT>{date}|{hash}</EPAYMENT>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"AABBCCDDEEFF";

    /// The official LCN read-receipt example: `LICENSE_CODE=3C343D0FAF`,
    /// `EXPIRATION_DATE=2005-03-03`, `DATE=20081117145935`, key `AABBCCDDEEFF`.
    #[test]
    fn official_lcn_read_receipt() {
        let source = length_prefixed(["3C343D0FAF", "2005-03-03", "20081117145935"]);
        assert_eq!(source, b"103C343D0FAF102005-03-031420081117145935");
        assert_eq!(
            read_receipt(
                Algorithm::Md5,
                KEY,
                &["3C343D0FAF", "2005-03-03"],
                "20081117145935"
            ),
            "<EPAYMENT>20081117145935|cb34fe2991668eb82364edf62f845a34</EPAYMENT>"
        );
    }

    /// The IPN read-receipt example's source string (`IPN_PID[0]=1`, `IPN_PNAME[0]=Software
    /// program`, `IPN_DATE=DATE=20050303123434`), as the page prints it.
    #[test]
    fn official_ipn_read_receipt_source() {
        let source = length_prefixed(["1", "Software program", "20050303123434", "20050303123434"]);
        assert_eq!(
            source,
            b"1116Software program14200503031234341420050303123434"
        );
        let values = ["1", "Software program", "20050303123434"];
        let date = "20050303123434";
        assert_eq!(
            read_receipt(Algorithm::Md5, KEY, &values, date),
            "<EPAYMENT>20050303123434|7bf97ed39681027d0c45aa45e3ea98f0</EPAYMENT>"
        );
        assert_eq!(
            read_receipt(Algorithm::Sha256, KEY, &values, date),
            r#"<sig algo="sha256" date="20050303123434">ea6f44c39b3d204b59500998fcb9221c92744d9721a94b45fc6d5cda99980176</sig>"#
        );
        assert_eq!(
            read_receipt(Algorithm::Sha3_256, KEY, &values, date),
            r#"<sig algo="sha3-256" date="20050303123434">85180497aaaa4844a278b52b1ce257d2820dbf5857470a5f678fef2266d0d4a8</sig>"#
        );
    }

    /// The documented rules: empty → `0`, `0` → `10`, lengths in UTF-8 bytes, arrays in place.
    #[test]
    fn source_rules() {
        let form = Form::parse(
            "REFNO=1000037&REFNOEXT=&ORDERSTATUS=COMPLETE&IPN_PID%5B%5D=1&IPN_DATE=20050303123434"
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            signed_source(&form),
            b"7100003708COMPLETE111420050303123434"
        );
        assert_eq!(
            sign(Algorithm::Md5, KEY, &form),
            "79f08e56f04efb3000365ff0256c8b3c"
        );
        assert_eq!(
            sign(Algorithm::Sha256, KEY, &form),
            "f2a0c41295e76d7bf092feaaae6dad152a5f617dbb135ae6db782db639000649"
        );
        assert_eq!(length_prefixed(["0", "é"]), "102é".as_bytes());
        // Interleaved arrays are read as PHP groups them; signature fields are left out.
        let form =
            Form::parse(b"A[]=1&B[]=x&A[]=22&HASH=00&C=c&C=d&D[0]=p&D[0]=q&SIGNATURE_SHA2_256=11")
                .unwrap();
        let fields = php_fields(&form);
        assert_eq!(fields[0], ("A", vec!["1", "22"]));
        assert_eq!(fields[1], ("B", vec!["x"]));
        assert_eq!(fields[3], ("C", vec!["d"]));
        assert_eq!(fields[4], ("D", vec!["q"]));
        assert_eq!(signed_source(&form), b"112221x1d1q");
    }

    #[test]
    fn strongest_signature_is_checked() {
        let mut pairs = "REFNO=1&IPN_DATE=20050303123434".to_string();
        let unsigned = Form::parse(pairs.as_bytes()).unwrap();
        assert_eq!(
            verify(&unsigned, &[KEY]).unwrap_err().code(),
            "SIGNATURE_MISSING"
        );
        let md5 = sign(Algorithm::Md5, KEY, &unsigned);
        let sha3 = sign(Algorithm::Sha3_256, KEY, &unsigned);
        pairs.push_str(&format!(
            "&HASH={md5}&SIGNATURE_SHA2_256=&SIGNATURE_SHA3_256={sha3}"
        ));
        let form = Form::parse(pairs.as_bytes()).unwrap();
        assert_eq!(
            verify(&form, &[b"other", KEY]).unwrap(),
            (Algorithm::Sha3_256, 1)
        );
        // Upper-case hex is the same signature.
        let upper = pairs.replace(&sha3, &sha3.to_uppercase());
        assert!(verify(&Form::parse(upper.as_bytes()).unwrap(), &[KEY]).is_ok());
        // A wrong SHA3 is refused even though the MD5 beside it is right.
        let wrong = pairs.replace(&sha3, &"0".repeat(64));
        let err = verify(&Form::parse(wrong.as_bytes()).unwrap(), &[KEY]).unwrap_err();
        assert_eq!(err.code(), "SIGNATURE_INVALID");
        let garbage = pairs.replace(&sha3, "zz");
        let err = verify(&Form::parse(garbage.as_bytes()).unwrap(), &[KEY]).unwrap_err();
        assert_eq!(err.code(), "SIGNATURE_INVALID");
        assert_eq!(
            verify(&form, &[b"other"]).unwrap_err().code(),
            "SIGNATURE_INVALID"
        );
        // Only MD5: MD5 is checked.
        let only_md5 =
            Form::parse(format!("REFNO=1&IPN_DATE=20050303123434&HASH={md5}").as_bytes()).unwrap();
        assert_eq!(verify(&only_md5, &[KEY]).unwrap(), (Algorithm::Md5, 0));
    }
}
