//! WebRTC legs: a browser's media on its media worker's browser socket, which every browser
//! on that worker shares ([`mux`] tells whose a datagram is). On it each browser multiplexes
//! (RFC 7983) ICE connectivity checks (STUN), the DTLS handshake that keys SRTP, and
//! SRTP/SRTCP (`rtcp-mux`). The engine is ICE-lite toward it ([`ice`]), the DTLS
//! server ([`dtls`]), and once keyed relays its SRTP through the same in-place path as an SDES
//! peer's ([`crate::srtp`]): nothing here touches an RTP packet.
//!
//! A [`Transport`] is one leg's state machine, fed datagrams and the time, sans-IO: it
//! answers checks, runs the handshake, and tells the engine which address the browser chose
//! ([`Event::Selected`]), the keys ([`Event::Secured`]), and when the leg is lost.

mod dtls;
pub mod ice;
pub mod mux;
#[cfg(test)]
mod tests;

use crate::SrtpKeys;
pub use ice::Credentials;
use rtc_dtls::crypto::Certificate;
use rtc_dtls::crypto_provider::RTCCryptoProvider;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a leg may go without a valid connectivity check before its consent to receive
/// media lapses (RFC 7675 §5.1: 30 s; browsers check every ~5 s).
pub const CONSENT_LIFETIME: Duration = Duration::from_secs(30);

/// How long a leg may take from its first check to a completed handshake.
pub const SETUP_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum WebRtcError {
    #[error("DTLS: {0}")]
    Dtls(String),
}

/// What datagram a first byte announces on a WebRTC leg's socket (RFC 7983 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demux {
    Stun,
    Dtls,
    /// RTP or RTCP (told apart by their second byte, RFC 5761 §4).
    Media,
    Other,
}

impl Demux {
    pub fn of(packet: &[u8]) -> Self {
        match packet.first() {
            Some(0..=3) => Demux::Stun,
            Some(20..=63) => Demux::Dtls,
            Some(128..=191) => Demux::Media,
            _ => Demux::Other,
        }
    }
}

/// The certificate our DTLS presents to every browser, and its fingerprint for our SDP. One
/// per process, made at start (WebRTC certificates are self-signed and prove nothing but
/// continuity with the SDP that named them).
pub struct Identity {
    certificate: Certificate,
    crypto: Arc<dyn RTCCryptoProvider>,
    fingerprint: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// A fresh ECDSA P-256 certificate.
    pub fn generate() -> Result<Arc<Self>, WebRtcError> {
        let crypto = rtc_dtls::crypto_provider::default_provider()
            .map_err(|e| WebRtcError::Dtls(e.to_string()))?;
        let certificate =
            Certificate::generate_self_signed(vec!["switchboard".into()], crypto.crypto())
                .map_err(|e| WebRtcError::Dtls(e.to_string()))?;
        let der = certificate.certificate.first().expect("one certificate");
        let fingerprint = format!("sha-256 {}", colon_hex(&sha256(der)));
        Ok(Arc::new(Self {
            certificate,
            crypto,
            fingerprint,
        }))
    }

    /// The process's identity, made on first use.
    pub fn shared() -> Result<Arc<Self>, WebRtcError> {
        static ONE: std::sync::OnceLock<Arc<Identity>> = std::sync::OnceLock::new();
        if let Some(identity) = ONE.get() {
            return Ok(identity.clone());
        }
        let made = Self::generate()?;
        Ok(ONE.get_or_init(|| made).clone())
    }

    /// `a=fingerprint`'s value: `sha-256 AB:CD:…`.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

fn colon_hex(bytes: &[u8]) -> String {
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// A certificate fingerprint from SDP (RFC 8122 §5): a hash function and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    algorithm: &'static ring::digest::Algorithm,
    value: Vec<u8>,
}

impl Fingerprint {
    /// `sha-256 AB:CD:…` (SHA-256, -384 and -512: what browsers send; SHA-1 is not trusted).
    pub fn parse(text: &str) -> Option<Self> {
        let (name, hex) = text.trim().split_once(' ')?;
        let algorithm = match name.to_ascii_lowercase().as_str() {
            "sha-256" => &ring::digest::SHA256,
            "sha-384" => &ring::digest::SHA384,
            "sha-512" => &ring::digest::SHA512,
            _ => return None,
        };
        let value = (hex.trim().split(':'))
            .map(|b| {
                (b.len() == 2)
                    .then(|| u8::from_str_radix(b, 16).ok())
                    .flatten()
            })
            .collect::<Option<Vec<u8>>>()?;
        (value.len() == algorithm.output_len()).then_some(Self { algorithm, value })
    }

    /// Whether the DER certificate `der` is the one this fingerprint names.
    pub fn matches(&self, der: &[u8]) -> bool {
        ring::digest::digest(self.algorithm, der).as_ref() == self.value.as_slice()
    }
}

/// What makes an endpoint a WebRTC leg: the process's identity, the ICE credentials agreed in
/// SDP and the certificate fingerprint the browser gave.
#[derive(Clone, Debug)]
pub struct WebRtcConfig {
    pub identity: Arc<Identity>,
    pub ice: Credentials,
    pub remote_fingerprint: Fingerprint,
}

/// The same leg: the same credentials and fingerprint. A change is an ICE restart or a new
/// DTLS association (RFC 5763 §6.7.1), and the leg starts over.
impl PartialEq for WebRtcConfig {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.identity, &other.identity)
            && self.ice == other.ice
            && self.remote_fingerprint == other.remote_fingerprint
    }
}

impl Eq for WebRtcConfig {}

/// What a leg's transport tells the engine.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// The browser nominated this address: media goes there, and comes from there.
    Selected(SocketAddr),
    /// DTLS completed with the browser whose fingerprint the SDP gave: its SRTP keys.
    Secured(SrtpKeys),
    /// The leg cannot carry media: the handshake failed, or consent lapsed.
    Lost(&'static str),
}

/// Whether authentic media from an address is taken ([`Transport::media_from`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaSource {
    /// No check proved it: dropped.
    Unproved,
    /// A proved address: taken, and media still goes where it went.
    Proved,
    /// The browser moved its media to this proved address before nominating one: taken, and
    /// media goes there from now on.
    Moved,
}

/// One WebRTC leg's ICE-lite and DTLS state.
pub struct Transport {
    config: WebRtcConfig,
    dtls: dtls::Dtls,
    /// The address the browser nominated (or, before it does, last proved by a check).
    selected: Option<SocketAddr>,
    nominated: bool,
    /// Addresses that passed a check: only they may speak DTLS.
    checked: Vec<SocketAddr>,
    first_check: Option<Instant>,
    last_check: Option<Instant>,
    secured: bool,
    lost: bool,
}

/// A browser tries a handful of candidate pairs; more checked addresses than this are not
/// remembered (the oldest gives way).
const MAX_CHECKED: usize = 8;

impl Transport {
    /// A leg on the socket bound at `local`.
    pub fn new(local: SocketAddr, config: WebRtcConfig) -> Result<Self, WebRtcError> {
        let dtls = dtls::Dtls::new(local, &config.identity, &config.remote_fingerprint)?;
        Ok(Self {
            config,
            dtls,
            selected: None,
            nominated: false,
            checked: Vec::new(),
            first_check: None,
            last_check: None,
            secured: false,
            lost: false,
        })
    }

    pub fn config(&self) -> &WebRtcConfig {
        &self.config
    }

    /// An ICE restart (RFC 8445 §9): checks must use the new credentials from now on; the
    /// pair in use carries media until the browser nominates another, and the DTLS
    /// association and its SRTP keys stay (a restart of ICE is not one of DTLS, RFC 8842
    /// §4.4).
    pub fn restart_ice(&mut self, config: WebRtcConfig) {
        self.config = config;
        self.nominated = false;
    }

    /// Whether SRTP keys were agreed: until then the leg's media is dropped.
    pub fn is_secured(&self) -> bool {
        self.secured
    }

    /// A datagram that is not media (STUN or DTLS) from `src`; datagrams to send go to `out`.
    pub fn handle(
        &mut self,
        now: Instant,
        src: SocketAddr,
        data: &[u8],
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) -> Option<Event> {
        if self.lost {
            return None;
        }
        match Demux::of(data) {
            Demux::Stun => self.on_check(now, src, data, out),
            Demux::Dtls if self.checked.contains(&src) => {
                let mut records = Vec::new();
                let progress = self.dtls.input(now, src, data, &mut records);
                // Replies go where the browser's media goes now (or, before it nominated, to
                // where the record came from).
                let to = if self.nominated {
                    self.selected.unwrap_or(src)
                } else {
                    src
                };
                out.extend(records.into_iter().map(|r| (to, r)));
                match progress {
                    dtls::Progress::Pending => None,
                    dtls::Progress::Secured(keys) => {
                        self.secured = true;
                        Some(Event::Secured(keys))
                    }
                    dtls::Progress::Failed => self.lose("dtls-failed"),
                }
            }
            _ => None,
        }
    }

    fn on_check(
        &mut self,
        now: Instant,
        src: SocketAddr,
        data: &[u8],
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) -> Option<Event> {
        let crypto = self.config.identity.crypto.crypto();
        let answered = ice::answer(&self.config.ice, src, data, crypto)?;
        out.push((src, answered.response));
        self.first_check.get_or_insert(now);
        self.last_check = Some(now);
        if !self.checked.contains(&src) {
            if self.checked.len() == MAX_CHECKED {
                self.checked.remove(0);
            }
            self.checked.push(src);
        }
        // A nomination picks the address; before one, the first proved address serves, so
        // a browser that starts DTLS before nominating is heard.
        let pick = if answered.nominated {
            self.nominated = true;
            self.selected != Some(src)
        } else {
            self.selected.is_none()
        };
        if pick {
            self.selected = Some(src);
            return Some(Event::Selected(src));
        }
        None
    }

    /// Authentic media (SRTP or SRTCP that opened with the leg's keys) came from `src`, which
    /// is not where media goes now: whether to take it, and where media goes from now on.
    ///
    /// A browser sends on the pair it has chosen, which need not be the one it nominated, or
    /// the first one proved: Chrome starts on the first pair that works, moves to a better one
    /// as soon as that one answers, and nominates it only later (about a second, seen under
    /// load). So media is taken from any address a check proved (RFC 8445 §12.3 has an agent
    /// receive on any valid pair), never from another; until a nomination, media goes back
    /// where the browser's media now comes from (its choice, which it can receive on); after
    /// one, to the nominated address.
    pub fn media_from(&mut self, src: SocketAddr) -> MediaSource {
        if self.lost || !self.checked.contains(&src) {
            return MediaSource::Unproved;
        }
        if self.nominated || self.selected == Some(src) {
            return MediaSource::Proved;
        }
        self.selected = Some(src);
        MediaSource::Moved
    }

    fn lose(&mut self, why: &'static str) -> Option<Event> {
        self.lost = true;
        Some(Event::Lost(why))
    }

    /// When [`Transport::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.lost {
            return None;
        }
        let consent = self.last_check.map(|t| t + CONSENT_LIFETIME);
        let setup = (!self.secured)
            .then_some(self.first_check.map(|t| t + SETUP_LIMIT))
            .flatten();
        [consent, setup, self.dtls.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Retransmits the handshake's flights, and loses a leg whose consent lapsed or that
    /// never completed its handshake.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) -> Option<Event> {
        if self.lost {
            return None;
        }
        if self.last_check.is_some_and(|t| now >= t + CONSENT_LIFETIME) {
            return self.lose("consent-expired");
        }
        if !self.secured && self.first_check.is_some_and(|t| now >= t + SETUP_LIMIT) {
            return self.lose("dtls-timeout");
        }
        if self.dtls.poll_timeout().is_some_and(|t| now >= t) {
            let mut records = Vec::new();
            let progress = self.dtls.handle_timeout(now, &mut records);
            if let Some(to) = self.selected {
                out.extend(records.into_iter().map(|r| (to, r)));
            }
            if progress == dtls::Progress::Failed {
                return self.lose("dtls-failed");
            }
        }
        None
    }
}
