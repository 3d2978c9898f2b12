//! Keys, key ids and the key ring of trusted public keys.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{ALG_ED25519, LicfileError};

/// Key id of a public key: first 16 hex chars of SHA-256 over the 32 public key bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random signing key (from the operating system's RNG).
pub fn generate_signing_key() -> SigningKey {
    SigningKey::generate(&mut rand_core::OsRng)
}

/// Standard base64 (with padding) of the 32 public key bytes.
pub fn encode_public_key(key: &VerifyingKey) -> String {
    STANDARD.encode(key.as_bytes())
}

/// Inverse of [`encode_public_key`]; surrounding whitespace is ignored.
pub fn decode_public_key(b64: &str) -> Result<VerifyingKey, LicfileError> {
    let bytes = decode_32(b64, "public key")?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| LicfileError::BadArmor("public key is not a valid Ed25519 point".into()))
}

/// Standard base64 of the 32 secret key bytes (the RFC 8032 seed). Keep it secret.
pub fn encode_signing_key(key: &SigningKey) -> String {
    STANDARD.encode(key.as_bytes())
}

/// Inverse of [`encode_signing_key`]; surrounding whitespace is ignored.
pub fn decode_signing_key(b64: &str) -> Result<SigningKey, LicfileError> {
    let bytes = decode_32(b64, "signing key")?;
    Ok(SigningKey::from_bytes(&bytes))
}

fn decode_32(b64: &str, what: &str) -> Result<[u8; 32], LicfileError> {
    let bytes = STANDARD
        .decode(b64.trim())
        .map_err(|e| LicfileError::BadArmor(format!("{what} is not valid base64: {e}")))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        LicfileError::BadArmor(format!(
            "{what} must be 32 bytes, got {} bytes",
            bytes.len()
        ))
    })
}

/// A set of trusted public keys by key id (current + earlier keys after rotation).
#[derive(Clone, Debug, Default)]
pub struct KeyRing {
    keys: BTreeMap<String, VerifyingKey>,
}

impl KeyRing {
    /// An empty ring (trusts nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Trust `key`; returns its key id.
    pub fn add(&mut self, key: VerifyingKey) -> String {
        let id = key_id(&key);
        self.keys.insert(id.clone(), key);
        id
    }

    /// The trusted key with this key id.
    pub fn get(&self, key_id: &str) -> Option<&VerifyingKey> {
        self.keys.get(key_id)
    }

    /// Number of trusted keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Trusted keys with their key ids, by key id.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &VerifyingKey)> {
        self.keys.iter().map(|(id, key)| (id.as_str(), key))
    }

    /// The key to verify with: the one named by `key_id`, or when no key id was given, the only key.
    pub(crate) fn resolve(&self, key_id: Option<&str>) -> Result<&VerifyingKey, LicfileError> {
        match key_id {
            Some(id) => self
                .get(id)
                .ok_or_else(|| LicfileError::UnknownKeyId(id.to_owned())),
            None if self.keys.len() == 1 => Ok(self.keys.values().next().expect("one key")),
            None => Err(LicfileError::UnknownKeyId(String::new())),
        }
    }

    /// Parse the JSON answered by `GET /v1/accounts/{id}/public-key`:
    /// `{"account_id": "...", "current": {"key_id", "public_key": "<b64>", "alg": "ed25519", "created_at"}, "keys": [same shape, all keys incl. current]}`.
    ///
    /// Also accepted: a JSON object with a top-level `public_key`, a JSON array of such entries or of
    /// base64 strings, a JSON string, a single bare base64 public key, or a text file with one base64
    /// key per line (blank lines and `#` comments ignored). An entry's `key_id`, when present, must be
    /// the key id of its `public_key`; its `alg`, when present, must be `ed25519`.
    pub fn from_public_key_document(text: &str) -> Result<Self, LicfileError> {
        let text = text.trim_start_matches('\u{feff}').trim();
        let mut ring = KeyRing::new();
        if text.starts_with(['{', '[', '"']) {
            let doc: Value = serde_json::from_str(text).map_err(|e| {
                LicfileError::BadArmor(format!("public key document is not valid JSON: {e}"))
            })?;
            match &doc {
                Value::Object(map) => {
                    if map.contains_key("public_key") {
                        ring.add_entry(&doc)?;
                    }
                    if let Some(current) = map.get("current").filter(|v| !v.is_null()) {
                        ring.add_entry(current)?;
                    }
                    match map.get("keys") {
                        None | Some(Value::Null) => {}
                        Some(Value::Array(entries)) => {
                            for entry in entries {
                                ring.add_entry(entry)?;
                            }
                        }
                        Some(_) => {
                            return Err(LicfileError::BadArmor(
                                "public key document: \"keys\" must be an array".into(),
                            ));
                        }
                    }
                }
                Value::Array(entries) => {
                    for entry in entries {
                        ring.add_entry(entry)?;
                    }
                }
                other => ring.add_entry(other)?,
            }
        } else {
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let key = decode_public_key(line).map_err(|e| match e {
                    LicfileError::BadArmor(m) => {
                        LicfileError::BadArmor(format!("line {}: {m}", n + 1))
                    }
                    other => other,
                })?;
                ring.add(key);
            }
        }
        if ring.is_empty() {
            return Err(LicfileError::BadArmor("no public key in document".into()));
        }
        Ok(ring)
    }

    fn add_entry(&mut self, entry: &Value) -> Result<(), LicfileError> {
        let bad = |m: &str| LicfileError::BadArmor(format!("public key document: {m}"));
        match entry {
            Value::String(b64) => {
                self.add(decode_public_key(b64)?);
                Ok(())
            }
            Value::Object(map) => {
                match map.get("alg") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(alg)) if alg == ALG_ED25519 => {}
                    Some(Value::String(alg)) => {
                        return Err(LicfileError::UnsupportedAlgorithm(alg.clone()));
                    }
                    Some(_) => return Err(bad("\"alg\" must be a string")),
                }
                let b64 = map
                    .get("public_key")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("key entry without a \"public_key\" string"))?;
                let key = decode_public_key(b64)?;
                let id = key_id(&key);
                match map.get("key_id") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(declared)) if *declared == id => {}
                    Some(declared) => {
                        return Err(bad(&format!(
                            "key_id {declared} does not match its public key (key id {id})"
                        )));
                    }
                }
                self.add(key);
                Ok(())
            }
            _ => Err(bad("a key entry must be an object or a base64 string")),
        }
    }
}

impl FromIterator<VerifyingKey> for KeyRing {
    fn from_iter<I: IntoIterator<Item = VerifyingKey>>(iter: I) -> Self {
        let mut ring = KeyRing::new();
        for key in iter {
            ring.add(key);
        }
        ring
    }
}
