//! The recording of a room's mix: from its start when the first participant asked for it,
//! or from now at a participant's request; paused, resumed and stopped by anyone in it.

use super::Rooms;
use crate::CallKey;
use crate::api::{CallError, EventKind, RecordChange, RecordOptions};
use crate::context::RoomContext;
use crate::recording::RecordingSource;
use switchboard_media::TapTracks;
use switchboard_media::conference::ConferenceId;
use switchboard_media::record::{Channels, RecordFormat};

impl Rooms {
    pub(crate) fn record_mix(
        &mut self,
        cx: &mut RoomContext,
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
            origin: crate::api::RecordingOrigin::Conference,
            stop: Default::default(),
        };
        let source = RecordingSource::Conference(media_id);
        if let Some(recording) = cx.start_recording(by, sid, source, options) {
            cx.emit(by, EventKind::RecordingStarted { recording });
        }
    }

    /// Records the call's room from now, reported to the call; refused while the room is
    /// recorded already.
    pub(crate) fn record_now(
        &mut self,
        cx: &mut RoomContext,
        key: CallKey,
        options: RecordOptions,
    ) -> Result<(), CallError> {
        let (sid, media) = self.room_of(cx, key)?;
        if self.room_recording(cx, &sid).is_some() {
            return Err(CallError::BadArgument(
                "the conference is being recorded already".into(),
            ));
        }
        let source = RecordingSource::Conference(media);
        let recording =
            (cx.start_recording(key, &sid, source, options)).ok_or(CallError::NotInConference)?;
        cx.emit(key, EventKind::RecordingStarted { recording });
        Ok(())
    }

    /// Pauses, resumes or stops the recording of the call's room, whoever started it.
    pub(crate) fn change_recording(
        &mut self,
        cx: &mut RoomContext,
        key: CallKey,
        change: RecordChange,
    ) -> Result<(), CallError> {
        let (sid, media) = self.room_of(cx, key)?;
        let Some(id) = self.room_recording(cx, &sid) else {
            return Err(CallError::BadArgument(
                "the conference is not being recorded".into(),
            ));
        };
        let (status, paused) = match change {
            RecordChange::Pause(how) => ("paused", Some(how)),
            RecordChange::Resume => ("in-progress", None),
            RecordChange::Stop => {
                cx.media.conference_record(media, None);
                return Ok(());
            }
        };
        cx.media.conference_record_pause(media, paused);
        cx.recordings.set_status_of(cx.records, id, status);
        Ok(())
    }

    /// The SID and mixer of the call's conference.
    pub(super) fn room_of(
        &self,
        cx: &RoomContext,
        key: CallKey,
    ) -> Result<(String, ConferenceId), CallError> {
        let seat =
            (cx.calls.get(&key).and_then(|c| c.seat.as_ref())).ok_or(CallError::NotInConference)?;
        let conference = &self.by_name[&seat.name];
        Ok((conference.sid.clone(), conference.media))
    }

    /// The media number of conference `sid`'s running recording (a room has one at most).
    pub(super) fn room_recording(&self, cx: &RoomContext, sid: &str) -> Option<u64> {
        cx.recordings.running_of(sid)
    }
}
