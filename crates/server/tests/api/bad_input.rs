use crate::harness::TestApp;
use crate::on_both_engines;
use hyper::body::Bytes;
use serde_json::{Value, json};

on_both_engines!(
    malformed_requests_get_clear_codes,
    credentials_are_checked,
    failed_requests_write_nothing
);

async fn malformed_requests_get_clear_codes(app: &TestApp) {
    let api = app.account("Bad").await;
    let cases: Vec<(&str, &str, Value, u16, &str)> = vec![
        (
            "POST",
            "/v1/products",
            Value::String("{\"code\": ".into()),
            400,
            "MALFORMED_JSON",
        ),
        (
            "POST",
            "/v1/products",
            Value::String("".into()),
            400,
            "MALFORMED_JSON",
        ),
        (
            "POST",
            "/v1/products",
            Value::String("[1,2]".into()),
            400,
            "INVALID_BODY",
        ),
        (
            "POST",
            "/v1/products",
            json!({"code": 5, "name": "x"}),
            400,
            "INVALID_BODY",
        ),
        (
            "POST",
            "/v1/products",
            json!({"code": "a", "name": "x", "colour": "red"}),
            400,
            "INVALID_BODY",
        ),
        (
            "POST",
            "/v1/products",
            json!({"name": "missing code"}),
            400,
            "INVALID_BODY",
        ),
        (
            "POST",
            "/v1/products",
            json!({"code": "has space", "name": "x"}),
            422,
            "INVALID_FIELD",
        ),
        (
            "POST",
            "/v1/products",
            json!({"code": "ok", "name": "x", "metadata": [1]}),
            422,
            "INVALID_FIELD",
        ),
        (
            "POST",
            "/v1/policies",
            json!({"product_id": "p", "name": "x", "max_activations": "two"}),
            400,
            "INVALID_BODY",
        ),
        (
            "POST",
            "/v1/policies",
            json!({"product_id": "p", "name": "x", "expiry": "sometimes"}),
            400,
            "INVALID_BODY",
        ),
        (
            "POST",
            "/v1/licenses",
            json!({"policy_id": "p", "expires_at": "tomorrow"}),
            400,
            "INVALID_BODY",
        ),
        (
            "POST",
            "/v1/licenses",
            json!({"policy_id": "nope"}),
            422,
            "POLICY_NOT_FOUND",
        ),
        (
            "GET",
            "/v1/licenses/00000000-0000-0000-0000-000000000000",
            Value::Null,
            404,
            "NOT_FOUND",
        ),
        ("GET", "/v1/products/unknown", Value::Null, 404, "NOT_FOUND"),
        (
            "PATCH",
            "/v1/customers/unknown",
            json!({"name": "x"}),
            404,
            "NOT_FOUND",
        ),
        (
            "DELETE",
            "/v1/activations/unknown",
            Value::Null,
            404,
            "NOT_FOUND",
        ),
        (
            "GET",
            "/v1/audit?since=yesterday",
            Value::Null,
            400,
            "INVALID_QUERY",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let body = if body.is_null() { None } else { Some(body) };
        let r = app.send(method, path, Some(&api), body.clone(), &[]).await;
        assert_eq!(
            (r.status, r.code()),
            (status, code),
            "{method} {path} {body:?}: {}",
            r.body
        );
        assert!(
            r.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // Client endpoints too: malformed is 400, a well-formed unknown key is a 200 NOT_FOUND.
    let r = app
        .send(
            "POST",
            "/v1/licenses/validate",
            None,
            Some(Value::String("nope".into())),
            &[],
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "MALFORMED_JSON"));
    let r = app
        .send(
            "POST",
            "/v1/licenses/validate",
            None,
            Some(json!({"key": 42})),
            &[],
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "INVALID_BODY"));
    let r = app
        .send(
            "POST",
            "/v1/licenses/validate",
            None,
            Some(json!({"key": "k", "fingerprnt": "x"})),
            &[],
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "INVALID_BODY"));
    let r = app
        .send(
            "POST",
            "/v1/licenses/validate",
            None,
            Some(json!({"key": "k", "nonce": "n".repeat(300)})),
            &[],
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "INVALID_BODY"));
    let r = app
        .send(
            "POST",
            "/v1/licenses/checkout",
            None,
            Some(json!({"key": "k"})),
            &[],
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "INVALID_BODY"));

    // Oversized body: 413 with a code.
    let big = format!(
        "{{\"code\": \"big\", \"name\": \"{}\"}}",
        "x".repeat(1024 * 1024 + 10)
    );
    let r = app
        .send_bytes("POST", "/v1/products", Some(&api), Bytes::from(big), &[])
        .await;
    assert_eq!((r.status, r.code()), (413, "PAYLOAD_TOO_LARGE"));
    let big = format!("{{\"key\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let r = app
        .send_bytes("POST", "/v1/licenses/validate", None, Bytes::from(big), &[])
        .await;
    assert_eq!(r.status, 413);
}

async fn credentials_are_checked(app: &TestApp) {
    let r = app.send("GET", "/v1/licenses", None, None, &[]).await;
    assert_eq!((r.status, r.code()), (401, "MISSING_CREDENTIALS"));
    let r = app
        .send("GET", "/v1/licenses", Some("kg_sk_forged"), None, &[])
        .await;
    assert_eq!((r.status, r.code()), (401, "INVALID_API_KEY"));
    let r = app
        .send(
            "GET",
            "/v1/licenses",
            None,
            None,
            &[("authorization", "Basic abc")],
        )
        .await;
    assert_eq!((r.status, r.code()), (401, "MALFORMED_CREDENTIALS"));
}

async fn failed_requests_write_nothing(app: &TestApp) {
    let api = app.account("Atomic").await;
    // A customer whose second platform id clashes: the whole create is refused, nothing half-written.
    app.post(
        "/v1/customers",
        &api,
        json!({"external_ids": {"paddle": "ctm_1"}}),
    )
    .await;
    let r = app
        .post(
            "/v1/customers",
            &api,
            json!({"email": "half@example.com", "external_ids": {"stripe": "cus_9", "paddle": "ctm_1"}}),
        )
        .await;
    assert_eq!(r.status, 409);
    let found = app.get("/v1/customers?email=half@example.com", &api).await;
    assert_eq!(found.body["data"].as_array().unwrap().len(), 0);
    // The stripe id of the refused customer is free again.
    let ok = app
        .post(
            "/v1/customers",
            &api,
            json!({"external_ids": {"stripe": "cus_9"}}),
        )
        .await;
    assert_eq!(ok.status, 201);
    // A refused PATCH leaves the object as it was.
    let license = app.license(&api, json!({})).await;
    let id = license["id"].as_str().unwrap();
    let r = app
        .patch(
            &format!("/v1/licenses/{id}"),
            &api,
            json!({"metadata": {"a": 1}, "customer_id": "nope"}),
        )
        .await;
    assert_eq!(r.status, 422);
    let after = app.get(&format!("/v1/licenses/{id}"), &api).await;
    assert_eq!(after.body["metadata"], json!({}));
    let audit = app.get(&format!("/v1/audit?license_id={id}"), &api).await;
    assert_eq!(
        audit.body["data"].as_array().unwrap().len(),
        1,
        "only the creation"
    );
}
