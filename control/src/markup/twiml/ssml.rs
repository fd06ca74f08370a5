//! SSML inside `<Say>` (and Telnyx's `speak` with `payload_type: ssml`), rendered down to what
//! the local voices can do: words, pauses (`<break>`, and the gap a `<p>` or `<s>` leaves),
//! pace (`<prosody rate>`), loudness (`<prosody volume>`), `<emphasis>` (as Amazon Polly
//! renders it: `strong` louder and slower, `reduced` softer and faster), and words spelled
//! (`<say-as interpret-as="digits|characters|spell-out|telephone">`) or replaced (`<sub
//! alias>`), and words in another language (`<lang xml:lang>`: spoken by that language's
//! voice). What the voices cannot render (`<prosody pitch>`, `<phoneme>`) keeps its words and
//! is warned about through the attribute table.

use super::tree::{Element, Node};
use crate::services::prompts::SayPart;

/// The longest `<break>` (Amazon Polly's, which Twilio's voices are).
const MAX_BREAK_MS: u32 = 10_000;
/// The most silence one document's SSML may ask for in all.
const MAX_PAUSES_MS: u32 = 600_000;
/// The pause a paragraph ends with, and a sentence.
const PARAGRAPH_MS: u32 = 500;
const SENTENCE_MS: u32 = 250;

/// A `<speak>` document's parts (Telnyx's `speak` with `payload_type: ssml`); the error says
/// what is malformed, or which markup the local voices cannot render (refused rather than
/// spoken differently: the API has no warnings to carry).
pub(crate) fn speak(xml: &str) -> Result<Vec<SayPart>, String> {
    let root = super::tree::parse(xml)?;
    if root.name != "speak" {
        return Err(format!(
            "an SSML document is a <speak>, not a <{}>",
            root.name
        ));
    }
    let mut as_say = root.clone();
    as_say.name = "Say".into();
    if let Some(w) = super::attributes::check(&as_say, true).first() {
        return Err(w.message.replace("<Say>", "<speak>"));
    }
    Ok(parts(&root))
}

/// The parts `e`'s content says (`e` is the `<Say>` or the `<speak>`).
pub(crate) fn parts(e: &Element) -> Vec<SayPart> {
    let mut out = Reader {
        parts: Vec::new(),
        paused: 0,
    };
    out.read(e, Style::VOICE);
    out.parts
}

/// How words are spoken: at what percentage of the voice's pace, how many dB louder, in
/// which language (`None`: the `<Say>`'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Style<'a> {
    percent: u16,
    gain_db: i8,
    language: Option<&'a str>,
}

impl Style<'_> {
    /// As the voice speaks.
    const VOICE: Self = Self {
        percent: 100,
        gain_db: 0,
        language: None,
    };
    /// The loudest and softest a document may ask for.
    const GAINS_DB: std::ops::RangeInclusive<i8> = -40..=12;

    fn louder(self, db: i8) -> Self {
        let gain_db =
            (self.gain_db.saturating_add(db)).clamp(*Self::GAINS_DB.start(), *Self::GAINS_DB.end());
        Self { gain_db, ..self }
    }

    /// `percent` of its pace, within 20–200 %.
    fn paced(self, percent: u16) -> Self {
        let scaled = u32::from(self.percent) * u32::from(percent) / 100;
        Self {
            percent: scaled.clamp(20, 200) as u16,
            ..self
        }
    }
}

struct Reader {
    parts: Vec<SayPart>,
    /// The silence asked for so far.
    paused: u32,
}

impl Reader {
    fn read<'a>(&mut self, e: &'a Element, style: Style<'a>) {
        for node in &e.children {
            match node {
                Node::Text(t) => self.words(t, style),
                Node::Element(c) => self.element(c, style),
            }
        }
    }

    fn element<'a>(&mut self, c: &'a Element, style: Style<'a>) {
        match c.name.as_str() {
            "break" => {
                let ms = match (c.attr("time").and_then(duration_ms), c.attr("strength")) {
                    (Some(ms), _) => ms,
                    (None, Some("none")) => 0,
                    (None, Some("x-weak")) => 100,
                    (None, Some("weak")) => 250,
                    (None, Some("strong")) => 750,
                    (None, Some("x-strong")) => 1000,
                    // `medium`, the default.
                    (None, _) => 500,
                };
                self.pause(ms.min(MAX_BREAK_MS));
            }
            "prosody" => {
                let mut inner = style;
                if let Some(rate) = c.attr("rate").and_then(pace) {
                    inner.percent = rate;
                }
                match c.attr("volume").and_then(volume_db) {
                    // `silent`: the words take their time, unheard.
                    Some(None) => inner = inner.louder(*Style::GAINS_DB.start()),
                    Some(Some(db)) => inner = inner.louder(db),
                    None => {}
                }
                self.read(c, inner);
            }
            "emphasis" => {
                let inner = match c.attr("level").unwrap_or("moderate") {
                    "strong" => style.louder(6).paced(90),
                    "reduced" => style.louder(-6).paced(110),
                    "none" => style,
                    // `moderate`, the default.
                    _ => style.louder(3),
                };
                self.read(c, inner);
            }
            "say-as" => {
                let text = c.text();
                let spelled = match c.attr("interpret-as") {
                    Some("digits" | "telephone") => spell(&text, |ch| ch.is_ascii_digit()),
                    Some("characters" | "spell-out" | "verbatim") => {
                        spell(&text, |ch| !ch.is_whitespace())
                    }
                    _ => text,
                };
                self.words(&spelled, style);
            }
            "sub" => match c.attr("alias") {
                Some(alias) => self.words(alias, style),
                None => self.read(c, style),
            },
            "lang" => {
                let mut inner = style;
                if let Some(tag) = c.attr("xml:lang").filter(|t| language_tag(t)) {
                    inner.language = Some(tag);
                }
                self.read(c, inner);
            }
            "p" | "s" => {
                self.read(c, style);
                self.pause(if c.name == "p" {
                    PARAGRAPH_MS
                } else {
                    SENTENCE_MS
                });
            }
            // Words kept, the rest not rendered (warned about by the attribute table).
            _ => self.read(c, style),
        }
    }

    /// Words, joined to the last part's when in the same style.
    fn words(&mut self, text: &str, style: Style<'_>) {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() {
            return;
        }
        if let Some(SayPart::Words {
            text: last,
            percent,
            gain_db,
            language,
        }) = self.parts.last_mut()
            && (*percent, *gain_db, language.as_deref())
                == (style.percent, style.gain_db, style.language)
        {
            last.push(' ');
            last.push_str(&text);
            return;
        }
        self.parts.push(SayPart::Words {
            text,
            percent: style.percent,
            gain_db: style.gain_db,
            language: style.language.map(str::to_owned),
        });
    }

    fn pause(&mut self, ms: u32) {
        let ms = ms.min(MAX_PAUSES_MS.saturating_sub(self.paused));
        if ms == 0 {
            return;
        }
        self.paused += ms;
        match self.parts.last_mut() {
            Some(SayPart::Pause { ms: last }) => *last += ms,
            _ => self.parts.push(SayPart::Pause { ms }),
        }
    }
}

/// Whether `tag` reads as a language tag (BCP 47's shape: a primary language of two or three
/// letters, then subtags of one to eight letters or digits; 35 characters at most).
fn language_tag(tag: &str) -> bool {
    let mut subtags = tag.split('-');
    let primary = subtags.next().unwrap_or_default();
    tag.len() <= 35
        && (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_alphabetic())
        && subtags
            .all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// `500ms`, `1.5s`.
fn duration_ms(s: &str) -> Option<u32> {
    let s = s.trim();
    let (number, scale) = match s.strip_suffix("ms") {
        Some(n) => (n, 1.0),
        None => (s.strip_suffix('s')?, 1000.0),
    };
    let v: f64 = number.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| (v * scale).min(f64::from(MAX_BREAK_MS)) as u32)
}

/// The first attribute of `e` the voices render whose value they cannot read (its name and
/// value), for the attribute table to warn about: such a value is otherwise spoken as if it
/// were not there.
pub(super) fn unreadable(e: &Element) -> Option<(&str, &str)> {
    /// An attribute and whether a value of it reads.
    type Check = (&'static str, fn(&str) -> bool);
    let checks: &[Check] = match e.name.as_str() {
        "prosody" => &[
            ("rate", |v| pace(v).is_some()),
            ("volume", |v| volume_db(v).is_some()),
        ],
        "emphasis" => &[("level", |v| {
            matches!(v, "strong" | "moderate" | "reduced" | "none")
        })],
        "lang" => &[("xml:lang", language_tag)],
        "break" => &[
            ("time", |v| duration_ms(v).is_some()),
            ("strength", |v| {
                matches!(
                    v,
                    "none" | "x-weak" | "weak" | "medium" | "strong" | "x-strong"
                )
            }),
        ],
        _ => &[],
    };
    checks.iter().find_map(|(name, readable)| {
        let value = e.attr(name)?;
        (!readable(value)).then_some((*name, value))
    })
}

/// `<prosody volume>` in dB (Amazon Polly's keywords and `+NdB`/`-NdB`); `Some(None)` for
/// `silent`; `None` for a value that is neither (the voice's own loudness then).
fn volume_db(volume: &str) -> Option<Option<i8>> {
    let db = match volume.trim() {
        "silent" => return Some(None),
        "x-soft" => -12,
        "soft" => -6,
        "medium" | "default" => 0,
        "loud" => 4,
        "x-loud" => 6,
        other => {
            let n: f64 = other.strip_suffix("dB")?.trim().parse().ok()?;
            if !n.is_finite() {
                return None;
            }
            n.round().clamp(-40.0, 12.0) as i8
        }
    };
    Some(Some(db))
}

/// `<prosody rate>` as a percentage of the voice's pace: a keyword or `N%`, within 20–200 %.
fn pace(rate: &str) -> Option<u16> {
    let percent = match rate.trim() {
        "x-slow" => 60.0,
        "slow" => 80.0,
        "medium" => 100.0,
        "fast" => 125.0,
        "x-fast" => 150.0,
        other => other.strip_suffix('%')?.trim().parse::<f64>().ok()?,
    };
    percent
        .is_finite()
        .then(|| percent.clamp(20.0, 200.0) as u16)
}

/// Each character `which` picks said alone (`123` → `1 2 3`), the others left out.
fn spell(text: &str, which: impl Fn(char) -> bool) -> String {
    let chars: Vec<String> = text
        .chars()
        .filter(|c| which(*c))
        .map(|c| c.to_string())
        .collect();
    chars.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(xml: &str) -> Vec<SayPart> {
        parts(&super::super::tree::parse(xml).unwrap())
    }

    fn words(text: &str, percent: u16) -> SayPart {
        louder(text, percent, 0)
    }

    fn louder(text: &str, percent: u16, gain_db: i8) -> SayPart {
        SayPart::Words {
            text: text.into(),
            percent,
            gain_db,
            language: None,
        }
    }

    #[test]
    fn words_in_another_language_are_a_part_of_their_own() {
        let in_spanish = |text: &str, percent| SayPart::Words {
            text: text.into(),
            percent,
            gain_db: 0,
            language: Some("es-MX".into()),
        };
        assert_eq!(
            said(
                r#"<Say>Press one. <lang xml:lang="es-MX">Marque uno. <prosody rate="slow">Gracias</prosody></lang> Thanks <lang xml:lang="not a tag">you</lang></Say>"#
            ),
            [
                words("Press one.", 100),
                in_spanish("Marque uno.", 100),
                in_spanish("Gracias", 80),
                // An unreadable tag keeps the words in the voice's language.
                words("Thanks you", 100),
            ]
        );
        assert!(language_tag("es") && language_tag("zh-Hant-TW") && language_tag("cmn"));
        assert!(!language_tag("e") && !language_tag("spanish") && !language_tag("es_MX"));
        assert!(!language_tag("es-") && !language_tag(&format!("es-{}", "a".repeat(40))));
    }

    #[test]
    fn breaks_pace_and_spelling_are_rendered_down_to_words_and_pauses() {
        assert_eq!(
            said(
                r#"<Say>Your code is <say-as interpret-as="digits">4 12</say-as>.<break time="1.5s"/><prosody rate="slow">Again: <say-as interpret-as="characters">ab1</say-as></prosody><break strength="x-strong"/><sub alias="World Wide Web">WWW</sub> <emphasis>now</emphasis></Say>"#
            ),
            [
                words("Your code is 4 1 2 .", 100),
                SayPart::Pause { ms: 1500 },
                words("Again: a b 1", 80),
                SayPart::Pause { ms: 1000 },
                words("World Wide Web", 100),
                louder("now", 100, 3),
            ]
        );
    }

    #[test]
    fn volume_and_emphasis_change_the_loudness_and_pace_of_their_words() {
        assert_eq!(
            said(
                r#"<Say>a <prosody volume="x-soft">b <prosody volume="+20dB" rate="fast">c</prosody></prosody> <emphasis level="strong">d</emphasis> <emphasis level="reduced">e</emphasis> <prosody volume="silent">f</prosody> <prosody volume="loudest">g</prosody></Say>"#
            ),
            [
                words("a", 100),
                louder("b", 100, -12),
                // +12 dB at most, on top of the -12 around it.
                louder("c", 125, 0),
                louder("d", 90, 6),
                louder("e", 110, -6),
                louder("f", 100, -40),
                words("g", 100),
            ]
        );
        assert_eq!(volume_db("-3.4dB"), Some(Some(-3)));
        assert_eq!(volume_db("+99dB"), Some(Some(12)));
        assert_eq!(volume_db("NaNdB"), None);
    }

    #[test]
    fn paces_and_breaks_are_bounded_and_bad_values_fall_back() {
        assert_eq!(pace("300%"), Some(200));
        assert_eq!(pace("5%"), Some(20));
        assert_eq!(pace("x-fast"), Some(150));
        assert_eq!(pace("quick"), None);
        assert_eq!(duration_ms("250ms"), Some(250));
        assert_eq!(duration_ms("99s"), Some(MAX_BREAK_MS));
        assert_eq!(duration_ms("-1s"), None);
        assert_eq!(duration_ms("soon"), None);
        // An unreadable time falls back to the medium break; many breaks are bounded in all.
        let many = format!("<Say>a{}b</Say>", "<break time=\"10s\"/>".repeat(100));
        let total: u32 = (said(&many).iter())
            .map(|p| match p {
                SayPart::Pause { ms } => *ms,
                SayPart::Words { .. } => 0,
            })
            .sum();
        assert_eq!(total, MAX_PAUSES_MS);
        assert_eq!(
            said(r#"<Say>a<break time="x"/><p>b</p><s>c</s></Say>"#),
            [
                words("a", 100),
                SayPart::Pause { ms: 500 },
                words("b", 100),
                SayPart::Pause { ms: 500 },
                words("c", 100),
                SayPart::Pause { ms: 250 },
            ]
        );
    }

    #[test]
    fn a_speak_document_is_read_and_markup_the_voices_cannot_render_is_refused() {
        assert_eq!(
            speak(r#"<speak>Hello<break time="300ms"/>world</speak>"#).unwrap(),
            [
                words("Hello", 100),
                SayPart::Pause { ms: 300 },
                words("world", 100)
            ]
        );
        let refused = speak(r#"<speak>Hi <prosody pitch="high">there</prosody></speak>"#);
        assert!(refused.unwrap_err().contains("<prosody pitch>"));
        let refused =
            speak(r#"<speak>Hi <amazon:effect name="whispered">x</amazon:effect></speak>"#);
        assert!(refused.unwrap_err().contains("<speak><amazon:effect>"));
        assert!(speak("<Say>Hi</Say>").unwrap_err().contains("<speak>"));
        assert!(speak("<speak>unclosed").is_err());
    }
}
