//! Prompts for playback: WAV (PCM at any rate, μ-law, A-law) and MP3 decoded by symphonia,
//! mixed down to mono and resampled to the 8 kHz the engine plays.

use crate::tone::RATE;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};
use std::io::Cursor;
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

/// Longer prompts are refused rather than held in memory (30 minutes is 28 MB at 8 kHz).
pub const MAX_SECONDS: usize = 30 * 60;

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
pub fn decode_to_8k(bytes: Vec<u8>, extension: Option<&str>) -> Result<Vec<i16>, DecodeError> {
    let (mono, rate) = decode_mono(widen_g711_fmt(bytes), extension)?;
    if mono.is_empty() {
        return Err(DecodeError::Empty);
    }
    if !(1000..=384_000).contains(&rate) {
        return Err(DecodeError::Corrupt(format!("a sample rate of {rate} Hz")));
    }
    Ok(to_i16(&resample(&mono, rate, RATE)))
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

/// The file's audio as mono f32 at its own rate.
fn decode_mono(bytes: Vec<u8>, extension: Option<&str>) -> Result<(Vec<f32>, u32), DecodeError> {
    let mut hint = Hint::new();
    if let Some(ext) = extension {
        hint.with_extension(ext);
    }
    let stream = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
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

    let mut mono = Vec::new();
    let mut interleaved: Vec<f32> = Vec::new();
    let mut rate = 0;
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
        rate = spec.rate();
        let channels = spec.channels().count().max(1);
        interleaved.resize(buf.samples_interleaved(), 0.0);
        buf.copy_to_slice_interleaved(&mut interleaved);
        mono.extend(
            interleaved
                .chunks_exact(channels)
                .map(|f| f.iter().sum::<f32>() / channels as f32),
        );
        if mono.len() > MAX_SECONDS * rate as usize {
            return Err(DecodeError::TooLong);
        }
    }
    Ok((mono, rate))
}

/// Resamples a whole clip (band-limited, delay trimmed); the identity when the rates agree.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || samples.is_empty() {
        return samples.to_vec();
    }
    let mut resampler = Fft::<f32>::new(from as usize, to as usize, 1024, 1, FixedSync::Input)
        .expect("positive rates and chunk size");
    let input = InterleavedSlice::new(samples, 1, samples.len()).expect("one channel");
    resampler
        .process_all(&input, samples.len(), None)
        .expect("buffers sized by the resampler")
        .take_data()
}

/// f32 in [-1, 1] to 16-bit samples, clipping.
pub fn to_i16(samples: &[f32]) -> Vec<i16> {
    samples
        .iter()
        .map(|&s| (s * 32768.0).clamp(i16::MIN as f32, i16::MAX as f32) as i16)
        .collect()
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
}
