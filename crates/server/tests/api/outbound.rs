//! Outbound webhooks end to end: a real receiving HTTP server on loopback, the real Keygate
//! server, both engines.
use crate::harness::{TestApp, uuid_like};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keygate_domain::Timestamp;
use keygate_server::Config;
use keygate_server::config::RetrySchedule;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// A receiving server: records every request, answers scripted statuses (then 200).

#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: String,
    pub json: Value,
    pub at: Instant,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    fn kind(&self) -> &str {
        self.json["type"].as_str().unwrap_or("")
    }
}

type Script = VecDeque<(u16, Vec<(&'static str, String)>)>;

#[derive(Clone, Default)]
struct Recorder {
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Script>>,
}

pub struct Receiver {
    addr: std::net::SocketAddr,
    recorder: Recorder,
    task: tokio::task::JoinHandle<()>,
}

async fn record(State(r): State<Recorder>, headers: HeaderMap, body: String) -> impl IntoResponse {
    r.received.lock().unwrap().push(Received {
        json: serde_json::from_str(&body).unwrap_or(Value::Null),
        headers,
        body,
        at: Instant::now(),
    });
    let (status, extra) = r
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or((200, vec![]));
    let mut headers = HeaderMap::new();
    for (k, v) in extra {
        headers.insert(k, v.parse().unwrap());
    }
    (StatusCode::from_u16(status).unwrap(), headers, "thanks")
}

impl Receiver {
    pub async fn start() -> Receiver {
        let recorder = Recorder::default();
        let app = axum::Router::new()
            .fallback(record)
            .with_state(recorder.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            addr,
            recorder,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next answers, in order (after them: 200).
    fn script(&self, answers: &[(u16, &[(&'static str, &str)])]) {
        let mut s = self.recorder.script.lock().unwrap();
        for (status, headers) in answers {
            s.push_back((
                *status,
                headers.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            ));
        }
    }

    fn received(&self) -> Vec<Received> {
        self.recorder.received.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for what was received (at most 15 s), and returns it.
    async fn wait(&self, what: &str, pred: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.received();
            if pred(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; received: {:?}",
                got.iter().map(|r| r.kind().to_string()).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn wait_count(&self, n: usize) -> Vec<Received> {
        self.wait(&format!("{n} requests"), |r| r.len() >= n).await
    }

    fn of_type(&self, kind: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.kind() == kind)
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Fast retries and polling for tests; loopback allowed (the receiver is on 127.0.0.1).
fn fast(c: &mut Config) {
    c.outbound_allow_private = true;
    c.outbound_retry_schedule = RetrySchedule::parse("0,0.3,0.3").unwrap();
    c.outbound_poll_ms = 50;
    c.expiry_sweep_seconds = 0.2;
}

/// `fast`, with no delivery worker: as if the process had died after its commits.
fn without_worker(c: &mut Config) {
    fast(c);
    c.outbound_worker = false;
}

/// Checks a delivery with the Standard Webhooks scheme, through Keygate's inbound verifier
/// (the `generic` provider), with the endpoint's secret.
fn verifies(secret: &str, r: &Received) -> bool {
    let mut headers = keygate_billing::Headers::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, r.header(name));
    }
    keygate_billing::provider("generic")
        .unwrap()
        .verify(
            &keygate_billing::Request::post(&headers, r.body.as_bytes()),
            &keygate_billing::Secrets::new([secret]),
            Timestamp::now(),
        )
        .is_ok()
}

async fn endpoint(app: &TestApp, api: &str, url: &str, types: Value) -> (String, String) {
    let r = app
        .post(
            "/v1/endpoints",
            api,
            json!({"url": url, "event_types": types}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    (
        r.body["id"].as_str().unwrap().to_string(),
        r.body["secret"].as_str().unwrap().to_string(),
    )
}

async fn deliveries(app: &TestApp, api: &str, endpoint: &str, query: &str) -> Vec<Value> {
    let r = app
        .get(&format!("/v1/endpoints/{endpoint}/deliveries{query}"), api)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"].as_array().unwrap().clone()
}

/// Waits until the endpoint's newest delivery satisfies `pred`; returns it.
async fn wait_delivery(
    app: &TestApp,
    api: &str,
    endpoint: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let list = deliveries(app, api, endpoint, "").await;
        if let Some(d) = list.first()
            && pred(d)
        {
            return d.clone();
        }
        assert!(
            Instant::now() < deadline,
            "delivery never got there: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lets the worker run a while (to show that nothing more arrives).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1200)).await;
}

fn ms(v: &Value) -> i64 {
    Timestamp::parse_rfc3339(v.as_str().unwrap()).unwrap().0
}

// ---------------------------------------------------------------------------------------------

macro_rules! on_both_fast {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::harness::TestApp::sqlite_with(super::fast).await;
                super::$name(&app).await;
                app.finish().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let app = $crate::harness::TestApp::postgres_with(super::fast).await;
                super::$name(&app).await;
                app.finish().await;
            }
        }
    )*};
}

on_both_fast!(
    signed_deliveries_and_subscriptions,
    retries_after_500_then_succeeds,
    gone_disables_the_endpoint,
    retry_after_is_honoured,
    manual_retry_after_failure,
    rotation_signs_with_both_secrets,
    client_and_billing_events,
    sweeper_announces_expiries_once,
    endpoints_are_per_account,
    audit_filters,
    license_lifecycle_events,
    events_held_for_configuration_are_announced_failed,
);

macro_rules! with_app {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::harness::TestApp::sqlite_with(super::fast).await).await.finish().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::harness::TestApp::postgres_with(super::fast).await).await.finish().await;
            }
        }
    )*};
}

with_app!(
    outbox_survives_a_kill,
    private_addresses_are_refused,
    several_workers_deliver_each_message_once,
);

/// A delivery carries the Standard Webhooks headers, verifies with the endpoint's secret, has
/// the `{type, timestamp, data}` payload; `*` gets everything, a list only its types, a
/// disabled endpoint nothing; one event has one message id for every endpoint.
async fn signed_deliveries_and_subscriptions(app: &TestApp) {
    let rx = Receiver::start().await;
    let api = app.account("Hooks").await;
    let (all, all_secret) = endpoint(app, &api, &rx.url("/all"), json!(["*"])).await;
    let (_, revoked_secret) =
        endpoint(app, &api, &rx.url("/revoked"), json!(["license.revoked"])).await;
    let off = app
        .post(
            "/v1/endpoints",
            &api,
            json!({"url": rx.url("/off"), "event_types": ["*"], "enabled": false, "description": "paused"}),
        )
        .await;
    assert_eq!(off.status, 201, "{}", off.body);
    assert_eq!(off.body["enabled"], false);
    assert_eq!(off.body["description"], "paused");

    // The secret is shown once: never in reads or lists.
    let read = app.get(&format!("/v1/endpoints/{all}"), &api).await;
    assert_eq!(read.status, 200);
    assert!(read.body.get("secret").is_none());
    assert_eq!(read.body["event_types"], json!(["*"]));
    assert!(!read.raw.windows(6).any(|w| w == b"whsec_"));
    let list = app.get("/v1/endpoints", &api).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 3);
    assert!(!list.raw.windows(6).any(|w| w == b"whsec_"));

    let license = app
        .license(&api, json!({"duration_seconds": 86_400 * 30}))
        .await;
    let id = license["id"].as_str().unwrap();
    let got = rx.wait_count(1).await;
    let created = &got[0];
    assert_eq!(created.kind(), "license.created");
    assert!(created.header("webhook-id").starts_with("msg_"));
    assert!(created.header("webhook-timestamp").parse::<i64>().is_ok());
    assert!(created.header("webhook-signature").starts_with("v1,"));
    assert_eq!(created.header("content-type"), "application/json");
    assert!(verifies(&all_secret, created), "signature must verify");
    assert!(
        !verifies(&revoked_secret, created),
        "another secret must not verify"
    );
    assert_eq!(created.json["data"]["id"], id);
    assert_eq!(created.json["data"]["key"], license["key"]);
    assert!(Timestamp::parse_rfc3339(created.json["timestamp"].as_str().unwrap()).is_ok());

    let r = app
        .post(
            &format!("/v1/licenses/{id}/actions/revoke"),
            &api,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    let got = rx.wait_count(3).await;
    let revoked: Vec<&Received> = got
        .iter()
        .filter(|r| r.kind() == "license.revoked")
        .collect();
    assert_eq!(
        revoked.len(),
        2,
        "the * endpoint and the license.revoked one"
    );
    assert_eq!(
        revoked[0].header("webhook-id"),
        revoked[1].header("webhook-id"),
        "one message id for every endpoint"
    );
    assert_eq!(revoked[0].json["data"]["status"], "revoked");
    settle().await;
    let got = rx.received();
    assert_eq!(
        got.len(),
        3,
        "nothing for the disabled endpoint, no license.created for the list"
    );
    assert!(
        got.iter()
            .all(|r| r.headers.get("host").is_some() && r.json["data"].is_object())
    );

    // The log: succeeded, one attempt each, the payload as sent.
    let log = deliveries(app, &api, &all, "").await;
    assert_eq!(log.len(), 2);
    assert!(
        log.iter()
            .all(|d| d["status"] == "succeeded" && d["attempts"] == 1)
    );
    assert_eq!(log[0]["event_type"], "license.revoked");
    assert_eq!(log[1]["payload"]["data"]["id"], id);
    assert_eq!(log[0]["attempt_log"][0]["status_code"], 200);
    assert_eq!(log[0]["attempt_log"][0]["response_body"], "thanks");
    let filtered = deliveries(app, &api, &all, "?status=failed").await;
    assert!(filtered.is_empty());
    let bad = app
        .get(&format!("/v1/endpoints/{all}/deliveries?status=nope"), &api)
        .await;
    assert_eq!((bad.status, bad.code()), (422, "INVALID_FILTER"));

    // Subscriptions change with PATCH; unknown types are refused.
    let bad = app
        .patch(
            &format!("/v1/endpoints/{all}"),
            &api,
            json!({"event_types": ["license.nope"]}),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (422, "INVALID_FIELD"));
    let r = app
        .patch(
            &format!("/v1/endpoints/{all}"),
            &api,
            json!({"event_types": ["license.suspended", "license.created"], "description": "crm"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["event_types"],
        json!(["license.created", "license.suspended"])
    );
    assert_eq!(r.body["description"], "crm");
}

/// 500, then 200: two attempts of one message (same webhook-id), succeeded, both in the log.
async fn retries_after_500_then_succeeds(app: &TestApp) {
    let rx = Receiver::start().await;
    rx.script(&[(500, &[])]);
    let api = app.account("Retry").await;
    let (ep, secret) = endpoint(app, &api, &rx.url("/"), json!(["license.created"])).await;
    app.license(&api, json!({})).await;
    let got = rx.wait_count(2).await;
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    assert!(verifies(&secret, &got[1]));
    let d = wait_delivery(app, &api, &ep, |d| d["status"] == "succeeded").await;
    assert_eq!(d["attempts"], 2);
    assert_eq!(d["last_status"], 200);
    let log = d["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["status_code"], 500);
    assert!(log[0]["error"].as_str().unwrap().starts_with("HTTP_STATUS"));
    assert_eq!(log[1]["status_code"], 200);
    assert!(log[1]["error"].is_null());
    settle().await;
    assert_eq!(rx.received().len(), 2, "nothing more once it succeeded");

    let metrics = app.send("GET", "/metrics", None, None, &[]).await;
    let text = String::from_utf8_lossy(&metrics.raw);
    assert!(
        text.contains("keygate_outbound_attempts_total{outcome=\"retry\"} 1"),
        "{text}"
    );
    assert!(text.contains("keygate_outbound_attempts_total{outcome=\"succeeded\"} 1"));

    // The log is pruned after the retention: recent deliveries stay.
    let store = app.server.state.store.clone();
    let hour_ago = Timestamp::now().plus_seconds(-3600);
    assert_eq!(store.prune_deliveries(hour_ago, 100).await.unwrap(), 0);
    assert_eq!(deliveries(app, &api, &ep, "").await.len(), 1);
    let soon = Timestamp::now().plus_seconds(1);
    assert_eq!(store.prune_deliveries(soon, 100).await.unwrap(), 1);
    assert!(deliveries(app, &api, &ep, "").await.is_empty());
}

/// 410 Gone disables the endpoint (reason recorded); nothing more is sent; enabling it again
/// clears the reason and deliveries resume.
async fn gone_disables_the_endpoint(app: &TestApp) {
    let rx = Receiver::start().await;
    rx.script(&[(410, &[])]);
    let api = app.account("Gone").await;
    let (ep, _) = endpoint(app, &api, &rx.url("/"), json!(["*"])).await;
    app.license(&api, json!({})).await;
    rx.wait_count(1).await;
    let d = wait_delivery(app, &api, &ep, |d| d["status"] != "pending").await;
    assert_eq!(d["status"], "failed");
    assert_eq!(d["last_status"], 410);
    let e = app.get(&format!("/v1/endpoints/{ep}"), &api).await;
    assert_eq!(e.body["enabled"], false);
    assert!(
        e.body["disabled_reason"].as_str().unwrap().contains("410"),
        "{}",
        e.body
    );
    app.license(&api, json!({})).await;
    settle().await;
    assert_eq!(rx.received().len(), 1, "a disabled endpoint gets nothing");
    let retry = app
        .post(
            &format!(
                "/v1/endpoints/{ep}/deliveries/{}/retry",
                d["id"].as_str().unwrap()
            ),
            &api,
            json!({}),
        )
        .await;
    assert_eq!((retry.status, retry.code()), (409, "ENDPOINT_DISABLED"));

    let r = app
        .patch(
            &format!("/v1/endpoints/{ep}"),
            &api,
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["enabled"], true);
    assert!(r.body["disabled_reason"].is_null());
    app.license(&api, json!({})).await;
    rx.wait_count(2).await;
}

/// `Retry-After` later than the schedule moves the next attempt back.
async fn retry_after_is_honoured(app: &TestApp) {
    let rx = Receiver::start().await;
    rx.script(&[(503, &[("retry-after", "2")])]);
    let api = app.account("Later").await;
    let (ep, _) = endpoint(app, &api, &rx.url("/"), json!(["license.created"])).await;
    app.license(&api, json!({})).await;
    rx.wait_count(1).await;
    let d = wait_delivery(app, &api, &ep, |d| d["attempts"] == 1).await;
    assert_eq!(d["status"], "pending");
    assert_eq!(d["last_status"], 503);
    let wait = ms(&d["next_attempt_at"]) - ms(&d["last_attempt_at"]);
    assert!(
        wait >= 2_000,
        "the schedule says 0.3 s, Retry-After 2 s: waited {wait} ms"
    );
    let got = rx.wait_count(2).await;
    assert!(got[1].at - got[0].at >= Duration::from_millis(1_900));
    wait_delivery(app, &api, &ep, |d| d["status"] == "succeeded").await;
}

/// After the last scheduled attempt a delivery is failed; a manual retry sends it again now.
async fn manual_retry_after_failure(app: &TestApp) {
    let rx = Receiver::start().await;
    rx.script(&[(500, &[]), (502, &[]), (500, &[])]);
    let api = app.account("Manual").await;
    let (ep, _) = endpoint(app, &api, &rx.url("/"), json!(["license.created"])).await;
    app.license(&api, json!({})).await;
    // Three attempts in the test schedule ("0,0.3,0.3").
    let d = wait_delivery(app, &api, &ep, |d| d["status"] == "failed").await;
    assert_eq!(d["attempts"], 3);
    assert!(d["next_attempt_at"].is_null());
    assert_eq!(rx.received().len(), 3);
    let failed = deliveries(app, &api, &ep, "?status=failed").await;
    assert_eq!(failed.len(), 1);
    let id = d["id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/v1/endpoints/{ep}/deliveries/{id}/retry"),
            &api,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["id"], id);
    let got = rx.wait_count(4).await;
    assert_eq!(got[3].header("webhook-id"), id);
    let d = wait_delivery(app, &api, &ep, |d| d["status"] == "succeeded").await;
    assert_eq!(d["attempts"], 4);
    let unknown = app
        .post(
            &format!("/v1/endpoints/{ep}/deliveries/msg_nope/retry"),
            &api,
            json!({}),
        )
        .await;
    assert_eq!((unknown.status, unknown.code()), (404, "NOT_FOUND"));
}

/// After a rotation the old secret keeps signing (both signatures are sent); the new secret
/// is shown once.
async fn rotation_signs_with_both_secrets(app: &TestApp) {
    let rx = Receiver::start().await;
    let api = app.account("Rotate").await;
    let (ep, old) = endpoint(app, &api, &rx.url("/"), json!(["license.created"])).await;
    let r = app
        .post(
            &format!("/v1/endpoints/{ep}/rotate-secret"),
            &api,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let new = r.body["secret"].as_str().unwrap().to_string();
    assert!(new.starts_with("whsec_") && new != old);
    let until = ms(&r.body["previous_secret_expires_at"]);
    let in_24h = Timestamp::now().plus_seconds(86_400).0;
    assert!((in_24h - until).abs() < 60_000);
    app.license(&api, json!({})).await;
    let got = rx.wait_count(1).await;
    let signatures: Vec<&str> = got[0].header("webhook-signature").split(' ').collect();
    assert_eq!(signatures.len(), 2);
    assert!(verifies(&new, &got[0]));
    assert!(verifies(&old, &got[0]));
    assert!(!verifies(&other_secret(), &got[0]));
}

pub fn other_secret() -> String {
    format!(
        "whsec_{}",
        STANDARD.encode(b"some-other-endpoint-secret-bytes")
    )
}

/// Activations, floating seats (a new lease, not a heartbeat) and billing events.
async fn client_and_billing_events(app: &TestApp) {
    let rx = Receiver::start().await;
    let api = app.account("Client").await;
    endpoint(
        app,
        &api,
        &rx.url("/"),
        json!([
            "activation.created",
            "activation.deleted",
            "seat.checked_out",
            "seat.checked_in",
            "billing_event.applied",
            "billing_event.failed",
            "license.created"
        ]),
    )
    .await;
    let license = app
        .license(
            &api,
            json!({"floating": {"max_seats": 2, "lease_seconds": 600}}),
        )
        .await;
    let key = license["key"].as_str().unwrap();
    let id = license["id"].as_str().unwrap();
    rx.wait_count(1).await;

    let r = app
        .client(
            "/v1/licenses/activate",
            json!({"key": key, "fingerprint": "m-1"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // Activating the same machine again is no change.
    app.client(
        "/v1/licenses/activate",
        json!({"key": key, "fingerprint": "m-1"}),
    )
    .await;
    for _ in 0..2 {
        let r = app
            .client(
                "/v1/licenses/checkout",
                json!({"key": key, "session": "s-1"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = app
        .client(
            "/v1/licenses/checkin",
            json!({"key": key, "session": "s-1"}),
        )
        .await;
    assert_eq!(r.status, 204);
    // Checking in a session that holds no seat frees nothing.
    app.client(
        "/v1/licenses/checkin",
        json!({"key": key, "session": "s-1"}),
    )
    .await;
    let r = app
        .client(
            "/v1/licenses/deactivate",
            json!({"key": key, "fingerprint": "m-1"}),
        )
        .await;
    assert_eq!(r.status, 204);
    rx.wait_count(5).await;
    settle().await;
    // One batch is sent concurrently: arrival order is not guaranteed.
    let mut kinds: Vec<String> = rx.received().iter().map(|r| r.kind().to_string()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "activation.created",
            "activation.deleted",
            "license.created",
            "seat.checked_in",
            "seat.checked_out",
        ]
    );
    let activated = &rx.of_type("activation.created")[0];
    assert_eq!(activated.json["data"]["fingerprint"], "m-1");
    assert_eq!(activated.json["data"]["license_id"], id);
    let out = &rx.of_type("seat.checked_out")[0];
    assert_eq!(out.json["data"]["session"], "s-1");
    assert_eq!(out.json["data"]["seats_used"], 1);
    assert_eq!(
        rx.of_type("seat.checked_in")[0].json["data"]["license_id"],
        id
    );

    // Billing events through the generic provider: applied (a mapped order) and failed
    // (an unmapped one).
    let policy = app.policy(&api, json!({})).await;
    let key_bytes = b"outbound-test-generic-inbound-key";
    let secret = format!("whsec_{}", STANDARD.encode(key_bytes));
    let integration = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": "generic", "secrets": [secret],
                   "mappings": [{"external_id": "pro-lifetime", "policy_id": policy}]}),
        )
        .await;
    assert_eq!(integration.status, 201, "{}", integration.body);
    let path = format!(
        "/v1/webhooks/generic/{}",
        integration.body["id"].as_str().unwrap()
    );
    for (event, line) in [
        ("ord-1-paid", "pro-lifetime"),
        ("ord-2-paid", "unknown-item"),
    ] {
        let body = json!({"event_id": event, "kind": "order_paid",
            "occurred_at": Timestamp::now().to_rfc3339(),
            "customer": {"external_id": "c-1", "email": "ann@example.com"},
            "order": {"external_id": event, "lines": [{"external_id": line, "quantity": 1}]}})
        .to_string();
        let msg = format!("msg_{}", uuid_like());
        let ts = Timestamp::now().millis() / 1000;
        let sig = keygate_billing::standard_webhooks::sign(key_bytes, &msg, ts, body.as_bytes());
        let ts = ts.to_string();
        let r = app
            .send(
                "POST",
                &path,
                None,
                Some(Value::String(body)),
                &[
                    ("webhook-id", &msg),
                    ("webhook-timestamp", &ts),
                    ("webhook-signature", &sig),
                ],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let got = rx
        // The order's license.created is delivered concurrently with its billing event:
        // wait for both rather than count it the moment the billing events are in.
        .wait("billing events and the order's license", |r| {
            r.iter()
                .filter(|r| r.kind().starts_with("billing_event."))
                .count()
                >= 2
                && r.iter().filter(|r| r.kind() == "license.created").count() >= 2
        })
        .await;
    let applied: Vec<&Received> = got
        .iter()
        .filter(|r| r.kind() == "billing_event.applied")
        .collect();
    let failed: Vec<&Received> = got
        .iter()
        .filter(|r| r.kind() == "billing_event.failed")
        .collect();
    assert_eq!((applied.len(), failed.len()), (1, 1));
    assert_eq!(applied[0].json["data"]["provider_event_id"], "ord-1-paid");
    assert_eq!(applied[0].json["data"]["status"], "applied");
    assert_eq!(failed[0].json["data"]["provider_event_id"], "ord-2-paid");
    assert_eq!(failed[0].json["data"]["error"]["code"], "NO_MAPPING");
    // The order's license was announced too (made by the webhook event).
    assert_eq!(rx.of_type("license.created").len(), 2);
}

/// `license.expiring_soon` once per term and `license.expired` once per expiry, over many
/// sweeps of two nodes; a renewal re-arms both; revoked licenses are not announced. Audited as
/// the system.
async fn sweeper_announces_expiries_once(app: &TestApp) {
    let rx = Receiver::start().await;
    let second_node = app.another_node(fast).await;
    let api = app.account("Sweep").await;
    endpoint(
        app,
        &api,
        &rx.url("/"),
        json!(["license.expired", "license.expiring_soon"]),
    )
    .await;
    let policy = app.policy(&api, json!({"duration_seconds": 2})).await;
    let license = app
        .post("/v1/licenses", &api, json!({"policy_id": policy}))
        .await
        .body;
    let id = license["id"].as_str().unwrap().to_string();
    let gone = app
        .post("/v1/licenses", &api, json!({"policy_id": policy}))
        .await
        .body;
    let gone_id = gone["id"].as_str().unwrap().to_string();
    let r = app
        .post(
            &format!("/v1/licenses/{gone_id}/actions/revoke"),
            &api,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    // Within the (default 3-day) lead at once; expired 2 s later.
    rx.wait("expired", |r| {
        r.iter().any(|r| r.kind() == "license.expired")
    })
    .await;
    settle().await;
    let soon = rx.of_type("license.expiring_soon");
    let expired = rx.of_type("license.expired");
    let soon_for_id = soon
        .iter()
        .filter(|r| r.json["data"]["id"] == id.as_str())
        .count();
    assert_eq!(soon_for_id, 1, "expiring_soon once per term");
    assert_eq!(
        expired.len(),
        1,
        "expired once, and never for the revoked license"
    );
    assert_eq!(expired[0].json["data"]["id"], id.as_str());
    assert_eq!(expired[0].json["data"]["expired"], true);

    let audit = app
        .get(&format!("/v1/audit?license_id={id}&actor=system"), &api)
        .await;
    let actions: Vec<&str> = audit.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["license.expired", "license.expiring_soon"]);

    // A renewal (from now, as it had expired) re-arms both.
    let r = app
        .post(&format!("/v1/licenses/{id}/actions/renew"), &api, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    rx.wait("the second expiry", |r| {
        r.iter().filter(|r| r.kind() == "license.expired").count() >= 2
    })
    .await;
    settle().await;
    let soon_for_id = rx
        .of_type("license.expiring_soon")
        .iter()
        .filter(|r| r.json["data"]["id"] == id.as_str())
        .count();
    assert_eq!(soon_for_id, 2);
    assert_eq!(rx.of_type("license.expired").len(), 2);
    second_node.stop().await;
}

/// Another account's endpoint is not found, whatever the route.
async fn endpoints_are_per_account(app: &TestApp) {
    let rx = Receiver::start().await;
    let a = app.account("A").await;
    let b = app.account("B").await;
    let (ep, _) = endpoint(app, &a, &rx.url("/"), json!(["*"])).await;
    app.license(&a, json!({})).await;
    let d = wait_delivery(app, &a, &ep, |d| d["status"] == "succeeded").await;
    let delivery = d["id"].as_str().unwrap();
    for (method, path) in [
        ("GET", format!("/v1/endpoints/{ep}")),
        ("PATCH", format!("/v1/endpoints/{ep}")),
        ("DELETE", format!("/v1/endpoints/{ep}")),
        ("POST", format!("/v1/endpoints/{ep}/rotate-secret")),
        ("GET", format!("/v1/endpoints/{ep}/deliveries")),
        (
            "POST",
            format!("/v1/endpoints/{ep}/deliveries/{delivery}/retry"),
        ),
    ] {
        let body = (method != "GET" && method != "DELETE").then(|| json!({}));
        let r = app.send(method, &path, Some(&b), body, &[]).await;
        assert_eq!((r.status, r.code()), (404, "NOT_FOUND"), "{method} {path}");
    }
    assert_eq!(app.get("/v1/endpoints", &b).await.body["data"], json!([]));
    // B's licenses do not reach A's endpoint.
    app.license(&b, json!({})).await;
    settle().await;
    assert_eq!(rx.received().len(), 1);
    // Deleting takes the endpoint and its log away.
    let r = app
        .send(
            "DELETE",
            &format!("/v1/endpoints/{ep}"),
            Some(&a),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 204);
    let r = app.get(&format!("/v1/endpoints/{ep}/deliveries"), &a).await;
    assert_eq!(r.status, 404);
    let unauth = app.send("GET", "/v1/endpoints", None, None, &[]).await;
    assert_eq!(unauth.status, 401);
}

/// `GET /v1/audit` filters by license, customer, actor (id or type) and time, per account.
async fn audit_filters(app: &TestApp) {
    let api = app.account("Audit").await;
    let other = app.account("Other").await;
    let policy = app.policy(&api, json!({})).await;
    let mut customers = Vec::new();
    for email in ["a@example.com", "b@example.com"] {
        let c = app
            .post("/v1/customers", &api, json!({"email": email}))
            .await;
        customers.push(c.body["id"].as_str().unwrap().to_string());
    }
    let l1 = app
        .post(
            "/v1/licenses",
            &api,
            json!({"policy_id": policy, "customer_id": customers[0]}),
        )
        .await
        .body;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = Timestamp::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let l2 = app
        .post(
            "/v1/licenses",
            &api,
            json!({"policy_id": policy, "customer_id": customers[1]}),
        )
        .await
        .body;
    let l1_id = l1["id"].as_str().unwrap();
    app.post(
        &format!("/v1/licenses/{l1_id}/actions/suspend"),
        &api,
        json!({}),
    )
    .await;
    let list = |q: String| {
        let api = api.clone();
        async move {
            let r = app.get(&format!("/v1/audit{q}"), &api).await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["action"].as_str().unwrap().to_string(),
                        e["object_id"].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    // A customer's own creation concerns it too.
    let by_customer = list(format!("?customer_id={}", customers[0])).await;
    assert_eq!(
        by_customer,
        [
            ("license.suspended".to_string(), l1_id.to_string()),
            ("license.created".to_string(), l1_id.to_string()),
            ("customer.created".to_string(), customers[0].clone()),
        ]
    );
    let l2_id = l2["id"].as_str().unwrap().to_string();
    let by_customer2 = list(format!("?customer_id={}", customers[1])).await;
    assert_eq!(
        by_customer2,
        [
            ("license.created".to_string(), l2_id),
            ("customer.created".to_string(), customers[1].clone()),
        ]
    );
    let t = between.to_rfc3339();
    let before = list(format!("?until={t}")).await;
    let before: Vec<&str> = before.iter().map(|(a, _)| a.as_str()).collect();
    // Account, customers, policy, product and the first license were made before `between`.
    assert!(before.contains(&"license.created") && !before.contains(&"license.suspended"));
    let after = list(format!("?since={t}")).await;
    assert_eq!(
        after.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
        ["license.suspended", "license.created"]
    );
    let window = list(format!("?since={t}&license_id={l1_id}")).await;
    assert_eq!(window.len(), 1);
    let by_type = list("?actor=operator".to_string()).await;
    assert_eq!(
        by_type.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
        ["account.created"]
    );
    let by_keys = list("?actor=api_key&limit=200".to_string()).await;
    assert!(by_keys.iter().all(|(a, _)| a != "account.created"));
    assert_eq!(
        by_keys.len(),
        7,
        "product, policy, 2 customers, 2 licenses, a suspension: {by_keys:?}"
    );
    // Another account sees none of it.
    let r = app
        .get(&format!("/v1/audit?license_id={l1_id}"), &other)
        .await;
    assert_eq!(r.body["data"], json!([]));
    // Pagination walks the whole log once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/v1/audit?limit=3&cursor={c}"),
            None => "/v1/audit?limit=3".to_string(),
        };
        let r = app.get(&q, &api).await;
        seen.extend(
            r.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].clone()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let all = app.get("/v1/audit?limit=200", &api).await;
    assert_eq!(seen.len(), all.body["data"].as_array().unwrap().len());
}

/// The outbox is durable: a change made while no worker runs (the process died right after the
/// commit) is delivered by the next process.
async fn outbox_survives_a_kill(app: TestApp) -> TestApp {
    let rx = Receiver::start().await;
    let app = app.restart_with(without_worker).await;
    let api = app.account("Durable").await;
    let (ep, secret) = endpoint(&app, &api, &rx.url("/"), json!(["license.created"])).await;
    let license = app.license(&api, json!({})).await;
    settle().await;
    assert!(rx.received().is_empty(), "no worker, nothing sent");
    let pending = deliveries(&app, &api, &ep, "?status=pending").await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["attempts"], 0);
    let app = app.restart_with(fast).await;
    let got = rx.wait_count(1).await;
    assert_eq!(got[0].json["data"]["id"], license["id"]);
    assert_eq!(
        got[0].header("webhook-id"),
        pending[0]["id"].as_str().unwrap()
    );
    assert!(verifies(&secret, &got[0]));
    wait_delivery(&app, &api, &ep, |d| d["status"] == "succeeded").await;
    app
}

/// By default outbound requests refuse private, loopback and link-local addresses: at creation
/// (a literal address), and at delivery (what a name resolves to then).
async fn private_addresses_are_refused(app: TestApp) -> TestApp {
    let rx = Receiver::start().await;
    // Made while allowed (and no worker), then delivered by a process that does not allow it.
    let app = app.restart_with(without_worker).await;
    let api = app.account("Private").await;
    let (ep, _) = endpoint(&app, &api, &rx.url("/"), json!(["*"])).await;
    app.license(&api, json!({})).await;
    let app = app
        .restart_with(|c| {
            fast(c);
            c.outbound_allow_private = false;
        })
        .await;
    for (url, code) in [
        ("http://127.0.0.1:9/hook", "PRIVATE_ADDRESS"),
        ("http://10.0.0.8/hook", "PRIVATE_ADDRESS"),
        ("http://169.254.169.254/latest/meta-data", "PRIVATE_ADDRESS"),
        ("http://[::1]/hook", "PRIVATE_ADDRESS"),
        ("http://[::ffff:192.168.0.1]/hook", "PRIVATE_ADDRESS"),
        ("http://localhost:8080/hook", "PRIVATE_ADDRESS"),
        ("ftp://example.com/hook", "INVALID_URL"),
        ("https://user:pass@example.com/hook", "INVALID_URL"),
        ("not a url", "INVALID_URL"),
    ] {
        let r = app
            .post(
                "/v1/endpoints",
                &api,
                json!({"url": url, "event_types": ["*"]}),
            )
            .await;
        assert_eq!((r.status, r.code()), (422, code), "{url}: {}", r.body);
    }
    let r = app
        .patch(
            &format!("/v1/endpoints/{ep}"),
            &api,
            json!({"url": "http://192.168.1.1/"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "PRIVATE_ADDRESS"));
    let r = app
        .post(
            "/v1/endpoints",
            &api,
            json!({"url": "https://hooks.example.com/k", "event_types": ["license.nope"]}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "INVALID_FIELD"));
    let r = app
        .post(
            "/v1/endpoints",
            &api,
            json!({"url": "https://hooks.example.com/k", "event_types": []}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "INVALID_FIELD"));
    let r = app
        .post(
            "/v1/endpoints",
            &api,
            json!({"url": "https://hooks.example.com/k"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "INVALID_BODY"));

    let d = wait_delivery(&app, &api, &ep, |d| d["attempts"].as_i64() >= Some(1)).await;
    let error = d["attempt_log"][0]["error"].as_str().unwrap();
    assert!(error.starts_with("PRIVATE_ADDRESS"), "{error}");
    assert!(d["last_status"].is_null());
    settle().await;
    assert!(
        rx.received().is_empty(),
        "nothing reached the loopback receiver"
    );
    app
}

/// Several nodes on one database, each with a worker: every message is delivered exactly once.
async fn several_workers_deliver_each_message_once(app: TestApp) -> TestApp {
    const N: usize = 50;
    let rx = Receiver::start().await;
    let app = app.restart_with(without_worker).await;
    let api = app.account("Nodes").await;
    let (ep, _) = endpoint(&app, &api, &rx.url("/"), json!(["license.created"])).await;
    let policy = app.policy(&api, json!({})).await;
    for _ in 0..N {
        let r = app
            .post("/v1/licenses", &api, json!({"policy_id": policy}))
            .await;
        assert_eq!(r.status, 201);
    }
    // Three nodes start their workers on the same outbox at once.
    let nodes = vec![
        app.another_node(fast).await,
        app.another_node(fast).await,
        app.another_node(fast).await,
    ];
    rx.wait_count(N).await;
    settle().await;
    let got = rx.received();
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in &got {
        *per_id
            .entry(r.header("webhook-id").to_string())
            .or_default() += 1;
    }
    assert_eq!(per_id.len(), N, "every message arrived");
    assert!(per_id.values().all(|&n| n == 1), "none twice: {per_id:?}");
    assert_eq!(got.len(), N);
    let log = app
        .get(
            &format!("/v1/endpoints/{ep}/deliveries?status=succeeded&limit=200"),
            &api,
        )
        .await;
    assert_eq!(log.body["data"].as_array().unwrap().len(), N);
    assert!(
        log.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["attempts"] == 1)
    );
    for node in nodes {
        node.stop().await;
    }
    app
}

/// A receiver that never answers: the attempt ends at the configured timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_time_out() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let app = TestApp::sqlite_with(|c| {
        fast(c);
        c.outbound_timeout_seconds = 0.5;
        c.outbound_retry_schedule = RetrySchedule::parse("0").unwrap();
    })
    .await;
    let api = app.account("Slow").await;
    let (ep, _) = endpoint(&app, &api, &format!("http://{addr}/"), json!(["*"])).await;
    app.license(&api, json!({})).await;
    let d = wait_delivery(&app, &api, &ep, |d| d["status"] == "failed").await;
    let error = d["last_error"].as_str().unwrap();
    assert!(error.starts_with("TIMEOUT"), "{error}");
    let took = d["attempt_log"][0]["duration_ms"].as_i64().unwrap();
    assert!(took < 5_000, "bounded by the timeout: {took} ms");
    hold.abort();
    app.finish().await;
}

/// A secret shown once is not kept in clear anywhere: an `Idempotency-Key` replay of the
/// creation answers the same secret from a sealed copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_creation_keeps_the_secret_sealed() {
    for app in [
        TestApp::sqlite_with(|c| {
            fast(c);
            c.master_key = Some("Sz4e/7RTKRLCnxEiUTLj/akWMg2xSgosEz/jKAxGxn0=".into());
        })
        .await,
        TestApp::postgres_with(|c| {
            fast(c);
            c.master_key = Some("Sz4e/7RTKRLCnxEiUTLj/akWMg2xSgosEz/jKAxGxn0=".into());
        })
        .await,
    ] {
        let api = app.account("Sealed").await;
        let body = json!({"url": "https://hooks.example.com/k", "event_types": ["*"]});
        let headers = [("idempotency-key", "endpoint-1")];
        let first = app
            .send(
                "POST",
                "/v1/endpoints",
                Some(&api),
                Some(body.clone()),
                &headers,
            )
            .await;
        assert_eq!(first.status, 201, "{}", first.body);
        let secret = first.body["secret"].as_str().unwrap().to_string();
        let again = app
            .send("POST", "/v1/endpoints", Some(&api), Some(body), &headers)
            .await;
        assert_eq!(again.status, 201);
        assert_eq!(again.headers["idempotent-replayed"], "true");
        assert_eq!(again.body["id"], first.body["id"]);
        assert_eq!(again.body["secret"], secret.as_str());
        let store = app.server.state.store.clone();
        let who = store.authenticate(&api).await.unwrap().unwrap();
        let stored = store
            .idempotent_response(&who.account_id, "endpoint-1")
            .await
            .unwrap()
            .unwrap();
        assert!(!stored.body.contains(&secret) && !stored.body.contains("whsec_"));
        assert_eq!(
            app.get("/v1/endpoints", &api).await.body["data"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        app.finish().await;
    }
}

/// Every manual license change announces its event, with the license after the change.
async fn license_lifecycle_events(app: &TestApp) {
    let rx = Receiver::start().await;
    let api = app.account("Lifecycle").await;
    endpoint(app, &api, &rx.url("/"), json!(["*"])).await;
    let license = app
        .license(&api, json!({"duration_seconds": 86_400 * 30}))
        .await;
    let id = license["id"].as_str().unwrap();
    let path = format!("/v1/licenses/{id}");
    let r = app
        .patch(&path, &api, json!({"metadata": {"crm": "42"}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for (action, body) in [
        ("suspend", json!({})),
        ("reinstate", json!({})),
        ("extend", json!({"seconds": 60})),
        ("renew", json!({})),
        ("revoke", json!({})),
    ] {
        let r = app
            .post(&format!("{path}/actions/{action}"), &api, body)
            .await;
        assert_eq!(r.status, 200, "{action}: {}", r.body);
    }
    // A refused change announces nothing.
    let r = app
        .post(&format!("{path}/actions/suspend"), &api, json!({}))
        .await;
    assert_eq!(r.status, 409);
    rx.wait_count(7).await;
    settle().await;
    let got = rx.received();
    let mut kinds: Vec<&str> = got.iter().map(|r| r.kind()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "license.created",
            "license.reinstated",
            "license.renewed",
            "license.renewed",
            "license.revoked",
            "license.suspended",
            "license.updated",
        ]
    );
    let by = |kind: &str| got.iter().find(|r| r.kind() == kind).unwrap().json["data"].clone();
    assert_eq!(by("license.updated")["metadata"]["crm"], "42");
    assert_eq!(by("license.suspended")["status"], "suspended");
    assert_eq!(by("license.reinstated")["status"], "active");
    assert_eq!(by("license.revoked")["status"], "revoked");
    assert!(got.iter().all(|r| r.json["data"]["id"] == id));
}

/// https goes through rustls: a plain-HTTP server behind an https URL fails the handshake, and
/// the log says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_goes_through_rustls() {
    let rx = Receiver::start().await;
    let app = TestApp::sqlite_with(|c| {
        fast(c);
        c.outbound_retry_schedule = RetrySchedule::parse("0").unwrap();
    })
    .await;
    let api = app.account("Tls").await;
    let url = rx.url("/").replace("http://", "https://");
    let (ep, _) = endpoint(&app, &api, &url, json!(["*"])).await;
    app.license(&api, json!({})).await;
    let d = wait_delivery(&app, &api, &ep, |d| d["status"] == "failed").await;
    let error = d["last_error"].as_str().unwrap();
    assert!(error.starts_with("TLS_FAILED"), "{error}");
    assert!(rx.received().is_empty());
    app.finish().await;
}

/// An idle worker is told of a local change at once: the delivery does not wait for the next
/// poll (two minutes here). SQLite: the worker's claim queues behind the enqueuing transaction
/// on the one writer connection, so it always sees the delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_is_delivered_before_the_next_poll() {
    let rx = Receiver::start().await;
    let app = TestApp::sqlite_with(|c| {
        fast(c);
        c.outbound_poll_ms = 120_000;
    })
    .await;
    // The worker's first look (at start) has found nothing; it now sleeps for two minutes.
    settle().await;
    let api = app.account("Prompt").await;
    let (_, secret) = endpoint(&app, &api, &rx.url("/"), json!(["license.created"])).await;
    let started = Instant::now();
    let license = app.license(&api, json!({})).await;
    let got = rx.wait_count(1).await;
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(got[0].json["data"]["id"], license["id"]);
    assert!(verifies(&secret, &got[0]));
    app.finish().await;
}

/// An event held because the vendor must configure something (a Stripe Checkout sale whose
/// line items need the API, with no API credentials) is announced `billing_event.failed`
/// with the code that says what, as an event that failed applying is.
async fn events_held_for_configuration_are_announced_failed(app: &TestApp) {
    let rx = Receiver::start().await;
    let api = app.account("Held").await;
    endpoint(app, &api, &rx.url("/"), json!(["billing_event.failed"])).await;
    let policy = app.policy(&api, json!({"max_activations": 1})).await;
    let integration = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": "stripe", "secrets": ["whsec_test_secret"],
                   "mappings": [{"external_id": "price_lifetime", "policy_id": policy}]}),
        )
        .await;
    assert_eq!(integration.status, 201, "{}", integration.body);
    let r = crate::platform_api::deliver(
        app,
        &integration.body,
        &crate::platform_api::checkout("evt_held", "cs_test_one", "pi_one"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let event = crate::platform_api::event_of(app, &api, &r).await;
    assert_eq!(event["status"], "failed", "{event}");
    let got = rx
        .wait("billing_event.failed", |r| {
            r.iter().any(|r| r.kind() == "billing_event.failed")
        })
        .await;
    let failed = got
        .iter()
        .find(|r| r.kind() == "billing_event.failed")
        .unwrap();
    assert_eq!(failed.json["data"]["id"], event["id"], "{}", failed.body);
    assert_eq!(failed.json["data"]["provider"], "stripe");
    assert_eq!(failed.json["data"]["provider_event_id"], "evt_held");
    assert_eq!(
        failed.json["data"]["error"]["code"], "API_CREDENTIALS_REQUIRED",
        "{}",
        failed.body
    );
}
