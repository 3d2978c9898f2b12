//! An HMAC over the raw body alone, in one header: FastSpring and WooCommerce/Shopify (SHA-256,
//! base64), Lemon Squeezy (SHA-256, hex), Authorize.Net (SHA-512, upper-case hex after
//! `sha512=`). No timestamp is signed, so there is no freshness check.

use crate::crypto::{Algorithm, any_hmac_matches, decode_base64, decode_hex, encode_base64, hmac};
use crate::{BillingError, Headers};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Lower-case hex when signing; either case is read.
    Hex,
    /// Upper-case hex when signing; either case is read.
    UpperHex,
    /// Standard base64 with padding.
    Base64,
}

#[derive(Clone, Copy, Debug)]
pub struct BodyHmac {
    pub header: &'static str,
    pub algorithm: Algorithm,
    pub encoding: Encoding,
    /// Text before the signature in the header (`sha512=`), required when set.
    pub prefix: &'static str,
}

impl BodyHmac {
    /// `Ok` only when the header's signature is the HMAC of `body` under one of `keys`.
    pub fn verify(
        &self,
        headers: &Headers,
        body: &[u8],
        keys: &[&[u8]],
    ) -> Result<(), BillingError> {
        let value = headers.require(self.header)?;
        let signature = value
            .strip_prefix(self.prefix)
            .and_then(|s| match self.encoding {
                Encoding::Hex | Encoding::UpperHex => decode_hex(s),
                Encoding::Base64 => decode_base64(s),
            });
        let signatures: Vec<Vec<u8>> = signature.into_iter().collect();
        if !any_hmac_matches(self.algorithm, keys, &[body], &signatures) {
            return Err(BillingError::SignatureInvalid(format!(
                "{} does not match a configured secret",
                self.header
            )));
        }
        Ok(())
    }

    /// The header value the platform sends for `body` signed with `key`.
    pub fn sign(&self, key: &[u8], body: &[u8]) -> String {
        let mac = hmac(self.algorithm, key, &[body]);
        let encoded = match self.encoding {
            Encoding::Hex => hex::encode(mac),
            Encoding::UpperHex => hex::encode_upper(mac),
            Encoding::Base64 => encode_base64(&mac),
        };
        format!("{}{encoded}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WOOCOMMERCE: BodyHmac = BodyHmac {
        header: "x-wc-webhook-signature",
        algorithm: Algorithm::Sha256,
        encoding: Encoding::Base64,
        prefix: "",
    };
    const SHOPIFY: BodyHmac = BodyHmac {
        header: "x-shopify-hmac-sha256",
        ..WOOCOMMERCE
    };
    const AUTHORIZE_NET: BodyHmac = BodyHmac {
        header: "x-anet-signature",
        algorithm: Algorithm::Sha512,
        encoding: Encoding::UpperHex,
        prefix: "sha512=",
    };

    /// WooCommerce's official vector (`test_generate_signature`: secret `''`, payload `secret`).
    #[test]
    fn woocommerce_official_vector() {
        let sig = WOOCOMMERCE.sign(b"", b"secret");
        assert_eq!(sig, "GBDo00G55h6IiV+6CxqivQPLbI//KzaOZm747971tPs=");
        // An empty key is a valid HMAC key; the providers refuse empty secrets before this.
        let headers = Headers::new().with("X-WC-Webhook-Signature", sig);
        WOOCOMMERCE.verify(&headers, b"secret", &[b""]).unwrap();
    }

    /// Shopify: computed from the inputs of the official `registry_test.rb`.
    #[test]
    fn shopify_vector() {
        let headers = Headers::new().with(
            "X-Shopify-Hmac-Sha256",
            "+ihUB5l+D7QrohDEi/6NcBcJRyKssyWqos13LmnsBbs=",
        );
        SHOPIFY
            .verify(&headers, b"{}", &[b"API_SECRET_KEY"])
            .unwrap();
        let err = SHOPIFY
            .verify(&headers, b"{ }", &[b"API_SECRET_KEY"])
            .unwrap_err();
        assert_eq!(err.code(), "SIGNATURE_INVALID");
    }

    /// Authorize.Net: no official vector exists; the value is computed from the documented
    /// scheme with the ASCII key (the hex-decoded key must not verify).
    #[test]
    fn authorize_net_sha512_upper_hex() {
        let key = "00112233445566778899AABBCCDDEEFF".repeat(4);
        let body = br#"{"notificationId":"n-1","eventType":"net.authorize.customer.subscription.cancelled","eventDate":"2024-01-01T00:00:00Z","webhookId":"w-1","payload":{"entityName":"subscription","id":"5155278"}}"#;
        let expected = "sha512=2969AA0988A32E972C8DB16DC6CF058E94991C1F36B647C78994DB8F92A199C0E37592DB160815379D4AA3FB6E84C6D4CC46489A2E03DA0613459D7466C3432C";
        assert_eq!(AUTHORIZE_NET.sign(key.as_bytes(), body), expected);
        let headers = Headers::new().with("X-ANET-Signature", expected);
        AUTHORIZE_NET
            .verify(&headers, body, &[key.as_bytes()])
            .unwrap();
        let lower = Headers::new().with("x-anet-signature", expected.to_lowercase());
        AUTHORIZE_NET
            .verify(&lower, body, &[key.as_bytes()])
            .unwrap();
        let decoded = hex::decode(&key).unwrap();
        assert!(AUTHORIZE_NET.verify(&headers, body, &[&decoded]).is_err());
        let no_prefix = Headers::new().with("x-anet-signature", &expected[7..]);
        assert!(
            AUTHORIZE_NET
                .verify(&no_prefix, body, &[key.as_bytes()])
                .is_err()
        );
    }

    #[test]
    fn fails_closed() {
        let none: [&[u8]; 0] = [];
        let headers = Headers::new().with("x-wc-webhook-signature", WOOCOMMERCE.sign(b"k", b"x"));
        assert!(WOOCOMMERCE.verify(&headers, b"x", &none).is_err());
        let err = WOOCOMMERCE
            .verify(&Headers::new(), b"x", &[b"k"])
            .unwrap_err();
        assert_eq!(err.code(), "SIGNATURE_MISSING");
        let garbage = Headers::new().with("x-wc-webhook-signature", "!!");
        assert!(WOOCOMMERCE.verify(&garbage, b"x", &[b"k"]).is_err());
    }
}
