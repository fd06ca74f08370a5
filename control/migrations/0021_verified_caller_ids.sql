-- Caller IDs an account proved it answers (a verification call where the code was entered):
-- Twilio's OutgoingCallerIds. One row per account and number.
CREATE TABLE verified_caller_ids (
    sid TEXT PRIMARY KEY,
    account_sid TEXT NOT NULL,
    phone_number TEXT NOT NULL,
    friendly_name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (account_sid, phone_number)
);
