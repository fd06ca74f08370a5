-- Telnyx IP connections: a connection whose `ip_trunk` (JSON: transport and SRTP) is set is a
-- tenant's trunk, its addresses kept in the SIP directory (`sip_objects`, kind `connection_ip`).
ALTER TABLE call_control_applications ADD COLUMN ip_trunk TEXT;
