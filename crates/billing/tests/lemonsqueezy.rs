//! Lemon Squeezy: hex HMAC-SHA256 over the body, synthetic event ids, every fixture.

mod common;

use common::*;
use keygate_billing::{BillingEventKind as Kind, Headers, SubscriptionStatus as Status};

fn lemonsqueezy() -> Platform {
    Platform::named("lemonsqueezy")
}

fn sign(secret: &str, body: &[u8]) -> Headers {
    Headers::new().with(
        "X-Signature",
        keygate_billing::providers::lemonsqueezy::SCHEME.sign(secret.as_bytes(), body),
    )
}

#[test]
fn documented_vector() {
    let body = br#"{"id":"evt_test_webhook","object":"event"}"#;
    let h = Headers::new().with(
        "x-signature",
        "6bb7df3c1b984f8ed59ae156c45e6c3b5ac65c6104d3165a5c75bad5bffc697b",
    );
    lemonsqueezy()
        .verify(&h, body, &secrets(&["test_secret"]), secs(0))
        .unwrap();
}

#[test]
fn refusals_and_rotation() {
    let body = fixture("lemonsqueezy", "subscription_created.json");
    let s = secrets(&["ls-secret"]);
    let now = secs(1_767_225_600);
    let mut tampered = body.clone();
    tampered[7] ^= 1;
    assert_eq!(
        refused(lemonsqueezy().verify(&sign("ls-secret", &body), &tampered, &s, now)),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(lemonsqueezy().verify(&sign("nope", &body), &body, &s, now)),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(lemonsqueezy().verify(&Headers::new(), &body, &s, now)),
        "SIGNATURE_MISSING"
    );
    let not_hex = Headers::new().with("X-Signature", "zz");
    assert_eq!(
        refused(lemonsqueezy().verify(&not_hex, &body, &s, now)),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(lemonsqueezy().verify(&sign("ls-secret", &body), &body, &secrets(&[" "]), now)),
        "SECRET_NOT_CONFIGURED"
    );
    let both = secrets(&["old-secret", "new-secret"]);
    for secret in ["old-secret", "new-secret"] {
        lemonsqueezy()
            .verify(&sign(secret, &body), &body, &both, now)
            .unwrap();
    }
    assert_eq!(
        refused(lemonsqueezy().verify(&sign("third", &body), &body, &both, now)),
        "SIGNATURE_INVALID"
    );
}

fn parse(name: &str) -> keygate_billing::BillingEvent {
    parse_one("lemonsqueezy", name, &Headers::new())
}

#[test]
fn synthetic_event_ids_are_stable_per_change() {
    let created = parse("subscription_created.json");
    assert_eq!(
        created.event_id,
        "subscription_created:1234:2026-01-01T00:00:05.000000Z"
    );
    assert_eq!(created.occurred_at, rfc("2026-01-01T00:00:05Z"));
    // A retry (same bytes) gives the same id; the next change another.
    assert_eq!(
        parse("subscription_created.json").event_id,
        created.event_id
    );
    assert_ne!(
        parse("subscription_updated.json").event_id,
        created.event_id
    );
    // The event name may come only in the header.
    let mut body: serde_json::Value =
        serde_json::from_slice(&fixture("lemonsqueezy", "subscription_updated.json")).unwrap();
    body["meta"].as_object_mut().unwrap().remove("event_name");
    let body = serde_json::to_vec(&body).unwrap();
    let headers = Headers::new().with("X-Event-Name", "subscription_updated");
    let e = lemonsqueezy().parse(&headers, &body).unwrap().remove(0);
    assert_eq!(e.kind, Kind::SubscriptionUpdated);
    assert_eq!(
        lemonsqueezy()
            .parse(&Headers::new(), &body)
            .unwrap_err()
            .code(),
        "MALFORMED_PAYLOAD"
    );
}

#[test]
fn orders() {
    let order = parse("order_created.json");
    check(
        "order",
        &order,
        Kind::OrderPaid,
        Expect {
            event_id: Some("order_created:5502:2026-01-05T00:00:00.000000Z"),
            order_id: Some("5502"),
            items: Some(vec![("8002", 2)]),
            customer_id: Some("9001"),
            email: Some("ann@example.com"),
            ..Expect::default()
        },
    );
    assert!(order.livemode);
    assert_eq!(
        order.items()[0].product_external_id.as_deref(),
        Some("7002")
    );
    check(
        "pending order",
        &parse("order_created.pending.json"),
        Kind::Ignored,
        Expect::default(),
    );
    check(
        "refund",
        &parse("order_refunded.json"),
        Kind::Refunded,
        Expect {
            order_id: Some("5502"),
            ..Expect::default()
        },
    );
}

#[test]
fn subscriptions() {
    check(
        "created",
        &parse("subscription_created.json"),
        Kind::SubscriptionActivated,
        Expect {
            subscription_id: Some("1234"),
            status: Some(Status::Active),
            period_end: Some(rfc("2026-02-01T00:00:00Z")),
            items: Some(vec![("8001", 3)]),
            customer_id: Some("9001"),
            email: Some("ann@example.com"),
            partial: Some(false),
            ..Expect::default()
        },
    );
    let trial = parse("subscription_created.on_trial.json");
    check(
        "trial",
        &trial,
        Kind::TrialStarted,
        Expect {
            subscription_id: Some("1235"),
            status: Some(Status::Trialing),
            items: Some(vec![("8003", 1)]),
            ..Expect::default()
        },
    );
    assert!(!trial.livemode, "meta.test_mode");
    assert_eq!(
        trial.subscription.unwrap().trial_end,
        Some(rfc("2026-01-15T00:00:00Z"))
    );
    check(
        "updated",
        &parse("subscription_updated.json"),
        Kind::SubscriptionUpdated,
        Expect {
            items: Some(vec![("8001", 5)]),
            ..Expect::default()
        },
    );
    let cancelled = parse("subscription_cancelled.json");
    check(
        "cancelled",
        &cancelled,
        Kind::SubscriptionCancelScheduled,
        Expect {
            // The grace period: access continues until ends_at.
            status: Some(Status::Active),
            cancel_at_period_end: Some(true),
            ..Expect::default()
        },
    );
    assert_eq!(
        cancelled.subscription.unwrap().cancel_at,
        Some(rfc("2026-02-01T00:00:00Z"))
    );
    check(
        "resumed (un-cancel)",
        &parse("subscription_resumed.json"),
        Kind::SubscriptionUpdated,
        Expect {
            status: Some(Status::Active),
            cancel_at_period_end: Some(false),
            ..Expect::default()
        },
    );
    let expired = parse("subscription_expired.json");
    check(
        "expired",
        &expired,
        Kind::SubscriptionCanceled,
        Expect {
            status: Some(Status::Canceled),
            cancel_at_period_end: Some(false),
            ..Expect::default()
        },
    );
    assert_eq!(
        expired.subscription.unwrap().ended_at,
        Some(rfc("2026-02-01T00:00:00Z"))
    );
    check(
        "paused",
        &parse("subscription_paused.json"),
        Kind::SubscriptionPaused,
        Expect {
            status: Some(Status::Paused),
            ..Expect::default()
        },
    );
    // `pause.mode: free`: "the subscription is still active", the service given for free.
    check(
        "paused free",
        &parse("subscription_paused.free.json"),
        Kind::SubscriptionUpdated,
        Expect {
            status: Some(Status::Active),
            ..Expect::default()
        },
    );
    check(
        "unpaused",
        &parse("subscription_unpaused.json"),
        Kind::SubscriptionResumed,
        Expect {
            status: Some(Status::Active),
            period_end: Some(rfc("2026-03-01T00:00:00Z")),
            ..Expect::default()
        },
    );
}

#[test]
fn subscription_invoices() {
    for (name, kind, status) in [
        (
            "subscription_payment_success.renewal.json",
            Kind::SubscriptionRenewed,
            Some(Status::Active),
        ),
        (
            "subscription_payment_success.initial.json",
            Kind::SubscriptionActivated,
            Some(Status::Active),
        ),
        (
            "subscription_payment_failed.json",
            Kind::PaymentFailed,
            Some(Status::PastDue),
        ),
        (
            "subscription_payment_recovered.json",
            Kind::PaymentRecovered,
            Some(Status::Active),
        ),
        ("subscription_payment_refunded.json", Kind::Refunded, None),
    ] {
        let e = parse(name);
        check(
            name,
            &e,
            kind,
            Expect {
                subscription_id: Some("1234"),
                partial: Some(true),
                customer_id: Some("9001"),
                ..Expect::default()
            },
        );
        let sub = e.subscription.as_ref().unwrap();
        assert_eq!(sub.status, status, "{name}");
        assert_eq!(sub.current_period_end, None, "{name}");
        assert!(e.order_id().unwrap().starts_with("555"), "{name}");
    }
    check(
        "license key",
        &parse("license_key_created.json"),
        Kind::Ignored,
        Expect::default(),
    );
}

#[test]
fn every_fixture_verifies_and_parses() {
    let s = secrets(&["ls-secret"]);
    for name in fixture_names("lemonsqueezy", &[]) {
        let body = fixture("lemonsqueezy", &name);
        let events = keygate_billing::receive(
            lemonsqueezy().0,
            &sign("ls-secret", &body),
            &body,
            &s,
            secs(0),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(events.len(), 1);
        assert!(name.starts_with(&events[0].event_type), "{name}");
        assert!(
            events[0].event_id.starts_with(&events[0].event_type),
            "{name}"
        );
    }
}
