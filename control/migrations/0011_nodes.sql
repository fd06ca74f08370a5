-- Several nodes may share one PostgreSQL database. Each call and recording names the node that
-- carries it, so that a restarted node closes only its own calls and repairs only the
-- recordings on its own disk; a node that stops sending its heartbeat has its calls closed by
-- the nodes still alive. Rows from before this migration have node '' (closed by any node).
ALTER TABLE calls ADD COLUMN node TEXT NOT NULL DEFAULT '';
ALTER TABLE recordings ADD COLUMN node TEXT NOT NULL DEFAULT '';

CREATE TABLE nodes (
    id TEXT PRIMARY KEY NOT NULL,
    started_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);

-- A webhook being attempted is claimed by one node until `claimed_until`, so that two nodes
-- never send it at once; a node that dies mid-attempt leaves a claim that simply expires.
ALTER TABLE webhook_outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE webhook_outbox ADD COLUMN claimed_until BIGINT;
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND expired_at IS NULL;
