//! Property tests for the codec: no input panics a decoder, every message
//! survives encode → decode, and framing does not depend on how the byte
//! stream is chunked. Case counts are kept modest so that the suite runs in a
//! few seconds in a debug build.

use bytes::BytesMut;
use confab_protocol::frame::{kind, FrameCodec, RawFrame};
use confab_protocol::{Attachment, Color, Span, Sticker, Style};
use confab_protocol::{
    AuditItem, DirectWith, EventBody, Hello, LeaveReason, Member, Notification, NotificationKind,
    RateLimit, Request, ResumePoint, Role, RoomEvent, RoomId, RoomInfo, RoomLogItem, Seq,
    ServerMsg, SessionUser, UserEntry, UserId, UserRef, Visibility, Welcome,
};
use confab_protocol::{PasswordChange, Profile, ProfileUpdate};
use confab_protocol::{Presence, PresenceChange, ReadState, UnreadSummary};
use proptest::prelude::*;
use proptest::sample::Index;
use tokio_util::codec::{Decoder, Encoder};

// ------------------------------------------------------------- strategies

/// Short strings of any Unicode scalar values, including control characters
/// and multi-byte characters.
fn text() -> impl Strategy<Value = String> {
    "(?s).{0,12}"
}

fn visibility() -> impl Strategy<Value = Visibility> {
    prop_oneof![Just(Visibility::Public), Just(Visibility::Private)]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Member), Just(Role::Admin), Just(Role::Owner)]
}

fn hello() -> impl Strategy<Value = Hello> {
    (
        any::<u16>(),
        text(),
        proptest::option::of(text()),
        proptest::collection::vec((any::<u64>(), any::<u64>()), 0..4),
    )
        .prop_map(|(version, client, token, points)| Hello {
            version,
            client,
            token,
            resume: points
                .into_iter()
                .map(|(r, a)| ResumePoint {
                    room: RoomId(r),
                    after: Seq(a),
                })
                .collect(),
        })
}

fn user_id() -> impl Strategy<Value = UserId> {
    any::<u64>().prop_map(UserId)
}

/// By id (never 0: id 0 on the wire means "by name") or by name.
fn user_ref() -> impl Strategy<Value = UserRef> {
    prop_oneof![
        (1..=u64::MAX).prop_map(|id| UserRef::id(UserId(id))),
        text().prop_map(UserRef::name),
    ]
}

fn style() -> impl Strategy<Value = Style> {
    prop_oneof![
        Just(Style::Bold),
        Just(Style::Italic),
        Just(Style::Strikethrough),
        Just(Style::Code),
        Just(Style::CodeBlock),
        text().prop_map(Style::Link),
        any::<u8>().prop_map(|c| Style::Color(Color::from_code(c))),
        // Unknown kinds only: an `Unknown` with a known kind is not a value
        // a decoder can produce.
        (8..=u8::MAX, proptest::collection::vec(any::<u8>(), 0..4))
            .prop_map(|(kind, data)| Style::Unknown { kind, data }),
    ]
}

fn spans() -> impl Strategy<Value = Vec<Span>> {
    proptest::collection::vec(
        (any::<u32>(), any::<u32>(), style()).prop_map(|(start, end, style)| Span {
            start,
            end,
            style,
        }),
        0..4,
    )
}

/// A sticker id as a message names it: never empty (an empty one, written
/// before later fields, stands for none).
fn sticker_id() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text().prop_filter("a sticker id is not empty", |s| !s.is_empty()))
}

fn attachments() -> impl Strategy<Value = Vec<Attachment>> {
    let side = proptest::option::of(1..=u32::MAX);
    proptest::collection::vec(
        (
            any::<u64>(),
            text(),
            text(),
            any::<u64>(),
            side.clone(),
            side,
        )
            .prop_map(|(id, name, content_type, size, width, height)| Attachment {
                id,
                name,
                content_type,
                size,
                width,
                height,
            }),
        0..3,
    )
}

fn request() -> impl Strategy<Value = Request> {
    let room = any::<u64>().prop_map(RoomId);
    prop_oneof![
        hello().prop_map(Request::Hello),
        any::<u64>().prop_map(|nonce| Request::Ping { nonce }),
        (text(), text()).prop_map(|(username, password)| Request::Register {
            username,
            password: password.into()
        }),
        (text(), text()).prop_map(|(username, password)| Request::Login {
            username,
            password: password.into()
        }),
        Just(Request::Logout),
        (
            text(),
            text(),
            visibility(),
            proptest::collection::vec(user_ref(), 0..4)
        )
            .prop_map(|(name, topic, visibility, members)| Request::CreateRoom {
                name,
                topic,
                visibility,
                members,
            }),
        (text(), any::<u32>(), any::<u32>(), any::<bool>()).prop_map(
            |(query, offset, limit, exact)| Request::ListRooms {
                query,
                offset,
                limit,
                exact,
            }
        ),
        room.clone().prop_map(|room| Request::JoinRoom { room }),
        room.clone().prop_map(|room| Request::LeaveRoom { room }),
        room.clone().prop_map(|room| Request::ListMembers { room }),
        (
            room.clone(),
            text(),
            spans(),
            sticker_id(),
            proptest::collection::vec(any::<u64>(), 0..4)
        )
            .prop_map(
                |(room, body, spans, sticker, attachments)| Request::SendMessage {
                    room,
                    body,
                    spans,
                    sticker,
                    attachments,
                }
            ),
        (room.clone(), any::<u64>(), any::<u32>()).prop_map(|(room, before, limit)| {
            Request::History {
                room,
                before: Seq(before),
                limit,
            }
        }),
        Just(Request::MyRooms),
        (room.clone(), user_ref()).prop_map(|(room, user)| Request::Invite { room, user }),
        (room.clone(), any::<bool>())
            .prop_map(|(room, accept)| Request::RespondInvite { room, accept }),
        room.clone().prop_map(|room| Request::RequestJoin { room }),
        (room.clone(), user_id(), any::<bool>()).prop_map(|(room, user, approve)| {
            Request::DecideRequest {
                room,
                user,
                approve,
            }
        }),
        (room.clone(), user_id()).prop_map(|(room, user)| Request::Kick { room, user }),
        (room.clone(), user_ref()).prop_map(|(room, user)| Request::Ban { room, user }),
        (room.clone(), user_id()).prop_map(|(room, user)| Request::Unban { room, user }),
        // Every role the codec carries, owner included (the server answers
        // that with INVALID_ROLE; it is not malformed).
        (room.clone(), user_id(), role()).prop_map(|(room, user, role)| Request::SetRole {
            room,
            user,
            role
        }),
        room.clone()
            .prop_map(|room| Request::ListJoinRequests { room }),
        room.clone().prop_map(|room| Request::ListBans { room }),
        (any::<u64>(), any::<u32>(), any::<bool>()).prop_map(|(before, limit, unread_only)| {
            Request::ListNotifications {
                before,
                limit,
                unread_only,
            }
        }),
        any::<u64>().prop_map(|up_to| Request::MarkRead { up_to }),
        Just(Request::RoomLog),
        (room.clone(), any::<u64>(), any::<u32>()).prop_map(|(room, before, limit)| {
            Request::RoomAudit {
                room,
                before,
                limit,
            }
        }),
        (room.clone(), text(), text()).prop_map(|(room, name, topic)| Request::UpdateRoom {
            room,
            name,
            topic
        }),
        (room.clone(), any::<u64>(), text(), spans()).prop_map(|(room, seq, text, spans)| {
            Request::EditMessage {
                room,
                seq: Seq(seq),
                text,
                spans,
            }
        }),
        (room.clone(), any::<u64>()).prop_map(|(room, seq)| Request::DeleteMessage {
            room,
            seq: Seq(seq)
        }),
        room.clone().prop_map(|room| Request::TypingStart { room }),
        room.clone().prop_map(|room| Request::TypingStop { room }),
        (room, any::<u64>()).prop_map(|(room, seq)| Request::SetReadMarker {
            room,
            seq: Seq(seq)
        }),
        any::<bool>().prop_map(|away| Request::SetAway { away }),
        user_ref().prop_map(|user| Request::OpenDirect { user }),
        Just(Request::ListStickers),
        (text(), text())
            .prop_map(|(current, new)| Request::ChangePassword(PasswordChange { current, new })),
        any::<u64>().prop_map(|user| Request::GetProfile { user: UserId(user) }),
        (
            proptest::option::of(text()),
            text(),
            proptest::option::of(text())
        )
            .prop_map(
                |(display_name, bio, email)| Request::UpdateProfile(ProfileUpdate {
                    display_name,
                    bio,
                    email
                })
            ),
    ]
}

fn profile() -> impl Strategy<Value = Profile> {
    (
        any::<u64>(),
        text(),
        proptest::option::of(text()),
        text(),
        proptest::option::of(text()),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(
            |(user, username, display_name, bio, email, avatar)| Profile {
                user: UserId(user),
                username,
                display_name,
                bio,
                email,
                avatar,
            },
        )
}

fn room_info() -> impl Strategy<Value = RoomInfo> {
    (
        any::<u64>(),
        text(),
        text(),
        visibility(),
        any::<u64>(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        proptest::option::of((any::<u64>(), text())),
    )
        .prop_map(
            |(id, name, topic, visibility, owner, member_count, last_seq, created_at, direct)| {
                RoomInfo {
                    id: RoomId(id),
                    name,
                    topic,
                    visibility,
                    owner: UserId(owner),
                    member_count,
                    last_seq: Seq(last_seq),
                    created_at,
                    direct_with: direct.map(|(user, username)| DirectWith {
                        user: UserId(user),
                        username,
                    }),
                }
            },
        )
}

fn member() -> impl Strategy<Value = Member> {
    (
        any::<u64>(),
        text(),
        role(),
        any::<bool>(),
        any::<u64>(),
        proptest::option::of(any::<u8>()),
    )
        .prop_map(
            |(user, username, role, online, joined_at, presence)| Member {
                user: UserId(user),
                username,
                role,
                online,
                joined_at,
                presence: presence.map(Presence::from_code),
            },
        )
}

fn read_state() -> impl Strategy<Value = ReadState> {
    (any::<u64>(), any::<u64>(), any::<u32>()).prop_map(|(room, seq, unread)| ReadState {
        room: RoomId(room),
        read_seq: Seq(seq),
        unread,
    })
}

fn event_body() -> impl Strategy<Value = EventBody> {
    prop_oneof![
        // edited_at 0 on the wire means "never edited".
        (
            text(),
            proptest::option::of(1..=u64::MAX),
            spans(),
            sticker_id(),
            attachments()
        )
            .prop_map(|(text, edited_at, spans, sticker, attachments)| {
                EventBody::Message {
                    text,
                    edited_at,
                    spans,
                    sticker,
                    attachments,
                }
            }),
        (any::<u64>(), text(), spans()).prop_map(|(target, text, spans)| {
            EventBody::MessageEdited {
                target: Seq(target),
                text,
                spans,
            }
        }),
        any::<u64>().prop_map(|target| EventBody::MessageDeleted {
            target: Seq(target)
        }),
        Just(EventBody::Tombstone),
        Just(EventBody::MemberJoined),
        Just(EventBody::MemberLeft),
        (text(), text()).prop_map(|(name, topic)| EventBody::RoomCreated { name, topic }),
        (user_id(), text()).prop_map(|(target, target_name)| EventBody::MemberKicked {
            target,
            target_name
        }),
        (user_id(), text()).prop_map(|(target, target_name)| EventBody::MemberBanned {
            target,
            target_name
        }),
        (user_id(), text(), role()).prop_map(|(target, target_name, role)| {
            EventBody::RoleChanged {
                target,
                target_name,
                role,
            }
        }),
        (text(), text()).prop_map(|(name, topic)| EventBody::RoomUpdated { name, topic }),
        Just(EventBody::RoomTerminated),
        // Unknown kinds only: an `Unknown` with a known kind is not a value a
        // decoder can produce.
        (
            any::<u8>().prop_filter("unknown kind", |k| !(1..=12).contains(k)),
            proptest::collection::vec(any::<u8>(), 0..16)
        )
            .prop_map(|(kind, data)| EventBody::Unknown { kind, data }),
    ]
}

fn room_event() -> impl Strategy<Value = RoomEvent> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        text(),
        event_body(),
    )
        .prop_map(|(room, seq, at, actor, actor_name, body)| RoomEvent {
            room: RoomId(room),
            seq: Seq(seq),
            at,
            actor: UserId(actor),
            actor_name,
            body,
        })
}

fn user_entry() -> impl Strategy<Value = UserEntry> {
    (user_id(), text(), any::<u64>()).prop_map(|(user, username, at)| UserEntry {
        user,
        username,
        at,
    })
}

/// Any kind byte: known kinds 1-9 and unknown ones are carried alike.
fn notification() -> impl Strategy<Value = Notification> {
    (
        any::<u64>(),
        any::<u8>(),
        any::<u64>(),
        text(),
        user_id(),
        text(),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(
            |(id, kind, room, room_name, actor, actor_name, at, read)| Notification {
                id,
                kind: NotificationKind::from_code(kind),
                room: RoomId(room),
                room_name,
                actor,
                actor_name,
                at,
                read,
            },
        )
}

/// Any reason byte, and `left_at` independent of it: the codec does not
/// check that they agree.
fn room_log_item() -> impl Strategy<Value = RoomLogItem> {
    (
        room_info(),
        any::<u64>(),
        any::<u64>(),
        proptest::option::of(any::<u64>()),
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(
            |(room, first_joined_at, last_joined_at, left_at, reason, terminated)| RoomLogItem {
                room,
                first_joined_at,
                last_joined_at,
                left_at,
                reason: LeaveReason::from_code(reason),
                terminated,
            },
        )
}

fn audit_item() -> impl Strategy<Value = AuditItem> {
    (
        any::<u64>(),
        any::<u64>(),
        user_id(),
        text(),
        text(),
        user_id(),
        text(),
        text(),
    )
        .prop_map(
            |(id, at, actor, actor_name, action, target, target_name, detail)| AuditItem {
                id,
                at,
                actor,
                actor_name,
                action,
                target,
                target_name,
                detail,
            },
        )
}

fn server_msg() -> impl Strategy<Value = ServerMsg> {
    let room = any::<u64>().prop_map(RoomId);
    let welcome = (
        any::<u16>(),
        text(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        proptest::option::of((any::<u64>(), text())),
        proptest::option::of((any::<u32>(), any::<u32>())),
    )
        .prop_map(
            |(version, server, max_frame_len, max_message_len, heartbeat_ms, session, limit)| {
                ServerMsg::Welcome(Welcome {
                    version,
                    server,
                    max_frame_len,
                    max_message_len,
                    heartbeat_ms,
                    session: session.map(|(user, username)| SessionUser {
                        user: UserId(user),
                        username,
                    }),
                    rate_limit: limit.map(|(per_sec, burst)| RateLimit { per_sec, burst }),
                })
            },
        );
    prop_oneof![
        welcome,
        any::<u64>().prop_map(|nonce| ServerMsg::Pong { nonce }),
        Just(ServerMsg::Ok),
        (any::<u16>(), text(), any::<u32>()).prop_map(|(code, message, retry_after_ms)| {
            ServerMsg::Error {
                code,
                message,
                retry_after_ms,
            }
        }),
        (any::<u64>(), text(), text()).prop_map(|(user, username, token)| ServerMsg::Session {
            user: UserId(user),
            username,
            token: token.into(),
        }),
        room_info().prop_map(ServerMsg::Room),
        (
            proptest::collection::vec(room_info(), 0..4),
            any::<u32>(),
            proptest::option::of((any::<u32>(), proptest::collection::vec(read_state(), 0..4)))
        )
            .prop_map(|(rooms, total, unread)| ServerMsg::RoomList {
                rooms,
                total,
                unread: unread.map(|(total, rooms)| UnreadSummary { total, rooms }),
            }),
        read_state().prop_map(ServerMsg::ReadMarker),
        read_state().prop_map(ServerMsg::ReadMarkerMoved),
        proptest::collection::vec((text(), text(), text()), 0..4).prop_map(|stickers| {
            ServerMsg::StickerList {
                stickers: stickers
                    .into_iter()
                    .map(|(id, name, art)| Sticker { id, name, art })
                    .collect(),
            }
        }),
        (
            any::<u64>(),
            proptest::collection::vec((any::<u64>(), text(), any::<u8>()), 0..4)
        )
            .prop_map(|(room, changes)| ServerMsg::Presence {
                room: RoomId(room),
                changes: changes
                    .into_iter()
                    .map(|(user, username, presence)| PresenceChange {
                        user: UserId(user),
                        username,
                        presence: Presence::from_code(presence),
                    })
                    .collect(),
            }),
        (room.clone(), proptest::collection::vec(member(), 0..4))
            .prop_map(|(room, members)| ServerMsg::MemberList { room, members }),
        profile().prop_map(ServerMsg::Profile),
        (room.clone(), proptest::collection::vec(profile(), 0..4))
            .prop_map(|(room, changes)| ServerMsg::ProfileChanged { room, changes }),
        (room.clone(), any::<u64>(), any::<u64>()).prop_map(|(room, seq, at)| {
            ServerMsg::MessageAck {
                room,
                seq: Seq(seq),
                at,
            }
        }),
        (
            room.clone(),
            proptest::collection::vec(room_event(), 0..4),
            any::<bool>()
        )
            .prop_map(|(room, events, has_more)| ServerMsg::HistoryPage {
                room,
                events,
                has_more
            }),
        room_event().prop_map(ServerMsg::Event),
        (room.clone(), any::<u64>()).prop_map(|(room, last_seq)| ServerMsg::ResumeGap {
            room,
            last_seq: Seq(last_seq)
        }),
        (any::<u16>(), text()).prop_map(|(code, message)| ServerMsg::Close { code, message }),
        (room.clone(), proptest::collection::vec(user_entry(), 0..4))
            .prop_map(|(room, users)| ServerMsg::UserList { room, users }),
        (
            any::<u32>(),
            any::<bool>(),
            proptest::collection::vec(notification(), 0..4)
        )
            .prop_map(|(unread, has_more, items)| ServerMsg::NotificationList {
                unread,
                has_more,
                items
            }),
        any::<u32>().prop_map(|unread| ServerMsg::UnreadCount { unread }),
        proptest::collection::vec(room_log_item(), 0..4)
            .prop_map(|items| ServerMsg::RoomLogList { items }),
        (
            room,
            any::<bool>(),
            proptest::collection::vec(audit_item(), 0..4)
        )
            .prop_map(|(room, has_more, items)| ServerMsg::AuditPage {
                room,
                has_more,
                items
            }),
        notification().prop_map(ServerMsg::Notification),
        room_info().prop_map(ServerMsg::RoomAnnounced),
        (any::<u64>(), any::<u64>(), text(), any::<bool>()).prop_map(
            |(room, user, username, typing)| ServerMsg::Typing {
                room: RoomId(room),
                user: UserId(user),
                username,
                typing
            }
        ),
    ]
}

/// A request or a server message, for streams that mix both.
#[derive(Debug, Clone)]
enum AnyMsg {
    Client(Request),
    Server(ServerMsg),
}

fn any_msg() -> impl Strategy<Value = AnyMsg> {
    prop_oneof![
        request().prop_map(AnyMsg::Client),
        server_msg().prop_map(AnyMsg::Server)
    ]
}

// ---------------------------------------------------------------- helpers

/// A codec limit far above anything the strategies generate.
const TEST_MAX: u32 = 1 << 20;

/// Splits every whole frame off `buf`.
fn drain(codec: &mut FrameCodec, buf: &mut BytesMut) -> Vec<RawFrame> {
    let mut frames = Vec::new();
    while let Some(frame) = codec.decode(buf).expect("valid frames") {
        frames.push(frame);
    }
    frames
}

fn only_frame(bytes: &[u8]) -> RawFrame {
    let mut buf = BytesMut::from(bytes);
    let frame = FrameCodec::new(TEST_MAX)
        .decode(&mut buf)
        .expect("valid frame")
        .expect("a whole frame");
    assert!(buf.is_empty(), "exactly one frame");
    frame
}

/// Whatever `frame` decodes to, as a request or a server message, encodes
/// to bytes that decode to the same value.
fn decodes_stably(frame: &RawFrame) -> Result<(), TestCaseError> {
    if let Ok(req) = Request::decode(frame) {
        let mut buf = BytesMut::new();
        req.encode(frame.req_id, &mut buf);
        prop_assert_eq!(Request::decode(&only_frame(&buf)), Ok(req));
    }
    if let Ok(msg) = ServerMsg::decode(frame) {
        let mut buf = BytesMut::new();
        msg.encode(frame.req_id, &mut buf);
        prop_assert_eq!(ServerMsg::decode(&only_frame(&buf)), Ok(msg));
    }
    Ok(())
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

// ------------------------------------------------------------------ tests

proptest! {
    #![proptest_config(config(2048))]

    /// Whatever arrives on the wire, framing and payload decoding return a
    /// value or an error; they never panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut codec = FrameCodec::new(512);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(frame)) = codec.decode(&mut buf) {
            let _ = Request::decode(&frame);
            let _ = ServerMsg::decode(&frame);
        }
    }

    /// Arbitrary payloads behind a valid header reach the payload decoders far
    /// more often than random framing does. Anything that decodes must
    /// re-encode to bytes that decode to the same value.
    #[test]
    fn arbitrary_payloads_never_panic_and_decode_stably(
        t in any::<u8>(),
        req_id in any::<u32>(),
        payload in proptest::collection::vec(any::<u8>(), 0..96),
    ) {
        let frame = RawFrame { kind: t, req_id, payload: payload.into() };
        decodes_stably(&frame)?;
    }
}

proptest! {
    // Enough cases that each of the 28 request and 20 server message
    // variants is drawn a few dozen times per run.
    #![proptest_config(config(1024))]

    #[test]
    fn requests_round_trip(req in request(), req_id in any::<u32>()) {
        let mut buf = BytesMut::new();
        req.encode(req_id, &mut buf);
        let frame = only_frame(&buf);
        prop_assert!(kind::is_request(frame.kind));
        prop_assert_eq!((frame.kind, frame.req_id), (req.kind(), req_id));
        prop_assert_eq!(Request::decode(&frame), Ok(req));
    }

    #[test]
    fn server_msgs_round_trip(msg in server_msg(), req_id in any::<u32>()) {
        let mut buf = BytesMut::new();
        msg.encode(req_id, &mut buf);
        let frame = only_frame(&buf);
        // EVENT frames always carry request id 0 (SPEC.md §5.5).
        let expected_id = if matches!(msg, ServerMsg::Event(_)) { 0 } else { req_id };
        prop_assert_eq!((frame.kind, frame.req_id), (msg.kind(), expected_id));
        prop_assert_eq!(ServerMsg::decode(&frame), Ok(msg));
    }

    /// Valid frames with one byte changed, or cut short, reach deep into
    /// every payload decoder, which random payloads seldom do: they decode to
    /// an error or to a value that re-encodes stably, and never panic.
    #[test]
    fn damaged_frames_never_panic_and_decode_stably(
        msg in any_msg(),
        at in any::<Index>(),
        byte in any::<u8>(),
        cut in any::<bool>(),
    ) {
        let mut buf = BytesMut::new();
        match &msg {
            AnyMsg::Client(r) => r.encode(1, &mut buf),
            AnyMsg::Server(m) => m.encode(1, &mut buf),
        }
        let frame = only_frame(&buf);
        let mut payload = frame.payload.to_vec();
        if !payload.is_empty() {
            let i = at.index(payload.len());
            if cut {
                payload.truncate(i);
            } else {
                payload[i] = byte;
            }
        }
        decodes_stably(&RawFrame { payload: payload.into(), ..frame })?;
    }

    /// A stream cut into chunks at arbitrary points yields the same frames as
    /// the whole stream; so does writing the frames through the codec's
    /// encoder instead of the typed encoders.
    #[test]
    fn chunked_streams_decode_like_whole_ones(
        msgs in proptest::collection::vec(any_msg(), 1..6),
        cuts in proptest::collection::vec(any::<Index>(), 0..8),
    ) {
        let mut stream = BytesMut::new();
        for (i, msg) in msgs.iter().enumerate() {
            match msg {
                AnyMsg::Client(r) => r.encode(i as u32, &mut stream),
                AnyMsg::Server(m) => m.encode(i as u32, &mut stream),
            }
        }
        let whole = drain(&mut FrameCodec::new(TEST_MAX), &mut stream.clone());
        prop_assert_eq!(whole.len(), msgs.len());

        let mut cut_at: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        cut_at.push(stream.len());
        cut_at.sort_unstable();
        let mut codec = FrameCodec::new(TEST_MAX);
        let mut buf = BytesMut::new();
        let mut chunked = Vec::new();
        let mut from = 0;
        for to in cut_at {
            buf.extend_from_slice(&stream[from..to]);
            from = to;
            chunked.extend(drain(&mut codec, &mut buf));
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(&chunked, &whole);

        let mut re_encoded = BytesMut::new();
        for frame in &whole {
            codec.encode(frame.clone(), &mut re_encoded).expect("within the limit");
        }
        prop_assert_eq!(&re_encoded[..], &stream[..]);
    }
}
