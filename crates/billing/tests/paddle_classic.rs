//! Paddle Classic: `p_signature` (RSA-SHA1 over PHP `serialize()` of the sorted fields) with the
//! vendor public key as Paddle shows it, and every alert fixture.
//!
//! The fixtures' signatures were made by PHP itself (`tests/fixtures/paddle_classic/sign.php`:
//! Paddle's verification steps, `serialize()` and OpenSSL) with a 4096-bit key, the size of
//! Paddle's vendor keys: they verify here only if Keygate's serialization is PHP's, byte for
//! byte.

mod common;

use common::*;
use keygate_billing::testkit::{Kit, PaddleClassicKit, form_encode};
use keygate_billing::{
    BillingEventKind as Kind, Headers, Provider, Request, Secrets, SubscriptionStatus as Status,
};
use keygate_domain::billing::Reversal;
use serde_json::Value;

const PUBLIC_4096: &str = include_str!("fixtures/paddle_classic/test_key_4096.pub.pem");

fn platform() -> &'static dyn Provider {
    keygate_billing::provider("paddle_classic").unwrap()
}

/// The fixture as Paddle posts it: its fields form-encoded (the PHP-made `p_signature` too).
fn posted(name: &str) -> Vec<u8> {
    let fields: Value = serde_json::from_slice(&fixture("paddle_classic", name)).unwrap();
    let pairs: Vec<(String, String)> = fields
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    form_encode(&pairs).into_bytes()
}

fn verify(body: &[u8], secrets: &Secrets) -> Result<(), keygate_billing::BillingError> {
    let headers = Headers::new();
    platform().verify(&Request::post(&headers, body), secrets, secs(0))
}

fn parse(name: &str) -> keygate_billing::BillingEvent {
    let headers = Headers::new();
    let body = posted(name);
    let mut events = platform().parse(&Request::post(&headers, &body)).unwrap();
    assert_eq!(events.len(), 1, "{name}");
    events.remove(0)
}

#[test]
fn php_signed_fixtures_verify_with_the_4096_bit_key() {
    let key = secrets(&[PUBLIC_4096]);
    platform().check_config(&key, secs(0)).unwrap();
    for name in fixture_names("paddle_classic", &[]) {
        verify(&posted(&name), &key).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // The key pasted without its PEM lines (the dashboard's text box content) works too.
    let bare: String = PUBLIC_4096
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    verify(&posted("payment_succeeded.json"), &secrets(&[&bare])).unwrap();
}

#[test]
fn refusals_and_rotation() {
    let body = posted("subscription_payment_succeeded.json");
    let key = secrets(&[PUBLIC_4096]);
    // Any field changed, added or removed breaks the signature (they are all signed).
    let text = String::from_utf8(body.clone()).unwrap();
    for tampered in [
        text.replace("next_bill_date=2026-04-01", "next_bill_date=2027-04-01"),
        format!("{text}&extra=1"),
        text.replace("coupon=&", ""),
    ] {
        assert_ne!(tampered, text);
        assert_eq!(
            refused(verify(tampered.as_bytes(), &key)),
            "SIGNATURE_INVALID"
        );
    }
    let unsigned: String = text
        .split('&')
        .filter(|p| !p.starts_with("p_signature="))
        .collect::<Vec<_>>()
        .join("&");
    assert_eq!(
        refused(verify(unsigned.as_bytes(), &key)),
        "SIGNATURE_MISSING"
    );
    let garbled = format!("{unsigned}&p_signature=%21%21");
    assert_eq!(
        refused(verify(garbled.as_bytes(), &key)),
        "SIGNATURE_INVALID"
    );
    // Another vendor's key refuses; no key refuses; both keys (rotation) accept.
    let other = PaddleClassicKit.settings().secrets;
    assert_eq!(
        refused(verify(&body, &secrets(&[&other[0]]))),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(verify(&body, &secrets(&[" "]))),
        "SECRET_NOT_CONFIGURED"
    );
    verify(&body, &secrets(&[&other[0], PUBLIC_4096])).unwrap();
    // A `+` of the signature sent unencoded (decoded as a space) still verifies.
    let plus_as_space = text.replace("%2B", "+");
    if plus_as_space != text {
        verify(plus_as_space.as_bytes(), &key).unwrap();
    }
}

#[test]
fn the_key_must_be_a_public_key() {
    for bad in [
        "not a key",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQ==\n-----END PRIVATE KEY-----",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
    ] {
        let err = platform()
            .check_config(&secrets(&[bad]), secs(0))
            .unwrap_err();
        assert_eq!(err.code(), "SECRET_INVALID", "{bad}");
    }
    let err = platform().check_config(&secrets(&[]), secs(0)).unwrap_err();
    assert_eq!(err.code(), "SECRET_NOT_CONFIGURED");
}

#[test]
fn subscription_alerts() {
    let created = parse("subscription_created.json");
    check(
        "created",
        &created,
        Kind::SubscriptionActivated,
        Expect {
            event_id: Some("1896734051"),
            subscription_id: Some("3915024"),
            status: Some(Status::Active),
            // Paid through the end of the next bill date.
            period_end: Some(rfc("2026-04-02T00:00:00Z")),
            items: Some(vec![("652810", 1)]),
            customer_id: Some("482913"),
            email: Some("zoe@example.com"),
            partial: Some(false),
            ..Expect::default()
        },
    );
    assert_eq!(created.occurred_at, rfc("2026-03-01T10:00:00Z"));
    assert_eq!(created.ordering_version, Some(1_896_734_051));

    let trial = parse("subscription_created.trialing.json");
    check(
        "trial",
        &trial,
        Kind::TrialStarted,
        Expect {
            status: Some(Status::Trialing),
            ..Expect::default()
        },
    );
    assert_eq!(
        trial.subscription.unwrap().trial_end,
        Some(rfc("2026-03-16T00:00:00Z"))
    );

    let first = parse("subscription_payment_succeeded.json");
    check(
        "first payment",
        &first,
        Kind::SubscriptionActivated,
        Expect {
            status: Some(Status::Active),
            period_end: Some(rfc("2026-04-02T00:00:00Z")),
            order_id: Some("11300-1"),
            items: Some(vec![("652810", 1)]),
            partial: Some(true),
            ..Expect::default()
        },
    );
    // Same second as `subscription_created`: the alert id orders them.
    assert_eq!(first.occurred_at, created.occurred_at);
    assert!(first.ordering_version > created.ordering_version);
    assert_eq!(first.customer.unwrap().name.as_deref(), Some("Zoë Müller"));

    check(
        "renewal",
        &parse("subscription_payment_succeeded.renewal.json"),
        Kind::SubscriptionRenewed,
        Expect {
            period_end: Some(rfc("2026-05-02T00:00:00Z")),
            order_id: Some("11300-2"),
            ..Expect::default()
        },
    );
    check(
        "updated",
        &parse("subscription_updated.json"),
        Kind::SubscriptionUpdated,
        Expect {
            status: Some(Status::Active),
            items: Some(vec![("652810", 5)]),
            period_end: Some(rfc("2026-05-02T00:00:00Z")),
            partial: Some(false),
            ..Expect::default()
        },
    );
    check(
        "paused",
        &parse("subscription_updated.paused.json"),
        Kind::SubscriptionPaused,
        Expect {
            status: Some(Status::Paused),
            ..Expect::default()
        },
    );
    check(
        "failed",
        &parse("subscription_payment_failed.json"),
        Kind::PaymentFailed,
        Expect {
            status: Some(Status::PastDue),
            order_id: Some("11300-3"),
            ..Expect::default()
        },
    );
    let cancelled = parse("subscription_cancelled.json");
    check(
        "cancelled",
        &cancelled,
        Kind::SubscriptionCancelScheduled,
        Expect {
            status: Some(Status::Active),
            cancel_at_period_end: Some(true),
            items: Some(vec![("652810", 5)]),
            ..Expect::default()
        },
    );
    assert_eq!(
        cancelled.subscription.unwrap().cancel_at,
        Some(rfc("2026-06-02T00:00:00Z"))
    );
    let refund = parse("subscription_payment_refunded.json");
    check(
        "refund",
        &refund,
        Kind::Refunded,
        Expect {
            subscription_id: Some("3915024"),
            order_id: Some("11300-2"),
            partial: Some(true),
            ..Expect::default()
        },
    );
    assert_eq!(refund.reversal, Some(Reversal::FullRefund));
    assert_eq!(refund.subscription.unwrap().status, None);
    let vat = parse("subscription_payment_refunded.vat.json");
    assert_eq!(vat.reversal, Some(Reversal::TaxOnlyRefund));
}

#[test]
fn a_cancellation_already_in_effect_ends_the_subscription() {
    let body = form_encode(&[
        ("alert_name".into(), "subscription_cancelled".into()),
        ("alert_id".into(), "7".into()),
        ("event_time".into(), "2026-05-02 16:40:00".into()),
        ("subscription_id".into(), "3915024".into()),
        ("cancellation_effective_date".into(), "2026-04-30".into()),
        ("status".into(), "deleted".into()),
    ]);
    let headers = Headers::new();
    let event = platform()
        .parse(&Request::post(&headers, body.as_bytes()))
        .unwrap()
        .remove(0);
    assert_eq!(event.kind, Kind::SubscriptionCanceled);
    let sub = event.subscription.unwrap();
    assert_eq!(sub.status, Some(Status::Canceled));
    assert_eq!(sub.ended_at, Some(rfc("2026-05-01T00:00:00Z")));
}

#[test]
fn one_time_alerts() {
    check(
        "paid",
        &parse("payment_succeeded.json"),
        Kind::OrderPaid,
        Expect {
            event_id: Some("1896760001"),
            order_id: Some("11301-7"),
            items: Some(vec![("552010", 2)]),
            email: Some("zoe@example.com"),
            ..Expect::default()
        },
    );
    let refund = parse("payment_refunded.json");
    check(
        "refund",
        &refund,
        Kind::Refunded,
        Expect {
            order_id: Some("11301-7"),
            ..Expect::default()
        },
    );
    assert_eq!(refund.reversal, Some(Reversal::PartialRefund));
    let dispute = parse("payment_dispute_created.json");
    check(
        "dispute",
        &dispute,
        Kind::Chargeback,
        Expect {
            order_id: Some("11301-7"),
            ..Expect::default()
        },
    );
    check(
        "locker",
        &parse("locker_processed.json"),
        Kind::Ignored,
        Expect::default(),
    );
}

#[test]
fn malformed_alerts() {
    let headers = Headers::new();
    for (body, why) in [
        (
            &b"alert_name=subscription_created&event_time=2026-01-01+00%3A00%3A00"[..],
            "no alert_id",
        ),
        (b"alert_id=1&alert_name=x&event_time=yesterday", "bad time"),
        (
            b"alert_id=1&event_time=2026-01-01+00%3A00%3A00&a=%FF",
            "not UTF-8",
        ),
    ] {
        let err = platform()
            .parse(&Request::post(&headers, body))
            .unwrap_err();
        assert_eq!(err.code(), "MALFORMED_PAYLOAD", "{why}");
    }
    // An unknown alert is stored and ignored.
    let event = platform()
        .parse(&Request::post(
            &headers,
            b"alert_id=9&alert_name=transfer_paid&event_time=2026-01-01+00%3A00%3A00",
        ))
        .unwrap()
        .remove(0);
    assert_eq!(event.kind, Kind::Ignored);
}
