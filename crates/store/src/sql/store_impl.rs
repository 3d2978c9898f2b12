// Included once per engine by `sql/mod.rs`: `Db`, `ENGINE`, `FOR_UPDATE`, `FOR_UPDATE_OF_L`,
// `MIGRATIONS` and `open_pools` come from the including module.

use crate::cache::{CachedLicense, IntegrationCache, ValidationCache};
use crate::inputs::*;
use crate::{IdempotentResponse, Principal, SigningKeyRecord, Store, Validation, actor_of, now};
use async_trait::async_trait;
use keygate_domain::credentials::{credential_hash, generate_api_key, generate_license_key};
use keygate_domain::policy::{validate_feature_code, validate_metadata};
use keygate_domain::validation::{PaymentFacts, decide};
use keygate_domain::{
    Account, Activation, Actor, ApiKey, AuditEntry, Customer, ExpiryKind, Floating, License,
    LicenseStatus, LicenseView, Overrides, Page, Policy, PolicyInput, Product, Quota, SeatFacts,
    SeatLease, Timestamp, UsageOutcome, ValidationCode, ValidationFacts, ValidationRequest, new_id,
};
use serde::de::DeserializeOwned;
use sqlx::Row;
use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

type DbRow = <Db as sqlx::Database>::Row;
type DbConn = <Db as sqlx::Database>::Connection;

/// The connections a store uses, and what keeps its background task (if any) running.
struct Pools {
    read: Pool<Db>,
    write: Pool<Db>,
    background: Option<tokio::sync::watch::Sender<()>>,
}

pub struct SqlStore {
    /// Dropping it stops the engine's background task.
    _background: Option<tokio::sync::watch::Sender<()>>,
    read: Pool<Db>,
    write: Pool<Db>,
    /// Present only where this process is the only writer (SQLite).
    cache: Option<ValidationCache>,
    /// Likewise: integrations for webhook deliveries.
    integrations: Option<IntegrationCache>,
    /// Where webhook deliveries queue for group commit (SQLite's single writer).
    group_commit: Option<tokio::sync::mpsc::Sender<(ReceiveJob, ReceiveReply)>>,
}

impl SqlStore {
    pub async fn connect(url: &str) -> Result<Self> {
        let Pools {
            read,
            write,
            background,
        } = open_pools(url).await?;
        let cache = validation_cache();
        Ok(SqlStore {
            _background: background,
            group_commit: GROUP_COMMIT.then(|| spawn_group_commit(write.clone())),
            integrations: cache.is_some().then(IntegrationCache::default),
            read,
            write,
            cache,
        })
    }

    /// After a commit that changed what validating this license key sees.
    fn invalidate_key(&self, key: &str) {
        if let Some(c) = &self.cache {
            c.invalidate(&credential_hash(key));
        }
    }

    /// After a commit that changed policies or products (many licenses at once).
    fn invalidate_all(&self) {
        if let Some(c) = &self.cache {
            c.clear();
        }
        if let Some(c) = &self.integrations {
            c.clear();
        }
    }

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

// ---------------------------------------------------------------------------------------------
// Row mapping

const PRODUCT_COLS: &str = "id, code, name, metadata, created_at, updated_at";
const CUSTOMER_COLS: &str = "id, email, name, metadata, created_at, updated_at";
const LICENSE_COLS: &str = "id, license_key, policy_id, product_id, customer_id, subscription_id, \
     status, starts_at, expires_at, overrides, quantity, metadata, created_at, updated_at";
const POLICY_FIELDS: [&str; 20] = [
    "id",
    "product_id",
    "name",
    "duration_seconds",
    "expiry",
    "trial_seconds",
    "grace_seconds",
    "max_activations",
    "require_activation",
    "floating_max_seats",
    "floating_lease_seconds",
    "has_quota",
    "quota_limit",
    "quota_period_seconds",
    "features",
    "seats_from_quantity",
    "perpetual_offline",
    "metadata",
    "created_at",
    "updated_at",
];
const ACTIVATION_COLS: &str =
    "id, account_id, license_id, fingerprint, name, platform, created_at, last_seen_at";
const AUDIT_COLS: &str = "id, actor_type, actor_id, action, object_type, object_id, license_id, \
     customer_id, before_state, after_state, created_at";

/// The most licenses one bulk creation makes.
const MAX_BULK: usize = 100_000;

static POLICY_COLS: LazyLock<String> = LazyLock::new(|| POLICY_FIELDS.join(", "));
/// Policy columns of a join, aliased `p_*` so they cannot clash with the license's.
static POLICY_COLS_P: LazyLock<String> = LazyLock::new(|| {
    POLICY_FIELDS
        .iter()
        .map(|f| format!("p.{f} AS p_{f}"))
        .collect::<Vec<_>>()
        .join(", ")
});
static LICENSE_COLS_L: LazyLock<String> = LazyLock::new(|| {
    LICENSE_COLS
        .split(", ")
        .map(|c| format!("l.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
});

fn col<'r, T>(row: &'r DbRow, prefix: &str, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, Db> + sqlx::Type<Db>,
{
    if prefix.is_empty() {
        Ok(row.try_get(name)?)
    } else {
        Ok(row.try_get(format!("{prefix}{name}").as_str())?)
    }
}

fn parse_json<T: DeserializeOwned>(text: &str) -> Result<T> {
    Ok(serde_json::from_str(text)?)
}

fn ts(v: i64) -> Timestamp {
    Timestamp(v)
}

fn product_from_row(row: &DbRow) -> Result<Product> {
    Ok(Product {
        id: row.try_get("id")?,
        code: row.try_get("code")?,
        name: row.try_get("name")?,
        metadata: parse_json(row.try_get::<&str, _>("metadata")?)?,
        created_at: ts(row.try_get("created_at")?),
        updated_at: ts(row.try_get("updated_at")?),
    })
}

fn policy_from_row(row: &DbRow, p: &str) -> Result<Policy> {
    let expiry: String = col(row, p, "expiry")?;
    let floating = match (
        col::<Option<i64>>(row, p, "floating_max_seats")?,
        col::<Option<i64>>(row, p, "floating_lease_seconds")?,
    ) {
        (Some(max_seats), Some(lease_seconds)) => Some(Floating {
            max_seats,
            lease_seconds,
        }),
        _ => None,
    };
    let quota = if col::<bool>(row, p, "has_quota")? {
        Some(Quota {
            limit: col(row, p, "quota_limit")?,
            period_seconds: col(row, p, "quota_period_seconds")?,
        })
    } else {
        None
    };
    Ok(Policy {
        id: col(row, p, "id")?,
        product_id: col(row, p, "product_id")?,
        name: col(row, p, "name")?,
        duration_seconds: col(row, p, "duration_seconds")?,
        expiry: ExpiryKind::parse(&expiry)
            .ok_or_else(|| StoreError::Corrupt(format!("policy expiry `{expiry}`")))?,
        trial_seconds: col(row, p, "trial_seconds")?,
        grace_seconds: col(row, p, "grace_seconds")?,
        max_activations: col(row, p, "max_activations")?,
        require_activation: col(row, p, "require_activation")?,
        floating,
        quota,
        features: parse_json(&col::<String>(row, p, "features")?)?,
        seats_from_quantity: col(row, p, "seats_from_quantity")?,
        perpetual_offline: col(row, p, "perpetual_offline")?,
        metadata: parse_json(&col::<String>(row, p, "metadata")?)?,
        created_at: ts(col(row, p, "created_at")?),
        updated_at: ts(col(row, p, "updated_at")?),
    })
}

fn license_from_row(row: &DbRow) -> Result<License> {
    let status: String = row.try_get("status")?;
    Ok(License {
        id: row.try_get("id")?,
        key: row.try_get("license_key")?,
        policy_id: row.try_get("policy_id")?,
        product_id: row.try_get("product_id")?,
        customer_id: row.try_get("customer_id")?,
        subscription_id: row.try_get("subscription_id")?,
        status: LicenseStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("license status `{status}`")))?,
        starts_at: ts(row.try_get("starts_at")?),
        expires_at: row.try_get::<Option<i64>, _>("expires_at")?.map(ts),
        overrides: parse_json(row.try_get::<&str, _>("overrides")?)?,
        quantity: row.try_get("quantity")?,
        metadata: parse_json(row.try_get::<&str, _>("metadata")?)?,
        created_at: ts(row.try_get("created_at")?),
        updated_at: ts(row.try_get("updated_at")?),
    })
}

fn customer_from_row(row: &DbRow) -> Result<Customer> {
    Ok(Customer {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        external_ids: BTreeMap::new(),
        metadata: parse_json(row.try_get::<&str, _>("metadata")?)?,
        created_at: ts(row.try_get("created_at")?),
        updated_at: ts(row.try_get("updated_at")?),
    })
}

fn activation_from_row(row: &DbRow) -> Result<Activation> {
    Ok(Activation {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        license_id: row.try_get("license_id")?,
        fingerprint: row.try_get("fingerprint")?,
        name: row.try_get("name")?,
        platform: row.try_get("platform")?,
        created_at: ts(row.try_get("created_at")?),
        last_seen_at: ts(row.try_get("last_seen_at")?),
    })
}

fn api_key_from_row(row: &DbRow) -> Result<ApiKey> {
    Ok(ApiKey {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        created_at: ts(row.try_get("created_at")?),
        revoked_at: row.try_get::<Option<i64>, _>("revoked_at")?.map(ts),
    })
}

fn audit_from_row(row: &DbRow) -> Result<AuditEntry> {
    let json = |name: &str| -> Result<Option<serde_json::Value>> {
        row.try_get::<Option<&str>, _>(name)?
            .map(parse_json)
            .transpose()
    };
    Ok(AuditEntry {
        id: row.try_get("id")?,
        actor_type: row.try_get("actor_type")?,
        actor_id: row.try_get("actor_id")?,
        action: row.try_get("action")?,
        object_type: row.try_get("object_type")?,
        object_id: row.try_get("object_id")?,
        license_id: row.try_get("license_id")?,
        customer_id: row.try_get("customer_id")?,
        before: json("before_state")?,
        after: json("after_state")?,
        created_at: ts(row.try_get("created_at")?),
    })
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by several operations

/// `$first, $first+1, ...` for an `IN (...)` list of `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds `WHERE account_id = $1 AND ... [AND id < $cursor] ORDER BY id DESC LIMIT n+1` lists,
/// newest first, binding every value as text.
struct ListQuery {
    conditions: Vec<String>,
    args: Vec<String>,
}

impl ListQuery {
    fn new(account_id: &str) -> Self {
        ListQuery {
            conditions: vec!["account_id = $1".into()],
            args: vec![account_id.to_string()],
        }
    }

    /// Adds a condition; `?` in `sql` stands for the next placeholder.
    fn push(&mut self, sql: &str, value: impl Into<String>) {
        self.args.push(value.into());
        self.conditions
            .push(sql.replace('?', &format!("${}", self.args.len())));
    }

    fn sql(mut self, table: &str, cols: &str, page: &PageRequest) -> (String, Vec<String>) {
        if let Some(cursor) = &page.cursor {
            self.push("id < ?", cursor.clone());
        }
        let sql = format!(
            "SELECT {cols} FROM {table} WHERE {} ORDER BY id DESC LIMIT {}",
            self.conditions.join(" AND "),
            page.limit + 1
        );
        (sql, self.args)
    }
}

async fn fetch_page<T>(
    pool: &Pool<Db>,
    (sql, args): (String, Vec<String>),
    page: &PageRequest,
    map: impl Fn(&DbRow) -> Result<T>,
    id_of: impl Fn(&T) -> String,
) -> Result<Page<T>> {
    let mut query = sqlx::query(&sql);
    for a in &args {
        query = query.bind(a.as_str());
    }
    let rows = query.fetch_all(pool).await?;
    let mut data = rows.iter().map(map).collect::<Result<Vec<T>>>()?;
    let next_cursor = if data.len() as i64 > page.limit {
        data.truncate(page.limit as usize);
        data.last().map(id_of)
    } else {
        None
    };
    Ok(Page { data, next_cursor })
}

struct AuditRecord<'a> {
    account_id: &'a str,
    actor: &'a Actor,
    action: &'a str,
    object_type: &'a str,
    object_id: &'a str,
    license_id: Option<&'a str>,
    customer_id: Option<&'a str>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
}

/// Records a change, and enqueues the outbound event it announces (if any) in the same
/// transaction: every change goes through here.
async fn audit(conn: &mut DbConn, r: AuditRecord<'_>) -> Result<()> {
    let mut batch = WriteBatch::new();
    audit_into(&mut batch, r);
    batch.flush(conn).await
}

/// The audit row for a change and the outbound event it announces (if any), written with the
/// change's other writes.
fn audit_into(batch: &mut WriteBatch, r: AuditRecord<'_>) {
    let before = r.before.map(|v| v.to_string());
    let after = r.after.map(|v| v.to_string());
    if let Some(event_type) = crate::outbound::event_for_action(r.action) {
        let data = after.as_deref().or(before.as_deref()).unwrap_or("null");
        enqueue_outbound_into(batch, r.account_id, event_type, data);
    }
    batch
        .push(
            "INSERT INTO audit_log (id, account_id, actor_type, actor_id, action, object_type, \
             object_id, license_id, customer_id, before_state, after_state, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(new_id())
        .bind(r.account_id.to_string())
        .bind(r.actor.kind())
        .bind(r.actor.id().map(str::to_string))
        .bind(r.action.to_string())
        .bind(r.object_type.to_string())
        .bind(r.object_id.to_string())
        .bind(r.license_id.map(str::to_string))
        .bind(r.customer_id.map(str::to_string))
        .bind(before)
        .bind(after)
        .bind(now().0);
}

fn to_json<T: serde::Serialize>(v: &T) -> Option<serde_json::Value> {
    serde_json::to_value(v).ok()
}

fn validate_text(field: &str, value: &str, max: usize) -> Result<()> {
    if value.trim().is_empty() || value.len() > max {
        return Err(StoreError::invalid(
            "INVALID_FIELD",
            format!("`{field}` must be 1-{max} characters"),
        ));
    }
    Ok(())
}

fn validate_code(code: &str) -> Result<()> {
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "INVALID_FIELD",
            "`code` must be 1-64 characters of letters, digits, _ - .",
        ))
    }
}

fn normalize_email(email: Option<String>) -> Result<Option<String>> {
    match email {
        None => Ok(None),
        Some(e) => {
            let e = e.trim().to_lowercase();
            let at = e.find('@');
            if e.len() > 254 || !matches!(at, Some(i) if i > 0 && i < e.len() - 1) {
                return Err(StoreError::invalid(
                    "INVALID_FIELD",
                    format!("`email` `{e}` is not an email address"),
                ));
            }
            Ok(Some(e))
        }
    }
}

fn validate_overrides(o: &Overrides) -> Result<()> {
    for f in o.add_features.iter().chain(&o.remove_features) {
        validate_feature_code(f)?;
    }
    for (name, v) in [
        ("overrides.max_activations", o.max_activations),
        ("overrides.max_seats", o.max_seats),
    ] {
        if matches!(v, Some(n) if n <= 0) {
            return Err(StoreError::invalid(
                "INVALID_FIELD",
                format!("`{name}` must be a positive number"),
            ));
        }
    }
    if matches!(o.quota_limit, Some(n) if n < 0) {
        return Err(StoreError::invalid(
            "INVALID_FIELD",
            "`overrides.quota_limit` must not be negative",
        ));
    }
    Ok(())
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

async fn load_policy(conn: &mut DbConn, account_id: &str, id: &str) -> Result<Option<Policy>> {
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

async fn load_license(
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

struct KeyedLicense {
    account_id: String,
    license: License,
    policy: Policy,
    payment: PaymentFacts,
}

/// The billing subscription's payment state, from the `s_*` columns of a license query.
fn payment_from_row(row: &DbRow) -> Result<PaymentFacts> {
    Ok(PaymentFacts {
        payment_failed_at: row
            .try_get::<Option<i64>, _>("s_payment_failed_at")?
            .map(ts),
        grace_seconds: row.try_get("s_payment_grace_seconds")?,
    })
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

async fn quota_used(
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
async fn license_views(conn: &mut DbConn, licenses: Vec<License>) -> Result<Vec<LicenseView>> {
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

async fn customer_exists(conn: &mut DbConn, account_id: &str, id: &str) -> Result<bool> {
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
                    "EXTERNAL_ID_TAKEN",
                    format!("another customer already has {provider} id `{external_id}`"),
                )
            } else {
                e.into()
            }
        })?;
    }
    Ok(())
}

async fn save_license(conn: &mut DbConn, account_id: &str, l: &License) -> Result<()> {
    let mut batch = WriteBatch::new();
    save_license_into(&mut batch, account_id, l)?;
    batch.flush(conn).await
}

fn save_license_into(batch: &mut WriteBatch, account_id: &str, l: &License) -> Result<()> {
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

fn license_audit<'a>(
    account_id: &'a str,
    actor: &'a Actor,
    action: &'a str,
    license: &'a License,
    before: Option<&LicenseView>,
    after: Option<&LicenseView>,
) -> AuditRecord<'a> {
    AuditRecord {
        account_id,
        actor,
        action,
        object_type: "license",
        object_id: &license.id,
        license_id: Some(&license.id),
        customer_id: license.customer_id.as_deref(),
        before: before.and_then(to_json),
        after: after.and_then(to_json),
    }
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

async fn product_exists(conn: &mut DbConn, account_id: &str, id: &str) -> Result<bool> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT id FROM products WHERE account_id = $1 AND id = $2")
            .bind(account_id)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(found.is_some())
}

// ---------------------------------------------------------------------------------------------

#[async_trait]
impl Store for SqlStore {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    async fn migrate(&self) -> Result<()> {
        let mut conn = self.write.acquire().await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS keygate_migrations (version BIGINT PRIMARY KEY, \
             name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *conn)
        .await?;
        for m in MIGRATIONS {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM keygate_migrations WHERE version = $1")
                    .bind(m.version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_some() {
                continue;
            }
            tracing::info!(
                version = m.version,
                name = m.name,
                engine = ENGINE,
                "applying migration"
            );
            // Migration files hold plain DDL: statements end at `;` and none contains one.
            for statement in m.sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            sqlx::query(
                "INSERT INTO keygate_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(now().0)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    // -- accounts and keys ----------------------------------------------------------------

    async fn create_account(&self, name: &str) -> Result<(Account, ApiKey, String)> {
        validate_text("name", name, 200)?;
        let account = Account {
            id: new_id(),
            name: name.trim().to_string(),
            created_at: now(),
        };
        let mut tx = begin_write(&self.write).await?;
        sqlx::query("INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&account.id)
            .bind(&account.name)
            .bind(account.created_at.0)
            .execute(&mut *tx)
            .await?;
        let (key, secret) = insert_api_key(&mut tx, &account.id, "default").await?;
        audit(
            &mut tx,
            AuditRecord {
                account_id: &account.id,
                actor: &Actor::Operator,
                action: "account.created",
                object_type: "account",
                object_id: &account.id,
                license_id: None,
                customer_id: None,
                before: None,
                after: to_json(&account),
            },
        )
        .await?;
        tx.commit().await?;
        Ok((account, key, secret))
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
        let mut tx = begin_write(&self.write).await?;
        let (key, secret) = insert_api_key(&mut tx, &who.account_id, name.trim()).await?;
        audit(
            &mut tx,
            AuditRecord {
                account_id: &who.account_id,
                actor: &actor_of(who),
                action: "api_key.created",
                object_type: "api_key",
                object_id: &key.id,
                license_id: None,
                customer_id: None,
                before: None,
                after: to_json(&key),
            },
        )
        .await?;
        tx.commit().await?;
        Ok((key, secret))
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
        let mut tx = begin_write(&self.write).await?;
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
                "LAST_API_KEY",
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
        audit(
            &mut tx,
            AuditRecord {
                account_id: &who.account_id,
                actor: &actor_of(who),
                action: "api_key.revoked",
                object_type: "api_key",
                object_id: key_id,
                license_id: None,
                customer_id: None,
                before: None,
                after: to_json(&key),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(key)
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
        let mut tx = begin_write(&self.write).await?;
        if let Some(row) = sqlx::query(current_sql)
            .bind(account_id)
            .fetch_optional(&mut *tx)
            .await?
        {
            return signing_key_from_row(&row);
        }
        let inserted = insert_signing_key(&mut tx, account_id, &candidate).await;
        match inserted {
            Ok(()) => {
                tx.commit().await?;
                Ok(candidate)
            }
            // Another node made one first: use it.
            Err(StoreError::Database(e)) if is_unique_violation(&e) => {
                drop(tx);
                let row = sqlx::query(current_sql)
                    .bind(account_id)
                    .fetch_one(&self.write)
                    .await?;
                signing_key_from_row(&row)
            }
            Err(e) => Err(e),
        }
    }

    async fn rotate_signing_key(&self, who: &Principal, new: SigningKeyRecord) -> Result<()> {
        let mut tx = begin_write(&self.write).await?;
        sqlx::query(
            "UPDATE signing_keys SET retired_at = $2 WHERE account_id = $1 AND retired_at IS NULL",
        )
        .bind(&who.account_id)
        .bind(now().0)
        .execute(&mut *tx)
        .await?;
        insert_signing_key(&mut tx, &who.account_id, &new).await?;
        audit(
            &mut tx,
            AuditRecord {
                account_id: &who.account_id,
                actor: &actor_of(who),
                action: "signing_key.rotated",
                object_type: "signing_key",
                object_id: &new.key_id,
                license_id: None,
                customer_id: None,
                before: None,
                after: Some(
                    serde_json::json!({"key_id": new.key_id, "public_key": new.public_key}),
                ),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    // -- products --------------------------------------------------------------------------

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
        let mut tx = begin_write(&self.write).await?;
        sqlx::query(
            "INSERT INTO products (id, account_id, code, name, metadata, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
        audit(
            &mut tx,
            AuditRecord {
                account_id: &who.account_id,
                actor: &actor_of(who),
                action: "product.created",
                object_type: "product",
                object_id: &product.id,
                license_id: None,
                customer_id: None,
                before: None,
                after: to_json(&product),
            },
        )
        .await?;
        tx.commit().await?;
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
        let mut tx = begin_write(&self.write).await?;
        let sql = format!(
            "SELECT {PRODUCT_COLS} FROM products WHERE account_id = $1 AND id = $2{FOR_UPDATE}"
        );
        let row = sqlx::query(&sql)
            .bind(&who.account_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("product"))?;
        let before = product_from_row(&row)?;
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
        audit(
            &mut tx,
            AuditRecord {
                account_id: &who.account_id,
                actor: &actor_of(who),
                action: "product.updated",
                object_type: "product",
                object_id: id,
                license_id: None,
                customer_id: None,
                before: to_json(&before),
                after: to_json(&product),
            },
        )
        .await?;
        tx.commit().await?;
        self.invalidate_all();
        Ok(product)
    }

    async fn delete_product(&self, who: &Principal, id: &str) -> Result<()> {
        let mut tx = begin_write(&self.write).await?;
        let sql = format!(
            "SELECT {PRODUCT_COLS} FROM products WHERE account_id = $1 AND id = $2{FOR_UPDATE}"
        );
        let row = sqlx::query(&sql)
            .bind(&who.account_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("product"))?;
        let product = product_from_row(&row)?;
        let policies: i64 =
            sqlx::query_scalar("SELECT count(*) FROM policies WHERE product_id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        if policies > 0 {
            return Err(StoreError::conflict(
                "PRODUCT_IN_USE",
                format!("the product has {policies} policies: it cannot be deleted"),
            ));
        }
        sqlx::query("DELETE FROM products WHERE account_id = $1 AND id = $2")
            .bind(&who.account_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        audit(
            &mut tx,
            AuditRecord {
                account_id: &who.account_id,
                actor: &actor_of(who),
                action: "product.deleted",
                object_type: "product",
                object_id: id,
                license_id: None,
                customer_id: None,
                before: to_json(&product),
                after: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    // -- policies --------------------------------------------------------------------------

    async fn create_policy(&self, who: &Principal, input: PolicyInput) -> Result<Policy> {
        input.validate()?;
        let mut tx = begin_write(&self.write).await?;
        if !product_exists(&mut tx, &who.account_id, &input.product_id).await? {
            return Err(StoreError::invalid(
                "PRODUCT_NOT_FOUND",
                format!("no product `{}` in this account", input.product_id),
            ));
        }
        let id = new_id();
        let at = now();
        insert_policy(&mut tx, &who.account_id, &id, &input, at, at, false).await?;
        let policy = load_policy(&mut tx, &who.account_id, &id)
            .await?
            .ok_or(StoreError::NotFound("policy"))?;
        audit(
            &mut tx,
            AuditRecord {
                account_id: &who.account_id,
                actor: &actor_of(who),
                action: "policy.created",
                object_type: "policy",
                object_id: &id,
                license_id: None,
                customer_id: None,
                before: None,
                after: to_json(&policy),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(policy)
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
        let mut tx = begin_write(&self.write).await?;
        let before = load_policy(&mut tx, &who.account_id, id)
            .await?
            .ok_or(StoreError::NotFound("policy"))?;
        let mut merged = serde_json::to_value(before.to_input())?;
        for (k, v) in patch {
            if k == "product_id" && v.as_str() != Some(before.product_id.as_str()) {
                return Err(StoreError::invalid(
                    "IMMUTABLE_FIELD",
                    "a policy's `product_id` cannot change: create a new policy instead",
                ));
            }
            merged[k] = v;
        }
        let input: PolicyInput = serde_json::from_value(merged)
            .map_err(|e| StoreError::invalid("INVALID_FIELD", e.to_string()))?;
        input.validate()?;
        insert_policy(
            &mut tx,
            &who.account_id,
            id,
            &input,
            before.created_at,
            now(),
            true,
        )
        .await?;
        let policy = load_policy(&mut tx, &who.account_id, id)
            .await?
            .ok_or(StoreError::NotFound("policy"))?;
        audit(
            &mut tx,
            AuditRecord {
                account_id: &who.account_id,
                actor: &actor_of(who),
                action: "policy.updated",
                object_type: "policy",
                object_id: id,
                license_id: None,
                customer_id: None,
                before: to_json(&before),
                after: to_json(&policy),
            },
        )
        .await?;
        tx.commit().await?;
        self.invalidate_all();
        Ok(policy)
    }

    // -- customers -------------------------------------------------------------------------

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
        let mut tx = begin_write(&self.write).await?;
        sqlx::query(
            "INSERT INTO customers (id, account_id, email, name, metadata, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
        insert_external_ids(
            &mut tx,
            &who.account_id,
            &customer.id,
            &customer.external_ids,
        )
        .await?;
        audit(
            &mut tx,
            AuditRecord {
                account_id: &who.account_id,
                actor: &actor_of(who),
                action: "customer.created",
                object_type: "customer",
                object_id: &customer.id,
                license_id: None,
                customer_id: Some(&customer.id),
                before: None,
                after: to_json(&customer),
            },
        )
        .await?;
        tx.commit().await?;
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
        let mut tx = begin_write(&self.write).await?;
        let before = load_customer(&mut tx, &who.account_id, id).await?;
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
            insert_external_ids(&mut tx, &who.account_id, id, &ids).await?;
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
        audit(
            &mut tx,
            AuditRecord {
                account_id: &who.account_id,
                actor: &actor_of(who),
                action: "customer.updated",
                object_type: "customer",
                object_id: id,
                license_id: None,
                customer_id: Some(id),
                before: to_json(&before),
                after: to_json(&customer),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(customer)
    }

    // -- licenses --------------------------------------------------------------------------

    async fn create_licenses(
        &self,
        who: &Principal,
        input: LicenseInput,
        count: usize,
    ) -> Result<Vec<LicenseView>> {
        if count == 0 || count > MAX_BULK {
            return Err(StoreError::invalid(
                "INVALID_FIELD",
                format!("a bulk creation makes 1-{MAX_BULK} licenses"),
            ));
        }
        if input.key.is_some() && count > 1 {
            return Err(StoreError::invalid(
                "INVALID_FIELD",
                "a custom `key` names one license: it cannot be used in bulk",
            ));
        }
        validate_overrides(&input.overrides)?;
        validate_metadata(&input.metadata)?;
        if matches!(input.quantity, Some(q) if q <= 0) {
            return Err(StoreError::invalid(
                "INVALID_FIELD",
                "`quantity` must be a positive number",
            ));
        }
        let custom_key = match input.key {
            Some(k) => {
                let k = k.trim().to_string();
                if k.len() < 16 || k.len() > 256 || k.chars().any(|c| c.is_control()) {
                    return Err(StoreError::invalid(
                        "INVALID_FIELD",
                        "a custom `key` must be 16-256 printable characters",
                    ));
                }
                Some(k)
            }
            None => None,
        };
        let mut tx = begin_write(&self.write).await?;
        let policy = load_policy(&mut tx, &who.account_id, &input.policy_id)
            .await?
            .ok_or_else(|| {
                StoreError::invalid(
                    "POLICY_NOT_FOUND",
                    format!("no policy `{}` in this account", input.policy_id),
                )
            })?;
        if let Some(c) = &input.customer_id
            && !customer_exists(&mut tx, &who.account_id, c).await?
        {
            return Err(StoreError::invalid(
                "CUSTOMER_NOT_FOUND",
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
                    StoreError::conflict("KEY_TAKEN", "a license with this key already exists")
                } else {
                    e.into()
                }
            })?;
            let view = license.view(&policy, 0, at);
            audit(
                &mut tx,
                license_audit(
                    &who.account_id,
                    &actor_of(who),
                    "license.created",
                    &license,
                    None,
                    Some(&view),
                ),
            )
            .await?;
            created.push(view);
        }
        tx.commit().await?;
        Ok(created)
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
                    "INVALID_FILTER",
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
        let mut tx = begin_write(&self.write).await?;
        let mut license = load_license(&mut tx, &who.account_id, id, true)
            .await?
            .ok_or(StoreError::NotFound("license"))?;
        let old_policy = load_policy(&mut tx, &who.account_id, &license.policy_id)
            .await?
            .ok_or(StoreError::NotFound("policy"))?;
        let before = license_view(&mut tx, &license, &old_policy).await?;
        let mut policy = old_policy;
        if let Some(policy_id) = patch.policy_id {
            policy = load_policy(&mut tx, &who.account_id, &policy_id)
                .await?
                .ok_or_else(|| {
                    StoreError::invalid(
                        "POLICY_NOT_FOUND",
                        format!("no policy `{policy_id}` in this account"),
                    )
                })?;
            license.policy_id = policy.id.clone();
            license.product_id = policy.product_id.clone();
        }
        if let Some(customer_id) = patch.customer_id {
            if let Some(c) = &customer_id
                && !customer_exists(&mut tx, &who.account_id, c).await?
            {
                return Err(StoreError::invalid(
                    "CUSTOMER_NOT_FOUND",
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
                    "INVALID_FIELD",
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
        save_license(&mut tx, &who.account_id, &license).await?;
        let after = license_view(&mut tx, &license, &policy).await?;
        audit(
            &mut tx,
            license_audit(
                &who.account_id,
                &actor_of(who),
                "license.updated",
                &license,
                Some(&before),
                Some(&after),
            ),
        )
        .await?;
        tx.commit().await?;
        self.invalidate_key(&license.key);
        Ok(after)
    }

    async fn license_action(
        &self,
        who: &Principal,
        id: &str,
        action: LicenseAction,
    ) -> Result<LicenseView> {
        let mut tx = begin_write(&self.write).await?;
        let mut license = load_license(&mut tx, &who.account_id, id, true)
            .await?
            .ok_or(StoreError::NotFound("license"))?;
        let policy = load_policy(&mut tx, &who.account_id, &license.policy_id)
            .await?
            .ok_or(StoreError::NotFound("policy"))?;
        let before = license_view(&mut tx, &license, &policy).await?;
        let at = now();
        let revoked = || {
            StoreError::conflict(
                "LICENSE_REVOKED",
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
                                "INVALID_FIELD",
                                "`seconds` must be a positive number",
                            ));
                        }
                        s
                    }
                    _ => policy.duration_seconds.ok_or_else(|| {
                        StoreError::invalid(
                            "POLICY_NOT_RENEWABLE",
                            "the policy has no duration_seconds to renew by: use extend",
                        )
                    })?,
                };
                if license.expires_at.is_none() {
                    return Err(StoreError::invalid(
                        "LICENSE_PERPETUAL",
                        "the license never expires: there is nothing to renew or extend",
                    ));
                }
                license.expires_at = Some(license.extension_base(at).plus_seconds(seconds));
            }
        }
        license.updated_at = at;
        save_license(&mut tx, &who.account_id, &license).await?;
        let after = license_view(&mut tx, &license, &policy).await?;
        let action_name = format!("license.{}", past_tense(action));
        audit(
            &mut tx,
            license_audit(
                &who.account_id,
                &actor_of(who),
                &action_name,
                &license,
                Some(&before),
                Some(&after),
            ),
        )
        .await?;
        tx.commit().await?;
        self.invalidate_key(&license.key);
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
        let mut tx = begin_write(&self.write).await?;
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
        audit(
            &mut tx,
            AuditRecord {
                account_id: &who.account_id,
                actor: &actor_of(who),
                action: "activation.deleted",
                object_type: "activation",
                object_id: activation_id,
                license_id: Some(&activation.license_id),
                customer_id: None,
                before: to_json(&activation),
                after: None,
            },
        )
        .await?;
        tx.commit().await?;
        self.invalidate_key(&license_key);
        Ok(())
    }

    // -- client endpoints ------------------------------------------------------------------

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
        let mut tx = begin_write(&self.write).await?;
        let k = require_by_key(&mut tx, &input.key, true).await?;
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
            tx.commit().await?;
            return Ok((activation, false));
        }
        if let Some(max) = k.license.max_activations(&k.policy) {
            let count: i64 =
                sqlx::query_scalar("SELECT count(*) FROM activations WHERE license_id = $1")
                    .bind(&k.license.id)
                    .fetch_one(&mut *tx)
                    .await?;
            if count >= max {
                return Err(StoreError::conflict(
                    "TOO_MANY_ACTIVATIONS",
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
        audit(
            &mut tx,
            AuditRecord {
                account_id: &k.account_id,
                actor: &Actor::Client,
                action: "activation.created",
                object_type: "activation",
                object_id: &activation.id,
                license_id: Some(&k.license.id),
                customer_id: k.license.customer_id.as_deref(),
                before: None,
                after: to_json(&activation),
            },
        )
        .await?;
        tx.commit().await?;
        self.invalidate_key(&k.license.key);
        Ok((activation, true))
    }

    async fn deactivate(&self, key: &str, fingerprint: &str) -> Result<()> {
        let mut tx = begin_write(&self.write).await?;
        let k = require_by_key(&mut tx, key, true).await?;
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
        audit(
            &mut tx,
            AuditRecord {
                account_id: &k.account_id,
                actor: &Actor::Client,
                action: "activation.deleted",
                object_type: "activation",
                object_id: &activation.id,
                license_id: Some(&k.license.id),
                customer_id: k.license.customer_id.as_deref(),
                before: to_json(&activation),
                after: None,
            },
        )
        .await?;
        tx.commit().await?;
        self.invalidate_key(&k.license.key);
        Ok(())
    }

    async fn checkout(&self, key: &str, session: &str) -> Result<SeatLease> {
        validate_text("session", session, 255)?;
        let mut tx = begin_write(&self.write).await?;
        let k = require_by_key(&mut tx, key, true).await?;
        let at = now();
        ensure_usable(&k, at)?;
        let (Some(max_seats), Some(floating)) = (k.license.max_seats(&k.policy), k.policy.floating)
        else {
            return Err(StoreError::invalid(
                "NOT_FLOATING",
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
                    "NO_SEAT_AVAILABLE",
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
            enqueue_outbound(&mut tx, &lease.account_id, "seat.checked_out", &data).await?;
        }
        tx.commit().await?;
        Ok(lease)
    }

    async fn checkin(&self, key: &str, session: &str) -> Result<()> {
        let mut tx = begin_write(&self.write).await?;
        let k = require_by_key(&mut tx, key, true).await?;
        let freed = sqlx::query("DELETE FROM seat_leases WHERE license_id = $1 AND session = $2")
            .bind(&k.license.id)
            .bind(session)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if freed > 0 {
            let data = serde_json::json!({"license_id": k.license.id, "session": session});
            enqueue_outbound(&mut tx, &k.account_id, "seat.checked_in", &data.to_string()).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn record_usage(&self, input: UsageInput) -> Result<UsageOutcome> {
        if input.amount <= 0 {
            return Err(StoreError::invalid(
                "INVALID_FIELD",
                "`amount` must be a positive number",
            ));
        }
        let mut tx = begin_write(&self.write).await?;
        let k = require_by_key(&mut tx, &input.key, true).await?;
        let at = now();
        ensure_usable(&k, at)?;
        if k.policy.quota.is_none() {
            return Err(StoreError::invalid(
                "NOT_METERED",
                "the license's policy has no quota: usage is not recorded",
            ));
        }
        if let Some(f) = &input.feature
            && !k.license.has_feature(&k.policy, f)
        {
            return Err(StoreError::conflict(
                "FEATURE_MISSING",
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
                "QUOTA_EXCEEDED",
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
        tx.commit().await?;
        self.invalidate_key(&k.license.key);
        Ok(UsageOutcome {
            used: new_used,
            remaining: limit.map(|l| (l - new_used).max(0)),
            overdraft: limit.map(|l| (new_used - l).max(0)).unwrap_or(0),
        })
    }

    // -- audit and idempotency -------------------------------------------------------------

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

    async fn idempotent_response(
        &self,
        account_id: &str,
        key: &str,
    ) -> Result<Option<IdempotentResponse>> {
        let row = sqlx::query(
            "SELECT request_hash, status, body FROM idempotency_keys \
             WHERE account_id = $1 AND idem_key = $2",
        )
        .bind(account_id)
        .bind(key)
        .fetch_optional(&self.write)
        .await?;
        row.map(|r| {
            Ok(IdempotentResponse {
                request_hash: r.try_get("request_hash")?,
                status: r.try_get::<i64, _>("status")? as u16,
                body: r.try_get("body")?,
            })
        })
        .transpose()
    }

    async fn save_idempotent_response(
        &self,
        account_id: &str,
        key: &str,
        response: IdempotentResponse,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO idempotency_keys (account_id, idem_key, request_hash, status, body, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (account_id, idem_key) DO NOTHING",
        )
        .bind(account_id)
        .bind(key)
        .bind(&response.request_hash)
        .bind(response.status as i64)
        .bind(&response.body)
        .bind(now().0)
        .execute(&self.write)
        .await?;
        Ok(())
    }
}

fn signing_key_from_row(row: &DbRow) -> Result<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        key_id: row.try_get("key_id")?,
        public_key: row.try_get("public_key")?,
        private_key: row.try_get("private_key")?,
        created_at: ts(row.try_get("created_at")?),
        retired_at: row.try_get::<Option<i64>, _>("retired_at")?.map(ts),
    })
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

fn past_tense(action: LicenseAction) -> &'static str {
    match action {
        LicenseAction::Suspend => "suspended",
        LicenseAction::Reinstate => "reinstated",
        LicenseAction::Revoke => "revoked",
        LicenseAction::Renew => "renewed",
        LicenseAction::Extend(_) => "extended",
    }
}

fn product_conflict(e: sqlx::Error, code: &str) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::conflict(
            "PRODUCT_CODE_TAKEN",
            format!("a product with code `{code}` already exists"),
        )
    } else {
        e.into()
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
