//! PrestaShop end to end on both engines: what Keygate's PrestaShop module posts (the kit's
//! bodies have the module's shape; one test posts the bytes and signatures the PHP module
//! itself produced), through HTTP into license state. Paid → a license per mapped line →
//! a credit slip for one line (only that line's license revoked; a slip for part of a line
//! leaves fewer seats) → the order refunded (everything revoked); a replay storm ending in the
//! in-order state.
use crate::harness::{Reply, TestApp};
use crate::on_both_engines;
use keygate_billing::testkit::prestashop::{
    AWAITING_WIRE, CANCELED, Line, PAYMENT_ACCEPTED, REFUNDED, SHIPPED,
};
use keygate_billing::testkit::{Kit, PrestaShopKit};
use keygate_billing::{Secrets, Timestamp};
use serde_json::{Value, json};

on_both_engines!(
    prestashop_paid_credit_slip_then_refund,
    prestashop_replay_storm_ends_as_in_order,
    prestashop_module_signed_fixtures_are_accepted,
    prestashop_cancel_revokes_and_pending_states_issue_nothing,
    prestashop_simulate_plays_an_order,
    prestashop_php_module_posts_to_keygate
);

const KIT: PrestaShopKit = PrestaShopKit;

/// A license for the reference `PHOTO-PRO` (x2), one for product 8 (x1), and a mug nobody
/// maps.
const LINES: [Line; 3] = [
    (601, 3, 0, "PHOTO-PRO", 2),
    (602, 8, 0, "ADDON-X", 1),
    (603, 5, 9, "MUG-RED", 1),
];

fn now_s() -> i64 {
    Timestamp::now().millis() / 1000
}

struct Shop {
    api: String,
    path: String,
    photo_policy: String,
    addon_policy: String,
}

async fn shop(app: &TestApp, options: Value) -> Shop {
    let api = app.account("PrestaShop vendor").await;
    let seats = json!({"max_activations": 1, "seats_from_quantity": true});
    let photo_policy = app.policy(&api, seats.clone()).await;
    let addon_policy = app.policy(&api, seats).await;
    let r = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": "prestashop", "secrets": KIT.settings().secrets, "options": options,
                   "mappings": [{"external_id": "PHOTO-PRO", "policy_id": photo_policy},
                                {"external_id": "8", "policy_id": addon_policy}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let url = r.body["webhook_url"].as_str().unwrap();
    Shop {
        api,
        path: url[url.find("/v1/").unwrap()..].to_string(),
        photo_policy,
        addon_policy,
    }
}

async fn post(app: &TestApp, shop: &Shop, body: &Value) -> Reply {
    let settings = KIT.settings();
    let secrets = Secrets::new(settings.secrets).with_options(settings.options);
    let body = body.to_string();
    let headers = KIT
        .sign(&secrets, body.as_bytes(), Timestamp::now())
        .unwrap();
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    app.send(
        "POST",
        &shop.path,
        None,
        Some(Value::String(body)),
        &headers,
    )
    .await
}

/// Delivers and expects every event of the answer to have `status`.
async fn deliver(app: &TestApp, shop: &Shop, body: &Value, status: &str) {
    let r = post(app, shop, body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let events = r.body["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{}", r.body);
    assert_eq!(events[0]["status"], status, "{} for {body}", r.body);
}

async fn licenses(app: &TestApp, shop: &Shop) -> Vec<Value> {
    let list = app.get("/v1/licenses", &shop.api).await;
    assert_eq!(list.status, 200, "{}", list.body);
    list.body["data"].as_array().unwrap().clone()
}

async fn license_of(app: &TestApp, shop: &Shop, policy: &str) -> Value {
    let all = licenses(app, shop).await;
    let mine: Vec<&Value> = all.iter().filter(|l| l["policy_id"] == policy).collect();
    assert_eq!(mine.len(), 1, "one license of {policy}: {all:?}");
    mine[0].clone()
}

async fn code(app: &TestApp, license: &Value) -> String {
    let v = app.validate(json!({"key": license["key"]})).await;
    v.body["code"].as_str().unwrap().to_string()
}

fn paid(order: i64, at: i64) -> Value {
    KIT.status_changed(
        &format!("evt_{order}_paid"),
        at,
        order,
        &LINES,
        PAYMENT_ACCEPTED,
    )
}

async fn prestashop_paid_credit_slip_then_refund(app: &TestApp) {
    let shop = shop(app, json!({})).await;
    let now = now_s();

    // Paid: a license per mapped line, seats from the quantity, the customer linked.
    deliver(app, &shop, &paid(1, now - 50), "applied").await;
    assert_eq!(licenses(app, &shop).await.len(), 2, "the mug is not mapped");
    let photo = license_of(app, &shop, &shop.photo_policy).await;
    let addon = license_of(app, &shop, &shop.addon_policy).await;
    assert_eq!(photo["max_activations"], 2);
    assert_eq!(addon["max_activations"], 1);
    assert_eq!(code(app, &photo).await, "VALID");
    assert_eq!(code(app, &addon).await, "VALID");
    let customers = app.get("/v1/customers", &shop.api).await;
    let customer = &customers.body["data"][0];
    assert_eq!(customer["email"], "ada@example.com");
    assert_eq!(photo["customer_id"], customer["id"]);

    // Shipped (another paid state): the same order, nothing new.
    let shipped = KIT.status_changed("evt_1_shipped", now - 45, 1, &LINES, SHIPPED);
    deliver(app, &shop, &shipped, "applied").await;
    assert_eq!(licenses(app, &shop).await.len(), 2);

    // A credit slip for the add-on line: only its license is revoked.
    let slip = KIT.credit_slip(31, now - 40, 1, &LINES, &[(602, 1)]);
    deliver(app, &shop, &slip, "applied").await;
    assert_eq!(
        license_of(app, &shop, &shop.addon_policy).await["status"],
        "revoked"
    );
    let photo = license_of(app, &shop, &shop.photo_policy).await;
    assert_eq!(photo["status"], "active");
    assert_eq!(code(app, &photo).await, "VALID");

    // A slip for one of the two photo seats: the license keeps one seat.
    let slip = KIT.credit_slip(32, now - 35, 1, &LINES, &[(601, 1)]);
    deliver(app, &shop, &slip, "applied").await;
    let photo = license_of(app, &shop, &shop.photo_policy).await;
    assert_eq!(photo["status"], "active");
    assert_eq!(photo["max_activations"], 1);

    // The order refunded: everything revoked.
    let refunded = KIT.status_changed("evt_1_refunded", now - 30, 1, &LINES, REFUNDED);
    deliver(app, &shop, &refunded, "applied").await;
    for license in licenses(app, &shop).await {
        assert_eq!(license["status"], "revoked", "{license}");
        assert_eq!(code(app, &license).await, "REVOKED");
    }
    assert_eq!(licenses(app, &shop).await.len(), 2);

    // The module's retry of a delivery Keygate already has: a duplicate, nothing changes.
    let r = post(app, &shop, &slip).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["events"][0]["duplicate"], true, "{}", r.body);
}

/// The deliveries of one order, each three times, shuffled: the same licenses as in order.
async fn prestashop_replay_storm_ends_as_in_order(app: &TestApp) {
    let now = now_s();
    let deliveries = vec![
        KIT.status_changed("evt_9_wire", now - 60, 9, &LINES, AWAITING_WIRE),
        paid(9, now - 50),
        KIT.status_changed("evt_9_shipped", now - 45, 9, &LINES, SHIPPED),
        KIT.credit_slip(91, now - 40, 9, &LINES, &[(602, 1)]),
        KIT.credit_slip(92, now - 35, 9, &LINES, &[(601, 1)]),
    ];
    let in_order = shop(app, json!({})).await;
    for body in &deliveries {
        let r = post(app, &in_order, body).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let storm = shop(app, json!({})).await;
    let mut shuffled: Vec<&Value> = deliveries
        .iter()
        .chain(&deliveries)
        .chain(&deliveries)
        .collect();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..shuffled.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        shuffled.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    for body in shuffled {
        let r = post(app, &storm, body).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    for (a, b) in [
        (&in_order.photo_policy, &storm.photo_policy),
        (&in_order.addon_policy, &storm.addon_policy),
    ] {
        let a = license_of(app, &in_order, a).await;
        let b = license_of(app, &storm, b).await;
        for field in ["status", "max_activations", "quantity", "expires_at"] {
            assert_eq!(a[field], b[field], "{field} differs: {a} / {b}");
        }
        assert_eq!(code(app, &a).await, code(app, &b).await);
    }
    assert_eq!(licenses(app, &storm).await.len(), 2);
    let photo = license_of(app, &storm, &storm.photo_policy).await;
    assert_eq!(
        (photo["status"].as_str(), photo["max_activations"].as_i64()),
        (Some("active"), Some(1))
    );
    assert_eq!(
        license_of(app, &storm, &storm.addon_policy).await["status"],
        "revoked"
    );
    // Each distinct delivery is one event in the inbox.
    let events = app.get("/v1/events", &storm.api).await;
    assert_eq!(
        events.body["data"].as_array().unwrap().len(),
        deliveries.len(),
        "{}",
        events.body
    );
}

/// The bytes and signatures the PHP module produced (the fixtures its PHPUnit run checks),
/// posted as they are: the server accepts them and licenses the order. Their timestamps are
/// fixed, so this integration allows any age.
async fn prestashop_module_signed_fixtures_are_accepted(app: &TestApp) {
    let api = app.account("PrestaShop module").await;
    let policy = app
        .policy(
            &api,
            json!({"max_activations": 1, "seats_from_quantity": true}),
        )
        .await;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../billing/tests/fixtures/prestashop/module_signatures.json"
    );
    let vectors: Vec<Value> = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let secret = vectors[1]["secrets"][0].as_str().unwrap();
    let r = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": "prestashop", "secrets": [secret],
                   "options": {"tolerance_seconds": 100_i64 * 365 * 86_400},
                   "mappings": [{"external_id": "3", "policy_id": policy}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let url = r.body["webhook_url"].as_str().unwrap();
    let hook = &url[url.find("/v1/").unwrap()..];
    let mut statuses = Vec::new();
    for v in &vectors {
        if v["secrets"][0] != secret || v["name"] == "rotation: new and old secret" {
            continue;
        }
        let h = |k: &str| v[k].as_str().unwrap().to_string();
        let (id, ts, sig) = (
            h("webhook-id"),
            h("webhook-timestamp"),
            h("webhook-signature"),
        );
        let r = app
            .send(
                "POST",
                hook,
                None,
                Some(Value::String(h("body"))),
                &[
                    ("webhook-id", &id),
                    ("webhook-timestamp", &ts),
                    ("webhook-signature", &sig),
                ],
            )
            .await;
        assert_eq!(r.status, 200, "{}: {}", v["name"], r.body);
        statuses.push((h("name"), r.body["events"][0]["status"].clone()));
        // One byte changed: refused.
        let mut forged = h("body");
        forged.push(' ');
        let r = app
            .send(
                "POST",
                hook,
                None,
                Some(Value::String(forged)),
                &[
                    ("webhook-id", &id),
                    ("webhook-timestamp", &ts),
                    ("webhook-signature", &sig),
                ],
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (401, "SIGNATURE_INVALID"),
            "{}",
            r.body
        );
    }
    let status_of = |name: &str| {
        statuses
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.clone())
            .unwrap()
    };
    assert_eq!(status_of("status_changed.paid.json"), "applied");
    assert_eq!(status_of("status_changed.awaiting_payment.json"), "ignored");
    assert_eq!(status_of("credit_slip_added.json"), "applied");
    assert_eq!(status_of("status_changed.refunded.json"), "applied");
    let list = app.get("/v1/licenses", &api).await;
    let data = list.body["data"].as_array().unwrap();
    assert_eq!(
        data.len(),
        1,
        "product 3 mapped, the mug not: {}",
        list.body
    );
    assert_eq!(data[0]["status"], "revoked", "refunded in the end");
}

async fn prestashop_cancel_revokes_and_pending_states_issue_nothing(app: &TestApp) {
    let shop = shop(app, json!({})).await;
    let now = now_s();
    let wire = KIT.status_changed("evt_5_wire", now - 30, 5, &LINES, AWAITING_WIRE);
    deliver(app, &shop, &wire, "ignored").await;
    assert!(licenses(app, &shop).await.is_empty());
    deliver(app, &shop, &paid(5, now - 20), "applied").await;
    assert_eq!(licenses(app, &shop).await.len(), 2);
    let canceled = KIT.status_changed("evt_5_canceled", now - 10, 5, &LINES, CANCELED);
    deliver(app, &shop, &canceled, "applied").await;
    for license in licenses(app, &shop).await {
        assert_eq!(code(app, &license).await, "REVOKED");
    }
}

/// `keygate simulate prestashop --scenario order` beside a running server: the vendor's own
/// secret (read from the database) and mapping (a product reference of theirs); the order is
/// licensed, then refunded; a second run is a new order.
async fn prestashop_simulate_plays_an_order(app: &TestApp) {
    let api = app.account("Simulating vendor").await;
    let policy = app
        .policy(
            &api,
            json!({"max_activations": 1, "seats_from_quantity": true}),
        )
        .await;
    let secret = "whsec_dmVuZG9yLW93bi1wcmVzdGFzaG9wLXNlY3JldC0zMmI=";
    let r = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": "prestashop", "secrets": [secret],
                   "mappings": [{"external_id": "VENDOR-REF-1", "policy_id": policy}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    for run in 1..=2 {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
            .args(["simulate", "prestashop", "--integration", &id])
            .args(["--url", &app.server.url(""), "--scenario", "order"])
            .args(["--database-url", &app.database_url])
            .env_remove("KEYGATE_MASTER_KEY")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("paid       200"), "{stdout}");
        assert!(stdout.contains("refunded   200"), "{stdout}");
        let all = app.get("/v1/licenses", &api).await.body["data"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(all.len(), run, "one license per run: {all:?}");
        for license in &all {
            assert_eq!(license["max_activations"], 2, "{license}");
            assert_eq!(code(app, license).await, "REVOKED");
        }
    }
}

/// Whether the PHP side must run here (CI, or `KEYGATE_REQUIRE_PHPUNIT=1` as `.ci/run` sets).
fn php_required() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
        || std::env::var("KEYGATE_REQUIRE_PHPUNIT").is_ok_and(|v| v == "1")
}

/// The PHP module itself (over the PrestaShop stand-ins, with its real curl transport) posts
/// an order and a credit slip to this server: the order is licensed, the slip's line revoked.
async fn prestashop_php_module_posts_to_keygate(app: &TestApp) {
    let has_curl = std::process::Command::new("php")
        .arg("-m")
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l == "curl")
        });
    if !has_curl {
        assert!(
            !php_required(),
            "php with ext-curl is required here: apt-get install -y php-cli php-curl php-sqlite3"
        );
        eprintln!("skipped: php with ext-curl not found");
        return;
    }
    let api = app.account("PrestaShop shop").await;
    let seats = json!({"max_activations": 1, "seats_from_quantity": true});
    let app_policy = app.policy(&api, seats.clone()).await;
    let mug_policy = app.policy(&api, seats).await;
    let secret = "whsec_cGhwLW1vZHVsZS1wb3N0cy10by1rZXlnYXRlLWUyZQ==";
    let r = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": "prestashop", "secrets": [secret],
                   "mappings": [{"external_id": "3", "policy_id": app_policy},
                                {"external_id": "MUG-RED", "policy_id": mug_policy}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap();
    let url = app.server.url(&format!("/v1/webhooks/prestashop/{id}"));
    let module = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../integrations/prestashop/keygate"
    );
    // The server answers on this runtime: the PHP process is waited for off it.
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("php")
            .args(["tests/post-to-keygate.php", &url, secret])
            .current_dir(module)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = app.get("/v1/licenses", &api).await.body["data"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(list.len(), 2, "{list:?}");
    let of = |policy: &str| {
        list.iter()
            .find(|l| l["policy_id"] == policy)
            .unwrap()
            .clone()
    };
    assert_eq!(of(&app_policy)["max_activations"], 2);
    assert_eq!(code(app, &of(&app_policy)).await, "VALID");
    assert_eq!(code(app, &of(&mug_policy)).await, "REVOKED");
    let customers = app.get("/v1/customers", &api).await;
    assert_eq!(customers.body["data"][0]["email"], "ada@example.com");
}
