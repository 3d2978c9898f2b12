//! The billing gateway end to end: signed Stripe webhooks through HTTP into license state.
use crate::harness::{Reply, TestApp};
use crate::on_both_engines;
use keygate_domain::Timestamp;
use serde_json::{Value, json};
use std::time::Duration;

on_both_engines!(
    stripe_lifecycle,
    stripe_replay_storm_matches_in_order,
    refused_and_unmapped_deliveries,
    concurrent_and_duplicate_deliveries,
    webhook_get_answers_as_before,
    platform_settings_checked_at_creation,
    api_credentials_are_sealed_and_named
);

mod crash_between_store_and_apply {
    use crate::harness::TestApp;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = super::crash_between_store_and_apply(TestApp::sqlite().await).await;
        app.finish().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let app = super::crash_between_store_and_apply(TestApp::postgres().await).await;
        app.finish().await;
    }
}

/// An event stored in the inbox but not applied (the process died in between) is applied by
/// the worker of the next process; applying it again changes nothing.
async fn crash_between_store_and_apply(app: TestApp) -> TestApp {
    use keygate_store::gateway::NewWebhookEvent;
    let (api, integration, _) = setup(&app, 0).await;
    let now = now_s();
    let body = subscription("evt_crash", now, "active", now + 86_400, 1, json!({})).to_string();
    let store = app.server.state.store.clone();
    let id = integration["id"].as_str().unwrap();
    let (stored, _) = store.integration_for_webhook(id).await.unwrap().unwrap();
    let stripe = keygate_billing::provider("stripe").unwrap();
    let events = stripe
        .parse(&keygate_billing::Request::post(
            &keygate_billing::Headers::new(),
            body.as_bytes(),
        ))
        .unwrap();
    // What the webhook endpoint does before it applies: the durable insert, then "crash".
    store
        .insert_event(
            &stored,
            NewWebhookEvent {
                provider_event_id: events[0].event_id.clone(),
                event_type: events[0].event_type.clone(),
                kind: events[0].kind.as_str().to_string(),
                occurred_at: events[0].occurred_at,
                raw_body: body.clone(),
                normalized: serde_json::to_value(&events[0]).unwrap(),
                verified: true,
                status: keygate_store::gateway::InboxStatus::Pending,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        app.get("/v1/licenses", &api).await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let app = app.restart().await;
    let mut licenses = 0;
    for _ in 0..50 {
        licenses = app.get("/v1/licenses", &api).await.body["data"]
            .as_array()
            .unwrap()
            .len();
        if licenses > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        licenses, 1,
        "the worker applied the pending event after the restart"
    );
    let events = app.get("/v1/events", &api).await;
    assert_eq!(events.body["data"][0]["status"], "applied");
    // The platform retries the same delivery: a duplicate, nothing more.
    let r = deliver(&app, &integration, &serde_json::from_str(&body).unwrap()).await;
    assert_eq!(r.body["events"][0]["duplicate"], true);
    assert_eq!(
        app.get("/v1/licenses", &api).await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    app
}

/// Deliveries at once: 6 copies of one event, 12 distinct subscriptions, 4 subscriptions of one
/// customer, and one subscription's creation with its renewal. Each copy after the first is a
/// duplicate, each subscription gets exactly one license, the shared customer is one customer,
/// the renewal wins, whether the deliveries share a transaction (SQLite's group commit) or race
/// on several connections (PostgreSQL).
async fn concurrent_and_duplicate_deliveries(app: &TestApp) {
    use tokio::task::JoinSet;
    let (api, integration, _) = setup(app, 0).await;
    let url = integration["webhook_url"].as_str().unwrap();
    let url = app.server.url(&url[url.find("/v1/").unwrap()..]);
    let now = now_s();
    let mut bodies = Vec::new();
    for _ in 0..6 {
        bodies.push(subscription(
            "evt_created_same",
            now,
            "active",
            now + 1000,
            1,
            json!({}),
        ));
    }
    for i in 0..12 {
        let mut e = subscription(
            &format!("evt_created_{i}"),
            now,
            "active",
            now + 1000,
            2,
            json!({}),
        );
        e["data"]["object"]["id"] = json!(format!("sub_many_{i}"));
        e["data"]["object"]["customer"] = json!(format!("cus_many_{i}"));
        bodies.push(e);
    }
    // Four subscriptions of one customer: one customer, four licenses.
    for i in 0..4 {
        let mut e = subscription(
            &format!("evt_created_shared_{i}"),
            now,
            "active",
            now + 1000,
            1,
            json!({}),
        );
        e["data"]["object"]["id"] = json!(format!("sub_shared_{i}"));
        e["data"]["object"]["customer"] = json!("cus_shared");
        bodies.push(e);
    }
    // One subscription created and renewed at once: the renewal's period end wins.
    let mut created = subscription(
        "evt_created_renewed",
        now,
        "active",
        now + 1000,
        1,
        json!({}),
    );
    created["data"]["object"]["id"] = json!("sub_renewed");
    created["data"]["object"]["customer"] = json!("cus_renewed");
    let mut renewed = subscription("evt_renewal", now + 5, "active", now + 90_000, 1, json!({}));
    renewed["data"]["object"]["id"] = json!("sub_renewed");
    renewed["data"]["object"]["customer"] = json!("cus_renewed");
    bodies.push(created);
    bodies.push(renewed);
    let mut set = JoinSet::new();
    for body in bodies {
        let url = url.clone();
        set.spawn(async move { signed_post(&url, body.to_string()).await });
    }
    let mut answers = Vec::new();
    while let Some(r) = set.join_next().await {
        answers.push(r.unwrap());
    }
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    let first_copies = answers
        .iter()
        .filter(|(_, b)| {
            b["events"][0]["provider_event_id"] == "evt_created_same"
                && b["events"][0]["duplicate"] == false
        })
        .count();
    assert_eq!(first_copies, 1, "{answers:?}");
    let licenses = app.get("/v1/licenses?limit=100", &api).await;
    let licenses = licenses.body["data"].as_array().unwrap();
    assert_eq!(licenses.len(), 13 + 4 + 1);
    assert_eq!(
        licenses
            .iter()
            .filter(|l| l["max_activations"] == 2)
            .count(),
        12
    );
    let events = app.get("/v1/events?limit=100", &api).await;
    assert_eq!(events.body["data"].as_array().unwrap().len(), 13 + 4 + 2);
    let customers = app.get("/v1/customers?limit=100", &api).await;
    assert_eq!(customers.body["data"].as_array().unwrap().len(), 13 + 1 + 1);
    let subscriptions = app.get("/v1/subscriptions?limit=100", &api).await;
    let renewed = subscriptions.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["external_id"] == "sub_renewed")
        .unwrap()
        .clone();
    let renewed_license = licenses
        .iter()
        .find(|l| l["subscription_id"] == renewed["id"])
        .unwrap();
    assert_eq!(
        t(&renewed_license["expires_at"]),
        now + 90_000,
        "the newer event wins whatever the order"
    );
}

async fn signed_post(url: &str, body: String) -> (u16, Value) {
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    let t = now_s();
    let signature = stripe_signature(t, &body);
    let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let req = hyper::Request::post(url)
        .header("content-type", "application/json")
        .header("stripe-signature", signature)
        .body(Full::new(hyper::body::Bytes::from(body)))
        .unwrap();
    let res = client.request(req).await.unwrap();
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

const SECRET: &str = "whsec_test_secret";

/// `Stripe-Signature` for `body` at `t`, from the testkit's signer (Stripe's scheme).
fn stripe_signature(t: i64, body: &str) -> String {
    keygate_billing::providers::stripe::SCHEME.sign(SECRET.as_bytes(), t, body.as_bytes())
}

fn now_s() -> i64 {
    Timestamp::now().millis() / 1000
}

/// A Stripe event as the platform sends it, signed with the documented scheme.
async fn deliver(app: &TestApp, integration: &Value, event: &Value) -> Reply {
    let body = event.to_string();
    let t = now_s();
    let signature = stripe_signature(t, &body);
    let url = integration["webhook_url"].as_str().unwrap();
    let path = &url[url.find("/v1/").unwrap()..];
    app.send(
        "POST",
        path,
        None,
        Some(Value::String(body)),
        &[("stripe-signature", &signature)],
    )
    .await
}

fn subscription(
    id: &str,
    created: i64,
    status: &str,
    period_end: i64,
    qty: i64,
    extra: Value,
) -> Value {
    let mut object = json!({
        "id": "sub_1", "object": "subscription", "customer": "cus_ann", "status": status,
        "cancel_at": null, "cancel_at_period_end": false, "canceled_at": null, "ended_at": null,
        "trial_start": null, "trial_end": null, "pause_collection": null, "start_date": created,
        "items": {"object": "list", "has_more": false, "data": [{
            "id": "si_1", "object": "subscription_item", "current_period_start": created,
            "current_period_end": period_end, "quantity": qty, "subscription": "sub_1",
            "price": {"id": "price_pro", "object": "price", "product": "prod_pro"}}]},
        "livemode": true, "metadata": {}
    });
    let mut previous = Value::Null;
    for (k, v) in extra.as_object().unwrap() {
        if k == "previous_attributes" {
            previous = v.clone();
        } else {
            object[k] = v.clone();
        }
    }
    let kind = if id.starts_with("evt_created") {
        "customer.subscription.created"
    } else {
        "customer.subscription.updated"
    };
    let mut data = json!({"object": object});
    if !previous.is_null() {
        data["previous_attributes"] = previous;
    }
    json!({"id": id, "object": "event", "api_version": "2025-03-31.basil", "created": created,
           "livemode": true, "type": kind, "data": data})
}

fn invoice(
    id: &str,
    created: i64,
    kind: &str,
    invoice_id: &str,
    period_end: i64,
    qty: i64,
) -> Value {
    let paid = kind == "invoice.paid";
    json!({"id": id, "object": "event", "api_version": "2025-03-31.basil", "created": created,
        "livemode": true, "type": kind, "data": {"object": {
            "id": invoice_id, "object": "invoice", "billing_reason": "subscription_cycle",
            "status": if paid { "paid" } else { "open" }, "amount_paid": if paid { 5000 } else { 0 },
            "customer": "cus_ann", "customer_email": "ann@example.com", "customer_name": "Ann",
            "parent": {"type": "subscription_details", "subscription_details": {"metadata": {}, "subscription": "sub_1"}},
            "lines": {"object": "list", "has_more": false, "data": [{
                "id": "il_1", "object": "line_item", "amount": 5000, "invoice": invoice_id,
                "parent": {"type": "subscription_item_details", "subscription_item_details": {
                    "proration": false, "subscription": "sub_1", "subscription_item": "si_1"}},
                "period": {"start": created, "end": period_end},
                "pricing": {"type": "price_details", "price_details": {"price": "price_pro", "product": "prod_pro"}},
                "quantity": qty}]}}}})
}

fn refund(id: &str, created: i64, invoice_id: &str) -> Value {
    json!({"id": id, "object": "event", "api_version": "2025-03-31.basil", "created": created,
        "livemode": true, "type": "charge.refunded", "data": {"object": {
            "id": "ch_1", "object": "charge", "amount": 5000, "amount_refunded": 5000, "refunded": true,
            "customer": "cus_ann", "invoice": invoice_id, "payment_intent": "pi_1",
            "billing_details": {"email": "ann@example.com", "name": "Ann"}},
        "previous_attributes": {"amount_refunded": 0, "refunded": false}}})
}

/// An account with a subscription policy mapped from `price_pro`, and a Stripe integration.
async fn setup(app: &TestApp, payment_grace: i64) -> (String, Value, String) {
    let api = app.account("Shop").await;
    let policy = app
        .policy(
            &api,
            json!({"expiry": "subscription", "max_activations": 1, "seats_from_quantity": true}),
        )
        .await;
    let integration = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": "stripe", "secrets": [SECRET],
                   "options": {"grace_seconds": payment_grace},
                   "mappings": [{"external_id": "price_pro", "policy_id": policy}]}),
        )
        .await;
    assert_eq!(integration.status, 201, "{}", integration.body);
    assert!(integration.body.get("secrets").is_none());
    assert!(
        !integration
            .raw
            .windows(SECRET.len())
            .any(|w| w == SECRET.as_bytes())
    );
    (api, integration.body, policy)
}

async fn only_license(app: &TestApp, api: &str) -> Value {
    let list = app.get("/v1/licenses", api).await;
    let data = list.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "exactly one license: {}", list.body);
    data[0].clone()
}

async fn code_of(app: &TestApp, license: &Value) -> String {
    let v = app.validate(json!({"key": license["key"]})).await;
    v.body["code"].as_str().unwrap().to_string()
}

fn t(v: &Value) -> i64 {
    Timestamp::parse_rfc3339(v.as_str().unwrap())
        .unwrap()
        .millis()
        / 1000
}

async fn stripe_lifecycle(app: &TestApp) {
    let (api, integration, _) = setup(app, 2).await;
    let now = now_s();
    let month = 30 * 86_400;

    // Subscription created → a license, valid until the paid-through date.
    let r = deliver(
        app,
        &integration,
        &subscription(
            "evt_created",
            now - 100,
            "active",
            now + month,
            1,
            json!({}),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    let license = only_license(app, &api).await;
    assert_eq!(t(&license["expires_at"]), now + month);
    assert_eq!(license["max_activations"], 1);
    assert_eq!(code_of(app, &license).await, "VALID");
    let customers = app.get("/v1/customers", &api).await;
    assert_eq!(
        customers.body["data"][0]["external_ids"]["stripe"],
        "cus_ann"
    );
    // A retried delivery changes nothing.
    let again = deliver(
        app,
        &integration,
        &subscription(
            "evt_created",
            now - 100,
            "active",
            now + month,
            1,
            json!({}),
        ),
    )
    .await;
    assert_eq!(again.body["events"][0]["duplicate"], true);
    only_license(app, &api).await;

    // Renewed: the expiry moves to the new period end.
    deliver(
        app,
        &integration,
        &invoice(
            "evt_renewed",
            now - 90,
            "invoice.paid",
            "in_2",
            now + 2 * month,
            1,
        ),
    )
    .await;
    let license = only_license(app, &api).await;
    assert_eq!(t(&license["expires_at"]), now + 2 * month);

    // Quantity changed: seats follow.
    deliver(
        app,
        &integration,
        &subscription(
            "evt_qty",
            now - 80,
            "active",
            now + 2 * month,
            5,
            json!({"previous_attributes": {"items": {}}}),
        ),
    )
    .await;
    let license = only_license(app, &api).await;
    assert_eq!(license["max_activations"], 5);

    // Payment failed: grace, then suspended.
    let failed_at = now_s();
    let r = deliver(
        app,
        &integration,
        &invoice(
            "evt_failed",
            failed_at,
            "invoice.payment_failed",
            "in_3",
            now + 3 * month,
            5,
        ),
    )
    .await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    assert_eq!(code_of(app, &license).await, "GRACE_PERIOD");
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(code_of(app, &license).await, "SUSPENDED");
    let r = app
        .client(
            "/v1/licenses/activate",
            json!({"key": license["key"], "fingerprint": "m"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "SUSPENDED"));

    // Recovered: valid again.
    deliver(
        app,
        &integration,
        &subscription(
            "evt_recovered",
            failed_at + 1,
            "active",
            now + 2 * month,
            5,
            json!({"previous_attributes": {"status": "past_due"}}),
        ),
    )
    .await;
    assert_eq!(code_of(app, &license).await, "VALID");

    // Cancelled at period end: still valid, until the paid-through date.
    deliver(app, &integration, &subscription("evt_cancel", failed_at + 2, "active", now + 2 * month, 5,
        json!({"cancel_at_period_end": true, "previous_attributes": {"cancel_at_period_end": false}}))).await;
    let license = only_license(app, &api).await;
    assert_eq!(code_of(app, &license).await, "VALID");
    assert_eq!(t(&license["expires_at"]), now + 2 * month);

    // Refund: revoked.
    deliver(
        app,
        &integration,
        &refund("evt_refund", failed_at + 3, "in_2"),
    )
    .await;
    assert_eq!(code_of(app, &license).await, "REVOKED");

    // Every change is audited with the webhook event that caused it.
    let id = license["id"].as_str().unwrap();
    let audit = app.get(&format!("/v1/audit?license_id={id}"), &api).await;
    let entries = audit.body["data"].as_array().unwrap();
    assert!(
        entries.iter().all(|e| e["actor_type"] == "webhook_event"),
        "{}",
        audit.body
    );
    assert!(entries.iter().any(|e| e["action"] == "license.revoked"));
    let events = app.get("/v1/events?status=applied", &api).await;
    assert_eq!(events.body["data"].as_array().unwrap().len(), 7);
    let subs = app.get("/v1/subscriptions", &api).await;
    assert_eq!(subs.body["data"][0]["external_id"], "sub_1");
}

/// The same lifecycle, every event three times, shuffled: the same end state as in order.
async fn stripe_replay_storm_matches_in_order(app: &TestApp) {
    let now = now_s();
    let month = 30 * 86_400;
    let events = vec![
        subscription(
            "evt_created",
            now - 100,
            "active",
            now + month,
            1,
            json!({}),
        ),
        invoice(
            "evt_renewed",
            now - 90,
            "invoice.paid",
            "in_2",
            now + 2 * month,
            1,
        ),
        subscription(
            "evt_qty",
            now - 80,
            "active",
            now + 2 * month,
            5,
            json!({"previous_attributes": {"items": {}}}),
        ),
        invoice(
            "evt_failed",
            now - 70,
            "invoice.payment_failed",
            "in_3",
            now + 3 * month,
            5,
        ),
        subscription(
            "evt_recovered",
            now - 60,
            "active",
            now + 2 * month,
            5,
            json!({"previous_attributes": {"status": "past_due"}}),
        ),
        subscription(
            "evt_cancel",
            now - 50,
            "active",
            now + 2 * month,
            5,
            json!({"cancel_at_period_end": true, "previous_attributes": {"cancel_at_period_end": false}}),
        ),
    ];
    let (in_order_api, in_order, _) = setup(app, 3600).await;
    for e in &events {
        deliver(app, &in_order, e).await;
    }
    let (storm_api, storm, _) = setup(app, 3600).await;
    let mut shuffled: Vec<&Value> = events.iter().chain(&events).chain(&events).collect();
    // A deterministic shuffle.
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for i in (1..shuffled.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        shuffled.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    for e in shuffled {
        let r = deliver(app, &storm, e).await;
        assert!(r.status == 200 || r.status == 202, "{}", r.body);
    }
    let a = only_license(app, &in_order_api).await;
    let b = only_license(app, &storm_api).await;
    for field in [
        "status",
        "expires_at",
        "max_activations",
        "features",
        "quantity",
    ] {
        assert_eq!(a[field], b[field], "{field} differs");
    }
    assert_eq!(code_of(app, &a).await, code_of(app, &b).await);
    assert_eq!(code_of(app, &b).await, "VALID");
}

async fn refused_and_unmapped_deliveries(app: &TestApp) {
    let (api, integration, policy) = setup(app, 0).await;
    let url = integration["webhook_url"].as_str().unwrap();
    let path = &url[url.find("/v1/").unwrap()..];
    let now = now_s();
    let body = subscription("evt_x", now, "active", now + 1000, 1, json!({})).to_string();

    // Forged, missing, stale: refused with a code, nothing stored, the attempt logged.
    let r = app
        .send(
            "POST",
            path,
            None,
            Some(Value::String(body.clone())),
            &[(
                "stripe-signature",
                &format!("t={now},v1={}", "0".repeat(64)),
            )],
        )
        .await;
    assert_eq!((r.status, r.code()), (401, "SIGNATURE_INVALID"));
    let r = app
        .send("POST", path, None, Some(Value::String(body.clone())), &[])
        .await;
    assert_eq!(r.code(), "SIGNATURE_MISSING");
    let old = now - 3600;
    let signature = stripe_signature(old, &body);
    let r = app
        .send(
            "POST",
            path,
            None,
            Some(Value::String(body.clone())),
            &[("stripe-signature", &signature)],
        )
        .await;
    assert_eq!(r.code(), "TIMESTAMP_OUT_OF_TOLERANCE");
    let id = integration["id"].as_str().unwrap();
    let failures = app
        .get(&format!("/v1/integrations/{id}/failures"), &api)
        .await;
    let codes: Vec<&str> = failures.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "TIMESTAMP_OUT_OF_TOLERANCE",
            "SIGNATURE_MISSING",
            "SIGNATURE_INVALID"
        ]
    );
    assert_eq!(
        app.get("/v1/events", &api).await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let wrong_provider = app
        .send(
            "POST",
            &path.replace("/stripe/", "/paddle/"),
            None,
            Some(Value::String(body.clone())),
            &[],
        )
        .await;
    assert_eq!(wrong_provider.status, 404);

    // An event type Keygate does not act on: stored as ignored, 200.
    let r = deliver(app, &integration, &json!({"id": "evt_product", "object": "event", "created": now,
        "livemode": true, "type": "product.created", "data": {"object": {"id": "prod_1", "object": "product"}}})).await;
    assert_eq!(
        (r.status, r.body["events"][0]["status"].as_str()),
        (200, Some("ignored"))
    );

    // An unmapped item: failed with NO_MAPPING; after adding the mapping, replay applies it.
    let mut unmapped = subscription("evt_other", now, "active", now + 1000, 1, json!({}));
    unmapped["data"]["object"]["id"] = json!("sub_2");
    unmapped["data"]["object"]["items"]["data"][0]["price"]["id"] = json!("price_other");
    let r = deliver(app, &integration, &unmapped).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["events"][0]["status"], "failed");
    let event_id = r.body["events"][0]["id"].as_str().unwrap();
    let event = app.get(&format!("/v1/events/{event_id}"), &api).await;
    assert_eq!(event.body["error"]["code"], "NO_MAPPING");
    assert!(
        event.body["raw_payload"]
            .as_str()
            .unwrap()
            .contains("price_other")
    );
    assert_eq!(event.body["verified"], true);
    let r = app.patch(&format!("/v1/integrations/{id}"), &api, json!({"mappings": [
        {"external_id": "price_pro", "policy_id": policy}, {"external_id": "price_other", "policy_id": policy}]})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let replayed = app
        .post(&format!("/v1/events/{event_id}/replay"), &api, json!({}))
        .await;
    assert_eq!(replayed.body["status"], "applied", "{}", replayed.body);
    assert_eq!(
        app.get("/v1/licenses", &api).await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Replaying again changes nothing.
    app.post(&format!("/v1/events/{event_id}/replay"), &api, json!({}))
        .await;
    assert_eq!(
        app.get("/v1/licenses", &api).await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Secret rotation: old and new both accepted while listed.
    let r = app
        .patch(
            &format!("/v1/integrations/{id}"),
            &api,
            json!({"secrets": ["whsec_new", SECRET]}),
        )
        .await;
    assert_eq!(r.body["secrets_count"], 2);
    let r = deliver(
        app,
        &integration,
        &json!({"id": "evt_p2", "object": "event", "created": now,
        "livemode": true, "type": "product.created", "data": {"object": {"id": "prod_2"}}}),
    )
    .await;
    assert_eq!(r.status, 200);
    // A new delivery after a mapping change uses the new mapping.
    let mut third = unmapped.clone();
    third["id"] = json!("evt_third");
    third["data"]["object"]["id"] = json!("sub_3");
    let r = deliver(app, &integration, &third).await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    // The old secret retired: refused from the next delivery on.
    app.patch(
        &format!("/v1/integrations/{id}"),
        &api,
        json!({"secrets": ["whsec_new"]}),
    )
    .await;
    let r = deliver(
        app,
        &integration,
        &json!({"id": "evt_p3", "object": "event", "created": now,
        "livemode": true, "type": "product.created", "data": {"object": {"id": "prod_3"}}}),
    )
    .await;
    assert_eq!((r.status, r.code()), (401, "SIGNATURE_INVALID"));
    // Bad options are refused; unknown providers too.
    let r = app
        .post("/v1/integrations", &api, json!({"provider": "acme-pay"}))
        .await;
    assert_eq!((r.status, r.code()), (422, "UNKNOWN_PROVIDER"));
    let r = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": "chargebee", "options": {"password": "x"}}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "SECRET_IN_OPTIONS"));
}

/// GETs on the webhook URL reach the platform (for challenges); today's platforms send none,
/// so the answer is exactly what any POST-only endpoint answers.
async fn webhook_get_answers_as_before(app: &TestApp) {
    let (_, integration, _) = setup(app, 0).await;
    let url = integration["webhook_url"].as_str().unwrap();
    let path = &url[url.find("/v1/").unwrap()..];
    let reference = app
        .send("GET", "/v1/licenses/activate", None, None, &[])
        .await;
    assert_eq!(reference.status, 405);
    for (method, path) in [
        ("GET", path.to_string()),
        ("GET", format!("{path}?bt_challenge=abc")),
        ("GET", path.replace("/stripe/", "/paddle/")),
        ("GET", "/v1/webhooks/acme-pay/x".to_string()),
    ] {
        let r = app.send(method, &path, None, None, &[]).await;
        assert_eq!(r.status, reference.status, "{path}");
        assert_eq!(r.raw, reference.raw, "{path}");
        assert_eq!(
            r.headers.get("allow"),
            reference.headers.get("allow"),
            "{path}"
        );
    }
    let r = app.send("HEAD", path, None, None, &[]).await;
    assert_eq!(r.status, 405);
}

/// `POST/PATCH /v1/integrations` asks the platform to check its settings: 422 with a code
/// naming what is wrong, instead of refused deliveries later.
async fn platform_settings_checked_at_creation(app: &TestApp) {
    let api = app.account("Shop").await;
    let paypal_cert = std::fs::read_to_string(format!(
        "{}/../billing/tests/fixtures/paypal/test_cert.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let expired_cert = std::fs::read_to_string(format!(
        "{}/../billing/tests/fixtures/paypal/official_cert.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    for (body, code) in [
        (json!({"provider": "stripe"}), "SECRET_NOT_CONFIGURED"),
        (
            json!({"provider": "paddle", "secrets": [" "]}),
            "SECRET_NOT_CONFIGURED",
        ),
        (
            json!({"provider": "lemonsqueezy", "secrets": []}),
            "SECRET_NOT_CONFIGURED",
        ),
        (json!({"provider": "fastspring"}), "SECRET_NOT_CONFIGURED"),
        (json!({"provider": "chargebee"}), "SECRET_NOT_CONFIGURED"),
        (
            json!({"provider": "chargebee", "secrets": ["no-colon"]}),
            "SECRET_INVALID",
        ),
        (
            json!({"provider": "generic", "secrets": ["not-whsec!"]}),
            "SECRET_INVALID",
        ),
        (json!({"provider": "generic"}), "SECRET_NOT_CONFIGURED"),
        (
            json!({"provider": "paypal", "options": {"certificate_pem": paypal_cert}}),
            "OPTION_NOT_CONFIGURED",
        ),
        (
            json!({"provider": "paypal", "options": {"webhook_id": "WH-1"}}),
            "CERTIFICATE_NOT_CONFIGURED",
        ),
        (
            json!({"provider": "paypal", "options": {"webhook_id": "WH-1", "certificate_pem": "junk"}}),
            "CERTIFICATE_INVALID",
        ),
        (
            json!({"provider": "paypal", "options": {"webhook_id": "WH-1", "certificate_pem": expired_cert}}),
            "CERTIFICATE_INVALID",
        ),
    ] {
        let r = app.post("/v1/integrations", &api, body.clone()).await;
        assert_eq!((r.status, r.code()), (422, code), "{body}: {}", r.body);
    }
    let listed = app.get("/v1/integrations", &api).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 0);
    for body in [
        json!({"provider": "paypal", "options": {"webhook_id": "WH-1", "certificate_pem": paypal_cert}}),
        json!({"provider": "chargebee", "secrets": ["hooks:pw"]}),
        json!({"provider": "chargebee", "options": {"username": "hooks", "pass": "x"}, "secrets": ["a:b"]}),
    ] {
        let r = app.post("/v1/integrations", &api, body.clone()).await;
        assert_eq!(r.status, 201, "{body}: {}", r.body);
    }
    // PATCH: a change of secrets or options is checked against the result; a mapping change
    // alone is not.
    let r = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": "stripe", "secrets": [SECRET]}),
        )
        .await;
    let id = r.body["id"].as_str().unwrap();
    let path = format!("/v1/integrations/{id}");
    let r = app.patch(&path, &api, json!({"secrets": []})).await;
    assert_eq!((r.status, r.code()), (422, "SECRET_NOT_CONFIGURED"));
    let r = app
        .patch(&path, &api, json!({"options": {"grace_seconds": 5}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.patch(&path, &api, json!({"mappings": []})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .patch(&path, &api, json!({"secrets": ["whsec_rotated"]}))
        .await;
    assert_eq!((r.status, r.body["secrets_count"].as_i64()), (200, Some(1)));
}

/// Platform API credentials: only the platform's names, sealed, answers show the names set.
async fn api_credentials_are_sealed_and_named(app: &TestApp) {
    let api = app.account("Shop").await;
    let value = "sk_test_api_credential_value_never_shown";
    let r = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": "stripe", "secrets": [SECRET],
                   "api_credentials": {"secret_key": value},
                   "options": {"api_base_url": "https://api.stripe.test"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["api_credentials"], json!(["secret_key"]));
    let id = r.body["id"].as_str().unwrap().to_string();
    let path = format!("/v1/integrations/{id}");
    for reply in [
        r,
        app.get(&path, &api).await,
        app.get("/v1/integrations", &api).await,
        app.get("/v1/audit", &api).await,
    ] {
        assert!(
            !reply
                .raw
                .windows(value.len())
                .any(|w| w == value.as_bytes()),
            "{}",
            reply.body
        );
    }
    for (body, code) in [
        (
            json!({"provider": "stripe", "secrets": [SECRET], "api_credentials": {"api_key": "x"}}),
            "UNKNOWN_API_CREDENTIAL",
        ),
        (
            json!({"provider": "generic", "secrets": ["whsec_AAAA"], "api_credentials": {"token": "x"}}),
            "UNKNOWN_API_CREDENTIAL",
        ),
        (
            json!({"provider": "stripe", "secrets": [SECRET], "api_credentials": {"secret_key": " "}}),
            "INVALID_FIELD",
        ),
        (
            json!({"provider": "stripe", "secrets": [SECRET], "options": {"api_base_url": "http://api.stripe.test"}}),
            "OPTION_INVALID",
        ),
        (
            json!({"provider": "stripe", "secrets": [SECRET], "options": {"api_base_url": "http://127.0.0.1:9"}}),
            "OPTION_INVALID",
        ),
        (
            json!({"provider": "stripe", "secrets": [SECRET], "options": {"api_base_url": 7}}),
            "OPTION_INVALID",
        ),
    ] {
        let r = app.post("/v1/integrations", &api, body.clone()).await;
        assert_eq!((r.status, r.code()), (422, code), "{body}: {}", r.body);
    }
    let chargebee = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": "chargebee", "secrets": ["hooks:pw"],
                   "api_credentials": {"site": "acme-test", "api_key": "cb_key"}}),
        )
        .await;
    assert_eq!(
        chargebee.body["api_credentials"],
        json!(["api_key", "site"])
    );
    // PATCH: other fields keep the credentials; `{}` removes them.
    let r = app.patch(&path, &api, json!({"name": "renamed"})).await;
    assert_eq!(
        r.body["api_credentials"],
        json!(["secret_key"]),
        "{}",
        r.body
    );
    let r = app
        .patch(
            &path,
            &api,
            json!({"api_credentials": {"secret_key": "sk_rotated"}}),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["api_credentials"]),
        (200, &json!(["secret_key"]))
    );
    let r = app.patch(&path, &api, json!({"api_credentials": {}})).await;
    assert_eq!(r.body["api_credentials"], json!([]), "{}", r.body);
    let r = app
        .patch(&path, &api, json!({"api_credentials": {"client_id": "x"}}))
        .await;
    assert_eq!((r.status, r.code()), (422, "UNKNOWN_API_CREDENTIAL"));
}
