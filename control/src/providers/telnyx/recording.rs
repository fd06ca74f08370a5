//! Recording a leg: `record_start` / `record_pause` / `record_resume` / `record_stop`, and
//! dial's (answer's, transfer's) `record: record-from-answer`. The core records; the leg keeps
//! which recording is running (one at a time) and its `max_length`. Each recording has its
//! own subscription, rendered here as `call.recording.saved` (or `call.recording.error`) from
//! the core's stored `recording-saved` event — so it is sent even after a crash, and after the
//! leg's hang-up, when a recording of a call is saved.

use super::Telnyx;
use super::commands::command;
use super::errors::ApiError;
use super::events::{self, LegContext};
use super::leg::{Leg, LegHandle, Play};
use super::params::Params;
pub(super) use super::params::record::RecordParams;
use crate::call::ids::sid_as_uuid;
use crate::call::{CallCommand, RecordingOrigin};
use crate::infra::accounts::HttpMethod;
use crate::infra::webhook::request::WebhookRequest;
use crate::services::subscriptions::{
    History, Hook, Milestone, MilestoneEvent, NewSubscription, Renderer,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, json};
use std::sync::Arc;
use switchboard_media::record::{Channels, RecordFormat};

/// The renderer's registered name.
pub(super) const RENDERER: &str = "telnyx-recording";
/// What a recording's subscription renders from: the leg's fields as of the start, and the
/// recording's own.
#[derive(Debug, Serialize, Deserialize)]
struct Context {
    leg: LegContext,
    /// The stored id (`RE…`).
    recording: String,
    /// `wav` or `mp3`.
    format: String,
    /// `single` or `dual`.
    channels: String,
    /// Unix milliseconds.
    started_at: i64,
    /// Where the recording is downloaded.
    url: String,
    /// The conference's SID when it records a conference (`conference.recording.saved`).
    #[serde(default)]
    conference: Option<String>,
}

/// Where the recording with stored id `sid` is served in `format` (its id is the capability,
/// as a Telnyx recording's presigned URL is).
pub(super) fn download_url(api: &Telnyx, sid: &str, format: &str) -> String {
    format!(
        "{}/v2/recording_files/{}.{format}",
        api.parts.public_url,
        sid_as_uuid(sid, "RE").unwrap_or_default()
    )
}

/// Starts recording the leg (it must be answered, and not be recording already): returns the
/// recording's stored id.
pub(super) async fn start(
    api: &Arc<Telnyx>,
    leg: &mut Leg,
    params: RecordParams,
    origin: RecordingOrigin,
) -> Result<String, ApiError> {
    if !leg.answered(api).await {
        return Err(ApiError::param(
            "90020",
            "Call recording triggered before audio started",
            "call_control_id",
            "The call is not answered yet: there is no audio to record.".into(),
        ));
    }
    if let Some(running) = leg.recording(api).await {
        return Err(ApiError::unprocessable(format!(
            "The call is already being recorded ({}); stop that recording first.",
            sid_as_uuid(&running, "RE").unwrap_or_default()
        )));
    }
    let sid = subscribe(api, leg.handle(), &params, None).await?;
    if params.play_beep {
        let beep = switchboard_media::tone::beep().into();
        super::commands::play(api, leg, beep, 1, Play::Beep).await?;
    }
    let started = command(
        api,
        &leg.call,
        CallCommand::RecordStart(params.options(origin)),
    )
    .await;
    if let Err(e) = started {
        api.subject_subscriptions.forget(&sid);
        return Err(e);
    }
    if params.transcription {
        let language = params.transcription_language.clone();
        leg.state
            .transcribed
            .push((sid.clone(), language, params.transcription_engine));
    }
    Ok(sid)
}

/// Subscribes the leg to the end of the recording `params` starts (of the leg, or of the
/// `conference` with this SID it is in); returns the recording's stored id.
async fn subscribe(
    api: &Telnyx,
    leg: &LegHandle,
    params: &RecordParams,
    conference: Option<&str>,
) -> Result<String, ApiError> {
    let sid = params.sid.clone();
    let format = if params.format == RecordFormat::Mp3 {
        "mp3"
    } else {
        "wav"
    };
    let context = Context {
        leg: leg.context(),
        recording: sid.clone(),
        format: format.into(),
        channels: if params.channels == Channels::Dual {
            "dual"
        } else {
            "single"
        }
        .into(),
        started_at: crate::infra::clock::now_ms(),
        url: download_url(api, &sid, format),
        conference: conference.map(str::to_owned),
    };
    let asked = NewSubscription {
        call: leg.call.clone(),
        account: leg.account.clone(),
        renderer: RENDERER,
        url: leg.view().webhook_url.clone(),
        method: HttpMethod::Post,
        context: serde_json::to_string(&context)
            .map_err(|e| ApiError::unprocessable(e.to_string()))?,
    };
    let subscription = api.parts.subscriptions.subscribe(asked).await;
    api.subject_subscriptions.add(&sid, subscription);
    Ok(sid)
}

/// Records the mix of conference `conference` (its SID), which `leg` is in and whose
/// `conference.recording.saved` it reports; returns the recording's stored id.
pub(super) async fn start_conference(
    api: &Arc<Telnyx>,
    leg: &LegHandle,
    params: RecordParams,
    conference: &str,
) -> Result<String, ApiError> {
    let sid = subscribe(api, leg, &params, Some(conference)).await?;
    let options = params.options(RecordingOrigin::Conference);
    if let Err(e) = command(api, &leg.call, CallCommand::ConferenceRecord(options)).await {
        api.subject_subscriptions.forget(&sid);
        return Err(e);
    }
    Ok(sid)
}

/// `record_stop`, `record_pause`, `record_resume`: on the leg's recording (`recording_id`,
/// if given, must name it).
pub(super) async fn change(
    api: &Arc<Telnyx>,
    leg: &Leg,
    p: &Params,
    op: CallCommand,
) -> Result<(), ApiError> {
    let Some(running) = leg.recording(api).await else {
        return Err(ApiError::unprocessable(
            "The call is not being recorded.".into(),
        ));
    };
    if let Some(id) = p.str("recording_id")?
        && crate::call::ids::uuid_as_sid(id, "RE").as_deref() != Some(running.as_str())
    {
        return Err(ApiError::invalid(
            "recording_id",
            format!("'{id}' is not the call's running recording."),
        ));
    }
    command(api, &leg.call, op).await
}

/// Transcribes a saved recording and reports it (`call.recording.transcription.saved`).
pub(super) async fn transcribe(
    api: Arc<Telnyx>,
    leg: Arc<LegHandle>,
    job: crate::services::recording_transcriptions::Transcribe,
) {
    let transcriptions = &api.parts.markup.transcriptions;
    let row = transcriptions.begin(&job).await;
    let row = transcriptions.finish(row, &job).await;
    let mut extra = Map::new();
    extra.insert(
        "recording_id".into(),
        json!(sid_as_uuid(&job.recording, "RE")),
    );
    extra.insert(
        "recording_transcription_id".into(),
        json!(sid_as_uuid(&row.sid, "TR")),
    );
    extra.insert("status".into(), json!(row.status));
    extra.insert(
        "transcription_text".into(),
        json!(row.text.unwrap_or_default()),
    );
    let at = crate::infra::clock::now_ms();
    leg.send(&api, "call.recording.transcription.saved", at, extra)
        .await;
}

/// A conference's recording saved, as Telnyx reports it (`conference.recording.saved`): the
/// fields of the participant that asked, the conference's, the recording's. A recording that
/// failed has no event of its own there; it reports nothing.
fn render_conference(
    hook: &Hook<'_>,
    context: &Context,
    conference: &str,
    milestone_event: &MilestoneEvent,
    error: Option<&str>,
) -> Option<WebhookRequest> {
    if error.is_some() {
        return None;
    }
    let leg = context.leg.payload();
    let mut payload = Map::new();
    for key in [
        "call_control_id",
        "call_session_id",
        "client_state",
        "connection_id",
    ] {
        payload.insert(key.into(), leg.get(key).cloned().unwrap_or_default());
    }
    let (started, ended) = (
        events::timestamp(context.started_at),
        events::timestamp(milestone_event.at),
    );
    payload.insert("conference_id".into(), json!(sid_as_uuid(conference, "CF")));
    payload.insert(
        "recording_id".into(),
        json!(sid_as_uuid(&context.recording, "RE")),
    );
    payload.insert("channels".into(), json!(context.channels));
    payload.insert("format".into(), json!(context.format));
    payload.insert("recording_started_at".into(), json!(started));
    payload.insert("recording_ended_at".into(), json!(ended));
    payload.insert(
        "recording_urls".into(),
        json!({ context.format.as_str(): context.url }),
    );
    payload.insert("public_recording_urls".into(), json!({}));
    let data = events::data("conference.recording.saved", milestone_event.at, payload);
    Some(context.leg.webhook(hook.url, &data))
}

/// Renders a recording's end as Telnyx does.
pub(super) struct TelnyxRecording;

impl Renderer for TelnyxRecording {
    fn render(
        &self,
        hook: &Hook<'_>,
        _history: &History,
        milestone_event: &MilestoneEvent,
    ) -> Option<WebhookRequest> {
        let context: Context = hook.context(RENDERER)?;
        let Milestone::RecordingSaved {
            recording, error, ..
        } = &milestone_event.milestone
        else {
            return None;
        };
        if *recording != context.recording {
            return None;
        }
        if let Some(conference) = &context.conference {
            return render_conference(
                hook,
                &context,
                conference,
                milestone_event,
                error.as_deref(),
            );
        }
        let mut payload = context.leg.payload();
        payload.insert("recording_id".into(), json!(sid_as_uuid(recording, "RE")));
        let event_type = match error {
            Some(reason) => {
                payload.insert("reason".into(), json!(reason));
                "call.recording.error"
            }
            None => {
                let (started, ended) = (
                    events::timestamp(context.started_at),
                    events::timestamp(milestone_event.at),
                );
                payload.insert("channels".into(), json!(context.channels));
                payload.insert("format".into(), json!(context.format));
                payload.insert("recording_started_at".into(), json!(started));
                payload.insert("recording_ended_at".into(), json!(ended));
                payload.insert("start_time".into(), json!(started));
                payload.insert("end_time".into(), json!(ended));
                payload.insert(
                    "recording_urls".into(),
                    json!({ context.format.as_str(): context.url }),
                );
                payload.insert("public_recording_urls".into(), json!({}));
                "call.recording.saved"
            }
        };
        let data = events::data(event_type, milestone_event.at, payload);
        Some(context.leg.webhook(hook.url, &data))
    }

    /// Its recording saved (or given up): nothing more to report.
    fn is_last(&self, context: &str, milestone_event: &MilestoneEvent) -> bool {
        let Ok(Context { recording, .. }) = serde_json::from_str(context) else {
            return true;
        };
        matches!(&milestone_event.milestone, Milestone::RecordingSaved { recording: r, .. } if *r == recording)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::speech::Speech;
    use std::time::Duration;
    use switchboard_media::TapTracks;

    /// `record_start`'s parameters read on a server with no recogniser.
    fn of_action(p: &Params) -> Result<RecordParams, ApiError> {
        RecordParams::of_action(p, &Speech::none("no speech in these tests"), "AC0")
    }

    fn context() -> String {
        serde_json::to_string(&Context {
            leg: LegContext {
                call: "CA0123456789abcdef0123456789abcdef".into(),
                session: "CA0123456789abcdef0123456789abcdef".into(),
                connection_id: "1494404757140276705".into(),
                from: "+15550002222".into(),
                to: "+15550001111".into(),
                direction: "incoming".into(),
                client_state: Some("aGk=".into()),
                start_time: 1_893_456_000_000,
                hangup_cause: None,
                failover_url: None,
                webhook_timeout_secs: None,
                invite_headers: Vec::new(),
                calling_party_type: "pstn".into(),
                offered: None,
            },
            recording: "REffffffffffffffffffffffffffffffff".into(),
            format: "mp3".into(),
            channels: "dual".into(),
            started_at: 1_893_456_001_000,
            url: "http://sb/v2/recording_files/ffffffff-ffff-ffff-ffff-ffffffffffff.mp3".into(),
            conference: None,
        })
        .unwrap()
    }

    fn render(recording: &str, error: Option<&str>) -> Option<Value> {
        let context = context();
        let hook = Hook {
            subject: "CA1",
            url: "http://app/hooks",
            method: HttpMethod::Post,
            context: &context,
        };
        let milestone_event = MilestoneEvent {
            seq: 9,
            at: 1_893_456_004_000,
            milestone: Milestone::RecordingSaved {
                recording: recording.into(),
                duration_ms: 3000,
                channels: 2,
                error: error.map(str::to_owned),
            },
        };
        assert_eq!(
            TelnyxRecording.is_last(&context, &milestone_event),
            recording == "REffffffffffffffffffffffffffffffff"
        );
        let request = TelnyxRecording.render(&hook, &History::default(), &milestone_event)?;
        Some(serde_json::from_str(&request.body).unwrap())
    }

    use serde_json::Value;

    #[test]
    fn a_saved_recording_in_telnyx_shape() {
        let d = render("REffffffffffffffffffffffffffffffff", None).unwrap();
        assert_eq!(d["event_type"], "call.recording.saved");
        let p = &d["payload"];
        assert_eq!(p["recording_id"], "ffffffff-ffff-ffff-ffff-ffffffffffff");
        assert_eq!(p["channels"], "dual");
        assert_eq!(p["format"], "mp3");
        assert_eq!(p["client_state"], "aGk=");
        assert_eq!(p["recording_started_at"], "2030-01-01T00:00:01.000000Z");
        assert_eq!(p["recording_ended_at"], "2030-01-01T00:00:04.000000Z");
        assert!(
            p["recording_urls"]["mp3"]
                .as_str()
                .unwrap()
                .ends_with(".mp3")
        );
        assert!(p["recording_urls"]["wav"].is_null());
        // Another recording of the call is not this subscription's.
        assert!(render("RE00000000000000000000000000000000", None).is_none());
        let e = render("REffffffffffffffffffffffffffffffff", Some("disk full")).unwrap();
        assert_eq!(e["event_type"], "call.recording.error");
        assert_eq!(e["payload"]["reason"], "disk full");
    }

    #[test]
    fn record_parameters_are_checked() {
        let p = |body: &str| Params::parse(body.as_bytes()).unwrap();
        let code = |r: Result<RecordParams, ApiError>| r.unwrap_err().code;
        assert_eq!(code(of_action(&p(r#"{"channels":"single"}"#))), "10004");
        assert_eq!(
            code(of_action(&p(r#"{"format":"ogg","channels":"single"}"#))),
            "10032"
        );
        assert_eq!(
            code(of_action(&p(
                r#"{"format":"wav","channels":"single","max_length":14401}"#
            ))),
            "10033"
        );
        // A language no engine here serves is refused as Telnyx refuses one.
        assert_eq!(
            code(of_action(&p(
                r#"{"format":"wav","channels":"single","transcription":true,"transcription_language":"es"}"#
            ))),
            "10032"
        );
        let r = of_action(&p(
            r#"{"format":"wav","channels":"dual","recording_track":"inbound","max_length":60}"#,
        ))
        .unwrap();
        assert_eq!(
            (r.format, r.channels, r.tracks, r.max_length),
            (
                RecordFormat::Pcm16,
                Channels::Dual,
                TapTracks::Inbound,
                Some(Duration::from_secs(60))
            )
        );
        assert!(
            RecordParams::of_call(&p(r#"{"to":"+1555"}"#))
                .unwrap()
                .is_none()
        );
        assert_eq!(
            code(RecordParams::of_call(&p(r#"{"record":"always"}"#)).map(Option::unwrap)),
            "10032"
        );
        let dialed = RecordParams::of_call(&p(r#"{"record":"record-from-answer"}"#))
            .unwrap()
            .unwrap();
        assert_eq!(
            (dialed.format, dialed.channels),
            (RecordFormat::Mp3, Channels::Mono)
        );
    }

    /// `transcription_engine` is served by the engine a map sends its provider to (Deepgram
    /// here, mapped by the operator); Google's (`A`, mapped by nobody) by the language.
    #[test]
    fn a_recordings_transcription_engine_follows_the_provider_maps() {
        use crate::infra::accounts::{Directory, Listing};
        use crate::services::speech::{EngineKind, ProviderEngines, SpeechProviders};
        let map = ProviderEngines::parse(&["deepgram=http".to_owned()]).unwrap();
        let directory = Arc::new(Directory::new(Listing::default()));
        let speech = Speech::english_unloaded()
            .with_providers(Arc::new(SpeechProviders::new(map, directory)));
        let asked = |engine: &str| {
            let body = format!(
                r#"{{"format":"wav","channels":"single","transcription":true,"transcription_engine":"{engine}"}}"#
            );
            RecordParams::of_action(&Params::parse(body.as_bytes()).unwrap(), &speech, "AC0")
                .unwrap()
                .transcription_engine
        };
        assert_eq!(asked("deepgram/nova-3"), Some(EngineKind::Http));
        assert_eq!(asked("A"), None);
    }
}
