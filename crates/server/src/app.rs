use crate::config::Config;
use crate::metrics::Metrics;
use crate::openapi;
use crate::routes;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use keygate_store::Store;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::Instrument;

pub const BODY_LIMIT: usize = 1024 * 1024;

/// What every handler shares. One `Arc`, so the per-request clone is one atomic increment.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub openapi: Arc<String>,
    pub signer: Arc<crate::signing::Signer>,
    pub rate_limits: crate::limits::RateLimits,
    /// Refused webhook deliveries not written yet (see `failure_log`).
    pub failure_log: crate::failure_log::FailureLog,
    /// Background workers of this process, stopped with it.
    pub background: std::sync::Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Shared {
    fn spawn_background<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(task).abort_handle();
        if let Ok(mut tasks) = self.background.lock() {
            tasks.push(handle);
        }
    }

    /// Stops the background workers (as the end of the process would).
    pub fn stop_background(&self) {
        if let Ok(mut tasks) = self.background.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Opens the database, migrates it, and builds the router.
pub async fn build(config: Config) -> anyhow_free::Result<(Router, AppState)> {
    if let Some(key) = config.master_key.as_deref().filter(|k| !k.is_empty()) {
        crate::signing::check_master_key(key)?;
    }
    let store = keygate_store::connect(&config.database_url).await?;
    store.migrate().await?;
    let warming = store.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        match warming.warm_validation_cache().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                licenses = n,
                seconds = started.elapsed().as_secs_f64(),
                "validation cache warm"
            ),
            Err(e) => tracing::warn!(error = %e, "warming the validation cache failed"),
        }
    });
    let (router, state) = router(store, config);
    state.spawn_background(crate::failure_log::flusher(state.clone()));
    state.spawn_background(crate::gateway::worker(
        state.clone(),
        std::time::Duration::from_secs(5),
    ));
    state.spawn_background(crate::sync::worker(state.clone()));
    if state.config.outbound_worker {
        state.spawn_background(crate::outbound::worker(state.clone()));
        state.spawn_background(crate::outbound::sweeper(state.clone()));
    }
    Ok((router, state))
}

pub fn router(store: Arc<dyn Store>, config: Config) -> (Router, AppState) {
    let mut routes = routes::all();
    if config.metrics_addr.is_some() {
        // Served on its own listener instead (see `serve_metrics`).
        routes.retain(|r| r.path != METRICS_PATH);
    }
    let metrics = Metrics::new(
        routes
            .iter()
            .map(|r| (r.method.to_string(), r.path.to_string())),
    );
    let openapi = openapi::document(&routes).to_string();
    let signer = Arc::new(crate::signing::Signer::new(config.master_key.as_deref()));
    let state = AppState(Arc::new(Shared {
        store,
        signer,
        rate_limits: crate::limits::RateLimits::from_config(&config),
        failure_log: Default::default(),
        config: Arc::new(config),
        metrics: Arc::new(metrics),
        openapi: Arc::new(openapi),
        background: std::sync::Mutex::new(Vec::new()),
    }));
    // One MethodRouter per path, merged across methods.
    let mut by_path: BTreeMap<&'static str, axum::routing::MethodRouter<AppState>> =
        BTreeMap::new();
    for r in routes {
        // Idempotency-Key only concerns admin POSTs: the hot client endpoints skip the layer.
        let handler = if r.method == "POST" && r.auth == routes::Auth::ApiKey {
            r.handler.layer(middleware::from_fn_with_state(
                state.clone(),
                crate::idempotency::middleware,
            ))
        } else {
            match r.rate_limit() {
                Some(routes::RateLimit::Integration) => r.handler.layer(
                    middleware::from_fn_with_state(state.clone(), crate::limits::per_integration),
                ),
                Some(routes::RateLimit::ClientAddress) => {
                    r.handler.layer(middleware::from_fn_with_state(
                        state.clone(),
                        crate::limits::per_client_address,
                    ))
                }
                None => r.handler,
            }
        };
        let merged = match by_path.remove(r.path) {
            Some(existing) => existing.merge(handler),
            None => handler,
        };
        by_path.insert(r.path, merged);
    }
    let mut router = Router::new();
    for (path, handler) in by_path {
        router = router.route(path, handler);
    }
    let router = router
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(crate::text_guard::uri_guard))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::limits::edge,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state.clone());
    (router, state)
}

async fn fallback() -> crate::error::ApiError {
    crate::error::ApiError::new(
        crate::error::ErrorCode::RouteNotFound,
        "no such endpoint: see /openapi.json",
    )
}

/// One text for every 405, whoever answers it (the router, or a handler for a method it
/// refuses), so they cannot be told apart.
pub const METHOD_NOT_ALLOWED_MESSAGE: &str =
    "this endpoint does not answer this method: see the Allow header and /openapi.json";

async fn method_not_allowed() -> crate::error::ApiError {
    crate::error::ApiError::new(
        crate::error::ErrorCode::MethodNotAllowed,
        METHOD_NOT_ALLOWED_MESSAGE,
    )
}

/// A span per request, and the request's metrics under its route pattern (never the raw path,
/// which would carry ids and keys).
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map(MatchedPath::as_str);
    let method = request.method().clone();
    let slot = state.metrics.slot(method.as_str(), route);
    let span = tracing::debug_span!(
        "request",
        method = %method,
        route = route.unwrap_or("unmatched")
    );
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state.metrics.record(slot, status, elapsed);
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(
                status,
                elapsed_ms = elapsed.as_secs_f64() * 1e3,
                "request failed"
            );
        } else {
            tracing::debug!(status, elapsed_ms = elapsed.as_secs_f64() * 1e3, "request");
        }
    });
    response
}

pub const METRICS_PATH: &str = "/metrics";

/// The router of the metrics listener (`KEYGATE_METRICS_ADDR`): `/metrics` only.
fn metrics_router(state: &AppState) -> Router {
    Router::new()
        .route(METRICS_PATH, axum::routing::get(routes::ops::metrics))
        .fallback(fallback)
        .with_state(state.clone())
}

/// Binds the main listener and, when configured, the metrics listener, and serves both until
/// `stop` turns true.
async fn listen(
    router: Router,
    state: &AppState,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow_free::Result<(SocketAddr, Option<SocketAddr>, Vec<JoinHandle<()>>)> {
    let limits = crate::serve::Limits::from_config(&state.config);
    let listener = TcpListener::bind(&state.config.bind).await?;
    let addr = listener.local_addr()?;
    let mut tasks = Vec::new();
    let mut metrics_addr = None;
    if let Some(bind) = &state.config.metrics_addr {
        let metrics_listener = TcpListener::bind(bind).await?;
        metrics_addr = Some(metrics_listener.local_addr()?);
        tasks.push(tokio::spawn(crate::serve::serve(
            metrics_listener,
            metrics_router(state),
            limits.clone(),
            state.metrics.clone(),
            stopped(stop.clone()),
        )));
    }
    tasks.push(tokio::spawn(crate::serve::serve(
        listener,
        router,
        limits,
        state.metrics.clone(),
        stopped(stop),
    )));
    Ok((addr, metrics_addr, tasks))
}

async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// A running server, for tests and embedding.
pub struct Server {
    pub addr: SocketAddr,
    /// Where `/metrics` is served when `KEYGATE_METRICS_ADDR` is set.
    pub metrics_addr: Option<SocketAddr>,
    pub state: AppState,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// Starts serving `config` in the background (bind `127.0.0.1:0` for a random port).
    pub async fn start(config: Config) -> anyhow_free::Result<Server> {
        let (router, state) = build(config).await?;
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let (addr, metrics_addr, tasks) = listen(router, &state, stop_rx).await?;
        Ok(Server {
            addr,
            metrics_addr,
            state,
            stop,
            tasks,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.state.stop_background();
        self.state
            .failure_log
            .flush(self.state.store.as_ref())
            .await;
    }
}

/// Serves until SIGINT/SIGTERM, then drains in-flight requests.
pub async fn serve(config: Config) -> anyhow_free::Result<()> {
    if config.master_key.is_none() {
        tracing::warn!(
            "KEYGATE_MASTER_KEY is not set: platform secrets and signing keys are stored unencrypted"
        );
    }
    let engine_url = keygate_store::redact_url(&config.database_url);
    let (router, state) = build(config).await?;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let (addr, metrics_addr, tasks) = listen(router, &state, stop_rx).await?;
    tracing::info!(addr = %addr, metrics = ?metrics_addr, database = %engine_url, "keygate listening");
    shutdown_signal().await;
    let _ = stop.send(true);
    for task in tasks {
        let _ = task.await;
    }
    // An attempt cut short here is attempted again once its claim lapses: never lost.
    state.stop_background();
    state.failure_log.flush(state.store.as_ref()).await;
    tracing::info!("keygate stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// A boxed error for start-up paths (the binary prints it and exits non-zero).
pub mod anyhow_free {
    pub type Error = Box<dyn std::error::Error + Send + Sync + 'static>;
    pub type Result<T, E = Error> = std::result::Result<T, E>;
}
