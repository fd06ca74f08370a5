//! What routes ask of the services beside the core: a routed call whose route names a media
//! stream, transcripts or machine detection is handed here by the call core at its answer
//! ([`Output::Serve`](crate::call::Output::Serve)), and this starts them on the call through
//! the same commands and services an application's call uses. What they find comes back to
//! the call as its events (`stream-*`, `transcript`, `machine-detection`): kept in its
//! history, shown to its observers (the live socket, `switchboard calls tail`).
//!
//! A routed call has no application and no webhook: nothing here waits for anyone, and each
//! service ends with the call (its taps close).

use crate::call::dial_plan::{RouteStream, StreamProtocol};
use crate::call::ids::CallId;
use crate::call::{CallCommand, CallControl, EventKind, ServeRoute};
use crate::services::machine_detection::detect;
use crate::services::speech::Speech;
use crate::services::stream::audio::Encoding;
use crate::services::stream::wire::Wire;
use crate::services::stream::{MediaStreams, Playback, StreamSpec};
use crate::services::transcription::{Transcription, TranscriptionSpec};
use std::sync::Arc;
use switchboard_media::amd::{AmdConfig, Verdict};
use switchboard_media::{TapId, TapTracks};
use tokio::sync::mpsc;
use tracing::{Instrument, info, info_span, warn};

/// Routed calls waiting to be served, at most. Serving one only starts tasks, so the queue is
/// empty but for a burst of answers.
const QUEUE: usize = 1024;

/// The services a route may ask for.
#[derive(Clone)]
pub struct RouteServices {
    control: CallControl,
    streams: Arc<MediaStreams>,
    speech: Arc<Speech>,
}

impl RouteServices {
    /// Starts serving routed calls: the core hands them over from now on.
    pub fn start(control: CallControl, streams: Arc<MediaStreams>, speech: Arc<Speech>) {
        let (tx, mut calls) = mpsc::channel(QUEUE);
        control.serve_routes(tx);
        let this = Self {
            control,
            streams,
            speech,
        };
        tokio::spawn(async move {
            while let Some(serve) = calls.recv().await {
                this.serve(serve);
            }
        });
    }

    fn serve(&self, serve: ServeRoute) {
        let span = info_span!("route services", call = %serve.call);
        let _entered = span.clone().entered();
        if let Some(stream) = &serve.services.stream {
            self.stream(&serve, stream);
        }
        if let Some(tracks) = serve.services.transcribe {
            let this = self.clone();
            let call = serve.call.clone();
            tokio::spawn(
                async move { this.transcribe(&call, tracks).await }.instrument(span.clone()),
            );
        }
        if serve.services.detect_machine {
            let this = self.clone();
            let call = serve.call.clone();
            tokio::spawn(async move { this.detect_machine(&call).await }.instrument(span));
        }
    }

    /// A one-way stream of the call's audio in the protocol the route names. There is no
    /// account's secret to sign its handshake with (a route's call may have no account), so
    /// none is signed.
    fn stream(&self, serve: &ServeRoute, stream: &RouteStream) {
        let account = serve.account.as_deref().unwrap_or_default();
        let (id, wire) = match stream.protocol {
            StreamProtocol::Twilio => (
                crate::infra::sid::new_sid("MZ"),
                Wire::Twilio {
                    account_sid: account.to_owned(),
                    call_sid: serve.call.clone(),
                    signalwire: false,
                },
            ),
            StreamProtocol::Telnyx => (
                CallId::random().uuid(),
                crate::services::stream::telnyx::Frames {
                    call: &serve.call,
                    session: &serve.call,
                    account,
                    from: &serve.from,
                    to: &serve.to,
                    client_state: None,
                    auth_token: None,
                }
                .wire(),
            ),
        };
        let spec = StreamSpec {
            id,
            call: serve.call.clone(),
            url: stream.url.clone(),
            name: None,
            tracks: stream.tracks,
            encoding: Encoding::Pcmu,
            playback: Playback::None,
            playback_to: Default::default(),
            wire,
            parameters: Vec::new(),
            headers: Vec::new(),
            dtmf: false,
            transcripts: false,
            // The operator wrote the URL: it may be on their own network.
            reach: Default::default(),
        };
        match self.streams.start(spec) {
            // Its lifecycle is reported on the call by the stream itself.
            Ok(mut lifecycle) => {
                tokio::spawn(async move { while lifecycle.recv().await.is_some() {} });
                info!(url = %stream.url, "the route streams the call");
            }
            Err(e) => warn!(error = %e, "the route's stream did not start"),
        }
    }

    async fn transcribe(&self, call: &str, tracks: TapTracks) {
        let spec = TranscriptionSpec {
            engine: None,
            language: None,
            tracks,
            interim: true,
            hints: Vec::new(),
        };
        // Each result is reported on the call by the transcription itself; this only waits
        // for the last.
        match Transcription::start(&self.control, &self.speech, call, spec).await {
            Ok(transcription) => {
                info!("the route transcribes the call");
                let (_taps, mut results) = transcription.into_parts();
                while results.recv().await.is_some() {}
            }
            Err(e) => warn!(error = %e, "the route's transcription did not start"),
        }
    }

    /// Listens to what the callee says (the caller's outbound track) until the detector is
    /// sure, and reports its verdict.
    async fn detect_machine(&self, call: &str) {
        let (tx, frames) = mpsc::channel(64);
        let tap = TapId::next();
        let start = CallCommand::TapStart {
            tap,
            tracks: TapTracks::Outbound,
            tx: tx.into(),
        };
        if let Err(e) = self.control.command(call, start).await {
            warn!(error = %e, "machine detection did not start");
            return;
        }
        let config = AmdConfig::default();
        let mut verdicts = detect(frames, config);
        let mut last = None;
        while let Some(detected) = verdicts.recv().await {
            let done = detected.is_last(&config);
            last = Some(detected);
            if done {
                break;
            }
        }
        let _ = self.control.command(call, CallCommand::TapStop(tap)).await;
        // No verdict: the call ended first.
        let Some(detected) = last else { return };
        let result = match detected.verdict {
            Verdict::Human => "human",
            Verdict::Machine | Verdict::MachineEnd(_) => "machine",
            Verdict::Fax => "fax",
            Verdict::Unknown => "unknown",
        };
        info!(result, "machine detection");
        let after_ms = u64::try_from(detected.after.as_millis()).unwrap_or(u64::MAX);
        let report = EventKind::MachineDetection { result, after_ms };
        let _ = self
            .control
            .command(call, CallCommand::Report(report))
            .await;
    }
}
