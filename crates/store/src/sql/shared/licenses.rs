//! Licenses and their activations, as the admin API manages them.

use super::audit::{Change, audit, audit_by};
use super::batch::WriteBatch;
use super::catalog::load_policy;
use super::checks::validate_overrides;
use super::customers::customer_exists;
use super::engine::FOR_UPDATE;
use super::rows::{
    ACTIVATION_COLS, LICENSE_COLS, ListQuery, POLICY_COLS, activation_from_row, fetch_page,
    license_from_row, placeholders, policy_from_row,
};
use super::{DbConn, SqlStore};
use crate::sql::is_unique_violation;
use crate::{
    LicenseAction, LicenseFilter, LicenseInput, LicensePatch, LicenseStore, PageRequest, Principal,
    Result, StoreError, actor_of, now,
};
use async_trait::async_trait;
use keygate_domain::ErrorCode;
use keygate_domain::credentials::{credential_hash, generate_license_key};
use keygate_domain::policy::validate_metadata;
use keygate_domain::{
    Activation, License, LicenseStatus, LicenseView, Page, Policy, Timestamp, new_id,
};
use sqlx::Row;
use std::collections::HashMap;

/// The most licenses one bulk creation makes.
const MAX_BULK: usize = 100_000;

#[async_trait]
impl LicenseStore for SqlStore {
    async fn create_licenses(
        &self,
        who: &Principal,
        input: LicenseInput,
        count: usize,
    ) -> Result<Vec<LicenseView>> {
        if count == 0 || count > MAX_BULK {
            return Err(StoreError::invalid(
                ErrorCode::InvalidField,
                format!("a bulk creation makes 1-{MAX_BULK} licenses"),
            ));
        }
        if input.key.is_some() && count > 1 {
            return Err(StoreError::invalid(
                ErrorCode::InvalidField,
                "a custom `key` names one license: it cannot be used in bulk",
            ));
        }
        validate_overrides(&input.overrides)?;
        validate_metadata(&input.metadata)?;
        if matches!(input.quantity, Some(q) if q <= 0) {
            return Err(StoreError::invalid(
                ErrorCode::InvalidField,
                "`quantity` must be a positive number",
            ));
        }
        let custom_key = match input.key {
            Some(k) => {
                let k = k.trim().to_string();
                if k.len() < 16 || k.len() > 256 || k.chars().any(|c| c.is_control()) {
                    return Err(StoreError::invalid(
                        ErrorCode::InvalidField,
                        "a custom `key` must be 16-256 printable characters",
                    ));
                }
                Some(k)
            }
            None => None,
        };
        self.write_tx(async |tx| {
        let policy = load_policy(tx, &who.account_id, &input.policy_id)
            .await?
            .ok_or_else(|| {
                StoreError::invalid(
ErrorCode::PolicyNotFound,
                    format!("no policy `{}` in this account", input.policy_id),
                )
            })?;
        if let Some(c) = &input.customer_id
            && !customer_exists(tx, &who.account_id, c).await?
        {
            return Err(StoreError::invalid(
ErrorCode::CustomerNotFound,
                format!("no customer `{c}` in this account"),
            ));
        }
        let at = now();
        let starts_at = input.starts_at.unwrap_or(at);
        let expires_at = input.expires_at.or_else(|| {
            policy
                .initial_term_seconds()
                .map(|s| starts_at.plus_seconds(s))
        });
        let actor = actor_of(who);
        let mut created = Vec::with_capacity(count);
        for _ in 0..count {
            let license = License {
                id: new_id(),
                key: custom_key.clone().unwrap_or_else(generate_license_key),
                policy_id: policy.id.clone(),
                product_id: policy.product_id.clone(),
                customer_id: input.customer_id.clone(),
                subscription_id: input.subscription_id.clone(),
                status: LicenseStatus::Active,
                starts_at,
                expires_at,
                overrides: input.overrides.clone(),
                quantity: input.quantity,
                metadata: input.metadata.clone(),
                created_at: at,
                updated_at: at,
            };
            sqlx::query(
                "INSERT INTO licenses (id, account_id, license_key, key_hash, policy_id, product_id, \
                 customer_id, subscription_id, status, starts_at, expires_at, overrides, quantity, \
                 metadata, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
                 $11, $12, $13, $14, $15, $16)",
            )
            .bind(&license.id)
            .bind(&who.account_id)
            .bind(&license.key)
            .bind(credential_hash(&license.key))
            .bind(&license.policy_id)
            .bind(&license.product_id)
            .bind(&license.customer_id)
            .bind(&license.subscription_id)
            .bind(license.status.as_str())
            .bind(license.starts_at.0)
            .bind(license.expires_at.map(|t| t.0))
            .bind(serde_json::to_string(&license.overrides)?)
            .bind(license.quantity)
            .bind(license.metadata.to_string())
            .bind(at.0)
            .bind(at.0)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::conflict(
ErrorCode::KeyTaken, "a license with this key already exists")
                } else {
                    e.into()
                }
            })?;
            let view = license.view(&policy, 0, at);
            let change = Change::of_license("license.created", &license, None, Some(&view));
            audit(tx, &who.account_id, &actor, change).await?;
            created.push(view);
        }
        Ok(created)
        })
        .await
    }

    async fn list_licenses(
        &self,
        account_id: &str,
        filter: LicenseFilter,
        page: PageRequest,
    ) -> Result<Page<LicenseView>> {
        let mut q = ListQuery::new(account_id);
        if let Some(v) = filter.customer_id {
            q.push("customer_id = ?", v);
        }
        if let Some(v) = filter.subscription_id {
            q.push("subscription_id = ?", v);
        }
        if let Some(v) = filter.policy_id {
            q.push("policy_id = ?", v);
        }
        if let Some(v) = filter.product_id {
            q.push("product_id = ?", v);
        }
        if let Some((integration_id, external_id)) = filter.order {
            // One bind per clause: the pair as one text (integration ids hold no `/`).
            q.push(
                "order_id IN (SELECT id FROM orders WHERE account_id = $1 \
                 AND integration_id || '/' || external_id = ?)",
                format!("{integration_id}/{external_id}"),
            );
        }
        if let Some(v) = filter.email {
            q.push(
                "customer_id IN (SELECT id FROM customers WHERE account_id = $1 AND email = ?)",
                v.trim().to_lowercase(),
            );
        }
        match filter.status.as_deref() {
            None => {}
            Some("active" | "suspended" | "revoked") => {
                q.push("status = ?", filter.status.unwrap_or_default())
            }
            Some("expired") => {
                // Bound as text like every list value, so cast for the comparison.
                q.push("expires_at <= CAST(? AS BIGINT)", now().0.to_string())
            }
            Some(other) => {
                return Err(StoreError::invalid(
                    ErrorCode::InvalidFilter,
                    format!(
                        "`status` must be active, suspended, revoked or expired, not `{other}`"
                    ),
                ));
            }
        }
        let q = q.sql("licenses", LICENSE_COLS, &page);
        let page = fetch_page(&self.read, q, &page, license_from_row, |l| l.id.clone()).await?;
        let mut conn = self.read.acquire().await?;
        Ok(Page {
            data: license_views(&mut conn, page.data).await?,
            next_cursor: page.next_cursor,
        })
    }

    async fn get_license(&self, account_id: &str, id: &str) -> Result<LicenseView> {
        let mut conn = self.read.acquire().await?;
        let license = load_license(&mut conn, account_id, id, false)
            .await?
            .ok_or(StoreError::NotFound("license"))?;
        let policy = load_policy(&mut conn, account_id, &license.policy_id)
            .await?
            .ok_or(StoreError::NotFound("policy"))?;
        license_view(&mut conn, &license, &policy).await
    }

    async fn update_license(
        &self,
        who: &Principal,
        id: &str,
        patch: LicensePatch,
    ) -> Result<LicenseView> {
        let (after, key) = self
            .write_tx(async |tx| {
                let (mut license, old_policy) = lock_license(tx, &who.account_id, id).await?;
                let before = license_view(tx, &license, &old_policy).await?;
                let mut policy = old_policy;
                if let Some(policy_id) = patch.policy_id {
                    policy = load_policy(tx, &who.account_id, &policy_id)
                        .await?
                        .ok_or_else(|| {
                            StoreError::invalid(
                                ErrorCode::PolicyNotFound,
                                format!("no policy `{policy_id}` in this account"),
                            )
                        })?;
                    license.policy_id = policy.id.clone();
                    license.product_id = policy.product_id.clone();
                }
                if let Some(customer_id) = patch.customer_id {
                    if let Some(c) = &customer_id
                        && !customer_exists(tx, &who.account_id, c).await?
                    {
                        return Err(StoreError::invalid(
                            ErrorCode::CustomerNotFound,
                            format!("no customer `{c}` in this account"),
                        ));
                    }
                    license.customer_id = customer_id;
                }
                if let Some(expires_at) = patch.expires_at {
                    license.expires_at = expires_at;
                }
                if let Some(overrides) = patch.overrides {
                    validate_overrides(&overrides)?;
                    license.overrides = overrides;
                }
                if let Some(quantity) = patch.quantity {
                    if matches!(quantity, Some(q) if q <= 0) {
                        return Err(StoreError::invalid(
                            ErrorCode::InvalidField,
                            "`quantity` must be a positive number",
                        ));
                    }
                    license.quantity = quantity;
                }
                if let Some(metadata) = patch.metadata {
                    validate_metadata(&metadata)?;
                    license.metadata = metadata;
                }
                license.updated_at = now();
                save_license(tx, &who.account_id, &license).await?;
                let after = license_view(tx, &license, &policy).await?;
                let change =
                    Change::of_license("license.updated", &license, Some(&before), Some(&after));
                audit_by(tx, who, change).await?;
                Ok((after, license.key))
            })
            .await?;
        self.invalidate_key(&key);
        Ok(after)
    }

    async fn license_action(
        &self,
        who: &Principal,
        id: &str,
        action: LicenseAction,
    ) -> Result<LicenseView> {
        let (after, key) = self
            .write_tx(async |tx| {
                let (mut license, policy) = lock_license(tx, &who.account_id, id).await?;
                let before = license_view(tx, &license, &policy).await?;
                let at = now();
                let revoked = || {
                    StoreError::conflict(
                        ErrorCode::LicenseRevoked,
                        "the license is revoked: revocation is final",
                    )
                };
                match action {
                    LicenseAction::Suspend => match license.status {
                        LicenseStatus::Revoked => return Err(revoked()),
                        _ => license.status = LicenseStatus::Suspended,
                    },
                    LicenseAction::Reinstate => match license.status {
                        LicenseStatus::Revoked => return Err(revoked()),
                        _ => license.status = LicenseStatus::Active,
                    },
                    LicenseAction::Revoke => license.status = LicenseStatus::Revoked,
                    LicenseAction::Renew | LicenseAction::Extend(_) => {
                        if license.status == LicenseStatus::Revoked {
                            return Err(revoked());
                        }
                        let seconds = match action {
                            LicenseAction::Extend(s) => {
                                if s <= 0 {
                                    return Err(StoreError::invalid(
                                        ErrorCode::InvalidField,
                                        "`seconds` must be a positive number",
                                    ));
                                }
                                s
                            }
                            _ => policy.duration_seconds.ok_or_else(|| {
                                StoreError::invalid(
                                    ErrorCode::PolicyNotRenewable,
                                    "the policy has no duration_seconds to renew by: use extend",
                                )
                            })?,
                        };
                        if license.expires_at.is_none() {
                            return Err(StoreError::invalid(
                                ErrorCode::LicensePerpetual,
                                "the license never expires: there is nothing to renew or extend",
                            ));
                        }
                        license.expires_at = Some(license.extension_base(at).plus_seconds(seconds));
                    }
                }
                license.updated_at = at;
                save_license(tx, &who.account_id, &license).await?;
                let after = license_view(tx, &license, &policy).await?;
                let action_name = format!("license.{}", past_tense(action));
                let change =
                    Change::of_license(&action_name, &license, Some(&before), Some(&after));
                audit_by(tx, who, change).await?;
                Ok((after, license.key))
            })
            .await?;
        self.invalidate_key(&key);
        Ok(after)
    }

    async fn list_activations(
        &self,
        account_id: &str,
        license_id: &str,
    ) -> Result<Vec<Activation>> {
        let mut conn = self.read.acquire().await?;
        if load_license(&mut conn, account_id, license_id, false)
            .await?
            .is_none()
        {
            return Err(StoreError::NotFound("license"));
        }
        let sql = format!(
            "SELECT {ACTIVATION_COLS} FROM activations WHERE account_id = $1 AND license_id = $2 \
             ORDER BY id"
        );
        let rows = sqlx::query(&sql)
            .bind(account_id)
            .bind(license_id)
            .fetch_all(&mut *conn)
            .await?;
        rows.iter().map(activation_from_row).collect()
    }

    async fn delete_activation(&self, who: &Principal, activation_id: &str) -> Result<()> {
        let license_key = self.write_tx(async |tx| {
        let sql = format!(
            "DELETE FROM activations WHERE account_id = $1 AND id = $2 RETURNING {ACTIVATION_COLS}"
        );
        let row = sqlx::query(&sql)
            .bind(&who.account_id)
            .bind(activation_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("activation"))?;
        let activation = activation_from_row(&row)?;
        let license_key: String =
            sqlx::query_scalar("SELECT license_key FROM licenses WHERE id = $1")
                .bind(&activation.license_id)
                .fetch_one(&mut *tx)
                .await?;
        let change = Change::new("activation.deleted", activation_id)
            .license(&activation.license_id)
            .before(&activation);
        audit_by(tx, who, change).await?;
        Ok(license_key)
        })
        .await?;
        self.invalidate_key(&license_key);
        Ok(())
    }
}

pub(crate) async fn load_license(
    conn: &mut DbConn,
    account_id: &str,
    id: &str,
    lock: bool,
) -> Result<Option<License>> {
    let sql = format!(
        "SELECT {LICENSE_COLS} FROM licenses WHERE account_id = $1 AND id = $2{}",
        if lock { FOR_UPDATE } else { "" }
    );
    let row = sqlx::query(&sql)
        .bind(account_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| license_from_row(&r)).transpose()
}

pub(crate) async fn quota_used(
    conn: &mut DbConn,
    license: &License,
    policy: &Policy,
    now: Timestamp,
) -> Result<i64> {
    if policy.quota.is_none() {
        return Ok(0);
    }
    let (period, _) = license.quota_window(policy, now);
    let used: Option<i64> = sqlx::query_scalar(
        "SELECT used FROM usage_counters WHERE license_id = $1 AND period_index = $2",
    )
    .bind(&license.id)
    .bind(period)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(used.unwrap_or(0))
}

async fn license_view(
    conn: &mut DbConn,
    license: &License,
    policy: &Policy,
) -> Result<LicenseView> {
    let now = now();
    let used = quota_used(conn, license, policy, now).await?;
    Ok(license.view(policy, used, now))
}

/// Views of many licenses with two extra queries in all (their policies, their counters).
pub(crate) async fn license_views(
    conn: &mut DbConn,
    licenses: Vec<License>,
) -> Result<Vec<LicenseView>> {
    if licenses.is_empty() {
        return Ok(Vec::new());
    }
    let mut policy_ids: Vec<&str> = licenses.iter().map(|l| l.policy_id.as_str()).collect();
    policy_ids.sort();
    policy_ids.dedup();
    let sql = format!(
        "SELECT {} FROM policies WHERE id IN ({})",
        *POLICY_COLS,
        placeholders(1, policy_ids.len())
    );
    let mut q = sqlx::query(&sql);
    for id in &policy_ids {
        q = q.bind(*id);
    }
    let mut policies = HashMap::new();
    for row in q.fetch_all(&mut *conn).await? {
        let p = policy_from_row(&row, "")?;
        policies.insert(p.id.clone(), p);
    }
    let metered: Vec<&License> = licenses
        .iter()
        .filter(|l| {
            policies
                .get(&l.policy_id)
                .is_some_and(|p| p.quota.is_some())
        })
        .collect();
    let mut counters: HashMap<(String, i64), i64> = HashMap::new();
    if !metered.is_empty() {
        let sql = format!(
            "SELECT license_id, period_index, used FROM usage_counters WHERE license_id IN ({})",
            placeholders(1, metered.len())
        );
        let mut q = sqlx::query(&sql);
        for l in &metered {
            q = q.bind(l.id.as_str());
        }
        for row in q.fetch_all(&mut *conn).await? {
            counters.insert(
                (row.try_get("license_id")?, row.try_get("period_index")?),
                row.try_get("used")?,
            );
        }
    }
    let now = now();
    licenses
        .into_iter()
        .map(|l| {
            let policy = policies
                .get(&l.policy_id)
                .ok_or_else(|| StoreError::Corrupt(format!("policy {} missing", l.policy_id)))?;
            let (period, _) = l.quota_window(policy, now);
            let used = counters.get(&(l.id.clone(), period)).copied().unwrap_or(0);
            Ok(l.view(policy, used, now))
        })
        .collect()
}

/// The license, locked for the rest of the transaction (PostgreSQL), and its policy.
async fn lock_license(conn: &mut DbConn, account_id: &str, id: &str) -> Result<(License, Policy)> {
    let license = load_license(conn, account_id, id, true)
        .await?
        .ok_or(StoreError::NotFound("license"))?;
    let policy = load_policy(conn, account_id, &license.policy_id)
        .await?
        .ok_or(StoreError::NotFound("policy"))?;
    Ok((license, policy))
}

async fn save_license(conn: &mut DbConn, account_id: &str, l: &License) -> Result<()> {
    let mut batch = WriteBatch::new();
    save_license_into(&mut batch, account_id, l)?;
    batch.flush(conn).await
}

pub(crate) fn save_license_into(
    batch: &mut WriteBatch,
    account_id: &str,
    l: &License,
) -> Result<()> {
    batch
        .push(
            "UPDATE licenses SET policy_id = $3, product_id = $4, customer_id = $5, status = $6, \
             expires_at = $7, overrides = $8, quantity = $9, metadata = $10, updated_at = $11 \
             WHERE account_id = $1 AND id = $2",
        )
        .bind(account_id.to_string())
        .bind(l.id.clone())
        .bind(l.policy_id.clone())
        .bind(l.product_id.clone())
        .bind(l.customer_id.clone())
        .bind(l.status.as_str())
        .bind(l.expires_at.map(|t| t.0))
        .bind(serde_json::to_string(&l.overrides)?)
        .bind(l.quantity)
        .bind(l.metadata.to_string())
        .bind(l.updated_at.0);
    Ok(())
}

fn past_tense(action: LicenseAction) -> &'static str {
    match action {
        LicenseAction::Suspend => "suspended",
        LicenseAction::Reinstate => "reinstated",
        LicenseAction::Revoke => "revoked",
        LicenseAction::Renew => "renewed",
        LicenseAction::Extend(_) => "extended",
    }
}
