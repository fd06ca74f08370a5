//! Media processing an endpoint takes on beyond relaying: audio we generate toward its peer
//! (playback, frames injected by a tap consumer, RFC 4733 digits) and consumers of the audio on
//! its two tracks (DTMF detection, recording, taps), and noise suppression of either track. An
//! endpoint without any of these has no
//! `EndpointMedia` at all, so a plain relay pays nothing for them.

use crate::denoise::{Denoiser, MAX_PACKET};
use crate::dtmf::goertzel::GoertzelDetector;
use crate::dtmf::rfc4733::{EventPayload, Rfc4733Receiver, send_schedule};
use crate::dtmf::{Digit, DtmfReport};
use crate::framer::{Framer, MAX_FRAMES};
use crate::g711::Law;
use crate::prompt::{Playback, PlaybackEnd, Prompt};
use crate::record::{RecordFeed, Track};
use crate::relay::{Outbound, PayloadMap};
use crate::rtp;
use std::collections::VecDeque;
use tokio::sync::mpsc;

/// Samples in a 20 ms frame at 8 kHz.
pub const FRAME: usize = 160;
pub type Frame = [i16; FRAME];

/// A frame of a call's audio delivered to a tap consumer.
#[derive(Debug, Clone)]
pub struct TapFrame {
    pub track: Track,
    /// Milliseconds since the tap started.
    pub at_ms: u32,
    /// Frames of this tap dropped so far because its consumer did not keep up: a consumer
    /// learns of congestion as it happens, not only when the tap stops.
    pub dropped: u32,
    pub samples: Frame,
}

/// Where a tap's frames go: the consumer's bounded queue. Its own type, so that what hands a
/// tap to the engine (the call core) names a consumer without holding a channel of its own.
#[derive(Debug, Clone)]
pub struct TapSink(mpsc::Sender<TapFrame>);

impl TapSink {
    pub fn new(tx: mpsc::Sender<TapFrame>) -> Self {
        Self(tx)
    }

    /// Hands a frame over unless the consumer's queue is full or gone.
    fn offer(&self, frame: TapFrame) -> bool {
        self.0.try_send(frame).is_ok()
    }
}

impl From<mpsc::Sender<TapFrame>> for TapSink {
    fn from(tx: mpsc::Sender<TapFrame>) -> Self {
        Self(tx)
    }
}

/// Names a tap among an endpoint's taps; unique in the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TapId(pub u64);

impl TapId {
    /// A new id, never given out before.
    pub fn next() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}

/// Taps an endpoint feeds at most: a call's media streams (Twilio allows four), its
/// recording's silence detector and a few more. A tap beyond this is refused (stopped at once).
pub const MAX_TAPS: usize = 8;

/// Which tracks a tap receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapTracks {
    Inbound,
    Outbound,
    Both,
}

impl TapTracks {
    pub(crate) fn wants(self, track: Track) -> bool {
        matches!(
            (self, track),
            (TapTracks::Both, _)
                | (TapTracks::Inbound, Track::Inbound)
                | (TapTracks::Outbound, Track::Outbound)
        )
    }
}

/// What processing reports to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    PlaybackEnded {
        playback: u64,
        reason: PlaybackEnd,
    },
    Dtmf(DtmfReport),
    /// Every injected frame queued before this mark has been sent (or was cleared).
    Mark {
        name: String,
        cleared: bool,
    },
    /// A tap ended; `dropped` frames were lost because its consumer was too slow.
    TapStopped {
        tap: TapId,
        dropped: u64,
    },
    /// Injected frames beyond the queue's limit were discarded.
    InjectDiscarded {
        frames: u64,
    },
    /// The recording stopped by itself (its `RecordingSaved` follows).
    RecordingStopped {
        recording: u64,
        reason: crate::record::StopReason,
    },
}

/// One 20 ms step of sending digits.
enum DigitStep {
    /// An RFC 4733 packet; `true` on the first of its event.
    Event(EventPayload, bool),
    /// In-band tone for a peer without telephone-event.
    Tone(Box<Frame>),
    /// The pause between digits: time passes, nothing is sent.
    Pause,
}

/// Audio queued by a tap consumer to play to the peer, in the chunks it came in (one
/// allocation per chunk, freed once played), and its marks.
enum Injected {
    Audio { frames: Vec<Frame>, next: usize },
    Mark(String),
}

struct Tap {
    id: TapId,
    tx: TapSink,
    tracks: TapTracks,
    started: std::time::Instant,
    dropped: u64,
}

#[derive(Default)]
pub(crate) struct EndpointMedia {
    playback: Option<Playback>,
    injected: VecDeque<Injected>,
    /// Frames in `injected` not yet played.
    injected_frames: usize,
    digits: VecDeque<DigitStep>,
    /// Timestamp of the next generated packet, while generating.
    clock: Option<u32>,
    /// Start timestamp of the digit being sent.
    digit_ts: Option<u32>,
    detect: bool,
    rfc4733: Rfc4733Receiver,
    inband: Option<GoertzelDetector>,
    recorder: Option<RecordFeed>,
    /// A recording that stopped by itself, and when: its recorder is told to finish only once
    /// the engine has sent the `RecordingStopped` notice ([`Self::finish_stopped`]). The file
    /// is saved on another thread, whose `RecordingSaved` would otherwise race the notice to
    /// the core, which would then take the recording for one that ended without a reason.
    stopped: Option<(RecordFeed, std::time::Instant)>,
    taps: Vec<Tap>,
    /// Suppression of the party's audio, before anything else hears it.
    denoise_inbound: Option<Box<Denoiser>>,
    /// Suppression of the audio relayed to the party (not of what we generate).
    denoise_outbound: Option<Box<Denoiser>>,
    /// The party's audio is replaced by silence for everyone else (its digits still count).
    muted: bool,
    /// Its place in a conference: what it said, waiting for the mixer, and the mix it hears.
    seat: Option<Seat>,
    framers: Framers,
    notices: Vec<Notice>,
    /// Send silence when nothing else goes to the party (Telnyx's `send_silence_when_idle`),
    /// so that its RTP never stops; and when audio was last relayed to it.
    silence_when_idle: bool,
    relayed_at: Option<std::time::Instant>,
    /// When each relayed track's audio was spoken, for the taps' stamps.
    timelines: [Timeline; 2],
}

/// A relayed track on its sender's timeline: a packet is stamped where its RTP timestamp puts
/// it after the one before, not when it happened to be read. Audio that arrives in a burst
/// (a network's jitter, a sender or this worker held up for a moment) is still one stretch of
/// speech to a listener that fills gaps with silence (the transcriber, the machine detector);
/// stamped by arrival, a 300 ms hold-up put 300 ms of silence into a word and cut it. A gap
/// in the timestamps (a phone that stops sending while quiet) stays a gap.
#[derive(Default)]
struct Timeline {
    /// The last packet's source, RTP timestamp (8 kHz: the engine's audio, Opus's included, is
    /// on that clock here) and stamp.
    last: Option<(u32, u32, std::time::Instant)>,
}

/// How far a stamp may trail the clock (a burst after a hold-up this long is still one
/// stretch) and lead it (the first packet came late, the later ones on time), and the longest
/// step taken as the same stream's: past any of them the clock takes over again.
const TIMELINE_TRAIL: std::time::Duration = std::time::Duration::from_secs(2);
const TIMELINE_LEAD: std::time::Duration = std::time::Duration::from_millis(200);
const TIMELINE_STEP: u32 = 10 * 8000;

impl Timeline {
    fn stamp(&mut self, ssrc: u32, ts: u32, now: std::time::Instant) -> std::time::Instant {
        let spoken = self.last.and_then(|(s, t, at)| {
            let step = ts.wrapping_sub(t);
            (s == ssrc && step <= TIMELINE_STEP)
                .then(|| at + std::time::Duration::from_micros(u64::from(step) * 125))
        });
        let at = spoken
            .filter(|&at| at <= now + TIMELINE_LEAD && now.duration_since(at) <= TIMELINE_TRAIL)
            .unwrap_or(now);
        self.last = Some((ssrc, ts, at));
        at
    }
}

/// Relayed audio this recent keeps the idle silence back (a relayed stream's packets come
/// every 20 to 60 ms).
const RELAY_GAP: std::time::Duration = std::time::Duration::from_millis(80);

/// Packets to 20 ms frames, per use: what the party sent for DTMF detection, and each track
/// as the consumers get it.
#[derive(Default)]
struct Framers {
    detect: Framer,
    inbound: Framer,
    outbound: Framer,
}

/// Frames a conference member may have waiting for the mixer (jitter); older ones are dropped.
const SEAT_BACKLOG: usize = 4;

pub(crate) struct Seat {
    said: VecDeque<Frame>,
    hears: Option<Frame>,
}

impl EndpointMedia {
    /// Whether we are sending audio of our own to the peer (relayed audio is then held back).
    pub(crate) fn generating(&self) -> bool {
        self.seat.as_ref().is_some_and(|s| s.hears.is_some())
            || self.playback.is_some()
            || !self.digits.is_empty()
            || self.injected_frames > 0
    }

    /// Nothing left to do: the endpoint can go back to plain relaying.
    pub(crate) fn idle(&self) -> bool {
        !self.generating()
            && self.injected.is_empty()
            && !self.detect
            && self.recorder.is_none()
            && self.stopped.is_none()
            && self.taps.is_empty()
            && self.denoise_inbound.is_none()
            && self.denoise_outbound.is_none()
            && !self.muted
            && self.seat.is_none()
            && !self.silence_when_idle
    }

    pub(crate) fn set_silence_when_idle(&mut self, on: bool) {
        self.silence_when_idle = on;
    }

    /// Whether the idle silence is due: nothing of ours to send, and nothing relayed lately.
    fn idle_silence_due(&self, now: std::time::Instant) -> bool {
        self.silence_when_idle
            && self
                .relayed_at
                .is_none_or(|at| now.saturating_duration_since(at) >= RELAY_GAP)
    }

    /// Takes a seat in a conference: from now on the party's audio goes to the mixer and
    /// it hears the mix (unless something of its own plays).
    pub(crate) fn sit(&mut self) {
        self.seat.get_or_insert_with(|| Seat {
            said: VecDeque::with_capacity(SEAT_BACKLOG),
            hears: None,
        });
    }

    pub(crate) fn stand(&mut self) {
        self.seat = None;
    }

    /// The mixer takes the party's next frame, if one came.
    pub(crate) fn take_said(&mut self) -> Option<Frame> {
        self.seat.as_mut()?.said.pop_front()
    }

    /// The mixer hands the party what it hears for the next tick.
    pub(crate) fn give_mix(&mut self, frame: Frame) {
        if let Some(seat) = &mut self.seat {
            seat.hears = Some(frame);
        }
    }

    pub(crate) fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
    }

    /// Turns noise suppression of each track on or off; a track already suppressed keeps
    /// its state.
    pub(crate) fn set_suppression(&mut self, inbound: bool, outbound: bool) {
        for (slot, on) in [
            (&mut self.denoise_inbound, inbound),
            (&mut self.denoise_outbound, outbound),
        ] {
            match (slot.is_some(), on) {
                (false, true) => *slot = Some(Box::default()),
                (true, false) => *slot = None,
                _ => {}
            }
        }
    }

    pub(crate) fn take_notices(&mut self) -> std::vec::Drain<'_, Notice> {
        self.notices.drain(..)
    }

    /// Tells the recorder of a recording that stopped by itself to finish its file: called once
    /// its `RecordingStopped` notice has been sent on.
    pub(crate) fn finish_stopped(&mut self) {
        if let Some((r, at)) = self.stopped.take() {
            r.stop(at);
        }
    }

    pub(crate) fn play(&mut self, id: u64, prompt: Prompt, loops: u32, barge_in: bool) {
        self.stop_playback(PlaybackEnd::Stopped);
        self.playback = Some(Playback::new(id, prompt, loops, barge_in));
    }

    pub(crate) fn stop_playback(&mut self, reason: PlaybackEnd) {
        if let Some(p) = self.playback.take() {
            self.notices.push(Notice::PlaybackEnded {
                playback: p.id,
                reason,
            });
        }
    }

    /// Queues digits as RFC 4733 events, or as tones when the peer negotiated no
    /// telephone-event; each is followed by a 60 ms pause. `None` waits half a second.
    pub(crate) fn send_digits(
        &mut self,
        digits: &[Option<Digit>],
        duration_ms: u32,
        rfc4733: bool,
    ) {
        for &d in digits {
            let Some(d) = d else {
                self.digits
                    .extend(std::iter::repeat_with(|| DigitStep::Pause).take(25));
                continue;
            };
            if rfc4733 {
                self.digits.extend(
                    send_schedule(d, duration_ms, 20).map(|(e, first)| DigitStep::Event(e, first)),
                );
            } else {
                let tone = crate::tone::dtmf(d, duration_ms.div_ceil(20) * 20);
                self.digits.extend(tone.chunks(FRAME).map(|c| {
                    let mut f = Box::new([0; FRAME]);
                    f[..c.len()].copy_from_slice(c);
                    DigitStep::Tone(f)
                }));
            }
            self.digits
                .extend(std::iter::repeat_with(|| DigitStep::Pause).take(3));
        }
    }

    /// The endpoint is going away: a recording in progress is finished.
    pub(crate) fn close(&mut self, now: std::time::Instant) {
        self.finish_stopped();
        if let Some(r) = self.recorder.take() {
            r.stop(now);
        }
    }

    /// Queues frames to play after those already queued, then the mark. At most `limit`
    /// frames wait: the rest of `frames` is discarded and reported (the mark is kept, so
    /// that whoever waits for it is not left waiting).
    pub(crate) fn inject(&mut self, mut frames: Vec<Frame>, mark: Option<String>, limit: usize) {
        let room = limit.saturating_sub(self.injected_frames);
        if frames.len() > room {
            let discarded = frames.len() - room;
            frames.truncate(room);
            self.notices.push(Notice::InjectDiscarded {
                frames: discarded as u64,
            });
        }
        if !frames.is_empty() {
            self.injected_frames += frames.len();
            self.injected.push_back(Injected::Audio { frames, next: 0 });
        }
        if let Some(m) = mark {
            self.injected.push_back(Injected::Mark(m));
        }
        self.report_leading_marks();
    }

    /// Drops injected audio not yet sent; its marks are reported as cleared.
    pub(crate) fn clear_injected(&mut self) {
        self.injected_frames = 0;
        for i in self.injected.drain(..) {
            if let Injected::Mark(name) = i {
                self.notices.push(Notice::Mark {
                    name,
                    cleared: true,
                });
            }
        }
    }

    fn report_leading_marks(&mut self) {
        while let Some(Injected::Mark(_)) = self.injected.front() {
            if let Some(Injected::Mark(name)) = self.injected.pop_front() {
                self.notices.push(Notice::Mark {
                    name,
                    cleared: false,
                });
            }
        }
    }

    /// The next injected frame, if one waits; marks reached on the way are reported.
    fn next_injected(&mut self) -> Option<Frame> {
        self.report_leading_marks();
        let Some(Injected::Audio { frames, next }) = self.injected.front_mut() else {
            return None;
        };
        let frame = frames[*next];
        *next += 1;
        if *next == frames.len() {
            self.injected.pop_front();
        }
        self.injected_frames -= 1;
        self.report_leading_marks();
        Some(frame)
    }

    pub(crate) fn set_detect(&mut self, enabled: bool, inband: bool) {
        self.detect = enabled;
        self.inband = (enabled && inband).then(GoertzelDetector::default);
    }

    pub(crate) fn set_recorder(&mut self, feed: Option<RecordFeed>) {
        self.recorder = feed;
    }

    pub(crate) fn take_recorder(&mut self) -> Option<RecordFeed> {
        self.recorder.take()
    }

    /// The peer's payload types changed (re-INVITE): in-band detection is needed exactly when
    /// it has no telephone-event.
    pub(crate) fn on_payload_change(&mut self, rfc4733: bool) {
        if self.detect {
            self.set_detect(true, !rfc4733);
        }
    }

    pub(crate) fn recorder_mut(&mut self) -> Option<&mut RecordFeed> {
        self.recorder.as_mut()
    }

    /// Starts a tap (one with the same id is replaced); beyond [`MAX_TAPS`] the tap is
    /// refused: stopped at once, its channel closed.
    pub(crate) fn start_tap(
        &mut self,
        id: TapId,
        tx: TapSink,
        tracks: TapTracks,
        now: std::time::Instant,
    ) {
        self.stop_tap(id);
        if self.taps.len() >= MAX_TAPS {
            self.notices.push(Notice::TapStopped {
                tap: id,
                dropped: 0,
            });
            return;
        }
        self.taps.push(Tap {
            id,
            tx,
            tracks,
            started: now,
            dropped: 0,
        });
    }

    pub(crate) fn stop_tap(&mut self, id: TapId) {
        if let Some(i) = self.taps.iter().position(|t| t.id == id) {
            let old = self.taps.swap_remove(i);
            self.notices.push(Notice::TapStopped {
                tap: id,
                dropped: old.dropped,
            });
        }
    }

    /// A packet from the peer: DTMF detection on what it sent, then noise suppression in
    /// place (so the relay forwards the cleaned audio), then the inbound track for recorder
    /// and tap.
    pub(crate) fn on_inbound(
        &mut self,
        packet: &mut [u8],
        payload: &PayloadMap,
        now: std::time::Instant,
    ) {
        let (pt, ts, ssrc) = (
            rtp::payload_type(packet),
            rtp::timestamp(packet),
            rtp::ssrc(packet),
        );
        let Some(range) = rtp::payload_range(packet) else {
            return;
        };
        let data = &mut packet[range];
        if payload.telephone_event == Some(pt) {
            if self.detect
                && let Some(report) = self.rfc4733.on_packet(ts, data)
            {
                self.on_digit(report);
            }
            return;
        }
        let Some(law) = payload.law_of(pt) else {
            return;
        };
        if self.inband.is_none()
            && self.recorder.is_none()
            && self.stopped.is_none()
            && self.taps.is_empty()
            && self.denoise_inbound.is_none()
            && !self.muted
            && self.seat.is_none()
        {
            return;
        }
        let n = data.len().min(MAX_PACKET);
        let mut pcm = [0i16; MAX_PACKET];
        law.decode(&data[..n], &mut pcm[..n]);
        let mut frames = [[0i16; FRAME]; MAX_FRAMES];
        // Digits are heard in what the party sent, before muting or suppression.
        if self.inband.is_some() {
            let made = self.framers.detect.split(&pcm[..n], &mut frames);
            for frame in &frames[..made] {
                if let Some(report) = self.inband.as_mut().and_then(|d| d.on_frame(frame)) {
                    self.on_digit(report);
                }
            }
        }
        if self.muted {
            pcm.fill(0);
            law.encode(&pcm[..n], data);
        } else if let Some(d) = &mut self.denoise_inbound {
            denoise_payload(d, law, data, &mut pcm[..n]);
        }
        let made = self.framers.inbound.split(&pcm[..n], &mut frames);
        let spoken = self.timelines[Track::Inbound as usize].stamp(ssrc, ts, now);
        for frame in &frames[..made] {
            if let Some(seat) = &mut self.seat {
                if seat.said.len() == SEAT_BACKLOG {
                    seat.said.pop_front();
                }
                seat.said.push_back(*frame);
            }
            self.consume(Track::Inbound, frame, now, spoken);
        }
    }

    fn on_digit(&mut self, report: DtmfReport) {
        if self.playback.as_ref().is_some_and(|p| p.barge_in) {
            self.stop_playback(PlaybackEnd::BargeIn);
        }
        self.notices.push(Notice::Dtmf(report));
    }

    /// A relayed packet rewritten for the peer, before it is sent: suppression in place, then
    /// the outbound track.
    pub(crate) fn on_relayed_outbound(
        &mut self,
        packet: &mut [u8],
        payload: &PayloadMap,
        now: std::time::Instant,
    ) {
        self.relayed_at = Some(now);
        if self.recorder.is_none()
            && self.denoise_outbound.is_none()
            && !self.taps.iter().any(|t| t.tracks.wants(Track::Outbound))
        {
            return;
        }
        let (Some(range), Some(law)) = (
            rtp::payload_range(packet),
            payload.law_of(rtp::payload_type(packet)),
        ) else {
            return;
        };
        let spoken = self.timelines[Track::Outbound as usize].stamp(
            rtp::ssrc(packet),
            rtp::timestamp(packet),
            now,
        );
        let data = &mut packet[range];
        let n = data.len().min(MAX_PACKET);
        let mut pcm = [0i16; MAX_PACKET];
        law.decode(&data[..n], &mut pcm[..n]);
        if let Some(d) = &mut self.denoise_outbound {
            denoise_payload(d, law, data, &mut pcm[..n]);
        }
        let mut frames = [[0i16; FRAME]; MAX_FRAMES];
        let made = self.framers.outbound.split(&pcm[..n], &mut frames);
        for frame in &frames[..made] {
            self.consume(Track::Outbound, frame, now, spoken);
        }
    }

    /// A frame of `track` taken at `now`, spoken at `spoken` (its place on the sender's
    /// timeline, which the taps' stamps follow: see [`Timeline`]).
    fn consume(
        &mut self,
        track: Track,
        frame: &Frame,
        now: std::time::Instant,
        spoken: std::time::Instant,
    ) {
        if let Some(r) = &mut self.recorder {
            r.feed(track, frame, now);
        }
        for tap in self.taps.iter_mut().filter(|t| t.tracks.wants(track)) {
            // A send never waits: a consumer that does not keep up loses the frame.
            let frame = TapFrame {
                track,
                at_ms: u32::try_from(spoken.duration_since(tap.started).as_millis())
                    .unwrap_or(u32::MAX),
                dropped: u32::try_from(tap.dropped).unwrap_or(u32::MAX),
                samples: *frame,
            };
            if !tap.tx.offer(frame) {
                tap.dropped += 1;
            }
        }
    }

    /// One 20 ms tick: writes the next packet we generate into `buf` and returns its length,
    /// or `None` when there is nothing of our own to send.
    pub(crate) fn tick(
        &mut self,
        buf: &mut [u8],
        out: &mut Outbound,
        payload: &PayloadMap,
        now: std::time::Instant,
    ) -> Option<usize> {
        if let Some(reason) = self.recorder.as_ref().and_then(|r| r.due_stop(now))
            && let Some(r) = self.recorder.take()
        {
            let recording = r.recording();
            self.notices
                .push(Notice::RecordingStopped { recording, reason });
            self.stopped = Some((r, now));
        }
        if !self.generating() && !self.idle_silence_due(now) {
            self.clock = None;
            self.report_leading_marks();
            return None;
        }
        // The first packet of generated audio starts a talkspurt: marker bit.
        let marker = self.clock.is_none();
        let ts = *self.clock.get_or_insert_with(|| out.continuation_ts());
        let mut frame = [0i16; FRAME];
        if let Some(step) = self.digits.pop_front() {
            match step {
                DigitStep::Event(event, first) => {
                    return self.digit_packet(buf, out, payload, event, first, ts);
                }
                DigitStep::Pause => {
                    self.clock = Some(ts.wrapping_add(FRAME as u32));
                    return None;
                }
                DigitStep::Tone(f) => frame = *f,
            }
        } else if let Some(p) = &mut self.playback {
            if !p.next_frame(&mut frame) {
                self.stop_playback(PlaybackEnd::Finished);
                return self.tick(buf, out, payload, now);
            }
        } else {
            if let Some(f) = self.next_injected() {
                frame = f;
            } else if let Some(mix) = self.seat.as_mut().and_then(|s| s.hears.take()) {
                frame = mix;
            } else if !self.idle_silence_due(now) {
                return None;
            }
        }
        let (pt, law) = payload.audio?;
        let (ssrc, seq) = out.generated(ts);
        rtp::write_header(buf, pt, marker, seq, ts, ssrc);
        law.encode(&frame, &mut buf[rtp::HEADER_LEN..rtp::HEADER_LEN + FRAME]);
        self.clock = Some(ts.wrapping_add(FRAME as u32));
        self.consume(Track::Outbound, &frame, now, now);
        Some(rtp::HEADER_LEN + FRAME)
    }

    fn digit_packet(
        &mut self,
        buf: &mut [u8],
        out: &mut Outbound,
        payload: &PayloadMap,
        event: EventPayload,
        first: bool,
        ts: u32,
    ) -> Option<usize> {
        let pt = payload.telephone_event?;
        let start = if first {
            ts
        } else {
            self.digit_ts.unwrap_or(ts)
        };
        self.digit_ts = Some(start);
        let (ssrc, seq) = out.generated(start);
        rtp::write_header(buf, pt, first, seq, start, ssrc);
        let mut body = [0u8; 4];
        event.write(&mut body);
        buf[rtp::HEADER_LEN..rtp::HEADER_LEN + 4].copy_from_slice(&body);
        if event.end {
            // After the event, audio resumes where its duration ends.
            self.clock = Some(start.wrapping_add(event.duration as u32));
        }
        Some(rtp::HEADER_LEN + 4)
    }
}

/// Suppresses noise in a G.711 payload (any packet size up to 60 ms) whose decoded samples
/// are `pcm`: both are rewritten in place. Longer packets pass as they are.
fn denoise_payload(d: &mut Denoiser, law: Law, payload: &mut [u8], pcm: &mut [i16]) {
    if payload.len() > MAX_PACKET {
        return;
    }
    d.process(pcm);
    law.encode(pcm, payload);
}

impl PayloadMap {
    /// The G.711 law of an audio payload type of this peer.
    pub fn law_of(&self, pt: u8) -> Option<Law> {
        match self.audio {
            Some((p, law)) if p == pt => Some(law),
            _ => match pt {
                0 => Some(Law::Ulaw),
                8 => Some(Law::Alaw),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests;
