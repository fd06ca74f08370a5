-- Where a webhook goes when its URL fails (Telnyx's `webhook_event_failover_url`): tried in
-- the same attempt, right after the URL.
ALTER TABLE webhook_outbox ADD COLUMN failover_url TEXT;
