//! Real-time transcription of a call, started by `<Start><Transcription>` or the REST
//! `Calls/{CA}/Transcriptions.json`, stopped by `<Stop><Transcription>` or the REST update
//! (`Status=stopped`), through the neutral [`crate::services::transcription`]. Its results go to
//! `statusCallbackUrl` as Twilio's real-time transcription events — `transcription-started`,
//! `transcription-content` (each result: `TranscriptionData` `{"transcript","confidence"}`,
//! `Final`, `Track`) and `transcription-stopped` — numbered by `SequenceId`, through the
//! durable outbox. One that cannot start (no speech engine on this server, say) is reported as
//! Twilio reports a failed one: a `transcription-error` event (`TranscriptionError`,
//! `TranscriptionErrorCode` 32651, the provider's error) and a Notification of the account. The running ones are kept per call by the neutral
//! [`crate::services::transcription::LiveTranscriptions`], so either way of starting can stop.

use super::{Dialect, Flow, Session, VoiceApps, resolve};
use crate::infra::accounts::{Account, HttpMethod};
use crate::markup::twiml;
use crate::services::transcription::{Side, Started, TranscriptionError, TranscriptionSpec};
use serde_json::json;
use std::sync::Arc;
use switchboard_media::TapTracks;
use tracing::warn;

/// What to start: a `<Transcription>` noun or the REST parameters, its callback resolved.
#[derive(Clone)]
pub struct LiveTranscription {
    pub name: Option<String>,
    pub callback: Option<(String, HttpMethod)>,
    pub track: TapTracks,
    pub partial_results: bool,
    pub language_code: String,
    pub engine: String,
    pub hints: Vec<String>,
}

impl LiveTranscription {
    /// A `<Transcription>` of a document at `base`.
    fn of_noun(t: &twiml::Transcription, base: &str) -> Result<Self, super::AppError> {
        let callback = (t.status_callback_url.as_deref())
            .map(|u| resolve(base, u))
            .transpose()?;
        Ok(Self {
            name: t.name.clone(),
            callback: callback.map(|u| (u, super::http_method(t.status_callback_method))),
            track: t.track,
            partial_results: t.partial_results,
            language_code: t.language_code.clone(),
            engine: t.transcription_engine.clone(),
            hints: split_hints(t.hints.as_deref().unwrap_or_default()),
        })
    }
}

/// Twilio's comma-separated hints, without its `$CLASS` tokens.
pub fn split_hints(hints: &str) -> Vec<String> {
    hints
        .split(',')
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && !h.starts_with('$'))
        .collect()
}

fn track_name(side: Side) -> &'static str {
    match side {
        Side::Inbound => "inbound_track",
        Side::Outbound => "outbound_track",
    }
}

fn tracks_name(tracks: TapTracks) -> &'static str {
    match tracks {
        TapTracks::Inbound => "inbound_track",
        TapTracks::Outbound => "outbound_track",
        TapTracks::Both => "both_tracks",
    }
}

impl VoiceApps {
    /// Starts transcribing `call`; returns the transcription's SID (`GT…`).
    pub async fn start_transcription(
        self: &Arc<Self>,
        account: &Account,
        call: &str,
        dialect: &Dialect,
        t: LiveTranscription,
    ) -> Result<String, TranscriptionError> {
        // `transcriptionEngine` (`google`, `deepgram`) is served by the engine the operator
        // maps it to, if they map it.
        let engine = self.speech.engine_for(&account.sid, &t.engine);
        let spec = TranscriptionSpec {
            language: Some(t.language_code.clone()),
            engine,
            tracks: t.track,
            interim: t.partial_results,
            hints: t.hints.clone(),
        };
        let Started { sid, mut results } =
            (self.live_transcriptions.start(call, t.name.clone(), spec)).await?;
        let (apps, account, dialect) = (self.clone(), account.clone(), dialect.clone());
        let call = call.to_owned();
        let common = event_params(&account, &call, &sid, &t);
        self.sessions.spawn(async move {
            let mut seq = 0u64;
            let outbox = apps.subscriptions.outbox();
            let mut send = async |event: &str, extra: Vec<(String, String)>| {
                seq += 1;
                let Some((url, method)) = &t.callback else {
                    return;
                };
                let params = with_event(&common, event, seq, &t, extra);
                let request = dialect.request(&account, url, *method, &params);
                outbox.send(&account.sid, &call, request).await;
            };
            let tracks = vec![("Track".to_owned(), tracks_name(t.track).to_owned())];
            send("transcription-started", tracks.clone()).await;
            while let Some(r) = results.recv().await {
                let data = json!({"transcript": r.text, "confidence": r.confidence});
                let extra = vec![
                    ("TranscriptionData".to_owned(), data.to_string()),
                    ("Final".to_owned(), r.is_final.to_string()),
                    ("Track".to_owned(), track_name(r.side).to_owned()),
                ];
                send("transcription-content", extra).await;
            }
            send("transcription-stopped", tracks).await;
        });
        Ok(sid)
    }

    /// A transcription that could not start, reported as Twilio reports a failed one: the
    /// account's Notification and, with a `statusCallbackUrl`, a `transcription-error` event.
    async fn transcription_failed(
        &self,
        account: &Account,
        call: &str,
        dialect: &Dialect,
        t: &LiveTranscription,
        error: &TranscriptionError,
    ) {
        let code = match error {
            TranscriptionError::TooMany => CONFIGURATION_ERROR,
            TranscriptionError::Speech(_) | TranscriptionError::Call(_) => PROVIDER_ERROR,
        };
        let message = format!("<Transcription> could not start: {error}");
        let (url, method) = (t.callback.clone()).unwrap_or((String::new(), HttpMethod::Post));
        let notice = super::Notice {
            code,
            warning: false,
            message: &message,
            url: &url,
            method,
        };
        self.notify(account, call, notice).await;
        if t.callback.is_none() {
            return;
        }
        let sid = crate::infra::sid::new_sid("GT");
        let extra = vec![
            ("TranscriptionError".to_owned(), message.clone()),
            ("TranscriptionErrorCode".to_owned(), code.to_string()),
        ];
        let params = with_event(
            &event_params(account, call, &sid, t),
            "transcription-error",
            1,
            t,
            extra,
        );
        let request = dialect.request(account, &url, method, &params);
        self.subscriptions
            .outbox()
            .send(&account.sid, call, request)
            .await;
    }
}

/// Twilio's "Real-time Transcriptions: Configuration Error" and "Provider Error".
const CONFIGURATION_ERROR: u32 = 32650;
const PROVIDER_ERROR: u32 = 32651;

/// What every event of transcription `sid` on `call` carries.
fn event_params(
    account: &Account,
    call: &str,
    sid: &str,
    t: &LiveTranscription,
) -> Vec<(String, String)> {
    vec![
        ("AccountSid".to_owned(), account.api_sid().to_owned()),
        ("CallSid".to_owned(), call.to_owned()),
        ("TranscriptionSid".to_owned(), sid.to_owned()),
        ("ProviderName".to_owned(), "Switchboard".to_owned()),
        ("LanguageCode".to_owned(), t.language_code.clone()),
        ("TranscriptionEngine".to_owned(), t.engine.clone()),
        ("PartialResults".to_owned(), t.partial_results.to_string()),
    ]
}

/// An event's parameters: the common ones, the event's name, number and time, the
/// transcription's name, and `extra`.
fn with_event(
    common: &[(String, String)],
    event: &str,
    seq: u64,
    t: &LiveTranscription,
    extra: Vec<(String, String)>,
) -> Vec<(String, String)> {
    let mut params = common.to_vec();
    params.extend([
        ("TranscriptionEvent".to_owned(), event.to_owned()),
        ("SequenceId".to_owned(), seq.to_string()),
        (
            "Timestamp".to_owned(),
            crate::services::stream::iso8601_micros(crate::infra::clock::now_ms()),
        ),
    ]);
    if let Some(n) = &t.name {
        params.push(("TranscriptionName".to_owned(), n.clone()));
    }
    params.extend(extra);
    params
}

impl VoiceApps {
    /// Stops the call's transcriptions `which` names (its SID or name; every one for
    /// `None`); returns those stopped, as (SID, name).
    pub async fn stop_transcriptions(
        &self,
        call: &str,
        which: Option<&str>,
    ) -> Vec<(String, Option<String>)> {
        self.live_transcriptions.stop(call, which).await
    }
}

impl Session {
    pub(super) async fn start_transcriptions(
        &mut self,
        nouns: &[twiml::Transcription],
        base: &str,
    ) -> Result<(), Flow> {
        self.answer().await?;
        for noun in nouns {
            let t = LiveTranscription::of_noun(noun, base).map_err(Flow::Failed)?;
            let dialect = self.app.dialect.clone();
            let (apps, call) = (self.apps.clone(), &self.call.sid);
            let started = apps.start_transcription(&self.account, call, &dialect, t.clone());
            if let Err(e) = started.await {
                warn!(call = %call, error = %e, "<Start><Transcription> not started");
                (apps.transcription_failed(&self.account, call, &dialect, &t, &e)).await;
            }
        }
        Ok(())
    }

    /// Stops the named transcriptions (every one for a `<Transcription>` without a name).
    pub(super) async fn stop_transcriptions(&mut self, names: &[Option<String>]) {
        for name in names {
            let stopped = (self.apps)
                .stop_transcriptions(&self.call.sid, name.as_deref())
                .await;
            if stopped.is_empty() {
                warn!(name = ?name, "<Stop><Transcription>: no such transcription");
            }
        }
    }
}
