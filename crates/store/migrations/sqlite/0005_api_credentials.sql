-- Platform API credentials of an integration: sealed like the webhook secrets (never returned),
-- and the names that are set (shown in answers).
ALTER TABLE integrations ADD COLUMN api_credentials TEXT NOT NULL DEFAULT '';
ALTER TABLE integrations ADD COLUMN api_credential_names TEXT NOT NULL DEFAULT '[]'
