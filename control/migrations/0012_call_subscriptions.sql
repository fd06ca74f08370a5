-- What an application asked to hear of a call (a status callback): stored with the call, so
-- that the webhooks its events make are rebuilt from the stored events after a crash or a
-- restart. `last_seq` is the call event whose webhook was queued last (the cursor; -1 before
-- the first) and `sent` how many were queued; both move in the transaction that adds the
-- webhook to the outbox, so an event makes its webhook exactly once. `done_at` is set once the
-- call's end has been through it.
CREATE TABLE call_subscriptions (
    id TEXT PRIMARY KEY NOT NULL,
    call_id TEXT NOT NULL,
    account_sid TEXT NOT NULL,
    -- The node carrying the call: it (or, once it is dead, a live node) finishes the job.
    node TEXT NOT NULL,
    -- Which renderer makes the webhooks (e.g. twilio-progress), and what it needs (JSON).
    renderer TEXT NOT NULL,
    url TEXT NOT NULL,
    method TEXT NOT NULL,
    context TEXT NOT NULL,
    last_seq BIGINT NOT NULL DEFAULT -1,
    sent BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    done_at BIGINT
);
CREATE INDEX call_subscriptions_open ON call_subscriptions (node) WHERE done_at IS NULL;
CREATE INDEX call_subscriptions_call ON call_subscriptions (call_id);
