//! Accounts, their API keys and their signing keys.

use super::audit::{Change, audit, audit_by};
use super::checks::validate_text;
use super::engine::FOR_UPDATE;
use super::rows::{api_key_from_row, signing_key_from_row, ts};
use super::{DbConn, SqlStore};
use crate::sql::is_unique_violation;
use crate::{AccountStore, Principal, Result, SigningKeyRecord, StoreError, now};
use async_trait::async_trait;
use keygate_domain::ErrorCode;
use keygate_domain::credentials::{credential_hash, generate_api_key};
use keygate_domain::{Account, Actor, ApiKey, new_id};
use sqlx::Row;

#[async_trait]
impl AccountStore for SqlStore {
    async fn create_account(&self, name: &str) -> Result<(Account, ApiKey, String)> {
        validate_text("name", name, 200)?;
        let account = Account {
            id: new_id(),
            name: name.trim().to_string(),
            created_at: now(),
        };
        self.write_tx(async |tx| {
            sqlx::query("INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(&account.id)
                .bind(&account.name)
                .bind(account.created_at.0)
                .execute(&mut *tx)
                .await?;
            let (key, secret) = insert_api_key(tx, &account.id, "default").await?;
            let change = Change::new("account.created", &account.id).after(&account);
            audit(tx, &account.id, &Actor::Operator, change).await?;
            Ok((key, secret))
        })
        .await
        .map(|(key, secret)| (account, key, secret))
    }

    async fn get_account(&self, account_id: &str) -> Result<Account> {
        let row = sqlx::query("SELECT id, name, created_at FROM accounts WHERE id = $1")
            .bind(account_id)
            .fetch_optional(&self.read)
            .await?
            .ok_or(StoreError::NotFound("account"))?;
        Ok(Account {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            created_at: ts(row.try_get("created_at")?),
        })
    }

    async fn authenticate(&self, api_key: &str) -> Result<Option<Principal>> {
        let row = sqlx::query(
            "SELECT id, account_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(credential_hash(api_key))
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| {
            Ok(Principal {
                account_id: r.try_get("account_id")?,
                api_key_id: r.try_get("id")?,
            })
        })
        .transpose()
    }

    async fn create_api_key(&self, who: &Principal, name: &str) -> Result<(ApiKey, String)> {
        validate_text("name", name, 200)?;
        self.write_tx(async |tx| {
            let (key, secret) = insert_api_key(tx, &who.account_id, name.trim()).await?;
            audit_by(tx, who, Change::new("api_key.created", &key.id).after(&key)).await?;
            Ok((key, secret))
        })
        .await
    }

    async fn list_api_keys(&self, account_id: &str) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(
            "SELECT id, name, prefix, created_at, revoked_at FROM api_keys \
             WHERE account_id = $1 ORDER BY id",
        )
        .bind(account_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(api_key_from_row).collect()
    }

    async fn revoke_api_key(&self, who: &Principal, key_id: &str) -> Result<ApiKey> {
        self.write_tx(async |tx| {
            let sql = format!(
                "SELECT id, name, prefix, created_at, revoked_at FROM api_keys \
                 WHERE account_id = $1 AND id = $2{FOR_UPDATE}"
            );
            let row = sqlx::query(&sql)
                .bind(&who.account_id)
                .bind(key_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound("api key"))?;
            let mut key = api_key_from_row(&row)?;
            if key.revoked_at.is_some() {
                return Ok(key);
            }
            let active: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM api_keys WHERE account_id = $1 AND revoked_at IS NULL",
            )
            .bind(&who.account_id)
            .fetch_one(&mut *tx)
            .await?;
            if active <= 1 {
                return Err(StoreError::conflict(
                    ErrorCode::LastApiKey,
                    "this is the account's last active API key: create another before revoking it",
                ));
            }
            let at = now();
            sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1")
                .bind(key_id)
                .bind(at.0)
                .execute(&mut *tx)
                .await?;
            key.revoked_at = Some(at);
            audit_by(tx, who, Change::new("api_key.revoked", key_id).after(&key)).await?;
            Ok(key)
        })
        .await
    }

    async fn signing_keys(&self, account_id: &str) -> Result<Vec<SigningKeyRecord>> {
        let rows = sqlx::query(
            "SELECT key_id, public_key, private_key, created_at, retired_at FROM signing_keys \
             WHERE account_id = $1 ORDER BY created_at DESC, key_id",
        )
        .bind(account_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(signing_key_from_row).collect()
    }

    async fn ensure_signing_key(
        &self,
        account_id: &str,
        candidate: SigningKeyRecord,
    ) -> Result<SigningKeyRecord> {
        let current_sql = "SELECT key_id, public_key, private_key, created_at, retired_at \
             FROM signing_keys WHERE account_id = $1 AND retired_at IS NULL";
        let made = self
            .write_tx(async |tx| {
                if let Some(row) = sqlx::query(current_sql)
                    .bind(account_id)
                    .fetch_optional(&mut *tx)
                    .await?
                {
                    return signing_key_from_row(&row);
                }
                insert_signing_key(tx, account_id, &candidate).await?;
                Ok(candidate.clone())
            })
            .await;
        match made {
            // Another node made one first: use it.
            Err(StoreError::Database(e)) if is_unique_violation(&e) => {
                let row = sqlx::query(current_sql)
                    .bind(account_id)
                    .fetch_one(&self.write)
                    .await?;
                signing_key_from_row(&row)
            }
            other => other,
        }
    }

    async fn rotate_signing_key(&self, who: &Principal, new: SigningKeyRecord) -> Result<()> {
        self.write_tx(async |tx| {
            sqlx::query(
                "UPDATE signing_keys SET retired_at = $2 \
                 WHERE account_id = $1 AND retired_at IS NULL",
            )
            .bind(&who.account_id)
            .bind(now().0)
            .execute(&mut *tx)
            .await?;
            insert_signing_key(tx, &who.account_id, &new).await?;
            let shown = serde_json::json!({"key_id": new.key_id, "public_key": new.public_key});
            let change = Change::new("signing_key.rotated", &new.key_id).after(&shown);
            audit_by(tx, who, change).await
        })
        .await
    }
}

async fn insert_api_key(
    conn: &mut DbConn,
    account_id: &str,
    name: &str,
) -> Result<(ApiKey, String)> {
    let secret = generate_api_key();
    let key = ApiKey {
        id: new_id(),
        name: name.to_string(),
        prefix: secret[..10].to_string(),
        created_at: now(),
        revoked_at: None,
    };
    sqlx::query(
        "INSERT INTO api_keys (id, account_id, name, prefix, key_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&key.id)
    .bind(account_id)
    .bind(&key.name)
    .bind(&key.prefix)
    .bind(credential_hash(&secret))
    .bind(key.created_at.0)
    .execute(&mut *conn)
    .await?;
    Ok((key, secret))
}

async fn insert_signing_key(
    conn: &mut DbConn,
    account_id: &str,
    key: &SigningKeyRecord,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO signing_keys (key_id, account_id, public_key, private_key, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&key.key_id)
    .bind(account_id)
    .bind(&key.public_key)
    .bind(&key.private_key)
    .bind(key.created_at.0)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
