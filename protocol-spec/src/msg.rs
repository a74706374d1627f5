//! Typed payloads (SPEC.md §5): [`Request`]s from clients and
//! [`ServerMsg`]s (responses and events) from servers, each with an encoder
//! that writes a whole frame and a decoder from a [`RawFrame`].

use bytes::{BufMut, BytesMut};

use crate::frame::{begin_frame, end_frame, kind, RawFrame};
use crate::ids::{Millis, RoomId, Seq, UserId};
use crate::wire::{put_bool, put_nested, put_opt_str, put_str, put_varint, Reader};
use crate::DecodeError;

/// How many list elements a decoder reserves room for up front.
///
/// [`Reader::count`] bounds a list's count by the bytes left in the payload,
/// but one byte of input can become a ~100-byte element (a [`RoomInfo`] or
/// [`RoomEvent`]), so reserving `count` elements let a forged count make the
/// decoder allocate up to ~100x the frame's size before failing on the first
/// element. (Fix: reserve at most this many; the vector grows as elements
/// actually decode.)
const MAX_PREALLOC: usize = 64;

fn prealloc(count: usize) -> usize {
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
    fn decode(v: u8) -> Result<Self, DecodeError> {
        match v {
            0 => Ok(Visibility::Public),
            1 => Ok(Visibility::Private),
            v => Err(DecodeError::InvalidValue {
                field: "visibility",
                value: v as u64,
            }),
        }
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
    fn decode(v: u8) -> Result<Self, DecodeError> {
        match v {
            0 => Ok(Role::Member),
            1 => Ok(Role::Admin),
            2 => Ok(Role::Owner),
            v => Err(DecodeError::InvalidValue {
                field: "role",
                value: v as u64,
            }),
        }
    }

    /// Owners are admins too.
    pub fn is_admin(self) -> bool {
        self >= Role::Admin
    }
}

/// A position to resume a room's event stream from (in HELLO).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePoint {
    pub room: RoomId,
    /// The last sequence number the client has seen.
    pub after: Seq,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub version: u16,
    /// Free-form client name and version, for logs.
    pub client: String,
    /// A session token to authenticate this connection with.
    pub token: Option<String>,
    /// Rooms whose missed events the client wants replayed.
    pub resume: Vec<ResumePoint>,
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
        password: String,
    },
    Login {
        username: String,
        password: String,
    },
    Logout,
    CreateRoom {
        name: String,
        topic: String,
        visibility: Visibility,
    },
    ListRooms {
        query: String,
        offset: u32,
        limit: u32,
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
    SendMessage {
        room: RoomId,
        body: String,
    },
    /// Events with `seq < before` (0 = from the newest), newest first.
    History {
        room: RoomId,
        before: Seq,
        limit: u32,
    },
    MyRooms,
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
                put_str(buf, password);
            }
            Request::Logout | Request::MyRooms => {}
            Request::CreateRoom {
                name,
                topic,
                visibility,
            } => {
                put_str(buf, name);
                put_str(buf, topic);
                buf.put_u8(*visibility as u8);
            }
            Request::ListRooms {
                query,
                offset,
                limit,
            } => {
                put_str(buf, query);
                put_varint(buf, *offset as u64);
                put_varint(buf, *limit as u64);
            }
            Request::JoinRoom { room }
            | Request::LeaveRoom { room }
            | Request::ListMembers { room } => put_varint(buf, room.0),
            Request::SendMessage { room, body } => {
                put_varint(buf, room.0);
                put_str(buf, body);
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
                password: r.str()?,
            },
            kind::LOGIN => Request::Login {
                username: r.str()?,
                password: r.str()?,
            },
            kind::LOGOUT => Request::Logout,
            kind::CREATE_ROOM => Request::CreateRoom {
                name: r.str()?,
                topic: r.str()?,
                visibility: Visibility::decode(r.u8()?)?,
            },
            kind::LIST_ROOMS => Request::ListRooms {
                query: r.str()?,
                offset: r.varint_u32()?,
                limit: r.varint_u32()?,
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
            },
            kind::HISTORY => Request::History {
                room: RoomId(r.varint()?),
                before: Seq(r.varint()?),
                limit: r.varint_u32()?,
            },
            kind::MY_ROOMS => Request::MyRooms,
            other => return Err(DecodeError::UnknownFrameType(other)),
        };
        Ok(req)
    }
}

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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    pub user: UserId,
    pub username: String,
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user: UserId,
    pub username: String,
    pub role: Role,
    /// Whether the member has at least one connection open now.
    pub online: bool,
    pub joined_at: Millis,
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
    /// kind 1
    Message { text: String },
    /// kind 2: `actor` joined.
    MemberJoined,
    /// kind 3: `actor` left.
    MemberLeft,
    /// kind 4: the room was created by `actor`.
    RoomCreated { name: String, topic: String },
    /// A kind this decoder does not know; the raw bytes are kept. Only
    /// meaningful with a `kind` outside `1..=4`: one of those would encode to
    /// bytes that decode as the known kind instead.
    Unknown { kind: u8, data: Vec<u8> },
}

pub mod event_kind {
    pub const MESSAGE: u8 = 1;
    pub const MEMBER_JOINED: u8 = 2;
    pub const MEMBER_LEFT: u8 = 3;
    pub const ROOM_CREATED: u8 = 4;
}

impl EventBody {
    pub fn kind(&self) -> u8 {
        match self {
            EventBody::Message { .. } => event_kind::MESSAGE,
            EventBody::MemberJoined => event_kind::MEMBER_JOINED,
            EventBody::MemberLeft => event_kind::MEMBER_LEFT,
            EventBody::RoomCreated { .. } => event_kind::ROOM_CREATED,
            EventBody::Unknown { kind, .. } => *kind,
        }
    }

    /// Writes the kind-specific fields (after the kind byte).
    pub fn encode_fields(&self, buf: &mut BytesMut) {
        match self {
            EventBody::Message { text } => put_str(buf, text),
            EventBody::MemberJoined | EventBody::MemberLeft => {}
            EventBody::RoomCreated { name, topic } => {
                put_str(buf, name);
                put_str(buf, topic);
            }
            EventBody::Unknown { data, .. } => buf.put_slice(data),
        }
    }

    /// Decodes the kind-specific fields of an event of kind `kind`.
    pub fn decode_fields(kind: u8, r: &mut Reader<'_>) -> Result<EventBody, DecodeError> {
        Ok(match kind {
            event_kind::MESSAGE => EventBody::Message { text: r.str()? },
            event_kind::MEMBER_JOINED => EventBody::MemberJoined,
            event_kind::MEMBER_LEFT => EventBody::MemberLeft,
            event_kind::ROOM_CREATED => EventBody::RoomCreated {
                name: r.str()?,
                topic: r.str()?,
            },
            other => EventBody::Unknown {
                kind: other,
                data: r.bytes(r.remaining())?.to_vec(),
            },
        })
    }
}

impl RoomEvent {
    fn encode_fields(&self, buf: &mut BytesMut) {
        put_varint(buf, self.room.0);
        put_varint(buf, self.seq.0);
        put_varint(buf, self.at);
        put_varint(buf, self.actor.0);
        put_str(buf, &self.actor_name);
        buf.put_u8(self.body.kind());
        self.body.encode_fields(buf);
    }

    fn decode_fields(r: &mut Reader<'_>) -> Result<RoomEvent, DecodeError> {
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

    /// Encodes this event as a whole EVENT frame (request id 0). The server
    /// calls this once per event and shares the bytes among all recipients.
    pub fn encode_frame(&self, buf: &mut BytesMut) {
        let start = begin_frame(buf, kind::EVENT, 0);
        self.encode_fields(buf);
        end_frame(buf, start);
    }
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
    },
    /// Reply to REGISTER and LOGIN: the connection is now authenticated.
    Session {
        user: UserId,
        username: String,
        token: String,
    },
    Room(RoomInfo),
    RoomList {
        rooms: Vec<RoomInfo>,
        total: u32,
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
}

fn put_room(buf: &mut BytesMut, r: &RoomInfo) {
    put_nested(buf, |b| {
        put_varint(b, r.id.0);
        put_str(b, &r.name);
        put_str(b, &r.topic);
        b.put_u8(r.visibility as u8);
        put_varint(b, r.owner.0);
        put_varint(b, r.member_count as u64);
        put_varint(b, r.last_seq.0);
        put_varint(b, r.created_at);
    });
}

fn get_room(r: &mut Reader<'_>) -> Result<RoomInfo, DecodeError> {
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
    })
}

impl ServerMsg {
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
            }
            ServerMsg::Pong { nonce } => put_varint(buf, *nonce),
            ServerMsg::Ok => {}
            ServerMsg::Error { code, message } | ServerMsg::Close { code, message } => {
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
                put_str(buf, token);
            }
            ServerMsg::Room(r) => put_room(buf, r),
            ServerMsg::RoomList { rooms, total } => {
                put_varint(buf, *total as u64);
                put_varint(buf, rooms.len() as u64);
                for r in rooms {
                    put_room(buf, r);
                }
            }
            ServerMsg::MemberList { room, members } => {
                put_varint(buf, room.0);
                put_varint(buf, members.len() as u64);
                for m in members {
                    put_nested(buf, |b| {
                        put_varint(b, m.user.0);
                        put_str(b, &m.username);
                        b.put_u8(m.role as u8);
                        put_bool(b, m.online);
                        put_varint(b, m.joined_at);
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
                ServerMsg::Welcome(Welcome {
                    version,
                    server,
                    max_frame_len,
                    max_message_len,
                    heartbeat_ms,
                    session,
                })
            }
            kind::PONG => ServerMsg::Pong { nonce: r.varint()? },
            kind::OK => ServerMsg::Ok,
            kind::ERROR => ServerMsg::Error {
                code: r.varint_u16()?,
                message: r.str()?,
            },
            kind::CLOSE => ServerMsg::Close {
                code: r.varint_u16()?,
                message: r.str()?,
            },
            kind::SESSION => ServerMsg::Session {
                user: UserId(r.varint()?),
                username: r.str()?,
                token: r.str()?,
            },
            kind::ROOM => ServerMsg::Room(get_room(&mut r)?),
            kind::ROOM_LIST => {
                let total = r.varint_u32()?;
                let n = r.count()?;
                let mut rooms = Vec::with_capacity(prealloc(n));
                for _ in 0..n {
                    rooms.push(get_room(&mut r)?);
                }
                ServerMsg::RoomList { rooms, total }
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
            other => return Err(DecodeError::UnknownFrameType(other)),
        };
        Ok(msg)
    }
}
