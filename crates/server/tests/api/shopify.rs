//! Shopify orders end to end on both engines: `orders/paid` → a license per mapped line (mapped
//! on variant, product or SKU) → `refunds/create` of one line revokes it alone, of part of a
//! line reduces its seats → `orders/cancelled` revokes the rest; and a replay storm (every
//! delivery three times, shuffled) ends in the in-order state.
use crate::harness::TestApp;
use crate::on_both_engines;
use crate::platforms::deliver;
use keygate_billing::provider;
use keygate_billing::testkit::{self, ShopifyKit};
use keygate_domain::Timestamp;
use serde_json::{Value, json};

on_both_engines!(
    shopify_order_paid_partial_refunds_then_cancelled,
    shopify_replay_storm_ends_in_the_in_order_state
);

const ORDER: &str = "820982911946154508";

async fn setup(app: &TestApp) -> (String, String) {
    let kit = testkit::kit(provider("shopify").unwrap());
    let settings = kit.settings();
    let api = app.account("Shop").await;
    let policy = app
        .policy(
            &api,
            json!({"max_activations": 1, "seats_from_quantity": true}),
        )
        .await;
    // One mapping per kind of id Shopify lines carry: a variant, a SKU, a product.
    let r = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": "shopify", "secrets": settings.secrets,
                   "mappings": [{"external_id": kit.ids().mapping, "policy_id": policy},
                                {"external_id": "IPOD2008RED", "policy_id": policy},
                                {"external_id": "921728736", "policy_id": policy}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let url = r.body["webhook_url"].as_str().unwrap();
    (api, url[url.find("/v1/").unwrap()..].to_string())
}

fn line(id: &str, variant: i64, product: i64, sku: &str, quantity: i64) -> Value {
    json!({"id": id.parse::<i64>().unwrap(), "variant_id": variant, "product_id": product,
           "sku": sku, "title": "Keygate Pro", "quantity": quantity, "price": "49.00"})
}

/// The deliveries of one order: paid, a refund of line L2, a refund of one of L1's three
/// seats, the cancellation.
fn deliveries(start: i64) -> Vec<Value> {
    let kit_variant: i64 = testkit::kit(provider("shopify").unwrap())
        .ids()
        .mapping
        .parse()
        .unwrap();
    let lines = vec![
        line("1001", kit_variant, 632_910_392, "IPOD2008BLACK", 3),
        line("1002", 49_148_385, 632_910_392, "IPOD2008RED", 1),
        line("1003", 39_072_856, 921_728_736, "PLUGIN-A", 2),
        line("1004", 808_950_810, 111, "TSHIRT-M", 1),
    ];
    let order = ShopifyKit::order(ORDER, start, lines, "web");
    let mut cancelled = order.clone();
    cancelled["cancelled_at"] = json!(Timestamp::from_unix_seconds(start + 300).to_rfc3339());
    cancelled["financial_status"] = json!("refunded");
    vec![
        ShopifyKit::envelope("orders/paid", "ev-paid", start, order),
        ShopifyKit::envelope(
            "refunds/create",
            "ev-refund-l2",
            start + 100,
            ShopifyKit::refund("7001", ORDER, start + 100, &[("1002", 1)]),
        ),
        ShopifyKit::envelope(
            "refunds/create",
            "ev-refund-l1-seat",
            start + 200,
            ShopifyKit::refund("7002", ORDER, start + 200, &[("1001", 1)]),
        ),
        ShopifyKit::envelope("orders/cancelled", "ev-cancelled", start + 300, cancelled),
    ]
}

/// The licenses as (status, seats), sorted.
async fn state(app: &TestApp, api: &str) -> Vec<(String, i64)> {
    let list = app.get("/v1/licenses", api).await;
    let mut out: Vec<(String, i64)> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["status"].as_str().unwrap().to_string(),
                l["max_activations"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    out.sort();
    out
}

fn rows(rows: &[(&str, i64)]) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = rows.iter().map(|(s, n)| (s.to_string(), *n)).collect();
    out.sort();
    out
}

async fn send_all(app: &TestApp, path: &str, bodies: &[Value]) {
    let kit = testkit::kit(provider("shopify").unwrap());
    for body in bodies {
        let r = deliver(app, path, kit, body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let event = &r.body["events"][0];
        assert!(
            event["status"] == "applied" || event["duplicate"] == true,
            "{}",
            r.body
        );
    }
}

async fn shopify_order_paid_partial_refunds_then_cancelled(app: &TestApp) {
    let (api, path) = setup(app).await;
    let start = Timestamp::now().millis() / 1000 - 3600;
    let all = deliveries(start);
    let kit = testkit::kit(provider("shopify").unwrap());

    // Paid: three licenses (variant, SKU, product), the T-shirt skipped and listed.
    let r = deliver(app, &path, kit, &all[0]).await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    let event = r.body["events"][0]["id"].as_str().unwrap();
    let event = app.get(&format!("/v1/events/{event}"), &api).await;
    let actions = event.body["actions"].as_array().unwrap();
    let creates: Vec<(&str, &str)> = actions
        .iter()
        .filter(|a| a["action"] == "create")
        .map(|a| {
            (
                a["line_id"].as_str().unwrap(),
                a["item_external_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        creates,
        [
            ("1001", kit.ids().mapping),
            ("1002", "IPOD2008RED"),
            ("1003", "921728736")
        ],
        "{}",
        event.body
    );
    assert!(
        actions
            .iter()
            .any(|a| a["code"] == "UNMAPPED_ITEM" && a["item_external_id"] == "808950810"),
        "{}",
        event.body
    );
    assert_eq!(
        state(app, &api).await,
        rows(&[("active", 3), ("active", 1), ("active", 2)])
    );
    let customers = app.get("/v1/customers", &api).await;
    assert_eq!(
        customers.body["data"][0]["external_ids"]["shopify"], "207119551",
        "{}",
        customers.body
    );

    // A refund of line 1002: that license alone; the same refund again changes nothing.
    send_all(app, &path, &all[1..2]).await;
    send_all(app, &path, &all[1..2]).await;
    assert_eq!(
        state(app, &api).await,
        rows(&[("active", 3), ("revoked", 1), ("active", 2)])
    );
    // One of line 1001's three seats refunded: two seats left, still valid.
    send_all(app, &path, &all[2..3]).await;
    assert_eq!(
        state(app, &api).await,
        rows(&[("active", 2), ("revoked", 1), ("active", 2)])
    );
    let list = app.get("/v1/licenses", &api).await;
    for license in list.body["data"].as_array().unwrap() {
        let v = app.validate(json!({"key": license["key"]})).await;
        let want = if license["status"] == "revoked" {
            "REVOKED"
        } else {
            "VALID"
        };
        assert_eq!(v.body["code"], want, "{}", v.body);
    }
    // Cancelled: every license of the order revoked.
    send_all(app, &path, &all[3..4]).await;
    assert_eq!(
        state(app, &api).await,
        rows(&[("revoked", 2), ("revoked", 1), ("revoked", 2)])
    );
    let failed = app.get("/v1/events?status=failed", &api).await;
    assert_eq!(failed.body["data"].as_array().unwrap().len(), 0);
}

/// A deterministic Fisher–Yates shuffle (64-bit LCG).
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in (1..items.len()).rev() {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let j = ((x >> 33) % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

async fn shopify_replay_storm_ends_in_the_in_order_state(app: &TestApp) {
    let start = Timestamp::now().millis() / 1000 - 3600;
    let all = deliveries(start);
    for (seed, bodies, expected) in [
        (
            7,
            &all[..3],
            rows(&[("active", 2), ("revoked", 1), ("active", 2)]),
        ),
        (
            11,
            &all[..],
            rows(&[("revoked", 2), ("revoked", 1), ("revoked", 2)]),
        ),
    ] {
        // In order: the reference.
        let (api, path) = setup(app).await;
        send_all(app, &path, bodies).await;
        assert_eq!(state(app, &api).await, expected);
        // Every delivery three times, shuffled, in a new shop.
        let (api, path) = setup(app).await;
        let mut storm: Vec<Value> = bodies.iter().chain(bodies).chain(bodies).cloned().collect();
        shuffle(&mut storm, seed);
        send_all(app, &path, &storm).await;
        assert_eq!(state(app, &api).await, expected, "seed {seed}");
    }
}
