//! Prompts for playback: WAV (PCM at any rate, μ-law, A-law) and MP3 decoded by symphonia,
//! mixed down to mono and resampled to the 8 kHz the engine plays.

use crate::tone::RATE;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};
use std::io::Cursor;
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

/// Longer prompts are refused rather than held in memory (30 minutes is 28 MB at 8 kHz).
pub const MAX_SECONDS: usize = 30 * 60;

/// The most 8 kHz samples a decoded prompt may hold.
const MAX_SAMPLES: usize = MAX_SECONDS * RATE as usize;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("not a supported audio file (WAV PCM/μ-law/A-law or MP3): {0}")]
    Unsupported(String),
    #[error("the audio is corrupt: {0}")]
    Corrupt(String),
    #[error("the audio is longer than {MAX_SECONDS} s")]
    TooLong,
    #[error("the audio holds no samples")]
    Empty,
}

/// Decodes a whole file to 8 kHz mono. `extension` ("wav", "mp3") helps the probe when the
/// content is ambiguous; the content decides.
///
/// Each decoded packet is mixed down and resampled as it comes, so what is held besides the
/// file is the 8 kHz result (at most [`MAX_SECONDS`]) and one resampler chunk, whatever the
/// file's own rate and channel count: a 30-minute 384 kHz stereo file would otherwise pass
/// through gigabytes of f32.
pub fn decode_to_8k(bytes: Vec<u8>, extension: Option<&str>) -> Result<Vec<i16>, DecodeError> {
    let mut hint = Hint::new();
    if let Some(ext) = extension {
        hint.with_extension(ext);
    }
    let stream = MediaSourceStream::new(
        Box::new(Cursor::new(widen_g711_fmt(bytes))),
        Default::default(),
    );
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            stream,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| DecodeError::Unsupported(e.to_string()))?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| DecodeError::Unsupported("no audio track".into()))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| DecodeError::Unsupported("no audio parameters".into()))?;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| DecodeError::Unsupported(e.to_string()))?;

    let mut narrowing: Option<Narrowing> = None;
    let mut interleaved: Vec<f32> = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // A truncated file ends where its data ends, as players treat it.
            Err(SymphoniaError::IoError(_)) => break,
            Err(e) => return Err(DecodeError::Corrupt(e.to_string())),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buf = match decoder.decode(&packet) {
            Ok(buf) => buf,
            // One bad MP3 frame is skipped, as decoders do.
            Err(SymphoniaError::DecodeError(_)) => continue,
            Err(e) => return Err(DecodeError::Corrupt(e.to_string())),
        };
        let spec = buf.spec();
        let rate = spec.rate();
        let channels = spec.channels().count().max(1);
        let narrowing = match &mut narrowing {
            Some(n) if n.from == rate => n,
            Some(n) => {
                return Err(DecodeError::Corrupt(format!(
                    "the sample rate changes from {} to {rate} Hz",
                    n.from
                )));
            }
            None => narrowing.insert(Narrowing::new(rate, MAX_SAMPLES)?),
        };
        interleaved.resize(buf.samples_interleaved(), 0.0);
        buf.copy_to_slice_interleaved(&mut interleaved);
        for frame in interleaved.chunks_exact(channels) {
            narrowing.push(frame.iter().sum::<f32>() / channels as f32)?;
        }
    }
    let out = narrowing.ok_or(DecodeError::Empty)?.finish()?;
    if out.is_empty() {
        return Err(DecodeError::Empty);
    }
    Ok(out)
}

/// Many tools (ours included) write μ-law and A-law WAVs with the 16-byte `fmt ` chunk of
/// PCM, without the `cbSize` field that non-PCM formats are meant to carry; symphonia
/// insists on it, so such a chunk gets an empty `cbSize`.
fn widen_g711_fmt(mut bytes: Vec<u8>) -> Vec<u8> {
    let g711_in_short_fmt = bytes.len() >= 36
        && &bytes[0..4] == b"RIFF"
        && &bytes[8..16] == b"WAVEfmt "
        && bytes[16..20] == 16u32.to_le_bytes()
        && matches!(u16::from_le_bytes([bytes[20], bytes[21]]), 6 | 7);
    if g711_in_short_fmt {
        bytes[16..20].copy_from_slice(&18u32.to_le_bytes());
        bytes.splice(36..36, [0, 0]);
        let riff_len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        bytes[4..8].copy_from_slice(&riff_len.saturating_add(2).to_le_bytes());
    }
    bytes
}

/// Input frames per resampler chunk.
const CHUNK: usize = 1024;

/// Mono samples at a file's rate, in any number of pieces, to 8 kHz 16-bit: band-limited,
/// the resampler's delay trimmed, bounded at `max` output samples. What it made so far can be
/// taken as it goes ([`Narrowing::take`]: speech handed on while it is made) or whole at the
/// end ([`Narrowing::finish`]).
pub struct Narrowing {
    from: u32,
    /// None at 8 kHz: the samples pass as they are.
    fft: Option<Fft<f32>>,
    pending: Vec<f32>,
    chunk_out: Vec<f32>,
    /// Output still to drop for the resampler's delay.
    to_trim: usize,
    consumed: u64,
    out: Vec<i16>,
    /// Output taken before `out`.
    taken: usize,
    max: usize,
}

impl Narrowing {
    /// From `from` Hz, at most [`MAX_SECONDS`] of output.
    pub fn from_rate(from: u32) -> Result<Self, DecodeError> {
        Self::new(from, MAX_SAMPLES)
    }

    fn new(from: u32, max: usize) -> Result<Self, DecodeError> {
        if !(1000..=384_000).contains(&from) {
            return Err(DecodeError::Corrupt(format!("a sample rate of {from} Hz")));
        }
        let fft = (from != RATE).then(|| {
            Fft::<f32>::new(from as usize, RATE as usize, CHUNK, 1, FixedSync::Input)
                .expect("a rate in range and a positive chunk")
        });
        let (chunk_out, to_trim) = fft.as_ref().map_or((Vec::new(), 0), |f| {
            (vec![0.0; f.output_frames_max()], f.output_delay())
        });
        Ok(Self {
            from,
            fft,
            pending: Vec::with_capacity(CHUNK),
            chunk_out,
            to_trim,
            consumed: 0,
            out: Vec::new(),
            taken: 0,
            max,
        })
    }

    /// Samples in -1.0..1.0 at the input rate.
    pub fn push_all(&mut self, samples: &[f32]) -> Result<(), DecodeError> {
        samples.iter().try_for_each(|&s| self.push(s))
    }

    /// The output made so far and not yet taken (the resampler keeps back what it needs
    /// more input for).
    pub fn take(&mut self) -> Vec<i16> {
        self.taken += self.out.len();
        std::mem::take(&mut self.out)
    }

    fn made(&self) -> usize {
        self.taken + self.out.len()
    }

    fn push(&mut self, sample: f32) -> Result<(), DecodeError> {
        self.consumed += 1;
        if self.fft.is_none() {
            if self.made() >= self.max {
                return Err(DecodeError::TooLong);
            }
            self.out.push(to_i16_one(sample));
            return Ok(());
        }
        self.pending.push(sample);
        if self.pending.len() == CHUNK {
            self.run(None)?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Resamples the pending chunk (a short one when `partial` says how long); returns the
    /// samples the resampler produced, trimmed or not.
    fn run(&mut self, partial: Option<usize>) -> Result<usize, DecodeError> {
        let Some(fft) = &mut self.fft else {
            return Ok(0);
        };
        // A short chunk is passed zero-padded to its full length with `partial_len` set.
        self.pending.resize(CHUNK, 0.0);
        let input = InterleavedSlice::new(&self.pending[..], 1, CHUNK).expect("one channel");
        let len = self.chunk_out.len();
        let mut output =
            InterleavedSlice::new_mut(&mut self.chunk_out[..], 1, len).expect("one channel");
        let indexing = partial.map(|n| Indexing {
            input_offset: 0,
            output_offset: 0,
            active_channels_mask: None,
            partial_len: Some(n),
        });
        let (_, produced) = fft
            .process_into_buffer(&input, &mut output, indexing.as_ref())
            .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
        let skip = self.to_trim.min(produced);
        self.to_trim -= skip;
        if self.made() + (produced - skip) > self.max {
            return Err(DecodeError::TooLong);
        }
        self.out.extend(
            self.chunk_out[skip..produced]
                .iter()
                .map(|&s| to_i16_one(s)),
        );
        Ok(produced)
    }

    /// Flushes the last partial chunk and the resampler's tail, to the length the input
    /// implies: the output not yet taken.
    pub fn finish(mut self) -> Result<Vec<i16>, DecodeError> {
        if self.fft.is_none() {
            return Ok(self.out);
        }
        let expected =
            usize::try_from((self.consumed * u64::from(RATE)).div_ceil(u64::from(self.from)))
                .unwrap_or(usize::MAX);
        if !self.pending.is_empty() {
            let n = self.pending.len();
            self.run(Some(n))?;
            self.pending.clear();
        }
        // Zeros pumped through push out the tail still inside the resampler.
        while self.made() < expected && self.run(Some(0))? > 0 {}
        self.out.truncate(expected.saturating_sub(self.taken));
        Ok(self.out)
    }
}

fn to_i16_one(s: f32) -> i16 {
    (s * 32768.0).clamp(i16::MIN as f32, i16::MAX as f32) as i16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::share_at;

    /// A WAV file with one `fmt ` (PCM layout, 16 bytes) and one `data` chunk.
    fn wav(format_tag: u16, rate: u32, channels: u16, bits: u16, data: &[u8]) -> Vec<u8> {
        wav_fmt(format_tag, rate, channels, bits, false, data)
    }

    fn wav_fmt(
        format_tag: u16,
        rate: u32,
        channels: u16,
        bits: u16,
        cb: bool,
        data: &[u8],
    ) -> Vec<u8> {
        let block = channels * bits / 8;
        let fmt_len: u32 = if cb { 18 } else { 16 };
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(20 + fmt_len + data.len() as u32).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&fmt_len.to_le_bytes());
        out.extend_from_slice(&format_tag.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * block as u32).to_le_bytes());
        out.extend_from_slice(&block.to_le_bytes());
        out.extend_from_slice(&bits.to_le_bytes());
        if cb {
            out.extend_from_slice(&0u16.to_le_bytes());
        }
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    fn sine(freq: f32, rate: u32, seconds: f32) -> Vec<i16> {
        (0..(rate as f32 * seconds) as usize)
            .map(|i| {
                ((std::f32::consts::TAU * freq * i as f32 / rate as f32).sin() * 12000.0) as i16
            })
            .collect()
    }

    fn pcm16(samples: &[i16]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    #[test]
    fn pcm_wav_at_each_rate_becomes_the_same_tone_at_8k() {
        for rate in [8000, 16000, 44100, 48000] {
            let file = wav(1, rate, 1, 16, &pcm16(&sine(1000.0, rate, 1.0)));
            let out = decode_to_8k(file, Some("wav")).unwrap();
            assert!(
                (7900..=8100).contains(&out.len()),
                "{rate}: {} samples",
                out.len()
            );
            let share = share_at(&out[800..7200], 1000.0);
            assert!(share > 0.95, "{rate} Hz: share {share}");
        }
    }

    #[test]
    fn stereo_is_mixed_down() {
        let left = sine(600.0, 16000, 0.5);
        let right = sine(1400.0, 16000, 0.5);
        let data: Vec<i16> = left
            .iter()
            .zip(&right)
            .flat_map(|(l, r)| [*l, *r])
            .collect();
        let out = decode_to_8k(wav(1, 16000, 2, 16, &pcm16(&data)), None).unwrap();
        let (a, b) = (share_at(&out, 600.0), share_at(&out, 1400.0));
        assert!(a > 0.4 && b > 0.4, "600 Hz {a}, 1400 Hz {b}");
    }

    #[test]
    fn law_encoded_wavs_decode() {
        let tone = sine(800.0, 8000, 0.5);
        for (tag, law) in [(7u16, crate::Law::Ulaw), (6, crate::Law::Alaw)] {
            let mut data = vec![0u8; tone.len()];
            law.encode(&tone, &mut data);
            // With and without the cbSize field of the non-PCM `fmt ` chunk.
            for cb in [false, true] {
                let file = wav_fmt(tag, 8000, 1, 8, cb, &data);
                let out = decode_to_8k(file, Some("wav")).unwrap();
                assert_eq!(out.len(), 4000);
                assert!(
                    share_at(&out, 800.0) > 0.95,
                    "format tag {tag}, cbSize {cb}"
                );
            }
        }
    }

    #[test]
    fn mp3_decodes() {
        // Made by `sox -n -r 44100 -c 2 tone-1khz-44k-stereo.mp3 synth 1 sine 1000 vol 0.5`.
        let file = include_bytes!("../testdata/tone-1khz-44k-stereo.mp3").to_vec();
        let out = decode_to_8k(file, Some("mp3")).unwrap();
        // One second, give or take the encoder's padding frames.
        assert!((7800..=8800).contains(&out.len()), "{} samples", out.len());
        assert!(share_at(&out[1000..7000], 1000.0) > 0.95);
    }

    #[test]
    fn bad_input_is_refused_clearly() {
        assert!(matches!(
            decode_to_8k(b"<html>not audio</html>".to_vec(), Some("wav")),
            Err(DecodeError::Unsupported(_))
        ));
        assert_eq!(
            decode_to_8k(wav(1, 8000, 1, 16, &[]), None),
            Err(DecodeError::Empty)
        );
        let absurd = wav(1, 7, 1, 16, &pcm16(&sine(1.0, 7, 10.0)));
        assert!(matches!(
            decode_to_8k(absurd, None),
            Err(DecodeError::Corrupt(_) | DecodeError::Unsupported(_))
        ));
    }

    #[test]
    fn output_taken_as_it_is_made_is_the_whole_output() {
        let input: Vec<f32> = sine(440.0, 22_050, 1.3)
            .iter()
            .map(|&s| f32::from(s) / 32768.0)
            .collect();
        let mut whole = Narrowing::from_rate(22_050).unwrap();
        whole.push_all(&input).unwrap();
        let whole = whole.finish().unwrap();
        let mut parts = Narrowing::from_rate(22_050).unwrap();
        let mut taken = Vec::new();
        let mut early = 0;
        for (i, part) in input.chunks(4096).enumerate() {
            parts.push_all(part).unwrap();
            let got = parts.take();
            if i == 0 {
                early = got.len();
            }
            taken.extend(got);
        }
        taken.extend(parts.finish().unwrap());
        assert_eq!(taken, whole);
        // The first part's output came with the first part: all of it but what the
        // resampler holds back (its delay and an unfinished chunk).
        assert!(
            early > 4096 * 8000 / 22_050 / 2,
            "{early} samples of the first part"
        );
    }

    #[test]
    fn output_is_bounded_in_8k_samples_whatever_the_source_rate() {
        // The bound is on what is held after narrowing: 384 kHz input for 2 s of output
        // passes, a little more is refused, and the buffer never grows past the bound.
        for rate in [8000u32, 48_000, 384_000] {
            let mut n = Narrowing::new(rate, 16_000).unwrap();
            let per_out = rate as usize / 8000;
            for _ in 0..(16_000 - 1024) * per_out {
                n.push(0.25).unwrap();
            }
            let mut refused = false;
            for _ in 0..4096 * per_out {
                if n.push(0.25) == Err(DecodeError::TooLong) {
                    refused = true;
                    break;
                }
            }
            assert!(refused, "{rate} Hz: not refused");
            assert!(n.out.len() <= 16_000, "{rate} Hz: {} held", n.out.len());
        }
        // Narrowed lengths follow the input exactly, pieces of any size.
        let mut n = Narrowing::new(44_100, MAX_SAMPLES).unwrap();
        for _ in 0..44_100 * 3 + 7 {
            n.push(0.0).unwrap();
        }
        assert_eq!(n.finish().unwrap().len(), 24_002);
        assert!(matches!(
            Narrowing::new(500_000, MAX_SAMPLES),
            Err(DecodeError::Corrupt(_))
        ));
    }
}
