//! `<Record transcribe="true" transcribeCallback="…">`: once the recording is saved, the neutral
//! [`crate::services::recording_transcriptions`] service turns it into text off the call's path;
//! the Transcriptions resource holds the row from the start (`in-progress`), and the callback
//! gets `TranscriptionText`, `TranscriptionStatus`, `TranscriptionSid` and `TranscriptionUrl`
//! through the durable outbox.

use super::Session;
use crate::services::recording_transcriptions::Transcribe;

impl Session {
    pub(super) async fn transcribe_recording(
        &self,
        recording: &str,
        path: &str,
        duration_ms: u64,
        callback: Option<String>,
    ) {
        let job = Transcribe {
            account: self.account.sid.clone(),
            recording: recording.to_owned(),
            call: Some(self.call.sid.clone()),
            path: path.to_owned(),
            duration_ms,
            // Twilio's `<Record transcribe>` is English only.
            language: None,
            engine: None,
        };
        let row = self.apps.transcriptions.begin(&job).await;
        let mut params = self.standard_params();
        params.extend([
            ("RecordingSid".into(), recording.to_owned()),
            ("RecordingUrl".into(), self.recording_url(recording)),
            ("TranscriptionSid".into(), row.sid.clone()),
            (
                "TranscriptionUrl".into(),
                format!(
                    "{}/2010-04-01/Accounts/{}/Transcriptions/{}",
                    self.apps.public_url,
                    self.account.api_sid(),
                    row.sid
                ),
            ),
            ("TranscriptionType".into(), "fast".into()),
        ]);
        let (apps, account, dialect) = (
            self.apps.clone(),
            self.account.clone(),
            self.app.dialect.clone(),
        );
        self.apps.sessions.spawn(async move {
            let row = apps.transcriptions.finish(row, &job).await;
            if let Some(url) = callback {
                params.extend([
                    ("TranscriptionText".into(), row.text.unwrap_or_default()),
                    ("TranscriptionStatus".into(), row.status),
                ]);
                let request = dialect.request(
                    &account,
                    &url,
                    crate::infra::accounts::HttpMethod::Post,
                    &params,
                );
                let call = job.call.unwrap_or_default();
                apps.subscriptions
                    .outbox()
                    .send(&account.sid, &call, request)
                    .await;
            }
        });
    }
}
