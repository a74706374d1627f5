//! What the input line turns into formatting when a message is sent:
//! `**bold**`, `_italic_`, `~~struck~~`, `` `code` `` and bare
//! `http(s)://` links become spans (SPEC.md §5.11.1); everything else is
//! sent as typed. The same marks the web client reads.

use confab_sdk::{RichText, Style};

/// The paired marks, longest first so `**` wins over a single mark.
const MARKS: &[(&str, Style)] = &[
    ("**", Style::Bold),
    ("~~", Style::Strikethrough),
    ("`", Style::Code),
    ("_", Style::Italic),
];

/// Whether a mark at this point opens: `_` only at the start of a word
/// (so snake_case stays as typed), the others anywhere.
fn opens(mark: &str, before: Option<char>) -> bool {
    mark != "_" || before.is_none_or(char::is_whitespace)
}

/// `text` with its marks turned into spans.
pub fn parse(text: &str) -> RichText {
    let mut out = RichText::new();
    let mut plain = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let before = plain.chars().last().or_else(|| out.text().chars().last());
        let marked = MARKS.iter().find_map(|(mark, style)| {
            let inner = rest.strip_prefix(mark)?;
            if !opens(mark, before) {
                return None;
            }
            let end = inner.find(mark)?;
            let body = &inner[..end];
            let valid = !body.is_empty() && !body.starts_with(' ') && !body.ends_with(' ');
            valid.then(|| (body, style.clone(), &inner[end + mark.len()..]))
        });
        if let Some((body, style, after)) = marked {
            out = out.plain(&std::mem::take(&mut plain)).styled(body, [style]);
            rest = after;
            continue;
        }
        let at_word_start = before.is_none_or(char::is_whitespace);
        if at_word_start && (rest.starts_with("https://") || rest.starts_with("http://")) {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let url = &rest[..end];
            out = out.plain(&std::mem::take(&mut plain)).link(url, url);
            rest = &rest[end..];
            continue;
        }
        plain.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out.plain(&plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_sdk::Span;

    #[test]
    fn marks_become_spans_over_their_text() {
        let m = parse("ship **today** or _never_, see `make` ~~now~~");
        assert_eq!(m.text(), "ship today or never, see make now");
        assert_eq!(
            m.spans(),
            &[
                Span::new(5..10, Style::Bold),
                Span::new(14..19, Style::Italic),
                Span::new(25..29, Style::Code),
                Span::new(30..33, Style::Strikethrough),
            ]
        );
        assert!(m.check().is_ok());
    }

    #[test]
    fn links_and_what_stays_as_typed() {
        let m = parse("docs: https://confab.example/a_b_c ok");
        assert_eq!(m.text(), "docs: https://confab.example/a_b_c ok");
        assert_eq!(
            m.spans(),
            &[Span::new(
                6..34,
                Style::Link("https://confab.example/a_b_c".into())
            )]
        );
        for typed in [
            "snake_case_name",
            "2 * 3 ** 4",
            "** spaced **",
            "a ` b",
            "ünï_cödé_",
        ] {
            let m = parse(typed);
            assert_eq!(m.text(), typed);
            assert!(m.spans().is_empty(), "{typed}: {:?}", m.spans());
        }
    }
}
