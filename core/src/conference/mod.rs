//! Conferences of application calls, with Twilio's rules: a conference is created by its first
//! participant, starts once two are in and one of them has `start_on_enter` (until then each
//! hears its wait music), and ends when a participant with `end_on_exit` leaves or the last
//! one does; the others then leave it with their calls still up. Mixing is the media
//! engine's; this keeps the membership, the rules and the events.

mod announcements;
mod recording;

use super::CallKey;
use super::api::{Beep, CallCommand, CallError, EventKind, JoinSpec};
use super::api::{ConferenceSnapshot, Participant, ParticipantSnapshot};
use super::context::RoomContext;
use super::engine_events::MUSIC_PLAYBACK;
use crate::rows::{ConferenceRow, EventRow};
use announcements::Announced;
use serde_json::json;
use std::collections::HashMap;
use switchboard_media::conference::ConferenceId;
use switchboard_media::record::RecordFormat;
use switchboard_media::{Clip, MediaOp};

/// A call's place in a conference.
pub(super) struct Seat {
    name: String,
    sid: String,
    muted: bool,
    held: bool,
    start_on_enter: bool,
    end_on_exit: bool,
    beep: Beep,
    wait_music: Option<Clip>,
    joined_at: i64,
    /// The wait or hold music playing to it, whose end is not reported as a playback of the
    /// application's.
    music: Option<u64>,
    label: Option<String>,
    /// The call it is shown as (another node's, which a leg from there carries in).
    shown_as: Option<String>,
    /// The participant it coaches (by call SID, as shown), heard by that one alone.
    coaching: Option<String>,
}

impl Seat {
    /// The call SID the participant is known by: `call`'s own, or the visiting call's.
    fn shown<'a>(&'a self, call: &'a str) -> &'a str {
        self.shown_as.as_deref().unwrap_or(call)
    }

    /// The participant as its conference's events store it.
    fn participant(&self, call: &str) -> Participant {
        Participant {
            call: self.shown(call).to_owned(),
            muted: self.muted,
            held: self.held,
            start_on_enter: self.start_on_enter,
            end_on_exit: self.end_on_exit,
            label: self.label.clone(),
            coaching: self.coaching.clone(),
        }
    }
}

/// The conferences by name, and the numbers of the media engine's mixers. A room's members
/// are calls of the core's; each method is lent them with the rest of a [`RoomContext`].
#[derive(Default)]
pub(super) struct Rooms {
    by_name: HashMap<String, Conference>,
    next_media: u64,
}

pub(super) struct Conference {
    sid: String,
    created_at: i64,
    media: ConferenceId,
    members: Vec<CallKey>,
    started: bool,
    /// Record the mix from the start: the participant who asked, the format, and whether
    /// to trim silence.
    record: Option<(CallKey, RecordFormat, bool)>,
    /// Its own events so far: who joined and left, its start and end, stored under its SID
    /// (its status callbacks are made from them, so they survive a crash).
    events: u32,
    /// What plays into it now, by the media engine's number: who asked, and how.
    announcements: HashMap<u64, Announced>,
    next_announcement: u64,
}

impl Conference {
    /// Stores one of the conference's own events; returns its number.
    fn note(
        &mut self,
        cdr: &mut super::store_writes::Records,
        at: i64,
        kind: &str,
        detail: serde_json::Value,
    ) -> u32 {
        let number = self.events;
        self.events = self.events.saturating_add(1);
        cdr.event(EventRow {
            call_id: self.sid.clone(),
            seq: number,
            at,
            kind: kind.to_owned(),
            detail: detail.to_string(),
        });
        number
    }
}

impl Rooms {
    /// Rooms whose mixers are numbered after `base` (a shard's own range of the media
    /// engine's numbers).
    pub(super) fn numbered_from(base: u64) -> Self {
        Self {
            by_name: HashMap::new(),
            next_media: base,
        }
    }

    /// A command on the seat of `key` ([`CallCommand::is_a_seats`]).
    pub(super) fn handle_command(
        &mut self,
        cx: &mut RoomContext,
        key: CallKey,
        command: CallCommand,
    ) -> Result<(), CallError> {
        match command {
            CallCommand::Mute(muted) => self.mute(cx, key, muted),
            CallCommand::ConferenceLeave => self.leave(cx, key, "left"),
            CallCommand::Hold(music) => return self.hold(cx, key, Some(music)),
            CallCommand::Unhold => return self.hold(cx, key, None),
            CallCommand::ConferenceAnnounce(a) => return self.announce(cx, key, a),
            CallCommand::ConferenceStopAnnouncements(alone) => {
                return self.stop_announcements(cx, key, alone);
            }
            CallCommand::ConferenceAnnouncementFailed(alone) => {
                return self.announcement_failed(cx, key, alone);
            }
            CallCommand::ConferenceRecord(options) => return self.record_now(cx, key, options),
            CallCommand::ConferenceRecording(change) => {
                return self.change_recording(cx, key, change);
            }
            CallCommand::ConferenceCoach(coached) => return self.coach(cx, key, coached),
            other => unreachable!("not a seat's command: {other:?}"),
        }
        Ok(())
    }

    /// Whether `key` may join the room `spec` names: it must be answered, and a coach needs
    /// the one it coaches in the room first (Twilio's `coach`).
    pub(super) fn check_join(
        &self,
        cx: &RoomContext,
        key: CallKey,
        spec: &JoinSpec,
    ) -> Result<(), CallError> {
        if spec.name.is_empty() {
            return Err(CallError::BadArgument("a conference needs a name".into()));
        }
        if !cx.calls.get(&key).is_some_and(|c| c.answered()) {
            return Err(CallError::NotAnswered);
        }
        if let Some(coached) = &spec.coach {
            self.member_shown_as(cx, &spec.name, coached, key)?;
        }
        Ok(())
    }

    /// A number for a new mixer of the media engine's (a room's, a supervision's).
    pub(super) fn new_mixer(&mut self) -> ConferenceId {
        self.next_media += 1;
        ConferenceId(self.next_media)
    }

    /// `key` ([`Self::check_join`]ed, out of any other room and bridge by now) takes its
    /// seat in the room `spec` names, which opens if it is the first.
    pub(super) fn join(
        &mut self,
        cx: &mut RoomContext,
        key: CallKey,
        spec: JoinSpec,
    ) -> Result<(), CallError> {
        if !self.by_name.contains_key(&spec.name) {
            let opened = Conference {
                sid: (spec.sid.clone()).unwrap_or_else(|| crate::sid::new_sid("CF")),
                created_at: cx.wall,
                media: self.new_mixer(),
                members: Vec::new(),
                started: false,
                record: None,
                events: 0,
                announcements: HashMap::new(),
                next_announcement: 0,
            };
            save_conference(cx.records, cx.wall, &spec.name, &opened, "init", None);
            self.by_name.insert(spec.name.clone(), opened);
        }
        let conference = self.by_name.get_mut(&spec.name).expect("just made");
        conference.members.push(key);
        if conference.record.is_none() {
            conference.record = spec.record.map(|format| (key, format, spec.trim_silence));
        }
        let (sid, media_id) = (conference.sid.clone(), conference.media);
        let call = cx.calls.get_mut(&key).expect("checked");
        call.seat = Some(Seat {
            name: spec.name.clone(),
            sid: sid.clone(),
            muted: spec.muted,
            held: false,
            start_on_enter: spec.start_on_enter,
            end_on_exit: spec.end_on_exit,
            beep: spec.beep,
            joined_at: cx.wall,
            wait_music: spec.wait_music,
            music: None,
            label: spec.label,
            shown_as: spec.shown_as,
            coaching: None,
        });
        let participant = call
            .seat
            .as_ref()
            .expect("just seated")
            .participant(&call.record.id);
        let endpoint = call.own().side.endpoint;
        cx.media.conference_join(media_id, endpoint);
        cx.media.media(endpoint, MediaOp::Mute(spec.muted));
        let number = (self.by_name.get_mut(&spec.name).expect("joined")).note(
            cx.records,
            cx.wall,
            "participant-join",
            json!(participant),
        );
        cx.emit(
            key,
            EventKind::ConferenceJoined {
                conference: sid,
                name: spec.name.clone(),
                number,
            },
        );
        self.check_start(cx, &spec.name, key);
        if spec.beep.on_enter() {
            self.beep(cx, &spec.name);
        }
        if spec.coach.is_some() {
            self.coach(cx, key, spec.coach)?;
        }
        self.recoach(cx, &spec.name, key);
        Ok(())
    }

    /// The participant `key` is heard by the participant shown as `coached` alone (`None`:
    /// by everyone again). Both must be in the same conference.
    pub(super) fn coach(
        &mut self,
        cx: &mut RoomContext,
        key: CallKey,
        coached: Option<String>,
    ) -> Result<(), CallError> {
        let call = (cx.calls.get(&key)).ok_or_else(|| CallError::NotFound(String::new()))?;
        let seat = call.seat.as_ref().ok_or(CallError::NotInConference)?;
        let target = match &coached {
            Some(sid) => Some(self.member_shown_as(cx, &seat.name, sid, key)?),
            None => None,
        };
        let endpoint = call.own().side.endpoint;
        cx.media.conference_coach(endpoint, target);
        let seat = (cx.calls.get_mut(&key))
            .and_then(|c| c.seat.as_mut())
            .expect("checked");
        seat.coaching = coached;
        Ok(())
    }

    /// The endpoint of the participant of conference `name` shown as `sid`, other than
    /// `except`.
    fn member_shown_as(
        &self,
        cx: &RoomContext,
        name: &str,
        sid: &str,
        except: CallKey,
    ) -> Result<switchboard_media::EndpointId, CallError> {
        let members = self.by_name.get(name).map(|c| &c.members[..]);
        (members.unwrap_or_default().iter())
            .filter(|k| **k != except)
            .find_map(|k| {
                let call = cx.calls.get(k)?;
                let seat = call.seat.as_ref()?;
                (seat.shown(&call.record.id) == sid).then(|| call.own().side.endpoint)
            })
            .ok_or_else(|| {
                CallError::BadArgument(format!("{sid} is not a participant of the conference"))
            })
    }

    /// A participant who comes back finds its coaches coaching it again (the media forgot
    /// them when it left).
    fn recoach(&mut self, cx: &mut RoomContext, name: &str, newcomer: CallKey) {
        let Some(call) = cx.calls.get(&newcomer) else {
            return;
        };
        let (shown, target) = match &call.seat {
            Some(seat) => (
                seat.shown(&call.record.id).to_owned(),
                call.own().side.endpoint,
            ),
            None => return,
        };
        let members = self.by_name.get(name).map(|c| c.members.clone());
        for k in members.unwrap_or_default() {
            let Some(coach) = cx.calls.get(&k) else {
                continue;
            };
            if k != newcomer
                && coach.seat.as_ref().and_then(|s| s.coaching.as_deref()) == Some(&shown)
            {
                let endpoint = coach.own().side.endpoint;
                cx.media.conference_coach(endpoint, Some(target));
            }
        }
    }

    /// The leg seated here for another node's call `sid` (see [`JoinSpec::shown_as`]).
    pub(super) fn visiting_seat(&self, cx: &RoomContext, sid: &str) -> Option<CallKey> {
        let visiting = |c: &&CallKey| {
            (cx.calls.get(c))
                .and_then(|call| call.seat.as_ref())
                .is_some_and(|seat| seat.shown_as.as_deref() == Some(sid))
        };
        (self.by_name.values())
            .find_map(|c| c.members.iter().find(visiting))
            .copied()
    }

    /// Starts the conference if its rules now allow; otherwise the newcomer waits with music.
    fn check_start(&mut self, cx: &mut RoomContext, name: &str, newcomer: CallKey) {
        let Some(conference) = self.by_name.get(name) else {
            return;
        };
        if conference.started {
            return;
        }
        let starter = conference
            .members
            .iter()
            .any(|k| cx.calls[k].seat.as_ref().is_some_and(|s| s.start_on_enter));
        if conference.members.len() < 2 || !starter {
            let music = cx.calls[&newcomer]
                .seat
                .as_ref()
                .and_then(|s| s.wait_music.clone());
            self.play_music(cx, newcomer, music);
            return;
        }
        let newcomer_call = &cx.calls[&newcomer];
        let by = match &newcomer_call.seat {
            Some(seat) => seat.shown(&newcomer_call.record.id).to_owned(),
            None => newcomer_call.record.id.clone(),
        };
        let conference = self.by_name.get_mut(name).expect("checked");
        conference.started = true;
        conference.note(cx.records, cx.wall, "conference-start", json!({ "by": by }));
        let conference = &self.by_name[name];
        save_conference(cx.records, cx.wall, name, conference, "in-progress", None);
        let (sid, media_id, members, record) = (
            conference.sid.clone(),
            conference.media,
            conference.members.clone(),
            conference.record,
        );
        for k in members {
            let held = cx.calls[&k].seat.as_ref().is_some_and(|s| s.held);
            if !held {
                self.stop_music(cx, k);
            }
            cx.emit(
                k,
                EventKind::ConferenceStarted {
                    conference: sid.clone(),
                    by: by.clone(),
                },
            );
        }
        if let Some((by, format, trim_silence)) = record {
            self.record_mix(cx, by, &sid, media_id, format, trim_silence);
        }
    }

    /// Takes the call out of its conference, if it is in one; `reason` goes in its event.
    pub(super) fn leave(&mut self, cx: &mut RoomContext, key: CallKey, reason: &'static str) {
        let Some(call) = cx.calls.get_mut(&key) else {
            return;
        };
        let Some(seat) = call.seat.take() else {
            return;
        };
        let endpoint = call.own().side.endpoint;
        if !call.ended() {
            cx.media.conference_leave(endpoint);
            cx.media.media(endpoint, MediaOp::Mute(false));
            if seat.music.is_some() {
                cx.media.media(endpoint, MediaOp::StopPlayback);
            }
        }
        cx.emit(
            key,
            EventKind::ConferenceLeft {
                conference: seat.sid.clone(),
                reason,
            },
        );
        let Some(conference) = self.by_name.get_mut(&seat.name) else {
            return;
        };
        let participant = seat.participant(&cx.calls[&key].record.id);
        conference.note(cx.records, cx.wall, "participant-leave", json!(participant));
        conference.members.retain(|&k| k != key);
        let by = participant.call;
        let reason = if seat.end_on_exit {
            "participant-with-end-conference-on-exit-left"
        } else if self.by_name[&seat.name].members.is_empty() {
            "last-participant-left"
        } else {
            if seat.beep.on_exit() {
                self.beep(cx, &seat.name);
            }
            return;
        };
        self.end(cx, &seat.name, reason, Some(by.clone()));
        // The one whose leaving ended it learns that too (it is no member any more).
        cx.emit(
            key,
            EventKind::ConferenceEnded {
                conference: seat.sid,
                reason,
                ended_by: Some(by),
            },
        );
    }

    /// Ends a conference: everyone still in leaves it (their calls go on).
    pub(super) fn end(
        &mut self,
        cx: &mut RoomContext,
        name: &str,
        reason: &'static str,
        by: Option<String>,
    ) {
        let Some(mut conference) = self.by_name.remove(name) else {
            return;
        };
        save_conference(
            cx.records,
            cx.wall,
            name,
            &conference,
            "completed",
            Some((reason, by.clone())),
        );
        // Its own events: everyone still in leaves, then it ends.
        for k in conference.members.clone() {
            let Some(call) = cx.calls.get(&k) else {
                continue;
            };
            if let Some(seat) = &call.seat {
                let participant = seat.participant(&call.record.id);
                conference.note(cx.records, cx.wall, "participant-leave", json!(participant));
            }
        }
        let ended = json!({ "reason": reason, "ended_by": by });
        conference.note(cx.records, cx.wall, "conference-end", ended);
        // The conference is gone from the map, so these leave without ending it again; the
        // last one out of the mixer stops the recording of the mix. Then each learns why it
        // ended (leaves before the end, as Twilio reports them).
        for &k in &conference.members {
            if let Some(seat) = cx.calls.get_mut(&k).and_then(|c| c.seat.as_mut()) {
                seat.end_on_exit = false;
            }
            self.leave(cx, k, "ended");
        }
        for k in conference.members {
            cx.emit(
                k,
                EventKind::ConferenceEnded {
                    conference: conference.sid.clone(),
                    reason,
                    ended_by: by.clone(),
                },
            );
        }
    }

    pub(super) fn snapshots(&self, cx: &RoomContext) -> Vec<ConferenceSnapshot> {
        let mut out: Vec<ConferenceSnapshot> = self
            .by_name
            .iter()
            .map(|(name, c)| ConferenceSnapshot {
                sid: c.sid.clone(),
                name: name.clone(),
                started: c.started,
                created_at: c.created_at,
                recording: (self.room_recording(cx, &c.sid))
                    .and_then(|id| cx.recordings.sid(id).map(str::to_owned)),
                participants: c
                    .members
                    .iter()
                    .filter_map(|k| {
                        let call = cx.calls.get(k)?;
                        let seat = call.seat.as_ref()?;
                        Some(ParticipantSnapshot {
                            call: seat.shown(&call.record.id).to_owned(),
                            muted: seat.muted,
                            held: seat.held,
                            start_on_enter: seat.start_on_enter,
                            end_on_exit: seat.end_on_exit,
                            joined_at: seat.joined_at,
                            coaching: seat.coaching.clone(),
                        })
                    })
                    .collect(),
            })
            .collect();
        out.sort_by_key(|c| std::cmp::Reverse(c.created_at));
        out
    }

    pub(super) fn end_by_sid(&mut self, cx: &mut RoomContext, sid: &str) -> bool {
        let Some(name) = self
            .by_name
            .iter()
            .find(|(_, c)| c.sid == sid)
            .map(|(n, _)| n.clone())
        else {
            return false;
        };
        self.end(cx, &name, "conference-ended-via-api", None);
        true
    }

    /// Mutes or unmutes the party. In a conference the choice is remembered so that coming
    /// off hold keeps it; a party on hold stays muted until then.
    pub(super) fn mute(&mut self, cx: &mut RoomContext, key: CallKey, muted: bool) {
        let Some(call) = cx.calls.get_mut(&key) else {
            return;
        };
        let held = call.seat.as_mut().is_some_and(|seat| {
            seat.muted = muted;
            seat.held
        });
        if !held {
            cx.media
                .media(call.own().side.endpoint, MediaOp::Mute(muted));
        }
    }

    pub(super) fn hold(
        &mut self,
        cx: &mut RoomContext,
        key: CallKey,
        music: Option<Option<Clip>>,
    ) -> Result<(), CallError> {
        let call = cx.calls.get_mut(&key).ok_or(CallError::NotInConference)?;
        let endpoint = call.own().side.endpoint;
        let Some(seat) = call.seat.as_mut() else {
            return Err(CallError::NotInConference);
        };
        match music {
            Some(music) => {
                seat.held = true;
                cx.media.media(endpoint, MediaOp::Mute(true));
                self.play_music(cx, key, music);
            }
            None => {
                seat.held = false;
                let (muted, name) = (seat.muted, seat.name.clone());
                cx.media.media(endpoint, MediaOp::Mute(muted));
                if self.by_name.get(&name).is_some_and(|c| c.started) {
                    self.stop_music(cx, key);
                } else {
                    let wait = cx.calls[&key]
                        .seat
                        .as_ref()
                        .and_then(|s| s.wait_music.clone());
                    self.play_music(cx, key, wait);
                }
            }
        }
        Ok(())
    }

    /// Loops music (or silence, which hides the mix) to a participant.
    fn play_music(&mut self, cx: &mut RoomContext, key: CallKey, music: Option<Clip>) {
        let call = cx.calls.get_mut(&key).expect("a participant");
        call.next_playback += 1;
        let playback = call.next_playback | MUSIC_PLAYBACK;
        let clip = music.unwrap_or_else(|| Clip::from(vec![0i16; 160]));
        cx.media.media(
            call.own().side.endpoint,
            MediaOp::Play {
                playback,
                clip: clip.into(),
                loops: 0,
                barge_in: false,
            },
        );
        if let Some(seat) = call.seat.as_mut() {
            seat.music = Some(playback);
        }
    }

    fn stop_music(&mut self, cx: &mut RoomContext, key: CallKey) {
        let call = cx.calls.get_mut(&key).expect("a participant");
        if let Some(seat) = call.seat.as_mut()
            && seat.music.take().is_some()
        {
            cx.media
                .media(call.own().side.endpoint, MediaOp::StopPlayback);
        }
    }
}

/// Writes a conference's row as it opens, starts and ends.
fn save_conference(
    cdr: &mut super::store_writes::Records,
    wall: i64,
    name: &str,
    c: &Conference,
    status: &str,
    ended: Option<(&str, Option<String>)>,
) {
    let (reason_ended, ended_by) = match ended {
        Some((reason, by)) => (Some(reason.to_owned()), by),
        None => (None, None),
    };
    cdr.conference(ConferenceRow {
        sid: c.sid.clone(),
        name: name.to_owned(),
        status: status.to_owned(),
        created_at: c.created_at,
        updated_at: wall,
        reason_ended,
        ended_by,
    });
}
