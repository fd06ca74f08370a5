//! Incoming calls to a number on a connection: the leg is parked (ringing) and the app hears
//! `call.initiated` (direction `incoming`, state `parked`); it answers, rejects or otherwise
//! commands it. With the connection's `first_command_timeout`, a call the app leaves without
//! a command is hung up (cause `timeout`). A number on a TeXML application is handed to the
//! markup interpreter instead, in the TeXML dialect.

use super::Telnyx;
use super::calls::start_leg;
use super::events::LegContext;
use super::leg::{self, OnAnswer};
use crate::call::{CallCommand, EventKind, Rejection};
use crate::services::inbound::{Answer, Offered};
use std::sync::Arc;
use tracing::warn;

impl Answer for Telnyx {
    fn take(self: Arc<Self>, call: Offered) {
        // A shutdown waits for it, as for the leg it starts.
        self.legs.spawn(offered(self.clone(), call));
    }
}

async fn offered(api: Arc<Telnyx>, call: Offered) {
    let connection = (call.number.connection_id.as_deref())
        .and_then(|id| api.parts.connections.get(&call.account.sid, id))
        .map(|row| row.connection);
    if let Some(voice) = connection.as_ref().and_then(|c| c.texml.clone()) {
        // A TeXML application: its markup runs the call.
        let id = connection.map(|c| c.id).unwrap_or_default();
        api.parts.markup.take_texml(id, voice, call);
        return;
    }
    let Some(connection) = connection else {
        // Deleted through the API while the number still names it.
        warn!(number = %call.number.phone_number, "the number's connection is gone; its call is refused");
        let _ = (api.parts.control)
            .command(&call.event.call, CallCommand::Reject(Rejection::Rejected))
            .await;
        return;
    };
    let context = LegContext {
        call: call.event.call.clone(),
        session: call.event.call.clone(),
        connection_id: connection.id.clone(),
        from: call.from,
        to: call.to,
        direction: "incoming".into(),
        client_state: None,
        start_time: call.event.at,
        hangup_cause: None,
        failover_url: connection.webhook_event_failover_url.clone(),
        webhook_timeout_secs: super::connection_settings::webhook_timeout(&connection),
        invite_headers: match &call.event.kind {
            EventKind::Incoming { headers, .. } => headers.clone(),
            _ => Vec::new(),
        },
        calling_party_type: match &call.event.kind {
            EventKind::Incoming { user: Some(_), .. } => "sip",
            _ => "pstn",
        }
        .into(),
        offered: match &call.event.kind {
            EventKind::Incoming { offered, .. } => Some(offered.clone()),
            _ => None,
        },
    };
    let leg = start_leg(
        &api,
        &call.account,
        context,
        connection.webhook_event_url.clone(),
        OnAnswer::default(),
        (Some(call.event), call.events),
    )
    .await;
    if let Some(after) = connection.first_command_timeout() {
        leg::first_command_timeout(&api, &leg, after).await;
    }
}
