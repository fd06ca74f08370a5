//! Validation: every value of a [`Config`] checked, with an error naming the key at fault,
//! and turned into the [`Settings`] the server runs on.

use super::routing::{network, source_policy, srtp_policy};
use super::*;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;
use switchboard_control::call::account_limits::Limits;
use switchboard_control::call::dial_plan::{DialPlan, SipTls};
use switchboard_control::infra::egress::Reach;
use switchboard_control::infra::http::HttpLimits;
use switchboard_control::infra::http::throttle::ThrottlePolicy;
use switchboard_control::infra::rate::Rate;
use switchboard_control::infra::tls;
use switchboard_control::infra::webhook::outbox::RetryPolicy;
use switchboard_control::services::prompts::http::HttpTtsConfig;
use switchboard_control::services::speech::http::HttpEngineConfig;
use switchboard_control::services::speech::{
    EngineChoice, EngineSetting, Languages, ProviderEngines, SpeechSettings,
};
use switchboard_control::services::stream::StreamConfig;
use switchboard_sip::auth::{Algorithm, UriMatch};
use switchboard_sip::transport::TransportLimits;
use switchboard_sip::transport::{ListenSpec, Transport};
use switchboard_sip::ua::SessionTimers;

/// The most call-core shards a node runs (a thread each; a call's id has room for 4,096).
const MAX_CALL_SHARDS: u16 = 256;

impl Config {
    /// Checks every value and builds what the server runs on.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        let mut listen = Vec::new();
        for (i, spec) in self.sip.listen.iter().enumerate() {
            listen.push(parse_listen(spec).ok_or_else(|| {
                invalid(
                    format!("sip.listen[{i}]"),
                    format!("expected \"udp:IP:PORT\" or \"tcp:IP:PORT\", got {spec:?}"),
                )
            })?);
        }
        if listen.is_empty() {
            return Err(invalid("sip.listen", "at least one listener is needed"));
        }
        let public_ip = parse_optional_ip(&self.sip.public_ip, "sip.public_ip")?;
        let media_bind = parse_optional_ip(&self.media.bind_ip, "media.bind_ip")?;
        let rtp_ports = parse_port_range(&self.media.rtp_ports).ok_or_else(|| {
            invalid(
                "media.rtp_ports",
                format!(
                    "expected \"LOW-HIGH\" with at least one even/odd pair, got {:?}",
                    self.media.rtp_ports
                ),
            )
        })?;
        if self.media.rtp_timeout_secs == 0 {
            return Err(invalid("media.rtp_timeout_secs", "must be at least 1"));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(invalid(
                "log.format",
                format!("expected \"text\" or \"json\", got {:?}", self.log.format),
            ));
        }
        if let Err(e) = crate::logging::filter(&self.log.level) {
            return Err(invalid("log.level", e));
        }
        if !(100..=5000).contains(&self.sip.t1_ms) {
            return Err(invalid("sip.t1_ms", "must be 100 to 5000"));
        }
        if !(90..=86_400).contains(&self.sip.min_se_secs) {
            return Err(invalid("sip.min_se_secs", "must be 90 to 86400"));
        }
        if self.sip.overload_delay_ms > 10_000 {
            return Err(invalid(
                "sip.overload_delay_ms",
                "must be at most 10000 (0 turns overload control off)",
            ));
        }
        if self.sip.trace_retention_secs > 30 * 86_400 {
            return Err(invalid(
                "sip.trace_retention_secs",
                "must be at most 2592000 (30 days)",
            ));
        }
        if !(self.sip.min_se_secs..=86_400).contains(&self.sip.session_expires_secs) {
            return Err(invalid(
                "sip.session_expires_secs",
                "must be at least sip.min_se_secs and at most 86400",
            ));
        }
        if self.sip.ring_timeout_secs == 0 {
            return Err(invalid("sip.ring_timeout_secs", "must be at least 1"));
        }
        let mut digest_algorithms = Vec::new();
        for (i, name) in self.sip.digest_algorithms.iter().enumerate() {
            match Algorithm::parse(name) {
                Some(a @ (Algorithm::Md5 | Algorithm::Sha256)) => digest_algorithms.push(a),
                _ => {
                    return Err(invalid(
                        format!("sip.digest_algorithms[{i}]"),
                        format!("expected \"MD5\" or \"SHA-256\", got {name:?}"),
                    ));
                }
            }
        }
        let http_listen: SocketAddr = self.http.listen.parse().map_err(|_| {
            invalid(
                "http.listen",
                format!("expected IP:PORT, got {:?}", self.http.listen),
            )
        })?;
        let https = self.http.tls()?;
        let url = &self.storage.database_url;
        if !["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|p| url.starts_with(p))
        {
            return Err(invalid(
                "storage.database_url",
                format!("expected sqlite://PATH or postgres://…, got {url:?}"),
            ));
        }

        let streams = self.streams.validate()?;

        let tls_ca = optional_file("sip.tls_ca_file", &self.sip.tls_ca_file)?;
        let tls = self.sip.tls(&listen, tls_ca.as_deref())?;
        let (users, user_accounts) = self.users()?;
        let (trunks, names) = self.trunks(&listen, tls_ca.as_deref())?;
        let routes = self.routes(&users, &names)?;

        Ok(Settings {
            listen,
            public_ip,
            media_bind,
            rtp_ports,
            media_threads: self.media.threads,
            rtp_timeout: Duration::from_secs(self.media.rtp_timeout_secs),
            learn_window: Duration::from_millis(self.media.learn_window_ms),
            kernel_relay: self.media.kernel_relay,
            ring_timeout: Duration::from_secs(self.sip.ring_timeout_secs),
            t1: Duration::from_millis(self.sip.t1_ms),
            session_timers: SessionTimers {
                expires: Duration::from_secs(self.sip.session_expires_secs),
                min_se: Duration::from_secs(self.sip.min_se_secs),
            },
            sip_trace: (self.sip.trace_retention_secs > 0)
                .then(|| Duration::from_secs(self.sip.trace_retention_secs)),
            realm: self.sip.realm.clone(),
            digest_algorithms,
            digest_secret: Some(self.sip.digest_secret.clone()).filter(|s| !s.is_empty()),
            transport_limits: TransportLimits {
                tcp_max_connections: self.sip.tcp_max_connections,
                tcp_max_per_ip: self.sip.tcp_max_per_ip,
                tcp_idle: Duration::from_secs(self.sip.tcp_idle_secs.max(1)),
                tcp_first_message: Duration::from_secs(self.sip.tcp_first_message_secs.max(1)),
                // Strangers keep at least half, however the two are set.
                tcp_reserved: self.sip.tcp_reserved.min(self.sip.tcp_max_connections / 2),
                tcp_max_per_login: self.sip.tcp_max_per_login.max(1),
                tcp_max_per_account: self.sip.tcp_max_per_account.max(1),
                ..TransportLimits::default()
            },
            digest_uri: match self.sip.digest_uri.as_str() {
                "request-uri" => UriMatch::RequestUri,
                "host-port" => UriMatch::HostPort,
                other => {
                    return Err(invalid(
                        "sip.digest_uri",
                        format!("expected \"request-uri\" or \"host-port\", got {other:?}"),
                    ));
                }
            },
            user_agent: self.sip.user_agent.clone(),
            max_contacts: self.sip.max_contacts.max(1),
            max_registrations: self.sip.max_registrations.max(1),
            call_shards: match self.sip.call_shards {
                // One per core the process may run on.
                0 => std::thread::available_parallelism()
                    .map_or(1, |n| u16::try_from(n.get()).unwrap_or(MAX_CALL_SHARDS))
                    .clamp(1, MAX_CALL_SHARDS),
                n @ 1..=MAX_CALL_SHARDS => n,
                n => {
                    return Err(invalid(
                        "sip.call_shards",
                        format!("expected 0 (one per core) or 1 to {MAX_CALL_SHARDS}, got {n}"),
                    ));
                }
            },
            http_listen,
            https,
            public_url: self.http.public_url.clone(),
            admin_token: Some(self.http.admin_token.clone()).filter(|t| !t.is_empty()),
            http_limits: HttpLimits {
                header_timeout: Duration::from_secs(self.http.header_timeout_secs.max(1)),
                request_timeout: Duration::from_secs(self.http.request_timeout_secs.max(1)),
                max_connections: self.http.max_connections.max(1),
                max_per_address: self.http.max_connections_per_address.max(1),
                websockets: self.http.websockets_max.max(1),
                websockets_per_address: self.http.websockets_per_address.max(1),
                websockets_per_account: self.http.websockets_per_account.max(1),
                websockets_sign_in: Duration::from_secs(
                    self.http.websockets_sign_in_secs.clamp(1, 60),
                ),
            },
            drain: Duration::from_secs(self.shutdown.drain_secs),
            dead_after: match self.cluster.dead_after_secs {
                secs @ 1..=3600 => Duration::from_secs(secs),
                secs => {
                    return Err(invalid(
                        "cluster.dead_after_secs",
                        format!("{secs} is not between 1 and 3600"),
                    ));
                }
            },
            account_limits: {
                if self.limits.account_calls_per_second.is_nan()
                    || self.limits.account_calls_per_second <= 0.0
                {
                    return Err(invalid(
                        "limits.account_calls_per_second",
                        "must be above 0",
                    ));
                }
                let defaults = Limits {
                    max_calls: self.limits.account_max_calls,
                    calls_per_second: self.limits.account_calls_per_second,
                };
                let mut each = HashMap::new();
                for (i, a) in self.accounts.iter().enumerate() {
                    if a.max_calls.is_none() && a.calls_per_second.is_none() {
                        continue;
                    }
                    let cps = a.calls_per_second.unwrap_or(defaults.calls_per_second);
                    if cps.is_nan() || cps <= 0.0 {
                        return Err(invalid(
                            format!("accounts[{i}].calls_per_second"),
                            "must be above 0",
                        ));
                    }
                    let limits = Limits {
                        max_calls: a.max_calls.unwrap_or(defaults.max_calls),
                        calls_per_second: cps,
                    };
                    each.insert(a.sid.clone(), limits);
                }
                (defaults, each)
            },
            auth_throttle: ThrottlePolicy {
                burst: self.http.auth_failure_burst,
                ..ThrottlePolicy::default()
            },
            overload: switchboard_sip::ua::OverloadConfig {
                delay: Duration::from_millis(self.sip.overload_delay_ms),
                ..Default::default()
            },
            source_rate: (self.sip.rate_limit_per_source > 0.0).then_some(Rate {
                per_second: self.sip.rate_limit_per_source,
                burst: self.sip.rate_limit_burst.max(1.0),
            }),
            api_rate: (self.http.rate_limit_per_sec > 0.0).then_some(Rate {
                per_second: self.http.rate_limit_per_sec,
                burst: self.http.rate_limit_burst.max(1.0),
            }),
            database_url: self.storage.database_url.clone(),
            recordings_dir: self.storage.recordings_dir.clone().into(),
            cache_dir: self.storage.cache_dir.clone().into(),
            quarantine_file: self.storage.quarantine_file.clone().into(),
            max_rows_waiting: self.storage.max_rows_waiting,
            cache_max_bytes: match self.storage.cache_max_mb.checked_mul(1 << 20) {
                Some(b) if b > 0 => b,
                _ => {
                    return Err(invalid(
                        "storage.cache_max_mb",
                        "must be between 1 and 2^44 MiB",
                    ));
                }
            },
            node_id: match self.storage.node_id.trim() {
                "" => host_name(),
                id => id.to_owned(),
            },
            node_url: match self.storage.node_url.trim() {
                "" if !http_listen.ip().is_unspecified() => format!("http://{http_listen}"),
                "" => self.http.public_url.clone(),
                url => url.to_owned(),
            },
            webhook_retry: {
                if self.webhooks.retry_max_secs == 0 {
                    return Err(invalid("webhooks.retry_max_secs", "must be at least 1"));
                }
                RetryPolicy {
                    max_backoff: Duration::from_secs(self.webhooks.retry_max_secs),
                    give_up_after: Duration::from_secs(self.webhooks.give_up_secs),
                }
            },
            routing: DialPlan {
                trunks,
                routes,
                users,
                user_accounts,
                sip_uri_allow: (self.sip.uri_allowlist.iter().enumerate())
                    .map(|(i, s)| network(&format!("sip.uri_allowlist[{i}]"), s))
                    .collect::<Result<_, _>>()?,
                user_rtp_source: source_policy(
                    "media.user_rtp_source",
                    &self.media.user_rtp_source,
                )?,
                default_rtp_source: source_policy(
                    "media.default_rtp_source",
                    &self.media.default_rtp_source,
                )?,
                user_srtp: srtp_policy("media.user_srtp", &self.media.user_srtp)?,
                tls,
                // The API's, given to the core apart (see `Request::TenantTrunks`).
                tenant: Default::default(),
            },
            directory: directory::validate(
                &self.accounts,
                &self.numbers,
                (&self.connections, &self.texml_applications),
                Reach {
                    loopback: self.egress.allow_loopback,
                    private: self.egress.allow_private,
                },
            )?,
            streams,
            speech: SpeechSettings {
                engines: self.speech_engines()?,
                workers: self.speech.workers,
                queue: self.speech.queue,
                preload: self.speech.preload,
            },
            speech_dir: self.speech.dir.clone().into(),
            speech_fetch: self
                .speech
                .fetch
                .then(|| match self.speech.fetch_command.as_str() {
                    "" => concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install-speech.sh").into(),
                    command => command.into(),
                }),
            tts_http: self.tts_http()?,
            speech_providers: self.speech_providers()?,
        })
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: Vec<ListenSpec>,
    pub public_ip: Option<IpAddr>,
    pub media_bind: Option<IpAddr>,
    pub rtp_ports: RangeInclusive<u16>,
    pub media_threads: usize,
    pub rtp_timeout: Duration,
    pub learn_window: Duration,
    /// Plain relays forwarded in the kernel (a BPF program on loopback's ingress).
    pub kernel_relay: bool,
    pub ring_timeout: Duration,
    /// RFC 3261's T1 (round-trip estimate); retransmissions and timeouts (64·T1) follow it.
    pub t1: Duration,
    pub session_timers: SessionTimers,
    /// How long calls' SIP messages are kept (`None`: they are not).
    pub sip_trace: Option<Duration>,
    pub realm: String,
    pub digest_algorithms: Vec<Algorithm>,
    pub transport_limits: TransportLimits,
    /// Shared key of digest nonces (`None`: random per process).
    pub digest_secret: Option<String>,
    pub digest_uri: UriMatch,
    pub user_agent: String,
    /// Registrations one SIP login may hold, and all logins together.
    pub max_contacts: usize,
    pub max_registrations: usize,
    /// Call-core shards, each on a thread of its own (see `sip_thread`).
    pub call_shards: u16,
    pub http_listen: SocketAddr,
    /// The HTTPS listener (the same API, and the browser SDKs' `wss:` sockets) and what it
    /// presents.
    pub https: Option<(SocketAddr, std::sync::Arc<tls::ServerConfig>)>,
    /// Where the HTTP API is reached from outside (recording URLs in webhooks).
    pub public_url: String,
    /// The operator's `/admin/v1` API token; `None` leaves the API off.
    pub admin_token: Option<String>,
    pub http_limits: HttpLimits,
    /// On SIGTERM, how long calls up may go on (new ones refused) before they are hung up.
    pub drain: Duration,
    /// A node silent this long is taken for dead by the others.
    pub dead_after: Duration,
    /// Call limits: the defaults, and accounts' own.
    pub account_limits: (Limits, HashMap<String, Limits>),
    /// Failed authentications per source address.
    pub auth_throttle: ThrottlePolicy,
    /// New SIP requests per source address, trunks aside (`None`: unlimited).
    pub source_rate: Option<Rate>,
    /// New calls admitted by the core's measured load.
    pub overload: switchboard_sip::ua::OverloadConfig,
    /// REST requests per account (`None`: unlimited).
    pub api_rate: Option<Rate>,
    pub database_url: String,
    pub recordings_dir: std::path::PathBuf,
    /// Fetched audio and rendered speech.
    pub cache_dir: std::path::PathBuf,
    pub cache_max_bytes: u64,
    pub quarantine_file: std::path::PathBuf,
    pub max_rows_waiting: u64,
    /// This node among those sharing the database.
    pub node_id: String,
    /// Where the other nodes sharing the database reach this node's API.
    pub node_url: String,
    pub webhook_retry: RetryPolicy,
    pub routing: DialPlan,
    pub directory: switchboard_control::infra::accounts::Listing,
    pub streams: StreamConfig,
    pub speech: SpeechSettings,
    /// Where scripts/install-speech.sh put the models (the neural voice is read from it
    /// whichever engine recognises).
    pub speech_dir: std::path::PathBuf,
    /// What fetches the local speech models at a start that finds them missing (given the
    /// speech directory); `None`: nothing does.
    pub speech_fetch: Option<std::path::PathBuf>,
    /// The operator's voice engine and the languages it speaks, if any.
    pub tts_http: Option<(HttpTtsConfig, Languages)>,
    /// `speech.providers`: the operator's map of providers' names to engines.
    pub speech_providers: ProviderEngines,
}

impl Config {
    /// `speech.providers`, and any account's: a provider mapped to `http` needs an http
    /// engine to go to.
    fn speech_providers(&self) -> Result<ProviderEngines, ConfigError> {
        let operator = ProviderEngines::parse(&self.speech.providers)
            .map_err(|e| invalid("speech.providers", e))?;
        let s = &self.speech;
        let http_engines = !s.http_url.is_empty() || !s.tts_http_url.is_empty();
        if self.providers_use_http() && !http_engines {
            return Err(invalid(
                "speech.providers",
                "maps a provider to http, but neither speech.http_url nor speech.tts_http_url names an engine",
            ));
        }
        Ok(operator)
    }

    /// Whether some map sends a provider to the http engines (which then exist for it even
    /// with no language of their own).
    fn providers_use_http(&self) -> bool {
        let to_http = |entries: &[String]| {
            (entries.iter()).any(|e| {
                e.split_once('=')
                    .is_some_and(|(_, k)| k.trim().eq_ignore_ascii_case("http"))
            })
        };
        to_http(&self.speech.providers)
            || (self.accounts.iter()).any(|a| to_http(&a.speech_providers))
    }

    /// `speech.tts_http_*`: the operator's voice engine, for the languages it names.
    fn tts_http(&self) -> Result<Option<(HttpTtsConfig, Languages)>, ConfigError> {
        let s = &self.speech;
        let languages = Languages::parse(&s.tts_http_languages)
            .map_err(|e| invalid("speech.tts_http_languages", e))?;
        // Without languages of its own it still speaks for the providers mapped to it.
        let languages = match languages {
            Some(languages) => languages,
            None if !s.tts_http_url.is_empty() && self.providers_use_http() => {
                Languages::Only(Vec::new())
            }
            None => return Ok(None),
        };
        if s.tts_http_url.is_empty() {
            return Err(invalid(
                "speech.tts_http_url",
                "must name the speech service when speech.tts_http_languages is set",
            ));
        }
        let config = HttpTtsConfig {
            url: s.tts_http_url.clone(),
            model: s.tts_http_model.clone(),
            female: s.tts_http_voice_female.clone(),
            male: s.tts_http_voice_male.clone(),
            token: Some(s.tts_http_token.clone()).filter(|t| !t.is_empty()),
            timeout: Duration::from_secs(s.tts_http_timeout_secs.max(1)),
        };
        Ok(Some((config, languages)))
    }

    /// `speech.engine` and the http engine beside it: the engines, each with the languages
    /// it hears (the first that names a language hears it).
    fn speech_engines(&self) -> Result<Vec<EngineSetting>, ConfigError> {
        let s = &self.speech;
        let languages =
            Languages::parse(&s.http_languages).map_err(|e| invalid("speech.http_languages", e))?;
        let http = || -> Result<EngineChoice, ConfigError> {
            if s.http_url.is_empty() {
                return Err(invalid(
                    "speech.http_url",
                    "must name the transcription service when speech.engine is \"http\" or speech.http_languages is set",
                ));
            }
            Ok(EngineChoice::Http(HttpEngineConfig {
                url: s.http_url.clone(),
                model: s.http_model.clone(),
                token: Some(s.http_token.clone()).filter(|t| !t.is_empty()),
                timeout: Duration::from_secs(s.http_timeout_secs.max(1)),
            }))
        };
        match s.engine.as_str() {
            "local" => {
                let mut engines = vec![EngineSetting {
                    choice: EngineChoice::Local(s.dir.clone().into()),
                    languages: Languages::Only(vec!["en".into()]),
                }];
                // Without languages of its own it still hears for the providers mapped to it.
                let languages = languages.or_else(|| {
                    (!s.http_url.is_empty() && self.providers_use_http())
                        .then(|| Languages::Only(Vec::new()))
                });
                if let Some(languages) = languages {
                    engines.push(EngineSetting {
                        choice: http()?,
                        languages,
                    });
                }
                // The rest of the languages to the installed multilingual server, unless the
                // operator's engine was given languages of its own.
                if s.multilingual && s.http_languages.is_empty() {
                    engines.push(EngineSetting {
                        choice: EngineChoice::LocalMultilingual {
                            dir: s.dir.clone().into(),
                            config: HttpEngineConfig {
                                url: String::new(),
                                model: s.http_model.clone(),
                                token: None,
                                timeout: Duration::from_secs(s.http_timeout_secs.max(1)),
                            },
                        },
                        languages: Languages::Rest,
                    });
                }
                Ok(engines)
            }
            "http" => Ok(vec![EngineSetting {
                choice: http()?,
                languages: languages.unwrap_or(Languages::Rest),
            }]),
            other => Err(invalid(
                "speech.engine",
                format!("expected \"local\" or \"http\", got {other:?}"),
            )),
        }
    }
}

/// The machine's host name (the default node id); "local" if it cannot be read.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "local".into())
}

impl StreamsSection {
    fn validate(&self) -> Result<StreamConfig, ConfigError> {
        let at_least_one = |key: &str, v: u64| {
            if v == 0 {
                Err(invalid(format!("streams.{key}"), "must be at least 1"))
            } else {
                Ok(Duration::from_secs(v))
            }
        };
        if self.max_per_call == 0 {
            return Err(invalid("streams.max_per_call", "must be at least 1"));
        }
        if self.max_message_bytes < 1024 {
            return Err(invalid(
                "streams.max_message_bytes",
                "must be at least 1024 (a 20 ms media message is about 300 bytes)",
            ));
        }
        let ca_file = optional_file("streams.ca_file", &self.ca_file)?;
        Ok(StreamConfig {
            ping_interval: at_least_one("ping_interval_secs", self.ping_interval_secs)?,
            connect_timeout: at_least_one("connect_timeout_secs", self.connect_timeout_secs)?,
            max_buffer: at_least_one("max_buffer_secs", self.max_buffer_secs)?,
            max_message_bytes: self.max_message_bytes,
            max_per_call: self.max_per_call,
            ca_file,
        })
    }
}

fn parse_listen(spec: &str) -> Option<ListenSpec> {
    let (transport, addr) = spec.split_once(':')?;
    let transport = match transport.to_ascii_lowercase().as_str() {
        "udp" => Transport::Udp,
        "tcp" => Transport::Tcp,
        "tls" => Transport::Tls,
        "ws" => Transport::Ws,
        "wss" => Transport::Wss,
        _ => return None,
    };
    Some(ListenSpec {
        transport,
        addr: addr.parse().ok()?,
    })
}

fn parse_optional_ip(value: &str, key: &str) -> Result<Option<IpAddr>, ConfigError> {
    if value.is_empty() {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|_| {
        invalid(
            key,
            format!("expected an IP address or \"\", got {value:?}"),
        )
    })
}

fn parse_port_range(value: &str) -> Option<RangeInclusive<u16>> {
    let (lo, hi) = value.split_once('-')?;
    let (lo, hi): (u16, u16) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
    let first_even = lo + lo % 2;
    (lo > 0 && hi > first_even).then_some(lo..=hi)
}

/// A path the configuration may leave empty; when given, a file that exists.
pub(super) fn optional_file(key: &str, value: &str) -> Result<Option<PathBuf>, ConfigError> {
    if value.is_empty() {
        return Ok(None);
    }
    let path = PathBuf::from(value);
    if !path.is_file() {
        return Err(invalid(key, format!("{value} is not a readable file")));
    }
    Ok(Some(path))
}

impl HttpSection {
    /// The HTTPS listener, if one is configured: its address, certificate and key together.
    fn tls(&self) -> Result<Option<(SocketAddr, std::sync::Arc<tls::ServerConfig>)>, ConfigError> {
        let certificate = optional_file("http.tls_certificate", &self.tls_certificate)?;
        let key = optional_file("http.tls_key", &self.tls_key)?;
        if self.tls_listen.is_empty() {
            return Ok(None);
        }
        let addr: SocketAddr = self.tls_listen.parse().map_err(|_| {
            invalid(
                "http.tls_listen",
                format!("expected IP:PORT, got {:?}", self.tls_listen),
            )
        })?;
        let (Some(certificate), Some(key)) = (certificate, key) else {
            return Err(invalid(
                "http.tls_certificate",
                "an HTTPS listener needs tls_certificate and tls_key",
            ));
        };
        let identity = tls::Identity {
            certificate: &certificate,
            key: &key,
        };
        let config =
            tls::server_config(identity, None).map_err(|e| invalid("http.tls_certificate", e))?;
        Ok(Some((addr, config)))
    }
}

impl SipSection {
    /// What TLS listeners present (required when one is configured) and how peers other
    /// than trunks are checked.
    fn tls(&self, listen: &[ListenSpec], ca: Option<&Path>) -> Result<SipTls, ConfigError> {
        let certificate = optional_file("sip.tls_certificate", &self.tls_certificate)?;
        let key = optional_file("sip.tls_key", &self.tls_key)?;
        let client_ca = optional_file("sip.tls_client_ca", &self.tls_client_ca)?;
        let server = match (certificate, key) {
            (Some(certificate), Some(key)) => {
                let identity = tls::Identity {
                    certificate: &certificate,
                    key: &key,
                };
                let config = tls::server_config(identity, client_ca.as_deref())
                    .map_err(|e| invalid("sip.tls_certificate", e))?;
                Some(config)
            }
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "sip.tls_key",
                    "tls_certificate and tls_key go together",
                ));
            }
        };
        let secure = |t: Transport| matches!(t, Transport::Tls | Transport::Wss);
        if server.is_none() && listen.iter().any(|l| secure(l.transport)) {
            return Err(invalid(
                "sip.tls_certificate",
                "a tls: or wss: listener needs tls_certificate and tls_key",
            ));
        }
        let client = tls::client_config(ca, None).map_err(|e| invalid("sip.tls_ca_file", e))?;
        Ok(SipTls {
            server,
            client: Some(client),
        })
    }
}
