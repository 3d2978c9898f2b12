//! RSA PKCS#1 v1.5 signatures: SHA-256 checked against pinned X.509 certificates (PayPal;
//! certificates outside their validity at `now` are not used, the crate never fetches one),
//! and SHA-1 checked against a vendor's public key pasted as PEM (Paddle Classic).

use crate::crypto::decode_base64;
use crate::{BillingError, Timestamp};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::der::Encode;

/// The RSA keys of the PEM certificates (each PEM may hold a chain) valid at `now`.
/// `CERTIFICATE_NOT_CONFIGURED` when there is none, `CERTIFICATE_INVALID` when one does not
/// read or none is valid now.
pub fn pinned_keys(pems: &[&str], now: Timestamp) -> Result<Vec<RsaPublicKey>, BillingError> {
    let pems: Vec<&str> = pems
        .iter()
        .copied()
        .filter(|p| !p.trim().is_empty())
        .collect();
    if pems.is_empty() {
        return Err(BillingError::CertificateNotConfigured(
            "pin the platform's certificate in the integration's options.certificate_pem".into(),
        ));
    }
    let mut keys = Vec::new();
    let mut expired = 0;
    for pem in pems {
        let chain = Certificate::load_pem_chain(pem.as_bytes()).map_err(|e| {
            BillingError::CertificateInvalid(format!(
                "the pinned certificate is not PEM X.509: {e}"
            ))
        })?;
        for cert in chain {
            let validity = &cert.tbs_certificate.validity;
            let not_before = validity.not_before.to_unix_duration().as_millis() as i64;
            let not_after = validity.not_after.to_unix_duration().as_millis() as i64;
            if now.millis() < not_before || now.millis() > not_after {
                expired += 1;
                continue;
            }
            let spki = cert
                .tbs_certificate
                .subject_public_key_info
                .to_der()
                .map_err(|e| BillingError::CertificateInvalid(e.to_string()))?;
            let key = RsaPublicKey::from_public_key_der(&spki).map_err(|e| {
                BillingError::CertificateInvalid(format!("the pinned certificate is not RSA: {e}"))
            })?;
            keys.push(key);
        }
    }
    if keys.is_empty() {
        return Err(BillingError::CertificateInvalid(format!(
            "no pinned certificate is valid now ({expired} outside their validity)"
        )));
    }
    Ok(keys)
}

/// Whether the base64 `signature` is an RSA-SHA256 signature of any of `messages` by any of
/// `keys` (every pair is tried).
pub fn verify_sha256(
    keys: &[RsaPublicKey],
    messages: &[Vec<u8>],
    signature: &str,
) -> Result<(), BillingError> {
    let signature = decode_base64(signature)
        .ok_or_else(|| BillingError::SignatureInvalid("the signature is not base64".into()))?;
    let mut matched = false;
    for message in messages {
        let digest = Sha256::digest(message);
        for key in keys {
            matched |= key
                .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &signature)
                .is_ok();
        }
    }
    if !matched {
        return Err(BillingError::SignatureInvalid(
            "the signature does not verify with the pinned certificate".into(),
        ));
    }
    Ok(())
}

/// An RSA public key as a dashboard shows it: SPKI PEM (`-----BEGIN PUBLIC KEY-----`), PKCS#1
/// PEM (`-----BEGIN RSA PUBLIC KEY-----`), or the SPKI base64 alone (the PEM's body, as
/// vendors sometimes paste it, with or without line breaks). `Err` says why not.
pub fn public_key(text: &str) -> Result<RsaPublicKey, String> {
    let text = text.trim().replace("\r\n", "\n");
    if text.contains("-----BEGIN RSA PUBLIC KEY-----") {
        return RsaPublicKey::from_pkcs1_pem(&text)
            .map_err(|e| format!("not a PKCS#1 RSA key: {e}"));
    }
    if text.contains("-----BEGIN PUBLIC KEY-----") {
        return RsaPublicKey::from_public_key_pem(&text)
            .map_err(|e| format!("not an RSA public key: {e}"));
    }
    if text.contains("-----BEGIN") {
        return Err("a PEM, but not a public key (paste the PUBLIC KEY block)".into());
    }
    let compact: String = text.split_whitespace().collect();
    let der = decode_base64(&compact).ok_or("neither PEM nor base64")?;
    RsaPublicKey::from_public_key_der(&der).map_err(|e| format!("not an RSA public key: {e}"))
}

/// Whether the base64 `signature` is an RSA-SHA1 (PKCS#1 v1.5) signature of `message` by any
/// of `keys`.
pub fn verify_sha1(
    keys: &[RsaPublicKey],
    message: &[u8],
    signature: &str,
) -> Result<(), BillingError> {
    let signature = decode_base64(signature.trim())
        .ok_or_else(|| BillingError::SignatureInvalid("the signature is not base64".into()))?;
    let digest = Sha1::digest(message);
    let mut matched = false;
    for key in keys {
        matched |= key
            .verify(Pkcs1v15Sign::new::<Sha1>(), &digest, &signature)
            .is_ok();
    }
    if !matched {
        return Err(BillingError::SignatureInvalid(
            "the signature does not verify with the configured public key".into(),
        ));
    }
    Ok(())
}

/// RSA-SHA1 of `message`, base64, with a PKCS#8 PEM private key (tests, simulate).
#[cfg(feature = "testkit")]
pub fn sign_sha1(private_key_pem: &str, message: &[u8]) -> String {
    use rsa::RsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    let key = RsaPrivateKey::from_pkcs8_pem(private_key_pem).expect("a PKCS#8 RSA key");
    let signature = key
        .sign(Pkcs1v15Sign::new::<Sha1>(), &Sha1::digest(message))
        .expect("RSA signing");
    crate::crypto::encode_base64(&signature)
}

/// Signs `message` as the platform does, with a PKCS#8 PEM private key (tests, simulate).
#[cfg(feature = "testkit")]
pub fn sign_sha256(private_key_pem: &str, message: &[u8]) -> String {
    use rsa::RsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    let key = RsaPrivateKey::from_pkcs8_pem(private_key_pem).expect("a PKCS#8 RSA key");
    let digest = Sha256::digest(message);
    let signature = key
        .sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
        .expect("RSA signing");
    crate::crypto::encode_base64(&signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_certificate_fails_closed() {
        let now = Timestamp::from_unix_seconds(0);
        assert_eq!(
            pinned_keys(&[], now).unwrap_err().code(),
            "CERTIFICATE_NOT_CONFIGURED"
        );
        assert_eq!(
            pinned_keys(&["  "], now).unwrap_err().code(),
            "CERTIFICATE_NOT_CONFIGURED"
        );
        assert_eq!(
            pinned_keys(&["not a pem"], now).unwrap_err().code(),
            "CERTIFICATE_INVALID"
        );
        let err = verify_sha256(&[], &[b"m".to_vec()], "!!").unwrap_err();
        assert_eq!(err.code(), "SIGNATURE_INVALID");
        let err = verify_sha256(&[], &[b"m".to_vec()], "AAAA").unwrap_err();
        assert_eq!(err.code(), "SIGNATURE_INVALID");
    }
    // The PayPal SDK's official vector runs through this module in tests/paypal.rs.

    #[test]
    fn public_keys_read_as_dashboards_show_them() {
        for bad in [
            "",
            "not a key",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
        ] {
            assert!(public_key(bad).is_err(), "{bad}");
        }
        assert!(verify_sha1(&[], b"m", "AAAA").is_err());
        assert_eq!(
            verify_sha1(&[], b"m", "@@").unwrap_err().code(),
            "SIGNATURE_INVALID"
        );
    }
}
