//! Responses and events: every frame a server sends (SPEC.md §5), with its
//! encoder and decoder.

use bytes::{BufMut, BytesMut};

use crate::frame::{begin_frame, end_frame, kind, RawFrame};
use crate::ids::{Millis, RoomId, Seq, UserId};
use crate::msg::{
    get_room, prealloc, put_room, AuditItem, Member, Notification, ReadState, Role, RoomEvent,
    RoomInfo, RoomLogItem, UnreadSummary, UserEntry,
};
use crate::secret::SessionToken;
use crate::wire::{put_bool, put_nested, put_str, put_varint, Reader};
use crate::DecodeError;

/// Limits and identity the server announces in WELCOME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    pub version: u16,
    pub server: String,
    /// Largest length field the server accepts.
    pub max_frame_len: u32,
    /// Largest message body in bytes.
    pub max_message_len: u32,
    /// The client should send PING at least this often; the server closes a
    /// connection silent for three intervals.
    pub heartbeat_ms: u32,
    /// Present when HELLO carried a valid token.
    pub session: Option<SessionUser>,
    /// The connection's SEND_MESSAGE rate limit; `None` from servers that
    /// predate the field (SPEC.md §5.1.2).
    pub rate_limit: Option<RateLimit>,
}

/// A message rate limit: `per_sec` messages per second on average, bursts
/// of up to `burst`. `per_sec` 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_sec: u32,
    pub burst: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    pub user: UserId,
    pub username: String,
}

/// A response or event frame from a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMsg {
    Welcome(Welcome),
    Pong {
        nonce: u64,
    },
    Ok,
    /// `code` is kept raw so that codes newer than this crate survive;
    /// see [`crate::ErrorCode::from_u16`].
    Error {
        code: u16,
        message: String,
        /// When to retry, in milliseconds (TOO_MANY_ATTEMPTS, OVERLOADED,
        /// RATE_LIMITED); 0: no hint. Appended to version 1 after its
        /// first release: absent on the wire means 0, and a server omits
        /// it when 0.
        retry_after_ms: u32,
    },
    /// Reply to REGISTER and LOGIN: the connection is now authenticated.
    Session {
        user: UserId,
        username: String,
        /// `Debug` shows `<redacted>`.
        token: SessionToken,
    },
    Room(RoomInfo),
    RoomList {
        rooms: Vec<RoomInfo>,
        total: u32,
        /// MY_ROOMS only: the caller's unread summary (appended fields,
        /// absent from LIST_ROOMS' reply and from older servers).
        unread: Option<UnreadSummary>,
    },
    MemberList {
        room: RoomId,
        members: Vec<Member>,
    },
    /// The message is durable: its batch has committed.
    MessageAck {
        room: RoomId,
        seq: Seq,
        at: Millis,
    },
    /// Newest first.
    HistoryPage {
        room: RoomId,
        events: Vec<RoomEvent>,
        has_more: bool,
    },
    Event(RoomEvent),
    /// Resume from HELLO is impossible for this room: reload its history.
    ResumeGap {
        room: RoomId,
        last_seq: Seq,
    },
    /// The server is about to close the connection.
    Close {
        code: u16,
        message: String,
    },
    /// Pending join requests or bans of a room (LIST_JOIN_REQUESTS, LIST_BANS).
    UserList {
        room: RoomId,
        users: Vec<UserEntry>,
    },
    /// Newest first, with the caller's unread count (the badge).
    NotificationList {
        unread: u32,
        has_more: bool,
        items: Vec<Notification>,
    },
    /// Reply to MARK_READ: the unread count afterwards.
    UnreadCount {
        unread: u32,
    },
    /// The caller's room log, most recently joined first.
    RoomLogList {
        items: Vec<RoomLogItem>,
    },
    /// Newest first.
    AuditPage {
        room: RoomId,
        has_more: bool,
        items: Vec<AuditItem>,
    },
    /// Event: a new notification for the connection's user.
    Notification(Notification),
    /// Event: a room that concerns the user was created (`new_chat_room`).
    RoomAnnounced(RoomInfo),
    /// Reply to SET_READ_MARKER: the marker as it now is.
    ReadMarker(ReadState),
    /// Reply to LIST_STICKERS: the server's sticker catalogue (SPEC.md
    /// §5.11.3), in id order.
    StickerList {
        stickers: Vec<crate::Sticker>,
    },
    /// Event: the user's read marker moved, set on another connection.
    ReadMarkerMoved(ReadState),
    /// Event: the presence of the members of `room` listed in `changes`
    /// changed, sent to the room's members: every change of one coalescing
    /// tick in one frame (coalesced; never stored, no seq; SPEC.md
    /// §5.10.2).
    Presence {
        room: RoomId,
        changes: Vec<crate::PresenceChange>,
    },
    /// Reply to GET_PROFILE and UPDATE_PROFILE (SPEC.md §5.2.5).
    Profile(crate::Profile),
    /// Event: members of `room` changed their profiles (coalesced: at most
    /// one entry per user per second; never stored, no seq). The entries
    /// carry no email.
    ProfileChanged {
        room: RoomId,
        changes: Vec<crate::Profile>,
    },
    /// Event: another member of `room` started (`typing`) or stopped
    /// typing; never stored, no seq (SPEC.md §5.5.7).
    Typing {
        room: RoomId,
        user: UserId,
        username: String,
        typing: bool,
    },
}

impl ServerMsg {
    /// An ERROR frame without a retry hint.
    pub fn error(code: crate::ErrorCode, message: impl Into<String>) -> ServerMsg {
        ServerMsg::Error {
            code: code as u16,
            message: message.into(),
            retry_after_ms: 0,
        }
    }

    pub fn kind(&self) -> u8 {
        match self {
            ServerMsg::Welcome(_) => kind::WELCOME,
            ServerMsg::Pong { .. } => kind::PONG,
            ServerMsg::Ok => kind::OK,
            ServerMsg::Error { .. } => kind::ERROR,
            ServerMsg::Session { .. } => kind::SESSION,
            ServerMsg::Room(_) => kind::ROOM,
            ServerMsg::RoomList { .. } => kind::ROOM_LIST,
            ServerMsg::MemberList { .. } => kind::MEMBER_LIST,
            ServerMsg::MessageAck { .. } => kind::MESSAGE_ACK,
            ServerMsg::HistoryPage { .. } => kind::HISTORY_PAGE,
            ServerMsg::Event(_) => kind::EVENT,
            ServerMsg::ResumeGap { .. } => kind::RESUME_GAP,
            ServerMsg::Close { .. } => kind::CLOSE,
            ServerMsg::UserList { .. } => kind::USER_LIST,
            ServerMsg::NotificationList { .. } => kind::NOTIFICATION_LIST,
            ServerMsg::UnreadCount { .. } => kind::UNREAD_COUNT,
            ServerMsg::RoomLogList { .. } => kind::ROOM_LOG_LIST,
            ServerMsg::AuditPage { .. } => kind::AUDIT_PAGE,
            ServerMsg::Notification(_) => kind::NOTIFICATION,
            ServerMsg::RoomAnnounced(_) => kind::ROOM_ANNOUNCED,
            ServerMsg::Typing { .. } => kind::TYPING,
            ServerMsg::ReadMarker(_) => kind::READ_MARKER,
            ServerMsg::StickerList { .. } => kind::STICKER_LIST,
            ServerMsg::ReadMarkerMoved(_) => kind::READ_MARKER_MOVED,
            ServerMsg::Presence { .. } => kind::PRESENCE,
            ServerMsg::Profile(_) => kind::PROFILE,
            ServerMsg::ProfileChanged { .. } => kind::PROFILE_CHANGED,
        }
    }

    /// Appends this message as one whole frame. Events and CLOSE carry
    /// request id 0 by convention; the caller passes it.
    pub fn encode(&self, req_id: u32, buf: &mut BytesMut) {
        if let ServerMsg::Event(ev) = self {
            ev.encode_frame(buf);
            return;
        }
        let start = begin_frame(buf, self.kind(), req_id);
        match self {
            ServerMsg::Welcome(w) => {
                put_varint(buf, w.version as u64);
                put_str(buf, &w.server);
                put_varint(buf, w.max_frame_len as u64);
                put_varint(buf, w.max_message_len as u64);
                put_varint(buf, w.heartbeat_ms as u64);
                match &w.session {
                    None => put_bool(buf, false),
                    Some(s) => {
                        put_bool(buf, true);
                        put_varint(buf, s.user.0);
                        put_str(buf, &s.username);
                    }
                }
                if let Some(limit) = &w.rate_limit {
                    put_varint(buf, limit.per_sec as u64);
                    put_varint(buf, limit.burst as u64);
                }
            }
            ServerMsg::Pong { nonce } => put_varint(buf, *nonce),
            ServerMsg::Ok => {}
            ServerMsg::Error {
                code,
                message,
                retry_after_ms,
            } => {
                put_varint(buf, *code as u64);
                put_str(buf, message);
                if *retry_after_ms > 0 {
                    put_varint(buf, *retry_after_ms as u64);
                }
            }
            ServerMsg::Close { code, message } => {
                put_varint(buf, *code as u64);
                put_str(buf, message);
            }
            ServerMsg::Session {
                user,
                username,
                token,
            } => {
                put_varint(buf, user.0);
                put_str(buf, username);
                put_str(buf, token.as_str());
            }
            ServerMsg::Room(r) => put_room(buf, r),
            ServerMsg::RoomList {
                rooms,
                total,
                unread,
            } => {
                put_varint(buf, *total as u64);
                put_varint(buf, rooms.len() as u64);
                for r in rooms {
                    put_room(buf, r);
                }
                if let Some(u) = unread {
                    put_varint(buf, u.total as u64);
                    put_varint(buf, u.rooms.len() as u64);
                    for s in &u.rooms {
                        s.encode(buf);
                    }
                }
            }
            ServerMsg::MemberList { room, members } => {
                put_varint(buf, room.0);
                put_varint(buf, members.len() as u64);
                for m in members {
                    put_nested(buf, |b| {
                        put_varint(b, m.user.0);
                        put_str(b, &m.username);
                        b.put_u8(m.role.code());
                        put_bool(b, m.online);
                        put_varint(b, m.joined_at);
                        if let Some(p) = m.presence {
                            b.put_u8(p.code());
                        }
                    });
                }
            }
            ServerMsg::MessageAck { room, seq, at } => {
                put_varint(buf, room.0);
                put_varint(buf, seq.0);
                put_varint(buf, *at);
            }
            ServerMsg::HistoryPage {
                room,
                events,
                has_more,
            } => {
                put_varint(buf, room.0);
                put_bool(buf, *has_more);
                put_varint(buf, events.len() as u64);
                for e in events {
                    put_nested(buf, |b| e.encode_fields(b));
                }
            }
            ServerMsg::ResumeGap { room, last_seq } => {
                put_varint(buf, room.0);
                put_varint(buf, last_seq.0);
            }
            ServerMsg::UserList { room, users } => {
                put_varint(buf, room.0);
                put_varint(buf, users.len() as u64);
                for u in users {
                    u.encode(buf);
                }
            }
            ServerMsg::NotificationList {
                unread,
                has_more,
                items,
            } => {
                put_varint(buf, *unread as u64);
                put_bool(buf, *has_more);
                put_varint(buf, items.len() as u64);
                for n in items {
                    n.encode(buf);
                }
            }
            ServerMsg::UnreadCount { unread } => put_varint(buf, *unread as u64),
            ServerMsg::RoomLogList { items } => {
                put_varint(buf, items.len() as u64);
                for i in items {
                    i.encode(buf);
                }
            }
            ServerMsg::AuditPage {
                room,
                has_more,
                items,
            } => {
                put_varint(buf, room.0);
                put_bool(buf, *has_more);
                put_varint(buf, items.len() as u64);
                for i in items {
                    i.encode(buf);
                }
            }
            ServerMsg::Notification(n) => n.encode(buf),
            ServerMsg::RoomAnnounced(r) => put_room(buf, r),
            ServerMsg::Typing {
                room,
                user,
                username,
                typing,
            } => {
                put_varint(buf, room.0);
                put_varint(buf, user.0);
                put_str(buf, username);
                put_bool(buf, *typing);
            }
            ServerMsg::ReadMarker(s) | ServerMsg::ReadMarkerMoved(s) => s.encode_fields(buf),
            ServerMsg::StickerList { stickers } => {
                put_varint(buf, stickers.len() as u64);
                for s in stickers {
                    s.encode(buf);
                }
            }
            ServerMsg::Presence { room, changes } => {
                put_varint(buf, room.0);
                put_varint(buf, changes.len() as u64);
                for c in changes {
                    put_nested(buf, |b| {
                        put_varint(b, c.user.0);
                        put_str(b, &c.username);
                        b.put_u8(c.presence.code());
                    });
                }
            }
            ServerMsg::Profile(p) => p.encode_fields(buf),
            ServerMsg::ProfileChanged { room, changes } => {
                put_varint(buf, room.0);
                put_varint(buf, changes.len() as u64);
                for c in changes {
                    put_nested(buf, |b| c.encode_fields(b));
                }
            }
            ServerMsg::Event(_) => unreachable!("handled above"),
        }
        end_frame(buf, start);
    }

    pub fn decode(frame: &RawFrame) -> Result<ServerMsg, DecodeError> {
        let mut r = Reader::new(&frame.payload);
        let msg = match frame.kind {
            kind::WELCOME => {
                let version = r.varint_u16()?;
                let server = r.str()?;
                let max_frame_len = r.varint_u32()?;
                let max_message_len = r.varint_u32()?;
                let heartbeat_ms = r.varint_u32()?;
                let session = if r.bool()? {
                    Some(SessionUser {
                        user: UserId(r.varint()?),
                        username: r.str()?,
                    })
                } else {
                    None
                };
                // Appended to version 1 after its release (SPEC.md §5.1.2): absent from
                // older servers.
                let rate_limit = if r.remaining() > 0 {
                    Some(RateLimit {
                        per_sec: r.varint_u32()?,
                        burst: r.varint_u32()?,
                    })
                } else {
                    None
                };
                ServerMsg::Welcome(Welcome {
                    version,
                    server,
                    max_frame_len,
                    max_message_len,
                    heartbeat_ms,
                    session,
                    rate_limit,
                })
            }
            kind::PONG => ServerMsg::Pong { nonce: r.varint()? },
            kind::OK => ServerMsg::Ok,
            kind::ERROR => ServerMsg::Error {
                code: r.varint_u16()?,
                message: r.str()?,
                retry_after_ms: if r.remaining() > 0 {
                    r.varint_u32()?
                } else {
                    0
                },
            },
            kind::CLOSE => ServerMsg::Close {
                code: r.varint_u16()?,
                message: r.str()?,
            },
            kind::SESSION => ServerMsg::Session {
                user: UserId(r.varint()?),
                username: r.str()?,
                token: r.str()?.into(),
            },
            kind::ROOM => ServerMsg::Room(get_room(&mut r)?),
            kind::ROOM_LIST => {
                let total = r.varint_u32()?;
                let n = r.count()?;
                let mut rooms = Vec::with_capacity(prealloc(n));
                for _ in 0..n {
                    rooms.push(get_room(&mut r)?);
                }
                // Appended (SPEC.md §5.3.5): only in MY_ROOMS' reply.
                let unread = if r.remaining() > 0 {
                    Some(UnreadSummary {
                        total: r.varint_u32()?,
                        rooms: list(&mut r, ReadState::decode)?,
                    })
                } else {
                    None
                };
                ServerMsg::RoomList {
                    rooms,
                    total,
                    unread,
                }
            }
            kind::MEMBER_LIST => {
                let room = RoomId(r.varint()?);
                let n = r.count()?;
                let mut members = Vec::with_capacity(prealloc(n));
                for _ in 0..n {
                    let mut m = r.nested()?;
                    members.push(Member {
                        user: UserId(m.varint()?),
                        username: m.str()?,
                        role: Role::decode(m.u8()?)?,
                        online: m.bool()?,
                        joined_at: m.varint()?,
                        // Appended field: absent from servers before it.
                        presence: if m.remaining() > 0 {
                            Some(crate::Presence::from_code(m.u8()?))
                        } else {
                            None
                        },
                    });
                }
                ServerMsg::MemberList { room, members }
            }
            kind::MESSAGE_ACK => ServerMsg::MessageAck {
                room: RoomId(r.varint()?),
                seq: Seq(r.varint()?),
                at: r.varint()?,
            },
            kind::HISTORY_PAGE => {
                let room = RoomId(r.varint()?);
                let has_more = r.bool()?;
                let n = r.count()?;
                let mut events = Vec::with_capacity(prealloc(n));
                for _ in 0..n {
                    events.push(RoomEvent::decode_fields(&mut r.nested()?)?);
                }
                ServerMsg::HistoryPage {
                    room,
                    events,
                    has_more,
                }
            }
            kind::EVENT => ServerMsg::Event(RoomEvent::decode_fields(&mut r)?),
            kind::RESUME_GAP => ServerMsg::ResumeGap {
                room: RoomId(r.varint()?),
                last_seq: Seq(r.varint()?),
            },
            kind::USER_LIST => {
                let room = RoomId(r.varint()?);
                let users = list(&mut r, UserEntry::decode)?;
                ServerMsg::UserList { room, users }
            }
            kind::NOTIFICATION_LIST => {
                let unread = r.varint_u32()?;
                let has_more = r.bool()?;
                let items = list(&mut r, Notification::decode)?;
                ServerMsg::NotificationList {
                    unread,
                    has_more,
                    items,
                }
            }
            kind::UNREAD_COUNT => ServerMsg::UnreadCount {
                unread: r.varint_u32()?,
            },
            kind::ROOM_LOG_LIST => ServerMsg::RoomLogList {
                items: list(&mut r, RoomLogItem::decode)?,
            },
            kind::AUDIT_PAGE => {
                let room = RoomId(r.varint()?);
                let has_more = r.bool()?;
                let items = list(&mut r, AuditItem::decode)?;
                ServerMsg::AuditPage {
                    room,
                    has_more,
                    items,
                }
            }
            kind::NOTIFICATION => ServerMsg::Notification(Notification::decode(&mut r)?),
            kind::ROOM_ANNOUNCED => ServerMsg::RoomAnnounced(get_room(&mut r)?),
            kind::READ_MARKER => ServerMsg::ReadMarker(ReadState::decode_fields(&mut r)?),
            kind::STICKER_LIST => ServerMsg::StickerList {
                stickers: list(&mut r, crate::Sticker::decode)?,
            },
            kind::READ_MARKER_MOVED => {
                ServerMsg::ReadMarkerMoved(ReadState::decode_fields(&mut r)?)
            }
            kind::PRESENCE => {
                let room = RoomId(r.varint()?);
                let n = r.count()?;
                let mut changes = Vec::with_capacity(prealloc(n));
                for _ in 0..n {
                    let mut c = r.nested()?;
                    changes.push(crate::PresenceChange {
                        user: UserId(c.varint()?),
                        username: c.str()?,
                        presence: crate::Presence::from_code(c.u8()?),
                    });
                }
                ServerMsg::Presence { room, changes }
            }
            kind::PROFILE => ServerMsg::Profile(crate::Profile::decode_fields(&mut r)?),
            kind::PROFILE_CHANGED => {
                let room = RoomId(r.varint()?);
                let changes = list(&mut r, |r| crate::Profile::decode_fields(&mut r.nested()?))?;
                ServerMsg::ProfileChanged { room, changes }
            }
            kind::TYPING => ServerMsg::Typing {
                room: RoomId(r.varint()?),
                user: UserId(r.varint()?),
                username: r.str()?,
                typing: r.bool()?,
            },
            other => return Err(DecodeError::UnknownFrameType(other)),
        };
        Ok(msg)
    }
}

/// Decodes a counted list of nested items.
pub(crate) fn list<T>(
    r: &mut Reader<'_>,
    item: impl Fn(&mut Reader<'_>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let n = r.count()?;
    let mut out = Vec::with_capacity(prealloc(n));
    for _ in 0..n {
        out.push(item(r)?);
    }
    Ok(out)
}
