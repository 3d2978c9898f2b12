//! What client software does with a license key (the key is the credential): validate,
//! activate and deactivate machines, check floating seats out and in, record usage.

use super::audit::{Change, audit};
use super::checks::validate_text;
use super::engine::FOR_UPDATE_OF_L;
use super::licenses::quota_used;
use super::outbound::enqueue_outbound;
use super::rows::{
    ACTIVATION_COLS, LICENSE_COLS_L, POLICY_COLS_P, activation_from_row, license_from_row,
    payment_from_row, placeholders, policy_from_row,
};
use super::{DbConn, SqlStore};
use crate::cache::CachedLicense;
use crate::{
    ActivateInput, ClientStore, Result, StoreError, UsageInput, UsageMode, Validation, now,
};
use async_trait::async_trait;
use keygate_domain::ErrorCode;
use keygate_domain::credentials::credential_hash;
use keygate_domain::validation::{PaymentFacts, decide};
use keygate_domain::{
    Activation, Actor, License, Policy, SeatFacts, SeatLease, Timestamp, UsageOutcome,
    ValidationCode, ValidationFacts, ValidationRequest, new_id,
};
use sqlx::Row;
use std::collections::HashMap;
use std::sync::LazyLock;

#[async_trait]
impl ClientStore for SqlStore {
    async fn validate(&self, key: &str, request: ValidationRequest<'_>) -> Result<Validation> {
        let hash = credential_hash(key);
        let now = now();
        let cached = self.cache.as_ref().and_then(|c| c.get(&hash));
        let entry = match cached {
            Some(entry) => entry,
            None => {
                let token = self.cache.as_ref().map(|c| c.token());
                let Some(loaded) = self.load_for_validation(&hash, now).await? else {
                    return Ok(Validation {
                        code: ValidationCode::NotFound,
                        license: None,
                        policy: None,
                        product_code: None,
                        account_id: None,
                    });
                };
                let loaded = std::sync::Arc::new(loaded);
                if let (Some(cache), Some(token)) = (&self.cache, token) {
                    cache.insert(token, hash, loaded.clone());
                }
                loaded
            }
        };
        let facts = ValidationFacts {
            product_code: entry.product_code.clone(),
            fingerprint_activated: request
                .fingerprint
                .is_some_and(|f| entry.fingerprints.iter().any(|a| a == f)),
            activation_count: entry.fingerprints.len() as i64,
            quota_used: entry.quota_used(now),
            seats: None,
            payment: entry.payment,
        };
        let mut facts = facts;
        // Seats change with every checkout: read them live, and only when a session is named.
        if let (Some(session), Some(_)) = (request.session, entry.license.max_seats(&entry.policy))
        {
            let row = sqlx::query(
                "SELECT count(*) AS in_use, count(*) FILTER (WHERE session = $3) AS held \
                 FROM seat_leases WHERE license_id = $1 AND expires_at > $2",
            )
            .bind(&entry.license.id)
            .bind(now.0)
            .bind(session)
            .fetch_one(&self.read)
            .await?;
            facts.seats = Some(SeatFacts {
                held: row.try_get::<i64, _>("held")? > 0,
                in_use: row.try_get("in_use")?,
            });
        }
        let code = decide(&entry.license, &entry.policy, &request, &facts, now);
        Ok(Validation {
            code,
            license: Some(entry.license.view(&entry.policy, facts.quota_used, now)),
            policy: Some(entry.policy.clone()),
            product_code: Some(entry.product_code.clone()),
            account_id: Some(entry.account_id.clone()),
        })
    }

    async fn warm_validation_cache(&self) -> Result<usize> {
        let Some(cache) = &self.cache else {
            return Ok(0);
        };
        let base = format!(
            "SELECT l.account_id AS account_id, {}, {}, pr.code AS product_code, \
             s.payment_failed_at AS s_payment_failed_at, \
             s.payment_grace_seconds AS s_payment_grace_seconds FROM licenses l \
             JOIN policies p ON p.id = l.policy_id JOIN products pr ON pr.id = l.product_id \
             LEFT JOIN subscriptions s ON s.id = l.subscription_id \
             WHERE l.id > $1 ORDER BY l.id LIMIT 5000",
            *LICENSE_COLS_L, *POLICY_COLS_P
        );
        let mut after = String::new();
        let mut loaded = 0;
        loop {
            let token = cache.token();
            let mut conn = self.read.acquire().await?;
            let rows = sqlx::query(&base)
                .bind(&after)
                .fetch_all(&mut *conn)
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.try_get("id")?;
            let now = now();
            let mut policies: HashMap<String, std::sync::Arc<Policy>> = HashMap::new();
            let mut entries = Vec::with_capacity(rows.len());
            for row in &rows {
                let license = license_from_row(row)?;
                let policy = match policies.get(&license.policy_id) {
                    Some(p) => p.clone(),
                    None => {
                        let p = std::sync::Arc::new(policy_from_row(row, "p_")?);
                        policies.insert(license.policy_id.clone(), p.clone());
                        p
                    }
                };
                let quota = policy
                    .quota
                    .map(|_| (license.quota_window(&policy, now).0, 0));
                entries.push(CachedLicense {
                    account_id: row.try_get("account_id")?,
                    product_code: row.try_get("product_code")?,
                    payment: payment_from_row(row)?,
                    license,
                    policy,
                    fingerprints: Vec::new(),
                    quota,
                });
            }
            // Activations and quota counters of the whole page, one query each.
            let index: HashMap<String, usize> = entries
                .iter()
                .enumerate()
                .map(|(i, e)| (e.license.id.clone(), i))
                .collect();
            let ids = placeholders(1, entries.len());
            let sql = format!(
                "SELECT license_id, fingerprint FROM activations WHERE license_id IN ({ids})"
            );
            let mut q = sqlx::query(&sql);
            for e in &entries {
                q = q.bind(e.license.id.as_str());
            }
            for row in q.fetch_all(&mut *conn).await? {
                let id: String = row.try_get("license_id")?;
                if let Some(&i) = index.get(&id) {
                    entries[i].fingerprints.push(row.try_get("fingerprint")?);
                }
            }
            let sql = format!(
                "SELECT license_id, period_index, used FROM usage_counters WHERE license_id IN ({ids})"
            );
            let mut q = sqlx::query(&sql);
            for e in &entries {
                q = q.bind(e.license.id.as_str());
            }
            for row in q.fetch_all(&mut *conn).await? {
                let id: String = row.try_get("license_id")?;
                if let Some(&i) = index.get(&id)
                    && let Some((window, used)) = entries[i].quota.as_mut()
                    && *window == row.try_get::<i64, _>("period_index")?
                {
                    *used = row.try_get("used")?;
                }
            }
            drop(conn);
            for entry in entries {
                let key_hash = credential_hash(&entry.license.key);
                cache.insert(token, key_hash, std::sync::Arc::new(entry));
                loaded += 1;
            }
        }
        Ok(loaded)
    }

    async fn activate(&self, input: ActivateInput) -> Result<(Activation, bool)> {
        validate_text("fingerprint", &input.fingerprint, 255)?;
        let (activation, created, key) = self.write_tx(async |tx| {
        let k = require_by_key(tx, &input.key, true).await?;
        let at = now();
        ensure_usable(&k, at)?;
        let sql = format!(
            "SELECT {ACTIVATION_COLS} FROM activations WHERE license_id = $1 AND fingerprint = $2"
        );
        let existing = sqlx::query(&sql)
            .bind(&k.license.id)
            .bind(&input.fingerprint)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = existing {
            // Already activated: answer the existing activation, not an error.
            let mut activation = activation_from_row(&row)?;
            sqlx::query("UPDATE activations SET last_seen_at = $2 WHERE id = $1")
                .bind(&activation.id)
                .bind(at.0)
                .execute(&mut *tx)
                .await?;
            activation.last_seen_at = at;
            return Ok((activation, false, k.license.key));
        }
        if let Some(max) = k.license.max_activations(&k.policy) {
            let count: i64 =
                sqlx::query_scalar("SELECT count(*) FROM activations WHERE license_id = $1")
                    .bind(&k.license.id)
                    .fetch_one(&mut *tx)
                    .await?;
            if count >= max {
                return Err(StoreError::conflict(
ErrorCode::TooManyActivations,
                    format!("the license allows {max} activations and has {count}"),
                ));
            }
        }
        let activation = Activation {
            id: new_id(),
            account_id: k.account_id.clone(),
            license_id: k.license.id.clone(),
            fingerprint: input.fingerprint,
            name: input.name,
            platform: input.platform,
            created_at: at,
            last_seen_at: at,
        };
        sqlx::query(
            "INSERT INTO activations (id, account_id, license_id, fingerprint, name, platform, \
             created_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&activation.id)
        .bind(&k.account_id)
        .bind(&activation.license_id)
        .bind(&activation.fingerprint)
        .bind(&activation.name)
        .bind(&activation.platform)
        .bind(at.0)
        .bind(at.0)
        .execute(&mut *tx)
        .await?;
        let change = Change::new("activation.created", &activation.id)
            .license(&k.license.id)
            .customer(k.license.customer_id.as_deref())
            .after(&activation);
        audit(tx, &k.account_id, &Actor::Client, change).await?;
        Ok((activation, true, k.license.key))
        })
        .await?;
        if created {
            self.invalidate_key(&key);
        }
        Ok((activation, created))
    }

    async fn deactivate(&self, key: &str, fingerprint: &str) -> Result<()> {
        self.write_tx(async |tx| {
            let k = require_by_key(tx, key, true).await?;
            let sql = format!(
                "DELETE FROM activations WHERE license_id = $1 AND fingerprint = $2 \
             RETURNING {ACTIVATION_COLS}"
            );
            let row = sqlx::query(&sql)
                .bind(&k.license.id)
                .bind(fingerprint)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound("activation"))?;
            let activation = activation_from_row(&row)?;
            let change = Change::new("activation.deleted", &activation.id)
                .license(&k.license.id)
                .customer(k.license.customer_id.as_deref())
                .before(&activation);
            audit(tx, &k.account_id, &Actor::Client, change).await
        })
        .await?;
        self.invalidate_key(key);
        Ok(())
    }

    async fn checkout(&self, key: &str, session: &str) -> Result<SeatLease> {
        validate_text("session", session, 255)?;
        self.write_tx(async |tx| {
            let k = require_by_key(tx, key, true).await?;
            let at = now();
            ensure_usable(&k, at)?;
            let (Some(max_seats), Some(floating)) =
                (k.license.max_seats(&k.policy), k.policy.floating)
            else {
                return Err(StoreError::invalid(
                    ErrorCode::NotFloating,
                    "the license's policy has no floating seats",
                ));
            };
            let lease_expires_at = at.plus_seconds(floating.lease_seconds);
            // Expired leases free their seat here, at the next checkout: no sweeper needed.
            sqlx::query("DELETE FROM seat_leases WHERE license_id = $1 AND expires_at <= $2")
                .bind(&k.license.id)
                .bind(at.0)
                .execute(&mut *tx)
                .await?;
            let renewed = sqlx::query(
                "UPDATE seat_leases SET expires_at = $3 WHERE license_id = $1 AND session = $2",
            )
            .bind(&k.license.id)
            .bind(session)
            .bind(lease_expires_at.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let used: i64 =
                sqlx::query_scalar("SELECT count(*) FROM seat_leases WHERE license_id = $1")
                    .bind(&k.license.id)
                    .fetch_one(&mut *tx)
                    .await?;
            if renewed == 0 {
                if used >= max_seats {
                    return Err(StoreError::conflict(
                        ErrorCode::NoSeatAvailable,
                        format!("all {max_seats} floating seats are in use"),
                    ));
                }
                sqlx::query(
                "INSERT INTO seat_leases (license_id, session, account_id, expires_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&k.license.id)
            .bind(session)
            .bind(&k.account_id)
            .bind(lease_expires_at.0)
            .bind(at.0)
            .execute(&mut *tx)
            .await?;
            }
            let lease = SeatLease {
                account_id: k.account_id,
                license_id: k.license.id,
                session: session.to_string(),
                lease_expires_at,
                seats_used: if renewed == 0 { used + 1 } else { used },
                max_seats: Some(max_seats),
            };
            // A new seat is news; a heartbeat is not.
            if renewed == 0 {
                let data = serde_json::to_string(&lease)?;
                enqueue_outbound(tx, &lease.account_id, "seat.checked_out", &data).await?;
            }
            Ok(lease)
        })
        .await
    }

    async fn checkin(&self, key: &str, session: &str) -> Result<()> {
        self.write_tx(async |tx| {
            let k = require_by_key(tx, key, true).await?;
            let freed =
                sqlx::query("DELETE FROM seat_leases WHERE license_id = $1 AND session = $2")
                    .bind(&k.license.id)
                    .bind(session)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            if freed > 0 {
                let data = serde_json::json!({"license_id": k.license.id, "session": session});
                enqueue_outbound(tx, &k.account_id, "seat.checked_in", &data.to_string()).await?;
            }
            Ok(())
        })
        .await
    }

    async fn record_usage(&self, input: UsageInput) -> Result<UsageOutcome> {
        if input.amount <= 0 {
            return Err(StoreError::invalid(
                ErrorCode::InvalidField,
                "`amount` must be a positive number",
            ));
        }
        let (outcome, key) = self
            .write_tx(async |tx| {
                let k = require_by_key(tx, &input.key, true).await?;
                let at = now();
                ensure_usable(&k, at)?;
                if k.policy.quota.is_none() {
                    return Err(StoreError::invalid(
                        ErrorCode::NotMetered,
                        "the license's policy has no quota: usage is not recorded",
                    ));
                }
                if let Some(f) = &input.feature
                    && !k.license.has_feature(&k.policy, f)
                {
                    return Err(StoreError::conflict(
                        ErrorCode::FeatureMissing,
                        format!("the license does not grant feature `{f}`"),
                    ));
                }
                let (period, _) = k.license.quota_window(&k.policy, at);
                let limit = k.license.quota_limit(&k.policy);
                sqlx::query(
            "INSERT INTO usage_counters (license_id, period_index, used) VALUES ($1, $2, 0) \
             ON CONFLICT (license_id, period_index) DO NOTHING",
        )
        .bind(&k.license.id)
        .bind(period)
        .execute(&mut *tx)
        .await?;
                let used: i64 = sqlx::query_scalar(
                    "SELECT used FROM usage_counters WHERE license_id = $1 AND period_index = $2",
                )
                .bind(&k.license.id)
                .bind(period)
                .fetch_one(&mut *tx)
                .await?;
                let new_used = used.saturating_add(input.amount);
                if let Some(limit) = limit
                    && input.mode == UsageMode::Prepay
                    && new_used > limit
                {
                    return Err(StoreError::conflict(
                        ErrorCode::QuotaExceeded,
                        format!(
                            "{} more would exceed the quota: {used} of {limit} used",
                            input.amount
                        ),
                    ));
                }
                sqlx::query(
            "UPDATE usage_counters SET used = $3 WHERE license_id = $1 AND period_index = $2",
        )
        .bind(&k.license.id)
        .bind(period)
        .bind(new_used)
        .execute(&mut *tx)
        .await?;
                sqlx::query(
            "INSERT INTO usage_records (id, account_id, license_id, feature, amount, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new_id())
        .bind(&k.account_id)
        .bind(&k.license.id)
        .bind(&input.feature)
        .bind(input.amount)
        .bind(at.0)
        .execute(&mut *tx)
        .await?;
                let outcome = UsageOutcome {
                    used: new_used,
                    remaining: limit.map(|l| (l - new_used).max(0)),
                    overdraft: limit.map(|l| (new_used - l).max(0)).unwrap_or(0),
                };
                Ok((outcome, k.license.key))
            })
            .await?;
        self.invalidate_key(&key);
        Ok(outcome)
    }
}

impl SqlStore {
    /// Loads what validation needs about the license with this key hash.
    async fn load_for_validation(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<CachedLicense>> {
        let mut conn = self.read.acquire().await?;
        let row = sqlx::query(&BY_KEY_SQL[0])
            .bind(hash)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let license = license_from_row(&row)?;
        let policy = policy_from_row(&row, "p_")?;
        let fingerprints =
            if license.max_activations(&policy).is_some() || policy.require_activation {
                sqlx::query_scalar("SELECT fingerprint FROM activations WHERE license_id = $1")
                    .bind(&license.id)
                    .fetch_all(&mut *conn)
                    .await?
            } else {
                Vec::new()
            };
        let quota = if policy.quota.is_some() {
            let (window, _) = license.quota_window(&policy, now);
            Some((window, quota_used(&mut conn, &license, &policy, now).await?))
        } else {
            None
        };
        Ok(Some(CachedLicense {
            account_id: row.try_get("account_id")?,
            product_code: row.try_get("product_code")?,
            payment: payment_from_row(&row)?,
            license,
            policy: std::sync::Arc::new(policy),
            fingerprints,
            quota,
        }))
    }
}

/// A license that is revoked, suspended or expired (past grace) refuses activations,
/// seats and usage with its validation code.
fn ensure_usable(k: &KeyedLicense, now: Timestamp) -> Result<()> {
    let facts = ValidationFacts {
        payment: k.payment,
        ..Default::default()
    };
    let code = decide(
        &k.license,
        &k.policy,
        &ValidationRequest::default(),
        &facts,
        now,
    );
    if code.is_valid() {
        Ok(())
    } else {
        Err(StoreError::LicenseRefused(code))
    }
}

struct KeyedLicense {
    account_id: String,
    license: License,
    policy: Policy,
    payment: PaymentFacts,
}

static BY_KEY_SQL: LazyLock<[String; 2]> = LazyLock::new(|| {
    let base = format!(
        "SELECT l.account_id AS account_id, {}, {}, pr.code AS product_code, \
         s.payment_failed_at AS s_payment_failed_at, \
         s.payment_grace_seconds AS s_payment_grace_seconds \
         FROM licenses l JOIN policies p ON p.id = l.policy_id \
         JOIN products pr ON pr.id = l.product_id \
         LEFT JOIN subscriptions s ON s.id = l.subscription_id WHERE l.key_hash = $1",
        *LICENSE_COLS_L, *POLICY_COLS_P
    );
    [base.clone(), format!("{base}{FOR_UPDATE_OF_L}")]
});

/// The license a client key names, with its policy; `lock` takes the row lock (PostgreSQL)
/// that serializes activations, seats and usage of one license.
async fn load_by_key(conn: &mut DbConn, key: &str, lock: bool) -> Result<Option<KeyedLicense>> {
    let hash = credential_hash(key);
    let row = sqlx::query(&BY_KEY_SQL[lock as usize])
        .bind(hash)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(KeyedLicense {
        account_id: row.try_get("account_id")?,
        license: license_from_row(&row)?,
        policy: policy_from_row(&row, "p_")?,
        payment: payment_from_row(&row)?,
    }))
}

async fn require_by_key(conn: &mut DbConn, key: &str, lock: bool) -> Result<KeyedLicense> {
    load_by_key(conn, key, lock)
        .await?
        .ok_or(StoreError::NotFound("license"))
}
