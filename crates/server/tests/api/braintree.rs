//! Braintree end to end on both engines: the `bt_challenge` GET, the signed form through HTTP
//! into license state (paid-through days), a proration charge that must not renew twice,
//! seats from a mapped add-on, disputes (inquiry, lost, won) under the refunds option, and a
//! replay storm.
use crate::harness::{Reply, TestApp};
use crate::on_both_engines;
use keygate_billing::scheme::hashed_key_hmac::KeyPair;
use keygate_billing::testkit::{BraintreeKit, Kit, braintree as bt};
use keygate_domain::Timestamp;
use serde_json::{Value, json};

on_both_engines!(
    braintree_challenge_and_lifecycle,
    braintree_proration_is_not_a_second_renewal,
    braintree_seats_from_an_add_on_and_disputes,
    braintree_replay_storm
);

const MONTH: i64 = keygate_billing::testkit::MONTH;
const PLAN: &str = "pro-monthly";

fn now_s() -> i64 {
    Timestamp::now().millis() / 1000
}

fn t(v: &Value) -> i64 {
    Timestamp::parse_rfc3339(v.as_str().unwrap())
        .unwrap()
        .millis()
        / 1000
}

async fn integration(app: &TestApp, api: &str, mapping: &str, options: Value) -> String {
    let policy = app
        .policy(
            api,
            json!({"expiry": "subscription", "max_activations": 1, "seats_from_quantity": true}),
        )
        .await;
    let r = app
        .post(
            "/v1/integrations",
            api,
            json!({"provider": "braintree", "secrets": BraintreeKit.settings().secrets,
                   "options": options,
                   "mappings": [{"external_id": mapping, "policy_id": policy}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let url = r.body["webhook_url"].as_str().unwrap();
    url[url.find("/v1/").unwrap()..].to_string()
}

async fn deliver(app: &TestApp, path: &str, body: &Value) -> Reply {
    let form = BraintreeKit
        .form(&BraintreeKit.settings().secrets(), body)
        .unwrap();
    let r = app
        .send(
            "POST",
            path,
            None,
            Some(Value::String(String::from_utf8(form).unwrap())),
            &[("content-type", "application/x-www-form-urlencoded")],
        )
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

async fn code_of(app: &TestApp, license: &Value) -> String {
    let v = app.validate(json!({"key": license["key"]})).await;
    v.body["code"].as_str().unwrap().to_string()
}

async fn braintree_challenge_and_lifecycle(app: &TestApp) {
    let api = app.account("Shop").await;
    let path = integration(app, &api, PLAN, json!({"grace_seconds": 3600})).await;

    // The endpoint check: `public_key|HMAC(challenge)` with the configured pair.
    let challenge = "20f9f8ed05f77439fe955c977e4c8a53";
    let r = app
        .send(
            "GET",
            &format!("{path}?bt_challenge={challenge}"),
            None,
            None,
            &[],
        )
        .await;
    let pair_text = BraintreeKit.settings().secrets[0].clone();
    let pair = KeyPair::parse(&pair_text).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        String::from_utf8(r.raw.to_vec()).unwrap(),
        format!("{}|{}", pair.public_key, pair.digest(challenge.as_bytes()))
    );
    let bad = app
        .send(
            "GET",
            &format!("{path}?bt_challenge=NOT-HEX"),
            None,
            None,
            &[],
        )
        .await;
    assert_eq!((bad.status, bad.code()), (400, "MALFORMED_PAYLOAD"));

    let now = now_s();
    let steps = BraintreeKit.steps(now, now).unwrap();
    let r = deliver(app, &path, &steps.created[0]).await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    let list = licenses(app, &api).await;
    assert_eq!(list.len(), 1);
    // Paid through the day of now + a month, valid through its end.
    assert_eq!(
        t(&list[0]["expires_at"]),
        bt::day_end(now + MONTH),
        "{}",
        list[0]
    );
    assert_eq!(code_of(app, &list[0]).await, "VALID");
    let customers = app.get("/v1/customers", &api).await;
    assert_eq!(
        customers.body["data"][0]["external_ids"]["braintree"],
        "86199926"
    );
    let again = deliver(app, &path, &steps.created[0]).await;
    assert_eq!(again.body["events"][0]["duplicate"], true, "{}", again.body);

    // A tampered payload: refused, nothing stored.
    let form = String::from_utf8(
        BraintreeKit
            .form(&BraintreeKit.settings().secrets(), &steps.renewed[0])
            .unwrap(),
    )
    .unwrap();
    let tampered = form.replacen("bt_payload=P", "bt_payload=Q", 1);
    assert_ne!(tampered, form);
    let r = app
        .send("POST", &path, None, Some(Value::String(tampered)), &[])
        .await;
    assert_eq!(
        (r.status, r.code()),
        (401, "SIGNATURE_INVALID"),
        "{}",
        r.body
    );

    for (step, expect) in [
        ("renewed", "VALID"),
        ("failed", "GRACE_PERIOD"),
        ("recovered", "VALID"),
        ("cancelled", "VALID"),
        ("refunded", "REVOKED"),
    ] {
        let (_, bodies) = steps.all().into_iter().find(|(n, _)| *n == step).unwrap();
        for body in bodies {
            let r = deliver(app, &path, body).await;
            for e in r.body["events"].as_array().unwrap() {
                assert_eq!(e["status"], "applied", "{step}: {}", r.body);
            }
        }
        let list = licenses(app, &api).await;
        assert_eq!(list.len(), 1, "{step}");
        assert_eq!(code_of(app, &list[0]).await, expect, "{step}: {}", list[0]);
        match step {
            "renewed" => assert_eq!(t(&list[0]["expires_at"]), bt::day_end(now + 2 * MONTH)),
            "cancelled" => assert_eq!(t(&list[0]["expires_at"]), steps.cancel_ends_at),
            _ => {}
        }
    }
}

async fn braintree_proration_is_not_a_second_renewal(app: &TestApp) {
    let now = now_s();
    let t1 = bt::Transaction {
        id: "pr1",
        status: "settled",
        at: now - 300,
    };
    let t2 = bt::Transaction {
        id: "pr2",
        status: "submitted_for_settlement",
        at: now - 200,
    };
    let proration = bt::Transaction {
        id: "pr3",
        status: "submitted_for_settlement",
        at: now - 100,
    };
    let p1 = now + MONTH;
    let p2 = now + 2 * MONTH;
    let active = bt::subscription_notification(
        "subscription_went_active",
        now - 300,
        "Active",
        p1,
        &[],
        &[t1],
    );
    let renewal = bt::subscription_notification(
        "subscription_charged_successfully",
        now - 200,
        "Active",
        p2,
        &[],
        &[t2, t1],
    );
    // A mid-cycle plan change charged at once: another successful charge, same paid-through.
    let prorated = bt::subscription_notification(
        "subscription_charged_successfully",
        now - 100,
        "Active",
        p2,
        &[],
        &[proration, t2, t1],
    );
    for renewal_mode in ["extend", "new_license"] {
        let api = app.account("Shop").await;
        let path = integration(app, &api, PLAN, json!({"renewal": renewal_mode})).await;
        for body in [&active, &renewal, &prorated] {
            let r = deliver(app, &path, body).await;
            assert_eq!(r.body["events"][0]["duplicate"], false, "{}", r.body);
        }
        let list = licenses(app, &api).await;
        let expected = if renewal_mode == "extend" { 1 } else { 2 };
        assert_eq!(list.len(), expected, "{renewal_mode}: {list:?}");
        let latest = list.iter().map(|l| t(&l["expires_at"])).max().unwrap();
        assert_eq!(latest, bt::day_end(p2), "{renewal_mode}");
    }
}

async fn braintree_seats_from_an_add_on_and_disputes(app: &TestApp) {
    let now = now_s();
    let p1 = now + MONTH;
    let txn = |id| bt::Transaction {
        id,
        status: "settled",
        at: now - 100,
    };
    // The seat add-on is mapped; the plan is not (skipped).
    let api = app.account("Shop").await;
    let path = integration(app, &api, "pro-seat", json!({})).await;
    let body = bt::subscription_notification(
        "subscription_went_active",
        now - 100,
        "Active",
        p1,
        &[("pro-seat", 4)],
        &[txn("ds1")],
    );
    deliver(app, &path, &body).await;
    let list = licenses(app, &api).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["max_activations"], 4, "{}", list[0]);
    // A retrieval request (an inquiry) changes nothing; the lost dispute revokes.
    let inquiry = bt::dispute_notification("dispute_opened", now - 50, "retrieval", "open", "ds1");
    let r = deliver(app, &path, &inquiry).await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    assert_eq!(code_of(app, &list[0]).await, "VALID");
    let lost = bt::dispute_notification("dispute_lost", now - 40, "retrieval", "lost", "ds1");
    deliver(app, &path, &lost).await;
    assert_eq!(code_of(app, &list[0]).await, "REVOKED");

    // refunds: never: a chargeback is recorded only; the won dispute is stored as ignored.
    let api = app.account("Shop2").await;
    let path = integration(app, &api, PLAN, json!({"refunds": "never"})).await;
    let body = bt::subscription_notification(
        "subscription_went_active",
        now - 100,
        "Active",
        p1,
        &[],
        &[txn("ds2")],
    );
    deliver(app, &path, &body).await;
    let license = licenses(app, &api).await.remove(0);
    let opened = bt::dispute_notification("dispute_opened", now - 50, "chargeback", "open", "ds2");
    deliver(app, &path, &opened).await;
    assert_eq!(code_of(app, &license).await, "VALID");
    let won = bt::dispute_notification("dispute_won", now - 10, "chargeback", "won", "ds2");
    let r = deliver(app, &path, &won).await;
    assert_eq!(r.body["events"][0]["status"], "ignored", "{}", r.body);
    assert_eq!(code_of(app, &license).await, "VALID");
    let events = app.get("/v1/events?status=applied", &api).await;
    let recorded = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["actions"].to_string().contains("reversal_recorded"));
    assert!(recorded, "{}", events.body);
}

fn shuffled<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
    let mut out = items.to_vec();
    let mut x = seed | 1;
    for i in (1..out.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.swap(i, (x % (i as u64 + 1)) as usize);
    }
    out
}

fn summary(license: &Value) -> Value {
    json!({"status": license["status"], "expires_at": license["expires_at"],
           "max_activations": license["max_activations"]})
}

async fn braintree_replay_storm(app: &TestApp) {
    let now = now_s() - 3600;
    let steps = BraintreeKit.steps(now, now + 60).unwrap();
    for with_refund in [false, true] {
        let bodies: Vec<Value> = steps
            .all()
            .into_iter()
            .filter(|(name, _)| with_refund || *name != "refunded")
            .flat_map(|(_, b)| b.to_vec())
            .collect();
        let in_order_api = app.account("InOrder").await;
        let in_order = integration(app, &in_order_api, PLAN, json!({})).await;
        for body in &bodies {
            deliver(app, &in_order, body).await;
        }
        let expected = summary(&licenses(app, &in_order_api).await[0]);
        let storm_api = app.account("Storm").await;
        let storm = integration(app, &storm_api, PLAN, json!({})).await;
        let tripled: Vec<Value> = bodies
            .iter()
            .flat_map(|b| [b.clone(), b.clone(), b.clone()])
            .collect();
        for body in shuffled(&tripled, 0xb7 + with_refund as u64) {
            deliver(app, &storm, &body).await;
        }
        let list = licenses(app, &storm_api).await;
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(summary(&list[0]), expected, "refund: {with_refund}");
        let events = app.get("/v1/events?limit=200", &storm_api).await;
        assert_eq!(events.body["data"].as_array().unwrap().len(), bodies.len());
    }
}
