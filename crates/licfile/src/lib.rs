//! Keygate's signed formats: signed HTTP answers and signed license files (Ed25519).
//!
//! This crate has no I/O, no async and no network: the server uses it to sign, the client SDK and the
//! CLI use it to verify. Everything below is the **contract**; a vendor can re-implement verification
//! in any language from this page alone.
//!
//! # Keys
//!
//! Each account has one Ed25519 key pair (RFC 8032, "pure" Ed25519, no context, no pre-hash).
//!
//! * Public key: the 32 raw bytes, written as standard base64 with padding (RFC 4648 §4, 44 characters).
//! * Key id (`kid` / `keyid`): the first 16 lowercase hex characters of SHA-256 over the 32 public key
//!   bytes (that is, the hex of the digest's first 8 bytes).
//! * `GET /v1/accounts/{id}/public-key` answers
//!   `{"account_id": "...", "current": {"key_id", "public_key", "alg": "ed25519", "created_at"}, "keys": [...]}`
//!   where `keys` lists every key of the account, the current one and those replaced by a rotation, so
//!   files signed before a rotation still verify. Trust all of them ([`KeyRing`]).
//!
//! Verifiers should use strict verification (reject non-canonical `S`, small-order `A` and `R`), as
//! ed25519-dalek's `verify_strict` does; Keygate never produces signatures that fail it.
//!
//! # Signed answers
//!
//! The answers of validate, activate and checkout carry a header over the **exact body bytes** (no
//! canonicalization, no re-encoding; verify before parsing):
//!
//! ```text
//! Keygate-Signature: keyid="3f1c0a9b7d2e4f60", alg="ed25519", signature="<standard base64 of 64 bytes>"
//! ```
//!
//! Parameters are `name=value` pairs separated by commas; values are double-quoted (`\"` and `\\`
//! escapes allowed) or bare tokens; whitespace around names, `=` and commas is ignored, order is free,
//! unknown parameters are ignored, a repeated parameter is an error. `alg` and `signature` are
//! required; `keyid` may be absent only when the verifier trusts exactly one key. The request's
//! `nonce` is echoed inside the signed body: a client must check it equals the nonce it sent, or a
//! recorded answer could be replayed.
//!
//! # License files
//!
//! ```text
//! -----BEGIN KEYGATE LICENSE-----
//! <standard base64 (with padding) of the envelope bytes, wrapped at 64 columns>
//! -----END KEYGATE LICENSE-----
//! ```
//!
//! Lines are separated by `\n` (a reader also accepts `\r\n`); Keygate writes no newline after the END
//! line. A reader ignores blank lines and whitespace at the start and end of each line, and refuses
//! anything else: text before BEGIN or after END, a line between them with a character outside the
//! base64 alphabet (`A-Z a-z 0-9 + / =`), base64 that is not canonical (wrong padding, non-zero
//! unused bits).
//!
//! The envelope is the canonical JSON (below) of
//! `{"alg": "ed25519", "kid": "<key id>", "payload": <object>, "sig": "<standard base64 of 64 bytes>"}`
//! and `sig` is the Ed25519 signature over the canonical bytes of `payload`. To verify: decode the
//! base64, parse the JSON, check `alg` is `ed25519`, pick the trusted key whose key id is `kid`,
//! re-serialize `payload` canonically and verify `sig` over those bytes. Keygate's verifier also
//! refuses an envelope with other members or that is not itself in canonical form, so a file has
//! exactly one valid spelling; a re-implementation may skip that check, the signature alone protects
//! the payload.
//!
//! The payload is a JSON object with at least:
//!
//! * `issued_at`, `valid_until`: integers, unix seconds. The file is valid while
//!   `now < valid_until`, and not before `issued_at - 300` (5 minutes of clock skew allowed).
//! * `fingerprint` (optional, string or null): when a string, the file is bound to that machine and is
//!   valid only where the machine's fingerprint is exactly equal.
//!
//! and whatever the server adds (the license, its policy, entitlements, ...).
//!
//! # Canonical JSON
//!
//! [`canonical_bytes`] is the JSON Canonicalization Scheme, RFC 8785 (JCS), so an off-the-shelf JCS
//! library gives the same bytes for any payload Keygate issues:
//!
//! * UTF-8, no whitespace anywhere (no space after `:` or `,`, no newline).
//! * Object members sorted by key, comparing the keys as sequences of UTF-16 code units (for keys
//!   made of ASCII this is plain byte order). Keys are unique.
//! * Strings: `"` → `\"`, `\` → `\\`, U+0008 → `\b`, U+0009 → `\t`, U+000A → `\n`, U+000C → `\f`,
//!   U+000D → `\r`, other characters below U+0020 → `\u00xx` with lowercase hex; every other
//!   character (including `/`, U+007F and all non-ASCII) is written as itself, in UTF-8.
//! * `null`, `true`, `false` as such; arrays keep their order.
//! * Integers are written in decimal, `-` for negatives, no `+`, no leading zeros, no exponent
//!   (Keygate keeps integers within ±2^53 so JCS libraries that use doubles agree).
//! * Other numbers as ECMAScript's `Number.prototype.toString`: the shortest digits that round-trip
//!   the IEEE-754 double; `-0` → `0`; plain notation when 1e-7 ≤ |x| < 1e21 (`4.5`, `0.002`,
//!   `100` for 100.0), otherwise exponent notation `1e+30`, `1.5e-7`.
//!
//! # Example
//!
//! ```
//! use keygate_licfile::*;
//! use serde_json::json;
//!
//! let key = generate_signing_key();
//! let mut ring = KeyRing::new();
//! ring.add(key.verifying_key());
//!
//! let file = issue_file(&key, &json!({"license": {"key": "ABCD"}, "issued_at": 1_700_000_000, "valid_until": 1_800_000_000}));
//! let verified = verify_file(&file, &ring, 1_750_000_000, None).unwrap();
//! assert_eq!(verified.payload["license"]["key"], "ABCD");
//!
//! let body = br#"{"valid":true,"code":"VALID","nonce":"n1"}"#;
//! let header = sign_response(&key, body);
//! verify_response(&header, body, &ring).unwrap();
//! ```

mod canonical;
mod file;
mod keys;
mod response;

pub use canonical::canonical_bytes;
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use file::{ARMOR_BEGIN, ARMOR_END, VerifiedFile, issue_file, parse_file, verify_file};
pub use keys::{
    KeyRing, decode_public_key, decode_signing_key, encode_public_key, encode_signing_key,
    generate_signing_key, key_id,
};
pub use response::{ResponseSignature, parse_signature_header, sign_response, verify_response};

/// The only signature algorithm, as written in `alg`.
pub const ALG_ED25519: &str = "ed25519";
/// Name of the HTTP header that carries a signed answer's signature.
pub const SIGNATURE_HEADER: &str = "Keygate-Signature";
/// How far in the future `issued_at` may be (clock skew between server and client), in seconds.
pub const CLOCK_SKEW_SECONDS: i64 = 300;

/// Why a signed answer, a license file or a key could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LicfileError {
    /// Missing BEGIN/END lines, bad base64, bad envelope JSON; also an undecodable key or key document.
    #[error("malformed license file or key: {0}")]
    BadArmor(String),
    /// `alg` is not `ed25519`.
    #[error("unsupported signature algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The key id is not among the trusted keys (signed by another account, or an unknown key).
    #[error("unknown key id {0:?}: not signed by a trusted key")]
    UnknownKeyId(String),
    /// The signature does not match the signed bytes (altered content, or another key).
    #[error("signature does not verify")]
    BadSignature,
    /// The file's `valid_until` (unix seconds) has passed.
    #[error("license file expired (valid until {valid_until})")]
    Expired { valid_until: i64 },
    /// The file was issued more than [`CLOCK_SKEW_SECONDS`] in the future.
    #[error("license file not yet valid (issued at {issued_at})")]
    NotYetValid { issued_at: i64 },
    /// The file is bound to another machine (or no fingerprint was given to check it).
    #[error("license file bound to fingerprint {expected:?}, this machine is {actual:?}")]
    FingerprintMismatch {
        expected: String,
        actual: Option<String>,
    },
    /// Malformed `Keygate-Signature` header.
    #[error("malformed Keygate-Signature header: {0}")]
    BadHeader(String),
    /// The signed payload lacks `issued_at`/`valid_until` or has them with the wrong type.
    #[error("invalid license file payload: {0}")]
    BadPayload(String),
}

impl LicfileError {
    /// Stable machine-readable code (UPPER_SNAKE), for JSON output and exit reasons.
    pub fn code(&self) -> &'static str {
        match self {
            LicfileError::BadArmor(_) => "BAD_ARMOR",
            LicfileError::UnsupportedAlgorithm(_) => "UNSUPPORTED_ALGORITHM",
            LicfileError::UnknownKeyId(_) => "UNKNOWN_KEY_ID",
            LicfileError::BadSignature => "BAD_SIGNATURE",
            LicfileError::Expired { .. } => "EXPIRED",
            LicfileError::NotYetValid { .. } => "NOT_YET_VALID",
            LicfileError::FingerprintMismatch { .. } => "FINGERPRINT_MISMATCH",
            LicfileError::BadHeader(_) => "BAD_HEADER",
            LicfileError::BadPayload(_) => "BAD_PAYLOAD",
        }
    }
}
