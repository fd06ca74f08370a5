//! What a worker does beyond relaying: media operations on an endpoint (play, record, taps,
//! injection, suppression), the 20 ms tick that generates and mixes audio, and the RTP
//! timeout sweep.

use super::*;

impl Worker {
    pub(super) fn apply_media(&mut self, index: usize, op: MediaOp) {
        let Some(slot) = self.slots[index].as_mut() else {
            return;
        };
        let rfc4733 = slot.config.payload.telephone_event.is_some();
        let m = slot.media.get_or_insert_with(Default::default);
        match op {
            MediaOp::Play {
                playback,
                clip,
                loops,
                barge_in,
            } => m.play(playback, clip, loops, barge_in),
            MediaOp::StopPlayback => m.stop_playback(PlaybackEnd::Stopped),
            MediaOp::SendDigits {
                digits,
                duration_ms,
            } => m.send_digits(&digits, duration_ms, rfc4733),
            MediaOp::DetectDtmf(on) => m.set_detect(on, !rfc4733),
            MediaOp::RecordStart(spec) => {
                if let Some(old) = m.take_recorder() {
                    old.stop(self.now);
                }
                m.set_recorder(Some(self.recorder.start(spec, self.now)));
            }
            MediaOp::RecordPause(how) => m.recorder_mut().map_or((), |r| r.pause(self.now, how)),
            MediaOp::RecordResume => m.recorder_mut().map_or((), |r| r.resume(self.now)),
            MediaOp::RecordStop => {
                if let Some(r) = m.take_recorder() {
                    r.stop(self.now);
                }
            }
            MediaOp::TapStart { tap, tx, tracks } => m.start_tap(tap, tx, tracks, self.now),
            MediaOp::TapStop(tap) => m.stop_tap(tap),
            MediaOp::Inject {
                frames,
                mark,
                limit,
            } => m.inject(frames, mark, limit),
            MediaOp::ClearInjected => m.clear_injected(),
            MediaOp::Suppress { inbound, outbound } => m.set_suppression(inbound, outbound),
            MediaOp::Mute(muted) => m.set_muted(muted),
            MediaOp::SilenceWhenIdle(on) => m.set_silence_when_idle(on),
        }
        self.after_media(index);
    }

    /// Reports what an endpoint's media processing noticed, and drops the processing once it
    /// has nothing left to do.
    pub(super) fn after_media(&mut self, index: usize) {
        let Some(slot) = self.slots[index].as_mut() else {
            return;
        };
        let Some(m) = slot.media.as_mut() else {
            return;
        };
        let id = slot.id;
        for notice in m.take_notices() {
            let _ = self.events.send(match notice {
                Notice::PlaybackEnded { playback, reason } => MediaEvent::PlaybackEnded {
                    id,
                    playback,
                    reason,
                },
                Notice::Dtmf(report) => MediaEvent::Dtmf { id, report },
                Notice::Mark { name, cleared } => MediaEvent::Mark { id, name, cleared },
                Notice::TapStopped { tap, dropped } => MediaEvent::TapStopped { id, tap, dropped },
                Notice::InjectDiscarded { frames } => MediaEvent::InjectDiscarded { id, frames },
                Notice::RecordingStopped { recording, reason } => MediaEvent::RecordingStopped {
                    id,
                    recording,
                    reason,
                },
            });
        }
        // Only now: its `RecordingSaved` must follow the `RecordingStopped` just sent.
        m.finish_stopped();
        let idle = m.idle();
        if idle {
            slot.media = None;
        }
        self.set_active(index, !idle);
    }

    pub(super) fn set_active(&mut self, index: usize, active: bool) {
        let was_empty = self.active.is_empty();
        match (self.active.iter().position(|&i| i == index), active) {
            (None, true) => self.active.push(index),
            (Some(at), false) => {
                self.active.swap_remove(at);
            }
            _ => return,
        }
        if was_empty != self.active.is_empty() {
            self.timer
                .set_period(if was_empty { PTIME } else { Duration::ZERO });
        }
    }

    /// The 20 ms media clock: conferences mix, then each endpoint with media processing sends
    /// what it generates.
    pub(super) fn tick(&mut self) {
        let now = self.now;
        for (&id, conference) in self.conferences.iter_mut() {
            self.said.clear();
            for m in &conference.members {
                let media = self.slots[m.slot].as_mut().and_then(|s| s.media.as_mut());
                self.said.push(media.and_then(|m| m.take_said()));
            }
            let slots = &mut self.slots;
            let events = &self.events;
            conference.mix(
                &self.said,
                |m, frame| {
                    if let Some(media) = slots[m].as_mut().and_then(|s| s.media.as_mut()) {
                        media.give_mix(frame);
                    }
                },
                |announcement| {
                    let _ = events.send(MediaEvent::AnnouncementEnded {
                        conference: id,
                        announcement,
                        stopped: false,
                    });
                },
                now,
            );
        }
        for at in (0..self.active.len()).rev() {
            let index = self.active[at];
            if let Some(slot) = self.slots[index].as_mut()
                && let Some(m) = slot.media.as_mut()
            {
                let payload = slot.config.payload;
                let now = self.now;
                let built = self
                    .packet
                    .generate(|buf| m.tick(buf, &mut slot.outbound, &payload, now))
                    && to_peer_codec(&mut self.packet, slot, false)
                    && protect(&mut self.packet, slot);
                if built
                    && !slot.config.held
                    && let Some(dest) = slot.rtp_dest.target
                    && let Some(socket) = slot.media_socket()
                    && self.packet.send(socket.as_raw_fd(), dest.send_addr())
                {
                    slot.stats.packets_out += 1;
                    slot.stats.bytes_out += self.packet.len() as u64;
                }
            }
            self.after_media(index);
        }
    }

    pub(super) fn sweep_timeouts(&mut self) {
        self.sync_offloaded();
        // Browsers' handshake retransmissions and consent, at this sweep's pace.
        for index in 0..self.slots.len() {
            let Some(slot) = self.slots[index].as_mut() else {
                continue;
            };
            let Some(transport) = slot.webrtc.as_mut() else {
                continue;
            };
            if transport.poll_timeout().is_none_or(|t| t > self.now) {
                continue;
            }
            let mut out = Vec::new();
            let event = transport.handle_timeout(self.now, &mut out);
            for (to, datagram) in out {
                if let Some(socket) = slot.media_socket() {
                    let _ = socket.send_to(&datagram, to);
                }
            }
            if let Some(event) = event {
                self.on_transport_event(index, event);
            }
        }
        for slot in self.slots.iter_mut().flatten() {
            if slot.config.expect_rtp
                && !slot.timed_out
                && self.now.duration_since(slot.last_rx) > self.rtp_timeout
            {
                slot.timed_out = true;
                let _ = self.events.send(MediaEvent::Timeout { id: slot.id });
            }
        }
    }
}
