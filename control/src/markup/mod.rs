//! The markup interpreter: TwiML, SignalWire's LaML and Telnyx's TeXML are one language
//! whose requests each provider shapes and signs its own way ([`voice::Dialect`]). [`twiml`]
//! parses a document into verbs; [`voice`] runs a call's session through them over the call
//! core, fetching documents and sending the status callbacks each provider sends. The Twilio
//! and Telnyx dialects expose it through their REST APIs and decide nothing of their own.

pub mod twiml;
pub mod voice;

/// RFC 2822 in UTC with a two-digit day, as Twilio writes dates (resources and webhooks).
pub fn rfc2822(unix_ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix_ms / 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[weekday repr:short], [day padding:zero] [month repr:short] [year] [hour]:[minute]:[second] +0000"
    );
    t.format(&format).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc_2822_with_two_digit_days() {
        // 2015-08-04T16:25:16Z, the reference's example.
        assert_eq!(
            rfc2822(1_438_705_516_000),
            "Tue, 04 Aug 2015 16:25:16 +0000"
        );
    }
}
