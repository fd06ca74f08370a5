//! Attended transfer by a phone (REFER with Replaces, RFC 3515 and 3891). The phone has a call
//! with each of two parties through Switchboard: it talked to one, put it on hold, called the
//! other, and now asks the first to be connected to the second in its place — its REFER on the
//! first call names, in `Refer-To`'s embedded `Replaces`, its dialog on the second.
//!
//! A real transferee would send an INVITE with Replaces to the second party. Switchboard holds
//! both dialogs and anchors both calls' media, so it joins them itself: the second call's
//! remaining leg takes the phone's place in the first call (its dialog, endpoint and record),
//! the two endpoints are bridged, a party the phone left on hold is re-INVITEd to talk again,
//! and the phone's two dialogs are hung up, ending the second call. Nobody is rung again.
//! A Replaces naming a dialog that is not Switchboard's (the phone's call with the second
//! party does not go through it) is refused with 501 — or, when its Call-ID is one another
//! shard would hold, with that shard's 481 in the REFER's NOTIFY (below); the call goes on.
//!
//! When the node runs several call-core shards, the phone's two calls may be held by two of
//! them (each call's shard was chosen by its Call-ID), and a call's legs live in its shard's
//! user agent. Then the shard that took the REFER does what a real transferee would: it
//! sends an INVITE that replaces the phone's dialog, to the other shard through the node's
//! own SIP listener, from the phone's endpoint in the first call, sealed as a visit naming the
//! dialog and the phone ([`Destination::Replace`]). The other shard answers it from the
//! phone's endpoint in the second call and hangs that dialog up; once answered, the first
//! shard hangs the phone's first dialog up. The two parties then talk through a leg between
//! the shards, each call kept by its own shard.

use super::context::CallContext;
use super::model::{Call, Party};
use super::originate::uri_destination;
use super::session::{ReceivedOffer, our_answer};
use super::visit::{self, Destination, Replacing, Visit};
use std::net::SocketAddr;
use std::time::Instant;
use switchboard_sip::message::Uri;
use switchboard_sip::sdp::Direction;
use switchboard_sip::sdp::offer_answer::{relay_answer, relay_offer};
use switchboard_sip::shard::Shard;
use switchboard_sip::transport::{Peer, Transport};
use switchboard_sip::ua::{Body, LegId, UserAgent};
use tracing::{info, warn};

/// The dialog a `Replaces` header names (RFC 3891 §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Replaces {
    pub(super) call_id: String,
    pub(super) to_tag: String,
    pub(super) from_tag: String,
}

impl Replaces {
    /// The `Replaces` header embedded in a `Refer-To` value (`<sip:…?Replaces=…>`): `None`
    /// without one, `Some(None)` for one that does not parse.
    pub(super) fn in_refer_to(refer_to: &str) -> Option<Option<Self>> {
        let uri = match refer_to.split_once('<') {
            Some((_, rest)) => rest.split('>').next().unwrap_or(rest),
            None => refer_to,
        };
        let (_, headers) = uri.split_once('?')?;
        let value = headers.split('&').find_map(|h| {
            let (name, value) = h.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("replaces")
                .then_some(value)
        })?;
        Some(unescape(value).as_deref().and_then(Self::parse))
    }

    fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split(';');
        let call_id = parts.next()?.trim();
        let (mut to_tag, mut from_tag) = (None, None);
        for part in parts {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            match name.trim().to_ascii_lowercase().as_str() {
                "to-tag" => to_tag = Some(value.trim()),
                "from-tag" => from_tag = Some(value.trim()),
                _ => {}
            }
        }
        let (to_tag, from_tag) = (to_tag?, from_tag?);
        if call_id.is_empty() || to_tag.is_empty() || from_tag.is_empty() {
            return None;
        }
        Some(Self {
            call_id: call_id.to_owned(),
            to_tag: to_tag.to_owned(),
            from_tag: from_tag.to_owned(),
        })
    }
}

/// Where this node's own SIP is reached over UDP (on loopback when it listens on every
/// address): the legs between its shards go there.
fn own_sip(ua: &UserAgent) -> Option<SocketAddr> {
    let listener = (ua.config().listeners.iter()).find(|l| l.transport == Transport::Udp)?;
    Some(switchboard_sip::transport::reachable_locally(
        listener.local,
    ))
}

/// `%XX` escapes decoded (RFC 3261 §19.1.1: header values in a URI are escaped). Hand-written:
/// the form decoder at hand would also turn `+` into a space, which Call-IDs and tags may hold.
fn unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Call {
    /// The phone's attended transfer (REFER from `party` on `referrer_leg`) when the dialog
    /// it names is held by `shard`, another shard of the node: a leg sealed with `key` to
    /// that shard takes the phone's place in both calls (see the module's comment).
    pub(super) fn transfer_to_shard(
        &mut self,
        cx: &mut CallContext,
        now: Instant,
        (party, referrer_leg): (Party, LegId),
        replaces: Replaces,
        (shard, key): (u16, &[u8; 32]),
    ) {
        let (Some(own), Some(referrer)) = (own_sip(cx.ua), cx.ua.peer_of(referrer_leg)) else {
            return cx.ua.answer_refer(now, referrer_leg, 501);
        };
        let visit = Visit {
            account: self.record.account_sid.clone().unwrap_or_default(),
            at: cx.wall,
            to: Destination::Replace(Replacing {
                call_id: replaces.call_id,
                to_tag: replaces.to_tag,
                from_tag: replaces.from_tag,
                referrer: referrer.remote.ip(),
            }),
        };
        let uri = format!("sip:{}@{own}{}", visit::REPLACE_USER, Shard::target(shard));
        let dest = (Uri::try_from(uri.as_str()).ok())
            .and_then(|uri| uri_destination(cx.ua, &uri, own).ok());
        let (Some(sealed), Some(dest)) = (visit.seal(key), dest) else {
            // A Call-ID and tags too long for a header, or no UDP listener to reach.
            return cx.ua.answer_refer(now, referrer_leg, 400);
        };
        info!(
            shard,
            "attended transfer: the dialog to replace is another shard's, joined through a leg to it"
        );
        let headers = vec![(visit::HEADER.to_owned(), sealed)];
        self.place_transfer(cx, now, (party, referrer_leg), (dest, headers), true);
    }

    /// `leg`, another shard's INVITE offering `body` ([`Call::transfer_to_shard`]), takes the
    /// place of the phone's dialog at `index`: answered from that side's endpoint — the codec
    /// of the party beyond where the offer has it, else the offer's first (the relay
    /// converts) — the phone's dialog hung up, a party it left on hold taken off it.
    pub(super) fn take_replacing(
        &mut self,
        cx: &mut CallContext,
        now: Instant,
        (index, leg): (usize, LegId),
        body: Option<&Body>,
        peer: &Peer,
    ) -> Result<(), u16> {
        let _span = self.span.clone().entered();
        let media = cx.routing.peer_media(None, None);
        let offer = (body.ok_or(488u16))
            .and_then(|b| ReceivedOffer::parse(b, media).map_err(|p| p.status()))?;
        let beyond = self.legs[1 - index].side.remote.as_ref();
        let mut stream = (beyond.and_then(|b| relay_answer(&offer.stream, b).ok()))
            .unwrap_or_else(|| our_answer(&offer.stream));
        stream.direction = offer.stream.direction.answer();
        let side = &mut self.legs[index].side;
        side.retarget(media, peer);
        let sdp = side.answer(&offer, &stream).map_err(|p| p.status())?;
        cx.ua.respond(now, leg, 200, Some(sdp));
        let replaced = self.legs[index].dialog.replace(leg);
        let first = std::mem::replace(&mut self.legs[index].first_dialog, leg);
        for gone in [Some(first), replaced].into_iter().flatten() {
            cx.dialogs.remove(&gone);
        }
        cx.dialogs.insert(leg, (cx.key, index));
        self.legs[index].name_dialog(cx.ua, leg);
        self.legs[index].configure(cx.media, true);
        match Party::of(index) {
            Party::Caller => (self.record.trunk_in, self.record.user_in) = (None, None),
            Party::Callee => (self.record.trunk_out, self.record.user_out) = (None, None),
        }
        if let Some(replaced) = replaced {
            cx.ua.hangup(now, replaced, 200);
        }
        info!(party = ?Party::of(index), "attended transfer: the phone's place taken by another shard's leg");
        self.resume_held(cx, now, 0);
        Ok(())
    }

    /// A party the phone left on hold (its last description does not both send and receive),
    /// from the leg at index `from` on, is offered the other party's stream again, to talk:
    /// one re-INVITE at a time, the next once it is answered (see [`Call::on_resumed`]). Each
    /// party is asked once: one that answers on hold again stays so, rather than be
    /// re-INVITEd for ever.
    pub(super) fn resume_held(&mut self, cx: &mut CallContext, now: Instant, from: usize) {
        let held = (from..self.legs.len()).find(|&i| {
            self.legs[i].dialog.is_some()
                && self.legs[i]
                    .side
                    .remote
                    .as_ref()
                    .is_some_and(|r| r.direction != Direction::SendRecv)
        });
        let Some(i) = held else { return };
        let Some(mut offer) =
            (self.legs[1 - i].side.remote.as_ref()).and_then(|s| relay_offer(s).ok())
        else {
            return;
        };
        offer.direction = Direction::SendRecv;
        let body = self.legs[i].side.offer(&offer);
        let leg = self.legs[i].dialog.expect("checked");
        if cx.ua.offer(now, leg, body, false) {
            info!(party = ?Party::of(i), "taken off hold");
            if let Some(route) = self.route() {
                route.resuming = Some(Party::of(i));
            }
        }
    }

    /// The answer to our re-INVITE taking `party` off hold; `false` when none was pending.
    pub(super) fn on_resumed(
        &mut self,
        cx: &mut CallContext,
        now: Instant,
        party: Party,
        code: u16,
        body: Option<Body>,
    ) -> bool {
        if self
            .route()
            .and_then(|r| r.resuming.take_if(|p| *p == party))
            .is_none()
        {
            return false;
        }
        let leg = &mut self.legs[party.index()];
        match leg.side.take_answer_body(body.as_ref()) {
            Ok(()) if (200..300).contains(&code) => leg.configure(cx.media, true),
            _ => warn!(
                code,
                ?party,
                "taking a party off hold failed; it stays as it was"
            ),
        }
        self.resume_held(cx, now, party.index() + 1);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_is_read_from_an_escaped_refer_to() {
        let refer_to = "<sip:+15551235@192.0.2.1?Replaces=a%2B1%40host%3Bto-tag%3D7743%3Bfrom-tag%3D6472&Require=replaces>";
        let r = Replaces::in_refer_to(refer_to).unwrap().unwrap();
        assert_eq!(
            r,
            Replaces {
                call_id: "a+1@host".into(),
                to_tag: "7743".into(),
                from_tag: "6472".into()
            }
        );
        assert_eq!(Replaces::in_refer_to("<sip:+15551235@192.0.2.1>"), None);
        for bad in [
            "<sip:x@h?Replaces=abc%3Bto-tag%3D1>",
            "<sip:x@h?Replaces=%3Bto-tag%3D1%3Bfrom-tag%3D2>",
            "<sip:x@h?Replaces=abc%ZZ>",
            "<sip:x@h?replaces=abc%3Bto-tag%3D%3Bfrom-tag%3D2>",
        ] {
            assert_eq!(Replaces::in_refer_to(bad), Some(None), "{bad}");
        }
    }
}
