//! What a core event means for a Call Control leg: the webhooks it becomes and what the leg
//! then does, decided from the leg's state alone. No runtime, no I/O: the leg's task applies
//! the [`Effect`]s in order (`super::apply`), and the tests below drive the translation with
//! events and look at what it asks for.

use super::{GatherRules, LegState, OnAnswer, Play, Queued};
use crate::call::{CallCommand, CallEvent, EventKind};
use serde_json::{Map, Value, json};
use switchboard_media::PlaybackEnd;

/// One thing a leg does because of an event, in the order the translation lists them.
#[derive(Debug)]
pub(in crate::providers::telnyx) enum Effect {
    /// A webhook of the call's: the leg's fields, and `extra`.
    Webhook {
        kind: String,
        extra: Map<String, Value>,
    },
    /// A conference's own webhook through the leg's URL: the leg's connection and `extra`,
    /// none of the call's fields.
    ConferenceWebhook {
        kind: String,
        extra: Map<String, Value>,
    },
    /// `conference.ended`, sent by whichever participant hears of the end first (every
    /// participant's leg hears it; the conference's webhook goes once).
    ConferenceEnded {
        conference: String,
        extra: Map<String, Value>,
    },
    /// What dial (or answer) asked for once the call is answered.
    RunOnAnswer(Box<OnAnswer>),
    /// The leg left its queue for `reason`: it is taken out of it, and `call.dequeued` says
    /// so.
    Dequeue {
        queued: Queued,
        reason: &'static str,
        at: i64,
    },
    /// A command to the leg's own call.
    Command(CallCommand),
    /// A saved recording that `record_start` asked to have transcribed, heard as `language`.
    Transcribe {
        recording: String,
        path: String,
        duration_ms: u64,
        language: Option<String>,
        engine: Option<crate::services::speech::EngineKind>,
    },
    /// A transfer's leg bridges with the leg it was placed from.
    BridgeTransferred(String),
    /// A `gather_using_*` plays its prompt again and gathers again (`rules` has the try
    /// taken); if that cannot be done, the gather ends with `call.gather.ended` and
    /// `otherwise`.
    RetryGather {
        rules: Box<GatherRules>,
        status: &'static str,
        otherwise: Map<String, Value>,
    },
    /// The call is over: the leg joins the ended ones, read for a while yet.
    Ended { at: i64 },
}

/// The effects of `event` on the leg whose state is `s`, which it updates.
pub(in crate::providers::telnyx) fn on_event(s: &mut LegState, event: &CallEvent) -> Vec<Effect> {
    let at = event.at;
    let webhook = |kind: &str, extra: Map<String, Value>| Effect::Webhook {
        kind: kind.to_owned(),
        extra,
    };
    match &event.kind {
        EventKind::Answered { .. } => vec![Effect::RunOnAnswer(Box::new(s.on_answer.clone()))],
        EventKind::Hangup { .. } => {
            s.ended_at = Some(at);
            let dequeue = s.queued.take().map(|queued| Effect::Dequeue {
                queued,
                reason: "hangup",
                at,
            });
            dequeue.into_iter().chain([Effect::Ended { at }]).collect()
        }
        EventKind::PlaybackStarted { .. } => match s.plays.front() {
            Some(Play::Speak { id }) => vec![webhook("call.speak.started", speak_fields(id))],
            Some(Play::Audio { url }) => {
                vec![webhook(
                    "call.playback.started",
                    playback_fields(url.as_deref()),
                )]
            }
            Some(Play::Beep) | None => vec![],
        },
        EventKind::PlaybackEnded { reason, .. } => {
            let status = match reason {
                PlaybackEnd::Finished => "completed",
                _ if s.ended_at.is_some() => "call_hangup",
                PlaybackEnd::Stopped | PlaybackEnd::BargeIn => "cancelled",
            };
            let mut extra = Map::new();
            extra.insert("status".into(), json!(status));
            let mut effects = match s.plays.pop_front() {
                Some(Play::Speak { id }) => {
                    extra.extend(speak_fields(&id));
                    vec![webhook("call.speak.ended", extra)]
                }
                Some(Play::Audio { url }) => {
                    extra.extend(playback_fields(url.as_deref()));
                    vec![webhook("call.playback.ended", extra)]
                }
                Some(Play::Beep) | None => vec![],
            };
            effects.extend(s.bridge_after_play.take().map(Effect::BridgeTransferred));
            effects
        }
        EventKind::RecordingSaved {
            recording,
            path,
            duration_ms,
            error,
            ..
        } => {
            let asked = s.transcribed.iter().position(|(r, ..)| r == recording);
            let Some((_, language, engine)) = asked.map(|i| s.transcribed.remove(i)) else {
                return vec![];
            };
            // A failed or empty recording has nothing to transcribe.
            if error.is_some() || *duration_ms == 0 {
                return vec![];
            }
            vec![Effect::Transcribe {
                recording: recording.clone(),
                path: path.clone(),
                duration_ms: *duration_ms,
                language,
                engine,
            }]
        }
        // The bridge to a room's home is the conference seat: its reports come from the
        // room's home (see `conference_visits`).
        EventKind::Bridged { .. } if s.visiting.is_some() => vec![],
        EventKind::Unbridged { .. } if s.visiting.is_some() => {
            s.visiting = None;
            vec![]
        }
        EventKind::Bridged { .. } => {
            // A bridge with its queue took it from the front.
            let dequeue = s.queued.take().map(|queued| Effect::Dequeue {
                queued,
                reason: "bridged",
                at,
            });
            let bridged = webhook("call.bridged", Map::new());
            dequeue.into_iter().chain([bridged]).collect()
        }
        EventKind::Unbridged { peer_ended: true }
            if !s.park_after_unbridge && s.ended_at.is_none() =>
        {
            vec![Effect::Command(CallCommand::Hangup)]
        }
        EventKind::Alarm { id } => {
            // Only the alarm of its current wait ends it (an earlier wait's may still ring).
            let current = s.queued.as_ref().is_some_and(|q| q.alarm == Some(*id));
            let queued = if current { s.queued.take() } else { None };
            let dequeue = queued.map(|queued| Effect::Dequeue {
                queued,
                reason: "timeout",
                at,
            });
            dequeue.into_iter().collect()
        }
        // A REFER from the party: Call Control has no webhook to ask the app with; refused at
        // once rather than after the core's wait.
        EventKind::ReferRequested { .. } => vec![Effect::Command(CallCommand::AnswerRefer(603))],
        EventKind::ConferenceJoined { conference, .. } => {
            let extra = conference_fields(conference);
            let created = std::mem::take(&mut s.creating_conference)
                .then(|| webhook("conference.created", extra.clone()));
            let joined = webhook("conference.participant.joined", extra);
            created.into_iter().chain([joined]).collect()
        }
        EventKind::ConferenceLeft { conference, .. } => {
            vec![webhook(
                "conference.participant.left",
                conference_fields(conference),
            )]
        }
        EventKind::ConferenceEnded {
            conference, reason, ..
        } => {
            let mut extra = conference_fields(conference);
            let reason = crate::providers::telnyx::events::end_reason(reason);
            extra.insert("reason".into(), json!(reason));
            vec![Effect::ConferenceEnded {
                conference: conference.clone(),
                extra,
            }]
        }
        // A conference's `play` or `speak`: the room's events carry the conference's fields
        // alone, a participant's its call's too.
        EventKind::AnnouncementStarted {
            conference,
            tag,
            alone,
        }
        | EventKind::AnnouncementEnded {
            conference,
            tag,
            alone,
            ..
        } => {
            let (what, url) = tag.split_once(' ').unwrap_or((tag.as_str(), ""));
            if !matches!(what, "playback" | "speak") {
                return vec![];
            }
            let ended = matches!(event.kind, EventKind::AnnouncementEnded { .. });
            let kind = format!(
                "conference.{}{what}.{}",
                if *alone { "participant." } else { "" },
                if ended { "ended" } else { "started" }
            );
            let mut extra = conference_fields(conference);
            if what == "playback" {
                extra.insert("media_url".into(), json!(url));
            }
            if *alone {
                vec![Effect::Webhook { kind, extra }]
            } else {
                vec![Effect::ConferenceWebhook { kind, extra }]
            }
        }
        // `refer`: started once the party takes it, then completed or failed as its last
        // NOTIFY says (a refused REFER fails with the refusal's code).
        EventKind::ReferAnswered { sip_code } if (200..300).contains(sip_code) => {
            vec![webhook("call.refer.started", Map::new())]
        }
        EventKind::ReferAnswered { sip_code } => {
            let mut extra = Map::new();
            extra.insert("sip_notify_response".into(), json!(sip_code));
            vec![webhook("call.refer.failed", extra)]
        }
        EventKind::ReferProgress {
            sip_code,
            last: true,
        } => {
            let mut extra = Map::new();
            if let Some(code) = sip_code {
                extra.insert("sip_notify_response".into(), json!(code));
            }
            let worked = sip_code.is_some_and(|c| (200..300).contains(&c));
            let kind = if worked {
                "call.refer.completed"
            } else {
                "call.refer.failed"
            };
            vec![webhook(kind, extra)]
        }
        EventKind::Dtmf { digit, .. } => {
            let mut extra = Map::new();
            extra.insert("digit".into(), json!(digit.to_string()));
            vec![webhook("call.dtmf.received", extra)]
        }
        EventKind::GatherEnded { digits, reason } => {
            let Some(mut rules) = s.gather.take() else {
                return vec![];
            };
            let status = match *reason {
                "hangup" => "call_hangup",
                "cancelled" => "cancelled",
                "timeout" if digits.is_empty() => "timeout",
                _ if digits.chars().count() >= rules.min_digits
                    && digits.chars().all(|d| rules.valid_digits.contains(d)) =>
                {
                    "valid"
                }
                _ => "invalid",
            };
            let mut extra = Map::new();
            extra.insert("digits".into(), json!(digits));
            extra.insert("status".into(), json!(status));
            if let Some(id) = &rules.gather_id {
                extra.insert("gather_id".into(), json!(id));
            }
            let retry = matches!(status, "invalid" | "timeout")
                && rules.tries_left > 1
                && rules.prompt.is_some();
            if retry {
                rules.tries_left -= 1;
                return vec![Effect::RetryGather {
                    rules: Box::new(rules),
                    status,
                    otherwise: extra,
                }];
            }
            vec![webhook("call.gather.ended", extra)]
        }
        _ => vec![],
    }
}

fn speak_fields(id: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("speak_id".into(), json!(id));
    m
}

pub(in crate::providers::telnyx) fn playback_fields(url: Option<&str>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("media_url".into(), json!(url));
    m.insert("media_name".into(), Value::Null);
    m.insert("overlay".into(), json!(false));
    m
}

/// What a `conference.*` webhook adds to a leg's fields: the conference's Telnyx id.
fn conference_fields(conference: &str) -> Map<String, Value> {
    let mut extra = Map::new();
    let id = crate::call::ids::sid_as_uuid(conference, "CF");
    extra.insert("conference_id".into(), json!(id));
    extra
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{CallStatus, GatherSpec, HangupBy};
    use std::time::Duration;
    use switchboard_media::{Part, Prompt};

    fn state() -> LegState {
        super::super::test_state("incoming")
    }

    fn event(at: i64, kind: EventKind) -> CallEvent {
        CallEvent {
            call: "CA1".into(),
            seq: 0,
            at,
            kind,
        }
    }

    fn hangup(at: i64) -> CallEvent {
        let kind = EventKind::Hangup {
            status: CallStatus::Completed,
            sip_code: None,
            by: HangupBy::Callee,
            cause: None,
            quality: None,
        };
        event(at, kind)
    }

    fn queued(alarm: Option<u64>) -> Queued {
        Queued::new("QU1", "support", 1_000, alarm)
    }

    /// The one webhook the effects hold: its kind and fields.
    fn only_webhook(effects: &[Effect]) -> (&str, &Map<String, Value>) {
        match effects {
            [Effect::Webhook { kind, extra }] => (kind, extra),
            other => panic!("expected one webhook, got {other:?}"),
        }
    }

    fn rules(prompt: bool, tries_left: u32) -> GatherRules {
        let clip = (Prompt::new(vec![Part::Silence(80)]), Play::Beep);
        GatherRules {
            min_digits: 2,
            valid_digits: "0123456789".into(),
            gather_id: Some("g1".into()),
            spec: GatherSpec {
                timeout: Duration::from_secs(5),
                first_timeout: None,
                total_timeout: None,
                finish_on_key: Some('#'),
                num_digits: None,
                after_playback: true,
            },
            prompt: prompt.then(|| clip.clone()),
            invalid: None,
            tries_left,
        }
    }

    fn gather_ended(digits: &str, reason: &'static str) -> CallEvent {
        let kind = EventKind::GatherEnded {
            digits: digits.into(),
            reason,
        };
        event(5, kind)
    }

    /// A hang-up takes a queued leg out of its queue at the hang-up's time, then ends it.
    #[test]
    fn hangup_dequeues_then_ends_at_the_events_time() {
        let mut s = state();
        s.queued = Some(queued(None));
        let effects = on_event(&mut s, &hangup(42));
        assert!(matches!(
            effects.as_slice(),
            [
                Effect::Dequeue {
                    reason: "hangup",
                    at: 42,
                    ..
                },
                Effect::Ended { at: 42 }
            ]
        ));
        assert_eq!(s.ended_at, Some(42));
        assert!(s.queued.is_none());
        // Not queued: it only ends.
        let mut s = state();
        assert!(matches!(
            on_event(&mut s, &hangup(7)).as_slice(),
            [Effect::Ended { at: 7 }]
        ));
    }

    /// A leg sitting in a room on another node is bridged with its visit: no `call.bridged`,
    /// and the bridge's end (the visit let go: the leg left the room) leaves it up, where an
    /// ordinary bridge's end would hang it up; then bridges are calls' again.
    #[test]
    fn a_visits_bridge_is_the_conference_seat() {
        let mut s = state();
        s.visiting = Some("CF1".into());
        let bridged = EventKind::Bridged { with: "CA2".into() };
        assert!(on_event(&mut s, &event(1, bridged.clone())).is_empty());
        let left = EventKind::Unbridged { peer_ended: true };
        assert!(on_event(&mut s, &event(2, left.clone())).is_empty());
        assert_eq!(s.visiting, None);
        let again = on_event(&mut s, &event(3, bridged));
        assert_eq!(only_webhook(&again).0, "call.bridged");
        assert!(matches!(
            on_event(&mut s, &event(4, left)).as_slice(),
            [Effect::Command(CallCommand::Hangup)]
        ));
    }

    /// A playback's events are named for what the app asked: `speak` by its id, audio by its
    /// URL; the beep of `record_start` is heard, not reported. The end pops the play.
    #[test]
    fn playbacks_are_reported_by_their_kind() {
        let mut s = state();
        s.plays.push_back(Play::Speak { id: "abc".into() });
        s.plays.push_back(Play::Beep);
        let started = on_event(
            &mut s,
            &event(1, EventKind::PlaybackStarted { playback: 1 }),
        );
        let (kind, extra) = only_webhook(&started);
        assert_eq!(
            (kind, &extra["speak_id"]),
            ("call.speak.started", &json!("abc"))
        );
        let end = EventKind::PlaybackEnded {
            playback: 1,
            reason: PlaybackEnd::BargeIn,
        };
        let ended = on_event(&mut s, &event(2, end));
        let (kind, extra) = only_webhook(&ended);
        assert_eq!(kind, "call.speak.ended");
        assert_eq!(extra["status"], json!("cancelled"));
        assert_eq!(s.plays.len(), 1);
        let beep = on_event(
            &mut s,
            &event(3, EventKind::PlaybackStarted { playback: 2 }),
        );
        assert!(beep.is_empty());
    }

    /// A playback cut by the hang-up ends `call_hangup`, and a transfer's audio that ends
    /// bridges the transfer after its webhook.
    #[test]
    fn playback_end_after_hangup_and_the_transfer_bridge() {
        let mut s = state();
        s.plays.push_back(Play::Audio {
            url: Some("http://a/b.wav".into()),
        });
        s.bridge_after_play = Some("CA0".into());
        s.ended_at = Some(1);
        let end = EventKind::PlaybackEnded {
            playback: 1,
            reason: PlaybackEnd::Stopped,
        };
        let effects = on_event(&mut s, &event(2, end));
        match effects.as_slice() {
            [
                Effect::Webhook { kind, extra },
                Effect::BridgeTransferred(to),
            ] => {
                assert_eq!(kind, "call.playback.ended");
                assert_eq!(extra["status"], json!("call_hangup"));
                assert_eq!(extra["media_url"], json!("http://a/b.wav"));
                assert_eq!(to, "CA0");
            }
            other => panic!("{other:?}"),
        }
        assert!(s.bridge_after_play.is_none());
    }

    /// A gather's digits are valid, invalid (too few, or not among the valid ones) or a
    /// timeout; an invalid one with tries left and a prompt is tried again, one try fewer.
    #[test]
    fn gather_status_and_retries() {
        let cases = [
            ("12", "finish-key", "valid"),
            ("1", "num-digits", "invalid"),
            ("1a", "finish-key", "invalid"),
            ("", "timeout", "timeout"),
            ("", "hangup", "call_hangup"),
        ];
        for (digits, reason, status) in cases {
            let mut s = state();
            s.gather = Some(rules(false, 3));
            let effects = on_event(&mut s, &gather_ended(digits, reason));
            let (kind, extra) = only_webhook(&effects);
            assert_eq!(kind, "call.gather.ended");
            assert_eq!(extra["status"], json!(status), "{digits:?} {reason}");
            assert_eq!(extra["gather_id"], json!("g1"));
        }
        let mut s = state();
        s.gather = Some(rules(true, 3));
        match on_event(&mut s, &gather_ended("1", "num-digits")).as_slice() {
            [
                Effect::RetryGather {
                    rules,
                    status: "invalid",
                    otherwise,
                },
            ] => {
                assert_eq!(rules.tries_left, 2);
                assert_eq!(otherwise["status"], json!("invalid"));
            }
            other => panic!("{other:?}"),
        }
        // The last try ends it.
        let mut s = state();
        s.gather = Some(rules(true, 1));
        let effects = on_event(&mut s, &gather_ended("", "timeout"));
        assert_eq!(only_webhook(&effects).1["status"], json!("timeout"));
        // No gather running: nothing.
        assert!(on_event(&mut state(), &gather_ended("1", "timeout")).is_empty());
    }

    /// The party it was bridged with hung up: the leg hangs up too, unless it parks after an
    /// unbridge or is over already.
    #[test]
    fn unbridge_by_the_peers_end() {
        let peer_gone = event(1, EventKind::Unbridged { peer_ended: true });
        let effects = on_event(&mut state(), &peer_gone);
        assert!(matches!(
            effects.as_slice(),
            [Effect::Command(CallCommand::Hangup)]
        ));
        let mut parks = state();
        parks.park_after_unbridge = true;
        assert!(on_event(&mut parks, &peer_gone).is_empty());
        // A dialed leg asked to park from the start (dial's `park_after_unbridge`).
        let on_answer = OnAnswer {
            park_after_unbridge: true,
            ..OnAnswer::default()
        };
        let mut dialed = LegState::new(state().context, String::new(), on_answer);
        assert!(on_event(&mut dialed, &peer_gone).is_empty());
        let moved = event(1, EventKind::Unbridged { peer_ended: false });
        assert!(on_event(&mut state(), &moved).is_empty());
    }

    /// Only the alarm of the current wait dequeues (`timeout`); a bridge out of the queue
    /// dequeues (`bridged`) before `call.bridged`.
    #[test]
    fn queue_alarms_and_bridges() {
        let mut s = state();
        s.queued = Some(queued(Some(9)));
        assert!(on_event(&mut s, &event(1, EventKind::Alarm { id: 8 })).is_empty());
        let effects = on_event(&mut s, &event(2, EventKind::Alarm { id: 9 }));
        assert!(matches!(
            effects.as_slice(),
            [Effect::Dequeue {
                reason: "timeout",
                at: 2,
                ..
            }]
        ));
        s.queued = Some(queued(None));
        let bridged = EventKind::Bridged { with: "CA2".into() };
        match on_event(&mut s, &event(3, bridged)).as_slice() {
            [
                Effect::Dequeue {
                    reason: "bridged", ..
                },
                Effect::Webhook { kind, .. },
            ] => assert_eq!(kind, "call.bridged"),
            other => panic!("{other:?}"),
        }
    }

    /// The leg that opened a conference reports its creation with its join, once.
    #[test]
    fn conference_created_with_the_first_join() {
        let mut s = state();
        s.creating_conference = true;
        let joined = || {
            let kind = EventKind::ConferenceJoined {
                conference: "CF0123456789abcdef0123456789abcdef".into(),
                name: "room".into(),
                number: 1,
            };
            event(1, kind)
        };
        let kinds = |effects: Vec<Effect>| -> Vec<String> {
            (effects.into_iter())
                .map(|e| match e {
                    Effect::Webhook { kind, .. } => kind,
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(
            kinds(on_event(&mut s, &joined())),
            ["conference.created", "conference.participant.joined"]
        );
        assert_eq!(
            kinds(on_event(&mut s, &joined())),
            ["conference.participant.joined"]
        );
    }

    /// A conference announcement heard by the room is the conference's webhook; one heard
    /// by one participant is that call's.
    #[test]
    fn announcements_are_the_rooms_or_a_participants() {
        let room = EventKind::AnnouncementStarted {
            conference: "CF1".into(),
            tag: "playback http://a/b.mp3".into(),
            alone: false,
        };
        match on_event(&mut state(), &event(1, room)).as_slice() {
            [Effect::ConferenceWebhook { kind, extra }] => {
                assert_eq!(kind, "conference.playback.started");
                assert_eq!(extra["media_url"], json!("http://a/b.mp3"));
            }
            other => panic!("{other:?}"),
        }
        let one = EventKind::AnnouncementEnded {
            conference: "CF1".into(),
            tag: "speak".into(),
            alone: true,
            stopped: false,
        };
        let effects = on_event(&mut state(), &event(2, one));
        assert_eq!(
            only_webhook(&effects).0,
            "conference.participant.speak.ended"
        );
        let other = EventKind::AnnouncementStarted {
            conference: "CF1".into(),
            tag: "beep".into(),
            alone: false,
        };
        assert!(on_event(&mut state(), &event(3, other)).is_empty());
    }

    /// `refer`: a 2xx answer starts it, a refusal fails it with its code, and the last NOTIFY
    /// completes or fails it.
    #[test]
    fn refer_outcomes() {
        let cases = [
            (
                EventKind::ReferAnswered { sip_code: 202 },
                "call.refer.started",
            ),
            (
                EventKind::ReferAnswered { sip_code: 603 },
                "call.refer.failed",
            ),
            (
                EventKind::ReferProgress {
                    sip_code: Some(200),
                    last: true,
                },
                "call.refer.completed",
            ),
            (
                EventKind::ReferProgress {
                    sip_code: Some(486),
                    last: true,
                },
                "call.refer.failed",
            ),
        ];
        for (kind, expected) in cases {
            let effects = on_event(&mut state(), &event(1, kind));
            assert_eq!(only_webhook(&effects).0, expected);
        }
        let more = EventKind::ReferProgress {
            sip_code: Some(180),
            last: false,
        };
        assert!(on_event(&mut state(), &event(1, more)).is_empty());
        let asked = EventKind::ReferRequested {
            target: "sip:x@y".into(),
        };
        assert!(matches!(
            on_event(&mut state(), &event(1, asked)).as_slice(),
            [Effect::Command(CallCommand::AnswerRefer(603))]
        ));
    }

    /// A recording `record_start` asked to transcribe is transcribed once saved, in the
    /// language asked; a failed or empty one is not, and is forgotten either way.
    #[test]
    fn saved_recordings_to_transcribe() {
        let saved = |recording: &str, duration_ms, error: Option<&str>| {
            let kind = EventKind::RecordingSaved {
                recording: recording.into(),
                path: "/r.wav".into(),
                duration_ms,
                channels: 1,
                size_bytes: 100,
                error: error.map(str::to_owned),
            };
            event(1, kind)
        };
        let mut s = state();
        let http = Some(crate::services::speech::EngineKind::Http);
        s.transcribed.push(("RE1".into(), Some("es".into()), http));
        s.transcribed.push(("RE2".into(), None, None));
        assert!(on_event(&mut s, &saved("RE9", 1000, None)).is_empty());
        match on_event(&mut s, &saved("RE1", 1000, None)).as_slice() {
            [
                Effect::Transcribe {
                    recording,
                    language,
                    duration_ms: 1000,
                    engine,
                    ..
                },
            ] => {
                let heard = (recording.as_str(), language.as_deref(), *engine);
                assert_eq!(heard, ("RE1", Some("es"), http));
            }
            other => panic!("{other:?}"),
        }
        assert!(on_event(&mut s, &saved("RE2", 1000, Some("disk full"))).is_empty());
        assert!(s.transcribed.is_empty());
    }
}
