//! A call leg run through Call Control: its state as the app sees it (`client_state`, the
//! command ids it has used, what plays), owned by one task (see [`task`]) that hears the
//! core's events for the call and runs the app's actions on it one at a time, from its
//! mailbox. Others hold a [`LegHandle`]: the leg's ids, what its webhooks carry (as the task
//! last published it), and the mailbox. The lifecycle events go through the call's
//! subscription (durable); the others are queued in the outbox as they happen, after it, in
//! the call's order.

use super::Telnyx;
use super::events::{self, LegContext};
use super::params::StreamParams;
use crate::call::GatherSpec;
use crate::services::speech::EngineKind;
use serde_json::{Map, Value, json};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use switchboard_media::Prompt;
use tokio::sync::{mpsc, oneshot, watch};

pub(super) mod plan;
mod registry;
mod task;
mod translation;

pub(super) use registry::{Dialed, Legs};
pub(super) use task::{first_command_timeout, start};
pub(super) use translation::Effect;

/// `command_id`s remembered per leg (a repeat of one of these is not run again).
const COMMAND_IDS: usize = 256;
/// `command_id`s an ended leg keeps (to answer a retried hang-up), so that the ended legs
/// kept stay small.
const ENDED_COMMAND_IDS: usize = 16;
/// Plays waiting for their start event, at most.
const PLAYS: usize = 64;
/// Actions waiting for a leg's task at most; the app's next waits for room (a client that
/// floods one call is held back, not queued without end).
const MAILBOX: usize = 32;

/// What a playback of the app's is, for its events' names.
#[derive(Debug, Clone)]
pub(super) enum Play {
    /// A `speak`, named in its events by `speak_id` (ten letters and digits, as Telnyx's).
    Speak {
        id: String,
    },
    Audio {
        url: Option<String>,
    },
    /// `record_start`'s `play_beep`: heard, not reported.
    Beep,
}

/// Digits the app's `gather` accepts.
#[derive(Debug, Clone)]
pub(super) struct GatherRules {
    pub(super) min_digits: usize,
    pub(super) valid_digits: String,
    pub(super) gather_id: Option<String>,
    /// The digits gathered again after a prompt is replayed.
    pub(super) spec: GatherSpec,
    /// `gather_using_audio` / `gather_using_speak`: the prompt, replayed after no input or
    /// invalid input until the tries are used up, and what is played first after invalid input.
    pub(super) prompt: Option<(Prompt, Play)>,
    pub(super) invalid: Option<(Prompt, Play)>,
    pub(super) tries_left: u32,
}

/// What the leg does once answered (dial's `stream_url`, `audio_url`, `time_limit_secs`).
#[derive(Debug, Clone, Default)]
pub(super) struct OnAnswer {
    pub(super) stream: Option<StreamParams>,
    pub(super) audio_url: Option<String>,
    pub(super) time_limit: Option<Duration>,
    /// `record: record-from-answer`.
    pub(super) record: Option<super::params::record::RecordParams>,
    /// A transfer's new leg: bridged with this call once answered (which is answered first
    /// if it is an incoming call still parked).
    pub(super) bridge_with: Option<String>,
    /// dial's `supervise_call_control_id`: it joins this call's bridge as its supervisor.
    pub(super) supervise: Option<(String, crate::call::SupervisorRole)>,
    /// `send_silence_when_idle`: the party gets silence whenever nothing else is sent to it.
    pub(super) silence_when_idle: bool,
    /// `answering_machine_detection`: listen from the answer.
    pub(super) amd: Option<super::params::amd::AmdParams>,
    /// `transcription`: transcribe from the answer.
    pub(super) transcription: Option<crate::services::transcription::TranscriptionSpec>,
    /// `conversation_relay_config`: a ConversationRelay session from the answer.
    pub(super) relay: Option<super::params::relay::OnAnswer>,
    /// dial's `park_after_unbridge: self`: the leg stays up when the one it is bridged with
    /// hangs up (as the bridge and transfer actions' parameter of the name does).
    pub(super) park_after_unbridge: bool,
}

/// Where a leg waits.
#[derive(Debug, Clone)]
pub(in crate::providers::telnyx) struct Queued {
    pub(in crate::providers::telnyx) sid: String,
    pub(in crate::providers::telnyx) name: String,
    /// Unix milliseconds.
    pub(in crate::providers::telnyx) joined_at: i64,
    /// The id of the call's alarm that ends the wait at `max_wait_time_secs`, if it has one.
    pub(in crate::providers::telnyx) alarm: Option<u64>,
}

impl Queued {
    #[cfg(test)]
    pub(in crate::providers::telnyx) fn new(
        sid: &str,
        name: &str,
        joined_at: i64,
        alarm: Option<u64>,
    ) -> Self {
        let (sid, name) = (sid.to_owned(), name.to_owned());
        Self {
            sid,
            name,
            joined_at,
            alarm,
        }
    }
}

/// A running session on a leg: how to stop it and where the leg's events go.
pub(in crate::providers::telnyx) struct Relaying {
    pub(in crate::providers::telnyx) running: crate::services::relay::Running,
}

pub(super) struct LegState {
    pub(super) context: LegContext,
    /// Where its webhooks go.
    pub(super) webhook_url: String,
    /// Whether the app has sent the leg a command (an incoming call waits for its first).
    pub(super) commanded: bool,
    /// A transfer's leg bridges with this call when the audio it plays first has ended.
    pub(super) bridge_after_play: Option<String>,
    /// Stay up when the leg it is bridged with hangs up (`park_after_unbridge: self`);
    /// otherwise it is hung up too.
    pub(super) park_after_unbridge: bool,
    /// The queue the leg waits in.
    pub(super) queued: Option<Queued>,
    /// The fork running (its `stream_type`), until it is stopped.
    pub(super) fork: Option<String>,
    /// Recordings to transcribe once saved (`record_start` with `transcription`), with the
    /// language each is heard as and the engine its `transcription_engine` is mapped to.
    pub(super) transcribed: Vec<(String, Option<String>, Option<EngineKind>)>,
    /// Unix milliseconds.
    pub(super) ended_at: Option<i64>,
    commands: VecDeque<String>,
    pub(super) plays: VecDeque<Play>,
    pub(super) gather: Option<GatherRules>,
    pub(super) on_answer: OnAnswer,
    /// The ConversationRelay session running on it (`conversation_relay_start`).
    pub(super) relaying: Option<Relaying>,
    /// It is opening a conference (`POST /v2/conferences`): its join is the conference's
    /// `conference.created` too.
    pub(super) creating_conference: bool,
    /// The conference (its SID) the leg sits in on another node, through a leg to that node
    /// bridged with it: that bridge is the conference, not a call's (no `call.bridged`), and
    /// its end is leaving the room, after which the leg stays up as after a local leave.
    pub(super) visiting: Option<String>,
}

impl LegState {
    pub(super) fn new(context: LegContext, webhook_url: String, on_answer: OnAnswer) -> Self {
        Self {
            context,
            webhook_url,
            commanded: false,
            park_after_unbridge: on_answer.park_after_unbridge,
            bridge_after_play: None,
            queued: None,
            fork: None,
            transcribed: Vec::new(),
            ended_at: None,
            commands: VecDeque::new(),
            plays: VecDeque::new(),
            gather: None,
            on_answer,
            relaying: None,
            creating_conference: false,
            visiting: None,
        }
    }
}

/// A leg, owned by its task: only that task reads or changes it.
pub(super) struct Leg {
    /// The stored id (`CA…`).
    pub(super) call: String,
    pub(super) account: String,
    pub(super) state: LegState,
    handle: Arc<LegHandle>,
}

/// What a leg's webhooks are built from, as its task last published it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct LegView {
    pub(super) context: LegContext,
    pub(super) webhook_url: String,
    /// Unix milliseconds.
    pub(super) ended_at: Option<i64>,
    /// The last `command_id`s it ran, once it has ended (a retried hang-up answers as the
    /// first did); while it runs, its task answers that.
    pub(super) last_commands: Vec<String>,
}

/// An action or a step run by the leg's task on the leg (see [`LegHandle::run`]).
type Job = Box<dyn for<'a> FnOnce(&'a mut Leg) -> Step<'a> + Send>;
/// A job's work, borrowing the leg.
pub(super) type Step<'a, T = ()> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A leg as others hold it: its ids, its published view, its task's mailbox.
pub(super) struct LegHandle {
    /// The stored id (`CA…`).
    pub(super) call: String,
    pub(super) account: String,
    view: watch::Sender<LegView>,
    mailbox: mpsc::Sender<Job>,
}

impl Leg {
    /// A new leg, and the mailbox its task reads.
    fn new(
        account: &str,
        context: LegContext,
        webhook_url: String,
        on_answer: OnAnswer,
    ) -> (Self, mpsc::Receiver<Job>) {
        let (mailbox, jobs) = mpsc::channel(MAILBOX);
        let view = LegView {
            context: context.clone(),
            webhook_url: webhook_url.clone(),
            ended_at: None,
            last_commands: Vec::new(),
        };
        let handle = Arc::new(LegHandle {
            call: context.call.clone(),
            account: account.to_owned(),
            view: watch::Sender::new(view),
            mailbox,
        });
        let leg = Self {
            call: context.call.clone(),
            account: account.to_owned(),
            state: LegState::new(context, webhook_url, on_answer),
            handle,
        };
        (leg, jobs)
    }

    /// The leg as others hold it, its view brought up to date first (a step that changed
    /// `client_state` and then hands the handle on gives it the new one).
    pub(super) fn handle(&self) -> &Arc<LegHandle> {
        self.publish();
        &self.handle
    }

    /// Publishes what the leg's webhooks are built from, if it changed.
    fn publish(&self) {
        let s = &self.state;
        self.handle.view.send_if_modified(|view| {
            let changed = view.context != s.context
                || view.webhook_url != s.webhook_url
                || view.ended_at != s.ended_at;
            if changed {
                view.context.clone_from(&s.context);
                view.webhook_url.clone_from(&s.webhook_url);
                view.ended_at = s.ended_at;
            }
            changed
        });
    }

    /// Whether the call is up now, answered and not ended: asked of the core, which holds a
    /// call's state (a copy here would lag behind it by the events not yet read).
    pub(super) async fn answered(&self, api: &Telnyx) -> bool {
        self.handle.answered(api).await
    }

    /// The recording of the call's audio running now, as the core knows it.
    pub(super) async fn recording(&self, api: &Telnyx) -> Option<String> {
        (api.parts.control.view(&self.call).await).ok()?.recording
    }

    /// Whether the leg has run a command with this `command_id`.
    pub(super) fn ran(&self, id: &str) -> bool {
        self.state.commands.iter().any(|c| c == id)
    }

    /// Records the `command_id` of a command that ran.
    pub(super) fn record_command(&mut self, id: &str) {
        let commands = &mut self.state.commands;
        if commands.len() == COMMAND_IDS {
            commands.pop_front();
        }
        commands.push_back(id.to_owned());
    }

    /// Queues an event made now (not a lifecycle one) for the app.
    pub(super) async fn send(
        &self,
        api: &Telnyx,
        event_type: &str,
        at: i64,
        extra: Map<String, Value>,
    ) {
        self.handle().send(api, event_type, at, extra).await;
    }

    /// Sends a conference's own event through the leg's webhook (see
    /// [`LegHandle::send_for_conference`]).
    pub(super) async fn send_for_conference(
        &self,
        api: &Telnyx,
        event_type: &str,
        at: i64,
        extra: Map<String, Value>,
    ) {
        (self.handle())
            .send_for_conference(api, event_type, at, extra)
            .await;
    }
}

/// Why a job did not run: the leg's task is gone (its call has ended).
#[derive(Debug)]
pub(super) struct Gone;

impl LegHandle {
    /// What the leg's webhooks are built from now.
    pub(super) fn view(&self) -> watch::Ref<'_, LegView> {
        self.view.borrow()
    }

    pub(super) fn context(&self) -> LegContext {
        self.view().context.clone()
    }

    pub(super) fn ended(&self) -> bool {
        self.view().ended_at.is_some()
    }

    /// Runs `job` on the leg in its task, after what was posted before it, and gives its
    /// answer; `Gone` once the leg has ended and its task with it.
    pub(super) async fn run<T, F>(&self, job: F) -> Result<T, Gone>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut Leg) -> Step<'a, T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |leg| {
            Box::pin(async move {
                let _ = answer.send(job(leg).await);
            })
        });
        self.mailbox.send(job).await.map_err(|_| Gone)?;
        answered.await.map_err(|_| Gone)
    }

    /// Whether the call is up now, answered and not ended (asked of the core).
    pub(super) async fn answered(&self, api: &Telnyx) -> bool {
        (api.parts.control.view(&self.call).await).is_ok_and(|v| v.is_up())
    }

    /// Queues an event made now (not a lifecycle one) for the app.
    pub(super) async fn send(
        &self,
        api: &Telnyx,
        event_type: &str,
        at: i64,
        extra: Map<String, Value>,
    ) {
        let request = {
            let view = self.view();
            let mut payload = view.context.payload();
            payload.extend(extra);
            let data = events::data(event_type, at, payload);
            view.context.webhook(&view.webhook_url, &data)
        };
        (api.parts.subscriptions.outbox())
            .send(&self.account, &self.call, request)
            .await;
    }

    /// Sends a conference's own event through the leg's webhook: the leg's connection with
    /// `extra`, none of the call's fields.
    pub(super) async fn send_for_conference(
        &self,
        api: &Telnyx,
        event_type: &str,
        at: i64,
        mut extra: Map<String, Value>,
    ) {
        let request = {
            let view = self.view();
            let connection = &view.context.connection_id;
            extra.insert("connection_id".into(), json!(connection));
            let data = events::data(event_type, at, extra);
            view.context.webhook(&view.webhook_url, &data)
        };
        (api.parts.subscriptions.outbox())
            .send(&self.account, &self.call, request)
            .await;
    }
}

/// A leg's state as its tests start it: a parked call of `direction`, nothing asked of it.
#[cfg(test)]
fn test_state(direction: &str) -> LegState {
    let context = LegContext {
        call: "CA1".into(),
        session: "CA1".into(),
        connection_id: "conn".into(),
        from: "+15550001".into(),
        to: "+15550002".into(),
        direction: direction.into(),
        client_state: None,
        start_time: 0,
        hangup_cause: None,
        failover_url: None,
        webhook_timeout_secs: None,
        invite_headers: vec![],
        calling_party_type: "pstn".into(),
        offered: None,
    };
    LegState::new(context, "http://app/hook".into(), OnAnswer::default())
}
