//! ICE-lite (RFC 8445 §2.5): a server with a public address needs no checks of its own. It
//! answers the browser's connectivity checks — STUN Binding requests authenticated with our
//! password (RFC 8445 §7.3) — from wherever they come (a browser behind NAT arrives from a
//! peer-reflexive address it never signalled), and the browser, always the controlling agent
//! against a lite one, nominates the address media then uses (USE-CANDIDATE). Its later checks
//! are the consent to keep sending (RFC 7675).
//!
//! Messages are read and written with webrtc-rs's `rtc-stun`; a check is a few a second per
//! leg at most, so its allocations are off the relay's hot path.

use rtc_dtls::crypto_provider::RTCCrypto;
use rtc_stun::attributes::{ATTR_USE_CANDIDATE, ATTR_USERNAME};
use rtc_stun::fingerprint::FINGERPRINT;
use rtc_stun::integrity::MessageIntegrity;
use rtc_stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Message, Setter, TransactionId};
use rtc_stun::textattrs::TextAttribute;
use rtc_stun::xoraddr::XorMappedAddress;
use std::net::SocketAddr;

/// Our ICE credentials toward one peer, and the peer's user fragment.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub local_ufrag: String,
    pub local_pwd: String,
    pub remote_ufrag: String,
}

/// Passwords never reach a log.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("local_ufrag", &self.local_ufrag)
            .field("remote_ufrag", &self.remote_ufrag)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Fresh local credentials (RFC 8839 §5.4: a ufrag of at least 24 bits and a password of
    /// at least 128 bits of randomness, ice-chars only) for a peer whose ufrag is `remote`.
    pub fn generate(remote_ufrag: &str) -> Self {
        Self {
            local_ufrag: ice_chars(8),
            local_pwd: ice_chars(24),
            remote_ufrag: remote_ufrag.to_owned(),
        }
    }
}

/// `n` random ice-chars (letters and digits: 62 symbols, ~5.95 bits each).
fn ice_chars(n: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..n)
        .map(|_| CHARS[rand::random_range(0..CHARS.len())] as char)
        .collect()
}

/// A connectivity check that passed: the response to send back to where it came from.
pub(super) struct Answered {
    pub(super) response: Vec<u8>,
    /// The browser nominated this address for media (USE-CANDIDATE).
    pub(super) nominated: bool,
}

/// Answers a Binding request from `src` that names our ufrag first and the peer's second and
/// carries our password's MESSAGE-INTEGRITY (and a correct FINGERPRINT). Anything else —
/// another kind of message, a stranger's check, a forgery — gets no answer: answering
/// unauthenticated requests would make us a reflector.
pub(super) fn answer(
    credentials: &Credentials,
    src: SocketAddr,
    data: &[u8],
    crypto: &dyn RTCCrypto,
) -> Option<Answered> {
    let request = authentic_check(credentials, data, crypto)?;
    let nominated = request.contains(ATTR_USE_CANDIDATE);
    let mut response = Message::new();
    let mapped = XorMappedAddress {
        ip: src.ip(),
        port: src.port(),
    };
    let integrity = MessageIntegrity::new_short_term_integrity_with_provider(
        credentials.local_pwd.clone(),
        crypto,
    );
    let setters: [Box<dyn Setter + '_>; 5] = [
        Box::new(request),
        Box::new(BINDING_SUCCESS),
        Box::new(mapped),
        Box::new(integrity),
        Box::new(FINGERPRINT),
    ];
    response.build(&setters).ok()?;
    Some(Answered {
        response: response.raw,
        nominated,
    })
}

/// The Binding request in `data`, if it names our ufrag first and the peer's second and
/// carries our password's MESSAGE-INTEGRITY (and a correct FINGERPRINT, when it has one).
pub(super) fn authentic_check(
    credentials: &Credentials,
    data: &[u8],
    crypto: &dyn RTCCrypto,
) -> Option<Message> {
    let (mut request, username) = binding_request(data)?;
    let (ours, theirs) = username.split_once(':')?;
    if ours != credentials.local_ufrag || theirs != credentials.remote_ufrag {
        return None;
    }
    // The fingerprint covers the message as sent; the integrity check shortens the length
    // field it sees, so it goes second.
    if request.contains(rtc_stun::attributes::ATTR_FINGERPRINT) {
        FINGERPRINT.check(&request).ok()?;
    }
    let key = credentials.local_pwd.as_bytes();
    MessageIntegrity::check(&mut request, key, crypto).ok()?;
    Some(request)
}

/// The ufrag a Binding request in `data` names as its receiver's (USERNAME "ours:theirs"),
/// unauthenticated: which leg to ask to check it.
pub(super) fn addressed_ufrag(data: &[u8]) -> Option<String> {
    let (_, mut username) = binding_request(data)?;
    let ours = username.find(':')?;
    username.truncate(ours);
    Some(username)
}

/// A Binding request and its USERNAME, unchecked.
fn binding_request(data: &[u8]) -> Option<(Message, String)> {
    let mut request = Message::new();
    request.unmarshal_binary(data).ok()?;
    if request.typ != BINDING_REQUEST {
        return None;
    }
    let username = TextAttribute::get_from_as(&request, ATTR_USERNAME).ok()?;
    Some((request, username.text))
}

/// USE-CANDIDATE (RFC 8445 §7.1.2): an attribute with no value.
struct UseCandidate;

impl Setter for UseCandidate {
    fn add_to(&self, m: &mut Message) -> rtc_shared::error::Result<()> {
        m.add(ATTR_USE_CANDIDATE, &[]);
        Ok(())
    }
}

/// The connectivity check a browser sends the leg whose credentials are `ours` (as `answer`
/// wants it: USERNAME "our ufrag:its ufrag", our password's integrity, a fingerprint), and
/// whether it nominates. For load clients and tests that play the browser.
pub fn browser_check(ours: &Credentials, nominate: bool) -> Vec<u8> {
    let crypto = rtc_dtls::crypto_provider::default_provider().expect("a crypto provider");
    let mut m = Message::new();
    let username = TextAttribute {
        attr: ATTR_USERNAME,
        text: format!("{}:{}", ours.local_ufrag, ours.remote_ufrag),
    };
    let integrity = MessageIntegrity::new_short_term_integrity_with_provider(
        ours.local_pwd.clone(),
        crypto.crypto(),
    );
    let mut setters: Vec<Box<dyn Setter + '_>> = vec![
        Box::new(BINDING_REQUEST),
        Box::new(TransactionId::new()),
        Box::new(username),
    ];
    if nominate {
        setters.push(Box::new(UseCandidate));
    }
    setters.push(Box::new(integrity));
    setters.push(Box::new(FINGERPRINT));
    m.build(&setters).expect("a well-formed request");
    m.raw
}
