//! MP3 encoding (LAME) of 8 kHz recordings, for `.mp3` recordings and downloads. LAME is the
//! encoder everyone ships; there is no maintained pure-Rust MP3 encoder.

use mp3lame_encoder::{Bitrate, Builder, FlushNoGap, InterleavedPcm, MonoPcm, Quality};
use std::io;

/// Encodes 8 kHz PCM (`channels` 1, or 2 interleaved) at 32 kbit/s.
pub fn encode(pcm: &[i16], channels: u8) -> io::Result<Vec<u8>> {
    let fail = |what: &str| io::Error::other(format!("MP3 encoder: {what}"));
    let mut b = Builder::new().ok_or_else(|| fail("cannot start LAME"))?;
    b.set_num_channels(channels)
        .map_err(|e| fail(&e.to_string()))?;
    b.set_sample_rate(8000).map_err(|e| fail(&e.to_string()))?;
    b.set_brate(Bitrate::Kbps32)
        .map_err(|e| fail(&e.to_string()))?;
    b.set_quality(Quality::Good)
        .map_err(|e| fail(&e.to_string()))?;
    let mut encoder = b.build().map_err(|e| fail(&e.to_string()))?;
    // LAME's documented worst case: 1.25 × samples + 7200 bytes.
    let mut out = Vec::with_capacity(pcm.len() * 5 / 4 + 7200);
    let written = if channels == 2 {
        encoder.encode_to_vec(InterleavedPcm(pcm), &mut out)
    } else {
        encoder.encode_to_vec(MonoPcm(pcm), &mut out)
    };
    written.map_err(|e| fail(&e.to_string()))?;
    encoder
        .flush_to_vec::<FlushNoGap>(&mut out)
        .map_err(|e| fail(&e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::decode::decode_to_8k;
    use crate::tone;

    #[test]
    fn an_encoded_tone_decodes_back_to_the_tone() {
        let pcm = tone::sines(&[1000.0], 8000.0, 1000);
        let mp3 = super::encode(&pcm, 1).unwrap();
        // 32 kbit/s for a second, give or take the frame padding.
        assert!((3500..5500).contains(&mp3.len()), "{} bytes", mp3.len());
        let back = decode_to_8k(mp3, Some("mp3")).unwrap();
        assert!((7500..9500).contains(&back.len()), "{} samples", back.len());
        // A lossy codec at a low rate: most, not all, of the energy stays at 1 kHz.
        assert!(tone::share_at(&back[1000..7000], 1000.0) > 0.8);
    }
}
