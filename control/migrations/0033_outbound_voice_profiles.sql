-- Telnyx's outbound voice profiles: each kept as the resource the API shows (JSON); the
-- connections that use one name it in their `outbound` settings.
CREATE TABLE outbound_voice_profiles (
    id TEXT PRIMARY KEY,
    account_sid TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX outbound_voice_profiles_account ON outbound_voice_profiles (account_sid, created_at);
