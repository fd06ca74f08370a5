//! What plays into a room: the beep of someone coming or going, and the applications'
//! announcements (to everyone, or to one participant alone), with their events.

use super::Rooms;
use crate::CallKey;
use crate::api::{CallError, EventKind, RoomAnnouncement};
use crate::context::RoomContext;
use serde_json::json;
use switchboard_media::conference::{Announcement, ConferenceId, MAX_ANNOUNCEMENTS};
use switchboard_media::tone;

/// An announcement playing into a conference, for its events.
pub(super) struct Announced {
    by: CallKey,
    tag: String,
    alone: bool,
}

impl Rooms {
    /// The beep of someone coming or going, once the conference has started.
    pub(crate) fn beep(&mut self, cx: &mut RoomContext, name: &str) {
        if let Some(c) = self.by_name.get(name).filter(|c| c.started) {
            let beep = Announcement {
                id: None,
                clip: tone::beep().into(),
                loops: 1,
                to: None,
            };
            cx.media.conference_announce(c.media, beep);
        }
    }

    /// Plays audio into the call's conference; refused past [`MAX_ANNOUNCEMENTS`] at once.
    pub(crate) fn announce(
        &mut self,
        cx: &mut RoomContext,
        key: CallKey,
        a: RoomAnnouncement,
    ) -> Result<(), CallError> {
        let call = cx.calls.get(&key).ok_or(CallError::NotInConference)?;
        let name =
            (call.seat.as_ref().map(|s| s.name.clone())).ok_or(CallError::NotInConference)?;
        let endpoint = call.own().side.endpoint;
        if a.clip.is_empty() {
            return Err(CallError::BadArgument("the audio is empty".into()));
        }
        let conference = self.by_name.get_mut(&name).expect("a seat's conference");
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
        if !cx.media.conference_announce(conference.media, announcement) {
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
        cx.emit(key, event);
        Ok(())
    }

    /// An announcement the dialect could not make (its audio could not be fetched): the room
    /// records Twilio's `announcement-fail`.
    pub(crate) fn announcement_failed(
        &mut self,
        cx: &mut RoomContext,
        key: CallKey,
        alone: bool,
    ) -> Result<(), CallError> {
        let call = cx.calls.get(&key).ok_or(CallError::NotInConference)?;
        let seat = call.seat.as_ref().ok_or(CallError::NotInConference)?;
        let shown = alone.then(|| seat.shown(&call.record.id).to_owned());
        let conference = self
            .by_name
            .get_mut(&seat.name)
            .expect("a seat's conference");
        conference.note(
            cx.records,
            cx.wall,
            "announcement-fail",
            json!({ "call": shown }),
        );
        let event = EventKind::AnnouncementEnded {
            conference: conference.sid.clone(),
            tag: String::new(),
            alone,
            stopped: true,
        };
        cx.emit(key, event);
        Ok(())
    }

    /// Stops what the call hears alone in its conference (`alone`), or all that plays into
    /// it; each one's end follows from the media engine.
    pub(crate) fn stop_announcements(
        &mut self,
        cx: &mut RoomContext,
        key: CallKey,
        alone: bool,
    ) -> Result<(), CallError> {
        let call = cx.calls.get(&key).ok_or(CallError::NotInConference)?;
        let seat = call.seat.as_ref().ok_or(CallError::NotInConference)?;
        let to = alone.then(|| call.own().side.endpoint);
        let media = self.by_name[&seat.name].media;
        cx.media.conference_stop_announcements(media, to);
        Ok(())
    }

    /// An announcement ended in the media engine: its asker hears of it, if it is still up.
    pub(crate) fn on_announcement_ended(
        &mut self,
        cx: &mut RoomContext,
        media: ConferenceId,
        id: u64,
        stopped: bool,
    ) {
        let Some(conference) = self.by_name.values_mut().find(|c| c.media == media) else {
            return;
        };
        let Some(Announced { by, tag, alone }) = conference.announcements.remove(&id) else {
            return;
        };
        // The room's own record of it (Twilio's `announcement-end`, or `-fail` when it was
        // cut short or refused), naming the participant who alone heard it.
        let alone_call = (alone.then(|| cx.calls.get(&by)).flatten()).map(|c| match &c.seat {
            Some(seat) => seat.shown(&c.record.id).to_owned(),
            None => c.record.id.clone(),
        });
        let kind = if stopped {
            "announcement-fail"
        } else {
            "announcement-end"
        };
        conference.note(cx.records, cx.wall, kind, json!({ "call": alone_call }));
        let event = EventKind::AnnouncementEnded {
            conference: conference.sid.clone(),
            tag,
            alone,
            stopped,
        };
        if cx.calls.contains_key(&by) {
            cx.emit(by, event);
        }
    }
}
