-- Twilio's SIP directory: domains, credential lists and their credentials, IP access control
-- lists and their addresses, and the mappings of lists to domains. One table: each object is
-- small, an account holds few, and the service holds them all in memory. `name` is unique
-- within (kind, parent): a domain's name across every account, a credential's user name in
-- its list.
CREATE TABLE sip_objects (
    sid TEXT PRIMARY KEY,
    account_sid TEXT NOT NULL,
    kind TEXT NOT NULL,
    parent TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX sip_objects_name ON sip_objects (kind, parent, name);
CREATE INDEX sip_objects_account ON sip_objects (account_sid);
