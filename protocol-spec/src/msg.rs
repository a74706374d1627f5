//! Payload types shared by requests, responses and events (SPEC.md §5):
//! rooms, members, room events and their kinds. Requests live in
//! [`crate::request`], responses and events in [`crate::reply`].

use bytes::{BufMut, BytesMut};

use crate::attach::{
    get_appended_attachments, get_appended_sticker, put_attachments, put_sticker_before_more,
    Attachment,
};
use crate::codes::{LeaveReason, NotificationKind};
use crate::frame::{begin_frame, end_frame, kind};
use crate::ids::{Millis, RoomId, Seq, UserId};
use crate::rich::{get_appended_spans, put_spans, Span};
use crate::wire::{put_nested, put_str, put_varint, Reader};
use crate::DecodeError;

/// How many list elements a decoder reserves room for up front.
///
/// [`Reader::count`] bounds a list's count by the bytes left in the payload,
/// but one byte of input can become a ~100-byte element (a [`RoomInfo`] or
/// [`RoomEvent`]), so reserving `count` elements would let a forged count make the
/// decoder allocate up to ~100x the frame's size before failing on the first
/// element. Decoders reserve at most this many; the vector grows as elements
/// actually decode.
pub(crate) const MAX_PREALLOC: usize = 64;

pub(crate) fn prealloc(count: usize) -> usize {
    count.min(MAX_PREALLOC)
}

/// The protocol version this crate implements.
pub const PROTOCOL_VERSION: u16 = 1;

/// Who may see and join a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Visibility {
    /// Listed to everyone; anyone may join.
    Public = 0,
    /// Listed only to members; joined by invitation or approved request.
    Private = 1,
}

impl Visibility {
    pub(crate) fn decode(v: u8) -> Result<Self, DecodeError> {
        Visibility::from_code(v).ok_or(DecodeError::InvalidValue {
            field: "visibility",
            value: v as u64,
        })
    }
}

/// A member's role in a room. Ordered: `Owner > Admin > Member`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Member = 0,
    Admin = 1,
    Owner = 2,
}

impl Role {
    pub(crate) fn decode(v: u8) -> Result<Self, DecodeError> {
        Role::from_code(v).ok_or(DecodeError::InvalidValue {
            field: "role",
            value: v as u64,
        })
    }

    /// Owners are admins too.
    pub fn is_admin(self) -> bool {
        self >= Role::Admin
    }
}

/// A room as listed or returned by CREATE_ROOM / JOIN_ROOM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    pub id: RoomId,
    pub name: String,
    pub topic: String,
    pub visibility: Visibility,
    pub owner: UserId,
    pub member_count: u32,
    /// The sequence number of the room's latest event.
    pub last_seq: Seq,
    pub created_at: Millis,
    /// For a direct room (OPEN_DIRECT, SPEC.md §5.3.7): the other of its
    /// two users, as seen by the recipient of this RoomInfo; `None` for
    /// every other room. Appended fields, absent from the wire when `None`.
    pub direct_with: Option<DirectWith>,
}

/// The other user of a direct room, from the point of view of the user a
/// [`RoomInfo`] is sent to: its display name is this user's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectWith {
    pub user: UserId,
    pub username: String,
}

/// One entry of a PRESENCE event (SPEC.md §5.10.2): `user` is now
/// `presence`. A nested item, so later versions can append fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceChange {
    pub user: UserId,
    pub username: String,
    pub presence: crate::Presence,
}

impl PresenceChange {
    /// The most bytes one entry takes on the wire, nested (its byte count
    /// included): what a sender budgets per entry when it splits a list
    /// over frames.
    pub fn encoded_len(&self) -> usize {
        // user (<= 10), username length (<= 10) and bytes, presence (1),
        // and the nested item's own byte count (<= 10).
        10 + 10 + self.username.len() + 1 + 10
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user: UserId,
    pub username: String,
    pub role: Role,
    /// Whether the member has at least one connection open now.
    pub online: bool,
    pub joined_at: Millis,
    /// The member's presence (SPEC.md §5.10); an appended field, absent
    /// from the wire when `None` (servers before presence).
    pub presence: Option<crate::Presence>,
}

/// A sequenced room event, as broadcast live and returned by HISTORY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomEvent {
    pub room: RoomId,
    pub seq: Seq,
    pub at: Millis,
    /// The user who caused the event (the sender of a message).
    pub actor: UserId,
    pub actor_name: String,
    pub body: EventBody,
}

/// Event kinds (SPEC.md §5.5). Unknown kinds decode as [`EventBody::Unknown`]
/// so that old clients survive new servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventBody {
    /// kind 1. `edited_at` is the time of the latest edit (EDIT_MESSAGE),
    /// `None` for a message never edited; `spans` format `text` (SPEC.md
    /// §5.11.1); `sticker` names the catalogue's sticker the message is
    /// (§5.11.3), whose `text` is then its fallback `:id:`. All three are
    /// appended fields, absent from the wire when they hold nothing and
    /// nothing follows (§5.5.2); `edited_at` 0 stands for "never edited"
    /// when later fields follow; `attachments` describes the files it
    /// carries (§13.5), also appended (`sticker` is then written as the
    /// empty string when the message is not a sticker).
    Message {
        text: String,
        edited_at: Option<Millis>,
        spans: Vec<Span>,
        sticker: Option<String>,
        attachments: Vec<Attachment>,
    },
    /// kind 2: `actor` joined.
    MemberJoined,
    /// kind 3: `actor` left.
    MemberLeft,
    /// kind 4: the room was created by `actor`.
    RoomCreated { name: String, topic: String },
    /// kind 5: `actor` kicked `target` out of the room.
    MemberKicked { target: UserId, target_name: String },
    /// kind 6: `actor` banned `target` (removing them if a member).
    MemberBanned { target: UserId, target_name: String },
    /// kind 7: `target`'s role became `role`; `actor` is 0 (the system) when
    /// it changed by succession.
    RoleChanged {
        target: UserId,
        target_name: String,
        role: Role,
    },
    /// kind 8: `actor` renamed the room or changed its topic.
    RoomUpdated { name: String, topic: String },
    /// kind 9: the room terminated (the last event it ever has).
    RoomTerminated,
    /// kind 10: `actor` (the sender) replaced the text of the message
    /// `target` with `text` formatted by `spans` (an appended field, absent
    /// when empty). In HISTORY and on resume `text` and `spans` are empty:
    /// the message itself carries its latest text (SPEC.md §5.4.5).
    MessageEdited {
        target: Seq,
        text: String,
        spans: Vec<Span>,
    },
    /// kind 11: `actor` (the sender, or an admin) deleted the message
    /// `target`, which from then on reads as a [`EventBody::Tombstone`].
    MessageDeleted { target: Seq },
    /// kind 12: a deleted message, in HISTORY and on resume, at the
    /// message's own seq; `actor` and `at` are its sender and time.
    Tombstone,
    /// A kind this decoder does not know; the raw bytes are kept. Only
    /// meaningful with a `kind` outside `1..=12`: one of those would encode to
    /// bytes that decode as the known kind instead.
    Unknown { kind: u8, data: Vec<u8> },
}

pub mod event_kind {
    pub const MESSAGE: u8 = 1;
    pub const MEMBER_JOINED: u8 = 2;
    pub const MEMBER_LEFT: u8 = 3;
    pub const ROOM_CREATED: u8 = 4;
    pub const MEMBER_KICKED: u8 = 5;
    pub const MEMBER_BANNED: u8 = 6;
    pub const ROLE_CHANGED: u8 = 7;
    pub const ROOM_UPDATED: u8 = 8;
    pub const ROOM_TERMINATED: u8 = 9;
    pub const MESSAGE_EDITED: u8 = 10;
    pub const MESSAGE_DELETED: u8 = 11;
    pub const TOMBSTONE: u8 = 12;
}

impl EventBody {
    /// A plain MESSAGE body: `text`, never edited, no spans, no sticker.
    pub fn text(text: impl Into<String>) -> EventBody {
        EventBody::Message {
            text: text.into(),
            edited_at: None,
            spans: Vec::new(),
            sticker: None,
            attachments: Vec::new(),
        }
    }

    pub fn kind(&self) -> u8 {
        match self {
            EventBody::Message { .. } => event_kind::MESSAGE,
            EventBody::MemberJoined => event_kind::MEMBER_JOINED,
            EventBody::MemberLeft => event_kind::MEMBER_LEFT,
            EventBody::RoomCreated { .. } => event_kind::ROOM_CREATED,
            EventBody::MemberKicked { .. } => event_kind::MEMBER_KICKED,
            EventBody::MemberBanned { .. } => event_kind::MEMBER_BANNED,
            EventBody::RoleChanged { .. } => event_kind::ROLE_CHANGED,
            EventBody::RoomUpdated { .. } => event_kind::ROOM_UPDATED,
            EventBody::RoomTerminated => event_kind::ROOM_TERMINATED,
            EventBody::MessageEdited { .. } => event_kind::MESSAGE_EDITED,
            EventBody::MessageDeleted { .. } => event_kind::MESSAGE_DELETED,
            EventBody::Tombstone => event_kind::TOMBSTONE,
            EventBody::Unknown { kind, .. } => *kind,
        }
    }

    /// Writes the kind-specific fields (after the kind byte).
    pub fn encode_fields(&self, buf: &mut BytesMut) {
        match self {
            EventBody::Message {
                text,
                edited_at,
                spans,
                sticker,
                attachments,
            } => {
                put_str(buf, text);
                // Appended fields: each written when it or a later one
                // holds something (SPEC.md §5.5.2).
                let files = !attachments.is_empty();
                let rich = !spans.is_empty() || sticker.is_some() || files;
                if edited_at.is_some() || rich {
                    put_varint(buf, edited_at.unwrap_or(0));
                }
                if rich {
                    put_spans(buf, spans);
                }
                if files {
                    put_sticker_before_more(buf, sticker.as_deref());
                    put_attachments(buf, attachments);
                } else if let Some(id) = sticker {
                    put_str(buf, id);
                }
            }
            EventBody::MessageEdited {
                target,
                text,
                spans,
            } => {
                put_varint(buf, target.0);
                put_str(buf, text);
                if !spans.is_empty() {
                    put_spans(buf, spans);
                }
            }
            EventBody::MessageDeleted { target } => put_varint(buf, target.0),
            EventBody::MemberJoined
            | EventBody::MemberLeft
            | EventBody::RoomTerminated
            | EventBody::Tombstone => {}
            EventBody::RoomCreated { name, topic } | EventBody::RoomUpdated { name, topic } => {
                put_str(buf, name);
                put_str(buf, topic);
            }
            EventBody::MemberKicked {
                target,
                target_name,
            }
            | EventBody::MemberBanned {
                target,
                target_name,
            } => {
                put_varint(buf, target.0);
                put_str(buf, target_name);
            }
            EventBody::RoleChanged {
                target,
                target_name,
                role,
            } => {
                put_varint(buf, target.0);
                put_str(buf, target_name);
                buf.put_u8(role.code());
            }
            EventBody::Unknown { data, .. } => buf.put_slice(data),
        }
    }

    /// Decodes the kind-specific fields of an event of kind `kind`.
    pub fn decode_fields(kind: u8, r: &mut Reader<'_>) -> Result<EventBody, DecodeError> {
        Ok(match kind {
            event_kind::MESSAGE => EventBody::Message {
                text: r.str()?,
                // Appended fields: absent (or `edited_at` 0) means never
                // edited, no spans, not a sticker.
                edited_at: if r.remaining() > 0 {
                    Some(r.varint()?).filter(|&at| at != 0)
                } else {
                    None
                },
                spans: get_appended_spans(r)?,
                sticker: get_appended_sticker(r)?,
                attachments: get_appended_attachments(r)?,
            },
            event_kind::MESSAGE_EDITED => EventBody::MessageEdited {
                target: Seq(r.varint()?),
                text: r.str()?,
                spans: get_appended_spans(r)?,
            },
            event_kind::MESSAGE_DELETED => EventBody::MessageDeleted {
                target: Seq(r.varint()?),
            },
            event_kind::TOMBSTONE => EventBody::Tombstone,
            event_kind::MEMBER_JOINED => EventBody::MemberJoined,
            event_kind::MEMBER_LEFT => EventBody::MemberLeft,
            event_kind::ROOM_CREATED => EventBody::RoomCreated {
                name: r.str()?,
                topic: r.str()?,
            },
            event_kind::MEMBER_KICKED => EventBody::MemberKicked {
                target: UserId(r.varint()?),
                target_name: r.str()?,
            },
            event_kind::MEMBER_BANNED => EventBody::MemberBanned {
                target: UserId(r.varint()?),
                target_name: r.str()?,
            },
            event_kind::ROLE_CHANGED => EventBody::RoleChanged {
                target: UserId(r.varint()?),
                target_name: r.str()?,
                role: Role::decode(r.u8()?)?,
            },
            event_kind::ROOM_UPDATED => EventBody::RoomUpdated {
                name: r.str()?,
                topic: r.str()?,
            },
            event_kind::ROOM_TERMINATED => EventBody::RoomTerminated,
            other => EventBody::Unknown {
                kind: other,
                data: r.bytes(r.remaining())?.to_vec(),
            },
        })
    }
}

impl RoomEvent {
    pub(crate) fn encode_fields(&self, buf: &mut BytesMut) {
        put_varint(buf, self.room.0);
        put_varint(buf, self.seq.0);
        put_varint(buf, self.at);
        put_varint(buf, self.actor.0);
        put_str(buf, &self.actor_name);
        buf.put_u8(self.body.kind());
        self.body.encode_fields(buf);
    }

    pub(crate) fn decode_fields(r: &mut Reader<'_>) -> Result<RoomEvent, DecodeError> {
        let room = RoomId(r.varint()?);
        let seq = Seq(r.varint()?);
        let at = r.varint()?;
        let actor = UserId(r.varint()?);
        let actor_name = r.str()?;
        let kind = r.u8()?;
        let body = EventBody::decode_fields(kind, r)?;
        Ok(RoomEvent {
            room,
            seq,
            at,
            actor,
            actor_name,
            body,
        })
    }

    /// The form in which this event is kept for HISTORY and resume, when
    /// it differs from the one broadcast live: a MESSAGE_EDITED keeps no
    /// text (the message it edits carries the latest text, and a later
    /// delete must leave no copy of it behind; SPEC.md §5.4.5).
    pub fn kept_form(&self) -> Option<RoomEvent> {
        match &self.body {
            EventBody::MessageEdited { target, text, .. } if !text.is_empty() => Some(RoomEvent {
                body: EventBody::MessageEdited {
                    target: *target,
                    text: String::new(),
                    spans: Vec::new(),
                },
                ..self.clone()
            }),
            _ => None,
        }
    }

    /// Encodes this event as a whole EVENT frame (request id 0). The server
    /// calls this once per event and shares the bytes among all recipients.
    pub fn encode_frame(&self, buf: &mut BytesMut) {
        let start = begin_frame(buf, kind::EVENT, 0);
        self.encode_fields(buf);
        end_frame(buf, start);
    }
}

pub(crate) fn put_room(buf: &mut BytesMut, r: &RoomInfo) {
    put_nested(buf, |b| {
        put_varint(b, r.id.0);
        put_str(b, &r.name);
        put_str(b, &r.topic);
        b.put_u8(r.visibility.code());
        put_varint(b, r.owner.0);
        put_varint(b, r.member_count as u64);
        put_varint(b, r.last_seq.0);
        put_varint(b, r.created_at);
        // Appended fields: only a direct room writes them, so every other
        // RoomInfo keeps the bytes of the first release.
        if let Some(d) = &r.direct_with {
            put_varint(b, d.user.0);
            put_str(b, &d.username);
        }
    });
}

pub(crate) fn get_room(r: &mut Reader<'_>) -> Result<RoomInfo, DecodeError> {
    let mut r = r.nested()?;
    Ok(RoomInfo {
        id: RoomId(r.varint()?),
        name: r.str()?,
        topic: r.str()?,
        visibility: Visibility::decode(r.u8()?)?,
        owner: UserId(r.varint()?),
        member_count: r.varint_u32()?,
        last_seq: Seq(r.varint()?),
        created_at: r.varint()?,
        // Appended fields (SPEC.md §5.3.1): absent means not direct.
        direct_with: if r.remaining() > 0 {
            Some(DirectWith {
                user: UserId(r.varint()?),
                username: r.str()?,
            })
        } else {
            None
        },
    })
}

/// How a request names another user (SPEC.md §5.7.1). On the wire: the
/// id, or 0 followed by the username; a username sent beside a non-zero id
/// is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    Id(UserId),
    /// A username, lowercased by the server before the lookup.
    Name(String),
}

impl UserRef {
    pub fn id(id: UserId) -> UserRef {
        UserRef::Id(id)
    }

    pub fn name(username: impl Into<String>) -> UserRef {
        UserRef::Name(username.into())
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) {
        match self {
            UserRef::Id(id) => {
                put_varint(buf, id.0);
                put_str(buf, "");
            }
            UserRef::Name(name) => {
                put_varint(buf, 0);
                put_str(buf, name);
            }
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<UserRef, DecodeError> {
        let id = r.varint()?;
        let username = r.str()?;
        Ok(if id == 0 {
            UserRef::Name(username)
        } else {
            UserRef::Id(UserId(id))
        })
    }
}

/// A persistent per-user notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Increasing, never reused.
    pub id: u64,
    /// What it is about (a kind this version does not know stays
    /// `Unknown`).
    pub kind: NotificationKind,
    pub room: RoomId,
    pub room_name: String,
    /// Who caused it (0 for the system).
    pub actor: UserId,
    pub actor_name: String,
    pub at: Millis,
    pub read: bool,
}

impl Notification {
    pub(crate) fn encode(&self, buf: &mut BytesMut) {
        put_nested(buf, |b| {
            put_varint(b, self.id);
            b.put_u8(self.kind.code());
            put_varint(b, self.room.0);
            put_str(b, &self.room_name);
            put_varint(b, self.actor.0);
            put_str(b, &self.actor_name);
            put_varint(b, self.at);
            crate::wire::put_bool(b, self.read);
        });
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Notification, DecodeError> {
        let mut r = r.nested()?;
        Ok(Notification {
            id: r.varint()?,
            kind: NotificationKind::from_code(r.u8()?),
            room: RoomId(r.varint()?),
            room_name: r.str()?,
            actor: UserId(r.varint()?),
            actor_name: r.str()?,
            at: r.varint()?,
            read: r.bool()?,
        })
    }
}

/// A user with a time: a pending join request or a ban (USER_LIST).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub user: UserId,
    pub username: String,
    pub at: Millis,
}

impl UserEntry {
    pub(crate) fn encode(&self, buf: &mut BytesMut) {
        put_nested(buf, |b| {
            put_varint(b, self.user.0);
            put_str(b, &self.username);
            put_varint(b, self.at);
        });
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<UserEntry, DecodeError> {
        let mut r = r.nested()?;
        Ok(UserEntry {
            user: UserId(r.varint()?),
            username: r.str()?,
            at: r.varint()?,
        })
    }
}

/// A user's read marker in a room and what it leaves unread (SPEC.md
/// §5.9): READ_MARKER, READ_MARKER_MOVED, and the items of MY_ROOMS'
/// unread summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadState {
    pub room: RoomId,
    /// The seq of the last event the user has read; 0: none.
    pub read_seq: Seq,
    /// The room's messages after `read_seq` that others sent (deleted
    /// ones excluded).
    pub unread: u32,
}

impl ReadState {
    /// The fields, inline (READ_MARKER, READ_MARKER_MOVED).
    pub(crate) fn encode_fields(&self, buf: &mut BytesMut) {
        put_varint(buf, self.room.0);
        put_varint(buf, self.read_seq.0);
        put_varint(buf, self.unread as u64);
    }

    pub(crate) fn decode_fields(r: &mut Reader<'_>) -> Result<ReadState, DecodeError> {
        Ok(ReadState {
            room: RoomId(r.varint()?),
            read_seq: Seq(r.varint()?),
            unread: r.varint_u32()?,
        })
    }

    /// As a nested item (ROOM_LIST's `read_states`).
    pub(crate) fn encode(&self, buf: &mut BytesMut) {
        put_nested(buf, |b| self.encode_fields(b));
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<ReadState, DecodeError> {
        ReadState::decode_fields(&mut r.nested()?)
    }
}

/// What MY_ROOMS adds to its ROOM_LIST (appended fields, SPEC.md §5.3.5):
/// the caller's unread messages in all the listed rooms, and each room's
/// read state, in the order of `rooms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadSummary {
    pub total: u32,
    pub rooms: Vec<ReadState>,
}

/// One room of a user's room log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomLogItem {
    pub room: RoomInfo,
    pub first_joined_at: Millis,
    pub last_joined_at: Millis,
    /// `None` while still a member.
    pub left_at: Option<Millis>,
    /// How the last membership ended ([`LeaveReason::Active`] while a
    /// member).
    pub reason: LeaveReason,
    pub terminated: bool,
}

impl RoomLogItem {
    pub(crate) fn encode(&self, buf: &mut BytesMut) {
        put_nested(buf, |b| {
            put_room(b, &self.room);
            put_varint(b, self.first_joined_at);
            put_varint(b, self.last_joined_at);
            match self.left_at {
                None => b.put_u8(0),
                Some(at) => {
                    b.put_u8(1);
                    put_varint(b, at);
                }
            }
            b.put_u8(self.reason.code());
            crate::wire::put_bool(b, self.terminated);
        });
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<RoomLogItem, DecodeError> {
        let mut r = r.nested()?;
        let room = get_room(&mut r)?;
        let first_joined_at = r.varint()?;
        let last_joined_at = r.varint()?;
        let left_at = if r.bool()? { Some(r.varint()?) } else { None };
        Ok(RoomLogItem {
            room,
            first_joined_at,
            last_joined_at,
            left_at,
            reason: LeaveReason::from_code(r.u8()?),
            terminated: r.bool()?,
        })
    }
}

/// One entry of a room's audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditItem {
    pub id: u64,
    pub at: Millis,
    /// 0 for the system.
    pub actor: UserId,
    pub actor_name: String,
    /// Stable snake_case action name (SPEC.md §8.11).
    pub action: String,
    /// 0 when the action has no target user.
    pub target: UserId,
    pub target_name: String,
    pub detail: String,
}

impl AuditItem {
    pub(crate) fn encode(&self, buf: &mut BytesMut) {
        put_nested(buf, |b| {
            put_varint(b, self.id);
            put_varint(b, self.at);
            put_varint(b, self.actor.0);
            put_str(b, &self.actor_name);
            put_str(b, &self.action);
            put_varint(b, self.target.0);
            put_str(b, &self.target_name);
            put_str(b, &self.detail);
        });
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<AuditItem, DecodeError> {
        let mut r = r.nested()?;
        Ok(AuditItem {
            id: r.varint()?,
            at: r.varint()?,
            actor: UserId(r.varint()?),
            actor_name: r.str()?,
            action: r.str()?,
            target: UserId(r.varint()?),
            target_name: r.str()?,
            detail: r.str()?,
        })
    }
}
