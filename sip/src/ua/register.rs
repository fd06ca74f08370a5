//! Registering with a registrar as a client (RFC 3261 §10.2): how a component that fronts
//! other users (a browser gateway) makes them reachable. One REGISTER per call of
//! [`UserAgent::register`], answered once with digest credentials when challenged; the final
//! answer (408 on a timeout) comes back as [`UaEvent::Registered`]. Refreshing before the
//! expiry, and unregistering (expires 0), are the caller's.

use super::{UaEvent, UserAgent, new_call_id, random_token};
use crate::auth::answer_challenge;
use crate::message::{Method, Request, Uri};
use crate::transaction::TxId;
use crate::transport::Peer;
use std::time::Instant;

/// Identifies one registration request, to match its [`UaEvent::Registered`].
pub type RegistrationId = u64;

/// A REGISTER on its way: kept to answer a challenge with.
#[derive(Debug)]
pub(super) struct Registering {
    id: RegistrationId,
    request: Request,
    peer: Peer,
    credentials: Option<(String, String)>,
    answered_challenge: bool,
}

/// What to register.
#[derive(Debug, Clone)]
pub struct RegisterParams {
    /// The address of record (`sip:user@domain`): Request-URI's domain, From and To.
    pub aor: Uri,
    /// Where calls to it go (the Contact URI).
    pub contact: String,
    /// Seconds; 0 removes the binding.
    pub expires: u32,
    /// The registrar.
    pub peer: Peer,
    pub credentials: Option<(String, String)>,
}

impl UserAgent {
    /// Sends a REGISTER; `None` when it cannot be sent.
    pub fn register(&mut self, now: Instant, params: RegisterParams) -> Option<RegistrationId> {
        let mut registrar = params.aor.clone();
        registrar.auth = None;
        let mut req = Request::new(Method::Register, registrar);
        let h = &mut req.headers;
        h.push("Via", self.via(&params.peer));
        h.push("Max-Forwards", "70");
        h.push("From", format!("<{}>;tag={}", params.aor, random_token()));
        h.push("To", format!("<{}>", params.aor));
        h.push("Call-ID", new_call_id(self.config.shard, None));
        h.push("CSeq", "1 REGISTER");
        h.push("Contact", format!("<{}>", params.contact));
        h.push("Expires", params.expires.to_string());
        h.push("User-Agent", self.config.user_agent.as_str());
        self.next_registration += 1;
        let id = self.next_registration;
        let tx = self.layer.send_request(now, req.clone(), params.peer)?;
        self.registering.insert(
            tx,
            Registering {
                id,
                request: req,
                peer: params.peer,
                credentials: params.credentials,
                answered_challenge: false,
            },
        );
        Some(id)
    }

    /// A response to a REGISTER (provisional ones are passed over); `false` when `tx` is not
    /// one.
    pub(super) fn on_register_response(
        &mut self,
        now: Instant,
        tx: TxId,
        code: u16,
        challenges: Vec<String>,
    ) -> bool {
        if code < 200 {
            return self.registering.contains_key(&tx);
        }
        let Some(mut r) = self.registering.remove(&tx) else {
            return false;
        };
        if code == 401 && !r.answered_challenge {
            let uri = r.request.uri.to_string();
            let answer = r.credentials.as_ref().and_then(|(user, pass)| {
                (challenges.iter())
                    .find_map(|c| answer_challenge(c, "REGISTER", &uri, user, pass, 1))
            });
            if let Some(answer) = answer {
                let cseq = r.request.headers.cseq().map_or(1, |c| c.seq) + 1;
                let h = &mut r.request.headers;
                h.set("CSeq", format!("{cseq} REGISTER"));
                h.remove("Authorization");
                h.push("Authorization", answer);
                let via = self.via(&r.peer);
                if let Some(v) = r.request.headers.first_mut("Via") {
                    *v = via;
                }
                r.answered_challenge = true;
                if let Some(tx) = self.layer.send_request(now, r.request.clone(), r.peer) {
                    self.registering.insert(tx, r);
                    return true;
                }
            }
        }
        self.events.push_back(UaEvent::Registered {
            registration: r.id,
            code,
        });
        true
    }
}
