-- The account a call belongs to (provider APIs show an account only its own calls).
ALTER TABLE calls ADD COLUMN account_sid TEXT;
CREATE INDEX calls_account_started ON calls (account_sid, started_at);
