//! Opus legs (RFC 7587). Inside, the engine speaks 8 kHz G.711: a packet from an Opus peer
//! becomes a μ-law packet when it arrives (payload decoded, timestamp from the 48 kHz RTP clock
//! to 8 kHz), and a packet for an Opus peer becomes Opus just before it leaves. So relay,
//! playback, digits, recording, taps, suppression and conferences work on Opus legs unchanged,
//! and a call between an Opus leg and a G.711 leg is transcoded. Between two Opus legs with
//! nothing listening in, packets pass untouched.
//!
//! The codec is libopus 1.3.1 itself, as translated to Rust by c2rust (`unsafe-libopus`),
//! rather than the system library through `audiopus`: the same bitstream and quality, but
//! nothing to install (no libopus-dev, pkg-config or autotools), so `cargo run` works on a
//! machine with only the Rust toolchain. Its API is libopus's C API; [`Encoder`] and
//! [`Decoder`] below are the small safe wrapper around the four calls we make.

use crate::g711::Law;
use crate::rtp;
use unsafe_libopus as unsafe_ffi;

/// Samples in the longest Opus packet (120 ms) at 8 kHz.
const MAX_SAMPLES: usize = 960;
/// Frame sizes an Opus encoder takes at 8 kHz (2.5 to 60 ms).
const FRAME_SIZES: [usize; 6] = [20, 40, 80, 160, 320, 480];
/// Room for one encoded packet (RFC 6716 caps a frame at 1275 bytes).
const MAX_OPUS_BYTES: usize = 1275;

/// A libopus error code (negative), with its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("opus error {0}")]
pub struct OpusError(pub i32);

fn check(code: i32) -> Result<usize, OpusError> {
    usize::try_from(code).map_err(|_| OpusError(code))
}

/// A mono Opus encoder for VoIP.
pub struct Encoder(std::ptr::NonNull<unsafe_ffi::OpusEncoder>);

// SAFETY: the encoder's state is one heap block owned by this value and touched only through
// `&mut self`; libopus keeps no thread-local or global mutable state.
unsafe impl Send for Encoder {}

impl Encoder {
    /// `rate` is one of 8000, 12000, 16000, 24000, 48000.
    pub fn new(rate: i32) -> Result<Self, OpusError> {
        let mut err = 0;
        // SAFETY: plain constructor; arguments are validated by libopus, `err` is writable.
        let st = unsafe {
            unsafe_ffi::opus_encoder_create(rate, 1, unsafe_ffi::OPUS_APPLICATION_VOIP, &mut err)
        };
        std::ptr::NonNull::new(st).map(Self).ok_or(OpusError(err))
    }

    /// Encodes one frame (`pcm.len()` must be a frame size at the encoder's rate: 2.5 to
    /// 60 ms) into `out`; returns the packet's length.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, OpusError> {
        let frame = i32::try_from(pcm.len()).map_err(|_| OpusError(unsafe_ffi::OPUS_BAD_ARG))?;
        let room = i32::try_from(out.len().min(MAX_OPUS_BYTES * 3)).unwrap_or(i32::MAX);
        // SAFETY: libopus reads exactly `frame` samples from `pcm` (mono) and writes at most
        // `room` bytes to `out`; both lengths come from the slices.
        check(unsafe {
            unsafe_ffi::opus_encode(self.0.as_ptr(), pcm.as_ptr(), frame, out.as_mut_ptr(), room)
        })
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_encoder_create, destroyed once.
        unsafe { unsafe_ffi::opus_encoder_destroy(self.0.as_ptr()) }
    }
}

/// A mono Opus decoder.
pub struct Decoder(std::ptr::NonNull<unsafe_ffi::OpusDecoder>);

// SAFETY: as for `Encoder`.
unsafe impl Send for Decoder {}

impl Decoder {
    pub fn new(rate: i32) -> Result<Self, OpusError> {
        let mut err = 0;
        // SAFETY: plain constructor; arguments are validated by libopus.
        let st = unsafe { unsafe_ffi::opus_decoder_create(rate, 1, &mut err) };
        std::ptr::NonNull::new(st).map(Self).ok_or(OpusError(err))
    }

    /// Decodes a packet (`None`: conceal a lost one) into `pcm`; returns the samples written.
    /// An empty packet is refused (libopus would take it for a lost one).
    pub fn decode(&mut self, packet: Option<&[u8]>, pcm: &mut [i16]) -> Result<usize, OpusError> {
        let (data, len) = match packet {
            Some([]) => return Err(OpusError(unsafe_ffi::OPUS_INVALID_PACKET)),
            Some(p) => (
                p.as_ptr(),
                i32::try_from(p.len()).map_err(|_| OpusError(unsafe_ffi::OPUS_INVALID_PACKET))?,
            ),
            None => (std::ptr::null(), 0),
        };
        let room = i32::try_from(pcm.len()).unwrap_or(i32::MAX);
        // SAFETY: libopus reads `len` bytes of `data` and writes at most `room` samples
        // (mono) to `pcm`.
        check(unsafe {
            unsafe_ffi::opus_decode(self.0.as_ptr(), data, len, pcm.as_mut_ptr(), room, 0)
        })
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_decoder_create, destroyed once.
        unsafe { unsafe_ffi::opus_decoder_destroy(self.0.as_ptr()) }
    }
}

pub(crate) struct OpusLeg {
    decoder: Decoder,
    encoder: Encoder,
    /// The last received 48 kHz timestamp and the 8 kHz one it became, so that the 48 kHz
    /// clock's wrap does not show as a jump.
    clock: Option<(u32, u32)>,
}

impl OpusLeg {
    pub(crate) fn new() -> Result<Self, OpusError> {
        Ok(Self {
            decoder: Decoder::new(8000)?,
            encoder: Encoder::new(8000)?,
            clock: None,
        })
    }

    /// Turns the Opus packet in `buf[..len]` into the same packet carrying μ-law (payload type
    /// kept); returns its new length, or `None` for a packet that does not decode.
    pub(crate) fn ingress(&mut self, buf: &mut [u8], len: usize) -> Option<usize> {
        let range = rtp::payload_range(&buf[..len])?;
        let mut pcm = [0i16; MAX_SAMPLES];
        let n = self
            .decoder
            .decode(Some(&buf[range.clone()]), &mut pcm[..])
            .ok()?;
        let end = range.start + n;
        if end > buf.len() {
            return None;
        }
        Law::Ulaw.encode(&pcm[..n], &mut buf[range.start..end]);
        self.clock_in(buf);
        Some(end)
    }

    /// Moves a received packet's timestamp from the 48 kHz RTP clock of Opus to 8 kHz.
    pub(crate) fn clock_in(&mut self, buf: &mut [u8]) {
        let ts48 = rtp::timestamp(buf);
        let ts8 = match self.clock {
            None => ts48 / 6,
            Some((last48, last8)) => {
                last8.wrapping_add((ts48.wrapping_sub(last48) as i32 / 6) as u32)
            }
        };
        self.clock = Some((ts48, ts8));
        rtp::set_timestamp(buf, ts8);
    }

    /// Turns the G.711 packet in `buf[..len]` (its payload in `law`) into Opus; returns its
    /// new length, or `None` when its duration is not one Opus can frame (2.5–60 ms).
    pub(crate) fn egress(&mut self, buf: &mut [u8], len: usize, law: Law) -> Option<usize> {
        let range = rtp::payload_range(&buf[..len])?;
        let n = range.len();
        if !FRAME_SIZES.contains(&n) || range.start + MAX_OPUS_BYTES > buf.len() {
            return None;
        }
        let mut pcm = [0i16; MAX_SAMPLES];
        law.decode(&buf[range.clone()], &mut pcm[..n]);
        let out = &mut buf[range.start..range.start + MAX_OPUS_BYTES];
        let written = self.encoder.encode(&pcm[..n], out).ok()?;
        clock_out(buf);
        Some(range.start + written)
    }
}

/// Moves a packet's timestamp from the engine's 8 kHz clock to the 48 kHz clock of Opus.
pub(crate) fn clock_out(buf: &mut [u8]) {
    let ts8 = rtp::timestamp(buf);
    rtp::set_timestamp(buf, ts8.wrapping_mul(6));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone;

    #[test]
    fn a_tone_survives_g711_to_opus_and_back_with_clock_conversion() {
        let mut sender = OpusLeg::new().unwrap();
        let mut receiver = OpusLeg::new().unwrap();
        let tone = tone::sines(&[700.0], 8000.0, 400);
        let mut heard = Vec::new();
        for (i, frame) in tone.chunks(160).enumerate() {
            let mut buf = [0u8; 2048];
            rtp::write_header(&mut buf, 111, false, i as u16, 1000 + i as u32 * 160, 7);
            Law::Ulaw.encode(frame, &mut buf[12..172]);
            let len = sender.egress(&mut buf, 172, Law::Ulaw).unwrap();
            assert!(len < 172, "Opus is smaller than G.711: {len}");
            assert_eq!(rtp::timestamp(&buf), (1000 + i as u32 * 160) * 6);
            let len = receiver.ingress(&mut buf, len).unwrap();
            assert_eq!(len, 172);
            assert_eq!(rtp::timestamp(&buf), 1000 + i as u32 * 160);
            let mut pcm = [0i16; 160];
            Law::Ulaw.decode(&buf[12..172], &mut pcm);
            heard.extend_from_slice(&pcm);
        }
        // The codec's delay and warm-up: judge the settled part.
        let share = tone::share_at(&heard[800..], 700.0);
        assert!(share > 0.9, "700 Hz share {share}");
    }

    #[test]
    fn timestamps_follow_the_48k_clock_across_its_wrap() {
        let mut leg = OpusLeg::new().unwrap();
        let mut enc = OpusLeg::new().unwrap();
        let mut last = None;
        for i in 0..4u32 {
            let mut buf = [0u8; 2048];
            rtp::write_header(&mut buf, 111, false, i as u16, 0, 7);
            let len = enc.egress(&mut buf, 172, Law::Ulaw).unwrap();
            // Around the wrap of the 48 kHz clock.
            rtp::set_timestamp(&mut buf, (u32::MAX - 1919).wrapping_add(i * 960));
            leg.ingress(&mut buf, len).unwrap();
            let ts = rtp::timestamp(&buf);
            if let Some(prev) = last {
                assert_eq!(ts.wrapping_sub(prev), 160);
            }
            last = Some(ts);
        }
    }

    #[test]
    fn odd_durations_and_garbage_are_refused() {
        let mut leg = OpusLeg::new().unwrap();
        let mut buf = [0u8; 2048];
        rtp::write_header(&mut buf, 111, false, 1, 0, 7);
        // 30 ms of G.711 is no Opus frame size.
        assert_eq!(leg.egress(&mut buf, 12 + 240, Law::Ulaw), None);
        // An empty payload is not an Opus packet.
        assert_eq!(leg.ingress(&mut buf, 12), None);
    }
}
