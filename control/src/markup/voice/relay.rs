//! `<Connect><ConversationRelay>` in TwiML and TeXML (Telnyx serves the same wire protocol):
//! the neutral [`crate::services::relay`] session does the listening and the speaking; what
//! is the dialect's is here — the session id (`VX…`, or a UUID for Telnyx), the `setup`
//! fields each provider sends (Telnyx adds its call control, session and leg ids), the
//! signature on Twilio's handshake, Notifications with the 641xx codes, and the `action`
//! request with `SessionStatus`, `SessionDuration`, `HandoffData`, `ErrorCode` and
//! `ErrorMessage` (made in the document's dialect).

use super::streams::stream_url;
use super::{Dialect, Fetch, Flow, HttpMethod, Notice, Received, Session, http_method, resolve};
use crate::call::ids::CallId;
use crate::infra::webhook::signature::{Algorithm, sign};
use crate::markup::twiml::{self, Method};
use crate::services::relay::{Finished, Outcome, RelaySpec, Settings, codes};
use serde_json::Value;
use tracing::info;

/// A `setup` message's fields, by name.
type SetupFields = Vec<(&'static str, Value)>;

/// Twilio's `callType`: a browser client's call, a SIP endpoint's, or the telephone network's.
fn call_type(from: &str) -> &'static str {
    if from.starts_with("client:") {
        "CLIENT"
    } else if from.starts_with("sip:") {
        "SIP"
    } else {
        "PSTN"
    }
}

impl Session {
    /// `<Connect><ConversationRelay>`: the document waits while the application converses
    /// with the caller; when the session ends (`end`, or it failed), the `<Connect action>`
    /// is requested with how it ended, or the next verb runs.
    pub(super) async fn connect_relay(
        &mut self,
        relay: &twiml::ConversationRelay,
        action: Option<&str>,
        method: Method,
        base: &str,
    ) -> Result<Option<Fetch>, Flow> {
        self.answer().await?;
        let id = match self.app.dialect {
            Dialect::Twilio => crate::infra::sid::new_sid("VX"),
            Dialect::Texml { .. } => CallId::random().uuid(),
        };
        let read = Settings::read(
            &relay.attributes,
            &relay.languages,
            &self.apps.speech,
            &self.account.sid,
        );
        let finished = match read {
            Ok(mut settings) => {
                settings.url = stream_url(base, &settings.url);
                self.run_relay(&id, settings, &relay.parameters).await?
            }
            Err(refused) => Finished {
                outcome: Outcome::Failed {
                    code: codes::INVALID_ARGUMENT,
                    message: refused.to_string(),
                },
                duration: Default::default(),
                warnings: Vec::new(),
            },
        };
        info!(session = %id, outcome = ?finished.outcome, "<Connect><ConversationRelay> ended");
        for (code, message) in &finished.warnings {
            self.relay_notice(*code, true, message).await;
        }
        let mut extra = vec![
            ("SessionId".to_owned(), id),
            (
                "SessionDuration".to_owned(),
                finished.duration.as_secs().to_string(),
            ),
        ];
        // As a captured Twilio session shows: `ended` when the application sent `end` (the
        // call goes on with the action's document), `completed` when the call ended first.
        let mut call_ended = false;
        match finished.outcome {
            Outcome::Ended { handoff } => {
                extra.push(("SessionStatus".into(), "ended".into()));
                extra.extend(handoff.map(|h| ("HandoffData".to_owned(), h)));
            }
            Outcome::CallEnded => {
                extra.push(("SessionStatus".into(), "completed".into()));
                call_ended = true;
            }
            Outcome::Failed { code, message } => {
                self.relay_notice(code, false, &message).await;
                extra.push(("SessionStatus".into(), "failed".into()));
                extra.push(("ErrorCode".into(), code.to_string()));
                extra.push(("ErrorMessage".into(), message));
            }
            // Another document took over: nothing follows here.
            Outcome::Stopped => return Err(Flow::Ended),
        }
        let fetch = match action {
            Some(action) => Some(Fetch::url(
                resolve(base, action).map_err(Flow::Failed)?,
                http_method(method),
                extra,
            )),
            None => None,
        };
        if !call_ended {
            return Ok(fetch);
        }
        // The caller hung up: the action hears of the session all the same, and what it
        // answers is not run (as `<Dial action>` after a hang-up).
        if let Some(fetch) = fetch
            && let Err(e) = self.document(&fetch).await
        {
            info!(error = %e, "the <ConversationRelay> action of an ended call failed");
        }
        Err(Flow::Ended)
    }

    /// Runs one session until it ends; the call's end or a redirect ends it first.
    async fn run_relay(
        &mut self,
        id: &str,
        settings: Settings,
        parameters: &[(String, String)],
    ) -> Result<Finished, Flow> {
        let (setup, headers) = match self.app.dialect {
            Dialect::Twilio => self.twilio_setup(id, &settings.url),
            Dialect::Texml { .. } => (self.telnyx_setup(id), Vec::new()),
        };
        let c = &self.call;
        let spec = RelaySpec {
            id: id.to_owned(),
            call: c.sid.clone(),
            account: self.account.sid.clone(),
            settings,
            setup,
            parameters: parameters.to_vec(),
            headers,
            reach: self.account.reach,
        };
        let (running, mut finished) = self.apps.relays.start(spec);
        loop {
            tokio::select! {
                finished = &mut finished => {
                    return finished.map_err(|_| Flow::Ended);
                }
                received = self.receive() => {
                    let mut hung_up = false;
                    if let Received::Event(Some(event)) = &received {
                        hung_up = matches!(event.kind, crate::call::EventKind::Hangup { .. });
                        // The session sees the call's events (digits, playbacks, the end).
                        let _ = running.events.send(event.clone()).await;
                    }
                    if let Err(flow) = self.take(received).await {
                        if hung_up {
                            // The session heard the end too and finishes on its own: its
                            // action is still to be requested.
                            return (&mut finished).await.map_err(|_| Flow::Ended);
                        }
                        running.stop();
                        let _ = (&mut finished).await;
                        return Err(flow);
                    }
                }
            }
        }
    }

    /// Twilio's `setup` fields, and its signature on the handshake: as on media streams, the
    /// URL alone signed with the auth token (SignalWire's with its signing key).
    fn twilio_setup(&self, id: &str, url: &str) -> (SetupFields, Vec<(String, String)>) {
        let key = (self.account.signing_key.as_deref()).unwrap_or(&self.account.auth_token);
        let signature = sign(key, url, &[], Algorithm::HmacSha1);
        let application = (self.call.extra.iter())
            .find(|(k, _)| k == "ApplicationSid")
            .map_or(Value::Null, |(_, v)| Value::String(v.clone()));
        let c = &self.call;
        let setup = vec![
            ("sessionId", id.into()),
            ("accountSid", self.account.api_sid().into()),
            ("callSid", c.sid.as_str().into()),
            ("parentCallSid", "".into()),
            ("from", c.from.as_str().into()),
            ("to", c.to.as_str().into()),
            ("forwardedFrom", "".into()),
            ("callerName", "".into()),
            ("direction", c.direction.into()),
            ("callType", call_type(&c.from).into()),
            ("callStatus", "RINGING".into()),
            ("applicationSid", application),
        ];
        (setup, vec![("X-Twilio-Signature".to_owned(), signature)])
    }

    /// Telnyx's `setup` fields for this call.
    fn telnyx_setup(&self, id: &str) -> SetupFields {
        let c = &self.call;
        crate::services::stream::telnyx::RelayCall {
            call: &c.sid,
            session: &c.sid,
            account: &self.account.sid,
            from: &c.from,
            to: &c.to,
            direction: if c.direction == "inbound" {
                "inbound"
            } else {
                "outbound"
            },
        }
        .setup(id)
    }

    async fn relay_notice(&self, code: u32, warning: bool, message: &str) {
        let notice = Notice {
            code,
            warning,
            message,
            url: "",
            method: HttpMethod::Get,
        };
        self.apps
            .notify(&self.account, &self.call.sid, notice)
            .await;
    }
}
