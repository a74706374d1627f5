//! Checked conversions between Confab's unsigned ids and timestamps and
//! the databases' signed 64-bit integers.

use crate::{StoreError, StoreResult};

/// A `u64` id or timestamp as the databases' signed 64-bit integer.
pub(crate) fn to_db(v: u64, what: &'static str) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| {
        StoreError::database(format!(
            "{what} {v} exceeds the database's 64-bit integer range"
        ))
    })
}

/// For lookups: a key beyond i64::MAX cannot have been stored, so it
/// matches nothing (rather than being an error).
pub(crate) fn to_db_opt(v: u64) -> Option<i64> {
    i64::try_from(v).ok()
}

pub(crate) fn from_db(v: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(v).map_err(|_| out_of_range(what, v))
}

pub(crate) fn out_of_range(what: &str, v: i64) -> StoreError {
    StoreError::database(format!("stored {what} {v} is out of range"))
}

/// `id < before`, with 0 (and anything beyond i64::MAX) meaning no bound,
/// as the inclusive `id <= max` that the planners see as a plain index
/// range (history by seq, notifications and audit by id).
pub(crate) fn max_below(before: u64) -> i64 {
    match to_db_opt(before) {
        Some(b) if b > 0 => b - 1,
        _ => i64::MAX,
    }
}

/// A count as the protocol's `u32`.
pub(crate) fn count(n: i64, what: &str) -> StoreResult<u32> {
    u32::try_from(n).map_err(|_| out_of_range(what, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_reject_out_of_range_values() {
        assert!(to_db(u64::MAX, "x").is_err());
        assert_eq!(to_db(7, "x").ok(), Some(7));
        assert_eq!(to_db_opt(u64::MAX), None);
        assert!(from_db(-1, "x").is_err());
        assert!(count(i64::from(u32::MAX) + 1, "x").is_err());
        assert_eq!(count(3, "x").ok(), Some(3));
    }

    #[test]
    fn id_bound_zero_and_huge_mean_unbounded() {
        assert_eq!(max_below(0), i64::MAX);
        assert_eq!(max_below(u64::MAX), i64::MAX);
        assert_eq!(max_below(10), 9);
    }
}
