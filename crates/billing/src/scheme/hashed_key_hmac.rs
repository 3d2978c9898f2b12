//! Braintree: a form field `bt_signature` = `public_key|hex(HMAC-SHA1(SHA1(private_key),
//! bt_payload))`, several `public_key|signature` pairs joined by `&` when the notification is
//! signed for more than one key pair. The pair whose public key is one of ours is checked, over
//! the payload as received or with a trailing newline (both are accepted by the SDKs). The
//! payload must be base64 text with line breaks only (`[A-Za-z0-9+=/\n]`). The endpoint
//! verification challenge (`GET ?bt_challenge=`) is answered `public_key|hex(HMAC(challenge))`
//! with the same key.
//!
//! Source: braintree/braintree_python `webhook_notification_gateway.py` (`parse`, `verify`,
//! `__validate_signature`) and `util/crypto.py` (`sha1_hmac_hash`).

use crate::BillingError;
use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};

/// A merchant's API key pair, as configured: `public_key:private_key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyPair<'a> {
    pub public_key: &'a str,
    pub private_key: &'a str,
}

impl<'a> KeyPair<'a> {
    /// `public_key:private_key`, both non-blank (`None` otherwise).
    pub fn parse(secret: &'a str) -> Option<KeyPair<'a>> {
        let (public_key, private_key) = secret.trim().split_once(':')?;
        let (public_key, private_key) = (public_key.trim(), private_key.trim());
        (!public_key.is_empty() && !private_key.is_empty()).then_some(KeyPair {
            public_key,
            private_key,
        })
    }

    fn mac(&self) -> Hmac<Sha1> {
        let key = Sha1::digest(self.private_key.as_bytes());
        <Hmac<Sha1> as Mac>::new_from_slice(&key).expect("HMAC takes any key length")
    }

    /// Lower-case hex HMAC-SHA1 of `message`, keyed with SHA-1 of the private key.
    pub fn digest(&self, message: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(message);
        hex::encode(mac.finalize().into_bytes())
    }

    fn matches(&self, message: &[u8], signature: &[u8]) -> bool {
        let mut mac = self.mac();
        mac.update(message);
        mac.verify_slice(signature).is_ok()
    }

    /// The `bt_signature` Braintree sends for `payload`.
    pub fn sign(&self, payload: &str) -> String {
        format!("{}|{}", self.public_key, self.digest(payload.as_bytes()))
    }
}

/// Whether `payload` is what Braintree sends: base64 with `\n` line breaks only.
pub fn payload_is_base64_lines(payload: &str) -> bool {
    payload
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'=' | b'/' | b'\n'))
}

/// `Ok` when a pair of `signature` names one of `pairs`' public keys and its signature is
/// that key's HMAC of `payload` (or of `payload` + `\n`).
pub fn verify(signature: &str, payload: &str, pairs: &[KeyPair]) -> Result<(), BillingError> {
    if !payload_is_base64_lines(payload) {
        return Err(BillingError::SignatureInvalid(
            "bt_payload contains characters base64 does not use".into(),
        ));
    }
    let mut named = false;
    let mut matched = false;
    let with_newline = format!("{payload}\n");
    for (public_key, hex_signature) in signature
        .split('&')
        .filter_map(|pair| pair.trim().split_once('|'))
    {
        for pair in pairs.iter().filter(|p| p.public_key == public_key) {
            named = true;
            let Ok(expected) = hex::decode(hex_signature.trim()) else {
                continue;
            };
            // Both forms are always computed: the time does not tell which one matched.
            let plain = pair.matches(payload.as_bytes(), &expected);
            let newline = pair.matches(with_newline.as_bytes(), &expected);
            matched |= plain | newline;
        }
    }
    if !named {
        return Err(BillingError::SignatureInvalid(
            "bt_signature names no configured public key".into(),
        ));
    }
    if !matched {
        return Err(BillingError::SignatureInvalid(
            "bt_signature does not match bt_payload".into(),
        ));
    }
    Ok(())
}

/// The answer to `GET ?bt_challenge=…`: `public_key|hex(HMAC(challenge))`. The challenge is
/// 20 to 32 lower-case hex digits, anything else is refused.
pub fn answer_challenge(challenge: &str, pair: &KeyPair) -> Result<String, BillingError> {
    let valid = (20..=32).contains(&challenge.len())
        && challenge
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !valid {
        return Err(BillingError::malformed(
            "bt_challenge must be 20 to 32 lower-case hex digits",
        ));
    }
    Ok(format!(
        "{}|{}",
        pair.public_key,
        pair.digest(challenge.as_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDK: KeyPair = KeyPair {
        public_key: "integration_public_key",
        private_key: "integration_private_key",
    };

    /// braintree_python `tests/unit/test_webhooks.py`: `verify` of the SDK's challenge.
    #[test]
    fn official_challenge_vector() {
        assert_eq!(
            answer_challenge("20f9f8ed05f77439fe955c977e4c8a53", &SDK).unwrap(),
            "integration_public_key|d9b899556c966b3f06945ec21311865d35df3ce4"
        );
        for bad in [
            "20F9F8ED05F77439FE955C977E4C8A53",
            "abc",
            "20f9f8ed05f77439fe955c977e4c8a53ff00ff",
            "g0f9f8ed05f77439fe95",
        ] {
            assert_eq!(
                answer_challenge(bad, &SDK).unwrap_err().code(),
                "MALFORMED_PAYLOAD",
                "{bad}"
            );
        }
    }

    /// braintree_python `tests/unit/test_crypto.py`: `sha1_hmac_hash("secretKey", "hello world")`.
    #[test]
    fn official_hmac_vector() {
        let pair = KeyPair {
            public_key: "p",
            private_key: "secretKey",
        };
        assert_eq!(
            pair.digest(b"hello world"),
            "d503d7a1a6adba1e6474e9ff2c4167f9dfdf4247"
        );
    }

    #[test]
    fn verifies_the_pair_of_our_public_key() {
        let payload = "PG5vdGlmaWNhdGlvbj48L25vdGlmaWNhdGlvbj4=\n";
        let ours = SDK.sign(payload);
        verify(&ours, payload, &[SDK]).unwrap();
        // Among other merchants' pairs, in any position.
        let other = KeyPair {
            public_key: "other_public",
            private_key: "other_private",
        };
        let several = format!("{}&{ours}", other.sign(payload));
        verify(&several, payload, &[SDK]).unwrap();
        // Signed over the payload with a trailing newline.
        let trailing = format!(
            "{}|{}",
            SDK.public_key,
            SDK.digest(format!("{payload}\n").as_bytes())
        );
        verify(&trailing, payload, &[SDK]).unwrap();
        let refused = |sig: &str, payload: &str, pairs: &[KeyPair]| {
            verify(sig, payload, pairs).unwrap_err().to_string()
        };
        assert!(
            refused(&other.sign(payload), payload, &[SDK]).contains("no configured public key")
        );
        assert!(refused("bad_stuff", payload, &[SDK]).contains("no configured public key"));
        assert!(refused(&ours, &format!("badstuff{payload}"), &[SDK]).contains("does not match"));
        assert!(refused(&ours, "~* invalid! *~", &[SDK]).contains("base64"));
        assert!(refused("integration_public_key|zz", payload, &[SDK]).contains("does not match"));
        // Rotation: either configured pair verifies its own signature.
        verify(&other.sign(payload), payload, &[SDK, other]).unwrap();
        assert_eq!(
            KeyPair::parse(" pub : priv "),
            Some(KeyPair {
                public_key: "pub",
                private_key: "priv"
            })
        );
        assert_eq!(KeyPair::parse("pub:"), None);
        assert_eq!(KeyPair::parse("no-colon"), None);
    }
}
