//! `<Enqueue>` and `<Dial><Queue>`: a caller waits in a named queue, hearing its `waitUrl`
//! TwiML in a loop (or silence), until `<Dial><Queue>` on another call bridges it, `<Leave>`
//! or a redirect takes it out, or it hangs up. The `action` then learns why (`QueueResult`);
//! after a bridge, once the bridged call is over.

use super::dial::Outcome;
use super::{Fetch, Flow, Session, http_method, queue_result, resolve};
use crate::call::{CallCommand, EventKind};
use crate::infra::clock::now_ms;
use crate::markup::twiml::{Dial, Method, Verb};
use crate::services::queues::{DEFAULT_MAX_SIZE, position};
use std::time::{Duration, Instant};
use tracing::warn;

/// How a wait in a queue ended, short of the call's end or a redirect.
enum Waited {
    Left,
    Bridged,
}

/// Where an `<Enqueue>` reports why its call left the queue (`action`, relative to `base`).
struct QueueAction<'a> {
    action: Option<&'a str>,
    method: Method,
    base: &'a str,
}

impl QueueAction<'_> {
    /// Where the action goes, if there is one.
    fn target(&self) -> Result<Option<(String, crate::infra::accounts::HttpMethod)>, Flow> {
        let Some(url) = self.action else {
            return Ok(None);
        };
        let url = resolve(self.base, url).map_err(Flow::Failed)?;
        Ok(Some((url, http_method(self.method))))
    }

    /// The action's request with `QueueResult`, `QueueSid` and `QueueTime` (seconds), if
    /// there is an action.
    fn fetch(&self, result: &str, queue: &str, time: Duration) -> Result<Option<Fetch>, Flow> {
        let Some((url, method)) = self.target()? else {
            return Ok(None);
        };
        let extra = [
            ("QueueResult", result.to_owned()),
            ("QueueSid", queue.to_owned()),
            ("QueueTime", time.as_secs().to_string()),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .to_vec();
        Ok(Some(Fetch::url(url, method, extra)))
    }
}

impl Session {
    pub(super) async fn enqueue(
        &mut self,
        name: &str,
        action: Option<&str>,
        method: Method,
        wait_url: Option<&str>,
        wait_method: Method,
        base: &str,
    ) -> Result<Option<Fetch>, Flow> {
        let action = QueueAction {
            action,
            method,
            base,
        };
        self.answer().await?;
        let account = self.account.sid.clone();
        let joined = (self.apps.queues)
            .join(&account, name, &self.call.sid, DEFAULT_MAX_SIZE)
            .await;
        let queue = match joined {
            Ok(Some(queue)) => queue,
            Ok(None) => return action.fetch("queue-full", "", Duration::ZERO),
            Err(e) => {
                warn!(error = %e, queue = name, "cannot enqueue");
                return action.fetch("system-error", "", Duration::ZERO);
            }
        };
        let joined_at = Instant::now();
        // Should the call end before the session can request the action, its end does.
        if let Some(target) = action.target()? {
            let asked = queue_result::subscription_request(
                &self.account,
                &self.call.sid,
                target,
                &self.standard_params(),
                &queue.sid,
                now_ms(),
                &self.app.dialect,
            );
            if let Some((asked, context)) = asked {
                let subscription = self.apps.subscriptions.subscribe(asked).await;
                self.queue_result = Some((subscription, context));
            }
        }
        self.queued = true;
        let waited = self
            .wait_in_queue(&queue.sid, wait_url, wait_method, base)
            .await;
        self.queued = false;
        // Still there unless a <Dial><Queue> took it.
        if let Err(e) = self.apps.queues.remove(&queue.sid, &self.call.sid).await {
            warn!(error = %e, "cannot take the call out of its queue");
        }
        let queue_time = joined_at.elapsed();
        let result = match waited {
            Ok(Waited::Left) => "leave",
            Ok(Waited::Bridged) => {
                if let Some((subscription, context)) = &mut self.queue_result {
                    let bridged = context.clone().bridged(queue_time.as_secs() as i64);
                    subscription.set_context(bridged.json()).await;
                }
                let _ = self.command(CallCommand::StopPlayback).await;
                // On the line with whoever dequeued it, until one of them hangs up.
                match self
                    .until(|e| matches!(e, EventKind::Unbridged { .. }))
                    .await
                {
                    Ok(_) => "bridged",
                    Err(flow) => {
                        if !matches!(flow, Flow::Ended) {
                            let _ = self.command(CallCommand::Unbridge).await;
                        }
                        return Err(self.queue_left(flow).await);
                    }
                }
            }
            // `<Hangup>` or `<Redirect>` in the wait document, a REST redirect, the call's end.
            Err(flow) => return Err(self.queue_left(flow).await),
        };
        self.queue_left(Flow::HangUp).await;
        action.fetch(result, &queue.sid, queue_time)
    }

    /// Done with the queue's action subscription as the wait ends with `flow`: the call's end
    /// has made the action's request (observed with the hang-up); otherwise the session
    /// requests it, or the document moved on without it.
    async fn queue_left(&mut self, flow: Flow) -> Flow {
        if let Some((subscription, _)) = self.queue_result.take()
            && !matches!(flow, Flow::Ended)
        {
            subscription.close().await;
        }
        flow
    }

    /// The wait document in a loop (silence without one) until the call leaves the queue;
    /// being bridged by a `<Dial><Queue>` ends the wait wherever it is.
    async fn wait_in_queue(
        &mut self,
        queue: &str,
        wait_url: Option<&str>,
        wait_method: Method,
        base: &str,
    ) -> Result<Waited, Flow> {
        let wait_url = match wait_url.filter(|u| !u.is_empty()) {
            Some(u) => Some(resolve(base, u).map_err(Flow::Failed)?),
            None => None,
        };
        let waited = loop {
            let Some(url) = &wait_url else {
                // Twilio's default classical playlist is not ours to ship: silence.
                if let Err(flow) = self.pause_ms(60_000).await {
                    break Err(flow);
                }
                continue;
            };
            let fetch = Fetch::url(
                url.clone(),
                http_method(wait_method),
                self.queue_params(queue).await,
            );
            let verbs = match self.document(&fetch).await {
                Ok(verbs) => verbs,
                Err(e) => {
                    warn!(error = %e, url = %crate::infra::secret::redact_url(url), "waitUrl failed; waiting in silence");
                    Vec::new()
                }
            };
            match self.wait_document(verbs, url).await {
                Ok(Some(waited)) => break Ok(waited),
                // The document ran out: it is requested again. A minimum pause keeps a
                // broken or empty one from spinning.
                Ok(None) => {
                    if let Err(flow) = self.pause_ms(1000).await {
                        break Err(flow);
                    }
                }
                Err(flow) => break Err(flow),
            }
        };
        match waited {
            Err(Flow::Dequeued) => Ok(Waited::Bridged),
            other => other,
        }
    }

    /// The verbs a wait document may hold: Play, Say, Pause, Leave, Hangup, Redirect.
    async fn wait_document(
        &mut self,
        verbs: Vec<Verb>,
        base: &str,
    ) -> Result<Option<Waited>, Flow> {
        for verb in verbs {
            match verb {
                Verb::Say(s) => self.say_verb(&s).await?,
                Verb::Play(p) => self.play(&p, base).await?,
                Verb::Pause { length_secs } => self.pause(length_secs).await?,
                Verb::Leave => return Ok(Some(Waited::Left)),
                Verb::Hangup { .. } => return Err(Flow::HangUp),
                Verb::Redirect { url, method } => {
                    let url = resolve(base, &url).map_err(Flow::Failed)?;
                    return Err(Flow::Next(Fetch::url(url, http_method(method), Vec::new())));
                }
                other => warn!(
                    verb = super::verb_name(&other),
                    "not allowed in a waitUrl document; skipped"
                ),
            }
        }
        Ok(None)
    }

    /// `QueuePosition`, `QueueSid`, `QueueTime`, `AvgQueueTime`, `CurrentQueueSize`,
    /// `MaxQueueSize`, as the wait document's request carries them.
    async fn queue_params(&self, queue: &str) -> Vec<(String, String)> {
        let Ok(Some(q)) = self.apps.queues.get(&self.account.sid, queue).await else {
            return Vec::new();
        };
        let me = q.members.iter().find(|m| m.call == self.call.sid);
        let waited = me.map_or(0, |m| {
            (crate::infra::clock::now_ms() - m.enqueued_at).max(0) / 1000
        });
        [
            (
                "QueuePosition",
                position(&q, &self.call.sid).unwrap_or(0).to_string(),
            ),
            ("QueueSid", q.sid.clone()),
            ("QueueTime", waited.to_string()),
            ("AvgQueueTime", q.average_wait_time.to_string()),
            ("CurrentQueueSize", q.members.len().to_string()),
            ("MaxQueueSize", q.max_size.to_string()),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .to_vec()
    }

    /// `<Dial><Queue>`: bridges this call with the caller at the head of the queue, waiting
    /// up to the dial's timeout for one to arrive; returns when the bridge ends.
    pub(super) async fn dial_queue(
        &mut self,
        dial: &Dial,
        name: &str,
        base: &str,
    ) -> Result<Option<Fetch>, Flow> {
        self.answer().await?;
        let account = self.account.sid.clone();
        let Some(arrivals) = self.apps.queues.watch(&account, name).await else {
            warn!(queue = name, "<Dial><Queue>: no such queue");
            return super::dial::action(dial, base, Some(Outcome::failed("failed")));
        };
        let deadline =
            (self.set_alarm(Duration::from_secs(dial.timeout_secs.max(1) as u64))).await?;
        let member = loop {
            let front = (self.apps.queues)
                .bridge_front(
                    &self.apps.control,
                    &account,
                    name,
                    &self.call.sid,
                    &self.call.from,
                )
                .await;
            if let Some(member) = front {
                break member;
            }
            tokio::select! {
                // A caller joining here, or on another node (its change notice).
                _ = arrivals.notified() => {}
                received = self.receive() => {
                    if let EventKind::Alarm { id } = self.take(received).await?.kind
                        && id == deadline
                    {
                        return super::dial::action(dial, base, Some(Outcome::failed("no-answer")));
                    }
                }
            }
        };
        let bridged_at = Instant::now();
        match self
            .until(|e| matches!(e, EventKind::Unbridged { .. }))
            .await
        {
            Ok(_) => {}
            Err(Flow::Ended) => return Err(Flow::Ended),
            Err(flow) => {
                let _ = self.command(CallCommand::Unbridge).await;
                return Err(flow);
            }
        }
        super::dial::action(
            dial,
            base,
            Some(Outcome {
                status: "completed",
                child: Some(member),
                seconds: bridged_at.elapsed().as_secs(),
                bridged: true,
                recording: None,
                returned: Vec::new(),
            }),
        )
    }
}
