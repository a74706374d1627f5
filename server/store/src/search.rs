//! The room search, shared by both backends so they answer alike.
//!
//! Rooms store their name and topic twice: as given, and folded with
//! Rust's `str::to_lowercase` (`name_folded`, `topic_folded`). A search
//! folds the query the same way and matches it as a substring with `LIKE`.
//! Folding in Rust rather than in SQL is what makes the backends agree:
//! SQLite's `lower()` folds ASCII only, and Postgres' depends on the
//! database's ctype.

/// How LIST_ROOMS matches rooms (SPEC.md §5.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomFilter<'a> {
    /// Name or topic contains the text, case-insensitively; empty matches
    /// every room.
    Contains(&'a str),
    /// The name is the text, case-insensitively, ignoring white space
    /// around it.
    Named(&'a str),
}

/// A room name as the `name_folded` column holds it, for an exact match.
pub(crate) fn folded_name(name: &str) -> String {
    name.trim().to_lowercase()
}

/// `%query%` for a case-insensitive substring match with `ESCAPE '!'`: the
/// user's `%`, `_` and `!` match themselves. Folded like the `*_folded`
/// columns; the empty query becomes `%%`, which matches every room.
///
/// `!` rather than the customary backslash: `'!'` is the same one-character
/// string literal in SQLite and in Postgres whatever its
/// `standard_conforming_strings`, so both backends run the same statement.
pub(crate) fn like_contains_pattern(query: &str) -> String {
    let folded = query.to_lowercase();
    let mut pattern = String::with_capacity(folded.len() + 2);
    pattern.push('%');
    for c in folded.chars() {
        if matches!(c, '%' | '_' | '!') {
            pattern.push('!');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_pattern_escapes_wildcards_and_folds_case() {
        assert_eq!(like_contains_pattern(""), "%%");
        assert_eq!(like_contains_pattern("Ab"), "%ab%");
        assert_eq!(like_contains_pattern("50%_a!b"), "%50!%!_a!!b%");
        assert_eq!(like_contains_pattern("a\\b"), "%a\\b%");
        assert_eq!(like_contains_pattern("ÉTÉ"), "%été%");
    }
}
