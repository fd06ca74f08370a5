-- What started a recording (the API, a record verb, a dial, a call's create, a conference, a
-- route), which the provider dialects report (Twilio's `source`).
ALTER TABLE recordings ADD COLUMN origin TEXT NOT NULL DEFAULT 'api';
