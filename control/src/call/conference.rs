//! Conferences of application calls, with Twilio's rules: a conference is created by its first
//! participant, starts once two are in and one of them has `start_on_enter` (until then each
//! hears its wait music), and ends when a participant with `end_on_exit` leaves or the last
//! one does; the others then leave it with their calls still up. Mixing is the media
//! engine's; this keeps the membership, the rules and the events.

use super::api::RoomAnnouncement;
use super::api::{Beep, CallError, EventKind, JoinSpec, RecordChange, RecordOptions};
use super::api::{ConferenceSnapshot, Participant, ParticipantSnapshot};
use super::engine_events::MUSIC_PLAYBACK;
use super::recording::RecordingSource;
use super::{CallCore, CallKey};
use crate::infra::store::{ConferenceRow, EventRow};
use serde_json::json;
use std::collections::HashMap;
use switchboard_media::conference::{Announcement, ConferenceId, MAX_ANNOUNCEMENTS};
use switchboard_media::record::{Channels, RecordFormat};
use switchboard_media::{Clip, MediaOp, TapTracks, tone};

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

/// An announcement playing into a conference, for its events.
struct Announced {
    by: CallKey,
    tag: String,
    alone: bool,
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

impl CallCore {
    pub(super) fn conference_join(
        &mut self,
        key: CallKey,
        spec: JoinSpec,
    ) -> Result<(), CallError> {
        if spec.name.is_empty() {
            return Err(CallError::BadArgument("a conference needs a name".into()));
        }
        if !self.calls.get(&key).is_some_and(|c| c.answered()) {
            return Err(CallError::NotAnswered);
        }
        // A coach needs the one it coaches in the room first (Twilio's `coach`).
        if let Some(coached) = &spec.coach {
            self.member_shown_as(&spec.name, coached, key)?;
        }
        self.conference_leave(key, "moved");
        self.unbridge(key);
        if !self.conferences.contains_key(&spec.name) {
            self.next_conference += 1;
            let opened = Conference {
                sid: (spec.sid.clone()).unwrap_or_else(|| crate::infra::sid::new_sid("CF")),
                created_at: self.wall,
                media: ConferenceId(self.next_conference),
                members: Vec::new(),
                started: false,
                record: None,
                events: 0,
                announcements: HashMap::new(),
                next_announcement: 0,
            };
            Self::save_conference(&mut self.cdr, self.wall, &spec.name, &opened, "init", None);
            self.conferences.insert(spec.name.clone(), opened);
        }
        let conference = self.conferences.get_mut(&spec.name).expect("just made");
        conference.members.push(key);
        if conference.record.is_none() {
            conference.record = spec.record.map(|format| (key, format, spec.trim_silence));
        }
        let (sid, media_id) = (conference.sid.clone(), conference.media);
        let call = self.calls.get_mut(&key).expect("checked");
        call.seat = Some(Seat {
            name: spec.name.clone(),
            sid: sid.clone(),
            muted: spec.muted,
            held: false,
            start_on_enter: spec.start_on_enter,
            end_on_exit: spec.end_on_exit,
            beep: spec.beep,
            joined_at: self.wall,
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
        self.media.conference_join(media_id, endpoint);
        self.media.media(endpoint, MediaOp::Mute(spec.muted));
        let number = (self.conferences.get_mut(&spec.name).expect("joined")).note(
            &mut self.cdr,
            self.wall,
            "participant-join",
            json!(participant),
        );
        self.emit(
            key,
            EventKind::ConferenceJoined {
                conference: sid,
                name: spec.name.clone(),
                number,
            },
        );
        self.conference_check_start(&spec.name, key);
        if spec.beep.on_enter() {
            self.beep(&spec.name);
        }
        if spec.coach.is_some() {
            self.conference_coach(key, spec.coach)?;
        }
        self.recoach(&spec.name, key);
        Ok(())
    }

    /// The participant `key` is heard by the participant shown as `coached` alone (`None`:
    /// by everyone again). Both must be in the same conference.
    pub(super) fn conference_coach(
        &mut self,
        key: CallKey,
        coached: Option<String>,
    ) -> Result<(), CallError> {
        let call = (self.calls.get(&key)).ok_or_else(|| CallError::NotFound(String::new()))?;
        let seat = call.seat.as_ref().ok_or(CallError::NotInConference)?;
        let target = match &coached {
            Some(sid) => Some(self.member_shown_as(&seat.name, sid, key)?),
            None => None,
        };
        let endpoint = call.own().side.endpoint;
        self.media.conference_coach(endpoint, target);
        let seat = (self.calls.get_mut(&key))
            .and_then(|c| c.seat.as_mut())
            .expect("checked");
        seat.coaching = coached;
        Ok(())
    }

    /// The endpoint of the participant of conference `name` shown as `sid`, other than
    /// `except`.
    fn member_shown_as(
        &self,
        name: &str,
        sid: &str,
        except: CallKey,
    ) -> Result<switchboard_media::EndpointId, CallError> {
        let members = self.conferences.get(name).map(|c| &c.members[..]);
        (members.unwrap_or_default().iter())
            .filter(|k| **k != except)
            .find_map(|k| {
                let call = self.calls.get(k)?;
                let seat = call.seat.as_ref()?;
                (seat.shown(&call.record.id) == sid).then(|| call.own().side.endpoint)
            })
            .ok_or_else(|| {
                CallError::BadArgument(format!("{sid} is not a participant of the conference"))
            })
    }

    /// A participant who comes back finds its coaches coaching it again (the media forgot
    /// them when it left).
    fn recoach(&mut self, name: &str, newcomer: CallKey) {
        let Some(call) = self.calls.get(&newcomer) else {
            return;
        };
        let (shown, target) = match &call.seat {
            Some(seat) => (
                seat.shown(&call.record.id).to_owned(),
                call.own().side.endpoint,
            ),
            None => return,
        };
        let members = self.conferences.get(name).map(|c| c.members.clone());
        for k in members.unwrap_or_default() {
            let Some(coach) = self.calls.get(&k) else {
                continue;
            };
            if k != newcomer
                && coach.seat.as_ref().and_then(|s| s.coaching.as_deref()) == Some(&shown)
            {
                let endpoint = coach.own().side.endpoint;
                self.media.conference_coach(endpoint, Some(target));
            }
        }
    }

    /// The leg seated here for another node's call `sid` (see [`JoinSpec::shown_as`]).
    pub(super) fn visiting_seat(&self, sid: &str) -> Option<CallKey> {
        let visiting = |c: &&CallKey| {
            (self.calls.get(c))
                .and_then(|call| call.seat.as_ref())
                .is_some_and(|seat| seat.shown_as.as_deref() == Some(sid))
        };
        (self.conferences.values())
            .find_map(|c| c.members.iter().find(visiting))
            .copied()
    }

    /// The beep of someone coming or going, once the conference has started.
    fn beep(&mut self, name: &str) {
        if let Some(c) = self.conferences.get(name).filter(|c| c.started) {
            let beep = Announcement {
                id: None,
                clip: tone::beep().into(),
                loops: 1,
                to: None,
            };
            self.media.conference_announce(c.media, beep);
        }
    }

    /// Plays audio into the call's conference; refused past [`MAX_ANNOUNCEMENTS`] at once.
    pub(super) fn conference_announce(
        &mut self,
        key: CallKey,
        a: RoomAnnouncement,
    ) -> Result<(), CallError> {
        let call = self.calls.get(&key).ok_or(CallError::NotInConference)?;
        let name =
            (call.seat.as_ref().map(|s| s.name.clone())).ok_or(CallError::NotInConference)?;
        let endpoint = call.own().side.endpoint;
        if a.clip.is_empty() {
            return Err(CallError::BadArgument("the audio is empty".into()));
        }
        let conference = self
            .conferences
            .get_mut(&name)
            .expect("a seat's conference");
        if conference.announcements.len() >= MAX_ANNOUNCEMENTS {
            return Err(CallError::BadArgument(format!(
                "{MAX_ANNOUNCEMENTS} announcements already play in the conference"
            )));
        }
        conference.next_announcement += 1;
        let id = conference.next_announcement;
        let announcement = Announcement {
            id: Some(id),
            clip: a.clip,
            loops: a.loops,
            to: a.alone.then_some(endpoint),
        };
        if !self
            .media
            .conference_announce(conference.media, announcement)
        {
            return Err(CallError::NotInConference);
        }
        let (tag, alone) = (a.tag, a.alone);
        let event = EventKind::AnnouncementStarted {
            conference: conference.sid.clone(),
            tag: tag.clone(),
            alone,
        };
        conference.announcements.insert(
            id,
            Announced {
                by: key,
                tag,
                alone,
            },
        );
        self.emit(key, event);
        Ok(())
    }

    /// An announcement the dialect could not make (its audio could not be fetched): the room
    /// records Twilio's `announcement-fail`.
    pub(super) fn conference_announcement_failed(
        &mut self,
        key: CallKey,
        alone: bool,
    ) -> Result<(), CallError> {
        let call = self.calls.get(&key).ok_or(CallError::NotInConference)?;
        let seat = call.seat.as_ref().ok_or(CallError::NotInConference)?;
        let shown = alone.then(|| seat.shown(&call.record.id).to_owned());
        let conference = self
            .conferences
            .get_mut(&seat.name)
            .expect("a seat's conference");
        conference.note(
            &mut self.cdr,
            self.wall,
            "announcement-fail",
            json!({ "call": shown }),
        );
        let event = EventKind::AnnouncementEnded {
            conference: conference.sid.clone(),
            tag: String::new(),
            alone,
            stopped: true,
        };
        self.emit(key, event);
        Ok(())
    }

    /// Stops what the call hears alone in its conference (`alone`), or all that plays into
    /// it; each one's end follows from the media engine.
    pub(super) fn conference_stop_announcements(
        &mut self,
        key: CallKey,
        alone: bool,
    ) -> Result<(), CallError> {
        let call = self.calls.get(&key).ok_or(CallError::NotInConference)?;
        let seat = call.seat.as_ref().ok_or(CallError::NotInConference)?;
        let to = alone.then(|| call.own().side.endpoint);
        let media = self.conferences[&seat.name].media;
        self.media.conference_stop_announcements(media, to);
        Ok(())
    }

    /// An announcement ended in the media engine: its asker hears of it, if it is still up.
    pub(super) fn on_announcement_ended(&mut self, media: ConferenceId, id: u64, stopped: bool) {
        let Some(conference) = self.conferences.values_mut().find(|c| c.media == media) else {
            return;
        };
        let Some(Announced { by, tag, alone }) = conference.announcements.remove(&id) else {
            return;
        };
        // The room's own record of it (Twilio's `announcement-end`, or `-fail` when it was
        // cut short or refused), naming the participant who alone heard it.
        let alone_call = (alone.then(|| self.calls.get(&by)).flatten()).map(|c| match &c.seat {
            Some(seat) => seat.shown(&c.record.id).to_owned(),
            None => c.record.id.clone(),
        });
        let kind = if stopped {
            "announcement-fail"
        } else {
            "announcement-end"
        };
        conference.note(
            &mut self.cdr,
            self.wall,
            kind,
            json!({ "call": alone_call }),
        );
        let event = EventKind::AnnouncementEnded {
            conference: conference.sid.clone(),
            tag,
            alone,
            stopped,
        };
        if self.calls.contains_key(&by) {
            self.emit(by, event);
        }
    }

    /// Starts the conference if its rules now allow; otherwise the newcomer waits with music.
    fn conference_check_start(&mut self, name: &str, newcomer: CallKey) {
        let Some(conference) = self.conferences.get(name) else {
            return;
        };
        if conference.started {
            return;
        }
        let starter = conference.members.iter().any(|k| {
            self.calls[k]
                .seat
                .as_ref()
                .is_some_and(|s| s.start_on_enter)
        });
        if conference.members.len() < 2 || !starter {
            let music = self.calls[&newcomer]
                .seat
                .as_ref()
                .and_then(|s| s.wait_music.clone());
            self.play_music(newcomer, music);
            return;
        }
        let newcomer_call = &self.calls[&newcomer];
        let by = match &newcomer_call.seat {
            Some(seat) => seat.shown(&newcomer_call.record.id).to_owned(),
            None => newcomer_call.record.id.clone(),
        };
        let conference = self.conferences.get_mut(name).expect("checked");
        conference.started = true;
        conference.note(
            &mut self.cdr,
            self.wall,
            "conference-start",
            json!({ "by": by }),
        );
        let conference = &self.conferences[name];
        Self::save_conference(
            &mut self.cdr,
            self.wall,
            name,
            conference,
            "in-progress",
            None,
        );
        let (sid, media_id, members, record) = (
            conference.sid.clone(),
            conference.media,
            conference.members.clone(),
            conference.record,
        );
        for k in members {
            let held = self.calls[&k].seat.as_ref().is_some_and(|s| s.held);
            if !held {
                self.stop_music(k);
            }
            self.emit(
                k,
                EventKind::ConferenceStarted {
                    conference: sid.clone(),
                    by: by.clone(),
                },
            );
        }
        if let Some((by, format, trim_silence)) = record {
            self.conference_record(by, &sid, media_id, format, trim_silence);
        }
    }

    fn conference_record(
        &mut self,
        by: CallKey,
        sid: &str,
        media_id: ConferenceId,
        format: RecordFormat,
        trim_silence: bool,
    ) {
        let options = RecordOptions {
            channels: Channels::Mono,
            format,
            // The mixer feeds the mix as one track.
            tracks: TapTracks::Inbound,
            trim_silence,
            sid: None,
            origin: super::api::RecordingOrigin::Conference,
            stop: Default::default(),
        };
        let source = RecordingSource::Conference(media_id);
        if let Some(recording) = self.start_recording(by, sid, source, options) {
            self.emit(by, EventKind::RecordingStarted { recording });
        }
    }

    /// Records the call's room from now, reported to the call; refused while the room is
    /// recorded already.
    pub(super) fn conference_record_now(
        &mut self,
        key: CallKey,
        options: RecordOptions,
    ) -> Result<(), CallError> {
        let (sid, media) = self.room_of(key)?;
        if self.room_recording(&sid).is_some() {
            return Err(CallError::BadArgument(
                "the conference is being recorded already".into(),
            ));
        }
        let source = RecordingSource::Conference(media);
        let recording =
            (self.start_recording(key, &sid, source, options)).ok_or(CallError::NotInConference)?;
        self.emit(key, EventKind::RecordingStarted { recording });
        Ok(())
    }

    /// Pauses, resumes or stops the recording of the call's room, whoever started it.
    pub(super) fn conference_recording(
        &mut self,
        key: CallKey,
        change: RecordChange,
    ) -> Result<(), CallError> {
        let (sid, media) = self.room_of(key)?;
        let Some(id) = self.room_recording(&sid) else {
            return Err(CallError::BadArgument(
                "the conference is not being recorded".into(),
            ));
        };
        let status = match change {
            RecordChange::Pause => "paused",
            RecordChange::Resume => "in-progress",
            RecordChange::Stop => {
                self.media.conference_record(media, None);
                return Ok(());
            }
        };
        self.media
            .conference_record_pause(media, change == RecordChange::Pause);
        self.recordings.set_status_of(&mut self.cdr, id, status);
        Ok(())
    }

    /// The SID and mixer of the call's conference.
    fn room_of(&self, key: CallKey) -> Result<(String, ConferenceId), CallError> {
        let seat = (self.calls.get(&key).and_then(|c| c.seat.as_ref()))
            .ok_or(CallError::NotInConference)?;
        let conference = &self.conferences[&seat.name];
        Ok((conference.sid.clone(), conference.media))
    }

    /// The media number of conference `sid`'s running recording (a room has one at most).
    fn room_recording(&self, sid: &str) -> Option<u64> {
        self.recordings.running_of(sid)
    }

    /// Takes the call out of its conference, if it is in one; `reason` goes in its event.
    pub(super) fn conference_leave(&mut self, key: CallKey, reason: &'static str) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(seat) = call.seat.take() else {
            return;
        };
        let endpoint = call.own().side.endpoint;
        if !call.ended() {
            self.media.conference_leave(endpoint);
            self.media.media(endpoint, MediaOp::Mute(false));
            if seat.music.is_some() {
                self.media.media(endpoint, MediaOp::StopPlayback);
            }
        }
        self.emit(
            key,
            EventKind::ConferenceLeft {
                conference: seat.sid.clone(),
                reason,
            },
        );
        let Some(conference) = self.conferences.get_mut(&seat.name) else {
            return;
        };
        let participant = seat.participant(&self.calls[&key].record.id);
        conference.note(
            &mut self.cdr,
            self.wall,
            "participant-leave",
            json!(participant),
        );
        conference.members.retain(|&k| k != key);
        let by = participant.call;
        let reason = if seat.end_on_exit {
            "participant-with-end-conference-on-exit-left"
        } else if self.conferences[&seat.name].members.is_empty() {
            "last-participant-left"
        } else {
            if seat.beep.on_exit() {
                self.beep(&seat.name);
            }
            return;
        };
        self.conference_end(&seat.name, reason, Some(by.clone()));
        // The one whose leaving ended it learns that too (it is no member any more).
        self.emit(
            key,
            EventKind::ConferenceEnded {
                conference: seat.sid,
                reason,
                ended_by: Some(by),
            },
        );
    }

    /// Ends a conference: everyone still in leaves it (their calls go on).
    pub(super) fn conference_end(&mut self, name: &str, reason: &'static str, by: Option<String>) {
        let Some(mut conference) = self.conferences.remove(name) else {
            return;
        };
        Self::save_conference(
            &mut self.cdr,
            self.wall,
            name,
            &conference,
            "completed",
            Some((reason, by.clone())),
        );
        // Its own events: everyone still in leaves, then it ends.
        for k in conference.members.clone() {
            let Some(call) = self.calls.get(&k) else {
                continue;
            };
            if let Some(seat) = &call.seat {
                let participant = seat.participant(&call.record.id);
                conference.note(
                    &mut self.cdr,
                    self.wall,
                    "participant-leave",
                    json!(participant),
                );
            }
        }
        let ended = json!({ "reason": reason, "ended_by": by });
        conference.note(&mut self.cdr, self.wall, "conference-end", ended);
        // The conference is gone from the map, so these leave without ending it again; the
        // last one out of the mixer stops the recording of the mix. Then each learns why it
        // ended (leaves before the end, as Twilio reports them).
        for &k in &conference.members {
            if let Some(seat) = self.calls.get_mut(&k).and_then(|c| c.seat.as_mut()) {
                seat.end_on_exit = false;
            }
            self.conference_leave(k, "ended");
        }
        for k in conference.members {
            self.emit(
                k,
                EventKind::ConferenceEnded {
                    conference: conference.sid.clone(),
                    reason,
                    ended_by: by.clone(),
                },
            );
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

    pub(super) fn conference_snapshots(&self) -> Vec<ConferenceSnapshot> {
        let mut out: Vec<ConferenceSnapshot> = self
            .conferences
            .iter()
            .map(|(name, c)| ConferenceSnapshot {
                sid: c.sid.clone(),
                name: name.clone(),
                started: c.started,
                created_at: c.created_at,
                recording: (self.room_recording(&c.sid))
                    .and_then(|id| self.recordings.sid(id).map(str::to_owned)),
                participants: c
                    .members
                    .iter()
                    .filter_map(|k| {
                        let call = self.calls.get(k)?;
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

    pub(super) fn end_conference_by_sid(&mut self, sid: &str) -> bool {
        let Some(name) = self
            .conferences
            .iter()
            .find(|(_, c)| c.sid == sid)
            .map(|(n, _)| n.clone())
        else {
            return false;
        };
        self.conference_end(&name, "conference-ended-via-api", None);
        true
    }

    /// Mutes or unmutes the party. In a conference the choice is remembered so that coming
    /// off hold keeps it; a party on hold stays muted until then.
    pub(super) fn mute(&mut self, key: CallKey, muted: bool) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let held = call.seat.as_mut().is_some_and(|seat| {
            seat.muted = muted;
            seat.held
        });
        if !held {
            self.media
                .media(call.own().side.endpoint, MediaOp::Mute(muted));
        }
    }

    pub(super) fn conference_hold(
        &mut self,
        key: CallKey,
        music: Option<Option<Clip>>,
    ) -> Result<(), CallError> {
        let call = self.calls.get_mut(&key).ok_or(CallError::NotInConference)?;
        let endpoint = call.own().side.endpoint;
        let Some(seat) = call.seat.as_mut() else {
            return Err(CallError::NotInConference);
        };
        match music {
            Some(music) => {
                seat.held = true;
                self.media.media(endpoint, MediaOp::Mute(true));
                self.play_music(key, music);
            }
            None => {
                seat.held = false;
                let (muted, name) = (seat.muted, seat.name.clone());
                self.media.media(endpoint, MediaOp::Mute(muted));
                if self.conferences.get(&name).is_some_and(|c| c.started) {
                    self.stop_music(key);
                } else {
                    let wait = self.calls[&key]
                        .seat
                        .as_ref()
                        .and_then(|s| s.wait_music.clone());
                    self.play_music(key, wait);
                }
            }
        }
        Ok(())
    }

    /// Loops music (or silence, which hides the mix) to a participant.
    fn play_music(&mut self, key: CallKey, music: Option<Clip>) {
        let call = self.calls.get_mut(&key).expect("a participant");
        call.next_playback += 1;
        let playback = call.next_playback | MUSIC_PLAYBACK;
        let clip = music.unwrap_or_else(|| Clip::from(vec![0i16; 160]));
        self.media.media(
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

    fn stop_music(&mut self, key: CallKey) {
        let call = self.calls.get_mut(&key).expect("a participant");
        if let Some(seat) = call.seat.as_mut()
            && seat.music.take().is_some()
        {
            self.media
                .media(call.own().side.endpoint, MediaOp::StopPlayback);
        }
    }
}
