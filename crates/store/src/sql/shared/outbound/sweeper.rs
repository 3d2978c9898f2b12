//! The sweep that announces expired and soon-expiring licenses, once per `expires_at`.

use super::super::SqlStore;
use super::super::audit::{Change, audit};
use super::super::engine::SKIP_LOCKED;
use super::super::licenses::license_views;
use super::super::rows::{LICENSE_COLS, license_from_row};
use crate::Result;
use crate::outbound::{ExpirySweepStore, Swept};
use async_trait::async_trait;
use keygate_domain::{Actor, LicenseStatus, Timestamp};
use sqlx::Row;

#[async_trait]
impl ExpirySweepStore for SqlStore {
    async fn sweep_expiries(
        &self,
        now: Timestamp,
        expiring_soon_seconds: i64,
        limit: i64,
    ) -> Result<Swept> {
        let mut swept = Swept::default();
        // (announced column, the window, the audited action)
        let kinds = [
            (
                "expired_notified_for",
                "expires_at <= $1",
                "license.expired",
            ),
            (
                "expiring_notified_for",
                "expires_at > $1 AND expires_at <= $2",
                "license.expiring_soon",
            ),
        ];
        for (column, window, action) in kinds {
            // Claimed once per `expires_at` value, in the transaction that announces it: a
            // second node (or sweep) finds nothing left; a renewal moves `expires_at` and
            // re-arms it. Revoked licenses are claimed but not announced.
            let pending = format!("({column} IS NULL OR {column} <> expires_at) AND {window}");
            let sql = format!(
                "UPDATE licenses SET {column} = expires_at WHERE {pending} AND id IN \
                 (SELECT id FROM licenses WHERE {pending} ORDER BY expires_at LIMIT {limit}{SKIP_LOCKED}) \
                 RETURNING account_id, {LICENSE_COLS}"
            );
            let announced = self
                .write_tx(async |tx| {
                    let mut query = sqlx::query(&sql).bind(now.0);
                    if window.contains("$2") {
                        query = query.bind(now.plus_seconds(expiring_soon_seconds).0);
                    }
                    let rows = query.fetch_all(&mut *tx).await?;
                    let mut licenses = Vec::with_capacity(rows.len());
                    for row in &rows {
                        let license = license_from_row(row)?;
                        if license.status != LicenseStatus::Revoked {
                            licenses.push((row.try_get::<String, _>("account_id")?, license));
                        }
                    }
                    let views =
                        license_views(tx, licenses.iter().map(|(_, l)| l.clone()).collect())
                            .await?;
                    for ((account_id, license), view) in licenses.iter().zip(&views) {
                        let change = Change::of_license(action, license, None, Some(view));
                        audit(tx, account_id, &Actor::System, change).await?;
                    }
                    Ok(licenses.len())
                })
                .await?;
            if action == "license.expired" {
                swept.expired = announced;
            } else {
                swept.expiring_soon = announced;
            }
        }
        Ok(swept)
    }
}
