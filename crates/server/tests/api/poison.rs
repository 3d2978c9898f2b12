//! Poison input (issue 13, point 2): a NUL anywhere a client can put one answers a 4xx with
//! the error envelope on both engines, never a 5xx; a platform's signed payload with a NUL is
//! still stored and applied; sizes and counts have enforced limits.
use crate::harness::{Reply, TestApp};
use crate::on_both_engines;
use keygate_server::routes::{self, Auth};
use serde_json::{Map, Value, json};

on_both_engines!(
    every_route_refuses_nul_with_a_clear_code,
    signed_webhook_with_nul_still_licenses,
    platform_quantity_below_one_is_refused_with_a_reason,
    limits_are_enforced
);

const NUL_TEXT: &str = "a\u{0}b";

fn envelope_ok(r: &Reply, what: &str) {
    assert!(r.status < 500, "{what}: {} {}", r.status, r.body);
    assert!(
        r.body["error"]["code"].is_string() && r.body["error"]["message"].is_string(),
        "{what}: no error envelope: {} {:?}",
        r.status,
        r.raw
    );
}

fn resolve<'a>(schema: &'a Value, doc: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap()],
        None => schema,
    }
}

fn schema_type(schema: &Value) -> &str {
    match &schema["type"] {
        Value::String(t) => t,
        Value::Array(ts) => ts
            .iter()
            .find_map(|t| t.as_str().filter(|t| *t != "null"))
            .unwrap_or(""),
        _ => "",
    }
}

/// A body the route's schema accepts, every property filled: strings are plain text, enums
/// their first value, times a valid date.
fn sample(schema: &Value, doc: &Value) -> Value {
    let schema = resolve(schema, doc);
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    match schema_type(schema) {
        "object" => {
            let mut out = Map::new();
            if let Some(props) = schema["properties"].as_object() {
                for (name, prop) in props {
                    out.insert(name.clone(), sample(prop, doc));
                }
            }
            Value::Object(out)
        }
        "array" => json!([sample(&schema["items"], doc)]),
        "integer" => json!(60),
        "boolean" => json!(true),
        "string" if schema["format"] == "date-time" => json!("2030-01-01T00:00:00Z"),
        "string" => json!("text"),
        // Free-form values (metadata, audit before/after): an object.
        _ => json!({}),
    }
}

/// Every string leaf of `value` with its JSON path (`overrides.add_features[0]`), and whether
/// the schema constrains it (enum or date-time: then a NUL makes it a wrong value, 400).
fn string_leaves(
    value: &Value,
    schema: &Value,
    doc: &Value,
    path: String,
    out: &mut Vec<(String, bool)>,
) {
    let schema = resolve(schema, doc);
    match value {
        Value::String(_) => {
            let constrained = schema["enum"].is_array() || schema["format"] == "date-time";
            out.push((path, constrained));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                string_leaves(item, &schema["items"], doc, format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                string_leaves(v, &schema["properties"][k], doc, p, out);
            }
        }
        _ => {}
    }
}

fn set_at(value: &mut Value, path: &str, new: Value) {
    let mut at = value;
    for part in path.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((n, i)) => (n, Some(i.trim_end_matches(']').parse::<usize>().unwrap())),
            None => (part, None),
        };
        at = &mut at[name];
        if let Some(i) = index {
            at = &mut at[i];
        }
    }
    *at = new;
}

/// Every route of the server (the same list the router and the OpenAPI document are built
/// from): a NUL in each path parameter → 404, in each query parameter → 400 INVALID_QUERY,
/// in each string of each JSON body (and in free-form metadata/options) → 422 INVALID_FIELD
/// naming the field, and a `limit` outside 1-200 → 400 INVALID_QUERY.
async fn every_route_refuses_nul_with_a_clear_code(app: &TestApp) {
    let api = app.account("Poison").await;
    let doc = app.send("GET", "/openapi.json", None, None, &[]).await.body;
    let (mut paths, mut queries, mut fields) = (0, 0, 0);
    for route in routes::all() {
        let token = match route.auth {
            Auth::Public => None,
            Auth::ApiKey => Some(api.as_str()),
            Auth::RootToken => Some(crate::harness::ROOT_TOKEN),
        };
        let real_path = route
            .path
            .split('/')
            .map(|s| {
                if s.starts_with('{') {
                    "00000000-0000-7000-8000-000000000000"
                } else {
                    s
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        // The path: each parameter, or the last segment when there is none.
        let nul_path = if route.path.contains('{') {
            route
                .path
                .split('/')
                .map(|s| if s.starts_with('{') { "a%00b" } else { s })
                .collect::<Vec<_>>()
                .join("/")
        } else {
            format!("{}%00", route.path)
        };
        let what = format!("{} {nul_path}", route.method);
        let r = app.send(route.method, &nul_path, token, None, &[]).await;
        envelope_ok(&r, &what);
        assert_eq!(
            (r.status, r.code()),
            (404, "NOT_FOUND"),
            "{what}: {}",
            r.body
        );
        paths += 1;
        for (name, _) in route.query {
            let url = format!("{real_path}?{name}=a%00b");
            let what = format!("{} {url}", route.method);
            let r = app.send(route.method, &url, token, None, &[]).await;
            envelope_ok(&r, &what);
            assert_eq!(
                (r.status, r.code()),
                (400, "INVALID_QUERY"),
                "{what}: {}",
                r.body
            );
            queries += 1;
            if *name == "limit" {
                for bad in ["0", "-1", "201", "9223372036854775807", "ten"] {
                    let url = format!("{real_path}?limit={bad}");
                    let r = app.send(route.method, &url, token, None, &[]).await;
                    assert_eq!(
                        (r.status, r.code()),
                        (400, "INVALID_QUERY"),
                        "{url}: {}",
                        r.body
                    );
                }
                let r = app
                    .send(
                        route.method,
                        &format!("{real_path}?limit=200"),
                        token,
                        None,
                        &[],
                    )
                    .await;
                assert_ne!(
                    r.code(),
                    "INVALID_QUERY",
                    "limit=200 is in range: {}",
                    r.body
                );
            }
        }
        let Some(schema_name) = route.request else {
            continue;
        };
        let schema = &doc["components"]["schemas"][schema_name];
        assert!(schema.is_object(), "{schema_name} is in the document");
        let mut body = sample(schema, &doc);
        // Free-form objects get a string too, so a NUL can go in there as well.
        for free in ["metadata", "options"] {
            if body.get(free).is_some() {
                body[free] = json!({"note": "text"});
            }
        }
        let mut leaves = Vec::new();
        string_leaves(&body, schema, &doc, String::new(), &mut leaves);
        for (leaf, constrained) in leaves {
            let mut poisoned = body.clone();
            set_at(&mut poisoned, &leaf, json!(NUL_TEXT));
            let what = format!("{} {} `{leaf}`", route.method, route.path);
            let r = app
                .send(route.method, &real_path, token, Some(poisoned), &[])
                .await;
            envelope_ok(&r, &what);
            if constrained {
                // Not one of the allowed values: the wrong shape (400), or refused as a NUL
                // first where the body is read as free JSON (a policy PATCH, merged later).
                assert!(
                    matches!(
                        (r.status, r.code()),
                        (400, "INVALID_BODY") | (422, "INVALID_FIELD")
                    ),
                    "{what}: {}",
                    r.body
                );
            } else {
                assert_eq!(
                    (r.status, r.code()),
                    (422, "INVALID_FIELD"),
                    "{what}: {}",
                    r.body
                );
                let message = r.body["error"]["message"].as_str().unwrap();
                assert!(
                    message.contains(&format!("`{leaf}`")),
                    "{what}: names the field: {message}"
                );
            }
            fields += 1;
        }
    }
    // A NUL in a key of metadata is named too.
    let r = app
        .post(
            "/v1/products",
            &api,
            json!({"code": "c", "name": "n", "metadata": {"a\u{0}": 1}}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "INVALID_FIELD"), "{}", r.body);
    // The probe's PostgreSQL 500s, by name: public routes, names, filters.
    let (key, fingerprint) = {
        let license = app.license(&api, json!({"max_activations": 2})).await;
        (license["key"].as_str().unwrap().to_string(), "m1")
    };
    let r = app
        .client(
            "/v1/licenses/activate",
            json!({"key": key, "fingerprint": fingerprint, "name": NUL_TEXT}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "INVALID_FIELD"), "{}", r.body);
    for (method, path) in [
        ("GET", "/v1/accounts/a%00b/public-key"),
        ("POST", "/v1/webhooks/stripe/a%00b"),
    ] {
        let r = app.send(method, path, None, Some(json!({})), &[]).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
    }
    // Nothing of it was stored (only the license's product exists), and the engine answers.
    let products = app.get("/v1/products", &api).await;
    assert_eq!(products.status, 200);
    let names: Vec<&Value> = products.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["name"])
        .collect();
    assert_eq!(names, [&json!("App")], "{}", products.body);
    eprintln!("NUL cases: {paths} paths, {queries} query parameters, {fields} body fields");
    assert!(paths >= 50, "every route was tried: {paths}");
    assert!(queries >= 15, "{queries} query parameters");
    assert!(fields >= 60, "{fields} body fields");
}

const SECRET: &str = "whsec_poison_secret";

fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::digest([ipad.as_slice(), message].concat());
    let outer = Sha256::digest([opad.as_slice(), inner.as_slice()].concat());
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

async fn stripe_setup(app: &TestApp) -> (String, String) {
    let api = app.account("Shop").await;
    let policy = app
        .policy(
            &api,
            json!({"expiry": "subscription", "max_activations": 1, "seats_from_quantity": true}),
        )
        .await;
    let integration = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": "stripe", "secrets": [SECRET],
                   "mappings": [{"external_id": "price_pro", "policy_id": policy}]}),
        )
        .await;
    assert_eq!(integration.status, 201, "{}", integration.body);
    let url = integration.body["webhook_url"].as_str().unwrap();
    (api, url[url.find("/v1/").unwrap()..].to_string())
}

async fn deliver(app: &TestApp, path: &str, body: String) -> Reply {
    let t = keygate_domain::Timestamp::now().millis() / 1000;
    let sig = hmac_sha256_hex(SECRET.as_bytes(), format!("{t}.{body}").as_bytes());
    app.send(
        "POST",
        path,
        None,
        Some(Value::String(body)),
        &[("stripe-signature", &format!("t={t},v1={sig}"))],
    )
    .await
}

fn subscription_created(event_id: &str, customer: Value, quantity: i64) -> String {
    let now = keygate_domain::Timestamp::now().millis() / 1000;
    json!({"id": event_id, "object": "event", "api_version": "2025-03-31.basil", "created": now,
        "livemode": true, "type": "customer.subscription.created", "data": {"object": {
        "id": "sub_1", "object": "subscription", "customer": customer, "status": "active",
        "cancel_at": null, "cancel_at_period_end": false, "canceled_at": null, "ended_at": null,
        "trial_start": null, "trial_end": null, "pause_collection": null, "start_date": now,
        "items": {"object": "list", "has_more": false, "data": [{
            "id": "si_1", "object": "subscription_item", "current_period_start": now,
            "current_period_end": now + 86_400, "quantity": quantity, "subscription": "sub_1",
            "price": {"id": "price_pro", "object": "price", "product": "prod_pro"}}]},
        "livemode": true, "metadata": {"note": "x\u{0}y"}}}})
    .to_string()
}

/// The probe's poison delivery (F2): a signed Stripe event whose customer name holds a NUL
/// answered 500 on PostgreSQL forever. It is now stored (NUL → U+FFFD) and applied.
async fn signed_webhook_with_nul_still_licenses(app: &TestApp) {
    let (api, path) = stripe_setup(app).await;
    let body = subscription_created(
        "evt_nul\u{0}1",
        json!({"id": "cus_nul", "object": "customer", "email": "n@example.com", "name": "A\u{0}nn"}),
        3,
    );
    assert!(body.contains("\\u0000"), "the NUL is in the signed body");
    let r = deliver(app, &path, body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    let licenses = app.get("/v1/licenses", &api).await;
    let data = licenses.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "the license is issued: {}", licenses.body);
    assert_eq!(
        data[0]["max_activations"], 3,
        "seats from the quantity: {}",
        data[0]
    );
    let customer_id = data[0]["customer_id"].as_str().expect("a customer");
    let customer = app.get(&format!("/v1/customers/{customer_id}"), &api).await;
    assert_eq!(customer.body["name"], "A\u{FFFD}nn", "{}", customer.body);
    let event_id = r.body["events"][0]["id"].as_str().unwrap();
    let event = app.get(&format!("/v1/events/{event_id}"), &api).await;
    assert_eq!(event.status, 200, "{}", event.body);
    assert_eq!(event.body["provider_event_id"], "evt_nul\u{FFFD}1");
    // The same delivery again is a duplicate, not a second license.
    let again = deliver(app, &path, body).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["events"][0]["duplicate"], true, "{}", again.body);
    let licenses = app.get("/v1/licenses", &api).await;
    assert_eq!(licenses.body["data"].as_array().unwrap().len(), 1);
}

/// A platform quantity of 0 or less (F9: gave `max_seats: -5`) leaves the event failed with
/// `INVALID_QUANTITY` and its reason, and issues nothing; a later valid event applies.
async fn platform_quantity_below_one_is_refused_with_a_reason(app: &TestApp) {
    let (api, path) = stripe_setup(app).await;
    for (n, quantity) in [-5i64, 0].into_iter().enumerate() {
        let body = subscription_created(&format!("evt_q{n}"), json!("cus_q"), quantity);
        let r = deliver(app, &path, body).await;
        assert!(r.status < 500, "{}", r.body);
        assert_eq!(r.body["events"][0]["status"], "failed", "{}", r.body);
        let id = r.body["events"][0]["id"].as_str().unwrap();
        let event = app.get(&format!("/v1/events/{id}"), &api).await;
        assert_eq!(
            event.body["error"]["code"], "INVALID_QUANTITY",
            "{}",
            event.body
        );
        let message = event.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&quantity.to_string()), "{message}");
    }
    let licenses = app.get("/v1/licenses", &api).await;
    assert!(
        licenses.body["data"].as_array().unwrap().is_empty(),
        "{}",
        licenses.body
    );
    let r = deliver(
        app,
        &path,
        subscription_created("evt_q_ok", json!("cus_q"), 2),
    )
    .await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
}

/// Sizes the API enforces (F5, F9), each also in the OpenAPI document.
async fn limits_are_enforced(app: &TestApp) {
    let api = app.account("Limits").await;
    let product = app
        .post("/v1/products", &api, json!({"code": "lim", "name": "App"}))
        .await;
    let product_id = product.body["id"].as_str().unwrap();
    let policy = |extra: Value| {
        let mut body = json!({"product_id": product_id, "name": "P"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let features: Vec<String> = (0..=keygate_domain::limits::MAX_FEATURES)
        .map(|i| format!("f{i}"))
        .collect();
    let r = app
        .post("/v1/policies", &api, policy(json!({"features": features})))
        .await;
    assert_eq!((r.status, r.code()), (422, "INVALID_FIELD"), "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("features")
    );
    let r = app
        .post(
            "/v1/policies",
            &api,
            policy(json!({"features": &features[..keygate_domain::limits::MAX_FEATURES]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // Metadata deeper than the limit (the probe's depth 126 broke the delivery log).
    let depth = keygate_domain::limits::MAX_METADATA_DEPTH;
    let nested = |levels: usize| -> Value {
        let mut v = json!(1);
        for _ in 0..levels {
            v = json!({"a": v});
        }
        v
    };
    let r = app
        .post(
            "/v1/products",
            &api,
            json!({"code": "deep", "name": "n", "metadata": nested(depth + 1)}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "INVALID_FIELD"), "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deep"),
        "{}",
        r.body
    );
    let r = app
        .post(
            "/v1/products",
            &api,
            json!({"code": "deep", "name": "n", "metadata": nested(depth)}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = app
        .post(
            "/v1/products",
            &api,
            json!({"code": "big", "name": "n", "metadata": {"a": "x".repeat(17 * 1024)}}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "INVALID_FIELD"), "{}", r.body);
    // Durations and counts beyond any sensible term.
    let too_long = keygate_domain::limits::MAX_DURATION_SECONDS + 1;
    for field in [
        json!({"duration_seconds": too_long}),
        json!({"trial_seconds": too_long}),
        json!({"grace_seconds": too_long}),
        json!({"floating": {"max_seats": 2, "lease_seconds": too_long}}),
        json!({"quota": {"limit": 5, "period_seconds": too_long}}),
        json!({"max_activations": keygate_domain::limits::MAX_COUNT + 1}),
    ] {
        let r = app.post("/v1/policies", &api, policy(field.clone())).await;
        assert_eq!(
            (r.status, r.code()),
            (422, "INVALID_FIELD"),
            "{field}: {}",
            r.body
        );
    }
    let license = app.license(&api, json!({})).await;
    let id = license["id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/v1/licenses/{id}/actions/extend"),
            &api,
            json!({"seconds": too_long}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "INVALID_FIELD"), "{}", r.body);
    let r = app
        .post(
            "/v1/licenses",
            &api,
            json!({"policy_id": license["policy_id"], "overrides": {"add_features": features}}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "INVALID_FIELD"), "{}", r.body);
    let r = app
        .client(
            "/v1/licenses/activate",
            json!({"key": license["key"], "fingerprint": "m1", "name": "n".repeat(201)}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "INVALID_FIELD"), "{}", r.body);
    // The document states the limits.
    let doc = app.send("GET", "/openapi.json", None, None, &[]).await.body;
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["PolicyInput"]["properties"]["features"]["maxItems"],
        keygate_domain::limits::MAX_FEATURES
    );
    assert_eq!(
        schemas["PolicyInput"]["properties"]["duration_seconds"]["maximum"],
        keygate_domain::limits::MAX_DURATION_SECONDS
    );
    assert_eq!(
        schemas["ProductInput"]["properties"]["name"]["maxLength"],
        200
    );
    let limit = doc["paths"]["/v1/licenses"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap()
        .clone();
    assert_eq!(
        (
            limit["schema"]["minimum"].clone(),
            limit["schema"]["maximum"].clone()
        ),
        (json!(1), json!(200))
    );
}

mod deep_payload_stored_before_the_cap {
    use crate::harness::TestApp;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = TestApp::sqlite_with(|c| c.outbound_worker = false).await;
        super::deep_payload_stored_before_the_cap(&app).await;
        app.finish().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let app = TestApp::postgres_with(|c| c.outbound_worker = false).await;
        super::deep_payload_stored_before_the_cap(&app).await;
        app.finish().await;
    }
}

/// F5: a delivery whose payload nests deeper than the parser reads (possible for rows
/// written before metadata depth was capped) no longer makes the delivery log answer 500.
async fn deep_payload_stored_before_the_cap(app: &TestApp) {
    let api = app.account("Deep").await;
    let endpoint = app
        .post(
            "/v1/endpoints",
            &api,
            json!({"url": "https://hooks.example.com/deep", "event_types": ["*"]}),
        )
        .await;
    assert_eq!(endpoint.status, 201, "{}", endpoint.body);
    let id = endpoint.body["id"].as_str().unwrap();
    app.license(&api, json!({})).await;
    let deep = format!("{}1{}", "{\"a\":".repeat(130), "}".repeat(130));
    let updated = crate::sealing::sql(
        app,
        "UPDATE outbound_deliveries SET payload = $1 WHERE endpoint_id = $2 RETURNING id",
        &[&deep, id],
    )
    .await;
    assert!(!updated.is_empty(), "a delivery was queued");
    let r = app
        .get(&format!("/v1/endpoints/{id}/deliveries"), &api)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let shown = &r.body["data"][0]["payload"];
    assert_eq!(
        shown.as_str(),
        Some(deep.as_str()),
        "shown as its stored text"
    );
}
