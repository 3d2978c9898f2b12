//! Recurly: the signature scheme (the Ruby SDK's official vector), every notification fixture,
//! and the completion of thin notifications from the v3 API's answers (`fixtures/recurly/api`).

mod common;

use common::*;
use keygate_billing::api::{Fetch, ObjectKind};
use keygate_billing::{
    BillingEvent, BillingEventKind as Kind, Headers, Provider, SubscriptionStatus as Status,
};
use keygate_domain::billing::Reversal;
use serde_json::Value;

const OFFICIAL_SECRET: &str = "354fab5bd35f5a0d50845ee7e30165244468b13c2c343f104e4e730a59326d9d";
const OFFICIAL_BODY: &[u8] = br#"{"id":"rjxwmwedwqug","object_type":"account","site_id":"qc326l1hl8k9","event_type":"created","event_time":"2022-09-13T21:18:40Z","account_code":"adfas23zzz14123"}"#;
const OFFICIAL_HEADER: &str =
    "1663103925004,ad24699f3beaa24c9af2cc7ada3ce4c835da0090194241b9d3add83d27f14bc3";

fn recurly() -> Platform {
    Platform::named("recurly")
}

fn provider() -> &'static dyn Provider {
    keygate_billing::provider("recurly").unwrap()
}

fn header(value: &str) -> Headers {
    Headers::new().with("Recurly-Signature", value)
}

fn ms(millis: i64) -> keygate_billing::Timestamp {
    keygate_billing::Timestamp(millis)
}

/// `spec/recurly/webhooks_spec.rb`: the vector verifies at its own time (and within 5 min
/// either way), not after, not with another body or key.
#[test]
fn official_ruby_sdk_vector() {
    let s = secrets(&[OFFICIAL_SECRET]);
    let at = 1_663_103_925_004;
    for now in [at, at + 300_000, at - 300_000] {
        recurly()
            .verify(&header(OFFICIAL_HEADER), OFFICIAL_BODY, &s, ms(now))
            .unwrap();
    }
    for now in [at + 300_001, at - 300_001] {
        assert_eq!(
            refused(recurly().verify(&header(OFFICIAL_HEADER), OFFICIAL_BODY, &s, ms(now))),
            "TIMESTAMP_OUT_OF_TOLERANCE"
        );
    }
    let tampered = String::from_utf8_lossy(OFFICIAL_BODY).replace("adfas", "xdfas");
    assert_eq!(
        refused(recurly().verify(&header(OFFICIAL_HEADER), tampered.as_bytes(), &s, ms(at))),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(recurly().verify(
            &header(OFFICIAL_HEADER),
            OFFICIAL_BODY,
            &secrets(&["another-endpoint-key"]),
            ms(at)
        )),
        "SIGNATURE_INVALID"
    );
    // The signer reproduces the vector.
    assert_eq!(
        keygate_billing::providers::recurly::SCHEME.sign(
            OFFICIAL_SECRET.as_bytes(),
            at,
            OFFICIAL_BODY
        ),
        OFFICIAL_HEADER
    );
}

#[test]
fn rotation_missing_header_and_no_secret() {
    let at = 1_663_103_925_004;
    let (_, official_sig) = OFFICIAL_HEADER.split_once(',').unwrap();
    // During a rotation Recurly signs with both keys: either configured key verifies.
    let new_sig =
        keygate_billing::providers::recurly::SCHEME.sign(b"the-new-key", at, OFFICIAL_BODY);
    let (_, new_sig) = new_sig.split_once(',').unwrap();
    let both = format!("{at},{new_sig},{official_sig}");
    for keys in [[OFFICIAL_SECRET], ["the-new-key"]] {
        recurly()
            .verify(&header(&both), OFFICIAL_BODY, &secrets(&keys), ms(at))
            .unwrap();
    }
    recurly()
        .verify(
            &header(OFFICIAL_HEADER),
            OFFICIAL_BODY,
            &secrets(&["the-new-key", OFFICIAL_SECRET]),
            ms(at),
        )
        .unwrap();
    assert_eq!(
        refused(recurly().verify(
            &Headers::new(),
            OFFICIAL_BODY,
            &secrets(&[OFFICIAL_SECRET]),
            ms(at)
        )),
        "SIGNATURE_MISSING"
    );
    assert_eq!(
        refused(recurly().verify(
            &header(OFFICIAL_HEADER),
            OFFICIAL_BODY,
            &secrets(&[]),
            ms(at)
        )),
        "SECRET_NOT_CONFIGURED"
    );
    for bad in ["1663103925004", "abc,00", ",ad24"] {
        assert_eq!(
            refused(recurly().verify(
                &header(bad),
                OFFICIAL_BODY,
                &secrets(&[OFFICIAL_SECRET]),
                ms(at)
            )),
            "SIGNATURE_INVALID",
            "{bad}"
        );
    }
    // `tolerance_seconds` widens the window.
    let wide =
        secrets(&[OFFICIAL_SECRET]).with_options(serde_json::json!({"tolerance_seconds": 3600}));
    recurly()
        .verify(
            &header(OFFICIAL_HEADER),
            OFFICIAL_BODY,
            &wide,
            ms(at + 3_000_000),
        )
        .unwrap();
}

fn notified(id: &str) -> Headers {
    Headers::new().with("recurly-notification-id", id)
}

fn api(name: &str) -> Value {
    serde_json::from_slice(&fixture("recurly", &format!("api/{name}"))).unwrap()
}

/// Completes `event` as the server does: fetch what it names (answered by `answer`), complete,
/// and go round again while it names more.
fn complete(event: BillingEvent, answer: impl Fn(&str) -> Value) -> (BillingEvent, Vec<String>) {
    let mut event = event;
    let mut asked = Vec::new();
    for _ in 0..keygate_billing::api::MAX_ROUNDS {
        let fetches = provider().fetches(&event);
        if fetches.is_empty() {
            return (event, asked);
        }
        let fetched: Vec<(Fetch, Value)> = fetches
            .into_iter()
            .map(|f| {
                asked.push(f.path.clone());
                let v = answer(&f.path);
                (f, v)
            })
            .collect();
        event = provider().complete(event, &fetched).unwrap();
    }
    assert!(provider().fetches(&event).is_empty(), "too many rounds");
    (event, asked)
}

fn parsed(name: &str) -> BillingEvent {
    let event = parse_one("recurly", name, &notified("5b2a43f8-notification"));
    assert_eq!(event.event_id, "5b2a43f8-notification", "{name}");
    assert!(event.livemode);
    event
}

const SUB_PATH: &str = "/subscriptions/uuid-63ab531e1d5b1d47eaf1ef44eeb853c3";
const SUB_INVOICES: &str =
    "/subscriptions/uuid-63ab531e1d5b1d47eaf1ef44eeb853c3/invoices?state=past_due&limit=1";

fn subscription_answer(subscription: &'static str, unpaid: bool) -> impl Fn(&str) -> Value {
    move |path: &str| {
        if path.contains("/invoices?") {
            api(if unpaid {
                "invoices.past_due.json"
            } else {
                "invoices.none.json"
            })
        } else {
            api(subscription)
        }
    }
}

#[test]
fn every_fixture_verifies_and_names_what_to_fetch() {
    let now = rfc("2022-07-26T22:01:56Z");
    for name in fixture_names("recurly", &[]) {
        let body = fixture("recurly", &name);
        let header =
            keygate_billing::providers::recurly::SCHEME.sign(b"endpoint-key", now.millis(), &body);
        let headers = Headers::new()
            .with("recurly-signature", header)
            .with("recurly-notification-id", "n-1");
        recurly()
            .verify(&headers, &body, &secrets(&["endpoint-key"]), now)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let event = parse_one("recurly", &name, &headers);
        assert_eq!(event.event_type, name.trim_end_matches(".json"), "{name}");
        if name == "shipping_address.created.json" {
            assert_eq!(event.kind, Kind::Ignored);
            assert!(event.needs_fetch.is_empty());
        } else {
            assert!(!event.needs_fetch.is_empty(), "{name}: thin, fetched");
            assert_ne!(event.kind, Kind::Ignored, "{name}");
        }
    }
}

#[test]
fn subscription_notifications_are_completed_from_the_subscription() {
    let cases: [(&str, &str, bool, Kind, Status); 8] = [
        (
            "subscription.created.json",
            "subscription.active.json",
            false,
            Kind::SubscriptionActivated,
            Status::Active,
        ),
        (
            "subscription.created.json",
            "subscription.in_trial.json",
            false,
            Kind::TrialStarted,
            Status::Trialing,
        ),
        (
            "subscription.renewed.json",
            "subscription.active.json",
            false,
            Kind::SubscriptionRenewed,
            Status::Active,
        ),
        // Renewed while an invoice is unpaid: not a payment success.
        (
            "subscription.renewed.json",
            "subscription.active.json",
            true,
            Kind::SubscriptionUpdated,
            Status::PastDue,
        ),
        (
            "subscription.updated.json",
            "subscription.active.json",
            true,
            Kind::SubscriptionUpdated,
            Status::PastDue,
        ),
        (
            "subscription.canceled.json",
            "subscription.canceled.json",
            false,
            Kind::SubscriptionCancelScheduled,
            Status::Active,
        ),
        (
            "subscription.expired.json",
            "subscription.expired.json",
            false,
            Kind::SubscriptionCanceled,
            Status::Canceled,
        ),
        (
            "subscription.paused.json",
            "subscription.paused.json",
            false,
            Kind::SubscriptionPaused,
            Status::Paused,
        ),
    ];
    for (notification, object, unpaid, kind, status) in cases {
        let event = parsed(notification);
        assert_eq!(
            event.needs_fetch,
            [SUB_PATH, SUB_INVOICES],
            "{notification}"
        );
        let (event, asked) = complete(event, subscription_answer(object, unpaid));
        assert_eq!(asked.len(), 2, "{notification}");
        let name = format!("{notification} + {object}");
        check(
            &name,
            &event,
            kind,
            Expect {
                subscription_id: Some("ra8foq26o2dt"),
                status: Some(status),
                items: Some(vec![("gold", if object.contains("trial") { 1 } else { 3 })]),
                customer_id: Some("verena"),
                email: Some("verena@example.com"),
                partial: Some(false),
                cancel_at_period_end: Some(object == "subscription.canceled.json"),
                ..Expect::default()
            },
        );
        assert!(event.needs_fetch.is_empty(), "{name}");
        let sub = event.subscription.as_ref().unwrap();
        match object {
            "subscription.canceled.json" => {
                assert_eq!(sub.cancel_at, Some(rfc("2022-09-26T22:01:56Z")))
            }
            "subscription.expired.json" => {
                assert_eq!(sub.ended_at, Some(rfc("2022-09-26T22:01:58Z")))
            }
            "subscription.in_trial.json" => {
                assert_eq!(sub.trial_end, Some(rfc("2022-08-09T22:01:56Z")))
            }
            _ => assert_eq!(sub.current_period_end, Some(rfc("2022-09-26T22:01:56Z"))),
        }
    }
    // The resumed notification of a subscription that is active again.
    let (event, _) = complete(
        parsed("subscription.resumed.json"),
        subscription_answer("subscription.active.json", false),
    );
    assert_eq!(event.kind, Kind::SubscriptionResumed);
}

#[test]
fn a_successful_payment_reads_its_transaction_then_the_subscription() {
    let event = parsed("payment.succeeded.json");
    assert_eq!(
        event.needs_fetch,
        ["/transactions/uuid-63b068f7d409d4b4478dea4e6aba58ae"]
    );
    let (event, asked) = complete(event, |path| {
        if path.starts_with("/transactions/") {
            api("transaction.purchase.json")
        } else if path.contains("/invoices?") {
            api("invoices.none.json")
        } else {
            assert_eq!(path, "/subscriptions/ra8foq26o2dt");
            api("subscription.active.json")
        }
    });
    assert_eq!(
        asked,
        [
            "/transactions/uuid-63b068f7d409d4b4478dea4e6aba58ae",
            "/subscriptions/ra8foq26o2dt",
            "/subscriptions/ra8foq26o2dt/invoices?state=past_due&limit=1"
        ]
    );
    check(
        "payment.succeeded",
        &event,
        Kind::PaymentRecovered,
        Expect {
            subscription_id: Some("ra8foq26o2dt"),
            status: Some(Status::Active),
            period_end: Some(rfc("2022-09-26T22:01:56Z")),
            items: Some(vec![("gold", 3)]),
            order_id: Some("ra8fzs41jdxd"),
            customer_id: Some("verena"),
            partial: Some(false),
            ..Expect::default()
        },
    );
}

#[test]
fn failed_payments_and_dunning_are_payment_failures() {
    let (event, asked) = complete(parsed("payment.failed.json"), |_| {
        api("transaction.declined.json")
    });
    assert_eq!(asked.len(), 1);
    check(
        "payment.failed",
        &event,
        Kind::PaymentFailed,
        Expect {
            subscription_id: Some("ra8foq26o2dt"),
            status: Some(Status::PastDue),
            order_id: Some("rb1inv1003xx"),
            partial: Some(true),
            ..Expect::default()
        },
    );
    let event = parsed("dunning_event.created.json");
    assert_eq!(event.needs_fetch, ["/invoices/number-1003"]);
    let (event, _) = complete(event, |_| api("invoice.past_due.json"));
    check(
        "dunning_event.created",
        &event,
        Kind::PaymentFailed,
        Expect {
            subscription_id: Some("ra8foq26o2dt"),
            status: Some(Status::PastDue),
            order_id: Some("rb1inv1003xx"),
            customer_id: Some("verena"),
            ..Expect::default()
        },
    );
    // Paid by the time it is read: nothing failed any more.
    let (event, _) = complete(parsed("dunning_event.created.json"), |_| {
        api("invoice.paid.json")
    });
    assert_eq!(event.kind, Kind::Ignored);
    // A one-time charge names no subscription.
    let (event, _) = complete(parsed("payment.failed.json"), |_| {
        api("transaction.one_time.json")
    });
    assert_eq!(event.kind, Kind::Ignored);
}

#[test]
fn refunds_are_sized_against_the_refunded_charge_and_voids_are_full() {
    for (refund, reversal) in [
        ("transaction.refund.json", Reversal::FullRefund),
        ("transaction.partial_refund.json", Reversal::PartialRefund),
    ] {
        let (event, asked) = complete(parsed("payment.refunded.json"), |path| {
            if path == "/transactions/rafhdbbf41mc" {
                api("transaction.purchase.json")
            } else {
                api(refund)
            }
        });
        assert_eq!(
            asked,
            [
                "/transactions/uuid-63b06a9098839d7b45a18443b6b395a0",
                "/transactions/uuid-63b06a9098839d7b45a18443b6b395a0",
                "/transactions/rafhdbbf41mc"
            ]
        );
        check(
            refund,
            &event,
            Kind::Refunded,
            Expect {
                subscription_id: Some("ra8foq26o2dt"),
                order_id: Some("ra8fzs41jdxd"),
                partial: Some(true),
                ..Expect::default()
            },
        );
        assert_eq!(event.reversal, Some(reversal), "{refund}");
        assert_eq!(event.order_aliases, ["rc1credit004"]);
    }
    let (event, _) = complete(parsed("payment.voided.json"), |_| {
        api("transaction.voided.json")
    });
    assert_eq!(event.kind, Kind::Refunded);
    assert_eq!(event.reversal, Some(Reversal::FullRefund));
    assert_eq!(event.order_id(), Some("ra8fzs41jdxd"));
}

#[test]
fn accounts_become_customers() {
    let event = parsed("account.created.json");
    assert_eq!(event.needs_fetch, ["/accounts/code-verena"]);
    let (event, _) = complete(event, |_| api("account.json"));
    assert_eq!(event.kind, Kind::CustomerUpserted);
    let c = event.customer.unwrap();
    assert_eq!(c.external_id.as_deref(), Some("verena"));
    assert_eq!(c.email.as_deref(), Some("verena@example.com"));
    assert_eq!(c.name.as_deref(), Some("Verena Example"));
}

#[test]
fn ids_cannot_leave_their_path_segment_and_answers_are_checked() {
    let body = br#"{"id":"x","object_type":"account","site_id":"s","event_type":"updated","event_time":"2022-06-24T19:55:25Z","account_code":"bob@example.com/../../x?y"}"#;
    let event = recurly().parse(&notified("n"), body).unwrap().remove(0);
    assert_eq!(
        event.needs_fetch,
        ["/accounts/code-bob%40example.com%2F..%2F..%2Fx%3Fy"]
    );
    // Without the notification id header: named by what a retry repeats.
    let event = recurly().parse(&Headers::new(), body).unwrap().remove(0);
    assert_eq!(event.event_id, "account.updated:x:2022-06-24T19:55:25Z");
    // An answer that is not the object asked for is refused (the event stays incomplete).
    let event = parsed("subscription.created.json");
    let fetched: Vec<(Fetch, Value)> = provider()
        .fetches(&event)
        .into_iter()
        .map(|f| (f, api("account.json")))
        .collect();
    assert!(matches!(fetched[0].0.object, ObjectKind::Subscription));
    let err = provider().complete(event, &fetched).unwrap_err();
    assert_eq!(err.code(), "MALFORMED_PAYLOAD");
    // Not a notification.
    for bad in [
        &b"{}"[..],
        b"<xml/>",
        br#"{"object_type":"account","event_type":"created"}"#,
    ] {
        assert!(recurly().parse(&notified("n"), bad).is_err());
    }
}
