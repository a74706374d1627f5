//! The JSON shapes of the API: snake_case, the canonical JSON form of
//! SPEC.md §11.3 where the protocol has one (room events, visibility,
//! roles). Conversions from the protocol types only; no rules here.

use confab_protocol::{EventBody, Member, Role, RoomEvent, RoomInfo, Visibility};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

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
    /// The session token (43 characters); also valid in the binary
    /// protocol's HELLO.
    pub token: String,
}

/// Public rooms are listed to everyone and open to join.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VisibilityJson {
    #[default]
    Public,
    Private,
}

impl From<Visibility> for VisibilityJson {
    fn from(v: Visibility) -> Self {
        match v {
            Visibility::Public => VisibilityJson::Public,
            Visibility::Private => VisibilityJson::Private,
        }
    }
}

impl From<VisibilityJson> for Visibility {
    fn from(v: VisibilityJson) -> Self {
        match v {
            VisibilityJson::Public => Visibility::Public,
            VisibilityJson::Private => Visibility::Private,
        }
    }
}

/// A member's role in a room.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleJson {
    Member,
    Admin,
    Owner,
}

impl From<Role> for RoleJson {
    fn from(r: Role) -> Self {
        match r {
            Role::Member => RoleJson::Member,
            Role::Admin => RoleJson::Admin,
            Role::Owner => RoleJson::Owner,
        }
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
}

/// A room.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomBody {
    pub id: u64,
    pub name: String,
    pub topic: String,
    pub visibility: VisibilityJson,
    /// The owner's user id.
    pub owner: u64,
    pub member_count: u32,
    /// Seq of the room's latest event.
    pub last_seq: u64,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
}

impl From<RoomInfo> for RoomBody {
    fn from(r: RoomInfo) -> Self {
        RoomBody {
            id: r.id.0,
            name: r.name,
            topic: r.topic,
            visibility: r.visibility.into(),
            owner: r.owner.0,
            member_count: r.member_count,
            last_seq: r.last_seq.0,
            created_at: r.created_at,
        }
    }
}

/// A page of rooms; `total` counts every match, so page with
/// `offset += rooms.length` while `offset < total`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomListBody {
    pub total: u32,
    pub rooms: Vec<RoomBody>,
}

/// `GET /api/rooms` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListRoomsQuery {
    /// Case-insensitive substring of the name or topic; empty or absent
    /// matches every room.
    pub q: Option<String>,
    /// Matches to skip (default 0).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295.0)]
    pub offset: Option<u32>,
    /// 1-200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// `GET /api/rooms/{id}/messages` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Return events with seq below this; absent or 0: from the newest.
    /// (Sequence numbers fit in 63 bits.)
    #[param(value_type = Option<i64>, minimum = 0)]
    pub before: Option<u64>,
    /// 1-200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// A room member.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberBody {
    pub user: u64,
    pub username: String,
    pub role: RoleJson,
    /// Whether the user has a connection open now.
    pub online: bool,
    /// Milliseconds since the Unix epoch.
    pub joined_at: u64,
}

impl From<Member> for MemberBody {
    fn from(m: Member) -> Self {
        MemberBody {
            user: m.user.0,
            username: m.username,
            role: m.role.into(),
            online: m.online,
            joined_at: m.joined_at,
        }
    }
}

/// A room's members in join order.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberListBody {
    pub room: u64,
    pub members: Vec<MemberBody>,
}

/// `POST /api/rooms/{id}/messages`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PostMessageBody {
    /// Not blank; at most the server's `max_message_len` bytes.
    #[schema(example = "hello")]
    pub text: String,
}

/// The message is stored durably.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageAckBody {
    pub room: u64,
    /// The message's sequence number in the room.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at: u64,
}

/// What happened, by kind (SPEC.md §5.5.2).
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBodyJson {
    Message {
        text: String,
    },
    MemberJoined,
    MemberLeft,
    RoomCreated {
        name: String,
        topic: String,
    },
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
            EventBody::Message { text } => EventBodyJson::Message { text },
            EventBody::MemberJoined => EventBodyJson::MemberJoined,
            EventBody::MemberLeft => EventBodyJson::MemberLeft,
            EventBody::RoomCreated { name, topic } => EventBodyJson::RoomCreated { name, topic },
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

/// A sequenced room event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventJson {
    pub room: u64,
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at: u64,
    /// The user who caused the event.
    pub actor: u64,
    pub actor_name: String,
    pub body: EventBodyJson,
}

impl From<RoomEvent> for EventJson {
    fn from(e: RoomEvent) -> Self {
        EventJson {
            room: e.room.0,
            seq: e.seq.0,
            at: e.at,
            actor: e.actor.0,
            actor_name: e.actor_name,
            body: e.body.into(),
        }
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
