//! RFC 3264 offer/answer across a B2BUA: an offer received on one leg becomes a fresh offer on
//! the other, and the answer that comes back becomes the answer on the first leg. Only what the
//! media engine can relay or transcode is kept: PCMU, PCMA, Opus and telephone-event/8000.

use super::{AudioStream, Codec};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    #[error("no supported audio codec offered (PCMU, PCMA or Opus)")]
    NoCommonCodec,
    #[error("the answer chose no codec that was offered")]
    AnswerNotInOffer,
}

/// G.711 in either law at 8 kHz mono (forwarded, or converted by table) and Opus (RFC 7587,
/// transcoded to and from G.711 when the other side needs it).
pub fn is_relayable(codec: &Codec) -> bool {
    ((codec.is("PCMU") || codec.is("PCMA")) && codec.rate == 8000 && codec.channels == 1)
        || is_opus(codec)
}

/// Opus as RFC 7587 describes it in SDP: `opus/48000/2` whatever is actually sent.
pub fn is_opus(codec: &Codec) -> bool {
    codec.is("opus") && codec.rate == 48000
}

/// The offer to send on the far leg for an offer received on the near leg: the near side's
/// relayable codecs in its order, then whichever G.711 law it lacks (the relay converts to
/// and from it), and telephone-event when the near side offered it.
pub fn relay_offer(near: &AudioStream) -> Result<AudioStream, NegotiationError> {
    let mut codecs: Vec<Codec> = near
        .codecs
        .iter()
        .filter(|c| is_relayable(c))
        .cloned()
        .collect();
    if codecs.is_empty() {
        return Err(NegotiationError::NoCommonCodec);
    }
    for law in [Codec::new(0, "PCMU", 8000), Codec::new(8, "PCMA", 8000)] {
        if !codecs.iter().any(|c| c.is(&law.name) || c.pt == law.pt) {
            codecs.push(law);
        }
    }
    // Keys are each leg's own: the far leg's security is set by its own policy.
    Ok(AudioStream {
        codecs,
        addr: None,
        rtcp: None,
        savp: false,
        crypto: Vec::new(),
        webrtc: None,
        ..near.clone()
    })
}

/// The answer for the near leg, given its offer and the far leg's answer to our relayed offer.
/// The far side's codec is kept when the near side offered it; otherwise the near side's first
/// relayable codec is used and the relay converts.
pub fn relay_answer(
    near_offer: &AudioStream,
    far_answer: &AudioStream,
) -> Result<AudioStream, NegotiationError> {
    let far_codec = far_answer
        .codecs
        .iter()
        .find(|c| is_relayable(c))
        .ok_or(NegotiationError::AnswerNotInOffer)?;
    let near_codecs = || near_offer.codecs.iter().filter(|c| is_relayable(c));
    let chosen = near_codecs()
        .find(|c| c.name.eq_ignore_ascii_case(&far_codec.name))
        .or_else(|| near_codecs().next())
        .ok_or(NegotiationError::NoCommonCodec)?
        .clone();
    Ok(AudioStream {
        addr: None,
        rtcp: None,
        codecs: vec![chosen],
        telephone_event: near_offer
            .telephone_event
            .filter(|_| far_answer.telephone_event.is_some()),
        ptime: far_answer.ptime.or(near_offer.ptime),
        // We stand in for the far side, so its answer's direction is ours toward the near side.
        direction: far_answer.direction,
        savp: false,
        crypto: Vec::new(),
        webrtc: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::Direction;

    fn stream(codecs: &[(u8, &str)], te: Option<u8>, direction: Direction) -> AudioStream {
        AudioStream {
            addr: Some("10.0.0.2:6000".parse().unwrap()),
            rtcp: None,
            codecs: codecs
                .iter()
                .map(|(pt, n)| Codec::new(*pt, n, 8000))
                .collect(),
            telephone_event: te,
            ptime: Some(20),
            direction,
            savp: false,
            crypto: Vec::new(),
            webrtc: None,
        }
    }

    #[test]
    fn offer_adds_the_other_law_and_drops_unsupported() {
        let near = stream(&[(18, "G729"), (0, "PCMU")], Some(101), Direction::SendRecv);
        let offer = relay_offer(&near).unwrap();
        let names: Vec<_> = offer.codecs.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["PCMU", "PCMA"]);
        assert_eq!(offer.telephone_event, Some(101));
        let g729 = stream(&[(18, "G729")], None, Direction::SendRecv);
        assert_eq!(relay_offer(&g729), Err(NegotiationError::NoCommonCodec));
    }

    #[test]
    fn opus_is_offered_on_with_both_laws_and_transcoded_when_the_far_side_wants_g711() {
        let mut opus = Codec::new(111, "opus", 48000);
        opus.channels = 2;
        opus.fmtp = Some("minptime=10;useinbandfec=1".into());
        let near = AudioStream {
            codecs: vec![opus.clone()],
            ..stream(&[], Some(101), Direction::SendRecv)
        };
        let offer = relay_offer(&near).unwrap();
        let names: Vec<_> = offer.codecs.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["opus", "PCMU", "PCMA"]);
        let far = stream(&[(0, "PCMU")], Some(101), Direction::SendRecv);
        let answer = relay_answer(&near, &far).unwrap();
        assert_eq!(answer.codecs, [opus]);
    }

    #[test]
    fn answer_keeps_far_codec_or_transcodes() {
        let near = stream(&[(0, "PCMU"), (8, "PCMA")], Some(101), Direction::SendRecv);
        let far = stream(&[(8, "PCMA")], Some(101), Direction::SendRecv);
        let ans = relay_answer(&near, &far).unwrap();
        assert_eq!(ans.codecs[0].name, "PCMA");
        assert_eq!(ans.telephone_event, Some(101));

        let near_ulaw_only = stream(&[(0, "PCMU")], Some(101), Direction::SendRecv);
        let far_no_te = stream(&[(8, "PCMA")], None, Direction::SendRecv);
        let ans = relay_answer(&near_ulaw_only, &far_no_te).unwrap();
        assert_eq!(
            ans.codecs[0].name, "PCMU",
            "near side keeps its law; the relay converts"
        );
        assert_eq!(ans.telephone_event, None);
    }

    #[test]
    fn far_direction_becomes_ours() {
        let near = stream(&[(0, "PCMU")], None, Direction::SendOnly);
        let far = stream(&[(0, "PCMU")], None, Direction::RecvOnly);
        assert_eq!(
            relay_answer(&near, &far).unwrap().direction,
            Direction::RecvOnly
        );
        let near = stream(&[(0, "PCMU")], None, Direction::Inactive);
        let far = stream(&[(0, "PCMU")], None, Direction::Inactive);
        assert_eq!(
            relay_answer(&near, &far).unwrap().direction,
            Direction::Inactive
        );
        let near = stream(&[(0, "PCMU")], None, Direction::SendRecv);
        let far = stream(&[(0, "PCMU")], None, Direction::SendOnly);
        assert_eq!(
            relay_answer(&near, &far).unwrap().direction,
            Direction::SendOnly
        );
    }
}
