//! SDP (RFC 4566) as far as an anchoring B2BUA needs it: parse, inspect the audio stream, and
//! write fresh descriptions for each leg (RFC 3264 offer/answer lives in [`offer_answer`]).
//!
//! Hand-written rather than the webrtc-rs `sdp` crate: that crate rejects descriptions real
//! trunks send (missing `s=`/`t=`, bare LF line ends) and we only read a handful of lines; the
//! descriptions we send are generated from [`AudioStream`], never edited in place.

pub mod crypto;
pub mod offer_answer;

pub use crypto::Crypto;

use std::fmt::{self, Write};
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP does not start with v=0")]
    NoVersion,
    #[error("malformed SDP line {0:?}")]
    BadLine(String),
    #[error("malformed {field} in SDP: {value:?}")]
    BadField { field: &'static str, value: String },
    #[error("SDP has no usable connection address for the audio stream")]
    NoConnection,
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    pub origin: Option<String>,
    pub connection: Option<IpAddr>,
    pub attributes: Vec<Attribute>,
    pub media: Vec<Media>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub kind: String,
    pub port: u16,
    pub protocol: String,
    pub formats: Vec<String>,
    pub connection: Option<IpAddr>,
    pub attributes: Vec<Attribute>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

impl Sdp {
    pub fn parse(text: &[u8]) -> Result<Self, SdpError> {
        let text =
            std::str::from_utf8(text).map_err(|_| SdpError::BadLine("<not UTF-8>".into()))?;
        let mut lines = text.lines().map(str::trim_end).filter(|l| !l.is_empty());
        if lines.next() != Some("v=0") {
            return Err(SdpError::NoVersion);
        }
        let mut sdp = Sdp {
            origin: None,
            connection: None,
            attributes: Vec::new(),
            media: Vec::new(),
        };
        for line in lines {
            let (kind, value) = match line.split_once('=') {
                Some((k, v)) if k.len() == 1 => (k.as_bytes()[0], v),
                _ => return Err(SdpError::BadLine(line.to_owned())),
            };
            match (kind, sdp.media.last_mut()) {
                (b'm', _) => sdp.media.push(Media::parse(value)?),
                (b'o', None) => sdp.origin = Some(value.to_owned()),
                (b'c', None) => sdp.connection = parse_connection(value)?,
                (b'c', Some(m)) => m.connection = parse_connection(value)?,
                (b'a', None) => sdp.attributes.push(Attribute::parse(value)),
                (b'a', Some(m)) => m.attributes.push(Attribute::parse(value)),
                // Other lines (s, t, b, i, u, e, p, k, r, z) carry nothing we relay.
                _ => {}
            }
        }
        Ok(sdp)
    }

    /// The audio streams we could take, in order: a non-zero port and an RTP profile, plain
    /// (`RTP/AVP`, `RTP/AVPF`), SRTP keyed in the SDP (`RTP/SAVP`, `RTP/SAVPF` with an
    /// `a=crypto` line we can use), or a browser's (`UDP/TLS/RTP/SAVPF` with ICE credentials,
    /// a fingerprint and `rtcp-mux`). Anything else is declined like any other stream.
    pub fn audio_streams(&self) -> impl Iterator<Item = (usize, &Media)> {
        self.media.iter().enumerate().filter(|(_, m)| {
            m.kind == "audio"
                && m.port != 0
                && match m.profile() {
                    Some(Profile::Sdes) => m.crypto().next().is_some(),
                    Some(Profile::Plain) => true,
                    Some(Profile::Dtls) => self.ice_dtls(m).is_some(),
                    None => false,
                }
        })
    }

    /// A browser stream's ICE and DTLS parameters, from the m-line or the session; `None`
    /// unless it has all it needs (credentials, a fingerprint, `rtcp-mux`: a lite server
    /// takes RTCP on the RTP port only).
    fn ice_dtls(&self, m: &Media) -> Option<IceDtls> {
        let attr = |name: &str| m.attr(name).or_else(|| attr_in(&self.attributes, name));
        let bounded = |v: &str, max: usize| (!v.is_empty() && v.len() <= max).then(|| v.to_owned());
        m.attr("rtcp-mux")?;
        Some(IceDtls {
            ufrag: bounded(attr("ice-ufrag")?.trim(), 256)?,
            pwd: bounded(attr("ice-pwd")?.trim(), 256)?,
            fingerprint: bounded(attr("fingerprint")?.trim(), 200)?,
            setup: match attr("setup").map(str::trim) {
                Some("active") => Setup::Active,
                Some("passive") => Setup::Passive,
                _ => Setup::ActPass,
            },
            mid: m.attr("mid").and_then(|v| bounded(v.trim(), 32)),
            lite: attr("ice-lite").is_some(),
        })
    }

    /// The first audio stream we could take (see [`Sdp::audio_streams`]).
    pub fn audio(&self) -> Option<(usize, &Media)> {
        self.audio_streams().next()
    }

    /// The first audio stream for which `wanted` holds, judged by its [`AudioStream`].
    pub fn audio_where(
        &self,
        wanted: impl Fn(&AudioStream) -> bool,
    ) -> Result<Option<(usize, AudioStream)>, SdpError> {
        for (index, _) in self.audio_streams() {
            let stream = self.audio_stream_at(index)?;
            if wanted(&stream) {
                return Ok(Some((index, stream)));
            }
        }
        Ok(None)
    }

    /// The audio stream as the description's author wants to receive it.
    pub fn audio_stream(&self) -> Result<Option<AudioStream>, SdpError> {
        match self.audio() {
            Some((index, _)) => self.audio_stream_at(index).map(Some),
            None => Ok(None),
        }
    }

    /// The stream of m-line `index` (one of [`Sdp::audio_streams`]).
    fn audio_stream_at(&self, index: usize) -> Result<AudioStream, SdpError> {
        let m = &self.media[index];
        let ip = m
            .connection
            .or(self.connection)
            .ok_or(SdpError::NoConnection)?;
        let attr = |name: &str| m.attr(name).or_else(|| attr_in(&self.attributes, name));
        let mut codecs = Vec::new();
        let mut telephone_event = None;
        for fmt in &m.formats {
            let pt: u8 = fmt.parse().map_err(|_| SdpError::BadField {
                field: "payload type",
                value: fmt.clone(),
            })?;
            let Some(codec) = Codec::from_media(m, pt) else {
                continue;
            };
            if codec.name.eq_ignore_ascii_case("telephone-event") {
                if codec.rate == 8000 && telephone_event.is_none() {
                    telephone_event = Some(pt);
                }
            } else {
                codecs.push(codec);
            }
        }
        let rtcp_port = m
            .attr("rtcp")
            .and_then(|v| v.split_whitespace().next()?.parse().ok());
        let direction = Direction::from_attributes(&m.attributes)
            .or_else(|| Direction::from_attributes(&self.attributes))
            .unwrap_or(Direction::SendRecv);
        // RFC 2543 hold: c=0.0.0.0 means "do not send to me".
        let addr = (!ip.is_unspecified()).then(|| SocketAddr::new(ip, m.port));
        Ok(AudioStream {
            savp: m.profile() == Some(Profile::Sdes),
            crypto: m.crypto().collect(),
            webrtc: self
                .ice_dtls(m)
                .filter(|_| m.profile() == Some(Profile::Dtls)),
            addr,
            rtcp: addr
                .map(|a| SocketAddr::new(a.ip(), rtcp_port.unwrap_or(a.port().wrapping_add(1)))),
            codecs,
            telephone_event,
            ptime: attr("ptime").and_then(|v| v.trim().parse().ok()),
            direction,
        })
    }
}

fn parse_connection(value: &str) -> Result<Option<IpAddr>, SdpError> {
    let bad = || SdpError::BadField {
        field: "c=",
        value: value.to_owned(),
    };
    let mut parts = value.split_whitespace();
    let (Some("IN"), Some(_family), Some(addr)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    // Multicast TTL suffixes ("/127") are not used by unicast peers.
    let addr = addr.split('/').next().unwrap_or(addr);
    // A host name cannot be anchored to; treat it as unusable rather than failing the call.
    Ok(addr.parse().ok())
}

fn attr_in<'a>(attrs: &'a [Attribute], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(name))
        .map(|a| a.value.as_deref().unwrap_or(""))
}

impl Media {
    fn parse(value: &str) -> Result<Self, SdpError> {
        let mut parts = value.split_whitespace();
        let bad = || SdpError::BadField {
            field: "m=",
            value: value.to_owned(),
        };
        let kind = parts.next().ok_or_else(bad)?.to_owned();
        let port = parts.next().ok_or_else(bad)?;
        // "port/count" is allowed; we use the first port.
        let port = port
            .split('/')
            .next()
            .unwrap_or(port)
            .parse()
            .map_err(|_| bad())?;
        let protocol = parts.next().ok_or_else(bad)?.to_owned();
        let formats: Vec<String> = parts.map(str::to_owned).collect();
        if formats.is_empty() {
            return Err(bad());
        }
        Ok(Media {
            kind,
            port,
            protocol,
            formats,
            connection: None,
            attributes: Vec::new(),
        })
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        attr_in(&self.attributes, name)
    }

    /// The stream's transport profile; `None` for one we do not carry.
    fn profile(&self) -> Option<Profile> {
        match self.protocol.to_ascii_uppercase().as_str() {
            "RTP/AVP" | "RTP/AVPF" => Some(Profile::Plain),
            "RTP/SAVP" | "RTP/SAVPF" => Some(Profile::Sdes),
            "UDP/TLS/RTP/SAVPF" | "UDP/TLS/RTP/SAVP" => Some(Profile::Dtls),
            _ => None,
        }
    }

    /// The stream's usable SDES keys, at most 16 (an offer lists a handful).
    fn crypto(&self) -> impl Iterator<Item = Crypto> + '_ {
        self.attributes
            .iter()
            .filter(|a| a.name.eq_ignore_ascii_case("crypto"))
            .filter_map(|a| Crypto::parse(a.value.as_deref()?))
            .take(16)
    }

    /// The `m=` line of this stream with port 0: how an answer declines it (RFC 3264 §6).
    pub fn rejected(&self) -> String {
        format!(
            "m={} 0 {} {}\r\n",
            self.kind,
            self.protocol,
            self.formats.join(" ")
        )
    }
}

impl Attribute {
    fn parse(value: &str) -> Self {
        match value.split_once(':') {
            Some((n, v)) => Attribute {
                name: n.to_owned(),
                value: Some(v.to_owned()),
            },
            None => Attribute {
                name: value.to_owned(),
                value: None,
            },
        }
    }
}

/// How a stream's RTP is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Profile {
    Plain,
    /// SRTP keyed in the SDP (`a=crypto`, RFC 4568).
    Sdes,
    /// SRTP keyed by DTLS, over ICE: a browser (RFC 8829).
    Dtls,
}

/// The DTLS role a description's author takes (RFC 4145 `a=setup`, RFC 5763 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    ActPass,
    Active,
    Passive,
}

impl Setup {
    pub fn as_str(self) -> &'static str {
        match self {
            Setup::ActPass => "actpass",
            Setup::Active => "active",
            Setup::Passive => "passive",
        }
    }
}

/// What a browser's stream (or ours toward one) carries besides RTP: ICE credentials, the
/// DTLS certificate's fingerprint and role, the BUNDLE media id. Bounded in length as parsed.
#[derive(Clone, PartialEq, Eq)]
pub struct IceDtls {
    pub ufrag: String,
    pub pwd: String,
    /// `sha-256 AB:CD:…`.
    pub fingerprint: String,
    pub setup: Setup,
    pub mid: Option<String>,
    /// The author is ICE-lite (we are, in what we write).
    pub lite: bool,
}

/// The password stays out of logs.
impl fmt::Debug for IceDtls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceDtls")
            .field("ufrag", &self.ufrag)
            .field("fingerprint", &self.fingerprint)
            .field("setup", &self.setup)
            .field("mid", &self.mid)
            .field("lite", &self.lite)
            .finish_non_exhaustive()
    }
}

/// Media direction (RFC 3264 §5.1), from the point of view of the description's author.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn from_attributes(attrs: &[Attribute]) -> Option<Self> {
        attrs.iter().rev().find_map(|a| match a.name.as_str() {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        })
    }

    /// The direction an answer takes to an offer in this direction.
    pub fn answer(self) -> Self {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    /// Whether the author will send media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the author wants to receive media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

/// One payload format of an audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    pub pt: u8,
    pub name: String,
    pub rate: u32,
    pub channels: u8,
    pub fmtp: Option<String>,
}

impl Codec {
    pub fn new(pt: u8, name: &str, rate: u32) -> Self {
        Self {
            pt,
            name: name.to_owned(),
            rate,
            channels: 1,
            fmtp: None,
        }
    }

    fn from_media(m: &Media, pt: u8) -> Option<Self> {
        let rtpmap = m.attributes.iter().find_map(|a| {
            let v = a.value.as_deref()?;
            let (p, rest) = v.split_once(char::is_whitespace)?;
            (a.name.eq_ignore_ascii_case("rtpmap") && p.parse() == Ok(pt)).then_some(rest.trim())
        });
        let mut codec = match rtpmap {
            Some(map) => {
                let mut parts = map.split('/');
                let name = parts.next()?.to_owned();
                let rate = parts.next().and_then(|r| r.parse().ok()).unwrap_or(8000);
                let channels = parts.next().and_then(|c| c.parse().ok()).unwrap_or(1);
                Codec {
                    pt,
                    name,
                    rate,
                    channels,
                    fmtp: None,
                }
            }
            None => Self::static_payload(pt)?,
        };
        codec.fmtp = m.attributes.iter().find_map(|a| {
            let v = a.value.as_deref()?;
            let (p, rest) = v.split_once(char::is_whitespace)?;
            (a.name.eq_ignore_ascii_case("fmtp") && p.parse() == Ok(pt))
                .then(|| rest.trim().to_owned())
        });
        Some(codec)
    }

    /// RFC 3551 static payload types we may meet without an rtpmap.
    fn static_payload(pt: u8) -> Option<Self> {
        let (name, rate) = match pt {
            0 => ("PCMU", 8000),
            3 => ("GSM", 8000),
            8 => ("PCMA", 8000),
            9 => ("G722", 8000),
            18 => ("G729", 8000),
            _ => return None,
        };
        Some(Codec::new(pt, name, rate))
    }

    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// One side's audio stream: where it wants RTP, what it can receive, how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioStream {
    /// RTP destination; `None` when on hold with c=0.0.0.0.
    pub addr: Option<SocketAddr>,
    pub rtcp: Option<SocketAddr>,
    /// Audio codecs, most preferred first (telephone-event is kept apart).
    pub codecs: Vec<Codec>,
    /// Payload type of RFC 4733 telephone-event/8000, if supported.
    pub telephone_event: Option<u8>,
    pub ptime: Option<u32>,
    pub direction: Direction,
    /// The profile is `RTP/SAVP`: SRTP only. Plain `RTP/AVP` may still carry `crypto` (SRTP
    /// if the answer takes it up, the "best effort" many PBXs offer).
    pub savp: bool,
    /// Usable SDES keys, in the author's order of preference.
    pub crypto: Vec<Crypto>,
    /// A browser's stream (`UDP/TLS/RTP/SAVPF`): its ICE and DTLS parameters. Its `addr` is
    /// whatever it wrote (often `0.0.0.0:9`): its media comes from where its checks do.
    pub webrtc: Option<IceDtls>,
}

/// Writes a description of one audio stream anchored at `rtp` (RTCP on the next port), followed
/// by declined copies of the offer's other streams so an answer keeps the offer's m-line order.
pub struct SdpWriter<'a> {
    pub session_id: u64,
    pub version: u64,
    pub rtp: SocketAddr,
    pub stream: &'a AudioStream,
}

impl SdpWriter<'_> {
    /// `declined` are the offer's other m-lines around the audio one at `audio_index`.
    pub fn write(&self, declined: &[&Media], audio_index: usize) -> String {
        let ip = self.rtp.ip();
        let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
        let mut out = String::with_capacity(300);
        let _ = write!(
            out,
            "v=0\r\no=switchboard {} {} IN {family} {ip}\r\ns=switchboard\r\n",
            self.session_id, self.version
        );
        let _ = write!(out, "c=IN {family} {ip}\r\nt=0 0\r\n");
        if let Some(w) = &self.stream.webrtc {
            if w.lite {
                out.push_str("a=ice-lite\r\n");
            }
            if let Some(mid) = &w.mid {
                let _ = write!(out, "a=group:BUNDLE {mid}\r\n");
            }
        }
        for m in &declined[..audio_index.min(declined.len())] {
            out.push_str(&m.rejected());
        }
        self.write_audio(&mut out);
        for m in &declined[audio_index.min(declined.len())..] {
            out.push_str(&m.rejected());
        }
        out
    }

    fn write_audio(&self, out: &mut String) {
        let s = self.stream;
        let mut pts: Vec<u8> = s.codecs.iter().map(|c| c.pt).collect();
        pts.extend(s.telephone_event);
        let pts: Vec<String> = pts.iter().map(u8::to_string).collect();
        let profile = match (&s.webrtc, s.savp) {
            (Some(_), _) => "UDP/TLS/RTP/SAVPF",
            (None, true) => "RTP/SAVP",
            (None, false) => "RTP/AVP",
        };
        let _ = write!(
            out,
            "m=audio {} {profile} {}\r\n",
            self.rtp.port(),
            pts.join(" ")
        );
        for c in &s.crypto {
            out.push_str(&c.line());
        }
        if let Some(w) = &s.webrtc {
            if let Some(mid) = &w.mid {
                let _ = write!(out, "a=mid:{mid}\r\n");
            }
            let _ = write!(
                out,
                "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=fingerprint:{}\r\na=setup:{}\r\na=rtcp-mux\r\n",
                w.ufrag,
                w.pwd,
                w.fingerprint,
                w.setup.as_str()
            );
            // Our one host candidate: the address media is anchored at (RFC 8839 §5.1).
            let ip = self.rtp.ip();
            let _ = write!(
                out,
                "a=candidate:1 1 udp 2130706431 {ip} {} typ host\r\na=end-of-candidates\r\n",
                self.rtp.port()
            );
        }
        for c in &s.codecs {
            if c.channels > 1 {
                let _ = write!(
                    out,
                    "a=rtpmap:{} {}/{}/{}\r\n",
                    c.pt, c.name, c.rate, c.channels
                );
            } else {
                let _ = write!(out, "a=rtpmap:{} {}/{}\r\n", c.pt, c.name, c.rate);
            }
            if let Some(f) = &c.fmtp {
                let _ = write!(out, "a=fmtp:{} {f}\r\n", c.pt);
            }
        }
        if let Some(pt) = s.telephone_event {
            let _ = write!(
                out,
                "a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-16\r\n"
            );
        }
        if let Some(ptime) = s.ptime {
            let _ = write!(out, "a=ptime:{ptime}\r\n");
        }
        if s.webrtc.is_none() {
            let _ = write!(out, "a=rtcp:{}\r\n", self.rtp.port() + 1);
        }
        let _ = write!(out, "a={}\r\n", s.direction.as_str());
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests;
