-- The calls waiting in queues, whichever node carries them: several nodes hold a queue name
-- as one queue (positions, sizes and the front taken by any node). A row lives from a call's
-- joining to its leaving, or to its node's restart.
CREATE TABLE queue_members (
    call_sid TEXT PRIMARY KEY NOT NULL,
    queue_sid TEXT NOT NULL,
    node TEXT NOT NULL,
    enqueued_at BIGINT NOT NULL
);
CREATE INDEX queue_members_queue ON queue_members (queue_sid, enqueued_at);
-- What the calls that left waited, in all (milliseconds), and how many left: the average.
ALTER TABLE queues ADD COLUMN waited_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN departed BIGINT NOT NULL DEFAULT 0;
