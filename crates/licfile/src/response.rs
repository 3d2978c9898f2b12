//! Signed HTTP answers: the `Keygate-Signature` header over the exact body bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey};

use crate::{ALG_ED25519, KeyRing, LicfileError, key_id};

/// Sign an answer body; returns the `Keygate-Signature` header value:
/// `keyid="<kid>", alg="ed25519", signature="<base64>"`.
pub fn sign_response(key: &SigningKey, body: &[u8]) -> String {
    let signature = key.sign(body);
    format!(
        "keyid=\"{}\", alg=\"{ALG_ED25519}\", signature=\"{}\"",
        key_id(&key.verifying_key()),
        STANDARD.encode(signature.to_bytes())
    )
}

/// The parsed `Keygate-Signature` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseSignature {
    /// Empty when the header had no `keyid`.
    pub key_id: String,
    pub alg: String,
    /// Decoded signature bytes (64 for Ed25519).
    pub signature: Vec<u8>,
}

/// Parse a `Keygate-Signature` header value. Whitespace and parameter order are free, names are
/// case-insensitive, unknown parameters are ignored; `alg` and `signature` are required, `keyid` is
/// optional.
pub fn parse_signature_header(header: &str) -> Result<ResponseSignature, LicfileError> {
    let bad = |m: String| LicfileError::BadHeader(m);
    let mut keyid = None;
    let mut alg = None;
    let mut signature = None;
    for (name, value) in parse_params(header)? {
        let slot = match name.as_str() {
            "keyid" => &mut keyid,
            "alg" => &mut alg,
            "signature" => &mut signature,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(bad(format!("parameter {name} appears twice")));
        }
    }
    let alg = alg.ok_or_else(|| bad("missing alg".into()))?;
    let signature = signature.ok_or_else(|| bad("missing signature".into()))?;
    let signature = STANDARD
        .decode(signature.as_bytes())
        .map_err(|e| bad(format!("signature is not valid base64: {e}")))?;
    Ok(ResponseSignature {
        key_id: keyid.unwrap_or_default(),
        alg,
        signature,
    })
}

/// `name=value` pairs separated by commas; values quoted (with `\` escapes) or bare tokens.
fn parse_params(header: &str) -> Result<Vec<(String, String)>, LicfileError> {
    let bad = |m: &str| LicfileError::BadHeader(m.to_owned());
    let mut params = Vec::new();
    let mut chars = header.trim().chars().peekable();
    let skip_ws = |chars: &mut std::iter::Peekable<std::str::Chars>| {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
    };
    if chars.peek().is_none() {
        return Err(bad("empty header"));
    }
    loop {
        skip_ws(&mut chars);
        let mut name = String::new();
        while let Some(c) = chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-') {
            name.push(c.to_ascii_lowercase());
        }
        if name.is_empty() {
            return Err(bad("expected a parameter name"));
        }
        skip_ws(&mut chars);
        if chars.next() != Some('=') {
            return Err(LicfileError::BadHeader(format!(
                "expected '=' after {name}"
            )));
        }
        skip_ws(&mut chars);
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(bad("unterminated quoted value")),
                    },
                    Some(c) => value.push(c),
                    None => return Err(bad("unterminated quoted value")),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',' && !c.is_whitespace() && *c != '"') {
                value.push(c);
            }
        }
        params.push((name, value));
        skip_ws(&mut chars);
        match chars.next() {
            None => return Ok(params),
            Some(',') => {}
            Some(c) => {
                return Err(LicfileError::BadHeader(format!(
                    "unexpected {c:?} after a parameter value"
                )));
            }
        }
    }
}

/// Verify a signed answer: `header` is the `Keygate-Signature` value, `body` the exact body bytes.
pub fn verify_response(header: &str, body: &[u8], keys: &KeyRing) -> Result<(), LicfileError> {
    let parsed = parse_signature_header(header)?;
    if !parsed.alg.eq_ignore_ascii_case(ALG_ED25519) {
        return Err(LicfileError::UnsupportedAlgorithm(parsed.alg));
    }
    let key = keys.resolve(Some(parsed.key_id.as_str()).filter(|id| !id.is_empty()))?;
    let bytes: [u8; 64] = parsed.signature.as_slice().try_into().map_err(|_| {
        LicfileError::BadHeader(format!(
            "an ed25519 signature is 64 bytes, got {}",
            parsed.signature.len()
        ))
    })?;
    key.verify_strict(body, &Signature::from_bytes(&bytes))
        .map_err(|_| LicfileError::BadSignature)
}
