//! What an app's action asks of its leg, decided from the action's parameters and the leg's
//! state alone: the state it changes and the commands its call is given, in order, with
//! what is taken back when the call refuses one. No runtime, no I/O: the leg's task carries
//! a [`Plan`] out (`actions::carry_out`), and the tests below read plans. Actions that reach
//! beyond the leg (placing a call, a stream, a recording's subscription) are not planned
//! here.

use super::{GatherRules, LegState, PLAYS, Play};
use crate::call::{CallCommand, GatherSpec, Rejection};
use crate::providers::telnyx::errors::ApiError;
use crate::providers::telnyx::params::Params;
use std::time::Duration;
use switchboard_media::Prompt;

/// `send_dtmf` digits at most.
const MAX_DIGITS: usize = 128;
/// `send_sip_info`'s body and content type at most (an INFO fits a UDP datagram).
const MAX_INFO_BODY: usize = 1000;
const MAX_CONTENT_TYPE: usize = 128;

/// Commands for the leg's call, in order; the first the call refuses ends the plan, and
/// what it names is taken back.
#[derive(Debug, Default)]
pub(in crate::providers::telnyx) struct Plan {
    pub(in crate::providers::telnyx) steps: Vec<(CallCommand, Undo)>,
}

/// What the leg takes back when a step's command is refused.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(in crate::providers::telnyx) struct Undo {
    /// The play queued for the step (its events would never come).
    pub(in crate::providers::telnyx) play: bool,
    /// The gather the plan set up.
    pub(in crate::providers::telnyx) gather: bool,
    /// The hang-up cause a reject set.
    pub(in crate::providers::telnyx) hangup_cause: bool,
}

impl Plan {
    fn one(command: CallCommand) -> Self {
        Self {
            steps: vec![(command, Undo::default())],
        }
    }

    /// Takes back what a refused step named.
    pub(in crate::providers::telnyx) fn undo(s: &mut LegState, undo: Undo) {
        if undo.play {
            s.plays.pop_back();
        }
        if undo.gather {
            s.gather = None;
        }
        if undo.hangup_cause {
            s.context.hangup_cause = None;
        }
    }
}

/// Audio to play, and what its events are named for.
pub(in crate::providers::telnyx) type Clip = (Prompt, Play);

/// The plan of `action`, when it is one the leg carries out alone; `None` for the others.
/// `play` is the audio a `speak` or `playback_start` prepared (with its loops), `gather`
/// the prompts of a `gather_using_*`.
pub(in crate::providers::telnyx) fn plan(
    s: &mut LegState,
    action: &str,
    p: &Params,
    play: Option<(Prompt, u32, Play)>,
    gather: Option<(Clip, Option<Clip>)>,
) -> Result<Option<Plan>, ApiError> {
    let plan = match action {
        "hangup" => Plan::one(CallCommand::HangupWith(p.custom_headers()?)),
        "reject" => reject(s, p)?,
        "speak" | "playback_start" => {
            let (clip, loops, kind) = play.ok_or_else(|| ApiError::missing("payload"))?;
            play_plan(s, clip, loops, kind)?
        }
        "playback_stop" => Plan::one(CallCommand::StopPlayback),
        "send_sip_info" => Plan::one(sip_info(p)?),
        "refer" => Plan::one(refer(p)?),
        "switch_supervisor_role" => {
            p.required("role")?;
            let role = p.supervisor_role("role", "barge")?;
            Plan::one(CallCommand::SupervisorRole(role))
        }
        "send_dtmf" => {
            let digits = p.required("digits")?;
            if digits.len() > MAX_DIGITS
                || !digits.chars().all(|c| "0123456789ABCDabcd*#wW".contains(c))
            {
                return Err(ApiError::invalid(
                    "digits",
                    format!("'{digits}' must be at most {MAX_DIGITS} of 0-9, A-D, *, #, w, W."),
                ));
            }
            p.int("duration_millis", 100..=500)?;
            Plan::one(CallCommand::SendDigits(digits.to_owned()))
        }
        "gather" => gather_plan(s, p, None, None)?,
        "gather_using_speak" | "gather_using_audio" => {
            let (prompt, invalid) = gather.ok_or_else(|| ApiError::missing("payload"))?;
            gather_plan(s, p, Some(prompt), invalid)?
        }
        "gather_stop" => Plan::one(CallCommand::GatherStop),
        "suppression_start" | "suppression_stop" => {
            let (inbound, outbound) = if action == "suppression_stop" {
                (false, false)
            } else {
                // The local suppressor (RNNoise) is a denoiser: Telnyx's `Denoiser` (once
                // `A`) is what runs; the other engines, and their settings, are not served.
                if p.has("noise_suppression_engine") {
                    p.choice("noise_suppression_engine", &["Denoiser", "A"], "Denoiser")?;
                }
                if p.object("noise_suppression_engine_config")?.is_some() {
                    return Err(ApiError::invalid(
                        "noise_suppression_engine_config",
                        "The Denoiser engine takes no settings.".into(),
                    ));
                }
                match p.choice("direction", &["inbound", "outbound", "both"], "inbound")? {
                    "outbound" => (false, true),
                    "both" => (true, true),
                    _ => (true, false),
                }
            };
            Plan::one(CallCommand::Suppress { inbound, outbound })
        }
        _ => return Ok(None),
    };
    Ok(Some(plan))
}

/// Plays `clip` `loops` times (0: until stopped): queued for its events' names.
pub(in crate::providers::telnyx) fn play_plan(
    s: &mut LegState,
    clip: Prompt,
    loops: u32,
    kind: Play,
) -> Result<Plan, ApiError> {
    if s.plays.len() >= PLAYS {
        return Err(ApiError::unprocessable(
            "too many playbacks are waiting to start".into(),
        ));
    }
    s.plays.push_back(kind);
    let play = CallCommand::Play {
        clip,
        loops,
        barge_in: false,
    };
    let undo = Undo {
        play: true,
        ..Undo::default()
    };
    Ok(Plan {
        steps: vec![(play, undo)],
    })
}

/// A `gather_using_*` prompt again, after a try that timed out or was invalid (after the
/// invalid-input prompt, for invalid input): `rules` has the try taken.
pub(in crate::providers::telnyx) fn gather_again(
    s: &mut LegState,
    rules: GatherRules,
    status: &str,
) -> Option<Plan> {
    let prompt = rules.prompt.clone()?;
    if s.ended_at.is_some() {
        return None;
    }
    let invalid = rules.invalid.clone().filter(|_| status == "invalid");
    let spec = rules.spec.clone();
    s.gather = Some(rules);
    gathering(s, invalid.into_iter().chain([prompt]), spec).ok()
}

/// Plays `prompts` then gathers as `spec` says; a refused step takes the gather back.
fn gathering(
    s: &mut LegState,
    prompts: impl IntoIterator<Item = Clip>,
    spec: GatherSpec,
) -> Result<Plan, ApiError> {
    let mut plan = Plan::default();
    for (clip, kind) in prompts {
        match play_plan(s, clip, 1, kind) {
            Ok(mut played) => {
                for (step, undo) in &mut played.steps {
                    // A digit stops the prompt, as Telnyx's `gather_using_*` document.
                    if let CallCommand::Play { barge_in, .. } = step {
                        *barge_in = true;
                    }
                    undo.gather = true;
                }
                plan.steps.append(&mut played.steps);
            }
            Err(e) => {
                // Nothing was sent: the plays this plan queued go, and its gather.
                let queued = plan.steps.len();
                s.plays.truncate(s.plays.len().saturating_sub(queued));
                s.gather = None;
                return Err(e);
            }
        }
    }
    let undo = Undo {
        gather: true,
        ..Undo::default()
    };
    plan.steps.push((CallCommand::Gather(spec), undo));
    Ok(plan)
}

fn reject(s: &mut LegState, p: &Params) -> Result<Plan, ApiError> {
    let why = match p.required("cause")? {
        "CALL_REJECTED" => Rejection::Rejected,
        "USER_BUSY" => Rejection::Busy,
        "NOT_FOUND" => Rejection::NotFound,
        "TEMPORARILY_UNAVAILABLE" => Rejection::Unavailable,
        other => {
            return Err(ApiError::invalid(
                "cause",
                format!(
                    "'{other}' is not one of CALL_REJECTED, USER_BUSY, NOT_FOUND, \
                     TEMPORARILY_UNAVAILABLE."
                ),
            ));
        }
    };
    if s.context.direction != "incoming" {
        return Err(ApiError::unprocessable(
            "Only an incoming call can be rejected; hang up this one.".into(),
        ));
    }
    // The app declined it, whatever the code the caller hears.
    let cause = match why {
        Rejection::Busy => "user_busy",
        Rejection::NotFound => "not_found",
        Rejection::Rejected | Rejection::Unavailable => "call_rejected",
    };
    s.context.hangup_cause = Some(cause.into());
    let undo = Undo {
        hangup_cause: true,
        ..Undo::default()
    };
    Ok(Plan {
        steps: vec![(CallCommand::Reject(why), undo)],
    })
}

fn sip_info(p: &Params) -> Result<CallCommand, ApiError> {
    let content_type = p.required("content_type")?;
    // A media type (`type/subtype`, parameters after it): nothing that would end the header
    // or start another.
    let token = |s: Option<&str>| {
        s.is_some_and(|s| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
        })
    };
    let valid = content_type.len() <= MAX_CONTENT_TYPE
        && content_type.split(';').next().is_some_and(|t| {
            let mut parts = t.trim().split('/');
            token(parts.next()) && token(parts.next()) && parts.next().is_none()
        })
        && (content_type.bytes()).all(|b| b.is_ascii_graphic() || b == b' ');
    if !valid {
        return Err(ApiError::invalid(
            "content_type",
            format!("'{content_type}' is not a media type."),
        ));
    }
    let body = p.required("body")?;
    if body.len() > MAX_INFO_BODY {
        return Err(ApiError::out_of_range(
            "body",
            format!("'body' is longer than {MAX_INFO_BODY} bytes."),
        ));
    }
    Ok(CallCommand::SendInfo {
        content_type: content_type.to_owned(),
        body: bytes::Bytes::copy_from_slice(body.as_bytes()),
    })
}

fn refer(p: &Params) -> Result<CallCommand, ApiError> {
    // A REFER challenged by the caller is not sent again with credentials here.
    for refused in ["sip_auth_username", "sip_auth_password"] {
        if p.has(refused) {
            return Err(ApiError::invalid(
                refused,
                format!("'{refused}' is not served here: a challenged REFER fails."),
            ));
        }
    }
    let address = p.required("sip_address")?;
    Ok(CallCommand::Refer(with_uri_headers(
        address,
        &p.all_headers()?,
    )))
}

/// Collects digits (`gather`, and after its prompt `gather_using_*`): `call.dtmf.received`
/// for each, `call.gather.ended` once done. A prompt is replayed after no input or invalid
/// input (after the `invalid` one) up to `maximum_tries` times.
fn gather_plan(
    s: &mut LegState,
    p: &Params,
    prompt: Option<Clip>,
    invalid: Option<Clip>,
) -> Result<Plan, ApiError> {
    let min = p.int("minimum_digits", 1..=128)?.unwrap_or(1) as usize;
    let max = p.int("maximum_digits", 1..=128)?.unwrap_or(128) as usize;
    if min > max {
        return Err(ApiError::out_of_range(
            "minimum_digits",
            "'minimum_digits' is above 'maximum_digits'.".into(),
        ));
    }
    let inter_digit = p
        .int("inter_digit_timeout_millis", 1..=120_000)?
        .unwrap_or(5000);
    let terminating = match p.str("terminating_digit")? {
        None => Some('#'),
        Some("") => None,
        Some(d) if d.len() == 1 && "0123456789*#".contains(d) => d.chars().next(),
        Some(d) => {
            return Err(ApiError::invalid(
                "terminating_digit",
                format!("'{d}' is not one of 0-9, *, #."),
            ));
        }
    };
    let valid = p.short("valid_digits", 16)?.unwrap_or("0123456789#*");
    if !valid.chars().all(|c| "0123456789ABCD*#".contains(c)) {
        return Err(ApiError::invalid(
            "valid_digits",
            format!("'{valid}' must be made of 0-9, A-D, *, #."),
        ));
    }
    let tries = p.int("maximum_tries", 1..=10)?.unwrap_or(3) as u32;
    let initial = p
        .int("initial_timeout_millis", 1..=600_000)?
        .unwrap_or(5000);
    let total = p.int("timeout_millis", 1..=3_600_000)?.unwrap_or(60_000);
    let spec = GatherSpec {
        timeout: Duration::from_millis(inter_digit as u64),
        first_timeout: Some(Duration::from_millis(initial as u64)),
        total_timeout: Some(Duration::from_millis(total as u64)),
        finish_on_key: terminating,
        num_digits: Some(max),
        after_playback: true,
    };
    s.gather = Some(GatherRules {
        min_digits: min,
        valid_digits: valid.to_owned(),
        gather_id: p.short("gather_id", 256)?.map(str::to_owned),
        spec: spec.clone(),
        prompt: prompt.clone(),
        invalid,
        tries_left: tries,
    });
    gathering(s, prompt, spec)
}

/// `uri` with `headers` as its URI headers (RFC 3261 §19.1.1), which the referee puts on the
/// INVITE the REFER asks for (Telnyx's `custom_headers` and `sip_headers` on `refer`). Written
/// by hand: escaping for SIP's `hnv-unreserved` set is not what URL crates escape for.
fn with_uri_headers(uri: &str, headers: &[(String, String)]) -> String {
    fn escape(out: &mut String, s: &str) {
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.!~*'()[]/?:+$".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    let mut out = uri.to_owned();
    for (i, (name, value)) in headers.iter().enumerate() {
        out.push(if i == 0 && !uri.contains('?') {
            '?'
        } else {
            '&'
        });
        escape(&mut out, name);
        out.push('=');
        escape(&mut out, value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_media::Part;

    use super::super::test_state as state;

    fn params(json: &str) -> Params {
        Params::parse(json.as_bytes()).expect("valid JSON")
    }

    fn planned(s: &mut LegState, action: &str, json: &str) -> Result<Plan, ApiError> {
        Ok(plan(s, action, &params(json), None, None)?.expect("planned here"))
    }

    fn clip(kind: Play) -> Clip {
        (Prompt::new(vec![Part::Silence(80)]), kind)
    }

    fn speak(id: &str) -> Play {
        Play::Speak { id: id.into() }
    }

    /// Noise suppression runs the local denoiser: Telnyx's `Denoiser` engine; another engine
    /// or engine settings are refused, pointing at them.
    #[test]
    fn suppression_runs_the_denoiser_and_refuses_other_engines() {
        let mut s = state("incoming");
        for json in [
            r#"{"direction":"both"}"#,
            r#"{"noise_suppression_engine":"Denoiser"}"#,
        ] {
            let plan = planned(&mut s, "suppression_start", json).unwrap();
            assert!(matches!(
                plan.steps.as_slice(),
                [(CallCommand::Suppress { inbound: true, .. }, _)]
            ));
        }
        for (json, field) in [
            (
                r#"{"noise_suppression_engine":"Krisp"}"#,
                "/noise_suppression_engine",
            ),
            (
                r#"{"noise_suppression_engine_config":{"attenuation_limit":50}}"#,
                "/noise_suppression_engine_config",
            ),
        ] {
            let refused = planned(&mut s, "suppression_start", json).unwrap_err();
            assert_eq!(refused.pointer.as_deref(), Some(field), "{json}");
        }
    }

    /// A reject names its cause for the hang-up webhook before the call hears it, and takes
    /// it back when the call refuses; only an incoming call is rejected.
    #[test]
    fn reject_sets_the_cause_it_takes_back() {
        let mut s = state("incoming");
        let plan = planned(&mut s, "reject", r#"{"cause":"USER_BUSY"}"#).unwrap();
        match plan.steps.as_slice() {
            [(CallCommand::Reject(Rejection::Busy), undo)] => {
                assert!(undo.hangup_cause);
                assert_eq!(s.context.hangup_cause.as_deref(), Some("user_busy"));
                Plan::undo(&mut s, *undo);
                assert_eq!(s.context.hangup_cause, None);
            }
            other => panic!("{other:?}"),
        }
        let bad = planned(&mut s, "reject", r#"{"cause":"MAYBE"}"#).unwrap_err();
        assert_eq!(bad.pointer.as_deref(), Some("/cause"));
        let dialed = planned(&mut state("outgoing"), "reject", r#"{"cause":"USER_BUSY"}"#);
        assert_eq!(
            dialed.unwrap_err().status,
            axum::http::StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    /// A gather checks its bounds, keeps its rules for the digits' verdict, and with a prompt
    /// plays it first; a refused step takes the gather back (and the prompt's play).
    #[test]
    fn gather_rules_and_prompt() {
        let mut s = state("incoming");
        let bad = planned(
            &mut s,
            "gather",
            r#"{"minimum_digits":5,"maximum_digits":2}"#,
        );
        assert_eq!(bad.unwrap_err().pointer.as_deref(), Some("/minimum_digits"));
        assert!(s.gather.is_none());
        let json = r#"{"minimum_digits":2,"maximum_digits":4,"terminating_digit":"*","valid_digits":"123","gather_id":"g","maximum_tries":2}"#;
        let prompt = Some((clip(speak("p")), None));
        let plan = plan(&mut s, "gather_using_speak", &params(json), None, prompt)
            .unwrap()
            .unwrap();
        match plan.steps.as_slice() {
            [
                (CallCommand::Play { barge_in, .. }, play_undo),
                (CallCommand::Gather(spec), gather_undo),
            ] => {
                assert!(barge_in, "a digit stops the prompt");
                assert_eq!(spec.finish_on_key, Some('*'));
                assert_eq!(spec.num_digits, Some(4));
                assert!(play_undo.play && play_undo.gather);
                assert!(!gather_undo.play && gather_undo.gather);
            }
            other => panic!("{other:?}"),
        }
        let rules = s.gather.as_ref().unwrap();
        assert_eq!((rules.min_digits, rules.tries_left), (2, 2));
        assert_eq!(rules.valid_digits, "123");
        assert_eq!(s.plays.len(), 1);
        Plan::undo(
            &mut s,
            Undo {
                play: true,
                gather: true,
                hangup_cause: false,
            },
        );
        assert!(s.gather.is_none() && s.plays.is_empty());
        let bad_key = planned(&mut s, "gather", r#"{"terminating_digit":"x"}"#);
        assert_eq!(
            bad_key.unwrap_err().pointer.as_deref(),
            Some("/terminating_digit")
        );
    }

    /// A prompt replayed after invalid input plays the invalid-input prompt first; after a
    /// timeout only the prompt; none once the call has ended.
    #[test]
    fn gather_again_after_invalid_input() {
        let rules = GatherRules {
            min_digits: 1,
            valid_digits: "1".into(),
            gather_id: None,
            spec: GatherSpec {
                timeout: Duration::from_secs(5),
                first_timeout: None,
                total_timeout: None,
                finish_on_key: None,
                num_digits: Some(1),
                after_playback: true,
            },
            prompt: Some(clip(speak("prompt"))),
            invalid: Some(clip(speak("invalid"))),
            tries_left: 1,
        };
        let mut s = state("incoming");
        let plan = gather_again(&mut s, rules.clone(), "invalid").unwrap();
        assert_eq!(plan.steps.len(), 3);
        let ids: Vec<_> = (s.plays.iter())
            .map(|p| match p {
                Play::Speak { id } => id.as_str(),
                _ => "",
            })
            .collect();
        assert_eq!(ids, ["invalid", "prompt"]);
        let mut s = state("incoming");
        assert_eq!(
            gather_again(&mut s, rules.clone(), "timeout")
                .unwrap()
                .steps
                .len(),
            2
        );
        let mut s = state("incoming");
        s.ended_at = Some(1);
        assert!(gather_again(&mut s, rules, "timeout").is_none());
    }

    /// The plays waiting for their start are bounded.
    #[test]
    fn plays_waiting_are_bounded() {
        let mut s = state("incoming");
        for i in 0..PLAYS {
            let (clip, kind) = clip(speak(&i.to_string()));
            play_plan(&mut s, clip, 1, kind).unwrap();
        }
        let (clip, kind) = clip(speak("one too many"));
        assert!(play_plan(&mut s, clip, 1, kind).is_err());
        assert_eq!(s.plays.len(), PLAYS);
    }

    /// DTMF, SIP INFO and REFER are checked before anything is sent.
    #[test]
    fn digits_info_and_refer_are_checked() {
        let mut s = state("incoming");
        assert!(matches!(
            planned(&mut s, "send_dtmf", r#"{"digits":"12#w"}"#).unwrap().steps.as_slice(),
            [(CallCommand::SendDigits(d), _)] if d == "12#w"
        ));
        let bad = planned(&mut s, "send_dtmf", r#"{"digits":"12x"}"#).unwrap_err();
        assert_eq!(bad.pointer.as_deref(), Some("/digits"));
        let info = r#"{"content_type":"application/json","body":"{}"}"#;
        assert!(matches!(
            planned(&mut s, "send_sip_info", info)
                .unwrap()
                .steps
                .as_slice(),
            [(CallCommand::SendInfo { .. }, _)]
        ));
        let injected = r#"{"content_type":"text/plain\r\nX-Evil: 1","body":"x"}"#;
        let bad = planned(&mut s, "send_sip_info", injected).unwrap_err();
        assert_eq!(bad.pointer.as_deref(), Some("/content_type"));
        let refer = r#"{"sip_address":"sip:agent@pbx.example.com","custom_headers":[{"name":"X-Queue","value":"a b"}]}"#;
        match planned(&mut s, "refer", refer).unwrap().steps.as_slice() {
            [(CallCommand::Refer(to), _)] => {
                assert_eq!(to, "sip:agent@pbx.example.com?X-Queue=a%20b");
            }
            other => panic!("{other:?}"),
        }
        let challenged = r#"{"sip_address":"sip:a@b","sip_auth_username":"u"}"#;
        assert!(planned(&mut s, "refer", challenged).is_err());
        // An action that reaches beyond the leg is not planned here.
        assert!(
            plan(&mut s, "transfer", &params("{}"), None, None)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn headers_ride_in_the_refer_to_uri_escaped() {
        let headers = [
            ("X-Queue".to_owned(), "sales & support".to_owned()),
            ("User-to-User".to_owned(), "ab=cd;encoding=hex".to_owned()),
        ];
        assert_eq!(
            with_uri_headers("sip:agent@pbx.example.com", &headers),
            "sip:agent@pbx.example.com?X-Queue=sales%20%26%20support&User-to-User=ab%3Dcd%3Bencoding%3Dhex"
        );
        assert_eq!(
            with_uri_headers("sip:a@b?X-A=1", &headers[..1]),
            "sip:a@b?X-A=1&X-Queue=sales%20%26%20support"
        );
    }
}
