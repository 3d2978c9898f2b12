CREATE TABLE integrations (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    provider TEXT NOT NULL,
    name TEXT NOT NULL,
    secrets TEXT NOT NULL,
    secrets_count BIGINT NOT NULL,
    options TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX integrations_account ON integrations(account_id, id);

CREATE TABLE integration_mappings (
    integration_id TEXT NOT NULL REFERENCES integrations(id),
    external_id TEXT NOT NULL,
    policy_id TEXT NOT NULL REFERENCES policies(id),
    PRIMARY KEY (integration_id, external_id)
);

CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    integration_id TEXT NOT NULL REFERENCES integrations(id),
    provider TEXT NOT NULL,
    external_id TEXT NOT NULL,
    customer_id TEXT,
    status TEXT NOT NULL,
    current_period_end BIGINT,
    state TEXT NOT NULL,
    payment_failed_at BIGINT,
    payment_grace_seconds BIGINT,
    last_event_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (integration_id, external_id)
);
CREATE INDEX subscriptions_account ON subscriptions(account_id, id);

CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    integration_id TEXT NOT NULL REFERENCES integrations(id),
    external_id TEXT NOT NULL,
    customer_id TEXT,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (integration_id, external_id)
);

CREATE TABLE webhook_events (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    integration_id TEXT NOT NULL REFERENCES integrations(id),
    provider TEXT NOT NULL,
    provider_event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    kind TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    raw_body TEXT NOT NULL,
    normalized TEXT NOT NULL,
    verified BOOLEAN NOT NULL,
    status TEXT NOT NULL,
    actions TEXT NOT NULL,
    error_code TEXT,
    error TEXT,
    attempts BIGINT NOT NULL,
    applied_at BIGINT,
    UNIQUE (integration_id, provider_event_id)
);
CREATE INDEX webhook_events_account ON webhook_events(account_id, id);
CREATE INDEX webhook_events_pending ON webhook_events(status, id);

CREATE TABLE webhook_failures (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    integration_id TEXT NOT NULL REFERENCES integrations(id),
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX webhook_failures_integration ON webhook_failures(integration_id, id);

ALTER TABLE licenses ADD COLUMN item_external_id TEXT;
ALTER TABLE licenses ADD COLUMN order_id TEXT;
ALTER TABLE licenses ADD COLUMN period_end BIGINT;

-- Filtered lists read in id order: the filter and the order from one index.
DROP INDEX licenses_customer;
DROP INDEX licenses_subscription;
CREATE INDEX licenses_customer ON licenses(account_id, customer_id, id);
CREATE INDEX licenses_subscription ON licenses(account_id, subscription_id, id);
CREATE INDEX licenses_order ON licenses(account_id, order_id, id);
DROP INDEX customers_account_email;
CREATE INDEX customers_account_email ON customers(account_id, email, id);
