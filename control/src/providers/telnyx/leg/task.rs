//! A leg's task: it owns the leg, hears its call's events (translated by
//! [`super::translation`], the effects applied here in order) and runs the jobs posted to its
//! mailbox (the app's actions, a transfer's bridge, a first-command wait) one at a time, so
//! that nothing else ever touches the leg's state.

use super::translation::{self, Effect};
use super::{ENDED_COMMAND_IDS, GatherRules, Job, Leg, LegHandle, OnAnswer};
use crate::call::ids::CallId;
use crate::call::{CallCommand, CallEvent};
use crate::infra::accounts::Account;
use crate::providers::telnyx::Telnyx;
use crate::providers::telnyx::events::LegContext;
use crate::services::subscriptions::LiveSubscription;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::warn;

/// Starts the task of a new leg: its events arrive on `events`, its lifecycle goes to
/// `subscription`. Returns the leg as others hold it.
pub(in crate::providers::telnyx) fn start(
    api: &Arc<Telnyx>,
    account: &Account,
    context: LegContext,
    webhook_url: String,
    on_answer: OnAnswer,
    (events, subscription): (mpsc::Receiver<CallEvent>, LiveSubscription),
) -> Arc<LegHandle> {
    let (leg, jobs) = Leg::new(&account.sid, context, webhook_url, on_answer);
    let handle = leg.handle.clone();
    api.legs.add(handle.clone());
    api.legs
        .spawn(follow(api.clone(), leg, events, jobs, subscription));
    handle
}

async fn follow(
    api: Arc<Telnyx>,
    mut leg: Leg,
    mut events: mpsc::Receiver<CallEvent>,
    mut jobs: mpsc::Receiver<Job>,
    mut subscription: LiveSubscription,
) {
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                on_event(&api, &mut leg, &mut subscription, &event).await;
            }
            Some(job) = jobs.recv() => job(&mut leg).await,
        }
        leg.publish();
    }
    api.subject_subscriptions.release(&leg.call);
    api.parts.forks.ended(&leg.call);
    // No event follows: an ended leg keeps what is read of it, and its last command ids
    // (published before the mailbox closes, so that an action that finds the task gone
    // finds them).
    let s = &leg.state;
    let at = s.ended_at.unwrap_or_else(crate::infra::clock::now_ms);
    let stale = s.commands.len().saturating_sub(ENDED_COMMAND_IDS);
    let last: Vec<String> = s.commands.iter().skip(stale).cloned().collect();
    leg.state.ended_at = Some(at);
    leg.publish();
    leg.handle
        .view
        .send_modify(|view| view.last_commands = last);
    drop(jobs);
    api.legs.end(&leg.call, at);
}

/// Hands the event to the call's subscription (the lifecycle webhooks), its subject
/// subscriptions and its ConversationRelay session, then translates it (see
/// [`translation`]) and does what it asks, in order.
async fn on_event(
    api: &Arc<Telnyx>,
    leg: &mut Leg,
    subscription: &mut LiveSubscription,
    event: &CallEvent,
) {
    // A `client_state` the app set since is on this event's webhook, and on those a
    // recovery would make.
    let context = serde_json::to_string(&leg.state.context).unwrap_or_default();
    if context != subscription.context() {
        subscription.set_context(context).await;
    }
    subscription.on_event(event).await;
    api.subject_subscriptions.on_event(event).await;
    // A ConversationRelay session sees the leg's events (digits, its playbacks, the end).
    let relay = (leg.state.relaying.as_ref()).map(|r| r.running.events.clone());
    if let Some(relay) = relay {
        let _ = relay.send(event.clone()).await;
    }
    let effects = translation::on_event(&mut leg.state, event);
    for effect in effects {
        apply(api, leg, effect, event.at).await;
    }
}

/// Does what an event at `at` (Unix milliseconds) asked; its webhooks carry that time.
async fn apply(api: &Arc<Telnyx>, leg: &mut Leg, effect: Effect, at: i64) {
    match effect {
        Effect::Webhook { kind, extra } => leg.send(api, &kind, at, extra).await,
        Effect::ConferenceWebhook { kind, extra } => {
            leg.send_for_conference(api, &kind, at, extra).await;
        }
        Effect::ConferenceEnded { conference, extra } => {
            if api.legs.conference_ended(&conference) {
                leg.send(api, "conference.ended", at, extra).await;
            }
        }
        Effect::RunOnAnswer(on_answer) => answered(api, leg, *on_answer).await,
        Effect::Dequeue { queued, reason, at } => {
            let handle = leg.handle();
            crate::providers::telnyx::queueing::dequeued(api, handle, queued, reason, at).await;
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
            let handle = leg.handle().clone();
            let transcribe =
                crate::providers::telnyx::recording::transcribe(api.clone(), handle, job);
            api.legs.spawn(transcribe);
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
        Effect::Ended { at } => api.legs.end(&leg.call, at),
    }
}

/// Plays a `gather_using_*` prompt again (see [`super::plan::gather_again`]) and gathers
/// again; false when the call would not take it.
async fn retry_gather(api: &Arc<Telnyx>, leg: &mut Leg, rules: GatherRules, status: &str) -> bool {
    let Some(plan) = super::plan::gather_again(&mut leg.state, rules, status) else {
        return false;
    };
    (crate::providers::telnyx::actions::carry_out(api, leg, plan).await).is_ok()
}

/// What dial asked for once the call is answered.
async fn answered(api: &Arc<Telnyx>, leg: &mut Leg, on_answer: OnAnswer) {
    use crate::providers::telnyx::{machine_detection, recording, relaying, streaming};
    if let Some(amd) = on_answer.amd {
        machine_detection::start(api, leg.handle(), amd).await;
    }
    if let Some(spec) = on_answer.transcription
        && let Err(e) = crate::providers::telnyx::transcribing::run(api, leg.handle(), spec).await
    {
        warn!(call = %leg.call, error = %e.detail, "cannot transcribe the answered call");
    }
    if let Some(relay) = on_answer.relay
        && let Err(e) = relaying::start_answered(api, leg, relay)
    {
        warn!(call = %leg.call, error = %e.detail, "cannot start the answered call's ConversationRelay");
    }
    if on_answer.silence_when_idle {
        let silence = CallCommand::SilenceWhenIdle(true);
        let _ = api.parts.control.command(&leg.call, silence).await;
    }
    if let Some(stream) = on_answer.stream
        && let Err(e) = streaming::start(api, leg.handle(), stream.clone())
    {
        let id = CallId::random().uuid();
        streaming::failed(api, leg.handle(), &stream, &id, &e.to_string()).await;
    }
    if let Some(record) = on_answer.record
        && let Err(e) =
            recording::start(api, leg, record, crate::call::RecordingOrigin::CallCreate).await
    {
        warn!(call = %leg.call, error = %e.detail, "cannot record the answered call");
    }
    if let Some((call, role)) = on_answer.supervise {
        let supervise = CallCommand::Supervise { call, role };
        if let Err(e) = api.parts.control.command(&leg.call, supervise).await {
            warn!(call = %leg.call, error = %e, "the answered supervisor cannot join the call it supervises");
        }
    }
    let mut bridge = on_answer.bridge_with;
    if let Some(url) = on_answer.audio_url
        && crate::providers::telnyx::actions::play_url(api, leg, &url, 1)
            .await
            .is_ok()
    {
        // A transfer's audio is heard before the bridge: it is made when the audio ends.
        leg.state.bridge_after_play = bridge.take();
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
/// parked (by that leg's task), then the two are bridged. If that leg is gone, the new one is
/// hung up.
async fn bridge_transferred(api: &Arc<Telnyx>, leg: &mut Leg, from: &str) {
    let origin = api.legs.get(from).filter(|o| !o.ended());
    let answered = match origin {
        Some(origin) => {
            let api = api.clone();
            let answered = origin.run(move |origin| {
                Box::pin(async move {
                    let incoming = origin.state.context.direction == "incoming";
                    if incoming && !origin.answered(&api).await {
                        origin.state.commanded = true;
                        let answer = CallCommand::Answer;
                        return api.parts.control.command(&origin.call, answer).await;
                    }
                    Ok(())
                })
            });
            answered.await.ok()
        }
        None => None,
    };
    let Some(answered) = answered else {
        let _ = (api.parts.control)
            .command(&leg.call, CallCommand::Hangup)
            .await;
        return;
    };
    let bridge = CallCommand::Bridge(from.to_owned());
    let bridged = match answered {
        Ok(()) => api.parts.control.command(&leg.call, bridge).await,
        Err(e) => Err(e),
    };
    if let Err(e) = bridged {
        warn!(call = %leg.call, error = %e, "the transferred call could not be bridged");
        let _ = (api.parts.control)
            .command(&leg.call, CallCommand::Hangup)
            .await;
    }
}

/// Has the core reject an incoming leg the app sends no command for within `wait` (the
/// connection's `first_command_timeout`): the caller hears 480, the app gets a `call.hangup`
/// with cause `timeout`. The app's first action stands the wait down (see `actions::run`).
pub(in crate::providers::telnyx) async fn first_command_timeout(
    api: &Arc<Telnyx>,
    leg: &LegHandle,
    wait: Duration,
) {
    let api = api.clone();
    // Run by the leg's task: an action that came first has stood the wait down already.
    let _ = leg
        .run(move |leg| {
            Box::pin(async move {
                if !leg.state.commanded {
                    let expect = CallCommand::ExpectCommand(Some(wait));
                    let _ = api.parts.control.command(&leg.call, expect).await;
                }
            })
        })
        .await;
}
