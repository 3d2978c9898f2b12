CREATE TABLE signing_keys (
    key_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    public_key TEXT NOT NULL,
    private_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);
CREATE UNIQUE INDEX signing_keys_current ON signing_keys(account_id) WHERE retired_at IS NULL;
CREATE INDEX signing_keys_account ON signing_keys(account_id, created_at);

ALTER TABLE policies ADD COLUMN perpetual_offline BOOLEAN NOT NULL DEFAULT FALSE;
