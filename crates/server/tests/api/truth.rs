//! What the platforms really send, end to end on both engines (issue 12, the conformance
//! review): deliveries signed and shaped by `keygate_billing::testkit`, into license state.
use crate::harness::{Reply, TestApp};
use crate::on_both_engines;
use keygate_billing::testkit::{self, Kit};
use keygate_billing::{Secrets, provider};
use keygate_domain::Timestamp;
use serde_json::{Value, json};

on_both_engines!(
    lemonsqueezy_purchase_is_one_license_in_either_order,
    paypal_renewal_sale_alone_extends_or_fails_clearly,
    fastspring_without_expansion_pauses_and_partial_batches,
    chargebee_dunning_survives_snapshots_and_backdated_types_apply,
    paddle_unmapped_add_on_is_skipped_not_fatal,
    lemonsqueezy_free_pause_keeps_access_void_pause_suspends,
    paddle_same_millisecond_orders_by_microseconds
);

const MONTH: i64 = testkit::MONTH;

fn now_s() -> i64 {
    Timestamp::now().millis() / 1000
}

fn t(v: &Value) -> i64 {
    Timestamp::parse_rfc3339(v.as_str().unwrap())
        .unwrap()
        .millis()
        / 1000
}

/// An account, a subscription policy and an integration of `name` with the kit's settings.
async fn integration(app: &TestApp, name: &str) -> (String, String) {
    let kit = testkit::kit(provider(name).unwrap());
    let settings = kit.settings();
    let api = app.account("Shop").await;
    let policy = app
        .policy(
            &api,
            json!({"expiry": "subscription", "max_activations": 1, "seats_from_quantity": true}),
        )
        .await;
    let r = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": name, "secrets": settings.secrets, "options": settings.options,
                   "mappings": [{"external_id": kit.ids().mapping, "policy_id": policy}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{name}: {}", r.body);
    let url = r.body["webhook_url"].as_str().unwrap();
    (api, url[url.find("/v1/").unwrap()..].to_string())
}

async fn post_signed(app: &TestApp, path: &str, kit: &dyn Kit, body: &Value) -> Reply {
    let r = send_signed(app, path, kit, body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r
}

async fn send_signed(app: &TestApp, path: &str, kit: &dyn Kit, body: &Value) -> Reply {
    let settings = kit.settings();
    let secrets = Secrets::new(settings.secrets).with_options(settings.options);
    let body = body.to_string();
    let headers = kit
        .sign(&secrets, body.as_bytes(), Timestamp::now())
        .unwrap();
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    app.send("POST", path, None, Some(Value::String(body)), &headers)
        .await
}

async fn licenses(app: &TestApp, api: &str) -> Vec<Value> {
    app.get("/v1/licenses", api).await.body["data"]
        .as_array()
        .unwrap()
        .clone()
}

/// Lemon Squeezy sends `order_created` with every `subscription_created` (same order, same
/// variant). Whichever comes first, the purchase is one license: the subscription's, valid
/// until the period end, which ends with the subscription.
async fn lemonsqueezy_purchase_is_one_license_in_either_order(app: &TestApp) {
    let kit = testkit::kit(provider("lemonsqueezy").unwrap());
    let now = now_s();
    let steps = kit.steps(now, now).unwrap();
    let [order, created] = [&steps.created[0], &steps.created[1]];
    assert_eq!(order["meta"]["event_name"], "order_created");
    assert_eq!(created["meta"]["event_name"], "subscription_created");
    for bodies in [[order, created], [created, order]] {
        let (api, path) = integration(app, "lemonsqueezy").await;
        for body in bodies {
            let r = post_signed(app, &path, kit, body).await;
            assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
        }
        let list = licenses(app, &api).await;
        assert_eq!(list.len(), 1, "one purchase, one license: {list:?}");
        let license = &list[0];
        assert_eq!(t(&license["expires_at"]), now + MONTH, "{license}");
        assert!(license["subscription_id"].is_string(), "{license}");
        // It is the subscription's license: the subscription's refund revokes it.
        for body in &steps.refunded {
            post_signed(app, &path, kit, body).await;
        }
        let v = app.validate(json!({"key": license["key"]})).await;
        assert_eq!(v.body["code"], "REVOKED", "{}", v.body);
        assert_eq!(licenses(app, &api).await.len(), 1);
    }
}

/// PayPal's renewal is `PAYMENT.SALE.COMPLETED` alone (no period, no subscription event).
/// Known subscription: the expiry moves by the learnt interval, recorded as derived. Unknown
/// subscription: the event is `failed` with API_CREDENTIALS_REQUIRED and replayable.
async fn paypal_renewal_sale_alone_extends_or_fails_clearly(app: &TestApp) {
    let kit = testkit::kit(provider("paypal").unwrap());
    let now = now_s();
    let steps = kit.steps(now, now).unwrap();

    // Nothing known about the subscription: failed, with what to configure; nothing issued.
    let (api, path) = integration(app, "paypal").await;
    let r = post_signed(app, &path, kit, &steps.renewed[0]).await;
    assert_eq!(r.body["events"][0]["status"], "failed", "{}", r.body);
    let sale_event = r.body["events"][0]["id"].as_str().unwrap().to_string();
    let event = app.get(&format!("/v1/events/{sale_event}"), &api).await;
    assert_eq!(event.body["error"]["code"], "API_CREDENTIALS_REQUIRED");
    assert!(licenses(app, &api).await.is_empty());
    // The activation arrives; replaying the sale now derives the period.
    let r = post_signed(app, &path, kit, &steps.created[0]).await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    let list = licenses(app, &api).await;
    assert_eq!(t(&list[0]["expires_at"]), now + MONTH);
    let replayed = app
        .post(&format!("/v1/events/{sale_event}/replay"), &api, json!({}))
        .await;
    assert_eq!(replayed.body["status"], "applied", "{}", replayed.body);
    let list = licenses(app, &api).await;
    assert_eq!(list.len(), 1);
    assert_eq!(t(&list[0]["expires_at"]), now + 2 * MONTH, "{}", list[0]);
    let event = app.get(&format!("/v1/events/{sale_event}"), &api).await;
    let actions = event.body["actions"].as_array().unwrap();
    assert!(
        actions.iter().any(|a| a["action"] == "derived_period_end"
            && t(&a["current_period_end"]) == now + 2 * MONTH),
        "{}",
        event.body
    );

    // The cancellation (no next_billing_time, as PayPal sends it) keeps the derived end.
    for body in &steps.cancelled {
        let r = post_signed(app, &path, kit, body).await;
        assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    }
    let list = licenses(app, &api).await;
    assert_eq!(t(&list[0]["expires_at"]), now + 2 * MONTH, "{}", list[0]);
    let subs = app.get("/v1/subscriptions", &api).await;
    assert_eq!(
        t(&subs.body["data"][0]["current_period_end"]),
        now + 2 * MONTH,
        "{}",
        subs.body
    );
}

fn fastspring_batch(events: Vec<Value>) -> Value {
    json!({"events": events})
}

fn fastspring_event(id: &str, event_type: &str, at: i64, data: Value) -> Value {
    json!({"id": id, "processed": false, "created": at * 1000, "type": event_type,
           "live": true, "data": data})
}

async fn validation_code(app: &TestApp, license: &Value) -> String {
    let v = app.validate(json!({"key": license["key"]})).await;
    v.body["code"].as_str().unwrap().to_string()
}

/// FastSpring without Webhook Expansion (its default): the renewal charge names only ids. Known
/// subscription: extended by its interval; unknown: failed WEBHOOK_EXPANSION_REQUIRED, and
/// replayable. `subscription.paused` suspends, `subscription.resumed` reinstates. A batch
/// with a failed event is answered 202 with the processed ids, one per line.
async fn fastspring_without_expansion_pauses_and_partial_batches(app: &TestApp) {
    let kit = testkit::kit(provider("fastspring").unwrap());
    let now = now_s();
    let steps = kit.steps(now, now).unwrap();
    let (api, path) = integration(app, "fastspring").await;
    let thin = fastspring_batch(vec![fastspring_event(
        "evt_FS_thin_1",
        "subscription.charge.completed",
        now - 95,
        json!({"order": "ord_FS9", "account": "acct_Ann1", "subscription": "sub_FS1",
               "currency": "USD", "total": 30, "status": "successful",
               "timestamp": (now - 95) * 1000, "timestampInSeconds": now - 95}),
    )]);
    // Its only event failed: 202 and no id processed, so FastSpring sends it again.
    let r = send_signed(app, &path, kit, &thin).await;
    assert_eq!(r.status, 202, "{:?}", r.raw);
    assert_eq!(r.raw.as_ref(), b"");
    let failed = app.get("/v1/events?status=failed", &api).await;
    let event = &failed.body["data"][0];
    assert_eq!(
        event["error"]["code"], "WEBHOOK_EXPANSION_REQUIRED",
        "{}",
        failed.body
    );
    let event_id = event["id"].as_str().unwrap().to_string();
    assert!(licenses(app, &api).await.is_empty());

    // The subscription's own events carry the object (and its interval): replay derives.
    for body in &steps.created {
        post_signed(app, &path, kit, body).await;
    }
    assert_eq!(t(&licenses(app, &api).await[0]["expires_at"]), now + MONTH);
    let replayed = app
        .post(&format!("/v1/events/{event_id}/replay"), &api, json!({}))
        .await;
    assert_eq!(replayed.body["status"], "applied", "{}", replayed.body);
    let license = licenses(app, &api).await[0].clone();
    assert_eq!(t(&license["expires_at"]), now + 2 * MONTH, "{license}");
    assert_eq!(validation_code(app, &license).await, "VALID");

    // Paused: no access (FastSpring's definition); resumed: back.
    let object = steps.quantity[0]["events"][0]["data"].clone();
    let paused = fastspring_batch(vec![fastspring_event(
        "evt_FS_paused",
        "subscription.paused",
        now - 70,
        object.clone(),
    )]);
    let r = post_signed(app, &path, kit, &paused).await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    assert_eq!(validation_code(app, &license).await, "SUSPENDED");
    let resumed = fastspring_batch(vec![fastspring_event(
        "evt_FS_resumed",
        "subscription.resumed",
        now - 60,
        object.clone(),
    )]);
    post_signed(app, &path, kit, &resumed).await;
    assert_eq!(validation_code(app, &license).await, "VALID");

    // One applied and one failed (unmapped product) in one batch: 202, the applied id.
    let mut other = object.clone();
    other["id"] = json!("sub_FS2");
    other["subscription"] = json!("sub_FS2");
    other["product"] = json!("not-mapped");
    let batch = fastspring_batch(vec![
        fastspring_event("evt_FS_ok", "subscription.updated", now - 50, object),
        fastspring_event("evt_FS_unmapped", "subscription.updated", now - 50, other),
    ]);
    let r = send_signed(app, &path, kit, &batch).await;
    assert_eq!(r.status, 202);
    assert_eq!(
        r.headers["content-type"].to_str().unwrap(),
        "text/plain; charset=utf-8"
    );
    assert_eq!(r.raw.as_ref(), b"evt_FS_ok\n");
}

/// Chargebee keeps `active` during dunning: a later snapshot with unpaid invoices
/// (`due_invoices_count`) keeps the failure; recovery clears it. Backdated cancellations and
/// `subscription_deleted` end access.
async fn chargebee_dunning_survives_snapshots_and_backdated_types_apply(app: &TestApp) {
    let kit = testkit::kit(provider("chargebee").unwrap());
    let now = now_s();
    let steps = kit.steps(now, now).unwrap();
    let (api, path) = integration(app, "chargebee").await;
    for body in steps.created.iter().chain(&steps.failed) {
        let r = post_signed(app, &path, kit, body).await;
        assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    }
    let license = licenses(app, &api).await[0].clone();
    // No grace configured: suspended by the failure.
    let during = validation_code(app, &license).await;
    assert_eq!(during, "SUSPENDED");
    // A card update during dunning: the full snapshot, still `active`, one invoice due.
    let mut changed = steps.failed[0].clone();
    changed["id"] = json!("ev_cb_changed_in_dunning");
    changed["event_type"] = json!("subscription_changed");
    changed["occurred_at"] = json!(now + 1);
    changed["content"]["subscription"]["resource_version"] = json!(1010);
    changed["content"]
        .as_object_mut()
        .unwrap()
        .retain(|k, _| k == "subscription" || k == "customer");
    let r = post_signed(app, &path, kit, &changed).await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    assert_eq!(
        validation_code(app, &license).await,
        during,
        "the failure stays"
    );
    let subs = app.get("/v1/subscriptions", &api).await;
    assert_eq!(subs.body["data"][0]["status"], "past_due", "{}", subs.body);

    // A backdated cancellation (sent instead of `subscription_cancelled`): access ends.
    let mut cancelled = steps.created[0].clone();
    cancelled["id"] = json!("ev_cb_cancel_backdated");
    cancelled["event_type"] = json!("subscription_canceled_with_backdating");
    cancelled["occurred_at"] = json!(now + 2);
    let sub = &mut cancelled["content"]["subscription"];
    sub["status"] = json!("cancelled");
    sub["cancelled_at"] = json!(now - 50);
    sub["resource_version"] = json!(1020);
    let r = post_signed(app, &path, kit, &cancelled).await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    assert_eq!(validation_code(app, &license).await, "SUSPENDED");

    // `subscription_deleted`: the subscription is gone, so is access.
    let (api, path) = integration(app, "chargebee").await;
    post_signed(app, &path, kit, &steps.created[0]).await;
    let license = licenses(app, &api).await[0].clone();
    assert_eq!(validation_code(app, &license).await, "VALID");
    let mut deleted = steps.created[0].clone();
    deleted["id"] = json!("ev_cb_deleted");
    deleted["event_type"] = json!("subscription_deleted");
    deleted["occurred_at"] = json!(now + 3);
    deleted["content"]["subscription"]["resource_version"] = json!(1030);
    let r = post_signed(app, &path, kit, &deleted).await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    assert_eq!(validation_code(app, &license).await, "SUSPENDED");
}

/// A Paddle subscription with the licensed plan and an add-on the vendor does not map: the
/// plan is licensed, the add-on skipped and listed as UNMAPPED_ITEM in the event's actions.
async fn paddle_unmapped_add_on_is_skipped_not_fatal(app: &TestApp) {
    let kit = testkit::kit(provider("paddle").unwrap());
    let now = now_s();
    let steps = kit.steps(now, now).unwrap();
    let (api, path) = integration(app, "paddle").await;
    let mut created = steps.created[0].clone();
    let items = created["data"]["items"].as_array_mut().unwrap();
    let mut add_on = items[0].clone();
    add_on["price"]["id"] = json!("pri_01addon_unmapped");
    add_on["quantity"] = json!(2);
    items.push(add_on);
    let r = post_signed(app, &path, kit, &created).await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    let list = licenses(app, &api).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(validation_code(app, &list[0]).await, "VALID");
    let id = r.body["events"][0]["id"].as_str().unwrap();
    let event = app.get(&format!("/v1/events/{id}"), &api).await;
    let actions = event.body["actions"].as_array().unwrap();
    assert!(
        actions.iter().any(|a| a["code"] == "UNMAPPED_ITEM"
            && a["item_external_id"] == "pri_01addon_unmapped"
            && a["quantity"] == 2),
        "{}",
        event.body
    );
}

/// Lemon Squeezy pauses collect no payment; `pause.mode: free` gives the service for free
/// (access kept), `void` pauses the service (suspended); unpaused reinstates.
async fn lemonsqueezy_free_pause_keeps_access_void_pause_suspends(app: &TestApp) {
    let kit = testkit::kit(provider("lemonsqueezy").unwrap());
    let now = now_s();
    let steps = kit.steps(now, now).unwrap();
    let (api, path) = integration(app, "lemonsqueezy").await;
    for body in &steps.created {
        post_signed(app, &path, kit, body).await;
    }
    let license = licenses(app, &api).await[0].clone();
    let sub_event = |name: &str, at: i64, status: &str, pause: Value| {
        let mut body = steps.created[1].clone();
        body["meta"]["event_name"] = json!(name);
        let attributes = &mut body["data"]["attributes"];
        attributes["status"] = json!(status);
        attributes["pause"] = pause;
        attributes["updated_at"] = json!(Timestamp::from_unix_seconds(at).to_rfc3339());
        body
    };
    let free = sub_event(
        "subscription_paused",
        now - 50,
        "paused",
        json!({"mode": "free", "resumes_at": null}),
    );
    let r = post_signed(app, &path, kit, &free).await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    assert_eq!(validation_code(app, &license).await, "VALID");
    let void = sub_event(
        "subscription_paused",
        now - 40,
        "paused",
        json!({"mode": "void", "resumes_at": null}),
    );
    post_signed(app, &path, kit, &void).await;
    assert_eq!(validation_code(app, &license).await, "SUSPENDED");
    let unpaused = sub_event("subscription_unpaused", now - 30, "active", Value::Null);
    post_signed(app, &path, kit, &unpaused).await;
    assert_eq!(validation_code(app, &license).await, "VALID");
}

/// Two Paddle updates within one millisecond, the newer delivered first and with the event id
/// that sorts first: the microseconds of `occurred_at` decide, not the id.
async fn paddle_same_millisecond_orders_by_microseconds(app: &TestApp) {
    let kit = testkit::kit(provider("paddle").unwrap());
    let now = now_s();
    let steps = kit.steps(now, now).unwrap();
    let (api, path) = integration(app, "paddle").await;
    post_signed(app, &path, kit, &steps.created[0]).await;
    let at = Timestamp::from_unix_seconds(now - 50).to_rfc3339();
    let at = at
        .trim_end_matches('Z')
        .split('.')
        .next()
        .unwrap()
        .to_string();
    let update = |id: &str, micros: &str, qty: i64| {
        let mut body = steps.quantity[0].clone();
        body["event_id"] = json!(id);
        body["notification_id"] = json!(format!("ntf_{id}"));
        body["occurred_at"] = json!(format!("{at}.621{micros}Z"));
        for item in body["data"]["items"].as_array_mut().unwrap() {
            item["quantity"] = json!(qty);
        }
        body
    };
    let newer = update("evt_a_newer", "022", 7);
    let older = update("evt_z_older", "010", 3);
    for body in [&newer, &older] {
        let r = post_signed(app, &path, kit, body).await;
        assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    }
    let license = licenses(app, &api).await[0].clone();
    assert_eq!(license["max_activations"], 7, "{license}");
}
