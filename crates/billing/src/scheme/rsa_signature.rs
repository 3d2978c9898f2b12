//! RSA PKCS#1 v1.5 SHA-256 signatures checked against pinned X.509 certificates (PayPal).
//! Certificates outside their validity at `now` are not used; the crate never fetches one.

use crate::crypto::decode_base64;
use crate::{BillingError, Timestamp};
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
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
}
