//! 2Checkout end to end on both engines: IPN and LCN forms through HTTP, the read receipt in
//! the answer (recomputed here from the answer's date), the LCN URL check, a one-time order
//! with a partial refund, and a replay storm (every delivery three times, shuffled: the same
//! state as in order).
use crate::harness::{Reply, TestApp};
use crate::on_both_engines;
use keygate_billing::scheme::length_prefixed_hmac::{Algorithm, read_receipt};
use keygate_billing::testkit::{Kit, TwoCheckoutKit};
use keygate_domain::Timestamp;
use serde_json::{Value, json};

on_both_engines!(
    twocheckout_receipts_url_check_and_lifecycle,
    twocheckout_lifetime_order_and_refunds,
    twocheckout_replay_storm
);

const MONTH: i64 = keygate_billing::testkit::MONTH;

fn now_s() -> i64 {
    Timestamp::now().millis() / 1000
}

fn t(v: &Value) -> i64 {
    Timestamp::parse_rfc3339(v.as_str().unwrap())
        .unwrap()
        .millis()
        / 1000
}

async fn integration(app: &TestApp, api: &str, options: Value) -> String {
    let kit = TwoCheckoutKit;
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
            json!({"provider": "twocheckout", "secrets": kit.settings().secrets, "options": options,
                   "mappings": [{"external_id": kit.ids().mapping, "policy_id": policy},
                                {"external_id": "PRO-LIFE", "policy_id": policy}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let url = r.body["webhook_url"].as_str().unwrap();
    url[url.find("/v1/").unwrap()..].to_string()
}

async fn deliver(app: &TestApp, path: &str, pairs: &Value) -> Reply {
    let body = TwoCheckoutKit
        .form(&TwoCheckoutKit.settings().secrets(), pairs)
        .unwrap();
    app.send(
        "POST",
        path,
        None,
        Some(Value::String(String::from_utf8(body).unwrap())),
        &[("content-type", "application/x-www-form-urlencoded")],
    )
    .await
}

fn field<'a>(pairs: &'a Value, name: &str) -> &'a str {
    pairs
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p[0] == name)
        .and_then(|p| p[1].as_str())
        .unwrap_or("")
}

/// The receipt must be the SHA3 `<sig>` over the request's values and the answer's own date.
fn assert_receipt(reply: &Reply, values: &[&str]) {
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.raw));
    let text = String::from_utf8(reply.raw.to_vec()).unwrap();
    let date = text
        .strip_prefix(r#"<sig algo="sha3-256" date=""#)
        .and_then(|rest| rest.get(..14))
        .unwrap_or_else(|| panic!("not a SHA3 read receipt: {text}"));
    let secret = TwoCheckoutKit.settings().secrets[0].clone();
    assert_eq!(
        text,
        read_receipt(Algorithm::Sha3_256, secret.as_bytes(), values, date)
    );
    // The answer's date is now (UTC, YmdHis).
    let compact = |at: Timestamp| -> String {
        at.to_rfc3339()[..19]
            .chars()
            .filter(char::is_ascii_digit)
            .collect()
    };
    let now = Timestamp::now();
    assert!(
        compact(now.plus_seconds(-120)).as_str() <= date && date <= compact(now).as_str(),
        "{date} vs {now}"
    );
}

fn ipn_values(pairs: &Value) -> Vec<String> {
    let first = |name: &str| field(pairs, name).to_string();
    vec![first("IPN_PID[]"), first("IPN_PNAME[]"), first("IPN_DATE")]
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

async fn twocheckout_receipts_url_check_and_lifecycle(app: &TestApp) {
    let api = app.account("Shop").await;
    let path = integration(app, &api, json!({"grace_seconds": 3600})).await;

    // The LCN URL check: a GET answered 200.
    let check = app.send("GET", &path, None, None, &[]).await;
    assert_eq!(check.status, 200, "{}", String::from_utf8_lossy(&check.raw));
    let unknown = app
        .send("GET", "/v1/webhooks/twocheckout/nope", None, None, &[])
        .await;
    assert_eq!(unknown.status, 404);

    let now = now_s();
    let steps = TwoCheckoutKit.steps(now, now).unwrap();
    let created = &steps.created[0];
    let r = deliver(app, &path, created).await;
    let values = ipn_values(created);
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    assert_receipt(&r, &values);
    let list = licenses(app, &api).await;
    assert_eq!(list.len(), 1);
    assert_eq!(t(&list[0]["expires_at"]), now + MONTH, "{}", list[0]);
    assert_eq!(code_of(app, &list[0]).await, "VALID");
    let customers = app.get("/v1/customers", &api).await;
    assert_eq!(
        customers.body["data"][0]["external_ids"]["twocheckout"],
        "756227060"
    );
    // The retry after a lost answer: a receipt again, nothing new stored.
    let again = deliver(app, &path, created).await;
    assert_receipt(&again, &values);
    let events = app.get("/v1/events", &api).await;
    assert_eq!(
        events.body["data"].as_array().unwrap().len(),
        1,
        "{}",
        events.body
    );

    // A forged or re-signed delivery: 401, no receipt.
    let forged = TwoCheckoutKit
        .form(&keygate_billing::Secrets::new(["not-the-key"]), created)
        .unwrap();
    let r = app
        .send(
            "POST",
            &path,
            None,
            Some(Value::String(String::from_utf8(forged).unwrap())),
            &[],
        )
        .await;
    assert_eq!((r.status, r.code()), (401, "SIGNATURE_INVALID"));
    assert!(!String::from_utf8_lossy(&r.raw).contains("<sig"));

    // Renewal, upgrade to 5 seats, past due (LCN), recovered, auto-renewal off, refund.
    for (step, expect) in [
        ("renewed", "VALID"),
        ("quantity", "VALID"),
        ("failed", "GRACE_PERIOD"),
        ("recovered", "VALID"),
        ("cancelled", "VALID"),
        ("refunded", "REVOKED"),
    ] {
        let (_, bodies) = steps.all().into_iter().find(|(n, _)| *n == step).unwrap();
        for body in bodies {
            let r = deliver(app, &path, body).await;
            let values: Vec<String> = if field(body, "LICENSE_CODE").is_empty() {
                ipn_values(body)
            } else {
                vec![
                    field(body, "LICENSE_CODE").into(),
                    field(body, "EXPIRATION_DATE").into(),
                ]
            };
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            assert_receipt(&r, &values);
        }
        let list = licenses(app, &api).await;
        assert_eq!(list.len(), 1, "{step}: {list:?}");
        assert_eq!(code_of(app, &list[0]).await, expect, "{step}: {}", list[0]);
        match step {
            "renewed" => assert_eq!(t(&list[0]["expires_at"]), now + 2 * MONTH),
            "quantity" => assert_eq!(list[0]["max_activations"], 5),
            "cancelled" => assert_eq!(t(&list[0]["expires_at"]), steps.cancel_ends_at),
            _ => {}
        }
    }
    let failed = app.get("/v1/events?status=failed", &api).await;
    assert_eq!(
        failed.body["data"].as_array().unwrap().len(),
        0,
        "{}",
        failed.body
    );
    let subs = app.get("/v1/subscriptions", &api).await;
    assert_eq!(subs.body["data"][0]["external_id"], "LCS7N0W2Q1");
}

async fn twocheckout_lifetime_order_and_refunds(app: &TestApp) {
    use keygate_billing::testkit::twocheckout_ipn as ipn;
    let api = app.account("Shop").await;
    let path = integration(app, &api, json!({})).await;
    let now = now_s();
    let lines = |qty: i64| {
        vec![
            ("40898111", "Pro Lifetime", "PRO-LIFE", qty),
            ("40898222", "Extra Themes", "", 1),
        ]
    };
    // A lifetime product (2 seats) beside an unmapped one: one license, 2 seats, no expiry.
    let paid = ipn(
        "311000001",
        "COMPLETE",
        now - 50,
        &lines(2),
        &[("TEST_ORDER", "1")],
    );
    let r = deliver(app, &path, &paid).await;
    assert_eq!(r.status, 200);
    let list = licenses(app, &api).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["max_activations"], 2, "{}", list[0]);
    assert_eq!(code_of(app, &list[0]).await, "VALID");
    let events = app.get("/v1/events", &api).await;
    assert_eq!(
        events.body["data"][0]["event"]["livemode"],
        json!(false),
        "{}",
        events.body
    );
    // A partial refund is recorded, not revoking (refunds: full); the full one revokes.
    let partial = ipn(
        "311000001",
        "REFUND",
        now - 40,
        &lines(2),
        &[("REFUND_TYPE", "PARTIAL")],
    );
    assert_eq!(deliver(app, &path, &partial).await.status, 200);
    assert_eq!(code_of(app, &list[0]).await, "VALID");
    let full = ipn(
        "311000001",
        "REFUND",
        now - 30,
        &lines(2),
        &[("REFUND_TYPE", "FULL"), ("MESSAGE_ID", "99")],
    );
    assert_eq!(deliver(app, &path, &full).await.status, 200);
    assert_eq!(code_of(app, &list[0]).await, "REVOKED");
    // A pending order is stored as ignored and still gets its receipt.
    let pending = ipn("311000002", "PENDING", now - 20, &lines(1), &[]);
    let r = deliver(app, &path, &pending).await;
    assert!(String::from_utf8_lossy(&r.raw).starts_with("<sig algo=\"sha3-256\""));
    let ignored = app.get("/v1/events?status=ignored", &api).await;
    assert_eq!(
        ignored.body["data"].as_array().unwrap().len(),
        1,
        "{}",
        ignored.body
    );
    assert_eq!(licenses(app, &api).await.len(), 1);
}

/// A deterministic shuffle (xorshift), so a failure replays the same order.
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

async fn twocheckout_replay_storm(app: &TestApp) {
    let now = now_s() - 3600;
    let steps = TwoCheckoutKit.steps(now, now + 60).unwrap();
    // Up to the cancellation (a refund is terminal whatever the order), then with it.
    for with_refund in [false, true] {
        let bodies: Vec<Value> = steps
            .all()
            .into_iter()
            .filter(|(name, _)| with_refund || *name != "refunded")
            .flat_map(|(_, b)| b.to_vec())
            .collect();
        let in_order_api = app.account("InOrder").await;
        let in_order = integration(app, &in_order_api, json!({})).await;
        for body in &bodies {
            assert_eq!(deliver(app, &in_order, body).await.status, 200);
        }
        let expected = summary(&licenses(app, &in_order_api).await[0]);
        let storm_api = app.account("Storm").await;
        let storm = integration(app, &storm_api, json!({})).await;
        let tripled: Vec<Value> = bodies
            .iter()
            .flat_map(|b| [b.clone(), b.clone(), b.clone()])
            .collect();
        for body in shuffled(&tripled, 0x2c0 + with_refund as u64) {
            let r = deliver(app, &storm, &body).await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.raw));
        }
        let list = licenses(app, &storm_api).await;
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(summary(&list[0]), expected, "refund: {with_refund}");
        let events = app.get("/v1/events?limit=200", &storm_api).await;
        assert_eq!(
            events.body["data"].as_array().unwrap().len(),
            bodies.len(),
            "each distinct delivery stored once"
        );
    }
}
