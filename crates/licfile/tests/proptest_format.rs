//! Property tests on the file format and signed answers: round trips, and any one-byte change refused.

use std::sync::LazyLock;

use keygate_licfile::*;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Number, Value};

const NOW: i64 = 1_750_000_000;

static KEY: LazyLock<SigningKey> = LazyLock::new(generate_signing_key);
static RING: LazyLock<KeyRing> = LazyLock::new(|| [KEY.verifying_key()].into_iter().collect());

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter_map("finite", Number::from_f64)
            .prop_map(Value::Number),
        any::<String>().prop_map(Value::String),
        "[a-zA-Z0-9 _\\-\"\\\\/\u{0}-\u{1f}é€😀]{0,24}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A license payload: random members plus valid times and an optional fingerprint.
fn payload() -> impl Strategy<Value = (Value, Option<String>)> {
    (
        prop::collection::btree_map("[a-z_]{1,12}", json_value(), 0..6),
        prop::option::of("[a-f0-9]{8,64}"),
        -86_400i64..=300,
        1i64..=10 * 365 * 86_400,
    )
        .prop_map(|(members, fingerprint, issued_offset, ttl)| {
            let mut map: Map<String, Value> = members.into_iter().collect();
            map.insert("issued_at".into(), (NOW + issued_offset).into());
            map.insert("valid_until".into(), (NOW + ttl).into());
            match &fingerprint {
                Some(f) => map.insert("fingerprint".into(), f.clone().into()),
                None => map.remove("fingerprint"),
            };
            (Value::Object(map), fingerprint)
        })
}

proptest! {
    #[test]
    fn canonical_form_is_stable(value in json_value()) {
        let once = canonical_bytes(&value);
        let reparsed: Value = serde_json::from_slice(&once).expect("canonical bytes are JSON");
        prop_assert_eq!(canonical_bytes(&reparsed), once.clone());
        prop_assert!(!once.contains(&b'\n'));
    }

    #[test]
    fn file_round_trip((payload, fingerprint) in payload()) {
        let file = issue_file(&KEY, &payload);
        let verified = verify_file(&file, &RING, NOW, fingerprint.as_deref()).expect("fresh file verifies");
        prop_assert_eq!(canonical_bytes(&verified.payload), canonical_bytes(&payload));
        prop_assert_eq!(verified.issued_at, payload["issued_at"].as_i64().unwrap());
        prop_assert_eq!(verified.valid_until, payload["valid_until"].as_i64().unwrap());
        prop_assert_eq!(&verified.fingerprint, &fingerprint);
        prop_assert_eq!(verified.key_id, key_id(&KEY.verifying_key()));
        let (parsed, kid) = parse_file(&file).expect("parses");
        prop_assert_eq!(canonical_bytes(&parsed), canonical_bytes(&payload));
        prop_assert_eq!(kid, key_id(&KEY.verifying_key()));
    }

    #[test]
    fn file_any_one_byte_change_is_refused(
        (payload, fingerprint) in payload(),
        position in any::<Index>(),
        flip in 1u8..=255,
    ) {
        let file = issue_file(&KEY, &payload);
        prop_assert!(verify_file(&file, &RING, NOW, fingerprint.as_deref()).is_ok());
        let mut bytes = file.into_bytes();
        let at = position.index(bytes.len());
        bytes[at] ^= flip;
        // A change that breaks UTF-8 cannot even be passed as &str; test its lossy reading anyway.
        let changed = String::from_utf8_lossy(&bytes);
        let result = verify_file(&changed, &RING, NOW, fingerprint.as_deref());
        prop_assert!(result.is_err(), "byte {} ^ {:#04x} accepted: {:?}", at, flip, result);
    }

    #[test]
    fn file_is_refused_by_another_account(payload in payload().prop_map(|p| p.0)) {
        let other = generate_signing_key();
        let file = issue_file(&other, &payload);
        prop_assert_eq!(
            verify_file(&file, &RING, NOW, None),
            Err(LicfileError::UnknownKeyId(key_id(&other.verifying_key())))
        );
    }

    #[test]
    fn response_round_trip_and_any_body_change_is_bad_signature(
        body in prop::collection::vec(any::<u8>(), 1..512),
        position in any::<Index>(),
        flip in 1u8..=255,
    ) {
        let header = sign_response(&KEY, &body);
        prop_assert_eq!(verify_response(&header, &body, &RING), Ok(()));
        let mut changed = body.clone();
        changed[position.index(body.len())] ^= flip;
        prop_assert_eq!(verify_response(&header, &changed, &RING), Err(LicfileError::BadSignature));
    }

    #[test]
    fn response_any_change_in_signature_value_is_refused(
        body in prop::collection::vec(any::<u8>(), 0..256),
        position in any::<Index>(),
        flip in 1u8..=255,
    ) {
        let header = sign_response(&KEY, &body);
        let start = header.find("signature=\"").unwrap() + "signature=\"".len();
        let end = header.len() - 1;
        let mut bytes = header.into_bytes();
        bytes[start + position.index(end - start)] ^= flip;
        let changed = String::from_utf8_lossy(&bytes);
        prop_assert!(verify_response(&changed, &body, &RING).is_err());
    }
}
