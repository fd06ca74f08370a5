//! Media streams of the markup interpreter (Twilio's, SignalWire's, TeXML's): `<Start><Stream>`,
//! `<Connect><Stream>` (and a bare `<Stream>`), `<Stop><Stream>` and the REST Streams
//! resource all start and stop streams of the neutral [`crate::services::stream`] module. What is
//! Twilio's is here: `MZ…` SIDs, the signature on the handshake, SignalWire's `codec` and
//! bearer token, the status callbacks (`stream-started`, `stream-stopped`, `stream-error`)
//! and Notifications with the 319xx codes. A TeXML document's stream speaks Telnyx's
//! protocol instead (UUID stream ids, Telnyx's frames and bidirectional modes) and its
//! callbacks are made in the TeXML dialect.

use super::{
    Call, Dialect, Fetch, Flow, Notice, Session, VoiceApps, http_method, resolve, stream_status,
};
use crate::call::ids::CallId;
use crate::infra::accounts::{Account, HttpMethod};
use crate::infra::webhook::signature::{Algorithm, sign};
use crate::markup::twiml::{self, Method};
use crate::services::stream::audio::Encoding;
use crate::services::stream::telnyx as streaming;
use crate::services::stream::wire::Wire;
use crate::services::stream::{Failure, Playback, StartError, StreamEvent, StreamSpec};
use std::sync::Arc;
use switchboard_media::TapTracks;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

/// A stream as a TwiML `<Stream>` or a REST create asks for it.
#[derive(Debug, Clone)]
pub struct StreamRequest {
    pub url: String,
    pub name: Option<String>,
    pub track: TapTracks,
    /// `<Connect>`: the application talks back.
    pub bidirectional: bool,
    pub parameters: Vec<(String, String)>,
    pub status_callback: Option<String>,
    pub status_callback_method: HttpMethod,
    /// SignalWire's `codec`.
    pub codec: Option<String>,
    /// SignalWire's `authBearerToken`.
    pub auth_bearer_token: Option<String>,
    /// TeXML's `bidirectionalMode`, `bidirectionalCodec`, `bidirectionalSamplingRate`.
    pub bidirectional_mode: Option<String>,
    pub bidirectional_codec: Option<String>,
    pub bidirectional_sampling_rate: Option<String>,
    /// Transcripts beside the audio (Switchboard's extension).
    pub transcripts: bool,
}

/// How a stream ended, for a `<Connect>` waiting on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// It connected; otherwise it failed to.
    pub started: bool,
    pub failure: Option<Failure>,
}

/// Twilio's code for each failure (its error dictionary's 319xx).
pub fn twilio_code(f: Failure) -> u32 {
    match f {
        Failure::ConnectTimeout => 31901,
        Failure::Refused => 31902,
        Failure::BrokenPipe => 31903,
        Failure::Unreachable => 31904,
        Failure::Tls => 31910,
        Failure::Handshake => 31920,
        Failure::UrlScheme => 31922,
        Failure::MalformedUrl => 31923,
        Failure::Protocol => 31924,
        Failure::Congestion => 31930,
        Failure::BufferOverflow => 31931,
        Failure::MalformedMessage => 31950,
        Failure::InvalidMessage => 31951,
    }
}

/// The code of a stream that could not start: the call's quota of streams (31960), or an
/// unusable attribute (12200, a schema error).
pub fn start_error_code(e: &StartError) -> u32 {
    match e {
        StartError::TooMany(_) | StartError::OneBidirectional | StartError::NameTaken(_) => 31960,
        StartError::Unsupported(_) => 12200,
    }
}

/// SignalWire's `codec` (`PCMU@8000h` by default, `L16@16000h`, `L16@24000h`); PCMA and
/// L16 at 8 kHz too. SignalWire's applications read its L16 as little-endian (they hand it
/// to speech engines as PCM16LE).
fn encoding(codec: Option<&str>) -> Result<Encoding, StartError> {
    let l16 = |rate| Encoding::L16 {
        rate,
        big_endian: false,
    };
    Ok(match codec.map(str::trim) {
        None | Some("" | "PCMU" | "PCMU@8000h") => Encoding::Pcmu,
        Some("PCMA" | "PCMA@8000h") => Encoding::Pcma,
        Some("L16" | "L16@8000h") => l16(8000),
        Some("L16@16000h") => l16(16000),
        Some("L16@24000h") => l16(24000),
        Some(other) => {
            return Err(StartError::Unsupported(format!(
                "<Stream codec> {other:?} is not PCMU@8000h, L16@16000h or L16@24000h"
            )));
        }
    })
}

/// A stream URL of a document: a relative one resolves against the document and takes the
/// ws(s) scheme matching its http(s); an absolute one is taken as it is (an http URL then
/// fails as Twilio's does, 31922). One that does not resolve is passed on as it is, to fail
/// as a malformed URL in the stream's own report.
pub(super) fn stream_url(base: &str, url: &str) -> String {
    if url::Url::parse(url).is_ok() {
        return url.to_owned();
    }
    match resolve(base, url) {
        Ok(u) if u.starts_with("https:") => format!("wss:{}", &u["https:".len()..]),
        Ok(u) if u.starts_with("http:") => format!("ws:{}", &u["http:".len()..]),
        Ok(u) => u,
        Err(_) => url.to_owned(),
    }
}

/// A TeXML `<Stream>`: Telnyx's media-stream protocol (reference §3), its `codec`, and its
/// bidirectional modes as Call Control's `stream_*` parameters have them (`mp3` by default,
/// `rtp` in `bidirectionalCodec` at `bidirectionalSamplingRate`).
fn texml_spec(
    account: &Account,
    call: &Call,
    req: &StreamRequest,
) -> Result<StreamSpec, StartError> {
    texml_spec_of(account, (&call.sid, &call.from, &call.to), req)
}

/// [`texml_spec`] of the call with this SID, caller and callee.
fn texml_spec_of(
    account: &Account,
    (call, from, to): (&str, &str, &str),
    req: &StreamRequest,
) -> Result<StreamSpec, StartError> {
    let rate = match req.bidirectional_sampling_rate.as_deref() {
        None => 8000,
        Some(r) => match r.parse::<u32>() {
            Ok(r @ (8000 | 16000 | 24000)) => r,
            _ => {
                return Err(StartError::Unsupported(format!(
                    "<Stream bidirectionalSamplingRate> {r:?} is not 8000, 16000 or 24000"
                )));
            }
        },
    };
    let codec = |attr: &str, name: Option<&str>| {
        streaming::encoding(name, rate).ok_or_else(|| {
            StartError::Unsupported(format!(
                "<Stream {attr}> {:?} is not PCMU, PCMA or L16",
                name.unwrap_or_default()
            ))
        })
    };
    let own = match req.codec.as_deref() {
        None | Some("default") => None,
        Some(c) => Some(codec("codec", Some(c))?),
    };
    let rtp = match req.bidirectional_mode.as_deref() {
        None | Some("mp3") => None,
        Some("rtp") => Some(codec(
            "bidirectionalCodec",
            req.bidirectional_codec.as_deref(),
        )?),
        Some(other) => {
            return Err(StartError::Unsupported(format!(
                "<Stream bidirectionalMode> {other:?} is not mp3 or rtp"
            )));
        }
    };
    let (encoding, playback) = streaming::formats(own, rtp);
    Ok(StreamSpec {
        id: CallId::random().uuid(),
        call: call.to_owned(),
        url: req.url.clone(),
        name: req.name.clone(),
        tracks: req.track,
        encoding,
        playback,
        playback_to: Default::default(),
        wire: streaming::Frames {
            call,
            session: call,
            account: &account.sid,
            from,
            to,
            client_state: None,
            auth_token: None,
        }
        .wire(),
        parameters: req.parameters.clone(),
        headers: Vec::new(),
        dtmf: true,
        transcripts: req.transcripts,
        reach: account.reach,
    })
}

impl VoiceApps {
    /// Starts a stream in TeXML's terms (Telnyx's protocol, its callbacks in `dialect`) on a
    /// live call with this SID, caller and callee: TeXML's REST API's streams.
    pub async fn start_texml_stream(
        self: &Arc<Self>,
        account: &Account,
        call: (&str, &str, &str),
        req: StreamRequest,
        dialect: &Dialect,
    ) -> Result<(String, oneshot::Receiver<Ended>), StartError> {
        let spec = texml_spec_of(account, call, &req)?;
        self.run_stream(account, spec, req, dialect.clone()).await
    }

    /// Starts a stream (Twilio's protocol) on a live call; returns its SID, and how it ends.
    pub async fn start_stream(
        self: &Arc<Self>,
        account: &Account,
        call: &str,
        req: StreamRequest,
    ) -> Result<(String, oneshot::Receiver<Ended>), StartError> {
        let encoding = encoding(req.codec.as_deref())?;
        let sid = crate::infra::sid::new_sid("MZ");
        let signalwire = account.signing_key.is_some() || account.project_id.is_some();
        // As on webhooks: Twilio signs the URL alone (no parameters) with the auth token;
        // SignalWire with its signing key, under both header names.
        let key = account
            .signing_key
            .as_deref()
            .unwrap_or(&account.auth_token);
        let signature = sign(key, &req.url, &[], Algorithm::HmacSha1);
        let mut headers = vec![("X-Twilio-Signature".to_owned(), signature.clone())];
        if signalwire {
            headers.push(("X-SignalWire-Signature".to_owned(), signature));
        }
        if let Some(token) = &req.auth_bearer_token {
            headers.push(("Authorization".to_owned(), format!("Bearer {token}")));
        }
        let spec = StreamSpec {
            id: sid.clone(),
            call: call.to_owned(),
            url: req.url.clone(),
            name: req.name.clone(),
            tracks: req.track,
            encoding,
            playback: if req.bidirectional {
                Playback::Audio(encoding)
            } else {
                Playback::None
            },
            playback_to: Default::default(),
            wire: Wire::Twilio {
                account_sid: account.api_sid().to_owned(),
                call_sid: call.to_owned(),
                signalwire,
            },
            parameters: req.parameters.clone(),
            headers,
            // Twilio sends the caller's digits on bidirectional streams only.
            dtmf: req.bidirectional,
            transcripts: req.transcripts,
            reach: account.reach,
        };
        self.run_stream(account, spec, req, Dialect::Twilio).await
    }

    /// Starts the stream `spec` asks for; its lifecycle becomes the callbacks `req` asks for,
    /// made in `dialect` (through a subscription stored before it starts), and Notifications.
    async fn run_stream(
        self: &Arc<Self>,
        account: &Account,
        spec: StreamSpec,
        req: StreamRequest,
        dialect: Dialect,
    ) -> Result<(String, oneshot::Receiver<Ended>), StartError> {
        let (sid, call) = (spec.id.clone(), spec.call.clone());
        let callback = (req.status_callback.clone()).map(|url| (url, req.status_callback_method));
        let asked = callback.and_then(|callback| {
            stream_status::subscription_request(
                account,
                &call,
                &sid,
                req.name.as_deref(),
                callback,
                &dialect,
            )
        });
        let notifier = match asked {
            Some(asked) => Some(self.subscriptions.subscribe(asked).await),
            None => None,
        };
        let events = match self.streams.start(spec) {
            Ok(events) => events,
            Err(e) => {
                if let Some(notifier) = notifier {
                    notifier.close().await;
                }
                return Err(e);
            }
        };
        if let Some(notifier) = notifier {
            self.followed.add(&sid, notifier);
        }
        let (ended_tx, ended) = oneshot::channel();
        let notifier = StreamNotifier {
            apps: self.clone(),
            account: account.clone(),
            call,
            url: req.url,
        };
        self.sessions.spawn(notifier.run(events, ended_tx));
        Ok((sid, ended))
    }
}

/// Turns a stream's problems into the application's Notifications, and tells a `<Connect>`
/// how it ended. (Its status callbacks are made from the call's events: stream_status.)
struct StreamNotifier {
    apps: Arc<VoiceApps>,
    account: Account,
    call: String,
    url: String,
}

impl StreamNotifier {
    async fn run(self, mut events: mpsc::Receiver<StreamEvent>, ended: oneshot::Sender<Ended>) {
        let mut outcome = Ended {
            started: false,
            failure: None,
        };
        while let Some(event) = events.recv().await {
            match event {
                StreamEvent::Started { .. } => outcome.started = true,
                StreamEvent::Problem { failure, detail } => {
                    let notice = Notice {
                        code: twilio_code(failure),
                        warning: !failure.fatal(),
                        message: &detail,
                        url: &self.url,
                        method: HttpMethod::Get,
                    };
                    self.apps.notify(&self.account, &self.call, notice).await;
                    if failure.fatal() {
                        outcome.failure = Some(failure);
                    }
                }
                StreamEvent::Stopped { .. } => {}
            }
        }
        let _ = ended.send(outcome);
    }
}

impl StreamRequest {
    fn of(s: &twiml::Stream, base: &str, bidirectional: bool) -> Self {
        Self {
            url: stream_url(base, &s.url),
            name: s.name.clone(),
            track: s.track,
            bidirectional,
            parameters: s.parameters.clone(),
            status_callback: s
                .status_callback
                .as_deref()
                .and_then(|u| resolve(base, u).ok()),
            status_callback_method: http_method(s.status_callback_method),
            codec: s.codec.clone(),
            auth_bearer_token: s.auth_bearer_token.clone(),
            bidirectional_mode: s.bidirectional_mode.clone(),
            bidirectional_codec: s.bidirectional_codec.clone(),
            bidirectional_sampling_rate: s.bidirectional_sampling_rate.clone(),
            transcripts: s.transcripts,
        }
    }
}

impl Session {
    /// `<Start><Stream>`s: each starts (in the background) and the document goes on.
    pub(super) async fn start_streams(
        &mut self,
        streams: &[twiml::Stream],
        base: &str,
    ) -> Result<(), Flow> {
        self.answer().await?;
        for s in streams {
            let req = StreamRequest::of(s, base, false);
            if let Err(e) = self.start_stream(req).await {
                self.stream_refused(&e, &s.url).await;
            }
        }
        Ok(())
    }

    /// Starts a stream of this call in the session's dialect.
    async fn start_stream(
        &self,
        req: StreamRequest,
    ) -> Result<(String, oneshot::Receiver<Ended>), StartError> {
        match &self.app.dialect {
            Dialect::Twilio => {
                (self.apps)
                    .start_stream(&self.account, &self.call.sid, req)
                    .await
            }
            texml @ Dialect::Texml { .. } => {
                let spec = texml_spec(&self.account, &self.call, &req)?;
                (self.apps)
                    .run_stream(&self.account, spec, req, texml.clone())
                    .await
            }
        }
    }

    /// `<Connect><Stream>`: the document waits while the application talks with the caller;
    /// when the socket closes (or never opened), the `<Connect action>` is fetched, or the
    /// next verb runs.
    pub(super) async fn connect_stream(
        &mut self,
        stream: &twiml::Stream,
        action: Option<&str>,
        method: Method,
        base: &str,
    ) -> Result<Option<Fetch>, Flow> {
        self.answer().await?;
        let req = StreamRequest::of(stream, base, true);
        match self.start_stream(req).await {
            Ok((sid, mut ended)) => {
                let outcome = loop {
                    tokio::select! {
                        outcome = &mut ended => break outcome.ok(),
                        received = self.receive() => {
                            if let Err(flow) = self.take(received).await {
                                // The call ended (its stream stops with it) or another
                                // document takes over: this one ends its stream.
                                self.apps.streams.stop(&self.call.sid, &sid);
                                return Err(flow);
                            }
                        }
                    }
                };
                info!(stream = %sid, ?outcome, "<Connect><Stream> ended");
            }
            Err(e) => self.stream_refused(&e, &stream.url).await,
        }
        Ok(match action {
            Some(action) => Some(Fetch::url(
                resolve(base, action).map_err(Flow::Failed)?,
                http_method(method),
                Vec::new(),
            )),
            None => None,
        })
    }

    /// `<Stop><Stream name>`: the named streams stop (unknown names are ignored).
    pub(super) fn stop_streams(&self, names: &[String]) {
        for name in names {
            if self.apps.streams.stop(&self.call.sid, name).is_none() {
                warn!(%name, "<Stop><Stream>: no such stream");
            }
        }
    }

    async fn stream_refused(&self, e: &StartError, url: &str) {
        warn!(error = %e, "stream not started");
        let message = e.to_string();
        let notice = Notice {
            code: start_error_code(e),
            warning: false,
            message: &message,
            url,
            method: HttpMethod::Get,
        };
        self.apps
            .notify(&self.account, &self.call.sid, notice)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_stream_urls_take_the_websocket_scheme_of_their_document() {
        assert_eq!(
            stream_url("https://app.example.com/voice", "/media"),
            "wss://app.example.com/media"
        );
        assert_eq!(
            stream_url("http://127.0.0.1:9000/voice", "media"),
            "ws://127.0.0.1:9000/media"
        );
        assert_eq!(stream_url("", "wss://x/y"), "wss://x/y");
        assert_eq!(stream_url("https://a/voice", "https://b/m"), "https://b/m");
        assert_eq!(stream_url("", "/nowhere"), "/nowhere");
    }

    #[test]
    fn signalwire_codecs() {
        assert_eq!(encoding(None), Ok(Encoding::Pcmu));
        assert_eq!(
            encoding(Some("L16@24000h")),
            Ok(Encoding::L16 {
                rate: 24000,
                big_endian: false
            })
        );
        assert!(encoding(Some("OPUS@48000h")).is_err());
    }

    #[test]
    fn texml_streams_take_telnyxs_formats_and_refuse_others() {
        let account = Account::for_test("AC0123456789abcdef0123456789abcdef");
        let call = Call {
            sid: "CA00000000000000000000000000000001".into(),
            from: "+15550001".into(),
            to: "+15550002".into(),
            direction: "inbound",
            extra: Vec::new(),
        };
        let req = |mode: Option<&str>, codec: Option<&str>, rate: Option<&str>| StreamRequest {
            url: "wss://bot/media".into(),
            name: None,
            track: TapTracks::Both,
            bidirectional: true,
            parameters: Vec::new(),
            status_callback: None,
            status_callback_method: HttpMethod::Post,
            codec: None,
            auth_bearer_token: None,
            bidirectional_mode: mode.map(str::to_owned),
            bidirectional_codec: codec.map(str::to_owned),
            bidirectional_sampling_rate: rate.map(str::to_owned),
            transcripts: false,
        };
        let spec = texml_spec(&account, &call, &req(None, None, None)).unwrap();
        assert_eq!(
            (spec.encoding, spec.playback),
            (Encoding::Pcmu, Playback::Mp3)
        );
        assert!(matches!(spec.wire, Wire::Telnyx { ref call_control_id, .. }
            if call_control_id.starts_with("v3:")));
        let l16 = Encoding::L16 {
            rate: 16000,
            big_endian: true,
        };
        let spec = texml_spec(
            &account,
            &call,
            &req(Some("rtp"), Some("L16"), Some("16000")),
        );
        let spec = spec.unwrap();
        assert_eq!((spec.encoding, spec.playback), (l16, Playback::Audio(l16)));
        for bad in [
            req(Some("websocket"), None, None),
            req(Some("rtp"), Some("OPUS"), None),
            req(Some("rtp"), None, Some("44100")),
            req(Some("rtp"), None, Some("-1")),
        ] {
            assert!(matches!(
                texml_spec(&account, &call, &bad),
                Err(StartError::Unsupported(_))
            ));
        }
    }
}
