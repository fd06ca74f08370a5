-- Every SIP message of calls' dialogs, in and out, as the call's SIP ladder and its pcap: kept
-- `sip.trace_retention_secs`, found by the Call-ID of a call's legs.
CREATE TABLE sip_messages (
    sip_call_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    -- The node's order of messages (several may share a millisecond).
    seq BIGINT NOT NULL,
    -- 1: sent by Switchboard, 0: received.
    outbound BIGINT NOT NULL,
    transport TEXT NOT NULL,
    local_addr TEXT NOT NULL,
    remote_addr TEXT NOT NULL,
    message TEXT NOT NULL,
    node TEXT NOT NULL
);
CREATE INDEX sip_messages_call ON sip_messages (sip_call_id, at);
CREATE INDEX sip_messages_at ON sip_messages (at);
