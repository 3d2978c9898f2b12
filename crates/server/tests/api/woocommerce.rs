//! WooCommerce end to end, both engines: deliveries signed and shaped as WooCommerce sends them
//! (REST v3 objects, `X-WC-Webhook-*` headers), the creation ping, a one-time order through a
//! partial and a full refund, a replay storm of the subscription lifecycle, and the periodic
//! sync against a local stand-in that answers as the WooCommerce REST API documents (Basic
//! auth with the consumer key and secret, `modified_after`, `page`/`per_page`, `X-WP-Total`
//! and `X-WP-TotalPages`).
use crate::harness::{Reply, TestApp};
use base64::Engine;
use keygate_billing::providers::woocommerce::{SCHEME, wp_specialchars_decode};
use keygate_billing::testkit;
use keygate_billing::testkit::woocommerce::{
    OrderAt, SubscriptionAt, headers, line, order, refund, subscription, unmapped_line,
};
use keygate_domain::Timestamp;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

macro_rules! with_stand_in {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use crate::harness::TestApp;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = TestApp::sqlite_with(|c| c.outbound_allow_private = true).await;
                super::$name(&app).await;
                app.finish().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let app = TestApp::postgres_with(|c| c.outbound_allow_private = true).await;
                super::$name(&app).await;
                app.finish().await;
            }
        }
    )*};
}

with_stand_in!(
    ping_is_answered_and_stored_nowhere,
    order_paid_partial_refund_full_refund,
    replay_storm_ends_in_the_in_order_state,
    sync_recovers_missed_webhooks
);

const SECRET: &str = "wc_secret_&lt;for&amp;tests";
const CK: &str = "ck_4f1b2c3d4e5f60718293a4b5c6d7e8f901234567";
const CS: &str = "cs_0a9b8c7d6e5f40312a2b3c4d5e6f708192a3b4c5";

fn now_s() -> i64 {
    Timestamp::now().millis() / 1000
}

/// A local stand-in for a store's `/wp-json/wc/v3`: what the shop holds now.
#[derive(Default)]
struct Shop {
    orders: Vec<Value>,
    subscriptions: Vec<Value>,
    refunds: Vec<(i64, i64, Value)>,
    /// Request lines asked.
    seen: Vec<String>,
}

async fn stand_in() -> (String, Arc<Mutex<Shop>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shop = Arc::new(Mutex::new(Shop::default()));
    let shared = shop.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let shop = shared.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request).into_owned();
                let line = text.lines().next().unwrap_or("").to_string();
                let auth = text
                    .lines()
                    .find_map(|l| {
                        l.split_once(':')
                            .filter(|(n, _)| n.eq_ignore_ascii_case("authorization"))
                            .map(|(_, v)| v.trim().to_string())
                    })
                    .unwrap_or_default();
                let (status, extra, body) = {
                    let mut shop = shop.lock().unwrap();
                    shop.seen.push(line.clone());
                    answer(&shop, &line, &auth)
                };
                let body = body.to_string();
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json; charset=UTF-8\r\n\
                     {extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (base, shop)
}

fn query<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// As the REST API answers: 401 without the consumer key and secret; listings filtered by
/// `modified_after` (GMT with `dates_are_gmt`), oldest first, `per_page` (at most 100) per
/// page with the totals in headers; one refund by id.
fn answer(shop: &Shop, line: &str, auth: &str) -> (u16, String, Value) {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CK}:{CS}"))
    );
    if auth != expected {
        return (
            401,
            String::new(),
            json!({"code": "woocommerce_rest_cannot_view",
                   "message": "Sorry, you cannot list resources.", "data": {"status": 401}}),
        );
    }
    let target = line.split(' ').nth(1).unwrap_or("");
    let (path, q) = target.split_once('?').unwrap_or((target, ""));
    let Some(rest) = path.strip_prefix("/wp-json/wc/v3/") else {
        return (404, String::new(), json!({"code": "rest_no_route"}));
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let list = match parts.as_slice() {
        ["orders"] => &shop.orders,
        ["subscriptions"] => &shop.subscriptions,
        ["orders", order, "refunds", id] => {
            let found = shop
                .refunds
                .iter()
                .find(|(o, r, _)| o.to_string() == *order && r.to_string() == *id);
            return match found {
                Some((_, _, refund)) => (200, String::new(), refund.clone()),
                None => (
                    404,
                    String::new(),
                    json!({"code": "woocommerce_rest_invalid_id", "message": "Invalid ID.",
                           "data": {"status": 404}}),
                ),
            };
        }
        _ => return (404, String::new(), json!({"code": "rest_no_route"})),
    };
    let after = query(q, "modified_after");
    let mut matching: Vec<&Value> = list
        .iter()
        .filter(|o| after.is_none_or(|a| o["date_modified_gmt"].as_str().unwrap() > a))
        .collect();
    matching.sort_by_key(|o| o["date_modified_gmt"].as_str().unwrap().to_string());
    let per_page: usize = query(q, "per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(10)
        .min(100);
    let page: usize = query(q, "page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let total_pages = matching.len().div_ceil(per_page).max(1);
    let items: Vec<Value> = matching
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|v| (*v).clone())
        .collect();
    (
        200,
        format!(
            "x-wp-total: {}\r\nx-wp-totalpages: {total_pages}\r\n",
            matching.len()
        ),
        Value::Array(items),
    )
}

async fn setup(
    app: &TestApp,
    base: &str,
    api_credentials: Value,
    options: Value,
) -> (String, String, String) {
    let api = app.account("Shop").await;
    let policy = app
        .policy(
            &api,
            json!({"expiry": "subscription", "max_activations": 1, "seats_from_quantity": true}),
        )
        .await;
    let mut credentials = api_credentials;
    if credentials.get("store_url").is_some() {
        credentials["store_url"] = json!(base);
    }
    let integration = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": "woocommerce", "secrets": [SECRET], "options": options,
                   "api_credentials": credentials,
                   "mappings": [{"external_id": "2002", "policy_id": policy}]}),
        )
        .await;
    assert_eq!(integration.status, 201, "{}", integration.body);
    let id = integration.body["id"].as_str().unwrap().to_string();
    (api, id, policy)
}

fn credentials() -> Value {
    json!({"store_url": "", "consumer_key": CK, "consumer_secret": CS})
}

/// One delivery as `WC_Webhook::deliver` sends it.
async fn deliver(app: &TestApp, integration: &str, topic: &str, object: &Value) -> Reply {
    let body = object.to_string();
    let signature = SCHEME.sign(wp_specialchars_decode(SECRET).as_bytes(), body.as_bytes());
    let sent = headers(topic, &signature);
    let sent: Vec<(&str, &str)> = sent.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    app.send(
        "POST",
        &format!("/v1/webhooks/woocommerce/{integration}"),
        None,
        Some(Value::String(body)),
        &sent,
    )
    .await
}

async fn licenses(app: &TestApp, api: &str) -> Vec<Value> {
    let list = app.get("/v1/licenses", api).await;
    let mut data = list.body["data"].as_array().unwrap().clone();
    data.sort_by_key(|l| l["id"].as_str().unwrap().to_string());
    data
}

async fn code_of(app: &TestApp, license: &Value) -> String {
    let v = app.validate(json!({"key": license["key"]})).await;
    v.body["code"].as_str().unwrap().to_string()
}

async fn ping_is_answered_and_stored_nowhere(app: &TestApp) {
    let (base, _) = stand_in().await;
    let (api, id, _) = setup(app, &base, json!({}), json!({})).await;
    let path = format!("/v1/webhooks/woocommerce/{id}");
    let form = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("user-agent", "WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)"),
    ];
    let r = app
        .send(
            "POST",
            &path,
            None,
            Some(Value::String("webhook_id=12".into())),
            &form,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["received"], 0, "{}", r.body);
    // Anything else unsigned is refused: the ping is no way in.
    for body in [
        "webhook_id=12&status=processing",
        r#"{"id":727,"status":"processing"}"#,
    ] {
        let r = app
            .send("POST", &path, None, Some(Value::String(body.into())), &form)
            .await;
        assert_eq!((r.status, r.code()), (401, "SIGNATURE_MISSING"), "{body}");
    }
    let events = app.get("/v1/events", &api).await;
    assert_eq!(
        events.body["data"].as_array().unwrap().len(),
        0,
        "{}",
        events.body
    );
    // A custom action topic: stored as ignored, answered 200 (a refusal would count as a
    // failure, and WooCommerce disables a webhook after five).
    let r = deliver(
        app,
        &id,
        "action.woocommerce_payment_complete",
        &json!({"action": "woocommerce_payment_complete", "arg": 727}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["events"][0]["status"], "ignored", "{}", r.body);
}

async fn order_paid_partial_refund_full_refund(app: &TestApp) {
    let (base, shop) = stand_in().await;
    let (api, id, policy) = setup(app, &base, credentials(), json!({})).await;
    let now = now_s();
    let paid = |modified: i64, status: &'static str, refunds: Vec<(i64, &'static str)>| {
        order(OrderAt {
            id: 727,
            created: now - 60,
            modified,
            status,
            paid: Some(now - 50),
            lines: vec![line(315, 2), unmapped_line(316)],
            refunds,
            renewal_of: None,
        })
    };
    // Created unpaid (no license), then paid: a license for the mapped line, 2 seats.
    let mut pending = paid(now - 60, "pending", vec![]);
    pending["date_paid_gmt"] = Value::Null;
    let r = deliver(app, &id, "order.created", &pending).await;
    assert_eq!(r.body["events"][0]["status"], "ignored", "{}", r.body);
    assert!(licenses(app, &api).await.is_empty());
    let r = deliver(
        app,
        &id,
        "order.updated",
        &paid(now - 50, "processing", vec![]),
    )
    .await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    let list = licenses(app, &api).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["max_activations"], 2, "{}", list[0]);
    assert_eq!(list[0]["policy_id"], policy.as_str());
    assert_eq!(code_of(app, &list[0]).await, "VALID");
    // The same state again (WooCommerce sends `order.updated` for every save): a duplicate.
    let r = deliver(
        app,
        &id,
        "order.updated",
        &paid(now - 50, "processing", vec![]),
    )
    .await;
    assert_eq!(r.body["events"][0]["duplicate"], true, "{}", r.body);

    // A partial refund of one seat: the order payload names only the refund; its lines come
    // from the REST API. The order stays licensed.
    shop.lock()
        .unwrap()
        .refunds
        .push((727, 726, refund(726, now - 40, &[(315, 1)])));
    let r = deliver(
        app,
        &id,
        "order.updated",
        &paid(now - 40, "processing", vec![(726, "-150.00")]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let events = r.body["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{}", r.body);
    assert_eq!(events[1]["provider_event_id"], "order:727:refund:726");
    assert_eq!(events[1]["status"], "applied", "{}", r.body);
    assert!(
        shop.lock()
            .unwrap()
            .seen
            .iter()
            .any(|l| l.contains("/wp-json/wc/v3/orders/727/refunds/726")),
        "the refund's lines were fetched"
    );
    let event = app
        .get(
            &format!("/v1/events/{}", events[1]["id"].as_str().unwrap()),
            &api,
        )
        .await;
    assert_eq!(
        event.body["event"]["order"]["lines"][0]["external_id"], "2002",
        "{}",
        event.body
    );
    let list = licenses(app, &api).await;
    assert_eq!(list.len(), 1);
    assert_eq!(
        code_of(app, &list[0]).await,
        "VALID",
        "a partial refund keeps the order"
    );
    assert_eq!(
        list[0]["max_activations"], 1,
        "one of two seats refunded: {}",
        list[0]
    );

    // Refunded in full: revoked.
    let r = deliver(
        app,
        &id,
        "order.updated",
        &paid(
            now - 30,
            "refunded",
            vec![(731, "-162.00"), (726, "-150.00")],
        ),
    )
    .await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    let list = licenses(app, &api).await;
    assert_eq!(code_of(app, &list[0]).await, "REVOKED");
    let failed = app.get("/v1/events?status=failed", &api).await;
    assert_eq!(
        failed.body["data"].as_array().unwrap().len(),
        0,
        "{}",
        failed.body
    );

    // Without API credentials a partial refund cannot be completed: failed with what to set.
    let (api2, id2, _) = setup(app, &base, json!({}), json!({})).await;
    deliver(
        app,
        &id2,
        "order.updated",
        &paid(now - 50, "processing", vec![]),
    )
    .await;
    let r = deliver(
        app,
        &id2,
        "order.updated",
        &paid(now - 40, "processing", vec![(726, "-150.00")]),
    )
    .await;
    assert_eq!(r.body["events"][1]["status"], "failed", "{}", r.body);
    let failed = app.get("/v1/events?status=failed", &api2).await;
    assert_eq!(
        failed.body["data"][0]["error"]["code"], "API_CREDENTIALS_REQUIRED",
        "{}",
        failed.body
    );
}

/// What the vendor sees of the subscription's license.
async fn license_state(app: &TestApp, api: &str) -> (usize, String, Value, Value) {
    let list = licenses(app, api).await;
    let one = list[0].clone();
    (
        list.len(),
        code_of(app, &one).await,
        one["expires_at"].clone(),
        one["max_activations"].clone(),
    )
}

async fn replay_storm_ends_in_the_in_order_state(app: &TestApp) {
    let (base, _) = stand_in().await;
    let kit = testkit::kit(keygate_billing::provider("woocommerce").unwrap());
    let now = now_s();
    let steps = kit.steps(now, now - 10).unwrap();
    let bodies: Vec<Value> = steps
        .all()
        .iter()
        .filter(|(name, _)| *name != "refunded")
        .flat_map(|(_, b)| b.iter().cloned())
        .collect();
    let secrets = keygate_billing::Secrets::new([SECRET]);
    let send_all = async |id: &str, order: &[usize]| {
        for i in order {
            let body = bodies[*i].to_string();
            let sent = kit
                .sign(&secrets, body.as_bytes(), Timestamp::now())
                .unwrap();
            let sent: Vec<(&str, &str)> =
                sent.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let r = app
                .send(
                    "POST",
                    &format!("/v1/webhooks/woocommerce/{id}"),
                    None,
                    Some(Value::String(body)),
                    &sent,
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
    };
    // In order, once.
    let (api_a, id_a, _) = setup(app, &base, json!({}), json!({})).await;
    send_all(&id_a, &(0..bodies.len()).collect::<Vec<_>>()).await;
    let in_order = license_state(app, &api_a).await;
    assert_eq!(in_order.0, 1);
    assert_eq!(in_order.3, 5);
    // Every delivery three times, shuffled (a fixed permutation, so a failure reproduces).
    let (api_b, id_b, _) = setup(app, &base, json!({}), json!({})).await;
    let mut storm: Vec<usize> = (0..bodies.len()).flat_map(|i| [i, i, i]).collect();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..storm.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        storm.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    send_all(&id_b, &storm).await;
    assert_eq!(license_state(app, &api_b).await, in_order);
    let subs_a = app.get("/v1/subscriptions", &api_a).await;
    let subs_b = app.get("/v1/subscriptions", &api_b).await;
    for field in ["status", "current_period_end"] {
        assert_eq!(
            subs_a.body["data"][0][field], subs_b.body["data"][0][field],
            "{field}: {} / {}",
            subs_a.body, subs_b.body
        );
    }
    let failed = app.get("/v1/events?status=failed", &api_b).await;
    assert_eq!(
        failed.body["data"].as_array().unwrap().len(),
        0,
        "{}",
        failed.body
    );
}

async fn sync_recovers_missed_webhooks(app: &TestApp) {
    let (base, shop) = stand_in().await;
    let (api, id, _) = setup(app, &base, credentials(), json!({"grace_seconds": 3600})).await;
    let now = now_s();
    let p1 = now + testkit::MONTH;
    let sub = |modified: i64, status: &'static str, next: Option<i64>| {
        subscription(SubscriptionAt {
            created: now - 100,
            modified,
            status,
            quantity: 1,
            next_payment: next,
            end: None,
            last_payment: now - 100,
        })
    };
    let parent = order(OrderAt {
        id: 1249,
        created: now - 101,
        modified: now - 101,
        status: "processing",
        paid: Some(now - 101),
        lines: vec![line(401, 1)],
        refunds: vec![],
        renewal_of: None,
    });
    // Delivered: the checkout.
    deliver(app, &id, "order.created", &parent).await;
    deliver(
        app,
        &id,
        "subscription.created",
        &sub(now - 100, "active", Some(p1)),
    )
    .await;
    let list = licenses(app, &api).await;
    assert_eq!(list.len(), 1);
    assert_eq!(code_of(app, &list[0]).await, "VALID");

    // Missed (WooCommerce never retries): the subscription put on hold, a new paid order.
    // The shop also holds 101 unpaid orders, so the order listing has two pages.
    let missed = order(OrderAt {
        id: 1400,
        created: now - 20,
        modified: now - 19,
        status: "completed",
        paid: Some(now - 19),
        lines: vec![line(501, 3)],
        refunds: vec![],
        renewal_of: None,
    });
    {
        let mut s = shop.lock().unwrap();
        s.orders.push(parent.clone());
        s.orders.push(missed);
        for n in 0..101 {
            let mut o = order(OrderAt {
                id: 2000 + n,
                created: now - 50,
                modified: now - 50,
                status: "pending",
                paid: None,
                lines: vec![unmapped_line(600 + n)],
                refunds: vec![],
                renewal_of: None,
            });
            o["date_paid_gmt"] = Value::Null;
            s.orders.push(o);
        }
        s.subscriptions.push(sub(now - 10, "on-hold", Some(p1)));
    }

    // No sync for a platform without a listing.
    let stripe = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": "stripe", "secrets": ["whsec_test_secret"], "options": {"sync_interval_seconds": 60}}),
        )
        .await;
    assert_eq!(
        (stripe.status, stripe.code()),
        (422, "SYNC_NOT_SUPPORTED"),
        "{}",
        stripe.body
    );
    let bad = app
        .patch(
            &format!("/v1/integrations/{id}"),
            &api,
            json!({"options": {"sync_interval_seconds": 0}}),
        )
        .await;
    assert_eq!(
        (bad.status, bad.code()),
        (422, "INVALID_FIELD"),
        "{}",
        bad.body
    );

    let r = app
        .post(&format!("/v1/integrations/{id}/sync"), &api, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["complete"], true, "{}", r.body);
    assert_eq!(
        r.body["pages"], 3,
        "two pages of orders, one of subscriptions: {}",
        r.body
    );
    assert_eq!(r.body["objects"], 104, "{}", r.body);
    assert_eq!(
        r.body["since"],
        Value::Null,
        "a first sync reads everything"
    );
    // The parent order was delivered already: the same state, a duplicate.
    assert_eq!(r.body["duplicates"], 1, "{}", r.body);
    let list = licenses(app, &api).await;
    assert_eq!(list.len(), 2, "the missed order is licensed: {list:?}");
    let seats: Vec<&Value> = list.iter().map(|l| &l["max_activations"]).collect();
    assert!(seats.contains(&&json!(3)), "{list:?}");
    let subscription_license = list.iter().find(|l| l["max_activations"] == 1).unwrap();
    assert_eq!(code_of(app, subscription_license).await, "GRACE_PERIOD");
    {
        let s = shop.lock().unwrap();
        assert!(
            s.seen
                .iter()
                .any(|l| l.contains("/wp-json/wc/v3/orders?") && l.contains("page=2"))
        );
    }

    // Again: only what changed since (with overlap), all of it known already.
    let r = app
        .post(&format!("/v1/integrations/{id}/sync"), &api, json!({}))
        .await;
    assert_eq!(r.body["complete"], true, "{}", r.body);
    assert_eq!(r.body["new_events"], 0, "{}", r.body);
    assert!(r.body["since"].is_string(), "{}", r.body);
    assert!(
        shop.lock()
            .unwrap()
            .seen
            .last()
            .unwrap()
            .contains("modified_after="),
    );

    // Credentials the store refuses: the run says why and reads nothing.
    let (api2, id2, _) = setup(
        app,
        &base,
        json!({"store_url": "", "consumer_key": CK, "consumer_secret": "cs_wrong"}),
        json!({}),
    )
    .await;
    let r = app
        .post(&format!("/v1/integrations/{id2}/sync"), &api2, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["complete"], false, "{}", r.body);
    assert_eq!(
        r.body["error"]["code"], "API_CREDENTIALS_REJECTED",
        "{}",
        r.body
    );
    let (api3, id3, _) = setup(app, &base, json!({}), json!({})).await;
    let r = app
        .post(&format!("/v1/integrations/{id3}/sync"), &api3, json!({}))
        .await;
    assert_eq!(
        r.body["error"]["code"], "API_CREDENTIALS_REQUIRED",
        "{}",
        r.body
    );
    assert!(licenses(app, &api3).await.is_empty());

    // On a schedule: the worker syncs on its own.
    let (api4, _, _) = setup(
        app,
        &base,
        credentials(),
        json!({"sync_interval_seconds": 1}),
    )
    .await;
    let mut found = 0;
    for _ in 0..40 {
        found = licenses(app, &api4).await.len();
        if found == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        found, 2,
        "the scheduled sync licensed the shop's paid orders"
    );
}
