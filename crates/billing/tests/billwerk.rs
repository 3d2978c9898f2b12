//! billwerk+ Optimize: the body `signature` over `timestamp` + `id` (the documented example
//! under the official plugin test's secret), every fixture, and the completion from the API
//! (event, then subscription / invoice / customer) as the kit's stand-in answers it.

mod common;

use common::*;
use keygate_billing::api::{Fetch, ObjectKind};
use keygate_billing::testkit::{ApiRequest, MONTH, Stage};
use keygate_billing::{
    BillingEvent, BillingEventKind as Kind, Headers, SubscriptionStatus as Status,
};
use serde_json::{Value, json};

const SECRET: &str = "test_secret_key";

fn billwerk() -> Platform {
    Platform::named("billwerk")
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn documented_vector_and_every_fixture_verifies() {
    let body = fixture("billwerk", "subscription_created.json");
    assert_eq!(
        json_of(&body)["signature"],
        "52593696d7c167c58f89231ff058d3c1fe4936dc2b095ceb04b80821103cfc6c"
    );
    for name in fixture_names("billwerk", &[]) {
        let body = fixture("billwerk", &name);
        billwerk()
            .verify(&Headers::new(), &body, &secrets(&[SECRET]), secs(0))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn refusals_and_rotation() {
    let body = fixture("billwerk", "invoice_settled.json");
    let h = Headers::new();
    let now = secs(0);
    assert_eq!(
        refused(billwerk().verify(&h, &body, &secrets(&["other"]), now)),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(billwerk().verify(&h, &body, &secrets(&[" "]), now)),
        "SECRET_NOT_CONFIGURED"
    );
    billwerk()
        .verify(&h, &body, &secrets(&["old", SECRET]), now)
        .unwrap();
    let mut tampered = json_of(&body);
    tampered["id"] = json!("0000");
    let tampered = tampered.to_string();
    assert_eq!(
        refused(billwerk().verify(&h, tampered.as_bytes(), &secrets(&[SECRET]), now)),
        "SIGNATURE_INVALID"
    );
    let mut unsigned = json_of(&body);
    unsigned.as_object_mut().unwrap().remove("signature");
    assert_eq!(
        refused(billwerk().verify(
            &h,
            unsigned.to_string().as_bytes(),
            &secrets(&[SECRET]),
            now
        )),
        "SIGNATURE_MISSING"
    );
    assert_eq!(
        refused(billwerk().verify(&h, b"not json", &secrets(&[SECRET]), now)),
        "MALFORMED_PAYLOAD"
    );
    // An old timestamp is normal (retries keep it): no freshness window.
    billwerk()
        .verify(&h, &body, &secrets(&[SECRET]), secs(4_000_000_000))
        .unwrap();
}

/// The body is unsigned beyond `timestamp` + `id`: parsing names only what to fetch.
#[test]
fn every_fixture_parses_to_a_fetch_of_its_event() {
    for name in fixture_names("billwerk", &[]) {
        let body = fixture("billwerk", &name);
        let events = billwerk().parse(&Headers::new(), &body).unwrap();
        assert_eq!(events.len(), 1, "{name}");
        let event = &events[0];
        let sent = json_of(&body);
        assert_eq!(event.event_id, sent["event_id"].as_str().unwrap(), "{name}");
        assert_eq!(event.occurred_at, rfc(sent["timestamp"].as_str().unwrap()));
        if name == "customer_created.json" {
            assert_eq!(event.kind, Kind::Ignored, "{name}");
            assert!(event.needs_fetch.is_empty(), "{name}");
            continue;
        }
        assert_eq!(
            event.needs_fetch,
            [format!("/v1/event/{}", sent["event_id"].as_str().unwrap())],
            "{name}"
        );
        assert!(
            event.subscription.is_none() && event.order.is_none(),
            "{name}: nothing trusted"
        );
    }
    let mut weird = json_of(&fixture("billwerk", "subscription_created.json"));
    weird["event_id"] = json!("../account?x=1");
    let events = billwerk()
        .parse(&Headers::new(), weird.to_string().as_bytes())
        .unwrap();
    assert_eq!(events[0].needs_fetch, ["/v1/event/..%2Faccount%3Fx%3D1"]);
}

/// Runs the server's rounds against the kit's stand-in at `step`.
fn completed(body: &Value, stage: Stage) -> Result<BillingEvent, String> {
    let provider = keygate_billing::provider("billwerk").unwrap();
    let kit = keygate_billing::testkit::kit(provider);
    let delivery = kit
        .deliver(&kit.settings().secrets(), body, secs(0))
        .unwrap();
    let headers = delivery.header_map();
    let mut event = provider
        .parse(&delivery.request(&headers))
        .unwrap()
        .remove(0);
    let auth = Headers::new().with(
        "authorization",
        "Basic cHJpdl8xMjA1MWRmYWM3NTE0M2ZjODI3Y2Y2M2E4N2Y0NmRmMzo=",
    );
    for _ in 0..3 {
        let fetches = provider.fetches(&event);
        if fetches.is_empty() {
            return Ok(event);
        }
        let fetched: Vec<(Fetch, Value)> = fetches
            .into_iter()
            .map(|fetch| {
                let request = ApiRequest {
                    method: "GET",
                    path_and_query: &fetch.path,
                    headers: &auth,
                    body: b"",
                };
                let (status, answer) = kit.api_answer(&stage, &request).unwrap_or((404, json!({})));
                assert_eq!(status, 200, "{}", fetch.path);
                (fetch, answer)
            })
            .collect();
        event = provider
            .complete(event, &fetched)
            .map_err(|e| e.to_string())?;
    }
    Err("still fetching".into())
}

#[test]
fn the_lifecycle_completes_from_the_api() {
    let provider = keygate_billing::provider("billwerk").unwrap();
    let kit = keygate_billing::testkit::kit(provider);
    let (start, failed_at) = (1_767_225_600, 1_767_225_600 + 40 * 86_400);
    let steps = kit.steps(start, failed_at).unwrap();
    let stage = |step| Stage {
        start,
        failed_at,
        step,
    };
    let created = completed(&steps.created[0], stage("created")).unwrap();
    assert_eq!(created.kind, Kind::SubscriptionActivated);
    let sub = created.subscription.as_ref().unwrap();
    assert_eq!(sub.external_id, "sub-0001");
    assert_eq!(sub.items[0].external_id, "plan-pro-monthly");
    assert_eq!(sub.status, Some(Status::Active));
    assert_eq!(sub.current_period_end, Some(secs(start + MONTH)));
    let customer = created.customer.as_ref().unwrap();
    assert_eq!(customer.external_id.as_deref(), Some("cust-0001"));
    assert_eq!(customer.email.as_deref(), Some("ann@example.com"));
    assert_eq!(customer.name.as_deref(), Some("Ann Example"));

    let renewed = completed(&steps.renewed[0], stage("renewed")).unwrap();
    assert_eq!(renewed.kind, Kind::SubscriptionRenewed);
    assert_eq!(renewed.order.as_ref().unwrap().external_id, "inv-2");
    let period_end = renewed.subscription.as_ref().unwrap().current_period_end;
    assert_eq!(period_end, Some(secs(start + 2 * MONTH)));

    let quantity = completed(&steps.quantity[0], stage("quantity")).unwrap();
    assert_eq!(quantity.subscription.as_ref().unwrap().items[0].quantity, 5);

    let failed = completed(&steps.failed[0], stage("failed")).unwrap();
    assert_eq!(failed.kind, Kind::PaymentFailed);
    assert_eq!(
        failed.subscription.as_ref().unwrap().status,
        Some(Status::PastDue)
    );
    // The same dunning event applied after the invoice was paid: the state wins.
    let late = completed(&steps.failed[0], stage("recovered")).unwrap();
    assert_eq!(late.kind, Kind::PaymentRecovered);
    let recovered = completed(&steps.recovered[0], stage("recovered")).unwrap();
    assert_eq!(recovered.kind, Kind::PaymentRecovered);

    let cancelled = completed(&steps.cancelled[0], stage("cancelled")).unwrap();
    assert_eq!(cancelled.kind, Kind::SubscriptionCancelScheduled);
    let sub = cancelled.subscription.as_ref().unwrap();
    assert!(sub.cancel_at_period_end);
    assert_eq!(sub.cancel_at, Some(secs(steps.cancel_ends_at)));

    let refunded = completed(&steps.refunded[0], stage("refunded")).unwrap();
    assert_eq!(refunded.kind, Kind::Refunded);
    assert_eq!(
        refunded.reversal,
        Some(keygate_domain::billing::Reversal::FullRefund)
    );
}

#[test]
fn the_api_record_wins_over_the_body() {
    let provider = keygate_billing::provider("billwerk").unwrap();
    let kit = keygate_billing::testkit::kit(provider);
    let (start, failed_at) = (1_767_225_600, 1_767_225_600);
    let steps = kit.steps(start, failed_at).unwrap();
    // A captured signed delivery whose unsigned type was changed to a refund: the event is
    // fetched by its id, and billwerk says it was the creation.
    let mut forged = steps.created[0].clone();
    forged["event_type"] = json!("invoice_refund");
    forged["invoice"] = json!("inv-2");
    let stage = Stage {
        start,
        failed_at,
        step: "created",
    };
    let event = completed(&forged, stage).unwrap();
    assert_eq!(event.kind, Kind::SubscriptionActivated);
    assert_eq!(event.event_type, "subscription_created");
    assert!(event.reversal.is_none());
    // An answer for another object is refused (the event stays pending).
    let parsed = provider
        .parse(&keygate_billing::Request::post(
            &Headers::new(),
            steps.created[0].to_string().as_bytes(),
        ))
        .unwrap()
        .remove(0);
    let fetch = provider.fetches(&parsed).remove(0);
    assert_eq!(fetch.object, ObjectKind::Event);
    let other = json!({"id": "another", "event_type": "subscription_created",
                       "subscription": "sub-0001"});
    assert!(provider.complete(parsed, &[(fetch, other)]).is_err());
}
