//! What a Telnyx-shaped stream (Call Control's `streaming_start`, TeXML's `<Stream>`) asks
//! for and how its frames name the call: codecs from Telnyx's parameters, the playback mode,
//! and the `start` frame's identifiers. Both dialects that start such streams use these.

use super::Playback;
use super::audio::Encoding;
use super::wire::Wire;
use crate::call::ids::CallId;

/// A codec of Telnyx's stream parameters (`stream_codec`, `stream_bidirectional_codec`,
/// TeXML's `codec` and `bidirectionalCodec`) at `rate`: PCMU (also `default`), PCMA, or L16 in
/// network byte order as in RTP. `None` for one not served here.
pub(crate) fn encoding(name: Option<&str>, rate: u32) -> Option<Encoding> {
    match name.map(str::trim) {
        None | Some("" | "default" | "PCMU") => Some(Encoding::Pcmu),
        Some("PCMA") => Some(Encoding::Pcma),
        Some("L16") => Some(Encoding::L16 {
            rate,
            big_endian: true,
        }),
        Some(_) => None,
    }
}

/// What the socket carries and what the app may send back: Telnyx's bidirectional `mp3` mode
/// (the default) plays whole MP3 files; `rtp` mode (`rtp` is its codec) plays audio frames.
/// The call's audio goes in `codec`, or when none is named in the `rtp` codec (PCMU without
/// one).
pub(crate) fn formats(codec: Option<Encoding>, rtp: Option<Encoding>) -> (Encoding, Playback) {
    let playback = rtp.map_or(Playback::Mp3, Playback::Audio);
    (codec.or(rtp).unwrap_or(Encoding::Pcmu), playback)
}

/// The stream frames' description of a call (Telnyx's `start` message): its call control id,
/// session, account, parties and client state.
pub(crate) struct Frames<'a> {
    pub call: &'a str,
    pub session: &'a str,
    pub account: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub client_state: Option<String>,
    pub auth_token: Option<String>,
}

impl Frames<'_> {
    pub(crate) fn wire(self) -> Wire {
        Wire::Telnyx {
            call_control_id: CallId::from_sid(self.call)
                .map(CallId::control_id)
                .unwrap_or_default(),
            call_session_id: CallId::from_sid(self.session)
                .map(CallId::session_uuid)
                .unwrap_or_default(),
            user_id: user_id(self.account),
            from: self.from.to_owned(),
            to: self.to.to_owned(),
            client_state: self.client_state,
            auth_token: self.auth_token,
        }
    }
}

/// The account as Telnyx names it in stream frames (`user_id`, a UUID): the account SID's
/// 32 hex digits.
fn user_id(account: &str) -> String {
    account
        .strip_prefix("AC")
        .and_then(|hex| CallId::from_sid(&format!("CA{hex}")))
        .map(CallId::uuid)
        .unwrap_or_default()
}

/// A call as Telnyx names it in a ConversationRelay session's `setup` (its channel's
/// reference): by its call control id (as `callSid` too), its session's and its own leg's
/// UUIDs, and the account's UUID. TeXML's `<ConversationRelay>` and Call Control's
/// `conversation_relay_start` both send these.
pub(crate) struct RelayCall<'a> {
    /// The stored id (`CA…`) of the call, and of its session's first leg.
    pub call: &'a str,
    pub session: &'a str,
    pub account: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    /// `inbound` or `outbound`.
    pub direction: &'a str,
}

impl RelayCall<'_> {
    pub(crate) fn setup(&self, session_id: &str) -> Vec<(&'static str, serde_json::Value)> {
        let call = CallId::from_sid(self.call);
        let control = call.map(CallId::control_id).unwrap_or_default();
        let session = CallId::from_sid(self.session).map(CallId::session_uuid);
        vec![
            ("sessionId", session_id.into()),
            ("accountSid", user_id(self.account).into()),
            ("callSid", control.clone().into()),
            ("callControlId", control.into()),
            ("callSessionId", session.unwrap_or_default().into()),
            (
                "callLegId",
                call.map(CallId::uuid).unwrap_or_default().into(),
            ),
            ("from", self.from.into()),
            ("to", self.to.into()),
            ("direction", self.direction.into()),
            ("callerName", "".into()),
            ("callStatus", "active".into()),
        ]
    }
}
