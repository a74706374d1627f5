//! Shape rules a request must meet before it is routed anywhere
//! (SPEC.md §10.1): names, topics, message bodies, page sizes.

use confab_protocol::{rich, ErrorCode, Span};

use crate::stickers::Catalogue;

/// The largest page LIST_ROOMS, HISTORY, LIST_NOTIFICATIONS and ROOM_AUDIT
/// return (and the smallest is 1).
pub const PAGE_LIMIT: u32 = 200;

/// Room names: 1-64 characters after trimming, no control characters.
pub fn check_room_name(name: &str) -> Result<String, ErrorCode> {
    let name = name.trim();
    let n = name.chars().count();
    if n == 0 || n > 64 || has_control(name) {
        return Err(ErrorCode::InvalidRoomName);
    }
    Ok(name.to_owned())
}

/// Topics: at most 256 characters, no control characters.
pub fn check_topic(topic: &str) -> Result<(), ErrorCode> {
    if topic.chars().count() > 256 || has_control(topic) {
        return Err(ErrorCode::InvalidTopic);
    }
    Ok(())
}

/// A message body: not blank, at most `max_len` bytes. The error comes
/// with the message to send.
pub fn check_message(body: &str, max_len: u32) -> Result<(), (ErrorCode, String)> {
    if is_blank(body) {
        return Err((
            ErrorCode::MessageEmpty,
            ErrorCode::MessageEmpty.default_message().to_owned(),
        ));
    }
    if body.len() > max_len as usize {
        return Err((
            ErrorCode::MessageTooLong,
            format!("message exceeds {max_len} bytes"),
        ));
    }
    Ok(())
}

/// A message's content (SPEC.md §5.4.1, §5.11), in the order a server
/// checks it. A sticker message: no text or spans of its own
/// (`STICKER_MESSAGE`, 411), a sticker of `catalogue` (`UNKNOWN_STICKER`,
/// 410). Any other: the text ([`check_message`]), then its spans
/// (`INVALID_SPANS`, `UNKNOWN_COLOR`, `INVALID_LINK`).
pub fn check_content(
    text: &str,
    spans: &[Span],
    sticker: Option<&str>,
    max_len: u32,
    catalogue: &Catalogue,
) -> Result<(), (ErrorCode, String)> {
    let refused = |r: rich::Refusal| (r.code, r.message);
    match sticker {
        Some(id) => {
            rich::check_content(text, spans, sticker).map_err(refused)?;
            if catalogue.get(id).is_none() {
                return Err((
                    ErrorCode::UnknownSticker,
                    ErrorCode::UnknownSticker.default_message().to_owned(),
                ));
            }
            Ok(())
        }
        None => {
            check_message(text, max_len)?;
            rich::check_spans(text, spans).map_err(refused)
        }
    }
}

/// A page size: 1 to [`PAGE_LIMIT`].
pub fn check_page_limit(limit: u32) -> Result<(), ErrorCode> {
    if (1..=PAGE_LIMIT).contains(&limit) {
        Ok(())
    } else {
        Err(ErrorCode::InvalidPaging)
    }
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Whether `text` shows nothing (SPEC.md §5.4.1): every character is
/// Unicode white space (the White_Space property) or an invisible format
/// character — U+00AD SOFT HYPHEN, U+180E MONGOLIAN VOWEL SEPARATOR,
/// U+200B-U+200F (zero-width space, non-joiner, joiner, direction
/// marks), U+2060-U+2064 (word joiner, invisible operators), U+FEFF
/// (zero-width no-break space).
pub fn is_blank(text: &str) -> bool {
    text.chars().all(|c| {
        c.is_whitespace()
            || matches!(c, '\u{ad}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_are_trimmed_and_bounded() {
        assert_eq!(check_room_name("  general ").unwrap(), "general");
        assert_eq!(check_room_name("   "), Err(ErrorCode::InvalidRoomName));
        assert_eq!(
            check_room_name(&"x".repeat(65)),
            Err(ErrorCode::InvalidRoomName)
        );
        assert_eq!(check_room_name("a\u{7}b"), Err(ErrorCode::InvalidRoomName));
        assert!(
            check_room_name(&"é".repeat(64)).is_ok(),
            "limit counts characters, not bytes"
        );
    }

    #[test]
    fn topics_are_bounded() {
        assert!(check_topic("").is_ok());
        assert_eq!(check_topic(&"x".repeat(257)), Err(ErrorCode::InvalidTopic));
        assert_eq!(check_topic("line\nbreak"), Err(ErrorCode::InvalidTopic));
    }

    #[test]
    fn messages_must_have_text_and_fit() {
        assert!(check_message("hi", 10).is_ok());
        assert_eq!(
            check_message(" \n\t", 10).unwrap_err().0,
            ErrorCode::MessageEmpty
        );
        let (code, message) = check_message("hello world", 10).unwrap_err();
        assert_eq!(code, ErrorCode::MessageTooLong);
        assert!(message.contains("10 bytes"), "{message}");
    }

    #[test]
    fn invisible_text_is_blank_and_visible_text_is_not() {
        for blank in [
            "",
            " ",
            "\t\n",
            "\u{200b}",
            " \u{200b}\u{feff}\u{2060} ",
            "\u{3000}",
        ] {
            assert!(is_blank(blank), "{blank:?}");
            assert_eq!(
                check_message(blank, 10).unwrap_err().0,
                ErrorCode::MessageEmpty
            );
        }
        for shown in ["a", " x ", "\u{200b}.", "🙂", "\u{200d}🙂"] {
            assert!(!is_blank(shown), "{shown:?}");
        }
    }

    #[test]
    fn content_checks_text_first_then_spans_and_stickers_against_the_catalogue() {
        use confab_protocol::Style;
        let c = Catalogue::builtin();
        let bold = |r: std::ops::Range<u32>| vec![Span::new(r, Style::Bold)];
        let code = |text, spans: &[Span], sticker| {
            check_content(text, spans, sticker, 10, &c)
                .err()
                .map(|e| e.0)
        };
        assert_eq!(code("hi", &bold(0..2), None), None);
        assert_eq!(code("  ", &bold(0..9), None), Some(ErrorCode::MessageEmpty));
        assert_eq!(
            code("hello world", &[], None),
            Some(ErrorCode::MessageTooLong)
        );
        assert_eq!(code("hi", &bold(0..3), None), Some(ErrorCode::InvalidSpans));
        assert_eq!(code("", &[], Some("shrug")), None);
        assert_eq!(code("", &[], Some("nope")), Some(ErrorCode::UnknownSticker));
        assert_eq!(
            code("hi", &[], Some("nope")),
            Some(ErrorCode::StickerMessage)
        );
        assert_eq!(
            code("", &bold(0..1), Some("shrug")),
            Some(ErrorCode::StickerMessage)
        );
    }

    #[test]
    fn pages_hold_one_to_two_hundred() {
        assert_eq!(check_page_limit(0), Err(ErrorCode::InvalidPaging));
        assert!(check_page_limit(1).is_ok() && check_page_limit(200).is_ok());
        assert_eq!(check_page_limit(201), Err(ErrorCode::InvalidPaging));
    }
}
