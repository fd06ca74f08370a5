//! `conversation_relay_start` / `conversation_relay_stop`: ConversationRelay on a Call Control
//! leg — the same neutral session ([`crate::services::relay`]) and wire protocol as TeXML's
//! `<ConversationRelay>`, its settings from Telnyx's parameters (top-level values over
//! `conversation_relay_settings`, as Telnyx documents), and its end as `call.conversation.ended`
//! (`reason` `customer_disconnect` when the application's socket dropped). One session per
//! call at a time.

use super::Telnyx;
use super::errors::ApiError;
use super::leg::{Leg, Relaying};
use super::params::Params;
use super::params::relay::{OnAnswer, settings};
use crate::call::ids::CallId;
use crate::services::relay::{Outcome, RelaySpec, Settings};
use crate::services::stream::telnyx::RelayCall;
use serde_json::{Map, json};
use std::sync::Arc;

/// Starts a session on the leg; its id (`conversation_relay_id`).
pub(super) async fn start(
    api: &Arc<Telnyx>,
    leg: &mut Leg,
    p: &Params,
) -> Result<String, ApiError> {
    let (settings, parameters) = settings(p, &api.parts.speech, &leg.account)?;
    if !leg.answered(api).await {
        return Err(ApiError::not_answered());
    }
    begin(api, leg, settings, parameters)
}

/// Starts the session answer's or dial's `conversation_relay_config` asked for, once the leg
/// is answered.
pub(super) fn start_answered(
    api: &Arc<Telnyx>,
    leg: &mut Leg,
    on_answer: OnAnswer,
) -> Result<String, ApiError> {
    begin(api, leg, on_answer.settings, on_answer.parameters)
}

/// Starts a session on an answered leg.
fn begin(
    api: &Arc<Telnyx>,
    leg: &mut Leg,
    settings: Settings,
    parameters: Vec<(String, String)>,
) -> Result<String, ApiError> {
    if leg.state.relaying.is_some() {
        return Err(ApiError::unprocessable(
            "Only one AI Assistant or Conversation Relay session can be active on a call at a time."
                .into(),
        ));
    }
    let id = CallId::random().uuid();
    let context = &leg.state.context;
    let setup = RelayCall {
        call: &leg.call,
        session: &context.session,
        account: &leg.account,
        from: &context.from,
        to: &context.to,
        direction: if context.direction == "incoming" {
            "inbound"
        } else {
            "outbound"
        },
    }
    .setup(&id);
    let reach = api
        .parts
        .directory
        .account(&leg.account)
        .map(|a| a.reach)
        .unwrap_or_default();
    let spec = RelaySpec {
        id: id.clone(),
        call: leg.call.clone(),
        account: leg.account.clone(),
        settings,
        setup,
        parameters,
        headers: Vec::new(),
        reach,
    };
    let (running, finished) = api.parts.markup.relays.start(spec);
    leg.state.relaying = Some(Relaying { running });
    let (task_api, leg, relay) = (api.clone(), leg.handle().clone(), id.clone());
    api.legs.spawn(async move {
        let api = task_api;
        let finished = finished.await;
        // The leg's task forgets the session (it sends it no more events); none once the
        // call is over.
        let forget = leg.run(|leg| {
            Box::pin(async move {
                leg.state.relaying = None;
            })
        });
        let _ = forget.await;
        let reason = match finished.as_ref().map(|f| &f.outcome) {
            Ok(Outcome::Ended { .. }) => "end",
            Ok(Outcome::CallEnded) => "hangup",
            Ok(Outcome::Stopped) => "stopped",
            Ok(Outcome::Failed { code, .. })
                if *code == crate::services::relay::codes::SOCKET_ENDED =>
            {
                "customer_disconnect"
            }
            Ok(Outcome::Failed { .. }) | Err(_) => "error",
        };
        let mut extra = Map::new();
        extra.insert("conversation_relay_id".into(), json!(relay));
        extra.insert("reason".into(), json!(reason));
        if let Ok(Outcome::Ended { handoff: Some(h) }) = finished.as_ref().map(|f| &f.outcome) {
            extra.insert("handoff_data".into(), json!(h));
        }
        if let Ok(Outcome::Failed { message, .. }) = finished.as_ref().map(|f| &f.outcome) {
            extra.insert("error".into(), json!(message));
        }
        let at = crate::infra::clock::now_ms();
        leg.send(&api, "call.conversation.ended", at, extra).await;
    });
    Ok(id)
}

/// Stops the leg's session (`call.conversation.ended` follows with `reason: stopped`).
pub(super) fn stop(leg: &Leg) -> Result<(), ApiError> {
    let s = &leg.state;
    let relaying = (s.relaying.as_ref()).ok_or_else(|| {
        ApiError::unprocessable("No Conversation Relay session is running on this call.".into())
    })?;
    relaying.running.stop();
    Ok(())
}
