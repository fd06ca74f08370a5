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
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n\
        m=audio 6000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-15\r\na=ptime:20\r\nm=video 6002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";

    #[test]
    fn reads_audio_stream() {
        let sdp = Sdp::parse(OFFER.as_bytes()).unwrap();
        let a = sdp.audio_stream().unwrap().unwrap();
        assert_eq!(a.addr, Some("10.0.0.2:6000".parse().unwrap()));
        assert_eq!(a.rtcp, Some("10.0.0.2:6001".parse().unwrap()));
        let names: Vec<_> = a.codecs.iter().map(|c| (c.pt, c.name.as_str())).collect();
        assert_eq!(names, [(8, "PCMA"), (0, "PCMU")]);
        assert_eq!(a.telephone_event, Some(101));
        assert_eq!(a.ptime, Some(20));
        assert_eq!(a.direction, Direction::SendRecv);
    }

    #[test]
    fn hold_forms() {
        let sendonly = OFFER.replace("a=ptime:20\r\n", "a=ptime:20\r\na=sendonly\r\n");
        let a = Sdp::parse(sendonly.as_bytes())
            .unwrap()
            .audio_stream()
            .unwrap()
            .unwrap();
        assert_eq!(a.direction, Direction::SendOnly);
        let zero = OFFER.replace("c=IN IP4 10.0.0.2", "c=IN IP4 0.0.0.0");
        let a = Sdp::parse(zero.as_bytes())
            .unwrap()
            .audio_stream()
            .unwrap()
            .unwrap();
        assert_eq!(a.addr, None);
    }

    /// An SRTP stream keyed in the SDP (RTP/SAVP with a usable a=crypto) is taken, with its
    /// key; one we cannot key (an MKI, DTLS-SRTP) is passed over like any other stream.
    #[test]
    fn srtp_streams_are_taken_only_when_keyed_in_a_way_we_speak() {
        let key = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
        let savp = format!(
            "m=audio 7000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20|1:32\r\n"
        );
        let dtls = "m=audio 7004 UDP/TLS/RTP/SAVPF 0\r\na=fingerprint:sha-256 AB\r\n";
        let alone = format!("v=0\r\nc=IN IP4 192.0.2.1\r\n{savp}{dtls}");
        let sdp = Sdp::parse(alone.as_bytes()).unwrap();
        assert_eq!(sdp.audio(), None, "MKI keys and DTLS-SRTP are not ours");
        assert_eq!(sdp.audio_stream(), Ok(None));
        let both = format!("{alone}m=audio 7002 RTP/AVP 0\r\n");
        let sdp = Sdp::parse(both.as_bytes()).unwrap();
        let (index, media) = sdp.audio().unwrap();
        assert_eq!((index, media.port), (2, 7002));

        let keyed = alone.replace("|2^20|1:32", "|2^31");
        let sdp = Sdp::parse(format!("{keyed}m=audio 7002 RTP/AVP 0\r\n").as_bytes()).unwrap();
        let stream = sdp.audio_stream().unwrap().unwrap();
        assert!(stream.savp);
        assert_eq!(stream.crypto.len(), 1);
        assert_eq!(stream.crypto[0].suite, "AES_CM_128_HMAC_SHA1_80");
        let (index, plain) = sdp.audio_where(|s| !s.savp).unwrap().unwrap();
        assert_eq!((index, plain.savp, plain.crypto.len()), (2, false, 0));

        let ours = SdpWriter {
            session_id: 1,
            version: 1,
            rtp: "192.0.2.9:4000".parse().unwrap(),
            stream: &stream,
        }
        .write(&[], 0);
        assert!(ours.contains("m=audio 4000 RTP/SAVP 0\r\n"), "{ours}");
        assert!(ours.contains(&format!(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\n"
        )));
    }

    #[test]
    fn broken_sdp_is_an_error() {
        assert_eq!(Sdp::parse(b"hello"), Err(SdpError::NoVersion));
        assert!(Sdp::parse(b"v=0\r\nm=audio xx RTP/AVP 0\r\n").is_err());
        assert!(Sdp::parse(b"v=0\r\nm=audio 5000 RTP/AVP\r\n").is_err());
        assert!(Sdp::parse(b"v=0\r\ngarbage\r\n").is_err());
        let no_c = Sdp::parse(b"v=0\r\nm=audio 5000 RTP/AVP 0\r\n").unwrap();
        assert_eq!(no_c.audio_stream(), Err(SdpError::NoConnection));
        let bad_pt = Sdp::parse(b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5000 RTP/AVP x\r\n").unwrap();
        assert!(bad_pt.audio_stream().is_err());
    }

    #[test]
    fn writes_a_parseable_answer_keeping_m_line_order() {
        let offer = Sdp::parse(OFFER.as_bytes()).unwrap();
        let mut stream = offer.audio_stream().unwrap().unwrap();
        stream.codecs.truncate(1);
        let (idx, _) = offer.audio().unwrap();
        let declined: Vec<&Media> = offer
            .media
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != idx)
            .map(|(_, m)| m)
            .collect();
        let text = SdpWriter {
            session_id: 7,
            version: 1,
            rtp: "192.0.2.1:20000".parse().unwrap(),
            stream: &stream,
        }
        .write(&declined, idx);
        assert!(text.contains("m=audio 20000 RTP/AVP 8 101\r\n"));
        assert!(text.ends_with("m=video 0 RTP/AVP 96\r\n"));
        let back = Sdp::parse(text.as_bytes())
            .unwrap()
            .audio_stream()
            .unwrap()
            .unwrap();
        assert_eq!(back.addr, Some("192.0.2.1:20000".parse().unwrap()));
        assert_eq!(back.rtcp, Some("192.0.2.1:20001".parse().unwrap()));
        assert_eq!(back.telephone_event, Some(101));
        assert_eq!(back.codecs[0].name, "PCMA");
    }

    /// Chromium's offer for one audio track, as its RTCPeerConnection writes it.
    const BROWSER: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS 3bd4a6e5\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\nc=IN IP4 0.0.0.0\r\n\
        a=rtcp:9 IN IP4 0.0.0.0\r\n\
        a=candidate:1467250027 1 udp 2122260223 192.168.0.196 46243 typ host generation 0\r\n\
        a=ice-ufrag:Oyef\r\na=ice-pwd:0Cug/3FZZ2ANs0D7VgkhIsDS\r\na=ice-options:trickle\r\n\
        a=fingerprint:sha-256 49:66:12:17:0D:1C:91:AE:57:4C:C6:36:DD:D5:97:D2:7D:62:C9:9A:7F:B9:A3:F4:70:03:E7:43:91:73:23:5E\r\n\
        a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\na=rtcp-rsize\r\n\
        a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
        a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:8 PCMA/8000\r\na=rtpmap:13 CN/8000\r\na=rtpmap:110 telephone-event/48000\r\n\
        a=rtpmap:126 telephone-event/8000\r\na=ssrc:1001 cname:x\r\n";

    #[test]
    fn a_browsers_offer_gives_its_ice_and_dtls_parameters() {
        let sdp = Sdp::parse(BROWSER.as_bytes()).unwrap();
        let a = sdp.audio_stream().unwrap().unwrap();
        let w = a.webrtc.clone().unwrap();
        assert_eq!(
            (w.ufrag.as_str(), w.pwd.as_str()),
            ("Oyef", "0Cug/3FZZ2ANs0D7VgkhIsDS")
        );
        assert!(w.fingerprint.starts_with("sha-256 49:66:12"));
        assert_eq!(
            (w.setup, w.mid.as_deref(), w.lite),
            (Setup::ActPass, Some("0"), false)
        );
        assert_eq!(a.addr, None, "0.0.0.0: the checks tell where it is");
        assert!(!a.savp && a.crypto.is_empty());
        let names: Vec<_> = a.codecs.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names[..], ["opus", "red", "G722", "PCMU", "PCMA", "CN"]);
        assert_eq!(a.telephone_event, Some(126), "the 8 kHz one");
        // Without rtcp-mux, or without a fingerprint, it is no stream we can take.
        for missing in ["a=rtcp-mux\r\n", "a=fingerprint:"] {
            let broken = BROWSER.replace(missing, "a=x-removed:");
            let sdp = Sdp::parse(broken.as_bytes()).unwrap();
            assert_eq!(sdp.audio_stream().unwrap(), None, "{missing}");
        }
        // Credentials at the session level count too.
        let session = BROWSER
            .replace("a=ice-ufrag:Oyef\r\n", "")
            .replace("t=0 0\r\n", "t=0 0\r\na=ice-ufrag:Oyef\r\n");
        let sdp = Sdp::parse(session.as_bytes()).unwrap();
        assert_eq!(
            sdp.audio_stream().unwrap().unwrap().webrtc.unwrap().ufrag,
            "Oyef"
        );
    }

    #[test]
    fn our_answer_to_a_browser_is_ice_lite_with_one_host_candidate_and_rtcp_mux() {
        let sdp = Sdp::parse(BROWSER.as_bytes()).unwrap();
        let offer = sdp.audio_stream().unwrap().unwrap();
        let mut ours = offer.clone();
        ours.codecs.retain(|c| c.is("PCMU"));
        ours.webrtc = Some(IceDtls {
            ufrag: "sbuf".into(),
            pwd: "0123456789abcdef01234567".into(),
            fingerprint: "sha-256 AA:BB".into(),
            setup: Setup::Passive,
            mid: Some("0".into()),
            lite: true,
        });
        let text = SdpWriter {
            session_id: 1,
            version: 1,
            rtp: "127.0.0.1:20000".parse().unwrap(),
            stream: &ours,
        }
        .write(&[], 0);
        for line in [
            "a=ice-lite\r\n",
            "a=group:BUNDLE 0\r\n",
            "m=audio 20000 UDP/TLS/RTP/SAVPF 0 126\r\n",
            "a=mid:0\r\n",
            "a=ice-ufrag:sbuf\r\n",
            "a=ice-pwd:0123456789abcdef01234567\r\n",
            "a=fingerprint:sha-256 AA:BB\r\n",
            "a=setup:passive\r\n",
            "a=rtcp-mux\r\n",
            "a=candidate:1 1 udp 2130706431 127.0.0.1 20000 typ host\r\n",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
        assert!(!text.contains("a=rtcp:"), "{text}");
        // ice-lite and BUNDLE are session attributes: before the m-line.
        assert!(text.find("a=ice-lite").unwrap() < text.find("m=audio").unwrap());
        let back = Sdp::parse(text.as_bytes())
            .unwrap()
            .audio_stream()
            .unwrap()
            .unwrap();
        assert_eq!(back.webrtc, ours.webrtc);
    }
}
