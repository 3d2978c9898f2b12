//! The billing gateway end to end for every platform in the registry (`keygate_billing::PROVIDERS`):
//! deliveries signed and shaped by `keygate_billing::testkit` exactly as each platform sends them,
//! with times relative to now, through HTTP into license state. One lifecycle per platform, on
//! both engines: subscription created → VALID until the period end → renewed (expiry moves) →
//! quantity changed (seats change) → payment failed (GRACE_PERIOD, then SUSPENDED after the
//! grace) → recovered (VALID) → cancelled (the license ends at the cancellation date) → refund
//! (REVOKED). A platform added to the registry is covered here with no edit.
use crate::harness::{Reply, TestApp};
use crate::on_both_engines;
use crate::stand_in::ApiStandIn;
use keygate_billing::testkit::{self, Kit, Stage};
use keygate_billing::{PROVIDERS, Provider};
use keygate_domain::Timestamp;
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

on_both_engines!(
    simulate_plays_a_scenario_against_the_server,
    simulate_renewal_and_refund_on_every_platform
);

/// Platforms whose events are completed from their API talk to a local stand-in, so private
/// addresses are allowed here.
mod every_registered_platform_lifecycle {
    use crate::harness::TestApp;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = TestApp::sqlite_with(|c| c.outbound_allow_private = true).await;
        super::every_registered_platform_lifecycle(&app).await;
        app.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let app = TestApp::postgres_with(|c| c.outbound_allow_private = true).await;
        super::every_registered_platform_lifecycle(&app).await;
        app.finish().await;
    }
}

const MONTH: i64 = testkit::MONTH;
const GRACE_SECONDS: i64 = 2;

/// Every platform's subscription lifecycle and one-time order, all at once (each in its own
/// account), so more platforms do not make the test longer.
async fn every_registered_platform_lifecycle(app: &TestApp) {
    let mut runs: Vec<Pin<Box<dyn Future<Output = ()> + Send + '_>>> = Vec::new();
    for provider in PROVIDERS {
        let kit = testkit::kit(*provider);
        let now = now_s();
        if kit.steps(now, now).is_some() {
            runs.push(Box::pin(lifecycle(app, *provider)));
        }
        if kit.order_steps(now).is_some() {
            runs.push(Box::pin(order_lifecycle(app, *provider)));
        }
    }
    join_all(runs).await;
}

/// Polls every future to completion (the tests' dependencies have no `join_all`).
async fn join_all<'a>(mut futures: Vec<Pin<Box<dyn Future<Output = ()> + Send + 'a>>>) {
    std::future::poll_fn(move |cx| {
        futures.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if futures.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
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

/// Sends `body` as the platform would: [`Kit::deliver`]'s headers, bytes and URL query.
pub async fn deliver(app: &TestApp, path: &str, kit: &dyn Kit, body: &Value) -> Reply {
    let secrets = kit.settings().secrets();
    let delivery = kit.deliver(&secrets, body, Timestamp::now()).unwrap();
    let headers: Vec<(&str, &str)> = delivery
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let target = if delivery.query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", delivery.query)
    };
    app.send_bytes("POST", &target, None, delivery.body.into(), &headers)
        .await
}

/// The integration's inbox: (id, status) of every event, in id order.
async fn inbox(app: &TestApp, api: &str, path: &str) -> Vec<(String, Value)> {
    let integration = path.rsplit('/').next().unwrap_or("");
    let list = app
        .get(
            &format!("/v1/events?integration_id={integration}&limit=200"),
            api,
        )
        .await;
    list.body["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e["id"].as_str().unwrap_or("").to_string(), e))
        .collect()
}

/// [`deliver`], with Keygate's receipt (`events`) in the reply even where the platform reads
/// an answer of its own (Salesforce's SOAP `Ack`): then the receipt is what the inbox gained
/// (nothing new = the delivery was a duplicate).
pub async fn deliver_as(
    app: &TestApp,
    api: &str,
    path: &str,
    kit: &dyn Kit,
    body: &Value,
) -> Reply {
    let before = inbox(app, api, path).await;
    let mut reply = deliver(app, path, kit, body).await;
    if reply.status != 200 || reply.body["events"].is_array() {
        return reply;
    }
    let known: std::collections::HashSet<String> = before.into_iter().map(|(id, _)| id).collect();
    let new: Vec<Value> = inbox(app, api, path)
        .await
        .into_iter()
        .filter(|(id, _)| !known.contains(id))
        .map(|(_, e)| {
            json!({"id": e["id"], "provider_event_id": e["provider_event_id"],
                              "status": e["status"], "duplicate": false})
        })
        .collect();
    let events = if new.is_empty() {
        vec![json!({"duplicate": true, "status": "duplicate"})]
    } else {
        new
    };
    let answer = String::from_utf8_lossy(&reply.raw).into_owned();
    reply.body = json!({"events": events, "answer": answer});
    reply
}

/// Delivers every body of a step; each must be answered 200 with every event applied.
async fn deliver_step(
    app: &TestApp,
    api: &str,
    path: &str,
    kit: &dyn Kit,
    name: &str,
    step: &str,
    bodies: &[Value],
) {
    for body in bodies {
        let r = deliver_as(app, api, path, kit, body).await;
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

/// A platform's integration as its kit configures it, in a new account with one subscription
/// (or perpetual, for orders) policy mapped to the kit's id; with a stand-in for the
/// platform's API when the kit needs one.
pub struct KitIntegration {
    pub api: String,
    pub path: String,
    pub policy: String,
    pub stage: Arc<Mutex<Stage>>,
    pub stand_in: Option<ApiStandIn>,
}

pub async fn kit_integration(
    app: &TestApp,
    provider: &'static dyn Provider,
    policy_fields: Value,
) -> KitIntegration {
    let name = provider.name();
    let kit = testkit::kit(provider);
    let settings = kit.settings();
    let api = app.account("Shop").await;
    let policy = app.policy(&api, policy_fields).await;
    let now = now_s();
    let stage = Arc::new(Mutex::new(Stage {
        start: now,
        failed_at: now,
        step: "created",
    }));
    let mut options = settings.options.clone();
    options["grace_seconds"] = json!(GRACE_SECONDS);
    let mut body = json!({"provider": name, "secrets": settings.secrets,
                          "mappings": [{"external_id": kit.ids().mapping, "policy_id": policy}]});
    let stand_in = match kit.api_credentials() {
        Some(credentials) => {
            let stand_in = ApiStandIn::for_kit(kit, stage.clone()).await;
            options["api_base_url"] = json!(stand_in.base_url);
            body["api_credentials"] = credentials;
            Some(stand_in)
        }
        None => None,
    };
    body["options"] = options;
    let integration = app.post("/v1/integrations", &api, body).await;
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
    KitIntegration {
        api,
        path,
        policy,
        stage,
        stand_in,
    }
}

impl KitIntegration {
    /// The stand-in answers as the platform's API does once `step` happened.
    fn reached(&self, step: &'static str, start: i64, failed_at: i64) {
        *self.stage.lock().unwrap() = Stage {
            start,
            failed_at,
            step,
        };
    }
}

async fn lifecycle(app: &TestApp, provider: &'static dyn Provider) {
    let name = provider.name();
    let kit = testkit::kit(provider);
    let ids = kit.ids();
    let setup = kit_integration(
        app,
        provider,
        json!({"expiry": "subscription", "max_activations": 1, "seats_from_quantity": true}),
    )
    .await;
    let (api, path) = (setup.api.as_str(), setup.path.as_str());

    let now = now_s();
    let steps = kit.steps(now, now).unwrap();
    let mut expires = now + MONTH;
    let mut seats = 1;

    // Subscription created → one license, valid until the paid-through date.
    setup.reached("created", now, now);
    deliver_step(app, api, path, kit, name, "created", &steps.created).await;
    let license = only_license(app, api).await;
    assert_eq!(t(&license["expires_at"]), expires, "{name}: {license}");
    assert_eq!(license["max_activations"], seats, "{name}: {license}");
    assert_eq!(code_of(app, &license).await, "VALID", "{name}");
    let customers = app.get("/v1/customers", api).await;
    assert_eq!(
        customers.body["data"][0]["external_ids"][name], ids.customer,
        "{name}: {}",
        customers.body
    );
    // The platform retries the same delivery: a duplicate, nothing more.
    for body in &steps.created {
        let again = deliver_as(app, api, path, kit, body).await;
        assert_eq!(again.status, 200, "{name}: {}", again.body);
        assert_eq!(
            again.body["events"][0]["duplicate"], true,
            "{name}: {}",
            again.body
        );
    }
    only_license(app, api).await;

    // Renewed: the expiry moves to the new period end.
    if !steps.renewed.is_empty() {
        setup.reached("renewed", now, now);
        deliver_step(app, api, path, kit, name, "renewed", &steps.renewed).await;
        expires = now + 2 * MONTH;
        let license = only_license(app, api).await;
        assert_eq!(
            t(&license["expires_at"]),
            expires,
            "{name}: renewed: {license}"
        );
        assert_eq!(code_of(app, &license).await, "VALID", "{name}");
    }

    // Quantity changed: seats follow.
    if !steps.quantity.is_empty() {
        setup.reached("quantity", now, now);
        deliver_step(app, api, path, kit, name, "quantity", &steps.quantity).await;
        seats = 5;
        let license = only_license(app, api).await;
        assert_eq!(
            license["max_activations"], seats,
            "{name}: quantity: {license}"
        );
        assert_eq!(t(&license["expires_at"]), expires, "{name}: {license}");
    }

    // Payment failed: grace, then suspended once the grace is over.
    let failed_at = now_s();
    let steps = kit.steps(now, failed_at).unwrap();
    if !steps.failed.is_empty() {
        setup.reached("failed", now, failed_at);
        deliver_step(app, api, path, kit, name, "failed", &steps.failed).await;
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
    }

    // Recovered: valid again.
    if !steps.recovered.is_empty() {
        setup.reached("recovered", now, failed_at);
        deliver_step(app, api, path, kit, name, "recovered", &steps.recovered).await;
        assert_eq!(code_of(app, &license).await, "VALID", "{name}: recovered");
    }

    // Cancelled (at the end of the paid period, or at the date the platform names): still
    // valid, and the license ends at that date.
    if !steps.cancelled.is_empty() {
        setup.reached("cancelled", now, failed_at);
        deliver_step(app, api, path, kit, name, "cancelled", &steps.cancelled).await;
        let license = only_license(app, api).await;
        assert_eq!(code_of(app, &license).await, "VALID", "{name}: cancelled");
        assert_eq!(
            t(&license["expires_at"]),
            steps.cancel_ends_at,
            "{name}: cancelled: {license}"
        );
        assert_eq!(license["max_activations"], seats, "{name}: {license}");
    }

    // Refund: revoked, for good.
    if !steps.refunded.is_empty() {
        setup.reached("refunded", now, failed_at);
        deliver_step(app, api, path, kit, name, "refunded", &steps.refunded).await;
        let license = only_license(app, api).await;
        assert_eq!(code_of(app, &license).await, "REVOKED", "{name}: refunded");
    }

    // Every change is audited with the webhook event that caused it.
    let license = only_license(app, api).await;
    let id = license["id"].as_str().unwrap();
    let audit = app.get(&format!("/v1/audit?license_id={id}"), api).await;
    let entries = audit.body["data"].as_array().unwrap();
    assert!(
        entries.iter().all(|e| e["actor_type"] == "webhook_event"),
        "{name}: {}",
        audit.body
    );
    if !steps.refunded.is_empty() {
        assert!(
            entries.iter().any(|e| e["action"] == "license.revoked"),
            "{name}: {}",
            audit.body
        );
    }
    if let Some(stand_in) = &setup.stand_in {
        assert!(
            !stand_in.seen().is_empty(),
            "{name}: the kit configures API credentials, but Keygate never asked the API"
        );
    }
    let subs = app.get("/v1/subscriptions", api).await;
    let subs = subs.body["data"].as_array().unwrap();
    assert_eq!(subs.len(), 1, "{name}: {subs:?}");
    assert_eq!(subs[0]["external_id"], ids.subscription, "{name}");
    let failed = app.get("/v1/events?status=failed", api).await;
    assert_eq!(
        failed.body["data"].as_array().unwrap().len(),
        0,
        "{name}: {}",
        failed.body
    );
}

/// A one-time order: paid → one license for the mapped line (2 seats), the unmapped line
/// skipped, the customer linked; the same delivery again is a duplicate; a full refund
/// revokes.
async fn order_lifecycle(app: &TestApp, provider: &'static dyn Provider) {
    let name = provider.name();
    let kit = testkit::kit(provider);
    let setup = kit_integration(
        app,
        provider,
        json!({"expiry": "fixed", "max_activations": 1, "seats_from_quantity": true}),
    )
    .await;
    let (api, path) = (setup.api.as_str(), setup.path.as_str());
    let now = now_s();
    let order = kit.order_steps(now).unwrap();

    setup.reached("paid", now, now);
    deliver_step(app, api, path, kit, name, "paid", &order.paid).await;
    let license = only_license(app, api).await;
    assert_eq!(
        license["policy_id"],
        setup.policy.as_str(),
        "{name}: {license}"
    );
    assert_eq!(license["max_activations"], 2, "{name}: order: {license}");
    assert_eq!(code_of(app, &license).await, "VALID", "{name}: order");
    assert!(!license["customer_id"].is_null(), "{name}: {license}");
    for body in &order.paid {
        let again = deliver_as(app, api, path, kit, body).await;
        assert_eq!(again.status, 200, "{name}: {}", again.body);
        assert!(
            again.body["events"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["duplicate"] == true),
            "{name}: {}",
            again.body
        );
    }
    only_license(app, api).await;

    // A platform that sends no refund notification (MyCommerce) skips the step.
    if !order.refunded.is_empty() {
        setup.reached("refunded", now, now);
        deliver_step(app, api, path, kit, name, "refunded", &order.refunded).await;
        let license = only_license(app, api).await;
        assert_eq!(
            code_of(app, &license).await,
            "REVOKED",
            "{name}: order refunded"
        );
    }
    let failed = app.get("/v1/events?status=failed", api).await;
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

/// `keygate simulate <platform> --scenario renewal` and `--scenario refund` (and `order` where
/// the platform sells one-time orders) against the server, for every registered platform: each
/// delivery answered 2xx, and, where no platform API is involved, the license state the
/// scenario ends in (active after a renewal, revoked after a refund).
async fn simulate_renewal_and_refund_on_every_platform(app: &TestApp) {
    let mut runs: Vec<Pin<Box<dyn Future<Output = ()> + Send + '_>>> = Vec::new();
    for provider in PROVIDERS {
        runs.push(Box::pin(simulate_scenarios(app, *provider)));
    }
    join_all(runs).await;
}

async fn simulate_scenarios(app: &TestApp, provider: &'static dyn Provider) {
    let url = app.server.url("");
    let name = provider.name();
    let kit = testkit::kit(provider);
    let now = now_s();
    let mut scenarios = Vec::new();
    if let Some(steps) = kit.steps(now, now) {
        scenarios.push(("renewal", "active", !steps.renewed.is_empty()));
        scenarios.push(("refund", "revoked", !steps.refunded.is_empty()));
    }
    if let Some(order) = kit.order_steps(now) {
        // Without a refund notification (MyCommerce) the order's license stays active.
        let ends = if order.refunded.is_empty() {
            "active"
        } else {
            "revoked"
        };
        scenarios.push(("order", ends, true));
    }
    for (scenario, ends, played) in scenarios {
        if !played {
            continue;
        }
        let policy = if scenario == "order" {
            json!({"expiry": "fixed", "max_activations": 1, "seats_from_quantity": true})
        } else {
            json!({"expiry": "subscription", "max_activations": 1, "seats_from_quantity": true})
        };
        let setup = kit_integration(app, provider, policy).await;
        let id = setup.path.rsplit('/').next().unwrap().to_string();
        let database_url = app.database_url.clone();
        let args = [
            name.to_string(),
            "--integration".into(),
            id,
            "--url".into(),
            url.clone(),
            "--scenario".into(),
            scenario.into(),
        ];
        let out = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            simulate(&args, &database_url)
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name} --scenario {scenario}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if setup.stand_in.is_none() {
            assert!(
                stdout
                    .lines()
                    .any(|l| l.starts_with("license ") && l.contains(&format!(" {ends} "))),
                "{name} --scenario {scenario}: a license {ends}: {stdout}"
            );
        }
    }
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
