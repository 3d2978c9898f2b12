//! Secrets handed to people: API keys and license keys.
use rand::Rng;
use rand::distributions::Alphanumeric;
use rand::rngs::OsRng;
use sha2_free::sha256_hex;

pub const API_KEY_PREFIX: &str = "kg_sk_";

/// `kg_sk_` + 43 base62 characters (≈256 random bits).
pub fn generate_api_key() -> String {
    let body: String = OsRng
        .sample_iter(&Alphanumeric)
        .take(43)
        .map(char::from)
        .collect();
    format!("{API_KEY_PREFIX}{body}")
}

/// Crockford base32 without the ambiguous I, L, O, U.
const KEY_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A license key: 30 base32 characters (150 random bits) in six groups of five,
/// e.g. `7QK2M-...`. Easy to read aloud, impossible to guess.
pub fn generate_license_key() -> String {
    // One read of the OS generator for the whole key (a bulk order makes thousands); the low
    // five bits of a uniform byte are uniform, since 32 divides 256.
    let mut random = [0u8; 30];
    OsRng.fill(&mut random);
    let mut out = String::with_capacity(35);
    for (i, byte) in random.iter().enumerate() {
        if i > 0 && i % 5 == 0 {
            out.push('-');
        }
        out.push(KEY_ALPHABET[(byte & 31) as usize] as char);
    }
    out
}

/// The lookup hash of a credential: SHA-256, hex. API keys are stored only as this.
pub fn credential_hash(secret: &str) -> String {
    sha256_hex(secret.as_bytes())
}

mod sha2_free {
    pub fn sha256_hex(bytes: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(bytes);
        let mut out = String::with_capacity(64);
        for b in digest {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn license_keys_are_grouped_and_distinct() {
        let a = generate_license_key();
        let b = generate_license_key();
        assert_ne!(a, b);
        assert_eq!(a.len(), 35);
        assert_eq!(a.split('-').count(), 6);
        assert!(
            a.chars()
                .all(|c| c == '-' || KEY_ALPHABET.contains(&(c as u8)))
        );
    }

    #[test]
    fn api_keys_have_prefix_and_length() {
        let k = generate_api_key();
        assert!(k.starts_with(API_KEY_PREFIX));
        assert_eq!(k.len(), API_KEY_PREFIX.len() + 43);
        assert_eq!(credential_hash(&k).len(), 64);
        assert_ne!(credential_hash(&k), credential_hash(&generate_api_key()));
    }
}

/// Compares two secrets in time independent of where they differ (both are hashed first,
/// so their lengths leak nothing either).
pub fn secrets_equal(a: &str, b: &str) -> bool {
    use sha2::{Digest, Sha256};
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

#[cfg(test)]
mod compare_tests {
    #[test]
    fn secrets_equal_compares_whole_values() {
        assert!(super::secrets_equal("root-token", "root-token"));
        assert!(!super::secrets_equal("root-token", "root-tokeN"));
        assert!(!super::secrets_equal("root-token", "root"));
    }
}
