//! One side of a bridged call as the media anchor sees it: the peer's stream description, the
//! codec negotiated with it, our own description toward it (with its o= version), the SRTP keys
//! agreed with it under its policy (SDES: ours per suite, kept across re-offers, and the peer's),
//! and the media endpoint configuration that follows from them.

use super::dial_plan::{PeerMedia, SrtpPolicy};
use std::net::{IpAddr, SocketAddr};
use switchboard_media::srtp::{MasterKey, Suite};
use switchboard_media::webrtc::{Credentials, Fingerprint, Identity, WebRtcConfig};
use switchboard_media::{
    Endpoint, EndpointConfig, EndpointId, Law, PayloadMap, SourcePolicy, SrtpKeys,
};
use switchboard_sip::sdp::offer_answer::{is_opus, is_relayable};
use switchboard_sip::sdp::{
    AudioStream, Codec, Crypto, Direction, IceDtls, Media, Sdp, SdpWriter, Setup,
};
use switchboard_sip::transport::Peer;
use switchboard_sip::ua::Body;

/// An SDP offer received from a peer.
#[derive(Debug, Clone)]
pub(crate) struct ReceivedOffer {
    pub(crate) stream: AudioStream,
    /// The offer's other m-lines, declined in our answer.
    pub(crate) declined: Vec<Media>,
    pub(crate) audio_index: usize,
}

/// Why a description from a peer cannot be used, as the SIP status to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SdpProblem {
    /// 415: not SDP.
    NotSdp,
    /// 400: SDP that does not parse.
    Malformed,
    /// 488: no audio stream we can anchor.
    NotAcceptable,
}

impl SdpProblem {
    pub(crate) fn status(self) -> u16 {
        match self {
            SdpProblem::NotSdp => 415,
            SdpProblem::Malformed => 400,
            SdpProblem::NotAcceptable => 488,
        }
    }
}

fn parse(body: &Body) -> Result<Sdp, SdpProblem> {
    if !body
        .content_type
        .to_ascii_lowercase()
        .starts_with("application/sdp")
    {
        return Err(SdpProblem::NotSdp);
    }
    Sdp::parse(&body.data).map_err(|_| SdpProblem::Malformed)
}

impl ReceivedOffer {
    /// The offer's audio stream for a peer whose media policy is `media`: a browser's stream
    /// (DTLS-SRTP) when the peer may be a browser; otherwise, as its SRTP policy says, an SRTP
    /// stream keyed in the SDP is preferred when SRTP is allowed, and the only kind taken
    /// when it is required (plain RTP with keys beside it included); never when it is off.
    pub(crate) fn parse(body: &Body, media: PeerMedia) -> Result<Self, SdpProblem> {
        let sdp = parse(body)?;
        let pick = |wanted: &dyn Fn(&AudioStream) -> bool| {
            sdp.audio_where(|s| s.webrtc.is_none() && wanted(s))
                .map_err(|_| SdpProblem::NotAcceptable)
        };
        let browser = match media.webrtc {
            true => {
                (sdp.audio_where(|s| s.webrtc.is_some())).map_err(|_| SdpProblem::NotAcceptable)?
            }
            false => None,
        };
        let chosen = match (browser, media.srtp) {
            (Some(browser), _) => Some(browser),
            (None, SrtpPolicy::Off) => pick(&|s| !s.savp)?,
            (None, SrtpPolicy::Optional) => match pick(&|s| s.savp)? {
                Some(secure) => Some(secure),
                None => pick(&|s| !s.savp)?,
            },
            (None, SrtpPolicy::Required) => pick(&|s| !s.crypto.is_empty())?,
        };
        let (audio_index, stream) = chosen.ok_or(SdpProblem::NotAcceptable)?;
        if !stream.codecs.iter().any(is_relayable) {
            return Err(SdpProblem::NotAcceptable);
        }
        let declined = sdp
            .media
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != audio_index)
            .map(|(_, m)| m.clone())
            .collect();
        Ok(Self {
            stream,
            declined,
            audio_index,
        })
    }
}

/// The audio stream of an SDP answer.
pub(crate) fn parse_answer(body: Option<&Body>) -> Result<AudioStream, SdpProblem> {
    let sdp = parse(body.ok_or(SdpProblem::NotAcceptable)?)?;
    let stream = sdp
        .audio_stream()
        .map_err(|_| SdpProblem::Malformed)?
        .ok_or(SdpProblem::NotAcceptable)?;
    if !stream.codecs.iter().any(is_relayable) {
        return Err(SdpProblem::NotAcceptable);
    }
    Ok(stream)
}

/// The telephone-event payload type we offer.
const TELEPHONE_EVENT: u8 = 101;

/// What we offer when we place a call ourselves: both G.711 laws and telephone-event.
pub(crate) fn our_offer() -> AudioStream {
    AudioStream {
        addr: None,
        rtcp: None,
        codecs: vec![Codec::new(0, "PCMU", 8000), Codec::new(8, "PCMA", 8000)],
        telephone_event: Some(TELEPHONE_EVENT),
        ptime: Some(20),
        direction: Direction::SendRecv,
        savp: false,
        crypto: Vec::new(),
        webrtc: None,
    }
}

/// Our answer to a peer's offer when we terminate the media ourselves: its first G.711 codec,
/// telephone-event if it offered it, and the direction that mirrors its own.
pub(crate) fn our_answer(offer: &AudioStream) -> AudioStream {
    AudioStream {
        addr: None,
        rtcp: None,
        codecs: offer
            .codecs
            .iter()
            .filter(|c| is_relayable(c))
            .take(1)
            .cloned()
            .collect(),
        telephone_event: offer.telephone_event,
        ptime: offer.ptime,
        direction: offer.direction.answer(),
        savp: false,
        crypto: Vec::new(),
        webrtc: None,
    }
}

/// The SRTP suites our offers carry, tagged 1 and 2: every SDES peer speaks the first; GCM
/// is taken when a peer offers it, not offered (fewer peers have it).
const OFFERED_SUITES: [Suite; 2] = [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32];

/// Our `a=crypto` line with `tag` for `key`.
fn crypto_line(tag: u32, key: &MasterKey) -> Crypto {
    Crypto {
        tag,
        suite: key.suite().name(),
        key: key.material().to_vec(),
    }
}

/// The law a codec's audio has inside the media engine: Opus becomes μ-law there.
fn law_of(codec: &Codec) -> Law {
    if codec.is("PCMA") {
        Law::Alaw
    } else {
        Law::Ulaw
    }
}

/// Our session description toward one peer: its o= line identity and the last text sent.
#[derive(Debug)]
pub(crate) struct LocalDescription {
    rtp: SocketAddr,
    /// Where a browser sends instead (its media worker's browser socket).
    browser: SocketAddr,
    session_id: u64,
    version: u64,
    last: Option<String>,
    /// The stream the last description gave, to offer again.
    stream: Option<AudioStream>,
}

impl LocalDescription {
    pub(crate) fn new(rtp: SocketAddr, browser: SocketAddr) -> Self {
        Self {
            rtp,
            browser,
            session_id: rand::random::<u32>() as u64,
            version: 0,
            last: None,
            stream: None,
        }
    }

    /// Our SDP describing `stream` at `rtp`, or to a browser at the browser socket. The o=
    /// version only moves when the description changes (RFC 3264 §8).
    pub(crate) fn describe(
        &mut self,
        stream: &AudioStream,
        declined: &[Media],
        audio_index: usize,
    ) -> Body {
        let declined: Vec<&Media> = declined.iter().collect();
        let render = |version| {
            SdpWriter {
                session_id: self.session_id,
                version,
                rtp: match stream.webrtc {
                    Some(_) => self.browser,
                    None => self.rtp,
                },
                stream,
            }
            .write(&declined, audio_index)
        };
        if self.last.as_ref() != Some(&render(self.version)) {
            self.version += 1;
        }
        let text = render(self.version);
        self.last = Some(text.clone());
        self.stream = Some(stream.clone());
        Body::sdp(text)
    }

    /// The last description sent, for an offerless re-INVITE.
    pub(crate) fn last(&self) -> Option<Body> {
        self.last.clone().map(Body::sdp)
    }
}

/// Whether a peer whose policy is `media` and whose signalling is at `signal` is a browser we
/// should offer WebRTC to: a user (who may be one) connected over a WebSocket.
fn is_browser(media: PeerMedia, signal: &Peer) -> bool {
    use switchboard_sip::transport::Transport;
    media.webrtc && matches!(signal.transport, Transport::Ws | Transport::Wss)
}

/// A call's side toward one peer.
#[derive(Debug)]
pub(crate) struct Side {
    pub(crate) endpoint: EndpointId,
    pub(crate) local: LocalDescription,
    /// What the peer last described (offer or answer).
    pub(crate) remote: Option<AudioStream>,
    /// The codec and telephone-event payload type agreed with this peer.
    pub(crate) negotiated: Option<(Codec, Option<u8>)>,
    /// Which sources besides its SDP address the peer's media may come from.
    source: SourcePolicy,
    /// Whether the peer's media is SRTP.
    srtp: SrtpPolicy,
    /// Whether the peer may be a browser.
    webrtc_allowed: bool,
    /// The peer is a browser we call: registered over a WebSocket, so our offers to it are
    /// WebRTC offers (a browser takes nothing else).
    browser: bool,
    /// Our ICE credentials in the WebRTC offer we made, until its answer gives the browser's.
    offered_ice: Option<Credentials>,
    /// Our 2xx to an offerless re-INVITE offered the browser the stream anew: its answer comes
    /// in the ACK ([`Side::take_reoffer_answer`]).
    reoffered: bool,
    /// The peer is a browser: the ICE credentials and DTLS fingerprint agreed with it.
    webrtc: Option<WebRtcConfig>,
    /// Our SRTP key per suite toward this peer, made when first offered or answered and kept
    /// across re-offers (a new one would restart the peer's replay state for nothing).
    our_keys: Vec<MasterKey>,
    /// The keys of the SRTP agreed with the peer: its and ours.
    keys: Option<SrtpKeys>,
    /// The IP the peer's SIP comes from, which vouches for media from it.
    signal_ip: IpAddr,
}

impl Side {
    /// The same endpoint toward another peer (a route failing over to its next trunk):
    /// nothing the last one described is kept.
    pub(crate) fn retarget(&mut self, media: PeerMedia, signal: &Peer) {
        self.remote = None;
        self.negotiated = None;
        self.keys = None;
        self.webrtc = None;
        self.source = media.source;
        self.srtp = media.srtp;
        self.webrtc_allowed = media.webrtc;
        self.browser = is_browser(media, signal);
        self.offered_ice = None;
        self.signal_ip = signal.remote.ip();
    }

    /// A side toward the peer whose signalling is at `signal` (`media` from the routing).
    pub(crate) fn new(endpoint: Endpoint, media: PeerMedia, signal: &Peer) -> Self {
        Self {
            endpoint: endpoint.id,
            local: LocalDescription::new(endpoint.rtp, endpoint.browser),
            remote: None,
            negotiated: None,
            source: media.source,
            srtp: media.srtp,
            webrtc_allowed: media.webrtc,
            webrtc: None,
            browser: is_browser(media, signal),
            offered_ice: None,
            reoffered: false,
            our_keys: Vec::new(),
            keys: None,
            signal_ip: signal.remote.ip(),
        }
    }

    fn our_key(&mut self, suite: Suite) -> MasterKey {
        match self.our_keys.iter().find(|k| k.suite() == suite) {
            Some(k) => *k,
            None => {
                let key = MasterKey::generate(suite);
                self.our_keys.push(key);
                key
            }
        }
    }

    /// What our 2xx to an offerless re-INVITE offers. To a browser, the stream in force
    /// offered anew (`setup:actpass`, our ICE credentials and certificate kept): the browser
    /// that asks is back with a new peer connection (Telnyx's `attach`), whose answer — new
    /// ICE credentials, a new certificate — comes in the ACK and restarts the leg's ICE and
    /// DTLS ([`Side::take_reoffer_answer`]). To another peer, the description last sent: a
    /// session refresh changes nothing.
    pub(crate) fn reoffer(&mut self) -> Option<Body> {
        if self.browser
            && self.webrtc.is_some()
            && let Some(stream) = self.local.stream.clone()
        {
            self.reoffered = true;
            return Some(self.offer(&stream));
        }
        self.local.last()
    }

    /// The answer, in the ACK, to [`Side::reoffer`]'s offer to a browser: taken when one was
    /// made and the answer is a browser's (then the leg is to be configured anew).
    pub(crate) fn take_reoffer_answer(&mut self, body: &Body) -> bool {
        std::mem::take(&mut self.reoffered) && self.take_answer_body(Some(body)).is_ok()
    }

    /// Our offer of `stream` to this peer, with the SRTP keys its policy asks for.
    pub(crate) fn offer(&mut self, stream: &AudioStream) -> Body {
        self.offer_as(stream, self.srtp)
    }

    /// Our offer of `stream` from this side's endpoint to a peer whose policy is `srtp`: the
    /// peer a transfer puts in place of this side's (see [`Side::retarget`]).
    pub(crate) fn offer_as(&mut self, stream: &AudioStream, srtp: SrtpPolicy) -> Body {
        let mut ours = stream.clone();
        ours.savp = srtp == SrtpPolicy::Required;
        ours.crypto = Vec::new();
        ours.webrtc = None;
        if self.browser
            && let Ok(identity) = Identity::shared()
        {
            // A re-offer keeps the credentials in force: no ICE or DTLS restart.
            let ice = (self.webrtc.as_ref().map(|c| c.ice.clone()))
                .or_else(|| self.offered_ice.clone())
                .unwrap_or_else(|| Credentials::generate(""));
            ours.savp = false;
            ours.webrtc = Some(IceDtls {
                ufrag: ice.local_ufrag.clone(),
                pwd: ice.local_pwd.clone(),
                fingerprint: identity.fingerprint().to_owned(),
                setup: Setup::ActPass,
                mid: Some("0".into()),
                lite: true,
            });
            self.offered_ice = Some(ice);
            return self.local.describe(&ours, &[], 0);
        }
        if srtp != SrtpPolicy::Off {
            for (tag, suite) in (1..).zip(OFFERED_SUITES) {
                let key = self.our_key(suite);
                ours.crypto.push(crypto_line(tag, &key));
            }
        }
        self.local.describe(&ours, &[], 0)
    }

    /// Our answer of `stream` to this peer's `offer` (then what it describes): SRTP with the
    /// first of its keys whose suite we speak, when its policy allows; codecs agreed as in
    /// [`Side::agree`].
    /// An offer that is SRTP only, or plain toward a peer that must use SRTP, cannot be
    /// answered (488; the offer's stream was chosen to avoid that where it could be).
    pub(crate) fn answer(
        &mut self,
        offer: &ReceivedOffer,
        stream: &AudioStream,
    ) -> Result<Body, SdpProblem> {
        let mut ours = stream.clone();
        ours.savp = false;
        ours.crypto = Vec::new();
        ours.webrtc = None;
        if let Some(browser) = &offer.stream.webrtc {
            ours.webrtc = Some(self.answer_browser(browser)?);
            self.keys = None;
            self.remote = Some(offer.stream.clone());
            self.agree(&ours);
            return Ok(self
                .local
                .describe(&ours, &offer.declined, offer.audio_index));
        }
        self.webrtc = None;
        let before = self.keys.take();
        if self.srtp != SrtpPolicy::Off
            && let Some((offered, suite)) =
                (offer.stream.crypto.iter()).find_map(|c| Some((c, Suite::from_name(c.suite)?)))
            && let Some(theirs) = MasterKey::new(suite, &offered.key)
        {
            let key = self.our_key(suite);
            ours.savp = offer.stream.savp;
            ours.crypto.push(crypto_line(offered.tag, &key));
            self.keys = Some(SrtpKeys {
                inbound: theirs,
                outbound: key,
            });
        }
        if self.keys.is_none() && (self.srtp == SrtpPolicy::Required || offer.stream.savp) {
            self.keys = before;
            return Err(SdpProblem::NotAcceptable);
        }
        self.remote = Some(offer.stream.clone());
        self.agree(&ours);
        Ok(self
            .local
            .describe(&ours, &offer.declined, offer.audio_index))
    }

    /// Our side of a browser's stream: ICE-lite credentials (kept across re-offers unless the
    /// browser restarts ICE with a new ufrag), the process's certificate, and the DTLS server
    /// role — a browser that insists on being the server (`setup:passive`) cannot be served.
    fn answer_browser(&mut self, browser: &IceDtls) -> Result<IceDtls, SdpProblem> {
        if !self.webrtc_allowed || browser.setup == Setup::Passive {
            return Err(SdpProblem::NotAcceptable);
        }
        let fingerprint =
            Fingerprint::parse(&browser.fingerprint).ok_or(SdpProblem::NotAcceptable)?;
        let identity = Identity::shared().map_err(|_| SdpProblem::NotAcceptable)?;
        let ice = match &self.webrtc {
            Some(c) if c.ice.remote_ufrag == browser.ufrag => c.ice.clone(),
            _ => Credentials::generate(&browser.ufrag),
        };
        let ours = IceDtls {
            ufrag: ice.local_ufrag.clone(),
            pwd: ice.local_pwd.clone(),
            fingerprint: identity.fingerprint().to_owned(),
            setup: Setup::Passive,
            mid: browser.mid.clone(),
            lite: true,
        };
        self.webrtc = Some(WebRtcConfig {
            identity,
            ice,
            remote_fingerprint: fingerprint,
        });
        Ok(ours)
    }

    /// This peer's media policy, for choosing among the streams it offers.
    pub(crate) fn peer_media(&self) -> PeerMedia {
        PeerMedia {
            source: self.source,
            srtp: self.srtp,
            webrtc: self.webrtc_allowed,
        }
    }

    /// [`parse_answer`] and [`Side::take_answer`].
    pub(crate) fn take_answer_body(&mut self, body: Option<&Body>) -> Result<(), SdpProblem> {
        self.take_answer(parse_answer(body)?)
    }

    /// Records the agreed codec: the first relayable one of `stream` (an answer, or ours).
    pub(crate) fn agree(&mut self, stream: &AudioStream) {
        self.negotiated = stream
            .codecs
            .iter()
            .find(|c| is_relayable(c))
            .map(|c| (c.clone(), stream.telephone_event));
    }

    /// The peer answered with `answer`: it is what the peer describes now, and its codec is
    /// the one agreed.
    /// Its SRTP key must answer one we offered (same tag and suite) when SRTP is required or
    /// the answer is SRTP only; otherwise the media stays plain.
    pub(crate) fn take_answer(&mut self, answer: AudioStream) -> Result<(), SdpProblem> {
        if let Some(ours) = self.offered_ice.clone() {
            // We offered WebRTC: the browser's answer names its ICE credentials and takes the
            // DTLS client's part (setup:active), with the certificate its fingerprint names.
            let browser = answer.webrtc.as_ref().ok_or(SdpProblem::NotAcceptable)?;
            let fingerprint =
                Fingerprint::parse(&browser.fingerprint).ok_or(SdpProblem::NotAcceptable)?;
            if browser.setup == Setup::Passive {
                return Err(SdpProblem::NotAcceptable);
            }
            let identity = Identity::shared().map_err(|_| SdpProblem::NotAcceptable)?;
            self.keys = None;
            self.webrtc = Some(WebRtcConfig {
                identity,
                ice: Credentials {
                    remote_ufrag: browser.ufrag.clone(),
                    ..ours
                },
                remote_fingerprint: fingerprint,
            });
            self.agree(&answer);
            self.remote = Some(answer);
            return Ok(());
        }
        self.keys = None;
        if self.srtp != SrtpPolicy::Off
            && let Some(c) = answer.crypto.first()
            && let Some(suite) = Suite::from_name(c.suite)
            && usize::try_from(c.tag)
                .ok()
                .and_then(|t| OFFERED_SUITES.get(t.checked_sub(1)?))
                == Some(&suite)
        {
            let theirs = MasterKey::new(suite, &c.key).ok_or(SdpProblem::NotAcceptable)?;
            self.keys = Some(SrtpKeys {
                inbound: theirs,
                outbound: self.our_key(suite),
            });
        }
        if self.keys.is_none() && (self.srtp == SrtpPolicy::Required || answer.savp) {
            return Err(SdpProblem::NotAcceptable);
        }
        self.agree(&answer);
        self.remote = Some(answer);
        Ok(())
    }

    /// The endpoint configuration for this side; `answered` arms the RTP timeout when the peer
    /// is expected to send.
    pub(crate) fn endpoint_config(&self, answered: bool) -> EndpointConfig {
        let Some(remote) = &self.remote else {
            return EndpointConfig::default();
        };
        // Before an answer: the peer's preferred relayable codec, for early media.
        let (codec, telephone_event) = match &self.negotiated {
            Some((codec, te)) => (Some(codec), *te),
            None => (
                remote.codecs.iter().find(|c| is_relayable(c)),
                remote.telephone_event,
            ),
        };
        if let Some(webrtc) = &self.webrtc {
            // A browser's address is the one its checks prove, its keys its handshake's.
            return EndpointConfig {
                payload: PayloadMap {
                    audio: codec.map(|c| (c.pt, law_of(c))),
                    telephone_event,
                },
                expect_rtp: answered && remote.direction.sends(),
                held: !remote.direction.receives(),
                opus: codec.is_some_and(is_opus),
                webrtc: Some(webrtc.clone()),
                ..Default::default()
            };
        }
        EndpointConfig {
            remote_rtp: remote.addr,
            remote_rtcp: remote.rtcp,
            payload: PayloadMap {
                audio: codec.map(|c| (c.pt, law_of(c))),
                telephone_event,
            },
            expect_rtp: answered && remote.direction.sends() && remote.addr.is_some(),
            held: !remote.direction.receives(),
            opus: codec.is_some_and(is_opus),
            source: self.source,
            signal_ip: Some(self.signal_ip),
            srtp: self.keys,
            webrtc: None,
        }
    }

    pub(crate) fn codec_name(&self) -> Option<String> {
        self.negotiated
            .as_ref()
            .map(|(c, _)| c.name.to_ascii_uppercase())
    }

    /// The codec agreed with this side, once it is.
    pub(crate) fn agreed_codec(&self) -> Option<super::api::AgreedCodec> {
        self.negotiated
            .as_ref()
            .map(|(c, _)| super::api::AgreedCodec {
                name: c.name.to_ascii_uppercase(),
                rate: c.rate,
            })
    }
}

#[cfg(test)]
mod tests;
