//! The validation cache: what validating a key needs, kept in memory so the hot path does
//! not touch the database. Used on SQLite, where this process is the only writer; on
//! PostgreSQL several nodes write, so every validation reads the database.
//!
//! Correctness rule: every write that changes what validation sees must call `invalidate` (one
//! license) or `clear` (policies, products) *after* its commit. Readers take a `token` before
//! reading the database and insert only if no invalidation happened since, so a reader that
//! raced a writer never installs the old state.
use keygate_domain::validation::PaymentFacts;
use keygate_domain::{License, Policy, Timestamp};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, RwLock};

const SHARDS: usize = 32;

/// Everything `decide` needs about one license.
#[derive(Debug)]
pub struct CachedLicense {
    pub account_id: String,
    /// The billing subscription's payment state (grace, then suspended).
    pub payment: PaymentFacts,
    pub license: License,
    pub policy: Arc<Policy>,
    pub product_code: String,
    /// Activated machine fingerprints (only loaded when the policy counts activations).
    pub fingerprints: Vec<String>,
    /// Usage in the quota window that was current when loaded: (window, used).
    pub quota: Option<(i64, i64)>,
}

impl CachedLicense {
    /// Usage in the window `now` falls in. A later window than the one loaded has no usage
    /// yet: recording usage invalidates the entry.
    pub fn quota_used(&self, now: Timestamp) -> i64 {
        let (window, _) = self.license.quota_window(&self.policy, now);
        match self.quota {
            Some((w, used)) if w == window => used,
            _ => 0,
        }
    }
}

pub struct ValidationCache {
    shards: Vec<RwLock<HashMap<String, Arc<CachedLicense>>>>,
    epoch: AtomicU64,
    capacity_per_shard: usize,
}

impl ValidationCache {
    // Only SQLite keeps one (PostgreSQL has other writers).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub fn new(capacity: usize) -> Self {
        ValidationCache {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            epoch: AtomicU64::new(0),
            // Slack over an even split: hashes never spread perfectly evenly.
            capacity_per_shard: (capacity.div_ceil(SHARDS) * 5 / 4).max(1),
        }
    }

    fn shard(&self, key_hash: &str) -> &RwLock<HashMap<String, Arc<CachedLicense>>> {
        // The key hash is SHA-256 hex: its first two digits are a uniform byte.
        let digit = |c: Option<&u8>| match c {
            Some(c @ b'0'..=b'9') => (c - b'0') as usize,
            Some(c @ b'a'..=b'f') => (c - b'a' + 10) as usize,
            _ => 0,
        };
        let b = key_hash.as_bytes();
        &self.shards[(digit(b.first()) * 16 + digit(b.get(1))) % SHARDS]
    }

    pub fn get(&self, key_hash: &str) -> Option<Arc<CachedLicense>> {
        self.shard(key_hash)
            .read()
            .ok()
            .and_then(|s| s.get(key_hash).cloned())
    }

    /// Take before reading the database for an `insert`.
    pub fn token(&self) -> u64 {
        self.epoch.load(SeqCst)
    }

    pub fn insert(&self, token: u64, key_hash: String, entry: Arc<CachedLicense>) {
        let Ok(mut shard) = self.shard(&key_hash).write() else {
            return;
        };
        if self.epoch.load(SeqCst) != token {
            return;
        }
        if shard.len() >= self.capacity_per_shard && !shard.contains_key(&key_hash) {
            // Full: drop an arbitrary entry; the hot ones come back on their next validation.
            if let Some(victim) = shard.keys().next().cloned() {
                shard.remove(&victim);
            }
        }
        shard.insert(key_hash, entry);
    }

    pub fn invalidate(&self, key_hash: &str) {
        self.epoch.fetch_add(1, SeqCst);
        if let Ok(mut shard) = self.shard(key_hash).write() {
            shard.remove(key_hash);
        }
    }

    pub fn clear(&self) {
        self.epoch.fetch_add(1, SeqCst);
        for shard in &self.shards {
            if let Ok(mut s) = shard.write() {
                s.clear();
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().map(|s| s.len()).unwrap_or(0))
            .sum()
    }
}

/// Integrations as a webhook delivery needs them (mappings, mapped policies, sealed secrets),
/// by id: a delivery then reads nothing before it queues for the writer. Same rule as the
/// validation cache: `clear` after every commit that changes an integration, a policy or a
/// product; readers insert only with a token taken before they read.
#[derive(Default)]
pub struct IntegrationCache {
    entries: RwLock<HashMap<String, Arc<(crate::gateway::Integration, String)>>>,
    epoch: AtomicU64,
}

impl IntegrationCache {
    pub fn get(&self, id: &str) -> Option<Arc<(crate::gateway::Integration, String)>> {
        self.entries.read().ok()?.get(id).cloned()
    }

    pub fn token(&self) -> u64 {
        self.epoch.load(SeqCst)
    }

    pub fn insert(&self, token: u64, entry: (crate::gateway::Integration, String)) {
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if self.epoch.load(SeqCst) == token {
            entries.insert(entry.0.id.clone(), Arc::new(entry));
        }
    }

    pub fn clear(&self) {
        self.epoch.fetch_add(1, SeqCst);
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_domain::{ExpiryKind, LicenseStatus, Overrides};

    fn entry(id: &str) -> Arc<CachedLicense> {
        let policy = Policy {
            id: "p".into(),
            product_id: "pr".into(),
            name: "n".into(),
            duration_seconds: None,
            expiry: ExpiryKind::Fixed,
            trial_seconds: None,
            grace_seconds: 0,
            max_activations: None,
            require_activation: false,
            floating: None,
            quota: None,
            features: vec![],
            seats_from_quantity: false,
            perpetual_offline: false,
            metadata: serde_json::json!({}),
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        };
        Arc::new(CachedLicense {
            account_id: "acc".into(),
            payment: PaymentFacts::default(),
            license: License {
                id: id.into(),
                key: "k".into(),
                policy_id: "p".into(),
                product_id: "pr".into(),
                customer_id: None,
                subscription_id: None,
                status: LicenseStatus::Active,
                starts_at: Timestamp(0),
                expires_at: None,
                overrides: Overrides::default(),
                quantity: None,
                metadata: serde_json::json!({}),
                created_at: Timestamp(0),
                updated_at: Timestamp(0),
            },
            policy: Arc::new(policy),
            product_code: "app".into(),
            fingerprints: vec![],
            quota: None,
        })
    }

    #[test]
    fn a_reader_that_raced_a_writer_installs_nothing() {
        let cache = ValidationCache::new(100);
        let token = cache.token();
        // A write commits and invalidates while the reader is still reading.
        cache.invalidate("aa");
        cache.insert(token, "aa".into(), entry("old"));
        assert!(cache.get("aa").is_none());
        let token = cache.token();
        cache.insert(token, "aa".into(), entry("new"));
        assert_eq!(cache.get("aa").unwrap().license.id, "new");
        cache.invalidate("aa");
        assert!(cache.get("aa").is_none());
    }

    #[test]
    fn clear_drops_everything_and_capacity_is_bounded() {
        let cache = ValidationCache::new(SHARDS * 4);
        for i in 0..1000 {
            let t = cache.token();
            cache.insert(t, format!("{:064x}", i * 7919), entry("x"));
        }
        assert!(cache.len() <= SHARDS * 5);
        cache.clear();
        assert_eq!(cache.len(), 0);
    }
}
