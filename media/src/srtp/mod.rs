//! SRTP and SRTCP (RFC 3711) with the suites SDES trunks and phones offer (RFC 4568):
//! AES_CM_128_HMAC_SHA1_80 and _32, and AEAD_AES_128_GCM (RFC 7714). A [`Context`] protects or
//! unprotects packets in the buffer they lie in: the relay decrypts what one leg sent and
//! encrypts it for the other with no allocation and no copy of the payload.
//!
//! Written here over well-kept primitives (RustCrypto `aes`/`ctr`/`hmac`/`sha1` for AES counter
//! mode and HMAC-SHA1, `ring` for AES-GCM) rather than taken from webrtc-rs's `rtc-srtp`: that crate returns
//! every protected or unprotected packet in a newly allocated buffer, a copy and an allocation
//! per packet on the relay's hot path (measured side by side in `benches/srtp.rs`; its packets
//! and ours are checked against each other in the tests).

mod replay;
mod transform;

#[cfg(test)]
mod tests;

use replay::{ReceiveWindow, SendCounter};
use std::fmt;
use transform::Transform;

/// The SRTP crypto suites we speak, by their SDES names (RFC 4568 §6.2, RFC 7714 §14.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
    AeadAes128Gcm,
}

impl Suite {
    /// Every suite, in the order we prefer them.
    pub const ALL: [Suite; 3] = [
        Suite::AesCm128HmacSha1_80,
        Suite::AesCm128HmacSha1_32,
        Suite::AeadAes128Gcm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Suite::AeadAes128Gcm => "AEAD_AES_128_GCM",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }

    /// Master salt length: 112 bits for AES-CM, 96 for GCM.
    fn salt_len(self) -> usize {
        match self {
            Suite::AeadAes128Gcm => 12,
            _ => 14,
        }
    }

    /// Length of the master key and salt as SDES carries them, concatenated.
    pub fn material_len(self) -> usize {
        KEY_LEN + self.salt_len()
    }

    /// Bytes an SRTP packet carries beyond its RTP form (the authentication tag).
    pub fn rtp_overhead(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 => 10,
            Suite::AesCm128HmacSha1_32 => 4,
            Suite::AeadAes128Gcm => 16,
        }
    }

    /// Bytes an SRTCP packet carries beyond its RTCP form: E flag and index, and the tag (80
    /// bits for both AES-CM suites: RFC 4568 §6.2.2 keeps SRTCP's at 80).
    pub fn rtcp_overhead(self) -> usize {
        match self {
            Suite::AeadAes128Gcm => 4 + 16,
            _ => 4 + 10,
        }
    }
}

/// The most any suite adds to a packet: room a buffer keeps for protecting in place.
pub const MAX_OVERHEAD: usize = 20;

const KEY_LEN: usize = 16;
const MAX_MATERIAL: usize = 30;

/// A master key and salt for one direction of one stream, as SDES's `inline:` carries them.
/// Its `Debug` shows the suite only: keys are never logged.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MasterKey {
    suite: Suite,
    material: [u8; MAX_MATERIAL],
}

impl MasterKey {
    /// `material` is the key followed by the salt; `None` unless its length fits the suite.
    pub fn new(suite: Suite, material: &[u8]) -> Option<Self> {
        if material.len() != suite.material_len() {
            return None;
        }
        let mut key = Self {
            suite,
            material: [0; MAX_MATERIAL],
        };
        key.material[..material.len()].copy_from_slice(material);
        Some(key)
    }

    /// A fresh random key for the suite, from the operating system's generator.
    pub fn generate(suite: Suite) -> Self {
        use ring::rand::SecureRandom;
        let mut material = [0u8; MAX_MATERIAL];
        ring::rand::SystemRandom::new()
            .fill(&mut material[..suite.material_len()])
            .expect("the system random generator works");
        Self { suite, material }
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The key followed by the salt.
    pub fn material(&self) -> &[u8] {
        &self.material[..self.suite.material_len()]
    }

    fn key(&self) -> &[u8; KEY_LEN] {
        self.material[..KEY_LEN].try_into().expect("16 bytes")
    }

    fn salt(&self) -> &[u8] {
        &self.material[KEY_LEN..self.suite.material_len()]
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({}, <redacted>)", self.suite.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    #[error("packet too short for its header and tag")]
    TooShort,
    #[error("no room in the buffer for the authentication tag")]
    NoRoom,
    #[error("authentication failed")]
    Authentication,
    #[error("packet replayed or too old")]
    Replay,
    #[error("too many packets under one key")]
    KeyExhausted,
}

/// How many sources one context keeps state for. A leg has one (two while a source changes);
/// state is only created for packets that authenticated, so only a key holder can add one.
const STREAMS: usize = 4;

/// Per-SSRC state: the RTP index (rollover counter and highest sequence) and the SRTCP index.
#[derive(Clone, Copy)]
struct Stream {
    ssrc: u32,
    last_used: u64,
    rtp_rx: ReceiveWindow,
    rtcp_rx: ReceiveWindow,
    rtp_tx: SendCounter,
    rtcp_tx: u32,
}

impl Stream {
    fn new(ssrc: u32) -> Self {
        Self {
            ssrc,
            last_used: 0,
            rtp_rx: ReceiveWindow::default(),
            rtcp_rx: ReceiveWindow::default(),
            rtp_tx: SendCounter::default(),
            rtcp_tx: 0,
        }
    }
}

/// One direction of an SRTP session under one master key: what a leg's peer sends us
/// (unprotect) or what we send it (protect).
pub struct Context {
    suite: Suite,
    rtp: Transform,
    rtcp: Transform,
    streams: [Option<Stream>; STREAMS],
    uses: u64,
}

/// SRTCP's index is 31 bits (RFC 3711 §3.4).
const SRTCP_INDEX_MAX: u32 = (1 << 31) - 1;
/// The E flag of the SRTCP trailer: the packet is encrypted.
const E_FLAG: u32 = 1 << 31;

impl Context {
    pub fn new(key: &MasterKey) -> Self {
        Self {
            suite: key.suite,
            rtp: Transform::derive(key, transform::Labels::RTP),
            rtcp: Transform::derive(key, transform::Labels::RTCP),
            streams: [None; STREAMS],
            uses: 0,
        }
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The state of `ssrc`, created (in place of the least recently used) when `create`.
    fn stream(&mut self, ssrc: u32, create: bool) -> Option<&mut Stream> {
        self.uses += 1;
        let uses = self.uses;
        let at = match self
            .streams
            .iter()
            .position(|s| s.is_some_and(|s| s.ssrc == ssrc))
        {
            Some(at) => at,
            None if create => {
                let at = self
                    .streams
                    .iter()
                    .position(Option::is_none)
                    .unwrap_or_else(|| {
                        (0..STREAMS)
                            .min_by_key(|&i| self.streams[i].map_or(0, |s| s.last_used))
                            .expect("not empty")
                    });
                self.streams[at] = Some(Stream::new(ssrc));
                at
            }
            None => return None,
        };
        let stream = self.streams[at].as_mut().expect("present");
        stream.last_used = uses;
        Some(stream)
    }

    /// Protects the RTP packet in `buf[..len]`, appending the tag; the SRTP packet's length.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let packet = buf.get(..len).ok_or(SrtpError::TooShort)?;
        let header = rtp_header_len(packet)?;
        let (ssrc, seq) = (crate::rtp::ssrc(packet), crate::rtp::sequence(packet));
        let out = len
            .checked_add(self.suite.rtp_overhead())
            .filter(|&n| n <= buf.len())
            .ok_or(SrtpError::NoRoom)?;
        let stream = self.stream(ssrc, true).expect("created");
        let index = stream.rtp_tx.next(seq).map_err(|e| match e {
            replay::NoIndex::Used => SrtpError::Replay,
            replay::NoIndex::Exhausted => SrtpError::KeyExhausted,
        })?;
        self.rtp.seal_rtp(&mut buf[..out], header, len, ssrc, index);
        Ok(out)
    }

    /// Checks and decrypts the SRTP packet `buf` in place; the RTP packet's length.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let header = rtp_header_len(buf)?;
        let tag = self.suite.rtp_overhead();
        let len = buf
            .len()
            .checked_sub(tag)
            .filter(|&n| n >= header)
            .ok_or(SrtpError::TooShort)?;
        let (ssrc, seq) = (crate::rtp::ssrc(buf), crate::rtp::sequence(buf));
        let window = self
            .stream(ssrc, false)
            .map_or_else(ReceiveWindow::default, |s| s.rtp_rx);
        let index = window.estimate(seq).ok_or(SrtpError::Replay)?;
        if !window.fresh(index) {
            return Err(SrtpError::Replay);
        }
        self.rtp.open_rtp(buf, header, len, ssrc, index)?;
        self.stream(ssrc, true)
            .expect("created")
            .rtp_rx
            .accept(index);
        Ok(len)
    }

    /// Protects the compound RTCP packet in `buf[..len]` (encrypted, E flag set).
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        if len < 8 {
            return Err(SrtpError::TooShort);
        }
        let out = len
            .checked_add(self.suite.rtcp_overhead())
            .filter(|&n| n <= buf.len())
            .ok_or(SrtpError::NoRoom)?;
        let ssrc = u32::from_be_bytes(buf[4..8].try_into().expect("4 bytes"));
        let stream = self.stream(ssrc, true).expect("created");
        if stream.rtcp_tx > SRTCP_INDEX_MAX {
            return Err(SrtpError::KeyExhausted);
        }
        let index = stream.rtcp_tx;
        stream.rtcp_tx += 1;
        self.rtcp
            .seal_rtcp(&mut buf[..out], len, ssrc, index | E_FLAG);
        Ok(out)
    }

    /// Checks and decrypts the SRTCP packet `buf` in place; the RTCP packet's length.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let len = buf
            .len()
            .checked_sub(self.suite.rtcp_overhead())
            .filter(|&n| n >= 8)
            .ok_or(SrtpError::TooShort)?;
        let ssrc = u32::from_be_bytes(buf[4..8].try_into().expect("4 bytes"));
        let trailer = self.rtcp.rtcp_trailer_at(buf.len());
        let e_index = u32::from_be_bytes(buf[trailer..trailer + 4].try_into().expect("4 bytes"));
        // Unencrypted SRTCP (E = 0) is allowed by RFC 3711, but no SDES peer sends it and
        // accepting it would let a key holder's RTCP be read in the clear: refused.
        if e_index & E_FLAG == 0 {
            return Err(SrtpError::Authentication);
        }
        let index = u64::from(e_index & !E_FLAG);
        let window = self
            .stream(ssrc, false)
            .map_or_else(ReceiveWindow::default, |s| s.rtcp_rx);
        if !window.fresh(index) {
            return Err(SrtpError::Replay);
        }
        self.rtcp.open_rtcp(buf, len, ssrc, e_index)?;
        self.stream(ssrc, true)
            .expect("created")
            .rtcp_rx
            .accept(index);
        Ok(len)
    }
}

fn rtp_header_len(packet: &[u8]) -> Result<usize, SrtpError> {
    if !crate::rtp::is_rtp(packet) {
        return Err(SrtpError::TooShort);
    }
    crate::rtp::header_len(packet).ok_or(SrtpError::TooShort)
}
