//! Recordings of application calls (and of conferences, reported to the call that asked):
//! started on the media engine, stored as rows from start to saved file.

use super::CallKey;
use super::api::{RecordOptions, RecordingOrigin};
use super::engine_commands::Engine;
use super::store_writes::Records;
use crate::rows::RecordingRow;
use std::collections::HashMap;
use std::path::Path;
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

/// The recordings running, by the media engine's recording number, from start to saved
/// file: the core's calls and conferences start them, the engine reports them saved.
#[derive(Default)]
pub(super) struct Recordings {
    open: HashMap<u64, OpenRecording>,
    next: u64,
}

impl Recordings {
    /// Recordings numbered after `base` (a shard's own range of the media engine's numbers).
    pub(super) fn numbered_from(base: u64) -> Self {
        Self {
            open: HashMap::new(),
            next: base,
        }
    }

    /// Starts a recording whose end is reported to call `key`; its file (under `dir`) and
    /// row belong to `owner`, a call or conference SID. Returns the recording's SID, or `None`
    /// when the source is gone.
    pub(super) fn start(
        &mut self,
        (media, records): (&mut Engine, &mut Records),
        (dir, wall): (&Path, i64),
        key: CallKey,
        owner: &str,
        source: RecordingSource,
        options: RecordOptions,
    ) -> Option<String> {
        self.next += 1;
        let media_id = self.next;
        let sid = (options.sid.clone()).unwrap_or_else(|| crate::sid::new_sid("RE"));
        let path = dir.join(owner).join(format!("{sid}.wav"));
        let channels = options.channels.count();
        let row = recording_row(
            &sid,
            owner,
            &path,
            options.format,
            channels,
            options.origin,
            wall,
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
                media.media(endpoint, MediaOp::RecordStart(spec))
            }
            RecordingSource::Conference(conference) => {
                if !media.conference_record(conference, Some(spec)) {
                    return None;
                }
            }
        }
        records.recording(row.clone());
        self.open.insert(media_id, OpenRecording { key, row });
        Some(sid)
    }

    /// The status of call `key`'s recordings (paused, running again), stored.
    pub(super) fn set_status(&mut self, records: &mut Records, key: CallKey, status: &str) {
        for r in self.open.values_mut().filter(|r| r.key == key) {
            r.row.status = status.into();
            records.recording(r.row.clone());
        }
    }

    /// The status of recording `id` (by the engine's number), stored.
    pub(super) fn set_status_of(&mut self, records: &mut Records, id: u64, status: &str) {
        if let Some(open) = self.open.get_mut(&id) {
            open.row.status = status.into();
            records.recording(open.row.clone());
        }
    }

    /// A recording's file is complete: its row says how, stored; the call to tell and the
    /// row are handed back.
    pub(super) fn saved(
        &mut self,
        records: &mut Records,
        wall: i64,
        saved: &RecordingSaved,
    ) -> Option<(CallKey, RecordingRow)> {
        let OpenRecording { key, mut row } = self.open.remove(&saved.recording)?;
        row.duration_ms = saved.duration_ms;
        row.size_bytes = saved.bytes;
        row.path = saved.path.display().to_string();
        if saved.path.extension().is_some_and(|e| e == "mp3") {
            row.format = "mp3".into();
        }
        row.ended_at = Some(wall);
        row.status = if saved.error.is_some() {
            "failed"
        } else {
            "completed"
        }
        .into();
        row.error = saved.error.clone();
        records.recording(row.clone());
        Some((key, row))
    }

    /// The SID of recording `id` (by the engine's number), while it is open.
    pub(super) fn sid(&self, id: u64) -> Option<&str> {
        self.open.get(&id).map(|open| open.row.id.as_str())
    }

    /// The engine's number of the running recording whose row belongs to `owner` (a room has
    /// one at most).
    pub(super) fn running_of(&self, owner: &str) -> Option<u64> {
        (self.open.iter())
            .find(|(_, open)| open.row.call_id == owner && open.row.ended_at.is_none())
            .map(|(&id, _)| id)
    }
}
