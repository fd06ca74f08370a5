//! The spelling transcripts are written in. Moonshine learnt from old books as well as speech
//! and writes some words as they were spelt a century ago ("to-day", "good-bye"); the engines
//! behind Twilio's, Telnyx's and SignalWire's transcripts write today's spelling, and an
//! application matching keywords ("goodbye", "tomorrow") must find them in ours too.

/// Dated spellings and the ones providers' transcripts use, in lower case.
const MODERN: &[(&str, &str)] = &[
    ("to-day", "today"),
    ("to-morrow", "tomorrow"),
    ("to-night", "tonight"),
    ("good-bye", "goodbye"),
    ("good-by", "goodbye"),
    ("e-mail", "email"),
    ("e-mails", "emails"),
    ("on-line", "online"),
    ("any-one", "anyone"),
    ("every-one", "everyone"),
    ("some-one", "someone"),
    ("no-one", "no one"),
    ("connexion", "connection"),
];

/// `text` with each dated spelling replaced by today's, keeping a capital first letter
/// ("Good-bye." becomes "Goodbye."). Words are matched whole, between non-letters.
pub fn modern(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        // A word: letters and inner hyphens or apostrophes.
        let start = rest.find(|c: char| c.is_alphabetic()).unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest
            .char_indices()
            .find(|&(i, c)| {
                !(c.is_alphabetic()
                    || ((c == '-' || c == '\'')
                        && rest[i + c.len_utf8()..].starts_with(char::is_alphabetic)))
            })
            .map_or(rest.len(), |(i, _)| i);
        let word = &rest[..end];
        out.push_str(&replacement(word).unwrap_or_else(|| word.to_owned()));
        rest = &rest[end..];
    }
    out
}

/// A word with today's spelling: the whole word, or, in a chain the model hyphenated
/// ("Good-by-and-have"), each dated pair of its parts.
fn replacement(word: &str) -> Option<String> {
    if let Some(modern) = replace_whole(word) {
        return Some(modern);
    }
    let parts: Vec<&str> = word.split('-').collect();
    if parts.len() < 3 {
        return None;
    }
    let (mut out, mut changed, mut i) = (Vec::new(), false, 0);
    while i < parts.len() {
        let pair = (i + 1 < parts.len()).then(|| format!("{}-{}", parts[i], parts[i + 1]));
        match pair.as_deref().and_then(replace_whole) {
            Some(modern) => {
                out.push(modern);
                changed = true;
                i += 2;
            }
            None => {
                out.push(parts[i].to_owned());
                i += 1;
            }
        }
    }
    changed.then(|| out.join("-"))
}

fn replace_whole(word: &str) -> Option<String> {
    let lower = word.to_lowercase();
    let (_, modern) = MODERN.iter().find(|(old, _)| *old == lower)?;
    let capital = word.starts_with(char::is_uppercase);
    Some(if capital {
        let mut chars = modern.chars();
        chars
            .next()
            .map(|c| c.to_uppercase().chain(chars).collect())
            .unwrap_or_default()
    } else {
        (*modern).to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::modern;

    #[test]
    fn dated_spellings_become_todays_and_the_rest_is_untouched() {
        assert_eq!(
            modern("Good-bye, see you to-morrow."),
            "Goodbye, see you tomorrow."
        );
        assert_eq!(modern("I can't come to-day"), "I can't come today");
        assert_eq!(modern("Send an e-mail to-night!"), "Send an email tonight!");
        assert_eq!(modern("a well-known good-by"), "a well-known goodbye");
        assert_eq!(
            modern("Good-by-and-have a nice day."),
            "Goodbye-and-have a nice day."
        );
        // Whole words only; hyphens between words and other text as they were.
        assert_eq!(modern("to-days menu - good"), "to-days menu - good");
        assert_eq!(modern("twenty-one, 42 - ok"), "twenty-one, 42 - ok");
        assert_eq!(modern(""), "");
        assert_eq!(modern("¿Qué tal? Niño"), "¿Qué tal? Niño");
    }
}
