//! Authorize.Net: the signature (a real delivery's vector, both readings of the Signature Key),
//! every notification fixture, and the completion from the JSON API's answers
//! (`fixtures/authorizenet/api`).

mod common;

use common::*;
use keygate_billing::api::{Fetch, ObjectKind, fill_credentials};
use keygate_billing::{
    BillingEvent, BillingEventKind as Kind, Headers, Provider, SubscriptionStatus as Status,
};
use keygate_domain::billing::Reversal;
use serde_json::Value;

/// A real `authcapture.created` delivery with its Signature Key and `X-ANET-Signature`, as
/// published on Authorize.Net's developer forum ("HMAC SHA-512 hash not matching in webhook
/// callback", messages 57162/57201, March 2017).
const FORUM_KEY: &str = "2679A5D5785C9B26CF921E1754765CDDB265C9C88400786923E5343B315954FAFB4B7BF608818F6A21766741E8637DC206F286C725908C777ED4127D8562163D";
const FORUM_BODY: &[u8] = br#"{"notificationId":"f813b98f-3552-4eeb-ba40-acb4704eeba3","eventType":"net.authorize.payment.authcapture.created","eventDate":"2017-03-08T17:35:37.155999Z","webhookId":"63d6fea2-aa13-4b1d-a204-f5fbc15942b7","payload":{"responseCode":1,"authCode":"8VTPDC","avsResponse":"Y","authAmount":10.00,"entityName":"transaction","id":"60019392075"}}"#;
const FORUM_SIGNATURE: &str = "sha512=9607C69D2734514554CE13D923D19939563F2FD6567D239F49F0DF0D08865632A0FB98061B4620CC52C47BB8BF6E2B69A15A67E4C98E81D7D65111076C515C6A";

/// The research note's computed vector (not official): key `00112233…EEFF` ×4.
const NOTE_KEY: &str = "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF";
const NOTE_BODY: &[u8] = br#"{"notificationId":"n-1","eventType":"net.authorize.customer.subscription.cancelled","eventDate":"2024-01-01T00:00:00Z","webhookId":"w-1","payload":{"entityName":"subscription","id":"5155278"}}"#;
const NOTE_ASCII: &str = "sha512=2969AA0988A32E972C8DB16DC6CF058E94991C1F36B647C78994DB8F92A199C0E37592DB160815379D4AA3FB6E84C6D4CC46489A2E03DA0613459D7466C3432C";
const NOTE_DECODED: &str = "sha512=5248F20DF231B652DB6459FE87C04FBFE53132195E4C346969DE258053876A77C133F656797F0C3A541A202762FC66D162C15BAC4E9344C1694C9E108FD6D49B";

fn anet() -> Platform {
    Platform::named("authorizenet")
}

fn provider() -> &'static dyn Provider {
    keygate_billing::provider("authorizenet").unwrap()
}

fn header(value: &str) -> Headers {
    Headers::new().with("X-ANET-Signature", value)
}

fn now() -> keygate_billing::Timestamp {
    rfc("2024-02-26T10:03:12Z")
}

/// Keygate reads the Signature Key as its text: the forum's real delivery verifies, and the
/// same body signed with the hex-decoded key (what the SIM/DPM `SHA2_Hash` does) does not.
#[test]
fn the_signature_key_is_used_as_its_text() {
    anet()
        .verify(
            &header(FORUM_SIGNATURE),
            FORUM_BODY,
            &secrets(&[FORUM_KEY]),
            now(),
        )
        .unwrap();
    // Lower-case hex is read too.
    anet()
        .verify(
            &header(&FORUM_SIGNATURE.to_ascii_lowercase()),
            FORUM_BODY,
            &secrets(&[FORUM_KEY]),
            now(),
        )
        .unwrap();
    let decoded = hex::decode(FORUM_KEY).unwrap();
    let as_bytes = keygate_billing::providers::authorizenet::SCHEME.sign(&decoded, FORUM_BODY);
    assert_ne!(as_bytes, FORUM_SIGNATURE);
    assert_eq!(
        keygate_billing::providers::authorizenet::SCHEME.sign(FORUM_KEY.as_bytes(), FORUM_BODY),
        FORUM_SIGNATURE
    );
    // The note's computed pair: the text reading verifies, the decoded reading does not.
    anet()
        .verify(&header(NOTE_ASCII), NOTE_BODY, &secrets(&[NOTE_KEY]), now())
        .unwrap();
    assert_eq!(
        refused(anet().verify(
            &header(NOTE_DECODED),
            NOTE_BODY,
            &secrets(&[NOTE_KEY]),
            now()
        )),
        "SIGNATURE_INVALID"
    );
}

#[test]
fn tampering_missing_header_wrong_key_and_rotation() {
    let s = secrets(&[FORUM_KEY]);
    let reserialized = String::from_utf8_lossy(FORUM_BODY).replace("10.00", "10.0");
    assert_eq!(
        refused(anet().verify(&header(FORUM_SIGNATURE), reserialized.as_bytes(), &s, now())),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(anet().verify(&Headers::new(), FORUM_BODY, &s, now())),
        "SIGNATURE_MISSING"
    );
    assert_eq!(
        refused(anet().verify(
            &header(FORUM_SIGNATURE),
            FORUM_BODY,
            &secrets(&[NOTE_KEY]),
            now()
        )),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(anet().verify(&header(FORUM_SIGNATURE), FORUM_BODY, &secrets(&[]), now())),
        "SECRET_NOT_CONFIGURED"
    );
    // Without the `sha512=` prefix it is not Authorize.Net's header.
    assert_eq!(
        refused(anet().verify(&header(&FORUM_SIGNATURE[7..]), FORUM_BODY, &s, now())),
        "SIGNATURE_INVALID"
    );
    // During a key change both keys are listed: either verifies.
    anet()
        .verify(
            &header(FORUM_SIGNATURE),
            FORUM_BODY,
            &secrets(&[NOTE_KEY, FORUM_KEY]),
            now(),
        )
        .unwrap();
    // No timestamp is signed: an old delivery still verifies (the inbox de-duplicates it).
    anet()
        .verify(
            &header(FORUM_SIGNATURE),
            FORUM_BODY,
            &s,
            rfc("2030-01-01T00:00:00Z"),
        )
        .unwrap();
}

#[test]
fn the_signature_key_must_look_like_one() {
    assert!(
        provider()
            .check_config(&secrets(&[FORUM_KEY]), now())
            .is_ok()
    );
    for bad in ["346HZ32z3fP4hTG2", &FORUM_KEY[..64]] {
        let err = provider()
            .check_config(&secrets(&[bad]), now())
            .unwrap_err();
        assert_eq!(err.code(), "SECRET_INVALID", "{bad}");
    }
    let err = provider().check_config(&secrets(&[]), now()).unwrap_err();
    assert_eq!(err.code(), "SECRET_NOT_CONFIGURED");
}

fn api(name: &str) -> Value {
    serde_json::from_slice(&fixture("authorizenet", &format!("api/{name}"))).unwrap()
}

/// The request a fetch sends, with credentials filled in as the server does.
fn sent(fetch: &Fetch) -> Value {
    assert_eq!(fetch.path, "/xml/v1/request.api");
    let mut body = fetch.body.clone().expect("a POST");
    fill_credentials(&mut body, &|name| Some(format!("<{name}>"))).unwrap();
    body
}

/// Completes `event` as the server does, round after round; `answer` sees each request body.
fn complete(event: BillingEvent, answer: impl Fn(&Value) -> Value) -> (BillingEvent, Vec<Value>) {
    let mut event = event;
    let mut asked = Vec::new();
    for _ in 0..keygate_billing::api::MAX_ROUNDS {
        let fetches = provider().fetches(&event);
        if fetches.is_empty() {
            break;
        }
        let fetched: Vec<(Fetch, Value)> = fetches
            .into_iter()
            .map(|f| {
                let body = sent(&f);
                let v = answer(&body);
                asked.push(body);
                (f, v)
            })
            .collect();
        event = provider().complete(event, &fetched).unwrap();
    }
    assert!(provider().fetches(&event).is_empty(), "too many rounds");
    (event, asked)
}

fn parsed(name: &str) -> BillingEvent {
    let mut events = anet()
        .parse(&Headers::new(), &fixture("authorizenet", name))
        .unwrap();
    assert_eq!(events.len(), 1);
    let event = events.remove(0);
    let body: Value = serde_json::from_slice(&fixture("authorizenet", name)).unwrap();
    assert_eq!(event.event_id, body["notificationId"].as_str().unwrap());
    event
}

#[test]
fn every_fixture_verifies_and_names_what_to_fetch() {
    for name in fixture_names("authorizenet", &[]) {
        let body = fixture("authorizenet", &name);
        let h = header(
            &keygate_billing::providers::authorizenet::SCHEME.sign(NOTE_KEY.as_bytes(), &body),
        );
        anet()
            .verify(&h, &body, &secrets(&[NOTE_KEY]), now())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let event = parsed(&name);
        assert_eq!(event.event_type, name.trim_end_matches(".json"));
        let ignored = name.contains("expiring") || name.contains("customer.created");
        assert_eq!(event.kind == Kind::Ignored, ignored, "{name}");
        assert_eq!(event.needs_fetch.is_empty(), ignored, "{name}");
        assert!(event.livemode);
    }
}

#[test]
fn subscription_events_are_completed_from_arb() {
    let cases = [
        (
            "created",
            "arb.active.json",
            Kind::SubscriptionActivated,
            Status::Active,
        ),
        (
            "updated",
            "arb.active.json",
            Kind::SubscriptionUpdated,
            Status::Active,
        ),
        (
            "suspended",
            "arb.suspended.json",
            Kind::PaymentFailed,
            Status::PastDue,
        ),
        (
            "failed",
            "arb.active.json",
            Kind::PaymentFailed,
            Status::PastDue,
        ),
        (
            "cancelled",
            "arb.canceled.json",
            Kind::SubscriptionCancelScheduled,
            Status::Active,
        ),
        (
            "terminated",
            "arb.terminated.json",
            Kind::SubscriptionCanceled,
            Status::Canceled,
        ),
        (
            "expired",
            "arb.expired.json",
            Kind::SubscriptionCanceled,
            Status::Canceled,
        ),
    ];
    for (what, answer, kind, status) in cases {
        let name = format!("net.authorize.customer.subscription.{what}.json");
        let (event, asked) = complete(parsed(&name), |_| api(answer));
        assert_eq!(
            asked,
            [serde_json::json!({"ARBGetSubscriptionRequest": {
                "merchantAuthentication": {"name": "<api_login_id>",
                                           "transactionKey": "<transaction_key>"},
                "subscriptionId": "100748"}})]
        );
        check(
            &name,
            &event,
            kind,
            Expect {
                subscription_id: Some("100748"),
                status: Some(status),
                items: Some(vec![("Gold Monthly", 1)]),
                customer_id: Some("394"),
                email: Some("joe@example.com"),
                partial: Some(true),
                ..Expect::default()
            },
        );
        let sub = event.subscription.as_ref().unwrap();
        // Only a new subscription tells a period (its first scheduled one); the rest leave
        // the paid-through date to the payments.
        if what == "created" {
            // Started 2024-01-26 monthly, created that day: the next charge is 2024-02-26.
            assert_eq!(sub.current_period_end, Some(rfc("2024-02-27T00:00:00Z")));
        } else {
            assert_eq!(sub.current_period_end, None, "{name}");
        }
        if what == "terminated" {
            assert_eq!(sub.ended_at, Some(event.occurred_at));
        }
    }
}

#[test]
fn a_renewal_payment_reads_its_transaction_then_the_subscription() {
    let event = parsed("net.authorize.payment.authcapture.created.json");
    assert_eq!(event.kind, Kind::SubscriptionRenewed);
    let (event, asked) = complete(event, |body| {
        if body.get("getTransactionDetailsRequest").is_some() {
            api("transaction.renewal.json")
        } else {
            api("arb.active.json")
        }
    });
    assert_eq!(asked.len(), 2);
    assert_eq!(
        asked[0]["getTransactionDetailsRequest"]["transId"],
        "60020981676"
    );
    assert_eq!(
        asked[1]["ARBGetSubscriptionRequest"]["subscriptionId"],
        "100748"
    );
    check(
        "authcapture",
        &event,
        Kind::SubscriptionRenewed,
        Expect {
            subscription_id: Some("100748"),
            status: Some(Status::Active),
            // Charged 2024-02-26T10:03:11.837Z, monthly: through a day after 2024-03-26.
            period_end: Some(rfc("2024-03-27T10:03:11.837Z")),
            items: Some(vec![("Gold Monthly", 1)]),
            order_id: Some("60020981676"),
            customer_id: Some("394"),
            ..Expect::default()
        },
    );
    // A payment of no subscription (a one-time charge) is ignored.
    let (event, asked) = complete(
        parsed("net.authorize.payment.authcapture.created.json"),
        |_| api("transaction.one_time.json"),
    );
    assert_eq!(asked.len(), 1);
    assert_eq!(event.kind, Kind::Ignored);
    // A declined capture is no payment: nothing to fetch.
    let body = String::from_utf8(fixture(
        "authorizenet",
        "net.authorize.payment.authcapture.created.json",
    ))
    .unwrap()
    .replace("\"responseCode\": 1", "\"responseCode\": 2");
    let event = anet()
        .parse(&Headers::new(), body.as_bytes())
        .unwrap()
        .remove(0);
    assert_eq!(event.kind, Kind::Ignored);
    assert!(event.needs_fetch.is_empty());
}

#[test]
fn refunds_are_sized_against_the_charge_and_voids_are_full() {
    for (refund, reversal) in [
        ("transaction.refund.json", Reversal::FullRefund),
        ("transaction.partial_refund.json", Reversal::PartialRefund),
    ] {
        let (event, asked) = complete(
            parsed("net.authorize.payment.refund.created.json"),
            |body| match body["getTransactionDetailsRequest"]["transId"].as_str() {
                Some("60020981999") => api(refund),
                _ => api("transaction.renewal.json"),
            },
        );
        let ids: Vec<&str> = asked
            .iter()
            .map(|b| {
                b["getTransactionDetailsRequest"]["transId"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(ids, ["60020981999", "60020981999", "60020981676"]);
        check(
            refund,
            &event,
            Kind::Refunded,
            Expect {
                subscription_id: Some("100748"),
                order_id: Some("60020981676"),
                partial: Some(true),
                ..Expect::default()
            },
        );
        assert_eq!(event.reversal, Some(reversal), "{refund}");
        assert_eq!(event.order_aliases, ["60020981999"]);
    }
    let (event, _) = complete(parsed("net.authorize.payment.void.created.json"), |_| {
        api("transaction.voided.json")
    });
    assert_eq!(event.kind, Kind::Refunded);
    assert_eq!(event.reversal, Some(Reversal::FullRefund));
    assert_eq!(event.order_id(), Some("60020981676"));
}

#[test]
fn refused_credentials_and_odd_answers_are_errors() {
    let event = parsed("net.authorize.customer.subscription.created.json");
    let fetched: Vec<(Fetch, Value)> = provider()
        .fetches(&event)
        .into_iter()
        .map(|f| (f, api("error.E00007.json")))
        .collect();
    assert!(matches!(fetched[0].0.object, ObjectKind::Subscription));
    let err = provider().complete(event.clone(), &fetched).unwrap_err();
    assert!(err.to_string().contains("E00007"), "{err}");
    // Not the object asked for.
    let fetched: Vec<(Fetch, Value)> = provider()
        .fetches(&event)
        .into_iter()
        .map(|f| (f, api("transaction.renewal.json")))
        .collect();
    assert!(provider().complete(event, &fetched).is_err());
    // An id is sent as a JSON string value, whatever it holds.
    let body = br#"{"notificationId":"n","eventType":"net.authorize.customer.subscription.created","eventDate":"2024-01-01T00:00:00Z","webhookId":"w","payload":{"entityName":"subscription","id":"1\"}:x"}}"#;
    let event = anet().parse(&Headers::new(), body).unwrap().remove(0);
    let fetches = provider().fetches(&event);
    assert_eq!(
        sent(&fetches[0])["ARBGetSubscriptionRequest"]["subscriptionId"],
        "1\"}:x"
    );
    for bad in [
        &b"{}"[..],
        b"[]",
        br#"{"notificationId":"n","eventType":"x"}"#,
    ] {
        assert!(anet().parse(&Headers::new(), bad).is_err());
    }
}
