//! [`RichText`]: a formatted message built piece by piece, so that nobody
//! counts byte offsets by hand (SPEC.md §5.11.1).

use std::ops::Range;

use confab_protocol::rich::{check_spans, Refusal};
use confab_protocol::{Color, Span, Style};

/// A message's text with its formatting spans, for
/// [`Client::send_rich`](crate::Client::send_rich) and
/// [`Client::edit_rich`](crate::Client::edit_rich).
///
/// Each piece appended with a style gets a span over exactly its bytes:
///
/// ```
/// use confab_sdk::{Color, RichText};
///
/// let msg = RichText::new()
///     .bold("Deploy")
///     .plain(" is ")
///     .color("green", Color::Green)
///     .plain(": see ")
///     .link("the docs", "https://confab.example/docs");
/// assert_eq!(msg.text(), "Deploy is green: see the docs");
/// assert_eq!(msg.spans().len(), 3);
/// assert!(msg.check().is_ok());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RichText {
    text: String,
    spans: Vec<Span>,
}

impl RichText {
    /// An empty message.
    pub fn new() -> RichText {
        RichText::default()
    }

    /// A message from its parts as they travel (as a received event
    /// carries them).
    pub fn from_parts(text: impl Into<String>, spans: Vec<Span>) -> RichText {
        RichText {
            text: text.into(),
            spans,
        }
    }

    /// Appends text without formatting.
    pub fn plain(mut self, text: &str) -> RichText {
        self.text.push_str(text);
        self
    }

    /// Appends `text` with every one of `styles` over it (bold and a
    /// colour, say). An empty `text` adds no span.
    pub fn styled(mut self, text: &str, styles: impl IntoIterator<Item = Style>) -> RichText {
        let start = self.offset();
        self.text.push_str(text);
        let end = self.offset();
        if start < end {
            for style in styles {
                self.spans.push(Span::new(start..end, style));
            }
        }
        self
    }

    /// Appends bold text.
    pub fn bold(self, text: &str) -> RichText {
        self.styled(text, [Style::Bold])
    }

    /// Appends italic text.
    pub fn italic(self, text: &str) -> RichText {
        self.styled(text, [Style::Italic])
    }

    /// Appends struck-through text.
    pub fn strikethrough(self, text: &str) -> RichText {
        self.styled(text, [Style::Strikethrough])
    }

    /// Appends inline code.
    pub fn code(self, text: &str) -> RichText {
        self.styled(text, [Style::Code])
    }

    /// Appends a block of code (no other span may touch it).
    pub fn code_block(self, text: &str) -> RichText {
        self.styled(text, [Style::CodeBlock])
    }

    /// Appends `text` linking to `url` (`http`, `https` or `mailto`).
    pub fn link(self, text: &str, url: &str) -> RichText {
        self.styled(text, [Style::Link(url.to_owned())])
    }

    /// Appends `text` in `color`.
    pub fn color(self, text: &str, color: Color) -> RichText {
        self.styled(text, [Style::Color(color)])
    }

    /// Adds a span over bytes of the text already written.
    pub fn span(mut self, bytes: Range<u32>, style: Style) -> RichText {
        self.spans.push(Span::new(bytes, style));
        self
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The spans, in the order they were added.
    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    /// Both, to send.
    pub fn into_parts(self) -> (String, Vec<Span>) {
        (self.text, self.spans)
    }

    /// The span rules the server applies (SPEC.md §5.11.1), checked here
    /// before sending: `Err` carries the code the server would answer.
    pub fn check(&self) -> Result<(), Refusal> {
        check_spans(&self.text, &self.spans)
    }

    /// The text's length so far as a span offset. Longer texts than u32
    /// can count are refused by the server as too long anyway.
    fn offset(&self) -> u32 {
        u32::try_from(self.text.len()).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_protocol::ErrorCode;

    #[test]
    fn pieces_get_spans_over_their_utf8_bytes() {
        let msg = RichText::new()
            .plain("ok ")
            .styled("👍", [Style::Bold, Style::Color(Color::Yellow)])
            .plain("\n")
            .code_block("fn main() {}");
        assert_eq!(msg.text(), "ok 👍\nfn main() {}");
        assert_eq!(
            msg.spans(),
            &[
                Span::new(3..7, Style::Bold),
                Span::new(3..7, Style::Color(Color::Yellow)),
                Span::new(8..20, Style::CodeBlock),
            ]
        );
        assert_eq!(msg.check(), Ok(()));
        assert!(RichText::new().bold("").spans().is_empty());
    }

    #[test]
    fn check_reports_the_servers_code() {
        let bad = RichText::new().link("click", "javascript:alert(1)");
        assert_eq!(bad.check().map_err(|r| r.code), Err(ErrorCode::InvalidLink));
        let overlap = RichText::new().bold("ab").span(1..2, Style::Bold);
        assert_eq!(
            overlap.check().map_err(|r| r.code),
            Err(ErrorCode::InvalidSpans)
        );
    }
}
