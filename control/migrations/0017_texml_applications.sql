-- TeXML applications are connections too (one id space, numbers name either): a row with
-- `texml` set (JSON: voice_url, voice_method, voice_fallback_url, status_callback,
-- status_callback_method) is a TeXML application, its webhook columns empty.
ALTER TABLE call_control_applications ADD COLUMN texml TEXT;
