-- Webhooks waiting to be delivered: written before the first attempt, so a restart loses none.
-- Delivered in `seq` order per call; retried with backoff until delivered or expired.
CREATE TABLE webhook_outbox (
    id TEXT PRIMARY KEY NOT NULL,
    call_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    account_sid TEXT NOT NULL,
    url TEXT NOT NULL,
    method TEXT NOT NULL,
    -- JSON array of [name, value] pairs, in order.
    params TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    delivered_at BIGINT,
    expired_at BIGINT,
    last_error TEXT
);
CREATE INDEX webhook_outbox_pending ON webhook_outbox (delivered_at, expired_at, call_id, seq);
