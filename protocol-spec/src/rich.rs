//! Rich messages (SPEC.md §5.11): formatting spans over a message's text,
//! the fixed colour palette, and stickers. The types, their wire form and
//! the rules a server checks before it accepts them — pure functions, so
//! the server, the SDKs and the vectors test share one definition.
//!
//! Span ranges are **UTF-8 byte offsets** into the message's text,
//! half-open (`start..end`): a receiver checks one with
//! `str::is_char_boundary` in O(1) and slices the text's bytes with it
//! directly, in Rust and in a browser (a `Uint8Array` before
//! `TextDecoder`) alike, whereas scalar-value offsets would need a walk
//! of the text for every check and match neither Rust's slicing nor
//! JavaScript's UTF-16 indices.

use bytes::{BufMut, BytesMut};

use crate::error::ErrorCode;
use crate::wire::{put_nested, put_str, put_varint, Reader};
use crate::DecodeError;

/// The most spans one message may carry; more is `INVALID_SPANS` (407).
pub const MAX_SPANS: usize = 64;
/// The longest link URL, in bytes; longer is `INVALID_LINK` (409).
pub const MAX_URL_LEN: usize = 2048;
/// The longest sticker id, in bytes.
pub const MAX_STICKER_ID_LEN: usize = 32;

open_code! {
    /// A colour of the fixed palette (SPEC.md §5.11.2): the 16 colours of
    /// ANSI terminals, in the order of their SGR codes (30–37, then the
    /// bright ones, 90–97). Clients choose the shades; the names are what
    /// is agreed. A value outside the palette is kept as `Unknown` so a
    /// server can refuse it with `UNKNOWN_COLOR` (408) and a client can
    /// ignore the span.
    Color {
        Black = 0 => "black",
        Red = 1 => "red",
        Green = 2 => "green",
        Yellow = 3 => "yellow",
        Blue = 4 => "blue",
        Magenta = 5 => "magenta",
        Cyan = 6 => "cyan",
        White = 7 => "white",
        BrightBlack = 8 => "bright_black",
        BrightRed = 9 => "bright_red",
        BrightGreen = 10 => "bright_green",
        BrightYellow = 11 => "bright_yellow",
        BrightBlue = 12 => "bright_blue",
        BrightMagenta = 13 => "bright_magenta",
        BrightCyan = 14 => "bright_cyan",
        BrightWhite = 15 => "bright_white",
    }
}

/// Span kind numbers and names (SPEC.md §5.11.1).
pub mod span_kind {
    pub const BOLD: u8 = 1;
    pub const ITALIC: u8 = 2;
    pub const STRIKETHROUGH: u8 = 3;
    pub const CODE: u8 = 4;
    pub const CODE_BLOCK: u8 = 5;
    pub const LINK: u8 = 6;
    pub const COLOR: u8 = 7;

    const NAMES: [(u8, &str); 7] = [
        (BOLD, "bold"),
        (ITALIC, "italic"),
        (STRIKETHROUGH, "strikethrough"),
        (CODE, "code"),
        (CODE_BLOCK, "code_block"),
        (LINK, "link"),
        (COLOR, "color"),
    ];

    /// The stable snake_case name of a kind; `None` for one this version
    /// does not know.
    pub fn name(kind: u8) -> Option<&'static str> {
        NAMES.iter().find(|(k, _)| *k == kind).map(|(_, n)| *n)
    }

    /// The kind with this name.
    pub fn from_name(name: &str) -> Option<u8> {
        NAMES.iter().find(|(_, n)| *n == name).map(|(k, _)| *k)
    }
}

/// What a span does to its range of the text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Style {
    Bold,
    Italic,
    Strikethrough,
    /// Inline code (monospace, literal).
    Code,
    /// A block of code: literal, monospace, on lines of its own; no other
    /// span may touch its characters.
    CodeBlock,
    /// A link to `url` (http, https or mailto).
    Link(String),
    /// Text in a colour of the palette.
    Color(Color),
    /// A kind this version does not know; its remaining bytes are kept.
    /// Servers refuse it (`INVALID_SPANS`); clients ignore the span.
    Unknown {
        kind: u8,
        data: Vec<u8>,
    },
}

impl Style {
    pub fn kind(&self) -> u8 {
        match self {
            Style::Bold => span_kind::BOLD,
            Style::Italic => span_kind::ITALIC,
            Style::Strikethrough => span_kind::STRIKETHROUGH,
            Style::Code => span_kind::CODE,
            Style::CodeBlock => span_kind::CODE_BLOCK,
            Style::Link(_) => span_kind::LINK,
            Style::Color(_) => span_kind::COLOR,
            Style::Unknown { kind, .. } => *kind,
        }
    }

    /// The stable snake_case name (SPEC.md's JSON form); `None` for an
    /// unknown kind.
    pub fn name(&self) -> Option<&'static str> {
        span_kind::name(self.kind())
    }
}

/// A formatting span: `style` over the bytes `start..end` of the text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Span {
    /// First byte of the range (a char boundary).
    pub start: u32,
    /// One past the last byte (a char boundary, after `start`).
    pub end: u32,
    pub style: Style,
}

impl Span {
    pub fn new(range: std::ops::Range<u32>, style: Style) -> Span {
        Span {
            start: range.start,
            end: range.end,
            style,
        }
    }

    /// Whether two ranges share a byte (touching ranges do not).
    fn overlaps(&self, other: &Span) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// As a nested item: start, end, kind, the kind's fields.
    pub fn encode(&self, buf: &mut BytesMut) {
        put_nested(buf, |b| {
            put_varint(b, self.start.into());
            put_varint(b, self.end.into());
            b.put_u8(self.style.kind());
            match &self.style {
                Style::Link(url) => put_str(b, url),
                Style::Color(c) => b.put_u8(c.code()),
                Style::Unknown { data, .. } => b.put_slice(data),
                Style::Bold
                | Style::Italic
                | Style::Strikethrough
                | Style::Code
                | Style::CodeBlock => {}
            }
        });
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Span, DecodeError> {
        let mut r = r.nested()?;
        let start = r.varint_u32()?;
        let end = r.varint_u32()?;
        let style = match r.u8()? {
            span_kind::BOLD => Style::Bold,
            span_kind::ITALIC => Style::Italic,
            span_kind::STRIKETHROUGH => Style::Strikethrough,
            span_kind::CODE => Style::Code,
            span_kind::CODE_BLOCK => Style::CodeBlock,
            span_kind::LINK => Style::Link(r.str()?),
            span_kind::COLOR => Style::Color(Color::from_code(r.u8()?)),
            kind => Style::Unknown {
                kind,
                data: r.bytes(r.remaining())?.to_vec(),
            },
        };
        Ok(Span { start, end, style })
    }
}

/// Writes a list of spans (each nested).
pub fn put_spans(buf: &mut BytesMut, spans: &[Span]) {
    put_varint(buf, spans.len() as u64);
    for s in spans {
        s.encode(buf);
    }
}

/// Reads a list of spans.
pub fn get_spans(r: &mut Reader<'_>) -> Result<Vec<Span>, DecodeError> {
    crate::reply::list(r, Span::decode)
}

/// Reads an appended list of spans: absent means none.
pub(crate) fn get_appended_spans(r: &mut Reader<'_>) -> Result<Vec<Span>, DecodeError> {
    if r.remaining() > 0 {
        get_spans(r)
    } else {
        Ok(Vec::new())
    }
}

/// Why a message's rich content was refused: the code and a message that
/// names the offending span.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    fn new(code: ErrorCode, message: String) -> Refusal {
        Refusal { code, message }
    }
}

/// Checks `spans` over `text` (SPEC.md §5.11.1), in this order, so a
/// request that breaks several rules always gets the same answer: the
/// count; then each span in order — a known kind, a non-empty range within
/// the text, both ends on character boundaries, a colour of the palette
/// (`UNKNOWN_COLOR`, 408), a link's URL (`INVALID_LINK`, 409); then the
/// overlaps: spans of one kind never overlap, and a code block overlaps
/// no other span. Everything else is `INVALID_SPANS` (407).
pub fn check_spans(text: &str, spans: &[Span]) -> Result<(), Refusal> {
    let invalid = |message: String| Refusal::new(ErrorCode::InvalidSpans, message);
    if spans.len() > MAX_SPANS {
        return Err(invalid(format!(
            "{} spans: at most {MAX_SPANS} are allowed",
            spans.len()
        )));
    }
    for (i, s) in spans.iter().enumerate() {
        if let Style::Unknown { kind, .. } = s.style {
            return Err(invalid(format!("span {i}: unknown kind {kind}")));
        }
        let (start, end) = (s.start as usize, s.end as usize);
        if start >= end || end > text.len() {
            return Err(invalid(format!(
                "span {i}: range {start}..{end} is empty or not within the text's {} bytes",
                text.len()
            )));
        }
        if !text.is_char_boundary(start) || !text.is_char_boundary(end) {
            return Err(invalid(format!(
                "span {i}: range {start}..{end} splits a character (offsets are UTF-8 bytes)"
            )));
        }
        match &s.style {
            Style::Color(Color::Unknown(c)) => {
                return Err(Refusal::new(
                    ErrorCode::UnknownColor,
                    format!("span {i}: unknown colour {c} (the palette is 0-15)"),
                ))
            }
            Style::Link(url) => {
                check_url(url).map_err(|why| {
                    Refusal::new(ErrorCode::InvalidLink, format!("span {i}: {why}"))
                })?;
            }
            _ => {}
        }
    }
    for (i, a) in spans.iter().enumerate() {
        for (j, b) in spans.iter().enumerate().skip(i + 1) {
            if !a.overlaps(b) {
                continue;
            }
            let same = a.style.kind() == b.style.kind();
            let block = a.style == Style::CodeBlock || b.style == Style::CodeBlock;
            if same || block {
                let what = if same {
                    "of one kind"
                } else {
                    "over a code block"
                };
                return Err(invalid(format!("spans {i} and {j} overlap {what}")));
            }
        }
    }
    Ok(())
}

/// Whether `text` shows nothing (SPEC.md §5.4.1), which a message's text
/// may not (`MESSAGE_EMPTY`, 400): every character is Unicode white space
/// (the White_Space property) or an invisible format character — U+00AD
/// SOFT HYPHEN, U+180E MONGOLIAN VOWEL SEPARATOR, U+200B-U+200F
/// (zero-width space, non-joiner, joiner, direction marks), U+2060-U+2064
/// (word joiner, invisible operators), U+FEFF (zero-width no-break space).
pub fn is_blank(text: &str) -> bool {
    text.chars().all(|c| {
        c.is_whitespace()
            || matches!(c, '\u{ad}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
    })
}

/// The rules of a message's content that need no catalogue (SPEC.md
/// §5.11): a sticker message (`sticker` given) has an empty text and no
/// spans (`STICKER_MESSAGE`, 411); any other message's spans pass
/// [`check_spans`]. The text's own rules (blank, too long) and whether the
/// sticker exists are the server's to check besides.
pub fn check_content(text: &str, spans: &[Span], sticker: Option<&str>) -> Result<(), Refusal> {
    match sticker {
        Some(_) if !text.is_empty() || !spans.is_empty() => Err(Refusal::new(
            ErrorCode::StickerMessage,
            "a sticker message has an empty text and no spans".into(),
        )),
        Some(_) => Ok(()),
        None => check_spans(text, spans),
    }
}

/// A link's URL (SPEC.md §5.11.1): 1 to [`MAX_URL_LEN`] bytes with no
/// white space or control character, whose scheme (before the first `:`,
/// compared without case) is `http` or `https` followed by `//` and a host,
/// or `mailto` followed by an address. Deliberately only this syntax, so
/// every implementation of SPEC.md decides alike; `javascript:`, `data:`
/// and every other scheme are refused.
pub fn check_url(url: &str) -> Result<(), String> {
    if url.is_empty() || url.len() > MAX_URL_LEN {
        return Err(format!("a link's URL must be 1-{MAX_URL_LEN} bytes"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a link's URL may not hold white space or control characters".into());
    }
    let Some((scheme, rest)) = url.split_once(':') else {
        return Err("a link's URL needs a scheme (http, https or mailto)".into());
    };
    let ok = match scheme.to_ascii_lowercase().as_str() {
        "http" | "https" => rest
            .strip_prefix("//")
            .is_some_and(|r| !r.is_empty() && !r.starts_with('/')),
        "mailto" => !rest.is_empty(),
        _ => return Err("a link's scheme must be http, https or mailto".into()),
    };
    if ok {
        Ok(())
    } else {
        Err("a link's URL has no host (http, https) or address (mailto)".into())
    }
}

/// Whether `id` is a well-formed sticker id (SPEC.md §5.11.3): 1 to
/// [`MAX_STICKER_ID_LEN`] bytes of `a-z`, `0-9`, `_` and `-`.
pub fn is_sticker_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_STICKER_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The text a sticker message carries (SPEC.md §5.11.3), for clients that
/// do not show stickers: the id between colons, `:tableflip:`.
pub fn sticker_text(id: &str) -> String {
    format!(":{id}:")
}

/// A sticker of the server's catalogue (STICKER_LIST).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sticker {
    /// Stable, [`is_sticker_id`]; what a message names.
    pub id: String,
    /// A short human name.
    pub name: String,
    /// The ASCII art, lines separated by `\n`.
    pub art: String,
}

impl Sticker {
    pub(crate) fn encode(&self, buf: &mut BytesMut) {
        put_nested(buf, |b| {
            put_str(b, &self.id);
            put_str(b, &self.name);
            put_str(b, &self.art);
        });
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Sticker, DecodeError> {
        let mut r = r.nested()?;
        Ok(Sticker {
            id: r.str()?,
            name: r.str()?,
            art: r.str()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str, spans: &[Span]) -> Option<ErrorCode> {
        check_spans(text, spans).err().map(|r| r.code)
    }

    #[test]
    fn spans_within_the_text_on_boundaries_pass() {
        let text = "héllo wörld";
        let spans = [
            Span::new(0..6, Style::Bold),
            Span::new(3..13, Style::Italic),
            Span::new(7..13, Style::Color(Color::Red)),
            Span::new(0..6, Style::Link("https://example.com/x?y".into())),
        ];
        assert_eq!(check_spans(text, &spans), Ok(()));
        assert_eq!(check_spans(text, &[]), Ok(()));
    }

    #[test]
    fn out_of_range_empty_and_split_characters_are_invalid_spans() {
        let text = "héllo";
        // Past the end, empty, backwards, and inside "é" (bytes 1..3).
        for (start, end) in [(0, 7), (3, 3), (4, 2), (0, 2), (2, 3)] {
            let span = Span {
                start,
                end,
                style: Style::Bold,
            };
            assert_eq!(
                code(text, &[span]),
                Some(ErrorCode::InvalidSpans),
                "{start}..{end}"
            );
        }
    }

    #[test]
    fn overlap_rules() {
        let text = "0123456789";
        let same = [Span::new(0..5, Style::Bold), Span::new(4..8, Style::Bold)];
        assert_eq!(code(text, &same), Some(ErrorCode::InvalidSpans));
        let touching = [Span::new(0..5, Style::Bold), Span::new(5..8, Style::Bold)];
        assert_eq!(code(text, &touching), None);
        let colours = [
            Span::new(0..5, Style::Color(Color::Red)),
            Span::new(2..3, Style::Color(Color::Blue)),
        ];
        assert_eq!(code(text, &colours), Some(ErrorCode::InvalidSpans));
        let block = [
            Span::new(0..10, Style::CodeBlock),
            Span::new(2..3, Style::Bold),
        ];
        assert_eq!(code(text, &block), Some(ErrorCode::InvalidSpans));
        let nested = [Span::new(0..10, Style::Bold), Span::new(2..3, Style::Code)];
        assert_eq!(code(text, &nested), None);
    }

    #[test]
    fn unknown_kinds_colours_and_too_many_spans_are_refused() {
        let unknown = Style::Unknown {
            kind: 99,
            data: vec![],
        };
        assert_eq!(
            code("abc", &[Span::new(0..1, unknown)]),
            Some(ErrorCode::InvalidSpans)
        );
        assert_eq!(
            code(
                "abc",
                &[Span::new(0..1, Style::Color(Color::from_code(16)))]
            ),
            Some(ErrorCode::UnknownColor)
        );
        let many: Vec<Span> = (0..=MAX_SPANS as u32)
            .map(|i| Span::new(i..i + 1, Style::Italic))
            .collect();
        let text = "x".repeat(MAX_SPANS + 1);
        assert_eq!(code(&text, &many), Some(ErrorCode::InvalidSpans));
        assert_eq!(code(&text, &many[..MAX_SPANS]), None);
    }

    #[test]
    fn links_allow_only_http_https_and_mailto() {
        for good in [
            "http://a",
            "HTTPS://example.com/path?q=1#f",
            "mailto:someone@example.com",
        ] {
            assert_eq!(check_url(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,hi",
            "ftp://example.com",
            "https:example.com",
            "https://",
            "https:///path",
            "mailto:",
            "example.com",
            "https://exa mple.com",
            "https://example.com/\n",
        ] {
            assert!(check_url(bad).is_err(), "{bad:?}");
            assert_eq!(
                code("abc", &[Span::new(0..1, Style::Link(bad.into()))]),
                Some(ErrorCode::InvalidLink),
                "{bad:?}"
            );
        }
        assert!(check_url(&format!("https://{}", "a".repeat(MAX_URL_LEN))).is_err());
    }

    #[test]
    fn sticker_ids() {
        for good in ["tableflip", "a", "cat-2", "x_y", &"a".repeat(32)] {
            assert!(is_sticker_id(good), "{good}");
        }
        for bad in ["", "Table", "a b", "é", "../x", &"a".repeat(33)] {
            assert!(!is_sticker_id(bad), "{bad}");
        }
        assert_eq!(sticker_text("shrug"), ":shrug:");
    }
}
