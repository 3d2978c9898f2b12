//! Integrations: a platform connection, its sealed secrets, options and mappings (platform
//! product or price id to policy), and the log of deliveries it refused.

use super::super::audit::{Change, audit_by};
use super::super::catalog::load_policy;
use super::super::checks::validate_text;
use super::super::rows::{POLICY_COLS_P, parse_json, policy_from_row, ts};
use super::super::{DbConn, DbRow, SqlStore};
use crate::gateway::{
    FAILURE_LOG_SIZE, Integration, IntegrationStore, IntegrationWrite, Mapping, WebhookFailure,
};
use crate::{Principal, Result, StoreError, now};
use async_trait::async_trait;
use keygate_domain::ErrorCode;
use keygate_domain::new_id;
use sqlx::Row;

pub(crate) const INTEGRATION_COLS: &str = "id, account_id, provider, name, secrets_count, api_credential_names, options, created_at, \
     updated_at";

pub(crate) fn integration_from_row(row: &DbRow) -> Result<Integration> {
    Ok(Integration {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        provider: row.try_get("provider")?,
        name: row.try_get("name")?,
        mappings: Vec::new(),
        mapped_policies: Vec::new(),
        options: parse_json(row.try_get::<&str, _>("options")?)?,
        secrets_count: row.try_get("secrets_count")?,
        api_credentials: parse_json(row.try_get::<&str, _>("api_credential_names")?)?,
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

pub(crate) async fn load_integration(
    conn: &mut DbConn,
    account_id: &str,
    id: &str,
) -> Result<Integration> {
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
                ErrorCode::InvalidField,
                format!("`{}` is mapped twice", m.external_id),
            ));
        }
        if load_policy(conn, account_id, &m.policy_id).await?.is_none() {
            return Err(StoreError::invalid(
                ErrorCode::PolicyNotFound,
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
impl IntegrationStore for SqlStore {
    async fn create_integration(
        &self,
        who: &Principal,
        input: IntegrationWrite,
    ) -> Result<Integration> {
        validate_text("name", &input.name, 200)?;
        let (sealed, count) = input.sealed_secrets.unwrap_or_default();
        let (sealed_api, api_names) = input.sealed_api_credentials.unwrap_or_default();
        let api_names = serde_json::to_string(&api_names).unwrap_or_else(|_| "[]".into());
        let id = new_id();
        let at = now();
        self.write_tx(async |tx| {
            sqlx::query(
                "INSERT INTO integrations (id, account_id, provider, name, secrets, secrets_count, \
             options, created_at, updated_at, api_credentials, api_credential_names) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
            .bind(&sealed_api)
            .bind(&api_names)
            .execute(&mut *tx)
            .await?;
            let mappings = input.mappings.as_deref().unwrap_or_default();
            write_mappings(tx, &who.account_id, &id, mappings).await?;
            let integration = load_integration(tx, &who.account_id, &id).await?;
            let change = Change::new("integration.created", &id).after(&integration);
            audit_by(tx, who, change).await?;
            Ok(integration)
        })
        .await
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
        let after = self
            .write_tx(async |tx| {
                let before = load_integration(tx, &who.account_id, id).await?;
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
                    sqlx::query(
                        "UPDATE integrations SET secrets = $2, secrets_count = $3 WHERE id = $1",
                    )
                    .bind(id)
                    .bind(sealed)
                    .bind(count)
                    .execute(&mut *tx)
                    .await?;
                }
                if let Some((sealed, names)) = &input.sealed_api_credentials {
                    sqlx::query(
                        "UPDATE integrations SET api_credentials = $2, api_credential_names = $3 \
                         WHERE id = $1",
                    )
                    .bind(id)
                    .bind(sealed)
                    .bind(serde_json::to_string(names).unwrap_or_else(|_| "[]".into()))
                    .execute(&mut *tx)
                    .await?;
                }
                if let Some(mappings) = &input.mappings {
                    write_mappings(tx, &who.account_id, id, mappings).await?;
                }
                let after = load_integration(tx, &who.account_id, id).await?;
                let change = Change::new("integration.updated", id)
                    .before(&before)
                    .after(&after);
                audit_by(tx, who, change).await?;
                Ok(after)
            })
            .await?;
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

    async fn record_webhook_failures(
        &self,
        account_id: &str,
        integration_id: &str,
        failures: &[WebhookFailure],
    ) -> Result<()> {
        if failures.is_empty() {
            return Ok(());
        }
        self.write_tx(async |tx| {
            for failure in failures {
                sqlx::query(
                    "INSERT INTO webhook_failures (id, account_id, integration_id, code, message, \
                     received_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&failure.id)
                .bind(account_id)
                .bind(integration_id)
                .bind(&failure.code)
                .bind(failure.message.chars().take(1000).collect::<String>())
                .bind(failure.received_at.0)
                .execute(&mut *tx)
                .await?;
            }
            // Bounded: a flood of forged deliveries cannot fill the disk.
            sqlx::query(&format!(
                "DELETE FROM webhook_failures WHERE integration_id = $1 AND id NOT IN \
             (SELECT id FROM webhook_failures WHERE integration_id = $1 ORDER BY id DESC \
             LIMIT {FAILURE_LOG_SIZE})"
            ))
            .bind(integration_id)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
        .await
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
}
