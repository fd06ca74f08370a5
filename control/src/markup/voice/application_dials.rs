//! `<Dial><Application>`: the caller handed to a TwiML App. The dial places a leg to this
//! node's own SIP address, to the Apps' user ([`visit::APP_USER`]), sealed as a visit whose
//! token names what the App is told (kept here, never on the wire); the leg's incoming side
//! is admitted on its seal and runs the App's voice URL as an incoming call of the App's
//! account, with `From` the caller's, `To` the App's SID (or the caller's `To` with
//! `copyParentTo`), `ApplicationSid`, `CustomerId` and `Param_<name>` for each `<Parameter>`.
//! What the App's `<Hangup>` or `<Reject>` carries in its own `<Parameter>`s comes back here,
//! and the dial's `action` is told it as `ReturnParam_<name>`.
//!
//! A leg through SIP rather than two calls joined in memory: the App's call is a call like any
//! other (its own record, media, recordings, streams), and the dial's leg is bridged with the
//! caller as every dialed leg is. An App of another account takes such calls unless its
//! `PublicApplicationConnectEnabled` is false.

use super::session::Call;
use super::{Dialect, VoiceApp, VoiceApps};
use crate::call::{CallCommand, CallEvent, EventKind, Rejection, Target, visit};
use crate::infra::accounts::{Account, TexmlVoice};
use crate::infra::clock::now_ms;
use crate::services::directory::connections::Connections;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{Instrument, info_span, warn};

/// Dials, App calls and returned parameters kept at once: a dial that cannot be kept fails
/// rather than grow the tables.
const MAX_KEPT: usize = 10_000;
/// How long a dial waits for its leg to come in before what it would tell the App is
/// dropped (the leg's INVITE goes to this node itself: it comes at once or never).
const COME_IN: Duration = Duration::from_secs(60);

/// What a `<Dial><Application>` asks for, as the dialing session gives it.
pub(super) struct AppDial<'a> {
    pub(super) account: &'a Account,
    /// The App (`AP…`).
    pub(super) sid: &'a str,
    /// The caller's `From` (or the dial's `callerId`) and `To`.
    pub(super) from: &'a str,
    pub(super) parent_to: &'a str,
    pub(super) parameters: &'a [(String, String)],
    pub(super) customer_id: Option<&'a str>,
    pub(super) copy_parent_to: bool,
}

/// A dial's leg to the App, ready to be placed.
pub(super) struct AppLeg {
    /// Where the dial reads what the App gave back.
    pub(super) token: String,
    pub(super) target: Target,
    /// The sealed visit, as a header of the leg's INVITE.
    pub(super) header: (String, String),
}

/// Why an App cannot be dialed (Twilio's 21218 for an App that is not there to dial).
#[derive(Debug, thiserror::Error)]
pub(super) enum AppDialError {
    #[error("Invalid ApplicationSid {0}")]
    NoApp(String),
    #[error("this node has no SIP address to hand calls to an App through")]
    NoSip,
    #[error("too many dials to Apps are under way")]
    Full,
}

/// What the App is told, until its leg comes in.
struct Dialed {
    at: Instant,
    /// The App's account.
    account: String,
    voice: TexmlVoice,
    from: String,
    to: String,
    extra: Vec<(String, String)>,
}

#[derive(Default)]
struct Kept {
    /// By token.
    dials: HashMap<String, Dialed>,
    /// The App calls running (by call SID): their dial's token.
    hosted: HashMap<String, String>,
    /// By token: what an App's `<Hangup>`/`<Reject>` gave back.
    returned: HashMap<String, Vec<(String, String)>>,
}

impl Kept {
    fn len(&self) -> usize {
        self.dials.len() + self.hosted.len() + self.returned.len()
    }
}

/// The dials to Apps of this node's calls, and the App calls they became.
pub struct ApplicationDials {
    key: [u8; 32],
    sip: Option<SocketAddr>,
    connections: Arc<Connections>,
    kept: Mutex<Kept>,
}

impl ApplicationDials {
    /// `key` seals the legs (the core admits them on it); `sip` is where this node's SIP
    /// takes calls.
    pub fn new(key: [u8; 32], sip: Option<SocketAddr>, connections: Arc<Connections>) -> Self {
        Self {
            key,
            sip,
            connections,
            kept: Mutex::default(),
        }
    }

    /// Readies a dial's leg to the App, keeping what the App will be told.
    pub(super) fn dial(&self, d: AppDial<'_>) -> Result<AppLeg, AppDialError> {
        let sip = self.sip.ok_or(AppDialError::NoSip)?;
        let row = (self.connections.all().into_iter())
            .find(|r| r.connection.id == d.sid && r.connection.texml.is_some())
            .filter(|r| r.connection.account_sid == d.account.sid || public(&r.connection))
            .ok_or_else(|| AppDialError::NoApp(d.sid.to_owned()))?;
        let app = row.connection;
        let mut extra = vec![
            ("ApplicationSid".to_owned(), d.sid.to_owned()),
            (
                "CustomerId".to_owned(),
                d.customer_id.unwrap_or(&d.account.sid).to_owned(),
            ),
        ];
        extra.extend((d.parameters.iter()).map(|(k, v)| (format!("Param_{k}"), v.clone())));
        let token = hex::encode(rand::random::<[u8; 16]>());
        let sealed = visit::Visit {
            account: app.account_sid.clone(),
            at: now_ms(),
            to: visit::Destination::Application {
                token: token.clone(),
            },
        }
        .seal(&self.key)
        .expect("a token's visit fits a header");
        let uri = format!("sip:{}@{sip}", visit::APP_USER);
        let uri = (uri.as_str()).try_into().expect("a SIP URI");
        let dialed = Dialed {
            at: Instant::now(),
            account: app.account_sid.clone(),
            voice: app.texml.clone().expect("an App's voice settings"),
            from: d.from.to_owned(),
            to: match d.copy_parent_to {
                true => d.parent_to.to_owned(),
                false => d.sid.to_owned(),
            },
            extra,
        };
        let mut kept = self.kept.lock().expect("not poisoned");
        kept.dials.retain(|_, d| d.at.elapsed() < COME_IN);
        if kept.len() >= MAX_KEPT {
            return Err(AppDialError::Full);
        }
        kept.dials.insert(token.clone(), dialed);
        Ok(AppLeg {
            token,
            target: Target::Node { uri, next_hop: sip },
            header: (visit::HEADER.to_owned(), sealed),
        })
    }

    /// The dial is over: what its App gave back (nothing if it gave nothing), and every trace
    /// of it gone.
    pub(super) fn finish(&self, token: &str) -> Vec<(String, String)> {
        let mut kept = self.kept.lock().expect("not poisoned");
        kept.dials.remove(token);
        kept.hosted.retain(|_, t| t != token);
        kept.returned.remove(token).unwrap_or_default()
    }

    /// An App call's `<Hangup>` or `<Reject>` gives `parameters` back to its dial, if it is
    /// one a dial is waiting on.
    pub(super) fn give_back(&self, call: &str, parameters: &[(String, String)]) {
        let mut kept = self.kept.lock().expect("not poisoned");
        if let Some(token) = kept.hosted.remove(call) {
            kept.returned.insert(token, parameters.to_vec());
        }
    }

    /// The leg a dial sent, as it comes in: what its App is told, and the call remembered as
    /// its dial's.
    fn take(&self, call: &str, headers: &[(String, String)]) -> Option<Dialed> {
        let (_, sealed) = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(visit::HEADER))?;
        let visit = visit::Visit::unseal(&self.key, sealed).filter(|v| v.fresh(now_ms()))?;
        let visit::Destination::Application { token } = visit.to else {
            return None;
        };
        let mut kept = self.kept.lock().expect("not poisoned");
        let dialed = kept.dials.remove(&token)?;
        kept.hosted.insert(call.to_owned(), token);
        Some(dialed)
    }
}

/// Whether an App takes calls from other accounts' `<Dial><Application>`: unless its
/// `PublicApplicationConnectEnabled` says false (as the Applications resource shows it).
fn public(app: &crate::infra::accounts::Connection) -> bool {
    let flag = app.settings.get("PublicApplicationConnectEnabled");
    !flag
        .and_then(|v| v.as_str())
        .is_some_and(|v| v.eq_ignore_ascii_case("false"))
}

impl VoiceApps {
    /// Hands calls to TwiML Apps from now on: `<Dial><Application>` places its legs through
    /// `dials`, and their incoming side runs the App.
    pub fn serve_application_dials(self: &Arc<Self>, dials: ApplicationDials) {
        if self.application_dials.set(Arc::new(dials)).is_err() {
            return;
        }
        let (tx, mut offers) = mpsc::channel::<CallEvent>(256);
        self.control.control_number(visit::APP_USER, tx);
        let this = self.clone();
        tokio::spawn(async move {
            while let Some(event) = offers.recv().await {
                if matches!(event.kind, EventKind::Incoming { .. }) {
                    let span = info_span!("application", call = %event.call);
                    this.clone().host(event).instrument(span).await;
                }
            }
        });
    }

    /// Runs the App a dial's leg is for, as an incoming call of the App's account.
    async fn host(self: Arc<Self>, offered: CallEvent) {
        let call = offered.call.clone();
        let EventKind::Incoming { headers, .. } = &offered.kind else {
            return;
        };
        let dials = self.application_dials.get();
        let dialed = dials.and_then(|d| d.take(&call, headers));
        let account = (dialed.as_ref()).and_then(|d| self.directory.account(&d.account));
        let (Some(dialed), Some(account)) = (dialed, account) else {
            warn!("a leg to the Apps' user that no dial of this node sent: refused");
            let refused = CallCommand::Reject(Rejection::Rejected);
            let _ = self.control.command(&call, refused).await;
            return;
        };
        let (tx, events) = mpsc::channel(256);
        let taken = (self.control.redirect(&call, tx).await).and(
            (self.control)
                .command(&call, CallCommand::SetAccount(account.sid.clone()))
                .await,
        );
        if taken.is_err() {
            // The dial gave up already.
            return;
        }
        let app = VoiceApp::of_voice(dialed.voice, Dialect::Twilio);
        let running = Call {
            sid: call,
            from: dialed.from,
            to: dialed.to,
            direction: "inbound",
            extra: dialed.extra,
        };
        self.spawn(account, app, running, events);
    }

    /// Gives an App call's `<Hangup>`/`<Reject>` parameters back to its dial, if it is one.
    pub(super) fn give_back(&self, call: &str, parameters: &[(String, String)]) {
        if let Some(dials) = self.application_dials.get() {
            dials.give_back(call, parameters);
        }
    }
}
