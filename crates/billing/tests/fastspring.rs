//! FastSpring: base64 HMAC-SHA256 over the body, batched events, every fixture.

mod common;

use common::*;
use keygate_billing::{BillingEventKind as Kind, Headers, SubscriptionStatus as Status};

const T0: i64 = 1_767_225_600;
const T1: i64 = 1_769_904_000;
const T2: i64 = 1_772_323_200;

fn fastspring() -> Platform {
    Platform::named("fastspring")
}

fn sign(secret: &str, body: &[u8]) -> Headers {
    Headers::new().with(
        "X-FS-Signature",
        keygate_billing::providers::fastspring::SCHEME.sign(secret.as_bytes(), body),
    )
}

#[test]
fn documented_vector() {
    let body = br#"{"id":"evt_test_webhook","object":"event"}"#;
    let h = Headers::new().with(
        "x-fs-signature",
        "a7ffPBuYT47VmuFWxF5sO1rGXGEE0xZaXHW61b/8aXs=",
    );
    fastspring()
        .verify(&h, body, &secrets(&["test_secret"]), secs(T0))
        .unwrap();
    // "The header is not case-sensitive and might be sent with varying case."
    let h = Headers::new().with(
        "X-Fs-Signature",
        "a7ffPBuYT47VmuFWxF5sO1rGXGEE0xZaXHW61b/8aXs=",
    );
    fastspring()
        .verify(&h, body, &secrets(&["test_secret"]), secs(T0))
        .unwrap();
}

#[test]
fn refusals_and_rotation() {
    let body = fixture("fastspring", "order.completed.json");
    let s = secrets(&["fs-secret"]);
    let now = secs(T0);
    let mut tampered = body.clone();
    tampered[3] ^= 1;
    assert_eq!(
        refused(fastspring().verify(&sign("fs-secret", &body), &tampered, &s, now)),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(fastspring().verify(&sign("other", &body), &body, &s, now)),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(fastspring().verify(&Headers::new(), &body, &s, now)),
        "SIGNATURE_MISSING"
    );
    let garbage = Headers::new().with("X-FS-Signature", "***");
    assert_eq!(
        refused(fastspring().verify(&garbage, &body, &s, now)),
        "SIGNATURE_INVALID"
    );
    // FastSpring's secret is optional on its side; Keygate refuses without one.
    assert_eq!(
        refused(fastspring().verify(&Headers::new(), &body, &secrets(&[]), now)),
        "SECRET_NOT_CONFIGURED"
    );
    let both = secrets(&["old-secret", "new-secret"]);
    for secret in ["old-secret", "new-secret"] {
        fastspring()
            .verify(&sign(secret, &body), &body, &both, now)
            .unwrap();
    }
    assert_eq!(
        refused(fastspring().verify(&sign("third", &body), &body, &both, now)),
        "SIGNATURE_INVALID"
    );
}

fn parse(name: &str) -> keygate_billing::BillingEvent {
    parse_one("fastspring", name, &Headers::new())
}

#[test]
fn a_batch_parses_to_several_events_in_order() {
    let events = parse_all("fastspring", "order.completed.json", &Headers::new());
    assert_eq!(events.len(), 2);
    check(
        "account.created",
        &events[0],
        Kind::CustomerUpserted,
        Expect {
            event_id: Some("evt_FS_acct"),
            customer_id: Some("acct_Ann1"),
            email: Some("ann@example.com"),
            ..Expect::default()
        },
    );
    let order = &events[1];
    check(
        "order.completed",
        order,
        Kind::OrderPaid,
        Expect {
            event_id: Some("evt_FS_order"),
            order_id: Some("ord_FS100"),
            // The subscription line is licensed through `subscription.activated`.
            items: Some(vec![("pro-lifetime", 2)]),
            customer_id: Some("acct_Ann1"),
            email: Some("ann@example.com"),
            ..Expect::default()
        },
    );
    assert!(!order.livemode);
    assert_eq!(order.occurred_at, secs(T0));
    assert_eq!(
        order.items()[0].product_external_id.as_deref(),
        Some("PRO-L")
    );
}

#[test]
fn subscriptions() {
    check(
        "account.updated",
        &parse("account.updated.json"),
        Kind::CustomerUpserted,
        Expect {
            email: Some("ann@new.example"),
            ..Expect::default()
        },
    );
    let activated = parse("subscription.activated.json");
    check(
        "activated",
        &activated,
        Kind::SubscriptionActivated,
        Expect {
            event_id: Some("evt_FS_activated"),
            subscription_id: Some("sub_FS1"),
            status: Some(Status::Active),
            period_end: Some(secs(T1)),
            items: Some(vec![("pro-monthly", 3), ("extra-storage", 2)]),
            customer_id: Some("acct_Ann1"),
            email: Some("ann@example.com"),
            partial: Some(false),
            ..Expect::default()
        },
    );
    let trial = parse("subscription.activated.trial.json");
    check(
        "trial",
        &trial,
        Kind::TrialStarted,
        Expect {
            subscription_id: Some("sub_FSTRIAL"),
            status: Some(Status::Trialing),
            items: Some(vec![("pro-monthly", 1)]),
            ..Expect::default()
        },
    );
    assert_eq!(
        trial.subscription.unwrap().trial_end,
        Some(secs(T0 + 14 * 86400))
    );
    check(
        "updated",
        &parse("subscription.updated.json"),
        Kind::SubscriptionUpdated,
        Expect {
            items: Some(vec![("pro-monthly", 10), ("extra-storage", 2)]),
            ..Expect::default()
        },
    );
    let canceled = parse("subscription.canceled.json");
    check(
        "canceled",
        &canceled,
        Kind::SubscriptionCancelScheduled,
        Expect {
            status: Some(Status::Active),
            cancel_at_period_end: Some(true),
            period_end: Some(secs(T1)),
            ..Expect::default()
        },
    );
    assert_eq!(canceled.subscription.unwrap().cancel_at, Some(secs(T1)));
    check(
        "uncanceled",
        &parse("subscription.uncanceled.json"),
        Kind::SubscriptionUpdated,
        Expect {
            cancel_at_period_end: Some(false),
            ..Expect::default()
        },
    );
    let deactivated = parse("subscription.deactivated.json");
    check(
        "deactivated",
        &deactivated,
        Kind::SubscriptionCanceled,
        Expect {
            status: Some(Status::Canceled),
            ..Expect::default()
        },
    );
    assert_eq!(deactivated.subscription.unwrap().ended_at, Some(secs(T1)));
}

#[test]
fn charges() {
    check(
        "charge expanded",
        &parse("subscription.charge.completed.json"),
        Kind::SubscriptionRenewed,
        Expect {
            subscription_id: Some("sub_FS1"),
            status: Some(Status::Active),
            period_end: Some(secs(T2)),
            items: Some(vec![("pro-monthly", 10), ("extra-storage", 2)]),
            order_id: Some("ord_FS200"),
            partial: Some(false),
            customer_id: Some("acct_Ann1"),
            ..Expect::default()
        },
    );
    let ids = parse("subscription.charge.completed.ids.json");
    check(
        "charge ids only",
        &ids,
        Kind::SubscriptionRenewed,
        Expect {
            subscription_id: Some("sub_FS1"),
            status: Some(Status::Active),
            order_id: Some("ord_FS200"),
            partial: Some(true),
            customer_id: Some("acct_Ann1"),
            ..Expect::default()
        },
    );
    assert_eq!(ids.subscription.as_ref().unwrap().current_period_end, None);
    // Nothing to extend by in the event: derived from the known period, else
    // WEBHOOK_EXPANSION_REQUIRED. The expanded charge tells its period.
    assert_eq!(
        ids.period_missing.map(|m| m.code()),
        Some("WEBHOOK_EXPANSION_REQUIRED")
    );
    let expanded = parse("subscription.charge.completed.json");
    assert_eq!(expanded.period_missing, None);
    assert_eq!(expanded.billing_interval_seconds, Some(30 * 86_400));
    check(
        "charge failed",
        &parse("subscription.charge.failed.json"),
        Kind::PaymentFailed,
        Expect {
            status: Some(Status::PastDue),
            order_id: Some("ord_FS201"),
            ..Expect::default()
        },
    );
    check(
        "overdue",
        &parse("subscription.payment.overdue.json"),
        Kind::PaymentFailed,
        Expect {
            subscription_id: Some("sub_FS1"),
            status: Some(Status::PastDue),
            ..Expect::default()
        },
    );
    check(
        "reminder",
        &parse("subscription.payment.reminder.json"),
        Kind::Ignored,
        Expect::default(),
    );
}

#[test]
fn returns_chargebacks_unknown() {
    let ret = parse("return.created.json");
    check(
        "return",
        &ret,
        Kind::Refunded,
        Expect {
            event_id: Some("evt_FS_return"),
            order_id: Some("ord_FS100"),
            items: Some(vec![("pro-lifetime", 2)]),
            email: Some("ann@example.com"),
            ..Expect::default()
        },
    );
    check(
        "chargeback",
        &parse("order.chargeback.json"),
        Kind::Chargeback,
        Expect {
            order_id: Some("ord_FS100"),
            customer_id: Some("acct_Ann1"),
            ..Expect::default()
        },
    );
    let unknown = parse("mailingListEntry.updated.json");
    check(
        "unknown",
        &unknown,
        Kind::Ignored,
        Expect {
            event_id: Some("evt_FS_mail"),
            ..Expect::default()
        },
    );
    assert_eq!(unknown.event_type, "mailingListEntry.updated");
}

#[test]
fn paused_suspends_and_resumed_reinstates() {
    let paused = parse("subscription.paused.json");
    check(
        "paused",
        &paused,
        Kind::SubscriptionPaused,
        Expect {
            subscription_id: Some("sub_FS1"),
            status: Some(Status::Paused),
            partial: Some(false),
            ..Expect::default()
        },
    );
    check(
        "resumed",
        &parse("subscription.resumed.json"),
        Kind::SubscriptionResumed,
        Expect {
            status: Some(Status::Active),
            ..Expect::default()
        },
    );
}

#[test]
fn a_partial_batch_is_answered_with_the_processed_ids_one_per_line() {
    let receipt = |id: &str, status: &str| keygate_billing::Receipt {
        id: format!("we_{id}"),
        provider_event_id: id.into(),
        event_type: "subscription.updated".into(),
        status: status.into(),
        duplicate: false,
    };
    let headers = Headers::new();
    let request = keygate_billing::Request::post(&headers, b"{}");
    let ack = fastspring().0.acknowledge(
        &request,
        &[
            receipt("evt_a", "applied"),
            receipt("evt_b", "failed"),
            receipt("evt_c", "ignored"),
        ],
    );
    assert_eq!(ack.status, 202);
    assert_eq!(ack.content_type, "text/plain; charset=utf-8");
    assert_eq!(String::from_utf8(ack.body).unwrap(), "evt_a\nevt_c\n");
    let all_failed = fastspring()
        .0
        .acknowledge(&request, &[receipt("evt_b", "failed")]);
    assert_eq!((all_failed.status, all_failed.body.is_empty()), (202, true));
    let all_ok = fastspring()
        .0
        .acknowledge(&request, &[receipt("evt_a", "applied")]);
    assert_eq!(
        (all_ok.status, all_ok.content_type),
        (200, "application/json")
    );
}

#[test]
fn every_fixture_verifies_and_parses() {
    let s = secrets(&["fs-secret"]);
    for name in fixture_names("fastspring", &[]) {
        let body = fixture("fastspring", &name);
        let events = keygate_billing::receive(
            fastspring().0,
            &sign("fs-secret", &body),
            &body,
            &s,
            secs(T0),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!events.is_empty(), "{name}");
        assert!(
            events.iter().all(|e| e.event_id.starts_with("evt_FS_")),
            "{name}"
        );
        assert!(
            name.starts_with(&events.last().unwrap().event_type),
            "{name}"
        );
    }
}

#[test]
fn malformed_batches() {
    for body in [
        &br#"{"event":[]}"#[..],
        br#"{"events":[{"type":"x","created":1}]}"#,
        b"{",
    ] {
        assert_eq!(
            fastspring()
                .parse(&Headers::new(), body)
                .unwrap_err()
                .code(),
            "MALFORMED_PAYLOAD"
        );
    }
    assert!(
        fastspring()
            .parse(&Headers::new(), br#"{"events":[]}"#)
            .unwrap()
            .is_empty()
    );
}

/// A return FastSpring has not completed yet is a refund asked for: nothing is revoked under
/// the default `options.refunds`.
#[test]
fn an_open_return_is_only_initiated() {
    use keygate_domain::billing::Reversal as R;
    assert_eq!(parse("return.created.json").reversal, None);
    let mut body: serde_json::Value =
        serde_json::from_slice(&fixture("fastspring", "return.created.json")).unwrap();
    body["events"][0]["data"]["completed"] = serde_json::json!(false);
    let bytes = body.to_string();
    let headers = Headers::new();
    let request = keygate_billing::Request::post(&headers, bytes.as_bytes());
    let events = keygate_billing::provider("fastspring")
        .unwrap()
        .parse(&request)
        .unwrap();
    assert_eq!(events[0].kind, Kind::Refunded);
    assert_eq!(events[0].reversal, Some(R::RefundInitiated));
}
