//! Reading rows: the column lists of each table, the `*_from_row` mappings, and the paged
//! list query every `list_*` shares.

use super::DbRow;
use super::engine::Db;
use crate::{PageRequest, Result, SigningKeyRecord, StoreError};
use keygate_domain::validation::PaymentFacts;
use keygate_domain::{
    Activation, ApiKey, AuditEntry, Customer, ExpiryKind, Floating, License, LicenseStatus, Page,
    Policy, Product, Quota, Timestamp,
};
use serde::de::DeserializeOwned;
use sqlx::{Pool, Row};
use std::collections::BTreeMap;
use std::sync::LazyLock;

pub(crate) const PRODUCT_COLS: &str = "id, code, name, metadata, created_at, updated_at";
pub(crate) const CUSTOMER_COLS: &str = "id, email, name, metadata, created_at, updated_at";
pub(crate) const LICENSE_COLS: &str = "id, license_key, policy_id, product_id, customer_id, subscription_id, \
     status, starts_at, expires_at, overrides, quantity, metadata, created_at, updated_at";
pub(crate) const POLICY_FIELDS: [&str; 20] = [
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
pub(crate) const ACTIVATION_COLS: &str =
    "id, account_id, license_id, fingerprint, name, platform, created_at, last_seen_at";
pub(crate) const AUDIT_COLS: &str = "id, actor_type, actor_id, action, object_type, object_id, license_id, \
     customer_id, before_state, after_state, created_at";

pub(crate) static POLICY_COLS: LazyLock<String> = LazyLock::new(|| POLICY_FIELDS.join(", "));
/// Policy columns of a join, aliased `p_*` so they cannot clash with the license's.
pub(crate) static POLICY_COLS_P: LazyLock<String> = LazyLock::new(|| {
    POLICY_FIELDS
        .iter()
        .map(|f| format!("p.{f} AS p_{f}"))
        .collect::<Vec<_>>()
        .join(", ")
});
pub(crate) static LICENSE_COLS_L: LazyLock<String> = LazyLock::new(|| {
    LICENSE_COLS
        .split(", ")
        .map(|c| format!("l.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
});

pub(crate) fn col<'r, T>(row: &'r DbRow, prefix: &str, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, Db> + sqlx::Type<Db>,
{
    if prefix.is_empty() {
        Ok(row.try_get(name)?)
    } else {
        Ok(row.try_get(format!("{prefix}{name}").as_str())?)
    }
}

pub(crate) fn parse_json<T: DeserializeOwned>(text: &str) -> Result<T> {
    Ok(serde_json::from_str(text)?)
}

pub(crate) fn ts(v: i64) -> Timestamp {
    Timestamp(v)
}

pub(crate) fn product_from_row(row: &DbRow) -> Result<Product> {
    Ok(Product {
        id: row.try_get("id")?,
        code: row.try_get("code")?,
        name: row.try_get("name")?,
        metadata: parse_json(row.try_get::<&str, _>("metadata")?)?,
        created_at: ts(row.try_get("created_at")?),
        updated_at: ts(row.try_get("updated_at")?),
    })
}

pub(crate) fn policy_from_row(row: &DbRow, p: &str) -> Result<Policy> {
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

pub(crate) fn license_from_row(row: &DbRow) -> Result<License> {
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

pub(crate) fn customer_from_row(row: &DbRow) -> Result<Customer> {
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

pub(crate) fn activation_from_row(row: &DbRow) -> Result<Activation> {
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

pub(crate) fn api_key_from_row(row: &DbRow) -> Result<ApiKey> {
    Ok(ApiKey {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        created_at: ts(row.try_get("created_at")?),
        revoked_at: row.try_get::<Option<i64>, _>("revoked_at")?.map(ts),
    })
}

pub(crate) fn audit_from_row(row: &DbRow) -> Result<AuditEntry> {
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

/// The billing subscription's payment state, from the `s_*` columns of a license query.
pub(crate) fn payment_from_row(row: &DbRow) -> Result<PaymentFacts> {
    Ok(PaymentFacts {
        payment_failed_at: row
            .try_get::<Option<i64>, _>("s_payment_failed_at")?
            .map(ts),
        grace_seconds: row.try_get("s_payment_grace_seconds")?,
    })
}

pub(crate) fn signing_key_from_row(row: &DbRow) -> Result<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        key_id: row.try_get("key_id")?,
        public_key: row.try_get("public_key")?,
        private_key: row.try_get("private_key")?,
        created_at: ts(row.try_get("created_at")?),
        retired_at: row.try_get::<Option<i64>, _>("retired_at")?.map(ts),
    })
}

// ---------------------------------------------------------------------------------------------
// Lists

/// `$first, $first+1, ...` for an `IN (...)` list of `n` values.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds `WHERE account_id = $1 AND ... [AND id < $cursor] ORDER BY id DESC LIMIT n+1` lists,
/// newest first, binding every value as text.
pub(crate) struct ListQuery {
    pub(crate) conditions: Vec<String>,
    pub(crate) args: Vec<String>,
}

impl ListQuery {
    pub(crate) fn new(account_id: &str) -> Self {
        ListQuery {
            conditions: vec!["account_id = $1".into()],
            args: vec![account_id.to_string()],
        }
    }

    /// Adds a condition; `?` in `sql` stands for the next placeholder.
    pub(crate) fn push(&mut self, sql: &str, value: impl Into<String>) {
        self.args.push(value.into());
        self.conditions
            .push(sql.replace('?', &format!("${}", self.args.len())));
    }

    pub(crate) fn sql(
        mut self,
        table: &str,
        cols: &str,
        page: &PageRequest,
    ) -> (String, Vec<String>) {
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

pub(crate) async fn fetch_page<T>(
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
