-- Conferences, from their first member to their end: written by the call core as they open,
-- start and end, so the provider APIs list finished ones too.
CREATE TABLE conferences (
    sid TEXT PRIMARY KEY NOT NULL,
    -- The room's name as the application gave it (the Twilio dialect: `{account}:{room}`).
    name TEXT NOT NULL,
    -- `init` (waiting for a start), `in-progress`, `completed`.
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    reason_ended TEXT,
    ended_by TEXT
);
CREATE INDEX conferences_name ON conferences (name, created_at);
