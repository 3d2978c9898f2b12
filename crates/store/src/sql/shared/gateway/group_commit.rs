//! Group commit (SQLite): deliveries queue for the single writer, and each group of them is
//! stored and applied in one transaction, so BEGIN and COMMIT (and the fsync) are paid once per
//! group, not once per delivery. PostgreSQL applies each delivery in its own transaction.

use super::super::DbConn;
use super::super::batch::{WriteBatch, in_write_tx};
use super::super::engine::{Db, FOR_UPDATE};
use super::super::rows::LICENSE_COLS;
use super::apply::apply_loaded;
use super::lookups::{Lookups, customer_email, parse_lookups, push_lookups};
use super::subscriptions::existing_from_row;
use crate::gateway::{InboxStatus, Inserted, Integration, NewWebhookEvent};
use crate::{Result, StoreError, now};
use keygate_domain::billing::BillingEvent;
use keygate_domain::new_id;
use sqlx::{Pool, Row};

/// How often a delivery is applied when concurrent ones keep taking its new rows first.
pub(crate) const RECEIVE_ATTEMPTS: usize = 4;

/// Deliveries applied in one transaction at most (group commit).
const GROUP_COMMIT_MAX: usize = 64;

/// One verified delivery to store and apply.
pub(crate) struct ReceiveJob {
    pub(crate) integration: Integration,
    pub(crate) event: NewWebhookEvent,
    /// `event.normalized` as stored, serialized before the job queues for the writer.
    pub(crate) normalized: String,
    pub(crate) parsed: BillingEvent,
}

pub(crate) type Received = (Inserted, Vec<String>);
type ReceiveReply = tokio::sync::oneshot::Sender<Result<Received>>;
/// Where deliveries queue for the writer.
pub(crate) type GroupCommitQueue = tokio::sync::mpsc::Sender<(ReceiveJob, ReceiveReply)>;

/// The single task that owns SQLite's writer for deliveries: it takes every delivery queued
/// while the previous group was being written and applies them in one transaction. A group that
/// fails is retried one delivery per transaction, so one bad delivery fails only itself.
///
/// It runs on a thread of its own (a one-thread runtime), not among the request handlers: the
/// writer is the one serial resource, and its next statement should not wait for a busy
/// request worker to get round to it.
pub(crate) fn spawn_group_commit(write: Pool<Db>) -> GroupCommitQueue {
    let (queue, jobs) = tokio::sync::mpsc::channel::<(ReceiveJob, ReceiveReply)>(1024);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => {
            let spawned = std::thread::Builder::new()
                .name("keygate-gateway-writer".into())
                .spawn(move || runtime.block_on(group_commit(write, jobs)));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start the gateway writer thread");
            }
        }
        // No thread for it: the same loop among the request handlers.
        Err(_) => {
            tokio::spawn(group_commit(write, jobs));
        }
    }
    queue
}

async fn group_commit(
    write: Pool<Db>,
    mut jobs: tokio::sync::mpsc::Receiver<(ReceiveJob, ReceiveReply)>,
) {
    while let Some(first) = jobs.recv().await {
        let mut group = Vec::with_capacity(GROUP_COMMIT_MAX);
        group.push(first);
        while group.len() < GROUP_COMMIT_MAX {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        // In a task of its own: a bug that panics fails this group's deliveries (the platform
        // retries them), not every delivery after it.
        if let Err(e) = tokio::spawn(commit_group(write.clone(), group)).await {
            tracing::error!(error = %e, "applying a group of webhook deliveries panicked");
        }
    }
}

async fn commit_group(write: Pool<Db>, group: Vec<(ReceiveJob, ReceiveReply)>) {
    let (work, replies): (Vec<ReceiveJob>, Vec<ReceiveReply>) = group.into_iter().unzip();
    match receive_together(&write, &work).await {
        Ok(results) => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(Ok(result));
            }
        }
        Err(e) if work.len() == 1 => {
            let _ = replies.into_iter().next().map(|r| r.send(Err(e)));
        }
        Err(_) => {
            for (job, reply) in work.iter().zip(replies) {
                let one = receive_together(&write, std::slice::from_ref(job)).await;
                let _ = reply.send(one.map(|mut all| all.remove(0)));
            }
        }
    }
}

/// Stores and applies deliveries in one transaction; answers only once it is committed.
pub(crate) async fn receive_together(
    write: &Pool<Db>,
    jobs: &[ReceiveJob],
) -> Result<Vec<Received>> {
    in_write_tx(write, async |tx| {
        let mut results = Vec::with_capacity(jobs.len());
        // Deliveries that touch nothing in common read together: their lookups travel in one
        // round trip, and the run's writes in another. (Each round trip is one multi-statement
        // query, prepared once per shape and then cached: the lookups of N deliveries, or the
        // writes of a run.)
        let mut batch = WriteBatch::new();
        for run in independent_runs(jobs) {
            let run = &jobs[run];
            batch.flush(tx).await?;
            for job in run {
                push_lookups(
                    &mut batch,
                    &job.integration,
                    Some(&job.event.provider_event_id),
                    &job.parsed,
                );
                if let Some(s) = prefetched_subscription(job) {
                    push_subscription_licenses(&mut batch, &job.integration, s);
                }
            }
            // Per delivery: its lookups row, then (if prefetched) its subscription's licenses.
            let rows = batch.fetch(tx).await?;
            let mut rows = rows.iter().peekable();
            for job in run {
                let row = rows
                    .next()
                    .ok_or_else(|| StoreError::Corrupt("the lookups answered no row".into()))?;
                let mut lookups = parse_lookups(row, &job.parsed)?;
                if prefetched_subscription(job).is_some() {
                    let mut licenses = Vec::new();
                    while let Some(r) = rows.next_if(|r| r.try_column("event_status").is_err()) {
                        licenses.push(existing_from_row(r)?);
                    }
                    licenses.sort_by(|a, b| a.0.id.cmp(&b.0.id));
                    if let Some(Some(stored)) = &mut lookups.subscription {
                        stored.licenses = Some(licenses);
                    }
                }
                results.push(receive_in(tx, &mut batch, job, lookups).await?);
            }
        }
        batch.flush(tx).await?;
        Ok(results)
    })
    .await
}

/// The subscription whose licenses are read with the lookups. Only on SQLite: PostgreSQL
/// locks the subscription row before its licenses, in the apply.
fn prefetched_subscription(job: &ReceiveJob) -> Option<&str> {
    let s = job.parsed.subscription.as_ref()?;
    (FOR_UPDATE.is_empty() && job.event.status == InboxStatus::Pending)
        .then_some(s.external_id.as_str())
}

fn push_subscription_licenses(
    batch: &mut WriteBatch,
    integration: &Integration,
    external_id: &str,
) {
    batch
        .push(&format!(
            "SELECT {LICENSE_COLS}, item_external_id, period_end, line_id FROM licenses \
             WHERE account_id = $1 AND subscription_id = \
             (SELECT id FROM subscriptions WHERE integration_id = $2 AND external_id = $3)"
        ))
        .bind(integration.account_id.clone())
        .bind(integration.id.clone())
        .bind(external_id.to_string());
}

/// Splits a group into runs of deliveries that can read before any of them writes: no two in
/// a run share an event, a subscription or a customer. A delivery that names no subscription
/// (an order, or a refund found through its invoice) may read any subscription: it runs alone.
fn independent_runs(jobs: &[ReceiveJob]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut seen = std::collections::HashSet::new();
    for (i, job) in jobs.iter().enumerate() {
        let event = &job.parsed;
        let integration = &job.integration;
        let mut keys = vec![format!(
            "e {} {}",
            integration.id, job.event.provider_event_id
        )];
        if let Some(s) = &event.subscription {
            keys.push(format!("s {} {}", integration.id, s.external_id));
        }
        if let Some(c) = event.customer.as_ref().and_then(|c| c.external_id.as_ref()) {
            keys.push(format!(
                "c {} {} {c}",
                integration.account_id, integration.provider
            ));
        }
        if let Some(email) = customer_email(event) {
            keys.push(format!("m {} {email}", integration.account_id));
        }
        let alone = event.subscription.is_none();
        if i > start && (alone || keys.iter().any(|k| seen.contains(k))) {
            runs.push(start..i);
            start = i;
            seen.clear();
        }
        seen.extend(keys);
        if alone {
            runs.push(start..i + 1);
            start = i + 1;
            seen.clear();
        }
    }
    if start < jobs.len() {
        runs.push(start..jobs.len());
    }
    runs
}

/// Inserts one delivery into the inbox (unless it is a duplicate) and applies it. Its writes
/// are left in `batch` for the caller to send.
async fn receive_in(
    conn: &mut DbConn,
    batch: &mut WriteBatch,
    job: &ReceiveJob,
    lookups: Lookups,
) -> Result<Received> {
    let ReceiveJob {
        integration,
        event,
        normalized,
        parsed,
    } = job;
    if let Some((id, status)) = lookups.duplicate.clone() {
        return Ok((
            Inserted {
                id,
                new: false,
                status,
            },
            Vec::new(),
        ));
    }
    let id = new_id();
    let outcome = if event.status == InboxStatus::Pending {
        // Mapped policies were read with the integration: a policy edit racing this delivery is
        // as if it had come a moment earlier or later. Any other policy is read in the apply.
        let mut policies = integration
            .mapped_policies
            .iter()
            .map(|p| (p.id.clone(), p.clone()))
            .collect();
        Some(
            apply_loaded(
                conn,
                batch,
                integration,
                &id,
                parsed,
                &lookups,
                &mut policies,
            )
            .await?,
        )
    } else {
        None
    };
    // The inbox row, written once with what applying it did.
    batch
        .push(
            "INSERT INTO webhook_events (id, account_id, integration_id, provider, \
             provider_event_id, event_type, kind, occurred_at, received_at, raw_body, \
             normalized, verified, status, actions, error_code, error, attempts, applied_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18)",
        )
        .bind(id.clone())
        .bind(integration.account_id.clone())
        .bind(integration.id.clone())
        .bind(integration.provider.clone())
        .bind(event.provider_event_id.clone())
        .bind(event.event_type.clone())
        .bind(event.kind.clone())
        .bind(event.occurred_at.0)
        .bind(now().0)
        .bind(event.raw_body.clone())
        .bind(normalized.clone())
        .bind(event.verified);
    let (status, touched) = match outcome {
        Some(o) => {
            batch
                .bind(o.status.as_str())
                .bind(o.actions)
                .bind(o.error_code)
                .bind(o.error)
                .bind(1_i64)
                .bind(o.applied_at);
            (o.status, o.touched_keys)
        }
        None => {
            batch
                .bind(event.status.as_str())
                .bind("[]")
                .bind(None::<String>)
                .bind(None::<String>)
                .bind(0_i64)
                .bind(None::<i64>);
            (event.status, Vec::new())
        }
    };
    Ok((
        Inserted {
            id,
            new: true,
            status,
        },
        touched,
    ))
}
