//! Telnyx's numbered pages (`page[number]`, `page[size]`; `meta` with `page_number`,
//! `page_size`, `total_pages`, `total_results`, which the SDKs' paginators follow).

use super::errors::ApiError;
use serde_json::{Value, json};
use std::collections::HashMap;

/// The largest page.
const MAX_SIZE: usize = 250;
/// Page numbers above this are refused (no list is near that long).
const MAX_NUMBER: usize = 1_000_000;

pub(super) struct Page {
    number: usize,
    size: usize,
}

impl Page {
    /// The page a query asks for: the first 20 by default.
    pub(super) fn read(query: &HashMap<String, String>) -> Result<Self, ApiError> {
        let read = |key: &str, default: usize, max: usize| match query.get(key) {
            None => Ok(default),
            Some(v) => (v.parse::<usize>().ok())
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| ApiError::out_of_range(key, format!("'{key}' must be 1 to {max}."))),
        };
        Ok(Self {
            number: read("page[number]", 1, MAX_NUMBER)?,
            size: read("page[size]", 20, MAX_SIZE)?,
        })
    }

    /// Where this page lies in a list of `len` rows.
    pub(super) fn window(&self, len: usize) -> std::ops::Range<usize> {
        let start = (self.number - 1).saturating_mul(self.size).min(len);
        start..start.saturating_add(self.size).min(len)
    }

    /// The list response: this page of `rows`, each rendered (only those), and the meta of
    /// them all.
    pub(super) fn of<T>(&self, rows: &[T], render: impl Fn(&T) -> Value) -> Value {
        let data: Vec<Value> = rows[self.window(rows.len())].iter().map(render).collect();
        json!({
            "data": data,
            "meta": {
                "page_number": self.number,
                "page_size": self.size,
                "total_pages": rows.len().div_ceil(self.size),
                "total_results": rows.len(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_a_window_of_the_list() {
        let page = |number: &str, size: &str| {
            let q = HashMap::from([
                ("page[number]".to_owned(), number.to_owned()),
                ("page[size]".to_owned(), size.to_owned()),
            ]);
            Page::read(&q).unwrap()
        };
        assert_eq!(page("1", "2").window(5), 0..2);
        assert_eq!(page("3", "2").window(5), 4..5);
        assert_eq!(page("4", "2").window(5), 5..5);
        assert_eq!(page("1000000", "250").window(5), 5..5);
        let v = page("2", "2").of(&[1, 2, 3], |n| json!(n));
        assert_eq!(v["data"], json!([3]));
        assert_eq!(v["meta"]["total_pages"], 2);
        assert_eq!(
            Page::read(&HashMap::from([(
                "page[size]".to_owned(),
                "251".to_owned()
            )]))
            .err()
            .map(|e| e.code),
            Some("10033")
        );
    }
}
