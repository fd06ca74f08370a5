//! Which caller ID an account may present on the calls it places. Carriers trust the From a
//! trunk sends, so an account that could put any number there could borrow another tenant's
//! number (or anyone's). A number is presented only if the account owns it (one of its phone
//! numbers), verified it (a verification call), the operator allows it for the account
//! (`caller_ids` under its `[[accounts]]`), or it is the number of the call being forwarded (a
//! `<Dial>` from a call passes that call's caller on, as providers do). A From that is no
//! number at all (`anonymous`, a client name) claims nobody's identity and passes. The core
//! holds the question ([`CallerIdPolicy`]) and how a From reads as a number; the services
//! answer it.

/// The policy the core asks before it places a call: whether `account` may present `from`,
/// `forwarded` being the numbers of the call a new leg is dialed from (its caller and the
/// number it called). The core defines it and the services implement it
/// (`switchboard_control::services::directory::caller_ids::CallerIds`): what an account owns or verified is theirs
/// to know.
pub trait CallerIdPolicy: Send + Sync + std::fmt::Debug {
    fn allows(&self, account: &str, from: &str, forwarded: &[&str]) -> bool;
}

/// The E.164 form of a From that reads as a phone number: its digits (at least three) after an
/// optional `+` or `tel:`/`sip:` prefix, whatever punctuation a dialer adds; `None` for a name.
/// Without the `+` the digits are still taken as that number (a carrier reads them so).
pub fn as_number(from: &str) -> Option<String> {
    let s = from.trim();
    let s = s
        .strip_prefix("tel:")
        .or_else(|| s.strip_prefix("sip:"))
        .unwrap_or(s);
    let user = s.split(['@', ';']).next().unwrap_or(s);
    let digits: String = user.chars().filter(char::is_ascii_digit).collect();
    let only_number = user
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | ' ' | '(' | ')'));
    (only_number && digits.len() >= 3).then(|| format!("+{digits}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_whatever_their_punctuation_and_names_are_not_numbers() {
        for (from, number) in [
            ("+15551230000", Some("+15551230000")),
            ("15551230000", Some("+15551230000")),
            ("+1 (555) 123-0000", Some("+15551230000")),
            ("tel:+15551230000", Some("+15551230000")),
            ("sip:+15551230000@carrier.example", Some("+15551230000")),
            ("anonymous", None),
            ("client:alice", None),
            ("alice", None),
            ("12", None),
        ] {
            assert_eq!(as_number(from).as_deref(), number, "{from}");
        }
    }
}
