//! The catalog: products and the policies that license them.

use super::audit::{Change, audit_by};
use super::checks::{validate_code, validate_text};
use super::engine::FOR_UPDATE;
use super::rows::{
    ListQuery, POLICY_COLS, PRODUCT_COLS, fetch_page, policy_from_row, product_from_row,
};
use super::{DbConn, SqlStore};
use crate::now;
use crate::sql::is_unique_violation;
use crate::{CatalogStore, PageRequest, Principal, ProductInput, ProductPatch, Result, StoreError};
use async_trait::async_trait;
use keygate_domain::ErrorCode;
use keygate_domain::policy::validate_metadata;
use keygate_domain::{Page, Policy, PolicyInput, Product, Timestamp, new_id};

#[async_trait]
impl CatalogStore for SqlStore {
    async fn create_product(&self, who: &Principal, input: ProductInput) -> Result<Product> {
        validate_code(&input.code)?;
        validate_text("name", &input.name, 200)?;
        validate_metadata(&input.metadata)?;
        let at = now();
        let product = Product {
            id: new_id(),
            code: input.code,
            name: input.name.trim().to_string(),
            metadata: input.metadata,
            created_at: at,
            updated_at: at,
        };
        self.write_tx(async |tx| {
            sqlx::query(
                "INSERT INTO products (id, account_id, code, name, metadata, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&product.id)
            .bind(&who.account_id)
            .bind(&product.code)
            .bind(&product.name)
            .bind(product.metadata.to_string())
            .bind(at.0)
            .bind(at.0)
            .execute(&mut *tx)
            .await
            .map_err(|e| product_conflict(e, &product.code))?;
            let change = Change::new("product.created", &product.id).after(&product);
            audit_by(tx, who, change).await
        })
        .await?;
        Ok(product)
    }

    async fn list_products(&self, account_id: &str, page: PageRequest) -> Result<Page<Product>> {
        let q = ListQuery::new(account_id).sql("products", PRODUCT_COLS, &page);
        fetch_page(&self.read, q, &page, product_from_row, |p| p.id.clone()).await
    }

    async fn get_product(&self, account_id: &str, id: &str) -> Result<Product> {
        let sql = format!("SELECT {PRODUCT_COLS} FROM products WHERE account_id = $1 AND id = $2");
        let row = sqlx::query(&sql)
            .bind(account_id)
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .ok_or(StoreError::NotFound("product"))?;
        product_from_row(&row)
    }

    async fn update_product(
        &self,
        who: &Principal,
        id: &str,
        patch: ProductPatch,
    ) -> Result<Product> {
        let product = self
            .write_tx(async |tx| {
                let before = lock_product(tx, &who.account_id, id).await?;
                let mut product = before.clone();
                if let Some(code) = patch.code {
                    validate_code(&code)?;
                    product.code = code;
                }
                if let Some(name) = patch.name {
                    validate_text("name", &name, 200)?;
                    product.name = name.trim().to_string();
                }
                if let Some(metadata) = patch.metadata {
                    validate_metadata(&metadata)?;
                    product.metadata = metadata;
                }
                product.updated_at = now();
                sqlx::query(
                    "UPDATE products SET code = $3, name = $4, metadata = $5, updated_at = $6 \
                     WHERE account_id = $1 AND id = $2",
                )
                .bind(&who.account_id)
                .bind(id)
                .bind(&product.code)
                .bind(&product.name)
                .bind(product.metadata.to_string())
                .bind(product.updated_at.0)
                .execute(&mut *tx)
                .await
                .map_err(|e| product_conflict(e, &product.code))?;
                let change = Change::new("product.updated", id)
                    .before(&before)
                    .after(&product);
                audit_by(tx, who, change).await?;
                Ok(product)
            })
            .await?;
        self.invalidate_all();
        Ok(product)
    }

    async fn delete_product(&self, who: &Principal, id: &str) -> Result<()> {
        self.write_tx(async |tx| {
            let product = lock_product(tx, &who.account_id, id).await?;
            let policies: i64 =
                sqlx::query_scalar("SELECT count(*) FROM policies WHERE product_id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            if policies > 0 {
                return Err(StoreError::conflict(
                    ErrorCode::ProductInUse,
                    format!("the product has {policies} policies: it cannot be deleted"),
                ));
            }
            sqlx::query("DELETE FROM products WHERE account_id = $1 AND id = $2")
                .bind(&who.account_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            audit_by(tx, who, Change::new("product.deleted", id).before(&product)).await
        })
        .await
    }

    async fn create_policy(&self, who: &Principal, input: PolicyInput) -> Result<Policy> {
        input.validate()?;
        self.write_tx(async |tx| {
            if !product_exists(tx, &who.account_id, &input.product_id).await? {
                return Err(StoreError::invalid(
                    ErrorCode::ProductNotFound,
                    format!("no product `{}` in this account", input.product_id),
                ));
            }
            let id = new_id();
            let at = now();
            insert_policy(tx, &who.account_id, &id, &input, at, at, false).await?;
            let policy = load_policy(tx, &who.account_id, &id)
                .await?
                .ok_or(StoreError::NotFound("policy"))?;
            audit_by(tx, who, Change::new("policy.created", &id).after(&policy)).await?;
            Ok(policy)
        })
        .await
    }

    async fn list_policies(
        &self,
        account_id: &str,
        product_id: Option<String>,
        page: PageRequest,
    ) -> Result<Page<Policy>> {
        let mut q = ListQuery::new(account_id);
        if let Some(p) = product_id {
            q.push("product_id = ?", p);
        }
        let q = q.sql("policies", &POLICY_COLS, &page);
        fetch_page(
            &self.read,
            q,
            &page,
            |r| policy_from_row(r, ""),
            |p| p.id.clone(),
        )
        .await
    }

    async fn get_policy(&self, account_id: &str, id: &str) -> Result<Policy> {
        let mut conn = self.read.acquire().await?;
        load_policy(&mut conn, account_id, id)
            .await?
            .ok_or(StoreError::NotFound("policy"))
    }

    async fn update_policy(
        &self,
        who: &Principal,
        id: &str,
        patch: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Policy> {
        let policy = self
            .write_tx(async |tx| {
                let before = load_policy(tx, &who.account_id, id)
                    .await?
                    .ok_or(StoreError::NotFound("policy"))?;
                let mut merged = serde_json::to_value(before.to_input())?;
                for (k, v) in patch {
                    if k == "product_id" && v.as_str() != Some(before.product_id.as_str()) {
                        return Err(StoreError::invalid(
                            ErrorCode::ImmutableField,
                            "a policy's `product_id` cannot change: create a new policy instead",
                        ));
                    }
                    merged[k] = v;
                }
                let input: PolicyInput = serde_json::from_value(merged)
                    .map_err(|e| StoreError::invalid(ErrorCode::InvalidField, e.to_string()))?;
                input.validate()?;
                let (created, updated) = (before.created_at, now());
                insert_policy(tx, &who.account_id, id, &input, created, updated, true).await?;
                let policy = load_policy(tx, &who.account_id, id)
                    .await?
                    .ok_or(StoreError::NotFound("policy"))?;
                let change = Change::new("policy.updated", id)
                    .before(&before)
                    .after(&policy);
                audit_by(tx, who, change).await?;
                Ok(policy)
            })
            .await?;
        self.invalidate_all();
        Ok(policy)
    }
}

/// The product, locked for the rest of the transaction (PostgreSQL).
async fn lock_product(conn: &mut DbConn, account_id: &str, id: &str) -> Result<Product> {
    let sql = format!(
        "SELECT {PRODUCT_COLS} FROM products WHERE account_id = $1 AND id = $2{FOR_UPDATE}"
    );
    let row = sqlx::query(&sql)
        .bind(account_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound("product"))?;
    product_from_row(&row)
}

fn product_conflict(e: sqlx::Error, code: &str) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::conflict(
            ErrorCode::ProductCodeTaken,
            format!("a product with code `{code}` already exists"),
        )
    } else {
        e.into()
    }
}

async fn product_exists(conn: &mut DbConn, account_id: &str, id: &str) -> Result<bool> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT id FROM products WHERE account_id = $1 AND id = $2")
            .bind(account_id)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(found.is_some())
}

pub(crate) async fn load_policy(
    conn: &mut DbConn,
    account_id: &str,
    id: &str,
) -> Result<Option<Policy>> {
    let sql = format!(
        "SELECT {} FROM policies WHERE account_id = $1 AND id = $2",
        *POLICY_COLS
    );
    let row = sqlx::query(&sql)
        .bind(account_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| policy_from_row(&r, "")).transpose()
}

async fn insert_policy(
    conn: &mut DbConn,
    account_id: &str,
    id: &str,
    input: &PolicyInput,
    created_at: Timestamp,
    updated_at: Timestamp,
    replace: bool,
) -> Result<()> {
    let sql = if replace {
        "UPDATE policies SET product_id = $3, name = $4, duration_seconds = $5, expiry = $6, \
         trial_seconds = $7, grace_seconds = $8, max_activations = $9, require_activation = $10, \
         floating_max_seats = $11, floating_lease_seconds = $12, has_quota = $13, \
         quota_limit = $14, quota_period_seconds = $15, features = $16, \
         seats_from_quantity = $17, metadata = $18, created_at = $19, updated_at = $20, \
         perpetual_offline = $21 WHERE account_id = $1 AND id = $2"
    } else {
        "INSERT INTO policies (account_id, id, product_id, name, duration_seconds, expiry, \
         trial_seconds, grace_seconds, max_activations, require_activation, floating_max_seats, \
         floating_lease_seconds, has_quota, quota_limit, quota_period_seconds, features, \
         seats_from_quantity, metadata, created_at, updated_at, perpetual_offline) VALUES ($1, $2, \
         $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
    };
    sqlx::query(sql)
        .bind(account_id)
        .bind(id)
        .bind(&input.product_id)
        .bind(input.name.trim())
        .bind(input.duration_seconds)
        .bind(input.expiry.as_str())
        .bind(input.trial_seconds)
        .bind(input.grace_seconds)
        .bind(input.max_activations)
        .bind(input.require_activation())
        .bind(input.floating.map(|f| f.max_seats))
        .bind(input.floating.map(|f| f.lease_seconds))
        .bind(input.quota.is_some())
        .bind(input.quota.and_then(|q| q.limit))
        .bind(input.quota.and_then(|q| q.period_seconds))
        .bind(serde_json::to_string(&input.features_normalized())?)
        .bind(input.seats_from_quantity)
        .bind(input.metadata.to_string())
        .bind(created_at.0)
        .bind(updated_at.0)
        .bind(input.perpetual_offline)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
