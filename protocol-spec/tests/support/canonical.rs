//! The canonical JSON form of decoded frames (SPEC.md §11.2), in both
//! directions: typed message → JSON (to check a vector's `decoded`) and JSON
//! → typed message (to prove the JSON form holds everything needed to
//! re-encode the frame).

use confab_protocol::frame::kind;
use confab_protocol::Request;
use confab_protocol::{
    EventBody, Hello, Member, ResumePoint, Role, RoomEvent, RoomId, RoomInfo, Seq, ServerMsg,
    SessionUser, UserId, Visibility, Welcome,
};
use serde_json::Value;

/// A JSON value whose objects keep their keys in the order written, so the
/// committed vector files list fields in wire order.
#[derive(Debug, Clone)]
pub enum J {
    Null,
    Bool(bool),
    Num(u64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(&'static str, J)>),
}

fn s(v: &str) -> J {
    J::Str(v.to_owned())
}

fn n(v: impl Into<u64>) -> J {
    J::Num(v.into())
}

impl J {
    pub fn to_value(&self) -> Value {
        match self {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Num(n) => Value::from(*n),
            J::Str(s) => Value::String(s.clone()),
            J::Arr(items) => Value::Array(items.iter().map(J::to_value).collect()),
            J::Obj(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_value()))
                    .collect(),
            ),
        }
    }

    /// Pretty-prints with two-space indentation.
    pub fn render(&self, indent: usize, out: &mut String) {
        let pad = |depth: usize| "  ".repeat(depth);
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Num(n) => out.push_str(&n.to_string()),
            J::Str(s) => out.push_str(&serde_json::to_string(s).expect("strings serialise")),
            J::Arr(items) if items.is_empty() => out.push_str("[]"),
            J::Obj(fields) if fields.is_empty() => out.push_str("{}"),
            J::Arr(items) => {
                out.push_str("[\n");
                for (i, item) in items.iter().enumerate() {
                    out.push_str(&pad(indent + 1));
                    item.render(indent + 1, out);
                    out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                out.push_str(&pad(indent));
                out.push(']');
            }
            J::Obj(fields) => {
                out.push_str("{\n");
                for (i, (k, v)) in fields.iter().enumerate() {
                    out.push_str(&pad(indent + 1));
                    out.push_str(&serde_json::to_string(k).expect("keys serialise"));
                    out.push_str(": ");
                    v.render(indent + 1, out);
                    out.push_str(if i + 1 < fields.len() { ",\n" } else { "\n" });
                }
                out.push_str(&pad(indent));
                out.push('}');
            }
        }
    }
}

// ---------------------------------------------------------------- to JSON

fn visibility(v: Visibility) -> J {
    s(match v {
        Visibility::Public => "public",
        Visibility::Private => "private",
    })
}

fn role(r: Role) -> J {
    s(match r {
        Role::Member => "member",
        Role::Admin => "admin",
        Role::Owner => "owner",
    })
}

fn room_info(r: &RoomInfo) -> J {
    J::Obj(vec![
        ("id", n(r.id.0)),
        ("name", s(&r.name)),
        ("topic", s(&r.topic)),
        ("visibility", visibility(r.visibility)),
        ("owner", n(r.owner.0)),
        ("member_count", n(r.member_count)),
        ("last_seq", n(r.last_seq.0)),
        ("created_at", n(r.created_at)),
    ])
}

fn member(m: &Member) -> J {
    J::Obj(vec![
        ("user", n(m.user.0)),
        ("username", s(&m.username)),
        ("role", role(m.role)),
        ("online", J::Bool(m.online)),
        ("joined_at", n(m.joined_at)),
    ])
}

fn body(b: &EventBody) -> J {
    match b {
        EventBody::Message { text } => J::Obj(vec![("kind", s("message")), ("text", s(text))]),
        EventBody::MemberJoined => J::Obj(vec![("kind", s("member_joined"))]),
        EventBody::MemberLeft => J::Obj(vec![("kind", s("member_left"))]),
        EventBody::RoomCreated { name, topic } => J::Obj(vec![
            ("kind", s("room_created")),
            ("name", s(name)),
            ("topic", s(topic)),
        ]),
        EventBody::Unknown { kind, data } => J::Obj(vec![
            ("kind", n(*kind)),
            ("data_hex", s(&hex::encode(data))),
        ]),
    }
}

fn event(e: &RoomEvent) -> J {
    J::Obj(vec![
        ("room", n(e.room.0)),
        ("seq", n(e.seq.0)),
        ("at", n(e.at)),
        ("actor", n(e.actor.0)),
        ("actor_name", s(&e.actor_name)),
        ("body", body(&e.body)),
    ])
}

pub fn request(r: &Request) -> J {
    match r {
        Request::Hello(h) => J::Obj(vec![
            ("version", n(h.version)),
            ("client", s(&h.client)),
            ("token", h.token.as_deref().map_or(J::Null, s)),
            (
                "resume",
                J::Arr(
                    h.resume
                        .iter()
                        .map(|p| J::Obj(vec![("room", n(p.room.0)), ("after", n(p.after.0))]))
                        .collect(),
                ),
            ),
        ]),
        Request::Ping { nonce } => J::Obj(vec![("nonce", n(*nonce))]),
        Request::Register { username, password } | Request::Login { username, password } => {
            J::Obj(vec![("username", s(username)), ("password", s(password))])
        }
        Request::Logout | Request::MyRooms => J::Obj(vec![]),
        Request::CreateRoom {
            name,
            topic,
            visibility: v,
        } => J::Obj(vec![
            ("name", s(name)),
            ("topic", s(topic)),
            ("visibility", visibility(*v)),
        ]),
        Request::ListRooms {
            query,
            offset,
            limit,
        } => J::Obj(vec![
            ("query", s(query)),
            ("offset", n(*offset)),
            ("limit", n(*limit)),
        ]),
        Request::JoinRoom { room }
        | Request::LeaveRoom { room }
        | Request::ListMembers { room } => J::Obj(vec![("room", n(room.0))]),
        Request::SendMessage { room, body } => J::Obj(vec![("room", n(room.0)), ("body", s(body))]),
        Request::History {
            room,
            before,
            limit,
        } => J::Obj(vec![
            ("room", n(room.0)),
            ("before", n(before.0)),
            ("limit", n(*limit)),
        ]),
    }
}

pub fn server_msg(m: &ServerMsg) -> J {
    match m {
        ServerMsg::Welcome(w) => J::Obj(vec![
            ("version", n(w.version)),
            ("server", s(&w.server)),
            ("max_frame_len", n(w.max_frame_len)),
            ("max_message_len", n(w.max_message_len)),
            ("heartbeat_ms", n(w.heartbeat_ms)),
            (
                "session",
                w.session.as_ref().map_or(J::Null, |u| {
                    J::Obj(vec![("user", n(u.user.0)), ("username", s(&u.username))])
                }),
            ),
        ]),
        ServerMsg::Pong { nonce } => J::Obj(vec![("nonce", n(*nonce))]),
        ServerMsg::Ok => J::Obj(vec![]),
        ServerMsg::Error { code, message } | ServerMsg::Close { code, message } => {
            J::Obj(vec![("code", n(*code)), ("message", s(message))])
        }
        ServerMsg::Session {
            user,
            username,
            token,
        } => J::Obj(vec![
            ("user", n(user.0)),
            ("username", s(username)),
            ("token", s(token)),
        ]),
        ServerMsg::Room(info) => J::Obj(vec![("info", room_info(info))]),
        ServerMsg::RoomList { rooms, total } => J::Obj(vec![
            ("total", n(*total)),
            ("rooms", J::Arr(rooms.iter().map(room_info).collect())),
        ]),
        ServerMsg::MemberList { room, members } => J::Obj(vec![
            ("room", n(room.0)),
            ("members", J::Arr(members.iter().map(member).collect())),
        ]),
        ServerMsg::MessageAck { room, seq, at } => {
            J::Obj(vec![("room", n(room.0)), ("seq", n(seq.0)), ("at", n(*at))])
        }
        ServerMsg::HistoryPage {
            room,
            events,
            has_more,
        } => J::Obj(vec![
            ("room", n(room.0)),
            ("has_more", J::Bool(*has_more)),
            ("events", J::Arr(events.iter().map(event).collect())),
        ]),
        ServerMsg::Event(e) => event(e),
        ServerMsg::ResumeGap { room, last_seq } => {
            J::Obj(vec![("room", n(room.0)), ("last_seq", n(last_seq.0))])
        }
    }
}

// -------------------------------------------------------------- from JSON

fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key)
        .unwrap_or_else(|| panic!("missing field {key:?} in {v}"))
}

fn num(v: &Value, key: &str) -> u64 {
    field(v, key)
        .as_u64()
        .unwrap_or_else(|| panic!("field {key:?} must be a non-negative integer in {v}"))
}

fn num32(v: &Value, key: &str) -> u32 {
    u32::try_from(num(v, key)).unwrap_or_else(|_| panic!("field {key:?} must fit in u32 in {v}"))
}

fn num16(v: &Value, key: &str) -> u16 {
    u16::try_from(num(v, key)).unwrap_or_else(|_| panic!("field {key:?} must fit in u16 in {v}"))
}

fn text(v: &Value, key: &str) -> String {
    field(v, key)
        .as_str()
        .unwrap_or_else(|| panic!("field {key:?} must be a string in {v}"))
        .to_owned()
}

fn flag(v: &Value, key: &str) -> bool {
    field(v, key)
        .as_bool()
        .unwrap_or_else(|| panic!("field {key:?} must be a boolean in {v}"))
}

fn list<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    field(v, key)
        .as_array()
        .unwrap_or_else(|| panic!("field {key:?} must be an array in {v}"))
}

fn visibility_from(v: &Value) -> Visibility {
    match text(v, "visibility").as_str() {
        "public" => Visibility::Public,
        "private" => Visibility::Private,
        other => panic!("unknown visibility {other:?}"),
    }
}

fn role_from(v: &Value) -> Role {
    match text(v, "role").as_str() {
        "member" => Role::Member,
        "admin" => Role::Admin,
        "owner" => Role::Owner,
        other => panic!("unknown role {other:?}"),
    }
}

fn room_info_from(v: &Value) -> RoomInfo {
    RoomInfo {
        id: RoomId(num(v, "id")),
        name: text(v, "name"),
        topic: text(v, "topic"),
        visibility: visibility_from(v),
        owner: UserId(num(v, "owner")),
        member_count: num32(v, "member_count"),
        last_seq: Seq(num(v, "last_seq")),
        created_at: num(v, "created_at"),
    }
}

fn body_from(v: &Value) -> EventBody {
    match field(v, "kind") {
        Value::String(k) => match k.as_str() {
            "message" => EventBody::Message {
                text: text(v, "text"),
            },
            "member_joined" => EventBody::MemberJoined,
            "member_left" => EventBody::MemberLeft,
            "room_created" => EventBody::RoomCreated {
                name: text(v, "name"),
                topic: text(v, "topic"),
            },
            other => panic!("unknown event kind name {other:?}"),
        },
        Value::Number(_) => EventBody::Unknown {
            kind: u8::try_from(num(v, "kind")).expect("event kind fits in a byte"),
            data: hex::decode(text(v, "data_hex")).expect("data_hex is hex"),
        },
        other => panic!("event kind must be a string or a number, not {other}"),
    }
}

fn event_from(v: &Value) -> RoomEvent {
    RoomEvent {
        room: RoomId(num(v, "room")),
        seq: Seq(num(v, "seq")),
        at: num(v, "at"),
        actor: UserId(num(v, "actor")),
        actor_name: text(v, "actor_name"),
        body: body_from(field(v, "body")),
    }
}

/// The request of frame type `t` whose canonical form is `v`.
pub fn request_from(t: u8, v: &Value) -> Request {
    match t {
        kind::HELLO => Request::Hello(Hello {
            version: num16(v, "version"),
            client: text(v, "client"),
            token: match field(v, "token") {
                Value::Null => None,
                _ => Some(text(v, "token")),
            },
            resume: list(v, "resume")
                .iter()
                .map(|p| ResumePoint {
                    room: RoomId(num(p, "room")),
                    after: Seq(num(p, "after")),
                })
                .collect(),
        }),
        kind::PING => Request::Ping {
            nonce: num(v, "nonce"),
        },
        kind::REGISTER => Request::Register {
            username: text(v, "username"),
            password: text(v, "password"),
        },
        kind::LOGIN => Request::Login {
            username: text(v, "username"),
            password: text(v, "password"),
        },
        kind::LOGOUT => Request::Logout,
        kind::CREATE_ROOM => Request::CreateRoom {
            name: text(v, "name"),
            topic: text(v, "topic"),
            visibility: visibility_from(v),
        },
        kind::LIST_ROOMS => Request::ListRooms {
            query: text(v, "query"),
            offset: num32(v, "offset"),
            limit: num32(v, "limit"),
        },
        kind::JOIN_ROOM => Request::JoinRoom {
            room: RoomId(num(v, "room")),
        },
        kind::LEAVE_ROOM => Request::LeaveRoom {
            room: RoomId(num(v, "room")),
        },
        kind::LIST_MEMBERS => Request::ListMembers {
            room: RoomId(num(v, "room")),
        },
        kind::SEND_MESSAGE => Request::SendMessage {
            room: RoomId(num(v, "room")),
            body: text(v, "body"),
        },
        kind::HISTORY => Request::History {
            room: RoomId(num(v, "room")),
            before: Seq(num(v, "before")),
            limit: num32(v, "limit"),
        },
        kind::MY_ROOMS => Request::MyRooms,
        other => panic!("0x{other:02x} is not a request type"),
    }
}

/// The server message of frame type `t` whose canonical form is `v`.
pub fn server_msg_from(t: u8, v: &Value) -> ServerMsg {
    match t {
        kind::WELCOME => ServerMsg::Welcome(Welcome {
            version: num16(v, "version"),
            server: text(v, "server"),
            max_frame_len: num32(v, "max_frame_len"),
            max_message_len: num32(v, "max_message_len"),
            heartbeat_ms: num32(v, "heartbeat_ms"),
            session: match field(v, "session") {
                Value::Null => None,
                u => Some(SessionUser {
                    user: UserId(num(u, "user")),
                    username: text(u, "username"),
                }),
            },
        }),
        kind::PONG => ServerMsg::Pong {
            nonce: num(v, "nonce"),
        },
        kind::OK => ServerMsg::Ok,
        kind::ERROR => ServerMsg::Error {
            code: num16(v, "code"),
            message: text(v, "message"),
        },
        kind::SESSION => ServerMsg::Session {
            user: UserId(num(v, "user")),
            username: text(v, "username"),
            token: text(v, "token"),
        },
        kind::ROOM => ServerMsg::Room(room_info_from(field(v, "info"))),
        kind::ROOM_LIST => ServerMsg::RoomList {
            total: num32(v, "total"),
            rooms: list(v, "rooms").iter().map(room_info_from).collect(),
        },
        kind::MEMBER_LIST => ServerMsg::MemberList {
            room: RoomId(num(v, "room")),
            members: list(v, "members")
                .iter()
                .map(|m| Member {
                    user: UserId(num(m, "user")),
                    username: text(m, "username"),
                    role: role_from(m),
                    online: flag(m, "online"),
                    joined_at: num(m, "joined_at"),
                })
                .collect(),
        },
        kind::MESSAGE_ACK => ServerMsg::MessageAck {
            room: RoomId(num(v, "room")),
            seq: Seq(num(v, "seq")),
            at: num(v, "at"),
        },
        kind::HISTORY_PAGE => ServerMsg::HistoryPage {
            room: RoomId(num(v, "room")),
            has_more: flag(v, "has_more"),
            events: list(v, "events").iter().map(event_from).collect(),
        },
        kind::EVENT => ServerMsg::Event(event_from(v)),
        kind::RESUME_GAP => ServerMsg::ResumeGap {
            room: RoomId(num(v, "room")),
            last_seq: Seq(num(v, "last_seq")),
        },
        kind::CLOSE => ServerMsg::Close {
            code: num16(v, "code"),
            message: text(v, "message"),
        },
        other => panic!("0x{other:02x} is not a server frame type"),
    }
}
