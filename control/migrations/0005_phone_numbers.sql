-- An account's phone numbers (Twilio's IncomingPhoneNumbers): seeded from `[[numbers]]` in the
-- config, then managed through the API. A number belongs to one account at a time.
CREATE TABLE phone_numbers (
    sid TEXT PRIMARY KEY NOT NULL,
    account_sid TEXT NOT NULL,
    phone_number TEXT NOT NULL UNIQUE,
    friendly_name TEXT NOT NULL,
    voice_url TEXT,
    voice_method TEXT NOT NULL,
    voice_fallback_url TEXT,
    voice_fallback_method TEXT NOT NULL,
    status_callback TEXT,
    status_callback_method TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX phone_numbers_account ON phone_numbers (account_sid, created_at);
