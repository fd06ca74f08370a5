//! `<Record transcribe="true" transcribeCallback="…">`: once the recording is saved, the local
//! recogniser ([`crate::speech::Speech::transcribe`]) turns it into text off the call's path;
//! the Transcriptions resource holds the row from the start (`in-progress`), and the callback
//! gets `TranscriptionText`, `TranscriptionStatus`, `TranscriptionSid` and `TranscriptionUrl`
//! through the durable outbox.

use super::Session;
use crate::store::TranscriptionRow;
use tracing::warn;

impl Session {
    pub(super) async fn transcribe_recording(
        &self,
        recording: &str,
        path: &str,
        duration_ms: u64,
        callback: Option<String>,
    ) {
        let now = crate::clock::now_ms();
        let row = TranscriptionRow {
            sid: crate::sid::new_sid("TR"),
            account_sid: self.account.sid.clone(),
            recording_sid: recording.to_owned(),
            call_sid: Some(self.call.sid.clone()),
            status: "in-progress".into(),
            text: None,
            duration_ms,
            created_at: now,
            updated_at: now,
        };
        if let Err(e) = self.apps.store.add_transcription(&row).await {
            warn!(error = %e, recording, "cannot store the transcription");
        }
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
        let (apps, account, flavor) = (
            self.apps.clone(),
            self.account.clone(),
            self.app.flavor.clone(),
        );
        let (path, call) = (path.to_owned(), self.call.sid.clone());
        self.apps.sessions.spawn(async move {
            let text = match tokio::fs::read(&path).await {
                Ok(bytes) => {
                    let decoded = tokio::task::spawn_blocking(move || {
                        switchboard_media::decode::decode_to_8k(bytes, Some("wav"))
                    })
                    .await;
                    match decoded {
                        Ok(Ok(samples)) => apps
                            .speech
                            .transcribe(&samples)
                            .await
                            .map(|r| r.text)
                            .map_err(|e| e.to_string()),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            let status = match &text {
                Ok(_) => "completed",
                Err(e) => {
                    warn!(error = %e, %path, "cannot transcribe the recording");
                    "failed"
                }
            };
            let text = text.ok();
            let at = crate::clock::now_ms();
            if let Err(e) = (apps.store)
                .finish_transcription(&row.sid, status, text.as_deref(), at)
                .await
            {
                warn!(error = %e, "cannot store the transcription's text");
            }
            if let Some(url) = callback {
                params.extend([
                    ("TranscriptionText".into(), text.unwrap_or_default()),
                    ("TranscriptionStatus".into(), status.into()),
                ]);
                let request =
                    flavor.request(&account, &url, crate::accounts::HttpMethod::Post, &params);
                apps.subscriptions
                    .outbox()
                    .send(&account.sid, &call, request)
                    .await;
            }
        });
    }
}
