//! `transcription_start` / `transcription_stop`: the leg's speech as text, through the
//! neutral transcription ([`crate::services::transcription`]) and the local recogniser, reported as
//! `call.transcription` webhooks (`transcription_data`: `transcript`, `confidence`,
//! `is_final`, `transcription_track`), also started at the answer by dial's and answer's
//! `transcription: true`. The engine names Telnyx offers (Google, Telnyx,
//! Deepgram, Azure…) are accepted; every one is the local engine here.

use super::Telnyx;
use super::errors::ApiError;
use super::leg::{Leg, LegHandle};
use super::params::Params;
use crate::services::speech::Speech;
use crate::services::transcription::{Started, TranscriptionSpec};
use serde_json::{Map, json};
use std::sync::Arc;
use switchboard_media::TapTracks;

/// What `transcription_start` (or dial's and answer's `transcription_config`) asks for.
/// What `p` asks to transcribe, for `account`: its `transcription_engine` is served by the
/// engine the operator (or the account) maps it to, when one does.
pub(super) fn spec(
    p: &Params,
    speech: &Speech,
    account: &str,
) -> Result<TranscriptionSpec, ApiError> {
    let tracks = match p.choice(
        "transcription_tracks",
        &["inbound", "outbound", "both"],
        "inbound",
    )? {
        "outbound" => TapTracks::Outbound,
        "both" => TapTracks::Both,
        _ => TapTracks::Inbound,
    };
    let engine = (p.str("transcription_engine")?)
        .and_then(|e| speech.engine_for(account, super::params::transcription_provider(e)));
    let config = p.object("transcription_engine_config")?;
    let interim = match &config {
        Some(c) if c.has("interim_results") => c.bool("interim_results")?,
        _ => p.bool("interim_results")?,
    }
    .unwrap_or(false);
    let hints = config
        .as_ref()
        .and_then(|c| c.array("hints"))
        .map(|h| {
            h.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .take(500)
                .collect()
        })
        .unwrap_or_default();
    // The caller's language: the engine config's (`language`, as Google's and Telnyx's
    // engines take it), or the command's own.
    let language = match &config {
        Some(c) if c.has("language") => c.short("language", 35)?,
        _ => p.short("language", 35)?,
    };
    Ok(TranscriptionSpec {
        engine,
        tracks,
        interim,
        hints,
        language: language.map(str::to_owned),
    })
}

/// Dial's and answer's `transcription: true` with its `transcription_config`: started once
/// the call is answered.
pub(super) fn on_answer(
    p: &Params,
    speech: &Speech,
    account: &str,
) -> Result<Option<TranscriptionSpec>, ApiError> {
    if !p.bool("transcription")?.unwrap_or(false) {
        return Ok(None);
    }
    match p.object("transcription_config")? {
        Some(c) => spec(&c, speech, account).map(Some),
        None => spec(&Params::parse(b"{}")?, speech, account).map(Some),
    }
}

pub(super) async fn start(api: &Arc<Telnyx>, leg: &Leg, p: &Params) -> Result<(), ApiError> {
    let spec = spec(p, &api.parts.speech, &leg.account)?;
    if !leg.answered(api).await {
        return Err(ApiError::not_answered());
    }
    run(api, leg.handle(), spec).await
}

/// Transcribes the leg, its results as `call.transcription` webhooks.
pub(super) async fn run(
    api: &Arc<Telnyx>,
    leg: &Arc<LegHandle>,
    spec: TranscriptionSpec,
) -> Result<(), ApiError> {
    if let Some(language) = &spec.language
        && !api.parts.speech.recognises_by_engine(language, spec.engine)
    {
        return Err(ApiError::invalid(
            "language",
            format!("'{language}' is not transcribed here: no recogniser serves it."),
        ));
    }
    let live = &api.parts.live_transcriptions;
    // One at a time, as Telnyx has it (the leg's actions run one after another).
    if live.running(&leg.call) > 0 {
        return Err(ApiError::param(
            "90054",
            "Call transcription is already in progress",
            "call_control_id",
            "Stop the running transcription first.".into(),
        ));
    }
    let Started { mut results, .. } = (live.start(&leg.call, None, spec).await)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let (api, leg) = (api.clone(), leg.clone());
    tokio::spawn(async move {
        while let Some(t) = results.recv().await {
            let mut extra = Map::new();
            extra.insert(
                "transcription_data".into(),
                json!({
                    "transcript": t.text,
                    "confidence": t.confidence,
                    "is_final": t.is_final,
                    "transcription_track": t.side.as_str(),
                }),
            );
            leg.send(
                &api,
                "call.transcription",
                crate::infra::clock::now_ms(),
                extra,
            )
            .await;
        }
    });
    Ok(())
}

pub(super) async fn stop(api: &Arc<Telnyx>, leg: &Leg) -> Result<(), ApiError> {
    let stopped = api.parts.live_transcriptions.stop(&leg.call, None).await;
    if stopped.is_empty() {
        return Err(ApiError::unprocessable(
            "The call has no transcription to stop.".into(),
        ));
    }
    Ok(())
}
