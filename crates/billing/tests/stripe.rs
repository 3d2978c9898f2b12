//! Stripe: signature scheme and every fixture.

mod common;

use common::*;
use keygate_billing::{BillingEventKind as Kind, Headers, SubscriptionStatus as Status};

const SECRET: &str = "whsec_test_secret";
const OFFICIAL_BODY: &str = r#"{"id":"evt_test_webhook","object":"event"}"#;

fn stripe() -> Platform {
    Platform::named("stripe")
}

/// `Stripe-Signature` as Stripe builds it: hex HMAC-SHA256 over `{t}.{body}`.
fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let header = keygate_billing::providers::stripe::SCHEME.sign(secret.as_bytes(), t, body);
    header.split_once(",v1=").unwrap().1.to_string()
}

fn header(value: String) -> Headers {
    Headers::new().with("Stripe-Signature", value)
}

#[test]
fn documented_vector_verifies() {
    let headers = header(
        "t=1700000000,v1=d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990".into(),
    );
    assert_eq!(
        sign(SECRET, 1_700_000_000, OFFICIAL_BODY.as_bytes()),
        "d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990"
    );
    stripe()
        .verify(
            &headers,
            OFFICIAL_BODY.as_bytes(),
            &secrets(&[SECRET]),
            secs(1_700_000_000),
        )
        .unwrap();
}

#[test]
fn extra_bad_v1_and_other_schemes_are_ignored() {
    let t = 1_767_225_600;
    let body = fixture("stripe", "invoice.paid.cycle.json");
    let good = sign(SECRET, t, &body);
    for value in [
        format!("t={t},v1={good},v1=bad_signature"),
        format!("t={t},v0=abcdef,v1=bad_signature,v1={good}"),
        format!("v1={good}, t={t}"),
    ] {
        stripe()
            .verify(&header(value), &body, &secrets(&[SECRET]), secs(t))
            .unwrap();
    }
}

#[test]
fn refusals() {
    let t = 1_767_225_600;
    let body = fixture("stripe", "invoice.paid.cycle.json");
    let good = format!("t={t},v1={}", sign(SECRET, t, &body));
    let s = secrets(&[SECRET]);
    let verify = |headers: &Headers, body: &[u8], s: &keygate_billing::Secrets, now| {
        stripe().verify(headers, body, s, now)
    };

    // Tampered body.
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    assert_eq!(
        refused(verify(&header(good.clone()), &tampered, &s, secs(t))),
        "SIGNATURE_INVALID"
    );
    // Wrong secret.
    assert_eq!(
        refused(verify(
            &header(good.clone()),
            &body,
            &secrets(&["whsec_other"]),
            secs(t)
        )),
        "SIGNATURE_INVALID"
    );
    // Stale: 300 s is fine, 301 s is not; a future t is not refused (as Stripe's SDKs).
    verify(&header(good.clone()), &body, &s, secs(t + 300)).unwrap();
    assert_eq!(
        refused(verify(&header(good.clone()), &body, &s, secs(t + 301))),
        "TIMESTAMP_OUT_OF_TOLERANCE"
    );
    verify(&header(good.clone()), &body, &s, secs(t - 3600)).unwrap();
    // A configured tolerance.
    let tight = secrets(&[SECRET]).with_options(serde_json::json!({"tolerance_seconds": 10}));
    assert_eq!(
        refused(verify(&header(good.clone()), &body, &tight, secs(t + 11))),
        "TIMESTAMP_OUT_OF_TOLERANCE"
    );
    // Missing header, header without t, without v1.
    assert_eq!(
        refused(verify(&Headers::new(), &body, &s, secs(t))),
        "SIGNATURE_MISSING"
    );
    assert_eq!(
        refused(verify(
            &header(format!("v1={}", sign(SECRET, t, &body))),
            &body,
            &s,
            secs(t)
        )),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(verify(
            &header(format!("t={t},v0={}", sign(SECRET, t, &body))),
            &body,
            &s,
            secs(t)
        )),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(verify(&header("garbage".into()), &body, &s, secs(t))),
        "SIGNATURE_INVALID"
    );
    // No secret configured: refused even with a header (fail closed).
    for none in [secrets(&[]), secrets(&[""])] {
        assert_eq!(
            refused(verify(&header(good.clone()), &body, &none, secs(t))),
            "SECRET_NOT_CONFIGURED"
        );
    }
}

#[test]
fn rotation_accepts_old_and_new_secret_only() {
    let t = 1_767_225_600;
    let body = fixture("stripe", "customer.created.json");
    let both = secrets(&["whsec_old", "whsec_new"]);
    for secret in ["whsec_old", "whsec_new"] {
        let h = header(format!("t={t},v1={}", sign(secret, t, &body)));
        stripe().verify(&h, &body, &both, secs(t)).unwrap();
    }
    let third = header(format!("t={t},v1={}", sign("whsec_third", t, &body)));
    assert_eq!(
        refused(stripe().verify(&third, &body, &both, secs(t))),
        "SIGNATURE_INVALID"
    );
    // Stripe itself sends one v1 per live secret while a roll is in progress.
    let rolled = header(format!(
        "t={t},v1={},v1={}",
        sign("whsec_old", t, &body),
        sign("whsec_new", t, &body)
    ));
    stripe()
        .verify(&rolled, &body, &secrets(&["whsec_new"]), secs(t))
        .unwrap();
}

fn parse(name: &str) -> keygate_billing::BillingEvent {
    parse_one("stripe", name, &Headers::new())
}

#[test]
fn customer_created() {
    let e = parse("customer.created.json");
    check(
        "customer.created",
        &e,
        Kind::CustomerUpserted,
        Expect {
            event_id: Some("evt_1CustomerCreated"),
            customer_id: Some("cus_ANN"),
            email: Some("ann@example.com"),
            ..Expect::default()
        },
    );
    assert!(!e.livemode);
    assert_eq!(e.occurred_at, secs(1_767_225_600));
    assert_eq!(e.event_type, "customer.created");
}

#[test]
fn subscription_created_basil_item_period() {
    let e = parse("customer.subscription.created.json");
    check(
        "sub.created",
        &e,
        Kind::SubscriptionActivated,
        Expect {
            event_id: Some("evt_1SubCreated"),
            subscription_id: Some("sub_1"),
            status: Some(Status::Active),
            period_end: Some(secs(1_769_904_000)),
            items: Some(vec![("price_pro_monthly", 3)]),
            customer_id: Some("cus_ANN"),
            partial: Some(false),
            cancel_at_period_end: Some(false),
            ..Expect::default()
        },
    );
    assert!(e.livemode);
    let sub = e.subscription.unwrap();
    assert_eq!(
        sub.items[0].product_external_id.as_deref(),
        Some("prod_pro")
    );
}

#[test]
fn subscription_created_trialing_legacy_top_level_period() {
    let e = parse("customer.subscription.created.trialing.legacy.json");
    check(
        "sub.created.trialing",
        &e,
        Kind::TrialStarted,
        Expect {
            subscription_id: Some("sub_2"),
            status: Some(Status::Trialing),
            period_end: Some(secs(1_768_435_200)),
            items: Some(vec![("price_basic", 1)]),
            ..Expect::default()
        },
    );
    assert_eq!(e.subscription.unwrap().trial_end, Some(secs(1_768_435_200)));
}

#[test]
fn subscription_updated_variants() {
    let cases = [
        (
            "customer.subscription.updated.quantity.json",
            Kind::SubscriptionUpdated,
            Status::Active,
            5,
        ),
        (
            "customer.subscription.updated.cancel_scheduled.json",
            Kind::SubscriptionCancelScheduled,
            Status::Active,
            5,
        ),
        (
            "customer.subscription.updated.activated.json",
            Kind::SubscriptionActivated,
            Status::Active,
            1,
        ),
        (
            "customer.subscription.updated.past_due.json",
            Kind::PaymentFailed,
            Status::PastDue,
            5,
        ),
        (
            "customer.subscription.updated.recovered.json",
            Kind::PaymentRecovered,
            Status::Active,
            5,
        ),
        (
            "customer.subscription.updated.pause_collection.json",
            Kind::SubscriptionPaused,
            Status::Paused,
            5,
        ),
    ];
    for (name, kind, status, quantity) in cases {
        let e = parse(name);
        check(
            name,
            &e,
            kind,
            Expect {
                status: Some(status),
                partial: Some(false),
                items: Some(vec![("price_pro_monthly", quantity)]),
                ..Expect::default()
            },
        );
    }
    let cancel = parse("customer.subscription.updated.cancel_scheduled.json")
        .subscription
        .unwrap();
    assert!(cancel.cancel_at_period_end);
    assert_eq!(cancel.cancel_at, Some(secs(1_769_904_000)));
    assert_eq!(cancel.current_period_end, Some(secs(1_769_904_000)));
    assert_eq!(cancel.ended_at, None);
    let past_due = parse("customer.subscription.updated.past_due.json");
    assert_eq!(
        past_due.subscription.unwrap().current_period_end,
        Some(secs(1_772_323_200))
    );
}

#[test]
fn subscription_deleted_paused_resumed() {
    let e = parse("customer.subscription.deleted.json");
    check(
        "deleted",
        &e,
        Kind::SubscriptionCanceled,
        Expect {
            subscription_id: Some("sub_1"),
            status: Some(Status::Canceled),
            cancel_at_period_end: Some(false),
            ..Expect::default()
        },
    );
    assert_eq!(e.subscription.unwrap().ended_at, Some(secs(1_769_904_000)));
    check(
        "paused",
        &parse("customer.subscription.paused.json"),
        Kind::SubscriptionPaused,
        Expect {
            subscription_id: Some("sub_2"),
            status: Some(Status::Paused),
            ..Expect::default()
        },
    );
    check(
        "resumed",
        &parse("customer.subscription.resumed.json"),
        Kind::SubscriptionResumed,
        Expect {
            subscription_id: Some("sub_2"),
            status: Some(Status::Active),
            period_end: Some(secs(1_771_718_400)),
            ..Expect::default()
        },
    );
}

#[test]
fn invoice_paid_renewal_in_both_generations() {
    for (name, event_id, order) in [
        (
            "invoice.paid.cycle.json",
            "evt_1InvoicePaidCycle",
            "in_cycle",
        ),
        (
            "invoice.payment_succeeded.cycle.legacy.json",
            "evt_1InvoiceSucceededLegacy",
            "in_cycle_legacy",
        ),
    ] {
        let e = parse(name);
        check(
            name,
            &e,
            Kind::SubscriptionRenewed,
            Expect {
                event_id: Some(event_id),
                subscription_id: Some("sub_1"),
                status: Some(Status::Active),
                // The line's period (the new one), not the invoice's `period_end` (the old one).
                period_end: Some(secs(1_772_323_200)),
                items: Some(vec![("price_pro_monthly", 5)]),
                order_id: Some(order),
                customer_id: Some("cus_ANN"),
                email: Some("ann@example.com"),
                partial: Some(true),
                ..Expect::default()
            },
        );
        assert_eq!(
            e.items()[0].product_external_id.as_deref(),
            Some("prod_pro")
        );
    }
}

#[test]
fn invoice_first_payment_failure_and_one_time() {
    check(
        "create",
        &parse("invoice.paid.create.json"),
        Kind::SubscriptionActivated,
        Expect {
            subscription_id: Some("sub_1"),
            status: Some(Status::Active),
            period_end: Some(secs(1_769_904_000)),
            items: Some(vec![("price_pro_monthly", 3)]),
            ..Expect::default()
        },
    );
    let failed = parse("invoice.payment_failed.json");
    check(
        "failed",
        &failed,
        Kind::PaymentFailed,
        Expect {
            subscription_id: Some("sub_1"),
            status: Some(Status::PastDue),
            order_id: Some("in_cycle"),
            partial: Some(true),
            ..Expect::default()
        },
    );
    // An unpaid invoice never moves the paid-through date.
    assert_eq!(failed.subscription.unwrap().current_period_end, None);
    let once = parse("invoice.paid.one_time.json");
    check(
        "one-time invoice",
        &once,
        Kind::OrderPaid,
        Expect {
            order_id: Some("in_once"),
            items: Some(vec![("price_lifetime", 2)]),
            email: Some("dan@example.com"),
            ..Expect::default()
        },
    );
    assert!(once.subscription.is_none());
}

#[test]
fn checkout_refund_dispute_and_unknown() {
    let sub = parse("checkout.session.completed.subscription.json");
    check(
        "checkout sub",
        &sub,
        Kind::CustomerUpserted,
        Expect {
            customer_id: Some("cus_ANN"),
            email: Some("ann@example.com"),
            subscription_id: Some("sub_1"),
            partial: Some(true),
            ..Expect::default()
        },
    );
    check(
        "checkout payment",
        &parse("checkout.session.completed.payment.json"),
        Kind::OrderPaid,
        Expect {
            order_id: Some("pi_once"),
            items: Some(vec![("price_lifetime", 1)]),
            email: Some("eve@example.com"),
            ..Expect::default()
        },
    );
    check(
        "refund",
        &parse("charge.refunded.json"),
        Kind::Refunded,
        Expect {
            order_id: Some("pi_once"),
            customer_id: Some("cus_EVE"),
            ..Expect::default()
        },
    );
    check(
        "dispute",
        &parse("charge.dispute.created.json"),
        Kind::Chargeback,
        Expect {
            order_id: Some("pi_once"),
            ..Expect::default()
        },
    );
    let unknown = parse("product.created.json");
    check(
        "unknown",
        &unknown,
        Kind::Ignored,
        Expect {
            event_id: Some("evt_1ProductCreated"),
            ..Expect::default()
        },
    );
    assert_eq!(unknown.event_type, "product.created");
    assert!(unknown.subscription.is_none() && unknown.order.is_none());
}

#[test]
fn every_fixture_parses_and_verifies() {
    for name in fixture_names("stripe", &[]) {
        let body = fixture("stripe", &name);
        let t = 1_767_225_600;
        let h = header(format!("t={t},v1={}", sign(SECRET, t, &body)));
        let events = keygate_billing::receive(stripe().0, &h, &body, &secrets(&[SECRET]), secs(t))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(events.len(), 1, "{name}");
        assert!(events[0].event_id.starts_with("evt_"), "{name}");
    }
}

#[test]
fn malformed_bodies() {
    for body in [
        &b"not json"[..],
        b"[]",
        br#"{"type":"x","created":1}"#,
        br#"{"id":"evt","created":1}"#,
    ] {
        let err = stripe().parse(&Headers::new(), body).unwrap_err();
        assert_eq!(err.code(), "MALFORMED_PAYLOAD");
        assert_eq!(err.http_status(), 400);
    }
}
