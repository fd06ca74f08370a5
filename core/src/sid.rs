//! Resource identifiers as Twilio writes them — a two-letter kind and 32 lower-case hex digits
//! (`CA…` calls, `RE…` recordings, `PN…` numbers) — which every layer mints and checks: the call
//! core its calls, conferences and recordings, the store its rows, the dialects their resources.

/// Whether `sid` is a two-letter prefix and 32 lower-case hex digits, as Twilio's SIDs are.
pub fn is_sid(sid: &str, prefix: &str) -> bool {
    sid.len() == 34
        && sid.starts_with(prefix)
        && sid[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A new SID: the prefix and 32 random lower-case hex digits.
pub fn new_sid(prefix: &str) -> String {
    format!("{prefix}{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_are_a_prefix_and_32_lower_hex_digits() {
        assert!(is_sid(&format!("AC{}", "a1".repeat(16)), "AC"));
        assert!(!is_sid(&format!("AC{}", "A1".repeat(16)), "AC"));
        assert!(!is_sid(&format!("SK{}", "a1".repeat(16)), "AC"));
        assert!(!is_sid("AC123", "AC"));
        assert!(is_sid(&new_sid("PN"), "PN"));
    }
}
