//! What a leg's call is told to do: a plan's commands carried out in order (see
//! [`super::leg::plan`]), audio fetched or spoken and played, and the call's refusals in
//! Telnyx's words.

use super::Telnyx;
use super::errors::ApiError;
use super::leg::Leg;
use super::leg::Play;
use super::leg::plan::{self, Plan};
use super::params::Params;
use crate::call::{CallCommand, CallError, CallStatus};
use crate::services::prompts::SayPart;
use std::sync::Arc;
use switchboard_media::Prompt;

/// `speak`'s `payload` is at most this long.
const MAX_SPEAK: usize = 3000;

/// The text under `key` (`payload`, `invalid_payload`) spoken in the body's `voice` and
/// `language`, if the body has it: at most 3,000 characters of text, or of SSML (`payload_type:
/// ssml`, rendered as `<Say>`'s is; markup the voices cannot render is refused).
pub(super) async fn speech(
    api: &Telnyx,
    account: &str,
    p: &Params,
    key: &str,
) -> Result<Option<(Prompt, Play)>, ApiError> {
    let Some(speak) = Speak::of(p, key)? else {
        return Ok(None);
    };
    let (parts, _) = (api.parts.prompts)
        .say_parts(&speak.said, Some(speak.voice), speak.language, account)
        .await
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let id = crate::infra::secret::random_alphanumeric(10);
    Ok(Some((Prompt::new(parts), Play::Speak { id })))
}

/// What a `speak` (a call's or a conference's) asks to say.
pub(super) struct Speak<'a> {
    pub(super) said: Vec<SayPart>,
    pub(super) voice: &'a str,
    pub(super) language: Option<&'a str>,
}

impl<'a> Speak<'a> {
    /// The text at `key` (none when empty) with `voice`, `language` and `payload_type`.
    pub(super) fn of(p: &'a Params, key: &str) -> Result<Option<Self>, ApiError> {
        let Some(text) = p.str(key)?.filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        let voice = p.required("voice")?;
        if text.chars().count() > MAX_SPEAK {
            return Err(ApiError::out_of_range(
                key,
                format!("'{key}' is longer than {MAX_SPEAK} characters."),
            ));
        }
        let said = match p.choice("payload_type", &["text", "ssml"], "text")? {
            "ssml" => crate::markup::twiml::ssml::speak(text).map_err(|why| {
                ApiError::invalid(key, format!("The SSML cannot be spoken: {why}."))
            })?,
            _ => SayPart::words(text),
        };
        Ok(Some(Self {
            said,
            voice,
            language: p.str("language")?,
        }))
    }
}

/// A prompt fetched from `url`, to play.
pub(super) async fn fetch(
    api: &Telnyx,
    account: &str,
    url: &str,
) -> Result<(Prompt, Play), ApiError> {
    let reach = api
        .parts
        .directory
        .account(account)
        .map(|a| a.reach)
        .unwrap_or_default();
    let clip = api
        .parts
        .prompts
        .url(url, reach)
        .await
        .map_err(|e| ApiError::unprocessable(format!("cannot play {url}: {e}")))?;
    Ok((
        clip.into(),
        Play::Audio {
            url: Some(url.to_owned()),
        },
    ))
}

/// `playback_content`: a base64 MP3 or WAV file, decoded (the body's bound bounds it).
pub(super) async fn inline_audio(api: &Telnyx, content: &str) -> Result<Prompt, ApiError> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(content.trim())
        .map_err(|e| {
            ApiError::invalid(
                "playback_content",
                format!("'playback_content' is not base64: {e}"),
            )
        })?;
    let clip = (api.parts.prompts.content(bytes).await).map_err(|e| {
        ApiError::invalid(
            "playback_content",
            format!("'playback_content' is not an MP3 or WAV file: {e}"),
        )
    })?;
    Ok(clip.into())
}

/// Plays `url` on the leg `loops` times (0: until stopped): `call.playback.*` follow.
pub(super) async fn play_url(
    api: &Arc<Telnyx>,
    leg: &mut Leg,
    url: &str,
    loops: u32,
) -> Result<(), ApiError> {
    let (clip, kind) = fetch(api, &leg.account, url).await?;
    play(api, leg, clip, loops, kind).await
}

pub(super) async fn play(
    api: &Telnyx,
    leg: &mut Leg,
    clip: Prompt,
    loops: u32,
    kind: Play,
) -> Result<(), ApiError> {
    let plan = plan::play_plan(&mut leg.state, clip, loops, kind)?;
    carry_out(api, leg, plan).await
}

/// Gives the call a plan's commands in order; the first refused ends it, and the leg takes
/// back what that step named.
pub(super) async fn carry_out(api: &Telnyx, leg: &mut Leg, plan: Plan) -> Result<(), ApiError> {
    for (step, undo) in plan.steps {
        if let Err(e) = command(api, &leg.call, step).await {
            Plan::undo(&mut leg.state, undo);
            return Err(e);
        }
    }
    Ok(())
}

pub(super) async fn command(
    api: &Telnyx,
    call: &str,
    command: CallCommand,
) -> Result<(), ApiError> {
    api.parts
        .control
        .command(call, command)
        .await
        .map_err(|e| match e {
            CallError::NotFound(_) => ApiError::call_ended(),
            // Ended in the core, before the leg has heard so.
            CallError::InvalidState { status } if status.is_final() => ApiError::call_ended(),
            CallError::NotAnswered
            | CallError::InvalidState {
                status: CallStatus::Queued | CallStatus::Initiated | CallStatus::Ringing,
            } => ApiError::not_answered(),
            other => ApiError::unprocessable(other.to_string()),
        })
}
