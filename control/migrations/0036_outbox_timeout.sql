-- How long a webhook's attempts wait for the answer, when not the node's own wait (Telnyx's
-- `webhook_timeout_secs` of the connection whose call it reports).
ALTER TABLE webhook_outbox ADD COLUMN timeout_secs BIGINT;
