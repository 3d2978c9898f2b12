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
        let mut tx = self.write.begin().await?;
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
        let mut tx = self.write.begin().await?;
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
        Ok(after)
    }

    async fn integration_for_webhook(&self, id: &str) -> Result<Option<(Integration, String)>> {
        let mut conn = self.read.acquire().await?;
        let sql = format!("SELECT {INTEGRATION_COLS}, secrets FROM integrations WHERE id = $1");
        let Some(row) = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
        else {
            return Ok(None);
        };
        let secrets: String = row.try_get("secrets")?;
        let mut one = [integration_from_row(&row)?];
        attach_mappings(&mut conn, &mut one).await?;
        let [integration] = one;
        Ok(Some((integration, secrets)))
    }

    async fn record_webhook_failure(
        &self,
        integration: &Integration,
        code: &str,
        message: &str,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
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
        let id = new_id();
        let mut tx = self.write.begin().await?;
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
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let outcome = if inserted == 1 {
            Inserted {
                id,
                new: true,
                status: event.status.to_string(),
            }
        } else {
            let row = sqlx::query(
                "SELECT id, status FROM webhook_events WHERE integration_id = $1 \
                 AND provider_event_id = $2",
            )
            .bind(&integration.id)
            .bind(&event.provider_event_id)
            .fetch_one(&mut *tx)
            .await?;
            Inserted {
                id: row.try_get("id")?,
                new: false,
                status: row.try_get("status")?,
            }
        };
        tx.commit().await?;
        Ok(outcome)
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
        fetch_page(&self.read, q, &page, subscription_from_row, |s| s.id.clone()).await
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
