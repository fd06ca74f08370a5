//! One call leg: a dialog plus the transactions and flags the user agent tracks for it.

use crate::dialog::Dialog;
use crate::message::Request;
use crate::transaction::TxId;
use crate::transport::Peer;
use bytes::Bytes;

pub type LegId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// We received the INVITE.
    Uas,
    /// We sent the INVITE.
    Uac,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LegState {
    /// No final response to the initial INVITE yet.
    Early,
    /// 2xx sent or received.
    Confirmed,
    /// Our BYE is on its way.
    Terminating,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CancelState {
    None,
    /// Wanted, but no provisional response has arrived yet.
    Pending,
    Sent,
}

/// What a client or server transaction is to its leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TxRole {
    Invite,
    ReInvite,
    Bye,
    /// Our REFER: its final answer goes up.
    Refer,
    Other,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct ReInvite {
    pub(super) tx: TxId,
    pub(super) outgoing: bool,
    pub(super) cseq: u32,
    /// An UPDATE (RFC 3311): its 2xx is not ACKed.
    pub(super) update: bool,
    /// Ours, to refresh the session (RFC 4028): its answer is not the core's business.
    pub(super) refresh: bool,
    /// Ours, without an offer: the 2xx carries the peer's offer, and the ACK our answer,
    /// sent by [`super::UserAgent::ack_reinvite`] once we have it.
    pub(super) offerless: bool,
}

/// Other sources an in-dialog request of a leg may come from (see
/// [`super::UserAgent::accept_in_dialog_from`]).
#[derive(Clone)]
pub struct SourceCheck(pub std::sync::Arc<dyn Fn(std::net::IpAddr) -> bool + Send + Sync>);

impl std::fmt::Debug for SourceCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SourceCheck")
    }
}

#[derive(Debug)]
pub(super) struct Leg {
    pub(super) role: Role,
    pub(super) state: LegState,
    pub(super) dialog: Dialog,
    /// Where this leg's requests and responses go.
    pub(super) peer: Peer,
    pub(super) local_contact: String,
    /// The initial INVITE transaction (server for UAS, client for UAC).
    pub(super) invite_tx: Option<TxId>,
    pub(super) invite_cseq: u32,
    /// UAS: the initial INVITE, to build responses; UAC: the INVITE, to retry with credentials.
    pub(super) request: Option<Request>,
    /// UAS: a 2xx was sent for the INVITE with this CSeq through this transaction.
    pub(super) awaiting_ack: Option<(u32, TxId)>,
    /// UAC: the ACK sent for the 2xx to the INVITE with this CSeq, re-sent on retransmissions.
    pub(super) ack_sent: Option<(u32, Bytes)>,
    /// UAC: the CSeq of our offerless re-INVITE whose 2xx (an offer) waits for our answer in
    /// the ACK.
    pub(super) held_ack: Option<u32>,
    pub(super) reinvite: Option<ReInvite>,
    pub(super) reinvite_request: Option<Request>,
    pub(super) cancel: CancelState,
    /// Hang up once the ACK for our 2xx arrives (RFC 3261 §15: no BYE before it).
    pub(super) bye_after_ack: bool,
    /// An application's headers for the BYE (see [`super::is_custom_header`]).
    pub(super) bye_headers: Vec<(String, String)>,
    pub(super) credentials: Option<(String, String)>,
    pub(super) auth_attempts: u8,
    /// UAC: a failure was already reported (ring timeout or local hangup).
    pub(super) failed: bool,
    /// Every transaction this leg started or received, to forget them with the leg.
    pub(super) txs: Vec<TxId>,
    /// Sources besides the dialog's own its peer may send from (a trunk's other SBCs).
    pub(super) also_from: Option<SourceCheck>,
    /// The peer listed UPDATE in its `Allow` (its INVITE, or its 2xx to ours).
    pub(super) peer_allows_update: bool,
    /// The session timer agreed on (RFC 4028), if any.
    pub(super) timer: Option<super::session_timer::LegTimer>,
    /// The earliest entry this leg has in the session-timer heap.
    pub(super) session_entry: Option<std::time::Instant>,
    /// The session description we last sent (offer or answer), for a refresh by re-INVITE.
    pub(super) last_body: Option<super::Body>,
    /// Reliable provisional responses (RFC 3262) in its early dialog.
    pub(super) reliable: super::reliable::Reliable,
    /// A REFER waiting for the core's answer, and its transaction.
    pub(super) refer_tx: Option<(crate::transaction::TxId, crate::message::Request)>,
    /// Ours sent ([`super::UserAgent::refer`]) and its subscription not over: the peer's
    /// NOTIFYs are taken.
    pub(super) referring: bool,
}

impl Leg {
    /// Whether an in-dialog request from `src` may be this leg's peer's: the address the leg's
    /// signalling goes to or came from, the first route, the peer's Contact, or a source the
    /// leg was told to accept (its trunk's other addresses). A Contact or
    /// route given as a host name cannot be checked without resolving it, so then any source
    /// is taken (a dialog's identifiers are random; this keeps off whoever learnt them
    /// without being on the path).
    pub(super) fn may_send(&self, src: std::net::IpAddr) -> bool {
        if self.peer.remote.ip() == src || self.also_from.as_ref().is_some_and(|f| (f.0)(src)) {
            return true;
        }
        let named = |uri: &crate::message::Uri| match &uri.host_with_port.host {
            rsip::Host::IpAddr(ip) => *ip == src,
            rsip::Host::Domain(_) => true,
        };
        if named(&self.dialog.remote_target) {
            return true;
        }
        match self.dialog.route_set.first() {
            Some(_) => match self.dialog.route_hop() {
                Some((hop, _)) => hop.ip() == src,
                None => true,
            },
            None => false,
        }
    }

    pub(super) fn new(role: Role, dialog: Dialog, peer: Peer, local_contact: String) -> Self {
        Self {
            role,
            state: LegState::Early,
            dialog,
            peer,
            local_contact,
            invite_tx: None,
            invite_cseq: 0,
            request: None,
            awaiting_ack: None,
            ack_sent: None,
            held_ack: None,
            reinvite: None,
            reinvite_request: None,
            cancel: CancelState::None,
            bye_after_ack: false,
            bye_headers: Vec::new(),
            credentials: None,
            auth_attempts: 0,
            failed: false,
            txs: Vec::new(),
            also_from: None,
            peer_allows_update: false,
            timer: None,
            session_entry: None,
            last_body: None,
            reliable: Default::default(),
            refer_tx: None,
            referring: false,
        }
    }
}

/// Whether `headers` list UPDATE among the methods allowed (RFC 3311 §5.1).
pub(super) fn allows_update(headers: &crate::message::Headers) -> bool {
    headers
        .tokens("Allow")
        .any(|m| m.eq_ignore_ascii_case("UPDATE"))
}
