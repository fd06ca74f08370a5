//! Wall-clock time as records keep it: Unix milliseconds. Every layer stamps with it (the call
//! core its records, the store its rows, the dialects their resources), so it lives beneath
//! them all rather than in the call core.

/// Now, in Unix milliseconds (0 before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
