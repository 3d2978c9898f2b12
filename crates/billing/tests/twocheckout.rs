//! 2Checkout: the length-prefixed HMAC over the form (SHA3-256, SHA-256, MD5), the read
//! receipt, IPN and LCN parsing, every fixture.

mod common;

use common::*;
use keygate_billing::providers::twocheckout::TwoCheckout;
use keygate_billing::scheme::length_prefixed_hmac::{Algorithm, sign};
use keygate_billing::testkit::TwoCheckoutKit;
use keygate_billing::{
    BillingEvent, BillingEventKind as Kind, Form, Headers, Provider, Request, Secrets,
    SubscriptionStatus as Status, Timestamp,
};
use keygate_domain::billing::Reversal;

const SECRET: &str = "fixture-secret-key";

fn fixture_pairs(name: &str) -> serde_json::Value {
    serde_json::from_slice(&fixture("twocheckout", name)).unwrap()
}

/// The fixture as 2Checkout posts it: form-encoded, signed with all three algorithms.
fn delivery(name: &str, secret: &str) -> Vec<u8> {
    TwoCheckoutKit
        .form(&secrets(&[secret]), &fixture_pairs(name))
        .unwrap()
}

fn verify(body: &[u8], s: &Secrets) -> Result<(), keygate_billing::BillingError> {
    TwoCheckout.verify(&Request::post(&Headers::new(), body), s, secs(0))
}

fn parse(name: &str) -> Vec<BillingEvent> {
    let body = delivery(name, SECRET);
    verify(&body, &secrets(&[SECRET])).unwrap_or_else(|e| panic!("{name}: {e}"));
    TwoCheckout
        .parse(&Request::post(&Headers::new(), &body))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn one(name: &str) -> BillingEvent {
    let mut events = parse(name);
    assert_eq!(events.len(), 1, "{name}: {events:?}");
    events.remove(0)
}

/// Removes the named signature fields from a signed body.
fn without(body: &[u8], fields: &[&str]) -> Vec<u8> {
    let text = String::from_utf8(body.to_vec()).unwrap();
    text.split('&')
        .filter(|pair| !fields.iter().any(|f| pair.starts_with(&format!("{f}="))))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

#[test]
fn official_lcn_read_receipt_through_the_provider() {
    // The LCN read-receipt example: LICENSE_CODE, EXPIRATION_DATE, key AABBCCDDEEFF, answered
    // at 2008-11-17 14:59:35.
    let key = "AABBCCDDEEFF";
    let unsigned =
        "LICENSE_CODE=3C343D0FAF&EXPIRATION_DATE=2005-03-03&DATE_UPDATED=2005-03-01+10%3A00%3A00";
    let form = Form::parse(unsigned.as_bytes()).unwrap();
    let body = format!(
        "{unsigned}&HASH={}",
        sign(Algorithm::Md5, key.as_bytes(), &form)
    );
    let s = secrets(&[key]);
    let headers = Headers::new();
    let request = Request::post(&headers, body.as_bytes());
    TwoCheckout.verify(&request, &s, secs(0)).unwrap();
    let ack = TwoCheckout.acknowledge_signed(&request, &s, &[], rfc("2008-11-17T14:59:35Z"));
    assert_eq!(ack.status, 200);
    assert_eq!(
        String::from_utf8(ack.body).unwrap(),
        "<EPAYMENT>20081117145935|cb34fe2991668eb82364edf62f845a34</EPAYMENT>"
    );
}

#[test]
fn the_receipt_uses_the_requests_algorithm_and_key() {
    let body = delivery("ipn.COMPLETE.regular.json", "new-key");
    let s = secrets(&["old-key", "new-key"]);
    let now = rfc("2026-01-01T08:00:41Z");
    let headers = Headers::new();
    let receipt = |body: &[u8]| {
        let request = Request::post(&headers, body);
        String::from_utf8(TwoCheckout.acknowledge_signed(&request, &s, &[], now).body).unwrap()
    };
    // IPN_PID[0], IPN_PNAME[0], IPN_DATE, then the answer's date (UTC).
    let values = ["40898000", "Pro Monthly", "20260101100040"];
    let expected = |algorithm| {
        keygate_billing::scheme::length_prefixed_hmac::read_receipt(
            algorithm,
            b"new-key",
            &values,
            "20260101080041",
        )
    };
    assert_eq!(receipt(&body), expected(Algorithm::Sha3_256));
    assert!(receipt(&body).starts_with(r#"<sig algo="sha3-256" date="20260101080041">"#));
    let sha2 = without(&body, &["SIGNATURE_SHA3_256"]);
    verify(&sha2, &s).unwrap();
    assert_eq!(receipt(&sha2), expected(Algorithm::Sha256));
    let md5 = without(&body, &["SIGNATURE_SHA3_256", "SIGNATURE_SHA2_256"]);
    verify(&md5, &s).unwrap();
    assert_eq!(receipt(&md5), expected(Algorithm::Md5));
    assert!(receipt(&md5).starts_with("<EPAYMENT>20260101080041|"));
    // Not signed with a configured key: no receipt (2Checkout will retry).
    let other = delivery("ipn.COMPLETE.regular.json", "third-key");
    assert!(receipt(&other).starts_with('{'));
}

#[test]
fn refusals_and_rotation() {
    let s = secrets(&[SECRET]);
    let body = delivery("ipn.COMPLETE.regular.json", SECRET);
    verify(&body, &s).unwrap();
    // Any changed value, or the same values in another order, is refused.
    let text = String::from_utf8(body.clone()).unwrap();
    let tampered = text.replace("IPN_QTY%5B%5D=1", "IPN_QTY%5B%5D=9");
    assert_ne!(tampered, text);
    assert_eq!(
        refused(verify(tampered.as_bytes(), &s)),
        "SIGNATURE_INVALID"
    );
    let mut pairs: Vec<&str> = text.split('&').collect();
    pairs.swap(1, 2);
    assert_eq!(
        refused(verify(pairs.join("&").as_bytes(), &s)),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(verify(&delivery("ipn.COMPLETE.regular.json", "other"), &s)),
        "SIGNATURE_INVALID"
    );
    let unsigned = without(&body, &["SIGNATURE_SHA3_256", "SIGNATURE_SHA2_256", "HASH"]);
    assert_eq!(refused(verify(&unsigned, &s)), "SIGNATURE_MISSING");
    assert_eq!(
        refused(verify(&body, &secrets(&[]))),
        "SECRET_NOT_CONFIGURED"
    );
    assert_eq!(
        refused(verify(&body, &secrets(&["  "]))),
        "SECRET_NOT_CONFIGURED"
    );
    assert_eq!(
        refused(verify(b"REFNO=1&HASH=%FF", &s)),
        "MALFORMED_PAYLOAD"
    );
    let both = secrets(&["old-key", "new-key"]);
    for key in ["old-key", "new-key"] {
        verify(&delivery("lcn.ACTIVE.json", key), &both).unwrap();
    }
    assert_eq!(
        refused(verify(&delivery("lcn.ACTIVE.json", "third"), &both)),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        TwoCheckout
            .check_config(&secrets(&[]), secs(0))
            .unwrap_err()
            .code(),
        "SECRET_NOT_CONFIGURED"
    );
}

#[test]
fn the_lcn_url_check_answers_200() {
    assert!(TwoCheckout.answers_get());
    let headers = Headers::new();
    let ack = TwoCheckout
        .challenge(&Request::get(&headers, ""), &secrets(&[SECRET]))
        .unwrap();
    assert_eq!(ack.status, 200);
    assert_eq!(
        TwoCheckout
            .challenge(&Request::get(&headers, ""), &secrets(&[]))
            .unwrap_err()
            .code(),
        "SECRET_NOT_CONFIGURED"
    );
}

/// Dates are local to `TIMEZONE_OFFSET` (GMT+02:00 in the fixtures).
fn local(text: &str) -> Timestamp {
    rfc(&format!("{}+02:00", text.replace(' ', "T")))
}

#[test]
fn ipn_subscription_orders() {
    let e = one("ipn.COMPLETE.regular.json");
    check(
        "regular",
        &e,
        Kind::SubscriptionActivated,
        Expect {
            event_id: Some("211153389:COMPLETE:25083389CO:LCS7N0W2Q1"),
            subscription_id: Some("LCS7N0W2Q1"),
            status: Some(Status::Active),
            period_end: Some(local("2026-02-01 10:00:30")),
            items: Some(vec![("PRO-M", 1)]),
            customer_id: Some("756227060"),
            email: Some("ann@example.com"),
            partial: Some(true),
            ..Expect::default()
        },
    );
    assert_eq!(e.occurred_at, local("2026-01-01 10:00:40"));
    assert!(e.livemode);
    assert_eq!(
        e.customer.as_ref().unwrap().name.as_deref(),
        Some("Ann Example")
    );
    assert_eq!(e.event_type, "ipn.complete");

    let e = one("ipn.COMPLETE.renew.json");
    check(
        "renew",
        &e,
        Kind::SubscriptionRenewed,
        Expect {
            subscription_id: Some("LCS7N0W2Q1"),
            period_end: Some(local("2026-03-01 10:00:30")),
            items: Some(vec![("PRO-M", 1)]),
            ..Expect::default()
        },
    );
    let e = one("ipn.COMPLETE.upgrade.json");
    check(
        "upgrade",
        &e,
        Kind::SubscriptionUpdated,
        Expect {
            status: Some(Status::Active),
            items: Some(vec![("PRO-M", 5)]),
            ..Expect::default()
        },
    );
    let e = one("ipn.COMPLETE.trial.json");
    check(
        "trial",
        &e,
        Kind::TrialStarted,
        Expect {
            subscription_id: Some("LCSTRIAL01"),
            status: Some(Status::Trialing),
            ..Expect::default()
        },
    );
    assert_eq!(
        e.subscription.unwrap().trial_end,
        Some(local("2026-01-15 10:00:30"))
    );
}

#[test]
fn ipn_one_time_orders() {
    // Lifetime products are order lines; the code, else the numeric id, is the mapping id.
    let e = one("ipn.COMPLETE.lifetime.json");
    check(
        "lifetime",
        &e,
        Kind::OrderPaid,
        Expect {
            order_id: Some("211170042"),
            items: Some(vec![("PRO-LIFE", 2), ("40898222", 1)]),
            customer_id: Some("756227060"),
            ..Expect::default()
        },
    );
    assert!(e.subscription.is_none());
    assert!(!e.livemode, "TEST_ORDER=1");
    check(
        "payment received",
        &one("ipn.PAYMENT_RECEIVED.json"),
        Kind::OrderPaid,
        Expect {
            order_id: Some("211170043"),
            items: Some(vec![("PRO-LIFE", 1)]),
            ..Expect::default()
        },
    );
}

#[test]
fn ipn_reversals() {
    let e = one("ipn.REFUND.full.json");
    check(
        "refund",
        &e,
        Kind::Refunded,
        Expect {
            subscription_id: Some("LCS7N0W2Q1"),
            partial: Some(true),
            ..Expect::default()
        },
    );
    assert_eq!(e.reversal, Some(Reversal::FullRefund));
    assert_eq!(e.subscription.as_ref().unwrap().status, None);
    let e = one("ipn.REFUND.partial.json");
    assert_eq!(
        (e.kind, e.reversal),
        (Kind::Refunded, Some(Reversal::PartialRefund))
    );
    assert_eq!(e.order_id(), Some("211170042"));
    let e = one("ipn.REVERSED.json");
    assert_eq!(
        (e.kind, e.reversal),
        (Kind::Chargeback, Some(Reversal::Chargeback))
    );
    assert_eq!(e.subscription_id(), Some("LCS7N0W2Q1"));
    let e = one("ipn.CANCELED.json");
    assert_eq!(
        (e.kind, e.reversal),
        (Kind::Refunded, Some(Reversal::FullRefund))
    );
    assert_eq!(e.order_id(), Some("211170043"));
}

#[test]
fn ignored_ipns() {
    for name in ["ipn.PENDING.json", "ipn.COMPLETE.fraud_denied.json"] {
        let e = one(name);
        assert_eq!(e.kind, Kind::Ignored, "{name}");
    }
}

#[test]
fn lcn_changes() {
    let e = one("lcn.ACTIVE.json");
    check(
        "active",
        &e,
        Kind::SubscriptionUpdated,
        Expect {
            event_id: Some("lcn:LCS7N0W2Q1:2026-02-20 09:15:00:ACTIVE"),
            subscription_id: Some("LCS7N0W2Q1"),
            status: Some(Status::Active),
            period_end: Some(local("2026-03-01 10:00:30")),
            customer_id: Some("756227060"),
            email: Some("ann@example.com"),
            partial: Some(false),
            cancel_at_period_end: Some(false),
            items: Some(vec![]),
            ..Expect::default()
        },
    );
    assert_eq!(e.occurred_at, local("2026-02-20 09:15:00"));
    assert_eq!(e.event_type, "lcn.licence_change");

    let e = one("lcn.ACTIVE.recurring_off.json");
    check(
        "recurring off",
        &e,
        Kind::SubscriptionCancelScheduled,
        Expect {
            status: Some(Status::Active),
            cancel_at_period_end: Some(true),
            ..Expect::default()
        },
    );
    assert_eq!(
        e.subscription.unwrap().cancel_at,
        Some(local("2026-03-01 10:00:30"))
    );
    check(
        "past due",
        &one("lcn.PASTDUE.json"),
        Kind::PaymentFailed,
        Expect {
            status: Some(Status::PastDue),
            ..Expect::default()
        },
    );
    // Expired: ended at its expiration (the license expires by its date).
    let e = one("lcn.EXPIRED.json");
    assert_eq!(e.kind, Kind::SubscriptionCanceled);
    let sub = e.subscription.unwrap();
    assert_eq!(sub.status, Some(Status::Canceled));
    assert_eq!(sub.ended_at, Some(local("2026-03-01 10:00:30")));
    // Disabled: ended now, before the paid-through date (suspended).
    let e = one("lcn.DISABLED.json");
    assert_eq!(e.kind, Kind::SubscriptionCanceled);
    assert!(!e.livemode, "TEST=1");
    let sub = e.subscription.unwrap();
    assert_eq!(sub.ended_at, Some(local("2026-02-25 12:00:00")));
}

#[test]
fn every_fixture_verifies_and_parses() {
    for name in fixture_names("twocheckout", &[]) {
        let events = parse(&name);
        assert!(!events.is_empty(), "{name}");
        for e in &events {
            let json = serde_json::to_string(e).unwrap();
            assert_eq!(&serde_json::from_str::<BillingEvent>(&json).unwrap(), e);
        }
    }
}

#[test]
fn an_order_with_subscriptions_and_lifetime_products_is_split() {
    let body = "REFNO=9&ORDERSTATUS=COMPLETE&IPN_PID[]=1&IPN_PID[]=2&IPN_PID[]=3\
                &IPN_PCODE[]=SUB-A&IPN_PCODE[]=LIFE&IPN_PCODE[]=SUB-B\
                &IPN_QTY[]=1&IPN_QTY[]=3&IPN_QTY[]=2\
                &IPN_LICENSE_TYPE[]=REGULAR&IPN_LICENSE_TYPE[]=REGULAR&IPN_LICENSE_TYPE[]=RENEW\
                &IPN_LICENSE_REF[]=RA&IPN_LICENSE_REF[]=RL&IPN_LICENSE_REF[]=RB\
                &IPN_LICENSE_EXP[]=2026-02-01+00:00:00&IPN_LICENSE_EXP[]=9999-12-31+23:59:59\
                &IPN_LICENSE_EXP[]=2026-03-01+00:00:00&IPN_DATE=20260101000000";
    let events = TwoCheckout
        .parse(&Request::post(&Headers::new(), body.as_bytes()))
        .unwrap();
    type Summary<'a> = (Kind, Option<&'a str>, Vec<(&'a str, i64)>);
    let summary: Vec<Summary> = events
        .iter()
        .map(|e| {
            (
                e.kind,
                e.subscription_id(),
                e.items()
                    .iter()
                    .map(|i| (i.external_id.as_str(), i.quantity))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (Kind::SubscriptionActivated, Some("RA"), vec![("SUB-A", 1)]),
            (Kind::SubscriptionRenewed, Some("RB"), vec![("SUB-B", 2)]),
            (Kind::OrderPaid, None, vec![("LIFE", 3)]),
        ]
    );
    // Distinct ids (MESSAGE_ID absent: IPN_DATE).
    assert_eq!(events[0].event_id, "9:COMPLETE:20260101000000:RA");
    assert_eq!(events[2].event_id, "9:COMPLETE:20260101000000");
    // A bad quantity or a product with no id is refused, not guessed.
    let bad = body.replace("IPN_QTY[]=3", "IPN_QTY[]=three");
    assert_eq!(
        TwoCheckout
            .parse(&Request::post(&Headers::new(), bad.as_bytes()))
            .unwrap_err()
            .code(),
        "MALFORMED_PAYLOAD"
    );
    assert_eq!(
        TwoCheckout
            .parse(&Request::post(&Headers::new(), b"FOO=1"))
            .unwrap_err()
            .code(),
        "MALFORMED_PAYLOAD"
    );
}
