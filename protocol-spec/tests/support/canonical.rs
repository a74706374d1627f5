//! The canonical JSON form of decoded frames (SPEC.md §12.3), in both
//! directions: typed message → JSON (to check a vector's `decoded`) and JSON
//! → typed message (to prove the JSON form holds everything needed to
//! re-encode the frame).

use confab_protocol::frame::kind;
use confab_protocol::rich::span_kind;
use confab_protocol::{Attachment, PasswordChange, Profile, ProfileUpdate};
use confab_protocol::{
    AuditItem, DirectWith, EventBody, Hello, Member, Notification, RateLimit, ReadState,
    ResumePoint, Role, RoomEvent, RoomId, RoomInfo, RoomLogItem, Seq, ServerMsg, SessionUser,
    UnreadSummary, UserEntry, UserId, UserRef, Visibility, Welcome,
};
use confab_protocol::{
    Color, LeaveReason, NotificationKind, Presence, PresenceChange, Request, Span, Sticker, Style,
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
    let mut fields = vec![
        ("id", n(r.id.0)),
        ("name", s(&r.name)),
        ("topic", s(&r.topic)),
        ("visibility", visibility(r.visibility)),
        ("owner", n(r.owner.0)),
        ("member_count", n(r.member_count)),
        ("last_seq", n(r.last_seq.0)),
        ("created_at", n(r.created_at)),
    ];
    // Appended fields: written only for a direct room.
    if let Some(d) = &r.direct_with {
        fields.push(("direct_user", n(d.user.0)));
        fields.push(("direct_username", s(&d.username)));
    }
    J::Obj(fields)
}

fn member(m: &Member) -> J {
    let mut fields = vec![
        ("user", n(m.user.0)),
        ("username", s(&m.username)),
        ("role", role(m.role)),
        ("online", J::Bool(m.online)),
        ("joined_at", n(m.joined_at)),
    ];
    if let Some(p) = m.presence {
        fields.push(("presence", named(p.code(), p.name())));
    }
    J::Obj(fields)
}

/// A raw enumeration byte kept for forward compatibility: its name when
/// known, else the number.
fn named(code: u8, name: Option<&'static str>) -> J {
    match name {
        Some(name) => s(name),
        None => n(code),
    }
}

fn user_ref(u: &UserRef) -> J {
    let (id, username) = match u {
        UserRef::Id(id) => (id.0, ""),
        UserRef::Name(name) => (0, name.as_str()),
    };
    J::Obj(vec![("id", n(id)), ("username", s(username))])
}

fn user_entry(u: &UserEntry) -> J {
    J::Obj(vec![
        ("user", n(u.user.0)),
        ("username", s(&u.username)),
        ("at", n(u.at)),
    ])
}

fn notification(x: &Notification) -> J {
    J::Obj(vec![
        ("id", n(x.id)),
        ("kind", named(x.kind.code(), x.kind.name())),
        ("room", n(x.room.0)),
        ("room_name", s(&x.room_name)),
        ("actor", n(x.actor.0)),
        ("actor_name", s(&x.actor_name)),
        ("at", n(x.at)),
        ("read", J::Bool(x.read)),
    ])
}

fn room_log_item(i: &RoomLogItem) -> J {
    J::Obj(vec![
        ("room", room_info(&i.room)),
        ("first_joined_at", n(i.first_joined_at)),
        ("last_joined_at", n(i.last_joined_at)),
        ("left_at", i.left_at.map_or(J::Null, n)),
        ("reason", named(i.reason.code(), i.reason.name())),
        ("terminated", J::Bool(i.terminated)),
    ])
}

fn audit_item(a: &AuditItem) -> J {
    J::Obj(vec![
        ("id", n(a.id)),
        ("at", n(a.at)),
        ("actor", n(a.actor.0)),
        ("actor_name", s(&a.actor_name)),
        ("action", s(&a.action)),
        ("target", n(a.target.0)),
        ("target_name", s(&a.target_name)),
        ("detail", s(&a.detail)),
    ])
}

fn read_state(x: &ReadState) -> J {
    J::Obj(vec![
        ("room", n(x.room.0)),
        ("read_seq", n(x.read_seq.0)),
        ("unread", n(x.unread)),
    ])
}

fn span(x: &Span) -> J {
    let mut fields = vec![
        ("start", n(x.start)),
        ("end", n(x.end)),
        ("kind", named(x.style.kind(), x.style.name())),
    ];
    match &x.style {
        Style::Link(url) => fields.push(("url", s(url))),
        Style::Color(c) => fields.push(("color", named(c.code(), c.name()))),
        Style::Unknown { data, .. } => fields.push(("data_hex", s(&hex::encode(data)))),
        _ => {}
    }
    J::Obj(fields)
}

/// `spans`, written only when there are some (SPEC.md §12.3).
fn push_spans(fields: &mut Vec<(&'static str, J)>, spans: &[Span]) {
    if !spans.is_empty() {
        fields.push(("spans", J::Arr(spans.iter().map(span).collect())));
    }
}

fn attachment(a: &Attachment) -> J {
    let mut fields = vec![
        ("id", n(a.id)),
        ("name", s(&a.name)),
        ("content_type", s(&a.content_type)),
        ("size", n(a.size)),
    ];
    if let Some(w) = a.width {
        fields.push(("width", n(w)));
    }
    if let Some(h) = a.height {
        fields.push(("height", n(h)));
    }
    J::Obj(fields)
}

fn sticker(x: &Sticker) -> J {
    J::Obj(vec![
        ("id", s(&x.id)),
        ("name", s(&x.name)),
        ("art", s(&x.art)),
    ])
}

fn body(b: &EventBody) -> J {
    match b {
        EventBody::Message {
            text,
            edited_at,
            spans,
            sticker,
            attachments,
        } => {
            let mut fields = vec![("kind", s("message")), ("text", s(text))];
            // Appended fields: each written only when it holds something.
            if let Some(at) = edited_at {
                fields.push(("edited_at", n(*at)));
            }
            push_spans(&mut fields, spans);
            if let Some(id) = sticker {
                fields.push(("sticker", s(id)));
            }
            if !attachments.is_empty() {
                let files = attachments.iter().map(attachment).collect();
                fields.push(("attachments", J::Arr(files)));
            }
            J::Obj(fields)
        }
        EventBody::MessageEdited {
            target,
            text,
            spans,
        } => {
            let mut fields = vec![
                ("kind", s("message_edited")),
                ("target_seq", n(target.0)),
                ("text", s(text)),
            ];
            push_spans(&mut fields, spans);
            J::Obj(fields)
        }
        EventBody::MessageDeleted { target } => J::Obj(vec![
            ("kind", s("message_deleted")),
            ("target_seq", n(target.0)),
        ]),
        EventBody::Tombstone => J::Obj(vec![("kind", s("tombstone"))]),
        EventBody::MemberJoined => J::Obj(vec![("kind", s("member_joined"))]),
        EventBody::MemberLeft => J::Obj(vec![("kind", s("member_left"))]),
        EventBody::RoomCreated { name, topic } => J::Obj(vec![
            ("kind", s("room_created")),
            ("name", s(name)),
            ("topic", s(topic)),
        ]),
        EventBody::MemberKicked {
            target,
            target_name,
        } => J::Obj(vec![
            ("kind", s("member_kicked")),
            ("target", n(target.0)),
            ("target_name", s(target_name)),
        ]),
        EventBody::MemberBanned {
            target,
            target_name,
        } => J::Obj(vec![
            ("kind", s("member_banned")),
            ("target", n(target.0)),
            ("target_name", s(target_name)),
        ]),
        EventBody::RoleChanged {
            target,
            target_name,
            role: r,
        } => J::Obj(vec![
            ("kind", s("role_changed")),
            ("target", n(target.0)),
            ("target_name", s(target_name)),
            ("role", role(*r)),
        ]),
        EventBody::RoomUpdated { name, topic } => J::Obj(vec![
            ("kind", s("room_updated")),
            ("name", s(name)),
            ("topic", s(topic)),
        ]),
        EventBody::RoomTerminated => J::Obj(vec![("kind", s("room_terminated"))]),
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
            J::Obj(vec![
                ("username", s(username)),
                ("password", s(password.as_str())),
            ])
        }
        Request::Logout | Request::MyRooms | Request::RoomLog => J::Obj(vec![]),
        Request::CreateRoom {
            name,
            topic,
            visibility: v,
            members,
        } => {
            let mut fields = vec![
                ("name", s(name)),
                ("topic", s(topic)),
                ("visibility", visibility(*v)),
            ];
            // Appended field: written only when there are members.
            if !members.is_empty() {
                fields.push(("members", J::Arr(members.iter().map(user_ref).collect())));
            }
            J::Obj(fields)
        }
        Request::ListRooms {
            query,
            offset,
            limit,
            exact,
        } => J::Obj(vec![
            ("query", s(query)),
            ("exact", J::Bool(*exact)),
            ("offset", n(*offset)),
            ("limit", n(*limit)),
        ]),
        Request::JoinRoom { room }
        | Request::LeaveRoom { room }
        | Request::ListMembers { room } => J::Obj(vec![("room", n(room.0))]),
        Request::SendMessage {
            room,
            body,
            spans,
            sticker,
            attachments,
        } => {
            let mut fields = vec![("room", n(room.0)), ("body", s(body))];
            push_spans(&mut fields, spans);
            if let Some(id) = sticker {
                fields.push(("sticker", s(id)));
            }
            if !attachments.is_empty() {
                let ids = attachments.iter().map(|&id| n(id)).collect();
                fields.push(("attachments", J::Arr(ids)));
            }
            J::Obj(fields)
        }
        Request::History {
            room,
            before,
            limit,
        } => J::Obj(vec![
            ("room", n(room.0)),
            ("before", n(before.0)),
            ("limit", n(*limit)),
        ]),
        Request::Invite { room, user } | Request::Ban { room, user } => {
            J::Obj(vec![("room", n(room.0)), ("user", user_ref(user))])
        }
        Request::RespondInvite { room, accept } => {
            J::Obj(vec![("room", n(room.0)), ("accept", J::Bool(*accept))])
        }
        Request::RequestJoin { room }
        | Request::ListJoinRequests { room }
        | Request::ListBans { room } => J::Obj(vec![("room", n(room.0))]),
        Request::DecideRequest {
            room,
            user,
            approve,
        } => J::Obj(vec![
            ("room", n(room.0)),
            ("user", n(user.0)),
            ("approve", J::Bool(*approve)),
        ]),
        Request::Kick { room, user } | Request::Unban { room, user } => {
            J::Obj(vec![("room", n(room.0)), ("user", n(user.0))])
        }
        Request::SetRole {
            room,
            user,
            role: r,
        } => J::Obj(vec![
            ("room", n(room.0)),
            ("user", n(user.0)),
            ("role", role(*r)),
        ]),
        Request::ListNotifications {
            before,
            limit,
            unread_only,
        } => J::Obj(vec![
            ("before", n(*before)),
            ("limit", n(*limit)),
            ("unread_only", J::Bool(*unread_only)),
        ]),
        Request::MarkRead { up_to } => J::Obj(vec![("up_to", n(*up_to))]),
        Request::RoomAudit {
            room,
            before,
            limit,
        } => J::Obj(vec![
            ("room", n(room.0)),
            ("before", n(*before)),
            ("limit", n(*limit)),
        ]),
        Request::UpdateRoom { room, name, topic } => J::Obj(vec![
            ("room", n(room.0)),
            ("name", s(name)),
            ("topic", s(topic)),
        ]),
        Request::EditMessage {
            room,
            seq,
            text,
            spans,
        } => {
            let mut fields = vec![("room", n(room.0)), ("seq", n(seq.0)), ("text", s(text))];
            push_spans(&mut fields, spans);
            J::Obj(fields)
        }
        Request::DeleteMessage { room, seq } => {
            J::Obj(vec![("room", n(room.0)), ("seq", n(seq.0))])
        }
        Request::TypingStart { room } | Request::TypingStop { room } => {
            J::Obj(vec![("room", n(room.0))])
        }
        Request::SetAway { away } => J::Obj(vec![("away", J::Bool(*away))]),
        Request::ListStickers => J::Obj(vec![]),
        Request::ChangePassword(c) => J::Obj(vec![("current", s(&c.current)), ("new", s(&c.new))]),
        Request::GetProfile { user } => J::Obj(vec![("user", n(user.0))]),
        Request::UpdateProfile(u) => J::Obj(vec![
            ("display_name", opt_text(u.display_name.as_deref())),
            ("bio", s(&u.bio)),
            ("email", opt_text(u.email.as_deref())),
        ]),
        Request::SetReadMarker { room, seq } => {
            J::Obj(vec![("room", n(room.0)), ("seq", n(seq.0))])
        }
        Request::OpenDirect { user } => J::Obj(vec![("user", user_ref(user))]),
    }
}

fn opt_text(v: Option<&str>) -> J {
    v.map_or(J::Null, s)
}

fn profile(p: &Profile) -> J {
    J::Obj(vec![
        ("user", n(p.user.0)),
        ("username", s(&p.username)),
        ("display_name", opt_text(p.display_name.as_deref())),
        ("bio", s(&p.bio)),
        ("email", opt_text(p.email.as_deref())),
        ("avatar", p.avatar.map_or(J::Null, n)),
    ])
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
            (
                "rate_limit_per_sec",
                w.rate_limit.map_or(J::Null, |l| n(l.per_sec)),
            ),
            (
                "rate_limit_burst",
                w.rate_limit.map_or(J::Null, |l| n(l.burst)),
            ),
        ]),
        ServerMsg::Pong { nonce } => J::Obj(vec![("nonce", n(*nonce))]),
        ServerMsg::Ok => J::Obj(vec![]),
        ServerMsg::Error {
            code,
            message,
            retry_after_ms,
        } => J::Obj(vec![
            ("code", n(*code)),
            ("message", s(message)),
            ("retry_after_ms", n(*retry_after_ms)),
        ]),
        ServerMsg::Close { code, message } => {
            J::Obj(vec![("code", n(*code)), ("message", s(message))])
        }
        ServerMsg::Session {
            user,
            username,
            token,
        } => J::Obj(vec![
            ("user", n(user.0)),
            ("username", s(username)),
            ("token", s(token.as_str())),
        ]),
        ServerMsg::Room(info) => J::Obj(vec![("info", room_info(info))]),
        ServerMsg::RoomList {
            rooms,
            total,
            unread,
        } => {
            let mut fields = vec![
                ("total", n(*total)),
                ("rooms", J::Arr(rooms.iter().map(room_info).collect())),
            ];
            // Appended fields: written only when present (MY_ROOMS).
            if let Some(u) = unread {
                fields.push(("unread_total", n(u.total)));
                fields.push((
                    "read_states",
                    J::Arr(u.rooms.iter().map(read_state).collect()),
                ));
            }
            J::Obj(fields)
        }
        ServerMsg::ReadMarker(x) | ServerMsg::ReadMarkerMoved(x) => read_state(x),
        ServerMsg::StickerList { stickers } => J::Obj(vec![(
            "stickers",
            J::Arr(stickers.iter().map(sticker).collect()),
        )]),
        ServerMsg::Profile(p) => profile(p),
        ServerMsg::ProfileChanged { room, changes } => J::Obj(vec![
            ("room", n(room.0)),
            ("changes", J::Arr(changes.iter().map(profile).collect())),
        ]),
        ServerMsg::Presence { room, changes } => J::Obj(vec![
            ("room", n(room.0)),
            (
                "changes",
                J::Arr(
                    changes
                        .iter()
                        .map(|c| {
                            J::Obj(vec![
                                ("user", n(c.user.0)),
                                ("username", s(&c.username)),
                                ("presence", named(c.presence.code(), c.presence.name())),
                            ])
                        })
                        .collect(),
                ),
            ),
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
        ServerMsg::UserList { room, users } => J::Obj(vec![
            ("room", n(room.0)),
            ("users", J::Arr(users.iter().map(user_entry).collect())),
        ]),
        ServerMsg::NotificationList {
            unread,
            has_more,
            items,
        } => J::Obj(vec![
            ("unread", n(*unread)),
            ("has_more", J::Bool(*has_more)),
            ("items", J::Arr(items.iter().map(notification).collect())),
        ]),
        ServerMsg::UnreadCount { unread } => J::Obj(vec![("unread", n(*unread))]),
        ServerMsg::RoomLogList { items } => J::Obj(vec![(
            "items",
            J::Arr(items.iter().map(room_log_item).collect()),
        )]),
        ServerMsg::AuditPage {
            room,
            has_more,
            items,
        } => J::Obj(vec![
            ("room", n(room.0)),
            ("has_more", J::Bool(*has_more)),
            ("items", J::Arr(items.iter().map(audit_item).collect())),
        ]),
        ServerMsg::Notification(x) => J::Obj(vec![("notification", notification(x))]),
        ServerMsg::RoomAnnounced(info) => J::Obj(vec![("info", room_info(info))]),
        ServerMsg::Typing {
            room,
            user,
            username,
            typing,
        } => J::Obj(vec![
            ("room", n(room.0)),
            ("user", n(user.0)),
            ("username", s(username)),
            ("typing", J::Bool(*typing)),
        ]),
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

fn read_state_from(v: &Value) -> ReadState {
    ReadState {
        room: RoomId(num(v, "room")),
        read_seq: Seq(num(v, "read_seq")),
        unread: num32(v, "unread"),
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
        direct_with: v.get("direct_user").map(|_| DirectWith {
            user: UserId(num(v, "direct_user")),
            username: text(v, "direct_username"),
        }),
    }
}

/// The byte of a raw enumeration field written by [`named`]: a known name
/// or a number.
/// An open enumeration (`from_code`, `from_name`) read from its name, or
/// from its number when it has no name.
fn named_from<T: Copy>(
    from_code: fn(u8) -> T,
    from_name: fn(&str) -> Option<T>,
    has_name: fn(T) -> bool,
    v: &Value,
    key: &str,
) -> T {
    match field(v, key) {
        Value::String(name) => {
            from_name(name).unwrap_or_else(|| panic!("unknown {key} name {name:?}"))
        }
        Value::Number(_) => {
            let k = u8::try_from(num(v, key))
                .unwrap_or_else(|_| panic!("field {key:?} must fit in a byte in {v}"));
            let value = from_code(k);
            assert!(
                !has_name(value),
                "{key} {k} has a name and must be written as one"
            );
            value
        }
        other => panic!("field {key:?} must be a string or a number, not {other}"),
    }
}

fn presence_from(v: &Value, key: &str) -> Presence {
    named_from(
        Presence::from_code,
        Presence::from_name,
        |p| p.name().is_some(),
        v,
        key,
    )
}

fn user_ref_from(v: &Value) -> UserRef {
    match num(v, "id") {
        0 => UserRef::Name(text(v, "username")),
        id => UserRef::Id(UserId(id)),
    }
}

fn user_entry_from(v: &Value) -> UserEntry {
    UserEntry {
        user: UserId(num(v, "user")),
        username: text(v, "username"),
        at: num(v, "at"),
    }
}

fn notification_from(v: &Value) -> Notification {
    Notification {
        id: num(v, "id"),
        kind: named_from(
            NotificationKind::from_code,
            NotificationKind::from_name,
            |k| k.name().is_some(),
            v,
            "kind",
        ),
        room: RoomId(num(v, "room")),
        room_name: text(v, "room_name"),
        actor: UserId(num(v, "actor")),
        actor_name: text(v, "actor_name"),
        at: num(v, "at"),
        read: flag(v, "read"),
    }
}

fn room_log_item_from(v: &Value) -> RoomLogItem {
    RoomLogItem {
        room: room_info_from(field(v, "room")),
        first_joined_at: num(v, "first_joined_at"),
        last_joined_at: num(v, "last_joined_at"),
        left_at: match field(v, "left_at") {
            Value::Null => None,
            _ => Some(num(v, "left_at")),
        },
        reason: named_from(
            LeaveReason::from_code,
            LeaveReason::from_name,
            |r| r.name().is_some(),
            v,
            "reason",
        ),
        terminated: flag(v, "terminated"),
    }
}

fn audit_item_from(v: &Value) -> AuditItem {
    AuditItem {
        id: num(v, "id"),
        at: num(v, "at"),
        actor: UserId(num(v, "actor")),
        actor_name: text(v, "actor_name"),
        action: text(v, "action"),
        target: UserId(num(v, "target")),
        target_name: text(v, "target_name"),
        detail: text(v, "detail"),
    }
}

fn span_from(v: &Value) -> Span {
    let kind = match field(v, "kind") {
        Value::String(name) => {
            span_kind::from_name(name).unwrap_or_else(|| panic!("unknown span kind {name:?}"))
        }
        _ => {
            let k = u8::try_from(num(v, "kind")).expect("span kind fits in a byte");
            assert!(
                span_kind::name(k).is_none(),
                "span kind {k} must be written by name"
            );
            k
        }
    };
    let style = match kind {
        1 => Style::Bold,
        2 => Style::Italic,
        3 => Style::Strikethrough,
        4 => Style::Code,
        5 => Style::CodeBlock,
        6 => Style::Link(text(v, "url")),
        7 => Style::Color(named_from(
            Color::from_code,
            Color::from_name,
            |c| c.name().is_some(),
            v,
            "color",
        )),
        kind => Style::Unknown {
            kind,
            data: hex::decode(text(v, "data_hex")).expect("data_hex is hex"),
        },
    };
    Span {
        start: num32(v, "start"),
        end: num32(v, "end"),
        style,
    }
}

/// `spans`, absent meaning none.
fn spans_from(v: &Value) -> Vec<Span> {
    v.get("spans")
        .map(|_| list(v, "spans").iter().map(span_from).collect())
        .unwrap_or_default()
}

fn attachment_from(v: &Value) -> Attachment {
    Attachment {
        id: num(v, "id"),
        name: text(v, "name"),
        content_type: text(v, "content_type"),
        size: num(v, "size"),
        width: v.get("width").map(|_| num32(v, "width")),
        height: v.get("height").map(|_| num32(v, "height")),
    }
}

fn body_from(v: &Value) -> EventBody {
    match field(v, "kind") {
        Value::String(k) => match k.as_str() {
            "message" => EventBody::Message {
                text: text(v, "text"),
                edited_at: v.get("edited_at").map(|_| num(v, "edited_at")),
                spans: spans_from(v),
                sticker: v.get("sticker").map(|_| text(v, "sticker")),
                attachments: v
                    .get("attachments")
                    .map(|_| list(v, "attachments").iter().map(attachment_from).collect())
                    .unwrap_or_default(),
            },
            "message_edited" => EventBody::MessageEdited {
                target: Seq(num(v, "target_seq")),
                text: text(v, "text"),
                spans: spans_from(v),
            },
            "message_deleted" => EventBody::MessageDeleted {
                target: Seq(num(v, "target_seq")),
            },
            "tombstone" => EventBody::Tombstone,
            "member_joined" => EventBody::MemberJoined,
            "member_left" => EventBody::MemberLeft,
            "room_created" => EventBody::RoomCreated {
                name: text(v, "name"),
                topic: text(v, "topic"),
            },
            "member_kicked" => EventBody::MemberKicked {
                target: UserId(num(v, "target")),
                target_name: text(v, "target_name"),
            },
            "member_banned" => EventBody::MemberBanned {
                target: UserId(num(v, "target")),
                target_name: text(v, "target_name"),
            },
            "role_changed" => EventBody::RoleChanged {
                target: UserId(num(v, "target")),
                target_name: text(v, "target_name"),
                role: role_from(v),
            },
            "room_updated" => EventBody::RoomUpdated {
                name: text(v, "name"),
                topic: text(v, "topic"),
            },
            "room_terminated" => EventBody::RoomTerminated,
            other => panic!("unknown event kind name {other:?}"),
        },
        Value::Number(_) => {
            let kind = u8::try_from(num(v, "kind")).expect("event kind fits in a byte");
            // A known kind is written by name; as a number it would not
            // re-encode to bytes that decode as the same value.
            assert!(
                !(1..=12).contains(&kind),
                "event kind {kind} has a name and must be written as one"
            );
            EventBody::Unknown {
                kind,
                data: hex::decode(text(v, "data_hex")).expect("data_hex is hex"),
            }
        }
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

fn opt_text_from(v: &Value, key: &str) -> Option<String> {
    match field(v, key) {
        Value::Null => None,
        _ => Some(text(v, key)),
    }
}

fn profile_from(v: &Value) -> Profile {
    Profile {
        user: UserId(num(v, "user")),
        username: text(v, "username"),
        display_name: opt_text_from(v, "display_name"),
        bio: text(v, "bio"),
        email: opt_text_from(v, "email"),
        avatar: match field(v, "avatar") {
            Value::Null => None,
            _ => Some(num(v, "avatar")),
        },
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
            password: text(v, "password").into(),
        },
        kind::LOGIN => Request::Login {
            username: text(v, "username"),
            password: text(v, "password").into(),
        },
        kind::LOGOUT => Request::Logout,
        kind::CREATE_ROOM => Request::CreateRoom {
            name: text(v, "name"),
            topic: text(v, "topic"),
            visibility: visibility_from(v),
            members: v
                .get("members")
                .map(|_| list(v, "members").iter().map(user_ref_from).collect())
                .unwrap_or_default(),
        },
        kind::LIST_ROOMS => Request::ListRooms {
            query: text(v, "query"),
            offset: num32(v, "offset"),
            limit: num32(v, "limit"),
            exact: flag(v, "exact"),
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
            spans: spans_from(v),
            sticker: v.get("sticker").map(|_| text(v, "sticker")),
            attachments: v
                .get("attachments")
                .map(|_| {
                    list(v, "attachments")
                        .iter()
                        .map(|id| id.as_u64().expect("a file id"))
                        .collect()
                })
                .unwrap_or_default(),
        },
        kind::HISTORY => Request::History {
            room: RoomId(num(v, "room")),
            before: Seq(num(v, "before")),
            limit: num32(v, "limit"),
        },
        kind::MY_ROOMS => Request::MyRooms,
        kind::INVITE => Request::Invite {
            room: RoomId(num(v, "room")),
            user: user_ref_from(field(v, "user")),
        },
        kind::RESPOND_INVITE => Request::RespondInvite {
            room: RoomId(num(v, "room")),
            accept: flag(v, "accept"),
        },
        kind::REQUEST_JOIN => Request::RequestJoin {
            room: RoomId(num(v, "room")),
        },
        kind::DECIDE_REQUEST => Request::DecideRequest {
            room: RoomId(num(v, "room")),
            user: UserId(num(v, "user")),
            approve: flag(v, "approve"),
        },
        kind::KICK => Request::Kick {
            room: RoomId(num(v, "room")),
            user: UserId(num(v, "user")),
        },
        kind::BAN => Request::Ban {
            room: RoomId(num(v, "room")),
            user: user_ref_from(field(v, "user")),
        },
        kind::UNBAN => Request::Unban {
            room: RoomId(num(v, "room")),
            user: UserId(num(v, "user")),
        },
        kind::SET_ROLE => Request::SetRole {
            room: RoomId(num(v, "room")),
            user: UserId(num(v, "user")),
            role: role_from(v),
        },
        kind::LIST_JOIN_REQUESTS => Request::ListJoinRequests {
            room: RoomId(num(v, "room")),
        },
        kind::LIST_BANS => Request::ListBans {
            room: RoomId(num(v, "room")),
        },
        kind::LIST_NOTIFICATIONS => Request::ListNotifications {
            before: num(v, "before"),
            limit: num32(v, "limit"),
            unread_only: flag(v, "unread_only"),
        },
        kind::MARK_READ => Request::MarkRead {
            up_to: num(v, "up_to"),
        },
        kind::ROOM_LOG => Request::RoomLog,
        kind::ROOM_AUDIT => Request::RoomAudit {
            room: RoomId(num(v, "room")),
            before: num(v, "before"),
            limit: num32(v, "limit"),
        },
        kind::UPDATE_ROOM => Request::UpdateRoom {
            room: RoomId(num(v, "room")),
            name: text(v, "name"),
            topic: text(v, "topic"),
        },
        kind::EDIT_MESSAGE => Request::EditMessage {
            room: RoomId(num(v, "room")),
            seq: Seq(num(v, "seq")),
            text: text(v, "text"),
            spans: spans_from(v),
        },
        kind::LIST_STICKERS => Request::ListStickers,
        kind::DELETE_MESSAGE => Request::DeleteMessage {
            room: RoomId(num(v, "room")),
            seq: Seq(num(v, "seq")),
        },
        kind::TYPING_START => Request::TypingStart {
            room: RoomId(num(v, "room")),
        },
        kind::TYPING_STOP => Request::TypingStop {
            room: RoomId(num(v, "room")),
        },
        kind::SET_AWAY => Request::SetAway {
            away: flag(v, "away"),
        },
        kind::CHANGE_PASSWORD => Request::ChangePassword(PasswordChange {
            current: text(v, "current"),
            new: text(v, "new"),
        }),
        kind::GET_PROFILE => Request::GetProfile {
            user: UserId(num(v, "user")),
        },
        kind::UPDATE_PROFILE => Request::UpdateProfile(ProfileUpdate {
            display_name: opt_text_from(v, "display_name"),
            bio: text(v, "bio"),
            email: opt_text_from(v, "email"),
        }),
        kind::SET_READ_MARKER => Request::SetReadMarker {
            room: RoomId(num(v, "room")),
            seq: Seq(num(v, "seq")),
        },
        kind::OPEN_DIRECT => Request::OpenDirect {
            user: user_ref_from(field(v, "user")),
        },
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
            rate_limit: match field(v, "rate_limit_per_sec") {
                Value::Null => None,
                _ => Some(RateLimit {
                    per_sec: num32(v, "rate_limit_per_sec"),
                    burst: num32(v, "rate_limit_burst"),
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
            retry_after_ms: num32(v, "retry_after_ms"),
        },
        kind::SESSION => ServerMsg::Session {
            user: UserId(num(v, "user")),
            username: text(v, "username"),
            token: text(v, "token").into(),
        },
        kind::ROOM => ServerMsg::Room(room_info_from(field(v, "info"))),
        kind::ROOM_LIST => ServerMsg::RoomList {
            total: num32(v, "total"),
            rooms: list(v, "rooms").iter().map(room_info_from).collect(),
            unread: v.get("unread_total").map(|_| UnreadSummary {
                total: num32(v, "unread_total"),
                rooms: list(v, "read_states").iter().map(read_state_from).collect(),
            }),
        },
        kind::READ_MARKER => ServerMsg::ReadMarker(read_state_from(v)),
        kind::STICKER_LIST => ServerMsg::StickerList {
            stickers: list(v, "stickers")
                .iter()
                .map(|x| Sticker {
                    id: text(x, "id"),
                    name: text(x, "name"),
                    art: text(x, "art"),
                })
                .collect(),
        },
        kind::READ_MARKER_MOVED => ServerMsg::ReadMarkerMoved(read_state_from(v)),
        kind::PROFILE => ServerMsg::Profile(profile_from(v)),
        kind::PROFILE_CHANGED => ServerMsg::ProfileChanged {
            room: RoomId(num(v, "room")),
            changes: list(v, "changes").iter().map(profile_from).collect(),
        },
        kind::PRESENCE => ServerMsg::Presence {
            room: RoomId(num(v, "room")),
            changes: list(v, "changes")
                .iter()
                .map(|c| PresenceChange {
                    user: UserId(num(c, "user")),
                    username: text(c, "username"),
                    presence: presence_from(c, "presence"),
                })
                .collect(),
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
                    presence: m.get("presence").map(|_| presence_from(m, "presence")),
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
        kind::USER_LIST => ServerMsg::UserList {
            room: RoomId(num(v, "room")),
            users: list(v, "users").iter().map(user_entry_from).collect(),
        },
        kind::NOTIFICATION_LIST => ServerMsg::NotificationList {
            unread: num32(v, "unread"),
            has_more: flag(v, "has_more"),
            items: list(v, "items").iter().map(notification_from).collect(),
        },
        kind::UNREAD_COUNT => ServerMsg::UnreadCount {
            unread: num32(v, "unread"),
        },
        kind::ROOM_LOG_LIST => ServerMsg::RoomLogList {
            items: list(v, "items").iter().map(room_log_item_from).collect(),
        },
        kind::AUDIT_PAGE => ServerMsg::AuditPage {
            room: RoomId(num(v, "room")),
            has_more: flag(v, "has_more"),
            items: list(v, "items").iter().map(audit_item_from).collect(),
        },
        kind::NOTIFICATION => ServerMsg::Notification(notification_from(field(v, "notification"))),
        kind::ROOM_ANNOUNCED => ServerMsg::RoomAnnounced(room_info_from(field(v, "info"))),
        kind::TYPING => ServerMsg::Typing {
            room: RoomId(num(v, "room")),
            user: UserId(num(v, "user")),
            username: text(v, "username"),
            typing: flag(v, "typing"),
        },
        other => panic!("0x{other:02x} is not a server frame type"),
    }
}
