//! Media streams: a call's live audio sent to an application over a WebSocket, and (for a
//! bidirectional stream) the application's audio played into the call, with marks and
//! clears — Twilio's Media Streams, SignalWire's copy of them, and Telnyx's streaming.
//!
//! Provider-neutral: a dialect says where to connect, what to put on the handshake (its
//! signature, a token), which wire format and encoding, and gets the stream's lifecycle
//! back as [`StreamEvent`]s to turn into its own callbacks. Switchboard is the WebSocket
//! client; each stream is one task (`session`) that reads the call's audio from a tap of the
//! call core and feeds the application's audio into the call core's injection queue, so
//! nothing on the media path ever waits for a socket. The message formats (`wire`) and the
//! audio conversions (`audio`) are plain state machines, tested without sockets.

pub mod audio;
pub(crate) mod connect;
mod pacer;
mod session;
pub(crate) mod telnyx;
pub mod wire;

use crate::call::CallControl;
use audio::Encoding;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_media::TapTracks;
use tokio::sync::{mpsc, watch};
use wire::Wire;

/// Limits and timings of media streams (`[streams]` in the configuration).
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// A WebSocket ping is sent this often (some applications drop a socket that has been
    /// quiet for a minute, and pings keep proxies from timing it out).
    pub ping_interval: Duration,
    /// Connecting and the handshake must be done in this time.
    pub connect_timeout: Duration,
    /// Application audio queued ahead of what has played, at most; more is discarded and
    /// reported (Twilio's limit is ten minutes).
    pub max_buffer: Duration,
    /// Larger messages from an application end the stream (a protocol error).
    pub max_message_bytes: usize,
    /// Streams per call, at most (Twilio allows four); one of them may be bidirectional.
    pub max_per_call: usize,
    /// A PEM file of certificates trusted besides the system's roots (an application
    /// behind a private CA).
    pub ca_file: Option<PathBuf>,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(10),
            max_buffer: Duration::from_secs(600),
            max_message_bytes: 4 << 20,
            max_per_call: 4,
            ca_file: None,
        }
    }
}

/// What the application may send back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playback {
    /// Nothing: a one-way stream; audio from the application is refused.
    None,
    /// Raw audio in this encoding, played as it comes.
    Audio(Encoding),
    /// Whole MP3 files, one message each, played in order (Telnyx's `mp3` mode).
    Mp3,
}

/// Who hears the application's audio (Telnyx's `stream_bidirectional_target_legs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlaybackTo {
    /// The streamed call itself.
    #[default]
    Own,
    /// The call bridged with it, whichever that is when the audio comes (none: unheard).
    Peer,
    Both,
}

/// A stream to start.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// The stream's id, in its dialect's form (`MZ…` for Twilio, a UUID for Telnyx).
    pub id: String,
    pub call: String,
    pub url: String,
    /// A name to stop it by.
    pub name: Option<String>,
    pub tracks: TapTracks,
    /// The call's audio on the socket.
    pub encoding: Encoding,
    pub playback: Playback,
    /// Who hears what the application sends back.
    pub playback_to: PlaybackTo,
    pub wire: Wire,
    /// `customParameters` of the `start` message.
    pub parameters: Vec<(String, String)>,
    /// Headers on the handshake: the dialect's signature, a bearer token.
    pub headers: Vec<(String, String)>,
    /// The far end's digits are sent as `dtmf` messages.
    pub dtmf: bool,
    /// Switchboard's extension: transcripts of the streamed tracks are sent as
    /// `transcription` messages beside the audio (local recogniser; off unless asked).
    pub transcripts: bool,
    /// The networks the account's stream URL may reach.
    pub reach: crate::infra::egress::Reach,
}

impl StreamSpec {
    fn bidirectional(&self) -> bool {
        self.playback != Playback::None
    }
}

/// Why a stream failed, or what went wrong while it ran. Each dialect has its code for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Not a ws:// or wss:// URL.
    UrlScheme,
    /// Not a URL at all, or no host.
    MalformedUrl,
    ConnectTimeout,
    Refused,
    /// No route, no such host.
    Unreachable,
    Tls,
    /// The server did not accept the WebSocket upgrade.
    Handshake,
    /// The connection broke without a WebSocket close.
    BrokenPipe,
    /// A frame the WebSocket protocol (or our size limit) does not allow.
    Protocol,
    /// A message that cannot be decoded (binary, not UTF-8).
    MalformedMessage,
    /// A message that does not follow the stream protocol (once per stream).
    InvalidMessage,
    /// The application did not read fast enough: the call's audio was dropped.
    Congestion,
    /// The application sent more audio than the buffer holds: the rest was discarded.
    BufferOverflow,
}

impl Failure {
    pub const ALL: [Failure; 13] = [
        Self::UrlScheme,
        Self::MalformedUrl,
        Self::ConnectTimeout,
        Self::Refused,
        Self::Unreachable,
        Self::Tls,
        Self::Handshake,
        Self::BrokenPipe,
        Self::Protocol,
        Self::MalformedMessage,
        Self::InvalidMessage,
        Self::Congestion,
        Self::BufferOverflow,
    ];

    /// Its name in the call's stored events (its variant's name).
    pub fn name(self) -> String {
        format!("{self:?}")
    }

    /// The failure [`Failure::name`] named.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether the stream ends with it (otherwise it is a warning and the stream goes on).
    pub fn fatal(self) -> bool {
        !matches!(
            self,
            Self::MalformedMessage | Self::InvalidMessage | Self::Congestion | Self::BufferOverflow
        )
    }

    /// Its label in `switchboard_stream_errors_total{reason}`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::UrlScheme | Self::MalformedUrl => "url",
            Self::ConnectTimeout | Self::Refused | Self::Unreachable => "connect",
            Self::Tls => "tls",
            Self::Handshake => "handshake",
            Self::BrokenPipe => "closed",
            Self::Protocol => "protocol",
            Self::MalformedMessage | Self::InvalidMessage => "malformed",
            Self::Congestion => "congestion",
            Self::BufferOverflow => "buffer-overflow",
        }
    }
}

/// Why a stream that ran stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// The application closed the socket.
    ApplicationClosed,
    /// Asked to (`<Stop>`, the API).
    Requested,
    /// The call ended.
    CallEnded,
    /// A fatal failure (reported just before).
    Failed,
}

/// A stream's lifecycle, in order: `Started` (unless it failed to connect), any warnings,
/// then `Failed` and/or `Stopped`. The channel closes after the last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// Connected; `connected` and `start` were sent. Unix milliseconds.
    Started {
        at: i64,
    },
    /// Something went wrong; `failure.fatal()` tells whether the stream ends with it.
    Problem {
        failure: Failure,
        detail: String,
    },
    Stopped {
        at: i64,
        cause: StopCause,
    },
}

/// Why a stream cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error("the call has {0} streams already, the most it may have")]
    TooMany(usize),
    #[error("the call has a bidirectional stream already")]
    OneBidirectional,
    #[error("the call has a stream named {0:?} already")]
    NameTaken(String),
    #[error("{0}")]
    Unsupported(String),
}

/// A running stream, as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub id: String,
    pub call: String,
    pub name: Option<String>,
    pub bidirectional: bool,
}

struct Running {
    info: StreamInfo,
    stop: watch::Sender<bool>,
    /// Asked to stop and saying goodbye to its application (up to the close wait): no longer
    /// the call's stream for the API (a second stop finds nothing, its name is free), but
    /// still counted against the bound while it holds a socket.
    stopping: bool,
}

/// The media streams of every call.
pub struct MediaStreams {
    control: CallControl,
    /// Speech recognition for streams that ask for transcripts.
    speech: std::sync::OnceLock<Arc<crate::services::speech::Speech>>,
    config: StreamConfig,
    tls: Arc<rustls::ClientConfig>,
    running: Mutex<HashMap<String, Vec<Running>>>,
}

impl MediaStreams {
    /// Fails when the extra CA file cannot be read.
    pub fn new(control: CallControl, config: StreamConfig) -> Result<Arc<Self>, String> {
        let tls = crate::infra::tls::client_config(config.ca_file.as_deref(), None)?;
        Ok(Arc::new(Self {
            control,
            speech: std::sync::OnceLock::new(),
            config,
            tls,
            running: Mutex::default(),
        }))
    }

    /// Gives streams that ask for transcripts the recogniser (once, at start-up).
    pub fn use_speech(&self, speech: Arc<crate::services::speech::Speech>) {
        let _ = self.speech.set(speech);
    }

    /// Starts a stream (it connects in the background); its events follow on the receiver.
    pub fn start(
        self: &Arc<Self>,
        spec: StreamSpec,
    ) -> Result<mpsc::Receiver<StreamEvent>, StartError> {
        if !spec.encoding.supported()
            || matches!(spec.playback, Playback::Audio(e) if !e.supported())
        {
            return Err(StartError::Unsupported(format!(
                "no stream at {} Hz",
                spec.encoding.rate()
            )));
        }
        let (stop, stop_rx) = watch::channel(false);
        {
            let mut running = self.running.lock().expect("not poisoned");
            let streams = running.entry(spec.call.clone()).or_default();
            if streams.len() >= self.config.max_per_call {
                return Err(StartError::TooMany(streams.len()));
            }
            let live = || streams.iter().filter(|s| !s.stopping);
            if spec.bidirectional() && live().any(|s| s.info.bidirectional) {
                return Err(StartError::OneBidirectional);
            }
            if let Some(name) = &spec.name
                && live().any(|s| s.info.name.as_ref() == Some(name))
            {
                return Err(StartError::NameTaken(name.clone()));
            }
            streams.push(Running {
                info: StreamInfo {
                    id: spec.id.clone(),
                    call: spec.call.clone(),
                    name: spec.name.clone(),
                    bidirectional: spec.bidirectional(),
                },
                stop,
                stopping: false,
            });
        }
        let (events, rx) = mpsc::channel(16);
        let streams = self.clone();
        tokio::spawn(async move { session::run(&streams, spec, stop_rx, events).await });
        Ok(rx)
    }

    /// Stops a call's stream named by its id or its name; `None` when there is none running.
    pub fn stop(&self, call: &str, id_or_name: &str) -> Option<StreamInfo> {
        let mut running = self.running.lock().expect("not poisoned");
        let s = running.get_mut(call)?.iter_mut().find(|s| {
            !s.stopping && (s.info.id == id_or_name || s.info.name.as_deref() == Some(id_or_name))
        })?;
        s.stopping = true;
        let _ = s.stop.send(true);
        Some(s.info.clone())
    }

    /// The streams running on a call.
    pub fn of_call(&self, call: &str) -> Vec<StreamInfo> {
        let running = self.running.lock().expect("not poisoned");
        running
            .get(call)
            .map(|v| {
                v.iter()
                    .filter(|s| !s.stopping)
                    .map(|s| s.info.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Connects to an application's WebSocket as a stream would (the same CA, egress policy
    /// and time limits): for other services that talk to an application over one.
    pub(crate) async fn dial(
        &self,
        target: &connect::Target<'_>,
    ) -> Result<connect::Socket, (Failure, String)> {
        connect::connect(self, target).await
    }

    /// Takes a stream off the call's list: done before its last event is given, so that
    /// whoever waits for it may start another at once.
    fn forget(&self, call: &str, id: &str) {
        let mut running = self.running.lock().expect("not poisoned");
        if let Some(streams) = running.get_mut(call) {
            streams.retain(|s| s.info.id != id);
            if streams.is_empty() {
                running.remove(call);
            }
        }
    }
}

/// Unix milliseconds as ISO 8601 in UTC with milliseconds (`2026-11-22T10:00:00.000Z`).
pub fn iso8601(ms: i64) -> String {
    utc(ms, 3)
}

/// The same with microseconds (`2026-11-22T10:00:00.000000Z`), as Telnyx writes times.
pub fn iso8601_micros(ms: i64) -> String {
    utc(ms, 6)
}

/// ISO 8601 in UTC with `digits` (3 or 6) of fractional seconds.
fn utc(ms: i64, digits: usize) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fraction = if digits == 6 {
        format!("{:06}", t.microsecond())
    } else {
        format!("{:03}", t.millisecond())
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{fraction}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso8601_has_milliseconds_and_zulu() {
        assert_eq!(
            super::iso8601(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
    }
}
