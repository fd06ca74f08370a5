-- What went wrong in an account's applications (Twilio's Notifications): a TwiML document that
-- could not be fetched or broke the schema, with the request that got it.
CREATE TABLE notifications (
    sid TEXT PRIMARY KEY NOT NULL,
    account_sid TEXT NOT NULL,
    call_sid TEXT,
    error_code BIGINT NOT NULL,
    -- 0 error, 1 warning.
    log BIGINT NOT NULL,
    message_text TEXT NOT NULL,
    request_url TEXT,
    request_method TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX notifications_account ON notifications (account_sid, created_at);
