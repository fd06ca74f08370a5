//! `<Start><Transcription>` and `<Stop><Transcription>`: real-time transcription of the call
//! through the neutral [`crate::transcription`], reported to `statusCallbackUrl` as Twilio's
//! real-time transcription events — `transcription-started`, `transcription-content` (each
//! result: `TranscriptionData` `{"transcript","confidence"}`, `Final`, `Track`) and
//! `transcription-stopped` — numbered by `SequenceId`, through the durable outbox.

use super::{Flow, Session, http_method, resolve};
use crate::providers::twilio::twiml;
use crate::transcription::{Side, Transcription, TranscriptionSpec, stop_taps};
use serde_json::json;
use switchboard_media::TapId;
use tracing::warn;

/// A transcription the session started: its name and taps.
pub(super) struct Running {
    name: Option<String>,
    taps: Vec<TapId>,
}

fn track_name(side: Side) -> &'static str {
    match side {
        Side::Inbound => "inbound_track",
        Side::Outbound => "outbound_track",
    }
}

impl Session {
    pub(super) async fn start_transcriptions(
        &mut self,
        nouns: &[twiml::Transcription],
        base: &str,
    ) -> Result<(), Flow> {
        self.answer().await?;
        for t in nouns {
            let callback = (t.status_callback_url.as_deref())
                .map(|u| resolve(base, u))
                .transpose()
                .map_err(Flow::Failed)?;
            let spec = TranscriptionSpec {
                tracks: t.track,
                interim: t.partial_results,
                hints: (t.hints.as_deref().unwrap_or_default().split(','))
                    .map(|h| h.trim().to_owned())
                    .filter(|h| !h.is_empty() && !h.starts_with('$'))
                    .collect(),
            };
            let started =
                Transcription::start(&self.apps.control, &self.apps.speech, &self.call.sid, spec)
                    .await;
            let (taps, mut results) = match started {
                Ok(running) => running.into_parts(),
                Err(e) => {
                    warn!(call = %self.call.sid, error = %e, "<Start><Transcription> not started");
                    continue;
                }
            };
            self.transcriptions.push(Running {
                name: t.name.clone(),
                taps,
            });
            let sid = crate::accounts::new_sid("GT");
            let (apps, account, flavor) = (
                self.apps.clone(),
                self.account.clone(),
                self.app.flavor.clone(),
            );
            let call = self.call.sid.clone();
            let method = http_method(t.status_callback_method);
            let common = vec![
                ("AccountSid".to_owned(), account.api_sid().to_owned()),
                ("CallSid".to_owned(), call.clone()),
                ("TranscriptionSid".to_owned(), sid),
                ("ProviderName".to_owned(), "Switchboard".to_owned()),
                ("LanguageCode".to_owned(), t.language_code.clone()),
                (
                    "TranscriptionEngine".to_owned(),
                    t.transcription_engine.clone(),
                ),
                ("PartialResults".to_owned(), t.partial_results.to_string()),
            ];
            let (name, track) = (t.name.clone(), t.track);
            self.apps.sessions.spawn(async move {
                let mut seq = 0u64;
                let send = |event: &str, extra: Vec<(String, String)>, seq: &mut u64| {
                    *seq += 1;
                    let mut params = common.clone();
                    params.extend([
                        ("TranscriptionEvent".to_owned(), event.to_owned()),
                        ("SequenceId".to_owned(), seq.to_string()),
                        (
                            "Timestamp".to_owned(),
                            crate::stream::iso8601_micros(crate::call::now_ms()),
                        ),
                    ]);
                    if let Some(n) = &name {
                        params.push(("TranscriptionName".to_owned(), n.clone()));
                    }
                    params.extend(extra);
                    callback
                        .as_ref()
                        .map(|url| flavor.request(&account, url, method, &params))
                };
                let outbox = apps.subscriptions.outbox();
                let tracks = match track {
                    switchboard_media::TapTracks::Inbound => "inbound_track",
                    switchboard_media::TapTracks::Outbound => "outbound_track",
                    switchboard_media::TapTracks::Both => "both_tracks",
                };
                let started = vec![("Track".to_owned(), tracks.to_owned())];
                if let Some(r) = send("transcription-started", started, &mut seq) {
                    outbox.send(&account.sid, &call, r).await;
                }
                while let Some(t) = results.recv().await {
                    let data = json!({"transcript": t.text, "confidence": t.confidence});
                    let extra = vec![
                        ("TranscriptionData".to_owned(), data.to_string()),
                        ("Final".to_owned(), t.is_final.to_string()),
                        ("Track".to_owned(), track_name(t.side).to_owned()),
                    ];
                    if let Some(r) = send("transcription-content", extra, &mut seq) {
                        outbox.send(&account.sid, &call, r).await;
                    }
                }
                let stopped = vec![("Track".to_owned(), tracks.to_owned())];
                if let Some(r) = send("transcription-stopped", stopped, &mut seq) {
                    outbox.send(&account.sid, &call, r).await;
                }
            });
        }
        Ok(())
    }

    /// Stops the named transcriptions (every one for a `<Transcription>` without a name).
    pub(super) async fn stop_transcriptions(&mut self, names: &[Option<String>]) {
        for name in names {
            let (stopping, kept): (Vec<Running>, Vec<Running>) =
                std::mem::take(&mut self.transcriptions)
                    .into_iter()
                    .partition(|r| name.is_none() || r.name == *name);
            self.transcriptions = kept;
            if stopping.is_empty() {
                warn!(name = ?name, "<Stop><Transcription>: no such transcription");
            }
            for r in stopping {
                stop_taps(&self.apps.control, &self.call.sid, &r.taps).await;
            }
        }
    }
}
