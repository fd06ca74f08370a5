//! Twilio's `AnnounceUrl` (a conference's, or one participant's): the URL answers with audio
//! (a file named `.mp3` or `.wav`, fetched as `<Play>` fetches) or with a TwiML document of
//! `<Play>`, `<Say>`, `<Pause>` and `<Redirect>` verbs, as Twilio documents. It is rendered
//! here into the one clip the room's mixer plays over the conversation.

use super::{Dialect, VoiceApps, resolve, verb_name};
use crate::call::{CallCommand, RoomAnnouncement};
use crate::infra::accounts::{Account, HttpMethod};
use crate::infra::webhook::client::idempotency_token;
use crate::markup::twiml::{self, Verb};
use std::sync::Arc;
use switchboard_media::Clip;
use tracing::warn;

/// `<Redirect>`s followed at most.
const MAX_REDIRECTS: usize = 5;
/// The longest announcement: five minutes at 8 kHz.
const MAX_SAMPLES: usize = 5 * 60 * 8000;

impl VoiceApps {
    /// Plays what `url` announces into conference `conference` through participant `call`:
    /// to the room, or to that participant `alone`. The REST APIs answer at once and the
    /// audio is fetched afterwards (presented and signed as the participant's markup dialect
    /// does); audio that cannot be had is the room's `announcement-fail`.
    pub fn announce(
        self: &Arc<Self>,
        account: &Account,
        conference: &str,
        call: &str,
        alone: bool,
        (url, method): (String, HttpMethod),
    ) {
        let (apps, account) = (self.clone(), account.clone());
        let (conference, call) = (conference.to_owned(), call.to_owned());
        let dialect = self.dialect_of(&call).unwrap_or(Dialect::Twilio);
        tokio::spawn(async move {
            let mut params = vec![
                ("AccountSid".to_owned(), account.api_sid().to_owned()),
                ("ConferenceSid".to_owned(), conference),
            ];
            if alone {
                params.push(("CallSid".to_owned(), call.clone()));
            }
            let fetched = apps.announcement(&account, &dialect, &url, method, &params);
            let command = match fetched.await {
                Ok(clip) => CallCommand::ConferenceAnnounce(RoomAnnouncement {
                    clip,
                    loops: 1,
                    alone,
                    tag: "announce".into(),
                }),
                Err(why) => {
                    warn!(url, why, "the conference announcement cannot be played");
                    CallCommand::ConferenceAnnouncementFailed(alone)
                }
            };
            if let Err(e) = apps.control.command(&call, command).await {
                warn!(error = %e, "the conference announcement cannot be played");
            }
        });
    }

    /// The audio `url` announces, fetched with `method` and `params` (presented and signed
    /// as `dialect` does); the error says why there is none.
    async fn announcement(
        &self,
        account: &Account,
        dialect: &Dialect,
        url: &str,
        method: HttpMethod,
        params: &[(String, String)],
    ) -> Result<Clip, String> {
        if is_audio(url) {
            return (self.prompts.url(url, account.reach).await).map_err(|e| e.to_string());
        }
        let mut samples: Vec<i16> = Vec::new();
        let (mut url, mut method) = (url.to_owned(), method);
        for _ in 0..=MAX_REDIRECTS {
            let request = dialect.request(account, &url, method, params);
            let body = (self.webhooks)
                .send(account, &request, &idempotency_token(""), 1)
                .await
                .map_err(|e| e.to_string())?;
            let (verbs, _) = twiml::parse_document(&body, false).map_err(|e| e.message)?;
            let mut next = None;
            for verb in verbs {
                match verb {
                    Verb::Play(play) => {
                        let Some(at) = &play.url else {
                            return Err("<Play digits> cannot be announced".into());
                        };
                        let at = resolve(&url, at).map_err(|e| e.message)?;
                        let clip = (self.prompts.url(&at, account.reach).await)
                            .map_err(|e| e.to_string())?;
                        repeat(&mut samples, &clip, play.loops)?;
                    }
                    Verb::Say(say) => {
                        let clip = (self.prompts)
                            .say_whole(
                                &say.parts,
                                say.voice.as_deref(),
                                say.language.as_deref(),
                                &account.sid,
                            )
                            .await
                            .map_err(|e| e.to_string())?;
                        repeat(&mut samples, &clip, say.loops)?;
                    }
                    Verb::Pause { length_secs } => {
                        let silence = [0i16; 8000];
                        repeat(&mut samples, &silence, length_secs)?;
                    }
                    Verb::Redirect { url: to, method: m } => {
                        next = Some((resolve(&url, &to).map_err(|e| e.message)?, m));
                        break;
                    }
                    other => return Err(format!("{} cannot be announced", verb_name(&other))),
                }
            }
            match next {
                Some((to, m)) => (url, method) = (to, super::http_method(m)),
                None if samples.is_empty() => return Err("the document announces nothing".into()),
                None => return Ok(samples.into()),
            }
        }
        Err(format!("more than {MAX_REDIRECTS} redirects"))
    }
}

/// Whether the URL names an audio file rather than a document.
fn is_audio(url: &str) -> bool {
    let path = url::Url::parse(url).map(|u| u.path().to_ascii_lowercase());
    path.is_ok_and(|p| [".mp3", ".wav", ".wave"].iter().any(|ext| p.ends_with(ext)))
}

/// Appends `clip` `times` over, within [`MAX_SAMPLES`]; 0 times (Twilio's "until the call
/// ends") has no end to announce.
fn repeat(samples: &mut Vec<i16>, clip: &[i16], times: u32) -> Result<(), String> {
    if times == 0 {
        return Err("loop=\"0\" repeats for ever: an announcement must end".into());
    }
    for _ in 0..times {
        if samples.len() + clip.len() > MAX_SAMPLES {
            return Err(format!("longer than {} s", MAX_SAMPLES / 8000));
        }
        samples.extend_from_slice(clip);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_is_told_from_documents_by_its_name() {
        assert!(is_audio("http://app/a.MP3?x=1"));
        assert!(is_audio("https://app/hello.wav"));
        assert!(!is_audio("http://app/announce"));
        assert!(!is_audio("http://app/mp3"));
    }

    #[test]
    fn repeats_are_bounded_and_end() {
        let mut samples = Vec::new();
        assert!(repeat(&mut samples, &[1; 8000], 0).is_err());
        repeat(&mut samples, &[1; 8000], 3).unwrap();
        assert_eq!(samples.len(), 24_000);
        let err = repeat(&mut samples, &[1; 8000], 400).unwrap_err();
        assert!(err.contains("300 s"), "{err}");
    }
}
