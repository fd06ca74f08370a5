//! One side of a bridged call as the media anchor sees it: the peer's stream description, the
//! codec negotiated with it, our own description toward it (with its o= version), and the media
//! endpoint configuration that follows from them.

use std::net::{IpAddr, SocketAddr};
use switchboard_media::{Endpoint, EndpointConfig, EndpointId, Law, PayloadMap, SourcePolicy};
use switchboard_sip::sdp::offer_answer::{is_opus, is_relayable};
use switchboard_sip::sdp::{AudioStream, Codec, Direction, Media, Sdp, SdpWriter};
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
    pub(crate) fn parse(body: &Body) -> Result<Self, SdpProblem> {
        let sdp = parse(body)?;
        let stream = sdp
            .audio_stream()
            .map_err(|_| SdpProblem::NotAcceptable)?
            .ok_or(SdpProblem::NotAcceptable)?;
        if !stream.codecs.iter().any(is_relayable) {
            return Err(SdpProblem::NotAcceptable);
        }
        let (audio_index, _) = sdp.audio().ok_or(SdpProblem::NotAcceptable)?;
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
    session_id: u64,
    version: u64,
    last: Option<String>,
}

impl LocalDescription {
    pub(crate) fn new(rtp: SocketAddr) -> Self {
        Self {
            rtp,
            session_id: rand::random::<u32>() as u64,
            version: 0,
            last: None,
        }
    }

    /// Our SDP describing `stream` at `rtp`. The o= version only moves when the description
    /// changes (RFC 3264 §8).
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
                rtp: self.rtp,
                stream,
            }
            .write(&declined, audio_index)
        };
        if self.last.as_ref() != Some(&render(self.version)) {
            self.version += 1;
        }
        let text = render(self.version);
        self.last = Some(text.clone());
        Body::sdp(text)
    }

    /// The last description sent, for an offerless re-INVITE.
    pub(crate) fn last(&self) -> Option<Body> {
        self.last.clone().map(Body::sdp)
    }
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
    /// The IP the peer's SIP comes from, which vouches for media from it.
    signal_ip: IpAddr,
}

impl Side {
    /// The same endpoint toward another peer (a route failing over to its next trunk):
    /// nothing the last one described is kept.
    pub(crate) fn retarget(&mut self, source: SourcePolicy, signal: &Peer) {
        self.remote = None;
        self.negotiated = None;
        self.source = source;
        self.signal_ip = signal.remote.ip();
    }

    /// A side toward the peer whose signalling is at `signal` (`source` from the routing).
    pub(crate) fn new(endpoint: Endpoint, source: SourcePolicy, signal: &Peer) -> Self {
        Self {
            endpoint: endpoint.id,
            local: LocalDescription::new(endpoint.rtp),
            remote: None,
            negotiated: None,
            source,
            signal_ip: signal.remote.ip(),
        }
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
    pub(crate) fn take_answer(&mut self, answer: AudioStream) {
        self.agree(&answer);
        self.remote = Some(answer);
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
        EndpointConfig {
            remote_rtp: remote.addr,
            remote_rtcp: remote.rtcp,
            payload: PayloadMap {
                audio: codec.map(|c| (c.pt, law_of(c))),
                telephone_event,
            },
            expect_rtp: answered && remote.direction.sends() && remote.addr.is_some(),
            opus: codec.is_some_and(is_opus),
            source: self.source,
            signal_ip: Some(self.signal_ip),
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
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n\
        m=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\nm=video 6002 RTP/AVP 96\r\n";

    #[test]
    fn offer_problems_map_to_sip_codes() {
        assert_eq!(
            ReceivedOffer::parse(&Body {
                content_type: "text/plain".into(),
                data: "x".into()
            })
            .unwrap_err()
            .status(),
            415
        );
        assert_eq!(
            ReceivedOffer::parse(&Body::sdp("garbage"))
                .unwrap_err()
                .status(),
            400
        );
        let g729 = OFFER.replace("RTP/AVP 0 8 101", "RTP/AVP 18");
        assert_eq!(
            ReceivedOffer::parse(&Body::sdp(g729)).unwrap_err().status(),
            488
        );
        let ok = ReceivedOffer::parse(&Body::sdp(OFFER)).unwrap();
        assert_eq!((ok.declined.len(), ok.audio_index), (1, 0));
    }

    #[test]
    fn version_moves_only_on_change() {
        let mut local = LocalDescription::new("192.0.2.1:20000".parse().unwrap());
        let offer = ReceivedOffer::parse(&Body::sdp(OFFER)).unwrap();
        let a = local.describe(&offer.stream, &offer.declined, offer.audio_index);
        let b = local.describe(&offer.stream, &offer.declined, offer.audio_index);
        assert_eq!(a, b);
        let mut held = offer.stream.clone();
        held.direction = switchboard_sip::sdp::Direction::SendOnly;
        let c = local.describe(&held, &offer.declined, offer.audio_index);
        let text = String::from_utf8(c.data.to_vec()).unwrap();
        assert!(text.contains(&format!(
            "o=switchboard {} 2 IN IP4 192.0.2.1",
            local.session_id
        )));
        assert!(text.contains("m=audio 20000 RTP/AVP 0 8 101") && text.contains("a=sendonly"));
        assert!(text.contains("m=video 0 RTP/AVP 96"));
    }
}
