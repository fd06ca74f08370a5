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
//! party does not go through it) is refused with 501; the call goes on.

use super::context::CallContext;
use super::model::{Call, Party};
use std::time::Instant;
use switchboard_sip::sdp::Direction;
use switchboard_sip::sdp::offer_answer::relay_offer;
use switchboard_sip::ua::Body;
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
