//! Gumroad and Paddle Classic end to end, on both engines, beyond the registry lifecycle: a
//! replay storm (every delivery three times, shuffled, ends in the state of the in-order
//! run), Gumroad's own license keys kept, its URL token and API confirmation, Paddle Classic's
//! signature through HTTP.
use crate::harness::TestApp;
use crate::platforms::{deliver, kit_integration};
use keygate_billing::testkit::{self, Stage};
use keygate_billing::{Provider, Timestamp};
use serde_json::{Value, json};

mod replay_storm {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = crate::harness::TestApp::sqlite_with(|c| c.outbound_allow_private = true).await;
        super::replay_storm(&app).await;
        app.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let app = crate::harness::TestApp::postgres_with(|c| c.outbound_allow_private = true).await;
        super::replay_storm(&app).await;
        app.finish().await;
    }
}

mod gumroad_keys_tokens_and_confirmation {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = crate::harness::TestApp::sqlite_with(|c| c.outbound_allow_private = true).await;
        super::gumroad_keys_tokens_and_confirmation(&app).await;
        app.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let app = crate::harness::TestApp::postgres_with(|c| c.outbound_allow_private = true).await;
        super::gumroad_keys_tokens_and_confirmation(&app).await;
        app.finish().await;
    }
}

crate::on_both_engines!(paddle_classic_signature_over_http);

fn now_s() -> i64 {
    Timestamp::now().millis() / 1000
}

fn provider(name: &str) -> &'static dyn Provider {
    keygate_billing::provider(name).unwrap()
}

#[allow(non_snake_case)]
fn subscription_policy() -> Value {
    json!({"expiry": "subscription", "max_activations": 1, "seats_from_quantity": true})
}

/// The one license of an account and how it validates.
async fn state(app: &TestApp, api: &str) -> Value {
    let list = app.get("/v1/licenses", api).await;
    let data = list.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "exactly one license: {}", list.body);
    let license = &data[0];
    let code = app.validate(json!({"key": license["key"]})).await;
    let subs = app.get("/v1/subscriptions", api).await;
    json!({
        "status": license["status"], "expires_at": license["expires_at"],
        "max_activations": license["max_activations"], "code": code.body["code"],
        "subscription": subs.body["data"][0]["status"],
        "period_end": subs.body["data"][0]["current_period_end"],
    })
}

/// A deterministic shuffle (xorshift), so a failure replays.
fn shuffled<T>(mut items: Vec<T>, mut seed: u64) -> Vec<T> {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    items
}

async fn replay_storm(app: &TestApp) {
    for name in ["gumroad", "paddle_classic"] {
        let provider = provider(name);
        let kit = testkit::kit(provider);
        let now = now_s();
        let steps = kit.steps(now, now).unwrap();
        let bodies: Vec<Value> = steps
            .all()
            .into_iter()
            .filter(|(step, _)| *step != "refunded")
            .flat_map(|(_, bodies)| bodies.to_vec())
            .collect();
        let in_order = kit_integration(app, provider, subscription_policy()).await;
        let storm = kit_integration(app, provider, subscription_policy()).await;
        for setup in [&in_order, &storm] {
            // The platform's API already knows everything up to the cancellation.
            *setup.stage.lock().unwrap() = Stage {
                start: now,
                failed_at: now,
                step: "cancelled",
            };
        }
        for body in &bodies {
            let r = deliver(app, &in_order.path, kit, body).await;
            assert_eq!(r.status, 200, "{name}: {}", r.body);
            assert!(
                r.body["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|e| e["status"] == "applied"),
                "{name}: {}",
                r.body
            );
        }
        let expected = state(app, &in_order.api).await;
        let tripled: Vec<&Value> = bodies.iter().chain(&bodies).chain(&bodies).collect();
        for body in shuffled(tripled, 0x9e37_79b9_7f4a_7c15 ^ now as u64) {
            let r = deliver(app, &storm.path, kit, body).await;
            assert_eq!(r.status, 200, "{name}: {}", r.body);
            for e in r.body["events"].as_array().unwrap() {
                assert!(
                    e["status"] == "applied" || e["duplicate"] == true,
                    "{name}: {}",
                    r.body
                );
            }
        }
        assert_eq!(state(app, &storm.api).await, expected, "{name}: storm");
        // The cancellation is in: valid until the date the platform names, seats as changed.
        assert_eq!(expected["code"], "VALID", "{name}: {expected}");
        assert_eq!(expected["max_activations"], 5, "{name}: {expected}");
        let ends = Timestamp::parse_rfc3339(expected["expires_at"].as_str().unwrap()).unwrap();
        assert_eq!(
            ends.millis() / 1000,
            steps.cancel_ends_at,
            "{name}: {expected}"
        );
        let failed = app.get("/v1/events?status=failed", &storm.api).await;
        assert_eq!(
            failed.body["data"].as_array().unwrap().len(),
            0,
            "{name}: {}",
            failed.body
        );

        // The refund, stormed too: revoked in both.
        for setup in [&in_order, &storm] {
            *setup.stage.lock().unwrap() = Stage {
                start: now,
                failed_at: now,
                step: "refunded",
            };
            for _ in 0..3 {
                for body in &steps.refunded {
                    let r = deliver(app, &setup.path, kit, body).await;
                    assert_eq!(r.status, 200, "{name}: {}", r.body);
                }
            }
            assert_eq!(state(app, &setup.api).await["code"], "REVOKED", "{name}");
        }
    }
}

async fn gumroad_keys_tokens_and_confirmation(app: &TestApp) {
    let provider = provider("gumroad");
    let kit = testkit::kit(provider);
    let now = now_s();
    let order = kit.order_steps(now).unwrap();
    let policy = json!({"max_activations": 1, "seats_from_quantity": true});
    let setup = kit_integration(app, provider, policy.clone()).await;
    let at = |step: &'static str| {
        *setup.stage.lock().unwrap() = Stage {
            start: now,
            failed_at: now,
            step,
        };
    };

    // The URL token: absent or wrong is refused before anything is stored.
    let secrets = kit.settings().secrets();
    let delivery = kit
        .deliver(&secrets, &order.paid[0], Timestamp::now())
        .unwrap();
    let headers: Vec<(&str, &str)> = delivery
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for (query, code) in [
        ("", "SIGNATURE_MISSING"),
        (
            "?token=gumroad-url-token-for-tests-3f9b",
            "SIGNATURE_INVALID",
        ),
    ] {
        let target = format!("{}{query}", setup.path);
        let r = app
            .send_bytes(
                "POST",
                &target,
                None,
                delivery.body.clone().into(),
                &headers,
            )
            .await;
        assert_eq!((r.status, r.code()), (401, code), "{}", r.body);
    }

    // The sale, confirmed by the API: the license takes Gumroad's key, which validates.
    at("paid");
    let r = deliver(app, &setup.path, kit, &order.paid[0]).await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    let gumroad_key = order.paid[0]["license_key"].as_str().unwrap();
    let list = app.get("/v1/licenses", &setup.api).await;
    let license = &list.body["data"][0];
    assert_eq!(license["key"], gumroad_key, "{license}");
    assert_eq!(
        license["metadata"]["platform_license_key"], gumroad_key,
        "{license}"
    );
    assert_eq!(license["max_activations"], 2, "{license}");
    let v = app.validate(json!({"key": gumroad_key})).await;
    assert_eq!(v.body["code"], "VALID", "{}", v.body);
    let seen = setup.stand_in.as_ref().unwrap().seen();
    assert!(
        seen.iter()
            .any(|s| s.path_and_query.starts_with("/v2/sales/")),
        "the sale was confirmed through the API: {seen:?}"
    );

    // A refund Gumroad's record does not show yet is not applied: the license stays valid.
    let r = deliver(app, &setup.path, kit, &order.refunded[0]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_ne!(r.body["events"][0]["status"], "applied", "{}", r.body);
    let v = app.validate(json!({"key": gumroad_key})).await;
    assert_eq!(v.body["code"], "VALID", "unconfirmed refund: {}", v.body);

    // Another integration without an API token: pings apply as posted. The key is taken now
    // (keys are unique), so this license gets its own and keeps Gumroad's in its metadata.
    let api = app.account("Second shop").await;
    let policy_id = app.policy(&api, policy).await;
    let integration = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": "gumroad", "secrets": kit.settings().secrets,
                   "mappings": [{"external_id": kit.ids().mapping, "policy_id": policy_id}]}),
        )
        .await;
    assert_eq!(integration.status, 201, "{}", integration.body);
    let path = format!(
        "/v1/webhooks/gumroad/{}",
        integration.body["id"].as_str().unwrap()
    );
    let r = deliver(app, &path, kit, &order.paid[0]).await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    let list = app.get("/v1/licenses", &api).await;
    let license = &list.body["data"][0];
    assert_ne!(license["key"], gumroad_key, "{license}");
    assert_eq!(
        license["metadata"]["platform_license_key"], gumroad_key,
        "{license}"
    );
    let r = deliver(app, &path, kit, &order.refunded[0]).await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    let v = app.validate(json!({"key": license["key"]})).await;
    assert_eq!(v.body["code"], "REVOKED", "{}", v.body);
}

async fn paddle_classic_signature_over_http(app: &TestApp) {
    let provider = provider("paddle_classic");
    let kit = testkit::kit(provider);
    let setup = kit_integration(app, provider, subscription_policy()).await;
    let now = now_s();
    let steps = kit.steps(now, now).unwrap();
    let secrets = kit.settings().secrets();
    let delivery = kit
        .deliver(&secrets, &steps.created[0], Timestamp::now())
        .unwrap();
    let headers: Vec<(&str, &str)> = delivery
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let text = String::from_utf8(delivery.body.clone()).unwrap();
    let tampered = text.replace("quantity=1", "quantity=9");
    assert_ne!(tampered, text);
    let r = app
        .send_bytes(
            "POST",
            &setup.path,
            None,
            tampered.into_bytes().into(),
            &headers,
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (401, "SIGNATURE_INVALID"),
        "{}",
        r.body
    );
    let r = app
        .send_bytes(
            "POST",
            &setup.path,
            None,
            delivery.body.clone().into(),
            &headers,
        )
        .await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    // The same alert replayed (no timestamp is signed): a duplicate of its alert_id.
    let r = app
        .send_bytes("POST", &setup.path, None, delivery.body.into(), &headers)
        .await;
    assert_eq!(r.body["events"][0]["duplicate"], true, "{}", r.body);
    let list = app.get("/v1/licenses", &setup.api).await;
    let license = &list.body["data"][0];
    // Paid through the end of `next_bill_date` (UTC).
    let expires = Timestamp::parse_rfc3339(license["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        expires.millis() / 1000,
        kit.expires_after(now, 1),
        "{license}"
    );
    assert_eq!(
        expires.millis() % 86_400_000,
        0,
        "a day boundary: {license}"
    );
}

crate::on_both_engines!(simulate_gumroad_and_paddle_classic);

fn simulate(args: &[&str], database_url: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .arg("simulate")
        .args(args)
        .args(["--database-url", database_url])
        .env_remove("KEYGATE_MASTER_KEY")
        .output()
        .unwrap()
}

/// `keygate simulate` for both platforms, twice each: every run is its own subscription (the
/// second is not a duplicate of the first), with the vendor's own product id.
async fn simulate_gumroad_and_paddle_classic(app: &TestApp) {
    for (name, external_id) in [
        ("gumroad", "vendorProduct0001=="),
        ("paddle_classic", "777001"),
    ] {
        let kit = testkit::kit(provider(name));
        let api = app.account("Shop").await;
        let policy = app.policy(&api, subscription_policy()).await;
        // No `api_credentials`: Gumroad's real API knows nothing of simulated sales.
        let integration = app
            .post(
                "/v1/integrations",
                &api,
                json!({"provider": name, "secrets": kit.settings().secrets,
                       "mappings": [{"external_id": external_id, "policy_id": policy}]}),
            )
            .await;
        assert_eq!(integration.status, 201, "{}", integration.body);
        let id = integration.body["id"].as_str().unwrap();
        let url = app.server.url("");
        for run in 1..=2 {
            let out = simulate(
                &[
                    name,
                    "--integration",
                    id,
                    "--url",
                    &url,
                    "--scenario",
                    "renewal",
                ],
                &app.database_url,
            );
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{name} run {run}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(stdout.contains("renewed    200"), "{name}: {stdout}");
            assert!(
                stdout.contains(" active expires "),
                "{name} run {run}: {stdout}"
            );
        }
        let list = app.get("/v1/licenses", &api).await;
        let licenses = list.body["data"].as_array().unwrap();
        assert_eq!(
            licenses.len(),
            2,
            "{name}: one license per run: {}",
            list.body
        );
        for license in licenses {
            let v = app.validate(json!({"key": license["key"]})).await;
            assert_eq!(v.body["code"], "VALID", "{name}: {license}");
        }
    }
}
