//! The Telnyx dialect: Call Control v2 (`/v2/calls`, the call actions, `call.*` webhooks in
//! Telnyx's JSON envelope signed with the account's Ed25519 key) over the same call core,
//! media streams, prompts and webhook outbox as the Twilio dialect. A call placed here is run
//! by a `leg::Leg`: it turns the app's actions into core commands and the core's events into
//! Telnyx events. Facts: ../shared/reference/telnyx-signalwire.md §1–§3.

mod actions;
mod application_api;
mod applications;
mod calls;
mod commands;
mod conference_visits;
mod conferences;
mod connection_settings;
mod credential_connections;
pub mod errors;
pub mod events;
mod forking;
mod incoming;
#[doc(hidden)]
pub mod ip_connections;
mod leg;
mod leg_effects;
mod machine_detection;
mod number_orders;
mod numbers;
mod outbound_voice_profiles;
mod page;
mod params;
mod queueing;
mod queues;
mod recording;
mod recordings;
mod relaying;
pub(crate) mod streaming;
mod telephony_credentials;
mod texml_applications;
mod texml_calls;
mod texml_conferences;
mod texml_queues;
mod texml_recordings;
mod texml_rest;
mod texml_streams;
mod transcribing;
mod verified_numbers;
pub mod verto;
mod verto_sessions;

use crate::call::CallControl;
use crate::infra::accounts::{Account, Directory};
use crate::infra::rate::RateLimiter;
use crate::services::directory::connections::Connections;
use crate::services::inbound::Inbound;
use crate::services::prompts::Prompts;
use crate::services::recordings::Recordings;
use crate::services::stream::MediaStreams;
use crate::services::subject_subscriptions::SubjectSubscriptions;
use crate::services::subscriptions::Subscriptions;
use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use errors::ApiError;
use leg::Legs;
use std::sync::Arc;
use std::time::Instant;

/// What the Telnyx API serves from: the shared parts, and the legs it runs.
pub struct Telnyx {
    pub parts: Parts,
    legs: Legs,
    /// The subscriptions of the legs' recordings, until each is saved.
    subject_subscriptions: SubjectSubscriptions,
    /// Browser sessions whose socket dropped, waiting for their page to log in again, and
    /// the ids signed-in pages post their call reports with.
    verto_sessions: verto_sessions::VertoSessions,
}

/// What the dialect is made from.
pub struct Parts {
    pub control: CallControl,
    pub directory: Arc<Directory>,
    /// The accounts' Call Control applications.
    pub connections: Arc<Connections>,
    /// The numbers' dispatcher (and through it the numbers): a number given a connection
    /// is told to it.
    pub inbound: Arc<Inbound>,
    pub prompts: Arc<Prompts>,
    pub streams: Arc<MediaStreams>,
    /// Speech recognition (transcription).
    pub speech: Arc<crate::services::speech::Speech>,
    pub subscriptions: Arc<Subscriptions>,
    /// Requests per account (`http.rate_limit_per_sec`).
    pub limits: Arc<RateLimiter>,
    pub recordings: Arc<Recordings>,
    /// The accounts' call queues (shared with the other dialects).
    pub queues: Arc<crate::services::queues::Queues>,
    /// RTP forks of calls (`fork_start`).
    pub forks: Arc<crate::services::fork::Forks>,
    /// Real-time transcriptions of calls (`transcription_start`; shared with the markup).
    pub live_transcriptions: Arc<crate::services::transcription::LiveTranscriptions>,
    /// `http.public_url`: where recordings are downloaded from.
    pub public_url: String,
    /// The markup interpreter: TeXML applications' calls run on it.
    pub markup: Arc<crate::markup::voice::VoiceApps>,
    /// The store (conferences as stored), and a reader of its writer to wait for what is
    /// queued before a read (not a writer: the Telnyx API lives as long as the server, and
    /// a writer held would keep the store's writer from ending at shutdown).
    pub store: crate::infra::store::Store,
    pub writer: crate::infra::store::StoreReader,
    /// The stored calls (TeXML's call resource).
    pub calls: Arc<crate::services::call_records::CallRecords>,
    /// Where signed-in browsers become SIP users of the core.
    pub browser: Arc<crate::services::browser_gateway::BrowserGateway>,
    /// SIP logins: credential connections' and telephony credentials'.
    pub sip_logins: Arc<crate::services::directory::sip_logins::SipLogins>,
    /// The accounts' verified numbers (shared with Twilio's OutgoingCallerIds).
    pub verified: Arc<crate::services::directory::verified_caller_ids::VerifiedCallerIds>,
    /// Tenants' trunks: IP connections and their addresses.
    pub sip_trunks: Arc<crate::services::directory::sip_trunks::SipTrunks>,
}

impl Telnyx {
    /// Registers the dialect's webhook renderer with `subscriptions` (before recovery runs).
    /// How the SIP connections' calls out by the routes are held to Telnyx's settings (for
    /// the trunk service: [`crate::services::directory::sip_trunks::SipTrunks::set_policies`]).
    pub fn sip_policies(
        &self,
    ) -> Arc<dyn crate::services::directory::sip_trunks::ConnectionPolicies> {
        Arc::new(outbound_voice_profiles::SipPolicies {
            store: self.parts.store.clone(),
        })
    }

    pub fn new(parts: Parts) -> Arc<Self> {
        (parts.subscriptions).register(events::RENDERER, Arc::new(events::TelnyxCall));
        (parts.subscriptions).register(recording::RENDERER, Arc::new(recording::TelnyxRecording));
        (parts.subscriptions).register(
            conference_visits::RENDERER,
            Arc::new(conference_visits::TelnyxConferenceVisit),
        );
        Arc::new(Self {
            parts,
            legs: Legs::start(),
            subject_subscriptions: SubjectSubscriptions::default(),
            verto_sessions: verto_sessions::VertoSessions::start(),
        })
    }

    /// Waits up to `grace` for the legs' tasks to queue their last webhooks (their calls have
    /// ended); false if some were cut short.
    pub async fn drain(&self, grace: std::time::Duration) -> bool {
        self.legs.drain(grace).await
    }
}

/// The account of an `Authorization: Bearer KEY…` header (names in any case), within its
/// request rate.
fn authenticate(api: &Telnyx, headers: &HeaderMap) -> Result<Account, ApiError> {
    let key = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, key) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
        })
        .filter(|k| !k.is_empty())
        .ok_or_else(ApiError::unauthenticated)?;
    let account = api
        .parts
        .directory
        .by_telnyx_key(key)
        .ok_or_else(ApiError::unauthenticated)?;
    api.parts
        .limits
        .check(&account.sid, Instant::now())
        .map_err(ApiError::rate_limited)?;
    Ok(account)
}

/// Telnyx's 429 (code 10011, with Retry-After) for a client that must wait `wait`.
pub fn too_many(wait: std::time::Duration) -> axum::response::Response {
    axum::response::IntoResponse::into_response(ApiError::rate_limited(wait))
}

pub fn router(api: Arc<Telnyx>) -> Router {
    Router::new()
        // `@telnyx/webrtc` pointed at this server (`host`) opens its socket on `/`.
        .route("/", get(verto::upgrade))
        .route("/call_report", post(verto::call_report))
        .route("/v2/calls", post(calls::dial))
        .route("/v2/calls/{call}", get(calls::status))
        .route(
            "/v2/calls/{call}/actions/{action}",
            post(actions::run).put(actions::run),
        )
        .route(
            "/v2/connections/{connection}/active_calls",
            get(calls::active),
        )
        .route(
            "/v2/conferences",
            get(conferences::list).post(conferences::create),
        )
        .route("/v2/conferences/{id}", get(conferences::retrieve))
        .route(
            "/v2/conferences/{id}/participants",
            get(conferences::participants),
        )
        .route(
            "/v2/conferences/{id}/actions/{action}",
            post(conferences::act),
        )
        .route("/v2/queues", get(queues::list).post(queues::create))
        .route(
            "/v2/queues/{name}",
            get(queues::retrieve)
                .post(queues::update)
                .delete(queues::delete),
        )
        .route("/v2/queues/{name}/calls", get(queues::calls))
        .route(
            "/v2/queues/{name}/calls/{call}",
            get(queues::call)
                .patch(queues::update_call)
                .delete(queues::remove),
        )
        .route("/v2/recordings", get(recordings::list))
        .route(
            "/v2/recordings/{id}",
            get(recordings::retrieve).delete(recordings::delete),
        )
        .route(
            "/v2/recordings/actions/delete",
            post(recordings::delete_many),
        )
        .route("/v2/recording_files/{file}", get(recordings::download))
        .route(
            "/v2/texml/calls/{connection}",
            post(texml_calls::create_on_connection),
        )
        .route(
            "/v2/texml/Accounts/{account}/Calls",
            get(texml_calls::list).post(texml_calls::create_on_account),
        )
        .route(
            "/v2/texml/Accounts/{account}/Calls/{call}",
            get(texml_calls::retrieve).post(texml_calls::update),
        )
        .route(
            "/v2/texml/Accounts/{account}/Calls/{call}/Streams.json",
            post(texml_streams::start),
        )
        .route(
            "/v2/texml/Accounts/{account}/Calls/{call}/Streams/{file}",
            post(texml_streams::update),
        )
        .route(
            "/v2/texml/Accounts/{account}/Calls/{call}/Recordings.json",
            get(texml_recordings::list_of_call).post(texml_recordings::start),
        )
        .route(
            "/v2/texml/Accounts/{account}/Calls/{call}/Recordings/{file}",
            post(texml_recordings::update),
        )
        .route(
            "/v2/texml/Accounts/{account}/Conferences",
            get(texml_conferences::list),
        )
        .route(
            "/v2/texml/Accounts/{account}/Conferences/{conference}",
            get(texml_conferences::retrieve).post(texml_conferences::update),
        )
        .route(
            "/v2/texml/Accounts/{account}/Conferences/{conference}/Recordings",
            get(texml_recordings::list_of_conference),
        )
        .route(
            "/v2/texml/Accounts/{account}/Conferences/{conference}/Recordings.json",
            get(texml_recordings::list_of_conference),
        )
        .route(
            "/v2/texml/Accounts/{account}/Conferences/{conference}/Participants",
            get(texml_conferences::participants).post(texml_conferences::participant_create),
        )
        .route(
            "/v2/texml/Accounts/{account}/Conferences/{conference}/Participants/{call}",
            get(texml_conferences::participant_retrieve)
                .post(texml_conferences::participant_update)
                .delete(texml_conferences::participant_delete),
        )
        .route(
            "/v2/texml/Accounts/{account}/Queues",
            get(texml_queues::list).post(texml_queues::create),
        )
        .route(
            "/v2/texml/Accounts/{account}/Queues/{queue}",
            get(texml_queues::retrieve)
                .post(texml_queues::update)
                .delete(texml_queues::delete),
        )
        .route(
            "/v2/texml/Accounts/{account}/Recordings.json",
            get(texml_recordings::list),
        )
        .route(
            "/v2/texml/Accounts/{account}/Recordings/{file}",
            get(texml_recordings::retrieve).delete(texml_recordings::delete),
        )
        .route(
            "/v2/texml/Accounts/{account}/Transcriptions.json",
            get(texml_recordings::transcriptions),
        )
        .route(
            "/v2/texml/Accounts/{account}/Transcriptions/{file}",
            get(texml_recordings::transcription_retrieve)
                .delete(texml_recordings::transcription_delete),
        )
        .route(
            "/v2/verified_numbers",
            get(verified_numbers::list).post(verified_numbers::create),
        )
        .route(
            "/v2/verified_numbers/{number}",
            get(verified_numbers::retrieve).delete(verified_numbers::delete),
        )
        .route(
            "/v2/verified_numbers/{number}/actions/verify",
            post(verified_numbers::verify),
        )
        .route("/v2/phone_numbers", get(numbers::list))
        .route("/v2/available_phone_numbers", get(number_orders::available))
        .route(
            "/v2/number_orders",
            get(number_orders::list).post(number_orders::create),
        )
        .route("/v2/number_orders/{id}", get(number_orders::retrieve))
        .route(
            "/v2/outbound_voice_profiles",
            get(outbound_voice_profiles::list).post(outbound_voice_profiles::create),
        )
        .route(
            "/v2/outbound_voice_profiles/{id}",
            get(outbound_voice_profiles::retrieve)
                .patch(outbound_voice_profiles::update)
                .delete(outbound_voice_profiles::delete),
        )
        .route(
            "/v2/phone_numbers/{id}",
            get(numbers::retrieve)
                .patch(numbers::update)
                .delete(numbers::delete),
        )
        .merge(applications::CALL_CONTROL.routes("/v2/call_control_applications"))
        .merge(texml_applications::TEXML.routes("/v2/texml_applications"))
        .merge(credential_connections::CREDENTIAL.routes("/v2/credential_connections"))
        .merge(ip_connections::IP.routes("/v2/ip_connections"))
        .merge(ip_connections::FQDN.routes("/v2/fqdn_connections"))
        .merge(ip_connections::IPS.routes("/v2/ips"))
        .merge(ip_connections::FQDNS.routes("/v2/fqdns"))
        .route(
            "/v2/telephony_credentials",
            get(telephony_credentials::list).post(telephony_credentials::create),
        )
        .route(
            "/v2/telephony_credentials/{id}",
            get(telephony_credentials::retrieve)
                .patch(telephony_credentials::update)
                .delete(telephony_credentials::delete),
        )
        .route(
            "/v2/telephony_credentials/{id}/token",
            post(telephony_credentials::token),
        )
        .with_state(api)
}
