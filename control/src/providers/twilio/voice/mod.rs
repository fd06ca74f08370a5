//! Voice applications in the Twilio dialect: a call arriving on a configured number is driven
//! by the TwiML its voice URL returns, verb by verb, through the call core. Each call has its
//! own session task; fetches are signed with the account's auth token and carry Twilio's
//! standard voice parameters.

mod dial;

use super::twiml::{self, DialNoun, Gather, GatherInput, Method, Verb};
use crate::accounts::{Account, Directory, HttpMethod, Number};
use crate::call::{CallCommand, CallControl, CallEvent, EventKind, GatherSpec, Rejection};
use crate::prompts::Prompts;
use crate::store::CallStatus;
use crate::webhook::client::WebhookClient;
use std::sync::Arc;
use std::time::Duration;
use switchboard_media::tone;
use tokio::sync::mpsc;
use tracing::{Instrument, info, info_span, warn};

/// What Twilio says when the application cannot be reached or its TwiML is broken.
const APPLICATION_ERROR: &str = "We are sorry, an application error has occurred. Goodbye.";

/// Drives the calls of every configured number that has a voice URL.
pub struct VoiceApps {
    pub control: CallControl,
    pub prompts: Arc<Prompts>,
    pub webhooks: WebhookClient,
    pub directory: Arc<Directory>,
}

impl VoiceApps {
    /// Takes the incoming calls of the numbers and runs a session for each.
    pub fn start(self) -> tokio::task::JoinHandle<()> {
        let (tx, mut incoming) = mpsc::channel(256);
        for n in self
            .directory
            .numbers
            .iter()
            .filter(|n| n.voice_url.is_some())
        {
            self.control.control(&n.phone_number, tx.clone());
        }
        let apps = Arc::new(self);
        tokio::spawn(async move {
            while let Some(event) = incoming.recv().await {
                let EventKind::Incoming { from, to, .. } = &event.kind else {
                    continue;
                };
                let found = apps.directory.number(to).and_then(|n| {
                    let account = apps.directory.account(&n.account_sid)?;
                    Some((n.clone(), account.clone()))
                });
                let Some((number, account)) = found else {
                    // A longer number under a configured one's prefix: not ours.
                    let _ = apps
                        .control
                        .command(&event.call, CallCommand::Reject(Rejection::Rejected))
                        .await;
                    continue;
                };
                let (events_tx, events) = mpsc::channel(256);
                let control = &apps.control;
                let taken = control
                    .command(&event.call, CallCommand::Redirect(events_tx))
                    .await
                    .and(
                        control
                            .command(&event.call, CallCommand::SetAccount(account.sid.clone()))
                            .await,
                    );
                if taken.is_err() {
                    continue;
                }
                let session = Session {
                    apps: apps.clone(),
                    account,
                    number,
                    call: event.call.clone(),
                    from: from.clone(),
                    to: to.clone(),
                    events,
                    answered: false,
                };
                let span = info_span!("twiml", call = %event.call);
                tokio::spawn(session.run().instrument(span));
            }
        })
    }
}

/// The next document to fetch.
struct Fetch {
    url: String,
    method: HttpMethod,
    /// Parameters added to the standard ones (`Digits`, …).
    extra: Vec<(String, String)>,
}

/// How a document's execution ended.
enum Flow {
    /// Fetch another document (Redirect, a Gather's action).
    Next(Fetch),
    /// Hang up: `<Hangup>`, or the document ran out of verbs.
    HangUp,
    /// The call is over already.
    Ended,
    /// The application failed: apologise and hang up.
    Failed(String),
}

struct Session {
    apps: Arc<VoiceApps>,
    account: Account,
    number: Number,
    call: String,
    from: String,
    to: String,
    events: mpsc::Receiver<CallEvent>,
    answered: bool,
}

impl Session {
    async fn run(mut self) {
        let url = self
            .number
            .voice_url
            .clone()
            .expect("numbers with a voice URL");
        let mut next = Some(Fetch {
            url,
            method: self.number.voice_method,
            extra: Vec::new(),
        });
        let mut fallback = self
            .number
            .voice_fallback_url
            .clone()
            .map(|url| (url, self.number.voice_fallback_method));
        while let Some(fetch) = next.take() {
            let flow = match self.document(&fetch).await {
                Ok(verbs) => self.execute(verbs, &fetch.url).await,
                Err(e) => match fallback.take() {
                    Some((url, method)) => {
                        warn!(error = %e, %url, "TwiML fetch failed; trying the fallback URL");
                        let mut extra = fetch.extra.clone();
                        extra.push(("ErrorCode".into(), error_code(&e)));
                        extra.push(("ErrorUrl".into(), fetch.url.clone()));
                        Flow::Next(Fetch { url, method, extra })
                    }
                    None => Flow::Failed(e),
                },
            };
            match flow {
                Flow::Next(f) => next = Some(f),
                Flow::HangUp => self.hang_up().await,
                Flow::Failed(reason) => {
                    warn!(%reason, "application error");
                    self.say_and_hang_up(APPLICATION_ERROR).await;
                }
                Flow::Ended => {}
            }
        }
        self.wait_for_end().await;
    }

    /// Fetches and parses a document; the error says why the application failed.
    async fn document(&mut self, fetch: &Fetch) -> Result<Vec<Verb>, String> {
        let mut params = self.standard_params();
        params.extend(fetch.extra.iter().cloned());
        let body = self
            .apps
            .webhooks
            .request(&self.account, &fetch.url, fetch.method, &params)
            .await
            .map_err(|e| format!("error {}: {e}", e.code))?;
        twiml::parse(&body).map_err(|e| e.to_string())
    }

    fn standard_params(&self) -> Vec<(String, String)> {
        let status = if self.answered {
            "in-progress"
        } else {
            "ringing"
        };
        let mut p: Vec<(String, String)> = [
            ("CallSid", self.call.as_str()),
            ("AccountSid", self.account.sid.as_str()),
            ("From", self.from.as_str()),
            ("To", self.to.as_str()),
            ("Caller", self.from.as_str()),
            ("Called", self.to.as_str()),
            ("CallStatus", status),
            ("ApiVersion", "2010-04-01"),
            ("Direction", "inbound"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        // Twilio sends the geographic fields even when its lookup found nothing.
        for who in ["From", "To", "Caller", "Called"] {
            for what in ["City", "State", "Zip", "Country"] {
                p.push((format!("{who}{what}"), String::new()));
            }
        }
        p
    }

    async fn execute(&mut self, verbs: Vec<Verb>, base: &str) -> Flow {
        for verb in verbs {
            let step = match verb {
                Verb::Say(say) => {
                    self.say(
                        &say.text,
                        say.voice.as_deref(),
                        say.language.as_deref(),
                        say.loops,
                    )
                    .await
                }
                Verb::Play(play) => self.play(&play, base).await,
                Verb::Pause { length_secs } => self.pause(length_secs).await,
                Verb::Gather(gather) => match self.gather(&gather, base).await {
                    Ok(Some(next)) => return Flow::Next(next),
                    Ok(None) => Ok(()),
                    Err(flow) => return flow,
                },
                Verb::Dial(dial) if !matches!(dial.nouns.first(), Some(DialNoun::Queue { .. })) => {
                    match self.dial(&dial, base).await {
                        Ok(Some(next)) => return Flow::Next(next),
                        Ok(None) => Ok(()),
                        Err(flow) => return flow,
                    }
                }
                Verb::Hangup => return Flow::HangUp,
                Verb::Redirect { url, method } => {
                    return match resolve(base, &url) {
                        Ok(url) => Flow::Next(Fetch {
                            url,
                            method: http_method(method),
                            extra: Vec::new(),
                        }),
                        Err(e) => Flow::Failed(e),
                    };
                }
                Verb::Reject { busy } => {
                    if self.answered {
                        return Flow::HangUp;
                    }
                    let why = if busy {
                        Rejection::Busy
                    } else {
                        Rejection::Rejected
                    };
                    let _ = self.command(CallCommand::Reject(why)).await;
                    return Flow::Ended;
                }
                other => {
                    return Flow::Failed(format!(
                        "TwiML verb {} is not supported yet",
                        verb_name(&other)
                    ));
                }
            };
            if let Err(flow) = step {
                return flow;
            }
        }
        // The document ran out: Twilio hangs up.
        Flow::HangUp
    }

    async fn command(&self, command: CallCommand) -> Result<(), Flow> {
        self.apps
            .control
            .command(&self.call, command)
            .await
            .map_err(|_| Flow::Ended)
    }

    /// Answers an inbound call before its first media verb, as Twilio does.
    async fn answer(&mut self) -> Result<(), Flow> {
        if self.answered {
            return Ok(());
        }
        self.command(CallCommand::Answer).await?;
        self.until(|e| matches!(e, EventKind::Answered)).await?;
        self.answered = true;
        Ok(())
    }

    /// Events until `done` matches one; the call's end stops the wait.
    async fn until(&mut self, done: impl Fn(&EventKind) -> bool) -> Result<EventKind, Flow> {
        loop {
            let event = self.events.recv().await.ok_or(Flow::Ended)?;
            if done(&event.kind) {
                return Ok(event.kind);
            }
            if matches!(event.kind, EventKind::Hangup { .. }) {
                return Err(Flow::Ended);
            }
        }
    }

    /// Plays a clip and waits for its end.
    async fn play_clip(&mut self, clip: switchboard_media::Clip, loops: u32) -> Result<(), Flow> {
        self.answer().await?;
        self.command(CallCommand::Play {
            clip,
            loops,
            barge_in: false,
        })
        .await?;
        let EventKind::PlaybackStarted { playback } = self
            .until(|e| matches!(e, EventKind::PlaybackStarted { .. }))
            .await?
        else {
            unreachable!()
        };
        self.until(|e| matches!(e, EventKind::PlaybackEnded { playback: p, .. } if *p == playback))
            .await?;
        Ok(())
    }

    async fn say(
        &mut self,
        text: &str,
        voice: Option<&str>,
        language: Option<&str>,
        loops: u32,
    ) -> Result<(), Flow> {
        if text.is_empty() {
            return Ok(());
        }
        let spoken = self
            .apps
            .prompts
            .say(text, voice, language)
            .await
            .map_err(|e| Flow::Failed(e.to_string()))?;
        self.play_clip(spoken.clip, loops).await
    }

    async fn play(&mut self, play: &twiml::Play, base: &str) -> Result<(), Flow> {
        if let Some(digits) = &play.digits {
            self.answer().await?;
            self.command(CallCommand::SendDigits(digits.clone()))
                .await?;
            // Each digit takes 160 ms on the wire, each `w` half a second.
            let ms: u64 = digits
                .chars()
                .map(|c| if c == 'w' || c == 'W' { 500 } else { 160 })
                .sum();
            return self.pause_ms(ms).await;
        }
        let url = resolve(base, play.url.as_deref().unwrap_or_default()).map_err(Flow::Failed)?;
        match self.apps.prompts.url(&url).await {
            Ok(clip) => self.play_clip(clip, play.loops).await,
            // Twilio logs a warning and goes on with the next verb.
            Err(e) => {
                warn!(%url, error = %e, "cannot play");
                Ok(())
            }
        }
    }

    async fn pause(&mut self, secs: u32) -> Result<(), Flow> {
        self.pause_ms(secs as u64 * 1000).await
    }

    /// Waits, ending early if the call ends.
    async fn pause_ms(&mut self, ms: u64) -> Result<(), Flow> {
        let sleep = tokio::time::sleep(Duration::from_millis(ms));
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return Ok(()),
                event = self.events.recv() => match event {
                    None => return Err(Flow::Ended),
                    Some(e) if matches!(e.kind, EventKind::Hangup { .. }) => return Err(Flow::Ended),
                    Some(_) => {}
                },
            }
        }
    }

    /// `<Gather>`: its prompts play (a digit stops them) while digits are collected; the wait
    /// for the first digit starts when they end. With input (or `actionOnEmptyResult`), the
    /// action is fetched with `Digits` and `FinishedOnKey`; without, the next verb runs.
    async fn gather(&mut self, g: &Gather, base: &str) -> Result<Option<Fetch>, Flow> {
        if g.input == GatherInput::Speech {
            warn!("<Gather input=\"speech\">: no speech recogniser here; treated as no input");
        }
        self.answer().await?;
        let mut clip: Vec<i16> = Vec::new();
        for prompt in &g.prompts {
            clip.extend(self.render(prompt, base).await?);
        }
        let prompted = !clip.is_empty();
        if prompted {
            self.command(CallCommand::Play {
                clip: clip.into(),
                loops: 1,
                barge_in: true,
            })
            .await?;
        }
        self.command(CallCommand::Gather(GatherSpec {
            timeout: Duration::from_secs(g.timeout_secs as u64),
            finish_on_key: g.finish_on_key,
            num_digits: g.num_digits.map(|n| n as usize),
            after_playback: prompted,
        }))
        .await?;
        let EventKind::GatherEnded { digits, reason } = self
            .until(|e| matches!(e, EventKind::GatherEnded { .. }))
            .await?
        else {
            unreachable!()
        };
        if digits.is_empty() && !g.action_on_empty_result {
            return Ok(None);
        }
        let finished_on = if reason == "finish-key" {
            g.finish_on_key.map(String::from).unwrap_or_default()
        } else {
            String::new()
        };
        let url = match &g.action {
            Some(action) => resolve(base, action).map_err(Flow::Failed)?,
            None => base.to_owned(),
        };
        Ok(Some(Fetch {
            url,
            method: http_method(g.method),
            extra: vec![
                ("Digits".into(), digits),
                ("FinishedOnKey".into(), finished_on),
            ],
        }))
    }

    /// A `<Gather>` prompt as audio: speech, a fetched file, or silence.
    async fn render(&mut self, prompt: &Verb, base: &str) -> Result<Vec<i16>, Flow> {
        let times = |clip: &[i16], loops: u32| clip.repeat(loops.max(1) as usize);
        Ok(match prompt {
            Verb::Say(s) => {
                let spoken = self
                    .apps
                    .prompts
                    .say(&s.text, s.voice.as_deref(), s.language.as_deref())
                    .await
                    .map_err(|e| Flow::Failed(e.to_string()))?;
                times(&spoken.clip, s.loops)
            }
            Verb::Play(p) if p.url.is_some() => {
                let url =
                    resolve(base, p.url.as_deref().unwrap_or_default()).map_err(Flow::Failed)?;
                match self.apps.prompts.url(&url).await {
                    Ok(clip) => times(&clip, p.loops),
                    Err(e) => {
                        warn!(%url, error = %e, "cannot play");
                        Vec::new()
                    }
                }
            }
            Verb::Pause { length_secs } => tone::silence(length_secs * 1000),
            _ => Vec::new(),
        })
    }

    async fn hang_up(&mut self) {
        let _ = self.command(CallCommand::Hangup).await;
    }

    async fn say_and_hang_up(&mut self, text: &str) {
        if self
            .say(text, Some("woman"), Some("en-US"), 1)
            .await
            .is_ok()
        {
            self.hang_up().await;
        }
    }

    /// After the last document: the call's end, then the number's status callback.
    async fn wait_for_end(&mut self) {
        let ended = loop {
            match self.events.recv().await {
                None => return,
                Some(e) => {
                    if let EventKind::Hangup {
                        status, sip_code, ..
                    } = e.kind
                    {
                        break (status, sip_code, e.at);
                    }
                }
            }
        };
        info!(status = %ended.0, "call ended");
        let Some(url) = self.number.status_callback.clone() else {
            return;
        };
        let (status, sip_code, at) = ended;
        let mut params = self.standard_params();
        set(&mut params, "CallStatus", status_name(status));
        params.extend(
            [
                ("CallbackSource", "call-progress-events".to_owned()),
                ("SequenceNumber", "0".to_owned()),
                ("Timestamp", rfc2822(at)),
                (
                    "SipResponseCode",
                    sip_code.map(|c| c.to_string()).unwrap_or_default(),
                ),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        let method = self.number.status_callback_method;
        if let Err(e) = self
            .apps
            .webhooks
            .request(&self.account, &url, method, &params)
            .await
        {
            warn!(error = %e, "status callback failed");
        }
    }
}

fn set(params: &mut [(String, String)], name: &str, value: &str) {
    if let Some(p) = params.iter_mut().find(|(k, _)| k == name) {
        p.1 = value.to_owned();
    }
}

fn status_name(status: CallStatus) -> &'static str {
    status.as_str()
}

/// RFC 2822 in UTC with a two-digit day, as Twilio writes dates.
pub fn rfc2822(unix_ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix_ms / 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[weekday repr:short], [day padding:zero] [month repr:short] [year] [hour]:[minute]:[second] +0000"
    );
    t.format(&format).unwrap_or_default()
}

fn http_method(m: Method) -> HttpMethod {
    match m {
        Method::Get => HttpMethod::Get,
        Method::Post => HttpMethod::Post,
    }
}

/// A URL in TwiML, resolved against the document it came in.
fn resolve(base: &str, url: &str) -> Result<String, String> {
    url::Url::parse(base)
        .and_then(|b| b.join(url))
        .map(String::from)
        .map_err(|e| format!("bad URL {url:?}: {e}"))
}

fn error_code(e: &str) -> String {
    e.strip_prefix("error ")
        .and_then(|r| r.split(':').next())
        .unwrap_or("11200")
        .to_owned()
}

fn verb_name(v: &Verb) -> &'static str {
    match v {
        Verb::Say(_) => "<Say>",
        Verb::Play(_) => "<Play>",
        Verb::Pause { .. } => "<Pause>",
        Verb::Gather(_) => "<Gather>",
        Verb::Record(_) => "<Record>",
        Verb::Dial(_) => "<Dial>",
        Verb::Hangup => "<Hangup>",
        Verb::Redirect { .. } => "<Redirect>",
        Verb::Reject { .. } => "<Reject>",
        Verb::Enqueue { .. } => "<Enqueue>",
        Verb::Leave => "<Leave>",
        Verb::Connect { .. } => "<Connect>",
        Verb::Start { .. } => "<Start>",
        Verb::Stop { .. } => "<Stop>",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc_2822_with_two_digit_days() {
        // 2015-08-04T16:25:16Z, the reference's example.
        assert_eq!(
            rfc2822(1_438_705_516_000),
            "Tue, 04 Aug 2015 16:25:16 +0000"
        );
    }

    #[test]
    fn relative_urls_resolve_against_their_document() {
        assert_eq!(
            resolve("http://127.0.0.1:9000/voice/menu?x=1", "/gathered").unwrap(),
            "http://127.0.0.1:9000/gathered"
        );
        assert_eq!(
            resolve("http://127.0.0.1:9000/voice/menu", "tone.wav").unwrap(),
            "http://127.0.0.1:9000/voice/tone.wav"
        );
        assert_eq!(resolve("http://a/x", "https://b/y").unwrap(), "https://b/y");
    }
}
