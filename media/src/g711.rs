//! G.711 μ-law and A-law (ITU-T G.711), and direct μ-law↔A-law conversion tables.
//!
//! G.711 is a few dozen lines and the crates offering it either pull in unrelated codecs or lack
//! the direct law-to-law tables the relay uses to transcode in place.

/// Decodes one μ-law byte to 16-bit linear PCM.
pub const fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let t = (((u & 0x0f) as i16) << 3) + 0x84;
    let t = t << ((u & 0x70) >> 4);
    if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }
}

/// Decodes one A-law byte to 16-bit linear PCM.
pub const fn alaw_to_linear(a: u8) -> i16 {
    let a = a ^ 0x55;
    let mut t = ((a & 0x0f) as i16) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => t = (t + 0x108) << (seg - 1),
    }
    if a & 0x80 != 0 { t } else { -t }
}

/// Encodes 16-bit linear PCM to μ-law.
pub const fn linear_to_ulaw(pcm: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut x = pcm as i32;
    let sign = if x < 0 {
        x = -x;
        0x80
    } else {
        0
    };
    if x > CLIP {
        x = CLIP;
    }
    x += BIAS;
    let mut exp = 7;
    let mut mask = 0x4000;
    while exp > 0 && x & mask == 0 {
        exp -= 1;
        mask >>= 1;
    }
    let mantissa = (x >> (exp + 3)) & 0x0f;
    !(sign | (exp << 4) | mantissa) as u8
}

/// Encodes 16-bit linear PCM to A-law.
pub const fn linear_to_alaw(pcm: i16) -> u8 {
    let mut x = pcm as i32;
    let mask = if x >= 0 {
        0xd5
    } else {
        x = -x - 1;
        0x55
    };
    if x > 32767 {
        x = 32767;
    }
    let out = if x < 256 {
        x >> 4
    } else {
        let mut seg = 1;
        let mut v = x >> 8;
        while v > 1 {
            v >>= 1;
            seg += 1;
        }
        (seg << 4) | ((x >> (seg + 3)) & 0x0f)
    };
    (out ^ mask) as u8
}

const fn table(ulaw_to_alaw: bool) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if ulaw_to_alaw {
            linear_to_alaw(ulaw_to_linear(i as u8))
        } else {
            linear_to_ulaw(alaw_to_linear(i as u8))
        };
        i += 1;
    }
    t
}

/// μ-law byte → A-law byte, through the linear value.
pub static ULAW_TO_ALAW: [u8; 256] = table(true);
/// A-law byte → μ-law byte.
pub static ALAW_TO_ULAW: [u8; 256] = table(false);

/// G.711 law.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    Ulaw,
    Alaw,
}

impl Law {
    /// RFC 3551 static payload type.
    pub fn static_pt(self) -> u8 {
        match self {
            Law::Ulaw => 0,
            Law::Alaw => 8,
        }
    }

    /// Decodes a payload into linear samples (as many as both hold).
    pub fn decode(self, payload: &[u8], out: &mut [i16]) {
        let f = match self {
            Law::Ulaw => ulaw_to_linear,
            Law::Alaw => alaw_to_linear,
        };
        for (o, &b) in out.iter_mut().zip(payload) {
            *o = f(b);
        }
    }

    /// Encodes linear samples into a payload (as many as both hold).
    pub fn encode(self, pcm: &[i16], out: &mut [u8]) {
        let f = match self {
            Law::Ulaw => linear_to_ulaw,
            Law::Alaw => linear_to_alaw,
        };
        for (o, &s) in out.iter_mut().zip(pcm) {
            *o = f(s);
        }
    }
}

/// Converts a payload between laws in place.
pub fn transcode_in_place(payload: &mut [u8], table: &[u8; 256]) {
    for b in payload {
        *b = table[*b as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Silence and full scale in both laws.
        assert_eq!(linear_to_ulaw(0), 0xff);
        assert_eq!(linear_to_alaw(0), 0xd5);
        assert_eq!(ulaw_to_linear(0xff), 0);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(alaw_to_linear(0xd5), 8);
        assert_eq!(alaw_to_linear(0x2a), -32256);
        assert_eq!(alaw_to_linear(0xaa), 32256);
    }

    #[test]
    fn every_code_survives_decode_encode() {
        for b in 0..=255u8 {
            assert_eq!(linear_to_alaw(alaw_to_linear(b)), b, "A-law {b:#x}");
            let back = linear_to_ulaw(ulaw_to_linear(b));
            // μ-law has two zeros (0x7f and 0xff); both decode to 0.
            assert!(
                back == b || (b == 0x7f && back == 0xff),
                "μ-law {b:#x} -> {back:#x}"
            );
        }
    }

    #[test]
    fn law_conversion_stays_within_quantisation_error() {
        for b in 0..=255u8 {
            let direct = ulaw_to_linear(b) as i32;
            let via_alaw = alaw_to_linear(ULAW_TO_ALAW[b as usize]) as i32;
            // The A-law step at this magnitude bounds the error.
            let step = (direct.abs() / 16).max(16);
            assert!(
                (direct - via_alaw).abs() <= step,
                "{b:#x}: {direct} vs {via_alaw}"
            );
        }
    }
}
