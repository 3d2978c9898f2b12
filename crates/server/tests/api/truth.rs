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
    paypal_renewal_sale_alone_extends_or_fails_clearly
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
    let r = app
        .send("POST", path, None, Some(Value::String(body)), &headers)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r
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
    let steps = kit.steps(now, now);
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
    let steps = kit.steps(now, now);

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
