//! Paddle Billing: signature scheme (with the SDKs' official vectors) and every fixture.

mod common;

use common::*;
use keygate_billing::{BillingEventKind as Kind, Headers, SubscriptionStatus as Status};

fn paddle() -> Platform {
    Platform::named("paddle")
}

fn header(value: impl Into<String>) -> Headers {
    Headers::new().with("Paddle-Signature", value)
}

/// `Paddle-Signature` as Paddle builds it: hex HMAC-SHA256 over `{ts}:{body}`.
fn sign(secret: &str, ts: i64, body: &[u8]) -> String {
    keygate_billing::providers::paddle::SCHEME.sign(secret.as_bytes(), ts, body)
}

#[test]
fn official_node_sdk_vector() {
    let h =
        header("ts=1698796800;h1=a300428748dce5c70e4da19bffd60769591ea969c99dea3105d0ec9612cf43f9");
    let s = secrets(&["VALID_SECRET"]);
    let body = br#"{"data": ["1", "2"]}"#;
    let now = rfc("2023-11-01T00:00:00Z");
    paddle().verify(&h, body, &s, now).unwrap();
    paddle()
        .verify(&h, body, &s, rfc("2023-11-01T00:00:05Z"))
        .unwrap();
    assert_eq!(
        refused(paddle().verify(&h, body, &s, rfc("2023-11-01T00:00:06Z"))),
        "TIMESTAMP_OUT_OF_TOLERANCE"
    );
    assert_eq!(
        refused(paddle().verify(&h, br#"{ "data": [ "1", "2" ]}"#, &s, now)),
        "SIGNATURE_INVALID"
    );
}

#[test]
fn official_python_sdk_vector_with_rotation() {
    let h = header(
        "ts=1696195954;h1=dummy;h1=d96299976a6eb066f484d7fde011ac56fc32b38fc9940bc419d6e537fdc6ef02",
    );
    let right = "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_WvRO0eL4Bj9rgYYIBZY6wZhG4EHy9jzh";
    let wrong1 = "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_TjIG2BXbm83HPXqNfziwe506sBEdqL/4";
    let wrong2 = "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_vB/yIOnTOCWIvpBadM5jzBZPHc7OmdSo";
    let now = secs(1_696_195_954);
    paddle()
        .verify(&h, b"hello-world", &secrets(&[right]), now)
        .unwrap();
    for wrong in [wrong1, wrong2] {
        assert_eq!(
            refused(paddle().verify(&h, b"hello-world", &secrets(&[wrong]), now)),
            "SIGNATURE_INVALID"
        );
    }
    // The Python SDK accepts a list of secrets: any may match.
    paddle()
        .verify(&h, b"hello-world", &secrets(&[wrong1, wrong2, right]), now)
        .unwrap();
}

#[test]
fn refusals_and_rotation() {
    let ts = 1_767_225_600;
    let now = secs(ts);
    let body = fixture("paddle", "subscription.created.json");
    let s = secrets(&["pdl_ntfset_new"]);
    let good = header(sign("pdl_ntfset_new", ts, &body));
    paddle().verify(&good, &body, &s, now).unwrap();
    // Header name in any case.
    paddle()
        .verify(
            &Headers::new().with("PADDLE-SIGNATURE", sign("pdl_ntfset_new", ts, &body)),
            &body,
            &s,
            now,
        )
        .unwrap();

    let mut tampered = body.clone();
    tampered[20] ^= 1;
    assert_eq!(
        refused(paddle().verify(&good, &tampered, &s, now)),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(paddle().verify(&good, &body, &secrets(&["pdl_ntfset_other"]), now)),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(paddle().verify(&good, &body, &s, secs(ts + 6))),
        "TIMESTAMP_OUT_OF_TOLERANCE"
    );
    let wide =
        secrets(&["pdl_ntfset_new"]).with_options(serde_json::json!({"tolerance_seconds": 60}));
    paddle().verify(&good, &body, &wide, secs(ts + 60)).unwrap();
    assert_eq!(
        refused(paddle().verify(&Headers::new(), &body, &s, now)),
        "SIGNATURE_MISSING"
    );
    assert_eq!(
        refused(paddle().verify(&header("h1=abcd"), &body, &s, now)),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(paddle().verify(&header(format!("ts={ts}")), &body, &s, now)),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(paddle().verify(&good, &body, &secrets(&[]), now)),
        "SECRET_NOT_CONFIGURED"
    );

    let both = secrets(&["pdl_ntfset_old", "pdl_ntfset_new"]);
    for secret in ["pdl_ntfset_old", "pdl_ntfset_new"] {
        paddle()
            .verify(&header(sign(secret, ts, &body)), &body, &both, now)
            .unwrap();
    }
    assert_eq!(
        refused(paddle().verify(
            &header(sign("pdl_ntfset_third", ts, &body)),
            &body,
            &both,
            now
        )),
        "SIGNATURE_INVALID"
    );
}

fn parse(name: &str) -> keygate_billing::BillingEvent {
    parse_one("paddle", name, &Headers::new())
}

#[test]
fn customer_and_subscription_lifecycle() {
    let e = parse("customer.created.json");
    check(
        "customer",
        &e,
        Kind::CustomerUpserted,
        Expect {
            event_id: Some("evt_01hcustomer"),
            customer_id: Some("ctm_01hann"),
            email: Some("ann@example.com"),
            ..Expect::default()
        },
    );
    assert!(e.livemode);

    let created = parse("subscription.created.json");
    check(
        "created",
        &created,
        Kind::SubscriptionActivated,
        Expect {
            event_id: Some("evt_01hsubcreated"),
            subscription_id: Some("sub_01hpaddle1"),
            status: Some(Status::Active),
            period_end: Some(rfc("2026-02-01T00:00:00Z")),
            items: Some(vec![("pri_01pro_monthly", 10)]),
            customer_id: Some("ctm_01hann"),
            partial: Some(false),
            ..Expect::default()
        },
    );
    assert_eq!(created.occurred_at, rfc("2026-01-01T00:00:01Z"));
    assert_eq!(
        created.items()[0].product_external_id.as_deref(),
        Some("pro_01keygate_pro")
    );

    for name in [
        "subscription.created.trialing.json",
        "subscription.trialing.json",
    ] {
        let e = parse(name);
        check(
            name,
            &e,
            Kind::TrialStarted,
            Expect {
                subscription_id: Some("sub_01hpaddletrial"),
                status: Some(Status::Trialing),
                items: Some(vec![("pri_01pro_monthly", 1)]),
                ..Expect::default()
            },
        );
        assert_eq!(
            e.subscription.unwrap().trial_end,
            Some(rfc("2026-01-15T00:00:00Z"))
        );
    }
    check(
        "imported",
        &parse("subscription.imported.json"),
        Kind::SubscriptionActivated,
        Expect {
            subscription_id: Some("sub_01hpaddleimported"),
            ..Expect::default()
        },
    );
    check(
        "activated",
        &parse("subscription.activated.json"),
        Kind::SubscriptionActivated,
        Expect {
            subscription_id: Some("sub_01hpaddletrial"),
            status: Some(Status::Active),
            period_end: Some(rfc("2026-02-15T00:00:00Z")),
            ..Expect::default()
        },
    );
    check(
        "quantity",
        &parse("subscription.updated.quantity.json"),
        Kind::SubscriptionUpdated,
        Expect {
            items: Some(vec![("pri_01pro_monthly", 25)]),
            cancel_at_period_end: Some(false),
            ..Expect::default()
        },
    );
    let scheduled = parse("subscription.updated.cancel_scheduled.json");
    check(
        "cancel scheduled",
        &scheduled,
        Kind::SubscriptionCancelScheduled,
        Expect {
            status: Some(Status::Active),
            cancel_at_period_end: Some(true),
            period_end: Some(rfc("2026-02-01T00:00:00Z")),
            ..Expect::default()
        },
    );
    assert_eq!(
        scheduled.subscription.unwrap().cancel_at,
        Some(rfc("2026-02-01T00:00:00Z"))
    );
    let canceled = parse("subscription.canceled.json");
    check(
        "canceled",
        &canceled,
        Kind::SubscriptionCanceled,
        Expect {
            status: Some(Status::Canceled),
            cancel_at_period_end: Some(false),
            ..Expect::default()
        },
    );
    assert_eq!(
        canceled.subscription.unwrap().ended_at,
        Some(rfc("2026-02-01T00:00:00Z"))
    );
    check(
        "paused",
        &parse("subscription.paused.json"),
        Kind::SubscriptionPaused,
        Expect {
            status: Some(Status::Paused),
            ..Expect::default()
        },
    );
    check(
        "resumed",
        &parse("subscription.resumed.json"),
        Kind::SubscriptionResumed,
        Expect {
            status: Some(Status::Active),
            period_end: Some(rfc("2026-02-25T00:00:00Z")),
            ..Expect::default()
        },
    );
    check(
        "past due",
        &parse("subscription.past_due.json"),
        Kind::PaymentFailed,
        Expect {
            status: Some(Status::PastDue),
            ..Expect::default()
        },
    );
}

#[test]
fn transactions() {
    check(
        "renewal",
        &parse("transaction.completed.renewal.json"),
        Kind::SubscriptionRenewed,
        Expect {
            event_id: Some("evt_01htxnrenewal"),
            subscription_id: Some("sub_01hpaddle1"),
            status: Some(Status::Active),
            period_end: Some(rfc("2026-03-01T00:00:00Z")),
            items: Some(vec![("pri_01pro_monthly", 10)]),
            order_id: Some("txn_01hrenewal"),
            partial: Some(true),
            ..Expect::default()
        },
    );
    check(
        "first",
        &parse("transaction.completed.first.json"),
        Kind::SubscriptionActivated,
        Expect {
            subscription_id: Some("sub_01hpaddle1"),
            period_end: Some(rfc("2026-02-01T00:00:00Z")),
            order_id: Some("txn_01hfirst"),
            ..Expect::default()
        },
    );
    let once = parse("transaction.completed.one_time.json");
    check(
        "one-time",
        &once,
        Kind::OrderPaid,
        Expect {
            order_id: Some("txn_01honce"),
            items: Some(vec![("pri_01lifetime", 2)]),
            customer_id: Some("ctm_01hann"),
            ..Expect::default()
        },
    );
    assert!(once.subscription.is_none());
    // A proration transaction: `subscription.updated` carries the change.
    check(
        "update",
        &parse("transaction.completed.update.json"),
        Kind::Ignored,
        Expect::default(),
    );
    for name in [
        "transaction.payment_failed.json",
        "transaction.past_due.json",
    ] {
        let e = parse(name);
        check(
            name,
            &e,
            Kind::PaymentFailed,
            Expect {
                subscription_id: Some("sub_01hpaddle1"),
                status: Some(Status::PastDue),
                order_id: Some("txn_01hrenewal"),
                partial: Some(true),
                ..Expect::default()
            },
        );
        assert_eq!(e.subscription.unwrap().current_period_end, None);
    }
}

#[test]
fn adjustments_and_unknown() {
    check(
        "pending refund",
        &parse("adjustment.created.refund_pending.json"),
        Kind::Ignored,
        Expect::default(),
    );
    let refund = parse("adjustment.updated.refund_approved.json");
    check(
        "approved refund",
        &refund,
        Kind::Refunded,
        Expect {
            subscription_id: Some("sub_01hpaddle1"),
            order_id: Some("txn_01hfirst"),
            partial: Some(true),
            ..Expect::default()
        },
    );
    assert_eq!(refund.subscription.unwrap().status, None);
    check(
        "chargeback",
        &parse("adjustment.created.chargeback.json"),
        Kind::Chargeback,
        Expect {
            order_id: Some("txn_01hfirst"),
            ..Expect::default()
        },
    );
    let unknown = parse("address.created.json");
    check(
        "unknown",
        &unknown,
        Kind::Ignored,
        Expect {
            event_id: Some("evt_01haddress"),
            ..Expect::default()
        },
    );
    assert_eq!(unknown.event_type, "address.created");
}

#[test]
fn every_fixture_verifies_and_parses() {
    let ts = 1_767_225_600;
    for name in fixture_names("paddle", &[]) {
        let body = fixture("paddle", &name);
        let events = keygate_billing::receive(
            paddle().0,
            &header(sign("pdl_ntfset_new", ts, &body)),
            &body,
            &secrets(&["pdl_ntfset_new"]),
            secs(ts),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(events.len(), 1);
        assert!(events[0].event_id.starts_with("evt_"), "{name}");
    }
}

#[test]
fn malformed_bodies() {
    for body in [
        &b"{"[..],
        br#"{"event_id":"evt_1","event_type":"x"}"#,
        br#"{"event_type":"x","occurred_at":"2026-01-01T00:00:00Z"}"#,
    ] {
        assert_eq!(
            paddle().parse(&Headers::new(), body).unwrap_err().code(),
            "MALFORMED_PAYLOAD"
        );
    }
}
