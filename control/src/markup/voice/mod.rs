//! Voice applications in markup (TwiML, LaML, TeXML: one language, [`Dialect`]s apart): a call
//! is driven by a document — fetched from a voice URL (a configured number's, or the `Url` of
//! a call created through the REST API) or given inline (`Twiml`) — verb by verb, through the
//! call core. Each call has its own session task;
//! fetches are signed with the account's auth token and carry Twilio's standard voice
//! parameters; status callbacks go out for the events the application asked for. A running
//! session can be redirected to another document (the REST API's call update).
//!
//! `apps` starts and tracks the sessions; `session` runs one; `speak` plays what it says;
//! each verb with more to it than a command has a module of its own.

pub mod amd;
mod announce;
mod application_dials;
mod apps;
mod conference_events;
mod conference_participant;
mod dial;
mod dial_legs;
mod dialect;
mod echo;
mod enqueue;
mod gather;
pub mod live_transcription;
mod progress;
mod prompt_budget;
mod queue_result;
mod record;
mod recording_status;
mod recordings;
mod refer;
mod relay;
mod session;
mod speak;
mod stream_status;
pub mod streams;
mod transcribe;
mod whisper;

use super::rfc2822;
use super::twiml::{self, Method, Verb};
use crate::call::RecordingOrigin;
use crate::infra::accounts::{Account, HttpMethod};
pub use amd::MachineDetection;
pub use application_dials::ApplicationDials;
pub use apps::*;
pub use conference_participant::{BadParam, JoinOptions};
pub use dialect::{Dialect, account_uuid};
use prompt_budget::PromptBudget;
use session::*;

/// The longest `<Gather>` prompt rendered ahead: ten minutes (9.6 MB of samples).
const MAX_PROMPT_MS: u32 = 600_000;
const MAX_PROMPT_SAMPLES: usize = MAX_PROMPT_MS as usize * 8;

/// What Twilio says when the application cannot be reached or its TwiML is broken.
const APPLICATION_ERROR: &str = "We are sorry, an application error has occurred. Goodbye.";

/// Twilio's standard request parameters for a call, geographic fields included (empty: Twilio
/// sends them even when its lookup found nothing).
fn voice_params(account: &Account, c: &Call, status: &str) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = [
        ("CallSid", c.sid.as_str()),
        ("AccountSid", account.api_sid()),
        ("From", c.from.as_str()),
        ("To", c.to.as_str()),
        ("Caller", c.from.as_str()),
        ("Called", c.to.as_str()),
        ("CallStatus", status),
        ("ApiVersion", "2010-04-01"),
        ("Direction", c.direction),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for who in ["From", "To", "Caller", "Called"] {
        for what in ["City", "State", "Zip", "Country"] {
            p.push((format!("{who}{what}"), String::new()));
        }
    }
    p.extend(c.extra.iter().cloned());
    p
}

fn set(params: &mut [(String, String)], name: &str, value: &str) {
    if let Some(p) = params.iter_mut().find(|(k, _)| k == name) {
        p.1 = value.to_owned();
    }
}

fn http_method(m: Method) -> HttpMethod {
    match m {
        Method::Get => HttpMethod::Get,
        Method::Post => HttpMethod::Post,
    }
}

/// The longest `TimeLimit` a call takes (a day: Twilio's calls last 24 hours at most).
pub const MAX_TIME_LIMIT_SECS: u64 = 24 * 60 * 60;

/// A call's `TimeLimit` in seconds, 1 to a day (none or empty: no limit); the value given
/// back when it is not one, for the dialect to word its error.
pub fn time_limit(value: Option<&str>) -> Result<Option<std::time::Duration>, String> {
    match value.filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => (t.parse::<u64>().ok())
            .filter(|s| (1..=MAX_TIME_LIMIT_SECS).contains(s))
            .map(|s| Some(std::time::Duration::from_secs(s)))
            .ok_or_else(|| t.to_owned()),
    }
}

/// `SipAuthUsername` and `SipAuthPassword` as `get` gives them: what a SIP `To`'s digest
/// challenge is answered with, when a user is given.
pub fn sip_credentials<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<(String, String)> {
    let user = get("SipAuthUsername").filter(|u| !u.is_empty())?;
    let password = get("SipAuthPassword").unwrap_or_default();
    Some((user.to_owned(), password.to_owned()))
}

/// `RecordingTrack` as Twilio names it.
pub fn recording_track(tracks: switchboard_media::TapTracks) -> &'static str {
    use switchboard_media::TapTracks;
    match tracks {
        TapTracks::Inbound => "inbound",
        TapTracks::Outbound => "outbound",
        TapTracks::Both => "both",
    }
}

/// The tracks a `RecordingTrack` names (none or empty: both); `None` for a name that is not
/// one.
pub fn recording_tracks(name: Option<&str>) -> Option<switchboard_media::TapTracks> {
    use switchboard_media::TapTracks;
    match name {
        None | Some("" | "both") => Some(TapTracks::Both),
        Some("inbound") => Some(TapTracks::Inbound),
        Some("outbound") => Some(TapTracks::Outbound),
        Some(_) => None,
    }
}

/// Twilio's name for what started a recording (`source`, `RecordingSource`).
pub fn recording_source(origin: RecordingOrigin) -> &'static str {
    match origin {
        RecordingOrigin::Api => "StartCallRecordingAPI",
        RecordingOrigin::RecordVerb => "RecordVerb",
        RecordingOrigin::Dial => "DialVerb",
        RecordingOrigin::CallCreate => "OutboundAPI",
        RecordingOrigin::Conference => "Conference",
        RecordingOrigin::Route => "Trunking",
        RecordingOrigin::StartVerb => "StartCallRecordingTwiML",
    }
}

/// A URL of a document, relative to the document's own (inline TwiML has none: its URLs
/// must be absolute).
fn resolve(base: &str, url: &str) -> Result<String, AppError> {
    url::Url::parse(url)
        .or_else(|_| url::Url::parse(base).and_then(|b| b.join(url)))
        .map(String::from)
        .map_err(|e| AppError {
            code: 11100,
            message: format!("bad URL {url:?}: {e}"),
        })
}

fn verb_name(v: &Verb) -> &'static str {
    match v {
        Verb::Say(_) => "<Say>",
        Verb::Play(_) => "<Play>",
        Verb::Pause { .. } => "<Pause>",
        Verb::Gather(_) => "<Gather>",
        Verb::Record(_) => "<Record>",
        Verb::Dial(_) => "<Dial>",
        Verb::Hangup { .. } => "<Hangup>",
        Verb::Redirect { .. } => "<Redirect>",
        Verb::Reject { .. } => "<Reject>",
        Verb::Enqueue { .. } => "<Enqueue>",
        Verb::Leave => "<Leave>",
        Verb::Echo { .. } => "<Echo>",
        Verb::Refer { .. } => "<Refer>",
        Verb::Denoise { .. } => "<Denoise>",
        Verb::Connect { .. } => "<Connect>",
        Verb::Start { .. } => "<Start>",
        Verb::Stop { .. } => "<Stop>",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A day at most, a second at least; anything else is given back to be worded.
    #[test]
    fn a_time_limit_is_whole_seconds_up_to_a_day() {
        use std::time::Duration;
        assert_eq!(time_limit(None), Ok(None));
        assert_eq!(time_limit(Some("")), Ok(None));
        assert_eq!(time_limit(Some("30")), Ok(Some(Duration::from_secs(30))));
        assert_eq!(
            time_limit(Some("86400")),
            Ok(Some(Duration::from_secs(86_400)))
        );
        for bad in ["0", "86401", "-1", "1.5", "soon"] {
            assert_eq!(time_limit(Some(bad)), Err(bad.to_owned()));
        }
        let get = |k: &str| match k {
            "SipAuthUsername" => Some("alice"),
            _ => None,
        };
        assert_eq!(sip_credentials(get), Some(("alice".into(), String::new())));
        assert_eq!(sip_credentials(|_| Some("")), None);
    }

    #[test]
    fn relative_urls_resolve_against_their_document() {
        assert_eq!(
            resolve("http://127.0.0.1:9000/voice/menu?x=1", "/gathered").unwrap(),
            "http://127.0.0.1:9000/gathered"
        );
        assert_eq!(
            resolve("http://127.0.0.1:9000/voice/menu", "tone.wav").unwrap(),
            "http://127.0.0.1:9000/voice/tone.wav"
        );
        assert_eq!(resolve("http://a/x", "https://b/y").unwrap(), "https://b/y");
    }
}
