//! The vectors of conversations (edits and deletes, read markers, direct
//! and group chats): the ERRORs of their codes, and the well-formed
//! requests a server refuses on the request alone (`vectors/refuse/`).
//!
//! Only rules that need no server state make refuse vectors: an edit's
//! blank text (`MESSAGE_EMPTY`) and too many initial members
//! (`TOO_MANY_MEMBERS`). `DUPLICATE_MEMBER` is not one: a server resolves
//! the members in order first, so a user named twice who does not exist
//! gets `NO_SUCH_USER`, and the caller named twice `CANNOT_TARGET_SELF`
//! (SPEC.md §5.3.2). Neither is an edit over `max_message_len`, which
//! each server configures.

use confab_protocol::{
    ErrorCode, Request, RoomId, Seq, ServerMsg, UserId, UserRef, Visibility, MAX_INITIAL_MEMBERS,
};

use super::rich_set::Refuse;
use super::vector_set::{Msg, RoundTrip};

/// An ERROR with `code`'s default message.
fn error(file: &'static str, name: &'static str, code: ErrorCode) -> RoundTrip {
    RoundTrip::new(
        file,
        name,
        9,
        Msg::Server(ServerMsg::Error {
            code: code as u16,
            message: code.default_message().into(),
            retry_after_ms: 0,
        }),
    )
}

pub fn round_trip() -> Vec<RoundTrip> {
    use ErrorCode::*;
    vec![
        error(
            "43_error_duplicate_member.json",
            "ERROR DUPLICATE_MEMBER (323): CREATE_ROOM names a user twice",
            DuplicateMember,
        ),
        error(
            "43_error_too_many_members.json",
            "ERROR TOO_MANY_MEMBERS (324): CREATE_ROOM names more than 50 initial members",
            TooManyMembers,
        ),
        error(
            "43_error_direct_room.json",
            "ERROR DIRECT_ROOM (325): a governance request naming a direct room",
            DirectRoom,
        ),
        error(
            "43_error_message_not_found.json",
            "ERROR MESSAGE_NOT_FOUND (403): EDIT_MESSAGE or DELETE_MESSAGE of no message",
            MessageNotFound,
        ),
        error(
            "43_error_message_deleted.json",
            "ERROR MESSAGE_DELETED (404): EDIT_MESSAGE or DELETE_MESSAGE of a tombstone",
            MessageDeleted,
        ),
        error(
            "43_error_not_your_message.json",
            "ERROR NOT_YOUR_MESSAGE (405): EDIT_MESSAGE of another user's message",
            NotYourMessage,
        ),
        error(
            "43_error_invalid_read_marker.json",
            "ERROR INVALID_READ_MARKER (406): SET_READ_MARKER beyond the room's last event",
            InvalidReadMarker,
        ),
    ]
}

fn edit(text: &str) -> Request {
    Request::EditMessage {
        room: RoomId(42),
        seq: Seq(129),
        text: text.into(),
        spans: vec![],
    }
}

pub fn refuse() -> Vec<Refuse> {
    let r = Refuse::new;
    let members = (0..=MAX_INITIAL_MEMBERS as u64)
        .map(|i| UserRef::id(UserId(100 + i)))
        .collect();
    vec![
        r(
            "edit_message_empty.json",
            "EDIT_MESSAGE with an empty text",
            edit(""),
            ErrorCode::MessageEmpty,
        ),
        r(
            "edit_message_blank.json",
            "EDIT_MESSAGE whose text shows nothing: a space, a zero-width space (U+200B) and a line break",
            edit(" \u{200b}\n"),
            ErrorCode::MessageEmpty,
        ),
        r(
            "create_room_too_many_members.json",
            "CREATE_ROOM naming 51 initial members (users 100 to 150 by id), one over the limit",
            Request::CreateRoom {
                name: "everyone".into(),
                topic: String::new(),
                visibility: Visibility::Private,
                members,
            },
            ErrorCode::TooManyMembers,
        ),
    ]
}
