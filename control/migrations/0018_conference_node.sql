-- The node whose call core holds a conference: a restart (or, once the node is dead, a live
-- node) closes the conferences it left open, as it closes its calls.
ALTER TABLE conferences ADD COLUMN node TEXT NOT NULL DEFAULT '';
