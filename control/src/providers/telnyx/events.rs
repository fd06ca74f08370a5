//! Telnyx's webhook events: the `data` object (`record_type`, `event_type`, `id`,
//! `occurred_at`, `payload`) the outbox wraps in the envelope and signs at send time. A
//! leg's lifecycle (`call.initiated`, `call.answered`, `call.hangup`) is rendered by the
//! subscription stage from the core's stored events ([`TelnyxCall`]), so a crash does not
//! lose a hang-up; the rest are made by the leg as they happen.

use crate::call::ids::CallId;
use crate::call::{Offered, Quality};
use crate::infra::store::{CallStatus, HangupBy};
use crate::infra::webhook::request::WebhookRequest;
use crate::services::subscriptions::{History, Hook, Milestone, MilestoneEvent, Renderer};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The renderer's registered name.
pub const RENDERER: &str = "telnyx-call";

/// What a leg's webhooks carry besides the event's own fields; stored with its subscription
/// (and replaced when `client_state` changes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegContext {
    /// The call's stored id (`CA…`); the payload shows it Telnyx's way.
    pub call: String,
    /// The first leg of its session (itself, for a dialed call).
    pub session: String,
    pub connection_id: String,
    pub from: String,
    pub to: String,
    /// `outgoing` or `incoming`.
    pub direction: String,
    pub client_state: Option<String>,
    /// Unix milliseconds.
    pub start_time: i64,
    /// Set by the leg just before it ends the call for a reason the core does not know
    /// (`time_limit`, `timeout`, a reject's cause).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hangup_cause: Option<String>,
    /// The connection's `webhook_event_failover_url`: its webhooks go there when their URL
    /// fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover_url: Option<String>,
    /// The connection's `webhook_timeout_secs`: how long each of its webhooks is waited for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_timeout_secs: Option<u32>,
    /// An incoming call's INVITE headers shown to the app: its `X-` headers
    /// (`custom_headers`), and `User-to-User` and `Diversion` (`sip_headers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invite_headers: Vec<(String, String)>,
    /// Who is calling, as Telnyx sorts it: `pstn` (a carrier's trunk, a number dialed) or
    /// `sip` (a registered phone, a SIP URI dialed).
    #[serde(default = "pstn")]
    pub calling_party_type: String,
    /// An incoming call's SIP parties and offered codecs (`from_sip_uri`, `to_sip_uri`,
    /// `offered_codecs` of `call.initiated`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered: Option<Offered>,
}

fn pstn() -> String {
    "pstn".into()
}

impl LegContext {
    /// A webhook of the leg's, to `url`: sent with its connection's failover URL and wait.
    pub fn webhook(&self, url: &str, data: &Value) -> WebhookRequest {
        WebhookRequest::telnyx(url, data)
            .with_failover(self.failover_url.clone())
            .with_timeout(self.webhook_timeout_secs)
    }
}

/// The codecs a connection takes, as `call.initiated`'s `connection_codecs` lists them: what
/// Switchboard's media engine speaks, preferred first.
pub const CONNECTION_CODECS: &str = "PCMU,PCMA,OPUS";

/// `end_reason` for the core's (Twilio's) reason.
pub(super) fn end_reason(reason: &str) -> &'static str {
    match reason {
        "participant-with-end-conference-on-exit-left" => "host_left",
        "conference-ended-via-api" => "ended_via_api",
        _ => "all_left",
    }
}

impl LegContext {
    /// `custom_headers` and `sip_headers` as a `call.initiated` shows them.
    fn headers(&self) -> (Value, Value) {
        let (custom, sip): (Vec<_>, Vec<_>) = (self.invite_headers.iter())
            .partition(|(name, _)| name.to_ascii_lowercase().starts_with("x-"));
        let list = |headers: Vec<&(String, String)>| {
            let list: Vec<Value> = (headers.into_iter())
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect();
            Value::Array(list)
        };
        (list(custom), list(sip))
    }

    /// The fields every call event's payload has.
    pub fn payload(&self) -> serde_json::Map<String, Value> {
        let id = CallId::from_sid(&self.call);
        let session = CallId::from_sid(&self.session);
        let mut p = serde_json::Map::new();
        p.insert("call_control_id".into(), json!(id.map(CallId::control_id)));
        p.insert("call_leg_id".into(), json!(id.map(CallId::uuid)));
        p.insert(
            "call_session_id".into(),
            json!(session.map(CallId::session_uuid)),
        );
        p.insert("connection_id".into(), json!(self.connection_id));
        p.insert("client_state".into(), json!(self.client_state));
        p.insert("from".into(), json!(self.from));
        p.insert("to".into(), json!(self.to));
        p.insert("direction".into(), json!(self.direction));
        p.insert("calling_party_type".into(), json!(self.calling_party_type));
        p
    }
}

/// `2030-01-01T00:00:00.000000Z`, as Telnyx writes `occurred_at`.
pub fn timestamp(ms: i64) -> String {
    crate::services::stream::iso8601_micros(ms)
}

/// An event's `data` object.
pub fn data(event_type: &str, at: i64, payload: serde_json::Map<String, Value>) -> Value {
    json!({
        "record_type": "event",
        "event_type": event_type,
        "id": CallId::random().uuid(),
        "occurred_at": timestamp(at),
        "payload": payload,
    })
}

/// Telnyx's `hangup_cause` and `hangup_source` for how a leg ended. The source is the party
/// of the leg that hung up: for an outgoing leg the caller is the application's side.
pub fn hangup_cause(
    status: CallStatus,
    sip_code: Option<u16>,
    by: Option<HangupBy>,
    cause: Option<&str>,
    outgoing: bool,
) -> (&'static str, &'static str) {
    let ours = if outgoing { "caller" } else { "callee" };
    let theirs = if outgoing { "callee" } else { "caller" };
    let source = match (by, cause) {
        (Some(HangupBy::System), Some("api" | "rejected" | "time-limit" | "no-command")) => ours,
        (Some(HangupBy::Caller), _) => "caller",
        (Some(HangupBy::Callee), _) => "callee",
        _ => "unknown",
    };
    let cause = match (status, sip_code) {
        _ if cause == Some("time-limit") => "time_limit",
        _ if cause == Some("no-command") => "timeout",
        (CallStatus::Completed, _) => "normal_clearing",
        (CallStatus::Busy, _) => "user_busy",
        (CallStatus::Canceled, _) => "originator_cancel",
        (CallStatus::NoAnswer, Some(603)) => "call_rejected",
        (CallStatus::NoAnswer, Some(408) | None) => "timeout",
        (CallStatus::NoAnswer, _) => "no_answer",
        (CallStatus::Failed, Some(404 | 484 | 604)) => "not_found",
        (CallStatus::Failed, Some(603)) => "call_rejected",
        _ => "unspecified",
    };
    let source = if source == "unknown" && cause == "timeout" {
        theirs
    } else {
        source
    };
    (cause, source)
}

/// `call_quality_stats` of a `call.hangup`, every figure a string as Telnyx writes them:
/// `inbound` is what came from the party, `outbound` what went to it. The relay sends every
/// packet it has for the party, so nothing outbound is skipped. Telnyx's jitter figures are
/// left out: the relay does not measure jitter.
fn quality_stats(q: &Quality) -> Value {
    json!({
        "inbound": {
            "mos": format!("{:.2}", q.mos()),
            "packet_count": q.packets_in.to_string(),
            "skip_packet_count": q.lost_in.to_string(),
        },
        "outbound": {
            "packet_count": q.packets_out.to_string(),
            "skip_packet_count": "0",
        },
    })
}

/// Renders a leg's lifecycle from the core's events.
pub struct TelnyxCall;

impl Renderer for TelnyxCall {
    fn render(
        &self,
        hook: &Hook<'_>,
        _history: &History,
        milestone_event: &MilestoneEvent,
    ) -> Option<WebhookRequest> {
        let context: LegContext = hook.context(RENDERER)?;
        let mut payload = context.payload();
        let outgoing = context.direction == "outgoing";
        let start_time = json!(timestamp(context.start_time));
        let event_type = match &milestone_event.milestone {
            Milestone::Initiated => {
                payload.insert(
                    "state".into(),
                    json!(if outgoing { "bridging" } else { "parked" }),
                );
                payload.insert("caller_id_name".into(), json!(context.from));
                payload.insert("start_time".into(), start_time);
                if let Some(offered) = &context.offered {
                    payload.insert("from_sip_uri".into(), json!(offered.from_uri));
                    payload.insert("to_sip_uri".into(), json!(offered.to_uri));
                    payload.insert("offered_codecs".into(), json!(offered.codecs.join(",")));
                    payload.insert("connection_codecs".into(), json!(CONNECTION_CODECS));
                }
                let (custom, sip) = context.headers();
                payload.insert("custom_headers".into(), custom);
                payload.insert("sip_headers".into(), sip);
                "call.initiated"
            }
            Milestone::Answered { codec } => {
                payload.insert("state".into(), json!("answered"));
                if let Some(codec) = codec {
                    payload.insert("codec".into(), json!(codec.name));
                    payload.insert("sampling_rate".into(), json!(codec.rate));
                }
                payload.insert("start_time".into(), start_time);
                payload.insert("custom_headers".into(), json!([]));
                "call.answered"
            }
            Milestone::Ended {
                status,
                sip_code,
                by,
                cause,
                quality,
            } => {
                let (cause, source) =
                    hangup_cause(*status, *sip_code, *by, cause.as_deref(), outgoing);
                // The leg ended it for a reason the core does not know (its time limit, the
                // first command's timeout, the app's reject cause).
                let hangup_cause = context.hangup_cause.as_deref().unwrap_or(cause);
                payload.insert("state".into(), json!("hangup"));
                payload.insert("hangup_cause".into(), json!(hangup_cause));
                payload.insert("hangup_source".into(), json!(source));
                payload.insert(
                    "sip_hangup_cause".into(),
                    json!(sip_code.map_or_else(|| "unspecified".to_owned(), |c| c.to_string())),
                );
                payload.insert("start_time".into(), start_time);
                payload.insert("end_time".into(), json!(timestamp(milestone_event.at)));
                if let Some(q) = quality {
                    payload.insert("call_quality_stats".into(), quality_stats(q));
                }
                "call.hangup"
            }
            _ => return None,
        };
        Some(context.webhook(hook.url, &data(event_type, milestone_event.at, payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> LegContext {
        LegContext {
            call: "CA0123456789abcdef0123456789abcdef".into(),
            session: "CA0123456789abcdef0123456789abcdef".into(),
            connection_id: "1494404757140276705".into(),
            from: "+15550002222".into(),
            to: "+15550001111".into(),
            direction: "outgoing".into(),
            client_state: Some("aGk=".into()),
            start_time: 1_893_456_000_000,
            hangup_cause: None,
            failover_url: Some("http://app/failover".into()),
            webhook_timeout_secs: None,
            invite_headers: Vec::new(),
            calling_party_type: "pstn".into(),
            offered: None,
        }
    }

    fn render(context: &LegContext, at: i64, milestone: Milestone) -> Value {
        let context = serde_json::to_string(context).unwrap();
        let hook = Hook {
            subject: "CA1",
            url: "http://app/hooks",
            method: crate::infra::accounts::HttpMethod::Post,
            context: &context,
        };
        let milestone_event = MilestoneEvent {
            seq: 3,
            at,
            milestone,
        };
        let request = TelnyxCall
            .render(&hook, &History::default(), &milestone_event)
            .unwrap();
        assert_eq!(request.url, "http://app/hooks");
        assert_eq!(request.failover_url.as_deref(), Some("http://app/failover"));
        serde_json::from_str(&request.body).unwrap()
    }

    #[test]
    fn a_legs_lifecycle_in_telnyx_shape() {
        let c = context();
        let d = render(&c, 1_893_456_000_250, Milestone::Initiated);
        assert_eq!(d["record_type"], "event");
        assert_eq!(d["event_type"], "call.initiated");
        assert_eq!(d["occurred_at"], "2030-01-01T00:00:00.250000Z");
        assert_eq!(d["id"].as_str().unwrap().len(), 36);
        let p = &d["payload"];
        assert_eq!(p["call_control_id"], "v3:ASNFZ4mrze8BI0VniavN7w");
        assert_eq!(p["call_leg_id"], "01234567-89ab-cdef-0123-456789abcdef");
        assert_eq!(p["call_session_id"], "54761032-dcfe-98ba-5476-1032dcfe98ba");
        assert_eq!(p["calling_party_type"], "pstn");
        assert_eq!(p["state"], "bridging");
        assert_eq!(p["direction"], "outgoing");
        assert_eq!(p["client_state"], "aGk=");
        assert_eq!(p["connection_id"], "1494404757140276705");

        let hangup = |status, sip_code, by, cause: Option<&str>| Milestone::Ended {
            status,
            sip_code,
            by,
            cause: cause.map(str::to_owned),
            quality: None,
        };
        let d = render(
            &c,
            1_893_456_010_000,
            hangup(
                CallStatus::Completed,
                Some(200),
                Some(HangupBy::System),
                Some("api"),
            ),
        );
        let p = &d["payload"];
        assert_eq!(d["event_type"], "call.hangup");
        assert_eq!(
            (
                &p["hangup_cause"],
                &p["hangup_source"],
                &p["sip_hangup_cause"]
            ),
            (&json!("normal_clearing"), &json!("caller"), &json!("200"))
        );
        assert_eq!(p["end_time"], "2030-01-01T00:00:10.000000Z");
        assert_eq!(p.get("call_quality_stats"), None, "no counters, no stats");
        let counted = Milestone::Ended {
            status: CallStatus::Completed,
            sip_code: Some(200),
            by: Some(HangupBy::Caller),
            cause: None,
            quality: Some(Quality {
                packets_in: 1472,
                packets_out: 268,
                lost_in: 22,
            }),
        };
        let d = render(&c, 1, counted);
        assert_eq!(
            d["payload"]["call_quality_stats"],
            json!({
                "inbound": {"mos": "4.29", "packet_count": "1472", "skip_packet_count": "22"},
                "outbound": {"packet_count": "268", "skip_packet_count": "0"},
            })
        );
        let d = render(
            &c,
            1,
            hangup(CallStatus::Busy, Some(486), Some(HangupBy::Callee), None),
        );
        assert_eq!(d["payload"]["hangup_cause"], "user_busy");
        assert_eq!(d["payload"]["hangup_source"], "callee");
        let d = render(
            &c,
            1,
            hangup(
                CallStatus::NoAnswer,
                Some(408),
                Some(HangupBy::System),
                None,
            ),
        );
        assert_eq!(d["payload"]["hangup_cause"], "timeout");
        // Ended with its node: no code, nobody known.
        let d = render(&c, 1, hangup(CallStatus::Failed, None, None, None));
        assert_eq!(
            (
                &d["payload"]["hangup_cause"],
                &d["payload"]["sip_hangup_cause"]
            ),
            (&json!("unspecified"), &json!("unspecified"))
        );
        // The core hung up at the call's time limit.
        let d = render(
            &c,
            1,
            hangup(
                CallStatus::Completed,
                Some(200),
                Some(HangupBy::System),
                Some("time-limit"),
            ),
        );
        assert_eq!(d["payload"]["hangup_cause"], "time_limit");
        assert_eq!(
            d["payload"]["hangup_source"], "caller",
            "the application's side"
        );
    }
}
