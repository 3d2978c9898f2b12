use crate::harness::TestApp;
use crate::on_both_engines;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

on_both_engines!(
    node_locked_activations,
    floating_seats_are_atomic,
    expired_lease_frees_its_seat,
    quota_prepay_and_postpay,
    quota_is_atomic_under_concurrency,
    feature_and_product_scopes,
    seats_from_quantity,
);

async fn node_locked_activations(app: &TestApp) {
    let api = app.account("Node").await;
    let l = app.license(&api, json!({"max_activations": 2})).await;
    let key = &l["key"];
    let activate = |fp: &'static str| {
        app.client(
            "/v1/licenses/activate",
            json!({"key": key, "fingerprint": fp, "name": "laptop"}),
        )
    };
    let a1 = activate("m1").await;
    assert_eq!(a1.status, 201, "{}", a1.body);
    assert_eq!(a1.body["fingerprint"], "m1");
    assert_eq!(activate("m2").await.status, 201);
    let third = activate("m3").await;
    assert_eq!((third.status, third.code()), (409, "TOO_MANY_ACTIVATIONS"));
    // Activating an activated machine again answers the same activation, not an error.
    let again = activate("m1").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["id"], a1.body["id"]);

    let v = app.validate(json!({"key": key, "fingerprint": "m1"})).await;
    assert_eq!(v.body["code"], "VALID");
    let v = app.validate(json!({"key": key, "fingerprint": "m3"})).await;
    assert_eq!(v.body["code"], "NOT_ACTIVATED");

    let lid = l["id"].as_str().unwrap();
    let list = app
        .get(&format!("/v1/licenses/{lid}/activations"), &api)
        .await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 2);

    // Deactivating frees a slot.
    let d = app
        .client(
            "/v1/licenses/deactivate",
            json!({"key": key, "fingerprint": "m2"}),
        )
        .await;
    assert_eq!(d.status, 204);
    let d = app
        .client(
            "/v1/licenses/deactivate",
            json!({"key": key, "fingerprint": "m2"}),
        )
        .await;
    assert_eq!(d.status, 404);
    assert_eq!(activate("m3").await.status, 201);
    // The admin can remove a machine too.
    let list = app
        .get(&format!("/v1/licenses/{lid}/activations"), &api)
        .await;
    let aid = list.body["data"][0]["id"].as_str().unwrap();
    let r = app
        .send(
            "DELETE",
            &format!("/v1/activations/{aid}"),
            Some(&api),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 204);

    // Lowering the limit below the machines in use: validation says so.
    assert_eq!(activate("m4").await.status, 201);
    app.patch(
        &format!("/v1/licenses/{lid}"),
        &api,
        json!({"overrides": {"max_activations": 1}}),
    )
    .await;
    let v = app.validate(json!({"key": key, "fingerprint": "m4"})).await;
    assert_eq!(v.body["code"], "TOO_MANY_ACTIVATIONS");

    let unknown = app
        .client(
            "/v1/licenses/activate",
            json!({"key": "NOPE", "fingerprint": "x"}),
        )
        .await;
    assert_eq!((unknown.status, unknown.code()), (404, "NOT_FOUND"));
}

async fn floating_seats_are_atomic(app: &TestApp) {
    let api = app.account("Float").await;
    let l = app
        .license(
            &api,
            json!({"floating": {"max_seats": 5, "lease_seconds": 60}}),
        )
        .await;
    let key = l["key"].as_str().unwrap().to_string();
    let app = Arc::new(app);
    // 20 concurrent checkouts on a 5-seat license: exactly 5 succeed.
    let mut set = JoinSet::new();
    for i in 0..20 {
        let (key, url) = (key.clone(), app.server.url("/v1/licenses/checkout"));
        set.spawn(
            async move { raw_post(&url, json!({"key": key, "session": format!("s{i}")})).await },
        );
    }
    let mut statuses = Vec::new();
    while let Some(r) = set.join_next().await {
        statuses.push(r.unwrap());
    }
    let ok = statuses.iter().filter(|(s, _)| *s == 200).count();
    let full = statuses
        .iter()
        .filter(|(s, b)| *s == 409 && b["error"]["code"] == "NO_SEAT_AVAILABLE")
        .count();
    assert_eq!((ok, full), (5, 15), "{statuses:?}");

    // A holder's checkout again is a heartbeat, not a new seat.
    let holder = statuses.iter().find(|(s, _)| *s == 200).unwrap();
    assert!(holder.1["seats_used"].as_i64().unwrap() <= 5);
    let winners: Vec<String> = {
        let mut w = Vec::new();
        for i in 0..20 {
            let r = app
                .client(
                    "/v1/licenses/checkout",
                    json!({"key": key, "session": format!("s{i}")}),
                )
                .await;
            if r.status == 200 {
                w.push(format!("s{i}"));
                assert!(r.body["lease_expires_at"].is_string());
                assert_eq!(r.body["seats_used"], 5);
            }
        }
        w
    };
    assert_eq!(winners.len(), 5);
    // Check-in frees a seat for someone else.
    let r = app
        .client(
            "/v1/licenses/checkin",
            json!({"key": key, "session": winners[0]}),
        )
        .await;
    assert_eq!(r.status, 204);
    let r = app
        .client(
            "/v1/licenses/checkout",
            json!({"key": key, "session": "newcomer"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = app
        .client(
            "/v1/licenses/checkout",
            json!({"key": key, "session": "late"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "NO_SEAT_AVAILABLE"));

    let not_floating = app.license(&api, json!({})).await;
    let r = app
        .client(
            "/v1/licenses/checkout",
            json!({"key": not_floating["key"], "session": "x"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "NOT_FLOATING"));
}

async fn raw_post(url: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let req = hyper::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(hyper::body::Bytes::from(body.to_string())))
        .unwrap();
    let res = client.request(req).await.unwrap();
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

async fn expired_lease_frees_its_seat(app: &TestApp) {
    let api = app.account("Lease").await;
    let l = app
        .license(
            &api,
            json!({"floating": {"max_seats": 1, "lease_seconds": 1}}),
        )
        .await;
    let key = &l["key"];
    let r = app
        .client("/v1/licenses/checkout", json!({"key": key, "session": "a"}))
        .await;
    assert_eq!(r.status, 200);
    let r = app
        .client("/v1/licenses/checkout", json!({"key": key, "session": "b"}))
        .await;
    assert_eq!(r.status, 409);
    // No heartbeat from "a": its lease lapses and the seat is free, with no sweeper running.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = app
        .client("/v1/licenses/checkout", json!({"key": key, "session": "b"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["seats_used"], 1);
}

async fn quota_prepay_and_postpay(app: &TestApp) {
    let api = app.account("Quota").await;
    let l = app
        .license(&api, json!({"quota": {"limit": 10}, "features": ["ocr"]}))
        .await;
    let key = &l["key"];
    let usage = |amount: i64, extra: serde_json::Value| {
        let mut body = json!({"key": key, "amount": amount});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        app.client("/v1/licenses/usage", body)
    };
    let r = usage(4, json!({})).await;
    assert_eq!(
        (r.status, &r.body["used"], &r.body["remaining"]),
        (200, &json!(4), &json!(6))
    );
    let r = usage(6, json!({"feature": "ocr"})).await;
    assert_eq!(
        (r.status, &r.body["used"], &r.body["remaining"]),
        (200, &json!(10), &json!(0))
    );
    // Exactly reached: validation reports it, further prepay usage is refused and not recorded.
    let v = app.validate(json!({"key": key})).await;
    assert_eq!(v.body["code"], "QUOTA_EXCEEDED");
    assert_eq!(v.body["license"]["quota"]["used"], 10);
    let r = usage(1, json!({})).await;
    assert_eq!((r.status, r.code()), (409, "QUOTA_EXCEEDED"));
    // Post-pay records beyond the limit and reports the overdraft.
    let r = usage(3, json!({"mode": "postpay"})).await;
    assert_eq!(
        (r.status, &r.body["used"], &r.body["overdraft"]),
        (200, &json!(13), &json!(3))
    );
    let lid = l["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/v1/licenses/{lid}"), &api).await.body["quota"]["used"],
        13
    );
    let r = usage(1, json!({"feature": "not-granted"})).await;
    assert_eq!((r.status, r.code()), (409, "FEATURE_MISSING"));
    let r = usage(0, json!({})).await;
    assert_eq!((r.status, r.code()), (422, "INVALID_FIELD"));
    let r = usage(1, json!({"mode": "later"})).await;
    assert_eq!(r.status, 400);

    // Pay-per-use: no limit, always recorded.
    let metered = app.license(&api, json!({"quota": {"limit": null}})).await;
    let r = app
        .client(
            "/v1/licenses/usage",
            json!({"key": metered["key"], "amount": 1000}),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["used"], &r.body["remaining"]),
        (200, &json!(1000), &json!(null))
    );
    // No quota at all: usage is not accepted.
    let plain = app.license(&api, json!({})).await;
    let r = app
        .client(
            "/v1/licenses/usage",
            json!({"key": plain["key"], "amount": 1}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "NOT_METERED"));

    // A periodic quota resets with the period.
    let periodic = app
        .license(&api, json!({"quota": {"limit": 1, "period_seconds": 1}}))
        .await;
    let r = app
        .client(
            "/v1/licenses/usage",
            json!({"key": periodic["key"], "amount": 1}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = app
        .client(
            "/v1/licenses/usage",
            json!({"key": periodic["key"], "amount": 1}),
        )
        .await;
    assert_eq!(r.status, 409);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let r = app
        .client(
            "/v1/licenses/usage",
            json!({"key": periodic["key"], "amount": 1}),
        )
        .await;
    assert_eq!((r.status, &r.body["used"]), (200, &json!(1)));
}

async fn quota_is_atomic_under_concurrency(app: &TestApp) {
    let api = app.account("QuotaRace").await;
    let l = app.license(&api, json!({"quota": {"limit": 7}})).await;
    let key = l["key"].as_str().unwrap().to_string();
    let mut set = JoinSet::new();
    for _ in 0..20 {
        let (key, url) = (key.clone(), app.server.url("/v1/licenses/usage"));
        set.spawn(async move { raw_post(&url, json!({"key": key, "amount": 1})).await });
    }
    let mut ok = 0;
    while let Some(r) = set.join_next().await {
        if r.unwrap().0 == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 7);
    let lid = l["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/v1/licenses/{lid}"), &api).await.body["quota"]["used"],
        7
    );

    // Concurrent activations never exceed the limit either.
    let node = app.license(&api, json!({"max_activations": 3})).await;
    let key = node["key"].as_str().unwrap().to_string();
    let mut set = JoinSet::new();
    for i in 0..12 {
        let (key, url) = (key.clone(), app.server.url("/v1/licenses/activate"));
        set.spawn(async move {
            raw_post(&url, json!({"key": key, "fingerprint": format!("m{i}")})).await
        });
    }
    let mut created = 0;
    while let Some(r) = set.join_next().await {
        if r.unwrap().0 == 201 {
            created += 1;
        }
    }
    assert_eq!(created, 3);
}

async fn feature_and_product_scopes(app: &TestApp) {
    let api = app.account("Scopes").await;
    let l = app
        .license(&api, json!({"features": ["export", "sync"]}))
        .await;
    let key = &l["key"];
    let product = app
        .get(
            &format!("/v1/products/{}", l["product_id"].as_str().unwrap()),
            &api,
        )
        .await;
    let code = product.body["code"].as_str().unwrap();
    let check = |body: serde_json::Value| async move {
        let r = app.validate(body).await;
        r.body["code"].as_str().unwrap().to_string()
    };
    assert_eq!(
        check(json!({"key": key, "features": ["export"]})).await,
        "VALID"
    );
    assert_eq!(
        check(json!({"key": key, "features": ["export", "sync"]})).await,
        "VALID"
    );
    assert_eq!(
        check(json!({"key": key, "features": ["export", "cloud"]})).await,
        "FEATURE_MISSING"
    );
    assert_eq!(check(json!({"key": key, "product": code})).await, "VALID");
    assert_eq!(
        check(json!({"key": key, "product": l["product_id"]})).await,
        "VALID"
    );
    assert_eq!(
        check(json!({"key": key, "product": "other-app"})).await,
        "PRODUCT_MISMATCH"
    );
    // License overrides add and remove features.
    let id = l["id"].as_str().unwrap();
    app.patch(
        &format!("/v1/licenses/{id}"),
        &api,
        json!({"overrides": {"add_features": ["cloud"], "remove_features": ["sync"]}}),
    )
    .await;
    assert_eq!(
        check(json!({"key": key, "features": ["cloud", "export"]})).await,
        "VALID"
    );
    assert_eq!(
        check(json!({"key": key, "features": ["sync"]})).await,
        "FEATURE_MISSING"
    );
    // NOT_FOUND is a 200 answer with nothing about any license in it.
    let r = app
        .validate(json!({"key": "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE-FFFFF", "nonce": "n1"}))
        .await;
    assert_eq!(r.body["code"], "NOT_FOUND");
    assert_eq!(r.body["valid"], false);
    assert_eq!(r.body["license"], serde_json::Value::Null);
    assert_eq!(r.body["nonce"], "n1");
}

async fn seats_from_quantity(app: &TestApp) {
    let api = app.account("Qty").await;
    let policy = app
        .policy(
            &api,
            json!({"floating": {"max_seats": 1, "lease_seconds": 60}, "seats_from_quantity": true}),
        )
        .await;
    let l = app
        .post(
            "/v1/licenses",
            &api,
            json!({"policy_id": policy, "quantity": 3}),
        )
        .await;
    assert_eq!(l.body["max_seats"], 3);
    let key = &l.body["key"];
    for s in ["a", "b", "c"] {
        let r = app
            .client("/v1/licenses/checkout", json!({"key": key, "session": s}))
            .await;
        assert_eq!(r.status, 200);
    }
    let r = app
        .client("/v1/licenses/checkout", json!({"key": key, "session": "d"}))
        .await;
    assert_eq!(r.status, 409);
    let id = l.body["id"].as_str().unwrap();
    let r = app
        .patch(&format!("/v1/licenses/{id}"), &api, json!({"quantity": 4}))
        .await;
    assert_eq!(r.body["max_seats"], 4);
    let r = app
        .client("/v1/licenses/checkout", json!({"key": key, "session": "d"}))
        .await;
    assert_eq!(r.status, 200);
}

on_both_engines!(validate_with_a_session_checks_the_seat);

async fn validate_with_a_session_checks_the_seat(app: &TestApp) {
    let api = app.account("SeatCheck").await;
    let l = app
        .license(
            &api,
            json!({"floating": {"max_seats": 1, "lease_seconds": 60}}),
        )
        .await;
    let key = &l["key"];
    let code = |session: Option<&'static str>| async move {
        let mut body = json!({"key": key});
        if let Some(s) = session {
            body["session"] = json!(s);
        }
        app.validate(body).await.body["code"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(code(Some("b")).await, "VALID", "a seat is free");
    app.client("/v1/licenses/checkout", json!({"key": key, "session": "a"}))
        .await;
    assert_eq!(code(Some("a")).await, "VALID", "a holds the seat");
    assert_eq!(code(Some("b")).await, "NO_SEAT_AVAILABLE");
    assert_eq!(
        code(None).await,
        "VALID",
        "no session: seats are not checked"
    );
    app.client("/v1/licenses/checkin", json!({"key": key, "session": "a"}))
        .await;
    assert_eq!(code(Some("b")).await, "VALID");
}
