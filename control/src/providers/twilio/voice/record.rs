//! `<Record>`: a beep, then the caller's audio is recorded until the finish key, `timeout`
//! seconds of silence, `maxLength`, or a hang-up; the action gets `RecordingUrl`,
//! `RecordingSid`, `RecordingDuration` and `Digits` (the key, or `hangup`). An empty recording
//! requests nothing and the next verb runs, as with Twilio. With `transcribe`, the saved recording
//! is transcribed (transcribe.rs).

use super::{Fetch, Flow, RecordingCallback, Session, http_method, resolve};
use crate::call::{CallCommand, EventKind, RecordOptions};
use crate::providers::twilio::twiml::Record;
use std::time::{Duration, Instant};
use switchboard_media::record::{Channels, RecordFormat};
use switchboard_media::silence::SilenceTimer;
use switchboard_media::{TapTracks, tone};
use tokio::sync::mpsc;

impl Session {
    pub(super) async fn record(&mut self, r: &Record, base: &str) -> Result<Option<Fetch>, Flow> {
        self.answer().await?;
        if r.play_beep {
            self.play_clip(tone::beep().into(), 1).await?;
        }
        let sid = crate::sid::new_sid("RE");
        if let Some(url) = &r.recording_status_callback {
            let url = resolve(base, url).map_err(Flow::Failed)?;
            self.apps
                .on_recording(
                    &self.account,
                    &self.call.sid,
                    &sid,
                    RecordingCallback {
                        url,
                        method: http_method(r.recording_status_callback_method),
                        origin: crate::call::RecordingOrigin::RecordVerb,
                        track: "inbound",
                        events: r.recording_status_callback_event.clone(),
                    },
                    &self.app.flavor,
                )
                .await;
        }
        self.command(CallCommand::RecordStart(RecordOptions {
            channels: Channels::Mono,
            format: RecordFormat::Pcm16,
            tracks: TapTracks::Inbound,
            trim_silence: r.trim_silence,
            sid: Some(sid.clone()),
            origin: crate::call::RecordingOrigin::RecordVerb,
        }))
        .await?;
        let (tap_tx, mut frames) = mpsc::channel(64);
        let tap = switchboard_media::TapId::next();
        self.command(CallCommand::TapStart {
            tap,
            tracks: TapTracks::Inbound,
            tx: tap_tx,
        })
        .await?;
        let limit = tokio::time::sleep(Duration::from_secs(r.max_length_secs.max(1) as u64));
        tokio::pin!(limit);
        let silence_limit = Duration::from_secs(r.timeout_secs.max(1) as u64);
        let mut silence = SilenceTimer::new(Instant::now(), silence_limit, false);
        // A caller that sends nothing at all is silent too.
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut hung_up = false;
        let mut tapping = true;
        let digits = loop {
            tokio::select! {
                frame = frames.recv(), if tapping => {
                    let Some(frame) = frame else {
                        tapping = false;
                        continue;
                    };
                    silence.push(Instant::now(), &frame.samples);
                    if silence.expired(Instant::now()) {
                        break String::new();
                    }
                }
                _ = tick.tick() => if silence.expired(Instant::now()) {
                    break String::new();
                },
                _ = &mut limit => break String::new(),
                event = self.events.recv() => match event {
                    Some(e) => match e.kind {
                        EventKind::Hangup { .. } => {
                            self.observe(&e).await;
                            hung_up = true;
                            self.ended = Some(e);
                            break "hangup".to_owned();
                        }
                        EventKind::Dtmf { digit, .. } if r.finish_on_key.contains(digit) => {
                            break digit.to_string();
                        }
                        _ => self.observe(&e).await,
                    },
                    None => {
                        hung_up = true;
                        break "hangup".to_owned();
                    }
                },
            }
        };
        if !hung_up {
            self.command(CallCommand::TapStop(tap)).await?;
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
