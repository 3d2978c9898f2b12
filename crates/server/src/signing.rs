//! Account signing keys: sealing them at rest, keeping them ready in memory, and signing
//! answers and license files with them.
use crate::error::{ApiError, ErrorCode};
use aes_gcm::aead::{Aead, KeyInit};
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
    /// AES-256-GCM key derived from `KEYGATE_MASTER_KEY` (SHA-256 of it), if set.
    master: Option<Aes256Gcm>,
    keys: RwLock<HashMap<String, Arc<AccountKey>>>,
    /// Signs answers that belong to no account (an unknown license key), so they cost the
    /// same as the others; no client trusts this key.
    anonymous: Arc<AccountKey>,
}

const SEALED_PREFIX: &str = "aes256gcm:";
const PLAIN_PREFIX: &str = "plain:";

impl Signer {
    pub fn new(master_key: Option<&str>) -> Self {
        let master = master_key.filter(|k| !k.is_empty()).map(|k| {
            let digest = Sha256::digest(k.as_bytes());
            Aes256Gcm::new_from_slice(&digest).expect("32-byte key")
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

    fn seal(&self, key: &SigningKey) -> String {
        self.seal_bytes(&key.to_bytes())
    }

    /// Seals any secret (platform webhook secrets) the way signing keys are sealed.
    pub fn seal_text(&self, text: &str) -> String {
        self.seal_bytes(text.as_bytes())
    }

    pub fn open_text(&self, sealed: &str) -> Result<String, ApiError> {
        let bytes = self.open_bytes(sealed)?;
        String::from_utf8(bytes).map_err(|_| self.broken("not UTF-8"))
    }

    fn seal_bytes(&self, secret: &[u8]) -> String {
        match &self.master {
            Some(cipher) => {
                let mut nonce = [0u8; 12];
                rand::rngs::OsRng.fill_bytes(&mut nonce);
                let sealed = cipher
                    .encrypt(Nonce::from_slice(&nonce), secret)
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

    fn open(&self, sealed: &str) -> Result<SigningKey, ApiError> {
        let bytes = self.open_bytes(sealed)?;
        let array: [u8; 32] = bytes.try_into().map_err(|_| self.broken("not 32 bytes"))?;
        Ok(SigningKey::from_bytes(&array))
    }

    fn open_bytes(&self, sealed: &str) -> Result<Vec<u8>, ApiError> {
        let broken = |why: &str| self.broken(why);
        let bytes: Vec<u8> = if let Some(b64) = sealed.strip_prefix(SEALED_PREFIX) {
            let cipher = self
                .master
                .as_ref()
                .ok_or_else(|| broken("sealed with a master key, but none is set"))?;
            let raw = B64.decode(b64).map_err(|_| broken("bad base64"))?;
            if raw.len() < 12 {
                return Err(broken("too short"));
            }
            cipher
                .decrypt(Nonce::from_slice(&raw[..12]), &raw[12..])
                .map_err(|_| broken("wrong master key"))?
        } else if let Some(b64) = sealed.strip_prefix(PLAIN_PREFIX) {
            B64.decode(b64).map_err(|_| broken("bad base64"))?
        } else {
            return Err(broken("unknown sealing"));
        };
        Ok(bytes)
    }

    /// A fresh key pair as the store keeps it.
    pub fn new_record(&self) -> SigningKeyRecord {
        let key = keygate_licfile::generate_signing_key();
        let public = key.verifying_key();
        SigningKeyRecord {
            key_id: keygate_licfile::key_id(&public),
            public_key: keygate_licfile::encode_public_key(&public),
            private_key: self.seal(&key),
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
            .ensure_signing_key(account_id, self.new_record())
            .await?;
        let key = Arc::new(AccountKey {
            key: self.open(&record.private_key)?,
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
