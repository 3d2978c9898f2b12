//! `Idempotency-Key` on admin `POST`s: a retried request (same key, same body) gets the first
//! answer again instead of creating a second object; the same key with another body is refused.
//!
//! The key is claimed in the database before the request's work runs, so of N identical
//! requests sent at once exactly one does the work: the others answer 409
//! `IDEMPOTENCY_IN_PROGRESS` while it runs, and its answer once it has. The work runs in a task of
//! its own, so a client that hangs up does not cancel it between its commit and the stored answer.
use crate::app::{AppState, BODY_LIMIT};
use crate::auth::bearer_token;
use crate::error::{ApiError, ErrorCode};
use crate::signing::{Purpose, Scope};
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keygate_domain::Timestamp;
use keygate_store::{IdempotencyClaim, IdempotentResponse};
use sha2::{Digest, Sha256};

pub const HEADER: &str = "idempotency-key";
const MAX_KEY: usize = 255;
/// A claim this old that never answered belongs to a process that died mid-request: a retry
/// takes it over and runs the request again.
const STALE_CLAIM_SECONDS: i64 = 300;

pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(key) = request.headers().get(HEADER).cloned() else {
        return next.run(request).await;
    };
    match handle(&state, key, request, next).await {
        Ok(r) | Err(r) => r,
    }
}

async fn handle(
    state: &AppState,
    key: HeaderValue,
    request: Request,
    next: Next,
) -> Result<Response, Response> {
    let key = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidIdempotencyKey,
                format!("the Idempotency-Key must be 1-{MAX_KEY} visible ASCII characters"),
            )
            .into_response()
        })?
        .to_string();
    // Only requests made with an API key are remembered (per account); others pass through
    // and meet the usual authentication errors.
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .map(str::to_string);
    let principal = match token {
        Some(t) => state
            .store
            .authenticate(&t)
            .await
            .map_err(|e| ApiError::from(e).into_response())?,
        None => None,
    };
    let Some(principal) = principal else {
        return Ok(next.run(request).await);
    };
    let answer_scope = Scope::new(&principal.account_id, Purpose::IdempotentAnswer);
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, BODY_LIMIT).await.map_err(|_| {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            "the request body is larger than 1 MiB",
        )
        .into_response()
    })?;
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str());
    hasher.update(b" ");
    hasher.update(parts.uri.path());
    hasher.update(b"\n");
    hasher.update(&bytes);
    let request_hash: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    let account_id = principal.account_id.clone();
    let stale_before = Timestamp::now().plus_seconds(-STALE_CLAIM_SECONDS);
    let claim = state
        .store
        .claim_idempotency_key(&account_id, &key, &request_hash, stale_before)
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    let stored = match claim {
        IdempotencyClaim::Claimed => None,
        IdempotencyClaim::InProgress { request_hash: held } => {
            if held != request_hash {
                return Err(reused());
            }
            let mut refused = ApiError::new(
                ErrorCode::IdempotencyInProgress,
                "a request with this Idempotency-Key is still being processed: retry shortly",
            )
            .into_response();
            refused
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return Err(refused);
        }
        IdempotencyClaim::Answered(stored) => Some(stored),
    };
    if let Some(stored) = stored {
        if stored.request_hash != request_hash {
            return Err(reused());
        }
        // Answers are stored sealed (they may hold a secret shown once: an API key, an
        // endpoint's whsec_); rows from before that are plain JSON.
        let body = if stored.body.starts_with(['{', '[']) {
            stored.body
        } else {
            state
                .signer
                .open_text(&answer_scope, &stored.body)
                .map_err(IntoResponse::into_response)?
        };
        let mut response = (
            StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK),
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        return Ok(response);
    }

    let request = Request::from_parts(parts, Body::from(bytes));
    let held = (state.clone(), account_id.clone(), key.clone());
    let state = state.clone();
    let work = tokio::spawn(async move {
        let response = next.run(request).await;
        // Server errors are not remembered: the retry should really try again.
        if response.status().is_server_error() {
            release(&state, &account_id, &key).await;
            return response;
        }
        let (parts, body) = response.into_parts();
        let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
        let saved = state
            .store
            .save_idempotent_response(
                &account_id,
                &key,
                IdempotentResponse {
                    request_hash,
                    status: parts.status.as_u16(),
                    body: state.signer.seal_text(
                        &Scope::new(&account_id, Purpose::IdempotentAnswer),
                        &String::from_utf8_lossy(&bytes),
                    ),
                },
            )
            .await;
        if let Err(e) = saved {
            tracing::warn!(error = %e, "could not remember an idempotent response");
            release(&state, &account_id, &key).await;
        }
        Response::from_parts(parts, Body::from(bytes))
    });
    match work.await {
        Ok(response) => Ok(response),
        Err(e) => {
            tracing::error!(error = %e, "an idempotent request's handler failed");
            let (state, account_id, key) = held;
            release(&state, &account_id, &key).await;
            Err(ApiError::new(ErrorCode::Internal, "the request failed: retry it").into_response())
        }
    }
}

fn reused() -> Response {
    ApiError::new(
        ErrorCode::IdempotencyKeyReused,
        "this Idempotency-Key was used for a different request",
    )
    .into_response()
}

async fn release(state: &AppState, account_id: &str, key: &str) {
    if let Err(e) = state.store.release_idempotency_key(account_id, key).await {
        tracing::warn!(error = %e, "could not release an idempotency key");
    }
}
