//! Which of a node's call-core shards a SIP message belongs to. A node may run several call
//! cores, each on its own thread and owning its calls; the transports hand every message to
//! the shard [`shard_of`] names, a pure function of the message, so every message of a dialog
//! (and every retransmission) reaches the one core that holds it:
//! - the Call-IDs a shard's user agent makes carry its index ([`Shard::call_id`]), so the
//!   answers to its requests and the requests of the dialogs it opens come back to it;
//! - a request whose Request-URI carries the [`PARAM`] parameter goes to the shard it names:
//!   a shard's Contact carries it, so a peer's requests inside a dialog come back to the
//!   shard that took part in it even when the dialog's Call-ID is another shard's (a leg one
//!   shard places to the node itself for another shard, see [`Shard::target`]);
//! - an INVITE that replaces a dialog (RFC 3891) goes where that dialog is;
//! - a response goes to the shard that sent the request: the branch of the Via a shard's
//!   user agent puts on its requests carries its index ([`Shard::tagged`]) — a response's
//!   Call-ID may be another shard's, when a shard answers inside a dialog another shard of
//!   the node opened with it;
//! - any other Call-ID (a new call from outside) is spread by a hash of it.
//!
//! A Call-ID from outside that happens to end in a shard's tag goes to that shard: routing
//! stays a function of the Call-ID, which is all that matters.

use crate::message::{Method, SipMessage};
use std::hash::{Hash, Hasher};

/// One shard among `count` (`index < count`); a node with one core is [`Shard::ONE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u16,
    pub count: u16,
}

impl Default for Shard {
    fn default() -> Self {
        Self::ONE
    }
}

impl Shard {
    pub const ONE: Shard = Shard { index: 0, count: 1 };

    /// The `index`th of `count` shards; `None` unless `index < count`.
    pub fn new(index: u16, count: u16) -> Option<Self> {
        (index < count).then_some(Self { index, count })
    }

    /// What this shard's Contact URIs carry: `;sb-shard=N`, or nothing for a lone shard.
    pub fn contact_param(&self) -> String {
        match self.count {
            0 | 1 => String::new(),
            _ => Self::target(self.index),
        }
    }

    /// The Request-URI parameter that hands a request to shard `index` of this node.
    pub fn target(index: u16) -> String {
        format!(";{PARAM}={index}")
    }

    /// A Call-ID made by this shard from a random `token` (and the host, if any): it comes
    /// back here. A lone shard's Call-IDs are left as they were.
    pub fn call_id(&self, token: &str, host: Option<&str>) -> String {
        let tagged = self.tagged(token);
        match host {
            Some(host) => format!("{tagged}@{host}"),
            None => tagged,
        }
    }

    /// `token` naming this shard (a Call-ID's random part, a Via branch's), as
    /// [`shard_of_call_id`] and [`shard_of`] read it; a lone shard's is `token`.
    pub fn tagged(&self, token: &str) -> String {
        match self.count {
            0 | 1 => token.to_owned(),
            _ => format!("{token}{TAG}{}", self.index),
        }
    }
}

/// The shard of `count` a [`Shard::tagged`] token names, if it names one.
fn tag_of(token: &str, count: u16) -> Option<u16> {
    (token.rsplit_once(TAG))
        .and_then(|(_, index)| index.parse::<u16>().ok())
        .filter(|index| *index < count)
}

/// The Request-URI parameter naming the shard a request is for.
pub const PARAM: &str = "sb-shard";

/// What separates a Call-ID's random part from the index of the shard that made it (`~`, a
/// `word` character of RFC 3261 §25.1 that the random part never holds).
const TAG: char = '~';

/// The shard of `count` that holds the dialog with this Call-ID.
pub fn shard_of_call_id(call_id: &str, count: u16) -> u16 {
    if count <= 1 {
        return 0;
    }
    let local = call_id.split('@').next().unwrap_or(call_id);
    tag_of(local, count).unwrap_or_else(|| {
        // `DefaultHasher::new()` has fixed keys: the same Call-ID hashes alike on every
        // thread of the process (it need not across builds: shards live in one process).
        let mut hasher = std::hash::DefaultHasher::new();
        call_id.hash(&mut hasher);
        (hasher.finish() % u64::from(count)) as u16
    })
}

/// The shard of `count` that takes `message`: a request's Request-URI may name it, a
/// response's top Via branch does when a shard sent the request; otherwise the one holding
/// the dialog an INVITE with `Replaces` replaces, or its Call-ID's. A message with no
/// Call-ID (which the core refuses) goes to the first.
pub fn shard_of(message: &SipMessage, count: u16) -> u16 {
    if count <= 1 {
        return 0;
    }
    let named = match message {
        SipMessage::Request(r) => named_shard(&r.uri, count),
        SipMessage::Response(r) => (r.headers.get("Via"))
            .and_then(|via| crate::message::headers::Via::parse(via.split(',').next()?))
            .and_then(|via| tag_of(via.rfc3261_branch()?, count)),
    };
    if let Some(shard) = named {
        return shard;
    }
    let headers = message.headers();
    let replaced = match message {
        SipMessage::Request(r) if r.method == Method::Invite => headers
            .get("Replaces")
            .and_then(|r| r.split(';').next())
            .map(str::trim)
            .filter(|id| !id.is_empty()),
        _ => None,
    };
    match replaced.or_else(|| headers.call_id()) {
        Some(call_id) => shard_of_call_id(call_id, count),
        None => 0,
    }
}

/// The shard a Request-URI's [`PARAM`] names, if it names one of `count`.
fn named_shard(uri: &rsip::Uri, count: u16) -> Option<u16> {
    uri.params.iter().find_map(|p| match p {
        rsip::Param::Other(name, Some(value)) if name.value().eq_ignore_ascii_case(PARAM) => value
            .value()
            .parse::<u16>()
            .ok()
            .filter(|index| *index < count),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> SipMessage {
        SipMessage::parse(text.replace('\n', "\r\n").as_bytes()).unwrap()
    }

    #[test]
    fn a_shards_call_ids_come_back_to_it() {
        for count in [2, 3, 16, 64] {
            for index in 0..count {
                let shard = Shard::new(index, count).unwrap();
                let with_host = shard.call_id("5f3a9c0d12e4b7aa", Some("192.0.2.1:5060"));
                let bare = shard.call_id("5f3a9c0d12e4b7aa", None);
                assert_eq!(shard_of_call_id(&with_host, count), index, "{with_host}");
                assert_eq!(shard_of_call_id(&bare, count), index, "{bare}");
            }
        }
        // One shard makes the Call-IDs it always made.
        assert_eq!(Shard::ONE.call_id("ab12", Some("h")), "ab12@h");
        assert_eq!(Shard::new(2, 2), None);
    }

    #[test]
    fn outside_call_ids_spread_over_every_shard_and_stay_put() {
        let count = 4;
        let mut seen = [0u32; 4];
        for n in 0..4000 {
            let id = format!("{n}-4242@198.51.100.7");
            let shard = shard_of_call_id(&id, count);
            assert_eq!(shard, shard_of_call_id(&id, count));
            seen[usize::from(shard)] += 1;
        }
        // A fair spread: each of four shards gets 1,000 ± 15 %.
        assert!(seen.iter().all(|n| (850..1150).contains(n)), "{seen:?}");
        // A tag past the shards, or no number, is hashed like any other Call-ID.
        assert!(shard_of_call_id("x~9@h", 4) < 4);
        assert!(shard_of_call_id("x~@h", 4) < 4);
        assert!(shard_of_call_id("~~~", 4) < 4);
    }

    #[test]
    fn an_invite_that_replaces_a_dialog_goes_where_the_dialog_is() {
        let held = Shard::new(1, 2).unwrap().call_id("77aa", Some("192.0.2.1"));
        let fresh = (0..)
            .map(|n| format!("new{n}@phone"))
            .find(|id| shard_of_call_id(id, 2) == 0)
            .unwrap();
        let invite = parse(&format!(
            "INVITE sip:bob@192.0.2.1 SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK1\n\
             From: <sip:alice@192.0.2.9>;tag=a\nTo: <sip:bob@192.0.2.1>\nCall-ID: {fresh}\n\
             CSeq: 1 INVITE\nReplaces: {held};to-tag=x;from-tag=y\nContent-Length: 0\n\n"
        ));
        assert_eq!(shard_of(&invite, 2), 1);
        // The same INVITE without Replaces goes by its own Call-ID.
        let plain = parse(&format!(
            "INVITE sip:bob@192.0.2.1 SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK1\n\
             From: <sip:alice@192.0.2.9>;tag=a\nTo: <sip:bob@192.0.2.1>\nCall-ID: {fresh}\n\
             CSeq: 1 INVITE\nContent-Length: 0\n\n"
        ));
        assert_eq!(shard_of(&plain, 2), 0);
        // A response goes by its Call-ID (the shard that sent the request).
        let response = parse(&format!(
            "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK2\n\
             From: <sip:a@192.0.2.1>;tag=a\nTo: <sip:b@192.0.2.9>;tag=b\nCall-ID: {held}\n\
             CSeq: 1 INVITE\nContent-Length: 0\n\n"
        ));
        assert_eq!(shard_of(&response, 2), 1);
        // Unless its Via's branch names the shard that sent the request (one answering inside
        // a dialog another shard opened with it).
        let branch = Shard::new(0, 2).unwrap().tagged("z9hG4bK5e1f");
        let answered = parse(&format!(
            "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 192.0.2.1;branch={branch};rport=5060, \
             SIP/2.0/UDP 192.0.2.7;branch=z9hG4bKx~1\n\
             From: <sip:a@192.0.2.1>;tag=a\nTo: <sip:b@192.0.2.9>;tag=b\nCall-ID: {held}\n\
             CSeq: 2 BYE\nContent-Length: 0\n\n"
        ));
        assert_eq!(shard_of(&answered, 2), 0);
    }

    #[test]
    fn a_request_to_a_shards_contact_goes_to_that_shard_whatever_its_call_id() {
        let others = Shard::new(0, 2).unwrap().call_id("91ab", Some("192.0.2.1"));
        assert_eq!(shard_of_call_id(&others, 2), 0);
        let bye = |uri: &str| {
            parse(&format!(
                "BYE {uri} SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK3\n\
                 From: <sip:a@192.0.2.1>;tag=a\nTo: <sip:b@192.0.2.1>;tag=b\nCall-ID: {others}\n\
                 CSeq: 2 BYE\nContent-Length: 0\n\n"
            ))
        };
        let contact = format!(
            "sip:switchboard@192.0.2.1:5060{}",
            Shard::new(1, 2).unwrap().contact_param()
        );
        assert_eq!(shard_of(&bye(&contact), 2), 1);
        // A shard past the node's, or no number, is no hint: the Call-ID decides.
        assert_eq!(shard_of(&bye("sip:switchboard@192.0.2.1;sb-shard=7"), 2), 0);
        assert_eq!(shard_of(&bye("sip:switchboard@192.0.2.1;sb-shard=x"), 2), 0);
        assert_eq!(Shard::ONE.contact_param(), "");
    }
}
