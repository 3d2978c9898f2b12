//! Platforms whose notifications are completed from their API (Recurly, Authorize.Net), end to
//! end on both engines through the kit's stand-in: a fetch that fails leaves the event
//! `pending` and one worker pass completes it once the API answers; a replay storm (every
//! delivery three times, shuffled) ends in the state the in-order lifecycle ends in.
use crate::harness::TestApp;
use crate::platforms::{deliver, kit_integration, only_license};
use keygate_billing::testkit::{self, Kit};
use serde_json::{Value, json};

/// Both engines, private addresses allowed (the stand-in listens on loopback).
macro_rules! with_stand_in {
    ($($name:ident),*) => {$(
        mod $name {
            use crate::harness::TestApp;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = TestApp::sqlite_with(|c| c.outbound_allow_private = true).await;
                super::$name(&app).await;
                app.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let app = TestApp::postgres_with(|c| c.outbound_allow_private = true).await;
                super::$name(&app).await;
                app.finish().await;
            }
        }
    )*};
}

with_stand_in!(
    a_failed_fetch_stays_pending_until_the_worker_completes_it,
    a_replay_storm_ends_in_the_in_order_state
);

const THIN: [&str; 2] = ["recurly", "authorizenet"];

fn policy() -> Value {
    json!({"expiry": "subscription", "max_activations": 1, "seats_from_quantity": true})
}

async fn events(app: &TestApp, api: &str) -> Vec<Value> {
    app.get("/v1/events?limit=100", api).await.body["data"]
        .as_array()
        .unwrap()
        .clone()
}

async fn licenses(app: &TestApp, api: &str) -> Vec<Value> {
    app.get("/v1/licenses", api).await.body["data"]
        .as_array()
        .unwrap()
        .clone()
}

async fn a_failed_fetch_stays_pending_until_the_worker_completes_it(app: &TestApp) {
    for name in THIN {
        let provider = keygate_billing::provider(name).unwrap();
        let kit = testkit::kit(provider);
        let setup = kit_integration(app, provider, policy()).await;
        let stand_in = setup.stand_in.as_ref().unwrap();
        let start = setup.stage.lock().unwrap().start;
        let steps = kit.steps(start, start).unwrap();
        // The platform's API is down (5xx) for longer than the tries of one apply.
        stand_in.fail_next(1000);
        for body in &steps.created {
            let r = deliver(app, &setup.path, kit, body).await;
            assert_eq!(r.status, 200, "{name}: {}", r.body);
            assert_eq!(
                r.body["events"][0]["status"], "pending",
                "{name}: {}",
                r.body
            );
        }
        let held = events(app, &setup.api).await;
        assert_eq!(held.len(), steps.created.len(), "{name}");
        for e in &held {
            assert_eq!(e["status"], "pending", "{name}: {e}");
            let id = e["id"].as_str().unwrap();
            let one = app.get(&format!("/v1/events/{id}"), &setup.api).await.body;
            assert_eq!(one["error"]["code"], "API_FETCH_FAILED", "{name}: {one}");
        }
        assert!(licenses(app, &setup.api).await.is_empty(), "{name}");
        let tried = stand_in.seen().len();
        assert!(
            tried >= 3 * steps.created.len(),
            "{name}: retried ({tried})"
        );
        // A worker pass while it is still down changes nothing.
        keygate_server::gateway::work_once(&app.server.state)
            .await
            .unwrap();
        assert!(licenses(app, &setup.api).await.is_empty(), "{name}");
        // The API is back: one pass completes and applies every held event.
        stand_in.fail_next(0);
        keygate_server::gateway::work_once(&app.server.state)
            .await
            .unwrap();
        for e in events(app, &setup.api).await {
            assert_eq!(e["status"], "applied", "{name}: {e}");
        }
        let license = only_license(app, &setup.api).await;
        assert_eq!(license["status"], "active", "{name}: {license}");
        assert_eq!(
            crate::platforms::t(&license["expires_at"]),
            start + testkit::MONTH,
            "{name}: {license}"
        );
        // The retried deliveries are duplicates; nothing more is asked of the API.
        let asked = stand_in.seen().len();
        for body in &steps.created {
            let r = deliver(app, &setup.path, kit, body).await;
            assert_eq!(r.body["events"][0]["duplicate"], true, "{name}: {}", r.body);
        }
        assert_eq!(stand_in.seen().len(), asked, "{name}");
    }
}

/// A deterministic shuffle (no extra dependency).
fn shuffled<T: Clone>(items: &[T], mut seed: u64) -> Vec<T> {
    let mut out = items.to_vec();
    for i in (1..out.len()).rev() {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        out.swap(i, (seed >> 33) as usize % (i + 1));
    }
    out
}

/// What the end state is made of: the license and the subscription as Keygate keeps them.
async fn end_state(app: &TestApp, api: &str) -> Value {
    let license = only_license(app, api).await;
    let subs = app.get("/v1/subscriptions", api).await.body["data"].clone();
    let sub = &subs[0];
    json!({"license_status": license["status"], "expires_at": license["expires_at"],
           "max_activations": license["max_activations"], "policy": license["policy_id"].is_string(),
           "subscription": sub["external_id"], "status": sub["status"],
           "current_period_end": sub["current_period_end"],
           "cancel_at_period_end": sub["cancel_at_period_end"]})
}

async fn a_replay_storm_ends_in_the_in_order_state(app: &TestApp) {
    for name in THIN {
        let provider = keygate_billing::provider(name).unwrap();
        let kit: &dyn Kit = testkit::kit(provider);

        // In order, the stand-in following each step.
        let ordered = kit_integration(app, provider, policy()).await;
        let start = ordered.stage.lock().unwrap().start;
        let steps = kit.steps(start, start + 5).unwrap();
        for (step, bodies) in steps.all() {
            ordered.stage.lock().unwrap().failed_at = start + 5;
            ordered.stage.lock().unwrap().step = step;
            for body in bodies {
                let r = deliver(app, &ordered.path, kit, body).await;
                assert_eq!(r.status, 200, "{name}: {step}: {}", r.body);
            }
        }
        let expected = end_state(app, &ordered.api).await;
        assert_eq!(expected["license_status"], "revoked", "{name}: {expected}");

        // Every delivery three times, shuffled, the API answering as it stands at the end.
        let storm = kit_integration(app, provider, policy()).await;
        {
            let mut stage = storm.stage.lock().unwrap();
            stage.start = start;
            stage.failed_at = start + 5;
            stage.step = "refunded";
        }
        let all: Vec<Value> = steps
            .all()
            .iter()
            .flat_map(|(_, bodies)| bodies.iter().cloned())
            .collect();
        let thrice: Vec<Value> = all.iter().chain(&all).chain(&all).cloned().collect();
        for body in shuffled(&thrice, 0x5eed ^ name.len() as u64) {
            let r = deliver(app, &storm.path, kit, &body).await;
            assert_eq!(r.status, 200, "{name}: {}", r.body);
            for e in r.body["events"].as_array().unwrap() {
                assert!(
                    e["status"] == "applied" || e["duplicate"] == true,
                    "{name}: {}",
                    r.body
                );
            }
        }
        assert_eq!(end_state(app, &storm.api).await, expected, "{name}");
        let stored = events(app, &storm.api).await;
        assert_eq!(
            stored.len(),
            all.len(),
            "{name}: one inbox row per notification"
        );
        assert!(
            stored
                .iter()
                .all(|e| e["status"] == "applied" || e["status"] == "ignored"),
            "{name}: {stored:?}"
        );
    }
}
