//! Limits applied to every request before a handler sees it, and the error envelope made
//! uniform after: a `Content-Length` over the body limit is refused before a byte of the body
//! is read (413), a body that does not arrive in time is cut off (408), client endpoints are
//! rate-limited per client address and webhooks per integration (429 with `Retry-After`),
//! and any error answer a framework layer wrote in its own shape gets the JSON envelope.
use crate::app::{AppState, BODY_LIMIT};
use crate::error::{ApiError, ErrorCode};
use crate::serve::ClientAddr;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hash, RandomState};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The outermost layer of every route (and of the 404/405 fallbacks).
pub async fn edge(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return closing(ApiError::new(
            ErrorCode::PayloadTooLarge,
            "the request body is larger than 1 MiB",
        ));
    }
    let (parts, body) = request.into_parts();
    let expired = Arc::new(AtomicBool::new(false));
    let body = if body.is_end_stream() {
        body
    } else {
        Body::new(Deadline {
            inner: body,
            timer: Box::pin(tokio::time::sleep(Duration::from_secs_f64(
                state.config.body_read_timeout_seconds,
            ))),
            expired: expired.clone(),
        })
    };
    let response = next.run(Request::from_parts(parts, body)).await;
    if expired.load(Ordering::Acquire) {
        return closing(ApiError::new(
            ErrorCode::RequestTimeout,
            format!(
                "the request body did not arrive within {} s",
                state.config.body_read_timeout_seconds
            ),
        ));
    }
    in_envelope(response)
}

/// An answer after which the connection is closed: the rest of the body is never read.
fn closing(error: ApiError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Error answers the handlers did not write (axum's 405, a body-limit rejection in plain
/// text, ...) get the envelope, with the code of their status.
fn in_envelope(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND => (
            ErrorCode::RouteNotFound,
            "no such endpoint: see /openapi.json",
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            ErrorCode::MethodNotAllowed,
            crate::app::METHOD_NOT_ALLOWED_MESSAGE,
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            ErrorCode::PayloadTooLarge,
            "the request body is larger than 1 MiB",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            ErrorCode::UnsupportedMediaType,
            "send the body as application/json",
        ),
        StatusCode::REQUEST_TIMEOUT => (
            ErrorCode::RequestTimeout,
            "the request did not arrive in time",
        ),
        StatusCode::TOO_MANY_REQUESTS => (ErrorCode::RateLimited, "too many requests"),
        StatusCode::SERVICE_UNAVAILABLE => {
            (ErrorCode::Unavailable, "the server is busy: retry shortly")
        }
        s if s.is_server_error() => (
            ErrorCode::Internal,
            "an internal error occurred; it has been logged",
        ),
        _ => (ErrorCode::BadRequest, "the request could not be read"),
    };
    let (mut parts, _) = response.into_parts();
    let rewritten = ApiError::new(code, message).into_response();
    parts.status = rewritten.status();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, rewritten.into_body())
}

/// A request body with a deadline: past it, reading fails and `expired` is set.
struct Deadline {
    inner: Body,
    timer: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(axum::Error::new(
                "the request body did not arrive in time",
            ))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Token buckets in memory, one per key: `burst` requests at once, refilled at `rate` per
/// second. Sharded, so concurrent requests rarely wait on one lock.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<u64, Bucket>>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

const SHARDS: usize = 16;
/// Past this many keys in a shard, the buckets that have refilled are forgotten (a full
/// bucket is what a new key gets anyway): memory stays bounded under random keys.
const KEYS_PER_SHARD: usize = 4096;

impl RateLimiter {
    /// `rate` 0 (or `burst` 0): no limit.
    pub fn new(rate: f64, burst: u32) -> Self {
        RateLimiter {
            rate,
            burst: f64::from(burst),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.rate > 0.0 && self.burst > 0.0
    }

    /// Takes a token for `key`, or says how long until one is there.
    pub fn check(&self, key: impl Hash) -> Result<(), Duration> {
        if !self.enabled() {
            return Ok(());
        }
        let hash = self.hasher.hash_one(key);
        let now = Instant::now();
        let mut shard = self.shards[hash as usize % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if shard.len() >= KEYS_PER_SHARD && !shard.contains_key(&hash) {
            let (rate, burst) = (self.rate, self.burst);
            shard.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * rate < burst
            });
        }
        let bucket = shard.entry(hash).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let refilled = now.duration_since(bucket.updated).as_secs_f64() * self.rate;
        bucket.tokens = (bucket.tokens + refilled).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }
}

/// The two rate limits of a server.
pub struct RateLimits {
    pub client: RateLimiter,
    pub webhook: RateLimiter,
}

impl RateLimits {
    pub fn from_config(config: &crate::Config) -> Self {
        RateLimits {
            client: RateLimiter::new(config.client_rate_per_second, config.client_rate_burst),
            webhook: RateLimiter::new(config.webhook_rate_per_second, config.webhook_rate_burst),
        }
    }
}

fn too_many(retry_after: Duration, what: &str) -> Response {
    let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    let mut response = ApiError::new(
        ErrorCode::RateLimited,
        format!("too many requests {what}: retry in {seconds} s"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// The client endpoints: a bucket per client address. A request that did not come through
/// [`crate::serve`] (the router embedded elsewhere) has no address and is not limited.
pub async fn per_client_address(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(ClientAddr(addr)) = request.extensions().get::<ClientAddr>()
        && let Err(wait) = state.rate_limits.client.check(addr.ip())
    {
        state.metrics.record_rate_limited("client");
        return too_many(wait, "from this address");
    }
    next.run(request).await
}

/// Webhooks: a bucket per integration (the last path segment) and sending address, checked
/// before the delivery is verified, so junk sent to a known webhook URL is cut off as cheaply
/// as possible, and junk from one address does not use up the platform's own allowance.
pub async fn per_integration(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let integration = request.uri().path().rsplit('/').next().unwrap_or("");
    let sender = request
        .extensions()
        .get::<ClientAddr>()
        .map(|ClientAddr(addr)| addr.ip());
    if let Err(wait) = state.rate_limits.webhook.check((integration, sender)) {
        state.metrics.record_rate_limited("webhook");
        return too_many(wait, "for this integration");
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::RateLimiter;

    #[test]
    fn a_bucket_empties_then_refills_at_its_rate() {
        let limiter = RateLimiter::new(10.0, 3);
        for _ in 0..3 {
            assert!(limiter.check("a").is_ok());
        }
        let wait = limiter.check("a").unwrap_err();
        assert!(
            wait.as_secs_f64() > 0.0 && wait.as_secs_f64() <= 0.1,
            "{wait:?}"
        );
        assert!(limiter.check("b").is_ok(), "another key has its own bucket");
        std::thread::sleep(std::time::Duration::from_millis(120));
        assert!(limiter.check("a").is_ok(), "a token came back");
        assert!(RateLimiter::new(0.0, 3).check("a").is_ok());
    }

    #[test]
    fn memory_stays_bounded_under_random_keys() {
        let limiter = RateLimiter::new(1e9, 1);
        for i in 0..100_000u32 {
            let _ = limiter.check(i);
        }
        let kept: usize = limiter.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(kept <= super::SHARDS * super::KEYS_PER_SHARD, "{kept}");
    }
}
