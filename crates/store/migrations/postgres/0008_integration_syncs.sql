-- The periodic sync of an integration with its platform's API (missed webhooks are recovered):
-- how often it runs (`options.sync_interval_seconds`, NULL: only on request), when it runs
-- next, up to when the platform's objects have been read, and the last run's outcome.
CREATE TABLE integration_syncs (
    integration_id TEXT PRIMARY KEY REFERENCES integrations(id),
    account_id TEXT NOT NULL,
    interval_seconds BIGINT,
    next_run_at BIGINT,
    synced_until BIGINT,
    last_run_at BIGINT,
    last_error_code TEXT,
    last_error TEXT
);
CREATE INDEX integration_syncs_due ON integration_syncs (next_run_at)
