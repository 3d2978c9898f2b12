//! Armored, signed license files.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey};
use serde_json::{Map, Value};

use crate::{ALG_ED25519, CLOCK_SKEW_SECONDS, KeyRing, LicfileError, canonical_bytes, key_id};

/// First line of a license file.
pub const ARMOR_BEGIN: &str = "-----BEGIN KEYGATE LICENSE-----";
/// Last line of a license file.
pub const ARMOR_END: &str = "-----END KEYGATE LICENSE-----";
const WRAP: usize = 64;

/// Issue a license file: sign `payload` (which should hold integer `issued_at` and `valid_until`,
/// and may hold `fingerprint`) and armor the envelope. No newline after the END line.
pub fn issue_file(key: &SigningKey, payload: &Value) -> String {
    let signature = key.sign(&canonical_bytes(payload));
    let mut envelope = Map::new();
    envelope.insert("alg".into(), ALG_ED25519.into());
    envelope.insert("kid".into(), key_id(&key.verifying_key()).into());
    envelope.insert("payload".into(), payload.clone());
    envelope.insert("sig".into(), STANDARD.encode(signature.to_bytes()).into());
    let b64 = STANDARD.encode(canonical_bytes(&Value::Object(envelope)));

    let mut out = String::with_capacity(b64.len() + b64.len() / WRAP + 80);
    out.push_str(ARMOR_BEGIN);
    out.push('\n');
    // base64 is ASCII, so byte chunks are char boundaries.
    for line in b64.as_bytes().chunks(WRAP) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(ARMOR_END);
    out
}

/// A license file that verified.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedFile {
    pub payload: Value,
    pub key_id: String,
    pub issued_at: i64,
    pub valid_until: i64,
    pub fingerprint: Option<String>,
}

/// Verify a license file at `now` (unix seconds) for the machine `fingerprint`.
///
/// Order of checks: armor and envelope (`BadArmor`), `alg` (`UnsupportedAlgorithm`), `kid` in the ring
/// (`UnknownKeyId`), signature (`BadSignature`), payload fields (`BadPayload`), `now < valid_until`
/// (`Expired`), `issued_at <= now + 300` (`NotYetValid`), fingerprint binding (`FingerprintMismatch`:
/// when the payload has a fingerprint, `fingerprint` must be given and equal).
pub fn verify_file(
    text: &str,
    keys: &KeyRing,
    now: i64,
    fingerprint: Option<&str>,
) -> Result<VerifiedFile, LicfileError> {
    let envelope = decode(text)?;
    if canonical_bytes(&envelope.value) != envelope.bytes {
        return Err(LicfileError::BadArmor(
            "envelope is not in canonical form".into(),
        ));
    }
    let Envelope {
        value,
        alg,
        kid,
        sig,
        ..
    } = envelope;
    if alg != ALG_ED25519 {
        return Err(LicfileError::UnsupportedAlgorithm(alg));
    }
    let key = keys.resolve(kid.as_deref())?;
    let payload = match value {
        Value::Object(mut map) => map.remove("payload").expect("checked by decode"),
        _ => unreachable!("checked by decode"),
    };
    let sig: [u8; 64] = sig
        .as_slice()
        .try_into()
        .map_err(|_| LicfileError::BadSignature)?;
    key.verify_strict(&canonical_bytes(&payload), &Signature::from_bytes(&sig))
        .map_err(|_| LicfileError::BadSignature)?;

    let issued_at = int_field(&payload, "issued_at")?;
    let valid_until = int_field(&payload, "valid_until")?;
    let bound_to = match payload.get("fingerprint") {
        None | Some(Value::Null) => None,
        Some(Value::String(f)) => Some(f.clone()),
        Some(_) => {
            return Err(LicfileError::BadPayload(
                "fingerprint must be a string or null".into(),
            ));
        }
    };
    if now >= valid_until {
        return Err(LicfileError::Expired { valid_until });
    }
    if issued_at > now.saturating_add(CLOCK_SKEW_SECONDS) {
        return Err(LicfileError::NotYetValid { issued_at });
    }
    match (&bound_to, fingerprint) {
        (Some(expected), actual) if actual != Some(expected.as_str()) => {
            return Err(LicfileError::FingerprintMismatch {
                expected: expected.clone(),
                actual: actual.map(str::to_owned),
            });
        }
        _ => {}
    }
    Ok(VerifiedFile {
        payload,
        key_id: kid.unwrap_or_else(|| key_id(key)),
        issued_at,
        valid_until,
        fingerprint: bound_to,
    })
}

/// Parse a license file without verifying it (for display / debugging): the payload and the key id
/// (empty when the envelope has none). Never trust the result.
pub fn parse_file(text: &str) -> Result<(Value, String), LicfileError> {
    let Envelope { value, kid, .. } = decode(text)?;
    let payload = match value {
        Value::Object(mut map) => map.remove("payload").expect("checked by decode"),
        _ => unreachable!("checked by decode"),
    };
    Ok((payload, kid.unwrap_or_default()))
}

fn int_field(payload: &Value, name: &str) -> Result<i64, LicfileError> {
    match payload.get(name) {
        None => Err(LicfileError::BadPayload(format!("missing {name}"))),
        Some(v) => v.as_i64().ok_or_else(|| {
            LicfileError::BadPayload(format!("{name} must be an integer (unix seconds), got {v}"))
        }),
    }
}

struct Envelope {
    /// The decoded envelope bytes.
    bytes: Vec<u8>,
    /// The whole envelope object (payload included).
    value: Value,
    alg: String,
    kid: Option<String>,
    sig: Vec<u8>,
}

fn decode(text: &str) -> Result<Envelope, LicfileError> {
    let bad = |m: String| LicfileError::BadArmor(m);
    let mut lines = text
        .trim_start_matches('\u{feff}')
        .split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty());
    if lines.next() != Some(ARMOR_BEGIN) {
        return Err(bad(format!("the first line must be {ARMOR_BEGIN}")));
    }
    let mut b64 = String::with_capacity(text.len());
    let mut ended = false;
    for line in lines {
        if ended {
            return Err(bad(format!("text after {ARMOR_END}")));
        }
        if line == ARMOR_END {
            ended = true;
        } else if line
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            b64.push_str(line);
        } else {
            return Err(bad(
                "a line between the armor lines is not base64".to_owned()
            ));
        }
    }
    if !ended {
        return Err(bad(format!("missing {ARMOR_END}")));
    }
    if b64.is_empty() {
        return Err(bad("no content between the armor lines".into()));
    }
    let bytes = STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| bad(format!("invalid base64: {e}")))?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| bad(format!("envelope is not valid JSON: {e}")))?;
    let map = value
        .as_object()
        .ok_or_else(|| bad("envelope must be a JSON object".into()))?;
    if let Some(other) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "alg" | "kid" | "payload" | "sig"))
    {
        return Err(bad(format!("unexpected envelope member {other:?}")));
    }
    let string = |name: &str| -> Result<Option<String>, LicfileError> {
        match map.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(format!("envelope {name} must be a string"))),
        }
    };
    let alg = string("alg")?.ok_or_else(|| bad("envelope has no alg".into()))?;
    let kid = string("kid")?;
    let sig = string("sig")?.ok_or_else(|| bad("envelope has no sig".into()))?;
    let sig = STANDARD
        .decode(sig.as_bytes())
        .map_err(|e| bad(format!("envelope sig is not valid base64: {e}")))?;
    if !map.contains_key("payload") {
        return Err(bad("envelope has no payload".into()));
    }
    Ok(Envelope {
        bytes,
        value,
        alg,
        kid,
        sig,
    })
}
