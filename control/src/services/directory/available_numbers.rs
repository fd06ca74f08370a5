//! Numbers an account may still claim: the operator's grants to it (`number_ranges`, in the
//! file and through the admin API) less the numbers any account holds — what Twilio's
//! AvailablePhoneNumbers and Telnyx's `/v2/available_phone_numbers` search, and what a claim by
//! area code picks from. A grant of a prefix is a block of numbers of its country's length
//! (for the countries whose length is fixed: the North American plan's eleven digits, the
//! United Kingdom's twelve); spans and single numbers are what they say. A search walks the
//! grants in order and stops at its limit, or after [`MAX_SCAN`] candidates: a grant of a
//! whole country is never listed out.

use super::phone_numbers::PhoneNumbers;
use crate::infra::accounts::{Account, NumberRange};
use crate::infra::store::StoreError;
use std::collections::HashSet;

/// The most candidates one search looks at.
pub const MAX_SCAN: usize = 200_000;
/// The most numbers one search returns.
pub const MAX_RESULTS: usize = 1000;

/// Toll-free codes of the North American plan.
const NANP_TOLL_FREE: [&str; 7] = ["800", "833", "844", "855", "866", "877", "888"];
/// Canada's area codes (the North American plan's numbers are the United States' otherwise).
const CANADA: [&str; 43] = [
    "204", "226", "236", "249", "250", "263", "289", "306", "343", "354", "365", "367", "368",
    "403", "416", "418", "431", "437", "438", "450", "468", "474", "506", "514", "519", "548",
    "579", "581", "584", "587", "604", "613", "639", "647", "672", "683", "705", "709", "742",
    "753", "778", "780", "782",
];
/// More of Canada's area codes (split for the formatter's sake).
const CANADA_MORE: [&str; 7] = ["807", "819", "825", "867", "873", "879", "902"];

/// A number's kind, as the providers sort them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Local,
    TollFree,
    Mobile,
}

impl Kind {
    /// Twilio's name (`local`, `tollFree`, `mobile`).
    pub fn twilio(self) -> &'static str {
        match self {
            Kind::Local => "local",
            Kind::TollFree => "tollFree",
            Kind::Mobile => "mobile",
        }
    }
}

/// The country (ISO 3166 alpha-2) of an E.164 number, for the countries told apart here.
pub fn country_of(number: &str) -> Option<&'static str> {
    let digits = number.strip_prefix('+')?;
    if let Some(national) = digits.strip_prefix('1') {
        let area = national.get(..3)?;
        let canadian = CANADA.contains(&area) || CANADA_MORE.contains(&area);
        return Some(if canadian { "CA" } else { "US" });
    }
    [
        ("44", "GB"),
        ("49", "DE"),
        ("33", "FR"),
        ("34", "ES"),
        ("39", "IT"),
    ]
    .iter()
    .chain(&[("31", "NL"), ("61", "AU"), ("52", "MX"), ("55", "BR")])
    .find(|(code, _)| digits.starts_with(code))
    .map(|(_, country)| *country)
}

/// The kind of an E.164 number.
pub fn kind_of(number: &str) -> Kind {
    let digits = number.trim_start_matches('+');
    if let Some(national) = digits.strip_prefix('1') {
        if national
            .get(..3)
            .is_some_and(|a| NANP_TOLL_FREE.contains(&a))
        {
            return Kind::TollFree;
        }
        return Kind::Local;
    }
    if let Some(national) = digits.strip_prefix("44") {
        if national.starts_with("800") || national.starts_with("808") {
            return Kind::TollFree;
        }
        if national.starts_with('7') {
            return Kind::Mobile;
        }
    }
    Kind::Local
}

/// The country's calling code (the digits after the `+`), for the countries told apart here.
pub fn calling_code(country: &str) -> Option<&'static str> {
    Some(match country {
        "US" | "CA" => "1",
        "GB" => "44",
        "DE" => "49",
        "FR" => "33",
        "ES" => "34",
        "IT" => "39",
        "NL" => "31",
        "AU" => "61",
        "MX" => "52",
        "BR" => "55",
        _ => return None,
    })
}

/// The country's name, for the providers' country resources.
pub fn country_name(country: &str) -> &'static str {
    match country {
        "US" => "United States",
        "CA" => "Canada",
        "GB" => "United Kingdom",
        "DE" => "Germany",
        "FR" => "France",
        "ES" => "Spain",
        "IT" => "Italy",
        "NL" => "Netherlands",
        "AU" => "Australia",
        "MX" => "Mexico",
        "BR" => "Brazil",
        _ => "",
    }
}

/// How many digits (after the `+`) a number that starts with `prefix` has, where the plan fixes
/// it.
fn length_after(prefix: &str) -> Option<usize> {
    let digits = prefix.strip_prefix('+')?;
    if digits.starts_with('1') {
        Some(11)
    } else if digits.starts_with("44") {
        Some(12)
    } else {
        None
    }
}

/// Twilio's `Contains`: digits, letters (the keypad's digits) and `*` (any digit), two at
/// least; matched anywhere in the number's digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(Vec<Option<u8>>);

impl Pattern {
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().trim_start_matches('+');
        if s.len() < 2 || s.len() > 15 {
            return None;
        }
        s.bytes()
            .map(|b| match b.to_ascii_uppercase() {
                b'*' => Some(None),
                d @ b'0'..=b'9' => Some(Some(d)),
                l @ b'A'..=b'Z' => Some(Some(keypad(l))),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(Self)
    }

    fn matches(&self, digits: &[u8]) -> bool {
        digits.windows(self.0.len()).any(|w| {
            w.iter()
                .zip(&self.0)
                .all(|(d, p)| p.is_none_or(|p| p == *d))
        })
    }
}

/// The keypad's digit for a letter.
fn keypad(letter: u8) -> u8 {
    match letter {
        b'A'..=b'C' => b'2',
        b'D'..=b'F' => b'3',
        b'G'..=b'I' => b'4',
        b'J'..=b'L' => b'5',
        b'M'..=b'O' => b'6',
        b'P'..=b'S' => b'7',
        b'T'..=b'V' => b'8',
        _ => b'9',
    }
}

/// What a search asks for.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// ISO 3166 alpha-2.
    pub country: String,
    pub kind: Option<Kind>,
    /// The North American plan's area code (three digits).
    pub area_code: Option<String>,
    /// Digits anywhere in the number.
    pub contains: Option<Pattern>,
    /// The number starts with these (E.164, `+` and digits).
    pub starts_with: Option<String>,
    /// The number ends with these digits.
    pub ends_with: Option<String>,
    /// At most this many (capped at [`MAX_RESULTS`]).
    pub limit: usize,
}

impl Search {
    /// The start every number it accepts has, where it fixes one (`starts_with`, or the
    /// North American plan's area code).
    fn fixed_start(&self) -> Option<String> {
        match (&self.starts_with, &self.area_code) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(a)) => Some(format!("+1{a}")),
            _ => None,
        }
    }

    /// `range` cut down to the block this search can match in (a prefix grant walked from the
    /// start the search fixes rather than from its own); `None` when they do not meet.
    fn narrow(&self, range: &NumberRange) -> Option<NumberRange> {
        let (NumberRange::Prefix(p), Some(start)) = (range, self.fixed_start()) else {
            return Some(range.clone());
        };
        if start.starts_with(p.as_str()) {
            Some(NumberRange::Prefix(start))
        } else if p.starts_with(&start) {
            Some(range.clone())
        } else {
            None
        }
    }

    fn accepts(&self, number: &str) -> bool {
        let digits = number.as_bytes().get(1..).unwrap_or_default();
        country_of(number) == Some(self.country.as_str())
            && self.kind.is_none_or(|k| kind_of(number) == k)
            && (self.area_code.as_deref())
                .is_none_or(|a| number.starts_with('+') && number.get(2..5) == Some(a))
            && (self.contains.as_ref()).is_none_or(|p| p.matches(digits))
            && (self.starts_with.as_deref()).is_none_or(|s| number.starts_with(s))
            && (self.ends_with.as_deref()).is_none_or(|s| number.ends_with(s))
    }
}

/// The numbers of `range` in ascending order (nothing for a prefix of a plan whose length is
/// not fixed).
fn numbers_of(range: &NumberRange) -> Box<dyn Iterator<Item = String> + '_> {
    let spread =
        |low: u128, high: u128, width: usize| (low..=high).map(move |n| format!("+{n:0width$}"));
    match range {
        NumberRange::Exact(n) => Box::new(std::iter::once(n.clone())),
        NumberRange::Span(low, high) => {
            let (Ok(l), Ok(h)) = (low[1..].parse::<u128>(), high[1..].parse::<u128>()) else {
                return Box::new(std::iter::empty());
            };
            Box::new(spread(l, h, low.len() - 1))
        }
        NumberRange::Prefix(prefix) => {
            let Some(length) = length_after(prefix) else {
                return Box::new(std::iter::empty());
            };
            let head = &prefix[1..];
            let Some(free) = length.checked_sub(head.len()) else {
                return Box::new(std::iter::empty());
            };
            let Ok(base) = format!("{head}{}", "0".repeat(free)).parse::<u128>() else {
                return Box::new(std::iter::empty());
            };
            Box::new(spread(base, base + 10u128.pow(free as u32) - 1, length))
        }
    }
}

impl PhoneNumbers {
    /// The numbers `account` may claim that `search` accepts, in its grants' order.
    pub async fn available(
        &self,
        account: &Account,
        search: &Search,
    ) -> Result<Vec<String>, StoreError> {
        let mut ranges = account.number_ranges.clone();
        ranges.extend(self.ranges(&account.sid).await?);
        let taken: HashSet<String> = (self.all().into_iter())
            .map(|r| r.number.phone_number)
            .collect();
        let limit = search.limit.clamp(1, MAX_RESULTS);
        let mut found = Vec::new();
        let mut seen = HashSet::new();
        let narrowed: Vec<NumberRange> = ranges.iter().filter_map(|r| search.narrow(r)).collect();
        let candidates = narrowed.iter().flat_map(numbers_of).take(MAX_SCAN);
        for number in candidates {
            if search.accepts(&number) && !taken.contains(&number) && seen.insert(number.clone()) {
                found.push(number);
                if found.len() == limit {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// The countries `account`'s grants hold numbers of.
    pub async fn countries(&self, account: &Account) -> Result<Vec<&'static str>, StoreError> {
        let mut ranges = account.number_ranges.clone();
        ranges.extend(self.ranges(&account.sid).await?);
        let mut countries: Vec<&'static str> = Vec::new();
        for range in &ranges {
            let first = match range {
                NumberRange::Exact(n) | NumberRange::Span(n, _) => n.clone(),
                NumberRange::Prefix(p) => numbers_of(range).next().unwrap_or_else(|| p.clone()),
            };
            if let Some(c) = country_of(&first).filter(|c| !countries.contains(c)) {
                countries.push(c);
            }
        }
        Ok(countries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_sorted_by_country_and_kind() {
        assert_eq!(country_of("+14155550100"), Some("US"));
        assert_eq!(country_of("+14165550100"), Some("CA"));
        assert_eq!(country_of("+442071234567"), Some("GB"));
        assert_eq!(country_of("+8613800000000"), None);
        assert_eq!(kind_of("+18005550100"), Kind::TollFree);
        assert_eq!(kind_of("+14155550100"), Kind::Local);
        assert_eq!(kind_of("+447700900123"), Kind::Mobile);
        assert_eq!(kind_of("+448001234567"), Kind::TollFree);
    }

    #[test]
    fn grants_become_numbers_lazily_and_searches_filter_them() {
        let prefix = NumberRange::parse("+1555123*").unwrap();
        let all: Vec<String> = numbers_of(&prefix).take(3).collect();
        assert_eq!(all, ["+15551230000", "+15551230001", "+15551230002"]);
        assert_eq!(numbers_of(&prefix).count(), 10_000);
        let span = NumberRange::parse("+15550001000-+15550001002").unwrap();
        assert_eq!(numbers_of(&span).count(), 3);
        // A prefix of a plan whose length is not fixed, or a whole plan: never listed out.
        assert_eq!(numbers_of(&NumberRange::parse("+49*").unwrap()).count(), 0);
        assert!(
            numbers_of(&NumberRange::parse("+*").unwrap())
                .next()
                .is_none()
        );

        let mut s = Search {
            country: "US".into(),
            kind: Some(Kind::Local),
            area_code: Some("555".into()),
            contains: Pattern::parse("12*0"),
            limit: 10,
            ..Search::default()
        };
        assert!(s.accepts("+15551230000"));
        assert!(!s.accepts("+15561230000"), "another area code");
        assert!(!s.accepts("+15551000000"), "no 12*0 in it");
        s.contains = Pattern::parse("CALL");
        assert!(s.accepts("+15552255000"), "letters are the keypad's digits");
        s.contains = None;
        s.kind = Some(Kind::TollFree);
        assert!(!s.accepts("+15551230000"));
        assert!(Pattern::parse("1").is_none() && Pattern::parse("12-3").is_none());
        // A grant of the whole plan is walked from the area code asked for.
        let whole = NumberRange::parse("+1*").unwrap();
        let in_212 = Search {
            country: "US".into(),
            area_code: Some("212".into()),
            limit: 1,
            ..Search::default()
        };
        let narrowed = in_212.narrow(&whole).unwrap();
        assert_eq!(
            numbers_of(&narrowed).next().as_deref(),
            Some("+12120000000")
        );
        assert!(in_212.narrow(&prefix).is_none(), "+1555123… holds no 212");
    }
}
