//! Recordings of application calls (and of conferences, reported to the call that asked):
//! started on the media engine, stored as rows from start to saved file.

use super::api::{EventKind, RecordOptions, RecordingOrigin};
use super::{CallCore, CallKey};
use crate::infra::store::RecordingRow;
use switchboard_media::record::{RecordFormat, RecordSpec, RecordingSaved};
use switchboard_media::{EndpointId, MediaOp};

/// Where a recording's audio comes from.
pub(super) enum RecordingSource {
    /// Both tracks of a media endpoint: its party's audio and what it hears.
    Endpoint(EndpointId),
    /// A conference's mix.
    Conference(switchboard_media::conference::ConferenceId),
}
/// A recording of a call (or of a conference, reported to the call that asked for it), from
/// start to its saved file.
pub(super) struct OpenRecording {
    pub(super) key: CallKey,
    pub(super) row: RecordingRow,
}
/// The row of a recording that starts at `at` (Unix milliseconds).
pub(super) fn recording_row(
    id: &str,
    owner: &str,
    path: &std::path::Path,
    format: RecordFormat,
    channels: u8,
    origin: RecordingOrigin,
    at: i64,
) -> RecordingRow {
    RecordingRow {
        id: id.to_owned(),
        call_id: owner.to_owned(),
        leg: None,
        path: path.display().to_string(),
        format: format_name(format).into(),
        channels,
        duration_ms: 0,
        size_bytes: 0,
        status: "in-progress".into(),
        started_at: at,
        ended_at: None,
        error: None,
        origin: origin.as_str().to_owned(),
    }
}
/// A recording's format as stored: while it runs an MP3 recording is a PCM16 WAV (which is
/// what crash recovery finds); it becomes `mp3` when saved.
pub(super) fn format_name(format: RecordFormat) -> &'static str {
    match format {
        RecordFormat::Pcm16 | RecordFormat::Mp3 => "wav-pcm16",
        RecordFormat::Ulaw => "wav-ulaw",
    }
}

impl CallCore {
    pub(super) fn record_start(&mut self, key: CallKey, options: RecordOptions) {
        let call = &self.calls[&key];
        let (owner, endpoint) = (call.record.id.clone(), call.own().side.endpoint);
        if let Some(sid) =
            self.start_recording(key, &owner, RecordingSource::Endpoint(endpoint), options)
        {
            if let Some(call) = self.calls.get_mut(&key) {
                call.recording = Some(sid.clone());
            }
            self.emit(key, EventKind::RecordingStarted { recording: sid });
        }
    }

    /// Starts a recording whose end is reported to call `key` (an application call waits for
    /// it before it is forgotten); its file and row belong to `owner`, a call or conference
    /// SID. Returns the recording's SID, or `None` when the source is gone.
    pub(super) fn start_recording(
        &mut self,
        key: CallKey,
        owner: &str,
        source: RecordingSource,
        options: RecordOptions,
    ) -> Option<String> {
        self.next_recording += 1;
        let media_id = self.next_recording;
        let sid = options
            .sid
            .clone()
            .unwrap_or_else(|| crate::infra::sid::new_sid("RE"));
        let path = self
            .config
            .recordings_dir
            .join(owner)
            .join(format!("{sid}.wav"));
        let row = recording_row(
            &sid,
            owner,
            &path,
            options.format,
            options.channels.count(),
            options.origin,
            self.wall,
        );
        let spec = RecordSpec {
            recording: media_id,
            path,
            format: options.format,
            channels: options.channels,
            tracks: options.tracks,
            trim_silence: options.trim_silence,
            stop: options.stop,
        };
        match source {
            RecordingSource::Endpoint(endpoint) => {
                self.media.media(endpoint, MediaOp::RecordStart(spec))
            }
            RecordingSource::Conference(conference) => {
                if !self.media.conference_record(conference, Some(spec)) {
                    return None;
                }
            }
        }
        if let Some(call) = self.calls.get_mut(&key) {
            call.recordings_open += 1;
        }
        self.cdr.recording(row.clone());
        self.recordings.insert(media_id, OpenRecording { key, row });
        Some(sid)
    }

    pub(super) fn record_state(&mut self, key: CallKey, op: MediaOp, status: &str) {
        let endpoint = self.calls[&key].own().side.endpoint;
        self.media.media(endpoint, op);
        for r in self.recordings.values_mut().filter(|r| r.key == key) {
            r.row.status = status.into();
            self.cdr.recording(r.row.clone());
        }
    }

    /// A recording's file is complete (a recording names no endpoint, so it comes here directly).
    pub(super) fn on_recording_saved(&mut self, saved: RecordingSaved) {
        let Some(OpenRecording { key, mut row }) = self.recordings.remove(&saved.recording) else {
            return;
        };
        row.duration_ms = saved.duration_ms;
        row.size_bytes = saved.bytes;
        row.path = saved.path.display().to_string();
        if saved.path.extension().is_some_and(|e| e == "mp3") {
            row.format = "mp3".into();
        }
        row.ended_at = Some(self.wall);
        row.status = if saved.error.is_some() {
            "failed"
        } else {
            "completed"
        }
        .into();
        row.error = saved.error.clone();
        self.cdr.recording(row.clone());
        // Ended with its call, or by a media failure: no longer running either.
        if let Some(call) = self.calls.get_mut(&key) {
            call.recording.take_if(|r| *r == row.id);
        }
        self.emit(
            key,
            EventKind::RecordingSaved {
                recording: row.id,
                path: row.path,
                duration_ms: saved.duration_ms,
                channels: saved.channels,
                size_bytes: saved.bytes,
                error: saved.error,
            },
        );
        if let Some(call) = self.calls.get_mut(&key) {
            call.recordings_open -= 1;
        }
        self.forget_if_done(key);
    }
}
