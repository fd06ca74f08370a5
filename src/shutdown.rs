//! Stopping and reloading on signals: SIGTERM/SIGINT drain the calls up (a second one hangs
//! up what is left), SIGHUP reloads the configuration.

use crate::config::Settings;
use crate::reload::Reloader;
use std::time::Duration;
use switchboard_control::call::CallControl;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing::{info, warn};

/// The next delivery of `signal`, or never if it could not be registered.
pub(crate) async fn next_signal(signal: &mut Option<Signal>) {
    match signal.as_mut() {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// A stop signal: new calls are refused while calls up go on, until none is left or `limit`
/// passes (or a second stop signal comes); then the caller hangs up what is left.
pub(crate) async fn drain(
    control: &CallControl,
    limit: Duration,
    signals: &mut Signals,
    reloader: &Reloader<impl Fn() -> Result<(crate::config::Config, Settings), String>>,
) {
    if limit.is_zero() {
        info!("stop signal: hanging up calls");
        return;
    }
    info!(limit_secs = limit.as_secs(), "stop signal: draining");
    let retry_after = u32::try_from(limit.as_secs()).unwrap_or(u32::MAX).max(1);
    let drained = control.drain(retry_after);
    tokio::pin!(drained);
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut drained => return,
            _ = &mut deadline => {
                warn!("drain period over: hanging up the calls left");
                return;
            }
            _ = stop_signal(&mut signals.term, &mut signals.interrupt) => {
                warn!("second stop signal: hanging up the calls left");
                return;
            }
            _ = next_signal(&mut signals.hangup) => reloader.apply().await,
        }
    }
}

/// The signals the server acts on: SIGTERM and SIGINT stop it (a second one during the drain
/// hangs up the calls left), SIGHUP reloads its configuration. Each is listened for once, from
/// before the server says it is ready: one that came before its handler would take its default
/// action (ending the process at once), and a stream made after a signal came would miss it.
pub(crate) struct Signals {
    pub(crate) term: Option<Signal>,
    pub(crate) interrupt: Option<Signal>,
    pub(crate) hangup: Option<Signal>,
}

impl Signals {
    pub(crate) fn listen() -> Self {
        Self {
            term: signal(SignalKind::terminate()).ok(),
            interrupt: signal(SignalKind::interrupt()).ok(),
            hangup: signal(SignalKind::hangup()).ok(),
        }
    }
}

pub(crate) async fn stop_signal(term: &mut Option<Signal>, interrupt: &mut Option<Signal>) {
    tokio::select! {
        _ = next_signal(term) => {}
        _ = next_signal(interrupt) => {}
    }
}
