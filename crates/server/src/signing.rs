//! Account signing keys: sealing them at rest, keeping them ready in memory, and signing
//! answers and license files with them.
use crate::error::{ApiError, ErrorCode};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use keygate_domain::Timestamp;
use keygate_licfile::SigningKey;
use keygate_store::{SigningKeyRecord, Store};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// A key ready to sign: its id and the decrypted private key.
pub struct AccountKey {
    pub key_id: String,
    pub key: SigningKey,
}

pub struct Signer {
    /// The sealing keys derived from `KEYGATE_MASTER_KEY`, if set.
    master: Option<MasterKeys>,
    keys: RwLock<HashMap<String, Arc<AccountKey>>>,
    /// Signs answers that belong to no account (an unknown license key), so they cost the
    /// same as the others; no client trusts this key.
    anonymous: Arc<AccountKey>,
}

struct MasterKeys {
    /// HKDF-SHA256 of the master key: seals everything new (`aes256gcm.v2:`).
    current: Aes256Gcm,
    /// One SHA-256 of the master key, as before there was a KDF: only opens old values
    /// (`aes256gcm:`), so databases sealed then keep working with the same master key.
    legacy: Aes256Gcm,
}

/// Sealed with the master key through HKDF, bound to its account and purpose (AES-GCM
/// associated data).
const SEALED_PREFIX: &str = "aes256gcm.v2:";
/// Sealed with the SHA-256 of the master key and no associated data (read only).
const LEGACY_SEALED_PREFIX: &str = "aes256gcm:";
const PLAIN_PREFIX: &str = "plain:";
/// Fixed: the master key is the secret and must be random (see [`check_master_key`]); the
/// salt only separates Keygate's derivation from any other use of the same bytes.
const KDF_SALT: &[u8] = b"keygate/master-key/v2";
const KDF_INFO: &[u8] = b"keygate/sealing/aes-256-gcm";
/// The least entropy estimated in a master key (see [`check_master_key`]).
const MIN_MASTER_KEY_BITS: f64 = 128.0;
const MIN_MASTER_KEY_BYTES: usize = 32;

/// What a sealed value is, so a value copied into another row or account does not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `signing_keys.private_key`.
    SigningKey,
    /// `integrations.secrets`.
    IntegrationSecrets,
    /// An endpoint's `whsec_` secret. One purpose for the current and the previous secret:
    /// a rotation moves the current value into the previous column unchanged.
    EndpointSecret,
    /// A remembered answer to an `Idempotency-Key` request.
    IdempotentAnswer,
    /// `integrations.api_credentials`: a platform's API credentials.
    ApiCredentials,
}

impl Purpose {
    /// Part of the associated data of every value sealed for this purpose: a label never
    /// changes once released (even if its column is renamed), or those values stop opening.
    fn label(self) -> &'static str {
        match self {
            Purpose::SigningKey => "signing_keys.private_key",
            Purpose::IntegrationSecrets => "integrations.secrets",
            Purpose::EndpointSecret => "webhook_endpoints.secret",
            Purpose::IdempotentAnswer => "idempotency_keys.body",
            Purpose::ApiCredentials => "integrations.api_credentials",
        }
    }
}

/// The row a sealed value belongs to: its account and its purpose.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub account_id: &'a str,
    pub purpose: Purpose,
}

impl<'a> Scope<'a> {
    pub fn new(account_id: &'a str, purpose: Purpose) -> Self {
        Scope {
            account_id,
            purpose,
        }
    }

    fn associated_data(&self) -> Vec<u8> {
        let mut aad = b"keygate/v2\0".to_vec();
        aad.extend_from_slice(self.account_id.as_bytes());
        aad.push(0);
        aad.extend_from_slice(self.purpose.label().as_bytes());
        aad
    }
}

/// Why a master key is refused at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "KEYGATE_MASTER_KEY is too weak: {0}. Use at least 32 random bytes, e.g. `openssl rand -base64 32`"
)]
pub struct WeakMasterKey(String);

/// Refuses a master key that is short or visibly not random. The key is used as given (its
/// text is the HKDF input), so any encoding of 32 random bytes passes: base64 or hex text
/// is judged on the bytes it decodes to, other text on itself. The estimate is the
/// empirical Shannon entropy of the symbols times their number: it catches repetition and
/// small alphabets (`aaaa...`, `passwordpassword...`), not a clever human pattern.
pub fn check_master_key(key: &str) -> Result<(), WeakMasterKey> {
    let text = key.trim();
    let decoded = decode_key_text(text);
    let material: &[u8] = decoded.as_deref().unwrap_or(text.as_bytes());
    if material.len() < MIN_MASTER_KEY_BYTES {
        return Err(WeakMasterKey(format!(
            "it holds {} bytes, at least {MIN_MASTER_KEY_BYTES} are needed",
            material.len()
        )));
    }
    let bits = estimated_bits(material);
    if bits < MIN_MASTER_KEY_BITS {
        return Err(WeakMasterKey(format!(
            "it looks like about {bits:.0} bits of randomness, at least {MIN_MASTER_KEY_BITS:.0} are needed"
        )));
    }
    Ok(())
}

fn decode_key_text(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    if text.len() >= 2 && text.chars().all(|c| c.is_ascii_hexdigit()) {
        // An odd length is no hex encoding: `None` from the short last pair.
        return text
            .as_bytes()
            .chunks(2)
            .map(|pair| match pair {
                [hi, lo] => u8::from_str_radix(std::str::from_utf8(&[*hi, *lo]).ok()?, 16).ok(),
                _ => None,
            })
            .collect();
    }
    B64.decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text))
        .or_else(|_| URL_SAFE.decode(text))
        .or_else(|_| URL_SAFE_NO_PAD.decode(text))
        .ok()
}

fn estimated_bits(bytes: &[u8]) -> f64 {
    let mut counts = [0usize; 256];
    for b in bytes {
        counts[*b as usize] += 1;
    }
    let n = bytes.len() as f64;
    let per_symbol: f64 = counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = *c as f64 / n;
            -p * p.log2()
        })
        .sum();
    per_symbol * n
}

impl Signer {
    /// `master_key` should have passed [`check_master_key`] (the server checks it at start).
    pub fn new(master_key: Option<&str>) -> Self {
        let master = master_key.filter(|k| !k.is_empty()).map(|k| {
            let mut derived = [0u8; 32];
            hkdf::Hkdf::<Sha256>::new(Some(KDF_SALT), k.as_bytes())
                .expand(KDF_INFO, &mut derived)
                .expect("32 bytes is a valid HKDF-SHA256 output length");
            MasterKeys {
                current: Aes256Gcm::new_from_slice(&derived).expect("32-byte key"),
                legacy: Aes256Gcm::new_from_slice(&Sha256::digest(k.as_bytes()))
                    .expect("32-byte key"),
            }
        });
        let anonymous = keygate_licfile::generate_signing_key();
        Signer {
            master,
            keys: RwLock::new(HashMap::new()),
            anonymous: Arc::new(AccountKey {
                key_id: "anonymous".into(),
                key: anonymous,
            }),
        }
    }

    fn seal(&self, scope: &Scope<'_>, key: &SigningKey) -> String {
        self.seal_bytes(scope, &key.to_bytes())
    }

    /// Seals any secret (platform webhook secrets) the way signing keys are sealed.
    pub fn seal_text(&self, scope: &Scope<'_>, text: &str) -> String {
        self.seal_bytes(scope, text.as_bytes())
    }

    pub fn open_text(&self, scope: &Scope<'_>, sealed: &str) -> Result<String, ApiError> {
        let bytes = self.open_bytes(scope, sealed)?;
        String::from_utf8(bytes).map_err(|_| self.broken("not UTF-8"))
    }

    fn seal_bytes(&self, scope: &Scope<'_>, secret: &[u8]) -> String {
        match &self.master {
            Some(keys) => {
                let mut nonce = [0u8; 12];
                rand::rngs::OsRng.fill_bytes(&mut nonce);
                let aad = scope.associated_data();
                let sealed = keys
                    .current
                    .encrypt(
                        Nonce::from_slice(&nonce),
                        Payload {
                            msg: secret,
                            aad: &aad,
                        },
                    )
                    .expect("AES-GCM encryption cannot fail for 32 bytes");
                let mut out = nonce.to_vec();
                out.extend(sealed);
                format!("{SEALED_PREFIX}{}", B64.encode(out))
            }
            None => format!("{PLAIN_PREFIX}{}", B64.encode(secret)),
        }
    }

    fn broken(&self, why: &str) -> ApiError {
        tracing::error!(reason = why, "cannot open a sealed secret");
        ApiError::new(
            ErrorCode::SigningKeyUnavailable,
            "a sealed secret cannot be opened: check KEYGATE_MASTER_KEY",
        )
    }

    fn open(&self, scope: &Scope<'_>, sealed: &str) -> Result<SigningKey, ApiError> {
        let bytes = self.open_bytes(scope, sealed)?;
        let array: [u8; 32] = bytes.try_into().map_err(|_| self.broken("not 32 bytes"))?;
        Ok(SigningKey::from_bytes(&array))
    }

    fn open_bytes(&self, scope: &Scope<'_>, sealed: &str) -> Result<Vec<u8>, ApiError> {
        let broken = |why: &str| self.broken(why);
        let sealed_with = |b64: &str| -> Result<(Vec<u8>, &MasterKeys), ApiError> {
            let keys = self
                .master
                .as_ref()
                .ok_or_else(|| broken("sealed with a master key, but none is set"))?;
            let raw = B64.decode(b64).map_err(|_| broken("bad base64"))?;
            if raw.len() < 12 {
                return Err(broken("too short"));
            }
            Ok((raw, keys))
        };
        let bytes: Vec<u8> = if let Some(b64) = sealed.strip_prefix(SEALED_PREFIX) {
            let (raw, keys) = sealed_with(b64)?;
            let aad = scope.associated_data();
            keys.current
                .decrypt(
                    Nonce::from_slice(&raw[..12]),
                    Payload {
                        msg: &raw[12..],
                        aad: &aad,
                    },
                )
                .map_err(|_| broken("wrong master key, or sealed for another account or purpose"))?
        } else if let Some(b64) = sealed.strip_prefix(LEGACY_SEALED_PREFIX) {
            let (raw, keys) = sealed_with(b64)?;
            keys.legacy
                .decrypt(Nonce::from_slice(&raw[..12]), &raw[12..])
                .map_err(|_| broken("wrong master key"))?
        } else if let Some(b64) = sealed.strip_prefix(PLAIN_PREFIX) {
            B64.decode(b64).map_err(|_| broken("bad base64"))?
        } else {
            return Err(broken("unknown sealing"));
        };
        Ok(bytes)
    }

    /// A fresh key pair for `account_id`, as the store keeps it.
    pub fn new_record(&self, account_id: &str) -> SigningKeyRecord {
        let key = keygate_licfile::generate_signing_key();
        let public = key.verifying_key();
        SigningKeyRecord {
            key_id: keygate_licfile::key_id(&public),
            public_key: keygate_licfile::encode_public_key(&public),
            private_key: self.seal(&Scope::new(account_id, Purpose::SigningKey), &key),
            created_at: Timestamp::now(),
            retired_at: None,
        }
    }

    /// The account's current key (made on first use for accounts that have none yet).
    pub async fn key_for(
        &self,
        store: &dyn Store,
        account_id: &str,
    ) -> Result<Arc<AccountKey>, ApiError> {
        if let Some(k) = self
            .keys
            .read()
            .ok()
            .and_then(|m| m.get(account_id).cloned())
        {
            return Ok(k);
        }
        let record = store
            .ensure_signing_key(account_id, self.new_record(account_id))
            .await?;
        let key = Arc::new(AccountKey {
            key: self.open(
                &Scope::new(account_id, Purpose::SigningKey),
                &record.private_key,
            )?,
            key_id: record.key_id,
        });
        if let Ok(mut m) = self.keys.write() {
            m.insert(account_id.to_string(), key.clone());
        }
        Ok(key)
    }

    pub fn anonymous(&self) -> Arc<AccountKey> {
        self.anonymous.clone()
    }

    /// Forget the cached key of an account (after a rotation).
    pub fn forget(&self, account_id: &str) {
        if let Ok(mut m) = self.keys.write() {
            m.remove(account_id);
        }
    }
}

/// `Keygate-Signature` value over `body`.
pub fn signature_header(key: &AccountKey, body: &[u8]) -> String {
    keygate_licfile::sign_response(&key.key, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "Y86TedASVrgoamSBWOYeAUV/lMhd4ItOz5/gFij5ZoQ=";

    /// A value sealed the way Keygate sealed before the KDF: AES-256-GCM under one SHA-256
    /// of the master key, no associated data.
    fn legacy_seal(master: &str, secret: &[u8]) -> String {
        let cipher = Aes256Gcm::new_from_slice(&Sha256::digest(master.as_bytes())).unwrap();
        let nonce = [7u8; 12];
        let mut out = nonce.to_vec();
        out.extend(cipher.encrypt(Nonce::from_slice(&nonce), secret).unwrap());
        format!("{LEGACY_SEALED_PREFIX}{}", B64.encode(out))
    }

    #[test]
    fn seals_bound_to_account_and_purpose() {
        let signer = Signer::new(Some(KEY));
        let a = Scope::new("acct-a", Purpose::IntegrationSecrets);
        let sealed = signer.seal_text(&a, "whsec_x");
        assert!(sealed.starts_with("aes256gcm.v2:"), "{sealed}");
        assert_eq!(signer.open_text(&a, &sealed).unwrap(), "whsec_x");
        // Moved to another account's row, or to another column: it does not open.
        let b = Scope::new("acct-b", Purpose::IntegrationSecrets);
        assert_eq!(
            signer.open_text(&b, &sealed).unwrap_err().code,
            "SIGNING_KEY_UNAVAILABLE"
        );
        let other = Scope::new("acct-a", Purpose::EndpointSecret);
        assert!(signer.open_text(&other, &sealed).is_err());
        // Another master key opens nothing.
        let wrong = Signer::new(Some("Sz4e/7RTKRLCnxEiUTLj/akWMg2xSgosEz/jKAxGxn0="));
        assert!(wrong.open_text(&a, &sealed).is_err());
        // Two seals of one value differ (fresh nonces).
        assert_ne!(sealed, signer.seal_text(&a, "whsec_x"));
    }

    #[test]
    fn values_sealed_before_the_kdf_still_open() {
        let signer = Signer::new(Some(KEY));
        let old = legacy_seal(KEY, b"[\"whsec_old\"]");
        for scope in [
            Scope::new("any", Purpose::IntegrationSecrets),
            Scope::new("other", Purpose::SigningKey),
        ] {
            assert_eq!(signer.open_text(&scope, &old).unwrap(), "[\"whsec_old\"]");
        }
        assert!(
            Signer::new(Some("bCwaY5gIzlWgROAxz7sl5igEP5qPeSFi/uyf4KsQu4Y="))
                .open_text(&Scope::new("any", Purpose::IntegrationSecrets), &old)
                .is_err()
        );
        // The KDF's key is not the old one: new seals are not readable as old ones.
        let new = signer.seal_text(&Scope::new("any", Purpose::IntegrationSecrets), "x");
        let relabelled = new.replacen(SEALED_PREFIX, LEGACY_SEALED_PREFIX, 1);
        assert!(
            signer
                .open_text(&Scope::new("any", Purpose::IntegrationSecrets), &relabelled)
                .is_err()
        );
        // Without a master key: plain, readable, marked as such.
        let none = Signer::new(None);
        let plain = none.seal_text(&Scope::new("a", Purpose::SigningKey), "s");
        assert!(plain.starts_with("plain:"));
        assert_eq!(
            none.open_text(&Scope::new("a", Purpose::SigningKey), &plain)
                .unwrap(),
            "s"
        );
    }

    #[test]
    fn weak_master_keys_are_refused() {
        for strong in [
            KEY,
            "Y86TedASVrgoamSBWOYeAUV_lMhd4ItOz5_gFij5ZoQ",
            "8f3a1c9e7b2d4f6a0c5e8b1d3f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a",
            "correct horse battery staple with a few more random words: vexing quartz",
        ] {
            assert!(check_master_key(strong).is_ok(), "{strong}");
        }
        for weak in [
            "wrong",
            "correct horse battery staple",
            "outbound-test-master-key",
            &"a".repeat(64),
            "passwordpasswordpasswordpassword",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "0000000000000000000000000000000000000000000000000000000000000000",
            "dGhpcyBpcyBub3QgcmFuZG9t",
        ] {
            let e = check_master_key(weak).unwrap_err();
            assert!(e.to_string().contains("KEYGATE_MASTER_KEY"), "{e}");
        }
    }
}
