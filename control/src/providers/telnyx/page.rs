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

    /// The list response: this page of `rows`, each rendered, and the meta of them all.
    pub(super) fn of<T>(&self, rows: &[T], render: impl Fn(&T) -> Value) -> Value {
        let data: Vec<Value> = rows
            .iter()
            .skip((self.number - 1).saturating_mul(self.size))
            .take(self.size)
            .map(render)
            .collect();
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
