use crate::harness::TestApp;
use crate::on_both_engines;
use serde_json::json;

on_both_engines!(health_metrics_and_openapi);

async fn health_metrics_and_openapi(app: &TestApp) {
    let h = app.send("GET", "/healthz", None, None, &[]).await;
    assert_eq!((h.status, h.body["status"].as_str()), (200, Some("ok")));
    let r = app.send("GET", "/readyz", None, None, &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.body["database"].is_string());

    let key = app.account("Ops").await;
    let license = app.license(&key, json!({})).await;
    app.validate(json!({"key": license["key"]})).await;
    app.validate(json!({"key": "NOPE-NOPE"})).await;
    let m = app.send("GET", "/metrics", None, None, &[]).await;
    let text = String::from_utf8(m.raw.to_vec()).unwrap();
    assert!(text.contains(
        "keygate_http_requests_total{method=\"POST\",route=\"/v1/licenses/validate\",status=\"2xx\"} 2"
    ), "{text}");
    assert!(text.contains("keygate_validations_total{code=\"VALID\"} 1"));
    assert!(text.contains("keygate_validations_total{code=\"NOT_FOUND\"} 1"));
    assert!(text.contains(
        "keygate_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/licenses\""
    ));
    // Route patterns, never raw paths with ids in them.
    let id = license["id"].as_str().unwrap();
    app.get(&format!("/v1/licenses/{id}"), &key).await;
    let text = String::from_utf8(
        app.send("GET", "/metrics", None, None, &[])
            .await
            .raw
            .to_vec(),
    )
    .unwrap();
    assert!(text.contains("route=\"/v1/licenses/{id}\""));
    assert!(!text.contains(id));

    let doc = app.send("GET", "/openapi.json", None, None, &[]).await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body["openapi"], "3.1.0");
    let paths = doc.body["paths"].as_object().unwrap();
    for (method, path) in [
        ("post", "/v1/accounts"),
        ("get", "/v1/licenses"),
        ("post", "/v1/licenses/{id}/actions/{action}"),
        ("post", "/v1/licenses/validate"),
        ("post", "/v1/licenses/usage"),
        ("delete", "/v1/activations/{id}"),
        ("get", "/v1/audit"),
        ("post", "/v1/endpoints"),
        ("get", "/v1/endpoints/{id}/deliveries"),
        ("post", "/v1/endpoints/{id}/deliveries/{delivery_id}/retry"),
        ("post", "/v1/endpoints/{id}/rotate-secret"),
        ("get", "/metrics"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} undocumented"
        );
    }
    let unknown = app.send("GET", "/v1/nothing-here", None, None, &[]).await;
    assert_eq!((unknown.status, unknown.code()), (404, "ROUTE_NOT_FOUND"));
}
