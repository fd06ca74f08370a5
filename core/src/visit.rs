//! A visit: a SIP leg from one node to another that carries a call of the first into a room
//! the second holds, or to a call the second carries (a queue's caller). Several nodes are one provider, so a room name is one room: the node
//! that opened it is its home (the store's `RoomHome`), and a caller that arrives
//! on another node is bridged there with a leg to the home, which seats that leg in the room
//! as the visiting call (its SID, its `<Conference>` attributes).
//!
//! The leg's INVITE says what it is in one header, sealed with a key both nodes derive from
//! their shared `sip.digest_secret` (HMAC-SHA256): the home admits it on that seal — a node is
//! no trunk and no registered user — and seats it where the seal says, in the account the
//! seal names. A seal is good for [`FRESH_MS`], so a captured INVITE cannot be replayed later.
//! Written here rather than as SIP digest between nodes: digest proves a user, not what the
//! INVITE asks for, and the home must trust the room and account it is told.
//! Inside the visit's dialog each side tells the other what its own call would hear in one
//! core: the room's side what the room told the seat alone (an INFO, [`SeatReport`]), and
//! either side, on its BYE, that its call moved on rather than ended ([`END_HEADER`]).
//!
//! A node also visits itself: `<Dial><Application>` hands the caller to a TwiML App through a
//! leg to this node's own SIP address, to [`APP_USER`], whose incoming side runs the App; and
//! a phone's attended transfer whose two calls are held by two call-core shards joins them
//! through a leg from one shard to the other, to [`REPLACE_USER`], that takes the phone's
//! place in the other call (see `attended`).

use crate::api::EventKind;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};

/// The header that carries the sealed visit.
pub const HEADER: &str = "X-Switchboard-Visit";
/// The user part of a visit's Request-URI: the home gives such calls to its room host.
pub const USER: &str = "switchboard-room";
/// The user part of the Request-URI of a leg that hands a call to a TwiML App.
pub const APP_USER: &str = "switchboard-app";
/// The user part of the Request-URI of a leg that takes a phone's place in a call of another
/// shard of the node (the phone's attended transfer).
pub const REPLACE_USER: &str = "switchboard-replace";
/// A visit leg's BYE with this header (value [`MOVED`]) says that the call it stands for
/// moved on (out of its bridge: a queue's caller enqueued again) rather than ended, so the
/// call bridged with the leg on the other side hears its peer unbridged, not ended — as the
/// two calls would in one core. Not sealed: only a dialog's own peer can end it.
pub const END_HEADER: &str = "X-Switchboard-Visit-End";
/// [`END_HEADER`]'s value, and the hang-up cause of a visit leg so ended.
pub const MOVED: &str = "moved";
/// The content type of an INFO on a visit's dialog from the room's side: what the room told
/// the seat alone ([`SeatReport`]), for the visiting call to hear as it would in one core.
pub const REPORT_TYPE: &str = "application/x-switchboard-seat-report+json";
/// How old (or how far ahead) a seal may be.
pub const FRESH_MS: i64 = 30_000;
/// A sealed visit is a header value, which SIP applications' headers may not pass.
pub const MAX_SEALED: usize = 1024;

/// What a visit asks of the node it comes to, on behalf of a call of `account`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visit {
    pub account: String,
    /// When it was sealed (Unix milliseconds).
    pub at: i64,
    #[serde(flatten)]
    pub to: Destination,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "kebab-case")]
pub enum Destination {
    /// A seat in a room the node holds, for the visiting call.
    Room(Seat),
    /// A call the node carries, to be bridged with the visiting one (a caller waiting in a
    /// queue, taken from its front by a call on another node).
    Call { call: String },
    /// The TwiML App a `<Dial><Application>` of this node hands its caller to: what the App
    /// is told is kept by the node under `token` (the seal proves the node sent it).
    Application { token: String },
    /// The dialog of a phone's call this leg replaces (the phone's attended transfer, whose
    /// REFER another shard took): the leg takes the phone's place in that call.
    Replace(Replacing),
}

impl Destination {
    /// The Request-URI user a visit of this kind is sent to (and admitted only at).
    pub fn user(&self) -> &'static str {
        match self {
            Destination::Application { .. } => APP_USER,
            Destination::Replace(_) => REPLACE_USER,
            Destination::Room(_) | Destination::Call { .. } => USER,
        }
    }
}

/// A dialog to replace, as the phone's REFER named it (RFC 3891's Call-ID and tags), and who
/// asked: only that phone may have its dialog replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replacing {
    pub call_id: String,
    pub to_tag: String,
    pub from_tag: String,
    /// The IP address the phone's REFER came from.
    pub referrer: std::net::IpAddr,
}

/// The visiting call's seat in the room, as its `<Conference>` asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seat {
    /// The room as the call core names it (the account's SID, a colon, the room).
    pub room: String,
    /// The conference's SID, as the room's home claim gave it.
    pub conference: String,
    /// The visiting call's SID: the participant is shown as it.
    pub caller: String,
    pub muted: bool,
    pub start_on_enter: bool,
    pub end_on_exit: bool,
    /// Twilio's `beep` value (`true`, `false`, `onEnter`, `onExit`).
    pub beep: String,
    pub label: Option<String>,
    /// Where the wait music is (absolute), fetched by the home.
    pub wait_url: Option<String>,
    pub record: bool,
    pub trim_silence: bool,
    /// The participant it coaches (Twilio's `coach`), by call SID as the room shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coach: Option<String>,
}

/// The key visits are sealed with, from the nodes' shared secret; none without one (a
/// single node has no one to visit).
pub fn key(secret: &str) -> Option<[u8; 32]> {
    if secret.is_empty() {
        return None;
    }
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key size");
    mac.update(b"switchboard: visits between nodes");
    Some(mac.finalize().into_bytes().into())
}

/// The key this node seals visits with: the nodes' shared one, or without a shared secret one
/// of this process's own (made once), with which the node can visit only itself.
pub fn node_key(secret: &str) -> [u8; 32] {
    static OWN: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    key(secret).unwrap_or_else(|| *OWN.get_or_init(rand::random))
}

fn mac(key: &[u8; 32]) -> Hmac<sha2::Sha256> {
    Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key size")
}

impl Visit {
    /// The header value: the visit (base64url JSON), a dot, its seal (hex); `None` when it
    /// would be longer than a header may be.
    pub fn seal(&self, key: &[u8; 32]) -> Option<String> {
        let json = serde_json::to_vec(self).expect("plain data");
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        let mut mac = mac(key);
        mac.update(body.as_bytes());
        let seal = hex::encode(mac.finalize().into_bytes());
        let sealed = format!("{body}.{seal}");
        (sealed.len() <= MAX_SEALED).then_some(sealed)
    }

    /// The visit a header value carries, if its seal is `key`'s (whatever its age).
    pub fn unseal(key: &[u8; 32], value: &str) -> Option<Self> {
        if value.len() > MAX_SEALED {
            return None;
        }
        let (body, seal) = value.trim().split_once('.')?;
        let seal = hex::decode(seal).ok()?;
        let mut mac = mac(key);
        mac.update(body.as_bytes());
        mac.verify_slice(&seal).ok()?;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .ok()?;
        serde_json::from_slice(&json).ok()
    }

    /// Whether it was sealed within [`FRESH_MS`] of `now_ms`.
    pub fn fresh(&self, now_ms: i64) -> bool {
        now_ms.abs_diff(self.at) <= FRESH_MS as u64
    }
}

/// What a room tells a visitor's seat alone: an announcement to it begun or ended. The room's
/// side sends it in an INFO ([`REPORT_TYPE`]) on the visit's dialog; the visiting side, whose
/// leg hears it, reports it to the visiting call. Not sealed: only the dialog's own peer can
/// send in it, and the leg's account is the sealed one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SeatReport {
    AnnouncementStarted {
        conference: String,
        tag: String,
    },
    AnnouncementEnded {
        conference: String,
        tag: String,
        stopped: bool,
    },
}

impl SeatReport {
    /// The report of `event`, when it is one the room tells a seat alone.
    pub fn of(event: &EventKind) -> Option<Self> {
        match event.clone() {
            EventKind::AnnouncementStarted {
                conference,
                tag,
                alone: true,
            } => Some(Self::AnnouncementStarted { conference, tag }),
            EventKind::AnnouncementEnded {
                conference,
                tag,
                alone: true,
                stopped,
            } => Some(Self::AnnouncementEnded {
                conference,
                tag,
                stopped,
            }),
            _ => None,
        }
    }

    /// The INFO's body.
    pub fn to_body(&self) -> bytes::Bytes {
        serde_json::to_vec(self).expect("plain data").into()
    }

    /// The report an INFO's body carries; `None` for anything else (a body of another shape,
    /// or over [`MAX_SEALED`]: a report is a few names).
    pub fn from_body(body: &[u8]) -> Option<Self> {
        (body.len() <= MAX_SEALED)
            .then(|| serde_json::from_slice(body).ok())
            .flatten()
    }

    /// The event the visiting call hears.
    pub fn event(self) -> EventKind {
        match self {
            Self::AnnouncementStarted { conference, tag } => EventKind::AnnouncementStarted {
                conference,
                tag,
                alone: true,
            },
            Self::AnnouncementEnded {
                conference,
                tag,
                stopped,
            } => EventKind::AnnouncementEnded {
                conference,
                tag,
                alone: true,
                stopped,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visit(at: i64) -> Visit {
        Visit {
            account: "AC1".into(),
            at,
            to: Destination::Room(Seat {
                room: "AC1:room1".into(),
                conference: "CF1".into(),
                caller: "CA1".into(),
                muted: false,
                start_on_enter: true,
                end_on_exit: false,
                beep: "true".into(),
                label: Some("agent".into()),
                wait_url: None,
                record: false,
                trim_silence: false,
                coach: None,
            }),
        }
    }

    #[test]
    fn only_the_nodes_key_opens_a_visit_and_only_while_fresh() {
        let key = key("cluster secret").unwrap();
        let sealed = visit(1_000_000).seal(&key).unwrap();
        let opened = Visit::unseal(&key, &sealed).unwrap();
        assert_eq!(opened, visit(1_000_000));
        assert!(opened.fresh(1_000_000 + FRESH_MS));
        assert!(!opened.fresh(1_000_000 + FRESH_MS + 1), "stale");
        assert!(!opened.fresh(1_000_000 - FRESH_MS - 1), "from the future");
        // Another secret's seal, a changed room, a cut seal: nothing.
        let other = super::key("another secret").unwrap();
        assert!(Visit::unseal(&other, &sealed).is_none());
        let (body, seal) = sealed.split_once('.').unwrap();
        let mut changed = visit(1_000_000);
        changed.account = "AC2".into();
        let forged = format!(
            "{}.{seal}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(serde_json::to_vec(&changed).unwrap())
        );
        assert!(Visit::unseal(&key, &forged).is_none());
        assert!(Visit::unseal(&key, &format!("{body}.{}", &seal[..10])).is_none());
        assert!(Visit::unseal(&key, "no dot").is_none());
        assert!(Visit::unseal(&key, &"x".repeat(MAX_SEALED + 1)).is_none());
        // A visit to a call opens as one.
        let to_call = Visit {
            to: Destination::Call { call: "CA2".into() },
            ..visit(5)
        };
        let sealed = to_call.seal(&key).unwrap();
        assert_eq!(Visit::unseal(&key, &sealed), Some(to_call));
        // No secret, no visits to other nodes; a node's own key then is one of its own, the
        // same each time it is asked for.
        assert!(super::key("").is_none());
        assert_eq!(node_key(""), node_key(""));
        assert_ne!(node_key(""), key);
        assert_eq!(node_key("cluster secret"), key);
        let to_app = Visit {
            to: Destination::Application { token: "t".into() },
            ..visit(5)
        };
        assert_eq!(to_app.to.user(), APP_USER);
        let replacing = Visit {
            to: Destination::Replace(Replacing {
                call_id: "a84b4c76e66710~1@192.0.2.4".into(),
                to_tag: "1928301774".into(),
                from_tag: "as6151ad25".into(),
                referrer: "192.0.2.9".parse().unwrap(),
            }),
            ..visit(5)
        };
        let sealed = replacing.seal(&key).unwrap();
        assert_eq!(Visit::unseal(&key, &sealed).unwrap(), replacing);
        assert_eq!(replacing.to.user(), REPLACE_USER);
        assert_eq!(visit(5).to.user(), USER);
        // A visit too large for a header is not sealed.
        let mut large = visit(0);
        let Destination::Room(seat) = &mut large.to else {
            unreachable!()
        };
        seat.wait_url = Some(format!("http://example.com/{}", "a".repeat(900)));
        assert!(large.seal(&key).is_none());
    }

    #[test]
    fn a_seat_report_carries_an_announcement_to_the_seat_alone_and_nothing_else() {
        let started = EventKind::AnnouncementStarted {
            conference: "CF1".into(),
            tag: "hold.wav".into(),
            alone: true,
        };
        let ended = EventKind::AnnouncementEnded {
            conference: "CF1".into(),
            tag: "hold.wav".into(),
            alone: true,
            stopped: true,
        };
        for event in [started, ended] {
            let body = SeatReport::of(&event).unwrap().to_body();
            assert_eq!(SeatReport::from_body(&body).unwrap().event(), event);
        }
        // One to the whole room is no seat's; nor is any other event.
        let to_room = EventKind::AnnouncementStarted {
            conference: "CF1".into(),
            tag: "t".into(),
            alone: false,
        };
        assert!(SeatReport::of(&to_room).is_none());
        assert!(SeatReport::of(&EventKind::Ringing).is_none());
        // Other bodies, and one too long, are no reports.
        assert!(SeatReport::from_body(b"Signal=1\r\nDuration=160").is_none());
        assert!(SeatReport::from_body(br#"{"kind":"hangup"}"#).is_none());
        let long = format!(
            r#"{{"kind":"announcement-started","conference":"{}","tag":""}}"#,
            "C".repeat(MAX_SEALED)
        );
        assert!(SeatReport::from_body(long.as_bytes()).is_none());
    }
}
