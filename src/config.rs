//! Configuration: the embedded defaults (`config/switchboard.toml`), an optional file merged over
//! them, and `SWITCHBOARD_<SECTION>__<KEY>` environment overrides; then validation into the
//! types the crates use, with errors that name the key at fault.

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize};
use std::path::Path;
use switchboard_control::infra::secret::redact_url;

mod directory;
pub mod reference;
mod routing;
mod settings;

pub use directory::{AccountSection, ConnectionSection, NumberSection, TexmlApplicationSection};
pub use settings::Settings;

pub const DEFAULTS: &str = include_str!("../config/switchboard.toml");

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the server keeps what it writes and the models it reads: the database file,
    /// recordings, caches and speech models, whose relative paths are taken from here (never
    /// from the working directory). "" is the default: `$XDG_DATA_HOME/switchboard`, else
    /// `$HOME/.local/share/switchboard`, else `/var/lib/switchboard`. `--data-dir` (or
    /// `SWITCHBOARD_DATA_DIR`) takes its place.
    #[serde(default)]
    pub data_dir: String,
    pub sip: SipSection,
    pub media: MediaSection,
    pub http: HttpSection,
    pub storage: StorageSection,
    pub webhooks: WebhooksSection,
    pub streams: StreamsSection,
    pub speech: SpeechSection,
    pub egress: EgressSection,
    pub shutdown: ShutdownSection,
    pub cluster: ClusterSection,
    pub limits: LimitsSection,
    pub log: LogSection,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trunks: Vec<TrunkSection>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserSection>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteSection>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<AccountSection>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub numbers: Vec<NumberSection>,
    /// Telnyx Call Control applications.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<ConnectionSection>,
    /// Telnyx TeXML applications (connections too: numbers name them by `connection_id`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub texml_applications: Vec<TexmlApplicationSection>,
}

/// What each account may do unless its own `[[accounts]]` entry (or the admin API) says.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    pub account_max_calls: u32,
    pub account_calls_per_second: f64,
}

/// How the server logs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// "text" or "json".
    pub format: String,
    /// A tracing filter (`info`, `debug,switchboard_sip=trace`…).
    pub level: String,
}

/// Several nodes sharing one PostgreSQL database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    pub dead_after_secs: u64,
}

/// How the server stops.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSection {
    pub drain_secs: u64,
}

/// What applications' URLs may reach (link-local and metadata addresses never).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressSection {
    pub allow_loopback: bool,
    pub allow_private: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipSection {
    pub listen: Vec<String>,
    pub public_ip: String,
    pub realm: String,
    pub digest_algorithms: Vec<String>,
    pub digest_secret: String,
    pub digest_uri: String,
    pub ring_timeout_secs: u64,
    pub t1_ms: u64,
    pub session_expires_secs: u64,
    pub min_se_secs: u64,
    /// Calls' SIP messages are kept this long (0: none).
    pub trace_retention_secs: u64,
    pub user_agent: String,
    pub uri_allowlist: Vec<String>,
    pub tcp_max_connections: usize,
    pub tcp_max_per_ip: usize,
    pub tcp_idle_secs: u64,
    pub tcp_first_message_secs: u64,
    pub tcp_reserved: usize,
    pub tcp_max_per_login: usize,
    pub max_contacts: usize,
    pub max_registrations: usize,
    pub call_shards: u16,
    pub tcp_max_per_account: usize,
    pub rate_limit_per_source: f64,
    pub rate_limit_burst: f64,
    pub overload_delay_ms: u64,
    pub tls_certificate: String,
    pub tls_key: String,
    pub tls_ca_file: String,
    pub tls_client_ca: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSection {
    pub rtp_ports: String,
    pub rtp_timeout_secs: u64,
    pub bind_ip: String,
    pub threads: usize,
    pub learn_window_ms: u64,
    #[serde(default)]
    pub kernel_relay: bool,
    pub user_rtp_source: String,
    pub default_rtp_source: String,
    /// Registered phones' SRTP: "off", "optional" or "required".
    #[serde(default = "default_srtp")]
    pub user_srtp: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    pub listen: String,
    pub tls_listen: String,
    pub tls_certificate: String,
    pub tls_key: String,
    pub public_url: String,
    pub admin_token: String,
    pub rate_limit_per_sec: f64,
    pub rate_limit_burst: f64,
    pub header_timeout_secs: u64,
    pub request_timeout_secs: u64,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub websockets_max: usize,
    pub websockets_per_address: usize,
    pub websockets_per_account: usize,
    pub websockets_sign_in_secs: u64,
    pub auth_failure_burst: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    pub database_url: String,
    pub recordings_dir: String,
    pub cache_dir: String,
    /// The prompt caches on disk together, in MiB.
    pub cache_max_mb: u64,
    /// Rows the database refuses (while it answers others) are appended here.
    pub quarantine_file: String,
    /// CDR and event rows waiting for the database past which new calls are refused.
    pub max_rows_waiting: u64,
    pub node_id: String,
    /// Where the other nodes reach this node's API (empty: derived).
    pub node_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksSection {
    pub retry_max_secs: u64,
    pub give_up_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamsSection {
    pub ping_interval_secs: u64,
    pub connect_timeout_secs: u64,
    pub max_buffer_secs: u64,
    pub max_message_bytes: usize,
    pub max_per_call: usize,
    pub ca_file: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeechSection {
    pub dir: String,
    pub engine: String,
    pub http_url: String,
    pub http_model: String,
    pub http_token: String,
    pub http_timeout_secs: u64,
    pub http_languages: Vec<String>,
    pub multilingual: bool,
    pub tts_http_url: String,
    pub tts_http_model: String,
    pub tts_http_voice_female: String,
    pub tts_http_voice_male: String,
    pub tts_http_token: String,
    pub tts_http_timeout_secs: u64,
    pub tts_http_languages: Vec<String>,
    pub providers: Vec<String>,
    pub workers: usize,
    pub queue: usize,
    pub preload: bool,
    pub fetch: bool,
    pub fetch_command: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkSection {
    pub name: String,
    pub address: String,
    #[serde(default = "default_transport")]
    pub transport: String,
    #[serde(default)]
    pub inbound_sources: Vec<String>,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default = "default_rtp_source")]
    pub rtp_source: String,
    /// SRTP keyed in SDP (SDES): "off", "optional" or "required".
    #[serde(default = "default_srtp")]
    pub srtp: String,
    /// In our trust domain (RFC 3325): who a call is from and where it was diverted from
    /// (P-Asserted-Identity, Privacy, Diversion, History-Info) pass between trusted trunks.
    #[serde(default)]
    pub trusted: bool,
    /// The name a TLS trunk's certificate must carry; empty: the host of `address`.
    #[serde(default)]
    pub tls_name: String,
    /// Our client certificate (PEM chain and key) for a TLS trunk that asks for one.
    #[serde(default)]
    pub tls_certificate: String,
    #[serde(default)]
    pub tls_key: String,
    /// OPTIONS keep-alive toward the trunk every this many seconds; 0: never.
    #[serde(default)]
    pub options_interval_secs: u64,
}

fn default_srtp() -> String {
    "off".into()
}

fn default_rtp_source() -> String {
    "learn-ip".into()
}

fn default_transport() -> String {
    "udp".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSection {
    pub username: String,
    pub password: String,
    /// The account the phone belongs to: only its calls (`<Dial><Client>`, Telnyx `sip:`…)
    /// may ring it. Without one, only routes reach it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_sid: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    pub pattern: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunk: Option<String>,
    /// Trunks tried in order, each when the one before fails with 408 or 5xx or is down.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trunks: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// "dual" (caller left, callee right) or "mono": record the route's calls from answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// The route's calls are hung up this long after their answer (1 to 86,400 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit_secs: Option<u64>,
    /// "caller", "callee" or "both": whose speech has its noise suppressed on the route's
    /// calls, from the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppress_noise: Option<String>,
    /// A media stream of each answered call to a WebSocket, one way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<RouteStreamSection>,
    /// "caller", "callee" or "both": whose speech is transcribed, from the answer (each
    /// result a `transcript` event of the call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcribe: Option<String>,
    /// Whether a person or a machine answered, found from the callee's first words (a
    /// `machine-detection` event of the call).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub detect_machine: bool,
    /// The accounts (SIDs) whose calls may take the route; empty: every call. A call of
    /// another account passes it over for the next route that matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<String>,
}

/// `stream = { url = "wss://…", track = "caller", protocol = "twilio" }` on a route.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteStreamSection {
    /// `ws://` or `wss://`.
    pub url: String,
    /// "caller" (the default, Twilio's `inbound_track`), "callee" or "both".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<String>,
    /// "twilio" (Media Streams, the default) or "telnyx": the messages' format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// A configuration problem, with the key it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Load(#[from] Box<figment::Error>),
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

/// `$XDG_DATA_HOME/switchboard`, else `$HOME/.local/share/switchboard`, else
/// `/var/lib/switchboard` (a service without a home).
fn default_data_dir() -> std::path::PathBuf {
    let set = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(data) = set("XDG_DATA_HOME") {
        return std::path::PathBuf::from(data).join("switchboard");
    }
    match set("HOME") {
        Some(home) => std::path::PathBuf::from(home).join(".local/share/switchboard"),
        None => "/var/lib/switchboard".into(),
    }
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

impl Config {
    /// Defaults, then the file, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        if let Some(file) = file {
            if !file.exists() {
                return Err(invalid(
                    "--config",
                    format!("{} does not exist", file.display()),
                ));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        // Only SWITCHBOARD_<SECTION>__<KEY> names are configuration; other SWITCHBOARD_* variables
        // (a test harness's, say) are not keys.
        figment = figment.merge(
            Env::prefixed("SWITCHBOARD_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
        figment
            .extract()
            .map_err(|e| ConfigError::Load(Box::new(e)))
    }

    /// Settles the data directory (`given` on the command line, else the file's, else the
    /// default; a relative one is taken from the working directory now) and takes the data
    /// paths that are relative from it: the SQLite file, recordings, caches, the quarantine
    /// file and the speech models.
    pub fn settle_data_dir(&mut self, given: Option<&Path>) -> Result<(), ConfigError> {
        let dir = match given {
            Some(dir) => dir.to_path_buf(),
            None if !self.data_dir.is_empty() => self.data_dir.clone().into(),
            None => default_data_dir(),
        };
        let dir = if dir.is_relative() {
            let cwd = std::env::current_dir()
                .map_err(|e| invalid("data_dir", format!("no working directory: {e}")))?;
            cwd.join(dir)
        } else {
            dir
        };
        let under = |path: &mut String| {
            if !path.is_empty() && Path::new(path.as_str()).is_relative() {
                *path = dir.join(path.as_str()).display().to_string();
            }
        };
        under(&mut self.storage.recordings_dir);
        under(&mut self.storage.cache_dir);
        under(&mut self.storage.quarantine_file);
        under(&mut self.speech.dir);
        if let Some(rest) = self.storage.database_url.strip_prefix("sqlite://") {
            let (file, query) = rest.split_at(rest.find('?').unwrap_or(rest.len()));
            if !file.is_empty() && !file.starts_with(':') && Path::new(file).is_relative() {
                self.storage.database_url = format!("sqlite://{}{query}", dir.join(file).display());
            }
        }
        self.data_dir = dir.display().to_string();
        Ok(())
    }

    /// The configuration as TOML, its secrets (passwords, tokens, keys, credentials in URLs)
    /// replaced by `***`: what `check-config` prints may be pasted into a ticket.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(&self.redacted())
            .unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    fn redacted(&self) -> Config {
        let hide = |s: &mut String| {
            if !s.is_empty() {
                *s = "***".into();
            }
        };
        let url = |s: &mut String| *s = redact_url(s).into_owned();
        let mut c = self.clone();
        hide(&mut c.http.admin_token);
        hide(&mut c.sip.digest_secret);
        hide(&mut c.speech.http_token);
        url(&mut c.speech.http_url);
        url(&mut c.storage.database_url);
        c.trunks.iter_mut().for_each(|t| hide(&mut t.password));
        c.users.iter_mut().for_each(|u| hide(&mut u.password));
        for a in &mut c.accounts {
            hide(&mut a.auth_token);
            a.signing_key.iter_mut().for_each(hide);
            a.api_keys.iter_mut().for_each(|k| hide(&mut k.secret));
            a.telnyx_api_keys.iter_mut().for_each(hide);
            a.telnyx_private_key.iter_mut().for_each(hide);
        }
        for n in &mut c.connections {
            url(&mut n.webhook_event_url);
            n.webhook_event_failover_url.iter_mut().for_each(url);
        }
        for t in &mut c.texml_applications {
            url(&mut t.voice_url);
            t.voice_fallback_url.iter_mut().for_each(url);
            t.status_callback.iter_mut().for_each(url);
        }
        for n in &mut c.numbers {
            for u in [
                &mut n.voice_url,
                &mut n.voice_fallback_url,
                &mut n.status_callback,
            ] {
                u.iter_mut().for_each(url);
            }
        }
        c
    }
}

/// The redacted TOML: a Debug print ends up in logs.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_toml())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use switchboard_control::call::dial_plan::Target;
    use switchboard_control::services::speech::{EngineChoice, Languages};
    use switchboard_media::record::Channels;

    fn with(toml: &str) -> Result<Settings, ConfigError> {
        let figment = Figment::from(Toml::string(DEFAULTS)).merge(Toml::string(toml));
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Load(Box::new(e)))?;
        config.validate()
    }

    fn key_of(err: ConfigError) -> String {
        match err {
            ConfigError::Invalid { key, .. } => key,
            ConfigError::Load(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_are_valid() {
        let s = with("").unwrap();
        assert_eq!(s.listen.len(), 2);
        assert_eq!(s.rtp_ports, 20000..=29999);
        assert!(s.routing.trunks.is_empty());
    }

    #[test]
    fn the_example_is_valid() {
        let s = with(include_str!("../config/example.toml")).unwrap();
        assert_eq!(s.routing.trunks.len(), 2);
        let route = s.routing.route("+15551234", None).unwrap();
        assert_eq!(route.target, Target::Trunks(vec!["carrier-b".into()]));
        assert_eq!(route.features, Default::default());
    }

    /// The shipped node of several (config/cluster/) validates: PostgreSQL, its id and URL,
    /// the shared recordings directory, the dispatcher among its trunk's sources.
    #[test]
    fn the_cluster_node_example_is_valid() {
        let s = with(include_str!("../config/cluster/node-a.toml")).unwrap();
        assert!(s.database_url.starts_with("postgres://"));
        assert_eq!(
            (s.node_id.as_str(), s.node_url.as_str()),
            ("node-a", "http://192.0.2.21:8080")
        );
        assert_eq!(s.dead_after, std::time::Duration::from_secs(15));
        assert_eq!(
            s.recordings_dir,
            std::path::PathBuf::from("/srv/switchboard/recordings")
        );
        assert!(
            s.routing
                .trunk_for_source("192.0.2.10".parse().unwrap())
                .is_some()
        );
    }

    #[test]
    fn a_route_asks_for_a_time_limit_and_noise_suppression() {
        let route = |extra: &str| {
            with(&format!(
                "[[trunks]]\nname = \"a\"\naddress = \"127.0.0.1:5070\"\n[[routes]]\npattern = \"^1\"\ntrunk = \"a\"\n{extra}"
            ))
        };
        let s = route("time_limit_secs = 3600\nsuppress_noise = \"callee\"\nrecord = \"mono\"")
            .unwrap();
        let features = s.routing.route("1555", None).unwrap().features.clone();
        assert_eq!(features.time_limit, Some(Duration::from_secs(3600)));
        assert_eq!(features.suppress_noise, (false, true));
        assert_eq!(features.record, Some(Channels::Mono));
        for (extra, key) in [
            ("time_limit_secs = 0", "routes[0].time_limit_secs"),
            ("time_limit_secs = 86401", "routes[0].time_limit_secs"),
            ("suppress_noise = \"all\"", "routes[0].suppress_noise"),
        ] {
            assert_eq!(key_of(route(extra).unwrap_err()), key, "{extra}");
        }
    }

    #[test]
    fn a_route_asks_for_a_stream_transcripts_and_machine_detection() {
        use switchboard_control::call::dial_plan::{RouteStream, StreamProtocol};
        use switchboard_media::TapTracks;
        let route = |extra: &str| {
            with(&format!(
                "[[trunks]]\nname = \"a\"\naddress = \"127.0.0.1:5070\"\n[[routes]]\npattern = \"^1\"\ntrunk = \"a\"\n{extra}"
            ))
        };
        let s = route(
            "stream = { url = \"wss://bot.example/media\", track = \"both\" }\ntranscribe = \"callee\"\ndetect_machine = true",
        )
        .unwrap();
        let services = s
            .routing
            .route("1555", None)
            .unwrap()
            .features
            .services
            .clone();
        assert_eq!(
            services.stream,
            Some(RouteStream {
                url: "wss://bot.example/media".into(),
                tracks: TapTracks::Both,
                protocol: StreamProtocol::Twilio,
            })
        );
        assert_eq!(services.transcribe, Some(TapTracks::Outbound));
        assert!(services.detect_machine);
        let s = route("stream = { url = \"ws://10.0.0.1:9000/\", protocol = \"telnyx\" }").unwrap();
        let stream = s
            .routing
            .route("1", None)
            .unwrap()
            .features
            .services
            .stream
            .clone()
            .unwrap();
        assert_eq!(
            (stream.tracks, stream.protocol),
            (TapTracks::Inbound, StreamProtocol::Telnyx)
        );
        for (extra, key) in [
            (
                "stream = { url = \"https://bot.example/\" }",
                "routes[0].stream.url",
            ),
            ("stream = { url = \"wss://\" }", "routes[0].stream.url"),
            (
                "stream = { url = \"ws://a/\", track = \"all\" }",
                "routes[0].stream.track",
            ),
            (
                "stream = { url = \"ws://a/\", protocol = \"vonage\" }",
                "routes[0].stream.protocol",
            ),
            ("transcribe = \"everyone\"", "routes[0].transcribe"),
        ] {
            assert_eq!(key_of(route(extra).unwrap_err()), key, "{extra}");
        }
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(
            key_of(with("[log]\nformat = \"xml\"").unwrap_err()),
            "log.format"
        );
        assert_eq!(
            key_of(with("[log]\nlevel = \"info,[oops\"").unwrap_err()),
            "log.level"
        );
        assert_eq!(
            key_of(with("[sip]\nlisten = [\"udp:1.2.3.4:5060\", \"sctp:x\"]").unwrap_err()),
            "sip.listen[1]"
        );
        assert_eq!(
            key_of(with("[media]\nrtp_ports = \"9-3\"").unwrap_err()),
            "media.rtp_ports"
        );
        let recorded = "[[trunks]]\nname = \"a\"\naddress = \"127.0.0.1:5070\"\n[[routes]]\npattern = \"^1\"\ntrunk = \"a\"\nrecord = \"stereo\"";
        assert_eq!(key_of(with(recorded).unwrap_err()), "routes[0].record");
        let bad_route = "[[trunks]]\nname = \"a\"\naddress = \"127.0.0.1:5070\"\n[[routes]]\npattern = \"^1\"\ntrunk = \"b\"";
        assert_eq!(key_of(with(bad_route).unwrap_err()), "routes[0].trunk");
        let listed = "[[trunks]]\nname = \"a\"\naddress = \"127.0.0.1:5070\"\n[[routes]]\npattern = \"^1\"\n";
        let s = with(&format!("{listed}trunks = [\"a\", \"a\"]")).unwrap();
        assert_eq!(
            s.routing.routes[0].target,
            Target::Trunks(vec!["a".into(), "a".into()])
        );
        let unknown = format!("{listed}trunks = [\"a\", \"b\"]");
        assert_eq!(key_of(with(&unknown).unwrap_err()), "routes[0].trunks");
        let both = format!("{listed}trunk = \"a\"\ntrunks = [\"a\"]");
        assert_eq!(key_of(with(&both).unwrap_err()), "routes[0].trunks");
        let bad_cidr = "[[trunks]]\nname = \"a\"\naddress = \"127.0.0.1:5070\"\ninbound_sources = [\"10.0.0.0/33\"]";
        assert_eq!(
            key_of(with(bad_cidr).unwrap_err()),
            "trunks[0].inbound_sources[0]"
        );
        let bad_regex = "[[users]]\nusername = \"a\"\npassword = \"b\"\n[[routes]]\npattern = \"(\"\nuser = \"a\"";
        assert_eq!(key_of(with(bad_regex).unwrap_err()), "routes[0].pattern");
        // Unknown keys are typos, reported by name.
        assert!(key_of(with("[sip]\nlisten_on = []").unwrap_err()).contains("listen_on"));
        assert_eq!(
            key_of(with("[speech]\nengine = \"cloud\"").unwrap_err()),
            "speech.engine"
        );
        assert_eq!(
            key_of(with("[speech]\nengine = \"http\"").unwrap_err()),
            "speech.http_url"
        );
        let http = with("[speech]\nengine = \"http\"\nhttp_url = \"http://stt:9000/v1/audio/transcriptions\"\nhttp_token = \"k\"")
            .unwrap();
        let [engine] = &http.speech.engines[..] else {
            panic!("{:?}", http.speech.engines)
        };
        let EngineChoice::Http(c) = &engine.choice else {
            panic!("{engine:?}")
        };
        assert_eq!(
            (c.model.as_str(), c.token.as_deref(), &engine.languages),
            ("whisper-1", Some("k"), &Languages::Rest)
        );
        // Beside the local engine, for the languages it names; English stays local.
        let beside = with("[speech]\nhttp_url = \"http://stt:9000/v1/audio/transcriptions\"\nhttp_languages = [\"es\", \"fr\"]")
            .unwrap();
        let languages: Vec<&Languages> =
            beside.speech.engines.iter().map(|e| &e.languages).collect();
        assert_eq!(
            languages,
            [
                &Languages::Only(vec!["en".into()]),
                &Languages::Only(vec!["es".into(), "fr".into()])
            ]
        );
        assert_eq!(
            key_of(with("[speech]\nhttp_languages = [\"es\"]").unwrap_err()),
            "speech.http_url"
        );
        assert_eq!(
            key_of(
                with("[speech]\nhttp_url = \"http://stt/\"\nhttp_languages = [\"spanish\"]")
                    .unwrap_err()
            ),
            "speech.http_languages"
        );
        // Providers mapped to engines: an http one needs an http engine; with one, the
        // engine exists for them even without languages of its own.
        assert_eq!(
            key_of(with("[speech]\nproviders = [\"deepgram=http\"]").unwrap_err()),
            "speech.providers"
        );
        assert_eq!(
            key_of(with("[speech]\nproviders = [\"deepgram=cloud\"]").unwrap_err()),
            "speech.providers"
        );
        let mapped =
            with("[speech]\nhttp_url = \"http://stt/\"\nproviders = [\"Deepgram=http\"]").unwrap();
        assert_eq!(
            mapped.speech_providers.engine("deepgram"),
            Some(switchboard_control::services::speech::EngineKind::Http)
        );
        let http =
            (mapped.speech.engines.iter()).find(|e| matches!(e.choice, EngineChoice::Http(_)));
        assert_eq!(
            http.map(|e| &e.languages),
            Some(&Languages::Only(Vec::new()))
        );
        // With no languages of the operator's, the rest go to the installed multilingual
        // server (run by the server itself), unless turned off.
        let kinds = |c: &Settings| -> Vec<(&'static str, Languages)> {
            (c.speech.engines.iter())
                .map(|e| {
                    let kind = match e.choice {
                        EngineChoice::Local(_) => "local",
                        EngineChoice::Http(_) => "http",
                        EngineChoice::LocalMultilingual { .. } => "multilingual",
                    };
                    (kind, e.languages.clone())
                })
                .collect()
        };
        let english = Languages::Only(vec!["en".into()]);
        assert_eq!(
            kinds(&with("").unwrap()),
            [
                ("local", english.clone()),
                ("multilingual", Languages::Rest)
            ]
        );
        assert_eq!(
            kinds(&with("[speech]\nmultilingual = false").unwrap()),
            [("local", english.clone())]
        );
        assert_eq!(
            kinds(&beside),
            [
                ("local", english),
                ("http", Languages::Only(vec!["es".into(), "fr".into()]))
            ]
        );
    }

    /// A `tls:` listener needs a certificate and key; a TLS trunk's name defaults to its
    /// address's host, and a client certificate needs its key.
    #[test]
    fn tls_settings_are_checked() {
        let tls_listen = "[sip]\nlisten = [\"udp:127.0.0.1:5060\", \"tls:127.0.0.1:5061\"]\n";
        assert_eq!(key_of(with(tls_listen).unwrap_err()), "sip.tls_certificate");
        assert_eq!(
            key_of(with("[sip]\nmin_se_secs = 60").unwrap_err()),
            "sip.min_se_secs"
        );
        let short = "[sip]\nmin_se_secs = 600\nsession_expires_secs = 300";
        assert_eq!(key_of(with(short).unwrap_err()), "sip.session_expires_secs");
        let wss = "[sip]\nlisten = [\"udp:127.0.0.1:5060\", \"wss:127.0.0.1:5081\"]\n";
        assert_eq!(key_of(with(wss).unwrap_err()), "sip.tls_certificate");
        let ws = "[sip]\nlisten = [\"udp:127.0.0.1:5060\", \"ws:127.0.0.1:5080\"]\n";
        let ws = with(ws).unwrap();
        assert_eq!(
            ws.listen[1].transport,
            switchboard_sip::transport::Transport::Ws
        );
        let missing =
            format!("{tls_listen}tls_certificate = \"/nonexistent.pem\"\ntls_key = \"/x\"\n");
        assert_eq!(key_of(with(&missing).unwrap_err()), "sip.tls_certificate");
        let trunk = |extra: &str| {
            format!(
                "[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\n[[trunks]]\nname = \"a\"\n\
                 address = \"127.0.0.1:5061\"\ntransport = \"tls\"\n{extra}"
            )
        };
        // A trunk's transport needs a listener of its kind: its address goes in our Via and
        // Contact, and the trunk's requests come back to it.
        assert_eq!(key_of(with(&trunk("")).unwrap_err()), "trunks[0].transport");
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["sbc.example".into()]).unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, ca.cert.pem()).unwrap();
        std::fs::write(&key, ca.signing_key.serialize_pem()).unwrap();
        let listening = |extra: &str| {
            format!(
                "[sip]\nlisten = [\"udp:127.0.0.1:5060\", \"tls:127.0.0.1:5061\"]\n\
                 tls_certificate = \"{}\"\ntls_key = \"{}\"\n[[trunks]]\nname = \"a\"\n\
                 address = \"127.0.0.1:5061\"\ntransport = \"tls\"\n{extra}",
                cert.display(),
                key.display()
            )
        };
        let s = with(&listening("")).unwrap();
        let tls = s.routing.trunks[0].tls.as_ref().unwrap();
        assert_eq!(tls.name.to_str(), "127.0.0.1");
        let s = with(&listening("tls_name = \"sbc.example\"\n")).unwrap();
        assert_eq!(
            s.routing.trunks[0].tls.as_ref().unwrap().name.to_str(),
            "sbc.example"
        );
        let half = format!("tls_certificate = \"{}\"\n", cert.display());
        assert_eq!(
            key_of(with(&listening(&half)).unwrap_err()),
            "trunks[0].tls_key"
        );
        let bad_name = listening("tls_name = \"not a name\"\n");
        assert_eq!(key_of(with(&bad_name).unwrap_err()), "trunks[0].tls_name");
    }

    #[test]
    fn a_number_names_a_connection_of_its_own_account() {
        let accounts = "[[accounts]]\nsid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token = \"a\"\n\
            [[accounts]]\nsid = \"AC11111111111111111111111111111111\"\nauth_token = \"b\"\n\
            [[connections]]\nid = \"77\"\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\n\
            webhook_event_url = \"http://127.0.0.1:9/hooks\"\n";
        let number = |account: &str, connection: &str| {
            format!(
                "{accounts}[[numbers]]\nphone_number = \"+15550100\"\naccount_sid = \"{account}\"\n\
                 connection_id = \"{connection}\"\n"
            )
        };
        let s = with(&number("AC0123456789abcdef0123456789abcdef", "77")).unwrap();
        assert_eq!(s.directory.numbers[0].connection_id.as_deref(), Some("77"));
        for wrong in [
            number("AC11111111111111111111111111111111", "77"),
            number("AC0123456789abcdef0123456789abcdef", "78"),
        ] {
            assert_eq!(
                key_of(with(&wrong).unwrap_err()),
                "numbers[0].connection_id"
            );
        }
        let timeout = |secs: u64| {
            with(&format!(
                "{accounts}first_command_timeout = true\nfirst_command_timeout_secs = {secs}\n"
            ))
        };
        assert_eq!(
            timeout(5).unwrap().directory.connections[0].first_command_timeout(),
            Some(Duration::from_secs(5))
        );
        for bad in [0, 3601] {
            assert_eq!(
                key_of(timeout(bad).unwrap_err()),
                "connections[0].first_command_timeout_secs"
            );
        }
    }
}
