//! A recording's file. WAV is written by hand rather than with `hound`, which only writes its
//! sizes at finalisation; the periodic header refresh is what makes a crash survivable, and
//! [`repair_wav`] makes a file a crash cut short whole again. A stopped recording is finished
//! here: silence trimmed, MP3 encoded, when asked.

use super::{RecordFormat, RecordSpec};

use crate::endpoint_media::FRAME;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub(super) fn push_sample(out: &mut Vec<u8>, format: RecordFormat, s: i16) {
    match format {
        RecordFormat::Pcm16 | RecordFormat::Mp3 => out.extend_from_slice(&s.to_le_bytes()),
        RecordFormat::Ulaw => out.push(crate::g711::linear_to_ulaw(s)),
    }
}

/// A 20 ms block whose every sample is under this is silence to `trim_silence` (-42 dBFS).
pub(super) const SILENCE_PEAK: i16 = 256;

/// Finishes a stopped recording's WAV: cuts leading and trailing silence if asked, and turns
/// it into MP3 if asked. Returns the final path, its size and the duration.
pub(super) fn finish_file(spec: &RecordSpec) -> io::Result<(PathBuf, u64, u64)> {
    let bytes = std::fs::read(&spec.path)?;
    let data = bytes.get(HEADER_LEN as usize..).unwrap_or_default();
    let mut pcm: Vec<i16> = match spec.format {
        RecordFormat::Ulaw => data
            .iter()
            .map(|&b| crate::g711::ulaw_to_linear(b))
            .collect(),
        _ => data
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect(),
    };
    let channels = spec.channels.count() as usize;
    if spec.trim_silence {
        let block = FRAME * channels;
        let loud = |c: &[i16]| c.iter().any(|s| s.unsigned_abs() >= SILENCE_PEAK as u16);
        let blocks: Vec<&[i16]> = pcm.chunks(block).collect();
        let first = blocks.iter().position(|c| loud(c));
        let last = blocks.iter().rposition(|c| loud(c));
        pcm = match (first, last) {
            (Some(f), Some(l)) => pcm[f * block..((l + 1) * block).min(pcm.len())].to_vec(),
            _ => Vec::new(),
        };
    }
    let duration_ms = (pcm.len() / channels / 8) as u64;
    if spec.format == RecordFormat::Mp3 {
        let mp3 = crate::mp3::encode(&pcm, channels as u8)?;
        let path = spec.path.with_extension("mp3");
        std::fs::write(&path, &mp3)?;
        std::fs::remove_file(&spec.path)?;
        return Ok((path, mp3.len() as u64, duration_ms));
    }
    let mut out = Vec::with_capacity(pcm.len() * 2);
    for &s in &pcm {
        push_sample(&mut out, spec.format, s);
    }
    let mut f = create_wav(spec)?;
    f.write_all(&out)?;
    write_sizes(&mut f, out.len() as u64)?;
    f.sync_all()?;
    Ok((
        spec.path.clone(),
        out.len() as u64 + HEADER_LEN,
        duration_ms,
    ))
}

pub(super) const HEADER_LEN: u64 = 44;

pub(super) fn create_wav(spec: &RecordSpec) -> io::Result<File> {
    if let Some(dir) = spec.path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&spec.path)?;
    f.write_all(&wav_header(spec.format, spec.channels.count() as u16, 0))?;
    Ok(f)
}

/// The 44-byte header of an 8 kHz WAV holding `data_bytes` of samples.
pub(super) fn wav_header(format: RecordFormat, channels: u16, data_bytes: u32) -> Vec<u8> {
    wav_header_at(format, channels, 8000, data_bytes)
}

pub(super) fn wav_header_at(
    format: RecordFormat,
    channels: u16,
    rate: u32,
    data_bytes: u32,
) -> Vec<u8> {
    let (tag, bits) = format.wav();
    let block = channels * bits / 8;
    let mut h = Vec::with_capacity(HEADER_LEN as usize);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(36 + data_bytes).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&tag.to_le_bytes());
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&(rate * block as u32).to_le_bytes());
    h.extend_from_slice(&block.to_le_bytes());
    h.extend_from_slice(&bits.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_bytes.to_le_bytes());
    h
}

/// An 8 kHz PCM16 WAV file of interleaved `samples`.
pub fn wav_pcm16(samples: &[i16], channels: u16) -> Vec<u8> {
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut out = wav_header(RecordFormat::Pcm16, channels, data.len() as u32);
    out.extend_from_slice(&data);
    out
}

/// A mono PCM16 WAV file of `samples` at `rate` (speech at other rates than the call's).
pub fn wav_mono_at(samples: &[i16], rate: u32) -> Vec<u8> {
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut out = wav_header_at(RecordFormat::Pcm16, 1, rate, data.len() as u32);
    out.extend_from_slice(&data);
    out
}

/// The interleaved samples and channel count of a WAV this recorder wrote (PCM16 or μ-law).
pub fn read_wav(bytes: &[u8]) -> Option<(Vec<i16>, u16)> {
    if bytes.len() < HEADER_LEN as usize || &bytes[0..4] != b"RIFF" || &bytes[36..40] != b"data" {
        return None;
    }
    let tag = u16::from_le_bytes([bytes[20], bytes[21]]);
    let channels = u16::from_le_bytes([bytes[22], bytes[23]]).max(1);
    let data = &bytes[HEADER_LEN as usize..];
    let samples = match tag {
        1 => data
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect(),
        7 => data
            .iter()
            .map(|&b| crate::g711::ulaw_to_linear(b))
            .collect(),
        _ => return None,
    };
    Some((samples, channels))
}

/// Writes the RIFF and data sizes for `data_bytes` of samples, leaving the position at the end.
pub(super) fn write_sizes(f: &mut File, data_bytes: u64) -> io::Result<()> {
    let data = data_bytes.min(u32::MAX as u64 - 36) as u32;
    f.seek(SeekFrom::Start(4))?;
    f.write_all(&(36 + data).to_le_bytes())?;
    f.seek(SeekFrom::Start(40))?;
    f.write_all(&data.to_le_bytes())?;
    f.seek(SeekFrom::End(0))?;
    Ok(())
}

/// A WAV file made whole again by [`repair_wav`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repaired {
    /// Sample bytes the header now declares.
    pub data_bytes: u64,
    pub duration_ms: u64,
}

/// Makes the header of a WAV file this recorder wrote agree with its length again (after a
/// crash cut it short). Sizes are rounded down to whole sample blocks; the duration follows
/// from the header's byte rate.
pub fn repair_wav(path: &Path) -> io::Result<Repaired> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let len = f.metadata()?.len();
    let mut header = [0u8; HEADER_LEN as usize];
    io::Read::read_exact(&mut f, &mut header)?;
    if &header[0..4] != b"RIFF" || &header[8..16] != b"WAVEfmt " || &header[36..40] != b"data" {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a WAV file written by the recorder",
        ));
    }
    let block = u16::from_le_bytes([header[32], header[33]]).max(1) as u64;
    let data = (len.saturating_sub(HEADER_LEN)) / block * block;
    f.set_len(HEADER_LEN + data)?;
    write_sizes(&mut f, data)?;
    f.sync_all()?;
    let byte_rate = u32::from_le_bytes([header[28], header[29], header[30], header[31]]).max(1);
    Ok(Repaired {
        data_bytes: data,
        duration_ms: data * 1000 / byte_rate as u64,
    })
}
