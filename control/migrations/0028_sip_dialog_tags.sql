-- A call's SIP ladder is the messages of its dialogs, and a dialog is its Call-ID and both
-- tags (RFC 3261 §12.1): a Call-ID alone is the caller's choice, and another tenant's peer
-- can reuse one. Calls and legs keep their dialog's tags; messages keep theirs.
ALTER TABLE calls ADD COLUMN sip_local_tag TEXT;
ALTER TABLE calls ADD COLUMN sip_remote_tag TEXT;
ALTER TABLE call_legs ADD COLUMN sip_local_tag TEXT;
ALTER TABLE call_legs ADD COLUMN sip_remote_tag TEXT;
ALTER TABLE sip_messages ADD COLUMN from_tag TEXT;
ALTER TABLE sip_messages ADD COLUMN to_tag TEXT;
