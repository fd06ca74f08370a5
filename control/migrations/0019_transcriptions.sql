-- Transcriptions of recordings (Twilio's Transcriptions resource, `<Record transcribe>`): made
-- by the local speech recogniser once the recording is saved.
CREATE TABLE transcriptions (
    sid TEXT PRIMARY KEY NOT NULL,
    account_sid TEXT NOT NULL,
    recording_sid TEXT NOT NULL,
    call_sid TEXT,
    -- in-progress, completed or failed.
    status TEXT NOT NULL,
    transcription_text TEXT,
    duration_ms BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX transcriptions_account ON transcriptions (account_sid, created_at);
CREATE INDEX transcriptions_recording ON transcriptions (recording_sid);
