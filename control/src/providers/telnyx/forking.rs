//! `fork_start` / `fork_stop`: the leg's audio as RTP to the app's UDP targets, through the
//! neutral forks (`crate::services::fork`); `call.fork.started` / `call.fork.stopped`.

use super::Telnyx;
use super::errors::ApiError;
use super::leg::Leg;
use super::params::Params;
use crate::call::ids::CallId;
use crate::services::fork::{Encapsulation, ForkError, ForkTargets};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

/// Sends the leg's audio as RTP to `rx` (what the party says) and `tx` (what it hears), or
/// both to `target`, each packet behind Telnyx's encapsulation header (the leg's id, its A or
/// B side, the direction): `udp:<ip>:<port>` each. Telnyx takes either form, not both; a
/// `decrypted` stream needs `rx` and `tx`.
pub(super) async fn start(api: &Arc<Telnyx>, leg: &mut Leg, p: &Params) -> Result<(), ApiError> {
    let stream_type = p.choice("stream_type", &["raw", "decrypted"], "raw")?;
    let target = |key: &str| -> Result<Option<SocketAddr>, ApiError> {
        p.str(key)?
            .map(|t| ForkTargets::parse(t).map_err(|e| ApiError::invalid(key, e.to_string())))
            .transpose()
    };
    let targets = match target("target")? {
        Some(_) if p.has("rx") || p.has("tx") => {
            return Err(ApiError::invalid(
                "target",
                "give either target or rx and tx, not both".into(),
            ));
        }
        Some(_) if stream_type == "decrypted" => {
            return Err(ApiError::invalid(
                "stream_type",
                "a decrypted stream needs rx and tx, not target".into(),
            ));
        }
        Some(one) => ForkTargets {
            rx: Some(one),
            tx: Some(one),
            header: Some(Encapsulation {
                leg: CallId::from_sid(&leg.call).map_or(0, CallId::bits),
                b_leg: leg.state.context.direction == "outgoing",
            }),
        },
        None => ForkTargets {
            rx: target("rx")?,
            tx: target("tx")?,
            header: None,
        },
    };
    if targets.rx.is_none() || (stream_type == "decrypted" && targets.tx.is_none()) {
        return Err(ApiError::missing(if targets.rx.is_none() {
            "rx"
        } else {
            "tx"
        }));
    }
    if !leg.answered(api).await {
        return Err(ApiError::not_answered());
    }
    let reach = (api.parts.directory.account(&leg.account))
        .map(|a| a.reach)
        .unwrap_or_default();
    (api.parts.forks.start(&leg.call, targets, reach).await).map_err(|e| match e {
        ForkError::Denied(addr, _) => {
            let key = match targets.header {
                Some(_) => "target",
                None if targets.rx == Some(addr) => "rx",
                None => "tx",
            };
            ApiError::invalid(key, e.to_string())
        }
        e => ApiError::unprocessable(e.to_string()),
    })?;
    leg.state.fork = Some(stream_type.to_owned());
    let mut extra = serde_json::Map::new();
    extra.insert("stream_type".into(), json!(stream_type));
    leg.send(
        api,
        "call.fork.started",
        crate::infra::clock::now_ms(),
        extra,
    )
    .await;
    Ok(())
}

/// Stops the leg's fork (`stream_type`, if given, must be the running one's).
pub(super) async fn stop(api: &Arc<Telnyx>, leg: &mut Leg, p: &Params) -> Result<(), ApiError> {
    let running = leg.state.fork.clone();
    let Some(stream_type) = running else {
        return Err(ApiError::param(
            "90031",
            "Call is not currently forked",
            "call_control_id",
            "The call has no fork to stop.".into(),
        ));
    };
    let asked = p.choice("stream_type", &["raw", "decrypted"], "raw")?;
    if p.has("stream_type") && asked != stream_type {
        return Err(ApiError::invalid(
            "stream_type",
            format!("The call's fork is '{stream_type}', not '{asked}'."),
        ));
    }
    (api.parts.forks.stop(&leg.call).await).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    leg.state.fork = None;
    let mut extra = serde_json::Map::new();
    extra.insert("stream_type".into(), json!(stream_type));
    leg.send(
        api,
        "call.fork.stopped",
        crate::infra::clock::now_ms(),
        extra,
    )
    .await;
    Ok(())
}
