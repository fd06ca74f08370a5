-- Credential connections are connections too (one id space): a row with `credential` set
-- (JSON: user_name, password) is one; SIP phones and browsers log in with it.
ALTER TABLE call_control_applications ADD COLUMN credential TEXT;
-- Telephony credentials: SIP logins minted for a credential connection, each good until
-- `expires_at` (Unix ms, none: for ever); browsers log in with a token made from one.
CREATE TABLE telephony_credentials (
    id TEXT PRIMARY KEY,
    account_sid TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    name TEXT NOT NULL,
    tag TEXT,
    sip_username TEXT NOT NULL UNIQUE,
    sip_password TEXT NOT NULL,
    expires_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- API keys an account made through Twilio's Keys resource (besides those configured): the
-- secret is kept, as access tokens are verified with it (HMAC), and shown only at creation.
CREATE TABLE api_keys (
    sid TEXT PRIMARY KEY,
    account_sid TEXT NOT NULL,
    friendly_name TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
