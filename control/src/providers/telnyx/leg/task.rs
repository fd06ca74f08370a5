//! A leg's task: it owns the leg, hears its call's events (translated by
//! [`super::translation`], the effects applied here in order) and runs the jobs posted to its
//! mailbox (the app's actions, a transfer's bridge, a first-command wait) one at a time, so
//! that nothing else ever touches the leg's state.

use super::translation::{self, Effect};
use super::{ENDED_COMMAND_IDS, Job, Leg, LegHandle, OnAnswer, Step};
use crate::call::{CallCommand, CallEvent};
use crate::infra::accounts::Account;
use crate::providers::telnyx::Telnyx;
use crate::providers::telnyx::events::LegContext;
use crate::services::subscriptions::LiveSubscription;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Starts the task of a new leg: its events arrive on `events`, its lifecycle goes to
/// `subscription`. Returns the leg as others hold it.
pub(in crate::providers::telnyx) async fn start(
    api: &Arc<Telnyx>,
    account: &Account,
    context: LegContext,
    webhook_url: String,
    on_answer: OnAnswer,
    (events, subscription): (mpsc::Receiver<CallEvent>, LiveSubscription),
    apply: Apply,
) -> Arc<LegHandle> {
    let (leg, jobs) = Leg::new(&account.sid, context, webhook_url, on_answer);
    let handle = leg.handle.clone();
    api.legs.add(handle.clone()).await;
    let inputs = Inputs {
        events,
        jobs,
        subscription,
        apply,
    };
    api.legs.spawn(follow(api.clone(), leg, inputs));
    handle
}

/// What carries out an [`Effect`] of an event at `at` (Unix milliseconds) on the leg: given
/// by the dialect's layer above the leg (a leg starts streams, recordings, transfers' bridges
/// without this module knowing how).
pub(in crate::providers::telnyx) type Apply =
    for<'a> fn(&'a Arc<Telnyx>, &'a mut Leg, Effect, i64) -> Step<'a>;

/// What a leg's task hears.
struct Inputs {
    events: mpsc::Receiver<CallEvent>,
    jobs: mpsc::Receiver<Job>,
    subscription: LiveSubscription,
    apply: Apply,
}

async fn follow(api: Arc<Telnyx>, mut leg: Leg, mut inputs: Inputs) {
    loop {
        tokio::select! {
            event = inputs.events.recv() => {
                let Some(event) = event else { break };
                on_event(&api, &mut leg, &mut inputs, &event).await;
            }
            Some(job) = inputs.jobs.recv() => job(&mut leg).await,
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
    drop(inputs);
    api.legs.end(&leg.call, at).await;
}

/// Hands the event to the call's subscription (the lifecycle webhooks), its subject
/// subscriptions and its ConversationRelay session, then translates it (see
/// [`translation`]) and does what it asks, in order.
async fn on_event(api: &Arc<Telnyx>, leg: &mut Leg, inputs: &mut Inputs, event: &CallEvent) {
    let subscription = &mut inputs.subscription;
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
        (inputs.apply)(api, leg, effect, event.at).await;
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
