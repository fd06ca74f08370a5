//! The media engine's events on a call's endpoints, as the call handles them: silence from a
//! peer that should be sending ends the call, and digits, playbacks, marks, taps and
//! injections become the call's events. What belongs to more than the call — a released
//! endpoint (the call's end), recordings, conference announcements — the core takes first
//! (`CallCore::handle_media_event`).

use super::api::EventKind;
use super::context::CallContext;
use super::model::Call;
use std::time::Instant;
use switchboard_media::MediaEvent;
use tracing::warn;

/// Playback numbers with this bit are wait or hold music the core plays on its own; their
/// end is not the application's business.
pub(super) const MUSIC_PLAYBACK: u64 = 1 << 63;

impl Call {
    /// An event of the media engine on one of the call's endpoints.
    pub(super) fn handle_media(&mut self, cx: &mut CallContext, now: Instant, event: MediaEvent) {
        match event {
            MediaEvent::Timeout { .. } => {
                warn!("RTP timeout");
                cx.hang_up(408, "rtp-timeout");
            }
            MediaEvent::TransportLost { reason, .. } => {
                warn!(reason, "the browser's media transport is lost");
                cx.hang_up(408, reason);
            }
            MediaEvent::Dtmf { report, .. } => self.on_digit(cx, now, report),
            MediaEvent::PlaybackEnded {
                playback, reason, ..
            } => {
                if playback & MUSIC_PLAYBACK == 0 {
                    self.on_playback_ended(cx, now, playback);
                    self.emit(cx, EventKind::PlaybackEnded { playback, reason });
                }
            }
            MediaEvent::Mark { name, cleared, .. } => {
                self.emit(cx, EventKind::Mark { name, cleared })
            }
            MediaEvent::TapStopped { tap, dropped, .. } => self.emit(
                cx,
                EventKind::TapStopped {
                    tap: tap.0,
                    dropped_frames: dropped,
                },
            ),
            MediaEvent::InjectDiscarded { frames, .. } => {
                self.emit(cx, EventKind::InjectDiscarded { frames })
            }
            // The core's (see the module's comment).
            MediaEvent::Released { .. }
            | MediaEvent::RecordingStopped { .. }
            | MediaEvent::RecordingSaved(_)
            | MediaEvent::AnnouncementEnded { .. } => {}
        }
    }
}
