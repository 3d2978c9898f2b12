//! Customers and their ids on the payment platforms.

use super::audit::{Change, audit_by};
use super::checks::{normalize_email, validate_text};
use super::rows::{CUSTOMER_COLS, ListQuery, customer_from_row, fetch_page, placeholders};
use super::{DbConn, SqlStore};
use crate::sql::is_unique_violation;
use crate::{
    CustomerInput, CustomerPatch, CustomerStore, PageRequest, Principal, Result, StoreError, now,
};
use async_trait::async_trait;
use keygate_domain::ErrorCode;
use keygate_domain::policy::validate_metadata;
use keygate_domain::{Customer, Page, new_id};
use sqlx::Row;
use std::collections::BTreeMap;

#[async_trait]
impl CustomerStore for SqlStore {
    async fn create_customer(&self, who: &Principal, input: CustomerInput) -> Result<Customer> {
        let email = normalize_email(input.email)?;
        if let Some(name) = &input.name {
            validate_text("name", name, 200)?;
        }
        validate_metadata(&input.metadata)?;
        let at = now();
        let customer = Customer {
            id: new_id(),
            email,
            name: input.name.map(|n| n.trim().to_string()),
            external_ids: input.external_ids,
            metadata: input.metadata,
            created_at: at,
            updated_at: at,
        };
        self.write_tx(async |tx| {
            sqlx::query(
                "INSERT INTO customers (id, account_id, email, name, metadata, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&customer.id)
            .bind(&who.account_id)
            .bind(&customer.email)
            .bind(&customer.name)
            .bind(customer.metadata.to_string())
            .bind(at.0)
            .bind(at.0)
            .execute(&mut *tx)
            .await?;
            let ids = &customer.external_ids;
            insert_external_ids(tx, &who.account_id, &customer.id, ids).await?;
            let change = Change::new("customer.created", &customer.id)
                .customer(Some(&customer.id))
                .after(&customer);
            audit_by(tx, who, change).await
        })
        .await?;
        Ok(customer)
    }

    async fn list_customers(
        &self,
        account_id: &str,
        email: Option<String>,
        page: PageRequest,
    ) -> Result<Page<Customer>> {
        let mut q = ListQuery::new(account_id);
        if let Some(e) = email {
            q.push("email = ?", e.trim().to_lowercase());
        }
        let q = q.sql("customers", CUSTOMER_COLS, &page);
        let mut page =
            fetch_page(&self.read, q, &page, customer_from_row, |c| c.id.clone()).await?;
        let mut conn = self.read.acquire().await?;
        attach_external_ids(&mut conn, &mut page.data).await?;
        Ok(page)
    }

    async fn get_customer(&self, account_id: &str, id: &str) -> Result<Customer> {
        let mut conn = self.read.acquire().await?;
        load_customer(&mut conn, account_id, id).await
    }

    async fn update_customer(
        &self,
        who: &Principal,
        id: &str,
        patch: CustomerPatch,
    ) -> Result<Customer> {
        self.write_tx(async |tx| {
            let before = load_customer(tx, &who.account_id, id).await?;
            let mut customer = before.clone();
            if let Some(email) = patch.email {
                customer.email = normalize_email(email)?;
            }
            if let Some(name) = patch.name {
                if let Some(n) = &name {
                    validate_text("name", n, 200)?;
                }
                customer.name = name.map(|n| n.trim().to_string());
            }
            if let Some(metadata) = patch.metadata {
                validate_metadata(&metadata)?;
                customer.metadata = metadata;
            }
            if let Some(ids) = patch.external_ids {
                sqlx::query("DELETE FROM customer_external_ids WHERE customer_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                insert_external_ids(tx, &who.account_id, id, &ids).await?;
                customer.external_ids = ids;
            }
            customer.updated_at = now();
            sqlx::query(
                "UPDATE customers SET email = $3, name = $4, metadata = $5, updated_at = $6 \
                 WHERE account_id = $1 AND id = $2",
            )
            .bind(&who.account_id)
            .bind(id)
            .bind(&customer.email)
            .bind(&customer.name)
            .bind(customer.metadata.to_string())
            .bind(customer.updated_at.0)
            .execute(&mut *tx)
            .await?;
            let change = Change::new("customer.updated", id)
                .customer(Some(id))
                .before(&before)
                .after(&customer);
            audit_by(tx, who, change).await?;
            Ok(customer)
        })
        .await
    }
}

async fn attach_external_ids(conn: &mut DbConn, customers: &mut [Customer]) -> Result<()> {
    if customers.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT customer_id, provider, external_id FROM customer_external_ids \
         WHERE customer_id IN ({})",
        placeholders(1, customers.len())
    );
    let mut q = sqlx::query(&sql);
    for c in customers.iter() {
        q = q.bind(c.id.as_str());
    }
    let rows = q.fetch_all(&mut *conn).await?;
    for row in rows {
        let customer_id: String = row.try_get("customer_id")?;
        if let Some(c) = customers.iter_mut().find(|c| c.id == customer_id) {
            c.external_ids
                .insert(row.try_get("provider")?, row.try_get("external_id")?);
        }
    }
    Ok(())
}

async fn load_customer(conn: &mut DbConn, account_id: &str, id: &str) -> Result<Customer> {
    let sql = format!("SELECT {CUSTOMER_COLS} FROM customers WHERE account_id = $1 AND id = $2");
    let row = sqlx::query(&sql)
        .bind(account_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound("customer"))?;
    let mut customer = [customer_from_row(&row)?];
    attach_external_ids(conn, &mut customer).await?;
    let [customer] = customer;
    Ok(customer)
}

pub(crate) async fn customer_exists(conn: &mut DbConn, account_id: &str, id: &str) -> Result<bool> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT id FROM customers WHERE account_id = $1 AND id = $2")
            .bind(account_id)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(found.is_some())
}

async fn insert_external_ids(
    conn: &mut DbConn,
    account_id: &str,
    customer_id: &str,
    ids: &BTreeMap<String, String>,
) -> Result<()> {
    for (provider, external_id) in ids {
        validate_text("external_ids provider", provider, 64)?;
        validate_text("external_ids value", external_id, 255)?;
        sqlx::query(
            "INSERT INTO customer_external_ids (account_id, provider, external_id, customer_id) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(account_id)
        .bind(provider)
        .bind(external_id)
        .bind(customer_id)
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::conflict(
                    ErrorCode::ExternalIdTaken,
                    format!("another customer already has {provider} id `{external_id}`"),
                )
            } else {
                e.into()
            }
        })?;
    }
    Ok(())
}
