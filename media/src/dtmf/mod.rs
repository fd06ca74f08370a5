//! DTMF digits: RFC 4733 events on the wire and in-band tones (detected with Goertzel filters).

pub mod goertzel;
pub mod rfc4733;

/// One of the sixteen DTMF digits: 0–9, `*`, `#`, A–D.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digit(u8);

const DIGITS: &[u8; 16] = b"0123456789*#ABCD";

impl Digit {
    pub fn new(c: char) -> Option<Self> {
        let c = c.to_ascii_uppercase();
        DIGITS
            .iter()
            .position(|&d| d as char == c)
            .map(|i| Self(i as u8))
    }

    /// The RFC 4733 event code (0–15).
    pub fn event(self) -> u8 {
        self.0
    }

    pub fn from_event(event: u8) -> Option<Self> {
        (event < 16).then_some(Self(event))
    }

    pub fn as_char(self) -> char {
        DIGITS[self.0 as usize] as char
    }

    /// The row and column frequencies of the tone pair (ITU-T Q.23).
    pub fn frequencies(self) -> (f32, f32) {
        const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
        const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
        // Keypad position of each event code: (row, column).
        const POS: [(usize, usize); 16] = [
            (3, 1),
            (0, 0),
            (0, 1),
            (0, 2),
            (1, 0),
            (1, 1),
            (1, 2),
            (2, 0),
            (2, 1),
            (2, 2),
            (3, 0),
            (3, 2),
            (0, 3),
            (1, 3),
            (2, 3),
            (3, 3),
        ];
        let (r, c) = POS[self.0 as usize];
        (ROWS[r], COLS[c])
    }
}

/// How a digit was signalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfMethod {
    Rfc4733,
    InBand,
    SipInfo,
}

/// A digit received, reported when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfReport {
    pub digit: Digit,
    pub duration_ms: u32,
    pub method: DtmfMethod,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_round_trip() {
        for (i, c) in "0123456789*#ABCD".chars().enumerate() {
            let d = Digit::new(c).unwrap();
            assert_eq!((d.event(), d.as_char()), (i as u8, c));
        }
        assert_eq!(Digit::new('a'), Digit::new('A'));
        assert!(Digit::new('x').is_none() && Digit::from_event(16).is_none());
        assert_eq!(Digit::new('5').unwrap().frequencies(), (770.0, 1336.0));
        assert_eq!(Digit::new('0').unwrap().frequencies(), (941.0, 1336.0));
        assert_eq!(Digit::new('#').unwrap().frequencies(), (941.0, 1477.0));
    }
}
