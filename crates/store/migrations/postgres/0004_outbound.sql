-- Outbound webhooks: the vendor's endpoints, and the outbox of deliveries fanned out to them
-- at enqueue time (one row per message and endpoint), written in the transaction of the change.
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    url TEXT NOT NULL,
    description TEXT,
    -- `*`, or the subscribed types between commas (`,license.created,license.revoked,`), so
    -- the subscription test is one LIKE on both engines.
    event_types TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    disabled_reason TEXT,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_expires_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_account ON webhook_endpoints(account_id, id);

CREATE TABLE outbound_deliveries (
    -- The message id (`webhook-id`): the same for every endpoint of one event.
    id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    account_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    locked_until BIGINT,
    last_status BIGINT,
    last_error TEXT,
    last_attempt_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (endpoint_id, id)
);
CREATE INDEX outbound_deliveries_due ON outbound_deliveries(status, next_attempt_at);
CREATE INDEX outbound_deliveries_endpoint ON outbound_deliveries(account_id, endpoint_id, id);

-- One row per attempt: the delivery log.
CREATE TABLE outbound_attempts (
    id TEXT PRIMARY KEY,
    endpoint_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    attempted_at BIGINT NOT NULL,
    status_code BIGINT,
    error TEXT,
    response_body TEXT,
    duration_ms BIGINT NOT NULL,
    FOREIGN KEY (endpoint_id, message_id) REFERENCES outbound_deliveries(endpoint_id, id) ON DELETE CASCADE
);
CREATE INDEX outbound_attempts_delivery ON outbound_attempts(endpoint_id, message_id, id);

-- The sweeper: the `expires_at` already announced as expired / expiring soon. A renewal moves
-- `expires_at`, which re-arms both.
ALTER TABLE licenses ADD COLUMN expired_notified_for BIGINT;
ALTER TABLE licenses ADD COLUMN expiring_notified_for BIGINT;
-- Expiries that happened before this migration are not news.
UPDATE licenses SET expired_notified_for = expires_at, expiring_notified_for = expires_at
    WHERE expires_at <= CAST(extract(epoch FROM now()) * 1000 AS BIGINT);
CREATE INDEX licenses_expired_due ON licenses(expires_at)
    WHERE expired_notified_for IS NULL OR expired_notified_for <> expires_at;
CREATE INDEX licenses_expiring_due ON licenses(expires_at)
    WHERE expiring_notified_for IS NULL OR expiring_notified_for <> expires_at;
