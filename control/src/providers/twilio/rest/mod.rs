//! Twilio's REST API (2010-04-01), also served under SignalWire's `/api/laml` prefix: HTTP
//! Basic auth per account, form-encoded requests with repeated keys, JSON resources with every
//! field the SDKs read, Twilio's list envelope and error JSON.

mod accounts;
mod applications;
mod available_numbers;
mod caller_ids;
pub(crate) mod calls;
mod conferences;
pub(crate) mod json;
mod keys;
mod notifications;
mod numbers;
mod queues;
mod recordings;
mod sip;
mod streams;
mod transcriptions;
mod trunking;
mod user_messages;

use crate::call::CallControl;
use crate::infra::accounts::{Account, Credential, Directory};
use crate::infra::rate::RateLimiter;
use crate::infra::store::{Store, StoreWriter};
use crate::markup::voice::VoiceApps;
use axum::Router;
use axum::extract::Request;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;

#[derive(Clone)]
pub struct TwilioApi {
    pub control: CallControl,
    pub store: Store,
    pub writer: StoreWriter,
    pub directory: Arc<Directory>,
    pub apps: Arc<VoiceApps>,
    pub recordings: Arc<crate::services::recordings::Recordings>,
    /// Unix milliseconds: accounts live in the config, so their dates are this server's start.
    pub started_at: i64,
    /// Requests per account (`http.rate_limit_per_sec`).
    pub limits: Arc<RateLimiter>,
    /// The accounts' verified caller IDs (OutgoingCallerIds).
    pub verified: Arc<crate::services::directory::verified_caller_ids::VerifiedCallerIds>,
    /// The accounts' Applications (TwiML Apps), kept with the other dialects' applications.
    pub connections: Arc<crate::services::directory::connections::Connections>,
    /// The accounts' API keys made through the API (Keys).
    pub api_keys: Arc<crate::services::directory::api_keys::ApiKeys>,
    /// Accounts made under others (Accounts create).
    pub subaccounts: Arc<crate::services::directory::subaccounts::Subaccounts>,
    /// Where signed-in Voice SDK devices become SIP users of the core.
    pub browser: Arc<crate::services::browser_gateway::BrowserGateway>,
    /// The devices' SIP logins (and the other dialects' credentials).
    pub sip_logins: Arc<crate::services::directory::sip_logins::SipLogins>,
    /// User-defined messages between the devices' calls and their applications.
    pub user_messages: Arc<crate::providers::twilio::user_messages::UserMessages>,
    /// SIP domains, credential lists and IP access control lists (the SIP API).
    pub sip_domains: Arc<crate::services::directory::sip_domains::SipDomains>,
    /// Elastic SIP Trunks (Trunking v1), kept with the SIP directory.
    pub sip_trunks: Arc<crate::services::directory::sip_trunks::SipTrunks>,
}

/// A form body through the parsing and parameter checks the handlers share (repeated keys,
/// `To`/`From`, `Timeout`, URL and method parameters, date filters): an entry for the fuzz
/// targets, which run it on hostile bodies. Returns how many checks passed, so that the work
/// is not optimised away.
#[doc(hidden)]
pub fn check_form(body: &str) -> usize {
    let p = json::form(body);
    let mut passed = usize::from(calls::to_and_from(&p).is_ok());
    passed += usize::from(calls::ring_timeout(&p).is_ok());
    for name in ["Url", "StatusCallback", "RecordingStatusCallback", "Method"] {
        passed += usize::from(json::url(&p, name).is_ok());
        passed += usize::from(json::method(&p, name).is_ok());
    }
    passed += json::params_all(&p, "StatusCallbackEvent").len();
    for name in ["StartTime", "EndTime", "DateCreated"] {
        passed += usize::from(calls::time_range(&p, name).is_ok());
    }
    // An AvailablePhoneNumbers search's query (AreaCode, Contains, PageSize).
    let kind = crate::services::directory::available_numbers::Kind::Local;
    passed += usize::from(available_numbers::read_search(&p, "US", kind).is_ok());
    // The SIP API's domain names and addresses.
    passed += usize::from(sip::check_form(&p));
    // Elastic SIP Trunking's trunk fields and origination URLs.
    passed += trunking::check_form(&p);
    passed
}

/// The SIP API's routes (`/Accounts/{account}/SIP/…`).
fn sip_routes(router: Router<TwilioApi>) -> Router<TwilioApi> {
    use axum::extract::{Path, RawQuery, State};
    use axum::routing::MethodRouter;
    const ACCOUNT: &str = "/Accounts/{account}/SIP";
    // A domain's mappings of one kind: listed and made under `path`, read and removed under
    // `path/{file}`.
    fn mappings(router: Router<TwilioApi>, path: &str, m: sip::Mappings) -> Router<TwilioApi> {
        let listed: MethodRouter<TwilioApi> = get(
            move |State(api): State<TwilioApi>,
                  Path(p): Path<(String, String)>,
                  headers: HeaderMap,
                  RawQuery(q): RawQuery| sip::mappings(api, p, headers, q, m),
        )
        .post(
            move |State(api): State<TwilioApi>,
                  Path(p): Path<(String, String)>,
                  headers: HeaderMap,
                  body: String| sip::mapping_create(api, p, headers, body, m),
        );
        let one: MethodRouter<TwilioApi> = get(
            move |State(api): State<TwilioApi>,
                  Path(p): Path<(String, String, String)>,
                  headers: HeaderMap| sip::mapping_fetch(api, p, headers, m),
        )
        .delete(
            move |State(api): State<TwilioApi>,
                  Path(p): Path<(String, String, String)>,
                  headers: HeaderMap| sip::mapping_delete(api, p, headers, m),
        );
        let base = format!("{ACCOUNT}/Domains/{{domain}}/{path}");
        router
            .route(&format!("{base}.json"), listed)
            .route(&format!("{base}/{{file}}"), one)
    }
    // A kind of list (credential lists, IP access control lists) and its entries.
    fn lists(router: Router<TwilioApi>, d: sip::Lists) -> Router<TwilioApi> {
        let all: MethodRouter<TwilioApi> = get(
            move |State(api): State<TwilioApi>,
                  Path(a): Path<String>,
                  headers: HeaderMap,
                  RawQuery(q): RawQuery| sip::lists(api, a, headers, q, d),
        )
        .post(
            move |State(api): State<TwilioApi>,
                  Path(a): Path<String>,
                  headers: HeaderMap,
                  body: String| sip::list_create(api, a, headers, body, d),
        );
        let one: MethodRouter<TwilioApi> = get(
            move |State(api): State<TwilioApi>,
                  Path(p): Path<(String, String)>,
                  headers: HeaderMap| sip::list_fetch(api, p, headers, d),
        )
        .post(
            move |State(api): State<TwilioApi>,
                  Path(p): Path<(String, String)>,
                  headers: HeaderMap,
                  body: String| sip::list_update(api, p, headers, body, d),
        )
        .delete(
            move |State(api): State<TwilioApi>,
                  Path(p): Path<(String, String)>,
                  headers: HeaderMap| sip::list_delete(api, p, headers, d),
        );
        let entries: MethodRouter<TwilioApi> = get(
            move |State(api): State<TwilioApi>,
                  Path(p): Path<(String, String)>,
                  headers: HeaderMap,
                  RawQuery(q): RawQuery| sip::entries(api, p, headers, q, d),
        )
        .post(
            move |State(api): State<TwilioApi>,
                  Path(p): Path<(String, String)>,
                  headers: HeaderMap,
                  body: String| sip::entry_create(api, p, headers, body, d),
        );
        let entry: MethodRouter<TwilioApi> = get(
            move |State(api): State<TwilioApi>,
                  Path(p): Path<(String, String, String)>,
                  headers: HeaderMap| sip::entry_fetch(api, p, headers, d),
        )
        .post(
            move |State(api): State<TwilioApi>,
                  Path(p): Path<(String, String, String)>,
                  headers: HeaderMap,
                  body: String| sip::entry_update(api, p, headers, body, d),
        )
        .delete(
            move |State(api): State<TwilioApi>,
                  Path(p): Path<(String, String, String)>,
                  headers: HeaderMap| sip::entry_delete(api, p, headers, d),
        );
        let (base, sub) = (format!("{ACCOUNT}/{}", d.segment()), d.entry_segment());
        router
            .route(&format!("{base}.json"), all)
            .route(&format!("{base}/{{file}}"), one)
            .route(&format!("{base}/{{list}}/{sub}.json"), entries)
            .route(&format!("{base}/{{list}}/{sub}/{{file}}"), entry)
    }
    let router = lists(router, sip::CREDENTIAL_LISTS);
    let router = lists(router, sip::IP_ACLS);
    let router = router
        .route(
            &format!("{ACCOUNT}/Domains.json"),
            get(sip::domains).post(sip::domain_create),
        )
        .route(
            &format!("{ACCOUNT}/Domains/{{file}}"),
            get(sip::domain_fetch)
                .post(sip::domain_update)
                .delete(sip::domain_delete),
        );
    let router = mappings(router, "CredentialListMappings", sip::LEGACY_CREDENTIALS);
    let router = mappings(router, "IpAccessControlListMappings", sip::LEGACY_IPS);
    let router = mappings(
        router,
        "Auth/Calls/CredentialListMappings",
        sip::CALLS_CREDENTIALS,
    );
    let router = mappings(
        router,
        "Auth/Calls/IpAccessControlListMappings",
        sip::CALLS_IPS,
    );
    mappings(
        router,
        "Auth/Registrations/CredentialListMappings",
        sip::REGISTRATIONS,
    )
}

/// Elastic SIP Trunking's routes (`trunking.twilio.com/v1`).
fn trunking_routes(api: TwilioApi) -> Router {
    use axum::extract::{Path, RawQuery};
    fn given(router: Router<TwilioApi>, g: trunking::Given) -> Router<TwilioApi> {
        let base = format!("/v1/Trunks/{{trunk}}/{}", g.segment);
        let all = get(
            move |State(api): State<TwilioApi>,
                  Path(t): Path<String>,
                  headers: HeaderMap,
                  RawQuery(q): RawQuery| trunking::given(api, t, headers, q, g),
        )
        .post(
            move |State(api): State<TwilioApi>,
                  Path(t): Path<String>,
                  headers: HeaderMap,
                  body: String| trunking::give(api, t, headers, body, g),
        );
        let one = get(
            move |State(api): State<TwilioApi>,
                  Path(p): Path<(String, String)>,
                  headers: HeaderMap| trunking::given_one(api, p, headers, g),
        )
        .delete(
            move |State(api): State<TwilioApi>,
                  Path(p): Path<(String, String)>,
                  headers: HeaderMap| trunking::take_back(api, p, headers, g),
        );
        router
            .route(&base, all)
            .route(&format!("{base}/{{file}}"), one)
    }
    let router = Router::new()
        .route(
            "/v1/Trunks",
            get(trunking::trunks).post(trunking::trunk_create),
        )
        .route(
            "/v1/Trunks/{file}",
            get(trunking::trunk_fetch)
                .post(trunking::trunk_update)
                .delete(trunking::trunk_delete),
        )
        .route(
            "/v1/Trunks/{trunk}/Recording",
            get(trunking::recording_fetch).post(trunking::recording_update),
        )
        .route(
            "/v1/Trunks/{trunk}/OriginationUrls",
            get(trunking::urls).post(trunking::url_create),
        )
        .route(
            "/v1/Trunks/{trunk}/OriginationUrls/{file}",
            get(trunking::url_fetch)
                .post(trunking::url_update)
                .delete(trunking::url_delete),
        );
    let router = given(router, trunking::CREDENTIAL_LISTS);
    let router = given(router, trunking::IP_ACLS);
    given(router, trunking::PHONE_NUMBERS)
        .route_layer(middleware::from_fn_with_state(api.clone(), rate_limit))
        .with_state(api)
}

/// The API's routes, under `/2010-04-01` and `/api/laml/2010-04-01`.
pub fn router(api: TwilioApi) -> Router {
    let routes = sip_routes(Router::new())
        .route("/Accounts.json", get(accounts::list).post(accounts::create))
        .route(
            "/Accounts/{account}",
            get(accounts::fetch).post(accounts::update),
        )
        .route(
            "/Accounts/{account}/Applications.json",
            get(applications::list).post(applications::create),
        )
        .route(
            "/Accounts/{account}/Applications/{application}",
            get(applications::fetch)
                .post(applications::update)
                .delete(applications::delete),
        )
        .route(
            "/Accounts/{account}/Keys.json",
            get(keys::list).post(keys::create),
        )
        .route(
            "/Accounts/{account}/Keys/{key}",
            get(keys::fetch).post(keys::update).delete(keys::delete),
        )
        .route(
            "/Accounts/{account}/Calls.json",
            get(calls::list).post(calls::create),
        )
        .route(
            "/Accounts/{account}/Calls/{call}",
            get(calls::fetch).post(calls::update).delete(calls::delete),
        )
        .route(
            "/Accounts/{account}/Calls/{call}/UserDefinedMessages.json",
            post(user_messages::create),
        )
        .route(
            "/Accounts/{account}/Calls/{call}/UserDefinedMessageSubscriptions.json",
            post(user_messages::subscribe),
        )
        .route(
            "/Accounts/{account}/Calls/{call}/UserDefinedMessageSubscriptions/{file}",
            axum::routing::delete(user_messages::unsubscribe),
        )
        .route(
            "/Accounts/{account}/Conferences.json",
            get(conferences::list),
        )
        .route(
            "/Accounts/{account}/Conferences/{conference}",
            get(conferences::fetch).post(conferences::update),
        )
        .route(
            "/Accounts/{account}/Conferences/{conference}/Participants.json",
            get(conferences::participants).post(conferences::participant_create),
        )
        .route(
            "/Accounts/{account}/Conferences/{conference}/Participants/{call}",
            get(conferences::participant_fetch)
                .post(conferences::participant_update)
                .delete(conferences::participant_delete),
        )
        .route(
            "/Accounts/{account}/IncomingPhoneNumbers.json",
            get(numbers::list).post(numbers::create),
        )
        .route(
            "/Accounts/{account}/AvailablePhoneNumbers.json",
            get(available_numbers::countries),
        )
        .route(
            "/Accounts/{account}/AvailablePhoneNumbers/{country}",
            get(available_numbers::country),
        )
        .route(
            "/Accounts/{account}/AvailablePhoneNumbers/{country}/{kind}",
            get(available_numbers::search),
        )
        .route(
            "/Accounts/{account}/IncomingPhoneNumbers/{number}",
            get(numbers::fetch)
                .post(numbers::update)
                .delete(numbers::delete),
        )
        .route(
            "/Accounts/{account}/OutgoingCallerIds.json",
            get(caller_ids::list).post(caller_ids::create),
        )
        .route(
            "/Accounts/{account}/OutgoingCallerIds/{caller_id}",
            get(caller_ids::fetch)
                .post(caller_ids::update)
                .delete(caller_ids::delete),
        )
        .route(
            "/Accounts/{account}/Queues.json",
            get(queues::list).post(queues::create),
        )
        .route(
            "/Accounts/{account}/Queues/{queue}",
            get(queues::fetch)
                .post(queues::update)
                .delete(queues::delete),
        )
        .route(
            "/Accounts/{account}/Queues/{queue}/Members.json",
            get(queues::members),
        )
        .route(
            "/Accounts/{account}/Queues/{queue}/Members/{member}",
            get(queues::member_fetch).post(queues::member_update),
        )
        .route(
            "/Accounts/{account}/Notifications.json",
            get(notifications::list),
        )
        .route(
            "/Accounts/{account}/Notifications/{file}",
            get(notifications::fetch),
        )
        .route(
            "/Accounts/{account}/Calls/{call}/Notifications.json",
            get(notifications::list_of_call),
        )
        .route(
            "/Accounts/{account}/Calls/{call}/Notifications/{file}",
            get(notifications::fetch_of_call),
        )
        .route(
            "/Accounts/{account}/Transcriptions.json",
            get(transcriptions::list),
        )
        .route(
            "/Accounts/{account}/Transcriptions/{file}",
            get(transcriptions::fetch).delete(transcriptions::delete),
        )
        .route(
            "/Accounts/{account}/Recordings/{recording}/Transcriptions.json",
            get(transcriptions::list_of_recording),
        )
        .route("/Accounts/{account}/Recordings.json", get(recordings::list))
        .route(
            "/Accounts/{account}/Conferences/{conference}/Recordings.json",
            get(recordings::list_of_conference),
        )
        .route(
            "/Accounts/{account}/Conferences/{conference}/Recordings/{file}",
            get(recordings::fetch_of_conference)
                .post(recordings::update_of_conference)
                .delete(recordings::delete_of_conference),
        )
        .route(
            "/Accounts/{account}/Recordings/{file}",
            get(recordings::fetch).delete(recordings::delete),
        )
        .route(
            "/Accounts/{account}/Calls/{call}/Recordings.json",
            get(recordings::list_of_call).post(recordings::start),
        )
        .route(
            "/Accounts/{account}/Calls/{call}/Recordings/{file}",
            post(recordings::update),
        )
        .route(
            "/Accounts/{account}/Calls/{call}/Transcriptions.json",
            post(transcriptions::create_live),
        )
        .route(
            "/Accounts/{account}/Calls/{call}/Transcriptions/{file}",
            post(transcriptions::update_live),
        )
        .route(
            "/Accounts/{account}/Calls/{call}/Streams.json",
            post(streams::create),
        )
        .route(
            "/Accounts/{account}/Calls/{call}/Streams/{file}",
            post(streams::update),
        )
        .route_layer(middleware::from_fn_with_state(api.clone(), rate_limit))
        .with_state(api.clone());
    Router::new()
        .nest("/2010-04-01", routes.clone())
        .nest("/api/laml/2010-04-01", routes)
        .merge(trunking_routes(api.clone()))
        // `@twilio/voice-sdk` given `chunderw: HOST` opens wss://HOST/signal.
        .route("/signal", get(super::signal::upgrade).with_state(api))
}

/// Counts an authenticated request against its account's rate: over it, Twilio's 429 with
/// code 20429 and a Retry-After. Requests that fail authentication are not counted here (so no
/// one can spend another account's budget) and go on to their 401/404.
async fn rate_limit(State(api): State<TwilioApi>, request: Request, next: Next) -> Response {
    let path_account = request
        .uri()
        .path()
        .split('/')
        .skip_while(|s| *s != "Accounts")
        .nth(1)
        .map(|s| s.trim_end_matches(".json").to_owned());
    let account = match path_account {
        Some(p) => authenticate(&api.directory, request.headers(), &p).ok(),
        // APIs whose paths name no account (Trunking v1) act for the credentials' own.
        None => crate::infra::http::basic_credentials(request.headers())
            .and_then(|(u, p)| api.directory.by_credentials(&u, &p))
            .map(|(a, _)| a),
    }
    .map(|a| a.sid.clone());
    if let Some(sid) = account
        && let Err(wait) = api.limits.check(&sid, std::time::Instant::now())
    {
        metrics::counter!("switchboard_api_requests_limited_total").increment(1);
        return too_many(wait);
    }
    next.run(request).await
}

/// Twilio's 429 (code 20429, with Retry-After) for a client that must wait `wait`.
pub fn too_many(wait: std::time::Duration) -> Response {
    let retry_after = wait.as_secs().max(1).to_string();
    let error = ApiError::new(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests");
    ([(header::RETRY_AFTER, retry_after)], error).into_response()
}

/// The call of a request on a live call, which must be the account's and in progress; `what`
/// ends the error message (`Cannot start a recording.`).
async fn live_call(api: &TwilioApi, account: &str, call: &str, what: &str) -> Result<(), ApiError> {
    api.writer.sync().await;
    let row = api
        .store
        .get_call(call)
        .await
        .map_err(ApiError::internal)?
        .filter(|c| c.account_sid.as_deref() == Some(account))
        .ok_or_else(|| {
            ApiError::not_found(&format!("/2010-04-01/Accounts/{account}/Calls/{call}.json"))
        })?;
    if row.status.as_str() != "in-progress" {
        return Err(ApiError::bad_request(
            21220,
            format!("Call is not in-progress. {what}"),
        ));
    }
    Ok(())
}

/// An error in Twilio's shape: `{code, message, more_info, status}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: u32,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            20404,
            format!("The requested resource {path} was not found"),
        )
    }

    pub fn bad_request(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub(super) fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, 20500, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "code": self.code,
            "message": self.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{}", self.code),
            "status": self.status.as_u16(),
        });
        let mut response = (self.status, json::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"Switchboard\""),
            );
        }
        response
    }
}

/// What every list request starts from: the account it authenticated as, its query parameters
/// and the page it asks for; [`Listing::respond`] answers it in Twilio's envelope.
struct Listing {
    account: Account,
    q: Vec<(String, String)>,
    /// `Page` and `PageSize`.
    page: (i64, i64),
}

impl Listing {
    fn new(
        directory: &Directory,
        headers: &HeaderMap,
        path_account: &str,
        query: Option<String>,
    ) -> Result<Self, ApiError> {
        let account = authenticate(directory, headers, path_account)?;
        let q = json::form(query.as_deref().unwrap_or_default());
        let page = json::paging(&q).map_err(|e| ApiError::bad_request(20001, e))?;
        Ok(Self { account, q, page })
    }

    fn param(&self, name: &str) -> Option<&str> {
        json::param(&self.q, name)
    }

    /// Where a store that pages itself starts, and how many rows it gives: one more than a
    /// page, which tells whether a next page exists.
    fn offset_limit(&self) -> (i64, i64) {
        let (page, size) = self.page;
        (page * size, size + 1)
    }

    /// The items of a list held in memory that the page shows, and one more when a next
    /// page exists (what [`Listing::respond`] takes).
    fn page_of<T>(&self, items: impl IntoIterator<Item = T>) -> Vec<T> {
        let (offset, limit) = self.offset_limit();
        items
            .into_iter()
            .skip(offset as usize)
            .take(limit as usize)
            .collect()
    }

    /// The page of `items` under `key`, for the list at `path` (below the account's URI);
    /// `items` is the page and one more when a next page exists.
    fn respond<T>(
        &self,
        key: &str,
        path: &str,
        items: Vec<T>,
        sid: impl Fn(&T) -> String,
        render: impl Fn(&T) -> serde_json::Value,
    ) -> json::Json {
        let uri = format!("/2010-04-01/Accounts/{}/{path}", self.account.api_sid());
        json::Json(json::envelope(
            key, &uri, &self.q, self.page, items, sid, render,
        ))
    }
}

/// The account of the path, when the request's Basic credentials are that account's SID (or
/// SignalWire project id) and auth token, or one of its API keys. Credentials of another
/// account see a 404: accounts cannot see each other's resources.
fn authenticate(
    directory: &Directory,
    headers: &HeaderMap,
    path_account: &str,
) -> Result<Account, ApiError> {
    authenticate_by(directory, headers, path_account).map(|(a, _)| a)
}

/// [`authenticate`], saying which credential was used. Secrets compare in constant time.
fn authenticate_by(
    directory: &Directory,
    headers: &HeaderMap,
    path_account: &str,
) -> Result<(Account, Credential), ApiError> {
    let unauthorized = || ApiError::new(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    let (owner, by) = crate::infra::http::basic_credentials(headers)
        .and_then(|(user, password)| directory.by_credentials(&user, &password))
        .ok_or_else(unauthorized)?;
    let named = directory.named(path_account);
    if named.as_ref().is_some_and(|a| a.sid == owner.sid) {
        Ok((owner, by))
    } else if let Some(sub) = named.filter(|a| directory.owner_of(&a.sid) == Some(owner.sid)) {
        // An owner's credentials reach its (active) subaccounts' resources, as that account.
        Ok((sub, by))
    } else {
        Err(ApiError::not_found(&format!(
            "/2010-04-01/Accounts/{path_account}.json"
        )))
    }
}
