CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_keys_account ON api_keys(account_id, id);

CREATE TABLE products (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (account_id, code)
);
CREATE INDEX products_account ON products(account_id, id);

CREATE TABLE policies (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    product_id TEXT NOT NULL REFERENCES products(id),
    name TEXT NOT NULL,
    duration_seconds BIGINT,
    expiry TEXT NOT NULL,
    trial_seconds BIGINT,
    grace_seconds BIGINT NOT NULL,
    max_activations BIGINT,
    require_activation BOOLEAN NOT NULL,
    floating_max_seats BIGINT,
    floating_lease_seconds BIGINT,
    has_quota BOOLEAN NOT NULL,
    quota_limit BIGINT,
    quota_period_seconds BIGINT,
    features TEXT NOT NULL,
    seats_from_quantity BOOLEAN NOT NULL,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX policies_account ON policies(account_id, id);
CREATE INDEX policies_product ON policies(product_id);

CREATE TABLE customers (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    email TEXT,
    name TEXT,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX customers_account ON customers(account_id, id);
CREATE INDEX customers_account_email ON customers(account_id, email);

CREATE TABLE customer_external_ids (
    account_id TEXT NOT NULL REFERENCES accounts(id),
    provider TEXT NOT NULL,
    external_id TEXT NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers(id),
    PRIMARY KEY (account_id, provider, external_id)
);
CREATE INDEX customer_external_ids_customer ON customer_external_ids(customer_id);

CREATE TABLE licenses (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    license_key TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    policy_id TEXT NOT NULL REFERENCES policies(id),
    product_id TEXT NOT NULL REFERENCES products(id),
    customer_id TEXT REFERENCES customers(id),
    subscription_id TEXT,
    status TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    expires_at BIGINT,
    overrides TEXT NOT NULL,
    quantity BIGINT,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX licenses_account ON licenses(account_id, id);
CREATE INDEX licenses_customer ON licenses(account_id, customer_id);
CREATE INDEX licenses_subscription ON licenses(account_id, subscription_id);
CREATE INDEX licenses_policy ON licenses(policy_id);

CREATE TABLE activations (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    license_id TEXT NOT NULL REFERENCES licenses(id),
    fingerprint TEXT NOT NULL,
    name TEXT,
    platform TEXT,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    UNIQUE (license_id, fingerprint)
);

CREATE TABLE seat_leases (
    license_id TEXT NOT NULL REFERENCES licenses(id),
    session TEXT NOT NULL,
    account_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (license_id, session)
);

CREATE TABLE usage_counters (
    license_id TEXT NOT NULL REFERENCES licenses(id),
    period_index BIGINT NOT NULL,
    used BIGINT NOT NULL,
    PRIMARY KEY (license_id, period_index)
);

CREATE TABLE usage_records (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    license_id TEXT NOT NULL REFERENCES licenses(id),
    feature TEXT,
    amount BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX usage_records_license ON usage_records(license_id, id);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    actor_type TEXT NOT NULL,
    actor_id TEXT,
    action TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id TEXT NOT NULL,
    license_id TEXT,
    customer_id TEXT,
    before_state TEXT,
    after_state TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX audit_log_account ON audit_log(account_id, id);
CREATE INDEX audit_log_license ON audit_log(account_id, license_id, id);
CREATE INDEX audit_log_customer ON audit_log(account_id, customer_id, id);

CREATE TABLE idempotency_keys (
    account_id TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, idem_key)
);
