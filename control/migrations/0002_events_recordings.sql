-- Calls placed or answered by applications: their direction (Twilio's names) and, for a call
-- dialed from another, the parent call.
ALTER TABLE calls ADD COLUMN direction TEXT NOT NULL DEFAULT 'inbound';
ALTER TABLE calls ADD COLUMN parent_id TEXT;

-- Every call-core event, in order per call. `detail` is the event as JSON.
CREATE TABLE call_events (
    call_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (call_id, seq)
);

CREATE TABLE recordings (
    id TEXT PRIMARY KEY NOT NULL,
    call_id TEXT NOT NULL,
    -- The leg recorded: NULL for the whole call.
    leg TEXT,
    path TEXT NOT NULL,
    format TEXT NOT NULL,
    channels BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL DEFAULT 0,
    size_bytes BIGINT NOT NULL DEFAULT 0,
    -- in-progress, paused, completed, failed
    status TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    error TEXT
);
CREATE INDEX recordings_call_id ON recordings (call_id);
