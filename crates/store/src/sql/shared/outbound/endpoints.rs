//! The account's webhook endpoints.

use super::super::audit::{Change, audit_by};
use super::super::rows::{ListQuery, fetch_page, ts};
use super::super::{DbConn, DbRow, SqlStore};
use crate::outbound::{
    EndpointPatch, EndpointStore, EndpointWrite, WebhookEndpoint, decode_event_types,
    encode_event_types,
};
use crate::{PageRequest, Principal, Result, StoreError, now};
use async_trait::async_trait;
use keygate_domain::ErrorCode;
use keygate_domain::{Page, Timestamp, new_id};
use sqlx::Row;

const ENDPOINT_COLS: &str = "id, account_id, url, description, event_types, enabled, \
     disabled_reason, previous_secret_expires_at, created_at, updated_at";

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

pub(crate) async fn load_endpoint(
    conn: &mut DbConn,
    account_id: &str,
    id: &str,
) -> Result<WebhookEndpoint> {
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

fn validate_description(d: &Option<String>) -> Result<()> {
    if matches!(d, Some(d) if d.len() > 1000) {
        return Err(StoreError::invalid(
            ErrorCode::InvalidField,
            "`description` must be at most 1000 characters",
        ));
    }
    Ok(())
}

#[async_trait]
impl EndpointStore for SqlStore {
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
        self.write_tx(async |tx| {
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
            let change = Change::new("webhook_endpoint.created", &endpoint.id).after(&endpoint);
            audit_by(tx, who, change).await?;
            Ok(())
        })
        .await?;
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
        self.write_tx(async |tx| {
            let before = load_endpoint(tx, &who.account_id, id).await?;
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
            let change = Change::new("webhook_endpoint.updated", &after.id)
                .before(&before)
                .after(&after);
            audit_by(tx, who, change).await?;
            Ok(after)
        })
        .await
    }

    async fn delete_endpoint(&self, who: &Principal, id: &str) -> Result<()> {
        self.write_tx(async |tx| {
            let before = load_endpoint(tx, &who.account_id, id).await?;
            for sql in [
                "DELETE FROM outbound_attempts WHERE endpoint_id = $1",
                "DELETE FROM outbound_deliveries WHERE endpoint_id = $1",
                "DELETE FROM webhook_endpoints WHERE id = $1",
            ] {
                sqlx::query(sql).bind(id).execute(&mut *tx).await?;
            }
            let change = Change::new("webhook_endpoint.deleted", &before.id).before(&before);
            audit_by(tx, who, change).await
        })
        .await
    }

    async fn rotate_endpoint_secret(
        &self,
        who: &Principal,
        id: &str,
        sealed_secret: String,
        previous_until: Timestamp,
    ) -> Result<WebhookEndpoint> {
        self.write_tx(async |tx| {
            let before = load_endpoint(tx, &who.account_id, id).await?;
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
            let change = Change::new("webhook_endpoint.secret_rotated", &after.id)
                .before(&before)
                .after(&after);
            audit_by(tx, who, change).await?;
            Ok(after)
        })
        .await
    }
}
