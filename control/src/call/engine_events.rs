//! The media engine's events, for whichever call owns the endpoint: silence from a peer that
//! should be sending ends the call, a released endpoint brings its final counters, and the rest
//! (digits, playbacks, marks, taps, injections, recordings) become the call's events.

use super::api::EventKind;
use super::{CallCore, CallKey};
use std::time::Instant;
use switchboard_media::MediaEvent;
use tracing::warn;

/// Playback numbers with this bit are wait or hold music the core plays on its own; their
/// end is not the application's business.
pub(super) const MUSIC_PLAYBACK: u64 = 1 << 63;

impl CallCore {
    pub(super) fn on_media_event(&mut self, now: Instant, event: MediaEvent) {
        self.clock_to(now);
        // A recording names no endpoint: it finds its call through the recordings.
        if let MediaEvent::RecordingSaved(saved) = event {
            return self.on_recording_saved(saved);
        }
        // Nor does a conference's announcement: it finds its asker through the conference.
        if let MediaEvent::AnnouncementEnded {
            conference,
            announcement,
            stopped,
        } = event
        {
            let (rooms, mut cx) = self.rooms_mut();
            return rooms.on_announcement_ended(&mut cx, conference, announcement, stopped);
        }
        let Some(key) = event.endpoint().and_then(|id| self.calls.of_endpoint(id)) else {
            return;
        };
        self.on_call_media(now, key, event);
    }

    fn on_call_media(&mut self, now: Instant, key: CallKey, event: MediaEvent) {
        match event {
            MediaEvent::Timeout { .. } => {
                if let Some(call) = self.calls.get(&key) {
                    let _span = call.span.clone().entered();
                    warn!("RTP timeout");
                }
                self.hang_up(now, key, 408, "rtp-timeout", &[]);
            }
            MediaEvent::TransportLost { reason, .. } => {
                if let Some(call) = self.calls.get(&key) {
                    let _span = call.span.clone().entered();
                    warn!(reason, "the browser's media transport is lost");
                }
                self.hang_up(now, key, 408, reason, &[]);
            }
            MediaEvent::Released { id, stats } => self.on_released(key, id, stats),
            MediaEvent::Dtmf { report, .. } => {
                if let Some((call, mut cx)) = self.call_mut(key) {
                    call.on_digit(&mut cx, now, report);
                }
            }
            MediaEvent::PlaybackEnded {
                playback, reason, ..
            } => {
                if playback & MUSIC_PLAYBACK == 0 {
                    if let Some((call, mut cx)) = self.call_mut(key) {
                        call.on_playback_ended(&mut cx, now, playback);
                    }
                    self.emit(key, EventKind::PlaybackEnded { playback, reason });
                }
            }
            MediaEvent::Mark { name, cleared, .. } => {
                self.emit(key, EventKind::Mark { name, cleared })
            }
            MediaEvent::TapStopped { tap, dropped, .. } => self.emit(
                key,
                EventKind::TapStopped {
                    tap: tap.0,
                    dropped_frames: dropped,
                },
            ),
            MediaEvent::InjectDiscarded { frames, .. } => {
                self.emit(key, EventKind::InjectDiscarded { frames })
            }
            MediaEvent::RecordingStopped {
                recording, reason, ..
            } => {
                if let Some(recording) = self.recordings.sid(recording) {
                    let recording = recording.to_owned();
                    let reason = reason.as_str();
                    if let Some(call) = self.calls.get_mut(&key) {
                        call.recording.take_if(|r| *r == recording);
                    }
                    self.emit(key, EventKind::RecordingStopped { recording, reason });
                }
            }
            // Taken by `on_media_event` before an endpoint is looked up.
            MediaEvent::RecordingSaved(_) | MediaEvent::AnnouncementEnded { .. } => {}
        }
    }

    /// A recording's file is complete (a recording names no endpoint, so it comes here
    /// directly): its row is stored, and the call that asked hears of it.
    fn on_recording_saved(&mut self, saved: switchboard_media::record::RecordingSaved) {
        let Some((key, row)) = self.recordings.saved(&mut self.cdr, self.wall, &saved) else {
            return;
        };
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
