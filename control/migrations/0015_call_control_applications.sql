-- Telnyx Call Control applications ("connections"): seeded from `[[connections]]` in the
-- config, then managed through /v2/call_control_applications. `settings` keeps, as JSON, what
-- the API accepts and shows back without acting on it (active, dtmf_type, tags, …).
CREATE TABLE call_control_applications (
    id TEXT PRIMARY KEY NOT NULL,
    account_sid TEXT NOT NULL,
    application_name TEXT NOT NULL,
    webhook_event_url TEXT NOT NULL,
    webhook_event_failover_url TEXT,
    webhook_api_version TEXT NOT NULL,
    first_command_timeout INTEGER NOT NULL,
    first_command_timeout_secs BIGINT NOT NULL,
    settings TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX call_control_applications_account ON call_control_applications (account_sid, created_at);
