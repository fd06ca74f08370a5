//! `<Record>`: a beep, then the caller's audio is recorded until the finish key, `timeout`
//! seconds of silence, `maxLength`, or a hang-up; the action gets `RecordingUrl`,
//! `RecordingSid`, `RecordingDuration` and `Digits` (the key, or `hangup`). An empty recording
//! requests nothing and the next verb runs, as with Twilio. With `transcribe`, the saved recording
//! is transcribed (transcribe.rs).

use super::recordings::StatusHook;
use super::{Fetch, Flow, Session, http_method, resolve};
use crate::call::{CallCommand, EventKind, RecordOptions};
use crate::markup::twiml::Record;
use std::time::Duration;
use switchboard_media::record::{Channels, RecordFormat, StopWhen};
use switchboard_media::{TapTracks, tone};

impl Session {
    pub(super) async fn record(&mut self, r: &Record, base: &str) -> Result<Option<Fetch>, Flow> {
        self.answer().await?;
        if r.play_beep {
            self.play_prompt(tone::beep().into(), 1).await?;
        }
        let hook = (r.recording_status_callback.as_deref()).map(|url| StatusHook {
            url,
            method: r.recording_status_callback_method,
            events: &r.recording_status_callback_event,
        });
        let options = RecordOptions {
            channels: Channels::Mono,
            format: RecordFormat::Pcm16,
            tracks: TapTracks::Inbound,
            trim_silence: r.trim_silence,
            sid: None,
            origin: crate::call::RecordingOrigin::RecordVerb,
            // The core stops it after `timeout` seconds of silence (counted from the start,
            // as Twilio counts) or at `maxLength`.
            stop: StopWhen {
                max_length: Some(Duration::from_secs(r.max_length_secs.max(1) as u64)),
                silence: Some(Duration::from_secs(r.timeout_secs.max(1) as u64)),
                silence_after_speech: false,
            },
        };
        let sid = self.start_recording(base, hook, options).await?;
        let mut hung_up = false;
        let mut stopped = false;
        let digits = loop {
            let Some(e) = self.events.recv().await else {
                hung_up = true;
                break "hangup".to_owned();
            };
            match e.kind {
                EventKind::Hangup { .. } => {
                    self.observe(&e).await;
                    hung_up = true;
                    self.ended = Some(e);
                    break "hangup".to_owned();
                }
                EventKind::RecordingStopped { ref recording, .. } if *recording == sid => {
                    self.observe(&e).await;
                    stopped = true;
                    break String::new();
                }
                EventKind::Dtmf { digit, .. } if r.finish_on_key.contains(digit) => {
                    break digit.to_string();
                }
                _ => self.observe(&e).await,
            }
        };
        if !hung_up && !stopped {
            self.command(CallCommand::RecordStop).await?;
        }
        // The file is saved even after a hang-up (the call waits for it).
        let saved = loop {
            let Some(event) = self.events.recv().await else {
                break None;
            };
            self.observe(&event).await;
            match event.kind {
                EventKind::RecordingSaved {
                    recording,
                    duration_ms,
                    path,
                    ..
                } if recording == sid => break Some((duration_ms, path)),
                EventKind::Hangup { .. } => {
                    hung_up = true;
                    self.ended = Some(event);
                }
                _ => {}
            }
        };
        let Some((duration_ms, path)) = saved else {
            return Err(Flow::Ended);
        };
        if duration_ms == 0 && !hung_up {
            return Ok(None);
        }
        if r.transcribe && duration_ms > 0 {
            let callback = (r.transcribe_callback.as_deref())
                .map(|u| resolve(base, u))
                .transpose()
                .map_err(Flow::Failed)?;
            self.transcribe_recording(&sid, &path, duration_ms, callback)
                .await;
        }
        let url = match &r.action {
            Some(a) => resolve(base, a).map_err(Flow::Failed)?,
            None => base.to_owned(),
        };
        let recording_url = self.recording_url(&sid);
        let extra = vec![
            ("RecordingUrl".into(), recording_url),
            ("RecordingSid".into(), sid),
            ("RecordingDuration".into(), (duration_ms / 1000).to_string()),
            ("Digits".into(), digits),
        ];
        let fetch = Fetch::url(url, http_method(r.method), extra);
        if hung_up {
            // Twilio still tells the action; whatever it answers is moot.
            let _ = self.document(&fetch).await;
            return Err(Flow::Ended);
        }
        Ok(Some(fetch))
    }
}
