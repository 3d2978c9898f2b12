//! The accept loop, with the limits that keep one client from taking the server offline:
//! a cap on connections served at once (and on those from one address), a deadline for a
//! request's headers (from its first byte), and one for a keep-alive connection that waits
//! for its next request. The body's deadline is in [`crate::limits`], where it can answer 408.
//!
//! A connection over the cap waits in the kernel's backlog instead of being served without a
//! file descriptor to spare; held slots come free as the deadlines cut slow clients off.
use crate::metrics::Metrics;
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    /// 0: no cap per address.
    pub max_connections_per_ip: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Limits {
    pub fn from_config(config: &crate::Config) -> Self {
        Limits {
            max_connections: config.max_connections.max(1) as usize,
            max_connections_per_ip: config.max_connections_per_ip as usize,
            header_read_timeout: Duration::from_secs_f64(config.header_read_timeout_seconds),
            idle_timeout: Duration::from_secs_f64(config.idle_timeout_seconds),
        }
    }
}

/// The client's address, for rate limits keyed by it (inserted into every request).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Serves `router` on `listener` until `shutdown` completes, then lets in-flight requests
/// finish (idle connections close at once) and returns once every connection is gone.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_ip = Arc::new(PerAddress::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let limits = Arc::new(limits);
    let mut last_full_warning: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                metrics.connection_event(ConnectionEvent::CapReached);
                if last_full_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(
                        max = limits.max_connections,
                        "connection cap reached: new connections wait (KEYGATE_MAX_CONNECTIONS)"
                    );
                    last_full_warning = Some(Instant::now());
                }
                tokio::select! {
                    permit = slots.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    _ = &mut shutdown => break,
                }
            }
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and the like: say so, and give the process a moment to free some.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Some(address_slot) = per_ip.admit(remote.ip(), limits.max_connections_per_ip) else {
            metrics.connection_event(ConnectionEvent::PerAddressCap);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let limits = limits.clone();
        let metrics = metrics.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _slots = (permit, address_slot);
            metrics.connection_event(ConnectionEvent::Opened);
            serve_connection(stream, remote, router, &limits, &metrics, &mut stop).await;
            metrics.connection_event(ConnectionEvent::Closed);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a slot: all slots back means all connections are done.
    let _ = slots.acquire_many(limits.max_connections as u32).await;
}

async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    router: Router,
    limits: &Limits,
    metrics: &Metrics,
    stop: &mut watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let service_activity = activity.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let activity = service_activity.clone();
        activity.request_started();
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ClientAddr(remote));
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await.unwrap_or_else(|e| match e {});
            // The request counts as in flight until its answer is written out entirely.
            let finished = RequestFinished(activity);
            Ok::<_, std::convert::Infallible>(response.map(move |body| {
                Body::new(body.map_err(move |e| {
                    let _ = &finished;
                    e
                }))
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // hyper starts this clock when it waits for a request, idle or not; the watchdog
        // below keeps the two deadlines apart, this is the backstop.
        .header_read_timeout(limits.header_read_timeout + limits.idle_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let watchdog = watchdog(&activity, limits);
    tokio::pin!(watchdog);
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            expired = &mut watchdog => {
                metrics.connection_event(expired);
                return;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Resolves when the connection has outlived its deadline: a request head that takes too
/// long, or a keep-alive connection idle for too long. Never while a request is in flight.
async fn watchdog(activity: &Activity, limits: &Limits) -> ConnectionEvent {
    loop {
        let now = activity.now();
        let (deadline, event) = if activity.in_flight.load(Ordering::Acquire) > 0 {
            (now + limits.idle_timeout, None)
        } else if let Some(head) = activity.head_started() {
            (
                head + limits.header_read_timeout,
                Some(ConnectionEvent::HeaderTimeout),
            )
        } else {
            (
                activity.idle_since() + limits.idle_timeout,
                Some(ConnectionEvent::IdleTimeout),
            )
        };
        if let Some(event) = event
            && now >= deadline
        {
            return event;
        }
        let wait = deadline.saturating_sub(now).max(Duration::from_millis(5));
        // A change (a request starts or ends, a head starts) moves the deadline: look again.
        let _ = tokio::time::timeout(wait, activity.changed.notified()).await;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionEvent {
    Opened,
    Closed,
    /// Closed: its request's headers did not arrive in time.
    HeaderTimeout,
    /// Closed: idle between requests for too long.
    IdleTimeout,
    /// Closed on arrival: its address holds as many connections as it may.
    PerAddressCap,
    /// The cap on connections was reached (the next one waits).
    CapReached,
}

/// What the watchdog reads: durations since the connection opened, in microseconds.
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    idle_since_us: AtomicU64,
    /// When the first byte of the next request arrived; `u64::MAX` = none yet.
    head_since_us: AtomicU64,
    changed: tokio::sync::Notify,
}

const NO_HEAD: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_us: AtomicU64::new(0),
            head_since_us: AtomicU64::new(NO_HEAD),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn now(&self) -> Duration {
        self.opened.elapsed()
    }

    fn stamp(&self) -> u64 {
        self.now().as_micros() as u64
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since_us.store(NO_HEAD, Ordering::Release);
        self.changed.notify_one();
    }

    fn request_finished(&self) {
        self.idle_since_us.store(self.stamp(), Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.changed.notify_one();
    }

    fn bytes_arrived(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_since_us.load(Ordering::Acquire) == NO_HEAD
        {
            self.head_since_us.store(self.stamp(), Ordering::Release);
            self.changed.notify_one();
        }
    }

    fn head_started(&self) -> Option<Duration> {
        match self.head_since_us.load(Ordering::Acquire) {
            NO_HEAD => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    fn idle_since(&self) -> Duration {
        Duration::from_micros(self.idle_since_us.load(Ordering::Acquire))
    }
}

struct RequestFinished(Arc<Activity>);

impl Drop for RequestFinished {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// The socket, telling [`Activity`] when bytes arrive.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Connections per client address.
#[derive(Default)]
struct PerAddress {
    open: Mutex<HashMap<IpAddr, usize>>,
}

struct AddressSlot {
    owner: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    fn admit(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<Option<AddressSlot>> {
        if cap == 0 {
            return Some(None);
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(Some(AddressSlot {
            owner: self.clone(),
            ip,
        }))
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}
