//! Keygate client SDK for vendors' Rust apps (blocking, no async runtime needed).
//!
//! * [`Client::validate`] asks the server whether a license is good. Every answer is **verified**:
//!   the `Keygate-Signature` header must verify over the exact body bytes with one of the account's
//!   trusted public keys ([`KeyRing`]), the body must echo the random nonce this call sent (so a
//!   recorded answer cannot be replayed), and its `ts` must be within `max_clock_skew` of local time.
//!   Unsigned, altered or replayed answers are refused with [`ClientError::Unsigned`],
//!   [`ClientError::BadSignature`] and [`ClientError::NonceMismatch`].
//! * **Offline cache**: each verified validate answer is kept (in memory, and in a file when
//!   [`ClientBuilder::cache_path`] is set, written atomically). When the server cannot be reached
//!   (connection error, timeout, 5xx), the last verified answer for the same key / fingerprint /
//!   product / features is returned with `from_cache: true` while it is younger than
//!   [`ClientBuilder::offline_grace`]; after that, [`ClientError::Offline`]. A cached answer is
//!   re-verified (signature, nonce, license key) every time it is used, so an edited cache file is
//!   refused ([`ClientError::CacheTampered`]).
//! * [`Client::activate`] / [`Client::deactivate`] machines, floating seats with
//!   [`Client::checkout`] / [`Client::heartbeat`] / [`Client::checkin`].
//! * [`Client::license_file`] downloads a signed license file; [`Client::verify_file`] (or the free
//!   function [`verify_file_with`]) verifies one fully offline.
//! * [`machine_fingerprint`] gives a stable identifier for this machine.
//!
//! # Trusting the server's key
//!
//! Ship the account's public key document (`GET /v1/accounts/{id}/public-key`) inside your app and
//! load it with [`KeyRing::from_public_key_document`]: that **pins** the key, so a fake server cannot
//! sign answers your app accepts. [`Client::fetch_public_keys`] downloads the document at run time
//! (trust on first use): convenient, but only as safe as the first connection, so prefer pinning and
//! use fetching to pick up keys added by a rotation.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use keygate_client::{Client, KeyRing, ValidateOptions, machine_fingerprint};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The document answered by GET /v1/accounts/{id}/public-key, pinned in the app.
//! const KEYS: &str = r#"{"keys":[{"key_id":"...","public_key":"...","alg":"ed25519"}]}"#;
//! let client = Client::builder("https://licensing.example.com")
//!     .public_keys(KeyRing::from_public_key_document(KEYS)?)
//!     .cache_path(Some("/var/lib/myapp/license-cache.json".into()))
//!     .offline_grace(Duration::from_secs(3 * 24 * 3600))
//!     .build()?;
//!
//! let fingerprint = machine_fingerprint();
//! client.activate("LICENSE-KEY", &fingerprint, None)?;
//! let answer = client.validate(
//!     "LICENSE-KEY",
//!     &ValidateOptions::new().fingerprint(&fingerprint).feature("pro"),
//! )?;
//! if answer.valid {
//!     println!("licensed ({}{})", answer.code, if answer.from_cache { ", offline" } else { "" });
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Limits
//!
//! An app running on a machine its user controls can always be patched to skip the check; signing
//! protects the answer on the wire and in the cache, not the code that reads it. The grace period is
//! measured with the local clock (bounded by the server's signed `ts`); setting the clock back more
//! than `max_clock_skew` before that `ts` is detected and refused, but a clock held still within the
//! grace is not.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub use keygate_licfile::{KeyRing, LicfileError, VerifiedFile};

/// Default of [`ClientBuilder::offline_grace`]: 3 days.
pub const DEFAULT_OFFLINE_GRACE: Duration = Duration::from_secs(3 * 24 * 3600);
/// Default of [`ClientBuilder::max_clock_skew`]: 5 minutes.
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);
/// Default of [`ClientBuilder::timeout`]: 10 seconds for a whole request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

const CACHE_VERSION: u32 = 1;

/// Why a call failed. [`ClientError::code`] is a stable machine-readable code.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The client was built without trusted keys, or with a bad URL or option.
    #[error("client configuration: {0}")]
    Config(String),
    /// The answer carried no `Keygate-Signature` header.
    #[error("the server's answer is not signed")]
    Unsigned,
    /// The signature does not verify over the answer's bytes (altered answer, or another key).
    #[error("the server's answer has a bad signature")]
    BadSignature,
    /// The answer is signed by a key that is not trusted (another account, or a fake server).
    #[error("the server's answer is signed by an untrusted key id {0:?}")]
    UnknownKeyId(String),
    /// Malformed `Keygate-Signature` header or unsupported algorithm.
    #[error("malformed signature: {0}")]
    MalformedSignature(String),
    /// The signed answer does not echo the nonce this call sent: a recorded answer replayed.
    #[error("the signed answer does not echo this request's nonce (replayed answer?)")]
    NonceMismatch,
    /// The signed answer's `ts` is too far from local time (replayed old answer or a wrong clock).
    #[error("server time {server_ts} is {skew_seconds} s away from local time")]
    ClockSkew {
        server_ts: String,
        skew_seconds: i64,
    },
    /// The server could not be reached (connect error, timeout, 5xx).
    #[error("server unreachable: {0}")]
    Unreachable(String),
    /// The server could not be reached and no verified answer younger than the grace is cached.
    #[error("offline: {0}")]
    Offline(String),
    /// The cached answer does not verify any more (the cache file was edited).
    #[error("cached answer refused: {0}")]
    CacheTampered(String),
    /// The server refused the request: `{"error":{"code","message"}}` (e.g. `TOO_MANY_ACTIVATIONS`,
    /// `NO_SEAT_AVAILABLE`, `SUSPENDED`, `NOT_FOUND`).
    #[error("server answered {status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// A verified (or error) answer whose content is not what the API promises.
    #[error("unexpected answer: {0}")]
    InvalidAnswer(String),
    /// A license file failed verification.
    #[error("license file refused: {0}")]
    File(#[source] LicfileError),
}

impl ClientError {
    /// Stable code (UPPER_SNAKE). For [`ClientError::Api`] this is the server's own code; for
    /// [`ClientError::File`] the [`LicfileError::code`].
    pub fn code(&self) -> &str {
        match self {
            ClientError::Config(_) => "CONFIG",
            ClientError::Unsigned => "UNSIGNED",
            ClientError::BadSignature => "BAD_SIGNATURE",
            ClientError::UnknownKeyId(_) => "UNKNOWN_KEY_ID",
            ClientError::MalformedSignature(_) => "MALFORMED_SIGNATURE",
            ClientError::NonceMismatch => "NONCE_MISMATCH",
            ClientError::ClockSkew { .. } => "CLOCK_SKEW",
            ClientError::Unreachable(_) => "UNREACHABLE",
            ClientError::Offline(_) => "OFFLINE",
            ClientError::CacheTampered(_) => "CACHE_TAMPERED",
            ClientError::Api { code, .. } => code,
            ClientError::InvalidAnswer(_) => "INVALID_ANSWER",
            ClientError::File(e) => e.code(),
        }
    }
}

fn signature_error(e: LicfileError) -> ClientError {
    match e {
        LicfileError::BadSignature => ClientError::BadSignature,
        LicfileError::UnknownKeyId(id) => ClientError::UnknownKeyId(id),
        other => ClientError::MalformedSignature(other.to_string()),
    }
}

/// What to validate besides the key. Build with the chained setters or as a struct literal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ValidateOptions {
    /// This machine's fingerprint; required by licenses whose policy limits activations.
    pub fingerprint: Option<String>,
    /// Product code the license must belong to.
    pub product: Option<String>,
    /// Features the license must grant.
    pub features: Vec<String>,
}

impl ValidateOptions {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn fingerprint(mut self, fingerprint: impl Into<String>) -> Self {
        self.fingerprint = Some(fingerprint.into());
        self
    }
    pub fn product(mut self, product: impl Into<String>) -> Self {
        self.product = Some(product.into());
        self
    }
    pub fn feature(mut self, feature: impl Into<String>) -> Self {
        self.features.push(feature.into());
        self
    }
}

/// A validation answer.
#[derive(Clone, Debug)]
pub struct Validation {
    /// True when the license may be used (`VALID` or `GRACE_PERIOD`).
    pub valid: bool,
    /// `VALID`, `GRACE_PERIOD`, `NOT_FOUND`, `EXPIRED`, `SUSPENDED`, `REVOKED`, `NOT_ACTIVATED`,
    /// `TOO_MANY_ACTIVATIONS`, `FEATURE_MISSING`, `PRODUCT_MISMATCH`, `QUOTA_EXCEEDED`, ...
    pub code: String,
    pub message: String,
    /// The license as the server shows it (`null` → `None`).
    pub license: Option<Value>,
    /// True when the signature verified with a trusted key. Only a `NOT_FOUND` answer can be
    /// unverified (the server signs those with a throwaway key: it does not know whose key it is);
    /// such an answer is never `valid`.
    pub verified: bool,
    /// Key id that signed the answer (when verified).
    pub key_id: Option<String>,
    /// Server time of the answer (the signed `ts`), RFC 3339.
    pub server_time: String,
    /// True when the server could not be reached and this is the last verified answer.
    pub from_cache: bool,
    /// When this answer was verified online.
    pub verified_at: SystemTime,
}

/// A machine activation.
#[derive(Clone, Debug)]
pub struct Activation {
    pub id: String,
    pub license_id: String,
    pub fingerprint: String,
    pub name: Option<String>,
    pub platform: Option<String>,
    /// True when this call created it (201), false when the machine was already activated (200).
    pub created: bool,
    /// The whole verified body.
    pub raw: Value,
}

/// A floating seat held by a session.
#[derive(Clone, Debug)]
pub struct SeatLease {
    pub license_id: String,
    pub session: String,
    /// RFC 3339; send a [`Client::heartbeat`] before then.
    pub lease_expires_at: String,
    pub seats_used: i64,
    pub max_seats: i64,
    /// The whole verified body.
    pub raw: Value,
}

/// Builder for [`Client`]; see [`Client::builder`].
pub struct ClientBuilder {
    base_url: String,
    keys: Option<KeyRing>,
    cache_path: Option<PathBuf>,
    offline_grace: Duration,
    max_clock_skew: Duration,
    timeout: Duration,
}

impl ClientBuilder {
    /// The account's trusted public keys (required).
    pub fn public_keys(mut self, keys: KeyRing) -> Self {
        self.keys = Some(keys);
        self
    }
    /// File where verified answers are kept across restarts (`None`: memory only). Loaded by
    /// [`ClientBuilder::build`]; every entry is re-verified before it is used.
    pub fn cache_path(mut self, path: Option<PathBuf>) -> Self {
        self.cache_path = path;
        self
    }
    /// How long a verified answer is honoured while the server cannot be reached.
    pub fn offline_grace(mut self, grace: Duration) -> Self {
        self.offline_grace = grace;
        self
    }
    /// How far the server's signed `ts` may be from local time.
    pub fn max_clock_skew(mut self, skew: Duration) -> Self {
        self.max_clock_skew = skew;
        self
    }
    /// Time limit of one whole request (connect, send, receive).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn build(self) -> Result<Client, ClientError> {
        let keys = self.keys.ok_or_else(|| {
            ClientError::Config("no trusted public keys: call .public_keys(...)".into())
        })?;
        if keys.is_empty() {
            return Err(ClientError::Config("the key ring is empty".into()));
        }
        let base_url = normalize_base_url(&self.base_url)?;
        let cache = match &self.cache_path {
            Some(path) => load_cache(path),
            None => BTreeMap::new(),
        };
        Ok(Client {
            base_url,
            keys,
            agent: agent(self.timeout),
            cache: Mutex::new(cache),
            cache_path: self.cache_path,
            offline_grace: self.offline_grace,
            max_clock_skew: self.max_clock_skew,
        })
    }
}

/// A Keygate client. Cheap to share between threads (`&Client` is `Sync`).
pub struct Client {
    base_url: String,
    keys: KeyRing,
    agent: ureq::Agent,
    cache: Mutex<BTreeMap<String, CacheEntry>>,
    cache_path: Option<PathBuf>,
    offline_grace: Duration,
    max_clock_skew: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url)
            .field("keys", &self.keys.len())
            .field("cache_path", &self.cache_path)
            .field("offline_grace", &self.offline_grace)
            .finish_non_exhaustive()
    }
}

/// One HTTP answer, as received.
struct RawAnswer {
    status: u16,
    signature: Option<String>,
    body: Vec<u8>,
}

/// Cache entry: the exact verified bytes, so they can be verified again when used.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CacheEntry {
    nonce: String,
    signature: String,
    body: String,
    verified_at_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    entries: BTreeMap<String, CacheEntry>,
}

impl Client {
    /// Start building a client for the server at `base_url` (e.g. `https://licensing.example.com`).
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            keys: None,
            cache_path: None,
            offline_grace: DEFAULT_OFFLINE_GRACE,
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Download the account's public key document (`GET /v1/accounts/{id}/public-key`) as text,
    /// e.g. to store it and pin it in the next release of the app.
    pub fn fetch_public_key_document(
        base_url: &str,
        account_id: &str,
    ) -> Result<String, ClientError> {
        let base = normalize_base_url(base_url)?;
        let url = format!("{base}/v1/accounts/{account_id}/public-key");
        let answer = send(&agent(DEFAULT_TIMEOUT), &url, None)?;
        if answer.status != 200 {
            return Err(api_error(&answer));
        }
        String::from_utf8(answer.body)
            .map_err(|_| ClientError::InvalidAnswer("public key document is not UTF-8".into()))
    }

    /// Download and parse the account's public keys: **trust on first use**. Whoever answers this
    /// first request is trusted, so a key pinned in the app is safer; see the crate documentation.
    pub fn fetch_public_keys(base_url: &str, account_id: &str) -> Result<KeyRing, ClientError> {
        let text = Self::fetch_public_key_document(base_url, account_id)?;
        KeyRing::from_public_key_document(&text)
            .map_err(|e| ClientError::InvalidAnswer(format!("public key document: {e}")))
    }

    /// The trusted keys.
    pub fn public_keys(&self) -> &KeyRing {
        &self.keys
    }

    /// Validate a license online, verified; falls back to the cache when the server is unreachable.
    pub fn validate(
        &self,
        key: &str,
        options: &ValidateOptions,
    ) -> Result<Validation, ClientError> {
        let nonce = new_nonce();
        let mut body = json!({"key": key, "nonce": nonce});
        if let Some(fp) = &options.fingerprint {
            body["fingerprint"] = json!(fp);
        }
        if let Some(product) = &options.product {
            body["product"] = json!(product);
        }
        if !options.features.is_empty() {
            body["features"] = json!(options.features);
        }
        let scope = cache_scope(key, options);
        let answer = match self.post("/v1/licenses/validate", &body) {
            Ok(answer) if answer.status < 500 => answer,
            Ok(answer) => {
                return self.cached_answer(
                    &scope,
                    key,
                    format!("server answered {}", answer.status),
                );
            }
            Err(ClientError::Unreachable(reason)) => {
                return self.cached_answer(&scope, key, reason);
            }
            Err(other) => return Err(other),
        };
        if answer.status != 200 {
            return Err(api_error(&answer));
        }
        let verified_at = SystemTime::now();
        let (value, key_id) = match self.verify_answer(&answer, &nonce) {
            Ok(ok) => ok,
            Err(e) => return unverified_not_found(&answer, &nonce).ok_or(e),
        };
        let validation = parse_validation(&value, Some(key_id), false, verified_at)?;
        check_license_key(&value, key)?;
        let entry = CacheEntry {
            nonce,
            signature: answer.signature.unwrap_or_default(),
            body: STANDARD.encode(&answer.body),
            verified_at_ms: unix_ms(verified_at),
        };
        self.store(scope, entry);
        Ok(validation)
    }

    /// Activate a machine. Already activated → `Ok` with `created: false`. A full license →
    /// `Err(Api { code: "TOO_MANY_ACTIVATIONS", .. })`.
    pub fn activate(
        &self,
        key: &str,
        fingerprint: &str,
        name: Option<&str>,
    ) -> Result<Activation, ClientError> {
        let nonce = new_nonce();
        let mut body = json!({"key": key, "fingerprint": fingerprint, "nonce": nonce,
                              "platform": std::env::consts::OS});
        if let Some(name) = name {
            body["name"] = json!(name);
        }
        let answer = self.post("/v1/licenses/activate", &body)?;
        if answer.status != 200 && answer.status != 201 {
            return Err(api_error(&answer));
        }
        let (value, _) = self.verify_answer(&answer, &nonce)?;
        let text = |field: &str| value.get(field).and_then(Value::as_str).map(str::to_owned);
        let activation = Activation {
            id: text("id").ok_or_else(|| missing("id"))?,
            license_id: text("license_id").ok_or_else(|| missing("license_id"))?,
            fingerprint: text("fingerprint").ok_or_else(|| missing("fingerprint"))?,
            name: text("name"),
            platform: text("platform"),
            created: answer.status == 201,
            raw: value.clone(),
        };
        if activation.fingerprint != fingerprint {
            return Err(ClientError::InvalidAnswer(
                "activation is for another fingerprint".into(),
            ));
        }
        Ok(activation)
    }

    /// Remove this machine's activation.
    pub fn deactivate(&self, key: &str, fingerprint: &str) -> Result<(), ClientError> {
        let answer = self.post(
            "/v1/licenses/deactivate",
            &json!({"key": key, "fingerprint": fingerprint}),
        )?;
        no_content(&answer)
    }

    /// Check out a floating seat for `session` (any stable id of this running app instance).
    /// `Err(Api { code: "NO_SEAT_AVAILABLE", .. })` when all seats are taken.
    pub fn checkout(&self, key: &str, session: &str) -> Result<SeatLease, ClientError> {
        let nonce = new_nonce();
        let answer = self.post(
            "/v1/licenses/checkout",
            &json!({"key": key, "session": session, "nonce": nonce}),
        )?;
        if answer.status != 200 {
            return Err(api_error(&answer));
        }
        let (value, _) = self.verify_answer(&answer, &nonce)?;
        let text = |field: &str| value.get(field).and_then(Value::as_str).map(str::to_owned);
        let int = |field: &str| value.get(field).and_then(Value::as_i64);
        let lease = SeatLease {
            license_id: text("license_id").ok_or_else(|| missing("license_id"))?,
            session: text("session").ok_or_else(|| missing("session"))?,
            lease_expires_at: text("lease_expires_at")
                .ok_or_else(|| missing("lease_expires_at"))?,
            seats_used: int("seats_used").ok_or_else(|| missing("seats_used"))?,
            max_seats: int("max_seats").ok_or_else(|| missing("max_seats"))?,
            raw: value.clone(),
        };
        if lease.session != session {
            return Err(ClientError::InvalidAnswer(
                "seat lease is for another session".into(),
            ));
        }
        Ok(lease)
    }

    /// Extend the lease of a seat this session holds (a checkout with the same session).
    pub fn heartbeat(&self, key: &str, session: &str) -> Result<SeatLease, ClientError> {
        self.checkout(key, session)
    }

    /// Give the session's seat back.
    pub fn checkin(&self, key: &str, session: &str) -> Result<(), ClientError> {
        let answer = self.post(
            "/v1/licenses/checkin",
            &json!({"key": key, "session": session}),
        )?;
        no_content(&answer)
    }

    /// Download a signed license file for offline use (verify it with [`Client::verify_file`]).
    /// `ttl_seconds`: `None` for the server's default (30 days).
    pub fn license_file(
        &self,
        key: &str,
        fingerprint: Option<&str>,
        ttl_seconds: Option<i64>,
    ) -> Result<String, ClientError> {
        let mut body = json!({"key": key});
        if let Some(fp) = fingerprint {
            body["fingerprint"] = json!(fp);
        }
        if let Some(ttl) = ttl_seconds {
            body["ttl_seconds"] = json!(ttl);
        }
        let answer = self.post("/v1/licenses/file", &body)?;
        if answer.status != 200 {
            return Err(api_error(&answer));
        }
        String::from_utf8(answer.body)
            .map_err(|_| ClientError::InvalidAnswer("license file is not UTF-8".into()))
    }

    /// Verify a license file offline with the trusted keys and the system clock.
    pub fn verify_file(
        &self,
        text: &str,
        fingerprint: Option<&str>,
    ) -> Result<VerifiedFile, ClientError> {
        verify_file_with(text, &self.keys, now_unix_secs(), fingerprint)
    }

    fn post(&self, path: &str, body: &Value) -> Result<RawAnswer, ClientError> {
        send(
            &self.agent,
            &format!("{}{path}", self.base_url),
            Some(body.to_string()),
        )
    }

    /// Signature over the exact bytes, then nonce, then `ts`. Returns the body and the key id.
    fn verify_answer(
        &self,
        answer: &RawAnswer,
        nonce: &str,
    ) -> Result<(Value, String), ClientError> {
        let header = answer.signature.as_deref().ok_or(ClientError::Unsigned)?;
        let (value, key_id) = verify_signed(header, &answer.body, nonce, &self.keys)?;
        let ts = value
            .get("ts")
            .and_then(Value::as_str)
            .ok_or_else(|| missing("ts"))?;
        let ts_ms = parse_rfc3339_ms(ts)?;
        let skew_ms = (ts_ms - unix_ms(SystemTime::now())).abs();
        if skew_ms > self.max_clock_skew.as_millis() as i64 {
            return Err(ClientError::ClockSkew {
                server_ts: ts.to_owned(),
                skew_seconds: skew_ms / 1000,
            });
        }
        Ok((value, key_id))
    }

    fn store(&self, scope: String, entry: CacheEntry) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(scope, entry);
        if let Some(path) = &self.cache_path {
            // A cache that cannot be written only shortens offline use; the answer stays good.
            let _ = save_cache(path, &cache);
        }
    }

    fn cached_answer(
        &self,
        scope: &str,
        key: &str,
        reason: String,
    ) -> Result<Validation, ClientError> {
        let entry = {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.get(scope).cloned()
        };
        let Some(entry) = entry else {
            return Err(ClientError::Offline(format!(
                "{reason}; no verified answer cached"
            )));
        };
        let tampered = |what: &str| ClientError::CacheTampered(what.to_owned());
        let body = STANDARD
            .decode(&entry.body)
            .map_err(|_| tampered("body is not base64"))?;
        let (value, key_id) = verify_signed(&entry.signature, &body, &entry.nonce, &self.keys)
            .map_err(|e| ClientError::CacheTampered(e.to_string()))?;
        check_license_key(&value, key).map_err(|e| ClientError::CacheTampered(e.to_string()))?;
        let ts = value
            .get("ts")
            .and_then(Value::as_str)
            .ok_or_else(|| tampered("no ts"))?;
        let ts_ms = parse_rfc3339_ms(ts).map_err(|_| tampered("bad ts"))?;
        let skew_ms = self.max_clock_skew.as_millis() as i64;
        // The stored verification time is not signed: never let it be later than the signed ts allows.
        let anchor_ms = entry.verified_at_ms.min(ts_ms + skew_ms);
        let now_ms = unix_ms(SystemTime::now());
        let age_ms = now_ms - anchor_ms;
        if now_ms < ts_ms - skew_ms {
            return Err(ClientError::Offline(format!(
                "{reason}; the local clock is before the cached answer's time {ts}"
            )));
        }
        if age_ms > self.offline_grace.as_millis() as i64 {
            return Err(ClientError::Offline(format!(
                "{reason}; the last verified answer is {} s old, grace is {} s",
                age_ms / 1000,
                self.offline_grace.as_secs()
            )));
        }
        let verified_at = UNIX_EPOCH + Duration::from_millis(anchor_ms.max(0) as u64);
        parse_validation(&value, Some(key_id), true, verified_at)
    }
}

/// Verify a license file offline: signature with `keys`, validity at `now_unix_secs`, and the
/// fingerprint binding when the file has one.
pub fn verify_file_with(
    text: &str,
    keys: &KeyRing,
    now_unix_secs: i64,
    fingerprint: Option<&str>,
) -> Result<VerifiedFile, ClientError> {
    keygate_licfile::verify_file(text, keys, now_unix_secs, fingerprint).map_err(ClientError::File)
}

/// A stable identifier of this machine: lowercase hex SHA-256 of the machine id
/// (`/etc/machine-id`, else `/var/lib/dbus/machine-id`) and the host name; of the host name alone
/// when there is no machine id.
///
/// Limits: it identifies an operating-system installation, not hardware. Cloned VM or container
/// images share `/etc/machine-id` (containers often share the host's or have none, and then only
/// the host name counts), renaming the host or reinstalling the OS changes the value, and a user
/// can set both to anything. Use it to count activations, not as proof of identity.
pub fn machine_fingerprint() -> String {
    let machine_id = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty());
    let host = hostname();
    let mut hasher = Sha256::new();
    hasher.update(b"keygate-fingerprint-v1\n");
    if let Some(id) = machine_id {
        hasher.update(b"machine-id:");
        hasher.update(id.as_bytes());
        hasher.update(b"\n");
    }
    hasher.update(b"hostname:");
    hasher.update(host.as_bytes());
    hex(&hasher.finalize())
}

fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .chain(
            ["HOSTNAME", "COMPUTERNAME"]
                .iter()
                .filter_map(|v| std::env::var(v).ok()),
        )
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
        .unwrap_or_default()
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

fn normalize_base_url(url: &str) -> Result<String, ClientError> {
    let url = url.trim().trim_end_matches('/');
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ClientError::Config(format!(
            "base URL {url:?} must start with http:// or https://"
        )));
    }
    Ok(url.to_owned())
}

fn send(agent: &ureq::Agent, url: &str, body: Option<String>) -> Result<RawAnswer, ClientError> {
    let result = match body {
        Some(body) => agent
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .send(body),
        None => agent.get(url).header("accept", "application/json").call(),
    };
    let mut response = result.map_err(transport_error)?;
    let status = response.status().as_u16();
    let signature = response
        .headers()
        .get(keygate_licfile::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.body_mut().read_to_vec().map_err(transport_error)?;
    Ok(RawAnswer {
        status,
        signature,
        body,
    })
}

fn transport_error(e: ureq::Error) -> ClientError {
    match e {
        ureq::Error::BadUri(m) => ClientError::Config(format!("bad URL: {m}")),
        ureq::Error::TlsRequired | ureq::Error::RequireHttpsOnly(_) => ClientError::Config(
            format!("{e} (build keygate-client with the `tls` feature for https)"),
        ),
        other => ClientError::Unreachable(other.to_string()),
    }
}

fn api_error(answer: &RawAnswer) -> ClientError {
    let parsed: Option<Value> = serde_json::from_slice(&answer.body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let field = |name: &str| {
        error
            .and_then(|e| e.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match field("code") {
        Some(code) => ClientError::Api {
            status: answer.status,
            code,
            message: field("message").unwrap_or_default(),
        },
        None => ClientError::Api {
            status: answer.status,
            code: format!("HTTP_{}", answer.status),
            message: String::from_utf8_lossy(&answer.body)
                .chars()
                .take(200)
                .collect(),
        },
    }
}

fn no_content(answer: &RawAnswer) -> Result<(), ClientError> {
    if (200..300).contains(&answer.status) {
        Ok(())
    } else {
        Err(api_error(answer))
    }
}

fn missing(field: &str) -> ClientError {
    ClientError::InvalidAnswer(format!("answer without `{field}`"))
}

/// Verify signature over the exact bytes, parse, check the echoed nonce.
fn verify_signed(
    header: &str,
    body: &[u8],
    nonce: &str,
    keys: &KeyRing,
) -> Result<(Value, String), ClientError> {
    keygate_licfile::verify_response(header, body, keys).map_err(signature_error)?;
    let key_id = keygate_licfile::parse_signature_header(header)
        .map(|s| s.key_id)
        .unwrap_or_default();
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ClientError::InvalidAnswer(format!("signed body is not JSON: {e}")))?;
    if value.get("nonce").and_then(Value::as_str) != Some(nonce) {
        return Err(ClientError::NonceMismatch);
    }
    Ok((value, key_id))
}

/// The server signs `NOT_FOUND` with a throwaway key: accept it, unverified, as a negative answer.
fn unverified_not_found(answer: &RawAnswer, nonce: &str) -> Option<Validation> {
    let value: Value = serde_json::from_slice(&answer.body).ok()?;
    if value.get("code").and_then(Value::as_str) != Some("NOT_FOUND")
        || value.get("nonce").and_then(Value::as_str) != Some(nonce)
    {
        return None;
    }
    let mut validation = parse_validation(&value, None, false, SystemTime::now()).ok()?;
    validation.valid = false;
    validation.verified = false;
    validation.license = None;
    Some(validation)
}

fn parse_validation(
    value: &Value,
    key_id: Option<String>,
    from_cache: bool,
    verified_at: SystemTime,
) -> Result<Validation, ClientError> {
    let text = |field: &str| value.get(field).and_then(Value::as_str).map(str::to_owned);
    Ok(Validation {
        valid: value
            .get("valid")
            .and_then(Value::as_bool)
            .ok_or_else(|| missing("valid"))?,
        code: text("code").ok_or_else(|| missing("code"))?,
        message: text("message").unwrap_or_default(),
        license: value.get("license").filter(|l| !l.is_null()).cloned(),
        verified: key_id.is_some(),
        key_id,
        server_time: text("ts").unwrap_or_default(),
        from_cache,
        verified_at,
    })
}

/// A signed answer about another license (e.g. swapped in a cache file) is refused.
fn check_license_key(value: &Value, key: &str) -> Result<(), ClientError> {
    match value
        .get("license")
        .and_then(|l| l.get("key"))
        .and_then(Value::as_str)
    {
        Some(other) if other != key => Err(ClientError::InvalidAnswer(
            "the answer is about another license key".into(),
        )),
        _ => Ok(()),
    }
}

/// Cache entries are keyed by a hash of what was asked (the license key is not stored in clear).
fn cache_scope(key: &str, options: &ValidateOptions) -> String {
    let mut features = options.features.clone();
    features.sort();
    features.dedup();
    let scope = json!([key, options.fingerprint, options.product, features]);
    hex(&Sha256::digest(scope.to_string().as_bytes()))
}

fn load_cache(path: &Path) -> BTreeMap<String, CacheEntry> {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<CacheFile>(&bytes).ok())
        .filter(|file| file.version == CACHE_VERSION)
        .map(|file| file.entries)
        .unwrap_or_default()
}

/// Write to a temporary file in the same directory, flush to disk, then rename over the old one.
fn save_cache(path: &Path, entries: &BTreeMap<String, CacheEntry>) -> std::io::Result<()> {
    let file = CacheFile {
        version: CACHE_VERSION,
        entries: entries.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    {
        let mut out = std::fs::File::create(&tmp)?;
        out.write_all(&bytes)?;
        out.sync_all()?;
    }
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// 128 random bits from the operating system, hex.
fn new_nonce() -> String {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).expect("the operating system's random source failed");
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

fn now_unix_secs() -> i64 {
    unix_ms(SystemTime::now()).div_euclid(1000)
}

fn parse_rfc3339_ms(ts: &str) -> Result<i64, ClientError> {
    let t = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .map_err(|e| ClientError::InvalidAnswer(format!("bad ts {ts:?}: {e}")))?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_stable_hex() {
        let a = machine_fingerprint();
        assert_eq!(a, machine_fingerprint());
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn nonces_are_128_bit_and_differ() {
        let (a, b) = (new_nonce(), new_nonce());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn scope_ignores_feature_order() {
        let a = ValidateOptions::new().feature("a").feature("b");
        let b = ValidateOptions::new().feature("b").feature("a");
        assert_eq!(cache_scope("K", &a), cache_scope("K", &b));
        assert_ne!(cache_scope("K", &a), cache_scope("K2", &a));
        assert_ne!(
            cache_scope("K", &a),
            cache_scope("K", &a.clone().fingerprint("f"))
        );
    }

    #[test]
    fn build_requires_keys_and_http_url() {
        assert_eq!(
            Client::builder("http://x").build().unwrap_err().code(),
            "CONFIG"
        );
        let mut ring = KeyRing::new();
        ring.add(keygate_licfile::generate_signing_key().verifying_key());
        let err = Client::builder("ftp://x")
            .public_keys(ring)
            .build()
            .unwrap_err();
        assert_eq!(err.code(), "CONFIG");
    }
}
