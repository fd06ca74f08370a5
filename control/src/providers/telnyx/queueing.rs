//! `enqueue` / `leave_queue`, and `bridge` with a queue: a leg waits in one of the account's
//! neutral queues (the same ones Twilio's `<Enqueue>` and `<Dial><Queue>` use) until the app
//! takes it out, its `max_wait_time_secs` runs out, a bridge takes it from the front, or it
//! hangs up. `call.enqueued` on joining, `call.dequeued` with the reason on leaving.

use super::Telnyx;
use super::errors::ApiError;
use super::leg::{Leg, LegHandle, Queued};
use super::params::Params;
use crate::call::CallCommand;
use crate::services::queues::position;
use serde_json::{Map, json};
use std::sync::Arc;
use std::time::Duration;

/// A queue name at most this long.
const MAX_NAME: usize = 255;
/// The size of a queue `enqueue` creates without `max_size` (Telnyx documents no default).
const DEFAULT_MAX_SIZE: u32 = 100;

/// Alarm ids, unique in the process: an alarm of an earlier wait of the same leg is not
/// taken for the current one's.
static ALARMS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// `enqueue`: puts the (answered) leg at the end of `queue_name`, created if need be.
pub(super) async fn enqueue(api: &Arc<Telnyx>, leg: &mut Leg, p: &Params) -> Result<(), ApiError> {
    let name = p.short("queue_name", MAX_NAME)?.filter(|n| !n.is_empty());
    let name = name.ok_or_else(|| ApiError::missing("queue_name"))?;
    let max_wait = p.int("max_wait_time_secs", 1..=14_400)?;
    let max_size = p
        .int("max_size", 1..=5000)?
        .unwrap_or(DEFAULT_MAX_SIZE.into()) as u32;
    // A call leaves its queue when it hangs up; keeping it there is not served (false, the
    // default, is what happens).
    if p.bool("keep_after_hangup")? == Some(true) {
        return Err(ApiError::invalid(
            "keep_after_hangup",
            "'keep_after_hangup' is not served here: a call leaves its queue when it hangs up."
                .into(),
        ));
    }
    if !leg.answered(api).await {
        return Err(ApiError::not_answered());
    }
    if leg.state.queued.is_some() {
        return Err(ApiError::param(
            "90038",
            "Call already in queue",
            "call_control_id",
            "The call waits in a queue already; leave it first.".into(),
        ));
    }
    let joined = (api
        .parts
        .queues
        .join(&leg.account, name, &leg.call, max_size)
        .await)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    if joined.is_some() {
        // A call in a bridge leaves it for the queue (the other leg stays up).
        let _ = (api.parts.control)
            .command(&leg.call, CallCommand::Unbridge)
            .await;
    }
    let Some(queue) = joined else {
        return Err(ApiError::param(
            "90036",
            "Queue full",
            "queue_name",
            format!("The queue {name} is full."),
        ));
    };
    let alarm = max_wait.map(|_| ALARMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let queued = Queued {
        sid: queue.sid.clone(),
        name: name.to_owned(),
        joined_at: crate::infra::clock::now_ms(),
        alarm,
    };
    leg.state.queued = Some(queued.clone());
    let mut extra = Map::new();
    extra.insert("queue".into(), json!(name));
    extra.insert(
        "current_position".into(),
        json!(position(&queue, &leg.call).unwrap_or(queue.members.len())),
    );
    extra.insert(
        "queue_avg_wait_time_secs".into(),
        json!(queue.average_wait_time),
    );
    leg.send(api, "call.enqueued", crate::infra::clock::now_ms(), extra)
        .await;
    if let (Some(secs), Some(id)) = (max_wait, alarm) {
        // The core rings the call's alarm at the longest wait (`timed_out` takes it).
        let after = Duration::from_secs(secs as u64);
        let _ = (api.parts.control)
            .command(&leg.call, CallCommand::SetAlarm { id, after })
            .await;
    }
    Ok(())
}

/// `leave_queue`: takes the leg out of its queue.
pub(super) async fn leave(api: &Arc<Telnyx>, leg: &mut Leg) -> Result<(), ApiError> {
    if !dequeue(api, leg, "leave").await {
        return Err(ApiError::unprocessable(
            "The call is not in a queue.".into(),
        ));
    }
    Ok(())
}

/// Takes the leg out of its queue, if it is in one, and tells the app why
/// (`call.dequeued`): `leave` now. False if it was in none.
pub(super) async fn dequeue(api: &Telnyx, leg: &mut Leg, reason: &str) -> bool {
    let Some(queued) = leg.state.queued.take() else {
        return false;
    };
    let now = crate::infra::clock::now_ms();
    dequeued(api, leg.handle(), queued, reason, now).await;
    true
}

/// The leg has left the wait `queued` at `at` (Unix milliseconds) for `reason` (`leave`,
/// `timeout`, `hangup`, or `bridged`: a bridge took it from the front, so it is out
/// already): it is taken out of the queue, and `call.dequeued` tells the app.
pub(super) async fn dequeued(api: &Telnyx, leg: &LegHandle, queued: Queued, reason: &str, at: i64) {
    let place = (api.parts.queues.get(&leg.account, &queued.sid).await)
        .ok()
        .flatten()
        .and_then(|q| position(&q, &leg.call))
        .unwrap_or(1);
    if let Err(e) = (api.parts.queues).remove(&queued.sid, &leg.call).await {
        tracing::warn!(error = %e, "cannot take the call out of its queue");
    }
    let mut extra = Map::new();
    extra.insert("queue".into(), json!(queued.name));
    extra.insert("queue_position".into(), json!(place));
    extra.insert("reason".into(), json!(reason));
    extra.insert(
        "wait_time_secs".into(),
        json!((at - queued.joined_at).max(0) / 1000),
    );
    leg.send(api, "call.dequeued", at, extra).await;
}

/// `bridge` with `queue`: bridges the leg with the call at the front of the account's queue.
pub(super) async fn bridge_front(api: &Arc<Telnyx>, leg: &Leg, name: &str) -> Result<(), ApiError> {
    if !leg.answered(api).await {
        return Err(ApiError::not_answered());
    }
    let named = (api.parts.queues.named(&leg.account, name).await)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    if named.is_none() {
        return Err(ApiError::invalid("queue", format!("No queue {name}.")));
    }
    let from = leg.state.context.from.clone();
    (api.parts.queues)
        .bridge_front(&api.parts.control, &leg.account, name, &leg.call, &from)
        .await
        .map(drop)
        .ok_or_else(|| ApiError::unprocessable(format!("Nobody waits in the queue {name}.")))
}
