//! What an application expects to hear, applied to an engine's text: a grammar (digits, yes or
//! no) turns free text into the answer or into nothing, and hints (phrases the application
//! expects) replace words that sound close to one. The neural engine decodes free text; these
//! constrain its output rather than its search, which keeps them engine-independent.

/// The answer an application asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Grammar {
    #[default]
    Free,
    /// A digit sequence ("one two three", "1, 2, 3" → "123"); anything else is no answer.
    Digits,
    /// "yes" or "no" (and their common synonyms); anything else is no answer.
    YesNo,
}

const DIGITS: [(&str, char); 12] = [
    ("zero", '0'),
    ("oh", '0'),
    ("one", '1'),
    ("two", '2'),
    ("three", '3'),
    ("four", '4'),
    ("five", '5'),
    ("six", '6'),
    ("seven", '7'),
    ("eight", '8'),
    ("nine", '9'),
    ("nought", '0'),
];
const YES: [&str; 7] = [
    "yes",
    "yeah",
    "yep",
    "yup",
    "sure",
    "correct",
    "affirmative",
];
const NO: [&str; 4] = ["no", "nope", "nah", "negative"];

/// Lower-case words without punctuation (apostrophes kept: "don't").
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == ',' || c == '-')
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .flat_map(char::to_lowercase)
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

impl Grammar {
    /// The answer in `text`, or `None` when it holds none.
    pub fn apply(self, text: &str) -> Option<String> {
        match self {
            Self::Free => Some(text.to_owned()).filter(|t| !t.is_empty()),
            Self::Digits => {
                let mut out = String::new();
                for w in words(text) {
                    if let Some((_, d)) = DIGITS.iter().find(|(n, _)| *n == w) {
                        out.push(*d);
                    } else if w.chars().all(|c| c.is_ascii_digit()) {
                        out.push_str(&w);
                    } else {
                        return None;
                    }
                }
                Some(out).filter(|o| !o.is_empty())
            }
            Self::YesNo => {
                let ws = words(text);
                let yes = ws.iter().any(|w| YES.contains(&w.as_str()));
                let no = ws.iter().any(|w| NO.contains(&w.as_str()));
                match (yes, no) {
                    (true, false) => Some("yes".into()),
                    (false, true) => Some("no".into()),
                    _ => None,
                }
            }
        }
    }
}

/// Replaces each run of words within a small edit distance of a hint phrase by the hint
/// ("bill in department" with the hint "billing department" → "billing department").
pub fn apply_hints(text: &str, hints: &[String]) -> String {
    let mut out: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
    for hint in hints {
        let target = words(hint);
        if target.is_empty() {
            continue;
        }
        let joined: String = target.concat();
        // About one letter in five may differ.
        let allowed = (joined.chars().count() / 5).max(1);
        // Try windows of the hint's length and one word more or less (a split or merged word).
        let mut i = 0;
        while i < out.len() {
            for len in [
                target.len(),
                target.len() + 1,
                target.len().saturating_sub(1),
            ] {
                if len == 0 || i + len > out.len() {
                    continue;
                }
                let window: String = out[i..i + len].iter().flat_map(|w| words(w)).collect();
                // The window must begin and end as the hint does, so that a word beside
                // the phrase ("to the", "my") is not taken into it.
                let anchored = window.chars().next() == joined.chars().next()
                    && window.chars().last() == joined.chars().last();
                if anchored && distance(&window, &joined) <= allowed {
                    let trailing: String = out[i + len - 1]
                        .chars()
                        .rev()
                        .take_while(|c| c.is_ascii_punctuation())
                        .collect();
                    let replacement = format!("{}{}", hint.trim(), trailing);
                    out.splice(i..i + len, [replacement]);
                    break;
                }
            }
            i += 1;
        }
    }
    out.join(" ")
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_come_from_words_or_numerals_and_other_words_are_no_answer() {
        assert_eq!(
            Grammar::Digits.apply("One, two, three, four."),
            Some("1234".into())
        );
        assert_eq!(Grammar::Digits.apply("5 oh 9"), Some("509".into()));
        assert_eq!(Grammar::Digits.apply("1234"), Some("1234".into()));
        assert_eq!(Grammar::Digits.apply("call me later"), None);
        assert_eq!(Grammar::Digits.apply(""), None);
    }

    #[test]
    fn yes_or_no_is_one_of_the_two_or_nothing() {
        assert_eq!(Grammar::YesNo.apply("Yeah, sure."), Some("yes".into()));
        assert_eq!(Grammar::YesNo.apply("No."), Some("no".into()));
        assert_eq!(Grammar::YesNo.apply("Yes and no."), None);
        assert_eq!(Grammar::YesNo.apply("Maybe."), None);
        assert_eq!(Grammar::Free.apply("Maybe."), Some("Maybe.".into()));
        assert_eq!(Grammar::Free.apply(""), None);
    }

    #[test]
    fn a_near_miss_of_a_hint_becomes_the_hint() {
        let hints = vec!["billing department".to_owned(), "Switchboard".to_owned()];
        assert_eq!(
            apply_hints("Transfer me to the bill in department.", &hints),
            "Transfer me to the billing department."
        );
        assert_eq!(
            apply_hints("Call switch board now", &hints),
            "Call Switchboard now"
        );
        // A word beside the hint is not swallowed by it.
        assert_eq!(
            apply_hints("Put me through to the billing department", &hints),
            "Put me through to the billing department"
        );
        let hints = vec!["account balance".to_owned()];
        assert_eq!(
            apply_hints("Check my account balance", &hints),
            "Check my account balance"
        );
        // Far from every hint: unchanged.
        assert_eq!(apply_hints("Good morning", &hints), "Good morning");
    }
}
