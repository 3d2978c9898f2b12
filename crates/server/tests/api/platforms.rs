//! The billing gateway end to end for every platform in the registry (`keygate_billing::PROVIDERS`):
//! deliveries signed and shaped by `keygate_billing::testkit` exactly as each platform sends them,
//! with times relative to now, through HTTP into license state. One lifecycle per platform, on
//! both engines: subscription created → VALID until the period end → renewed (expiry moves) →
//! quantity changed (seats change) → payment failed (GRACE_PERIOD, then SUSPENDED after the
//! grace) → recovered (VALID) → cancelled (the license ends at the cancellation date) → refund
//! (REVOKED). A platform added to the registry is covered here with no edit.
use crate::harness::{Reply, TestApp};
use crate::on_both_engines;
use keygate_billing::testkit::{self, Kit};
use keygate_billing::{PROVIDERS, Provider, Secrets};
use keygate_domain::Timestamp;
use serde_json::{Value, json};
use std::time::Duration;

on_both_engines!(
    every_registered_platform_lifecycle,
    simulate_plays_a_scenario_against_the_server
);

const MONTH: i64 = testkit::MONTH;
const GRACE_SECONDS: i64 = 2;

async fn every_registered_platform_lifecycle(app: &TestApp) {
    for provider in PROVIDERS {
        lifecycle(app, *provider).await;
    }
}

fn now_s() -> i64 {
    Timestamp::now().millis() / 1000
}

fn t(v: &Value) -> i64 {
    Timestamp::parse_rfc3339(v.as_str().unwrap())
        .unwrap()
        .millis()
        / 1000
}

async fn post_signed(app: &TestApp, path: &str, kit: &dyn Kit, body: &str) -> Reply {
    let settings = kit.settings();
    let secrets = Secrets::new(settings.secrets).with_options(settings.options);
    let headers = kit
        .sign(&secrets, body.as_bytes(), Timestamp::now())
        .unwrap();
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    app.send(
        "POST",
        path,
        None,
        Some(Value::String(body.to_string())),
        &headers,
    )
    .await
}

/// Delivers every body of a step; each must be answered 200 with every event applied.
async fn deliver_step(
    app: &TestApp,
    path: &str,
    kit: &dyn Kit,
    name: &str,
    step: &str,
    bodies: &[Value],
) {
    for body in bodies {
        let r = post_signed(app, path, kit, &body.to_string()).await;
        assert_eq!(r.status, 200, "{name}: {step}: {}", r.body);
        let events = r.body["events"].as_array().unwrap();
        assert!(!events.is_empty(), "{name}: {step}: {}", r.body);
        for e in events {
            assert_eq!(
                e["status"], "applied",
                "{name}: {step}: {} for {body}",
                r.body
            );
        }
    }
}

async fn only_license(app: &TestApp, api: &str) -> Value {
    let list = app.get("/v1/licenses", api).await;
    let data = list.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "exactly one license: {}", list.body);
    data[0].clone()
}

async fn code_of(app: &TestApp, license: &Value) -> String {
    let v = app.validate(json!({"key": license["key"]})).await;
    v.body["code"].as_str().unwrap().to_string()
}

async fn lifecycle(app: &TestApp, provider: &'static dyn Provider) {
    let name = provider.name();
    let kit = testkit::kit(provider);
    let settings = kit.settings();
    let ids = kit.ids();
    let api = app.account("Shop").await;
    let policy = app
        .policy(
            &api,
            json!({"expiry": "subscription", "max_activations": 1, "seats_from_quantity": true}),
        )
        .await;
    let mut options = settings.options.clone();
    options["grace_seconds"] = json!(GRACE_SECONDS);
    let integration = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": name, "secrets": settings.secrets, "options": options,
                   "mappings": [{"external_id": ids.mapping, "policy_id": policy}]}),
        )
        .await;
    assert_eq!(integration.status, 201, "{name}: {}", integration.body);
    let url = integration.body["webhook_url"].as_str().unwrap();
    let path = url[url.find("/v1/").unwrap()..].to_string();
    assert_eq!(
        path,
        format!(
            "/v1/webhooks/{name}/{}",
            integration.body["id"].as_str().unwrap()
        )
    );

    let now = now_s();
    let steps = kit.steps(now, now);

    // Subscription created → one license, valid until the paid-through date.
    deliver_step(app, &path, kit, name, "created", &steps.created).await;
    let license = only_license(app, &api).await;
    assert_eq!(t(&license["expires_at"]), now + MONTH, "{name}: {license}");
    assert_eq!(license["max_activations"], 1, "{name}: {license}");
    assert_eq!(code_of(app, &license).await, "VALID", "{name}");
    let customers = app.get("/v1/customers", &api).await;
    assert_eq!(
        customers.body["data"][0]["external_ids"][name], ids.customer,
        "{name}: {}",
        customers.body
    );
    // The platform retries the same delivery: a duplicate, nothing more.
    for body in &steps.created {
        let again = post_signed(app, &path, kit, &body.to_string()).await;
        assert_eq!(again.status, 200, "{name}: {}", again.body);
        assert_eq!(
            again.body["events"][0]["duplicate"], true,
            "{name}: {}",
            again.body
        );
    }
    only_license(app, &api).await;

    // Renewed: the expiry moves to the new period end.
    deliver_step(app, &path, kit, name, "renewed", &steps.renewed).await;
    let license = only_license(app, &api).await;
    assert_eq!(
        t(&license["expires_at"]),
        now + 2 * MONTH,
        "{name}: renewed: {license}"
    );
    assert_eq!(code_of(app, &license).await, "VALID", "{name}");

    // Quantity changed: seats follow.
    deliver_step(app, &path, kit, name, "quantity", &steps.quantity).await;
    let license = only_license(app, &api).await;
    assert_eq!(license["max_activations"], 5, "{name}: quantity: {license}");
    assert_eq!(
        t(&license["expires_at"]),
        now + 2 * MONTH,
        "{name}: {license}"
    );

    // Payment failed: grace, then suspended once the grace is over.
    let failed_at = now_s();
    let steps = kit.steps(now, failed_at);
    deliver_step(app, &path, kit, name, "failed", &steps.failed).await;
    assert_eq!(code_of(app, &license).await, "GRACE_PERIOD", "{name}");
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(code_of(app, &license).await, "SUSPENDED", "{name}");
    let r = app
        .client(
            "/v1/licenses/activate",
            json!({"key": license["key"], "fingerprint": "m"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "SUSPENDED"), "{name}");

    // Recovered: valid again.
    deliver_step(app, &path, kit, name, "recovered", &steps.recovered).await;
    assert_eq!(code_of(app, &license).await, "VALID", "{name}: recovered");

    // Cancelled (at the end of the paid period, or at the date the platform names): still
    // valid, and the license ends at that date.
    deliver_step(app, &path, kit, name, "cancelled", &steps.cancelled).await;
    let license = only_license(app, &api).await;
    assert_eq!(code_of(app, &license).await, "VALID", "{name}: cancelled");
    assert_eq!(
        t(&license["expires_at"]),
        steps.cancel_ends_at,
        "{name}: cancelled: {license}"
    );
    assert_eq!(license["max_activations"], 5, "{name}: {license}");

    // Refund: revoked, for good.
    deliver_step(app, &path, kit, name, "refunded", &steps.refunded).await;
    let license = only_license(app, &api).await;
    assert_eq!(code_of(app, &license).await, "REVOKED", "{name}: refunded");

    // Every change is audited with the webhook event that caused it.
    let id = license["id"].as_str().unwrap();
    let audit = app.get(&format!("/v1/audit?license_id={id}"), &api).await;
    let entries = audit.body["data"].as_array().unwrap();
    assert!(
        entries.iter().all(|e| e["actor_type"] == "webhook_event"),
        "{name}: {}",
        audit.body
    );
    assert!(
        entries.iter().any(|e| e["action"] == "license.revoked"),
        "{name}: {}",
        audit.body
    );
    let subs = app.get("/v1/subscriptions", &api).await;
    let subs = subs.body["data"].as_array().unwrap();
    assert_eq!(subs.len(), 1, "{name}: {subs:?}");
    assert_eq!(subs[0]["external_id"], ids.subscription, "{name}");
    let failed = app.get("/v1/events?status=failed", &api).await;
    assert_eq!(
        failed.body["data"].as_array().unwrap().len(),
        0,
        "{name}: {}",
        failed.body
    );
}

/// The OpenAPI `provider` enum is the registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_provider_enum_is_the_registry() {
    let app = TestApp::sqlite().await;
    let doc = app.send("GET", "/openapi.json", None, None, &[]).await;
    let schema = &doc.body["components"]["schemas"]["IntegrationInput"];
    let listed: Vec<&str> = schema["properties"]["provider"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(listed, keygate_billing::names());
    app.finish().await;
}

fn simulate(args: &[&str], database_url: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .arg("simulate")
        .args(args)
        .args(["--database-url", database_url])
        .env_remove("KEYGATE_MASTER_KEY")
        .output()
        .unwrap()
}

/// `keygate simulate stripe` beside a running server: the secret read from the database, the
/// vendor's own price id in the deliveries, a license for the mapped price.
async fn simulate_plays_a_scenario_against_the_server(app: &TestApp) {
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
            json!({"provider": "stripe", "secrets": ["whsec_vendor_live_secret"],
                   "mappings": [{"external_id": "price_1VendorPro", "policy_id": policy}]}),
        )
        .await;
    assert_eq!(integration.status, 201, "{}", integration.body);
    let id = integration.body["id"].as_str().unwrap();
    let url = app.server.url("");
    let out = simulate(
        &[
            "stripe",
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
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("created    200"), "{stdout}");
    assert!(stdout.contains("renewed    200"), "{stdout}");
    let license = only_license(app, &api).await;
    assert_eq!(code_of(app, &license).await, "VALID");
    assert_eq!(license["policy_id"], policy.as_str());
    assert!(
        stdout.contains(&format!(
            "license      {} active",
            license["id"].as_str().unwrap()
        )),
        "{stdout}"
    );
    let expires = t(&license["expires_at"]);
    let now = now_s();
    assert!(
        (now + 2 * MONTH - 5..=now + 2 * MONTH + 5).contains(&expires),
        "{license}"
    );

    // A wrong secret on the command line: refused deliveries, a failing exit code.
    let out = simulate(
        &[
            "stripe",
            "--integration",
            id,
            "--url",
            &url,
            "--secret",
            "whsec_wrong",
        ],
        &app.database_url,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains("401"), "{stdout}");
    // The provider must be the integration's.
    let out = simulate(
        &["paddle", "--integration", id, "--url", &url],
        &app.database_url,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stripe integration"));
    only_license(app, &api).await;
}
