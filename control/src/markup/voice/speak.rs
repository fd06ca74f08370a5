//! What a session plays to its call: `<Say>`, `<Play>`, `<Pause>`, and the prompts a
//! `<Gather>` renders ahead.

use super::twiml::{self, Verb};
use super::*;
use crate::call::{CallCommand, EventKind};
use crate::services::prompts::SayPart;
use std::time::Duration;
use switchboard_media::{Part, Prompt};
use tracing::warn;

impl Session {
    /// Plays a prompt and waits for its end.
    pub(super) async fn play_prompt(
        &mut self,
        clip: switchboard_media::Prompt,
        loops: u32,
    ) -> Result<(), Flow> {
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

    /// Says plain `text`.
    pub(super) async fn say(
        &mut self,
        text: &str,
        voice: Option<&str>,
        language: Option<&str>,
        loops: u32,
    ) -> Result<(), Flow> {
        let say = twiml::Say {
            text: text.to_owned(),
            parts: SayPart::words(text),
            voice: voice.map(str::to_owned),
            language: language.map(str::to_owned),
            loops,
        };
        self.say_verb(&say).await
    }

    /// `<Say>`: its words and pauses (its SSML rendered down), `loop` times.
    pub(super) async fn say_verb(&mut self, say: &twiml::Say) -> Result<(), Flow> {
        if say.text.is_empty() {
            return Ok(());
        }
        let (parts, _) = self.say_parts(say).await?;
        self.play_prompt(Prompt::new(parts), say.loops).await
    }

    /// A `<Say>`'s parts as a prompt's, and the most samples its speech may come to.
    async fn say_parts(&self, say: &twiml::Say) -> Result<(Vec<Part>, usize), Flow> {
        let (parts, spoken) = self
            .apps
            .prompts
            .say_parts(
                &say.parts,
                say.voice.as_deref(),
                say.language.as_deref(),
                &self.account.sid,
            )
            .await
            .map_err(|e| Flow::Failed(AppError::unsupported(e.to_string())))?;
        let silence: usize = parts
            .iter()
            .filter_map(|p| match p {
                Part::Silence(n) => Some(*n),
                _ => None,
            })
            .sum();
        let most = spoken.iter().map(|s| s.most_samples).sum::<usize>() + silence;
        Ok((parts, most))
    }

    pub(super) async fn play(&mut self, play: &twiml::Play, base: &str) -> Result<(), Flow> {
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
        match self.apps.prompts.url(&url, self.account.reach).await {
            Ok(clip) => self.play_prompt(clip.into(), play.loops).await,
            // Twilio logs a warning and goes on with the next verb.
            Err(e) => {
                warn!(url = %crate::infra::secret::redact_url(&url), error = %e, "cannot play");
                Ok(())
            }
        }
    }

    pub(super) async fn pause(&mut self, secs: u32) -> Result<(), Flow> {
        self.pause_ms(secs as u64 * 1000).await
    }

    /// Waits (on the call's alarm, timed by the core), ending early if the call ends or is
    /// redirected.
    pub(super) async fn pause_ms(&mut self, ms: u64) -> Result<(), Flow> {
        let alarm = self.set_alarm(Duration::from_millis(ms)).await?;
        self.until(|e| matches!(e, EventKind::Alarm { id } if *id == alarm))
            .await?;
        Ok(())
    }

    /// A `<Gather>` prompt as the parts of one playback: speech or a fetched file (one shared
    /// clip however often it repeats), or silence (a length, no samples). `budget` is the audio
    /// the gather may still hold; a prompt past it is left out.
    pub(super) async fn render(
        &mut self,
        prompt: &Verb,
        base: &str,
        budget: &mut PromptBudget,
    ) -> Result<Vec<Part>, Flow> {
        // What it is, the most samples it holds, and how often it plays.
        let (sound, most, loops) = match prompt {
            Verb::Say(s) if s.text.is_empty() => return Ok(Vec::new()),
            Verb::Say(s) => {
                let (parts, most) = self.say_parts(s).await?;
                (parts, most, s.loops)
            }
            Verb::Play(p) if p.url.is_some() => {
                let url =
                    resolve(base, p.url.as_deref().unwrap_or_default()).map_err(Flow::Failed)?;
                match self.apps.prompts.url(&url, self.account.reach).await {
                    Ok(clip) => (vec![Part::Audio(clip.clone(), 1)], clip.len(), p.loops),
                    Err(e) => {
                        warn!(url = %crate::infra::secret::redact_url(&url), error = %e, "cannot play");
                        return Ok(Vec::new());
                    }
                }
            }
            Verb::Pause { length_secs } => {
                let samples = length_secs.saturating_mul(1000).min(MAX_PROMPT_MS) as usize * 8;
                let times = budget.play(samples as u64, 1);
                return Ok(std::iter::repeat_n(Part::Silence(samples), times as usize).collect());
            }
            _ => return Ok(Vec::new()),
        };
        if !budget.hold(most) {
            warn!(
                "<Gather>: its prompts hold more audio than one gather may; the rest is left out"
            );
            return Ok(Vec::new());
        }
        let times = budget.play(most as u64, loops.max(1) as u64);
        Ok(match sound.as_slice() {
            // One sound: one part played that often (one shared clip).
            [one] if times > 0 => vec![one.clone().played(times as u32)],
            _ => (0..times).flat_map(|_| sound.iter().cloned()).collect(),
        })
    }
}
