//! ConversationRelay: the provider does the listening and the speaking, the application
//! exchanges JSON text over a WebSocket (Twilio's `<Connect><ConversationRelay>`, and Telnyx's
//! TeXML and `conversation_relay_start`, which serve the same wire protocol).
//!
//! Provider-neutral: a dialect gives the session's settings ([`Settings`], read from its
//! attributes), the `setup` fields and handshake headers of its own, and forwards the call's
//! events; it gets back how the session ended, to turn into its `action` request or webhooks.
//! Each session is one task (`session`) built on the parts below the protocol: the media
//! streams' connector (CA, egress policy, deadlines), the speech listener (endpointer and
//! recogniser), the prompts' voices, and the call core's playback and taps. The messages
//! (`wire`), the settings (`settings`) and the agent's clauses (`utterance`) are plain values
//! and state, tested without sockets.

mod session;
pub mod settings;
pub mod utterance;
pub mod wire;

use crate::call::{CallControl, CallEvent};
use crate::infra::egress::Reach;
use crate::services::prompts::Prompts;
use crate::services::speech::Speech;
use crate::services::stream::MediaStreams;
use serde_json::Value;
pub use settings::{Refused, Settings};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Twilio's error codes for a session's failures (its error dictionary's 641xx).
pub mod codes {
    /// The application's WebSocket could not be reached or did not accept the upgrade.
    pub const CONNECT: u32 = 64102;
    /// The application's WebSocket closed or broke while the call went on.
    pub const SOCKET_ENDED: u32 = 64105;
    /// An attribute the session cannot serve.
    pub const INVALID_ARGUMENT: u32 = 64106;
    /// A message from the application that is not one of the protocol's.
    pub const INVALID_MESSAGE: u32 = 64107;
    /// No speech recognition to listen with.
    pub const RECOGNITION: u32 = 64114;
}

/// A session to start.
#[derive(Debug, Clone)]
pub struct RelaySpec {
    /// The session's id in its dialect's form (`VX…` for Twilio, a UUID for Telnyx).
    pub id: String,
    /// The call it talks on.
    pub call: String,
    /// Whose call (its voices are rendered on the account's turn).
    pub account: String,
    pub settings: Settings,
    /// The `setup` message's fields besides `type` and `customParameters`.
    pub setup: Vec<(&'static str, Value)>,
    /// `customParameters`.
    pub parameters: Vec<(String, String)>,
    /// Headers on the handshake: the dialect's signature.
    pub headers: Vec<(String, String)>,
    pub reach: Reach,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The application sent `end`.
    Ended { handoff: Option<String> },
    /// The caller hung up.
    CallEnded,
    /// Stopped from outside (another document, Telnyx's `conversation_relay_stop`).
    Stopped,
    /// It failed: Twilio's code, and what happened.
    Failed { code: u32, message: String },
}

/// A session's end, for the dialect's `action` or webhooks.
#[derive(Debug, Clone)]
pub struct Finished {
    pub outcome: Outcome,
    /// From the application's socket opening to the end (zero when it never opened).
    pub duration: Duration,
    /// Problems that did not end it (an invalid message), with their code, oldest first.
    pub warnings: Vec<(u32, String)>,
}

/// A running session, as its dialect holds it (how it ends comes on a channel of its own).
pub struct Running {
    /// The call's events go here while the session runs (it sees no other copy of them).
    pub events: mpsc::Sender<CallEvent>,
    stop: watch::Sender<bool>,
}

impl Running {
    /// Ends the session (its `Finished` says `Stopped`).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// The sessions of every call.
pub struct ConversationRelays {
    control: CallControl,
    prompts: Arc<Prompts>,
    streams: Arc<MediaStreams>,
    speech: Arc<Speech>,
}

impl ConversationRelays {
    pub fn new(
        control: CallControl,
        prompts: Arc<Prompts>,
        streams: Arc<MediaStreams>,
        speech: Arc<Speech>,
    ) -> Arc<Self> {
        Arc::new(Self {
            control,
            prompts,
            streams,
            speech,
        })
    }

    /// Starts a session (it connects in the background); how it ends follows on the receiver.
    pub fn start(self: &Arc<Self>, spec: RelaySpec) -> (Running, oneshot::Receiver<Finished>) {
        let (events, events_rx) = mpsc::channel(64);
        let (stop, stop_rx) = watch::channel(false);
        let (done, finished) = oneshot::channel();
        let relays = self.clone();
        tokio::spawn(async move {
            let end = session::run(&relays, spec, events_rx, stop_rx).await;
            let _ = done.send(end);
        });
        (Running { events, stop }, finished)
    }
}
