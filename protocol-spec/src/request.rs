//! Requests: every frame a client sends (SPEC.md §5), with its encoder and
//! decoder.

use bytes::{BufMut, BytesMut};

use crate::attach::{
    get_appended_file_ids, get_appended_sticker, put_file_ids, put_sticker_before_more,
};
use crate::frame::{begin_frame, end_frame, kind, RawFrame};
use crate::ids::{RoomId, Seq, UserId};
use crate::msg::{prealloc, Role, UserRef, Visibility};
use crate::rich::{get_appended_spans, put_spans, Span};
use crate::secret::Password;
use crate::wire::{put_bool, put_opt_str, put_str, put_varint, Reader};
use crate::DecodeError;

/// A position to resume a room's event stream from (in HELLO).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePoint {
    pub room: RoomId,
    /// The last sequence number the client has seen.
    pub after: Seq,
}

/// `Debug` shows whether a token is present, never the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Hello {
    pub version: u16,
    /// Free-form client name and version, for logs.
    pub client: String,
    /// A session token to authenticate this connection with.
    pub token: Option<String>,
    /// Rooms whose missed events the client wants replayed.
    pub resume: Vec<ResumePoint>,
}

impl std::fmt::Debug for Hello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hello")
            .field("version", &self.version)
            .field("client", &self.client)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("resume", &self.resume)
            .finish()
    }
}

/// A request frame from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Hello(Hello),
    Ping {
        nonce: u64,
    },
    Register {
        username: String,
        password: Password,
    },
    Login {
        username: String,
        password: Password,
    },
    Logout,
    CreateRoom {
        name: String,
        topic: String,
        visibility: Visibility,
        /// Users who become members at creation, besides the creator (a
        /// group chat, SPEC.md §5.3.2). Appended field: written only when
        /// not empty, absent means none.
        members: Vec<UserRef>,
    },
    ListRooms {
        query: String,
        offset: u32,
        limit: u32,
        /// Match `query` against whole room names instead of searching
        /// names and topics for it (appended field; absent means false).
        exact: bool,
    },
    JoinRoom {
        room: RoomId,
    },
    LeaveRoom {
        room: RoomId,
    },
    ListMembers {
        room: RoomId,
    },
    /// A message: `body` formatted by `spans` (SPEC.md §5.11.1), or the
    /// catalogue's `sticker` with an empty `body` and no spans (§5.11.3);
    /// `attachments` names uploaded files it carries (§13.5). All three
    /// are appended fields: absent means none.
    SendMessage {
        room: RoomId,
        body: String,
        spans: Vec<Span>,
        sticker: Option<String>,
        attachments: Vec<u64>,
    },
    /// Events with `seq < before` (0 = from the newest), newest first.
    History {
        room: RoomId,
        before: Seq,
        limit: u32,
    },
    MyRooms,
    /// Admins invite a user by id or username.
    Invite {
        room: RoomId,
        user: UserRef,
    },
    /// Accept (join) or decline a pending invitation.
    RespondInvite {
        room: RoomId,
        accept: bool,
    },
    RequestJoin {
        room: RoomId,
    },
    /// Admins approve or deny a pending join request.
    DecideRequest {
        room: RoomId,
        user: UserId,
        approve: bool,
    },
    Kick {
        room: RoomId,
        user: UserId,
    },
    Ban {
        room: RoomId,
        user: UserRef,
    },
    Unban {
        room: RoomId,
        user: UserId,
    },
    /// The owner makes (`Admin`) or unmakes (`Member`) an admin.
    SetRole {
        room: RoomId,
        user: UserId,
        role: Role,
    },
    ListJoinRequests {
        room: RoomId,
    },
    ListBans {
        room: RoomId,
    },
    /// Notifications with `id < before` (0 = from the newest), newest first.
    ListNotifications {
        before: u64,
        limit: u32,
        unread_only: bool,
    },
    /// Marks notifications with `id <= up_to` read.
    MarkRead {
        up_to: u64,
    },
    RoomLog,
    /// Audit entries with `id < before` (0 = from the newest), newest first.
    RoomAudit {
        room: RoomId,
        before: u64,
        limit: u32,
    },
    UpdateRoom {
        room: RoomId,
        name: String,
        topic: String,
    },
    /// The sender replaces the text and spans of their message `seq`
    /// (`spans` appended: absent means none).
    EditMessage {
        room: RoomId,
        seq: Seq,
        text: String,
        spans: Vec<Span>,
    },
    /// The sender, or an admin, deletes the message `seq`.
    DeleteMessage {
        room: RoomId,
        seq: Seq,
    },
    /// The caller is typing in `room` (renewed every few seconds while
    /// typing; never stored).
    TypingStart {
        room: RoomId,
    },
    /// The caller stopped typing in `room`.
    TypingStop {
        room: RoomId,
    },
    /// The caller has read `room` up to and including `seq`.
    SetReadMarker {
        room: RoomId,
        seq: Seq,
    },
    /// Sets (`away`) or clears the caller's away state, for all of their
    /// connections (SPEC.md §5.10.1).
    SetAway {
        away: bool,
    },
    /// Opens the caller's direct (one-to-one) room with `user`: creates
    /// it, or returns the existing one (SPEC.md §5.3.7).
    OpenDirect {
        user: UserRef,
    },
    /// The server's sticker catalogue (SPEC.md §5.11.3).
    ListStickers,
    /// Replaces the caller's password; every other session of the user
    /// ends (SPEC.md §5.2.4). `Debug` shows neither password.
    ChangePassword(PasswordChange),
    /// Asks for `user`'s profile (SPEC.md §5.2.5).
    GetProfile {
        user: UserId,
    },
    /// Replaces the caller's own profile.
    UpdateProfile(crate::ProfileUpdate),
}

/// CHANGE_PASSWORD's payload. `Debug` shows neither password.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordChange {
    pub current: String,
    pub new: String,
}

impl std::fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordChange { <redacted> }")
    }
}

/// The most users CREATE_ROOM may name as initial members (SPEC.md §5.3.2);
/// more is `TOO_MANY_MEMBERS` (324).
pub const MAX_INITIAL_MEMBERS: usize = 50;

/// The check of CREATE_ROOM's initial members a server makes before it
/// looks anyone up (SPEC.md §5.3.2): at most [`MAX_INITIAL_MEMBERS`]
/// (`TOO_MANY_MEMBERS`, 324). Whether each exists, is the caller or is
/// named twice (`DUPLICATE_MEMBER`, 323, by id or by username) is known
/// only once they are resolved.
pub fn check_initial_members(members: &[UserRef]) -> Result<(), crate::Refusal> {
    if members.len() > MAX_INITIAL_MEMBERS {
        return Err(crate::Refusal {
            code: crate::ErrorCode::TooManyMembers,
            message: format!(
                "{} initial members: at most {MAX_INITIAL_MEMBERS}",
                members.len()
            ),
        });
    }
    Ok(())
}

impl Request {
    pub fn kind(&self) -> u8 {
        match self {
            Request::Hello(_) => kind::HELLO,
            Request::Ping { .. } => kind::PING,
            Request::Register { .. } => kind::REGISTER,
            Request::Login { .. } => kind::LOGIN,
            Request::Logout => kind::LOGOUT,
            Request::CreateRoom { .. } => kind::CREATE_ROOM,
            Request::ListRooms { .. } => kind::LIST_ROOMS,
            Request::JoinRoom { .. } => kind::JOIN_ROOM,
            Request::LeaveRoom { .. } => kind::LEAVE_ROOM,
            Request::ListMembers { .. } => kind::LIST_MEMBERS,
            Request::SendMessage { .. } => kind::SEND_MESSAGE,
            Request::History { .. } => kind::HISTORY,
            Request::MyRooms => kind::MY_ROOMS,
            Request::Invite { .. } => kind::INVITE,
            Request::RespondInvite { .. } => kind::RESPOND_INVITE,
            Request::RequestJoin { .. } => kind::REQUEST_JOIN,
            Request::DecideRequest { .. } => kind::DECIDE_REQUEST,
            Request::Kick { .. } => kind::KICK,
            Request::Ban { .. } => kind::BAN,
            Request::Unban { .. } => kind::UNBAN,
            Request::SetRole { .. } => kind::SET_ROLE,
            Request::ListJoinRequests { .. } => kind::LIST_JOIN_REQUESTS,
            Request::ListBans { .. } => kind::LIST_BANS,
            Request::ListNotifications { .. } => kind::LIST_NOTIFICATIONS,
            Request::MarkRead { .. } => kind::MARK_READ,
            Request::RoomLog => kind::ROOM_LOG,
            Request::RoomAudit { .. } => kind::ROOM_AUDIT,
            Request::UpdateRoom { .. } => kind::UPDATE_ROOM,
            Request::EditMessage { .. } => kind::EDIT_MESSAGE,
            Request::DeleteMessage { .. } => kind::DELETE_MESSAGE,
            Request::TypingStart { .. } => kind::TYPING_START,
            Request::TypingStop { .. } => kind::TYPING_STOP,
            Request::SetReadMarker { .. } => kind::SET_READ_MARKER,
            Request::SetAway { .. } => kind::SET_AWAY,
            Request::OpenDirect { .. } => kind::OPEN_DIRECT,
            Request::ListStickers => kind::LIST_STICKERS,
            Request::ChangePassword(_) => kind::CHANGE_PASSWORD,
            Request::GetProfile { .. } => kind::GET_PROFILE,
            Request::UpdateProfile(_) => kind::UPDATE_PROFILE,
        }
    }

    /// A short stable name for logs and metrics labels.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Hello(_) => "hello",
            Request::Ping { .. } => "ping",
            Request::Register { .. } => "register",
            Request::Login { .. } => "login",
            Request::Logout => "logout",
            Request::CreateRoom { .. } => "create_room",
            Request::ListRooms { .. } => "list_rooms",
            Request::JoinRoom { .. } => "join_room",
            Request::LeaveRoom { .. } => "leave_room",
            Request::ListMembers { .. } => "list_members",
            Request::SendMessage { .. } => "send_message",
            Request::History { .. } => "history",
            Request::MyRooms => "my_rooms",
            Request::Invite { .. } => "invite",
            Request::RespondInvite { .. } => "respond_invite",
            Request::RequestJoin { .. } => "request_join",
            Request::DecideRequest { .. } => "decide_request",
            Request::Kick { .. } => "kick",
            Request::Ban { .. } => "ban",
            Request::Unban { .. } => "unban",
            Request::SetRole { .. } => "set_role",
            Request::ListJoinRequests { .. } => "list_join_requests",
            Request::ListBans { .. } => "list_bans",
            Request::ListNotifications { .. } => "list_notifications",
            Request::MarkRead { .. } => "mark_read",
            Request::RoomLog => "room_log",
            Request::RoomAudit { .. } => "room_audit",
            Request::UpdateRoom { .. } => "update_room",
            Request::EditMessage { .. } => "edit_message",
            Request::DeleteMessage { .. } => "delete_message",
            Request::TypingStart { .. } => "typing_start",
            Request::TypingStop { .. } => "typing_stop",
            Request::SetReadMarker { .. } => "set_read_marker",
            Request::SetAway { .. } => "set_away",
            Request::OpenDirect { .. } => "open_direct",
            Request::ListStickers => "list_stickers",
            Request::ChangePassword(_) => "change_password",
            Request::GetProfile { .. } => "get_profile",
            Request::UpdateProfile(_) => "update_profile",
        }
    }

    /// Appends this request as one whole frame.
    pub fn encode(&self, req_id: u32, buf: &mut BytesMut) {
        let start = begin_frame(buf, self.kind(), req_id);
        match self {
            Request::Hello(h) => {
                put_varint(buf, h.version as u64);
                put_str(buf, &h.client);
                put_opt_str(buf, h.token.as_deref());
                put_varint(buf, h.resume.len() as u64);
                for p in &h.resume {
                    put_varint(buf, p.room.0);
                    put_varint(buf, p.after.0);
                }
            }
            Request::Ping { nonce } => put_varint(buf, *nonce),
            Request::Register { username, password } | Request::Login { username, password } => {
                put_str(buf, username);
                put_str(buf, password.as_str());
            }
            Request::Logout | Request::MyRooms | Request::RoomLog | Request::ListStickers => {}
            Request::Invite { room, user } | Request::Ban { room, user } => {
                put_varint(buf, room.0);
                user.encode(buf);
            }
            Request::RespondInvite { room, accept } => {
                put_varint(buf, room.0);
                put_bool(buf, *accept);
            }
            Request::RequestJoin { room }
            | Request::ListJoinRequests { room }
            | Request::ListBans { room } => put_varint(buf, room.0),
            Request::DecideRequest {
                room,
                user,
                approve,
            } => {
                put_varint(buf, room.0);
                put_varint(buf, user.0);
                put_bool(buf, *approve);
            }
            Request::Kick { room, user } | Request::Unban { room, user } => {
                put_varint(buf, room.0);
                put_varint(buf, user.0);
            }
            Request::SetRole { room, user, role } => {
                put_varint(buf, room.0);
                put_varint(buf, user.0);
                buf.put_u8(role.code());
            }
            Request::ListNotifications {
                before,
                limit,
                unread_only,
            } => {
                put_varint(buf, *before);
                put_varint(buf, *limit as u64);
                put_bool(buf, *unread_only);
            }
            Request::MarkRead { up_to } => put_varint(buf, *up_to),
            Request::RoomAudit {
                room,
                before,
                limit,
            } => {
                put_varint(buf, room.0);
                put_varint(buf, *before);
                put_varint(buf, *limit as u64);
            }
            Request::UpdateRoom { room, name, topic } => {
                put_varint(buf, room.0);
                put_str(buf, name);
                put_str(buf, topic);
            }
            Request::EditMessage {
                room,
                seq,
                text,
                spans,
            } => {
                put_varint(buf, room.0);
                put_varint(buf, seq.0);
                put_str(buf, text);
                if !spans.is_empty() {
                    put_spans(buf, spans);
                }
            }
            Request::DeleteMessage { room, seq } => {
                put_varint(buf, room.0);
                put_varint(buf, seq.0);
            }
            Request::TypingStart { room } | Request::TypingStop { room } => {
                put_varint(buf, room.0);
            }
            Request::SetReadMarker { room, seq } => {
                put_varint(buf, room.0);
                put_varint(buf, seq.0);
            }
            Request::SetAway { away } => put_bool(buf, *away),
            Request::OpenDirect { user } => user.encode(buf),
            Request::ChangePassword(c) => {
                put_str(buf, &c.current);
                put_str(buf, &c.new);
            }
            Request::GetProfile { user } => put_varint(buf, user.0),
            Request::UpdateProfile(p) => p.encode_fields(buf),
            Request::CreateRoom {
                name,
                topic,
                visibility,
                members,
            } => {
                put_str(buf, name);
                put_str(buf, topic);
                buf.put_u8(visibility.code());
                // Appended field: omitted when empty, so that a CREATE_ROOM
                // without members keeps the bytes of the first release.
                if !members.is_empty() {
                    put_varint(buf, members.len() as u64);
                    for m in members {
                        m.encode(buf);
                    }
                }
            }
            Request::ListRooms {
                query,
                offset,
                limit,
                exact,
            } => {
                put_str(buf, query);
                put_varint(buf, *offset as u64);
                put_varint(buf, *limit as u64);
                put_bool(buf, *exact);
            }
            Request::JoinRoom { room }
            | Request::LeaveRoom { room }
            | Request::ListMembers { room } => put_varint(buf, room.0),
            Request::SendMessage {
                room,
                body,
                spans,
                sticker,
                attachments,
            } => {
                put_varint(buf, room.0);
                put_str(buf, body);
                // Appended fields, each written when it or a later one
                // holds something, so a plain message keeps its first bytes.
                let files = !attachments.is_empty();
                if !spans.is_empty() || sticker.is_some() || files {
                    put_spans(buf, spans);
                }
                if files {
                    put_sticker_before_more(buf, sticker.as_deref());
                    put_file_ids(buf, attachments);
                } else if let Some(id) = sticker {
                    put_str(buf, id);
                }
            }
            Request::History {
                room,
                before,
                limit,
            } => {
                put_varint(buf, room.0);
                put_varint(buf, before.0);
                put_varint(buf, *limit as u64);
            }
        }
        end_frame(buf, start);
    }

    /// Decodes a request frame. Fails with [`DecodeError::UnknownFrameType`]
    /// for types outside the request set.
    pub fn decode(frame: &RawFrame) -> Result<Request, DecodeError> {
        let mut r = Reader::new(&frame.payload);
        let req = match frame.kind {
            kind::HELLO => {
                let version = r.varint_u16()?;
                let client = r.str()?;
                let token = r.opt_str()?;
                let n = r.count()?;
                let mut resume = Vec::with_capacity(prealloc(n));
                for _ in 0..n {
                    resume.push(ResumePoint {
                        room: RoomId(r.varint()?),
                        after: Seq(r.varint()?),
                    });
                }
                Request::Hello(Hello {
                    version,
                    client,
                    token,
                    resume,
                })
            }
            kind::PING => Request::Ping { nonce: r.varint()? },
            kind::REGISTER => Request::Register {
                username: r.str()?,
                password: r.str()?.into(),
            },
            kind::LOGIN => Request::Login {
                username: r.str()?,
                password: r.str()?.into(),
            },
            kind::LOGOUT => Request::Logout,
            kind::CREATE_ROOM => {
                let name = r.str()?;
                let topic = r.str()?;
                let visibility = Visibility::decode(r.u8()?)?;
                // Appended field (SPEC.md §5.3.2): absent means no members.
                let mut members = Vec::new();
                if r.remaining() > 0 {
                    let n = r.count()?;
                    members.reserve(prealloc(n));
                    for _ in 0..n {
                        members.push(UserRef::decode(&mut r)?);
                    }
                }
                Request::CreateRoom {
                    name,
                    topic,
                    visibility,
                    members,
                }
            }
            kind::LIST_ROOMS => Request::ListRooms {
                query: r.str()?,
                offset: r.varint_u32()?,
                limit: r.varint_u32()?,
                // Appended field (SPEC.md §5.3.3): absent means substring search.
                exact: r.remaining() > 0 && r.bool()?,
            },
            kind::JOIN_ROOM => Request::JoinRoom {
                room: RoomId(r.varint()?),
            },
            kind::LEAVE_ROOM => Request::LeaveRoom {
                room: RoomId(r.varint()?),
            },
            kind::LIST_MEMBERS => Request::ListMembers {
                room: RoomId(r.varint()?),
            },
            kind::SEND_MESSAGE => Request::SendMessage {
                room: RoomId(r.varint()?),
                body: r.str()?,
                spans: get_appended_spans(&mut r)?,
                sticker: get_appended_sticker(&mut r)?,
                attachments: get_appended_file_ids(&mut r)?,
            },
            kind::HISTORY => Request::History {
                room: RoomId(r.varint()?),
                before: Seq(r.varint()?),
                limit: r.varint_u32()?,
            },
            kind::MY_ROOMS => Request::MyRooms,
            kind::INVITE => Request::Invite {
                room: RoomId(r.varint()?),
                user: UserRef::decode(&mut r)?,
            },
            kind::RESPOND_INVITE => Request::RespondInvite {
                room: RoomId(r.varint()?),
                accept: r.bool()?,
            },
            kind::REQUEST_JOIN => Request::RequestJoin {
                room: RoomId(r.varint()?),
            },
            kind::DECIDE_REQUEST => Request::DecideRequest {
                room: RoomId(r.varint()?),
                user: UserId(r.varint()?),
                approve: r.bool()?,
            },
            kind::KICK => Request::Kick {
                room: RoomId(r.varint()?),
                user: UserId(r.varint()?),
            },
            kind::BAN => Request::Ban {
                room: RoomId(r.varint()?),
                user: UserRef::decode(&mut r)?,
            },
            kind::UNBAN => Request::Unban {
                room: RoomId(r.varint()?),
                user: UserId(r.varint()?),
            },
            kind::SET_ROLE => Request::SetRole {
                room: RoomId(r.varint()?),
                user: UserId(r.varint()?),
                role: Role::decode(r.u8()?)?,
            },
            kind::LIST_JOIN_REQUESTS => Request::ListJoinRequests {
                room: RoomId(r.varint()?),
            },
            kind::LIST_BANS => Request::ListBans {
                room: RoomId(r.varint()?),
            },
            kind::LIST_NOTIFICATIONS => Request::ListNotifications {
                before: r.varint()?,
                limit: r.varint_u32()?,
                unread_only: r.bool()?,
            },
            kind::MARK_READ => Request::MarkRead { up_to: r.varint()? },
            kind::ROOM_LOG => Request::RoomLog,
            kind::ROOM_AUDIT => Request::RoomAudit {
                room: RoomId(r.varint()?),
                before: r.varint()?,
                limit: r.varint_u32()?,
            },
            kind::UPDATE_ROOM => Request::UpdateRoom {
                room: RoomId(r.varint()?),
                name: r.str()?,
                topic: r.str()?,
            },
            kind::EDIT_MESSAGE => Request::EditMessage {
                room: RoomId(r.varint()?),
                seq: Seq(r.varint()?),
                text: r.str()?,
                spans: get_appended_spans(&mut r)?,
            },
            kind::DELETE_MESSAGE => Request::DeleteMessage {
                room: RoomId(r.varint()?),
                seq: Seq(r.varint()?),
            },
            kind::TYPING_START => Request::TypingStart {
                room: RoomId(r.varint()?),
            },
            kind::TYPING_STOP => Request::TypingStop {
                room: RoomId(r.varint()?),
            },
            kind::SET_READ_MARKER => Request::SetReadMarker {
                room: RoomId(r.varint()?),
                seq: Seq(r.varint()?),
            },
            kind::SET_AWAY => Request::SetAway { away: r.bool()? },
            kind::OPEN_DIRECT => Request::OpenDirect {
                user: UserRef::decode(&mut r)?,
            },
            kind::LIST_STICKERS => Request::ListStickers,
            kind::CHANGE_PASSWORD => Request::ChangePassword(PasswordChange {
                current: r.str()?,
                new: r.str()?,
            }),
            kind::GET_PROFILE => Request::GetProfile {
                user: UserId(r.varint()?),
            },
            kind::UPDATE_PROFILE => {
                Request::UpdateProfile(crate::ProfileUpdate::decode_fields(&mut r)?)
            }
            other => return Err(DecodeError::UnknownFrameType(other)),
        };
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::{Hello, Request};

    #[test]
    fn register_and_login_debug_hide_the_password() {
        for req in [
            Request::Register {
                username: "alice".into(),
                password: "hunter2-secret".into(),
            },
            Request::Login {
                username: "alice".into(),
                password: "hunter2-secret".into(),
            },
        ] {
            let shown = format!("{req:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(
                shown.contains("<redacted>") && shown.contains("alice"),
                "{shown}"
            );
        }
    }

    #[test]
    fn hello_debug_hides_the_token() {
        let hello = Hello {
            version: 1,
            client: "test".into(),
            token: Some("0123456789abcdef".into()),
            resume: Vec::new(),
        };
        let shown = format!("{hello:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains("test"),
            "{shown}"
        );
    }
}
