//! The providers' profanity filter (`profanityFilter`, on by default in Twilio's `<Gather>`
//! and ConversationRelay): applied to what the recogniser heard before an application sees it.

/// Masks the words a provider's profanity filter masks: the first letter kept, the rest
/// starred, as Twilio's transcripts show them.
pub fn mask(text: &str) -> String {
    const WORDS: [&str; 8] = [
        "fuck",
        "shit",
        "bitch",
        "cunt",
        "asshole",
        "bastard",
        "dick",
        "motherfucker",
    ];
    let masked: Vec<String> = (text.split(' '))
        .map(|word| {
            let core: String = word.chars().filter(|c| c.is_alphabetic()).collect();
            let lower = core.to_lowercase();
            let profane = WORDS.iter().any(|w| lower == *w)
                || lower.starts_with("fuck")
                || lower.starts_with("shit");
            if !profane {
                return word.to_owned();
            }
            let mut first = true;
            word.chars()
                .map(|c| {
                    if !c.is_alphabetic() || std::mem::take(&mut first) {
                        c
                    } else {
                        '*'
                    }
                })
                .collect()
        })
        .collect();
    masked.join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn profanity_is_masked_and_other_words_are_not() {
        assert_eq!(
            super::mask("well shit, that fucking printer. Dickens"),
            "well s***, that f****** printer. Dickens"
        );
    }
}
