//! What applying a delivery reads before it writes (one query), and the customer it finds
//! or creates.

use super::super::audit::{Change, audit_into};
use super::super::batch::WriteBatch;
use super::super::{DbConn, DbRow};
use super::apply::Applied;
use crate::gateway::{InboxStatus, Integration};
use crate::{Result, StoreError, now};
use keygate_domain::billing::BillingEvent;
use keygate_domain::reconcile::ExistingLicense;
use keygate_domain::{Actor, License, new_id};
use sqlx::Row;

/// What applying an event reads before it writes, in one query.
#[derive(Debug, Default)]
pub(crate) struct Lookups {
    /// The delivery is already in the inbox: (event id, status).
    pub(crate) duplicate: Option<(String, InboxStatus)>,
    pub(crate) customer_by_external_id: Option<String>,
    pub(crate) customer_by_email: Option<String>,
    /// The event's subscription as stored: `Some(None)` if Keygate has not seen it, `None` if
    /// the event names none.
    pub(crate) subscription: Option<Option<StoredSubscription>>,
}

#[derive(Debug, Clone)]
pub(crate) struct StoredSubscription {
    pub(crate) id: String,
    pub(crate) customer_id: Option<String>,
    pub(crate) state: String,
    /// Its licenses, when read with the lookups.
    pub(crate) licenses: Option<Vec<(License, ExistingLicense)>>,
}

/// The customer's email as Keygate keeps it (trimmed, lower case), if it looks like one.
pub(crate) fn customer_email(event: &BillingEvent) -> Option<String> {
    event
        .customer
        .as_ref()?
        .email
        .as_deref()
        .map(|e| e.trim().to_lowercase())
        .filter(|e| e.contains('@'))
}

/// Sends the writes pending in `batch` and the lookups in one round trip.
pub(crate) async fn lookups(
    conn: &mut DbConn,
    batch: &mut WriteBatch,
    integration: &Integration,
    provider_event_id: Option<&str>,
    event: &BillingEvent,
) -> Result<Lookups> {
    push_lookups(batch, integration, provider_event_id, event);
    let rows = batch.fetch(conn).await?;
    let row = rows
        .last()
        .ok_or_else(|| StoreError::Corrupt("the lookups answered no row".into()))?;
    parse_lookups(row, event)
}

/// The lookups query: it always answers exactly one row.
pub(crate) fn push_lookups(
    batch: &mut WriteBatch,
    integration: &Integration,
    provider_event_id: Option<&str>,
    event: &BillingEvent,
) {
    batch
        .push(
            "SELECT \
         (SELECT id FROM webhook_events WHERE integration_id = $1 AND provider_event_id = $2) \
           AS event_id, \
         (SELECT status FROM webhook_events WHERE integration_id = $1 \
           AND provider_event_id = $2) AS event_status, \
         (SELECT customer_id FROM customer_external_ids WHERE account_id = $3 AND provider = $4 \
           AND external_id = $5) AS by_external_id, \
         (SELECT id FROM customers WHERE account_id = $3 AND email = $6 ORDER BY id LIMIT 1) \
           AS by_email, \
         s.id AS subscription_id, s.customer_id AS subscription_customer_id, \
         s.state AS subscription_state \
         FROM (SELECT 1 AS one) AS one \
         LEFT JOIN subscriptions s ON s.integration_id = $1 AND s.external_id = $7",
        )
        .bind(integration.id.clone())
        .bind(provider_event_id.map(str::to_string))
        .bind(integration.account_id.clone())
        .bind(integration.provider.clone())
        .bind(event.customer.as_ref().and_then(|c| c.external_id.clone()))
        .bind(customer_email(event))
        .bind(event.subscription.as_ref().map(|s| s.external_id.clone()));
}

pub(crate) fn parse_lookups(row: &DbRow, event: &BillingEvent) -> Result<Lookups> {
    let event_id: Option<String> = row.try_get("event_id")?;
    let event_status = match row.try_get::<Option<String>, _>("event_status")? {
        Some(s) => Some(
            InboxStatus::parse(&s)
                .ok_or_else(|| StoreError::Corrupt(format!("inbox event status `{s}`")))?,
        ),
        None => None,
    };
    Ok(Lookups {
        duplicate: event_id.zip(event_status),
        customer_by_external_id: row.try_get("by_external_id")?,
        customer_by_email: row.try_get("by_email")?,
        subscription: match (&event.subscription, row.try_get("subscription_id")?) {
            (None, _) => None,
            (Some(_), None) => Some(None),
            (Some(_), Some(id)) => Some(Some(StoredSubscription {
                id,
                customer_id: row.try_get("subscription_customer_id")?,
                state: row.try_get("subscription_state")?,
                licenses: None,
            })),
        },
    })
}

pub(crate) fn upsert_customer(
    batch: &mut WriteBatch,
    account_id: &str,
    provider: &str,
    event: &BillingEvent,
    lookups: &Lookups,
    actor: &Actor,
    applied: &mut Applied,
) -> Option<String> {
    let c = event.customer.as_ref()?;
    let email = customer_email(event);
    // Match by platform id, then by email.
    let found = lookups
        .customer_by_external_id
        .clone()
        .or_else(|| lookups.customer_by_email.clone());
    let at = now();
    let id = match found {
        Some(id) => {
            // Fill what the platform tells and Keygate did not know; never erase.
            batch
                .push(
                    "UPDATE customers SET email = COALESCE(email, $3), \
                     name = COALESCE(name, $4), updated_at = $5 \
                     WHERE account_id = $1 AND id = $2",
                )
                .bind(account_id.to_string())
                .bind(id.clone())
                .bind(email.clone())
                .bind(c.name.clone())
                .bind(at.0);
            id
        }
        None => {
            if c.external_id.is_none() && email.is_none() {
                return None;
            }
            let id = new_id();
            batch
                .push(
                    "INSERT INTO customers (id, account_id, email, name, metadata, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, '{}', $5, $6)",
                )
                .bind(id.clone())
                .bind(account_id.to_string())
                .bind(email.clone())
                .bind(c.name.clone())
                .bind(at.0)
                .bind(at.0);
            let shown = serde_json::json!({"email": email, "name": c.name});
            let change = Change::new("customer.created", &id)
                .customer(Some(&id))
                .after(&shown);
            audit_into(batch, account_id, actor, change);
            applied
                .actions
                .push(serde_json::json!({"action": "customer_created", "customer_id": id}));
            id
        }
    };
    if let Some(ext) = &c.external_id
        && lookups.customer_by_external_id.is_none()
    {
        batch
            .push(
                // No ON CONFLICT: on PostgreSQL, another node that created this customer a
                // moment ago makes this a unique violation, and the delivery is applied again
                // (it then finds that customer) instead of leaving a second one.
                "INSERT INTO customer_external_ids (account_id, provider, external_id, \
                 customer_id) VALUES ($1, $2, $3, $4)",
            )
            .bind(account_id.to_string())
            .bind(provider.to_string())
            .bind(ext.clone())
            .bind(id.clone());
    }
    Some(id)
}
