//! `<Gather>`: its prompts play while digits (the call core's gather) and speech (a
//! [`crate::services::speech`] listener on the caller's audio) are collected, whichever the `input`
//! asks for. The wait for the first input starts when the prompts end; a digit or the
//! caller's voice stops them. With a result (or `actionOnEmptyResult`) the action is fetched
//! with `Digits` and `FinishedOnKey`, or `SpeechResult` and `Confidence`; without, the next
//! verb runs. Partial results go to `partialResultCallback` in order as the caller speaks.

use super::{Fetch, Flow, Session, http_method, resolve};
use crate::call::{CallCommand, EventKind, GatherSpec};
use crate::markup::twiml::{Gather, GatherInput};
use crate::services::speech::{Heard, ListenSpec};
use std::time::Duration;
use switchboard_media::{TapId, TapTracks};
use switchboard_speech::{EndpointerConfig, Grammar};
use tokio::sync::mpsc;
use tracing::warn;

/// What ended a gather.
enum Input {
    Digits {
        digits: String,
        reason: &'static str,
    },
    Speech {
        text: String,
        confidence: f32,
    },
    Nothing,
}

/// `speechTimeout="auto"`: the pause that ends a sentence.
const AUTO_END: Duration = Duration::from_millis(1000);
/// Partial results while the caller speaks, about this often.
const PARTIAL_EVERY: Duration = Duration::from_millis(800);
/// Twilio's hint classes that ask for digits.
const DIGIT_CLASSES: [&str; 3] = [
    "$OOV_CLASS_DIGIT_SEQUENCE",
    "$OOV_CLASS_FULLPHONENUM",
    "$OOV_CLASS_OPERAND",
];

/// What the hints ask for: a class of digits, only "yes" and "no" (Switchboard's yes/no
/// grammar), or free speech biased to the phrases given.
fn listen_spec(g: &Gather) -> ListenSpec {
    let hints: Vec<String> = g
        .hints
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .collect();
    let grammar = if hints.iter().any(|h| DIGIT_CLASSES.contains(&h.as_str())) {
        Grammar::Digits
    } else if !hints.is_empty()
        && hints
            .iter()
            .all(|h| h.eq_ignore_ascii_case("yes") || h.eq_ignore_ascii_case("no"))
    {
        Grammar::YesNo
    } else {
        Grammar::Free
    };
    let end_silence = match g.speech_timeout {
        Some(None) => AUTO_END,
        Some(Some(secs)) => Duration::from_secs(secs as u64),
        None => Duration::from_secs(g.timeout_secs as u64),
    }
    .max(Duration::from_millis(300));
    ListenSpec {
        engine: None,
        language: g.language.clone(),
        endpointer: EndpointerConfig {
            // The call core's gather times the wait for the first input (after the prompts).
            start_timeout: None,
            end_silence,
            max_speech: Duration::from_secs(g.max_speech_time_secs.max(1) as u64),
            partial_every: g.partial_result_callback.is_some().then_some(PARTIAL_EVERY),
        },
        grammar,
        hints: hints.into_iter().filter(|h| !h.starts_with('$')).collect(),
        continuous: false,
        end_on_sentence: false,
    }
}

impl Session {
    pub(super) async fn gather(&mut self, g: &Gather, base: &str) -> Result<Option<Fetch>, Flow> {
        self.answer().await?;
        let mut listener = None;
        // A language no engine here serves is not heard at all — never by another
        // language's engine — and the application is told, as Twilio tells it of a language
        // it does not serve (warning 13331); digits are still gathered.
        let unserved = (g.language.as_deref()).filter(|l| !self.apps.speech.recognises(l));
        if let Some(lang) = unserved.filter(|_| g.input != GatherInput::Dtmf) {
            warn!(
                language = lang,
                "<Gather>: no recogniser serves this language"
            );
            let message = format!(
                "Gather: Invalid language value {lang}: no speech recogniser for it on this server; speech is treated as no input"
            );
            self.language_unserved(&message).await;
        } else if g.input != GatherInput::Dtmf {
            listener = self.listen(listen_spec(g)).await?;
        }
        let mut parts = Vec::new();
        let mut budget = super::PromptBudget::new();
        for prompt in &g.prompts {
            parts.extend(self.render(prompt, base, &mut budget).await?);
        }
        let prompt = switchboard_media::Prompt::new(parts);
        let prompted = !prompt.is_empty();
        if prompted {
            self.command(CallCommand::Play {
                clip: prompt,
                loops: 1,
                barge_in: g.input != GatherInput::Speech,
            })
            .await?;
        }
        let digits_count = g.input != GatherInput::Speech;
        self.command(CallCommand::Gather(GatherSpec {
            timeout: Duration::from_secs(g.timeout_secs as u64),
            first_timeout: None,
            total_timeout: None,
            finish_on_key: g.finish_on_key.filter(|_| digits_count),
            num_digits: g.num_digits.map(|n| n as usize).filter(|_| digits_count),
            after_playback: prompted,
        }))
        .await?;
        let partials = g
            .partial_result_callback
            .as_deref()
            .map(|url| resolve(base, url))
            .transpose()
            .map_err(Flow::Failed)?
            .map(|url| self.partial_sender(url, http_method(g.partial_result_callback_method)));
        let (mut gathering, mut speaking) = (true, false);
        // What the application sees of the speech: masked as Twilio masks it by default.
        let filtered = |text: String| {
            if g.profanity_filter {
                crate::services::speech::profanity::mask(&text)
            } else {
                text
            }
        };
        let input = loop {
            tokio::select! {
                heard = async { listener.as_mut().expect("guarded").1.recv().await }, if listener.is_some() => match heard {
                    Some(Heard::Started) => {
                        speaking = true;
                        if g.barge_in && prompted {
                            self.command(CallCommand::StopPlayback).await?;
                        }
                    }
                    Some(Heard::Partial { text, seq }) => {
                        if let Some(tx) = &partials {
                            let _ = tx.try_send((filtered(text), seq));
                        }
                    }
                    Some(Heard::Final { text, confidence }) => {
                        break if text.is_empty() { Input::Nothing } else { Input::Speech { text: filtered(text), confidence } };
                    }
                    other => {
                        if let Some(Heard::Failed(why)) = &other {
                            warn!(call = %self.call.sid, %why, "<Gather>: no speech result");
                        }
                        self.stop_listening(listener.take()).await?;
                        if !gathering || g.input == GatherInput::Speech {
                            break Input::Nothing;
                        }
                    }
                },
                received = self.receive() => {
                    let event = self.take(received).await?;
                    if let EventKind::GatherEnded { digits, reason } = event.kind {
                        gathering = false;
                        if digits_count && !digits.is_empty() {
                            break Input::Digits { digits, reason };
                        }
                        // The wait for input is over; speech under way goes on to its end.
                        if !(speaking && listener.is_some()) {
                            break Input::Nothing;
                        }
                    }
                }
            }
        };
        self.stop_listening(listener).await?;
        if gathering {
            self.command(CallCommand::GatherStop).await?;
            self.until(|e| matches!(e, EventKind::GatherEnded { .. }))
                .await?;
        }
        let extra = match input {
            Input::Digits { digits, reason } => {
                let finished_on = if reason == "finish-key" {
                    g.finish_on_key.map(String::from).unwrap_or_default()
                } else {
                    String::new()
                };
                // Twilio's digit results carry `msg=Gather End` (tests/fixtures/real).
                vec![
                    ("Digits".into(), digits),
                    ("FinishedOnKey".into(), finished_on),
                    ("msg".into(), "Gather End".into()),
                ]
            }
            Input::Speech { text, confidence } => vec![
                ("SpeechResult".into(), text),
                ("Confidence".into(), format!("{confidence:.8}")),
            ],
            Input::Nothing if g.action_on_empty_result => {
                if g.input == GatherInput::Dtmf {
                    vec![
                        ("Digits".into(), String::new()),
                        ("FinishedOnKey".into(), String::new()),
                        ("msg".into(), "Gather End".into()),
                    ]
                } else {
                    Vec::new()
                }
            }
            Input::Nothing => return Ok(None),
        };
        let url = match &g.action {
            Some(action) => resolve(base, action).map_err(Flow::Failed)?,
            None => base.to_owned(),
        };
        Ok(Some(Fetch::url(url, http_method(g.method), extra)))
    }

    /// A listener on the caller's audio, or `None` (said in the log) when this server has no
    /// speech recognition.
    async fn listen(
        &mut self,
        spec: ListenSpec,
    ) -> Result<Option<(TapId, mpsc::Receiver<Heard>)>, Flow> {
        let (tap_tx, frames) = mpsc::channel(64);
        let heard = match self.apps.speech.listen(frames, spec) {
            Ok(heard) => heard,
            Err(e) => {
                warn!(call = %self.call.sid, error = %e, "<Gather input=\"speech\">: treated as no input");
                let message = format!(
                    "Gather: Invalid language value: no speech recognition on this server ({e}); speech is treated as no input"
                );
                self.language_unserved(&message).await;
                return Ok(None);
            }
        };
        let tap = TapId::next();
        self.command(CallCommand::TapStart {
            tap,
            tracks: TapTracks::Inbound,
            tx: tap_tx.into(),
        })
        .await?;
        Ok(Some((tap, heard)))
    }

    /// Twilio's warning 13331 (its Notification for the call): the speech the `<Gather>`
    /// asks for cannot be recognised here, and its speech input is none. Twilio raises it when
    /// no provider serves the `<Gather>`'s language; here also when no recogniser is installed.
    async fn language_unserved(&self, message: &str) {
        let notice = super::Notice {
            code: 13331,
            warning: true,
            message,
            url: "",
            method: super::HttpMethod::Post,
        };
        self.apps
            .notify(&self.account, &self.call.sid, notice)
            .await;
    }

    async fn stop_listening(
        &mut self,
        listener: Option<(TapId, mpsc::Receiver<Heard>)>,
    ) -> Result<(), Flow> {
        if let Some((tap, _)) = listener {
            self.command(CallCommand::TapStop(tap)).await?;
        }
        Ok(())
    }

    /// Sends partial results to `partialResultCallback`, one at a time and in order, on a
    /// task of their own so that a slow application does not hold the gather up.
    fn partial_sender(
        &self,
        url: String,
        method: crate::infra::accounts::HttpMethod,
    ) -> mpsc::Sender<(String, u32)> {
        let (tx, mut rx) = mpsc::channel::<(String, u32)>(16);
        let (apps, account, dialect) = (
            self.apps.clone(),
            self.account.clone(),
            self.app.dialect.clone(),
        );
        let base = self.standard_params();
        self.apps.sessions.spawn(async move {
            while let Some((text, seq)) = rx.recv().await {
                let mut params = base.clone();
                params.extend([
                    ("UnstableSpeechResult".into(), text),
                    ("StableSpeechResult".into(), String::new()),
                    ("Stability".into(), "0.0".into()),
                    ("SequenceNumber".into(), seq.to_string()),
                ]);
                let request = dialect.request(&account, &url, method, &params);
                if let Err(e) = apps
                    .webhooks
                    .send(
                        &account,
                        &request,
                        &crate::infra::webhook::client::idempotency_token(""),
                        1,
                    )
                    .await
                {
                    warn!(error = %e, "partialResultCallback failed");
                }
            }
        });
        tx
    }
}
