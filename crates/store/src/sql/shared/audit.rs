//! The audit log: every change writes one row here, in its own transaction, and the outbound
//! event it announces (if any) with it.

use super::batch::WriteBatch;
use super::outbound::enqueue_outbound_into;
use super::rows::{AUDIT_COLS, ListQuery, audit_from_row, fetch_page};
use super::{DbConn, SqlStore};
use crate::{AuditFilter, AuditStore, PageRequest, Principal, Result, actor_of, now};
use async_trait::async_trait;
use keygate_domain::{Actor, AuditEntry, License, LicenseView, Page, new_id};
use serde::Serialize;

/// One change, as the audit log records it. The object's type is the first word of the
/// action (`license` in `license.renewed`).
pub(crate) struct Change<'a> {
    action: &'a str,
    object_id: &'a str,
    license_id: Option<&'a str>,
    customer_id: Option<&'a str>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
}

impl<'a> Change<'a> {
    pub(crate) fn new(action: &'a str, object_id: &'a str) -> Self {
        Change {
            action,
            object_id,
            license_id: None,
            customer_id: None,
            before: None,
            after: None,
        }
    }

    /// A change to a license, shown by its views before and after.
    pub(crate) fn of_license(
        action: &'a str,
        license: &'a License,
        before: Option<&LicenseView>,
        after: Option<&LicenseView>,
    ) -> Self {
        Change {
            license_id: Some(&license.id),
            customer_id: license.customer_id.as_deref(),
            before: before.and_then(to_json),
            after: after.and_then(to_json),
            ..Change::new(action, &license.id)
        }
    }

    pub(crate) fn before(self, state: &impl Serialize) -> Self {
        Change {
            before: to_json(state),
            ..self
        }
    }

    pub(crate) fn after(self, state: &impl Serialize) -> Self {
        Change {
            after: to_json(state),
            ..self
        }
    }

    pub(crate) fn license(self, license_id: &'a str) -> Self {
        Change {
            license_id: Some(license_id),
            ..self
        }
    }

    pub(crate) fn customer(self, customer_id: Option<&'a str>) -> Self {
        Change {
            customer_id,
            ..self
        }
    }
}

fn to_json<T: Serialize>(v: &T) -> Option<serde_json::Value> {
    serde_json::to_value(v).ok()
}

/// Records a change made with an API key, in the caller's transaction.
pub(crate) async fn audit_by(conn: &mut DbConn, who: &Principal, change: Change<'_>) -> Result<()> {
    audit(conn, &who.account_id, &actor_of(who), change).await
}

/// Records a change, and enqueues the outbound event it announces (if any) in the same
/// transaction: every change goes through here.
pub(crate) async fn audit(
    conn: &mut DbConn,
    account_id: &str,
    actor: &Actor,
    change: Change<'_>,
) -> Result<()> {
    let mut batch = WriteBatch::new();
    audit_into(&mut batch, account_id, actor, change);
    batch.flush(conn).await
}

/// The audit row for a change and the outbound event it announces (if any), written with the
/// change's other writes.
pub(crate) fn audit_into(batch: &mut WriteBatch, account_id: &str, actor: &Actor, c: Change<'_>) {
    let before = c.before.map(|v| v.to_string());
    let after = c.after.map(|v| v.to_string());
    if let Some(event_type) = crate::outbound::event_for_action(c.action) {
        let data = after.as_deref().or(before.as_deref()).unwrap_or("null");
        enqueue_outbound_into(batch, account_id, event_type, data);
    }
    let object_type = c.action.split('.').next().unwrap_or(c.action);
    batch
        .push(
            "INSERT INTO audit_log (id, account_id, actor_type, actor_id, action, object_type, \
             object_id, license_id, customer_id, before_state, after_state, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(new_id())
        .bind(account_id.to_string())
        .bind(actor.kind())
        .bind(actor.id().map(str::to_string))
        .bind(c.action.to_string())
        .bind(object_type.to_string())
        .bind(c.object_id.to_string())
        .bind(c.license_id.map(str::to_string))
        .bind(c.customer_id.map(str::to_string))
        .bind(before)
        .bind(after)
        .bind(now().0);
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn list_audit(
        &self,
        account_id: &str,
        filter: AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>> {
        let mut q = ListQuery::new(account_id);
        if let Some(v) = filter.license_id {
            q.push("license_id = ?", v);
        }
        if let Some(v) = filter.customer_id {
            q.push("customer_id = ?", v);
        }
        if let Some(v) = filter.actor {
            if ["api_key", "operator", "client", "system", "webhook_event"].contains(&v.as_str()) {
                q.push("actor_type = ?", v);
            } else {
                q.push("actor_id = ?", v);
            }
        }
        if let Some(t) = filter.since {
            q.push("created_at >= CAST(? AS BIGINT)", t.0.to_string());
        }
        if let Some(t) = filter.until {
            q.push("created_at < CAST(? AS BIGINT)", t.0.to_string());
        }
        let q = q.sql("audit_log", AUDIT_COLS, &page);
        fetch_page(&self.read, q, &page, audit_from_row, |a| a.id.clone()).await
    }
}
