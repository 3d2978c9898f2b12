//! `keygate simulate`: plays a platform's signed scenario against a running Keygate with the
//! vendor's own integration, and prints each delivery's answer and the resulting license
//! state, so a mapping is checked before going live. Deliveries come from the billing testkit
//! (signed and shaped as the platform sends them); each run is a new subscription.
use crate::app::anyhow_free::Result;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use keygate_billing::testkit::{self, Kit};
use keygate_billing::{Provider, Secrets, Timestamp};
use keygate_store::{LicenseFilter, PageRequest, Store};
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// created, renewed, quantity change, payment failed, recovered, cancelled, refunded.
    Lifecycle,
    /// created, then renewed.
    Renewal,
    /// created, renewed, then the renewal payment refunded (a refund names a payment: the
    /// platforms' refunds name the renewal's invoice, sale or transaction).
    Refund,
    /// A one-time order paid, then refunded (platforms that sell one-time orders).
    Order,
}

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The platform, as in the integration (`stripe`, `paddle`, ...).
    pub provider: String,
    /// The integration to deliver to.
    #[arg(long)]
    pub integration: String,
    /// The running Keygate.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The integration's webhook secret (repeat during a rotation). Without it the secrets are
    /// read from the database (run beside the server, with its master key).
    #[arg(long)]
    pub secret: Vec<String>,
    #[arg(long, value_enum, default_value = "lifecycle")]
    pub scenario: Scenario,
    /// The platform product / price / plan id the deliveries carry; default: the integration's
    /// first mapping.
    #[arg(long)]
    pub external_id: Option<String>,
    #[arg(
        long,
        env = "KEYGATE_DATABASE_URL",
        default_value = "sqlite://keygate.db"
    )]
    pub database_url: String,
    #[arg(long, env = "KEYGATE_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
}

/// What a run did: every delivery's answer, and the licenses of the simulated subscription
/// or order.
pub struct Outcome {
    pub deliveries: Vec<(String, u16, Value)>,
    pub subject: Subject,
    pub licenses: Vec<Value>,
}

/// What a scenario bought: a subscription, or a one-time order (the platform's ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Subscription(String),
    Order(String),
}

pub async fn run(args: SimulateArgs) -> Result<Outcome> {
    let provider = keygate_billing::provider(&args.provider).ok_or_else(|| {
        format!(
            "no provider `{}`: use one of {}",
            args.provider,
            keygate_billing::names().join(", ")
        )
    })?;
    if !args.url.starts_with("http://") {
        return Err(format!(
            "--url {}: simulate speaks plain http; run it beside the server (http://127.0.0.1:PORT)",
            args.url
        )
        .into());
    }
    let store = keygate_store::connect(&args.database_url).await?;
    let (integration, sealed) = store
        .integration_for_webhook(&args.integration)
        .await?
        .ok_or_else(|| {
            format!(
                "no integration `{}` in {}",
                args.integration, args.database_url
            )
        })?;
    if integration.provider != provider.name() {
        return Err(format!(
            "integration `{}` is a {} integration, not {}",
            integration.id,
            integration.provider,
            provider.name()
        )
        .into());
    }
    let secrets = if args.secret.is_empty() {
        let signer = crate::signing::Signer::new(args.master_key.as_deref());
        if sealed.is_empty() {
            Vec::new()
        } else {
            let scope = crate::signing::Scope::new(
                &integration.account_id,
                crate::signing::Purpose::IntegrationSecrets,
            );
            let text = signer.open_text(&scope, &sealed).map_err(|_| {
                "cannot open the integration's secrets: run with the server's KEYGATE_MASTER_KEY, or pass --secret"
            })?;
            serde_json::from_str(&text)?
        }
    } else {
        args.secret.clone()
    };
    let secrets = Secrets::new(secrets).with_options(integration.options.clone());
    let external_id = args
        .external_id
        .clone()
        .or_else(|| integration.mappings.first().map(|m| m.external_id.clone()))
        .ok_or("the integration has no mapping: add one or pass --external-id")?;
    let kit = testkit::kit(provider);
    let run_tag = Timestamp::now().millis().to_string();
    let (bodies, subject) = scenario_bodies(provider, kit, args.scenario, &external_id, &run_tag)?;
    let url = format!(
        "{}/v1/webhooks/{}/{}",
        args.url.trim_end_matches('/'),
        provider.name(),
        integration.id
    );
    let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let mut deliveries = Vec::new();
    for (step, body) in bodies {
        let delivery = kit.deliver(&secrets, &body, Timestamp::now())?;
        let target = if delivery.query.is_empty() {
            url.clone()
        } else {
            format!("{url}?{}", delivery.query)
        };
        let mut request = hyper::Request::post(&target);
        for (name, value) in &delivery.headers {
            request = request.header(name, value);
        }
        let response = client
            .request(request.body(Full::new(Bytes::from(delivery.body)))?)
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        let answer = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        deliveries.push((step.to_string(), status, answer));
    }
    let licenses =
        license_state(&store, &integration.account_id, &integration.id, &subject).await?;
    Ok(Outcome {
        deliveries,
        subject,
        licenses,
    })
}

/// Prints what a run did; exit code 0 when every delivery was answered 2xx.
pub fn print(outcome: &Outcome) -> bool {
    let mut ok = true;
    for (step, status, answer) in &outcome.deliveries {
        ok &= (200..300).contains(status);
        let events: Vec<String> = answer["events"]
            .as_array()
            .map(|events| {
                events
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["type"].as_str().unwrap_or("?"),
                            e["status"].as_str().unwrap_or("?")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if events.is_empty() {
            println!("{step:<10} {status} {answer}");
        } else {
            println!("{step:<10} {status} {}", events.join(", "));
        }
    }
    match &outcome.subject {
        Subject::Subscription(id) => println!("subscription {id}"),
        Subject::Order(id) => println!("order        {id}"),
    }
    if outcome.licenses.is_empty() {
        println!("licenses     none");
    }
    for license in &outcome.licenses {
        println!(
            "license      {} {} expires {} max_activations {}",
            license["id"].as_str().unwrap_or("?"),
            license["status"].as_str().unwrap_or("?"),
            license["expires_at"].as_str().unwrap_or("never"),
            license["max_activations"]
        );
    }
    ok
}

/// The scenario's bodies, with the vendor's mapped id in place of the kit's, and the kit's
/// subscription (or order), customer and event ids made unique to this run.
fn scenario_bodies(
    provider: &dyn Provider,
    kit: &dyn Kit,
    scenario: Scenario,
    external_id: &str,
    run_tag: &str,
) -> Result<(Vec<(&'static str, Value)>, Subject)> {
    let now = Timestamp::now().millis() / 1000;
    let ids = kit.ids();
    let (steps, subject): (Vec<(&'static str, Vec<Value>)>, Subject) = match scenario {
        Scenario::Order => {
            let order = kit.order_steps(now).ok_or_else(|| {
                format!(
                    "{} sells no one-time orders in Keygate's kit: use --scenario lifecycle",
                    provider.name()
                )
            })?;
            let subject = Subject::Order(format!("{}-{run_tag}", order.order));
            let steps = order.all().map(|(step, bodies)| (step, bodies.to_vec()));
            (steps.into(), subject)
        }
        _ => {
            let wanted: &[&str] = match scenario {
                Scenario::Renewal => &["created", "renewed"],
                Scenario::Refund => &["created", "renewed", "refunded"],
                _ => &[
                    "created",
                    "renewed",
                    "quantity",
                    "failed",
                    "recovered",
                    "cancelled",
                    "refunded",
                ],
            };
            let steps = kit.steps(now, now).ok_or_else(|| {
                format!(
                    "{} sells no subscriptions: use --scenario order",
                    provider.name()
                )
            })?;
            let subject = Subject::Subscription(format!("{}-{run_tag}", ids.subscription));
            let steps = steps
                .all()
                .into_iter()
                .filter(|(step, _)| wanted.contains(step))
                .map(|(step, bodies)| (step, bodies.to_vec()))
                .collect();
            (steps, subject)
        }
    };
    let order_id = match &subject {
        Subject::Order(_) => kit.order_steps(now).map(|o| o.order),
        Subject::Subscription(_) => None,
    };
    let settings = kit.settings().secrets();
    let mut out = Vec::new();
    for (step, bodies) in steps {
        for body in bodies {
            // The event ids as the platform module reads them from this very delivery.
            let event_ids: Vec<String> = kit
                .deliver(&settings, &body, Timestamp::now())
                .ok()
                .and_then(|delivery| {
                    let headers = delivery.header_map();
                    provider
                        .parse_configured(&delivery.request(&headers), &settings, Timestamp::now())
                        .ok()
                })
                .map(|events| events.into_iter().map(|e| e.event_id).collect())
                .unwrap_or_default();
            let mut unique: Vec<&str> = vec![ids.subscription, ids.customer];
            unique.extend(order_id.as_deref());
            unique.extend(event_ids.iter().map(String::as_str));
            let mut body = body.clone();
            rewrite(&mut body, ids.mapping, external_id, &unique, run_tag);
            out.push((step, body));
        }
    }
    Ok((out, subject))
}

/// Replaces `mapping` by `external_id` and suffixes every value in `unique` with the run tag,
/// wherever they stand as whole values (strings, or numbers for platforms with numeric ids).
fn rewrite(value: &mut Value, mapping: &str, external_id: &str, unique: &[&str], run_tag: &str) {
    let text = match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(items) => {
            for item in items {
                rewrite(item, mapping, external_id, unique, run_tag);
            }
            None
        }
        Value::Object(map) => {
            for (_, item) in map.iter_mut() {
                rewrite(item, mapping, external_id, unique, run_tag);
            }
            None
        }
        _ => None,
    };
    let Some(text) = text else { return };
    if text == mapping {
        *value = match (value.is_number(), external_id.parse::<i64>()) {
            (true, Ok(n)) => json!(n),
            _ => json!(external_id),
        };
    } else if unique.contains(&text.as_str()) {
        *value = json!(format!("{text}-{run_tag}"));
    }
}

async fn license_state(
    store: &Arc<dyn Store>,
    account_id: &str,
    integration_id: &str,
    subject: &Subject,
) -> Result<Vec<Value>> {
    let filter = match subject {
        Subject::Order(external_id) => LicenseFilter {
            order: Some((integration_id.to_string(), external_id.clone())),
            ..Default::default()
        },
        Subject::Subscription(external_id) => {
            let subscriptions = store
                .list_subscriptions(account_id, PageRequest::new(None, Some(200)))
                .await?;
            let subscriptions = serde_json::to_value(&subscriptions)?;
            let Some(subscription) =
                subscriptions["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|s| {
                        s["integration_id"] == integration_id && s["external_id"] == *external_id
                    })
            else {
                return Ok(Vec::new());
            };
            LicenseFilter {
                subscription_id: subscription["id"].as_str().map(str::to_string),
                ..Default::default()
            }
        }
    };
    let licenses = store
        .list_licenses(account_id, filter, PageRequest::new(None, Some(200)))
        .await?;
    Ok(licenses
        .data
        .iter()
        .map(|l| serde_json::to_value(l).unwrap_or_default())
        .collect())
}
