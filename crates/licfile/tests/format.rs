//! Behaviour of signed answers, license files and key rings.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer as _, Verifier as _};
use keygate_licfile::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const NOW: i64 = 1_750_000_000;

fn ring_of(keys: &[&SigningKey]) -> KeyRing {
    keys.iter().map(|k| k.verifying_key()).collect()
}

fn payload(valid_until: i64) -> Value {
    json!({
        "license": {"id": "01J0000000000000000000000", "key": "ABCD-EFGH", "status": "active", "features": ["pro", "export"]},
        "policy": {"id": "pol_1", "floating": null},
        "issued_at": NOW - 60,
        "valid_until": valid_until,
    })
}

/// Armor an arbitrary envelope (the same way issue_file does), to build hostile files.
fn armor(envelope: &Value) -> String {
    let b64 = STANDARD.encode(canonical_bytes(envelope));
    let mut out = String::from("-----BEGIN KEYGATE LICENSE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str("-----END KEYGATE LICENSE-----");
    out
}

/// Decode an armored file's envelope without the crate (as a re-implementation would).
fn envelope_of(file: &str) -> Value {
    let b64: String = file.lines().filter(|l| !l.starts_with("-----")).collect();
    serde_json::from_slice(&STANDARD.decode(b64).unwrap()).unwrap()
}

/// A file whose envelope is signed by `signer` but names `kid`.
fn file_signed_by_with_kid(signer: &SigningKey, kid: &str, payload: &Value) -> String {
    let sig = signer.sign(&canonical_bytes(payload));
    armor(
        &json!({"alg": "ed25519", "kid": kid, "payload": payload, "sig": STANDARD.encode(sig.to_bytes())}),
    )
}

// ---------------------------------------------------------------- keys

#[test]
fn key_id_is_sha256_prefix_of_public_key() {
    let key = generate_signing_key();
    let vk = key.verifying_key();
    let id = key_id(&vk);
    assert_eq!(id.len(), 16);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    let digest = Sha256::digest(vk.as_bytes());
    let expected: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(id, expected);
    assert_ne!(key_id(&generate_signing_key().verifying_key()), id);
}

#[test]
fn keys_encode_and_decode() {
    let key = generate_signing_key();
    let pub_b64 = encode_public_key(&key.verifying_key());
    assert_eq!(pub_b64.len(), 44);
    assert_eq!(
        STANDARD.decode(&pub_b64).unwrap(),
        key.verifying_key().as_bytes()
    );
    assert_eq!(decode_public_key(&pub_b64).unwrap(), key.verifying_key());
    assert_eq!(
        decode_public_key(&format!("  {pub_b64}\n")).unwrap(),
        key.verifying_key()
    );

    let sec_b64 = encode_signing_key(&key);
    let back = decode_signing_key(&sec_b64).unwrap();
    assert_eq!(back.to_bytes(), key.to_bytes());
    assert_eq!(back.verifying_key(), key.verifying_key());

    assert_eq!(
        decode_public_key("not base64!").unwrap_err().code(),
        "BAD_ARMOR"
    );
    assert_eq!(
        decode_public_key(&STANDARD.encode([1u8; 31]))
            .unwrap_err()
            .code(),
        "BAD_ARMOR"
    );
    assert_eq!(
        decode_signing_key(&STANDARD.encode([1u8; 33]))
            .unwrap_err()
            .code(),
        "BAD_ARMOR"
    );
    assert_eq!(decode_signing_key("").unwrap_err().code(), "BAD_ARMOR");
}

#[test]
fn key_ring_add_get() {
    let a = generate_signing_key();
    let b = generate_signing_key();
    let mut ring = KeyRing::new();
    assert!(ring.is_empty());
    let id_a = ring.add(a.verifying_key());
    assert_eq!(id_a, key_id(&a.verifying_key()));
    assert_eq!(ring.get(&id_a), Some(&a.verifying_key()));
    assert_eq!(ring.get(&key_id(&b.verifying_key())), None);
    ring.add(a.verifying_key());
    assert_eq!(ring.len(), 1);
    ring.add(b.verifying_key());
    assert_eq!(ring.len(), 2);
}

#[test]
fn key_ring_from_public_key_endpoint_document() {
    let old = generate_signing_key();
    let new = generate_signing_key();
    let entry = |k: &SigningKey| {
        json!({"key_id": key_id(&k.verifying_key()), "public_key": encode_public_key(&k.verifying_key()),
               "alg": "ed25519", "created_at": "2025-01-01T00:00:00Z"})
    };
    let doc =
        json!({"account_id": "acc_1", "current": entry(&new), "keys": [entry(&old), entry(&new)]});
    let ring =
        KeyRing::from_public_key_document(&serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    assert_eq!(ring.len(), 2);
    assert_eq!(
        ring.get(&key_id(&old.verifying_key())),
        Some(&old.verifying_key())
    );
    assert_eq!(
        ring.get(&key_id(&new.verifying_key())),
        Some(&new.verifying_key())
    );

    // Only "current".
    let ring =
        KeyRing::from_public_key_document(&json!({"current": entry(&new)}).to_string()).unwrap();
    assert_eq!(ring.len(), 1);
    assert!(ring.get(&key_id(&new.verifying_key())).is_some());
}

#[test]
fn key_ring_from_bare_keys() {
    let a = generate_signing_key();
    let b = generate_signing_key();
    let pa = encode_public_key(&a.verifying_key());
    let pb = encode_public_key(&b.verifying_key());

    let ring = KeyRing::from_public_key_document(&format!("{pa}\n")).unwrap();
    assert_eq!(ring.len(), 1);
    assert!(ring.get(&key_id(&a.verifying_key())).is_some());

    let text = format!("# Keygate public keys\r\n{pa}\r\n\r\n  {pb}  \r\n");
    let ring = KeyRing::from_public_key_document(&text).unwrap();
    assert_eq!(ring.len(), 2);
    assert!(ring.get(&key_id(&b.verifying_key())).is_some());

    let ring = KeyRing::from_public_key_document(&json!([pa, pb]).to_string()).unwrap();
    assert_eq!(ring.len(), 2);
    let ring = KeyRing::from_public_key_document(&json!({"public_key": pb}).to_string()).unwrap();
    assert_eq!(ring.len(), 1);
}

#[test]
fn key_ring_document_errors() {
    let a = generate_signing_key();
    let b = generate_signing_key();
    let pa = encode_public_key(&a.verifying_key());
    let err = |text: &str| KeyRing::from_public_key_document(text).unwrap_err();

    assert_eq!(
        err(""),
        LicfileError::BadArmor("no public key in document".into())
    );
    assert_eq!(err("# only a comment\n").code(), "BAD_ARMOR");
    assert_eq!(err("{\"keys\": [").code(), "BAD_ARMOR");
    assert_eq!(
        err("{\"account_id\": \"x\", \"keys\": []}").code(),
        "BAD_ARMOR"
    );
    assert_eq!(err("{\"keys\": \"nope\"}").code(), "BAD_ARMOR");
    assert_eq!(err(&format!("{pa}\nnot-a-key\n")).code(), "BAD_ARMOR");
    // key_id must belong to the key it is listed with.
    let lying = json!({"current": {"key_id": key_id(&b.verifying_key()), "public_key": pa, "alg": "ed25519"}});
    assert_eq!(err(&lying.to_string()).code(), "BAD_ARMOR");
    let rsa = json!({"keys": [{"public_key": pa, "alg": "rsa"}]});
    assert_eq!(
        err(&rsa.to_string()),
        LicfileError::UnsupportedAlgorithm("rsa".into())
    );
    assert_eq!(
        err(&json!({"keys": [{"key_id": "x"}]}).to_string()).code(),
        "BAD_ARMOR"
    );
}

// ---------------------------------------------------------------- signed answers

#[test]
fn response_round_trip_and_header_shape() {
    let key = generate_signing_key();
    let ring = ring_of(&[&key]);
    let body = br#"{"valid":true,"code":"VALID","license":{"id":"l1"},"nonce":"abc","ts":"2025-01-01T00:00:00Z"}"#;
    let header = sign_response(&key, body);
    let prefix = format!(
        "keyid=\"{}\", alg=\"ed25519\", signature=\"",
        key_id(&key.verifying_key())
    );
    assert!(header.starts_with(&prefix), "{header}");
    assert!(header.ends_with('"'));
    let sig = STANDARD
        .decode(&header[prefix.len()..header.len() - 1])
        .unwrap();
    // A re-implementation: plain Ed25519 over the exact body bytes.
    key.verifying_key()
        .verify(body, &ed25519_dalek::Signature::from_slice(&sig).unwrap())
        .unwrap();
    assert_eq!(verify_response(&header, body, &ring), Ok(()));
    // Empty body is signable too.
    assert_eq!(
        verify_response(&sign_response(&key, b""), b"", &ring),
        Ok(())
    );
}

#[test]
fn response_any_one_byte_change_in_body_is_bad_signature() {
    let key = generate_signing_key();
    let ring = ring_of(&[&key]);
    let body = br#"{"valid":true,"code":"VALID","nonce":"n-123"}"#.to_vec();
    let header = sign_response(&key, &body);
    for pos in 0..body.len() {
        for flip in [0x01u8, 0x20, 0x80, 0xff] {
            let mut changed = body.clone();
            changed[pos] ^= flip;
            assert_eq!(
                verify_response(&header, &changed, &ring),
                Err(LicfileError::BadSignature)
            );
        }
    }
    let mut longer = body.clone();
    longer.push(b' ');
    assert_eq!(
        verify_response(&header, &longer, &ring),
        Err(LicfileError::BadSignature)
    );
    assert_eq!(
        verify_response(&header, &body[..body.len() - 1], &ring),
        Err(LicfileError::BadSignature)
    );
}

#[test]
fn response_from_another_key() {
    let ours = generate_signing_key();
    let theirs = generate_signing_key();
    let ring = ring_of(&[&ours]);
    let body = b"{\"valid\":true}";
    // Another account's key: its key id is unknown here.
    let header = sign_response(&theirs, body);
    assert_eq!(
        verify_response(&header, body, &ring),
        Err(LicfileError::UnknownKeyId(key_id(&theirs.verifying_key())))
    );
    // Same key id, different key: the signature does not verify.
    let sig = STANDARD.encode(theirs.sign(body).to_bytes());
    let forged = format!(
        "keyid=\"{}\", alg=\"ed25519\", signature=\"{sig}\"",
        key_id(&ours.verifying_key())
    );
    assert_eq!(
        verify_response(&forged, body, &ring),
        Err(LicfileError::BadSignature)
    );
}

#[test]
fn response_signature_tampering() {
    let key = generate_signing_key();
    let ring = ring_of(&[&key]);
    let body = b"{\"valid\":true}";
    let parsed = parse_signature_header(&sign_response(&key, body)).unwrap();
    let kid = &parsed.key_id;
    let mut sig = parsed.signature.clone();
    sig[10] ^= 1;
    let h = format!(
        "keyid=\"{kid}\", alg=\"ed25519\", signature=\"{}\"",
        STANDARD.encode(&sig)
    );
    assert_eq!(
        verify_response(&h, body, &ring),
        Err(LicfileError::BadSignature)
    );
    let h = format!(
        "keyid=\"{kid}\", alg=\"ed25519\", signature=\"{}\"",
        STANDARD.encode(&sig[..63])
    );
    assert_eq!(
        verify_response(&h, body, &ring).unwrap_err().code(),
        "BAD_HEADER"
    );
    let h = format!(
        "keyid=\"{kid}\", alg=\"rsa-sha256\", signature=\"{}\"",
        STANDARD.encode(&parsed.signature)
    );
    assert_eq!(
        verify_response(&h, body, &ring),
        Err(LicfileError::UnsupportedAlgorithm("rsa-sha256".into()))
    );
    assert_eq!(
        verify_response("", body, &ring).unwrap_err().code(),
        "BAD_HEADER"
    );
    // An empty key ring trusts nothing.
    assert_eq!(
        verify_response(&sign_response(&key, body), body, &KeyRing::new()),
        Err(LicfileError::UnknownKeyId(kid.clone()))
    );
}

#[test]
fn response_without_keyid_uses_the_only_key() {
    let key = generate_signing_key();
    let other = generate_signing_key();
    let body = b"{\"valid\":false,\"code\":\"EXPIRED\"}";
    let sig = STANDARD.encode(key.sign(body).to_bytes());
    let header = format!("alg=\"ed25519\", signature=\"{sig}\"");
    assert_eq!(verify_response(&header, body, &ring_of(&[&key])), Ok(()));
    assert_eq!(
        verify_response(&header, body, &ring_of(&[&other])),
        Err(LicfileError::BadSignature)
    );
    assert_eq!(
        verify_response(&header, body, &ring_of(&[&key, &other]))
            .unwrap_err()
            .code(),
        "UNKNOWN_KEY_ID"
    );
}

#[test]
fn header_parsing_variants() {
    let sig = [7u8; 64];
    let b64 = STANDARD.encode(sig);
    let want = ResponseSignature {
        key_id: "0123456789abcdef".into(),
        alg: "ed25519".into(),
        signature: sig.to_vec(),
    };
    let variants = [
        format!("keyid=\"0123456789abcdef\", alg=\"ed25519\", signature=\"{b64}\""),
        format!("signature=\"{b64}\",keyid=\"0123456789abcdef\",alg=\"ed25519\""),
        format!("  alg = \"ed25519\" ,\tkeyid=\"0123456789abcdef\" ,  signature=  \"{b64}\"  "),
        format!("keyid=0123456789abcdef, alg=ed25519, signature={b64}"),
        format!("KeyId=\"0123456789abcdef\", ALG=\"ed25519\", Signature=\"{b64}\""),
        format!(
            "keyid=\"0123456789abcdef\", created=\"1700000000\", alg=\"ed25519\", signature=\"{b64}\""
        ),
        format!("keyid=\"0123\\456789abcdef\", alg=\"ed25519\", signature=\"{b64}\""),
    ];
    for v in &variants {
        assert_eq!(parse_signature_header(v).as_ref(), Ok(&want), "{v}");
    }
    let no_kid = parse_signature_header(&format!("alg=\"ed25519\", signature=\"{b64}\"")).unwrap();
    assert_eq!(no_kid.key_id, "");
    assert_eq!(no_kid.signature, sig.to_vec());
}

#[test]
fn header_parsing_errors() {
    let b64 = STANDARD.encode([7u8; 64]);
    let bad = [
        String::new(),
        "   ".to_owned(),
        format!("keyid=\"k\", signature=\"{b64}\""),
        "keyid=\"k\", alg=\"ed25519\"".to_owned(),
        format!("alg=\"ed25519\", alg=\"ed25519\", signature=\"{b64}\""),
        "alg=\"ed25519\", signature=\"not base64!\"".to_owned(),
        format!("alg=\"ed25519\", signature=\"{b64}"),
        format!("alg=\"ed25519\" signature=\"{b64}\""),
        format!("alg \"ed25519\", signature=\"{b64}\""),
        format!("alg=\"ed25519\", signature=\"{b64}\","),
        format!("Bearer {b64}"),
        format!("alg=\"ed25519\"; signature=\"{b64}\""),
    ];
    for h in &bad {
        let err = parse_signature_header(h).unwrap_err();
        assert_eq!(err.code(), "BAD_HEADER", "{h:?} gave {err:?}");
    }
}

// ---------------------------------------------------------------- license files

#[test]
fn file_round_trip() {
    let key = generate_signing_key();
    let ring = ring_of(&[&key]);
    let p = payload(NOW + 86_400);
    let file = issue_file(&key, &p);
    let v = verify_file(&file, &ring, NOW, None).unwrap();
    assert_eq!(
        v,
        VerifiedFile {
            payload: p.clone(),
            key_id: key_id(&key.verifying_key()),
            issued_at: NOW - 60,
            valid_until: NOW + 86_400,
            fingerprint: None,
        }
    );
    // Issuing is deterministic (Ed25519 is).
    assert_eq!(issue_file(&key, &p), file);
    assert_eq!(
        parse_file(&file).unwrap(),
        (p, key_id(&key.verifying_key()))
    );
}

#[test]
fn file_layout_matches_the_documented_format() {
    let key = generate_signing_key();
    let p = payload(NOW + 86_400);
    let file = issue_file(&key, &p);
    let lines: Vec<&str> = file.split('\n').collect();
    assert_eq!(lines[0], "-----BEGIN KEYGATE LICENSE-----");
    assert_eq!(*lines.last().unwrap(), "-----END KEYGATE LICENSE-----");
    assert!(!file.ends_with('\n'));
    let body = &lines[1..lines.len() - 1];
    assert!(body.len() > 1);
    assert!(body[..body.len() - 1].iter().all(|l| l.len() == 64));
    assert!(!body.last().unwrap().is_empty() && body.last().unwrap().len() <= 64);

    // Re-implement verification with nothing but base64, JSON and Ed25519.
    let envelope = envelope_of(&file);
    let obj = envelope.as_object().unwrap();
    let mut names: Vec<&str> = obj.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["alg", "kid", "payload", "sig"]);
    assert_eq!(envelope["alg"], "ed25519");
    assert_eq!(envelope["kid"], key_id(&key.verifying_key()).as_str());
    assert_eq!(envelope["payload"], p);
    let sig = STANDARD.decode(envelope["sig"].as_str().unwrap()).unwrap();
    let canonical = canonical_bytes(&envelope["payload"]);
    assert!(
        canonical.starts_with(
            b"{\"issued_at\":1749999940,\"license\":{\"features\":[\"pro\",\"export\"],"
        )
    );
    key.verifying_key()
        .verify_strict(
            &canonical,
            &ed25519_dalek::Signature::from_slice(&sig).unwrap(),
        )
        .unwrap();
}

#[test]
fn file_armor_tolerates_crlf_whitespace_blank_lines_and_rewrapping() {
    let key = generate_signing_key();
    let ring = ring_of(&[&key]);
    let file = issue_file(&key, &payload(NOW + 10));
    let b64: String = file.lines().filter(|l| !l.starts_with("-----")).collect();
    let rewrapped: Vec<String> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let variants = [
        file.replace('\n', "\r\n"),
        format!("\n\n  {file}\n\n"),
        format!("{file}\r\n"),
        file.replace('\n', "\n\n"),
        file.replace('\n', "\n    "),
        format!(
            "-----BEGIN KEYGATE LICENSE-----\n{}\n-----END KEYGATE LICENSE-----\n",
            rewrapped.join("\n")
        ),
        format!("-----BEGIN KEYGATE LICENSE-----\n{b64}\n-----END KEYGATE LICENSE-----"),
        format!("\u{feff}{file}"),
    ];
    for v in &variants {
        assert!(verify_file(v, &ring, NOW, None).is_ok(), "{v:?}");
    }
}

#[test]
fn file_every_position_with_many_byte_changes_is_refused() {
    let key = generate_signing_key();
    let ring = ring_of(&[&key]);
    let mut p = payload(NOW + 86_400);
    p["fingerprint"] = json!("fp");
    let file = issue_file(&key, &p).into_bytes();
    let targets = [
        b' ', b'\t', b'\r', b'\n', b'=', b'+', b'/', b'A', b'a', b'0', b'-', b'"', 0u8, 0x7f,
    ];
    for at in 0..file.len() {
        let flips = (0..8).map(|bit| file[at] ^ (1 << bit)).chain(targets);
        for new in flips.filter(|b| *b != file[at]) {
            let mut changed = file.clone();
            changed[at] = new;
            let text = String::from_utf8_lossy(&changed);
            assert!(
                verify_file(&text, &ring, NOW, Some("fp")).is_err(),
                "byte {at} -> {new:#04x} accepted"
            );
        }
    }
}

#[test]
fn file_armor_errors() {
    let key = generate_signing_key();
    let ring = ring_of(&[&key]);
    let file = issue_file(&key, &payload(NOW + 10));
    let b64: String = file.lines().filter(|l| !l.starts_with("-----")).collect();
    let begin = "-----BEGIN KEYGATE LICENSE-----";
    let end = "-----END KEYGATE LICENSE-----";
    let bad = [
        String::new(),
        b64.clone(),
        format!("{begin}\n{b64}"),
        format!("{b64}\n{end}"),
        format!("Here is your license:\n{file}"),
        format!("{file}\nthanks"),
        format!("{file}\n{file}"),
        format!("{begin}\n{end}"),
        format!("{begin}\n{}\n{end}", &b64[..b64.len() - 1]),
        format!("{begin}\n{} {}\n{end}", &b64[..20], &b64[20..]),
        format!("{begin}\n{}\n# comment\n{}\n{end}", &b64[..64], &b64[64..]),
        format!("{begin}\n{}-\n{end}", b64),
        format!("-----BEGIN PGP MESSAGE-----\n{b64}\n{end}"),
        format!("{begin}\n{}\n{end}", STANDARD.encode(b"not json")),
        format!("{begin}\n{}\n{end}", STANDARD.encode(b"[1,2]")),
    ];
    for text in &bad {
        let err = verify_file(text, &ring, NOW, None).unwrap_err();
        assert_eq!(err.code(), "BAD_ARMOR", "{text:?} gave {err:?}");
        assert_eq!(
            parse_file(text).unwrap_err().code(),
            "BAD_ARMOR",
            "{text:?}"
        );
    }
}

#[test]
fn file_envelope_must_be_canonical_and_complete() {
    let key = generate_signing_key();
    let ring = ring_of(&[&key]);
    let file = issue_file(&key, &payload(NOW + 10));
    let envelope = envelope_of(&file);
    let rearmor_raw = |bytes: &[u8]| {
        format!(
            "-----BEGIN KEYGATE LICENSE-----\n{}\n-----END KEYGATE LICENSE-----",
            STANDARD.encode(bytes)
        )
    };

    // Same content, valid signature, but pretty-printed: refused (one spelling per file) ...
    let pretty = rearmor_raw(serde_json::to_string_pretty(&envelope).unwrap().as_bytes());
    assert_eq!(
        verify_file(&pretty, &ring, NOW, None).unwrap_err().code(),
        "BAD_ARMOR"
    );
    // ... though it still parses for display.
    assert_eq!(parse_file(&pretty).unwrap().0, envelope["payload"]);

    let mut extra = envelope.clone();
    extra["note"] = json!("hi");
    assert_eq!(
        verify_file(&armor(&extra), &ring, NOW, None)
            .unwrap_err()
            .code(),
        "BAD_ARMOR"
    );
    for member in ["alg", "sig", "payload"] {
        let mut missing = envelope.clone();
        missing.as_object_mut().unwrap().remove(member);
        assert_eq!(
            verify_file(&armor(&missing), &ring, NOW, None)
                .unwrap_err()
                .code(),
            "BAD_ARMOR",
            "{member}"
        );
    }
    let mut not_b64 = envelope.clone();
    not_b64["sig"] = json!("***");
    assert_eq!(
        verify_file(&armor(&not_b64), &ring, NOW, None)
            .unwrap_err()
            .code(),
        "BAD_ARMOR"
    );

    // Without kid, the only trusted key is used.
    let mut no_kid = envelope.clone();
    no_kid.as_object_mut().unwrap().remove("kid");
    let v = verify_file(&armor(&no_kid), &ring, NOW, None).unwrap();
    assert_eq!(v.key_id, key_id(&key.verifying_key()));
    let two = ring_of(&[&key, &generate_signing_key()]);
    assert_eq!(
        verify_file(&armor(&no_kid), &two, NOW, None)
            .unwrap_err()
            .code(),
        "UNKNOWN_KEY_ID"
    );
}

#[test]
fn file_with_other_algorithm_is_refused() {
    let key = generate_signing_key();
    let ring = ring_of(&[&key]);
    let mut envelope = envelope_of(&issue_file(&key, &payload(NOW + 10)));
    envelope["alg"] = json!("RS256");
    assert_eq!(
        verify_file(&armor(&envelope), &ring, NOW, None),
        Err(LicfileError::UnsupportedAlgorithm("RS256".into()))
    );
}

#[test]
fn file_with_edited_payload_is_bad_signature() {
    let key = generate_signing_key();
    let ring = ring_of(&[&key]);
    let mut envelope = envelope_of(&issue_file(&key, &payload(NOW + 10)));
    envelope["payload"]["valid_until"] = json!(NOW + 10 * 365 * 86_400);
    assert_eq!(
        verify_file(&armor(&envelope), &ring, NOW, None),
        Err(LicfileError::BadSignature)
    );
    let mut envelope = envelope_of(&issue_file(&key, &payload(NOW + 10)));
    envelope["payload"]["license"]["features"] = json!(["pro", "export", "enterprise"]);
    assert_eq!(
        verify_file(&armor(&envelope), &ring, NOW, None),
        Err(LicfileError::BadSignature)
    );
    let mut envelope = envelope_of(&issue_file(&key, &payload(NOW + 10)));
    envelope["sig"] = json!(STANDARD.encode([0u8; 64]));
    assert_eq!(
        verify_file(&armor(&envelope), &ring, NOW, None),
        Err(LicfileError::BadSignature)
    );
    envelope["sig"] = json!(STANDARD.encode([0u8; 32]));
    assert_eq!(
        verify_file(&armor(&envelope), &ring, NOW, None),
        Err(LicfileError::BadSignature)
    );
}

#[test]
fn file_past_valid_until_is_expired() {
    let key = generate_signing_key();
    let ring = ring_of(&[&key]);
    let valid_until = NOW + 3600;
    let file = issue_file(&key, &payload(valid_until));
    assert!(verify_file(&file, &ring, valid_until - 1, None).is_ok());
    let err = verify_file(&file, &ring, valid_until, None).unwrap_err();
    assert_eq!(err, LicfileError::Expired { valid_until });
    assert_eq!(err.code(), "EXPIRED");
    assert_eq!(
        verify_file(&file, &ring, valid_until + 86_400, None),
        Err(LicfileError::Expired { valid_until })
    );
    // Display/debugging still works on an expired file.
    assert_eq!(parse_file(&file).unwrap().0["valid_until"], valid_until);
}

#[test]
fn file_issued_in_the_future_is_not_yet_valid() {
    let key = generate_signing_key();
    let ring = ring_of(&[&key]);
    let mut p = payload(NOW + 86_400);
    p["issued_at"] = json!(NOW + 300);
    assert!(verify_file(&issue_file(&key, &p), &ring, NOW, None).is_ok());
    p["issued_at"] = json!(NOW + 301);
    assert_eq!(
        verify_file(&issue_file(&key, &p), &ring, NOW, None),
        Err(LicfileError::NotYetValid {
            issued_at: NOW + 301
        })
    );
}

#[test]
fn file_from_another_account_is_unknown_key_id() {
    let ours = generate_signing_key();
    let theirs = generate_signing_key();
    let file = issue_file(&theirs, &payload(NOW + 10));
    assert_eq!(
        verify_file(&file, &ring_of(&[&ours]), NOW, None),
        Err(LicfileError::UnknownKeyId(key_id(&theirs.verifying_key())))
    );
    assert_eq!(
        verify_file(&file, &KeyRing::new(), NOW, None)
            .unwrap_err()
            .code(),
        "UNKNOWN_KEY_ID"
    );
}

#[test]
fn file_with_our_kid_but_another_key_is_bad_signature() {
    let ours = generate_signing_key();
    let theirs = generate_signing_key();
    let file = file_signed_by_with_kid(&theirs, &key_id(&ours.verifying_key()), &payload(NOW + 10));
    assert_eq!(
        verify_file(&file, &ring_of(&[&ours]), NOW, None),
        Err(LicfileError::BadSignature)
    );
    // The helper itself builds valid files when signer and kid agree.
    let good = file_signed_by_with_kid(&ours, &key_id(&ours.verifying_key()), &payload(NOW + 10));
    assert!(verify_file(&good, &ring_of(&[&ours]), NOW, None).is_ok());
}

#[test]
fn rotation_keeps_old_files_valid() {
    let old = generate_signing_key();
    let new = generate_signing_key();
    let old_file = issue_file(&old, &payload(NOW + 86_400));
    let new_file = issue_file(&new, &payload(NOW + 86_400));

    // The public-key document after a rotation lists both keys.
    let entry = |k: &SigningKey| json!({"key_id": key_id(&k.verifying_key()), "public_key": encode_public_key(&k.verifying_key()), "alg": "ed25519"});
    let doc =
        json!({"account_id": "acc", "current": entry(&new), "keys": [entry(&old), entry(&new)]});
    let ring = KeyRing::from_public_key_document(&doc.to_string()).unwrap();

    assert_eq!(
        verify_file(&old_file, &ring, NOW, None).unwrap().key_id,
        key_id(&old.verifying_key())
    );
    assert_eq!(
        verify_file(&new_file, &ring, NOW, None).unwrap().key_id,
        key_id(&new.verifying_key())
    );
    let body = b"{\"valid\":true}";
    assert_eq!(
        verify_response(&sign_response(&old, body), body, &ring),
        Ok(())
    );
    assert_eq!(
        verify_response(&sign_response(&new, body), body, &ring),
        Ok(())
    );

    // A ring with only the new key refuses the old file by key id.
    let only_new = ring_of(&[&new]);
    assert_eq!(
        verify_file(&old_file, &only_new, NOW, None)
            .unwrap_err()
            .code(),
        "UNKNOWN_KEY_ID"
    );
    assert!(verify_file(&new_file, &only_new, NOW, None).is_ok());
}

#[test]
fn file_fingerprint_binding() {
    let key = generate_signing_key();
    let ring = ring_of(&[&key]);
    let mut p = payload(NOW + 86_400);
    p["fingerprint"] = json!("fp-machine-1");
    let file = issue_file(&key, &p);

    let ok = verify_file(&file, &ring, NOW, Some("fp-machine-1")).unwrap();
    assert_eq!(ok.fingerprint.as_deref(), Some("fp-machine-1"));
    assert_eq!(
        verify_file(&file, &ring, NOW, Some("fp-machine-2")),
        Err(LicfileError::FingerprintMismatch {
            expected: "fp-machine-1".into(),
            actual: Some("fp-machine-2".into())
        })
    );
    assert_eq!(
        verify_file(&file, &ring, NOW, None),
        Err(LicfileError::FingerprintMismatch {
            expected: "fp-machine-1".into(),
            actual: None
        })
    );
    assert_eq!(
        verify_file(&file, &ring, NOW, Some("FP-MACHINE-1"))
            .unwrap_err()
            .code(),
        "FINGERPRINT_MISMATCH"
    );

    // Unbound files (absent or null fingerprint) are valid on any machine.
    let unbound = issue_file(&key, &payload(NOW + 86_400));
    assert_eq!(
        verify_file(&unbound, &ring, NOW, Some("anything"))
            .unwrap()
            .fingerprint,
        None
    );
    p["fingerprint"] = Value::Null;
    let null_bound = issue_file(&key, &p);
    assert_eq!(
        verify_file(&null_bound, &ring, NOW, Some("anything"))
            .unwrap()
            .fingerprint,
        None
    );
    assert!(verify_file(&null_bound, &ring, NOW, None).is_ok());

    // Expiry is reported before a fingerprint mismatch.
    let mut p = payload(NOW - 1);
    p["fingerprint"] = json!("fp-machine-1");
    assert_eq!(
        verify_file(&issue_file(&key, &p), &ring, NOW, Some("other")),
        Err(LicfileError::Expired {
            valid_until: NOW - 1
        })
    );
}

#[test]
fn file_payload_must_have_integer_times() {
    let key = generate_signing_key();
    let ring = ring_of(&[&key]);
    let cases = [
        json!({"valid_until": NOW + 10}),
        json!({"issued_at": NOW}),
        json!({"issued_at": "2025-01-01T00:00:00Z", "valid_until": NOW + 10}),
        json!({"issued_at": NOW, "valid_until": (NOW + 10) as f64 + 0.5}),
        json!({"issued_at": NOW, "valid_until": u64::MAX}),
        json!({"issued_at": NOW, "valid_until": NOW + 10, "fingerprint": 42}),
        json!([NOW, NOW + 10]),
        json!("payload"),
    ];
    for p in &cases {
        let err = verify_file(&issue_file(&key, p), &ring, NOW, None).unwrap_err();
        assert_eq!(err.code(), "BAD_PAYLOAD", "{p} gave {err:?}");
    }
}

#[test]
fn payload_with_floats_and_unicode_round_trips() {
    let key = generate_signing_key();
    let ring = ring_of(&[&key]);
    let p = json!({
        "issued_at": NOW, "valid_until": NOW + 10,
        "metadata": {"ratio": 0.1, "big": 1e300, "tiny": 5e-324, "whole": 3.0, "neg": -2.5,
                     "name": "Zoë – \"quoted\" \\ \u{0001}\u{1F600}", "\u{20ac}": true, "\r": null}
    });
    let v = verify_file(&issue_file(&key, &p), &ring, NOW, None).unwrap();
    assert_eq!(canonical_bytes(&v.payload), canonical_bytes(&p));
    assert_eq!(v.payload["metadata"]["ratio"], 0.1);
    assert_eq!(v.payload["metadata"]["tiny"], 5e-324);
}

#[test]
fn canonical_bytes_sorts_keys_and_drops_whitespace() {
    let v: Value =
        serde_json::from_str("{ \"b\" : [1, 2, {\"d\": 1, \"c\": \"x\"}], \"a\" : true }").unwrap();
    assert_eq!(
        canonical_bytes(&v),
        br#"{"a":true,"b":[1,2,{"c":"x","d":1}]}"#.to_vec()
    );
}

#[test]
fn error_codes_are_stable() {
    let cases = [
        (LicfileError::BadArmor(String::new()), "BAD_ARMOR"),
        (
            LicfileError::UnsupportedAlgorithm(String::new()),
            "UNSUPPORTED_ALGORITHM",
        ),
        (LicfileError::UnknownKeyId(String::new()), "UNKNOWN_KEY_ID"),
        (LicfileError::BadSignature, "BAD_SIGNATURE"),
        (LicfileError::Expired { valid_until: 1 }, "EXPIRED"),
        (LicfileError::NotYetValid { issued_at: 1 }, "NOT_YET_VALID"),
        (
            LicfileError::FingerprintMismatch {
                expected: String::new(),
                actual: None,
            },
            "FINGERPRINT_MISMATCH",
        ),
        (LicfileError::BadHeader(String::new()), "BAD_HEADER"),
        (LicfileError::BadPayload(String::new()), "BAD_PAYLOAD"),
    ];
    for (err, code) in cases {
        assert_eq!(err.code(), code);
        assert!(!err.to_string().is_empty());
    }
    assert_eq!(
        LicfileError::Expired {
            valid_until: 1_700_000_000
        }
        .to_string(),
        "license file expired (valid until 1700000000)"
    );
}
