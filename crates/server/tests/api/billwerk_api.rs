//! billwerk+ Optimize end to end, beside the registry lifecycle: the API down leaves the event
//! `pending` and the worker completes it; a replay storm changes nothing; no API key fails
//! the event clearly; `keygate simulate billwerk` delivers signed events the server accepts.
use crate::harness::TestApp;
use crate::platforms::{deliver, kit_integration};
use keygate_billing::provider;
use keygate_billing::testkit::{self, MONTH};
use keygate_domain::Timestamp;
use serde_json::{Value, json};
use std::time::Duration;

mod billwerk_fetch_failures_and_replay_storm {
    use crate::harness::TestApp;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = TestApp::sqlite_with(|c| c.outbound_allow_private = true).await;
        super::billwerk_fetch_failures_and_replay_storm(&app).await;
        app.finish().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let app = TestApp::postgres_with(|c| c.outbound_allow_private = true).await;
        super::billwerk_fetch_failures_and_replay_storm(&app).await;
        app.finish().await;
    }
}

fn t(v: &Value) -> i64 {
    Timestamp::parse_rfc3339(v.as_str().unwrap())
        .unwrap()
        .millis()
        / 1000
}

async fn licenses(app: &TestApp, api: &str) -> Vec<Value> {
    app.get("/v1/licenses", api).await.body["data"]
        .as_array()
        .unwrap()
        .clone()
}

async fn status_of(app: &TestApp, api: &str, id: &str) -> Value {
    app.get(&format!("/v1/events/{id}"), api).await.body
}

async fn billwerk_fetch_failures_and_replay_storm(app: &TestApp) {
    let billwerk = provider("billwerk").unwrap();
    let kit = testkit::kit(billwerk);
    let setup = kit_integration(app, billwerk, json!({"expiry": "subscription"})).await;
    let (api, path) = (setup.api.as_str(), setup.path.as_str());
    let stand_in = setup.stand_in.as_ref().unwrap();
    let start = setup.stage.lock().unwrap().start;
    let steps = kit.steps(start, start).unwrap();

    // billwerk's API down (every try of the first round answered 503): stored, answered 200
    // (billwerk's per-customer queue is not held), `pending`, nothing issued.
    stand_in.fail_next(3);
    let r = deliver(app, path, kit, &steps.created[0]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["events"][0]["status"], "pending", "{}", r.body);
    let id = r.body["events"][0]["id"].as_str().unwrap().to_string();
    let event = status_of(app, api, &id).await;
    assert_eq!(event["error"]["code"], "API_FETCH_FAILED", "{event}");
    assert!(licenses(app, api).await.is_empty());
    assert_eq!(stand_in.seen().len(), 3, "three tries of GET /v1/event/...");
    // The API answers again: the worker completes and applies it.
    let mut event = Value::Null;
    for _ in 0..80 {
        event = status_of(app, api, &id).await;
        if event["status"] == "applied" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(event["status"], "applied", "{event}");
    let seen: Vec<String> = stand_in
        .seen()
        .iter()
        .map(|s| format!("{} {}", s.method, s.path_and_query))
        .collect();
    assert!(
        seen.iter()
            .any(|s| s.starts_with("GET /v1/event/ev-created"))
            && seen.iter().any(|s| s == "GET /v1/subscription/sub-0001")
            && seen.iter().any(|s| s == "GET /v1/customer/cust-0001"),
        "{seen:?}"
    );
    let list = licenses(app, api).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(t(&list[0]["expires_at"]), start + MONTH);

    // A replay storm: the same delivery 25 times at once: one event, the rest duplicates.
    let storm = (0..25).map(|_| deliver(app, path, kit, &steps.created[0]));
    let answers = futures_join(storm.collect()).await;
    assert!(answers.iter().all(|r| r.status == 200));
    assert!(
        answers
            .iter()
            .all(|r| r.body["events"][0]["duplicate"] == true),
        "{:?}",
        answers.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    // And a new event delivered 10 times at once: applied once.
    *setup.stage.lock().unwrap() = testkit::Stage {
        start,
        failed_at: start,
        step: "renewed",
    };
    let storm = (0..10).map(|_| deliver(app, path, kit, &steps.renewed[0]));
    let answers = futures_join(storm.collect()).await;
    let fresh = answers
        .iter()
        .filter(|r| r.body["events"][0]["duplicate"] == false)
        .count();
    assert_eq!(
        fresh,
        1,
        "{:?}",
        answers.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let list = licenses(app, api).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(t(&list[0]["expires_at"]), start + 2 * MONTH, "{}", list[0]);

    // No API key: the event fails with what to configure, nothing is asked or issued.
    let other = app.account("Other").await;
    let policy = app.policy(&other, json!({"expiry": "subscription"})).await;
    let created = app
        .post(
            "/v1/integrations",
            &other,
            json!({"provider": "billwerk", "secrets": kit.settings().secrets,
                   "options": {"api_base_url": stand_in.base_url},
                   "mappings": [{"external_id": kit.ids().mapping, "policy_id": policy}]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let other_path = format!(
        "/v1/webhooks/billwerk/{}",
        created.body["id"].as_str().unwrap()
    );
    let before = stand_in.seen().len();
    let r = deliver(app, &other_path, kit, &steps.created[0]).await;
    assert_eq!(r.body["events"][0]["status"], "failed", "{}", r.body);
    let id = r.body["events"][0]["id"].as_str().unwrap();
    let event = status_of(app, &other, id).await;
    assert_eq!(
        event["error"]["code"], "API_CREDENTIALS_REQUIRED",
        "{event}"
    );
    assert_eq!(stand_in.seen().len(), before);
    assert!(licenses(app, &other).await.is_empty());

    // A forged body (signature of another delivery): refused, nothing stored.
    let mut forged = steps.cancelled[0].clone();
    forged["id"] = json!("not-the-signed-id");
    let body = {
        let settings = kit.settings().secrets();
        let mut signed: Value = serde_json::from_slice(
            &kit.deliver(&settings, &steps.cancelled[0], Timestamp::now())
                .unwrap()
                .body,
        )
        .unwrap();
        signed["id"] = forged["id"].clone();
        signed.to_string()
    };
    let r = app
        .send(
            "POST",
            path,
            None,
            Some(Value::String(body)),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (401, "SIGNATURE_INVALID"),
        "{}",
        r.body
    );
}

/// Runs the futures concurrently, in order of the answers' index.
async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut handles = Vec::new();
    for future in futures {
        handles.push(Box::pin(future));
    }
    let mut out = Vec::new();
    // Poll all at once: each send is independent; tokio drives them on the runtime.
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    for r in results {
        out.push(r.unwrap());
    }
    out
}
