//! The vectors of messages that carry files (SPEC.md §13.5): SEND_MESSAGE
//! naming uploaded files, MESSAGE describing them, and the well-formed
//! requests a server refuses for their file ids (`vectors/refuse/`).

use confab_protocol::frame::kind;
use confab_protocol::{Attachment, ErrorCode, EventBody, Request, RoomId, ServerMsg, Span, Style};

use super::rich_set::Refuse;
use super::vector_set::{
    encoded_payload, event, frame, DecodeOnly, Msg, Reject, RoundTrip, BOB, NOW,
};

fn send(body: &str, spans: Vec<Span>, files: Vec<u64>) -> Request {
    Request::SendMessage {
        room: RoomId(42),
        body: body.into(),
        spans,
        sticker: None,
        attachments: files,
    }
}

fn photo() -> Attachment {
    Attachment {
        id: 300,
        name: "sunset.png".into(),
        content_type: "image/png".into(),
        size: 48_213,
        width: Some(1024),
        height: Some(768),
    }
}

fn minutes() -> Attachment {
    Attachment {
        id: 301,
        name: "minutes — été.pdf".into(),
        content_type: "application/pdf".into(),
        size: 70_000,
        width: None,
        height: None,
    }
}

fn with_files(text: &str, spans: Vec<Span>, files: Vec<Attachment>) -> EventBody {
    EventBody::Message {
        text: text.into(),
        edited_at: None,
        spans,
        sticker: None,
        attachments: files,
    }
}

pub fn round_trip() -> Vec<RoundTrip> {
    use Msg::{Client as C, Server as S};
    let v = RoundTrip::new;
    vec![
        v(
            "15_send_message_attachments.json",
            "SEND_MESSAGE with no text and two uploaded files (spans written empty, sticker written empty: both precede the files)",
            9,
            C(send("", vec![], vec![300, 301])),
        ),
        v(
            "15_send_message_formatted_with_attachment.json",
            "SEND_MESSAGE with formatted text and one file",
            9,
            C(send(
                "see the plan",
                vec![Span::new(8..12, Style::Bold)],
                vec![301],
            )),
        ),
        v(
            "80_event_message_attachments.json",
            "EVENT kind 1 MESSAGE carrying an image (with its size in pixels) and a PDF",
            0,
            S(ServerMsg::Event(event(
                137,
                NOW,
                BOB,
                with_files("", vec![], vec![photo(), minutes()]),
            ))),
        ),
        v(
            "80_event_message_attachment_edited.json",
            "EVENT kind 1 MESSAGE with a file, edited: as HISTORY and resume show it, the file kept",
            0,
            S(ServerMsg::Event(event(
                138,
                NOW,
                BOB,
                EventBody::Message {
                    text: "the minutes, final".into(),
                    edited_at: Some(NOW + 60_000),
                    spans: vec![],
                    sticker: None,
                    attachments: vec![minutes()],
                },
            ))),
        ),
    ]
}

pub fn decode_only() -> Vec<DecodeOnly> {
    use Msg::{Client as C, Server as S};
    // A sticker followed by an explicitly empty list of files.
    let shrug = Request::SendMessage {
        room: RoomId(42),
        body: String::new(),
        spans: vec![],
        sticker: Some("shrug".into()),
        attachments: vec![],
    };
    let mut empty_files = encoded_payload(&C(shrug.clone()));
    empty_files.push(0x00);
    let mut event_plus = encoded_payload(&S(ServerMsg::Event(event(
        139,
        NOW,
        BOB,
        with_files("hi", vec![], vec![]),
    ))));
    // edited_at 0, no spans, sticker "", one file with an extra byte.
    event_plus.extend_from_slice(&[0x00, 0x00, 0x00, 0x01]);
    event_plus.extend_from_slice(&[
        0x0b, 0x2c, 0x03, b'a', b'.', b'z', 0x01, b'x', 0x05, 0x00, 0x00,
    ]);
    event_plus.push(0x09); // the later field, inside the nested item
    let file = Attachment {
        id: 44,
        name: "a.z".into(),
        content_type: "x".into(),
        size: 5,
        width: None,
        height: None,
    };
    vec![
        DecodeOnly {
            file: "15_send_message_sticker_empty_attachments.json",
            name: "SEND_MESSAGE of a sticker with an explicitly empty list of files (an encoder omits it)",
            bytes: frame(kind::SEND_MESSAGE, 9, &empty_files),
            msg: C(shrug),
        },
        DecodeOnly {
            file: "80_event_message_attachment_with_appended_field.json",
            name: "EVENT kind 1 MESSAGE whose file's nested item carries an appended field, which is ignored",
            bytes: frame(kind::EVENT, 0, &event_plus),
            msg: S(ServerMsg::Event(event(
                139,
                NOW,
                BOB,
                with_files("hi", vec![], vec![file]),
            ))),
        },
    ]
}

pub fn reject() -> Vec<Reject> {
    // SEND_MESSAGE "hi": no spans, no sticker, and a list of 3 file ids
    // holding only one.
    let mut short = encoded_payload(&Msg::Client(send("hi", vec![], vec![])));
    short.extend_from_slice(&[0x00, 0x00, 0x03, 0x07]);
    vec![Reject {
        file: "send_message_attachment_list_truncated.json",
        name: "SEND_MESSAGE whose list of file ids claims 3 with 1 present",
        direction: "client_to_server",
        max_frame_len: 65_536,
        bytes: frame(kind::SEND_MESSAGE, 9, &short),
        error_code: ErrorCode::MalformedFrame,
        detail: "ended early",
    }]
}

pub fn refuse() -> Vec<Refuse> {
    let r = Refuse::new;
    vec![
        r(
            "send_message_too_many_attachments.json",
            "eleven files in one message",
            send("", vec![], (300..311).collect()),
            ErrorCode::InvalidAttachments,
        ),
        r(
            "send_message_attachment_twice.json",
            "one file named twice",
            send("", vec![], vec![300, 301, 300]),
            ErrorCode::InvalidAttachments,
        ),
        r(
            "send_message_sticker_with_attachment.json",
            "a sticker that carries a file",
            Request::SendMessage {
                room: RoomId(42),
                body: String::new(),
                spans: vec![],
                sticker: Some("shrug".into()),
                attachments: vec![300],
            },
            ErrorCode::StickerMessage,
        ),
    ]
}
