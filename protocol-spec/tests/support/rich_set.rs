//! The vectors of rich messages (SPEC.md §5.11): formatted messages and
//! edits, stickers and the catalogue, and the well-formed requests a server
//! refuses for their spans or sticker (`vectors/refuse/`).

use confab_protocol::frame::kind;
use confab_protocol::{
    Color, ErrorCode, EventBody, Request, RoomId, Seq, ServerMsg, Span, Sticker, Style,
};

use super::vector_set::{
    encoded_payload, event, frame, DecodeOnly, Msg, Reject, RoundTrip, BOB, NOW,
};

/// A well-formed request that a server answers with ERROR `error_code`
/// because of its spans or sticker (`vectors/refuse/*.json`).
pub struct Refuse {
    pub file: &'static str,
    pub name: &'static str,
    pub req_id: u32,
    pub msg: Request,
    pub error_code: ErrorCode,
}

impl Refuse {
    /// A refused request, sent with request id 9.
    pub fn new(
        file: &'static str,
        name: &'static str,
        msg: Request,
        error_code: ErrorCode,
    ) -> Refuse {
        Refuse {
            file,
            name,
            req_id: 9,
            msg,
            error_code,
        }
    }
}

/// A message with every kind of span but the code block.
const DEPLOY: &str = "Deploy now: see the docs, then run make";

fn deploy_spans() -> Vec<Span> {
    vec![
        Span::new(0..6, Style::Bold),
        Span::new(7..10, Style::Italic),
        Span::new(7..10, Style::Color(Color::Red)),
        Span::new(16..24, Style::Link("https://confab.example/docs".into())),
        Span::new(16..24, Style::Strikethrough),
        Span::new(35..39, Style::Code),
    ]
}

/// "ok 👍" with a code block over a two-line snippet after it.
const SNIPPET: &str = "ok 👍\nfn main() {}\n";

fn snippet_spans() -> Vec<Span> {
    vec![
        // "👍" is bytes 3..7: offsets are UTF-8 bytes.
        Span::new(3..7, Style::Color(Color::BrightYellow)),
        Span::new(8..21, Style::CodeBlock),
    ]
}

fn formatted_message(edited_at: Option<u64>) -> EventBody {
    EventBody::Message {
        text: DEPLOY.into(),
        edited_at,
        spans: deploy_spans(),
        sticker: None,
        attachments: Vec::new(),
    }
}

fn sticker_message() -> EventBody {
    EventBody::Message {
        text: ":tableflip:".into(),
        edited_at: None,
        spans: vec![],
        sticker: Some("tableflip".into()),
        attachments: Vec::new(),
    }
}

fn send(body: &str, spans: Vec<Span>) -> Request {
    Request::SendMessage {
        room: RoomId(42),
        body: body.into(),
        spans,
        sticker: None,
        attachments: Vec::new(),
    }
}

pub fn round_trip() -> Vec<RoundTrip> {
    use Msg::{Client as C, Server as S};
    let v = RoundTrip::new;
    vec![
        v(
            "15_send_message_formatted.json",
            "SEND_MESSAGE with bold, italic, a colour, a link, strikethrough and inline code",
            9,
            C(send(DEPLOY, deploy_spans())),
        ),
        v(
            "15_send_message_code_block.json",
            "SEND_MESSAGE with a colour over a four-byte character and a code block",
            9,
            C(send(SNIPPET, snippet_spans())),
        ),
        v(
            "15_send_message_sticker.json",
            "SEND_MESSAGE of the sticker tableflip: empty body, no spans",
            9,
            C(Request::SendMessage {
                room: RoomId(42),
                body: String::new(),
                spans: vec![],
                sticker: Some("tableflip".into()),
                attachments: Vec::new(),
            }),
        ),
        v(
            "27_edit_message_formatted.json",
            "EDIT_MESSAGE: new text and spans for message 129",
            42,
            C(Request::EditMessage {
                room: RoomId(42),
                seq: Seq(129),
                text: "hello, world".into(),
                spans: vec![Span::new(7..12, Style::Bold)],
            }),
        ),
        v(
            "2e_list_stickers.json",
            "LIST_STICKERS",
            49,
            C(Request::ListStickers),
        ),
        v(
            "50_sticker_list.json",
            "STICKER_LIST with two stickers",
            49,
            S(ServerMsg::StickerList {
                stickers: vec![
                    Sticker {
                        id: "shrug".into(),
                        name: "Shrug".into(),
                        art: "¯\\_(ツ)_/¯".into(),
                    },
                    Sticker {
                        id: "tableflip".into(),
                        name: "Table flip".into(),
                        art: "(╯°□°)╯︵ ┻━┻".into(),
                    },
                ],
            }),
        ),
        v(
            "50_sticker_list_empty.json",
            "STICKER_LIST of an empty catalogue",
            49,
            S(ServerMsg::StickerList { stickers: vec![] }),
        ),
        v(
            "80_event_message_formatted.json",
            "EVENT kind 1 MESSAGE with spans (edited_at written as 0: never edited)",
            0,
            S(ServerMsg::Event(event(133, NOW, BOB, formatted_message(None)))),
        ),
        v(
            "80_event_message_formatted_edited.json",
            "EVENT kind 1 MESSAGE with edited_at and spans, as HISTORY and resume show an edited formatted message",
            0,
            S(ServerMsg::Event(event(
                133,
                NOW,
                BOB,
                formatted_message(Some(NOW + 60_000)),
            ))),
        ),
        v(
            "80_event_message_sticker.json",
            "EVENT kind 1 MESSAGE that is the sticker tableflip, with its fallback text",
            0,
            S(ServerMsg::Event(event(134, NOW, BOB, sticker_message()))),
        ),
        v(
            "80_event_message_unknown_span_and_colour.json",
            "EVENT kind 1 MESSAGE from a later server: a span of unknown kind 42 and a colour 16 outside the palette, which clients ignore",
            0,
            S(ServerMsg::Event(event(
                135,
                NOW,
                BOB,
                EventBody::Message {
                    text: "future".into(),
                    edited_at: None,
                    spans: vec![
                        Span::new(
                            0..3,
                            Style::Unknown {
                                kind: 42,
                                data: vec![0x01, 0x02],
                            },
                        ),
                        Span::new(3..6, Style::Color(Color::from_code(16))),
                    ],
                    sticker: None,
                    attachments: Vec::new(),
                },
            ))),
        ),
        v(
            "80_event_message_edited_formatted.json",
            "EVENT kind 10 MESSAGE_EDITED, live, with the new text's spans",
            0,
            S(ServerMsg::Event(event(
                136,
                NOW + 60_000,
                BOB,
                EventBody::MessageEdited {
                    target: Seq(133),
                    text: DEPLOY.into(),
                    spans: deploy_spans(),
                },
            ))),
        ),
    ]
}

pub fn decode_only() -> Vec<DecodeOnly> {
    use Msg::{Client as C, Server as S};
    // edited_at written as 0 with nothing after it: never edited.
    let mut edited_zero = encoded_payload(&S(ServerMsg::Event(event(
        129,
        NOW,
        BOB,
        EventBody::text("hello"),
    ))));
    edited_zero.push(0x00);
    // A SEND_MESSAGE that writes its empty `spans` list.
    let mut empty_spans = encoded_payload(&C(send("hello", vec![])));
    empty_spans.push(0x00);
    // A sticker message, every appended field of this version written
    // (an empty list of files last), and one more byte after them.
    let mut sticker_plus = encoded_payload(&S(ServerMsg::Event(event(
        134,
        NOW,
        BOB,
        sticker_message(),
    ))));
    sticker_plus.extend_from_slice(&[0x00, 0x07]);
    // A bold span whose nested item carries one more byte.
    let bold = || vec![Span::new(0..2, Style::Bold)];
    let plain = encoded_payload(&C(send("hi", vec![])));
    let mut span_plus = plain.clone();
    span_plus.extend_from_slice(&[0x01, 0x04, 0x00, 0x02, 0x01, 0x07]);
    vec![
        DecodeOnly {
            file: "80_event_message_edited_at_zero.json",
            name: "EVENT kind 1 MESSAGE whose edited_at is 0 with nothing after it: never edited (an encoder omits it)",
            bytes: frame(kind::EVENT, 0, &edited_zero),
            msg: S(ServerMsg::Event(event(129, NOW, BOB, EventBody::text("hello")))),
        },
        DecodeOnly {
            file: "15_send_message_empty_spans.json",
            name: "SEND_MESSAGE with an explicitly empty spans list: a plain message (an encoder omits it)",
            bytes: frame(kind::SEND_MESSAGE, 9, &empty_spans),
            msg: C(send("hello", vec![])),
        },
        DecodeOnly {
            file: "15_send_message_span_with_appended_field.json",
            name: "SEND_MESSAGE whose bold span's nested item carries an appended field, which is ignored",
            bytes: frame(kind::SEND_MESSAGE, 9, &span_plus),
            msg: C(send("hi", bold())),
        },
        DecodeOnly {
            file: "80_event_message_sticker_with_appended_field.json",
            name: "EVENT kind 1 MESSAGE with every appended field of this version (edited_at 0, no spans, a sticker, no files) and one more, which is ignored",
            bytes: frame(kind::EVENT, 0, &sticker_plus),
            msg: S(ServerMsg::Event(event(134, NOW, BOB, sticker_message()))),
        },
    ]
}

pub fn reject() -> Vec<Reject> {
    // SEND_MESSAGE "hi" with one span whose start is 2^32.
    let mut big_start = encoded_payload(&Msg::Client(send("hi", vec![])));
    big_start.extend_from_slice(&[0x01, 0x07, 0x80, 0x80, 0x80, 0x80, 0x10, 0x01, 0x01]);
    // ... and a span of kind link whose URL is cut short.
    let mut cut_url = encoded_payload(&Msg::Client(send("hi", vec![])));
    cut_url.extend_from_slice(&[0x01, 0x05, 0x00, 0x02, 0x06, 0x09, b'h']);
    vec![
        Reject {
            file: "send_message_span_start_exceeds_u32.json",
            name: "SEND_MESSAGE whose span starts at 2^32",
            direction: "client_to_server",
            max_frame_len: 65_536,
            bytes: frame(kind::SEND_MESSAGE, 9, &big_start),
            error_code: ErrorCode::MalformedFrame,
            detail: "varint longer",
        },
        Reject {
            file: "send_message_link_url_truncated.json",
            name: "SEND_MESSAGE whose link span's URL claims 9 bytes with 1 left in the span",
            direction: "client_to_server",
            max_frame_len: 65_536,
            bytes: frame(kind::SEND_MESSAGE, 9, &cut_url),
            error_code: ErrorCode::MalformedFrame,
            detail: "ended early",
        },
    ]
}

pub fn refuse() -> Vec<Refuse> {
    let r = Refuse::new;
    let many: Vec<Span> = (0..65)
        .map(|i| Span::new(i..i + 1, Style::Italic))
        .collect();
    vec![
        r(
            "send_message_span_beyond_text.json",
            "a span ending after the text's last byte",
            send("hello", vec![Span::new(2..6, Style::Bold)]),
            ErrorCode::InvalidSpans,
        ),
        r(
            "send_message_span_empty.json",
            "an empty span (start = end)",
            send("hello", vec![Span::new(2..2, Style::Bold)]),
            ErrorCode::InvalidSpans,
        ),
        r(
            "send_message_span_splits_character.json",
            "a span ending inside the four bytes of 👍 (offsets are UTF-8 bytes)",
            send("ok 👍", vec![Span::new(0..5, Style::Bold)]),
            ErrorCode::InvalidSpans,
        ),
        r(
            "send_message_spans_of_one_kind_overlap.json",
            "two bold spans sharing a byte",
            send(
                "hello world",
                vec![Span::new(0..5, Style::Bold), Span::new(4..11, Style::Bold)],
            ),
            ErrorCode::InvalidSpans,
        ),
        r(
            "send_message_colours_overlap.json",
            "a blue span inside a red one (a character has one colour)",
            send(
                "hello world",
                vec![
                    Span::new(0..11, Style::Color(Color::Red)),
                    Span::new(6..11, Style::Color(Color::Blue)),
                ],
            ),
            ErrorCode::InvalidSpans,
        ),
        r(
            "send_message_span_over_code_block.json",
            "a bold span over part of a code block",
            send(
                "fn main() {}",
                vec![
                    Span::new(0..12, Style::CodeBlock),
                    Span::new(0..2, Style::Bold),
                ],
            ),
            ErrorCode::InvalidSpans,
        ),
        r(
            "send_message_span_unknown_kind.json",
            "a span of kind 42, which this version does not know",
            send(
                "hello",
                vec![Span::new(
                    0..5,
                    Style::Unknown {
                        kind: 42,
                        data: vec![],
                    },
                )],
            ),
            ErrorCode::InvalidSpans,
        ),
        r(
            "send_message_too_many_spans.json",
            "65 spans, one more than allowed",
            send(&"x".repeat(65), many),
            ErrorCode::InvalidSpans,
        ),
        r(
            "send_message_unknown_colour.json",
            "a colour span of colour 16, outside the palette",
            send(
                "hello",
                vec![Span::new(0..5, Style::Color(Color::from_code(16)))],
            ),
            ErrorCode::UnknownColor,
        ),
        r(
            "send_message_javascript_link.json",
            "a link to javascript:alert(1)",
            send(
                "click me",
                vec![Span::new(0..8, Style::Link("javascript:alert(1)".into()))],
            ),
            ErrorCode::InvalidLink,
        ),
        r(
            "send_message_link_without_host.json",
            "a link to https: with no host",
            send(
                "click me",
                vec![Span::new(0..8, Style::Link("https:/x".into()))],
            ),
            ErrorCode::InvalidLink,
        ),
        r(
            "edit_message_span_beyond_text.json",
            "EDIT_MESSAGE whose span runs past the new text",
            Request::EditMessage {
                room: RoomId(42),
                seq: Seq(129),
                text: "short".into(),
                spans: vec![Span::new(0..9, Style::Italic)],
            },
            ErrorCode::InvalidSpans,
        ),
        r(
            "send_message_sticker_with_text.json",
            "a sticker message with text of its own",
            Request::SendMessage {
                room: RoomId(42),
                body: "look".into(),
                spans: vec![],
                sticker: Some("tableflip".into()),
                attachments: Vec::new(),
            },
            ErrorCode::StickerMessage,
        ),
    ]
}
