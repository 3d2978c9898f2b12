//! Outbound webhooks: the delivery worker (Standard Webhooks over the durable outbox the store
//! writes in the transaction of each change) and the expiry sweeper.
pub mod http;

use crate::app::AppState;
use crate::config::RetrySchedule;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use keygate_billing::standard_webhooks;
use keygate_domain::Timestamp;
use keygate_store::outbound::{AttemptRecord, DueDelivery, Outcome};
use rand::{Rng, RngCore};
use std::time::{Duration, Instant};

/// Deliveries claimed (and sent concurrently) at a time by one worker.
const BATCH: i64 = 32;
/// The longest a `Retry-After` may push an attempt back.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// After being told of an enqueued event, how long a worker waits before it claims.
const ENQUEUE_SETTLE: Duration = Duration::from_millis(25);
/// Licenses announced per sweep statement.
const SWEEP_BATCH: i64 = 500;
/// How long the previous secret keeps signing after a rotation.
pub const PREVIOUS_SECRET_SECONDS: i64 = 24 * 3600;

/// `whsec_` + base64 of 32 random bytes.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{}{}", standard_webhooks::SECRET_PREFIX, B64.encode(bytes))
}

/// `webhook-signature`: `v1,<current>` and, within 24 h of a rotation, ` v1,<previous>`.
pub fn signature_header(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|s| standard_webhooks::secret_key(s))
        .map(|key| standard_webhooks::sign(&key, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// When the attempt after `attempts_made` failed ones is due, or `None` when none is left.
/// The schedule's delays get ±10 % jitter; a later `Retry-After` wins (at most 24 h).
pub fn next_attempt(
    schedule: &RetrySchedule,
    attempts_made: i64,
    retry_after: Option<Duration>,
    now: Timestamp,
) -> Option<Timestamp> {
    let delay = *schedule.0.get(usize::try_from(attempts_made).ok()?)?;
    let jitter = rand::thread_rng().gen_range(0.9..=1.1);
    let mut delay = delay.mul_f64(jitter);
    if let Some(asked) = retry_after {
        delay = delay.max(asked.min(MAX_RETRY_AFTER));
    }
    Some(Timestamp(now.0 + delay.as_millis() as i64))
}

/// `Retry-After`: seconds, or an HTTP date.
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let at_ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
    Some(Duration::from_millis(
        at_ms.saturating_sub(now.0).max(0) as u64
    ))
}

/// Delivers what is due, forever: claims a batch (no other worker can claim it until the lease
/// runs out), sends it concurrently, records each outcome, and polls again when idle.
pub async fn worker(state: AppState) {
    let poll = Duration::from_millis(state.config.outbound_poll_ms.max(10));
    let timeout = request_timeout(&state);
    // Longer than any attempt can take, so a claimed delivery is never sent twice at once.
    let lease_ms = (timeout.as_millis() as i64) * 2 + 30_000;
    loop {
        let now = Timestamp::now();
        let batch = match state
            .store
            .claim_deliveries(now, Timestamp(now.0 + lease_ms), BATCH)
            .await
        {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "claiming outbound deliveries failed");
                Vec::new()
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = keygate_store::outbound::ENQUEUED.notified() => {
                    // Let the enqueuing transaction commit; under load this also spaces the
                    // claims out (a burst of changes is one wake-up).
                    tokio::time::sleep(poll.min(ENQUEUE_SETTLE)).await;
                }
            }
            continue;
        }
        let mut sends = tokio::task::JoinSet::new();
        for delivery in batch {
            let state = state.clone();
            sends.spawn(async move { deliver(&state, delivery).await });
        }
        while sends.join_next().await.is_some() {}
    }
}

fn request_timeout(state: &AppState) -> Duration {
    Duration::from_secs_f64(state.config.outbound_timeout_seconds.clamp(0.1, 120.0))
}

/// One attempt of one delivery, and its outcome recorded.
async fn deliver(state: &AppState, d: DueDelivery) {
    let started = Instant::now();
    let attempted_at = Timestamp::now();
    let (record, outcome) = match attempt(state, &d).await {
        Ok(answer) => {
            let outcome = match answer.status {
                200..=299 => Outcome::Succeeded,
                410 => Outcome::Gone,
                _ => {
                    let asked = answer
                        .retry_after
                        .as_deref()
                        .and_then(|v| parse_retry_after(v, attempted_at));
                    retry_or_fail(state, &d, asked)
                }
            };
            let error = match outcome {
                Outcome::Gone => Some("GONE: the endpoint answered 410 and is now disabled".into()),
                Outcome::Succeeded => None,
                _ => Some(format!(
                    "HTTP_STATUS: the endpoint answered {}",
                    answer.status
                )),
            };
            (
                AttemptRecord {
                    attempted_at,
                    status_code: Some(answer.status),
                    error,
                    response_body: Some(answer.body).filter(|b| !b.is_empty()),
                    duration_ms: started.elapsed().as_millis() as i64,
                },
                outcome,
            )
        }
        Err(e) => (
            AttemptRecord {
                attempted_at,
                status_code: None,
                error: Some(format!("{}: {e}", e.code())),
                response_body: None,
                duration_ms: started.elapsed().as_millis() as i64,
            },
            retry_or_fail(state, &d, None),
        ),
    };
    tracing::debug!(
        message_id = %d.message_id,
        endpoint_id = %d.endpoint_id,
        status = ?record.status_code,
        outcome = ?outcome,
        "outbound delivery attempt"
    );
    state.metrics.record_outbound(match outcome {
        Outcome::Succeeded => "succeeded",
        Outcome::Retry(_) => "retry",
        Outcome::Failed => "failed",
        Outcome::Gone => "gone",
    });
    if let Err(e) = state.store.finish_delivery(&d, record, outcome).await {
        // The lease runs out and the delivery is attempted again: at least once, never lost.
        tracing::warn!(message_id = %d.message_id, error = %e, "recording an outbound attempt failed");
    }
}

fn retry_or_fail(state: &AppState, d: &DueDelivery, asked: Option<Duration>) -> Outcome {
    match next_attempt(
        &state.config.outbound_retry_schedule,
        d.attempts + 1,
        asked,
        Timestamp::now(),
    ) {
        Some(at) => Outcome::Retry(at),
        None => Outcome::Failed,
    }
}

async fn attempt(state: &AppState, d: &DueDelivery) -> Result<http::Answer, http::SendError> {
    let target = http::parse_url(&d.url)?;
    let secret_error = |_| http::SendError::SecretUnavailable;
    let scope = crate::routes::endpoints::endpoint_scope(&d.account_id);
    let current = state
        .signer
        .open_text(&scope, &d.sealed_secret)
        .map_err(secret_error)?;
    let previous = match &d.sealed_previous_secret {
        Some(p) => Some(state.signer.open_text(&scope, p).map_err(secret_error)?),
        None => None,
    };
    let mut secrets = vec![current.as_str()];
    secrets.extend(previous.as_deref());
    let timestamp = Timestamp::now().millis().div_euclid(1000);
    let body = d.payload.as_bytes();
    let headers = [
        ("webhook-id", d.message_id.clone()),
        ("webhook-timestamp", timestamp.to_string()),
        (
            "webhook-signature",
            signature_header(&secrets, &d.message_id, timestamp, body),
        ),
    ];
    http::post(
        &target,
        state.config.outbound_allow_private,
        &headers,
        hyper::body::Bytes::copy_from_slice(body),
        request_timeout(state),
    )
    .await
}

/// Announces expiries, forever: `license.expired` once per expiry, `license.expiring_soon`
/// once per term (a renewal moves `expires_at` and re-arms both); and prunes the delivery log.
pub async fn sweeper(state: AppState) {
    let every = Duration::from_secs_f64(state.config.expiry_sweep_seconds.clamp(0.05, 86_400.0));
    loop {
        loop {
            match state
                .store
                .sweep_expiries(
                    Timestamp::now(),
                    state.config.expiring_soon_seconds,
                    SWEEP_BATCH,
                )
                .await
            {
                Ok(swept) => {
                    if swept.expired > 0 || swept.expiring_soon > 0 {
                        tracing::debug!(
                            expired = swept.expired,
                            expiring_soon = swept.expiring_soon,
                            "expiries announced"
                        );
                    }
                    // A full batch: there may be more right away.
                    if (swept.expired as i64) < SWEEP_BATCH
                        && (swept.expiring_soon as i64) < SWEEP_BATCH
                    {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sweeping expiries failed");
                    break;
                }
            }
        }
        let before = Timestamp::now()
            .plus_seconds(-i64::from(state.config.outbound_retention_days) * 86_400);
        match state.store.prune_deliveries(before, 5_000).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deliveries = n, "old deliveries pruned"),
            Err(e) => tracing::warn!(error = %e, "pruning old deliveries failed"),
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_with_current_and_previous_secret() {
        // The official Standard Webhooks vector, through the outbound header builder.
        let official = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let header = signature_header(
            &[official],
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            body,
        );
        assert_eq!(header, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
        let fresh = generate_secret();
        assert!(fresh.starts_with("whsec_"));
        assert_eq!(standard_webhooks::secret_key(&fresh).unwrap().len(), 32);
        let both = signature_header(&[&fresh, official], "msg_1", 1, b"{}");
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert_eq!(parts[1], signature_header(&[official], "msg_1", 1, b"{}"));
    }

    #[test]
    fn schedule_jitter_and_retry_after() {
        let schedule = RetrySchedule::parse("0,5,300").unwrap();
        let now = Timestamp(1_000_000);
        for _ in 0..50 {
            let at = next_attempt(&schedule, 1, None, now).unwrap();
            assert!(
                (4_500..=5_500).contains(&(at.0 - now.0)),
                "{}",
                at.0 - now.0
            );
        }
        // Retry-After later than the schedule wins; an earlier one does not.
        let at = next_attempt(&schedule, 1, Some(Duration::from_secs(60)), now).unwrap();
        assert_eq!(at.0 - now.0, 60_000);
        let at = next_attempt(&schedule, 2, Some(Duration::from_secs(1)), now).unwrap();
        assert!(at.0 - now.0 >= 270_000);
        // Bounded.
        let at = next_attempt(&schedule, 1, Some(Duration::from_secs(10 * 86_400)), now).unwrap();
        assert_eq!(at.0 - now.0, 86_400_000);
        // No attempts left.
        assert_eq!(next_attempt(&schedule, 3, None, now), None);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        let date = parse_retry_after(
            "Wed, 21 Oct 2015 07:28:00 GMT",
            Timestamp(1_445_412_400_000),
        );
        assert_eq!(date, Some(Duration::from_secs(80)));
        assert_eq!(parse_retry_after("soon", now), None);
        assert!(RetrySchedule::parse("0,x").is_err());
        assert!(RetrySchedule::parse("").is_err());
    }
}
