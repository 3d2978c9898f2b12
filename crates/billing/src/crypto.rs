//! Constant-time MAC checks and the encodings shared by the signature schemes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// The hash under an HMAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

/// HMAC(key, parts concatenated). Keys of any length are accepted by HMAC.
pub fn hmac(algorithm: Algorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    match algorithm {
        Algorithm::Sha256 => {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
            parts.iter().for_each(|p| mac.update(p));
            mac.finalize().into_bytes().to_vec()
        }
        Algorithm::Sha512 => {
            let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key length");
            parts.iter().for_each(|p| mac.update(p));
            mac.finalize().into_bytes().to_vec()
        }
    }
}

/// Whether HMAC(key, parts) equals `expected`, compared in constant time (`verify_slice`).
pub(crate) fn hmac_matches(
    algorithm: Algorithm,
    key: &[u8],
    parts: &[&[u8]],
    expected: &[u8],
) -> bool {
    match algorithm {
        Algorithm::Sha256 => {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
                return false;
            };
            parts.iter().for_each(|p| mac.update(p));
            mac.verify_slice(expected).is_ok()
        }
        Algorithm::Sha512 => {
            let Ok(mut mac) = Hmac::<Sha512>::new_from_slice(key) else {
                return false;
            };
            parts.iter().for_each(|p| mac.update(p));
            mac.verify_slice(expected).is_ok()
        }
    }
}

/// Whether any (key, signature) pair matches. Signatures that do not decode never match.
pub(crate) fn any_hmac_matches(
    algorithm: Algorithm,
    keys: &[&[u8]],
    parts: &[&[u8]],
    signatures: &[Vec<u8>],
) -> bool {
    let mut matched = false;
    // Try every pair (no early exit on a match) so the time does not tell which key matched.
    for key in keys {
        for signature in signatures {
            matched |= hmac_matches(algorithm, key, parts, signature);
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

pub(crate) fn encode_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
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
        let sig = hmac(Algorithm::Sha256, b"k", &[b"hello"]);
        assert!(hmac_matches(
            Algorithm::Sha256,
            b"k",
            &[b"hel", b"lo"],
            &sig
        ));
        assert!(!hmac_matches(Algorithm::Sha256, b"x", &[b"hello"], &sig));
        assert!(!hmac_matches(Algorithm::Sha512, b"k", &[b"hello"], &sig));
        assert!(any_hmac_matches(
            Algorithm::Sha256,
            &[b"x", b"k"],
            &[b"hello"],
            &[vec![1, 2], sig]
        ));
        assert!(!any_hmac_matches(Algorithm::Sha256, &[], &[b"hello"], &[]));
        assert_eq!(hmac(Algorithm::Sha512, b"k", &[b"hello"]).len(), 64);
        assert!(secret_eq(b"a:b", b"a:b"));
        assert!(!secret_eq(b"a:b", b"a:bc"));
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_base64("!!"), None);
    }
}
