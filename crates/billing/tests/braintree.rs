//! Braintree: `bt_signature` (HMAC-SHA1 keyed with SHA-1 of the private key) over `bt_payload`,
//! the challenge, the XML notifications, every fixture.

mod common;

use common::*;
use keygate_billing::providers::braintree::Braintree;
use keygate_billing::scheme::hashed_key_hmac::KeyPair;
use keygate_billing::testkit::{BraintreeKit, Kit};
use keygate_billing::{
    BillingEvent, BillingEventKind as Kind, Headers, Provider, Request, Secrets,
    SubscriptionStatus as Status,
};
use keygate_domain::billing::Reversal;
use serde_json::json;

const PAIR: &str = "bt_public_fixture:bt_private_fixture";

fn xml(name: &str) -> String {
    String::from_utf8(std::fs::read(fixtures_dir("braintree").join(name)).unwrap()).unwrap()
}

/// The fixture as Braintree posts it, signed with `pair`.
fn delivery(name: &str, pair: &str) -> Vec<u8> {
    BraintreeKit
        .form(&secrets(&[pair]), &json!({"xml": xml(name)}))
        .unwrap()
}

fn verify(body: &[u8], s: &Secrets) -> Result<(), keygate_billing::BillingError> {
    Braintree.verify(&Request::post(&Headers::new(), body), s, secs(0))
}

fn one(name: &str) -> BillingEvent {
    let body = delivery(name, PAIR);
    verify(&body, &secrets(&[PAIR])).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut events = Braintree
        .parse(&Request::post(&Headers::new(), &body))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(events.len(), 1, "{name}");
    events.remove(0)
}

fn xml_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir("braintree"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".xml"))
        .collect();
    names.sort();
    names
}

/// The form of a signature and payload, encoded as a browser does.
fn form(signature: &str, payload: &str) -> Vec<u8> {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect::<String>()
    };
    format!(
        "bt_signature={}&bt_payload={}",
        enc(signature),
        enc(payload)
    )
    .into_bytes()
}

#[test]
fn official_challenge_through_the_provider() {
    let s = secrets(&["integration_public_key:integration_private_key"]);
    let headers = Headers::new();
    let request = Request::get(&headers, "bt_challenge=20f9f8ed05f77439fe955c977e4c8a53");
    assert!(Braintree.answers_get());
    let ack = Braintree.challenge(&request, &s).unwrap();
    assert_eq!(ack.status, 200);
    assert_eq!(
        String::from_utf8(ack.body).unwrap(),
        "integration_public_key|d9b899556c966b3f06945ec21311865d35df3ce4"
    );
    let bad = Request::get(&headers, "bt_challenge=not-hex");
    assert_eq!(
        Braintree.challenge(&bad, &s).unwrap_err().code(),
        "MALFORMED_PAYLOAD"
    );
    let none = Request::get(&headers, "");
    assert_eq!(
        Braintree.challenge(&none, &s).unwrap_err().code(),
        "MALFORMED_PAYLOAD"
    );
    assert_eq!(
        Braintree
            .challenge(&request, &secrets(&[]))
            .unwrap_err()
            .code(),
        "SECRET_NOT_CONFIGURED"
    );
}

#[test]
fn refusals_and_rotation() {
    let s = secrets(&[PAIR]);
    let body = delivery("subscription_went_active.xml", PAIR);
    verify(&body, &s).unwrap();
    let payload = keygate_billing::testkit::braintree_payload(xml("subscription_went_active.xml"));
    let pair = KeyPair::parse(PAIR).unwrap();
    // The SDK's own refusals: another merchant's key, a modified payload, garbage, no fields.
    let other = KeyPair::parse("someone_else:their_private").unwrap();
    assert_eq!(
        refused(verify(&form(&other.sign(&payload), &payload), &s)),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(verify(
            &form(&pair.sign(&payload), &format!("AAAA{payload}")),
            &s
        )),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(verify(&form("bad_stuff", &payload), &s)),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(verify(
            &form(&pair.sign("~* invalid! *~"), "~* invalid! *~"),
            &s
        )),
        "SIGNATURE_INVALID"
    );
    // A `+` sent unencoded decodes to a space, which base64 never holds.
    let raw_plus = String::from_utf8(body.clone()).unwrap().replace("%2B", "+");
    if raw_plus.as_bytes() != body.as_slice() {
        assert_eq!(
            refused(verify(raw_plus.as_bytes(), &s)),
            "SIGNATURE_INVALID"
        );
    }
    assert_eq!(
        refused(verify(format!("bt_payload={}", "QUJD").as_bytes(), &s)),
        "SIGNATURE_MISSING"
    );
    assert_eq!(
        refused(verify(b"bt_signature=a%7Cb", &s)),
        "SIGNATURE_MISSING"
    );
    assert_eq!(
        refused(verify(&body, &secrets(&[]))),
        "SECRET_NOT_CONFIGURED"
    );
    // A secret not of the `public:private` form is refused, never ignored.
    assert_eq!(
        refused(verify(&body, &secrets(&["just-a-private-key"]))),
        "SECRET_NOT_CONFIGURED"
    );
    assert_eq!(
        Braintree
            .check_config(&secrets(&["just-a-private-key"]), secs(0))
            .unwrap_err()
            .code(),
        "SECRET_INVALID"
    );
    assert_eq!(
        Braintree
            .check_config(&secrets(&[]), secs(0))
            .unwrap_err()
            .code(),
        "SECRET_NOT_CONFIGURED"
    );
    Braintree.check_config(&secrets(&[PAIR]), secs(0)).unwrap();
    // Rotation: either configured pair, and a signature listing several pairs.
    let both = secrets(&["old_public:old_private", PAIR]);
    verify(&body, &both).unwrap();
    let old = KeyPair::parse("old_public:old_private").unwrap();
    let several = format!("{}&{}", other.sign(&payload), old.sign(&payload));
    verify(&form(&several, &payload), &both).unwrap();
    // The same public key with another private key does not verify.
    assert_eq!(
        refused(verify(&body, &secrets(&["bt_public_fixture:wrong"]))),
        "SIGNATURE_INVALID"
    );
}

#[test]
fn subscription_kinds() {
    let e = one("subscription_went_active.xml");
    check(
        "went_active",
        &e,
        Kind::SubscriptionActivated,
        Expect {
            event_id: Some("subscription_went_active:fpps4w:2026-01-15T09:30:06Z"),
            subscription_id: Some("fpps4w"),
            status: Some(Status::Active),
            // The paid-through day, through its end.
            period_end: Some(rfc("2026-02-15T00:00:00Z")),
            // The plan (quantity 1) and the seat add-on with its quantity.
            items: Some(vec![("pro-monthly", 1), ("pro-seat", 3)]),
            customer_id: Some("86199926"),
            email: Some("ann@example.com"),
            order_id: Some("3fg66b"),
            partial: Some(false),
            ..Expect::default()
        },
    );
    assert_eq!(e.occurred_at, rfc("2026-01-15T09:30:06Z"));
    assert_eq!(e.customer.unwrap().name.as_deref(), Some("Ann Example"));

    let e = one("subscription_went_active.trial.xml");
    check(
        "trial",
        &e,
        Kind::TrialStarted,
        Expect {
            status: Some(Status::Trialing),
            ..Expect::default()
        },
    );
    assert_eq!(
        e.subscription.unwrap().trial_end,
        Some(rfc("2026-01-15T00:00:00Z"))
    );

    let e = one("subscription_charged_successfully.xml");
    check(
        "charged",
        &e,
        Kind::SubscriptionRenewed,
        Expect {
            event_id: Some("subscription_charged_successfully:7hk21q"),
            period_end: Some(rfc("2026-03-15T00:00:00Z")),
            order_id: Some("7hk21q"),
            ..Expect::default()
        },
    );
    assert_eq!(e.order_aliases, ["3fg66b"]);

    // A proration charge mid-cycle: a new transaction, the same paid-through date.
    let p = one("subscription_charged_successfully.proration.xml");
    assert_eq!(p.kind, Kind::SubscriptionRenewed);
    assert_ne!(p.event_id, e.event_id);
    assert_eq!(
        p.subscription.as_ref().unwrap().current_period_end,
        e.subscription.as_ref().unwrap().current_period_end
    );

    for name in [
        "subscription_charged_unsuccessfully.xml",
        "subscription_went_past_due.xml",
    ] {
        check(
            name,
            &one(name),
            Kind::PaymentFailed,
            Expect {
                status: Some(Status::PastDue),
                period_end: Some(rfc("2026-03-15T00:00:00Z")),
                ..Expect::default()
            },
        );
    }
    assert_eq!(
        one("subscription_charged_unsuccessfully.xml").event_id,
        "subscription_charged_unsuccessfully:2fd8zk"
    );

    // Canceled / expired: ended at the paid-through date (what was paid for runs out).
    for name in ["subscription_canceled.xml", "subscription_expired.xml"] {
        let e = one(name);
        check(
            name,
            &e,
            Kind::SubscriptionCanceled,
            Expect {
                status: Some(Status::Canceled),
                ..Expect::default()
            },
        );
        assert_eq!(
            e.subscription.unwrap().ended_at,
            Some(rfc("2026-03-15T00:00:00Z")),
            "{name}"
        );
    }

    // The SDK's sample generator sends only the id: a partial snapshot.
    let e = one("subscription_went_past_due.sample.xml");
    check(
        "sample",
        &e,
        Kind::PaymentFailed,
        Expect {
            subscription_id: Some("fpps4w"),
            status: Some(Status::PastDue),
            partial: Some(true),
            ..Expect::default()
        },
    );
}

#[test]
fn disputes() {
    let e = one("dispute_opened.xml");
    assert_eq!(
        (e.kind, e.reversal),
        (Kind::Chargeback, Some(Reversal::Chargeback))
    );
    assert_eq!(e.order_id(), Some("7hk21q"));
    assert_eq!(e.event_id, "dispute_opened:9qde5qgp:2026-03-01T10:00:01Z");
    let e = one("dispute_opened.retrieval.xml");
    assert_eq!(
        (e.kind, e.reversal),
        (Kind::Chargeback, Some(Reversal::DisputeInquiry))
    );
    let e = one("dispute_lost.xml");
    assert_eq!(
        (e.kind, e.reversal),
        (Kind::Chargeback, Some(Reversal::Chargeback))
    );
    assert_eq!(one("dispute_won.xml").kind, Kind::Ignored);
    assert_eq!(one("check.xml").kind, Kind::Ignored);
}

#[test]
fn every_fixture_verifies_and_parses() {
    for name in xml_names() {
        let e = one(&name);
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            serde_json::from_str::<BillingEvent>(&json).unwrap(),
            e,
            "{name}"
        );
    }
}

#[test]
fn malformed_notifications_are_refused_with_a_code() {
    let parse = |payload: &str| {
        Braintree
            .parse(&Request::post(&Headers::new(), &form("x|y", payload)))
            .unwrap_err()
            .code()
            .as_str()
    };
    let b64 = keygate_billing::testkit::braintree_payload;
    assert_eq!(parse("***"), "MALFORMED_PAYLOAD");
    assert_eq!(parse(&b64("<notification>")), "MALFORMED_PAYLOAD");
    assert_eq!(parse(&b64("<other/>")), "MALFORMED_PAYLOAD");
    assert_eq!(
        parse(&b64("<notification><kind>check</kind></notification>")),
        "MALFORMED_PAYLOAD"
    );
    assert_eq!(
        parse(&b64(
            "<notification><kind>dispute_opened</kind><timestamp>2026-01-01T00:00:00Z</timestamp>\
             <subject><dispute><id>d</id></dispute></subject></notification>"
        )),
        "MALFORMED_PAYLOAD"
    );
    // An unknown kind is ignored, not an error.
    let unknown = Braintree
        .parse(&Request::post(
            &Headers::new(),
            &form(
                "x|y",
                &b64("<notification><kind>local_payment_funded</kind>\
                      <timestamp>2026-01-01T00:00:00Z</timestamp><subject/></notification>"),
            ),
        ))
        .unwrap();
    assert_eq!(unknown[0].kind, Kind::Ignored);
}

#[test]
fn the_kit_signs_what_verify_accepts() {
    let kit = BraintreeKit;
    let settings = kit.settings().secrets();
    Braintree.check_config(&settings, secs(0)).unwrap();
    let steps = kit.steps(1_800_000_000, 1_800_000_000).unwrap();
    let headers = Headers::new();
    for (step, bodies) in steps.all() {
        for body in bodies {
            let form = kit.form(&settings, body).unwrap();
            let request = Request::post(&headers, &form);
            Braintree
                .verify(&request, &settings, secs(0))
                .unwrap_or_else(|e| panic!("{step}: {e}"));
            let events = Braintree.parse(&request).unwrap();
            assert_ne!(events[0].kind, Kind::Ignored, "{step}");
        }
    }
}
