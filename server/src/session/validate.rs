//! Shape rules a request must meet before it is routed anywhere
//! (SPEC.md §10.1): names, topics, message bodies, page sizes.

use confab_protocol::profile::{MAX_BIO_CHARS, MAX_DISPLAY_NAME_CHARS, MAX_EMAIL_BYTES};
use confab_protocol::rich::is_blank;
use confab_protocol::{attach, rich, ErrorCode, Span};

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

/// A display name (SPEC.md §5.2.5): trimmed of white space, then 1-64
/// characters, none of them a control character; a blank one is refused
/// (clearing is sending none).
pub fn check_display_name(name: &str) -> Result<String, ErrorCode> {
    let name = name.trim();
    let n = name.chars().count();
    if is_blank(name) || n > MAX_DISPLAY_NAME_CHARS || has_control(name) {
        return Err(ErrorCode::InvalidDisplayName);
    }
    Ok(name.to_owned())
}

/// A bio: at most 500 characters, no control character but line feed.
pub fn check_bio(bio: &str) -> Result<(), ErrorCode> {
    let bad_char = bio.chars().any(|c| c.is_control() && c != '\n');
    if bio.chars().count() > MAX_BIO_CHARS || bad_char {
        return Err(ErrorCode::InvalidBio);
    }
    Ok(())
}

/// An email address (SPEC.md §5.2.5), trimmed of white space: at most 254
/// bytes, one `@`; the local part 1-64 bytes of printable ASCII other than
/// white space and `"(),:;<>@[\]`; the domain two or more dot-separated
/// labels of 1-63 ASCII letters, digits and hyphens, none starting or
/// ending with a hyphen (an internationalised domain in its `xn--` form).
/// Deliberately simple: it stops typing mistakes, not every address RFC
/// 5322 allows (quoted local parts, address literals).
pub fn check_email(email: &str) -> Result<String, ErrorCode> {
    let email = email.trim();
    let valid = email.len() <= MAX_EMAIL_BYTES
        && email.split_once('@').is_some_and(|(local, domain)| {
            let local_ok = (1..=64).contains(&local.len())
                && local
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"\"(),:;<>@[\\]".contains(&b));
            let labels: Vec<&str> = domain.split('.').collect();
            let domain_ok = labels.len() >= 2
                && labels.iter().all(|l| {
                    (1..=63).contains(&l.len())
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                });
            local_ok && domain_ok
        });
    if valid {
        Ok(email.to_owned())
    } else {
        Err(ErrorCode::InvalidEmail)
    }
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

/// A message's content (SPEC.md §5.4.1, §5.11, §13.5), in the order a
/// server checks it. A sticker message: no text, spans or files of its own
/// (`STICKER_MESSAGE`, 411), a sticker of `catalogue` (`UNKNOWN_STICKER`,
/// 410). Any other: the text ([`check_message`]; empty is allowed when
/// the message carries files), then its spans (`INVALID_SPANS`,
/// `UNKNOWN_COLOR`, `INVALID_LINK`), then the file ids
/// (`INVALID_ATTACHMENTS`, 416). Whether the files may be attached is the
/// store's to say (`crate::files::attach`).
pub fn check_content(
    (text, spans, sticker, files): (&str, &[Span], Option<&str>, &[u64]),
    max_len: u32,
    catalogue: &Catalogue,
) -> Result<(), (ErrorCode, String)> {
    let refused = |r: rich::Refusal| (r.code, r.message);
    match sticker {
        Some(id) => {
            rich::check_content(text, spans, sticker).map_err(refused)?;
            attach::check_file_ids(files, true).map_err(refused)?;
            if catalogue.get(id).is_none() {
                return Err((
                    ErrorCode::UnknownSticker,
                    ErrorCode::UnknownSticker.default_message().to_owned(),
                ));
            }
            Ok(())
        }
        None => {
            // A message of files alone has no text at all.
            let files_alone = text.is_empty() && !files.is_empty();
            if !files_alone {
                check_message(text, max_len)?;
            }
            rich::check_spans(text, spans).map_err(refused)?;
            attach::check_file_ids(files, false).map_err(refused)
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
    fn display_names_are_trimmed_bounded_and_visible() {
        assert_eq!(check_display_name("  Bob Ö. ").unwrap(), "Bob Ö.");
        assert!(
            check_display_name(&"é".repeat(64)).is_ok(),
            "characters, not bytes"
        );
        for bad in ["", "   ", "\u{200b}", "a\u{7}b", "two\nlines"] {
            assert_eq!(
                check_display_name(bad),
                Err(ErrorCode::InvalidDisplayName),
                "{bad:?}"
            );
        }
        assert_eq!(
            check_display_name(&"x".repeat(65)),
            Err(ErrorCode::InvalidDisplayName)
        );
    }

    #[test]
    fn bios_keep_line_breaks_and_nothing_else_invisible() {
        assert!(check_bio("").is_ok());
        assert!(check_bio("line one\nline two").is_ok());
        assert!(check_bio(&"é".repeat(500)).is_ok());
        assert_eq!(check_bio(&"x".repeat(501)), Err(ErrorCode::InvalidBio));
        assert_eq!(check_bio("tab\there"), Err(ErrorCode::InvalidBio));
        assert_eq!(check_bio("\u{1b}[31mred"), Err(ErrorCode::InvalidBio));
    }

    #[test]
    fn emails_follow_the_simple_rule() {
        assert_eq!(check_email(" bob@example.org ").unwrap(), "bob@example.org");
        for good in [
            "a.b+tag@sub.example.co",
            "x@xn--bcher-kva.example",
            "o'neil@a-b.io",
        ] {
            assert!(check_email(good).is_ok(), "{good}");
        }
        let long_local = format!("{}@example.org", "a".repeat(65));
        let long = format!("a@{}.org", "b".repeat(250));
        for bad in [
            "",
            "bob",
            "@example.org",
            "bob@",
            "bob@localhost",
            "bob@@example.org",
            "bob@exa mple.org",
            "bob smith@example.org",
            "bob@-example.org",
            "bob@example..org",
            "bøb@example.org",
            "bob@exämple.org",
            "<bob>@example.org",
            "bob\n@example.org",
            &long_local,
            &long,
        ] {
            assert_eq!(check_email(bad), Err(ErrorCode::InvalidEmail), "{bad:?}");
        }
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
            check_content((text, spans, sticker, &[]), 10, &c)
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
    fn files_allow_an_empty_text_and_are_counted_after_it() {
        let c = Catalogue::builtin();
        let code = |text, sticker, files: &[u64]| {
            check_content((text, &[], sticker, files), 10, &c)
                .err()
                .map(|e| e.0)
        };
        assert_eq!(code("", None, &[1]), None);
        assert_eq!(code("", None, &[]), Some(ErrorCode::MessageEmpty));
        // A text beside the files follows the usual rules.
        assert_eq!(code("  ", None, &[1]), Some(ErrorCode::MessageEmpty));
        assert_eq!(
            code("far too long", None, &[1]),
            Some(ErrorCode::MessageTooLong)
        );
        assert_eq!(code("", None, &[1, 1]), Some(ErrorCode::InvalidAttachments));
        let eleven: Vec<u64> = (1..=11).collect();
        assert_eq!(
            code("hi", None, &eleven),
            Some(ErrorCode::InvalidAttachments)
        );
        assert_eq!(
            code("", Some("shrug"), &[1]),
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
