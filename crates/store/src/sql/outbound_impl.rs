// Included once per engine by `sql/mod.rs`, after `store_impl.rs` (same module: its helpers and
// imports are in scope). `SKIP_LOCKED` comes from the including module.

use crate::outbound::{
    Attempt, AttemptRecord, Delivery, DueDelivery, EndpointPatch, EndpointWrite, OutboundStore,
    Outcome, Swept, WebhookEndpoint, decode_event_types, encode_event_types,
};

const ENDPOINT_COLS: &str = "id, account_id, url, description, event_types, enabled, \
     disabled_reason, previous_secret_expires_at, created_at, updated_at";
const DELIVERY_COLS: &str = "id, endpoint_id, event_type, payload, status, attempts, \
     next_attempt_at, last_status, last_error, last_attempt_at, created_at, updated_at";

/// The outbox: one row per subscribed, enabled endpoint of the account, in one statement (and
/// nothing more when the account has no endpoint). `$1` is the message id (`webhook-id`).
const ENQUEUE_SQL: &str = "INSERT INTO outbound_deliveries (id, endpoint_id, account_id, \
     event_type, payload, status, attempts, next_attempt_at, created_at, updated_at) \
     SELECT $1, e.id, $2, $3, '{\"type\":\"' || $3 || '\",\"timestamp\":\"' || $6 || \
     '\",\"data\":' || $4 || '}', 'pending', 0, $5, $5, $5 FROM webhook_endpoints e \
     WHERE e.account_id = $2 AND e.enabled AND (e.event_types = '*' OR e.event_types LIKE $7)";

/// Enqueues `event_type` with `data` (JSON text) for the account's subscribed endpoints, in the
/// caller's transaction: the event is durable exactly when the change is.
async fn enqueue_outbound(
    conn: &mut DbConn,
    account_id: &str,
    event_type: &str,
    data: &str,
) -> Result<()> {
    let mut batch = WriteBatch::new();
    enqueue_outbound_into(&mut batch, account_id, event_type, data);
    batch.flush(conn).await
}

/// The same, as part of a change's write batch.
fn enqueue_outbound_into(batch: &mut WriteBatch, account_id: &str, event_type: &str, data: &str) {
    let at = now();
    // The payload `{"type", "timestamp", "data"}` is assembled by the statement, only for the
    // endpoints it finds. Event types are a fixed list of plain words: nothing to escape.
    batch
        .push(ENQUEUE_SQL)
        .bind(format!("msg_{}", new_id()))
        .bind(account_id.to_string())
        .bind(event_type.to_string())
        .bind(data.to_string())
        .bind(at.0)
        .bind(at.to_rfc3339())
        .bind(format!("%,{event_type},%"));
    crate::outbound::ENQUEUED.notify_one();
}

/// `billing_event.applied` or `billing_event.failed`, and its data: the inbox event as the API
/// shows it, in short.
fn billing_event_outbound(
    integration: &Integration,
    event_id: &str,
    event: &BillingEvent,
    status: &str,
    actions: &serde_json::Value,
    code: Option<&str>,
    message: &Option<String>,
) -> (&'static str, String) {
    let event_type = if status == "applied" {
        "billing_event.applied"
    } else {
        "billing_event.failed"
    };
    let error = code.map(|c| serde_json::json!({"code": c, "message": message}));
    let data = serde_json::json!({
        "id": event_id,
        "integration_id": integration.id,
        "provider": integration.provider,
        "provider_event_id": event.event_id,
        "event_type": event.event_type,
        "kind": event.kind.as_str(),
        "occurred_at": event.occurred_at,
        "status": status,
        "actions": actions,
        "error": error,
    });
    (event_type, data.to_string())
}

fn endpoint_from_row(row: &DbRow) -> Result<WebhookEndpoint> {
    Ok(WebhookEndpoint {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        event_types: decode_event_types(row.try_get::<&str, _>("event_types")?),
        enabled: row.try_get("enabled")?,
        disabled_reason: row.try_get("disabled_reason")?,
        previous_secret_expires_at: row
            .try_get::<Option<i64>, _>("previous_secret_expires_at")?
            .map(ts),
        created_at: ts(row.try_get("created_at")?),
        updated_at: ts(row.try_get("updated_at")?),
    })
}

fn delivery_from_row(row: &DbRow) -> Result<Delivery> {
    let status: String = row.try_get("status")?;
    Ok(Delivery {
        id: row.try_get("id")?,
        endpoint_id: row.try_get("endpoint_id")?,
        event_type: row.try_get("event_type")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: if status == "pending" {
            Some(ts(row.try_get("next_attempt_at")?))
        } else {
            None
        },
        status,
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
        last_attempt_at: row.try_get::<Option<i64>, _>("last_attempt_at")?.map(ts),
        created_at: ts(row.try_get("created_at")?),
        updated_at: ts(row.try_get("updated_at")?),
        payload: parse_json(row.try_get::<&str, _>("payload")?)?,
        attempt_log: Vec::new(),
    })
}

async fn load_endpoint(conn: &mut DbConn, account_id: &str, id: &str) -> Result<WebhookEndpoint> {
    let sql =
        format!("SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE account_id = $1 AND id = $2");
    let row = sqlx::query(&sql)
        .bind(account_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound("endpoint"))?;
    endpoint_from_row(&row)
}

/// Attaches every delivery's attempts (one query for the page).
async fn attach_attempts(
    conn: &mut DbConn,
    endpoint_id: &str,
    deliveries: &mut [Delivery],
) -> Result<()> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT message_id, attempted_at, status_code, error, response_body, duration_ms \
         FROM outbound_attempts WHERE endpoint_id = $1 AND message_id IN ({}) ORDER BY id",
        placeholders(2, deliveries.len())
    );
    let mut q = sqlx::query(&sql).bind(endpoint_id);
    for d in deliveries.iter() {
        q = q.bind(d.id.as_str());
    }
    let index: HashMap<String, usize> = deliveries
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.clone(), i))
        .collect();
    for row in q.fetch_all(&mut *conn).await? {
        let id: String = row.try_get("message_id")?;
        if let Some(&i) = index.get(&id) {
            deliveries[i].attempt_log.push(Attempt {
                attempted_at: ts(row.try_get("attempted_at")?),
                status_code: row.try_get("status_code")?,
                error: row.try_get("error")?,
                response_body: row.try_get("response_body")?,
                duration_ms: row.try_get("duration_ms")?,
            });
        }
    }
    Ok(())
}

fn endpoint_audit<'a>(
    who: &'a Principal,
    actor: &'a Actor,
    action: &'a str,
    endpoint: &'a WebhookEndpoint,
    before: Option<&WebhookEndpoint>,
    after: Option<&WebhookEndpoint>,
) -> AuditRecord<'a> {
    AuditRecord {
        account_id: &who.account_id,
        actor,
        action,
        object_type: "webhook_endpoint",
        object_id: &endpoint.id,
        license_id: None,
        customer_id: None,
        before: before.and_then(to_json),
        after: after.and_then(to_json),
    }
}

fn validate_description(d: &Option<String>) -> Result<()> {
    if matches!(d, Some(d) if d.len() > 1000) {
        return Err(StoreError::invalid(
            "INVALID_FIELD",
            "`description` must be at most 1000 characters",
        ));
    }
    Ok(())
}

#[async_trait]
impl OutboundStore for SqlStore {
    async fn create_endpoint(
        &self,
        who: &Principal,
        input: EndpointWrite,
    ) -> Result<WebhookEndpoint> {
        let event_types = encode_event_types(&input.event_types)?;
        validate_description(&input.description)?;
        let at = now();
        let endpoint = WebhookEndpoint {
            id: new_id(),
            account_id: who.account_id.clone(),
            url: input.url,
            description: input.description,
            event_types: decode_event_types(&event_types),
            enabled: input.enabled,
            disabled_reason: None,
            previous_secret_expires_at: None,
            created_at: at,
            updated_at: at,
        };
        let mut tx = begin_write(&self.write).await?;
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, account_id, url, description, event_types, \
             enabled, secret, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(&endpoint.id)
        .bind(&who.account_id)
        .bind(&endpoint.url)
        .bind(&endpoint.description)
        .bind(&event_types)
        .bind(endpoint.enabled)
        .bind(&input.sealed_secret)
        .bind(at.0)
        .execute(&mut *tx)
        .await?;
        let actor = actor_of(who);
        audit(
            &mut tx,
            endpoint_audit(
                who,
                &actor,
                "webhook_endpoint.created",
                &endpoint,
                None,
                Some(&endpoint),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(endpoint)
    }

    async fn list_endpoints(
        &self,
        account_id: &str,
        page: PageRequest,
    ) -> Result<Page<WebhookEndpoint>> {
        let q = ListQuery::new(account_id).sql("webhook_endpoints", ENDPOINT_COLS, &page);
        fetch_page(&self.read, q, &page, endpoint_from_row, |e| e.id.clone()).await
    }

    async fn get_endpoint(&self, account_id: &str, id: &str) -> Result<WebhookEndpoint> {
        let mut conn = self.read.acquire().await?;
        load_endpoint(&mut conn, account_id, id).await
    }

    async fn update_endpoint(
        &self,
        who: &Principal,
        id: &str,
        patch: EndpointPatch,
    ) -> Result<WebhookEndpoint> {
        let mut tx = begin_write(&self.write).await?;
        let before = load_endpoint(&mut tx, &who.account_id, id).await?;
        let mut after = before.clone();
        let mut event_types = encode_event_types(&before.event_types)?;
        if let Some(url) = patch.url {
            after.url = url;
        }
        if let Some(description) = patch.description {
            validate_description(&description)?;
            after.description = description;
        }
        if let Some(types) = patch.event_types {
            event_types = encode_event_types(&types)?;
            after.event_types = decode_event_types(&event_types);
        }
        if let Some(enabled) = patch.enabled {
            after.enabled = enabled;
            if enabled {
                after.disabled_reason = None;
            } else if before.enabled {
                after.disabled_reason = Some("disabled by the API".into());
            }
        }
        after.updated_at = now();
        sqlx::query(
            "UPDATE webhook_endpoints SET url = $3, description = $4, event_types = $5, \
             enabled = $6, disabled_reason = $7, updated_at = $8 WHERE account_id = $1 AND id = $2",
        )
        .bind(&who.account_id)
        .bind(id)
        .bind(&after.url)
        .bind(&after.description)
        .bind(&event_types)
        .bind(after.enabled)
        .bind(&after.disabled_reason)
        .bind(after.updated_at.0)
        .execute(&mut *tx)
        .await?;
        let actor = actor_of(who);
        audit(
            &mut tx,
            endpoint_audit(
                who,
                &actor,
                "webhook_endpoint.updated",
                &after,
                Some(&before),
                Some(&after),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    async fn delete_endpoint(&self, who: &Principal, id: &str) -> Result<()> {
        let mut tx = begin_write(&self.write).await?;
        let before = load_endpoint(&mut tx, &who.account_id, id).await?;
        for sql in [
            "DELETE FROM outbound_attempts WHERE endpoint_id = $1",
            "DELETE FROM outbound_deliveries WHERE endpoint_id = $1",
            "DELETE FROM webhook_endpoints WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        let actor = actor_of(who);
        audit(
            &mut tx,
            endpoint_audit(
                who,
                &actor,
                "webhook_endpoint.deleted",
                &before,
                Some(&before),
                None,
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn rotate_endpoint_secret(
        &self,
        who: &Principal,
        id: &str,
        sealed_secret: String,
        previous_until: Timestamp,
    ) -> Result<WebhookEndpoint> {
        let mut tx = begin_write(&self.write).await?;
        let before = load_endpoint(&mut tx, &who.account_id, id).await?;
        let at = now();
        sqlx::query(
            "UPDATE webhook_endpoints SET previous_secret = secret, secret = $3, \
             previous_secret_expires_at = $4, updated_at = $5 WHERE account_id = $1 AND id = $2",
        )
        .bind(&who.account_id)
        .bind(id)
        .bind(&sealed_secret)
        .bind(previous_until.0)
        .bind(at.0)
        .execute(&mut *tx)
        .await?;
        let after = WebhookEndpoint {
            previous_secret_expires_at: Some(previous_until),
            updated_at: at,
            ..before.clone()
        };
        let actor = actor_of(who);
        audit(
            &mut tx,
            endpoint_audit(
                who,
                &actor,
                "webhook_endpoint.secret_rotated",
                &after,
                Some(&before),
                Some(&after),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    async fn list_deliveries(
        &self,
        account_id: &str,
        endpoint_id: &str,
        status: Option<String>,
        page: PageRequest,
    ) -> Result<Page<Delivery>> {
        let mut conn = self.read.acquire().await?;
        load_endpoint(&mut conn, account_id, endpoint_id).await?;
        let mut q = ListQuery::new(account_id);
        q.push("endpoint_id = ?", endpoint_id);
        match status.as_deref() {
            None => {}
            Some("pending" | "succeeded" | "failed") => {
                q.push("status = ?", status.unwrap_or_default())
            }
            Some(other) => {
                return Err(StoreError::invalid(
                    "INVALID_FILTER",
                    format!("`status` must be pending, succeeded or failed, not `{other}`"),
                ));
            }
        }
        let q = q.sql("outbound_deliveries", DELIVERY_COLS, &page);
        let mut page =
            fetch_page(&self.read, q, &page, delivery_from_row, |d| d.id.clone()).await?;
        attach_attempts(&mut conn, endpoint_id, &mut page.data).await?;
        Ok(page)
    }

    async fn retry_delivery(
        &self,
        account_id: &str,
        endpoint_id: &str,
        message_id: &str,
    ) -> Result<Delivery> {
        let mut tx = begin_write(&self.write).await?;
        let endpoint = load_endpoint(&mut tx, account_id, endpoint_id).await?;
        if !endpoint.enabled {
            return Err(StoreError::conflict(
                "ENDPOINT_DISABLED",
                "the endpoint is disabled: enable it first (PATCH enabled: true)",
            ));
        }
        let at = now();
        let sql = format!(
            "UPDATE outbound_deliveries SET status = 'pending', next_attempt_at = $4, \
             locked_until = NULL, updated_at = $4 \
             WHERE account_id = $1 AND endpoint_id = $2 AND id = $3 RETURNING {DELIVERY_COLS}"
        );
        let row = sqlx::query(&sql)
            .bind(account_id)
            .bind(endpoint_id)
            .bind(message_id)
            .bind(at.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("delivery"))?;
        let mut delivery = [delivery_from_row(&row)?];
        attach_attempts(&mut tx, endpoint_id, &mut delivery).await?;
        tx.commit().await?;
        let [delivery] = delivery;
        Ok(delivery)
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: i64,
    ) -> Result<Vec<DueDelivery>> {
        // The subquery's row locks (PostgreSQL) re-check its conditions on the newest version
        // of a row another node changed meanwhile; the outer lease test is a second guard that
        // lets the UPDATE find its rows by primary key.
        let sql = format!(
            "UPDATE outbound_deliveries SET locked_until = $2 \
             WHERE (locked_until IS NULL OR locked_until < $1) AND (endpoint_id, id) IN \
             (SELECT d.endpoint_id, d.id FROM outbound_deliveries d \
             WHERE d.status = 'pending' AND d.next_attempt_at <= $1 \
             AND (d.locked_until IS NULL OR d.locked_until < $1) \
             AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = d.endpoint_id AND e.enabled) \
             ORDER BY d.next_attempt_at LIMIT {limit}{SKIP_LOCKED}) \
             RETURNING id, endpoint_id, account_id, event_type, payload, attempts"
        );
        let mut tx = begin_write(&self.write).await?;
        let rows = sqlx::query(&sql)
            .bind(now.0)
            .bind(lease_until.0)
            .fetch_all(&mut *tx)
            .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let mut endpoint_ids: Vec<String> = rows
            .iter()
            .map(|r| r.try_get("endpoint_id"))
            .collect::<std::result::Result<_, _>>()?;
        endpoint_ids.sort();
        endpoint_ids.dedup();
        let sql = format!(
            "SELECT id, url, secret, previous_secret, previous_secret_expires_at \
             FROM webhook_endpoints WHERE id IN ({})",
            placeholders(1, endpoint_ids.len())
        );
        let mut q = sqlx::query(&sql);
        for id in &endpoint_ids {
            q = q.bind(id.as_str());
        }
        let mut endpoints: HashMap<String, (String, String, Option<String>)> = HashMap::new();
        for row in q.fetch_all(&mut *tx).await? {
            let previous: Option<String> = row.try_get("previous_secret")?;
            let until: Option<i64> = row.try_get("previous_secret_expires_at")?;
            let previous = previous.filter(|_| until.is_some_and(|u| u > now.0));
            endpoints.insert(
                row.try_get("id")?,
                (row.try_get("url")?, row.try_get("secret")?, previous),
            );
        }
        tx.commit().await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let endpoint_id: String = row.try_get("endpoint_id")?;
            let Some((url, secret, previous)) = endpoints.get(&endpoint_id) else {
                continue;
            };
            claimed.push(DueDelivery {
                message_id: row.try_get("id")?,
                account_id: row.try_get("account_id")?,
                event_type: row.try_get("event_type")?,
                payload: row.try_get("payload")?,
                attempts: row.try_get("attempts")?,
                url: url.clone(),
                sealed_secret: secret.clone(),
                sealed_previous_secret: previous.clone(),
                endpoint_id,
            });
        }
        Ok(claimed)
    }

    async fn finish_delivery(
        &self,
        d: &DueDelivery,
        attempt: AttemptRecord,
        outcome: Outcome,
    ) -> Result<()> {
        let at = attempt.attempted_at;
        let (status, next) = match outcome {
            Outcome::Succeeded => ("succeeded", at),
            Outcome::Retry(next) => ("pending", next),
            Outcome::Failed | Outcome::Gone => ("failed", at),
        };
        let mut tx = begin_write(&self.write).await?;
        sqlx::query(
            "UPDATE outbound_deliveries SET status = $3, attempts = attempts + 1, \
             next_attempt_at = $4, locked_until = NULL, last_status = $5, last_error = $6, \
             last_attempt_at = $7, updated_at = $8 WHERE endpoint_id = $1 AND id = $2",
        )
        .bind(&d.endpoint_id)
        .bind(&d.message_id)
        .bind(status)
        .bind(next.0)
        .bind(attempt.status_code.map(i64::from))
        .bind(&attempt.error)
        .bind(at.0)
        .bind(now().0)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO outbound_attempts (id, endpoint_id, message_id, attempted_at, \
             status_code, error, response_body, duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(new_id())
        .bind(&d.endpoint_id)
        .bind(&d.message_id)
        .bind(at.0)
        .bind(attempt.status_code.map(i64::from))
        .bind(&attempt.error)
        .bind(&attempt.response_body)
        .bind(attempt.duration_ms)
        .execute(&mut *tx)
        .await?;
        if outcome == Outcome::Gone {
            sqlx::query(
                "UPDATE webhook_endpoints SET enabled = $2, disabled_reason = $3, updated_at = $4 \
                 WHERE id = $1",
            )
            .bind(&d.endpoint_id)
            .bind(false)
            .bind(format!(
                "the endpoint answered 410 Gone at {}",
                at.to_rfc3339()
            ))
            .bind(now().0)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn prune_deliveries(&self, before: Timestamp, limit: i64) -> Result<u64> {
        // A finished delivery's next_attempt_at is its last attempt: the due index finds them.
        let old = format!(
            "SELECT endpoint_id, id FROM outbound_deliveries WHERE status IN ('succeeded', 'failed') \
             AND next_attempt_at < $1 ORDER BY next_attempt_at LIMIT {limit}"
        );
        let mut tx = begin_write(&self.write).await?;
        sqlx::query(&format!(
            "DELETE FROM outbound_attempts WHERE (endpoint_id, message_id) IN ({old})"
        ))
        .bind(before.0)
        .execute(&mut *tx)
        .await?;
        let deleted = sqlx::query(&format!(
            "DELETE FROM outbound_deliveries WHERE (endpoint_id, id) IN ({old})"
        ))
        .bind(before.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(deleted)
    }

    async fn sweep_expiries(
        &self,
        now: Timestamp,
        expiring_soon_seconds: i64,
        limit: i64,
    ) -> Result<Swept> {
        let mut swept = Swept::default();
        // (announced column, the window, the audited action)
        let kinds = [
            (
                "expired_notified_for",
                "expires_at <= $1",
                "license.expired",
            ),
            (
                "expiring_notified_for",
                "expires_at > $1 AND expires_at <= $2",
                "license.expiring_soon",
            ),
        ];
        for (column, window, action) in kinds {
            // Claimed once per `expires_at` value, in the transaction that announces it: a
            // second node (or sweep) finds nothing left; a renewal moves `expires_at` and
            // re-arms it. Revoked licenses are claimed but not announced.
            let pending = format!("({column} IS NULL OR {column} <> expires_at) AND {window}");
            let sql = format!(
                "UPDATE licenses SET {column} = expires_at WHERE {pending} AND id IN \
                 (SELECT id FROM licenses WHERE {pending} ORDER BY expires_at LIMIT {limit}{SKIP_LOCKED}) \
                 RETURNING account_id, {LICENSE_COLS}"
            );
            let mut tx = begin_write(&self.write).await?;
            let mut query = sqlx::query(&sql).bind(now.0);
            if window.contains("$2") {
                query = query.bind(now.plus_seconds(expiring_soon_seconds).0);
            }
            let rows = query.fetch_all(&mut *tx).await?;
            let mut licenses = Vec::with_capacity(rows.len());
            for row in &rows {
                let license = license_from_row(row)?;
                if license.status != LicenseStatus::Revoked {
                    licenses.push((row.try_get::<String, _>("account_id")?, license));
                }
            }
            let views =
                license_views(&mut tx, licenses.iter().map(|(_, l)| l.clone()).collect()).await?;
            for ((account_id, license), view) in licenses.iter().zip(&views) {
                audit(
                    &mut tx,
                    license_audit(
                        account_id,
                        &Actor::System,
                        action,
                        license,
                        None,
                        Some(view),
                    ),
                )
                .await?;
            }
            tx.commit().await?;
            if action == "license.expired" {
                swept.expired = licenses.len();
            } else {
                swept.expiring_soon = licenses.len();
            }
        }
        Ok(swept)
    }
}
