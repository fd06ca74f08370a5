-- Where each node's API is reached by the other nodes: a request about a call another node
-- carries is forwarded there.
ALTER TABLE nodes ADD COLUMN url TEXT NOT NULL DEFAULT '';
