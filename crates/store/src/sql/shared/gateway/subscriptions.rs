//! What a delivery does to its subscription (newer-wins into the stored state) or its one-time
//! order, and then to their licenses: reconcile's plan, written as one batch.

use super::super::audit::{Change, audit_into};
use super::super::batch::WriteBatch;
use super::super::catalog::load_policy;
use super::super::engine::FOR_UPDATE;
use super::super::licenses::save_license_into;
use super::super::rows::{LICENSE_COLS, license_from_row, parse_json, ts};
use super::super::{DbConn, DbRow};
use super::apply::Applied;
use super::lookups::StoredSubscription;
use crate::gateway::Integration;
use crate::{Result, StoreError, now};
use keygate_domain::billing::BillingEvent;
use keygate_domain::credentials::{credential_hash, generate_license_key};
use keygate_domain::reconcile::{
    self, ExistingLicense, IntegrationOptions, LicenseChange, OrderState, SubscriptionState,
};
use keygate_domain::{Actor, License, LicenseStatus, Overrides, Policy, new_id};
use sqlx::Row;
use std::collections::HashMap;

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
        "SELECT {LICENSE_COLS}, item_external_id, period_end, line_id FROM licenses \
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

pub(crate) fn existing_from_row(row: &DbRow) -> Result<(License, ExistingLicense)> {
    let l = license_from_row(row)?;
    let e = ExistingLicense {
        id: l.id.clone(),
        policy_id: l.policy_id.clone(),
        status: l.status,
        expires_at: l.expires_at,
        quantity: l.quantity,
        item_external_id: row.try_get("item_external_id")?,
        period_end: row.try_get::<Option<i64>, _>("period_end")?.map(ts),
        line_id: row.try_get("line_id")?,
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
            line_id,
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
                     order_id, period_end, line_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
                     $10, $11, $12, $13, '{}', $14, $15, $16, $17, $18, $19)",
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
                .bind(period_end.map(|t| t.0))
                .bind(line_id.clone());
            let view = license.view(policy, 0, at);
            let change = Change::of_license("license.created", &license, None, Some(&view));
            audit_into(batch, owner.account_id, actor, change);
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
        let change = Change::of_license(action, &license, before.as_ref(), after.as_ref());
        audit_into(batch, owner.account_id, actor, change);
        applied.touched_keys.push(license.key.clone());
    }
    Ok(())
}

/// The items the plan skipped for want of a mapping, in the event's actions.
fn record_unmapped(
    applied: &mut Applied,
    items: &[keygate_domain::billing::BillingItem],
    mappings: &[reconcile::Mapping],
) {
    for item in reconcile::unmapped_items(items, mappings) {
        applied.actions.push(serde_json::json!({
            "action": "skipped",
            "code": "UNMAPPED_ITEM",
            "item_external_id": item.external_id,
            "quantity": item.quantity,
        }));
    }
}

/// What the apply of one event works with.
pub(crate) struct ApplyContext<'a> {
    pub(crate) integration: &'a Integration,
    pub(crate) options: &'a IntegrationOptions,
    pub(crate) actor: &'a Actor,
}

/// Newer-wins into the subscription state, persist, then reconcile its licenses.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn apply_to_subscription(
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
    // A renewal payment without its period: derived from what is known, else the event
    // fails (nothing written) with what to configure, and is replayable.
    let derived = match reconcile::derived_period_end(state.as_ref(), event) {
        Ok(derived) => derived,
        Err(e) => return Ok(Err(e)),
    };
    // An order this subscription names for the first time (Lemon Squeezy's `order_id`: its
    // `order_created` always comes along, possibly first): licenses issued for it as a
    // one-time order become this subscription's, so the purchase has one license.
    let new_order = event
        .order_id()
        .filter(|o| !state.as_ref().is_some_and(|s| s.has_order(o)))
        .map(str::to_string);
    let next = reconcile::apply_event(state.as_ref(), event);
    let state = match (next, state) {
        (Some(next), _) => next,
        (None, Some(state)) => state,
        // An event that tells nothing about a subscription Keygate has not seen.
        (None, None) => return Ok(Ok(())),
    };
    if let Some(end) = derived
        && state.current_period_end == Some(end)
    {
        applied.actions.push(serde_json::json!({
            "action": "derived_period_end",
            "current_period_end": end,
            "billing_interval_seconds": state.billing_interval_seconds,
            "note": "the payment carries no period: the known paid-through date plus the billing interval; the next subscription event corrects it",
        }));
    }
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
    let mut licenses = match row.map(|r| r.licenses) {
        Some(Some(prefetched)) => prefetched,
        Some(None) => existing_licenses(conn, account_id, "subscription_id", &sub_id).await?,
        None => Vec::new(),
    };
    if let Some(order) = new_order {
        licenses.extend(rehome_order_licenses(conn, batch, cx, &order, &sub_id, &state).await?);
        licenses.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    }
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
    record_unmapped(applied, &state.items, &mappings);
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

/// Moves the licenses issued for the one-time order `order` (if Keygate has such an order)
/// to the subscription `sub_id`, as licenses of its current period; returns them.
async fn rehome_order_licenses(
    conn: &mut DbConn,
    batch: &mut WriteBatch,
    cx: &ApplyContext<'_>,
    order: &str,
    sub_id: &str,
    state: &SubscriptionState,
) -> Result<Vec<(License, ExistingLicense)>> {
    let account_id = cx.integration.account_id.as_str();
    let found = sqlx::query("SELECT id FROM orders WHERE integration_id = $1 AND external_id = $2")
        .bind(&cx.integration.id)
        .bind(order)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(found) = found else {
        return Ok(Vec::new());
    };
    let order_row: String = found.try_get("id")?;
    let mut moved = existing_licenses(conn, account_id, "order_id", &order_row).await?;
    if moved.is_empty() {
        return Ok(moved);
    }
    let period = reconcile::period_end(state);
    batch
        .push(
            "UPDATE licenses SET subscription_id = $3, order_id = NULL, period_end = $4 \
             WHERE account_id = $1 AND order_id = $2",
        )
        .bind(account_id.to_string())
        .bind(order_row)
        .bind(sub_id.to_string())
        .bind(period.map(|t| t.0));
    for (license, existing) in &mut moved {
        license.subscription_id = Some(sub_id.to_string());
        existing.period_end = period;
    }
    Ok(moved)
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn apply_to_order(
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
    // The order under its id, else under another id the platform gives it (FastSpring's
    // `reference`, the one its remote license generator was called with).
    let mut row = None;
    for candidate in
        std::iter::once(external_id).chain(event.order_aliases.iter().map(String::as_str))
    {
        row = sqlx::query(&sql)
            .bind(&integration.id)
            .bind(candidate)
            .fetch_optional(&mut *conn)
            .await?;
        if row.is_some() {
            break;
        }
    }
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
    let changes = match reconcile::plan_order(&state, &existing, policies, &mappings, cx.options) {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    record_unmapped(applied, &state.lines, &mappings);
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
