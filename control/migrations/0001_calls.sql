-- Portable SQL: the same migrations run on SQLite and PostgreSQL through sqlx Any.
-- Call detail records: one row per call, one per leg. Times are Unix milliseconds (UTC).
CREATE TABLE calls (
    id TEXT PRIMARY KEY NOT NULL,
    from_number TEXT NOT NULL,
    to_number TEXT NOT NULL,
    from_uri TEXT NOT NULL,
    to_uri TEXT NOT NULL,
    trunk_in TEXT,
    user_in TEXT,
    trunk_out TEXT,
    user_out TEXT,
    status TEXT NOT NULL,
    sip_code BIGINT,
    hangup_by TEXT,
    hangup_cause TEXT,
    sip_call_id TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    answered_at BIGINT,
    ended_at BIGINT
);
CREATE INDEX calls_started_at ON calls (started_at);

CREATE TABLE call_legs (
    call_id TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    leg TEXT NOT NULL,
    sip_call_id TEXT,
    remote_rtp TEXT,
    codec TEXT,
    packets_in BIGINT NOT NULL DEFAULT 0,
    packets_out BIGINT NOT NULL DEFAULT 0,
    bytes_in BIGINT NOT NULL DEFAULT 0,
    bytes_out BIGINT NOT NULL DEFAULT 0,
    lost BIGINT NOT NULL DEFAULT 0,
    out_of_order BIGINT NOT NULL DEFAULT 0,
    dropped BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (call_id, leg)
);
