//! Keygate benchmarks, driven over loopback like a vendor's app would.
//!
//! `cargo run --release -p keygate-bench -- validate [--licenses N] [--connections C] [--seconds S]`
//!   loads N licenses into a fresh SQLite database, then drives `POST /v1/licenses/validate`
//!   with random keys, and a bare JSON endpoint of the same HTTP stack as the ceiling.
//! `cargo run --release -p keygate-bench -- scale`
//!   validate throughput at 1k licenses, then at 1M in the same database.
use axum::Router;
use axum::routing::post;
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use keygate_domain::PolicyInput;
use keygate_server::Config;
use keygate_server::config::SignAnswers;
use keygate_store::{LicenseInput, Store};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Options {
    licenses: usize,
    connections: usize,
    /// Concurrent webhook senders in the gateway benchmark.
    gateway_connections: usize,
    seconds: u64,
    database_url: Option<String>,
}

fn parse_options(args: &[String]) -> Options {
    let mut o = Options {
        licenses: 100_000,
        connections: 64,
        gateway_connections: 16,
        seconds: 10,
        database_url: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().expect("flag needs a value").clone();
        match a.as_str() {
            "--licenses" => o.licenses = value().parse().expect("--licenses N"),
            "--connections" => {
                o.connections = value().parse().expect("--connections N");
                o.gateway_connections = o.connections;
            }
            "--seconds" => o.seconds = value().parse().expect("--seconds N"),
            "--database-url" => o.database_url = Some(value()),
            other => panic!("unknown option {other}"),
        }
    }
    o
}

/// Signing cost alone: what a signed answer adds to a validation.
fn sign_bench() {
    let key = keygate_licfile::generate_signing_key();
    let body = vec![b'x'; 1000];
    let n = 20_000;
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(keygate_licfile::sign_response(
            &key,
            std::hint::black_box(&body),
        ));
    }
    let per = started.elapsed().as_secs_f64() / n as f64;
    println!(
        "ed25519 signing of a 1 KB answer: {:.1} us each ({:.0}/s on one core)",
        per * 1e6,
        1.0 / per
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("sign") {
        sign_bench();
        return;
    }
    let (command, rest) = args
        .split_first()
        .map(|(c, r)| (c.as_str(), r))
        .unwrap_or(("validate", &[]));
    let options = parse_options(rest);
    // The server gets its own runtime and threads; the load generator runs on this thread.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("keygate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = options
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.join("bench.db").display()));
    let (store, addr, unsigned_addr) = server_rt.block_on(start_server(&url));
    match command {
        "validate" => {
            let keys = server_rt.block_on(load(&store, options.licenses, Vec::new()));
            client_rt.block_on(compare(addr, unsigned_addr, &keys, &options));
        }
        "scale" => {
            let keys = server_rt.block_on(load(&store, 1_000, Vec::new()));
            let small =
                client_rt.block_on(run_validate(unsigned_addr, &keys, &options, "validate @1k"));
            let keys = server_rt.block_on(load(&store, 1_000_000, keys));
            let large =
                client_rt.block_on(run_validate(unsigned_addr, &keys, &options, "validate @1M"));
            println!(
                "scale: throughput at 1M licenses is {:.1}% of that at 1k",
                large.rps / small.rps * 100.0
            );
        }
        "rtt" => {
            server_rt.block_on(async {
                let n = 5000;
                let started = Instant::now();
                for _ in 0..n {
                    store.ping().await.unwrap();
                }
                println!(
                    "sqlite round trip (SELECT 1 on the read pool): {:.1} us",
                    started.elapsed().as_secs_f64() / n as f64 * 1e6
                );
            });
        }
        "gateway" => {
            server_rt.block_on(async {
                let (api, webhook_path) = gateway_setup(&store).await;
                let _ = api;
                gateway_bench(addr, &webhook_path, &options).await;
            });
        }
        "keygen" => {
            server_rt.block_on(async {
                let path = keygen_setup(&store).await;
                keygen_bench(addr, &path).await;
            });
        }
        other => panic!("unknown benchmark `{other}`: use validate, scale, gateway or keygen"),
    }
    drop(server_rt);
    let _ = std::fs::remove_dir_all(dir);
}

/// The ceiling: parse the request like validate does, answer a fixed JSON document of the
/// same shape and size as a validation answer, no database, no Keygate middleware. What
/// validation costs beyond this is Keygate's own work.
async fn bare(body: Bytes) -> axum::Json<serde_json::Value> {
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut answer = SAMPLE_ANSWER.clone();
    answer["license"]["key"] = parsed["key"].clone();
    axum::Json(answer)
}

static SAMPLE_ANSWER: std::sync::LazyLock<serde_json::Value> = std::sync::LazyLock::new(|| {
    serde_json::json!({
        "valid": true, "code": "VALID", "message": "the license is valid",
        "license": {
            "id": "01a20601-9c88-747b-bcff-24422547ddfe", "key": "", "status": "active",
            "expired": false, "policy_id": "01a20601-9c4a-7c1e-9f0e-5d8c2c7b1a11",
            "product_id": "01a20601-9c21-7d3b-8e6f-0a1b2c3d4e5f", "customer_id": null,
            "subscription_id": null, "starts_at": "2026-11-23T01:24:58.668Z",
            "expires_at": "2027-11-23T01:24:58.668Z", "grace_until": "2027-11-23T01:24:58.668Z",
            "features": ["export", "sync"], "max_activations": 3, "max_seats": null,
            "quota": null,
            "overrides": {"add_features": [], "remove_features": [], "max_activations": null,
                          "max_seats": null, "quota_limit": null},
            "metadata": {}, "created_at": "2026-11-23T01:24:58.668Z",
            "updated_at": "2026-11-23T01:24:58.668Z"
        },
        "ts": "2026-11-23T01:24:58.668Z"
    })
});

/// Two servers on one store: the default (every answer signed), and one that signs only
/// answers to requests with a nonce (`KEYGATE_SIGN_ANSWERS=nonce`).
async fn start_server(url: &str) -> (Arc<dyn Store>, SocketAddr, SocketAddr) {
    let store = keygate_store::connect(url).await.expect("database opens");
    store.migrate().await.expect("migrations apply");
    let mut addrs = Vec::new();
    for mode in [SignAnswers::Always, SignAnswers::Nonce] {
        let mut config = Config::for_database(url);
        config.sign_answers = mode;
        // One load generator is one client address: the per-address rate limits would
        // measure themselves. The connection limits and timeouts stay as deployed.
        config.client_rate_per_second = 0.0;
        config.webhook_rate_per_second = 0.0;
        let limits = keygate_server::serve::Limits::from_config(&config);
        let (router, state) = keygate_server::app::router(store.clone(), config);
        let router = router.merge(Router::new().route("/bench/bare", post(bare)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(listener.local_addr().unwrap());
        let metrics = state.metrics.clone();
        tokio::spawn(keygate_server::serve::serve(
            listener,
            router,
            limits,
            metrics,
            std::future::pending(),
        ));
    }
    (store, addrs[0], addrs[1])
}

/// Tops the database up to `total` licenses (in bulk transactions), returning all keys.
async fn load(store: &Arc<dyn Store>, total: usize, mut keys: Vec<String>) -> Vec<String> {
    let started = Instant::now();
    let (_, _, secret) = store.create_account("bench").await.unwrap();
    let who = store.authenticate(&secret).await.unwrap().unwrap();
    let product = store
        .create_product(
            &who,
            serde_json::from_value(serde_json::json!({"code": "app", "name": "App"})).unwrap(),
        )
        .await
        .unwrap();
    let policy: PolicyInput = serde_json::from_value(serde_json::json!({
        "product_id": product.id, "name": "Pro", "duration_seconds": 31536000,
        "max_activations": 3, "features": ["export", "sync"]
    }))
    .unwrap();
    let policy = store.create_policy(&who, policy).await.unwrap();
    let input: LicenseInput =
        serde_json::from_value(serde_json::json!({"policy_id": policy.id})).unwrap();
    let before = keys.len();
    while keys.len() < total {
        let n = (total - keys.len()).min(20_000);
        let created = store.create_licenses(&who, input.clone(), n).await.unwrap();
        keys.extend(created.into_iter().map(|l| l.key));
    }
    eprintln!(
        "loaded {} licenses in {:.1}s ({} in the database)",
        keys.len() - before,
        started.elapsed().as_secs_f64(),
        keys.len()
    );
    // As `keygate serve` does at start.
    let started = Instant::now();
    let warmed = store.warm_validation_cache().await.unwrap();
    eprintln!(
        "validation cache warmed with {warmed} licenses in {:.1}s (rss {} MiB)",
        started.elapsed().as_secs_f64(),
        rss_mib()
    );
    keys
}

fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

struct Figures {
    rps: f64,
}

/// Three rounds of (ceiling, unsigned, signed), so that a noisy moment on a shared machine
/// hits all three alike; the ratios use each series' median.
async fn compare(addr: SocketAddr, unsigned_addr: SocketAddr, keys: &[String], o: &Options) {
    let (mut bare, mut unsigned, mut signed) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=3 {
        println!("round {round}");
        bare.push(
            drive(addr, "/bench/bare", keys, o, "bare JSON (ceiling)", false)
                .await
                .rps,
        );
        unsigned.push(
            drive(
                unsigned_addr,
                "/v1/licenses/validate",
                keys,
                o,
                "validate, unsigned",
                false,
            )
            .await
            .rps,
        );
        signed.push(
            drive(
                addr,
                "/v1/licenses/validate",
                keys,
                o,
                "validate, signed+nonce",
                true,
            )
            .await
            .rps,
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (b, u, s) = (
        median(&mut bare),
        median(&mut unsigned),
        median(&mut signed),
    );
    println!("medians: ceiling {b:.0} req/s, validate unsigned {u:.0} req/s, signed {s:.0} req/s");
    println!(
        "ratio: validate is {:.1}% of the bare JSON ceiling unsigned, {:.1}% signed ({} licenses, {} connections)",
        u / b * 100.0,
        s / b * 100.0,
        keys.len(),
        o.connections
    );
}

async fn run_validate(addr: SocketAddr, keys: &[String], o: &Options, label: &str) -> Figures {
    drive(addr, "/v1/licenses/validate", keys, o, label, false).await
}

/// `connections` keep-alive connections, each sending requests back to back for `seconds`
/// (after a one-second warm-up), each request with a random license key.
async fn drive(
    addr: SocketAddr,
    path: &'static str,
    keys: &[String],
    o: &Options,
    label: &str,
    with_nonce: bool,
) -> Figures {
    let keys: Arc<Vec<String>> = Arc::new(keys.to_vec());
    let warmup = Duration::from_secs(1);
    let measure = Duration::from_secs(o.seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..o.connections {
        let keys = keys.clone();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut rng =
                0x9E37_79B9_7F4A_7C15u64 ^ (c as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let mut latencies: Vec<u32> = Vec::with_capacity(100_000);
            let mut errors = 0u64;
            loop {
                let now = Instant::now();
                if now.duration_since(start) > warmup + measure {
                    break;
                }
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let key = &keys[(rng % keys.len() as u64) as usize];
                let body = if with_nonce {
                    format!("{{\"key\":\"{key}\",\"nonce\":\"{rng:x}\"}}")
                } else {
                    format!("{{\"key\":\"{key}\"}}")
                };
                let req = hyper::Request::post(path)
                    .header("host", "bench")
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap();
                let sent = Instant::now();
                match sender.send_request(req).await {
                    Ok(res) => {
                        let ok = res.status().is_success();
                        let _ = res.into_body().collect().await;
                        if !ok {
                            errors += 1;
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
                if sent.duration_since(start) >= warmup {
                    latencies.push(sent.elapsed().as_micros() as u32);
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let rps = all.len() as f64 / measure.as_secs_f64();
    println!(
        "{label:<24} {rps:>9.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   ({} requests, {errors} errors)",
        pct(0.50) as f64 / 1000.0,
        pct(0.99) as f64 / 1000.0,
        all.len()
    );
    Figures { rps }
}

const STRIPE_SECRET: &str = "whsec_bench";

/// The Stripe signature of `body`, from the billing testkit (Stripe's own scheme).
fn stripe_signature(body: &str) -> String {
    let stripe = keygate_billing::provider("stripe").expect("stripe is registered");
    let secrets = keygate_billing::Secrets::new([STRIPE_SECRET]);
    let now = keygate_billing::Timestamp::now();
    let headers = keygate_billing::testkit::kit(stripe)
        .sign(&secrets, body.as_bytes(), now)
        .expect("a Stripe secret signs");
    headers
        .into_iter()
        .find(|(name, _)| name == "stripe-signature")
        .map(|(_, value)| value)
        .expect("Stripe-Signature")
}

/// An account with a subscription policy and a Stripe integration mapping `price_pro` to it.
async fn gateway_setup(store: &Arc<dyn Store>) -> (String, String) {
    let (_, _, secret) = store.create_account("gateway-bench").await.unwrap();
    let who = store.authenticate(&secret).await.unwrap().unwrap();
    let product = store
        .create_product(
            &who,
            serde_json::from_value(serde_json::json!({"code": "app", "name": "App"})).unwrap(),
        )
        .await
        .unwrap();
    let policy: PolicyInput = serde_json::from_value(serde_json::json!({
        "product_id": product.id, "name": "Pro", "expiry": "subscription", "max_activations": 1,
        "seats_from_quantity": true
    }))
    .unwrap();
    let policy = store.create_policy(&who, policy).await.unwrap();
    // Secrets are sealed by the server normally; the bench server has no master key.
    let sealed = format!(
        "plain:{}",
        base64::engine::general_purpose::STANDARD
            .encode(serde_json::json!([STRIPE_SECRET]).to_string().as_bytes())
    );
    let integration = store
        .create_integration(
            &who,
            keygate_store::gateway::IntegrationWrite {
                provider: "stripe".into(),
                name: "stripe".into(),
                sealed_secrets: Some((sealed, 1)),
                sealed_api_credentials: None,
                options: serde_json::json!({}),
                mappings: Some(vec![keygate_store::gateway::Mapping {
                    external_id: "price_pro".into(),
                    policy_id: policy.id,
                }]),
            },
        )
        .await
        .unwrap();
    (secret, format!("/v1/webhooks/stripe/{}", integration.id))
}

fn stripe_subscription_created(n: u64, quantity: i64) -> String {
    stripe_subscription_event(n, quantity, "customer.subscription.created", 0)
}

/// The same subscription `periods` billing periods later (a renewal moves the expiry).
fn stripe_subscription_renewed(n: u64) -> String {
    stripe_subscription_event(n, 1, "customer.subscription.updated", 1)
}

fn stripe_subscription_event(n: u64, quantity: i64, kind: &str, periods: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + periods;
    let period_start = now + periods * 2_592_000;
    serde_json::json!({
        "id": format!("evt_bench_{n}_{periods}"), "object": "event", "api_version": "2025-03-31.basil",
        "created": now, "livemode": true, "type": kind,
        "data": {"object": {
            "id": format!("sub_{n}"), "object": "subscription", "customer": format!("cus_{n}"),
            "status": "active", "cancel_at": null, "cancel_at_period_end": false,
            "ended_at": null, "trial_end": null, "pause_collection": null,
            "items": {"object": "list", "data": [{
                "id": format!("si_{n}"), "object": "subscription_item",
                "current_period_start": period_start, "current_period_end": period_start + 2_592_000,
                "quantity": quantity, "price": {"id": "price_pro", "object": "price", "product": "prod_pro"}}]}
        }}
    })
    .to_string()
}

async fn post_signed(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    path: &str,
    body: String,
) -> bool {
    let signature = stripe_signature(&body);
    let req = hyper::Request::post(path)
        .header("host", "bench")
        .header("content-type", "application/json")
        .header("stripe-signature", signature)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    match sender.send_request(req).await {
        Ok(res) => {
            let ok = res.status().is_success();
            let _ = res.into_body().collect().await;
            ok
        }
        Err(_) => false,
    }
}

fn stripe_subscription_created_1(n: u64) -> String {
    stripe_subscription_created(n, 1)
}

/// `total` signed events made by `event(n)`, n from `first`, sent over `connections` keep-alive connections:
/// (accepted, seconds).
async fn gateway_round(
    addr: SocketAddr,
    path: &str,
    first: u64,
    total: u64,
    connections: u64,
    event: fn(u64) -> String,
) -> (u64, f64) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let path = path.to_string();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut ok = 0u64;
            let mut n = first + c;
            while n < first + total {
                if post_signed(&mut sender, &path, event(n)).await {
                    ok += 1;
                }
                n += connections;
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    (ok, started.elapsed().as_secs_f64())
}

/// Signed Stripe events, each a new subscription: verified, stored, applied (a customer, a
/// subscription, a license), end to end over loopback.
async fn gateway_bench(addr: SocketAddr, path: &str, o: &Options) {
    let total = 20_000u64;
    let connections = o.gateway_connections as u64;
    // Three rounds of new subscriptions, each followed by a renewal of every one; medians.
    let (mut created, mut renewed) = (Vec::new(), Vec::new());
    for round in 0..3 {
        let first = round * total;
        let (ok, secs) = gateway_round(
            addr,
            path,
            first,
            total,
            connections,
            stripe_subscription_created_1,
        )
        .await;
        assert_eq!(ok, total, "every delivery accepted");
        created.push(ok as f64 / secs);
        let (ok, secs) = gateway_round(
            addr,
            path,
            first,
            total,
            connections,
            stripe_subscription_renewed,
        )
        .await;
        assert_eq!(ok, total, "every delivery accepted");
        renewed.push(ok as f64 / secs);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "gateway: signed Stripe customer.subscription.created (verify, store, apply: customer + subscription + license): {:.0} events/s (median of 3 rounds of {total}, {connections} connections; rounds: {:.0?})",
        median(&mut created.clone()),
        created
    );
    println!(
        "gateway: signed Stripe customer.subscription.updated renewing each of those (subscription + license expiry): {:.0} events/s (rounds: {:.0?})",
        median(&mut renewed.clone()),
        renewed
    );
    // One order of 1,000 seats: answered as soon as it is stored and applied.
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let started = Instant::now();
    let ok = post_signed(
        &mut sender,
        path,
        stripe_subscription_created(10_000_000, 1000),
    )
    .await;
    println!(
        "gateway: a subscription with quantity 1,000 answered in {:.1} ms (ok: {ok})",
        started.elapsed().as_secs_f64() * 1e3
    );
}

const KEYGEN_TOKEN: &str = "bench-mycommerce-keygen-token";

/// A MyCommerce integration (remote key generation, one license per unit) with one mapped
/// product; returns the key generator path with its token.
async fn keygen_setup(store: &Arc<dyn Store>) -> String {
    let (_, _, secret) = store.create_account("keygen-bench").await.unwrap();
    let who = store.authenticate(&secret).await.unwrap().unwrap();
    let product = store
        .create_product(
            &who,
            serde_json::from_value(serde_json::json!({"code": "app", "name": "App"})).unwrap(),
        )
        .await
        .unwrap();
    let policy: PolicyInput = serde_json::from_value(serde_json::json!({
        "product_id": product.id, "name": "Perpetual", "expiry": "fixed", "max_activations": 1
    }))
    .unwrap();
    let policy = store.create_policy(&who, policy).await.unwrap();
    let sealed = format!(
        "plain:{}",
        base64::engine::general_purpose::STANDARD
            .encode(serde_json::json!([KEYGEN_TOKEN]).to_string().as_bytes())
    );
    let integration = store
        .create_integration(
            &who,
            keygate_store::gateway::IntegrationWrite {
                provider: "mycommerce".into(),
                name: "mycommerce".into(),
                sealed_secrets: Some((sealed, 1)),
                sealed_api_credentials: None,
                options: serde_json::json!({}),
                mappings: Some(vec![keygate_store::gateway::Mapping {
                    external_id: "300123456".into(),
                    policy_id: policy.id,
                }]),
            },
        )
        .await
        .unwrap();
    format!(
        "/v1/keygen/mycommerce/{}?token={KEYGEN_TOKEN}",
        integration.id
    )
}

/// One key generator call; (keys answered, milliseconds).
async fn keygen_call(addr: SocketAddr, path: &str, purchase: u64, units: u64) -> (usize, f64) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let body = format!(
        "PURCHASE_ID={purchase}&RUNNING_NO=1&PRODUCT_ID=300123456&QUANTITY={units}&EMAIL=buyer{purchase}%40example.com&REG_NAME=Buyer"
    );
    let req = hyper::Request::post(path)
        .header("host", "bench")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let started = Instant::now();
    let res = sender.send_request(req).await.unwrap();
    let ok = res.status().is_success();
    let text = res.into_body().collect().await.unwrap().to_bytes();
    let ms = started.elapsed().as_secs_f64() * 1e3;
    assert!(ok, "{}", String::from_utf8_lossy(&text));
    (String::from_utf8_lossy(&text).lines().count(), ms)
}

/// Remote key generation of 1,000 units (one license each, one transaction): the time the shop
/// waits for its answer, new orders and the same order posted again.
async fn keygen_bench(addr: SocketAddr, path: &str) {
    let units = 1_000;
    let (mut fresh, mut again) = (Vec::new(), Vec::new());
    for purchase in 1..=5u64 {
        let (n, ms) = keygen_call(addr, path, purchase, units).await;
        assert_eq!(n as u64, units);
        fresh.push(ms);
        let (n, ms) = keygen_call(addr, path, purchase, units).await;
        assert_eq!(n as u64, units);
        again.push(ms);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "keygen: MyCommerce call for {units} units answered {units} keys in {:.1} ms (median of 5 orders; {:.0?} ms); the same order again in {:.1} ms",
        median(&mut fresh.clone()),
        fresh,
        median(&mut again.clone())
    );
}
