//! A call's identity: 128 bits, the time it began and 74 random bits laid out as a UUIDv7
//! (RFC 9562 §5.7). The store (and Twilio's dialect) writes it as `CA` and
//! 32 hex digits, the form it has always had in rows and URLs; every dialect presents the same
//! bits in its own shape — Twilio's `CA…`, Telnyx's `v3:…` call control id and UUID leg id —
//! and reads them back, so no dialect keeps a table of its own ids.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use switchboard_sip::shard::Shard;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallId(u128);

impl CallId {
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// A new call's id, begun at `wall_ms` (Unix milliseconds): a UUIDv7, whose leading bits
    /// are the time. Calls begun later sort after, so their rows (the call, its legs and
    /// events, keyed by it) go to the end of the store's indexes instead of a random page
    /// each, which a store writing thousands of calls a second would otherwise read and
    /// rewrite a page for each. 74 random bits keep ids of the same millisecond apart and
    /// unguessable.
    ///
    /// On a node of several call-core shards, the 12 bits of `rand_a` name the shard that
    /// holds the call (62 random bits are left), so that a request about the call is handed
    /// to that shard by its id alone ([`CallId::shard`]).
    pub fn starting_at(wall_ms: i64, shard: Shard) -> Self {
        let ms = u128::from(u64::try_from(wall_ms).unwrap_or(0) & 0xffff_ffff_ffff);
        let random: u128 = rand::random();
        let rand_a = match shard.count {
            0 | 1 => (random >> 64) & 0xfff,
            _ => u128::from(shard.index) & 0xfff,
        };
        let rand_b = random & ((1 << 62) - 1);
        Self(ms << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b)
    }

    /// Which of `count` shards holds the call (see [`CallId::starting_at`]).
    pub fn shard(self, count: u16) -> u16 {
        match count {
            0 | 1 => 0,
            _ => ((self.0 >> 64) & 0xfff) as u16 % count,
        }
    }

    /// A call named as any dialect names it: its SID (`CA…`) or Telnyx's call control id.
    pub fn parse(s: &str) -> Option<Self> {
        Self::from_sid(s).or_else(|| Self::from_control_id(s))
    }

    /// The id of a stored call (`CA` and 32 hex digits).
    pub fn from_sid(sid: &str) -> Option<Self> {
        if !crate::sid::is_sid(sid, "CA") {
            return None;
        }
        u128::from_str_radix(&sid[2..], 16).ok().map(Self)
    }

    /// As the store and Twilio write it.
    pub fn sid(self) -> String {
        format!("CA{:032x}", self.0)
    }

    /// The 128 bits (what a UUID writes in hex; a binary header carries them as they are).
    pub fn bits(self) -> u128 {
        self.0
    }

    /// As a UUID.
    pub fn uuid(self) -> String {
        uuid(self.0)
    }

    /// The id of the call session this call starts (Telnyx's `call_session_id`): a UUID of
    /// its own, as Telnyx's are (a session groups the legs of one phone call, and is never the
    /// id of one of them), derived from the first leg's bits so that nothing has to store it.
    pub fn session_uuid(self) -> String {
        uuid(self.0 ^ SESSION_MASK)
    }

    /// Telnyx's call control id: `v3:` and the bits in URL-safe base64.
    pub fn control_id(self) -> String {
        format!("v3:{}", URL_SAFE_NO_PAD.encode(self.0.to_be_bytes()))
    }

    /// Reads a call control id back (its clients send it raw or percent-decoded).
    pub fn from_control_id(s: &str) -> Option<Self> {
        let b64 = s.strip_prefix("v3:")?;
        let bytes = URL_SAFE_NO_PAD.decode(b64).ok()?;
        Some(Self(u128::from_be_bytes(bytes.try_into().ok()?)))
    }
}

/// Flips every other bit of a session's first leg: a session id never equals a leg id.
const SESSION_MASK: u128 = 0x5555_5555_5555_5555_5555_5555_5555_5555;

/// A stored id (`prefix` and 32 hex digits: a recording's `RE…`) as a UUID.
pub fn sid_as_uuid(sid: &str, prefix: &str) -> Option<String> {
    if !crate::sid::is_sid(sid, prefix) {
        return None;
    }
    u128::from_str_radix(&sid[prefix.len()..], 16)
        .ok()
        .map(uuid)
}

/// A UUID (any case) back as the stored id with `prefix`.
pub fn uuid_as_sid(s: &str, prefix: &str) -> Option<String> {
    let parts: Vec<&str> = s.split('-').collect();
    let lengths: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    if lengths != [8, 4, 4, 4, 12]
        || !parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return None;
    }
    Some(format!("{prefix}{}", parts.concat().to_ascii_lowercase()))
}

/// 128 bits in UUID form (8-4-4-4-12 lower-case hex).
pub fn uuid(bits: u128) -> String {
    let h = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_calls_id_is_a_uuid_v7_of_its_start_and_later_ones_sort_after() {
        let at = 1_795_000_000_123; // 2026-11-18
        let id = CallId::starting_at(at, Shard::ONE);
        let uuid = id.uuid();
        assert_eq!(&uuid[..13], "01a1ee56-5e7b");
        assert_eq!(&uuid[14..15], "7", "version: {uuid}");
        assert!("89ab".contains(&uuid[19..20]), "variant: {uuid}");
        let later = CallId::starting_at(at + 1, Shard::ONE);
        assert!(later.sid() > id.sid());
        assert_ne!(CallId::starting_at(at, Shard::ONE).sid(), id.sid());
        assert_eq!(CallId::from_sid(&id.sid()), Some(id));
    }

    #[test]
    fn a_calls_id_names_the_shard_that_holds_it() {
        let at = 1_795_000_000_123;
        for count in [2u16, 3, 32, 1024] {
            for index in [0, 1, count / 2, count - 1] {
                let shard = Shard::new(index, count).unwrap();
                let id = CallId::starting_at(at, shard);
                assert_eq!(id.shard(count), index);
                assert_eq!(
                    CallId::parse(&id.sid()).map(|i| i.shard(count)),
                    Some(index)
                );
                assert_eq!(CallId::parse(&id.control_id()), Some(id));
                // Still a UUIDv7 of its start, and still unguessable: two differ.
                assert_eq!(&id.uuid()[14..15], "7");
                assert_ne!(CallId::starting_at(at, shard), id);
            }
        }
        assert_eq!(CallId::starting_at(at, Shard::ONE).shard(1), 0);
    }

    #[test]
    fn every_dialects_form_reads_back_to_the_same_call() {
        let sid = "CA0123456789abcdef0123456789abcdef";
        let id = CallId::from_sid(sid).unwrap();
        assert_eq!(id.sid(), sid);
        assert_eq!(id.uuid(), "01234567-89ab-cdef-0123-456789abcdef");
        assert_eq!(uuid_as_sid(&id.uuid(), "CA").as_deref(), Some(sid));
        let recording = "RE0123456789abcdef0123456789abcdef";
        let shown = sid_as_uuid(recording, "RE").unwrap();
        assert_eq!(
            uuid_as_sid(&shown.to_uppercase(), "RE").as_deref(),
            Some(recording)
        );
        assert_eq!(uuid_as_sid("0123-4567", "RE"), None);
        assert_eq!(
            uuid_as_sid("0123456g-89ab-cdef-0123-456789abcdef", "RE"),
            None
        );
        assert_eq!(sid_as_uuid(sid, "RE"), None);
        let control = id.control_id();
        assert!(
            control.starts_with("v3:") && control.len() == 25,
            "{control}"
        );
        assert_eq!(CallId::from_control_id(&control), Some(id));
        let session = id.session_uuid();
        assert_ne!(session, id.uuid(), "a session is not one of its legs");
        assert_eq!(session.len(), 36);
        assert_eq!(session, CallId::from_sid(sid).unwrap().session_uuid());
        for bad in ["", "v3:", "v3:abc", "v2:ASNFZ4mrze8BI0VniavN7w", "CA12"] {
            assert_eq!(CallId::from_control_id(bad), None, "{bad}");
            assert_eq!(CallId::from_sid(bad), None, "{bad}");
        }
    }
}
