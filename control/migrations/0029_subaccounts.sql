-- Accounts made through the API under another (Twilio's subaccounts): their credentials, the
-- account that owns them, and whether they are active, suspended or closed.
CREATE TABLE subaccounts (
    sid TEXT PRIMARY KEY,
    owner_sid TEXT NOT NULL,
    friendly_name TEXT NOT NULL,
    auth_token TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX subaccounts_owner ON subaccounts (owner_sid);
