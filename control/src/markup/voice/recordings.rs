//! Recording a call from the markup: the helper every recording verb starts its recording with
//! (`<Record>`, `<Dial record>`, `<Start><Recording>`): the status callback registered before
//! the recording starts, so that none of its events is missed; and `<Start><Recording>` /
//! `<Stop><Recording>` themselves — the call recorded in the background while the document
//! goes on, the same recording the REST API starts (`RecordingSource`
//! `StartCallRecordingTwiML`), stopped by `<Stop>`, the API or the call's end.

use super::{Flow, RecordingCallback, Session, http_method, resolve};
use crate::call::{CallCommand, RecordOptions, RecordingOrigin};
use crate::markup::twiml::{Method, Recording};
use switchboard_media::record::{Channels, RecordFormat, StopWhen};

/// Where a recording's status is reported, as its verb gave it.
pub(super) struct StatusHook<'a> {
    pub url: &'a str,
    pub method: Method,
    pub events: &'a [String],
}

impl Session {
    /// Starts recording the call as `options` say (their `sid` is given here), its status
    /// reported to `hook`; the recording's SID.
    pub(super) async fn start_recording(
        &mut self,
        base: &str,
        hook: Option<StatusHook<'_>>,
        mut options: RecordOptions,
    ) -> Result<String, Flow> {
        let sid = crate::infra::sid::new_sid("RE");
        if let Some(hook) = hook {
            let url = resolve(base, hook.url).map_err(Flow::Failed)?;
            self.apps
                .on_recording(
                    &self.account,
                    &self.call.sid,
                    &sid,
                    RecordingCallback {
                        url,
                        method: http_method(hook.method),
                        origin: options.origin,
                        track: super::recording_track(options.tracks),
                        events: hook.events.to_vec(),
                    },
                    &self.app.dialect,
                )
                .await;
        }
        options.sid = Some(sid.clone());
        self.command(CallCommand::RecordStart(options)).await?;
        Ok(sid)
    }

    /// `<Start><Recording>`: each recording starts and the document goes on (the call is
    /// answered first: there is nothing to record before).
    pub(super) async fn start_recordings(
        &mut self,
        recordings: &[Recording],
        base: &str,
    ) -> Result<(), Flow> {
        if recordings.is_empty() {
            return Ok(());
        }
        self.answer().await?;
        for r in recordings {
            let hook = (r.status_callback.as_deref()).map(|url| StatusHook {
                url,
                method: r.status_callback_method,
                events: &r.status_callback_event,
            });
            let options = RecordOptions {
                channels: if r.dual {
                    Channels::Dual
                } else {
                    Channels::Mono
                },
                format: RecordFormat::Pcm16,
                tracks: r.track,
                trim_silence: r.trim_silence,
                sid: None,
                origin: RecordingOrigin::StartVerb,
                stop: StopWhen::default(),
            };
            self.start_recording(base, hook, options).await?;
            self.background_recording = Some(r.name.clone());
        }
        Ok(())
    }

    /// `<Stop><Recording>`: the recording `<Start>` began (by its name, when the stop names
    /// one) is stopped and saved.
    pub(super) async fn stop_recordings(&mut self, names: &[Option<String>]) -> Result<(), Flow> {
        let Some(started) = &self.background_recording else {
            return Ok(());
        };
        if names.iter().any(|n| n.is_none() || n == started) {
            self.background_recording = None;
            self.command(CallCommand::RecordStop).await?;
        }
        Ok(())
    }
}
