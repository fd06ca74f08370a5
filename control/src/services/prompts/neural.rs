//! The neural voice for English: a Piper voice ([`switchboard_speech::piper`]) fed
//! with espeak-ng's IPA phonemes, clause by clause with the clause's punctuation (as Piper's
//! own phonemizer gives them: the voice was trained on that), sentence by sentence. Every
//! other language, and English when the voice fails, is espeak-ng's.

use super::PromptError;
use super::tts::{EspeakNg, Tts, Voice};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use switchboard_speech::piper::PiperVoice;

/// The engine voice [`Tts::pick`] names the Piper voice by.
const PIPER_VOICE: &str = "piper:en_US-joe-medium";
/// Piper's speech peaks at 0.26 to 0.59 of full scale from one sentence to the next (measured
/// on ten phone sentences), its loudness steadier (RMS 0.047 to 0.074): this gain takes the
/// usual peak to about 0.8, loud enough with room for the codec. Piper's own program scales
/// each sentence to its peak instead, which needs the whole sentence before its first sample
/// goes out (and made the shortest ones the loudest).
const GAIN: f32 = 1.6;

pub struct Neural {
    /// One voice per core, each rendering one piece at a time (a session is not shared
    /// between threads; each runs on one thread): as many pieces render at once as there
    /// are voices. Whose piece goes next is the caller's to decide (see `prompts::turns`,
    /// given [`Tts::parallel`]).
    pipers: Vec<std::sync::Mutex<PiperVoice>>,
    espeak: EspeakNg,
}

/// Piper starts each rendering with about 90 ms of silence; this much of it is kept (a
/// clause's first sound is not clipped), the rest would only delay the agent's first word.
const LEAD_KEPT_MS: usize = 15;
/// A sample this loud (of full scale, before [`GAIN`]) is sound, not the silence before it.
const LEAD_SOUND: f32 = 0.01;

/// The longest phoneme string given to the voice at once. Its memory grows with the input's
/// length (one 1,600-character clause took 1.96 GB), so longer clauses are cut at word
/// boundaries into pieces of at most this many characters.
const MAX_PIECE_CHARS: usize = 120;

/// `sentence` cut into pieces of at most [`MAX_PIECE_CHARS`] characters at spaces (a word
/// longer than that is a piece of its own, cut at the limit).
pub(crate) fn pieces(sentence: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut piece = String::new();
    for word in sentence.split_whitespace() {
        let mut word = word;
        while word.chars().count() > MAX_PIECE_CHARS {
            if !piece.is_empty() {
                out.push(std::mem::take(&mut piece));
            }
            let cut = word
                .char_indices()
                .nth(MAX_PIECE_CHARS)
                .map_or(word.len(), |(i, _)| i);
            out.push(word[..cut].to_owned());
            word = &word[cut..];
        }
        if word.is_empty() {
            continue;
        }
        if !piece.is_empty() && piece.chars().count() + 1 + word.chars().count() > MAX_PIECE_CHARS {
            out.push(std::mem::take(&mut piece));
        }
        if !piece.is_empty() {
            piece.push(' ');
        }
        piece.push_str(word);
    }
    if !piece.is_empty() {
        out.push(piece);
    }
    out
}

impl Neural {
    /// The Piper voice under the speech folder, or what is missing.
    pub fn open(speech_dir: &Path) -> Result<Self, String> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pipers = (0..cores)
            .map(|_| PiperVoice::open(speech_dir).map(std::sync::Mutex::new))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            pipers,
            espeak: EspeakNg::default(),
        })
    }

    /// A voice nobody is rendering with (there is one while fewer than [`Tts::parallel`]
    /// pieces render), else the first, waited for.
    fn piper(&self) -> std::sync::MutexGuard<'_, PiperVoice> {
        (self.pipers.iter())
            .find_map(|p| p.try_lock().ok())
            .unwrap_or_else(|| self.pipers[0].lock().expect("piper voice"))
    }

    /// espeak-ng's IPA for `text`, one line per clause.
    fn phonemes(&self, text: &str) -> Result<String, PromptError> {
        let failed = |e: String| PromptError::Tts(format!("espeak-ng --ipa: {e}"));
        let mut child = Command::new("espeak-ng")
            .args(["-q", "--ipa", "-v", "en-us", "--stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| failed(e.to_string()))?;
        let mut stdin = child.stdin.take().expect("piped");
        let written = stdin.write_all(text.as_bytes());
        drop(stdin);
        let out = child
            .wait_with_output()
            .map_err(|e| failed(e.to_string()))?;
        written.map_err(|e| failed(e.to_string()))?;
        if !out.status.success() {
            return Err(failed(out.status.to_string()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The text's clause punctuation, in order (what espeak-ng ends each clause on).
fn terminators(text: &str) -> Vec<char> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .iter()
        .enumerate()
        .filter(|(i, c)| {
            matches!(c, '.' | '!' | '?' | ',' | ';' | ':')
                && chars.get(i + 1).is_none_or(|n| n.is_whitespace())
        })
        .map(|(_, c)| *c)
        .collect()
}

/// Piper's sentences: each clause's phonemes with its punctuation (and a space after a
/// clause that does not end the sentence). When the punctuation found in the text does not
/// match espeak-ng's clauses (an abbreviation's dot, say), clauses are joined by commas.
pub(crate) fn sentences(text: &str, ipa: &str) -> Vec<String> {
    let clauses: Vec<&str> = ipa
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut ends = terminators(text);
    if ends.len() != clauses.len() {
        ends = vec![','; clauses.len().saturating_sub(1)];
        ends.push('.');
    }
    let mut out = Vec::new();
    let mut sentence = String::new();
    for (clause, end) in clauses.iter().zip(ends) {
        sentence.push_str(clause);
        sentence.push(end);
        if matches!(end, '.' | '!' | '?') {
            out.push(std::mem::take(&mut sentence));
        } else {
            sentence.push(' ');
        }
    }
    if !sentence.trim().is_empty() {
        out.push(sentence.trim_end().to_owned());
    }
    out
}

impl Tts for Neural {
    fn id(&self) -> &str {
        "piper+espeak-ng"
    }

    fn parallel(&self) -> usize {
        self.pipers.len()
    }

    fn pick(&self, voice: &Voice) -> (String, Option<String>) {
        if voice.language.starts_with("en") {
            (PIPER_VOICE.to_owned(), voice.fallback.clone())
        } else {
            self.espeak.pick(voice)
        }
    }

    fn check(&self) -> Result<String, String> {
        self.espeak
            .check()
            .map(|v| format!("Piper en_US-joe-medium for English, {v} for the rest"))
    }

    /// Piper's pieces: each sentence's phonemes, long clauses cut at word boundaries.
    fn pieces(&self, text: &str, voice: &str) -> Result<Vec<String>, PromptError> {
        if voice != PIPER_VOICE {
            return self.espeak.pieces(text, voice);
        }
        let ipa = self.phonemes(text)?;
        let out: Vec<String> = sentences(text, &ipa)
            .iter()
            .flat_map(|s| pieces(s))
            .collect();
        if out.is_empty() {
            return Err(PromptError::Tts("the text has nothing to say".into()));
        }
        Ok(out)
    }

    fn render(&self, piece: &str, voice: &str, pace: f32) -> Result<Vec<i16>, PromptError> {
        let mut all = Vec::new();
        self.render_streamed(piece, voice, pace, &mut |part| all.extend(part))?;
        Ok(all)
    }

    /// A piece's phonemes spoken at 8 kHz, handed out as Piper's vocoder makes them (the
    /// first part ~20 ms after the front's frames), its leading silence cut.
    fn render_streamed(
        &self,
        piece: &str,
        voice: &str,
        pace: f32,
        out: &mut dyn FnMut(Vec<i16>),
    ) -> Result<(), PromptError> {
        if voice != PIPER_VOICE {
            return self.espeak.render_streamed(piece, voice, pace, out);
        }
        let failed = |e: String| PromptError::Tts(e);
        let mut piper = self.piper();
        let pace = pace.clamp(*super::tts::RATES.start(), *super::tts::RATES.end());
        let mut lead = LeadCut::new(piper.sample_rate);
        let mut narrowing = switchboard_media::decode::Narrowing::from_rate(piper.sample_rate)
            .map_err(|e| failed(e.to_string()))?;
        let mut narrowed = Ok(());
        piper
            .synthesize_at(piece, pace, &mut |part| {
                let part: Vec<f32> = (lead.cut(part).iter())
                    .map(|s| (s * GAIN).clamp(-1.0, 1.0))
                    .collect();
                if narrowed.is_ok() {
                    narrowed = narrowing.push_all(&part);
                    let made = narrowing.take();
                    if !made.is_empty() {
                        out(made);
                    }
                }
            })
            .map_err(|e| failed(e.to_string()))?;
        drop(piper);
        narrowed.map_err(|e| failed(e.to_string()))?;
        let tail = narrowing.finish().map_err(|e| failed(e.to_string()))?;
        if !tail.is_empty() {
            out(tail);
        }
        Ok(())
    }
}

/// Cuts a rendering's leading silence as its parts come: until the first sound, only the last
/// [`LEAD_KEPT_MS`] of silence is held back; from it on, everything passes.
struct LeadCut {
    /// Silence held back, `None` once sound has come.
    held: Option<Vec<f32>>,
    keep: usize,
}

impl LeadCut {
    fn new(rate: u32) -> Self {
        Self {
            held: Some(Vec::new()),
            keep: rate as usize * LEAD_KEPT_MS / 1000,
        }
    }

    /// What of `part` (and of the silence held before it) is to be heard.
    fn cut(&mut self, part: &[f32]) -> Vec<f32> {
        let Some(held) = &mut self.held else {
            return part.to_vec();
        };
        held.extend_from_slice(part);
        match held.iter().position(|s| s.abs() >= LEAD_SOUND) {
            Some(sound) => {
                let from = sound.saturating_sub(self.keep);
                let mut held = self.held.take().expect("held");
                held.drain(..from);
                held
            }
            None => {
                let extra = held.len().saturating_sub(self.keep);
                held.drain(..extra);
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renderings_leading_silence_is_cut_to_a_few_milliseconds_whatever_its_parts() {
        let rate = 22050u32;
        let mut audio = vec![0.001f32; rate as usize * 90 / 1000];
        let sound: Vec<f32> = (0..2205).map(|i| (i as f32 / 10.0).sin() * 0.5).collect();
        audio.extend(&sound);
        for part in [10_000, 1000, 100, 7] {
            let mut cut = LeadCut::new(rate);
            let heard: Vec<f32> = audio.chunks(part).flat_map(|p| cut.cut(p)).collect();
            let kept_ms = (heard.len() - sound.len()) * 1000 / rate as usize;
            assert!(
                (14..=15).contains(&kept_ms),
                "{kept_ms} ms kept in parts of {part}"
            );
            assert_eq!(
                heard[heard.len() - sound.len()..],
                sound[..],
                "the sound whole"
            );
        }
        let mut cut = LeadCut::new(rate);
        assert_eq!(cut.cut(&[0.5; 100]), [0.5; 100], "sound from the start");
        assert_eq!(
            cut.cut(&[0.0; 100]),
            [0.0; 100],
            "and what follows it, silent or not"
        );
    }

    #[test]
    fn long_clauses_are_cut_at_spaces_into_bounded_pieces() {
        let word = "wˈʌn";
        let clause = vec![word; 100].join(" ") + ".";
        let cut = pieces(&clause);
        assert!(cut.len() > 1);
        assert!(
            cut.iter().all(|p| p.chars().count() <= MAX_PIECE_CHARS),
            "{cut:?}"
        );
        assert_eq!(cut.join(" "), clause, "nothing lost, every word whole");
        assert_eq!(pieces("short one."), vec!["short one."]);
        let long_word = "a".repeat(300);
        let cut = pieces(&long_word);
        assert_eq!(cut.iter().map(|p| p.len()).sum::<usize>(), 300);
        assert!(cut.iter().all(|p| p.len() <= MAX_PIECE_CHARS));
    }

    #[test]
    fn clauses_get_their_punctuation_and_sentences_split_where_piper_splits_them() {
        let text = "Hello, thank you for calling. Please hold; an agent will be with you shortly! Is that ok?";
        let ipa = "həlˈoʊ\nθˈæŋk juː fɔːɹ kˈɔːlɪŋ\nplˈiːz hˈoʊld\nɐn ˈeɪdʒənt wɪl biː wɪð juː ʃˈɔːɹtli\nɪz ðæt ˌoʊkˈeɪ\n";
        assert_eq!(
            sentences(text, ipa),
            vec![
                "həlˈoʊ, θˈæŋk juː fɔːɹ kˈɔːlɪŋ.",
                "plˈiːz hˈoʊld; ɐn ˈeɪdʒənt wɪl biː wɪð juː ʃˈɔːɹtli!",
                "ɪz ðæt ˌoʊkˈeɪ?",
            ]
        );
        // No final punctuation; an abbreviation's dot espeak-ng does not end a clause on.
        assert_eq!(
            sentences("Good morning", "ɡʊd mˈɔːɹnɪŋ\n"),
            vec!["ɡʊd mˈɔːɹnɪŋ."]
        );
        assert_eq!(
            sentences("Call Dr. Smith now", "kˈɔːl dˈɑːktɚ smˈɪθ nˈaʊ\n"),
            vec!["kˈɔːl dˈɑːktɚ smˈɪθ nˈaʊ."]
        );
    }
}
