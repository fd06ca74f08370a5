//! The browser gateway: browsers signed in through a provider's SDK (Telnyx's Verto,
//! Twilio's `/signal`) become SIP users of the call core, the way the providers build
//! it ("to the core SIP platform, rtc.telnyx.com is merely another SIP UA"). The gateway is
//! one SIP user agent of its own, joined to the core by an in-process connection
//! ([`LocalLink`]): a signed-in session REGISTERs its login (a Contact naming the session),
//! a browser's call is an INVITE carrying the browser's WebRTC offer, a call to the login
//! reaches the session as the core's INVITE, and hang-ups, answers and DTMF are SIP both
//! ways. The core authenticates the gateway's requests by digest like any phone's, routes
//! them, and anchors their media as WebRTC legs; the gateway holds no call logic, only the
//! mapping between a session's calls and SIP legs.
//!
//! A dialect's session speaks to the gateway with [`Command`]s and hears [`SessionEvent`]s. A
//! browser whose socket drops keeps its calls up for a while ([`Command::Detach`]) and takes
//! them back on its next socket ([`Command::Resume`]): its media never went through the
//! socket, so the call goes on unchanged — or, when the browser builds a new peer connection
//! for it (Telnyx's `attach`, also after a page reload), on new media ([`Command::Attach`]).

use crate::services::directory::sip_logins::Login;
use bytes::Bytes;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use switchboard_sip::message::{SipMessage, Uri};
use switchboard_sip::transport::{LocalLink, Peer, Transport};
use switchboard_sip::ua::{
    Body, InviteParams, LegEvent, LegId, Listener, RegisterParams, RegistrationId, UaConfig,
    UaEvent, UserAgent,
};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// How long a registration lasts; it is renewed at half of it.
const REGISTRATION: Duration = Duration::from_secs(600);
/// Sessions signed in at once through one gateway.
pub const MAX_SESSIONS: usize = 10_000;
/// Calls one session may have at once (the SDKs hold a handful).
pub const MAX_CALLS_PER_SESSION: usize = 8;
/// The domain of the gateway's own addresses (Via, Contact): never resolved, the link is
/// the only way to it.
const DOMAIN: &str = "gateway.invalid";

pub type SessionId = u64;

/// What a session asks of the gateway.
#[derive(Debug)]
pub enum Command {
    /// A login signed in: register it, and report to `events`.
    Open {
        session: SessionId,
        login: Login,
        events: mpsc::Sender<SessionEvent>,
    },
    /// The session is gone: its calls are hung up and its registration removed.
    Close { session: SessionId },
    /// The session's socket is gone but its browser may come back on a new one (a network
    /// blip): its registration is removed and its calls not yet up are hung up, but its calls
    /// up are kept for `keep`, for a new session to [`Command::Resume`]; then it is closed.
    Detach { session: SessionId, keep: Duration },
    /// A browser back on a new session takes over a call of the session it had, by the
    /// call's `resume` token (from [`SessionEvent::Answered`] or [`SessionEvent::Incoming`]),
    /// naming it `call` from now on; the answer comes as [`SessionEvent::Resumed`]. Only the
    /// same login may resume a call.
    Resume {
        session: SessionId,
        call: String,
        token: String,
    },
    /// The browser places a call (`call` is the SDK's own id for it).
    Invite {
        session: SessionId,
        call: String,
        to: String,
        sdp: String,
        headers: Vec<(String, String)>,
    },
    /// A browser back on a new session with a new peer connection for a call it resumed
    /// (Telnyx's `attach`): the core offers the call's media anew (an offerless re-INVITE),
    /// the offer comes as [`SessionEvent::Attach`], and the browser's answer as
    /// [`Command::Answer`].
    Attach { session: SessionId, call: String },
    /// The browser answers a call the gateway offered it, or the offer of an
    /// [`SessionEvent::Attach`].
    Answer {
        session: SessionId,
        call: String,
        sdp: String,
    },
    /// The browser hangs up (or declines) a call, with a SIP status for a call not up yet.
    Hangup {
        session: SessionId,
        call: String,
        code: u16,
    },
    /// The browser holds (or resumes) a call: its description again, `sendonly` (or
    /// `sendrecv`), in a re-INVITE; the answer comes back as [`SessionEvent::Held`]. `None`
    /// toggles: the gateway knows whether the call is held.
    Hold {
        session: SessionId,
        call: String,
        hold: Option<bool>,
    },
    /// The browser's new offer on a call up (an ICE restart), in a re-INVITE; the answer
    /// comes back as [`SessionEvent::Renegotiated`].
    Renegotiate {
        session: SessionId,
        call: String,
        sdp: String,
    },
    /// DTMF from the browser's signalling (RFC 4733 goes in the media), sent as SIP INFO.
    Dtmf {
        session: SessionId,
        call: String,
        digits: String,
    },
}

/// What the gateway tells a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The login's registration: up (true) or refused.
    Registered(bool),
    /// The far end rings (`sdp`: early media). `sip_call_id` names the SIP dialog, which the
    /// core can tell the call of.
    Ringing {
        call: String,
        sdp: Option<String>,
        sip_call_id: String,
    },
    /// The far end answered. `resume` is the token a new session of the browser resumes the
    /// call with ([`Command::Resume`]).
    Answered {
        call: String,
        sdp: Option<String>,
        sip_call_id: String,
        resume: String,
    },
    /// A call to the login: the browser is to ring.
    Incoming {
        call: String,
        from: String,
        from_name: String,
        to: String,
        sdp: String,
        /// The INVITE's headers an application may read (`X-` headers).
        headers: Vec<(String, String)>,
        sip_call_id: String,
        /// The token to resume the call with, once answered.
        resume: String,
    },
    /// The answer to a [`Command::Resume`]: the call is the session's now (with a new token
    /// to resume it by), or `None` when the token names no call up of this login.
    Resumed {
        call: String,
        resume: Option<String>,
    },
    /// The core's offer for a call being attached ([`Command::Attach`]), or `None` when it
    /// cannot be (the browser keeps the media it has). `from` and `to` are the call's parties
    /// as the browser knows them.
    Attach {
        call: String,
        sdp: Option<String>,
        from: String,
        to: String,
        sip_call_id: String,
    },
    /// The answer to a [`Command::Hold`]: whether the call is held now, and whether the far
    /// end agreed.
    Held { call: String, held: bool, ok: bool },
    /// The answer to a [`Command::Renegotiate`] (`None`, and not `ok`, when refused).
    Renegotiated {
        call: String,
        sdp: Option<String>,
        ok: bool,
    },
    /// The call ended: the SIP status that ended it (200 for a normal hang-up), and whether
    /// the far end ended it.
    Ended { call: String, code: u16 },
}

mod run;

use run::Run;

pub struct BrowserGateway {
    commands: mpsc::Sender<Command>,
}

impl BrowserGateway {
    /// Starts the gateway over `link` (its connection to the core).
    pub fn start(link: LocalLink, realm: String) -> Self {
        let (commands, rx) = mpsc::channel(1024);
        // The core, as the gateway's user agent sees it.
        let core = Peer {
            transport: Transport::Ws,
            remote: link.peer.local,
            local: link.peer.remote,
            conn: None,
        };
        tokio::spawn(Run::new(core, realm).run(link, rx));
        Self { commands }
    }

    /// Hands the gateway a session's command; `false` when it is gone or overloaded.
    pub fn send(&self, command: Command) -> bool {
        self.commands.try_send(command).is_ok()
    }
}

#[cfg(test)]
mod tests;
