//! Prometheus metrics without a lock on the hot path: every route gets its slot of atomics
//! when the router is built; a request finds its slot by (method, route pattern).
use crate::serve::ConnectionEvent;
use keygate_domain::{ErrorCode, ValidationCode};
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Counters striped over cache lines, each thread adding to its own stripe: two cores
/// counting every request never fight over one cache line.
const STRIPES: usize = 8;

#[repr(align(64))]
#[derive(Default)]
struct Padded(AtomicU64);

#[derive(Default)]
struct Striped([Padded; STRIPES]);

impl Striped {
    fn add(&self, n: u64) {
        self.0[stripe()].0.fetch_add(n, Relaxed);
    }
    fn load(&self) -> u64 {
        self.0.iter().map(|p| p.0.load(Relaxed)).sum()
    }
}

fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Relaxed) % STRIPES;
    }
    STRIPE.with(|s| *s)
}
use std::time::Duration;

/// Latency bucket bounds, seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

struct RouteStats {
    method: String,
    route: String,
    by_status: [Striped; 5],
    buckets: [Striped; BUCKETS.len()],
    sum_micros: Striped,
    count: Striped,
}

pub struct Metrics {
    routes: Vec<RouteStats>,
    /// Route pattern → (method, slot); looked up without allocating.
    index: HashMap<String, Vec<(String, usize)>>,
    validations: [Striped; ValidationCode::ALL.len()],
    /// Outbound webhook attempts by outcome (see [`OUTBOUND_OUTCOMES`]).
    outbound: [AtomicU64; OUTBOUND_OUTCOMES.len()],
    connections_open: AtomicU64,
    connection_events: [AtomicU64; CONNECTION_EVENTS.len()],
    rate_limited: [AtomicU64; RATE_LIMIT_SCOPES.len()],
    /// Refused webhook deliveries, by code (the codes a billing error can have).
    webhook_refusals: HashMap<&'static str, AtomicU64>,
}

/// Connection events counted in `keygate_connections_total` (opening and closing are the
/// `keygate_connections_open` gauge).
const CONNECTION_EVENTS: [(ConnectionEvent, &str); 4] = [
    (ConnectionEvent::HeaderTimeout, "header_timeout"),
    (ConnectionEvent::IdleTimeout, "idle_timeout"),
    (ConnectionEvent::PerAddressCap, "per_address_cap"),
    (ConnectionEvent::CapReached, "cap_reached"),
];

const RATE_LIMIT_SCOPES: [&str; 2] = ["client", "webhook"];

/// The codes a refused webhook delivery can have.
pub const WEBHOOK_REFUSAL_CODES: [ErrorCode; 7] = [
    ErrorCode::SignatureMissing,
    ErrorCode::SignatureInvalid,
    ErrorCode::TimestampOutOfTolerance,
    ErrorCode::SecretNotConfigured,
    ErrorCode::CertificateNotConfigured,
    ErrorCode::CertificateInvalid,
    ErrorCode::MalformedPayload,
];

/// The outcomes of an outbound attempt, as labelled in `keygate_outbound_attempts_total`.
pub const OUTBOUND_OUTCOMES: [&str; 4] = ["succeeded", "retry", "failed", "gone"];

impl Metrics {
    pub fn new(routes: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut stats = Vec::new();
        let mut index = HashMap::new();
        let unmatched = [("ANY".to_string(), "unmatched".to_string())];
        for (method, route) in routes.into_iter().chain(unmatched) {
            index
                .entry(route.clone())
                .or_insert_with(Vec::new)
                .push((method.clone(), stats.len()));
            stats.push(RouteStats {
                method,
                route,
                by_status: Default::default(),
                buckets: Default::default(),
                sum_micros: Striped::default(),
                count: Striped::default(),
            });
        }
        Metrics {
            routes: stats,
            index,
            validations: Default::default(),
            outbound: Default::default(),
            connections_open: AtomicU64::new(0),
            connection_events: Default::default(),
            rate_limited: Default::default(),
            webhook_refusals: WEBHOOK_REFUSAL_CODES
                .iter()
                .map(|c| (c.as_str(), AtomicU64::new(0)))
                .collect(),
        }
    }

    pub fn slot(&self, method: &str, route: Option<&str>) -> usize {
        route
            .and_then(|r| self.index.get(r))
            .and_then(|methods| methods.iter().find(|(m, _)| m == method))
            .map(|(_, slot)| *slot)
            .unwrap_or(self.routes.len() - 1)
    }

    pub fn record(&self, slot: usize, status: u16, elapsed: Duration) {
        let s = &self.routes[slot];
        let class = ((status / 100) as usize).clamp(1, 5) - 1;
        s.by_status[class].add(1);
        let secs = elapsed.as_secs_f64();
        if let Some(b) = BUCKETS.iter().position(|&le| secs <= le) {
            s.buckets[b].add(1);
        }
        s.sum_micros.add(elapsed.as_micros() as u64);
        s.count.add(1);
    }

    /// One outbound attempt ended with `outcome` (one of [`OUTBOUND_OUTCOMES`]).
    pub fn record_outbound(&self, outcome: &str) {
        if let Some(i) = OUTBOUND_OUTCOMES.iter().position(|o| *o == outcome) {
            self.outbound[i].fetch_add(1, Relaxed);
        }
    }

    pub fn connection_event(&self, event: ConnectionEvent) {
        match event {
            ConnectionEvent::Opened => {
                self.connections_open.fetch_add(1, Relaxed);
            }
            ConnectionEvent::Closed => {
                self.connections_open.fetch_sub(1, Relaxed);
            }
            other => {
                if let Some(i) = CONNECTION_EVENTS.iter().position(|(e, _)| *e == other) {
                    self.connection_events[i].fetch_add(1, Relaxed);
                }
            }
        }
    }

    /// A request refused with 429; `scope` is `client` or `webhook`.
    pub fn record_rate_limited(&self, scope: &str) {
        if let Some(i) = RATE_LIMIT_SCOPES.iter().position(|s| *s == scope) {
            self.rate_limited[i].fetch_add(1, Relaxed);
        }
    }

    /// A webhook delivery refused (bad signature, malformed body, ...).
    pub fn record_webhook_refusal(&self, code: ErrorCode) {
        if let Some(n) = self.webhook_refusals.get(code.as_str()) {
            n.fetch_add(1, Relaxed);
        }
    }

    pub fn record_validation(&self, code: ValidationCode) {
        if let Some(i) = ValidationCode::ALL.iter().position(|c| *c == code) {
            self.validations[i].add(1);
        }
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP keygate_http_requests_total HTTP requests by route pattern and status class.\n",
        );
        out.push_str("# TYPE keygate_http_requests_total counter\n");
        for s in &self.routes {
            for (i, class) in STATUS_CLASSES.iter().enumerate() {
                let n = s.by_status[i].load();
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "keygate_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{class}\"}} {n}",
                        s.method, s.route
                    );
                }
            }
        }
        out.push_str(
            "# HELP keygate_http_request_duration_seconds HTTP request latency by route pattern.\n",
        );
        out.push_str("# TYPE keygate_http_request_duration_seconds histogram\n");
        for s in &self.routes {
            let count = s.count.load();
            if count == 0 {
                continue;
            }
            let labels = format!("method=\"{}\",route=\"{}\"", s.method, s.route);
            let mut cumulative = 0;
            for (i, le) in BUCKETS.iter().enumerate() {
                cumulative += s.buckets[i].load();
                let _ = writeln!(
                    out,
                    "keygate_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "keygate_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "keygate_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum_micros.load() as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "keygate_http_request_duration_seconds_count{{{labels}}} {count}"
            );
        }
        out.push_str("# HELP keygate_validations_total License validations by result code.\n");
        out.push_str("# TYPE keygate_validations_total counter\n");
        for (i, code) in ValidationCode::ALL.iter().enumerate() {
            let _ = writeln!(
                out,
                "keygate_validations_total{{code=\"{}\"}} {}",
                code.as_str(),
                self.validations[i].load()
            );
        }
        out.push_str(
            "# HELP keygate_outbound_attempts_total Outbound webhook attempts by outcome.\n",
        );
        out.push_str("# TYPE keygate_outbound_attempts_total counter\n");
        for (i, outcome) in OUTBOUND_OUTCOMES.iter().enumerate() {
            let _ = writeln!(
                out,
                "keygate_outbound_attempts_total{{outcome=\"{outcome}\"}} {}",
                self.outbound[i].load(Relaxed)
            );
        }
        out.push_str("# HELP keygate_connections_open HTTP connections being served.\n");
        out.push_str("# TYPE keygate_connections_open gauge\n");
        let _ = writeln!(
            out,
            "keygate_connections_open {}",
            self.connections_open.load(Relaxed)
        );
        out.push_str(
            "# HELP keygate_connections_total Connections cut off by a limit, and times the cap was reached.\n",
        );
        out.push_str("# TYPE keygate_connections_total counter\n");
        for (i, (_, event)) in CONNECTION_EVENTS.iter().enumerate() {
            let _ = writeln!(
                out,
                "keygate_connections_total{{event=\"{event}\"}} {}",
                self.connection_events[i].load(Relaxed)
            );
        }
        out.push_str("# HELP keygate_rate_limited_total Requests refused with 429, by limit.\n");
        out.push_str("# TYPE keygate_rate_limited_total counter\n");
        for (i, scope) in RATE_LIMIT_SCOPES.iter().enumerate() {
            let _ = writeln!(
                out,
                "keygate_rate_limited_total{{scope=\"{scope}\"}} {}",
                self.rate_limited[i].load(Relaxed)
            );
        }
        out.push_str(
            "# HELP keygate_webhook_refusals_total Webhook deliveries refused before the inbox, by code.\n",
        );
        out.push_str("# TYPE keygate_webhook_refusals_total counter\n");
        for code in WEBHOOK_REFUSAL_CODES {
            let _ = writeln!(
                out,
                "keygate_webhook_refusals_total{{code=\"{code}\"}} {}",
                self.webhook_refusals[code.as_str()].load(Relaxed)
            );
        }
        out
    }
}
