//! Signed answers: arbitrary `Keygate-Signature` headers and bodies through the parser and
//! verifier; any body signed here must verify, and must not once one byte is changed.
#![no_main]
use keygate_licfile::{key_id, parse_signature_header, sign_response, verify_response};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let ring = keygate_fuzz::key_ring();
    // First line: a header as a client would receive it; the rest: the body.
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (head, body) = (&data[..split], data.get(split + 1..).unwrap_or(&[]));
    let header = String::from_utf8_lossy(head);
    let _ = parse_signature_header(&header);
    let _ = verify_response(&header, body, &ring);

    let key = keygate_fuzz::signing_key();
    let signed = sign_response(key, data);
    let parsed = parse_signature_header(&signed).expect("our own header parses");
    assert_eq!(parsed.alg, "ed25519");
    assert_eq!(parsed.key_id, key_id(&key.verifying_key()));
    verify_response(&signed, data, &ring).expect("a signed answer verifies");
    if !data.is_empty() {
        let mut altered = data.to_vec();
        let at = data.len() / 2;
        altered[at] ^= 0x01;
        assert!(
            verify_response(&signed, &altered, &ring).is_err(),
            "an altered answer verified"
        );
    }
});
