//! Line-level refunds of one-time orders, end to end on both engines, through the generic
//! (Standard Webhooks) provider whose body is Keygate's own event: a refund naming lines by
//! their line ids revokes only those lines' licenses, in any delivery order.
use crate::harness::{Reply, TestApp};
use crate::on_both_engines;
use keygate_billing::testkit;
use keygate_billing::{Secrets, provider};
use keygate_domain::Timestamp;
use serde_json::{Value, json};
use std::collections::HashMap;

on_both_engines!(
    line_refunds_revoke_only_their_lines,
    line_refund_before_payment_and_replays_converge
);

async fn setup(app: &TestApp) -> (String, String) {
    let kit = testkit::kit(provider("generic").unwrap());
    let settings = kit.settings();
    let api = app.account("Shop").await;
    let app_policy = app
        .policy(
            &api,
            json!({"max_activations": 1, "seats_from_quantity": true}),
        )
        .await;
    let r = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": "generic", "secrets": settings.secrets,
                   "mappings": [{"external_id": "app-lifetime", "policy_id": app_policy},
                                {"external_id": "plugin", "policy_id": app_policy}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let url = r.body["webhook_url"].as_str().unwrap();
    (api, url[url.find("/v1/").unwrap()..].to_string())
}

async fn send(app: &TestApp, path: &str, body: &Value) -> Reply {
    let kit = testkit::kit(provider("generic").unwrap());
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

fn at(offset: i64) -> String {
    Timestamp::from_unix_seconds(Timestamp::now().millis() / 1000 - 3600 + offset).to_rfc3339()
}

fn paid() -> Value {
    json!({"event_id": "ord-9-paid", "event_type": "order.paid", "kind": "order_paid",
           "occurred_at": at(0),
           "customer": {"external_id": "c-9", "email": "ann@example.com"},
           "order": {"external_id": "ord-9", "lines": [
               {"external_id": "app-lifetime", "quantity": 5, "line_id": "L1"},
               {"external_id": "plugin", "quantity": 1, "line_id": "L2"},
               {"external_id": "plugin", "quantity": 1, "line_id": "L3"},
               {"external_id": "t-shirt", "quantity": 1, "line_id": "L4"}]}})
}

fn refund(id: &str, offset: i64, lines: Value, reversal: Option<&str>) -> Value {
    json!({"event_id": id, "event_type": "order.refunded", "kind": "refunded",
           "occurred_at": at(offset), "reversal": reversal,
           "order": {"external_id": "ord-9", "lines": lines}})
}

/// Each line's license: line id → (status, seats).
async fn by_line(app: &TestApp, api: &str, paid_event: &str) -> HashMap<String, (String, i64)> {
    let event = app.get(&format!("/v1/events/{paid_event}"), api).await;
    let mut line_of = HashMap::new();
    for action in event.body["actions"].as_array().unwrap() {
        if action["action"] == "create" {
            line_of.insert(
                action["license_id"].as_str().unwrap().to_string(),
                action["line_id"].as_str().unwrap().to_string(),
            );
        }
    }
    let list = app.get("/v1/licenses", api).await;
    list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let line = line_of[l["id"].as_str().unwrap()].clone();
            let status = l["status"].as_str().unwrap().to_string();
            (line, (status, l["max_activations"].as_i64().unwrap_or(0)))
        })
        .collect()
}

fn expect(rows: &[(&str, &str, i64)]) -> HashMap<String, (String, i64)> {
    rows.iter()
        .map(|(line, status, seats)| (line.to_string(), (status.to_string(), *seats)))
        .collect()
}

/// paid → a license per mapped line (the unmapped line skipped) → a refund of one line
/// revokes it alone → a refund of part of a line's quantity leaves it with the seats left
/// → a refund naming no line (the rest of the order) revokes every license.
async fn line_refunds_revoke_only_their_lines(app: &TestApp) {
    let (api, path) = setup(app).await;
    let r = send(app, &path, &paid()).await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    let paid_event = r.body["events"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        by_line(app, &api, &paid_event).await,
        expect(&[
            ("L1", "active", 5),
            ("L2", "active", 1),
            ("L3", "active", 1)
        ])
    );
    let one_line = refund(
        "ord-9-refund-1",
        10,
        json!([{"external_id": "plugin", "quantity": 1, "line_id": "L2"}]),
        Some("partial_refund"),
    );
    let r = send(app, &path, &one_line).await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    assert_eq!(
        by_line(app, &api, &paid_event).await,
        expect(&[
            ("L1", "active", 5),
            ("L2", "revoked", 1),
            ("L3", "active", 1)
        ])
    );
    let seats = refund(
        "ord-9-refund-2",
        20,
        json!([{"external_id": "app-lifetime", "quantity": 2, "line_id": "L1"}]),
        Some("partial_refund"),
    );
    send(app, &path, &seats).await;
    let state = by_line(app, &api, &paid_event).await;
    assert_eq!(
        state,
        expect(&[
            ("L1", "active", 3),
            ("L2", "revoked", 1),
            ("L3", "active", 1)
        ])
    );
    // The line that stays is still valid; the refunded one answers REVOKED.
    let list = app.get("/v1/licenses", &api).await.body["data"].clone();
    for license in list.as_array().unwrap() {
        let v = app.validate(json!({"key": license["key"]})).await;
        let want = if license["status"] == "revoked" {
            "REVOKED"
        } else {
            "VALID"
        };
        assert_eq!(v.body["code"], want, "{}", v.body);
    }
    // A partial refund without line ids is a partial refund of the order: kept (default
    // `refunds: full`), nothing revoked.
    let vague = refund("ord-9-refund-3", 25, json!([]), Some("partial_refund"));
    let r = send(app, &path, &vague).await;
    let event = r.body["events"][0]["id"].as_str().unwrap();
    let event = app.get(&format!("/v1/events/{event}"), &api).await;
    assert_eq!(event.body["actions"][0]["action"], "reversal_recorded");
    assert_eq!(by_line(app, &api, &paid_event).await, state);
    // A full refund naming no lines: the whole order.
    send(app, &path, &refund("ord-9-refund-4", 30, json!([]), None)).await;
    assert_eq!(
        by_line(app, &api, &paid_event).await,
        expect(&[
            ("L1", "revoked", 3),
            ("L2", "revoked", 1),
            ("L3", "revoked", 1)
        ])
    );
}

/// The refund of one line delivered before the payment, and a replay storm of every delivery:
/// the same licenses as in order.
async fn line_refund_before_payment_and_replays_converge(app: &TestApp) {
    let (api, path) = setup(app).await;
    let one_line = refund(
        "ord-9-refund-1",
        10,
        json!([{"external_id": "plugin", "quantity": 1, "line_id": "L3"}]),
        Some("partial_refund"),
    );
    let seats = refund(
        "ord-9-refund-2",
        20,
        json!([{"external_id": "app-lifetime", "quantity": 1, "line_id": "L1"}]),
        Some("partial_refund"),
    );
    let r = send(app, &path, &one_line).await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    assert!(
        app.get("/v1/licenses", &api).await.body["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let r = send(app, &path, &paid()).await;
    let paid_event = r.body["events"][0]["id"].as_str().unwrap().to_string();
    let expected = expect(&[
        ("L1", "active", 4),
        ("L2", "active", 1),
        ("L3", "revoked", 1),
    ]);
    for body in [&seats, &paid(), &one_line, &seats, &paid(), &one_line] {
        let r = send(app, &path, body).await;
        assert!(
            ["applied", "duplicate"].contains(&r.body["events"][0]["status"].as_str().unwrap())
                || r.body["events"][0]["duplicate"] == true,
            "{}",
            r.body
        );
    }
    assert_eq!(by_line(app, &api, &paid_event).await, expected);
}
