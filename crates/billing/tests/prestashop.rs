//! PrestaShop: the deliveries Keygate's PrestaShop module produced (its `EventBuilder` and
//! `Signer`, run by `integrations/prestashop/keygate/tests/generate-fixtures.php`) verify and
//! parse here, with the Standard Webhooks official vector among them; the refusals; the body
//! shape documented in `src/providers/prestashop.rs`.

mod common;

use common::*;
use keygate_billing::providers::prestashop::PrestaShop;
use keygate_billing::scheme::standard_webhooks;
use keygate_billing::{BillingEvent, BillingEventKind as Kind, Headers, Provider, Request};
use keygate_domain::billing::Reversal;
use serde_json::Value;

/// The module's fixture secret (integrations/prestashop/keygate/tests/unit/Fixtures.php).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

#[derive(Clone)]
struct Vector {
    name: String,
    secrets: Vec<String>,
    id: String,
    signature: String,
    headers: Headers,
    body: Vec<u8>,
    timestamp: i64,
}

/// `module_signatures.json`: each delivery as the module signed it.
fn vectors() -> Vec<Vector> {
    let all: Vec<Value> =
        serde_json::from_slice(&fixture("prestashop", "module_signatures.json")).unwrap();
    all.into_iter()
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap().to_string();
            Vector {
                name: s("name"),
                secrets: v["secrets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_string())
                    .collect(),
                headers: Headers::new()
                    .with("webhook-id", s("webhook-id"))
                    .with("webhook-timestamp", s("webhook-timestamp"))
                    .with("webhook-signature", s("webhook-signature")),
                id: s("webhook-id"),
                signature: s("webhook-signature"),
                body: s("body").into_bytes(),
                timestamp: s("webhook-timestamp").parse().unwrap(),
            }
        })
        .collect()
}

fn verify(v: &Vector, secrets: &[&str], now: i64) -> Result<(), keygate_billing::BillingError> {
    PrestaShop.verify(
        &Request::post(&v.headers, &v.body),
        &common::secrets(secrets),
        secs(now),
    )
}

fn parse(body: &[u8]) -> BillingEvent {
    let mut events = PrestaShop
        .parse(&Request::post(&Headers::new(), body))
        .unwrap();
    assert_eq!(events.len(), 1);
    events.remove(0)
}

fn vector(name: &str) -> Vector {
    vectors().into_iter().find(|v| v.name == name).unwrap()
}

/// Every signature the PHP module produced verifies with Keygate's verifier, and Keygate's
/// signer produces the same bytes: one implementation of the scheme on each side, agreeing.
#[test]
fn signatures_the_module_produced_verify() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 9);
    assert_eq!(vectors[0].name, "standard webhooks official vector");
    assert_eq!(
        vectors[0].signature,
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
    );
    for v in &vectors {
        let secrets: Vec<&str> = v.secrets.iter().map(String::as_str).collect();
        verify(v, &secrets, v.timestamp).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        let id = &v.id;
        let ours: Vec<String> = secrets
            .iter()
            .map(|s| {
                standard_webhooks::sign(
                    &standard_webhooks::secret_key(s).unwrap(),
                    id,
                    v.timestamp,
                    &v.body,
                )
            })
            .collect();
        assert_eq!(v.signature, ours.join(" "), "{}", v.name);
        // One changed byte, and it no longer verifies.
        let mut tampered = v.clone();
        let last = tampered.body.len() - 2;
        tampered.body[last] ^= 0x01;
        assert_eq!(
            refused(verify(&tampered, &secrets, v.timestamp)),
            "SIGNATURE_INVALID",
            "{}",
            v.name
        );
    }
}

#[test]
fn rotation_either_secret_verifies() {
    let v = vector("rotation: new and old secret");
    assert_eq!(v.signature.split(' ').count(), 2);
    verify(&v, &[SECRET], v.timestamp).unwrap();
    verify(&v, &[OLD_SECRET], v.timestamp).unwrap();
    let other = "whsec_a2V5Z2F0ZS1wcmVzdGFzaG9wLW1vZHVsZS10ZXN0LWtleQ==";
    assert_eq!(
        refused(verify(&v, &[other], v.timestamp)),
        "SIGNATURE_INVALID"
    );
}

#[test]
fn refusals() {
    let v = vector("status_changed.paid.json");
    let ts = v.timestamp;
    verify(&v, &[SECRET], ts + 300).unwrap();
    verify(&v, &[SECRET], ts - 300).unwrap();
    assert_eq!(
        refused(verify(&v, &[SECRET], ts + 301)),
        "TIMESTAMP_OUT_OF_TOLERANCE"
    );
    assert_eq!(
        refused(verify(&v, &[SECRET], ts - 301)),
        "TIMESTAMP_OUT_OF_TOLERANCE"
    );
    assert_eq!(refused(verify(&v, &[], ts)), "SECRET_NOT_CONFIGURED");
    assert_eq!(
        refused(verify(&v, &["not-a-whsec"], ts)),
        "SECRET_NOT_CONFIGURED"
    );
    let ts_text = ts.to_string();
    let all = [
        ("webhook-id", v.id.as_str()),
        ("webhook-timestamp", ts_text.as_str()),
        ("webhook-signature", v.signature.as_str()),
    ];
    for (missing, _) in all {
        let mut headers = Headers::new();
        for (name, value) in all {
            if name != missing {
                headers = headers.with(name, value);
            }
        }
        let request = Request::post(&headers, &v.body);
        let err = PrestaShop
            .verify(&request, &secrets(&[SECRET]), secs(ts))
            .unwrap_err();
        assert_eq!(err.code().as_str(), "SIGNATURE_MISSING", "{missing}");
    }
    // The id is signed: the same signature under another id does not verify.
    let moved = Headers::new()
        .with("webhook-id", "evt_other")
        .with("webhook-timestamp", ts.to_string())
        .with("webhook-signature", v.signature.as_str());
    let err = PrestaShop
        .verify(
            &Request::post(&moved, &v.body),
            &secrets(&[SECRET]),
            secs(ts),
        )
        .unwrap_err();
    assert_eq!(err.code().as_str(), "SIGNATURE_INVALID");
}

#[test]
fn check_config_wants_whsec_keys_of_24_bytes() {
    let now = secs(1_800_000_000);
    PrestaShop.check_config(&secrets(&[SECRET]), now).unwrap();
    PrestaShop
        .check_config(&secrets(&[SECRET, OLD_SECRET]), now)
        .unwrap();
    assert_eq!(
        PrestaShop
            .check_config(&secrets(&[]), now)
            .unwrap_err()
            .code()
            .as_str(),
        "SECRET_NOT_CONFIGURED"
    );
    // 23 bytes; not base64; no prefix but too short.
    for bad in [
        "whsec_MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM=",
        "whsec_***",
        "c2hvcnQ=",
    ] {
        let err = PrestaShop
            .check_config(&secrets(&[SECRET, bad]), now)
            .unwrap_err();
        assert_eq!(err.code().as_str(), "SECRET_INVALID", "{bad}");
        assert!(err.to_string().contains("secret #2"), "{err}");
        assert!(
            !err.to_string().contains(bad),
            "the text never holds a secret"
        );
    }
}

/// The pretty fixtures are the same events as the signed bodies (both written by the module).
#[test]
fn fixtures_are_the_signed_bodies() {
    let names = fixture_names("prestashop", &["module_signatures.json"]);
    assert_eq!(names.len(), 7);
    for name in names {
        let fixture: Value = serde_json::from_slice(&fixture("prestashop", &name)).unwrap();
        let signed: Value = serde_json::from_slice(&vector(&name).body).unwrap();
        assert_eq!(fixture, signed, "{name}");
    }
}

fn lines(event: &BillingEvent) -> Vec<(String, i64)> {
    event
        .order
        .as_ref()
        .map(|o| {
            o.lines
                .iter()
                .map(|l| (l.external_id.clone(), l.quantity))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn paid_states_are_orders_paid_with_every_line() {
    for name in ["status_changed.paid.json", "status_changed.shipped.json"] {
        let event = parse(&fixture("prestashop", name));
        check(
            name,
            &event,
            Kind::OrderPaid,
            Expect {
                order_id: Some("42"),
                customer_id: Some("7"),
                email: Some("ada@example.com"),
                ..Expect::default()
            },
        );
        assert_eq!(event.occurred_at, rfc("2026-03-01T10:00:00Z"));
        assert_eq!(
            lines(&event),
            [("3".to_string(), 2), ("5:9".to_string(), 1)],
            "{name}"
        );
        assert_eq!(
            event.customer.as_ref().unwrap().name.as_deref(),
            Some("Ada Lovelace")
        );
    }
    let paid = parse(&fixture("prestashop", "status_changed.paid.json"));
    assert_eq!(paid.event_id, "evt_test_1");
    assert_eq!(paid.event_type, "order.status_changed");
    assert_eq!(paid.reversal, None);
    // Each line carries its order detail id and the ids a mapping may name, most specific
    // first: the combination, the product, the reference.
    let order = paid.order.as_ref().unwrap();
    let ids: Vec<(Option<&str>, Vec<&str>)> = order
        .lines
        .iter()
        .map(|l| (l.line_id.as_deref(), l.candidate_ids().collect()))
        .collect();
    assert_eq!(
        ids,
        [
            (Some("11"), vec!["3", "PHOTO-PRO"]),
            (Some("12"), vec!["5:9", "5", "MUG-RED"])
        ]
    );
    assert_eq!(order.lines[1].product_external_id.as_deref(), Some("5"));
}

#[test]
fn refunded_and_canceled_states_refund_the_whole_order() {
    for name in [
        "status_changed.refunded.json",
        "status_changed.canceled.json",
    ] {
        let event = parse(&fixture("prestashop", name));
        check(
            name,
            &event,
            Kind::Refunded,
            Expect {
                order_id: Some("42"),
                customer_id: Some("7"),
                ..Expect::default()
            },
        );
        assert_eq!(event.reversal, Some(Reversal::FullRefund), "{name}");
        assert!(lines(&event).is_empty(), "{name}: the whole order");
    }
}

#[test]
fn a_credit_slip_refunds_its_lines() {
    let event = parse(&fixture("prestashop", "credit_slip_added.json"));
    check(
        "credit_slip_added.json",
        &event,
        Kind::Refunded,
        Expect {
            event_id: Some("slip_5"),
            order_id: Some("42"),
            customer_id: Some("7"),
            ..Expect::default()
        },
    );
    assert_eq!(event.reversal, Some(Reversal::PartialRefund));
    assert_eq!(lines(&event), [("3".to_string(), 1)]);
    let line = &event.order.as_ref().unwrap().lines[0];
    assert_eq!(
        line.line_id.as_deref(),
        Some("11"),
        "the slip names the order detail"
    );
}

#[test]
fn other_states_and_types_are_ignored() {
    for name in [
        "status_changed.awaiting_payment.json",
        "status_changed.payment_error.json",
    ] {
        let event = parse(&fixture("prestashop", name));
        assert_eq!(event.kind, Kind::Ignored, "{name}");
        assert!(event.order.is_none(), "{name}");
    }
    let unknown = br#"{"id":"evt_1","type":"customer.created","created_at":"2026-03-01T10:00:00Z","data":{}}"#;
    assert_eq!(parse(unknown).kind, Kind::Ignored);
    // A slip of shipping only names no line: nothing to revoke.
    let mut slip: Value =
        serde_json::from_slice(&fixture("prestashop", "credit_slip_added.json")).unwrap();
    slip["data"]["credit_slip"]["lines"] = Value::Array(Vec::new());
    assert_eq!(parse(slip.to_string().as_bytes()).kind, Kind::Ignored);
}

#[test]
fn malformed_bodies_are_refused_with_a_code() {
    let bad: [&[u8]; 4] = [
        b"not json",
        b"[1]",
        br#"{"id":"evt_1","created_at":"2026-03-01T10:00:00Z"}"#,
        br#"{"id":"evt_1","type":"order.status_changed","created_at":"2026-03-01T10:00:00Z","data":{"order":{"state":{"paid":true,"role":"paid"}}}}"#,
    ];
    for body in bad {
        let err = PrestaShop
            .parse(&Request::post(&Headers::new(), body))
            .unwrap_err();
        assert_eq!(err.code().as_str(), "MALFORMED_PAYLOAD");
    }
    // Without created_at, the webhook timestamp is the time; without id, the webhook id.
    let headers = Headers::new()
        .with("webhook-id", "evt_h")
        .with("webhook-timestamp", "1772359200");
    let body = br#"{"type":"order.status_changed","data":{"order":{"id":9,"state":{"paid":true,"role":"paid"},"lines":[]}}}"#;
    let event = PrestaShop
        .parse(&Request::post(&headers, body))
        .unwrap()
        .remove(0);
    assert_eq!(event.event_id, "evt_h");
    assert_eq!(event.occurred_at, secs(1_772_359_200));
    assert_eq!(event.kind, Kind::OrderPaid);
}
