//! Constant-time MAC checks shared by the HMAC-signed platforms.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Whether HMAC-SHA256(key, parts concatenated) equals `expected`, compared in constant time
/// (`verify_slice`).
pub(crate) fn hmac_sha256_matches(key: &[u8], parts: &[&[u8]], expected: &[u8]) -> bool {
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return false;
    };
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(expected).is_ok()
}

/// Whether any (key, signature) pair matches. Signatures that do not decode never match.
pub(crate) fn any_hmac_matches(keys: &[&[u8]], parts: &[&[u8]], signatures: &[Vec<u8>]) -> bool {
    let mut matched = false;
    // Try every pair (no early exit on a match) so the time does not tell which key matched.
    for key in keys {
        for signature in signatures {
            matched |= hmac_sha256_matches(key, parts, signature);
        }
    }
    matched
}

/// Lowercase or uppercase hex, `None` if it does not decode.
pub(crate) fn decode_hex(text: &str) -> Option<Vec<u8>> {
    hex::decode(text.trim()).ok()
}

/// Standard base64 (with padding), `None` if it does not decode.
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text.trim()).ok()
}

/// Equality of two secrets in constant time, also hiding their lengths (both are hashed
/// first).
pub(crate) fn secret_eq(a: &[u8], b: &[u8]) -> bool {
    let a = Sha256::digest(a);
    let b = Sha256::digest(b);
    a.ct_eq(&b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_only_the_right_key() {
        let mut mac = HmacSha256::new_from_slice(b"k").unwrap();
        mac.update(b"hello");
        let sig = mac.finalize().into_bytes().to_vec();
        assert!(hmac_sha256_matches(b"k", &[b"hel", b"lo"], &sig));
        assert!(!hmac_sha256_matches(b"x", &[b"hello"], &sig));
        assert!(any_hmac_matches(
            &[b"x", b"k"],
            &[b"hello"],
            &[vec![1, 2], sig]
        ));
        assert!(!any_hmac_matches(&[], &[b"hello"], &[]));
        assert!(secret_eq(b"a:b", b"a:b"));
        assert!(!secret_eq(b"a:b", b"a:bc"));
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_base64("!!"), None);
    }
}
