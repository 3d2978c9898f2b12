//! What the store offers, one trait per aggregate, and the records they exchange. `Store` is
//! all of them together: callers hold an `Arc<dyn Store>`.
use crate::gateway::{InboxStore, IntegrationStore};
use crate::inputs::*;
use crate::outbound::{DeliveryStore, EndpointStore, ExpirySweepStore};
use crate::sync::SyncStore;
use crate::{Result, StoreError};
use async_trait::async_trait;
use keygate_domain::{
    Account, Activation, ApiKey, AuditEntry, Customer, LicenseView, Page, Policy, PolicyInput,
    Product, SeatLease, Timestamp, UsageOutcome, ValidationCode, ValidationRequest,
};
use std::sync::Arc;

/// The account and key an admin request authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub account_id: String,
    pub api_key_id: String,
}

/// The outcome of a validation: the code and, when the key exists, the license, its policy
/// and its account (whose key signs the answer).
#[derive(Debug, Clone)]
pub struct Validation {
    pub code: ValidationCode,
    pub license: Option<LicenseView>,
    pub policy: Option<Arc<Policy>>,
    pub product_code: Option<String>,
    pub account_id: Option<String>,
}

/// An account's Ed25519 signing key. `private_key` is sealed by the server (encrypted with the
/// master key when one is set); the store never sees it in the clear.
#[derive(Debug, Clone)]
pub struct SigningKeyRecord {
    pub key_id: String,
    pub public_key: String,
    pub private_key: String,
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
}

/// A stored answer to an admin `POST` with an `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct IdempotentResponse {
    pub request_hash: String,
    /// 0 while the claiming request is still at work.
    pub status: u16,
    pub body: String,
}

/// What claiming an idempotency key found.
#[derive(Debug, Clone)]
pub enum IdempotencyClaim {
    /// This request holds the key: do the work, then save its answer (or release the key).
    Claimed,
    /// Another request holds it and has not answered yet.
    InProgress { request_hash: String },
    /// The key's request has answered.
    Answered(IdempotentResponse),
}

/// Every part of the store, on one engine.
pub trait Store:
    EngineStore
    + AccountStore
    + CatalogStore
    + CustomerStore
    + LicenseStore
    + ClientStore
    + AuditStore
    + IdempotencyStore
    + IntegrationStore
    + InboxStore
    + EndpointStore
    + DeliveryStore
    + ExpirySweepStore
    + SyncStore
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: EngineStore
        + AccountStore
        + CatalogStore
        + CustomerStore
        + LicenseStore
        + ClientStore
        + AuditStore
        + IdempotencyStore
        + IntegrationStore
        + InboxStore
        + EndpointStore
        + DeliveryStore
        + ExpirySweepStore
        + SyncStore
        + Send
        + Sync
        + 'static
{
}

/// The database itself: which engine, its schema, whether it answers.
#[async_trait]
pub trait EngineStore: Send + Sync {
    fn engine(&self) -> &'static str;
    async fn migrate(&self) -> Result<()>;
    async fn ping(&self) -> Result<()>;
}

/// Accounts, their API keys and their signing keys.
#[async_trait]
pub trait AccountStore: Send + Sync {
    async fn create_account(&self, name: &str) -> Result<(Account, ApiKey, String)>;
    async fn get_account(&self, account_id: &str) -> Result<Account>;
    async fn authenticate(&self, api_key: &str) -> Result<Option<Principal>>;
    async fn create_api_key(&self, who: &Principal, name: &str) -> Result<(ApiKey, String)>;
    async fn list_api_keys(&self, account_id: &str) -> Result<Vec<ApiKey>>;
    async fn revoke_api_key(&self, who: &Principal, key_id: &str) -> Result<ApiKey>;

    /// The account's signing keys, newest first (the current one has no `retired_at`).
    async fn signing_keys(&self, account_id: &str) -> Result<Vec<SigningKeyRecord>>;
    /// The current key, or `candidate` made current if the account has none yet.
    async fn ensure_signing_key(
        &self,
        account_id: &str,
        candidate: SigningKeyRecord,
    ) -> Result<SigningKeyRecord>;
    /// Retires the current key (still listed, so old files verify) and makes `new` current.
    async fn rotate_signing_key(&self, who: &Principal, new: SigningKeyRecord) -> Result<()>;
}

/// Products and the policies that license them.
#[async_trait]
pub trait CatalogStore: Send + Sync {
    async fn create_product(&self, who: &Principal, input: ProductInput) -> Result<Product>;
    async fn list_products(&self, account_id: &str, page: PageRequest) -> Result<Page<Product>>;
    async fn get_product(&self, account_id: &str, id: &str) -> Result<Product>;
    async fn update_product(
        &self,
        who: &Principal,
        id: &str,
        patch: ProductPatch,
    ) -> Result<Product>;
    async fn delete_product(&self, who: &Principal, id: &str) -> Result<()>;

    // Policies.
    async fn create_policy(&self, who: &Principal, input: PolicyInput) -> Result<Policy>;
    async fn list_policies(
        &self,
        account_id: &str,
        product_id: Option<String>,
        page: PageRequest,
    ) -> Result<Page<Policy>>;
    async fn get_policy(&self, account_id: &str, id: &str) -> Result<Policy>;
    async fn update_policy(
        &self,
        who: &Principal,
        id: &str,
        patch: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Policy>;
}

#[async_trait]
pub trait CustomerStore: Send + Sync {
    async fn create_customer(&self, who: &Principal, input: CustomerInput) -> Result<Customer>;
    async fn list_customers(
        &self,
        account_id: &str,
        email: Option<String>,
        page: PageRequest,
    ) -> Result<Page<Customer>>;
    async fn get_customer(&self, account_id: &str, id: &str) -> Result<Customer>;
    async fn update_customer(
        &self,
        who: &Principal,
        id: &str,
        patch: CustomerPatch,
    ) -> Result<Customer>;
}

/// Licenses and their activations, as the admin API manages them.
#[async_trait]
pub trait LicenseStore: Send + Sync {
    async fn create_license(&self, who: &Principal, input: LicenseInput) -> Result<LicenseView> {
        let mut created = self.create_licenses(who, input, 1).await?;
        created
            .pop()
            .ok_or_else(|| StoreError::Corrupt("no license created".into()))
    }
    /// `count` licenses from one input, in one transaction (large orders, imports).
    async fn create_licenses(
        &self,
        who: &Principal,
        input: LicenseInput,
        count: usize,
    ) -> Result<Vec<LicenseView>>;
    async fn list_licenses(
        &self,
        account_id: &str,
        filter: LicenseFilter,
        page: PageRequest,
    ) -> Result<Page<LicenseView>>;
    async fn get_license(&self, account_id: &str, id: &str) -> Result<LicenseView>;
    async fn update_license(
        &self,
        who: &Principal,
        id: &str,
        patch: LicensePatch,
    ) -> Result<LicenseView>;
    async fn license_action(
        &self,
        who: &Principal,
        id: &str,
        action: LicenseAction,
    ) -> Result<LicenseView>;
    async fn list_activations(&self, account_id: &str, license_id: &str)
    -> Result<Vec<Activation>>;
    async fn delete_activation(&self, who: &Principal, activation_id: &str) -> Result<()>;
}

/// What client software does with a license key (the key is the credential): validate,
/// activate, check seats out and in, record usage.
#[async_trait]
pub trait ClientStore: Send + Sync {
    async fn validate(&self, key: &str, request: ValidationRequest<'_>) -> Result<Validation>;
    async fn activate(&self, input: ActivateInput) -> Result<(Activation, bool)>;
    async fn deactivate(&self, key: &str, fingerprint: &str) -> Result<()>;
    async fn checkout(&self, key: &str, session: &str) -> Result<SeatLease>;
    async fn checkin(&self, key: &str, session: &str) -> Result<()>;
    async fn record_usage(&self, input: UsageInput) -> Result<UsageOutcome>;

    /// Fills the validation cache (where there is one) with every license, so the first
    /// validations after a start are as fast as the rest. Returns how many were loaded.
    async fn warm_validation_cache(&self) -> Result<usize>;
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn list_audit(
        &self,
        account_id: &str,
        filter: AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>>;
}

/// Stored answers to admin `POST`s that carried an `Idempotency-Key`. A key is claimed before
/// the request's work runs (a row that is unique per account and key), so of concurrent
/// identical requests exactly one does the work; the others see it in progress, then its
/// answer.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for a request with this hash, unless it is already claimed. A claim still in
    /// progress that was made before `stale_before` (its process died) is taken over.
    async fn claim_idempotency_key(
        &self,
        account_id: &str,
        key: &str,
        request_hash: &str,
        stale_before: Timestamp,
    ) -> Result<IdempotencyClaim>;
    /// Gives up a claim whose request did not finish (a server error): a retry runs it again.
    async fn release_idempotency_key(&self, account_id: &str, key: &str) -> Result<()>;
    /// The stored answer, or the claim in progress (status 0).
    async fn idempotent_response(
        &self,
        account_id: &str,
        key: &str,
    ) -> Result<Option<IdempotentResponse>>;
    /// Stores the answer of a claimed key (or of an unclaimed one).
    async fn save_idempotent_response(
        &self,
        account_id: &str,
        key: &str,
        response: IdempotentResponse,
    ) -> Result<()>;
}
