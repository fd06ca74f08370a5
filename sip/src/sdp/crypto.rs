//! SDES (RFC 4568): the `a=crypto` lines that carry SRTP master keys in SDP. Only lines we can
//! honour are kept: a suite we speak, one inline key of the suite's length, no MKI and no
//! session parameters (an answerer must not accept a line whose parameters it does not
//! support, §6.3). The keys themselves are never shown by `Debug`.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use std::fmt;

/// The suites we speak and the length of their key and salt (RFC 4568 §6.2, RFC 7714 §14.2).
const SUITES: [(&str, usize); 3] = [
    ("AES_CM_128_HMAC_SHA1_80", 30),
    ("AES_CM_128_HMAC_SHA1_32", 30),
    ("AEAD_AES_128_GCM", 28),
];

/// One usable `a=crypto` line.
#[derive(Clone, PartialEq, Eq)]
pub struct Crypto {
    /// Ties an answer's line to the offer's (§9.1): 1–999,999,999.
    pub tag: u32,
    /// The suite, in its canonical spelling.
    pub suite: &'static str,
    /// The master key followed by the master salt.
    pub key: Vec<u8>,
}

impl Crypto {
    /// The attribute value after `crypto:`, or `None` for a line we cannot use.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split_whitespace();
        let tag: u32 = parts.next()?.parse().ok()?;
        if !(1..=999_999_999).contains(&tag) {
            return None;
        }
        let name = parts.next()?;
        let &(suite, len) = SUITES.iter().find(|(s, _)| s.eq_ignore_ascii_case(name))?;
        let params = parts.next()?;
        // Session parameters (UNENCRYPTED_SRTP, KDR=…, FEC_ORDER=…) change how SRTP is done.
        if parts.next().is_some() || params.contains(';') {
            return None;
        }
        let inline = params.strip_prefix("inline:")?;
        let mut fields = inline.split('|');
        let encoded = fields.next()?;
        for field in fields {
            // A lifetime (2^31 or a number) is a limit we meet long before; an MKI would need
            // every packet to carry it, which we do not do.
            let lifetime = field.strip_prefix("2^").unwrap_or(field);
            if field.contains(':') || lifetime.parse::<u64>().is_err() {
                return None;
            }
        }
        let key = STANDARD
            .decode(encoded)
            .or_else(|_| STANDARD_NO_PAD.decode(encoded))
            .ok()?;
        (key.len() == len).then_some(Self { tag, suite, key })
    }

    /// The attribute line, CRLF included.
    pub fn line(&self) -> String {
        format!(
            "a=crypto:{} {} inline:{}\r\n",
            self.tag,
            self.suite,
            STANDARD.encode(&self.key)
        )
    }
}

impl fmt::Debug for Crypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Crypto({} {}, <key redacted>)", self.tag, self.suite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_lines_are_kept_and_others_passed_over() {
        // RFC 4568 §5.1's example, then the same key without MKI, as phones send it.
        let key = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
        assert_eq!(
            Crypto::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20|1:32")),
            None,
            "MKI"
        );
        let c = Crypto::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20")).unwrap();
        assert_eq!(
            (c.tag, c.suite, c.key.len()),
            (1, "AES_CM_128_HMAC_SHA1_80", 30)
        );
        let c = Crypto::parse(&format!("7 aes_cm_128_hmac_sha1_32 inline:{key}")).unwrap();
        assert_eq!(
            c.line(),
            format!("a=crypto:7 AES_CM_128_HMAC_SHA1_32 inline:{key}\r\n")
        );
        for bad in [
            format!("1 AES_256_CM_HMAC_SHA1_80 inline:{key}"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key} UNENCRYPTED_SRTP"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key};inline:{key}"),
            "1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=".into(),
            format!("0 AES_CM_128_HMAC_SHA1_80 inline:{key}"),
            format!("x AES_CM_128_HMAC_SHA1_80 inline:{key}"),
            format!("1 AEAD_AES_128_GCM inline:{key}"),
            "1 AES_CM_128_HMAC_SHA1_80".into(),
        ] {
            assert_eq!(Crypto::parse(&bad), None, "{bad}");
        }
        let gcm = STANDARD.encode([9u8; 28]);
        assert!(Crypto::parse(&format!("2 AEAD_AES_128_GCM inline:{gcm}")).is_some());
    }

    #[test]
    fn debug_hides_the_key() {
        let c = Crypto {
            tag: 1,
            suite: SUITES[0].0,
            key: vec![0x41; 30],
        };
        assert!(!format!("{c:?}").contains("65") && !format!("{c:?}").contains("QUFB"));
    }
}
