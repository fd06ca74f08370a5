//! What a Call Control leg's events make it do beyond its webhooks (the [`Effect`]s its
//! translation names): what dial or answer asked for once the call is answered, a
//! transfer's bridge, a gather's retry, a queue's exit, a recording's transcription. Run by
//! the leg's task, which `calls::start_leg` hands it to.

use super::Telnyx;
use super::leg::plan;
use super::leg::{Effect, GatherRules, Leg, OnAnswer, Step};
use crate::call::CallCommand;
use crate::call::ids::CallId;
use std::sync::Arc;
use tracing::warn;

/// Does what an event at `at` (Unix milliseconds) asked; its webhooks carry that time.
pub(super) fn apply<'a>(
    api: &'a Arc<Telnyx>,
    leg: &'a mut Leg,
    effect: Effect,
    at: i64,
) -> Step<'a> {
    Box::pin(async move {
        match effect {
            Effect::Webhook { kind, extra } => leg.send(api, &kind, at, extra).await,
            Effect::ConferenceWebhook { kind, extra } => {
                leg.send_for_conference(api, &kind, at, extra).await;
            }
            Effect::ConferenceEnded { conference, extra } => {
                if api.legs.conference_ended(&conference).await {
                    leg.send(api, "conference.ended", at, extra).await;
                }
            }
            Effect::RunOnAnswer(on_answer) => answered(api, leg, *on_answer).await,
            Effect::Dequeue { queued, reason, at } => {
                let handle = leg.handle();
                super::queueing::dequeued(api, handle, queued, reason, at).await;
            }
            Effect::Command(command) => {
                let _ = api.parts.control.command(&leg.call, command).await;
            }
            Effect::Transcribe {
                recording,
                path,
                duration_ms,
                language,
                engine,
            } => {
                let job = crate::services::recording_transcriptions::Transcribe {
                    account: leg.account.clone(),
                    recording,
                    call: Some(leg.call.clone()),
                    path,
                    duration_ms,
                    language,
                    engine,
                };
                let handle = leg.handle().clone();
                let transcribe = super::recording::transcribe(api.clone(), handle, job);
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
            Effect::Ended { at } => api.legs.end(&leg.call, at).await,
        }
    })
}

/// Plays a `gather_using_*` prompt again (see [`plan::gather_again`]) and gathers
/// again; false when the call would not take it.
async fn retry_gather(api: &Arc<Telnyx>, leg: &mut Leg, rules: GatherRules, status: &str) -> bool {
    let Some(plan) = plan::gather_again(&mut leg.state, rules, status) else {
        return false;
    };
    (super::commands::carry_out(api, leg, plan).await).is_ok()
}

/// What dial asked for once the call is answered.
async fn answered(api: &Arc<Telnyx>, leg: &mut Leg, on_answer: OnAnswer) {
    use super::{machine_detection, recording, relaying, streaming};
    if let Some(amd) = on_answer.amd {
        machine_detection::start(api, leg.handle(), amd).await;
    }
    if let Some(spec) = on_answer.transcription
        && let Err(e) = super::transcribing::run(api, leg.handle(), spec).await
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
        && super::commands::play_url(api, leg, &url, 1).await.is_ok()
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
    let origin = api.legs.get(from).await.filter(|o| !o.ended());
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
