//! A leg's media streams in Telnyx's shape (`streaming_start`, dial's and answer's
//! `stream_url`): the neutral stream service runs them with Telnyx's wire format, and their
//! lifecycle becomes `streaming.started` / `streaming.stopped` / `streaming.failed`.

use super::Telnyx;
use super::leg::LegHandle;
use super::params::StreamParams;
use crate::call::ids::CallId;
use crate::services::stream::telnyx::Frames;
use crate::services::stream::{StartError, StopCause, StreamEvent, StreamSpec};
use serde_json::{Map, json};
use std::sync::Arc;
use tracing::warn;

/// Starts a media stream on the leg in Telnyx's format; its lifecycle becomes `streaming.*`
/// webhooks. Returns the stream's id.
pub(super) fn start(
    api: &Arc<Telnyx>,
    leg: &Arc<LegHandle>,
    params: StreamParams,
) -> Result<String, StartError> {
    let context = leg.context();
    let account = api.parts.directory.account(&leg.account);
    let id = CallId::random().uuid();
    let spec = StreamSpec {
        id: id.clone(),
        call: leg.call.clone(),
        url: params.url.clone(),
        name: None,
        tracks: params.tracks,
        encoding: params.encoding,
        playback: params.playback,
        playback_to: params.playback_to,
        wire: Frames {
            call: &leg.call,
            session: &context.session,
            account: &leg.account,
            from: &context.from,
            to: &context.to,
            client_state: context.client_state.clone(),
            auth_token: params.auth_token.clone(),
        }
        .wire(),
        parameters: params.parameters.clone(),
        headers: params
            .auth_token
            .iter()
            .map(|t| ("x-telnyx-streaming-auth-token".to_owned(), t.clone()))
            .collect(),
        dtmf: true,
        transcripts: params.transcripts,
        reach: account.map(|a| a.reach).unwrap_or_default(),
    };
    let mut lifecycle = api.parts.streams.start(spec)?;
    let (legs_api, leg, stream_id) = (api.clone(), leg.clone(), id.clone());
    api.legs.spawn(async move {
        let api = legs_api;
        while let Some(event) = lifecycle.recv().await {
            let mut extra = Map::new();
            extra.insert("stream_url".into(), json!(params.url));
            extra.insert("stream_id".into(), json!(stream_id));
            match event {
                StreamEvent::Started { at } => {
                    leg.send(&api, "streaming.started", at, extra).await;
                }
                StreamEvent::Problem { failure, detail } if failure.fatal() => {
                    failed(&api, &leg, &params, &stream_id, &detail).await;
                }
                StreamEvent::Problem { .. } => {}
                StreamEvent::Stopped { at, cause } => {
                    if cause != StopCause::Failed {
                        leg.send(&api, "streaming.stopped", at, extra).await;
                    }
                }
            }
        }
    });
    Ok(id)
}

pub(super) async fn failed(
    api: &Telnyx,
    leg: &LegHandle,
    params: &StreamParams,
    stream_id: &str,
    reason: &str,
) {
    warn!(call = %leg.call, %reason, "media stream failed");
    let track = match params.tracks {
        switchboard_media::TapTracks::Inbound => "inbound_track",
        switchboard_media::TapTracks::Outbound => "outbound_track",
        switchboard_media::TapTracks::Both => "both_tracks",
    };
    let mut extra = Map::new();
    extra.insert("failure_reason".into(), json!(reason));
    extra.insert("stream_id".into(), json!(stream_id));
    extra.insert("stream_type".into(), json!("websocket"));
    extra.insert(
        "stream_params".into(),
        json!({"stream_url": params.url, "track": track}),
    );
    leg.send(
        api,
        "streaming.failed",
        crate::infra::clock::now_ms(),
        extra,
    )
    .await;
}
