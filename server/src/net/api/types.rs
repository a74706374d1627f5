//! The JSON shapes of the API: snake_case, the canonical JSON form of
//! SPEC.md §11.3 where the protocol has one (room events, visibility,
//! roles). Conversions from the protocol types only; no rules here. The
//! bodies that mirror a protocol type field for field (or variant for
//! variant) are declared with `mirror!` and `mirror_enum!`, which write the
//! conversion from the same list.

use confab_protocol::rich::span_kind;
use confab_protocol::{
    Attachment, AuditItem, Color, DirectWith, ErrorCode, EventBody, LeaveReason, Member,
    Notification, NotificationKind, Presence, Role, RoomEvent, RoomInfo, RoomLogItem, Span,
    Sticker, Style, UserEntry, UserId, UserRef, Visibility,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::Id63;

/// A JSON body that mirrors a protocol struct: each field is declared once,
/// with its type, its docs (for the OpenAPI schema) and how it is read from
/// the protocol value `$v`.
macro_rules! mirror {
    (
        $(#[$meta:meta])*
        pub struct $json:ident from $proto:ty as $v:ident {
            $( $(#[$fmeta:meta])* $field:ident: $ty:ty = $value:expr, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Serialize, ToSchema)]
        pub struct $json {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl From<$proto> for $json {
            fn from($v: $proto) -> Self {
                $json { $( $field: $value, )* }
            }
        }
    };
}

/// A JSON enum that mirrors a protocol enum variant for variant, in
/// snake_case: `<=>` converts both ways (the enum is read from requests
/// too); `from … else Unknown` converts from the protocol, whose values
/// newer than this build become `Unknown`.
macro_rules! mirror_enum {
    (
        $(#[$meta:meta])*
        pub enum $json:ident <=> $proto:ident { $( $(#[$vmeta:meta])* $variant:ident, )* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $json {
            $( $(#[$vmeta])* $variant, )*
        }

        impl From<$proto> for $json {
            fn from(v: $proto) -> Self {
                match v {
                    $( $proto::$variant => $json::$variant, )*
                }
            }
        }

        impl From<$json> for $proto {
            fn from(v: $json) -> Self {
                match v {
                    $( $json::$variant => $proto::$variant, )*
                }
            }
        }
    };
    (
        $(#[$meta:meta])*
        pub enum $json:ident from $proto:ident { $( $(#[$vmeta:meta])* $variant:ident, )* }
        $(#[$umeta:meta])*
        else $unknown:ident
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Serialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $json {
            $( $(#[$vmeta])* $variant, )*
            $(#[$umeta])*
            $unknown,
        }

        impl From<$proto> for $json {
            fn from(v: $proto) -> Self {
                match v {
                    $( $proto::$variant => $json::$variant, )*
                    $proto::$unknown(_) => $json::$unknown,
                }
            }
        }
    };
}

/// Default page size when `limit` is absent.
pub const DEFAULT_LIMIT: u32 = 50;

/// A list of protocol values as their JSON shapes.
pub fn list<T, J: From<T>>(items: Vec<T>) -> Vec<J> {
    items.into_iter().map(J::from).collect()
}

/// `POST /api/register` and `POST /api/login`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Credentials {
    /// 3-32 characters of `a-z 0-9 _ . -` after lowercasing (the server
    /// lowercases; the account's name is the lowercased form).
    #[schema(example = "alice", pattern = "^[A-Za-z0-9_.-]{3,32}$")]
    pub username: String,
    /// 8-256 bytes of UTF-8. (Bytes, not characters, so the limit is not
    /// a JSON Schema `minLength`/`maxLength`, which count characters.)
    #[schema(example = "secret123")]
    pub password: String,
}

/// A new session: send `token` as `Authorization: Bearer <token>`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionBody {
    pub user: u64,
    pub username: String,
    /// The session token (64 hex characters); also valid in the binary
    /// protocol's HELLO.
    pub token: String,
}

mirror_enum! {
    /// Public rooms are listed to everyone and open to join.
    #[derive(Default)]
    pub enum VisibilityJson <=> Visibility {
        #[default]
        Public,
        Private,
    }
}

mirror_enum! {
    /// A member's role in a room.
    pub enum RoleJson <=> Role {
        Member,
        Admin,
        Owner,
    }
}

/// `POST /api/rooms`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateRoomBody {
    /// 1-64 characters after trimming, no control characters.
    #[schema(example = "general")]
    pub name: String,
    /// At most 256 characters, no control characters.
    #[serde(default)]
    #[schema(example = "anything goes")]
    pub topic: String,
    #[serde(default)]
    pub visibility: VisibilityJson,
    /// Users who become members at creation besides the caller (a group
    /// chat): at most 50, each named once, not the caller
    /// (TOO_MANY_MEMBERS, DUPLICATE_MEMBER, CANNOT_TARGET_SELF,
    /// NO_SUCH_USER).
    #[serde(default)]
    pub members: Vec<UserRefBody>,
}

mirror! {
    /// A room.
    pub struct RoomBody from RoomInfo as r {
        id: u64 = r.id.0,
        name: String = r.name,
        topic: String = r.topic,
        visibility: VisibilityJson = r.visibility.into(),
        /// The owner's user id.
        owner: u64 = r.owner.0,
        member_count: u32 = r.member_count,
        /// Seq of the room's latest event.
        last_seq: u64 = r.last_seq.0,
        /// Milliseconds since the Unix epoch.
        created_at: u64 = r.created_at,
        /// For a direct room (`POST /api/direct`): the other of its two
        /// users, as the caller sees it (the room's `name` is theirs);
        /// absent for every other room.
        #[serde(skip_serializing_if = "Option::is_none")]
        direct_with: Option<DirectWithBody> = r.direct_with.map(Into::into),
    }
}

mirror! {
    /// The other user of a direct room.
    pub struct DirectWithBody from DirectWith as d {
        user: u64 = d.user.0,
        username: String = d.username,
    }
}

/// A page of rooms; `total` counts every match, so page with
/// `offset += rooms.length` while `offset < total`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomListBody {
    pub total: u32,
    pub rooms: Vec<RoomBody>,
    /// `GET /api/me/rooms` only: the caller's unread messages in all
    /// these rooms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread_total: Option<u32>,
    /// `GET /api/me/rooms` only: each room's read marker and unread
    /// count, in the order of `rooms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_states: Option<Vec<ReadStateBody>>,
}

/// A read marker and the unread count it leaves (messages after it that
/// others sent, deleted ones excluded).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadStateBody {
    pub room: u64,
    /// The seq of the last event the user has read (0: none).
    pub read_seq: u64,
    pub unread: u32,
}

impl From<confab_protocol::ReadState> for ReadStateBody {
    fn from(s: confab_protocol::ReadState) -> Self {
        ReadStateBody {
            room: s.room.0,
            read_seq: s.read_seq.0,
            unread: s.unread,
        }
    }
}

/// `PUT /api/rooms/{id}/read-marker`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReadMarkerBody {
    /// The seq of the last event read: at most the room's last seq. A
    /// value below the current marker changes nothing.
    #[schema(value_type = i64, minimum = 0, example = 42)]
    pub seq: Id63,
}

/// `GET /api/rooms` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListRoomsQuery {
    /// Case-insensitive substring of the name or topic; empty or absent
    /// matches every room. With `exact=true`: the whole room name.
    pub q: Option<String>,
    /// Match `q` against whole room names only (case-insensitively,
    /// ignoring white space around it). Room names are not unique: several
    /// rooms may match. Default false.
    pub exact: Option<bool>,
    /// Matches to skip (default 0).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295.0)]
    pub offset: Option<u32>,
    /// 1-200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// `before` and `limit`: a page of a list, newest first (a room's history,
/// its audit trail, the caller's notifications).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items below this: events with a lower `seq` (history), entries or
    /// notifications with a lower `id`; absent or 0: from the newest.
    /// (Sequence numbers and ids fit in 63 bits.)
    #[param(value_type = Option<i64>, minimum = 0)]
    pub before: Option<Id63>,
    /// 1-200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

impl PageQuery {
    /// `before`; absent is 0, from the newest.
    pub fn before(&self) -> u64 {
        self.before.map_or(0, Id63::get)
    }
}

mirror! {
    /// A room member.
    pub struct MemberBody from Member as m {
        user: u64 = m.user.0,
        username: String = m.username,
        role: RoleJson = m.role.into(),
        /// Whether the user has a connection open now.
        online: bool = m.online,
        /// Milliseconds since the Unix epoch.
        joined_at: u64 = m.joined_at,
        /// online, away or offline (SPEC.md §5.10).
        presence: PresenceJson = m.presence.unwrap_or(Presence::Offline).into(),
    }
}

mirror_enum! {
    /// A user's presence (SPEC.md §5.10).
    pub enum PresenceJson from Presence {
        /// No connection open.
        Offline,
        /// A connection open, not away.
        Online,
        /// A connection open, and the user set away.
        Away,
    }
    /// A presence newer than this server build.
    else Unknown
}

/// `PUT /api/me/presence`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PresenceBody {
    /// `true`: away (SET_AWAY); `false`: back.
    pub away: bool,
}

/// A room's members in join order.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberListBody {
    pub room: u64,
    pub members: Vec<MemberBody>,
}

/// `POST /api/rooms/{id}/messages`: a text message, optionally
/// formatted, or a sticker.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PostMessageBody {
    /// Not blank; at most the server's `max_message_len` bytes. Empty (or
    /// absent) for a sticker.
    #[serde(default)]
    #[schema(example = "hello")]
    pub text: String,
    /// Formatting over `text` (SPEC.md §5.11.1); none when absent.
    #[serde(default)]
    pub spans: Vec<SpanBody>,
    /// The id of a sticker of `GET /api/stickers`: the message is that
    /// sticker (then `text` is empty and `spans` absent).
    #[serde(default)]
    #[schema(example = json!(null))]
    pub sticker: Option<String>,
    /// Ids of files the sender uploaded to this room (`POST
    /// /api/rooms/{id}/files`) and attaches, at most 10 (SPEC.md §13.5);
    /// `text` may then be empty.
    #[serde(default)]
    pub attachments: Vec<u64>,
}

/// `PATCH /api/rooms/{id}/messages/{seq}`: the new text and spans replace
/// the message's.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EditMessageBody {
    /// The new text: not blank; at most the server's `max_message_len`
    /// bytes.
    #[schema(example = "hello, world")]
    pub text: String,
    /// Formatting over the new `text`; none when absent.
    #[serde(default)]
    pub spans: Vec<SpanBody>,
}

/// A formatting span (SPEC.md §5.11.1): `kind` over the bytes
/// `start..end` of the message's text. Offsets count UTF-8 bytes and fall
/// on character boundaries; spans of one kind never overlap and a
/// `code_block` overlaps no other span; at most 64 per message.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SpanBody {
    /// First byte of the range.
    pub start: u32,
    /// One past its last byte.
    pub end: u32,
    /// `bold`, `italic`, `strikethrough`, `code`, `code_block`, `link` or
    /// `color`. Another is INVALID_SPANS.
    #[schema(example = "bold")]
    pub kind: String,
    /// A `link`'s target: an `http`, `https` or `mailto` URL (else
    /// INVALID_LINK). Only on links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A `color`'s colour, one of the 16 of the palette: `black`, `red`,
    /// `green`, `yellow`, `blue`, `magenta`, `cyan`, `white` and their
    /// `bright_` forms (another is UNKNOWN_COLOR). Only on colours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

impl From<Span> for SpanBody {
    fn from(s: Span) -> Self {
        let kind = s
            .style
            .name()
            .map_or_else(|| s.style.kind().to_string(), str::to_owned);
        let (url, color) = match s.style {
            Style::Link(url) => (Some(url), None),
            Style::Color(c) => (
                None,
                Some(c.name().map_or_else(|| c.code().to_string(), str::to_owned)),
            ),
            _ => (None, None),
        };
        SpanBody {
            start: s.start,
            end: s.end,
            kind,
            url,
            color,
        }
    }
}

impl SpanBody {
    /// The protocol's span. Names are the protocol's; a name it does not
    /// have is refused with the code the session would give the span.
    pub fn into_span(self) -> Result<Span, ApiError> {
        let invalid = |m: String| ApiError::code(ErrorCode::InvalidSpans, m);
        let kind = span_kind::from_name(&self.kind)
            .ok_or_else(|| invalid(format!("unknown span kind {:?}", self.kind)))?;
        let style = match (kind, self.url, self.color) {
            (span_kind::LINK, Some(url), None) => Style::Link(url),
            (span_kind::COLOR, None, Some(name)) => {
                Style::Color(Color::from_name(&name).ok_or_else(|| {
                    ApiError::code(ErrorCode::UnknownColor, format!("unknown colour {name:?}"))
                })?)
            }
            (span_kind::LINK, None, _) => return Err(invalid("a link span needs its url".into())),
            (span_kind::COLOR, _, None) => {
                return Err(invalid("a color span needs its color".into()))
            }
            (_, Some(_), _) => return Err(invalid("only link spans have a url".into())),
            (_, _, Some(_)) => return Err(invalid("only color spans have a color".into())),
            (span_kind::BOLD, None, None) => Style::Bold,
            (span_kind::ITALIC, None, None) => Style::Italic,
            (span_kind::STRIKETHROUGH, None, None) => Style::Strikethrough,
            (span_kind::CODE, None, None) => Style::Code,
            _ => Style::CodeBlock,
        };
        Ok(Span {
            start: self.start,
            end: self.end,
            style,
        })
    }
}

/// A list of JSON spans as the protocol's.
pub fn spans_from(spans: Vec<SpanBody>) -> Result<Vec<Span>, ApiError> {
    spans.into_iter().map(SpanBody::into_span).collect()
}

mirror! {
    /// A sticker of the server's catalogue (SPEC.md §5.11.3).
    pub struct StickerBody from Sticker as s {
        /// What a message names (`sticker`).
        #[schema(example = "tableflip")]
        id: String = s.id,
        #[schema(example = "Table flip")]
        name: String = s.name,
        /// The ASCII art, lines separated by `\n`.
        art: String = s.art,
    }
}

/// `GET /api/stickers`: the catalogue, in id order.
#[derive(Debug, Serialize, ToSchema)]
pub struct StickerListBody {
    pub stickers: Vec<StickerBody>,
}

/// `POST /api/rooms/{id}/typing`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TypingBody {
    /// `true`: the caller is typing (TYPING_START; renew it every few
    /// seconds while typing); `false`: stopped (TYPING_STOP).
    pub typing: bool,
}

/// The message is stored durably.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageAckBody {
    pub room: u64,
    /// The message's sequence number in the room (for an edit or a
    /// delete: that of its MESSAGE_EDITED or MESSAGE_DELETED event).
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at: u64,
}

/// A file a message carries (SPEC.md §13.5).
#[derive(Debug, Serialize, ToSchema)]
pub struct AttachmentBody {
    /// The file's id: `GET /api/files/{id}` serves it to the room's
    /// members, `GET /api/files/{id}/url` gives a signed link.
    pub id: u64,
    pub name: String,
    #[schema(example = "image/png")]
    pub content_type: String,
    /// Bytes.
    pub size: u64,
    /// Pixels, for images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

impl From<Attachment> for AttachmentBody {
    fn from(a: Attachment) -> Self {
        AttachmentBody {
            id: a.id,
            name: a.name,
            content_type: a.content_type,
            size: a.size,
            width: a.width,
            height: a.height,
        }
    }
}

/// What happened, by kind (SPEC.md §5.5.2).
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBodyJson {
    Message {
        /// The text; for a sticker, its fallback `:id:`.
        text: String,
        /// When the sender last edited it (milliseconds since the Unix
        /// epoch); absent if never edited.
        #[serde(skip_serializing_if = "Option::is_none")]
        edited_at: Option<u64>,
        /// Formatting over `text`; absent when none.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        spans: Vec<SpanBody>,
        /// The sticker the message is; absent for a text message.
        #[serde(skip_serializing_if = "Option::is_none")]
        sticker: Option<String>,
        /// The files it carries (`GET /api/files/{id}`); absent when none.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<AttachmentBody>,
    },
    /// `actor` (the sender) replaced the text of message `target_seq`
    /// (with `spans`, absent when none). In history `text` is empty and
    /// `spans` absent: the message itself has its latest text.
    MessageEdited {
        target_seq: u64,
        text: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        spans: Vec<SpanBody>,
    },
    /// `actor` (the sender or an admin) deleted message `target_seq`.
    MessageDeleted {
        target_seq: u64,
    },
    /// A deleted message, in history: `actor` sent it at `at`.
    Tombstone,
    MemberJoined,
    MemberLeft,
    RoomCreated {
        name: String,
        topic: String,
    },
    /// `actor` (an admin) removed `target` from the room.
    MemberKicked {
        target: u64,
        target_name: String,
    },
    /// `actor` (an admin) banned `target`, removing them if a member.
    MemberBanned {
        target: u64,
        target_name: String,
    },
    /// `target`'s role became `role`; `actor` is 0 when it changed by
    /// succession (SPEC.md §8.5).
    RoleChanged {
        target: u64,
        target_name: String,
        role: RoleJson,
    },
    /// `actor` (an admin) set the room's name and topic.
    RoomUpdated {
        name: String,
        topic: String,
    },
    /// The room terminated: its last event (SPEC.md §8.6).
    RoomTerminated,
    /// A kind this API does not spell out: its number and its fields as
    /// encoded on the wire (SPEC.md §5.5), in hex.
    Other {
        code: u8,
        data_hex: String,
    },
}

impl From<EventBody> for EventBodyJson {
    fn from(b: EventBody) -> Self {
        match b {
            EventBody::Message {
                text,
                edited_at,
                spans,
                sticker,
                attachments,
            } => EventBodyJson::Message {
                text,
                edited_at,
                spans: list(spans),
                sticker,
                attachments: list(attachments),
            },
            EventBody::MessageEdited {
                target,
                text,
                spans,
            } => EventBodyJson::MessageEdited {
                target_seq: target.0,
                text,
                spans: list(spans),
            },
            EventBody::MessageDeleted { target } => EventBodyJson::MessageDeleted {
                target_seq: target.0,
            },
            EventBody::Tombstone => EventBodyJson::Tombstone,
            EventBody::MemberJoined => EventBodyJson::MemberJoined,
            EventBody::MemberLeft => EventBodyJson::MemberLeft,
            EventBody::RoomCreated { name, topic } => EventBodyJson::RoomCreated { name, topic },
            EventBody::MemberKicked {
                target,
                target_name,
            } => EventBodyJson::MemberKicked {
                target: target.0,
                target_name,
            },
            EventBody::MemberBanned {
                target,
                target_name,
            } => EventBodyJson::MemberBanned {
                target: target.0,
                target_name,
            },
            EventBody::RoleChanged {
                target,
                target_name,
                role,
            } => EventBodyJson::RoleChanged {
                target: target.0,
                target_name,
                role: role.into(),
            },
            EventBody::RoomUpdated { name, topic } => EventBodyJson::RoomUpdated { name, topic },
            EventBody::RoomTerminated => EventBodyJson::RoomTerminated,
            other => {
                let mut fields = bytes::BytesMut::new();
                other.encode_fields(&mut fields);
                EventBodyJson::Other {
                    code: other.kind(),
                    data_hex: hex::encode(&fields),
                }
            }
        }
    }
}

mirror! {
    /// A sequenced room event.
    pub struct EventJson from RoomEvent as e {
        room: u64 = e.room.0,
        seq: u64 = e.seq.0,
        /// Milliseconds since the Unix epoch.
        at: u64 = e.at,
        /// The user who caused the event.
        actor: u64 = e.actor.0,
        actor_name: String = e.actor_name,
        body: EventBodyJson = e.body.into(),
    }
}

/// A page of history, newest first. Page back with
/// `before` = the smallest `seq` of this page while `has_more`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryBody {
    pub room: u64,
    pub has_more: bool,
    pub events: Vec<EventJson>,
}

/// `GET /healthz`, `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusBody {
    #[schema(example = "ok")]
    pub status: String,
}

// --- Room governance (SPEC.md §8) -------------------------------------------

/// Names another user: `{"user_id": …}` or `{"username": …}`, exactly one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged, try_from = "UserRefFields")]
pub enum UserRefBody {
    ById(UserById),
    ByName(UserByName),
}

/// A user named by id.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserById {
    #[schema(example = 2)]
    pub user_id: u64,
}

/// A user named by username (lowercased by the server).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserByName {
    #[schema(example = "bob")]
    pub username: String,
}

/// What [`UserRefBody`] is read from, for clear messages when the body
/// names no user, two, or one with a value of the wrong type (null too).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRefFields {
    #[serde(default, deserialize_with = "present")]
    user_id: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    username: Option<serde_json::Value>,
}

/// A field that is there, `null` included (a plain `Option` reads `null`
/// as absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

impl TryFrom<UserRefFields> for UserRefBody {
    type Error = &'static str;

    fn try_from(f: UserRefFields) -> Result<UserRefBody, &'static str> {
        use serde_json::Value;
        match (f.user_id, f.username) {
            (Some(id), None) => match id.as_u64() {
                Some(user_id) => Ok(UserRefBody::ById(UserById { user_id })),
                None => Err("user_id must be a user id (a non-negative integer)"),
            },
            (None, Some(Value::String(username))) => {
                Ok(UserRefBody::ByName(UserByName { username }))
            }
            (None, Some(_)) => Err("username must be a string"),
            _ => Err("name the user with either user_id or username"),
        }
    }
}

impl From<UserRefBody> for UserRef {
    fn from(b: UserRefBody) -> UserRef {
        match b {
            UserRefBody::ById(u) => UserRef::id(UserId(u.user_id)),
            UserRefBody::ByName(u) => UserRef::name(u.username),
        }
    }
}

/// `PUT /api/rooms/{id}/members/{user_id}/role`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SetRoleBody {
    /// `admin` or `member`; `owner` is refused with INVALID_ROLE
    /// (ownership passes only by succession).
    pub role: RoleJson,
}

/// `PATCH /api/rooms/{id}`: the fields to change; at least one.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateRoomBody {
    /// 1-64 characters after trimming, no control characters.
    #[schema(example = "general")]
    pub name: Option<String>,
    /// At most 256 characters, no control characters.
    #[schema(example = "anything goes")]
    pub topic: Option<String>,
}

mirror! {
    /// A user with a time: a pending join request (`at` = when asked) or a
    /// ban (`at` = when banned).
    pub struct UserEntryBody from UserEntry as u {
        user: u64 = u.user.0,
        username: String = u.username,
        /// Milliseconds since the Unix epoch.
        at: u64 = u.at,
    }
}

/// A room's pending join requests (oldest first) or bans.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserListBody {
    pub room: u64,
    pub users: Vec<UserEntryBody>,
}

mirror_enum! {
    /// What a notification is about (SPEC.md §5.8.1).
    pub enum NotificationKindJson from NotificationKind {
        /// `actor` invited you to `room`.
        Invited,
        /// `actor` asks to join `room`, which you administer.
        JoinRequest,
        RequestApproved,
        RequestDenied,
        Kicked,
        Banned,
        Unbanned,
        /// Your role in `room` changed (see the room's `role_changed` event).
        RoleChanged,
        /// `room` terminated and you, its last member, were removed.
        RoomTerminated,
        /// `actor` mentioned you (`@username`) in a message in `room`, sent
        /// at `at`.
        Mentioned,
    }
    /// A kind newer than this server build.
    else Unknown
}

mirror! {
    /// A persistent notification of the caller's.
    pub struct NotificationBody from Notification as n {
        /// Increasing, never reused; page and mark read by it.
        id: u64 = n.id,
        kind: NotificationKindJson = n.kind.into(),
        room: u64 = n.room.0,
        /// The room's name when the notification was created.
        room_name: String = n.room_name,
        /// Who caused it; 0 for the server (succession, termination).
        actor: u64 = n.actor.0,
        actor_name: String = n.actor_name,
        /// Milliseconds since the Unix epoch.
        at: u64 = n.at,
        read: bool = n.read,
    }
}

/// A page of notifications, newest first. Page back with `before` = the
/// smallest `id` of this page while `has_more`.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationListBody {
    /// All the caller's unread notifications, not only this page's (the
    /// badge count).
    pub unread: u32,
    pub has_more: bool,
    pub items: Vec<NotificationBody>,
}

/// `GET /api/me/notifications`: besides the page ([`PageQuery`]).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UnreadOnlyQuery {
    /// Only notifications not yet marked read (default false).
    pub unread_only: Option<bool>,
}

/// `POST /api/me/notifications/read`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MarkReadBody {
    /// Marks every notification with `id <= up_to` read.
    #[schema(value_type = i64, minimum = 0, example = 17)]
    pub up_to: Id63,
}

/// The caller's unread notifications.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnreadCountBody {
    pub unread: u32,
}

mirror_enum! {
    /// How the caller's last membership of a room ended.
    pub enum LeaveReasonJson from LeaveReason {
        /// Still a member.
        Active,
        Left,
        Kicked,
        Banned,
        /// Removed as the room's last, non-admin member when it terminated.
        Terminated,
    }
    /// A reason newer than this server build.
    else Unknown
}

mirror! {
    /// One room of the caller's room log.
    pub struct RoomLogItemBody from RoomLogItem as i {
        /// The room as it is now (as it was, for a terminated room).
        room: RoomBody = i.room.into(),
        /// Milliseconds since the Unix epoch.
        first_joined_at: u64 = i.first_joined_at,
        last_joined_at: u64 = i.last_joined_at,
        /// When the last membership ended; null while a member.
        left_at: Option<u64> = i.left_at,
        reason: LeaveReasonJson = i.reason.into(),
        terminated: bool = i.terminated,
    }
}

/// The rooms the caller has been a member of, most recently joined first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomLogBody {
    pub items: Vec<RoomLogItemBody>,
}

mirror! {
    /// One entry of a room's audit trail.
    pub struct AuditItemBody from AuditItem as a {
        id: u64 = a.id,
        /// Milliseconds since the Unix epoch.
        at: u64 = a.at,
        /// Who did it; 0 for the server.
        actor: u64 = a.actor.0,
        actor_name: String = a.actor_name,
        /// Stable snake_case name (SPEC.md §8.11), e.g. `member_kicked`.
        #[schema(example = "member_kicked")]
        action: String = a.action,
        /// The user acted upon; 0 when none.
        target: u64 = a.target.0,
        target_name: String = a.target_name,
        /// Free-form, for people; do not parse.
        detail: String = a.detail,
    }
}

/// A page of a room's audit trail, newest first. Page back with `before` =
/// the smallest `id` of this page while `has_more`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPageBody {
    pub room: u64,
    pub has_more: bool,
    pub items: Vec<AuditItemBody>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(b: EventBody) -> serde_json::Value {
        serde_json::to_value(EventBodyJson::from(b)).unwrap()
    }

    #[test]
    fn governance_events_are_spelled_out_by_name() {
        let (target, target_name) = (UserId(7), "bob".to_owned());
        assert_eq!(
            body(EventBody::MemberKicked {
                target,
                target_name: target_name.clone()
            }),
            json!({"kind": "member_kicked", "target": 7, "target_name": "bob"})
        );
        assert_eq!(
            body(EventBody::MemberBanned {
                target,
                target_name: target_name.clone()
            }),
            json!({"kind": "member_banned", "target": 7, "target_name": "bob"})
        );
        assert_eq!(
            body(EventBody::RoleChanged {
                target,
                target_name,
                role: Role::Owner
            }),
            json!({"kind": "role_changed", "target": 7, "target_name": "bob", "role": "owner"})
        );
        assert_eq!(
            body(EventBody::RoomUpdated {
                name: "n".into(),
                topic: "t".into()
            }),
            json!({"kind": "room_updated", "name": "n", "topic": "t"})
        );
        assert_eq!(
            body(EventBody::RoomTerminated),
            json!({"kind": "room_terminated"})
        );
        assert_eq!(
            body(EventBody::Unknown {
                kind: 42,
                data: vec![1, 2]
            }),
            json!({"kind": "other", "code": 42, "data_hex": "0102"})
        );
    }

    #[test]
    fn notification_kinds_and_leave_reasons_have_their_spec_names() {
        // The JSON names are the protocol's own (SPEC.md §12.3).
        for k in (1..=11).map(NotificationKind::from_code) {
            let json = serde_json::to_value(NotificationKindJson::from(k)).unwrap();
            assert_eq!(json, k.name().unwrap_or("unknown"), "kind {}", k.code());
        }
        for r in (0..=5).map(LeaveReason::from_code) {
            let json = serde_json::to_value(LeaveReasonJson::from(r)).unwrap();
            assert_eq!(json, r.name().unwrap_or("unknown"), "reason {}", r.code());
        }
    }
}

mirror! {
    /// A user's profile (SPEC.md §5.2.5).
    pub struct ProfileBody from confab_protocol::Profile as p {
        user: u64 = p.user.0,
        username: String = p.username,
        /// Shown instead of the username where set.
        display_name: Option<String> = p.display_name,
        /// At most 500 characters; empty when none was written.
        bio: String = p.bio,
        /// Only in the caller's own profile; null in everyone else's.
        email: Option<String> = p.email,
        /// Reserved for an uploaded image's file id; always null from
        /// this server.
        avatar: Option<u64> = p.avatar,
    }
}

/// `PUT /api/me/profile`: the caller's whole profile, which replaces the
/// stored one (a field left out or null is cleared).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdateBody {
    /// 1-64 characters after trimming white space, no control characters;
    /// null or absent: none (the username is shown).
    #[schema(example = "Alice Liddell")]
    #[serde(default)]
    pub display_name: Option<String>,
    /// At most 500 characters (Unicode scalar values); line feeds allowed,
    /// no other control characters.
    #[schema(example = "Curiouser and curiouser.")]
    #[serde(default)]
    pub bio: String,
    /// An address like `name@example.org` (SPEC.md §5.2.5), shown to no
    /// one but the caller; null or absent: none.
    #[schema(example = "alice@example.org")]
    #[serde(default)]
    pub email: Option<String>,
}

/// `POST /api/me/password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeBody {
    /// The password now.
    #[schema(example = "secret123")]
    pub current_password: String,
    /// 8-256 bytes of UTF-8.
    #[schema(example = "new-secret-456")]
    pub new_password: String,
}
