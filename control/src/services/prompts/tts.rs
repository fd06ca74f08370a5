//! Text to speech behind a small trait, with espeak-ng as the local engine, and the mapping
//! of provider voice names (Twilio `man`/`woman`/`alice`/`Polly.*`/`Google.*`, Telnyx
//! `male`/`female`/`AWS.Polly.*`/`Azure.*`) and language codes onto local voices.

use super::PromptError;
use std::io::Write;
use std::process::{Command, Stdio};
use switchboard_media::decode::decode_to_8k;

/// Longer texts are refused, as Twilio refuses `<Say>` over 4,096 characters.
pub const MAX_TEXT_CHARS: usize = 4096;

/// A speech engine. A text is cut into pieces, each rendered on its own: the memory one
/// synthesis takes is bounded by a piece, and a call hears the first piece while the rest
/// render. `pieces` and `render` block; callers run them off the async threads.
pub trait Tts: Send + Sync {
    /// Names the engine and its settings in cache keys.
    fn id(&self) -> &str;
    /// The engine's own voice for what was asked, and the fallback taken, if any.
    fn pick(&self, voice: &Voice) -> (String, Option<String>);
    /// `text` cut into the pieces [`Tts::render`] takes, in the engine voice `voice` (from
    /// [`Tts::pick`]); what a piece holds is the engine's business (Piper's are phonemes).
    fn pieces(&self, text: &str, voice: &str) -> Result<Vec<String>, PromptError>;
    /// Speech for one piece, 8 kHz mono, at `rate` times the voice's own pace (SSML's
    /// `<prosody rate>`; 1.0 is its pace, within [`RATES`]).
    fn render(&self, piece: &str, voice: &str, rate: f32) -> Result<Vec<i16>, PromptError>;
    /// [`Tts::render`]'s speech handed to `out` in parts, in order, as the engine makes them:
    /// an engine that makes a piece's first sound before its last (Piper's vocoder) gives it
    /// at once, so that it plays while the rest is made; others give the piece whole.
    fn render_streamed(
        &self,
        piece: &str,
        voice: &str,
        rate: f32,
        out: &mut dyn FnMut(Vec<i16>),
    ) -> Result<(), PromptError> {
        out(self.render(piece, voice, rate)?);
        Ok(())
    }
    /// How many pieces it can render at once.
    fn parallel(&self) -> usize {
        1
    }
    /// Whether the engine can run here: its version, or what is missing. Checked at
    /// start-up, so that an operator learns of it then rather than in a call.
    fn check(&self) -> Result<String, String>;
}

/// The paces a voice is asked for, as SSML's `<prosody rate>` bounds them (20 % to 200 %).
pub const RATES: std::ops::RangeInclusive<f32> = 0.2..=2.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gender {
    Male,
    Female,
}

/// What a provider voice name and language ask for, in engine-neutral terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voice {
    /// Lower-case BCP 47 tag, e.g. `en-us`.
    pub language: String,
    pub gender: Gender,
    /// Why the request could not be honoured exactly, when it could not.
    pub fallback: Option<String>,
    /// The engine the operator maps the voice's provider to, when they map it.
    pub engine: Option<switchboard_speech::EngineKind>,
}

/// Amazon Polly voices by name: language and gender (Twilio `Polly.Joanna`,
/// `Polly.Joanna-Neural`; Telnyx `Polly.Joanna`, `AWS.Polly.Joanna-Neural`).
const POLLY: &[(&str, &str, Gender)] = {
    use Gender::{Female as F, Male as M};
    &[
        ("joanna", "en-us", F),
        ("salli", "en-us", F),
        ("kimberly", "en-us", F),
        ("kendra", "en-us", F),
        ("ivy", "en-us", F),
        ("ruth", "en-us", F),
        ("danielle", "en-us", F),
        ("matthew", "en-us", M),
        ("justin", "en-us", M),
        ("joey", "en-us", M),
        ("kevin", "en-us", M),
        ("stephen", "en-us", M),
        ("gregory", "en-us", M),
        ("amy", "en-gb", F),
        ("emma", "en-gb", F),
        ("brian", "en-gb", M),
        ("arthur", "en-gb", M),
        ("nicole", "en-au", F),
        ("olivia", "en-au", F),
        ("russell", "en-au", M),
        ("raveena", "en-in", F),
        ("aditi", "en-in", F),
        ("kajal", "en-in", F),
        ("geraint", "en-gb-wls", M),
        ("celine", "fr-fr", F),
        ("céline", "fr-fr", F),
        ("lea", "fr-fr", F),
        ("léa", "fr-fr", F),
        ("mathieu", "fr-fr", M),
        ("remi", "fr-fr", M),
        ("chantal", "fr-ca", F),
        ("gabrielle", "fr-ca", F),
        ("liam", "fr-ca", M),
        ("marlene", "de-de", F),
        ("vicki", "de-de", F),
        ("hans", "de-de", M),
        ("daniel", "de-de", M),
        ("conchita", "es-es", F),
        ("lucia", "es-es", F),
        ("enrique", "es-es", M),
        ("sergio", "es-es", M),
        ("mia", "es-mx", F),
        ("andres", "es-mx", M),
        ("penelope", "es-us", F),
        ("lupe", "es-us", F),
        ("miguel", "es-us", M),
        ("pedro", "es-us", M),
        ("carla", "it-it", F),
        ("bianca", "it-it", F),
        ("giorgio", "it-it", M),
        ("adriano", "it-it", M),
        ("camila", "pt-br", F),
        ("vitoria", "pt-br", F),
        ("ricardo", "pt-br", M),
        ("thiago", "pt-br", M),
        ("ines", "pt-pt", F),
        ("cristiano", "pt-pt", M),
        ("lotte", "nl-nl", F),
        ("laura", "nl-nl", F),
        ("ruben", "nl-nl", M),
        ("mizuki", "ja-jp", F),
        ("kazuha", "ja-jp", F),
        ("takumi", "ja-jp", M),
        ("seoyeon", "ko-kr", F),
        ("zhiyu", "cmn-cn", F),
        ("tatyana", "ru-ru", F),
        ("maxim", "ru-ru", M),
        ("ewa", "pl-pl", F),
        ("maja", "pl-pl", F),
        ("jacek", "pl-pl", M),
        ("jan", "pl-pl", M),
        ("astrid", "sv-se", F),
        ("elin", "sv-se", F),
        ("naja", "da-dk", F),
        ("mads", "da-dk", M),
        ("liv", "nb-no", F),
        ("filiz", "tr-tr", F),
        ("zeina", "arb", F),
        ("hala", "ar-ae", F),
        ("carmen", "ro-ro", F),
        ("dora", "is-is", F),
        ("karl", "is-is", M),
        ("gwyneth", "cy-gb", F),
    ]
};

/// Maps a provider's voice name and `language` onto a [`Voice`]. Twilio's default (no
/// voice) is `man`, its default language `en-US`.
/// The provider a voice's name names (`Polly.Joanna` and `AWS.Polly.Joanna` Amazon's,
/// `Google.…` Google's, Telnyx's `ElevenLabs.…`, `Azure.…`, `Telnyx.…`), lower case, for the
/// operator's map of providers to engines.
pub fn provider_of_voice(voice: &str) -> Option<&'static str> {
    let name = voice.trim().to_ascii_lowercase();
    let prefixes = [
        ("polly.", "amazon"),
        ("aws.", "amazon"),
        ("google.", "google"),
        ("elevenlabs.", "elevenlabs"),
        ("azure.", "azure"),
        ("telnyx.", "telnyx"),
    ];
    (prefixes.iter())
        .find(|(prefix, _)| name.starts_with(prefix))
        .map(|(_, provider)| *provider)
}

/// `voice` as `provider` names its voices (`ElevenLabs.Rachel`; `Google.` for a bare
/// `en-US-Journey-O`), unless its name names a provider already: what tells the operator's
/// map which provider a ConversationRelay's `ttsProvider` voice is of.
pub fn named_by(provider: &str, voice: Option<&str>) -> String {
    let voice = voice.unwrap_or_default().trim();
    if provider_of_voice(voice).is_some() {
        return voice.to_owned();
    }
    match provider.to_ascii_lowercase().as_str() {
        // Amazon's voices are Polly's (`Polly.Joanna`).
        "amazon" | "aws" => format!("Polly.{voice}"),
        _ => format!("{provider}.{voice}"),
    }
}

pub fn resolve_voice(voice: Option<&str>, language: Option<&str>) -> Voice {
    let asked_language = language.map(|l| l.trim().to_ascii_lowercase());
    let default_language = || asked_language.clone().unwrap_or_else(|| "en-us".into());
    let name = voice.map(str::trim).unwrap_or("").to_ascii_lowercase();
    let named = |language: String, gender| Voice {
        language,
        gender,
        fallback: None,
        engine: None,
    };
    let mut resolved = match name.as_str() {
        "" | "man" | "male" => named(default_language(), Gender::Male),
        "woman" | "female" | "alice" => named(default_language(), Gender::Female),
        _ => {
            let stripped = name
                .strip_prefix("aws.")
                .unwrap_or(&name)
                .strip_prefix("polly.");
            if let Some(polly) = stripped {
                let base = polly.split('-').next().unwrap_or(polly);
                match POLLY.iter().find(|(n, ..)| *n == base) {
                    Some((_, lang, gender)) => named((*lang).into(), *gender),
                    None => Voice {
                        language: default_language(),
                        gender: Gender::Female,
                        fallback: Some(format!("unknown Polly voice {voice:?}")),
                        engine: None,
                    },
                }
            } else if let Some(rest) = ["google.", "azure."]
                .iter()
                .find_map(|p| name.strip_prefix(p))
            {
                // Google.en-US-Standard-C, Azure.en-US-JennyNeural: the language is in the
                // name; the gender is not, so the common default (female) is used.
                let language: Vec<&str> = rest.split('-').take(2).collect();
                Voice {
                    language: language.join("-"),
                    gender: Gender::Female,
                    fallback: None,
                    engine: None,
                }
            } else {
                Voice {
                    language: default_language(),
                    gender: Gender::Female,
                    fallback: Some(format!("unknown voice {voice:?}")),
                    engine: None,
                }
            }
        }
    };
    if resolved.language.is_empty() {
        resolved.language = default_language();
    }
    resolved
}

/// BCP 47 tags (full tag first, then the primary language) to espeak-ng voices.
const ESPEAK_LANGUAGES: &[(&str, &str)] = &[
    ("en-us", "en-us"),
    ("en-gb", "en-gb"),
    ("en-gb-wls", "en-gb"),
    ("en-au", "en-gb"),
    ("en-nz", "en-gb"),
    ("en-ie", "en-gb"),
    ("en-za", "en-gb"),
    ("en-in", "en-gb"),
    ("en", "en-us"),
    ("es-es", "es"),
    ("es", "es-419"),
    ("fr-be", "fr-be"),
    ("fr-ch", "fr-ch"),
    ("fr", "fr-fr"),
    ("pt-br", "pt-br"),
    ("pt", "pt"),
    ("de", "de"),
    ("it", "it"),
    ("nl", "nl"),
    ("ja", "ja"),
    ("ko", "ko"),
    ("cmn", "cmn"),
    ("zh-hk", "yue"),
    ("yue", "yue"),
    ("zh", "cmn"),
    ("ru", "ru"),
    ("pl", "pl"),
    ("sv", "sv"),
    ("da", "da"),
    ("nb", "nb"),
    ("no", "nb"),
    ("fi", "fi"),
    ("tr", "tr"),
    ("arb", "ar"),
    ("ar", "ar"),
    ("hi", "hi"),
    ("el", "el"),
    ("cs", "cs"),
    ("hu", "hu"),
    ("ro", "ro"),
    ("uk", "uk"),
    ("vi", "vi"),
    ("id", "id"),
    ("ms", "ms"),
    ("th", "th"),
    ("he", "he"),
    ("ca", "ca"),
    ("is", "is"),
    ("cy", "cy"),
    ("bg", "bg"),
    ("hr", "hr"),
    ("sk", "sk"),
    ("sl", "sl"),
    ("sr", "sr"),
    ("et", "et"),
    ("lv", "lv"),
    ("lt", "lt"),
    ("ta", "ta"),
    ("te", "te"),
    ("bn", "bn"),
    ("ur", "ur"),
    ("fa", "fa"),
    ("sw", "sw"),
    ("af", "af"),
];

/// The espeak-ng voice for a language: the full tag, then its primary subtag; `None` when
/// espeak-ng has neither.
pub fn espeak_language(language: &str) -> Option<&'static str> {
    let lookup = |tag: &str| {
        ESPEAK_LANGUAGES
            .iter()
            .find(|(l, _)| *l == tag)
            .map(|(_, v)| *v)
    };
    lookup(language).or_else(|| lookup(language.split('-').next().unwrap_or(language)))
}

/// espeak-ng run as a program, one process per render. The library (libespeak-ng) keeps one
/// synthesiser per process behind global state, so in-process calls would be serialised and
/// a fault in it would take the server down; a process per prompt costs about 12 ms here and
/// renders are cached.
pub struct EspeakNg {
    program: String,
    /// Words per minute; espeak's own default (175) is brisker than telephony prompts.
    speed: u32,
}

impl Default for EspeakNg {
    fn default() -> Self {
        Self {
            program: "espeak-ng".into(),
            speed: 155,
        }
    }
}

impl Tts for EspeakNg {
    fn id(&self) -> &str {
        "espeak-ng"
    }

    /// The espeak-ng voice argument (`en-us+f3`).
    fn pick(&self, voice: &Voice) -> (String, Option<String>) {
        let (language, fallback) = match espeak_language(&voice.language) {
            Some(l) => (l, voice.fallback.clone()),
            None => (
                "en-us",
                Some(format!("no local voice for language {:?}", voice.language)),
            ),
        };
        let variant = match voice.gender {
            Gender::Male => "",
            Gender::Female => "+f3",
        };
        (format!("{language}{variant}"), fallback)
    }

    fn check(&self) -> Result<String, String> {
        let out = Command::new(&self.program)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                format!(
                    "{} cannot run ({e}): install the espeak-ng package",
                    self.program
                )
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        match text.lines().next() {
            Some(line) if out.status.success() => Ok(line.trim().to_owned()),
            _ => Err(format!("{} --version failed: {}", self.program, out.status)),
        }
    }

    /// The whole text is one piece: espeak-ng's memory does not grow with it, and it renders
    /// about fifty times faster than it speaks.
    fn pieces(&self, text: &str, _voice: &str) -> Result<Vec<String>, PromptError> {
        Ok(vec![text.to_owned()])
    }

    /// One process per piece: as many at once as there are cores.
    fn parallel(&self) -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    fn render(&self, text: &str, voice_arg: &str, rate: f32) -> Result<Vec<i16>, PromptError> {
        let failed = |e: String| PromptError::Tts(format!("{}: {e}", self.program));
        // espeak-ng takes 80 to 450 words a minute.
        let speed = (self.speed as f32 * rate.clamp(*RATES.start(), *RATES.end())) as u32;
        let mut child = Command::new(&self.program)
            .args([
                "-v",
                voice_arg,
                "-s",
                &speed.clamp(80, 450).to_string(),
                "--stdout",
                "--stdin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(e.to_string()))?;
        // The text goes through stdin so that nothing in it is read as an option.
        let mut stdin = child.stdin.take().expect("piped");
        let written = stdin.write_all(text.as_bytes());
        drop(stdin);
        let output = child
            .wait_with_output()
            .map_err(|e| failed(e.to_string()))?;
        written.map_err(|e| failed(e.to_string()))?;
        if !output.status.success() {
            return Err(failed(format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        decode_to_8k(output.stdout, Some("wav")).map_err(|e| failed(e.to_string()))
    }
}

/// An engine that can be replaced while the server runs: the first start speaks with
/// espeak-ng while the natural voice is fetched, then with it.
pub struct Swappable {
    /// The engine, and its id (leaked once per engine put in: a server swaps once or twice).
    current: std::sync::RwLock<(std::sync::Arc<dyn Tts>, &'static str)>,
}

impl Swappable {
    pub fn new(engine: std::sync::Arc<dyn Tts>) -> Self {
        let id: &'static str = Box::leak(engine.id().to_owned().into_boxed_str());
        Self {
            current: std::sync::RwLock::new((engine, id)),
        }
    }

    /// Speaks with `engine` from now on (a piece being rendered finishes with the old one).
    pub fn swap(&self, engine: std::sync::Arc<dyn Tts>) {
        let id: &'static str = Box::leak(engine.id().to_owned().into_boxed_str());
        *self.current.write().expect("not poisoned") = (engine, id);
    }

    fn engine(&self) -> std::sync::Arc<dyn Tts> {
        self.current.read().expect("not poisoned").0.clone()
    }
}

impl Tts for Swappable {
    fn id(&self) -> &str {
        self.current.read().expect("not poisoned").1
    }
    fn pick(&self, voice: &Voice) -> (String, Option<String>) {
        self.engine().pick(voice)
    }
    fn pieces(&self, text: &str, voice: &str) -> Result<Vec<String>, PromptError> {
        self.engine().pieces(text, voice)
    }
    fn render(&self, piece: &str, voice: &str, rate: f32) -> Result<Vec<i16>, PromptError> {
        self.engine().render(piece, voice, rate)
    }
    fn render_streamed(
        &self,
        piece: &str,
        voice: &str,
        rate: f32,
        out: &mut dyn FnMut(Vec<i16>),
    ) -> Result<(), PromptError> {
        self.engine().render_streamed(piece, voice, rate, out)
    }
    fn parallel(&self) -> usize {
        self.engine().parallel()
    }
    fn check(&self) -> Result<String, String> {
        self.engine().check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilio_and_telnyx_voice_names_map_to_language_and_gender() {
        let v = |voice: Option<&str>, lang: Option<&str>| {
            let r = resolve_voice(voice, lang);
            (r.language, r.gender, r.fallback.is_some())
        };
        use Gender::*;
        assert_eq!(v(None, None), ("en-us".into(), Male, false));
        assert_eq!(v(Some("man"), Some("en-GB")), ("en-gb".into(), Male, false));
        assert_eq!(
            v(Some("woman"), Some("fr-FR")),
            ("fr-fr".into(), Female, false)
        );
        assert_eq!(
            v(Some("alice"), Some("es-MX")),
            ("es-mx".into(), Female, false)
        );
        assert_eq!(
            v(Some("Polly.Matthew"), None),
            ("en-us".into(), Male, false)
        );
        assert_eq!(
            v(Some("Polly.Joanna-Neural"), None),
            ("en-us".into(), Female, false)
        );
        assert_eq!(
            v(Some("Polly.Hans"), Some("en-US")),
            ("de-de".into(), Male, false)
        );
        assert_eq!(
            v(Some("AWS.Polly.Brian-Neural"), None),
            ("en-gb".into(), Male, false)
        );
        assert_eq!(
            v(Some("Google.de-DE-Standard-A"), None),
            ("de-de".into(), Female, false)
        );
        assert_eq!(
            v(Some("Azure.en-GB-RyanNeural"), None),
            ("en-gb".into(), Female, false)
        );
        assert_eq!(
            v(Some("female"), Some("ja-JP")),
            ("ja-jp".into(), Female, false)
        );
        // Unknown names fall back, and say so.
        assert_eq!(
            v(Some("Polly.Nobody"), None),
            ("en-us".into(), Female, true)
        );
        assert_eq!(
            v(Some("robot"), Some("it-IT")),
            ("it-it".into(), Female, true)
        );
    }

    /// A voice's name names its provider, for the operator's map; a ConversationRelay's
    /// `ttsProvider` names a bare voice the provider's way.
    #[test]
    fn voices_name_their_providers() {
        assert_eq!(provider_of_voice("Polly.Joanna-Neural"), Some("amazon"));
        assert_eq!(provider_of_voice("AWS.Polly.Joanna"), Some("amazon"));
        assert_eq!(provider_of_voice("Google.en-US-Standard-C"), Some("google"));
        assert_eq!(provider_of_voice("ElevenLabs.Rachel"), Some("elevenlabs"));
        assert_eq!(provider_of_voice("alice"), None);
        assert_eq!(named_by("ElevenLabs", Some("Rachel")), "ElevenLabs.Rachel");
        assert_eq!(
            named_by("Google", Some("en-US-Journey-O")),
            "Google.en-US-Journey-O"
        );
        assert_eq!(named_by("Amazon", Some("Joanna")), "Polly.Joanna");
        assert_eq!(named_by("Google", Some("Polly.Joanna")), "Polly.Joanna");
        assert_eq!(
            resolve_voice(Some(&named_by("Amazon", Some("Matthew"))), None).gender,
            Gender::Male
        );
    }

    #[test]
    fn languages_map_to_espeak_voices_with_a_clear_fallback() {
        let e = EspeakNg::default();
        let arg = |lang: &str, gender| {
            e.pick(&Voice {
                language: lang.into(),
                gender,
                fallback: None,
                engine: None,
            })
        };
        assert_eq!(arg("en-us", Gender::Male), ("en-us".into(), None));
        assert_eq!(arg("en-au", Gender::Female), ("en-gb+f3".into(), None));
        assert_eq!(arg("es-mx", Gender::Male), ("es-419".into(), None));
        assert_eq!(arg("pt-br", Gender::Male), ("pt-br".into(), None));
        assert_eq!(arg("cmn-cn", Gender::Female), ("cmn+f3".into(), None));
        let (voice, fallback) = arg("tlh", Gender::Male);
        assert_eq!(voice, "en-us");
        assert!(fallback.unwrap().contains("tlh"));
    }

    #[test]
    fn every_mapped_espeak_voice_is_installed() {
        let out = Command::new("espeak-ng").arg("--voices").output().unwrap();
        let list = String::from_utf8(out.stdout).unwrap();
        let installed: Vec<&str> = list
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(1))
            .collect();
        for (_, voice) in ESPEAK_LANGUAGES {
            assert!(installed.contains(voice), "espeak-ng has no voice {voice}");
        }
    }
}
