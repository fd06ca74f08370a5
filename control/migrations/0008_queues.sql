-- Call queues an account made (through the API or an <Enqueue>); the calls waiting in them
-- are live calls and are not stored.
CREATE TABLE queues (
    sid TEXT PRIMARY KEY NOT NULL,
    account_sid TEXT NOT NULL,
    friendly_name TEXT NOT NULL,
    max_size BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (account_sid, friendly_name)
);
