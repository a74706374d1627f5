//! `@username` mentions in a message's text (SPEC.md §8.13): the token
//! syntax, pure. Which tokens name someone is the room's to decide (its
//! members, by username).
//!
//! A mention is an `@` at the start of the text or after a character that
//! is neither a username character nor `@`, followed by a *run*: the
//! longest sequence of username characters (ASCII letters in either case,
//! digits, `_`, `.`, `-`). The run, with ASCII letters lowercased, is the
//! name; if it ends in `.` (a sentence ending after the mention), the name
//! without those trailing dots is the *fallback*, tried when the full
//! name is nobody's.

/// Whether `c` may appear in a username (before lowercasing).
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// A usernames' length bounds, in characters (SPEC.md §5.2.1).
const NAME_LEN: std::ops::RangeInclusive<usize> = 3..=32;

/// One `@` token: its name and, if the run ends in dots, the name
/// without them. Names outside 3–32 characters are never usernames and
/// are left out (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub name: Option<String>,
    pub fallback: Option<String>,
}

/// The `@` tokens of `text`, in order (duplicates included).
pub fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut prev: Option<char> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let starts = c == '@' && prev.is_none_or(|p| !is_name_char(p) && p != '@');
        prev = Some(c);
        if !starts {
            continue;
        }
        let from = i + 1;
        let mut to = from;
        while let Some(&(j, d)) = chars.peek() {
            if !is_name_char(d) {
                break;
            }
            to = j + d.len_utf8();
            prev = Some(d);
            chars.next();
        }
        let run = text[from..to].to_ascii_lowercase();
        if run.is_empty() {
            continue;
        }
        let trimmed = run.trim_end_matches('.');
        let fits = |s: &str| NAME_LEN.contains(&s.len()).then(|| s.to_owned());
        let fallback = (trimmed.len() < run.len()).then(|| fits(trimmed)).flatten();
        let name = fits(&run);
        if name.is_some() || fallback.is_some() {
            out.push(Token { name, fallback });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<(Option<&'static str>, Option<&'static str>)> {
        tokens(text)
            .into_iter()
            .map(|t| {
                (
                    t.name.map(|n| &*Box::leak(n.into_boxed_str())),
                    t.fallback.map(|n| &*Box::leak(n.into_boxed_str())),
                )
            })
            .collect()
    }

    #[test]
    fn a_mention_is_an_at_and_the_longest_run_of_name_characters() {
        assert_eq!(names("@bob hi"), vec![(Some("bob"), None)]);
        assert_eq!(names("hi @bob_2-x, and"), vec![(Some("bob_2-x"), None)]);
        assert_eq!(names("(@bob)"), vec![(Some("bob"), None)]);
        assert_eq!(names("@bob@carol"), vec![(Some("bob"), None)]);
    }

    #[test]
    fn ascii_letters_are_lowercased_nothing_else_is_a_name_character() {
        assert_eq!(names("@BoB"), vec![(Some("bob"), None)]);
        assert_eq!(names("@bobé"), vec![(Some("bob"), None)]);
        assert!(names("@éric").is_empty());
    }

    #[test]
    fn an_at_inside_a_word_or_after_another_at_is_no_mention() {
        assert!(names("mail bob@example.com").is_empty());
        assert!(names("@@bob").is_empty());
        assert!(names("x.@bob").is_empty(), "after a name character");
        assert!(names("@ bob").is_empty());
        assert!(names("@").is_empty());
    }

    #[test]
    fn trailing_dots_give_a_fallback_name() {
        assert_eq!(names("thanks @bob."), vec![(Some("bob."), Some("bob"))]);
        assert_eq!(names("@bob..."), vec![(Some("bob..."), Some("bob"))]);
        assert_eq!(names("@a.b"), vec![(Some("a.b"), None)]);
    }

    #[test]
    fn names_outside_three_to_thirty_two_characters_are_left_out() {
        assert!(names("@ab hi").is_empty());
        let long = format!("@{}", "a".repeat(33));
        assert!(names(&long).is_empty());
        let max = format!("@{}", "a".repeat(32));
        assert_eq!(tokens(&max).len(), 1);
        assert_eq!(
            names("@ab."),
            vec![(Some("ab."), None)],
            "too short without the dot"
        );
    }

    #[test]
    fn every_token_is_returned_in_order_duplicates_included() {
        assert_eq!(
            names("@carol @bob @carol"),
            vec![
                (Some("carol"), None),
                (Some("bob"), None),
                (Some("carol"), None)
            ]
        );
    }
}
