// Included once per engine by `sql/mod.rs`, after `store_impl.rs` (same module: its helpers and
// imports are in scope).

use crate::gateway::{
    EventError, EventFilter, FAILURE_LOG_SIZE, GatewayStore, Inserted, Integration,
    IntegrationWrite, Mapping, NewWebhookEvent, Subscription, WebhookEvent, WebhookFailure,
};

const INTEGRATION_COLS: &str =
    "id, account_id, provider, name, secrets_count, options, created_at, updated_at";
const EVENT_COLS: &str = "id, account_id, integration_id, provider, provider_event_id, \
     event_type, kind, occurred_at, received_at, normalized, verified, status, actions, \
     error_code, error, attempts, applied_at";
const SUBSCRIPTION_COLS: &str = "id, integration_id, provider, external_id, customer_id, \
     status, current_period_end, last_event_at, state, created_at, updated_at";

fn integration_from_row(row: &DbRow) -> Result<Integration> {
    Ok(Integration {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        provider: row.try_get("provider")?,
        name: row.try_get("name")?,
        mappings: Vec::new(),
        mapped_policies: Vec::new(),
        options: parse_json(row.try_get::<&str, _>("options")?)?,
        secrets_count: row.try_get("secrets_count")?,
        created_at: ts(row.try_get("created_at")?),
        updated_at: ts(row.try_get("updated_at")?),
    })
}

fn event_from_row(row: &DbRow) -> Result<WebhookEvent> {
    let code: Option<String> = row.try_get("error_code")?;
    let message: Option<String> = row.try_get("error")?;
    Ok(WebhookEvent {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        integration_id: row.try_get("integration_id")?,
        provider: row.try_get("provider")?,
        provider_event_id: row.try_get("provider_event_id")?,
        event_type: row.try_get("event_type")?,
        kind: row.try_get("kind")?,
        occurred_at: ts(row.try_get("occurred_at")?),
        received_at: ts(row.try_get("received_at")?),
        verified: row.try_get("verified")?,
        status: row.try_get("status")?,
        actions: parse_json(row.try_get::<&str, _>("actions")?)?,
        error: code.map(|code| EventError {
            code,
            message: message.unwrap_or_default(),
        }),
        attempts: row.try_get("attempts")?,
        applied_at: row.try_get::<Option<i64>, _>("applied_at")?.map(ts),
        event: parse_json(row.try_get::<&str, _>("normalized")?)?,
        raw_payload: None,
    })
}

fn subscription_from_row(row: &DbRow) -> Result<Subscription> {
    Ok(Subscription {
        id: row.try_get("id")?,
        integration_id: row.try_get("integration_id")?,
        provider: row.try_get("provider")?,
        external_id: row.try_get("external_id")?,
        customer_id: row.try_get("customer_id")?,
        status: row.try_get("status")?,
        current_period_end: row.try_get::<Option<i64>, _>("current_period_end")?.map(ts),
        last_event_at: row.try_get::<Option<i64>, _>("last_event_at")?.map(ts),
        state: parse_json(row.try_get::<&str, _>("state")?)?,
        created_at: ts(row.try_get("created_at")?),
        updated_at: ts(row.try_get("updated_at")?),
    })
}

async fn insert_event_in(
    conn: &mut DbConn,
    integration: &Integration,
    event: NewWebhookEvent,
) -> Result<Inserted> {
    let id = new_id();
    let inserted = sqlx::query(
        "INSERT INTO webhook_events (id, account_id, integration_id, provider, \
         provider_event_id, event_type, kind, occurred_at, received_at, raw_body, normalized, \
         verified, status, actions, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
         $10, $11, $12, $13, '[]', 0) ON CONFLICT (integration_id, provider_event_id) DO NOTHING",
    )
    .bind(&id)
    .bind(&integration.account_id)
    .bind(&integration.id)
    .bind(&integration.provider)
    .bind(&event.provider_event_id)
    .bind(&event.event_type)
    .bind(&event.kind)
    .bind(event.occurred_at.0)
    .bind(now().0)
    .bind(&event.raw_body)
    .bind(event.normalized.to_string())
    .bind(event.verified)
    .bind(event.status)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Inserted {
            id,
            new: true,
            status: event.status.to_string(),
        });
    }
    let row = sqlx::query(
        "SELECT id, status FROM webhook_events WHERE integration_id = $1 \
         AND provider_event_id = $2",
    )
    .bind(&integration.id)
    .bind(&event.provider_event_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Inserted {
        id: row.try_get("id")?,
        new: false,
        status: row.try_get("status")?,
    })
}

async fn attach_mappings(conn: &mut DbConn, integrations: &mut [Integration]) -> Result<()> {
    for integration in integrations.iter_mut() {
        let rows = sqlx::query(
            "SELECT external_id, policy_id FROM integration_mappings WHERE integration_id = $1 \
             ORDER BY external_id",
        )
        .bind(&integration.id)
        .fetch_all(&mut *conn)
        .await?;
        integration.mappings = rows
            .iter()
            .map(|r| {
                Ok(Mapping {
                    external_id: r.try_get("external_id")?,
                    policy_id: r.try_get("policy_id")?,
                })
            })
            .collect::<Result<_>>()?;
    }
    Ok(())
}

async fn load_integration(conn: &mut DbConn, account_id: &str, id: &str) -> Result<Integration> {
    let sql =
        format!("SELECT {INTEGRATION_COLS} FROM integrations WHERE account_id = $1 AND id = $2");
    let row = sqlx::query(&sql)
        .bind(account_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound("integration"))?;
    let mut one = [integration_from_row(&row)?];
    attach_mappings(conn, &mut one).await?;
    let [integration] = one;
    Ok(integration)
}

/// Replaces an integration's mappings; every policy must be the account's.
async fn write_mappings(
    conn: &mut DbConn,
    account_id: &str,
    integration_id: &str,
    mappings: &[Mapping],
) -> Result<()> {
    sqlx::query("DELETE FROM integration_mappings WHERE integration_id = $1")
        .bind(integration_id)
        .execute(&mut *conn)
        .await?;
    let mut seen = std::collections::HashSet::new();
    for m in mappings {
        validate_text("mappings[].external_id", &m.external_id, 255)?;
        if !seen.insert(m.external_id.as_str()) {
            return Err(StoreError::invalid(
                "INVALID_FIELD",
                format!("`{}` is mapped twice", m.external_id),
            ));
        }
        if load_policy(conn, account_id, &m.policy_id).await?.is_none() {
            return Err(StoreError::invalid(
                "POLICY_NOT_FOUND",
                format!("no policy `{}` in this account", m.policy_id),
            ));
        }
        sqlx::query(
            "INSERT INTO integration_mappings (integration_id, external_id, policy_id) \
             VALUES ($1, $2, $3)",
        )
        .bind(integration_id)
        .bind(&m.external_id)
        .bind(&m.policy_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[async_trait]
impl GatewayStore for SqlStore {
    async fn create_integration(
        &self,
        who: &Principal,
        input: IntegrationWrite,
    ) -> Result<Integration> {
        validate_text("name", &input.name, 200)?;
        let (sealed, count) = input.sealed_secrets.unwrap_or_default();
        let id = new_id();
        let at = now();
        let mut tx = begin_write(&self.write).await?;
        sqlx::query(
            "INSERT INTO integrations (id, account_id, provider, name, secrets, secrets_count, \
             options, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(&who.account_id)
        .bind(&input.provider)
        .bind(input.name.trim())
        .bind(&sealed)
        .bind(count)
        .bind(input.options.to_string())
        .bind(at.0)
        .bind(at.0)
        .execute(&mut *tx)
        .await?;
        write_mappings(
            &mut tx,
            &who.account_id,
            &id,
            input.mappings.as_deref().unwrap_or_default(),
        )
        .await?;
        let integration = load_integration(&mut tx, &who.account_id, &id).await?;
        audit(
            &mut tx,
            AuditRecord {
                account_id: &who.account_id,
                actor: &actor_of(who),
                action: "integration.created",
                object_type: "integration",
                object_id: &id,
                license_id: None,
                customer_id: None,
                before: None,
                after: to_json(&integration),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(integration)
    }

    async fn list_integrations(&self, account_id: &str) -> Result<Vec<Integration>> {
        let mut conn = self.read.acquire().await?;
        let sql = format!(
            "SELECT {INTEGRATION_COLS} FROM integrations WHERE account_id = $1 ORDER BY id DESC"
        );
        let rows = sqlx::query(&sql)
            .bind(account_id)
            .fetch_all(&mut *conn)
            .await?;
        let mut all = rows
            .iter()
            .map(integration_from_row)
            .collect::<Result<Vec<_>>>()?;
        attach_mappings(&mut conn, &mut all).await?;
        Ok(all)
    }

    async fn get_integration(&self, account_id: &str, id: &str) -> Result<Integration> {
        let mut conn = self.read.acquire().await?;
        load_integration(&mut conn, account_id, id).await
    }

    async fn update_integration(
        &self,
        who: &Principal,
        id: &str,
        input: IntegrationWrite,
    ) -> Result<Integration> {
        validate_text("name", &input.name, 200)?;
        let mut tx = begin_write(&self.write).await?;
        let before = load_integration(&mut tx, &who.account_id, id).await?;
        sqlx::query(
            "UPDATE integrations SET name = $3, options = $4, updated_at = $5 \
             WHERE account_id = $1 AND id = $2",
        )
        .bind(&who.account_id)
        .bind(id)
        .bind(input.name.trim())
        .bind(input.options.to_string())
        .bind(now().0)
        .execute(&mut *tx)
        .await?;
        if let Some((sealed, count)) = &input.sealed_secrets {
            sqlx::query("UPDATE integrations SET secrets = $2, secrets_count = $3 WHERE id = $1")
                .bind(id)
                .bind(sealed)
                .bind(count)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(mappings) = &input.mappings {
            write_mappings(&mut tx, &who.account_id, id, mappings).await?;
        }
        let after = load_integration(&mut tx, &who.account_id, id).await?;
        audit(
            &mut tx,
            AuditRecord {
                account_id: &who.account_id,
                actor: &actor_of(who),
                action: "integration.updated",
                object_type: "integration",
                object_id: id,
                license_id: None,
                customer_id: None,
                before: to_json(&before),
                after: to_json(&after),
            },
        )
        .await?;
        tx.commit().await?;
        if let Some(c) = &self.integrations {
            c.clear();
        }
        Ok(after)
    }

    async fn integration_for_webhook(&self, id: &str) -> Result<Option<(Integration, String)>> {
        let token = match &self.integrations {
            Some(c) => match c.get(id) {
                Some(hit) => return Ok(Some((*hit).clone())),
                None => Some(c.token()),
            },
            None => None,
        };
        let found = self.read_integration_for_webhook(id).await?;
        if let (Some(c), Some(token), Some(entry)) = (&self.integrations, token, &found) {
            c.insert(token, entry.clone());
        }
        Ok(found)
    }

    async fn record_webhook_failure(
        &self,
        integration: &Integration,
        code: &str,
        message: &str,
    ) -> Result<()> {
        let mut tx = begin_write(&self.write).await?;
        sqlx::query(
            "INSERT INTO webhook_failures (id, account_id, integration_id, code, message, \
             received_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new_id())
        .bind(&integration.account_id)
        .bind(&integration.id)
        .bind(code)
        .bind(message.chars().take(1000).collect::<String>())
        .bind(now().0)
        .execute(&mut *tx)
        .await?;
        // Bounded: a flood of forged deliveries cannot fill the disk.
        sqlx::query(&format!(
            "DELETE FROM webhook_failures WHERE integration_id = $1 AND id NOT IN \
             (SELECT id FROM webhook_failures WHERE integration_id = $1 ORDER BY id DESC \
             LIMIT {FAILURE_LOG_SIZE})"
        ))
        .bind(&integration.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_webhook_failures(
        &self,
        account_id: &str,
        integration_id: &str,
    ) -> Result<Vec<WebhookFailure>> {
        let mut conn = self.read.acquire().await?;
        load_integration(&mut conn, account_id, integration_id).await?;
        let rows = sqlx::query(
            "SELECT id, integration_id, code, message, received_at FROM webhook_failures \
             WHERE account_id = $1 AND integration_id = $2 ORDER BY id DESC",
        )
        .bind(account_id)
        .bind(integration_id)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WebhookFailure {
                    id: r.try_get("id")?,
                    integration_id: r.try_get("integration_id")?,
                    code: r.try_get("code")?,
                    message: r.try_get("message")?,
                    received_at: ts(r.try_get("received_at")?),
                })
            })
            .collect()
    }

    async fn insert_event(
        &self,
        integration: &Integration,
        event: NewWebhookEvent,
    ) -> Result<Inserted> {
        let mut tx = begin_write(&self.write).await?;
        let inserted = insert_event_in(&mut tx, integration, event).await?;
        tx.commit().await?;
        Ok(inserted)
    }

    async fn receive_event(
        &self,
        integration: &Integration,
        event: NewWebhookEvent,
    ) -> Result<Inserted> {
        let parsed: BillingEvent = serde_json::from_value(event.normalized.clone())?;
        let job = ReceiveJob {
            integration: integration.clone(),
            normalized: event.normalized.to_string(),
            event,
            parsed,
        };
        let (inserted, touched) = match &self.group_commit {
            Some(queue) => {
                let (reply, answer) = tokio::sync::oneshot::channel();
                queue
                    .send((job, reply))
                    .await
                    .map_err(|_| StoreError::Config("the gateway writer has stopped".into()))?;
                answer.await.map_err(|_| {
                    StoreError::Config("the gateway writer dropped this delivery".into())
                })??
            }
            None => {
                let mut attempt = 1;
                loop {
                    match receive_together(&self.write, std::slice::from_ref(&job)).await {
                        // Another node took the same new delivery, subscription or customer at
                        // once: applied again, this one sees the winner's rows.
                        Err(StoreError::Database(e))
                            if is_unique_violation(&e) && attempt < RECEIVE_ATTEMPTS =>
                        {
                            attempt += 1;
                        }
                        other => break other.map(|mut all| all.remove(0))?,
                    }
                }
            }
        };
        for key in touched {
            self.invalidate_key(&key);
        }
        Ok(inserted)
    }

    async fn list_events(
        &self,
        account_id: &str,
        filter: EventFilter,
        page: PageRequest,
    ) -> Result<Page<WebhookEvent>> {
        let mut q = ListQuery::new(account_id);
        if let Some(v) = filter.integration_id {
            q.push("integration_id = ?", v);
        }
        if let Some(v) = filter.status {
            q.push("status = ?", v);
        }
        if let Some(v) = filter.event_type {
            let n = q.args.len() + 1;
            q.args.push(v);
            q.conditions
                .push(format!("(event_type = ${n} OR kind = ${n})"));
        }
        let q = q.sql("webhook_events", EVENT_COLS, &page);
        fetch_page(&self.read, q, &page, event_from_row, |e| e.id.clone()).await
    }

    async fn get_event(&self, account_id: &str, id: &str) -> Result<WebhookEvent> {
        let sql = format!(
            "SELECT {EVENT_COLS}, raw_body FROM webhook_events WHERE account_id = $1 AND id = $2"
        );
        let row = sqlx::query(&sql)
            .bind(account_id)
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .ok_or(StoreError::NotFound("event"))?;
        let mut event = event_from_row(&row)?;
        event.raw_payload = Some(row.try_get("raw_body")?);
        Ok(event)
    }

    async fn apply_event(&self, account_id: &str, event_id: &str) -> Result<String> {
        let (status, touched) = self.apply_event_tx(account_id, event_id).await?;
        for key in touched {
            self.invalidate_key(&key);
        }
        Ok(status)
    }

    async fn pending_events(&self, limit: i64) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(&format!(
            "SELECT account_id, id FROM webhook_events WHERE status = 'pending' ORDER BY id \
             LIMIT {limit}"
        ))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("account_id")?, r.try_get("id")?)))
            .collect()
    }

    async fn list_subscriptions(
        &self,
        account_id: &str,
        page: PageRequest,
    ) -> Result<Page<Subscription>> {
        let q = ListQuery::new(account_id).sql("subscriptions", SUBSCRIPTION_COLS, &page);
        fetch_page(&self.read, q, &page, subscription_from_row, |s| {
            s.id.clone()
        })
        .await
    }

    async fn get_subscription(&self, account_id: &str, id: &str) -> Result<Subscription> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLS} FROM subscriptions WHERE account_id = $1 AND id = $2"
        );
        let row = sqlx::query(&sql)
            .bind(account_id)
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .ok_or(StoreError::NotFound("subscription"))?;
        subscription_from_row(&row)
    }
}

// ---------------------------------------------------------------------------------------------
// Applying an event: newer-wins into the subscription (or order) state, then reconcile.
//
// Each event reads what it needs (one query for the common case), then sends all its writes
// as one `WriteBatch`. On SQLite a queue of deliveries shares one transaction (group commit):
// the writer connection's BEGIN and COMMIT are paid once per group, not once per event.

use keygate_domain::billing::BillingEvent;
use keygate_domain::reconcile::{
    self, ExistingLicense, IntegrationOptions, LicenseChange, OrderState, SubscriptionState,
};

/// How often a delivery is applied when concurrent ones keep taking its new rows first.
const RECEIVE_ATTEMPTS: usize = 4;

/// Deliveries applied in one transaction at most (group commit).
const GROUP_COMMIT_MAX: usize = 64;

/// One verified delivery to store and apply.
struct ReceiveJob {
    integration: Integration,
    event: NewWebhookEvent,
    /// `event.normalized` as stored, serialized before the job queues for the writer.
    normalized: String,
    parsed: BillingEvent,
}

type Received = (Inserted, Vec<String>);
type ReceiveReply = tokio::sync::oneshot::Sender<Result<Received>>;

/// The single task that owns SQLite's writer for deliveries: it takes every delivery queued
/// while the previous group was being written and applies them in one transaction. A group that
/// fails is retried one delivery per transaction, so one bad delivery fails only itself.
///
/// It runs on a thread of its own (a one-thread runtime), not among the request handlers: the
/// writer is the one serial resource, and its next statement should not wait for a busy
/// request worker to get round to it.
fn spawn_group_commit(write: Pool<Db>) -> tokio::sync::mpsc::Sender<(ReceiveJob, ReceiveReply)> {
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
async fn receive_together(write: &Pool<Db>, jobs: &[ReceiveJob]) -> Result<Vec<Received>> {
    let mut tx = begin_write(write).await?;
    let mut results = Vec::with_capacity(jobs.len());
    // Deliveries that touch nothing in common read together: their lookups travel in one
    // round trip, and the run's writes in another. (Each round trip is one multi-statement
    // query, prepared once per shape and then cached: the lookups of N deliveries, or the
    // writes of a run.)
    let mut batch = WriteBatch::new();
    for run in independent_runs(jobs) {
        let run = &jobs[run];
        batch.flush(&mut tx).await?;
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
        let rows = batch.fetch(&mut tx).await?;
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
            results.push(receive_in(&mut tx, &mut batch, job, lookups).await?);
        }
    }
    batch.flush(&mut tx).await?;
    tx.commit().await?;
    Ok(results)
}

/// The subscription whose licenses are read with the lookups. Only on SQLite: PostgreSQL
/// locks the subscription row before its licenses, in the apply.
fn prefetched_subscription(job: &ReceiveJob) -> Option<&str> {
    let s = job.parsed.subscription.as_ref()?;
    (FOR_UPDATE.is_empty() && job.event.status == "pending").then_some(s.external_id.as_str())
}

fn push_subscription_licenses(
    batch: &mut WriteBatch,
    integration: &Integration,
    external_id: &str,
) {
    batch
        .push(&format!(
            "SELECT {LICENSE_COLS}, item_external_id, period_end FROM licenses \
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
    let outcome = if event.status == "pending" {
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
                .bind(o.status)
                .bind(o.actions)
                .bind(o.error_code)
                .bind(o.error)
                .bind(1_i64)
                .bind(o.applied_at);
            (o.status.to_string(), o.touched_keys)
        }
        None => {
            batch
                .bind(event.status)
                .bind("[]")
                .bind(None::<String>)
                .bind(None::<String>)
                .bind(0_i64)
                .bind(None::<i64>);
            (event.status.to_string(), Vec::new())
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

/// What applying an event reads before it writes, in one query.
#[derive(Debug, Default)]
struct Lookups {
    /// The delivery is already in the inbox: (event id, status).
    duplicate: Option<(String, String)>,
    customer_by_external_id: Option<String>,
    customer_by_email: Option<String>,
    /// The event's subscription as stored: `Some(None)` if Keygate has not seen it, `None` if
    /// the event names none.
    subscription: Option<Option<StoredSubscription>>,
}

#[derive(Debug, Clone)]
struct StoredSubscription {
    id: String,
    customer_id: Option<String>,
    state: String,
    /// Its licenses, when read with the lookups.
    licenses: Option<Vec<(License, ExistingLicense)>>,
}

/// The customer's email as Keygate keeps it (trimmed, lower case), if it looks like one.
fn customer_email(event: &BillingEvent) -> Option<String> {
    event
        .customer
        .as_ref()?
        .email
        .as_deref()
        .map(|e| e.trim().to_lowercase())
        .filter(|e| e.contains('@'))
}

/// Sends the writes pending in `batch` and the lookups in one round trip.
async fn lookups(
    conn: &mut DbConn,
    batch: &mut WriteBatch,
    integration: &Integration,
    provider_event_id: Option<&str>,
    event: &BillingEvent,
) -> Result<Lookups> {
    push_lookups(batch, integration, provider_event_id, event);
    let rows = batch.fetch(conn).await?;
    let row = rows
        .last()
        .ok_or_else(|| StoreError::Corrupt("the lookups answered no row".into()))?;
    parse_lookups(row, event)
}

/// The lookups query: it always answers exactly one row.
fn push_lookups(
    batch: &mut WriteBatch,
    integration: &Integration,
    provider_event_id: Option<&str>,
    event: &BillingEvent,
) {
    batch
        .push(
            "SELECT \
         (SELECT id FROM webhook_events WHERE integration_id = $1 AND provider_event_id = $2) \
           AS event_id, \
         (SELECT status FROM webhook_events WHERE integration_id = $1 \
           AND provider_event_id = $2) AS event_status, \
         (SELECT customer_id FROM customer_external_ids WHERE account_id = $3 AND provider = $4 \
           AND external_id = $5) AS by_external_id, \
         (SELECT id FROM customers WHERE account_id = $3 AND email = $6 ORDER BY id LIMIT 1) \
           AS by_email, \
         s.id AS subscription_id, s.customer_id AS subscription_customer_id, \
         s.state AS subscription_state \
         FROM (SELECT 1 AS one) AS one \
         LEFT JOIN subscriptions s ON s.integration_id = $1 AND s.external_id = $7",
        )
        .bind(integration.id.clone())
        .bind(provider_event_id.map(str::to_string))
        .bind(integration.account_id.clone())
        .bind(integration.provider.clone())
        .bind(event.customer.as_ref().and_then(|c| c.external_id.clone()))
        .bind(customer_email(event))
        .bind(event.subscription.as_ref().map(|s| s.external_id.clone()));
}

fn parse_lookups(row: &DbRow, event: &BillingEvent) -> Result<Lookups> {
    let event_id: Option<String> = row.try_get("event_id")?;
    let event_status: Option<String> = row.try_get("event_status")?;
    Ok(Lookups {
        duplicate: event_id.zip(event_status),
        customer_by_external_id: row.try_get("by_external_id")?,
        customer_by_email: row.try_get("by_email")?,
        subscription: match (&event.subscription, row.try_get("subscription_id")?) {
            (None, _) => None,
            (Some(_), None) => Some(None),
            (Some(_), Some(id)) => Some(Some(StoredSubscription {
                id,
                customer_id: row.try_get("subscription_customer_id")?,
                state: row.try_get("subscription_state")?,
                licenses: None,
            })),
        },
    })
}

/// What applying one event did, recorded on the event (`actions`).
struct Applied {
    actions: Vec<serde_json::Value>,
    /// License keys whose validation may have changed (cache invalidation after commit).
    touched_keys: Vec<String>,
}

fn upsert_customer(
    batch: &mut WriteBatch,
    account_id: &str,
    provider: &str,
    event: &BillingEvent,
    lookups: &Lookups,
    actor: &Actor,
    applied: &mut Applied,
) -> Option<String> {
    let c = event.customer.as_ref()?;
    let email = customer_email(event);
    // Match by platform id, then by email.
    let found = lookups
        .customer_by_external_id
        .clone()
        .or_else(|| lookups.customer_by_email.clone());
    let at = now();
    let id = match found {
        Some(id) => {
            // Fill what the platform tells and Keygate did not know; never erase.
            batch
                .push(
                    "UPDATE customers SET email = COALESCE(email, $3), \
                     name = COALESCE(name, $4), updated_at = $5 \
                     WHERE account_id = $1 AND id = $2",
                )
                .bind(account_id.to_string())
                .bind(id.clone())
                .bind(email.clone())
                .bind(c.name.clone())
                .bind(at.0);
            id
        }
        None => {
            if c.external_id.is_none() && email.is_none() {
                return None;
            }
            let id = new_id();
            batch
                .push(
                    "INSERT INTO customers (id, account_id, email, name, metadata, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, '{}', $5, $6)",
                )
                .bind(id.clone())
                .bind(account_id.to_string())
                .bind(email.clone())
                .bind(c.name.clone())
                .bind(at.0)
                .bind(at.0);
            audit_into(
                batch,
                AuditRecord {
                    account_id,
                    actor,
                    action: "customer.created",
                    object_type: "customer",
                    object_id: &id,
                    license_id: None,
                    customer_id: Some(&id),
                    before: None,
                    after: Some(serde_json::json!({"email": email, "name": c.name})),
                },
            );
            applied
                .actions
                .push(serde_json::json!({"action": "customer_created", "customer_id": id}));
            id
        }
    };
    if let Some(ext) = &c.external_id
        && lookups.customer_by_external_id.is_none()
    {
        batch
            .push(
                // No ON CONFLICT: on PostgreSQL, another node that created this customer a
                // moment ago makes this a unique violation, and the delivery is applied again
                // (it then finds that customer) instead of leaving a second one.
                "INSERT INTO customer_external_ids (account_id, provider, external_id, \
                 customer_id) VALUES ($1, $2, $3, $4)",
            )
            .bind(account_id.to_string())
            .bind(provider.to_string())
            .bind(ext.clone())
            .bind(id.clone());
    }
    Some(id)
}

/// Adds to `policies` every policy the mappings or the existing licenses name that it lacks.
async fn complete_policies(
    conn: &mut DbConn,
    integration: &Integration,
    licenses: &[(License, ExistingLicense)],
    policies: &mut HashMap<String, Policy>,
) -> Result<Vec<reconcile::Mapping>> {
    let mappings: Vec<reconcile::Mapping> = integration
        .mappings
        .iter()
        .map(|m| reconcile::Mapping {
            external_id: m.external_id.clone(),
            policy_id: m.policy_id.clone(),
        })
        .collect();
    let wanted = mappings
        .iter()
        .map(|m| &m.policy_id)
        .chain(licenses.iter().map(|(l, _)| &l.policy_id));
    for id in wanted {
        if !policies.contains_key(id)
            && let Some(p) = load_policy(conn, &integration.account_id, id).await?
        {
            policies.insert(id.clone(), p);
        }
    }
    Ok(mappings)
}

async fn existing_licenses(
    conn: &mut DbConn,
    account_id: &str,
    column: &str,
    owner_id: &str,
) -> Result<Vec<(License, ExistingLicense)>> {
    let sql = format!(
        "SELECT {LICENSE_COLS}, item_external_id, period_end FROM licenses \
         WHERE account_id = $1 AND {column} = $2{FOR_UPDATE}"
    );
    let rows = sqlx::query(&sql)
        .bind(account_id)
        .bind(owner_id)
        .fetch_all(&mut *conn)
        .await?;
    let mut licenses = rows
        .iter()
        .map(existing_from_row)
        .collect::<Result<Vec<_>>>()?;
    // In id order (oldest first) for a deterministic plan; sorted here so the query can use
    // the (account, owner) index whatever the planner thinks of the sort.
    licenses.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    Ok(licenses)
}

fn existing_from_row(row: &DbRow) -> Result<(License, ExistingLicense)> {
    let l = license_from_row(row)?;
    let e = ExistingLicense {
        id: l.id.clone(),
        policy_id: l.policy_id.clone(),
        status: l.status,
        expires_at: l.expires_at,
        quantity: l.quantity,
        item_external_id: row.try_get("item_external_id")?,
        period_end: row.try_get::<Option<i64>, _>("period_end")?.map(ts),
    };
    Ok((l, e))
}

/// Where a created license belongs.
struct Owner<'a> {
    account_id: &'a str,
    customer_id: Option<&'a str>,
    subscription_id: Option<&'a str>,
    order_id: Option<&'a str>,
}

fn apply_changes(
    batch: &mut WriteBatch,
    owner: &Owner<'_>,
    changes: Vec<LicenseChange>,
    licenses: &[(License, ExistingLicense)],
    policies: &HashMap<String, Policy>,
    actor: &Actor,
    applied: &mut Applied,
) -> Result<()> {
    let at = now();
    for change in changes {
        applied.actions.push(serde_json::to_value(&change)?);
        if let LicenseChange::Create {
            policy_id,
            item_external_id,
            quantity,
            expires_at,
            period_end,
            status,
        } = &change
        {
            let policy = policies
                .get(policy_id)
                .ok_or(StoreError::NotFound("policy"))?;
            let key = generate_license_key();
            let license = License {
                id: new_id(),
                key: key.clone(),
                policy_id: policy.id.clone(),
                product_id: policy.product_id.clone(),
                customer_id: owner.customer_id.map(str::to_string),
                subscription_id: owner.subscription_id.map(str::to_string),
                status: *status,
                starts_at: at,
                expires_at: expires_at
                    .or_else(|| policy.initial_term_seconds().map(|s| at.plus_seconds(s))),
                overrides: Overrides::default(),
                quantity: Some(*quantity),
                metadata: serde_json::json!({}),
                created_at: at,
                updated_at: at,
            };
            batch
                .push(
                    "INSERT INTO licenses (id, account_id, license_key, key_hash, policy_id, \
                     product_id, customer_id, subscription_id, status, starts_at, expires_at, \
                     overrides, quantity, metadata, created_at, updated_at, item_external_id, \
                     order_id, period_end) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
                     $11, $12, $13, '{}', $14, $15, $16, $17, $18)",
                )
                .bind(license.id.clone())
                .bind(owner.account_id.to_string())
                .bind(license.key.clone())
                .bind(credential_hash(&license.key))
                .bind(license.policy_id.clone())
                .bind(license.product_id.clone())
                .bind(license.customer_id.clone())
                .bind(license.subscription_id.clone())
                .bind(license.status.as_str())
                .bind(at.0)
                .bind(license.expires_at.map(|t| t.0))
                .bind(serde_json::to_string(&license.overrides)?)
                .bind(license.quantity)
                .bind(at.0)
                .bind(at.0)
                .bind(item_external_id.clone())
                .bind(owner.order_id.map(str::to_string))
                .bind(period_end.map(|t| t.0));
            let view = license.view(policy, 0, at);
            audit_into(
                batch,
                license_audit(
                    owner.account_id,
                    actor,
                    "license.created",
                    &license,
                    None,
                    Some(&view),
                ),
            );
            if let Some(last) = applied.actions.last_mut() {
                last["license_id"] = serde_json::json!(license.id);
            }
            continue;
        }
        let Some(id) = change.license_id() else {
            continue;
        };
        let Some((current, _)) = licenses.iter().find(|(l, _)| l.id == id) else {
            continue;
        };
        let mut license = current.clone();
        let mut item: Option<&str> = None;
        let action = match &change {
            LicenseChange::SetExpiry { expires_at, .. } => {
                license.expires_at = Some(*expires_at);
                "license.renewed"
            }
            LicenseChange::ChangePolicy {
                policy_id,
                item_external_id,
                ..
            } => {
                let policy = policies
                    .get(policy_id)
                    .ok_or(StoreError::NotFound("policy"))?;
                license.policy_id = policy.id.clone();
                license.product_id = policy.product_id.clone();
                item = Some(item_external_id);
                "license.policy_changed"
            }
            LicenseChange::SetQuantity { quantity, .. } => {
                license.quantity = Some(*quantity);
                "license.updated"
            }
            LicenseChange::Suspend { .. } => {
                license.status = LicenseStatus::Suspended;
                "license.suspended"
            }
            LicenseChange::Reinstate { .. } => {
                license.status = LicenseStatus::Active;
                "license.reinstated"
            }
            LicenseChange::Revoke { .. } => {
                license.status = LicenseStatus::Revoked;
                "license.revoked"
            }
            LicenseChange::Create { .. } => unreachable!("handled above"),
        };
        license.updated_at = at;
        save_license_into(batch, owner.account_id, &license)?;
        if let Some(item) = item {
            batch
                .push("UPDATE licenses SET item_external_id = $2 WHERE id = $1")
                .bind(license.id.clone())
                .bind(item.to_string());
        }
        let before = policies
            .get(&current.policy_id)
            .map(|p| current.view(p, 0, at));
        let after = policies
            .get(&license.policy_id)
            .map(|p| license.view(p, 0, at));
        audit_into(
            batch,
            license_audit(
                owner.account_id,
                actor,
                action,
                &license,
                before.as_ref(),
                after.as_ref(),
            ),
        );
        applied.touched_keys.push(license.key.clone());
    }
    Ok(())
}

/// What the apply of one event works with.
struct ApplyContext<'a> {
    integration: &'a Integration,
    options: &'a IntegrationOptions,
    actor: &'a Actor,
}

/// Newer-wins into the subscription state, persist, then reconcile its licenses.
#[allow(clippy::too_many_arguments)]
async fn apply_to_subscription(
    conn: &mut DbConn,
    batch: &mut WriteBatch,
    cx: &ApplyContext<'_>,
    event: &BillingEvent,
    external_id: &str,
    looked_up: Option<Option<StoredSubscription>>,
    customer_id: Option<String>,
    policies: &mut HashMap<String, Policy>,
    applied: &mut Applied,
) -> Result<std::result::Result<(), reconcile::ReconcileError>> {
    let integration = cx.integration;
    let account_id = integration.account_id.as_str();
    let row = match looked_up {
        Some(None) => None,
        // SQLite: this transaction is the only writer, so what the lookups read is current.
        // PostgreSQL reads it again under a row lock.
        Some(Some(stored)) if FOR_UPDATE.is_empty() => Some(stored),
        _ => {
            let sql = format!(
                "SELECT id, customer_id, state FROM subscriptions WHERE integration_id = $1 \
                 AND external_id = $2{FOR_UPDATE}"
            );
            let found = sqlx::query(&sql)
                .bind(&integration.id)
                .bind(external_id)
                .fetch_optional(&mut *conn)
                .await?;
            match found {
                Some(r) => Some(StoredSubscription {
                    id: r.try_get("id")?,
                    customer_id: r.try_get("customer_id")?,
                    state: r.try_get("state")?,
                    licenses: None,
                }),
                None => None,
            }
        }
    };
    let at = now();
    let (sub_id, stored_customer, state) = match &row {
        Some(r) => (
            r.id.clone(),
            r.customer_id.clone(),
            Some(parse_json::<SubscriptionState>(&r.state)?),
        ),
        None => (new_id(), None, None),
    };
    let customer_id = stored_customer.or(customer_id);
    let next = reconcile::apply_event(state.as_ref(), event);
    let state = match (next, state) {
        (Some(next), _) => next,
        (None, Some(state)) => state,
        // An event that tells nothing about a subscription Keygate has not seen.
        (None, None) => return Ok(Ok(())),
    };
    let status = state
        .status
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|| "unknown".into());
    let grace = cx.options.grace_seconds;
    if row.is_some() {
        batch
            .push(
                "UPDATE subscriptions SET customer_id = $2, status = $3, \
                 current_period_end = $4, state = $5, payment_failed_at = $6, \
                 payment_grace_seconds = $7, last_event_at = $8, updated_at = $9 WHERE id = $1",
            )
            .bind(sub_id.clone())
            .bind(customer_id.clone())
            .bind(status)
            .bind(state.current_period_end.map(|t| t.0))
            .bind(serde_json::to_string(&state)?)
            .bind(state.payment_failed_at.map(|t| t.0))
            .bind(grace)
            .bind(state.last_event_at.map(|t| t.0))
            .bind(at.0);
    } else {
        batch
            .push(
                "INSERT INTO subscriptions (id, account_id, integration_id, provider, \
                 external_id, customer_id, status, current_period_end, state, \
                 payment_failed_at, payment_grace_seconds, last_event_at, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
                 $14)",
            )
            .bind(sub_id.clone())
            .bind(account_id.to_string())
            .bind(integration.id.clone())
            .bind(integration.provider.clone())
            .bind(external_id.to_string())
            .bind(customer_id.clone())
            .bind(status)
            .bind(state.current_period_end.map(|t| t.0))
            .bind(serde_json::to_string(&state)?)
            .bind(state.payment_failed_at.map(|t| t.0))
            .bind(grace)
            .bind(state.last_event_at.map(|t| t.0))
            .bind(at.0)
            .bind(at.0);
    }
    let licenses = match row.map(|r| r.licenses) {
        Some(Some(prefetched)) => prefetched,
        Some(None) => existing_licenses(conn, account_id, "subscription_id", &sub_id).await?,
        None => Vec::new(),
    };
    // Payment state lives on the subscription: every license of it validates differently now.
    applied
        .touched_keys
        .extend(licenses.iter().map(|(l, _)| l.key.clone()));
    let mappings = complete_policies(conn, integration, &licenses, policies).await?;
    let existing: Vec<ExistingLicense> = licenses.iter().map(|(_, e)| e.clone()).collect();
    let changes = match reconcile::plan(&state, &existing, policies, &mappings, cx.options, at) {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let owner = Owner {
        account_id,
        customer_id: customer_id.as_deref(),
        subscription_id: Some(&sub_id),
        order_id: None,
    };
    apply_changes(
        batch, &owner, changes, &licenses, policies, cx.actor, applied,
    )?;
    Ok(Ok(()))
}

#[allow(clippy::too_many_arguments)]
async fn apply_to_order(
    conn: &mut DbConn,
    batch: &mut WriteBatch,
    cx: &ApplyContext<'_>,
    event: &BillingEvent,
    external_id: &str,
    customer_id: Option<String>,
    policies: &mut HashMap<String, Policy>,
    applied: &mut Applied,
) -> Result<std::result::Result<(), reconcile::ReconcileError>> {
    let integration = cx.integration;
    let account_id = integration.account_id.as_str();
    let sql = format!(
        "SELECT id, customer_id, state FROM orders WHERE integration_id = $1 \
         AND external_id = $2{FOR_UPDATE}"
    );
    let row = sqlx::query(&sql)
        .bind(&integration.id)
        .bind(external_id)
        .fetch_optional(&mut *conn)
        .await?;
    let at = now();
    let (order_id, stored_customer, state) = match &row {
        Some(r) => (
            r.try_get::<String, _>("id")?,
            r.try_get::<Option<String>, _>("customer_id")?,
            Some(parse_json::<OrderState>(r.try_get::<&str, _>("state")?)?),
        ),
        None => (new_id(), None, None),
    };
    let customer_id = stored_customer.or(customer_id);
    let state = match (reconcile::apply_order_event(state.as_ref(), event), state) {
        (Some(next), _) => next,
        (None, Some(state)) => state,
        (None, None) => return Ok(Ok(())),
    };
    if row.is_some() {
        batch
            .push("UPDATE orders SET customer_id = $2, state = $3, updated_at = $4 WHERE id = $1")
            .bind(order_id.clone())
            .bind(customer_id.clone())
            .bind(serde_json::to_string(&state)?)
            .bind(at.0);
    } else {
        batch
            .push(
                "INSERT INTO orders (id, account_id, integration_id, external_id, customer_id, \
                 state, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(order_id.clone())
            .bind(account_id.to_string())
            .bind(integration.id.clone())
            .bind(external_id.to_string())
            .bind(customer_id.clone())
            .bind(serde_json::to_string(&state)?)
            .bind(at.0)
            .bind(at.0);
    }
    let licenses = if row.is_some() {
        existing_licenses(conn, account_id, "order_id", &order_id).await?
    } else {
        Vec::new()
    };
    let mappings = complete_policies(conn, integration, &licenses, policies).await?;
    let existing: Vec<ExistingLicense> = licenses.iter().map(|(_, e)| e.clone()).collect();
    let changes = match reconcile::plan_order(&state, &existing, policies, &mappings) {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let owner = Owner {
        account_id,
        customer_id: customer_id.as_deref(),
        subscription_id: None,
        order_id: Some(&order_id),
    };
    apply_changes(
        batch, &owner, changes, &licenses, policies, cx.actor, applied,
    )?;
    Ok(Ok(()))
}

impl SqlStore {
    /// The integration, its mappings and their policies, for a webhook delivery.
    async fn read_integration_for_webhook(
        &self,
        id: &str,
    ) -> Result<Option<(Integration, String)>> {
        // The integration, its mappings and their policies in one query: a delivery's only
        // read before it queues for the writer.
        let sql = format!(
            "SELECT i.{}, i.secrets, m.external_id AS m_external_id, \
             m.policy_id AS m_policy_id, {} FROM integrations i \
             LEFT JOIN integration_mappings m ON m.integration_id = i.id \
             LEFT JOIN policies p ON p.account_id = i.account_id AND p.id = m.policy_id \
             WHERE i.id = $1 ORDER BY m.external_id",
            INTEGRATION_COLS.replace(", ", ", i."),
            *POLICY_COLS_P
        );
        let rows = sqlx::query(&sql).bind(id).fetch_all(&self.read).await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let secrets: String = first.try_get("secrets")?;
        let mut integration = integration_from_row(first)?;
        for row in &rows {
            let Some(external_id) = row.try_get::<Option<String>, _>("m_external_id")? else {
                continue;
            };
            let policy_id: String = row.try_get("m_policy_id")?;
            if row.try_get::<Option<String>, _>("p_id")?.is_some()
                && !integration
                    .mapped_policies
                    .iter()
                    .any(|p| p.id == policy_id)
            {
                integration
                    .mapped_policies
                    .push(policy_from_row(row, "p_")?);
            }
            integration.mappings.push(Mapping {
                external_id,
                policy_id,
            });
        }
        Ok(Some((integration, secrets)))
    }

    async fn apply_event_tx(
        &self,
        account_id: &str,
        event_id: &str,
    ) -> Result<(String, Vec<String>)> {
        let mut tx = begin_write(&self.write).await?;
        let outcome = apply_stored(&mut tx, account_id, event_id).await?;
        tx.commit().await?;
        Ok(outcome)
    }
}

/// Applies a stored inbox event inside the caller's transaction; returns the event's new
/// status and the license keys whose validation may have changed.
async fn apply_stored(
    tx: &mut DbConn,
    account_id: &str,
    event_id: &str,
) -> Result<(String, Vec<String>)> {
    let sql = format!(
        "SELECT {EVENT_COLS} FROM webhook_events WHERE account_id = $1 AND id = $2{FOR_UPDATE}"
    );
    let row = sqlx::query(&sql)
        .bind(account_id)
        .bind(event_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("event"))?;
    let stored = event_from_row(&row)?;
    if stored.status == "ignored" {
        return Ok((stored.status, Vec::new()));
    }
    let event: BillingEvent = serde_json::from_value(stored.event.clone())?;
    let integration = load_integration(tx, account_id, &stored.integration_id).await?;
    let mut batch = WriteBatch::new();
    let lookups = lookups(tx, &mut batch, &integration, None, &event).await?;
    let mut policies = HashMap::new();
    let outcome = apply_loaded(
        tx,
        &mut batch,
        &integration,
        event_id,
        &event,
        &lookups,
        &mut policies,
    )
    .await?;
    batch
        .push(
            "UPDATE webhook_events SET status = $2, actions = $3, error_code = $4, error = $5, \
             attempts = attempts + 1, applied_at = $6 WHERE id = $1",
        )
        .bind(event_id.to_string())
        .bind(outcome.status)
        .bind(outcome.actions)
        .bind(outcome.error_code)
        .bind(outcome.error)
        .bind(outcome.applied_at);
    batch.flush(tx).await?;
    Ok((outcome.status.to_string(), outcome.touched_keys))
}

/// Applies an event already in hand; its writes go into `batch`, which the caller sends.
async fn apply_loaded(
    tx: &mut DbConn,
    batch: &mut WriteBatch,
    integration: &Integration,
    event_id: &str,
    event: &BillingEvent,
    lookups: &Lookups,
    policies: &mut HashMap<String, Policy>,
) -> Result<ApplyOutcome> {
    let account_id = integration.account_id.as_str();
    let options: IntegrationOptions =
        serde_json::from_value(integration.options.clone()).unwrap_or_default();
    let actor = Actor::WebhookEvent(event_id.to_string());
    let cx = ApplyContext {
        integration,
        options: &options,
        actor: &actor,
    };
    let mut applied = Applied {
        actions: Vec::new(),
        touched_keys: Vec::new(),
    };
    let customer_id = upsert_customer(
        batch,
        account_id,
        &integration.provider,
        event,
        lookups,
        &actor,
        &mut applied,
    );
    // A subscription event; or an order event about an invoice of a known subscription
    // (Stripe refunds name only the invoice); or a one-time order.
    let mut subscription_id = event.subscription.as_ref().map(|s| s.external_id.clone());
    let mut looked_up = lookups.subscription.clone();
    if subscription_id.is_none()
        && let Some(order) = &event.order
    {
        let rows =
            sqlx::query("SELECT external_id, state FROM subscriptions WHERE integration_id = $1")
                .bind(&integration.id)
                .fetch_all(&mut *tx)
                .await?;
        for r in rows {
            let state: SubscriptionState = parse_json(r.try_get::<&str, _>("state")?)?;
            if state.has_order(&order.external_id) {
                subscription_id = Some(r.try_get("external_id")?);
                looked_up = None;
                break;
            }
        }
    }
    let outcome = match (&subscription_id, &event.order) {
        (Some(sub), _) => {
            let mut event = event.clone();
            if event.subscription.is_none() {
                event.subscription = Some(keygate_domain::billing::SubscriptionSnapshot::partial(
                    sub.clone(),
                ));
            }
            apply_to_subscription(
                tx,
                batch,
                &cx,
                &event,
                sub,
                looked_up,
                customer_id,
                policies,
                &mut applied,
            )
            .await?
        }
        (None, Some(order)) => {
            apply_to_order(
                tx,
                batch,
                &cx,
                event,
                &order.external_id,
                customer_id,
                policies,
                &mut applied,
            )
            .await?
        }
        (None, None) => Ok(()),
    };
    let (status, code, message) = match &outcome {
        Ok(()) => ("applied", None, None),
        Err(e) => ("failed", Some(e.code()), Some(e.to_string())),
    };
    let actions = serde_json::Value::Array(applied.actions);
    // Outbound: `billing_event.applied` / `billing_event.failed`.
    let (event_type, data) = billing_event_outbound(
        integration,
        event_id,
        event,
        status,
        &actions,
        code,
        &message,
    );
    enqueue_outbound_into(batch, account_id, event_type, &data);
    Ok(ApplyOutcome {
        status,
        actions: actions.to_string(),
        error_code: code,
        error: message,
        applied_at: outcome.is_ok().then(|| now().0),
        touched_keys: applied.touched_keys,
    })
}

/// What applying an event decided, for its inbox row.
struct ApplyOutcome {
    status: &'static str,
    actions: String,
    error_code: Option<&'static str>,
    error: Option<String>,
    applied_at: Option<i64>,
    touched_keys: Vec<String>,
}
