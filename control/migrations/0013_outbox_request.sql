-- The outbox stores each webhook as it will be sent (the URL with its query for a GET, the
-- content type and body) and who signs it, so that every dialect's webhooks go through it:
-- Twilio's form-encoded and HMAC-signed, Telnyx's JSON and Ed25519-signed. Rows from before
-- have no body: they are read from their form parameters (`params`), as Twilio requests.
ALTER TABLE webhook_outbox ADD COLUMN content_type TEXT;
ALTER TABLE webhook_outbox ADD COLUMN body TEXT;
ALTER TABLE webhook_outbox ADD COLUMN signer TEXT NOT NULL DEFAULT 'twilio';
