//! Generic (Standard Webhooks + Keygate's normalized event): the official vector, the
//! refusals, and the body shape documented in `src/providers/generic.rs`.

mod common;

use common::*;
use keygate_billing::{BillingEventKind as Kind, Headers, SubscriptionStatus as Status};

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const TS: i64 = 1_767_225_600;

fn generic() -> Platform {
    Platform::named("generic")
}

/// Standard Webhooks signing: base64 HMAC-SHA256 over `{id}.{ts}.{body}` keyed with the
/// base64-decoded secret after `whsec_`.
fn signature(secret: &str, id: &str, ts: i64, body: &[u8]) -> String {
    let key = keygate_billing::standard_webhooks::secret_key(secret).unwrap();
    keygate_billing::standard_webhooks::sign(&key, id, ts, body)
}

fn headers(id: &str, ts: i64, signature: String) -> Headers {
    Headers::new()
        .with("webhook-id", id)
        .with("webhook-timestamp", ts.to_string())
        .with("webhook-signature", signature)
}

#[test]
fn official_vector() {
    let body = br#"{"email":"test@example.com","username":"test_user"}"#;
    let id = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    let ts = 1_649_367_553;
    let expected = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
    assert_eq!(signature(SECRET, id, ts, body), expected);
    generic()
        .verify(
            &headers(id, ts, expected.into()),
            body,
            &secrets(&[SECRET]),
            secs(ts),
        )
        .unwrap();
    // Several signatures, other versions ignored, any v1 may match.
    let several = format!("v1,Zm9v v1a,c2lnbmF0dXJl {expected}");
    generic()
        .verify(
            &headers(id, ts, several),
            body,
            &secrets(&[SECRET]),
            secs(ts),
        )
        .unwrap();
    // Header names in any case.
    let upper = Headers::new()
        .with("Webhook-Id", id)
        .with("WEBHOOK-TIMESTAMP", ts.to_string())
        .with("Webhook-Signature", expected);
    generic()
        .verify(&upper, body, &secrets(&[SECRET]), secs(ts))
        .unwrap();
}

#[test]
fn refusals() {
    let body = fixture("generic", "order_paid.json");
    let s = secrets(&[SECRET]);
    let good = || headers("msg_1", TS, signature(SECRET, "msg_1", TS, &body));
    generic().verify(&good(), &body, &s, secs(TS)).unwrap();

    let mut tampered = body.clone();
    tampered[12] ^= 1;
    assert_eq!(
        refused(generic().verify(&good(), &tampered, &s, secs(TS))),
        "SIGNATURE_INVALID"
    );
    let other = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    assert_eq!(
        refused(generic().verify(&good(), &body, &secrets(&[other]), secs(TS))),
        "SIGNATURE_INVALID"
    );
    // The id and timestamp are signed too.
    let moved_id = headers("msg_2", TS, signature(SECRET, "msg_1", TS, &body));
    assert_eq!(
        refused(generic().verify(&moved_id, &body, &s, secs(TS))),
        "SIGNATURE_INVALID"
    );
    // ±300 s.
    generic()
        .verify(&good(), &body, &s, secs(TS + 300))
        .unwrap();
    generic()
        .verify(&good(), &body, &s, secs(TS - 300))
        .unwrap();
    for now in [TS + 301, TS - 301] {
        assert_eq!(
            refused(generic().verify(&good(), &body, &s, secs(now))),
            "TIMESTAMP_OUT_OF_TOLERANCE"
        );
    }
    // Each header missing.
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let partial: Headers = [
            ("webhook-id", "msg_1".to_string()),
            ("webhook-timestamp", TS.to_string()),
            ("webhook-signature", signature(SECRET, "msg_1", TS, &body)),
        ]
        .into_iter()
        .filter(|(name, _)| *name != missing)
        .collect();
        assert_eq!(
            refused(generic().verify(&partial, &body, &s, secs(TS))),
            "SIGNATURE_MISSING",
            "{missing}"
        );
    }
    let no_v1 = headers("msg_1", TS, "v1a,AAAA".into());
    assert_eq!(
        refused(generic().verify(&no_v1, &body, &s, secs(TS))),
        "SIGNATURE_INVALID"
    );
    let bad_ts = Headers::new()
        .with("webhook-id", "msg_1")
        .with("webhook-timestamp", "yesterday")
        .with("webhook-signature", signature(SECRET, "msg_1", TS, &body));
    assert_eq!(
        refused(generic().verify(&bad_ts, &body, &s, secs(TS))),
        "SIGNATURE_INVALID"
    );
    // No secret, or none that is a key.
    assert_eq!(
        refused(generic().verify(&good(), &body, &secrets(&[]), secs(TS))),
        "SECRET_NOT_CONFIGURED"
    );
    assert_eq!(
        refused(generic().verify(&good(), &body, &secrets(&["whsec_***"]), secs(TS))),
        "SECRET_NOT_CONFIGURED"
    );
}

#[test]
fn rotation_accepts_old_and_new_secret_only() {
    let body = fixture("generic", "subscription_activated.json");
    let old = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let new = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let third = "whsec_dGhpcmQgc2VjcmV0IGtleSBmb3IgdGVzdHM=";
    let both = secrets(&[old, new]);
    for secret in [old, new] {
        let h = headers("msg_r", TS, signature(secret, "msg_r", TS, &body));
        generic().verify(&h, &body, &both, secs(TS)).unwrap();
    }
    let h = headers("msg_r", TS, signature(third, "msg_r", TS, &body));
    assert_eq!(
        refused(generic().verify(&h, &body, &both, secs(TS))),
        "SIGNATURE_INVALID"
    );
    // A sender rotating its key sends both signatures.
    let h = headers(
        "msg_r",
        TS,
        format!(
            "{} {}",
            signature(third, "msg_r", TS, &body),
            signature(new, "msg_r", TS, &body)
        ),
    );
    generic()
        .verify(&h, &body, &secrets(&[new]), secs(TS))
        .unwrap();
}

fn parse(name: &str) -> keygate_billing::BillingEvent {
    let h = Headers::new()
        .with("webhook-id", "msg_header_id")
        .with("webhook-timestamp", TS.to_string());
    parse_one("generic", name, &h)
}

#[test]
fn body_is_the_normalized_event() {
    let order = parse("order_paid.json");
    check(
        "order",
        &order,
        Kind::OrderPaid,
        Expect {
            event_id: Some("shop-1001-paid"),
            order_id: Some("shop-1001"),
            items: Some(vec![("pro-lifetime", 2), ("support-addon", 1)]),
            customer_id: Some("shop-cust-42"),
            email: Some("ann@example.com"),
            ..Expect::default()
        },
    );
    assert_eq!(order.event_type, "order.paid");
    assert_eq!(order.occurred_at, rfc("2026-01-05T12:00:00Z"));

    let sub = parse("subscription_activated.json");
    check(
        "subscription",
        &sub,
        Kind::SubscriptionActivated,
        Expect {
            subscription_id: Some("crm-sub-7"),
            status: Some(Status::Active),
            period_end: Some(rfc("2027-01-01T00:00:00Z")),
            items: Some(vec![("team-yearly", 25)]),
            partial: Some(false),
            ..Expect::default()
        },
    );
    assert!(!sub.livemode);
    assert_eq!(sub.ordering_version, Some(3));

    // Defaults: the id from webhook-id, the type from the kind, the time from the timestamp.
    let minimal = parse("subscription_renewed.minimal.json");
    check(
        "minimal",
        &minimal,
        Kind::SubscriptionRenewed,
        Expect {
            event_id: Some("msg_header_id"),
            subscription_id: Some("crm-sub-7"),
            period_end: Some(rfc("2028-01-01T00:00:00Z")),
            partial: Some(true),
            ..Expect::default()
        },
    );
    assert_eq!(minimal.event_type, "subscription_renewed");
    assert_eq!(minimal.occurred_at, secs(TS));
    assert!(minimal.livemode);

    let refund = parse("refunded.json");
    check(
        "refund",
        &refund,
        Kind::Refunded,
        Expect {
            order_id: Some("shop-1001"),
            ..Expect::default()
        },
    );
    assert_eq!(refund.occurred_at, rfc("2026-01-09T07:30:00Z"));

    let unknown = parse("unknown_kind.json");
    check(
        "unknown",
        &unknown,
        Kind::Ignored,
        Expect {
            event_id: Some("crm-note-1"),
            email: Some("buyer@example.com"),
            ..Expect::default()
        },
    );
    assert_eq!(unknown.event_type, "note_added");
}

#[test]
fn a_parsed_event_serializes_back_to_an_accepted_body() {
    for name in fixture_names("generic", &[]) {
        let event = parse(&name);
        let body = serde_json::to_vec(&event).unwrap();
        let again = generic().parse(&Headers::new(), &body).unwrap().remove(0);
        assert_eq!(again, event, "{name}");
    }
}

#[test]
fn malformed_bodies() {
    let no_headers = Headers::new();
    for body in [
        &b"nope"[..],
        br#"{"kind":"order_paid","occurred_at":"2026-01-01T00:00:00Z"}"#,
        br#"{"event_id":"e","occurred_at":"2026-01-01T00:00:00Z"}"#,
        br#"{"event_id":"e","kind":"order_paid"}"#,
        br#"{"event_id":"e","kind":"order_paid","occurred_at":"2026-01-01T00:00:00Z","order":{"lines":[]}}"#,
        br#"{"event_id":"e","kind":"subscription_updated","occurred_at":"2026-01-01T00:00:00Z","subscription":{"external_id":"s","status":"sleeping"}}"#,
    ] {
        let err = generic().parse(&no_headers, body).unwrap_err();
        assert_eq!(err.code(), "MALFORMED_PAYLOAD", "{}", String::from_utf8_lossy(body));
    }
}

#[test]
fn every_fixture_verifies_and_parses() {
    let s = secrets(&[SECRET]);
    for name in fixture_names("generic", &[]) {
        let body = fixture("generic", &name);
        let h = headers("msg_all", TS, signature(SECRET, "msg_all", TS, &body));
        let events = keygate_billing::receive(generic().0, &h, &body, &s, secs(TS))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(events.len(), 1, "{name}");
    }
}
