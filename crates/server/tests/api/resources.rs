use crate::harness::TestApp;
use crate::on_both_engines;
use serde_json::{Value, json};

on_both_engines!(
    products_crud,
    policies_crud_and_models,
    customers_crud,
    licenses_crud_filters_and_pages
);

async fn products_crud(app: &TestApp) {
    let key = app.account("P").await;
    let p = app
        .post(
            "/v1/products",
            &key,
            json!({"code": "app", "name": "App", "metadata": {"tier": 1}}),
        )
        .await;
    assert_eq!(p.status, 201);
    let id = p.body["id"].as_str().unwrap();
    assert_eq!(p.body["metadata"]["tier"], 1);
    let dup = app
        .post(
            "/v1/products",
            &key,
            json!({"code": "app", "name": "Again"}),
        )
        .await;
    assert_eq!((dup.status, dup.code()), (409, "PRODUCT_CODE_TAKEN"));
    let changed = app
        .patch(
            &format!("/v1/products/{id}"),
            &key,
            json!({"name": "App Pro"}),
        )
        .await;
    assert_eq!(changed.body["name"], "App Pro");
    assert_eq!(changed.body["code"], "app");
    assert_eq!(
        app.get(&format!("/v1/products/{id}"), &key).await.body["name"],
        "App Pro"
    );

    // A product with policies cannot be deleted; one without can.
    app.post("/v1/policies", &key, json!({"product_id": id, "name": "x"}))
        .await;
    let r = app
        .send(
            "DELETE",
            &format!("/v1/products/{id}"),
            Some(&key),
            None,
            &[],
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "PRODUCT_IN_USE"));
    let other = app
        .post("/v1/products", &key, json!({"code": "tmp", "name": "Tmp"}))
        .await;
    let oid = other.body["id"].as_str().unwrap();
    let r = app
        .send(
            "DELETE",
            &format!("/v1/products/{oid}"),
            Some(&key),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        app.get(&format!("/v1/products/{oid}"), &key).await.status,
        404
    );
}

async fn policies_crud_and_models(app: &TestApp) {
    let key = app.account("Pol").await;
    let product = app
        .post("/v1/products", &key, json!({"code": "app", "name": "App"}))
        .await;
    let pid = product.body["id"].as_str().unwrap();
    let full = app
        .post(
            "/v1/policies",
            &key,
            json!({
                "product_id": pid, "name": "Everything", "duration_seconds": 86400,
                "expiry": "subscription", "trial_seconds": 600, "grace_seconds": 3600,
                "max_activations": 3, "floating": {"max_seats": 5, "lease_seconds": 60},
                "quota": {"limit": 100, "period_seconds": 2592000},
                "features": ["sync", "export", "sync"], "seats_from_quantity": true
            }),
        )
        .await;
    assert_eq!(full.status, 201, "{}", full.body);
    let b = &full.body;
    assert_eq!(b["features"], json!(["export", "sync"]));
    assert_eq!(b["floating"]["max_seats"], 5);
    assert_eq!(b["quota"]["limit"], 100);
    assert_eq!(b["require_activation"], true);
    assert_eq!(b["expiry"], "subscription");
    let id = b["id"].as_str().unwrap();

    let perpetual = app
        .post(
            "/v1/policies",
            &key,
            json!({"product_id": pid, "name": "Perpetual"}),
        )
        .await;
    assert_eq!(perpetual.body["duration_seconds"], Value::Null);
    assert_eq!(perpetual.body["require_activation"], false);

    let changed = app
        .patch(
            &format!("/v1/policies/{id}"),
            &key,
            json!({"grace_seconds": 0, "features": ["export"]}),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["grace_seconds"], 0);
    assert_eq!(
        changed.body["duration_seconds"], 86400,
        "untouched fields stay"
    );
    let moved = app
        .patch(
            &format!("/v1/policies/{id}"),
            &key,
            json!({"product_id": "other"}),
        )
        .await;
    assert_eq!((moved.status, moved.code()), (422, "IMMUTABLE_FIELD"));
    let bad = app
        .patch(
            &format!("/v1/policies/{id}"),
            &key,
            json!({"max_activations": -1}),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (422, "INVALID_FIELD"));
    let typo = app
        .patch(
            &format!("/v1/policies/{id}"),
            &key,
            json!({"max_activation": 2}),
        )
        .await;
    assert_eq!(typo.status, 422);

    let list = app
        .get(&format!("/v1/policies?product_id={pid}"), &key)
        .await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 2);
    let none = app.get("/v1/policies?product_id=nope", &key).await;
    assert_eq!(none.body["data"].as_array().unwrap().len(), 0);
    let missing = app
        .post(
            "/v1/policies",
            &key,
            json!({"product_id": "nope", "name": "x"}),
        )
        .await;
    assert_eq!((missing.status, missing.code()), (422, "PRODUCT_NOT_FOUND"));
}

async fn customers_crud(app: &TestApp) {
    let key = app.account("C").await;
    let c = app
        .post(
            "/v1/customers",
            &key,
            json!({"email": "Ada@Example.com", "name": "Ada", "external_ids": {"stripe": "cus_1"}}),
        )
        .await;
    assert_eq!(c.status, 201, "{}", c.body);
    assert_eq!(c.body["email"], "ada@example.com");
    assert_eq!(c.body["external_ids"]["stripe"], "cus_1");
    let id = c.body["id"].as_str().unwrap();
    let taken = app
        .post(
            "/v1/customers",
            &key,
            json!({"email": "b@example.com", "external_ids": {"stripe": "cus_1"}}),
        )
        .await;
    assert_eq!((taken.status, taken.code()), (409, "EXTERNAL_ID_TAKEN"));
    let bad = app
        .post("/v1/customers", &key, json!({"email": "not-an-email"}))
        .await;
    assert_eq!((bad.status, bad.code()), (422, "INVALID_FIELD"));

    let found = app.get("/v1/customers?email=ADA@example.com", &key).await;
    assert_eq!(found.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(found.body["data"][0]["external_ids"]["stripe"], "cus_1");

    let changed = app
        .patch(
            &format!("/v1/customers/{id}"),
            &key,
            json!({"name": null, "external_ids": {"stripe": "cus_2", "paddle": "ctm_1"}}),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["name"], Value::Null);
    assert_eq!(changed.body["email"], "ada@example.com");
    let read = app.get(&format!("/v1/customers/{id}"), &key).await;
    assert_eq!(
        read.body["external_ids"],
        json!({"paddle": "ctm_1", "stripe": "cus_2"})
    );
}

async fn licenses_crud_filters_and_pages(app: &TestApp) {
    let key = app.account("L").await;
    let policy = app
        .policy(&key, json!({"duration_seconds": 3600, "features": ["a"]}))
        .await;
    let ada = app
        .post("/v1/customers", &key, json!({"email": "ada@example.com"}))
        .await;
    let ada_id = ada.body["id"].as_str().unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let body = if i < 2 {
            json!({"policy_id": policy, "customer_id": ada_id, "metadata": {"i": i}})
        } else {
            json!({"policy_id": policy, "metadata": {"i": i}})
        };
        let l = app.post("/v1/licenses", &key, body).await;
        assert_eq!(l.status, 201, "{}", l.body);
        ids.push(l.body["id"].as_str().unwrap().to_string());
    }
    let first = app.get(&format!("/v1/licenses/{}", ids[0]), &key).await;
    let b = &first.body;
    for field in [
        "id",
        "key",
        "status",
        "expired",
        "policy_id",
        "product_id",
        "customer_id",
        "subscription_id",
        "starts_at",
        "expires_at",
        "grace_until",
        "features",
        "max_activations",
        "max_seats",
        "quota",
        "metadata",
        "created_at",
        "updated_at",
    ] {
        assert!(b.get(field).is_some(), "license lacks {field}");
    }
    assert_eq!(b["status"], "active");
    assert_eq!(b["expired"], false);
    assert_eq!(b["features"], json!(["a"]));
    let key_text = b["key"].as_str().unwrap();
    assert!(
        key_text.len() >= 26 && key_text.contains('-'),
        "grouped key: {key_text}"
    );

    // Cursor pagination walks every license exactly once, newest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/licenses?limit=2&cursor={c}"),
            None => "/v1/licenses?limit=2".to_string(),
        };
        let page = app.get(&path, &key).await;
        assert_eq!(page.status, 200);
        let data = page.body["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(|l| l["id"].as_str().unwrap().to_string()));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected);

    let mine = app
        .get(&format!("/v1/licenses?customer_id={ada_id}"), &key)
        .await;
    assert_eq!(mine.body["data"].as_array().unwrap().len(), 2);
    let by_email = app.get("/v1/licenses?email=ADA@example.com", &key).await;
    assert_eq!(by_email.body["data"].as_array().unwrap().len(), 2);
    app.post(
        &format!("/v1/licenses/{}/actions/suspend", ids[4]),
        &key,
        json!({}),
    )
    .await;
    let suspended = app.get("/v1/licenses?status=suspended", &key).await;
    assert_eq!(suspended.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(suspended.body["data"][0]["id"], ids[4].as_str());
    let bad = app.get("/v1/licenses?status=sleeping", &key).await;
    assert_eq!((bad.status, bad.code()), (422, "INVALID_FILTER"));
    let bad_limit = app.get("/v1/licenses?limit=many", &key).await;
    assert_eq!((bad_limit.status, bad_limit.code()), (400, "INVALID_QUERY"));

    // PATCH: overrides, customer, expiry.
    let id = &ids[2];
    let changed = app
        .patch(
            &format!("/v1/licenses/{id}"),
            &key,
            json!({"customer_id": ada_id, "overrides": {"add_features": ["b"], "max_activations": 4},
                   "expires_at": null, "metadata": {"note": "vip"}}),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["features"], json!(["a", "b"]));
    assert_eq!(changed.body["max_activations"], 4);
    assert_eq!(changed.body["expires_at"], Value::Null);
    assert_eq!(changed.body["customer_id"], ada_id);

    // Bring-your-own key: unique.
    let own = app
        .post(
            "/v1/licenses",
            &key,
            json!({"policy_id": policy, "key": "LEGACY-0000-1111-2222"}),
        )
        .await;
    assert_eq!(own.status, 201);
    assert_eq!(own.body["key"], "LEGACY-0000-1111-2222");
    let again = app
        .post(
            "/v1/licenses",
            &key,
            json!({"policy_id": policy, "key": "LEGACY-0000-1111-2222"}),
        )
        .await;
    assert_eq!((again.status, again.code()), (409, "KEY_TAKEN"));
    let valid = app.validate(json!({"key": "LEGACY-0000-1111-2222"})).await;
    assert_eq!(valid.body["code"], "VALID");
}

on_both_engines!(idempotency_key_replays_the_first_answer);

async fn idempotency_key_replays_the_first_answer(app: &TestApp) {
    let key = app.account("Idem").await;
    let policy = app.policy(&key, json!({})).await;
    let body = json!({"policy_id": policy, "metadata": {"order": "o-1"}});
    let send = |b: Value, idem: &'static str| {
        let key = key.clone();
        async move {
            app.send(
                "POST",
                "/v1/licenses",
                Some(&key),
                Some(b),
                &[("idempotency-key", idem)],
            )
            .await
        }
    };
    let first = send(body.clone(), "order-o-1").await;
    assert_eq!(first.status, 201);
    let retry = send(body.clone(), "order-o-1").await;
    assert_eq!(retry.status, 201);
    assert_eq!(
        retry.body["id"], first.body["id"],
        "the same license, not a second one"
    );
    assert_eq!(retry.headers.get("idempotent-replayed").unwrap(), "true");
    let list = app
        .get(&format!("/v1/licenses?policy_id={policy}"), &key)
        .await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    // The same key for another request is refused.
    let other = send(json!({"policy_id": policy}), "order-o-1").await;
    assert_eq!(
        (other.status, other.code()),
        (422, "IDEMPOTENCY_KEY_REUSED")
    );
    // Another key makes another license; refused requests are remembered as refused.
    let second = send(body.clone(), "order-o-2").await;
    assert_ne!(second.body["id"], first.body["id"]);
    let bad = send(json!({"policy_id": "nope"}), "bad-1").await;
    let bad_again = send(json!({"policy_id": "nope"}), "bad-1").await;
    assert_eq!((bad.status, bad_again.status), (422, 422));
    // Keys are per account.
    let other_account = app.account("Idem2").await;
    let p2 = app.policy(&other_account, json!({})).await;
    let r = app
        .send(
            "POST",
            "/v1/licenses",
            Some(&other_account),
            Some(json!({"policy_id": p2})),
            &[("idempotency-key", "order-o-1")],
        )
        .await;
    assert_eq!(r.status, 201);
    assert_ne!(r.body["id"], first.body["id"]);
}
