-- A number can be answered by a Telnyx Call Control application (a "connection") instead of
-- a voice URL: its calls then go to that connection's webhooks as `call.initiated`.
ALTER TABLE phone_numbers ADD COLUMN connection_id TEXT;
