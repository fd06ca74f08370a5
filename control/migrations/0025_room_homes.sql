-- Several nodes hold one room name as one room: the node that opened it is its home, and a
-- caller arriving elsewhere visits it over SIP. A row lives from the room's opening to its end.
CREATE TABLE room_homes (
    -- The room as the call core names it (`{account}:{room}`).
    name TEXT PRIMARY KEY NOT NULL,
    node TEXT NOT NULL,
    -- The conference's SID, given by the claim so that every node names it alike.
    sid TEXT NOT NULL,
    claimed_at BIGINT NOT NULL
);
-- Where each node's SIP is reached by the other nodes (visits to its rooms).
ALTER TABLE nodes ADD COLUMN sip TEXT NOT NULL DEFAULT '';
