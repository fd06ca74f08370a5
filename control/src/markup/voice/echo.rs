//! `<Echo>` (SignalWire's LaML and Twilio's TwiML): the call is answered and what the caller
//! says is played back to them — the call's own inbound audio, tapped after noise suppression
//! (`<Denoise>`) and injected toward the caller — until `timeout` passes or the call ends; the
//! document then goes on.

use super::{Flow, Session};
use crate::call::CallCommand;
use std::time::Duration;
use switchboard_media::{TapId, TapTracks};
use tokio::sync::mpsc;

/// Frames waiting to be played back, at most (a second: the caller hears themselves with no
/// more delay than that, whatever the engine's pace).
const BACKLOG: usize = 50;

impl Session {
    pub(super) async fn echo(&mut self, timeout_secs: u32) -> Result<(), Flow> {
        self.answer().await?;
        let link = (self.apps.control.media_link(&self.call.sid).await).map_err(|e| {
            tracing::info!(error = %e, "<Echo>: the call has no media; its document ends");
            Flow::Ended
        })?;
        let (tx, mut heard) = mpsc::channel(64);
        let tap = TapId::next();
        self.command(CallCommand::TapStart {
            tap,
            tracks: TapTracks::Inbound,
            tx: tx.into(),
        })
        .await?;
        let until = tokio::time::sleep(Duration::from_secs(u64::from(timeout_secs)));
        tokio::pin!(until);
        let ended = loop {
            tokio::select! {
                () = &mut until => break false,
                frame = heard.recv() => match frame {
                    Some(frame) => link.inject(vec![frame.samples], None, BACKLOG),
                    None => break false,
                },
                event = self.events.recv() => if self.caller_ended(event).await {
                    break true;
                },
            }
        };
        if ended {
            return Err(Flow::Ended);
        }
        link.clear();
        self.command(CallCommand::TapStop(tap)).await
    }
}
