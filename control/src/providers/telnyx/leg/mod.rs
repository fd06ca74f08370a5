//! A call leg run through Call Control: its state as the app sees it (`client_state`, the
//! command ids it has used, what plays), and the task that turns the core's events for it
//! into Telnyx webhooks. The lifecycle events go through the call's subscription (durable);
//! the others are queued in the outbox as they happen, after it, in the call's order.

use super::Telnyx;
use super::events::{self, LegContext};
use super::params::StreamParams;
use crate::call::ids::CallId;
use crate::call::{CallCommand, CallEvent, GatherSpec};
use crate::infra::webhook::request::WebhookRequest;
use crate::services::subscriptions::LiveSubscription;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_media::Prompt;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tracing::warn;
use translation::Effect;

mod translation;

/// `command_id`s remembered per leg (a repeat of one of these is not run again).
const COMMAND_IDS: usize = 256;
/// Dial `command_id`s remembered across the node.
const DIAL_IDS: usize = 10_000;
/// An ended leg can be read for this long (Telnyx keeps a call's status ~10 minutes).
const ENDED_KEPT_MS: i64 = 10 * 60 * 1000;
/// Ended legs kept at most (the oldest go first).
const ENDED_KEPT: usize = 10_000;
/// `command_id`s an ended leg keeps (to answer a retried hang-up), so that the ended legs
/// kept stay small.
const ENDED_COMMAND_IDS: usize = 16;
/// Plays waiting for their start event, at most.
const PLAYS: usize = 64;

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
    pub(super) record: Option<super::recording::RecordParams>,
    /// A transfer's new leg: bridged with this call once answered (which is answered first
    /// if it is an incoming call still parked).
    pub(super) bridge_with: Option<String>,
    /// dial's `supervise_call_control_id`: it joins this call's bridge as its supervisor.
    pub(super) supervise: Option<(String, crate::call::SupervisorRole)>,
    /// `send_silence_when_idle`: the party gets silence whenever nothing else is sent to it.
    pub(super) silence_when_idle: bool,
    /// `answering_machine_detection`: listen from the answer.
    pub(super) amd: Option<super::machine_detection::AmdParams>,
    /// `transcription`: transcribe from the answer.
    pub(super) transcription: Option<crate::services::transcription::TranscriptionSpec>,
    /// `conversation_relay_config`: a ConversationRelay session from the answer.
    pub(super) relay: Option<super::relaying::OnAnswer>,
}

pub(super) struct LegState {
    pub(super) context: LegContext,
    /// Where its webhooks go.
    pub(super) webhook_url: String,
    /// Whether the app has sent the leg a command (an incoming call waits for its first).
    pub(super) commanded: bool,
    /// A transfer's leg bridges with this call when the audio it plays first has ended.
    bridge_after_play: Option<String>,
    /// Stay up when the leg it is bridged with hangs up (`park_after_unbridge: self`);
    /// otherwise it is hung up too.
    pub(super) park_after_unbridge: bool,
    /// The queue the leg waits in.
    pub(super) queued: Option<super::queueing::Queued>,
    /// The fork running (its `stream_type`), until it is stopped.
    pub(super) fork: Option<String>,
    /// Recordings to transcribe once saved (`record_start` with `transcription`), and the
    /// language each is heard as.
    pub(super) transcribed: Vec<(String, Option<String>)>,
    /// Unix milliseconds.
    pub(super) ended_at: Option<i64>,
    commands: VecDeque<String>,
    pub(super) plays: VecDeque<Play>,
    pub(super) gather: Option<GatherRules>,
    pub(super) on_answer: OnAnswer,
    /// The ConversationRelay session running on it (`conversation_relay_start`).
    pub(super) relaying: Option<super::relaying::Relaying>,
    /// It is opening a conference (`POST /v2/conferences`): its join is the conference's
    /// `conference.created` too.
    pub(super) creating_conference: bool,
}

impl LegState {
    pub(super) fn new(context: LegContext, webhook_url: String, on_answer: OnAnswer) -> Self {
        Self {
            context,
            webhook_url,
            commanded: false,
            park_after_unbridge: false,
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
        }
    }
}

pub(super) struct Leg {
    /// The stored id (`CA…`).
    pub(super) call: String,
    pub(super) account: String,
    pub(super) state: Mutex<LegState>,
    /// Held through an action, so that two actions on a leg do not interleave (a playback's
    /// kind is queued before the command that starts it).
    pub(super) action: tokio::sync::Mutex<()>,
}

impl Leg {
    pub(super) fn new(
        account: &str,
        context: LegContext,
        webhook_url: String,
        on_answer: OnAnswer,
    ) -> Arc<Self> {
        Arc::new(Self {
            call: context.call.clone(),
            account: account.to_owned(),
            state: Mutex::new(LegState::new(context, webhook_url, on_answer)),
            action: tokio::sync::Mutex::new(()),
        })
    }

    /// Whether the call is up now, answered and not ended: asked of the core, which holds a
    /// call's state (a copy here would lag behind it by the events not yet read).
    pub(super) async fn answered(&self, api: &Telnyx) -> bool {
        (api.parts.control.view(&self.call).await).is_ok_and(|v| v.is_up())
    }

    /// The recording of the call's audio running now, as the core knows it.
    pub(super) async fn recording(&self, api: &Telnyx) -> Option<String> {
        (api.parts.control.view(&self.call).await).ok()?.recording
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, LegState> {
        self.state.lock().expect("not poisoned")
    }

    pub(super) fn context(&self) -> LegContext {
        self.lock().context.clone()
    }

    /// Whether the leg has run a command with this `command_id`.
    pub(super) fn ran(&self, id: &str) -> bool {
        self.lock().commands.iter().any(|c| c == id)
    }

    /// Records the `command_id` of a command that ran.
    pub(super) fn record_command(&self, id: &str) {
        let mut s = self.lock();
        if s.commands.len() == COMMAND_IDS {
            s.commands.pop_front();
        }
        s.commands.push_back(id.to_owned());
    }

    pub(super) fn queue_play(&self, play: Play) -> bool {
        let mut s = self.lock();
        if s.plays.len() >= PLAYS {
            return false;
        }
        s.plays.push_back(play);
        true
    }

    /// Takes back the play queued last (its command failed).
    pub(super) fn unqueue_play(&self) {
        self.lock().plays.pop_back();
    }

    /// Queues an event made now (not a lifecycle one) for the app.
    pub(super) async fn send(
        &self,
        api: &Telnyx,
        event_type: &str,
        at: i64,
        extra: Map<String, Value>,
    ) {
        let (url, failover, mut payload) = {
            let s = self.lock();
            let failover = s.context.failover_url.clone();
            (s.webhook_url.clone(), failover, s.context.payload())
        };
        payload.extend(extra);
        let data = events::data(event_type, at, payload);
        api.parts
            .subscriptions
            .outbox()
            .send(
                &self.account,
                &self.call,
                WebhookRequest::telnyx(&url, &data).with_failover(failover),
            )
            .await;
    }
}

impl Leg {
    /// Sends a conference's own event through the leg's webhook: the leg's connection with
    /// `extra`, none of the call's fields.
    pub(super) async fn send_for_conference(
        &self,
        api: &Telnyx,
        event_type: &str,
        at: i64,
        mut extra: Map<String, Value>,
    ) {
        let (url, failover, connection) = {
            let s = self.lock();
            let c = &s.context;
            (
                s.webhook_url.clone(),
                c.failover_url.clone(),
                c.connection_id.clone(),
            )
        };
        extra.insert("connection_id".into(), json!(connection));
        let data = events::data(event_type, at, extra);
        api.parts
            .subscriptions
            .outbox()
            .send(
                &self.account,
                &self.call,
                WebhookRequest::telnyx(&url, &data).with_failover(failover),
            )
            .await;
    }
}

/// What a dial made: its call, and the recording it asked for.
#[derive(Debug, Clone)]
pub(super) struct Dialed {
    pub(super) call: String,
    pub(super) recording: Option<String>,
}

/// The legs this node runs, and those ended lately (their status is still asked for).
#[derive(Default)]
pub(super) struct Legs {
    live: Mutex<HashMap<String, Arc<Leg>>>,
    ended: Mutex<VecDeque<(i64, Arc<Leg>)>>,
    /// `(account, command_id)` of dials, with the call each made (and the recording it
    /// asked for), oldest first.
    dials: Mutex<VecDeque<((String, String), Dialed)>>,
    tasks: TaskTracker,
}

impl Legs {
    pub(super) fn get(&self, call: &str) -> Option<Arc<Leg>> {
        if let Some(leg) = self.live.lock().expect("not poisoned").get(call) {
            return Some(leg.clone());
        }
        let now = crate::infra::clock::now_ms();
        let mut ended = self.ended.lock().expect("not poisoned");
        while ended
            .front()
            .is_some_and(|(at, _)| now - at > ENDED_KEPT_MS)
        {
            ended.pop_front();
        }
        ended
            .iter()
            .find(|(_, l)| l.call == call)
            .map(|(_, l)| l.clone())
    }

    /// The live legs of a connection.
    pub(super) fn of_connection(&self, connection: &str) -> Vec<Arc<Leg>> {
        let live = self.live.lock().expect("not poisoned");
        let mut legs: Vec<_> = live
            .values()
            .filter(|l| l.lock().context.connection_id == connection)
            .cloned()
            .collect();
        legs.sort_by_key(|l| l.lock().context.start_time);
        legs
    }

    /// What an earlier dial with this `command_id` made.
    pub(super) fn dialed(&self, account: &str, command_id: &str) -> Option<Dialed> {
        let dials = self.dials.lock().expect("not poisoned");
        dials
            .iter()
            .find(|((a, c), _)| a == account && c == command_id)
            .map(|(_, dialed)| dialed.clone())
    }

    pub(super) fn remember_dial(&self, account: &str, command_id: &str, dialed: Dialed) {
        let mut dials = self.dials.lock().expect("not poisoned");
        if dials.len() == DIAL_IDS {
            dials.pop_front();
        }
        dials.push_back(((account.to_owned(), command_id.to_owned()), dialed));
    }

    /// Moves a live leg to the ended ones (once).
    fn end(&self, leg: &Arc<Leg>, at: i64) {
        if self
            .live
            .lock()
            .expect("not poisoned")
            .remove(&leg.call)
            .is_none()
        {
            return;
        }
        let mut ended = self.ended.lock().expect("not poisoned");
        if ended.len() == ENDED_KEPT {
            ended.pop_front();
        }
        ended.push_back((at, leg.clone()));
    }

    /// Runs a task of the legs' (a shutdown waits for it).
    pub(super) fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// Waits for the legs' tasks (their calls have ended) to queue their last webhooks.
    pub(super) async fn drain(&self, grace: Duration) -> bool {
        self.tasks.close();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }
}

/// Starts running `leg`: its events arrive on `events`, its lifecycle goes to `subscription`.
pub(super) fn run(
    api: Arc<Telnyx>,
    leg: Arc<Leg>,
    events: mpsc::Receiver<CallEvent>,
    subscription: LiveSubscription,
) {
    api.legs
        .live
        .lock()
        .expect("not poisoned")
        .insert(leg.call.clone(), leg.clone());
    let tasks = api.legs.tasks.clone();
    tasks.spawn(follow(api, leg, events, subscription));
}

async fn follow(
    api: Arc<Telnyx>,
    leg: Arc<Leg>,
    mut events: mpsc::Receiver<CallEvent>,
    mut subscription: LiveSubscription,
) {
    while let Some(event) = events.recv().await {
        // A `client_state` the app set since is on this event's webhook, and on those a
        // recovery would make.
        let context = serde_json::to_string(&leg.context()).unwrap_or_default();
        if context != subscription.context() {
            subscription.set_context(context).await;
        }
        subscription.on_event(&event).await;
        api.subject_subscriptions.on_event(&event).await;
        // A ConversationRelay session sees the leg's events (digits, its playbacks, the end).
        let relay = (leg.lock().relaying.as_ref()).map(|r| r.running.events.clone());
        if let Some(relay) = relay {
            let _ = relay.send(event.clone()).await;
        }
        on_event(&api, &leg, &event).await;
    }
    api.subject_subscriptions.release(&leg.call);
    api.parts.forks.ended(&leg.call);
    let at = {
        // No event follows: an ended leg keeps what is read of it, and its last command ids.
        let mut s = leg.lock();
        let stale = s.commands.len().saturating_sub(ENDED_COMMAND_IDS);
        s.commands.drain(..stale);
        s.plays.clear();
        s.gather = None;
        s.bridge_after_play = None;
        s.on_answer = OnAnswer::default();
        s.ended_at.unwrap_or_else(crate::infra::clock::now_ms)
    };
    api.legs.end(&leg, at);
}

/// Translates the event (see [`translation`]) and does what it asks, in order.
async fn on_event(api: &Arc<Telnyx>, leg: &Arc<Leg>, event: &CallEvent) {
    let effects = translation::on_event(&mut leg.lock(), event);
    for effect in effects {
        apply(api, leg, effect, event.at).await;
    }
}

/// Does what an event at `at` (Unix milliseconds) asked; its webhooks carry that time.
async fn apply(api: &Arc<Telnyx>, leg: &Arc<Leg>, effect: Effect, at: i64) {
    match effect {
        Effect::Webhook { kind, extra } => leg.send(api, &kind, at, extra).await,
        Effect::ConferenceWebhook { kind, extra } => {
            leg.send_for_conference(api, &kind, at, extra).await;
        }
        Effect::ConferenceEnded { conference, extra } => {
            if api.conference_ended(&conference) {
                leg.send(api, "conference.ended", at, extra).await;
            }
        }
        Effect::RunOnAnswer(on_answer) => answered(api, leg, *on_answer).await,
        Effect::Dequeue { queued, reason, at } => {
            super::queueing::dequeued(api, leg, queued, reason, at).await;
        }
        Effect::Command(command) => {
            let _ = api.parts.control.command(&leg.call, command).await;
        }
        Effect::Transcribe {
            recording,
            path,
            duration_ms,
            language,
        } => {
            let job = crate::services::recording_transcriptions::Transcribe {
                account: leg.account.clone(),
                recording,
                call: Some(leg.call.clone()),
                path,
                duration_ms,
                language,
            };
            let (api, leg) = (api.clone(), leg.clone());
            api.legs
                .tasks
                .clone()
                .spawn(super::recording::transcribe(api, leg, job));
        }
        Effect::BridgeTransferred(other) => bridge_transferred(api, leg, &other).await,
        Effect::RetryGather {
            rules,
            status,
            otherwise,
        } => {
            if !retry_gather(api, leg, *rules, status).await {
                leg.send(api, "call.gather.ended", at, otherwise).await;
            }
        }
        Effect::Ended { at } => api.legs.end(leg, at),
    }
}

/// Plays a `gather_using_*` prompt again (after the invalid-input prompt, when the input was
/// invalid and there is one) and gathers again; false when the call would not take it.
async fn retry_gather(api: &Arc<Telnyx>, leg: &Arc<Leg>, rules: GatherRules, status: &str) -> bool {
    let Some(prompt) = rules.prompt.clone() else {
        return false;
    };
    let _one_at_a_time = leg.action.lock().await;
    if leg.lock().ended_at.is_some() {
        return false;
    }
    let spec = rules.spec.clone();
    let invalid = rules.invalid.clone().filter(|_| status == "invalid");
    leg.lock().gather = Some(rules);
    let mut replayed = Ok(());
    for (clip, kind) in invalid.into_iter().chain([prompt]) {
        replayed = replayed.and(super::actions::play(api, leg, clip, 1, kind).await);
    }
    let gathered = replayed.and(super::actions::command(api, leg, CallCommand::Gather(spec)).await);
    if gathered.is_err() {
        leg.lock().gather = None;
        return false;
    }
    true
}

/// What dial asked for once the call is answered.
async fn answered(api: &Arc<Telnyx>, leg: &Arc<Leg>, on_answer: OnAnswer) {
    if let Some(amd) = on_answer.amd {
        super::machine_detection::start(api, leg, amd).await;
    }
    if let Some(spec) = on_answer.transcription
        && let Err(e) = super::transcribing::run(api, leg, spec).await
    {
        warn!(call = %leg.call, error = %e.detail, "cannot transcribe the answered call");
    }
    if let Some(relay) = on_answer.relay
        && let Err(e) = super::relaying::start_answered(api, leg, relay)
    {
        warn!(call = %leg.call, error = %e.detail, "cannot start the answered call's ConversationRelay");
    }
    if on_answer.silence_when_idle {
        let silence = CallCommand::SilenceWhenIdle(true);
        let _ = api.parts.control.command(&leg.call, silence).await;
    }
    if let Some(stream) = on_answer.stream
        && let Err(e) = super::streaming::start(api, leg, stream.clone())
    {
        let id = CallId::random().uuid();
        super::streaming::failed(api, leg, &stream, &id, &e.to_string()).await;
    }
    if let Some(record) = on_answer.record {
        let _one_at_a_time = leg.action.lock().await;
        if let Err(e) =
            super::recording::start(api, leg, record, crate::call::RecordingOrigin::CallCreate)
                .await
        {
            warn!(call = %leg.call, error = %e.detail, "cannot record the answered call");
        }
    }
    if let Some((call, role)) = on_answer.supervise {
        let supervise = CallCommand::Supervise { call, role };
        if let Err(e) = api.parts.control.command(&leg.call, supervise).await {
            warn!(call = %leg.call, error = %e, "the answered supervisor cannot join the call it supervises");
        }
    }
    let mut bridge = on_answer.bridge_with;
    if let Some(url) = on_answer.audio_url
        && super::actions::play_url(api, leg, &url, 1).await.is_ok()
    {
        // A transfer's audio is heard before the bridge: it is made when the audio ends.
        leg.lock().bridge_after_play = bridge.take();
    }
    if let Some(other) = bridge {
        bridge_transferred(api, leg, &other).await;
    }
    if let Some(limit) = on_answer.time_limit {
        // The core hangs up at the limit; its cause says why (`time_limit` in the hangup).
        let _ = (api.parts.control)
            .command(&leg.call, CallCommand::LimitDuration(limit))
            .await;
    }
}

/// A transfer's leg has answered: the leg it was placed from is answered if it is still
/// parked, then the two are bridged. If that leg is gone, the new one is hung up.
async fn bridge_transferred(api: &Arc<Telnyx>, leg: &Arc<Leg>, from: &str) {
    let Some(origin) = api.legs.get(from).filter(|o| o.lock().ended_at.is_none()) else {
        let _ = api
            .parts
            .control
            .command(&leg.call, CallCommand::Hangup)
            .await;
        return;
    };
    let bridged = async {
        let _one_at_a_time = origin.action.lock().await;
        let incoming = origin.lock().context.direction == "incoming";
        let parked = incoming && !origin.answered(api).await;
        if parked {
            origin.lock().commanded = true;
            api.parts.control.command(from, CallCommand::Answer).await?;
        }
        (api.parts.control)
            .command(&leg.call, CallCommand::Bridge(from.to_owned()))
            .await
    };
    if let Err(e) = bridged.await {
        warn!(call = %leg.call, error = %e, "the transferred call could not be bridged");
        let _ = api
            .parts
            .control
            .command(&leg.call, CallCommand::Hangup)
            .await;
    }
}

/// Has the core reject an incoming leg the app sends no command for within `wait` (the
/// connection's `first_command_timeout`): the caller hears 480, the app gets a `call.hangup`
/// with cause `timeout`. The app's first action stands the wait down (see `actions::run`).
pub(super) async fn first_command_timeout(api: &Arc<Telnyx>, leg: &Arc<Leg>, wait: Duration) {
    // Actions run one at a time: one that came first has stood the wait down already.
    let _one_at_a_time = leg.action.lock().await;
    if leg.lock().commanded {
        return;
    }
    let _ = (api.parts.control)
        .command(&leg.call, CallCommand::ExpectCommand(Some(wait)))
        .await;
}
