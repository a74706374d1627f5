//! The committed test vectors, as the generator builds them (SPEC.md §12).
//!
//! Round-trip vectors are typed messages encoded by the crate. Decode-only
//! and reject vectors are hand-assembled bytes, because no conforming encoder
//! produces them.

use confab_protocol::frame::kind;
use confab_protocol::{
    AuditItem, DirectWith, ErrorCode, EventBody, Hello, Member, Notification, RateLimit, Request,
    ResumePoint, Role, RoomEvent, RoomId, RoomInfo, RoomLogItem, Seq, ServerMsg, SessionUser,
    UserEntry, UserId, UserRef, Visibility, Welcome,
};
use confab_protocol::{LeaveReason, NotificationKind, Presence, PresenceChange};
use confab_protocol::{PasswordChange, Profile, ProfileUpdate};
use confab_protocol::{ReadState, UnreadSummary};

/// A decoded frame and the side that sends it.
#[derive(Debug, Clone)]
pub enum Msg {
    Client(Request),
    Server(ServerMsg),
}

impl Msg {
    pub fn direction(&self) -> &'static str {
        match self {
            Msg::Client(_) => "client_to_server",
            Msg::Server(_) => "server_to_client",
        }
    }
}

/// A frame that encodes to exactly the committed bytes (`vectors/*.json`).
pub struct RoundTrip {
    pub file: &'static str,
    pub name: &'static str,
    pub req_id: u32,
    pub msg: Msg,
}

impl RoundTrip {
    pub fn new(file: &'static str, name: &'static str, req_id: u32, msg: Msg) -> RoundTrip {
        RoundTrip {
            file,
            name,
            req_id,
            msg,
        }
    }
}

/// Bytes that a decoder must accept as `msg`, though an encoder would write
/// them differently (`vectors/decode_only/*.json`).
pub struct DecodeOnly {
    pub file: &'static str,
    pub name: &'static str,
    pub bytes: Vec<u8>,
    pub msg: Msg,
}

/// Bytes that a decoder must reject with `error_code`
/// (`vectors/reject/*.json`).
pub struct Reject {
    pub file: &'static str,
    pub name: &'static str,
    pub direction: &'static str,
    pub max_frame_len: u32,
    pub bytes: Vec<u8>,
    pub error_code: ErrorCode,
    /// Part of the crate's error message, so that a vector cannot pass by
    /// failing for some other reason. Not written to the file.
    pub detail: &'static str,
}

/// 2023-11-14T22:13:20Z, a fixed "now" for every timestamp.
pub const NOW: u64 = 1_700_000_000_000;
const TOKEN: &str = "9j_jxV46m6g-oZpOzpeOTTxt1E5aJyR3B3RZqK2F5tU";

fn rust_cafe() -> RoomInfo {
    RoomInfo {
        id: RoomId(42),
        name: "Rust Café".into(),
        topic: "Systems programming, ☕ included".into(),
        visibility: Visibility::Public,
        owner: UserId(17),
        member_count: 3,
        last_seq: Seq(128),
        created_at: NOW - 86_400_000,
        direct_with: None,
    }
}

fn core_team() -> RoomInfo {
    RoomInfo {
        id: RoomId(300),
        name: "core-team".into(),
        topic: String::new(),
        visibility: Visibility::Private,
        owner: UserId(17),
        member_count: 2,
        last_seq: Seq(9),
        created_at: NOW - 3_600_000,
        direct_with: None,
    }
}

pub fn event(seq: u64, at: u64, actor: (u64, &str), body: EventBody) -> RoomEvent {
    RoomEvent {
        room: RoomId(42),
        seq: Seq(seq),
        at,
        actor: UserId(actor.0),
        actor_name: actor.1.into(),
        body,
    }
}

const ALICE: (u64, &str) = (17, "alice");
pub const BOB: (u64, &str) = (23, "bob");
const CAROL: (u64, &str) = (31, "carol");
const DAVE: (u64, &str) = (44, "dave");
const MALLORY: (u64, &str) = (66, "mallory");
/// The actor of system-made changes (succession, termination): user 0 with
/// an empty name.
const SYSTEM: (u64, &str) = (0, "");

fn off_topic() -> RoomInfo {
    RoomInfo {
        id: RoomId(77),
        name: "off-topic".into(),
        topic: "anything goes".into(),
        visibility: Visibility::Public,
        owner: UserId(31),
        member_count: 5,
        last_seq: Seq(2_048),
        created_at: NOW - 30 * 86_400_000,
        direct_with: None,
    }
}

/// core-team after its last member left: it terminated.
fn core_team_terminated() -> RoomInfo {
    RoomInfo {
        member_count: 0,
        last_seq: Seq(12),
        ..core_team()
    }
}

/// A public room just created by bob, as ROOM_ANNOUNCED shows it.
fn gamedev() -> RoomInfo {
    RoomInfo {
        id: RoomId(301),
        name: "rust-gamedev".into(),
        topic: "Bevy, wgpu and friends".into(),
        visibility: Visibility::Public,
        owner: UserId(23),
        member_count: 1,
        last_seq: Seq(1),
        created_at: NOW,
        direct_with: None,
    }
}

/// bob's direct room with alice (user 17), as bob is sent it: its display
/// name is alice's.
fn direct_with_alice() -> RoomInfo {
    RoomInfo {
        id: RoomId(302),
        name: "alice".into(),
        topic: String::new(),
        visibility: Visibility::Private,
        owner: UserId(17),
        member_count: 2,
        last_seq: Seq(2),
        created_at: NOW,
        direct_with: Some(DirectWith {
            user: UserId(17),
            username: "alice".into(),
        }),
    }
}

/// A notification for bob.
fn note(
    id: u64,
    kind: NotificationKind,
    room: &RoomInfo,
    actor: (u64, &str),
    at: u64,
    read: bool,
) -> Notification {
    Notification {
        id,
        kind,
        room: room.id,
        room_name: room.name.clone(),
        actor: UserId(actor.0),
        actor_name: actor.1.into(),
        at,
        read,
    }
}

fn invited_to_core_team() -> Notification {
    note(
        1_010,
        NotificationKind::Invited,
        &core_team(),
        ALICE,
        NOW,
        false,
    )
}

fn audit(
    id: u64,
    at: u64,
    actor: (u64, &str),
    action: &str,
    target: (u64, &str),
    detail: &str,
) -> AuditItem {
    AuditItem {
        id,
        at,
        actor: UserId(actor.0),
        actor_name: actor.1.into(),
        action: action.into(),
        target: UserId(target.0),
        target_name: target.1.into(),
        detail: detail.into(),
    }
}

fn bob_says_hello() -> RoomEvent {
    event(129, NOW, BOB, EventBody::text("hello, world 👋"))
}

/// Bob's message 129 after he edited it a minute later, as HISTORY and
/// resume show it.
fn bob_says_hello_edited() -> RoomEvent {
    event(
        129,
        NOW,
        BOB,
        EventBody::Message {
            text: "hello, world 🦀".into(),
            edited_at: Some(NOW + 60_000),
            spans: vec![],
            sticker: None,
            attachments: Vec::new(),
        },
    )
}

fn welcome(session: Option<SessionUser>) -> ServerMsg {
    ServerMsg::Welcome(Welcome {
        session,
        ..welcome_fields()
    })
}

fn welcome_fields() -> Welcome {
    Welcome {
        version: 1,
        server: "confabd/0.1.0".into(),
        max_frame_len: 65_536,
        max_message_len: 4096,
        heartbeat_ms: 30_000,
        session: None,
        rate_limit: Some(RateLimit {
            per_sec: 50,
            burst: 100,
        }),
    }
}

pub fn round_trip() -> Vec<RoundTrip> {
    let mut all = base_round_trip();
    all.extend(super::rich_set::round_trip());
    all.extend(super::attach_set::round_trip());
    all.extend(super::conversation_set::round_trip());
    all
}

fn base_round_trip() -> Vec<RoundTrip> {
    use Msg::{Client as C, Server as S};
    let v = RoundTrip::new;
    vec![
        v(
            "01_hello.json",
            "HELLO without token or resume points",
            1,
            C(Request::Hello(Hello {
                version: 1,
                client: "confab-cli/0.1.0".into(),
                token: None,
                resume: vec![],
            })),
        ),
        v(
            "01_hello_with_token_and_resume.json",
            "HELLO with a session token and two resume points",
            1,
            C(Request::Hello(Hello {
                version: 1,
                client: "confab-web/0.1.0".into(),
                token: Some(TOKEN.into()),
                resume: vec![
                    ResumePoint {
                        room: RoomId(42),
                        after: Seq(128),
                    },
                    ResumePoint {
                        room: RoomId(300),
                        after: Seq(0),
                    },
                ],
            })),
        ),
        v(
            "02_ping.json",
            "PING (request id shows big-endian order)",
            0x0102_0304,
            C(Request::Ping { nonce: 987_654_321 }),
        ),
        v(
            "03_register.json",
            "REGISTER",
            2,
            C(Request::Register {
                username: "alice".into(),
                password: "correct horse battery".into(),
            }),
        ),
        v(
            "04_login.json",
            "LOGIN",
            2,
            C(Request::Login {
                username: "alice".into(),
                password: "correct horse battery".into(),
            }),
        ),
        v(
            "05_logout.json",
            "LOGOUT (empty payload)",
            40,
            C(Request::Logout),
        ),
        v(
            "10_create_room.json",
            "CREATE_ROOM with non-ASCII name and topic",
            3,
            C(Request::CreateRoom {
                name: "Rust Café".into(),
                topic: "Systems programming, ☕ included".into(),
                visibility: Visibility::Public,
                members: vec![],
            }),
        ),
        v(
            "10_create_room_private.json",
            "CREATE_ROOM, private, empty topic",
            4,
            C(Request::CreateRoom {
                name: "core-team".into(),
                topic: String::new(),
                visibility: Visibility::Private,
                members: vec![],
            }),
        ),
        v(
            "10_create_room_with_members.json",
            "CREATE_ROOM of a private group chat with two initial members, one by id and one by username",
            5,
            C(Request::CreateRoom {
                name: "weekend trip".into(),
                topic: String::new(),
                visibility: Visibility::Private,
                members: vec![UserRef::id(UserId(7)), UserRef::name("carol")],
            }),
        ),
        v(
            "11_list_rooms.json",
            "LIST_ROOMS",
            5,
            C(Request::ListRooms {
                query: "rust".into(),
                offset: 0,
                limit: 50,
                exact: false,
            }),
        ),
        v(
            "40_welcome_without_rate_limit.json",
            "WELCOME from a server that predates the rate-limit fields: none announced",
            1,
            S(ServerMsg::Welcome(Welcome {
                rate_limit: None,
                ..welcome_fields()
            })),
        ),
        v(
            "11_list_rooms_exact.json",
            "LIST_ROOMS for rooms named exactly \"General\" (any case)",
            17,
            C(Request::ListRooms {
                query: "General".into(),
                offset: 0,
                limit: 10,
                exact: true,
            }),
        ),
        v(
            "12_join_room.json",
            "JOIN_ROOM",
            6,
            C(Request::JoinRoom { room: RoomId(42) }),
        ),
        v(
            "13_leave_room.json",
            "LEAVE_ROOM",
            7,
            C(Request::LeaveRoom { room: RoomId(42) }),
        ),
        v(
            "14_list_members.json",
            "LIST_MEMBERS",
            8,
            C(Request::ListMembers { room: RoomId(42) }),
        ),
        v(
            "15_send_message.json",
            "SEND_MESSAGE with a four-byte UTF-8 character",
            9,
            C(Request::SendMessage {
                room: RoomId(42),
                body: "hello, world 👋".into(),
                spans: vec![],
                sticker: None,
                attachments: Vec::new(),
            }),
        ),
        v(
            "16_history.json",
            "HISTORY from the newest event",
            10,
            C(Request::History {
                room: RoomId(42),
                before: Seq(0),
                limit: 50,
            }),
        ),
        v(
            "16_history_before.json",
            "HISTORY, the page before seq 129",
            11,
            C(Request::History {
                room: RoomId(42),
                before: Seq(129),
                limit: 2,
            }),
        ),
        v(
            "17_my_rooms.json",
            "MY_ROOMS (empty payload)",
            12,
            C(Request::MyRooms),
        ),
        v(
            "18_invite_by_id.json",
            "INVITE by user id (username empty)",
            20,
            C(Request::Invite {
                room: RoomId(300),
                user: UserRef::id(UserId(BOB.0)),
            }),
        ),
        v(
            "18_invite_by_name.json",
            "INVITE by username (user id 0)",
            21,
            C(Request::Invite {
                room: RoomId(300),
                user: UserRef::name(CAROL.1),
            }),
        ),
        v(
            "19_respond_invite_accept.json",
            "RESPOND_INVITE accepting: joins the room",
            22,
            C(Request::RespondInvite {
                room: RoomId(300),
                accept: true,
            }),
        ),
        v(
            "19_respond_invite_decline.json",
            "RESPOND_INVITE declining",
            23,
            C(Request::RespondInvite {
                room: RoomId(300),
                accept: false,
            }),
        ),
        v(
            "1a_request_join.json",
            "REQUEST_JOIN of a private room",
            24,
            C(Request::RequestJoin { room: RoomId(300) }),
        ),
        v(
            "1b_decide_request_approve.json",
            "DECIDE_REQUEST approving dave's request",
            25,
            C(Request::DecideRequest {
                room: RoomId(300),
                user: UserId(DAVE.0),
                approve: true,
            }),
        ),
        v(
            "1b_decide_request_deny.json",
            "DECIDE_REQUEST denying carol's request",
            26,
            C(Request::DecideRequest {
                room: RoomId(300),
                user: UserId(CAROL.0),
                approve: false,
            }),
        ),
        v(
            "1c_kick.json",
            "KICK bob out of room 42",
            27,
            C(Request::Kick {
                room: RoomId(42),
                user: UserId(BOB.0),
            }),
        ),
        v(
            "1d_ban_by_id.json",
            "BAN by user id",
            28,
            C(Request::Ban {
                room: RoomId(42),
                user: UserRef::id(UserId(BOB.0)),
            }),
        ),
        v(
            "1d_ban_by_name.json",
            "BAN by username, of a user who is not a member",
            29,
            C(Request::Ban {
                room: RoomId(42),
                user: UserRef::name(MALLORY.1),
            }),
        ),
        v(
            "1e_unban.json",
            "UNBAN",
            30,
            C(Request::Unban {
                room: RoomId(42),
                user: UserId(MALLORY.0),
            }),
        ),
        v(
            "1f_set_role_admin.json",
            "SET_ROLE: the owner makes bob an admin",
            31,
            C(Request::SetRole {
                room: RoomId(42),
                user: UserId(BOB.0),
                role: Role::Admin,
            }),
        ),
        v(
            "1f_set_role_member.json",
            "SET_ROLE: the owner unmakes carol as admin",
            32,
            C(Request::SetRole {
                room: RoomId(42),
                user: UserId(CAROL.0),
                role: Role::Member,
            }),
        ),
        v(
            "20_list_join_requests.json",
            "LIST_JOIN_REQUESTS",
            33,
            C(Request::ListJoinRequests { room: RoomId(300) }),
        ),
        v(
            "21_list_bans.json",
            "LIST_BANS",
            34,
            C(Request::ListBans { room: RoomId(42) }),
        ),
        v(
            "22_list_notifications.json",
            "LIST_NOTIFICATIONS from the newest, read and unread",
            35,
            C(Request::ListNotifications {
                before: 0,
                limit: 50,
                unread_only: false,
            }),
        ),
        v(
            "22_list_notifications_unread_before.json",
            "LIST_NOTIFICATIONS, unread only, older than id 1001",
            36,
            C(Request::ListNotifications {
                before: 1_001,
                limit: 20,
                unread_only: true,
            }),
        ),
        v(
            "23_mark_read.json",
            "MARK_READ up to notification 1007",
            37,
            C(Request::MarkRead { up_to: 1_007 }),
        ),
        v(
            "24_room_log.json",
            "ROOM_LOG (empty payload)",
            38,
            C(Request::RoomLog),
        ),
        v(
            "25_room_audit.json",
            "ROOM_AUDIT from the newest entry",
            39,
            C(Request::RoomAudit {
                room: RoomId(42),
                before: 0,
                limit: 100,
            }),
        ),
        v(
            "25_room_audit_before.json",
            "ROOM_AUDIT, the page before entry 5004",
            40,
            C(Request::RoomAudit {
                room: RoomId(42),
                before: 5_004,
                limit: 3,
            }),
        ),
        v(
            "26_update_room.json",
            "UPDATE_ROOM: new name and topic",
            41,
            C(Request::UpdateRoom {
                room: RoomId(42),
                name: "Rust Café".into(),
                topic: "Systems programming, 🦀 and ☕".into(),
            }),
        ),
        v(
            "27_edit_message.json",
            "EDIT_MESSAGE: new text for message 129",
            42,
            C(Request::EditMessage {
                room: RoomId(42),
                seq: Seq(129),
                text: "hello, world 🦀".into(),
                spans: vec![],
            }),
        ),
        v(
            "28_delete_message.json",
            "DELETE_MESSAGE of message 129",
            43,
            C(Request::DeleteMessage {
                room: RoomId(42),
                seq: Seq(129),
            }),
        ),
        v(
            "29_typing_start.json",
            "TYPING_START in room 42",
            44,
            C(Request::TypingStart { room: RoomId(42) }),
        ),
        v(
            "2a_typing_stop.json",
            "TYPING_STOP in room 42",
            45,
            C(Request::TypingStop { room: RoomId(42) }),
        ),
        v(
            "2b_set_read_marker.json",
            "SET_READ_MARKER: room 42 read up to 129",
            46,
            C(Request::SetReadMarker {
                room: RoomId(42),
                seq: Seq(129),
            }),
        ),
        v(
            "2c_set_away.json",
            "SET_AWAY: the caller is away",
            47,
            C(Request::SetAway { away: true }),
        ),
        v(
            "2c_set_away_cleared.json",
            "SET_AWAY: the caller is back (away cleared)",
            48,
            C(Request::SetAway { away: false }),
        ),
        v(
            "2d_open_direct.json",
            "OPEN_DIRECT with user 23 (by id)",
            49,
            C(Request::OpenDirect {
                user: UserRef::id(UserId(23)),
            }),
        ),
        v(
            "2d_open_direct_by_name.json",
            "OPEN_DIRECT with bob (by username)",
            50,
            C(Request::OpenDirect {
                user: UserRef::name("bob"),
            }),
        ),
        v(
            "31_change_password.json",
            "CHANGE_PASSWORD: the current password, then the new one",
            49,
            C(Request::ChangePassword(PasswordChange {
                current: "correct horse".into(),
                new: "battery staple".into(),
            })),
        ),
        v(
            "32_get_profile.json",
            "GET_PROFILE of user 23",
            50,
            C(Request::GetProfile { user: UserId(23) }),
        ),
        v(
            "33_update_profile.json",
            "UPDATE_PROFILE: a display name, a two-line bio and an email address",
            51,
            C(Request::UpdateProfile(ProfileUpdate {
                display_name: Some("Bob Ö.".into()),
                bio: "Plays the tuba.\nAsk me about brass.".into(),
                email: Some("bob@example.org".into()),
            })),
        ),
        v(
            "33_update_profile_cleared.json",
            "UPDATE_PROFILE clearing everything (the username is shown again)",
            52,
            C(Request::UpdateProfile(ProfileUpdate::default())),
        ),
        v(
            "51_profile_own.json",
            "PROFILE: the caller's own profile, with its email",
            51,
            S(ServerMsg::Profile(Profile {
                user: UserId(23),
                username: "bob".into(),
                display_name: Some("Bob Ö.".into()),
                bio: "Plays the tuba.\nAsk me about brass.".into(),
                email: Some("bob@example.org".into()),
                avatar: None,
            })),
        ),
        v(
            "51_profile_other.json",
            "PROFILE: another user's profile (never an email; no display name set)",
            50,
            S(ServerMsg::Profile(Profile {
                user: UserId(31),
                username: "carol".into(),
                display_name: None,
                bio: String::new(),
                email: None,
                avatar: None,
            })),
        ),
        v(
            "51_profile_with_avatar.json",
            "PROFILE with the reserved avatar field set (file 9; this server never sets it)",
            50,
            S(ServerMsg::Profile(Profile {
                user: UserId(17),
                username: "alice".into(),
                display_name: Some("Alice".into()),
                bio: String::new(),
                email: None,
                avatar: Some(9),
            })),
        ),
        v(
            "88_profile_changed.json",
            "PROFILE_CHANGED: two members of room 42 changed their profiles in one tick",
            0,
            S(ServerMsg::ProfileChanged {
                room: RoomId(42),
                changes: vec![
                    Profile {
                        user: UserId(17),
                        username: "alice".into(),
                        display_name: Some("Alice".into()),
                        bio: String::new(),
                        email: None,
                        avatar: None,
                    },
                    Profile {
                        user: UserId(23),
                        username: "bob".into(),
                        display_name: None,
                        bio: "Plays the tuba.".into(),
                        email: None,
                        avatar: None,
                    },
                ],
            }),
        ),
        v(
            "40_welcome.json",
            "WELCOME to an unauthenticated connection",
            1,
            S(welcome(None)),
        ),
        v(
            "40_welcome_with_session.json",
            "WELCOME after HELLO with a valid token",
            1,
            S(welcome(Some(SessionUser {
                user: UserId(17),
                username: "alice".into(),
            }))),
        ),
        v(
            "41_pong.json",
            "PONG echoing PING's nonce and request id",
            0x0102_0304,
            S(ServerMsg::Pong { nonce: 987_654_321 }),
        ),
        v("42_ok.json", "OK (empty payload)", 7, S(ServerMsg::Ok)),
        v(
            "43_error.json",
            "ERROR NOT_A_MEMBER",
            8,
            S(ServerMsg::Error {
                code: ErrorCode::NotAMember as u16,
                message: ErrorCode::NotAMember.default_message().into(),
                retry_after_ms: 0,
            }),
        ),
        v(
            "43_error_retry_after.json",
            "ERROR TOO_MANY_ATTEMPTS with a retry-after of 300 s (field 3, appended)",
            9,
            S(ServerMsg::Error {
                code: ErrorCode::TooManyAttempts as u16,
                message: ErrorCode::TooManyAttempts.default_message().into(),
                retry_after_ms: 300_000,
            }),
        ),
        v(
            "44_session.json",
            "SESSION after REGISTER or LOGIN",
            2,
            S(ServerMsg::Session {
                user: UserId(17),
                username: "alice".into(),
                token: TOKEN.into(),
            }),
        ),
        v(
            "45_room.json",
            "ROOM after CREATE_ROOM",
            3,
            S(ServerMsg::Room(rust_cafe())),
        ),
        v(
            "45_room_direct.json",
            "ROOM after OPEN_DIRECT: bob's direct room with alice (fields 9 and 10, appended)",
            50,
            S(ServerMsg::Room(direct_with_alice())),
        ),
        v(
            "46_room_list.json",
            "ROOM_LIST with two rooms, one private",
            5,
            S(ServerMsg::RoomList {
                total: 2,
                rooms: vec![rust_cafe(), core_team()],
                unread: None,
            }),
        ),
        v(
            "46_room_list_empty_page.json",
            "ROOM_LIST past the last match: total counts all matches",
            5,
            S(ServerMsg::RoomList {
                total: 2,
                rooms: vec![],
                unread: None,
            }),
        ),
        v(
            "46_room_list_my_rooms_unread.json",
            "ROOM_LIST answering MY_ROOMS: two rooms with their read markers and unread counts",
            6,
            S(ServerMsg::RoomList {
                total: 2,
                rooms: vec![rust_cafe(), core_team()],
                unread: Some(UnreadSummary {
                    total: 7,
                    rooms: vec![
                        ReadState {
                            room: rust_cafe().id,
                            read_seq: Seq(120),
                            unread: 7,
                        },
                        ReadState {
                            room: core_team().id,
                            read_seq: Seq(0),
                            unread: 0,
                        },
                    ],
                }),
            }),
        ),
        v(
            "4f_read_marker.json",
            "READ_MARKER: read up to 129 in room 42, 3 messages unread",
            46,
            S(ServerMsg::ReadMarker(ReadState {
                room: RoomId(42),
                read_seq: Seq(129),
                unread: 3,
            })),
        ),
        v(
            "86_read_marker_moved.json",
            "READ_MARKER_MOVED: another device read room 42 up to 140",
            0,
            S(ServerMsg::ReadMarkerMoved(ReadState {
                room: RoomId(42),
                read_seq: Seq(140),
                unread: 0,
            })),
        ),
        v(
            "87_presence_one.json",
            "PRESENCE: one change in the tick, bob is away (told to the members of room 42)",
            0,
            S(ServerMsg::Presence {
                room: RoomId(42),
                changes: vec![PresenceChange {
                    user: UserId(23),
                    username: "bob".into(),
                    presence: Presence::Away,
                }],
            }),
        ),
        v(
            "87_presence_several.json",
            "PRESENCE: three changes of one tick in one frame (alice online, bob offline, carol away)",
            0,
            S(ServerMsg::Presence {
                room: RoomId(42),
                changes: vec![
                    PresenceChange {
                        user: UserId(17),
                        username: "alice".into(),
                        presence: Presence::Online,
                    },
                    PresenceChange {
                        user: UserId(23),
                        username: "bob".into(),
                        presence: Presence::Offline,
                    },
                    PresenceChange {
                        user: UserId(31),
                        username: "carol".into(),
                        presence: Presence::Away,
                    },
                ],
            }),
        ),
        v(
            "47_member_list_with_presence.json",
            "MEMBER_LIST with each member's presence (appended field)",
            8,
            S(ServerMsg::MemberList {
                room: RoomId(42),
                members: vec![
                    Member {
                        user: UserId(17),
                        username: "alice".into(),
                        role: Role::Owner,
                        online: true,
                        joined_at: NOW - 86_400_000,
                        presence: Some(Presence::Online),
                    },
                    Member {
                        user: UserId(31),
                        username: "carol".into(),
                        role: Role::Admin,
                        online: false,
                        joined_at: NOW - 7_200_000,
                        presence: Some(Presence::Offline),
                    },
                    Member {
                        user: UserId(23),
                        username: "bob".into(),
                        role: Role::Member,
                        online: true,
                        joined_at: NOW - 60_000,
                        presence: Some(Presence::Away),
                    },
                ],
            }),
        ),
        v(
            "47_member_list.json",
            "MEMBER_LIST in join order",
            8,
            S(ServerMsg::MemberList {
                room: RoomId(42),
                members: vec![
                    Member {
                        user: UserId(17),
                        username: "alice".into(),
                        role: Role::Owner,
                        online: true,
                        joined_at: NOW - 86_400_000,
                        presence: None,
                    },
                    Member {
                        user: UserId(31),
                        username: "carol".into(),
                        role: Role::Admin,
                        online: false,
                        joined_at: NOW - 7_200_000,
                        presence: None,
                    },
                    Member {
                        user: UserId(23),
                        username: "bob".into(),
                        role: Role::Member,
                        online: true,
                        joined_at: NOW - 60_000,
                        presence: None,
                    },
                ],
            }),
        ),
        v(
            "48_message_ack.json",
            "MESSAGE_ACK",
            9,
            S(ServerMsg::MessageAck {
                room: RoomId(42),
                seq: Seq(129),
                at: NOW,
            }),
        ),
        v(
            "49_history_page.json",
            "HISTORY_PAGE with two events, newest first",
            10,
            S(ServerMsg::HistoryPage {
                room: RoomId(42),
                has_more: true,
                events: vec![
                    bob_says_hello(),
                    event(128, NOW - 60_000, BOB, EventBody::MemberJoined),
                ],
            }),
        ),
        v(
            "49_history_page_edited_and_deleted.json",
            "HISTORY_PAGE after edits and a delete: the kept MESSAGE_DELETED, the kept MESSAGE_EDITED (no text), a tombstone, an edited message",
            12,
            S(ServerMsg::HistoryPage {
                room: RoomId(42),
                has_more: true,
                events: vec![
                    event(
                        132,
                        NOW + 120_000,
                        CAROL,
                        EventBody::MessageDeleted { target: Seq(130) },
                    ),
                    event(
                        131,
                        NOW + 60_000,
                        BOB,
                        EventBody::MessageEdited {
                            target: Seq(129),
                            text: String::new(),
                            spans: vec![],
                        },
                    ),
                    event(130, NOW + 30_000, DAVE, EventBody::Tombstone),
                    bob_says_hello_edited(),
                ],
            }),
        ),
        v(
            "49_history_page_empty.json",
            "HISTORY_PAGE with no events",
            11,
            S(ServerMsg::HistoryPage {
                room: RoomId(42),
                has_more: false,
                events: vec![],
            }),
        ),
        v(
            "4a_user_list.json",
            "USER_LIST of pending join requests, oldest first",
            33,
            S(ServerMsg::UserList {
                room: RoomId(300),
                users: vec![
                    UserEntry {
                        user: UserId(CAROL.0),
                        username: CAROL.1.into(),
                        at: NOW - 120_000,
                    },
                    UserEntry {
                        user: UserId(DAVE.0),
                        username: DAVE.1.into(),
                        at: NOW - 5_000,
                    },
                ],
            }),
        ),
        v(
            "4a_user_list_empty.json",
            "USER_LIST of a room without bans",
            34,
            S(ServerMsg::UserList {
                room: RoomId(42),
                users: vec![],
            }),
        ),
        v(
            "4b_notification_list.json",
            "NOTIFICATION_LIST with one notification of every kind, newest first",
            35,
            S(ServerMsg::NotificationList {
                unread: 3,
                has_more: true,
                items: vec![
                    note(
                        1_009,
                        NotificationKind::RoomTerminated,
                        &core_team(),
                        SYSTEM,
                        NOW - 60_000,
                        false,
                    ),
                    note(
                        1_008,
                        NotificationKind::RoleChanged,
                        &rust_cafe(),
                        ALICE,
                        NOW - 120_000,
                        false,
                    ),
                    note(
                        1_007,
                        NotificationKind::Unbanned,
                        &off_topic(),
                        CAROL,
                        NOW - 180_000,
                        false,
                    ),
                    note(
                        1_006,
                        NotificationKind::Banned,
                        &off_topic(),
                        CAROL,
                        NOW - 240_000,
                        true,
                    ),
                    note(
                        1_005,
                        NotificationKind::Kicked,
                        &off_topic(),
                        CAROL,
                        NOW - 300_000,
                        true,
                    ),
                    note(
                        1_004,
                        NotificationKind::RequestDenied,
                        &core_team(),
                        ALICE,
                        NOW - 360_000,
                        true,
                    ),
                    note(
                        1_003,
                        NotificationKind::RequestApproved,
                        &rust_cafe(),
                        ALICE,
                        NOW - 420_000,
                        true,
                    ),
                    note(
                        1_002,
                        NotificationKind::JoinRequest,
                        &off_topic(),
                        DAVE,
                        NOW - 480_000,
                        true,
                    ),
                    note(
                        1_001,
                        NotificationKind::Invited,
                        &core_team(),
                        ALICE,
                        NOW - 540_000,
                        true,
                    ),
                ],
            }),
        ),
        v(
            "4b_notification_list_empty.json",
            "NOTIFICATION_LIST with no (unread) notifications",
            36,
            S(ServerMsg::NotificationList {
                unread: 0,
                has_more: false,
                items: vec![],
            }),
        ),
        v(
            "4c_unread_count.json",
            "UNREAD_COUNT after MARK_READ",
            37,
            S(ServerMsg::UnreadCount { unread: 2 }),
        ),
        v(
            "4d_room_log_list.json",
            "ROOM_LOG_LIST: a room still joined, one kicked from, one terminated",
            38,
            S(ServerMsg::RoomLogList {
                items: vec![
                    RoomLogItem {
                        room: rust_cafe(),
                        first_joined_at: NOW - 7_200_000,
                        last_joined_at: NOW - 60_000,
                        left_at: None,
                        reason: LeaveReason::Active,
                        terminated: false,
                    },
                    RoomLogItem {
                        room: off_topic(),
                        first_joined_at: NOW - 86_400_000,
                        last_joined_at: NOW - 3_600_000,
                        left_at: Some(NOW - 300_000),
                        reason: LeaveReason::Kicked,
                        terminated: false,
                    },
                    RoomLogItem {
                        room: core_team_terminated(),
                        first_joined_at: NOW - 3_000_000,
                        last_joined_at: NOW - 3_000_000,
                        left_at: Some(NOW - 60_000),
                        reason: LeaveReason::Terminated,
                        terminated: true,
                    },
                ],
            }),
        ),
        v(
            "4d_room_log_list_empty.json",
            "ROOM_LOG_LIST of a user who was never in a room",
            38,
            S(ServerMsg::RoomLogList { items: vec![] }),
        ),
        v(
            "4e_audit_page.json",
            "AUDIT_PAGE, newest first, with system and targeted actions",
            39,
            S(ServerMsg::AuditPage {
                room: RoomId(42),
                has_more: true,
                items: vec![
                    audit(
                        5_006,
                        NOW + 3_000,
                        SYSTEM,
                        "ownership_transferred",
                        CAROL,
                        "owner",
                    ),
                    audit(5_005, NOW + 3_000, ALICE, "member_left", (0, ""), ""),
                    audit(5_004, NOW + 2_000, ALICE, "role_changed", BOB, "admin"),
                    audit(5_003, NOW + 1_000, ALICE, "member_banned", MALLORY, ""),
                    audit(5_002, NOW, ALICE, "member_kicked", BOB, ""),
                    audit(
                        5_001,
                        NOW - 1_000,
                        CAROL,
                        "room_updated",
                        (0, ""),
                        "Rust Café",
                    ),
                ],
            }),
        ),
        v(
            "80_event_message.json",
            "EVENT kind 1 MESSAGE",
            0,
            S(ServerMsg::Event(bob_says_hello())),
        ),
        v(
            "80_event_member_joined.json",
            "EVENT kind 2 MEMBER_JOINED",
            0,
            S(ServerMsg::Event(event(
                128,
                NOW - 60_000,
                BOB,
                EventBody::MemberJoined,
            ))),
        ),
        v(
            "80_event_member_left.json",
            "EVENT kind 3 MEMBER_LEFT",
            0,
            S(ServerMsg::Event(event(
                130,
                NOW + 1_000,
                CAROL,
                EventBody::MemberLeft,
            ))),
        ),
        v(
            "80_event_room_created.json",
            "EVENT kind 4 ROOM_CREATED, the first event of a room",
            0,
            S(ServerMsg::Event(RoomEvent {
                room: RoomId(300),
                seq: Seq(1),
                at: NOW - 3_600_000,
                actor: UserId(ALICE.0),
                actor_name: ALICE.1.into(),
                body: EventBody::RoomCreated {
                    name: "core-team".into(),
                    topic: String::new(),
                },
            })),
        ),
        v(
            "80_event_unknown_kind.json",
            "EVENT of unknown kind 99: clients keep or skip the bytes",
            0,
            S(ServerMsg::Event(event(
                131,
                NOW + 2_000,
                ALICE,
                EventBody::Unknown {
                    kind: 99,
                    data: vec![0x03, b'a', b'b', b'c', 0x01],
                },
            ))),
        ),
        v(
            "80_event_member_kicked.json",
            "EVENT kind 5 MEMBER_KICKED: alice kicked bob",
            0,
            S(ServerMsg::Event(event(
                132,
                NOW + 3_000,
                ALICE,
                EventBody::MemberKicked {
                    target: UserId(BOB.0),
                    target_name: BOB.1.into(),
                },
            ))),
        ),
        v(
            "80_event_member_banned.json",
            "EVENT kind 6 MEMBER_BANNED: alice banned mallory",
            0,
            S(ServerMsg::Event(event(
                133,
                NOW + 4_000,
                ALICE,
                EventBody::MemberBanned {
                    target: UserId(MALLORY.0),
                    target_name: MALLORY.1.into(),
                },
            ))),
        ),
        v(
            "80_event_role_changed.json",
            "EVENT kind 7 ROLE_CHANGED: the owner made bob an admin",
            0,
            S(ServerMsg::Event(event(
                134,
                NOW + 5_000,
                ALICE,
                EventBody::RoleChanged {
                    target: UserId(BOB.0),
                    target_name: BOB.1.into(),
                    role: Role::Admin,
                },
            ))),
        ),
        v(
            "80_event_role_changed_by_succession.json",
            "EVENT kind 7 ROLE_CHANGED by succession: actor 0 (system), carol becomes owner",
            0,
            S(ServerMsg::Event(event(
                136,
                NOW + 7_000,
                SYSTEM,
                EventBody::RoleChanged {
                    target: UserId(CAROL.0),
                    target_name: CAROL.1.into(),
                    role: Role::Owner,
                },
            ))),
        ),
        v(
            "80_event_room_updated.json",
            "EVENT kind 8 ROOM_UPDATED: new name and topic",
            0,
            S(ServerMsg::Event(event(
                135,
                NOW + 6_000,
                CAROL,
                EventBody::RoomUpdated {
                    name: "Rust Café".into(),
                    topic: "Systems programming, 🦀 and ☕".into(),
                },
            ))),
        ),
        v(
            "80_event_room_terminated.json",
            "EVENT kind 9 ROOM_TERMINATED, the last event of a room (actor 0, system)",
            0,
            S(ServerMsg::Event(RoomEvent {
                room: RoomId(300),
                seq: Seq(12),
                at: NOW - 60_000,
                actor: UserId(SYSTEM.0),
                actor_name: SYSTEM.1.into(),
                body: EventBody::RoomTerminated,
            })),
        ),
        v(
            "80_event_message_edited_text.json",
            "EVENT kind 1 MESSAGE that was edited (appended edited_at), as HISTORY and resume show it",
            0,
            S(ServerMsg::Event(bob_says_hello_edited())),
        ),
        v(
            "80_event_message_edited.json",
            "EVENT kind 10 MESSAGE_EDITED, live: bob replaced the text of message 129",
            0,
            S(ServerMsg::Event(event(
                131,
                NOW + 60_000,
                BOB,
                EventBody::MessageEdited {
                    target: Seq(129),
                    text: "hello, world 🦀".into(),
                    spans: vec![],
                },
            ))),
        ),
        v(
            "80_event_message_deleted.json",
            "EVENT kind 11 MESSAGE_DELETED: carol (an admin) deleted message 130",
            0,
            S(ServerMsg::Event(event(
                132,
                NOW + 120_000,
                CAROL,
                EventBody::MessageDeleted { target: Seq(130) },
            ))),
        ),
        v(
            "80_event_tombstone.json",
            "EVENT kind 12 TOMBSTONE: dave's deleted message 130, as HISTORY and resume show it",
            0,
            S(ServerMsg::Event(event(
                130,
                NOW + 30_000,
                DAVE,
                EventBody::Tombstone,
            ))),
        ),
        v(
            "81_resume_gap.json",
            "RESUME_GAP: reload history of room 7",
            0,
            S(ServerMsg::ResumeGap {
                room: RoomId(7),
                last_seq: Seq(1024),
            }),
        ),
        v(
            "82_close.json",
            "CLOSE SLOW_CONSUMER",
            0,
            S(ServerMsg::Close {
                code: ErrorCode::SlowConsumer as u16,
                message: ErrorCode::SlowConsumer.default_message().into(),
            }),
        ),
        v(
            "83_notification.json",
            "NOTIFICATION event: alice invited bob to core-team",
            0,
            S(ServerMsg::Notification(invited_to_core_team())),
        ),
        v(
            "83_notification_unknown_kind.json",
            "NOTIFICATION event of unknown kind 42: clients keep or skip it",
            0,
            S(ServerMsg::Notification(Notification {
                kind: NotificationKind::Unknown(42),
                id: 1_011,
                ..invited_to_core_team()
            })),
        ),
        v(
            "83_notification_mentioned.json",
            "NOTIFICATION: alice mentioned bob in core-team (kind 10)",
            0,
            S(ServerMsg::Notification(Notification {
                kind: NotificationKind::Mentioned,
                id: 1_012,
                ..invited_to_core_team()
            })),
        ),
        v(
            "84_room_announced.json",
            "ROOM_ANNOUNCED: bob created a public room",
            0,
            S(ServerMsg::RoomAnnounced(gamedev())),
        ),
        v(
            "85_typing_started.json",
            "TYPING: bob is typing in room 42",
            0,
            S(ServerMsg::Typing {
                room: RoomId(42),
                user: UserId(23),
                username: "bob".into(),
                typing: true,
            }),
        ),
        v(
            "85_typing_stopped.json",
            "TYPING: bob stopped typing in room 42 (or his typing expired)",
            0,
            S(ServerMsg::Typing {
                room: RoomId(42),
                user: UserId(23),
                username: "bob".into(),
                typing: false,
            }),
        ),
    ]
}

/// Assembles a frame by hand: length, type, request id, payload.
pub fn frame(t: u8, req_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&(5 + payload.len() as u32).to_be_bytes());
    out.push(t);
    out.extend_from_slice(&req_id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The bytes the crate's encoder writes for `msg`, as a hand-editable
/// payload (everything after the 9-byte header).
pub fn encoded_payload(msg: &Msg) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    match msg {
        Msg::Client(r) => r.encode(0, &mut buf),
        Msg::Server(m) => m.encode(0, &mut buf),
    }
    buf[9..].to_vec()
}

/// The event of the "appended field" decode-only vectors. They used a
/// MESSAGE until MESSAGE gained its appended `edited_at`, which gave their
/// extra byte a meaning (and made them round trips): a kind whose fields
/// are complete shows the rule instead.
fn alice_kicks_bob() -> RoomEvent {
    event(
        132,
        NOW + 3_000,
        ALICE,
        EventBody::MemberKicked {
            target: UserId(BOB.0),
            target_name: BOB.1.into(),
        },
    )
}

pub fn decode_only() -> Vec<DecodeOnly> {
    let mut all = base_decode_only();
    all.extend(super::rich_set::decode_only());
    all.extend(super::attach_set::decode_only());
    all
}

fn base_decode_only() -> Vec<DecodeOnly> {
    use Msg::{Client as C, Server as S};
    let ping = C(Request::Ping { nonce: 5 });
    let join = C(Request::JoinRoom { room: RoomId(5) });
    let welcome = welcome(None);
    let mut welcome_plus = encoded_payload(&S(welcome.clone()));
    welcome_plus.extend_from_slice(&[0x2a, 0x00]);
    let mut old_list_rooms = encoded_payload(&C(Request::ListRooms {
        query: "rust".into(),
        offset: 0,
        limit: 50,
        exact: false,
    }));
    assert_eq!(old_list_rooms.pop(), Some(0), "the appended `exact` byte");
    // A CREATE_ROOM that writes its `members` list although it is empty.
    let mut create_no_members = encoded_payload(&C(Request::CreateRoom {
        name: "core-team".into(),
        topic: String::new(),
        visibility: Visibility::Private,
        members: vec![],
    }));
    create_no_members.push(0);
    let mut event_plus = encoded_payload(&S(ServerMsg::Event(alice_kicks_bob())));
    event_plus.extend_from_slice(&[0x07]);
    // A HISTORY_PAGE whose single nested event carries one extra byte inside
    // its own length prefix.
    let mut nested_event = encoded_payload(&S(ServerMsg::Event(alice_kicks_bob())));
    nested_event.push(0x07);
    let mut page = vec![42, 0x00, 0x01, nested_event.len() as u8];
    page.extend_from_slice(&nested_event);
    // A NOTIFICATION whose nested item carries one extra byte inside its own
    // length prefix.
    let mut notification_plus =
        encoded_payload(&S(ServerMsg::Notification(invited_to_core_team())));
    assert_eq!(
        notification_plus[0] as usize,
        notification_plus.len() - 1,
        "one-byte length prefix of the nested notification"
    );
    notification_plus[0] += 1;
    notification_plus.push(0x07);
    vec![
        DecodeOnly {
            file: "02_ping_trailing_bytes.json",
            name: "PING with two unknown trailing bytes, which are ignored",
            bytes: frame(kind::PING, 3, &[0x05, 0xaa, 0xbb]),
            msg: ping,
        },
        DecodeOnly {
            file: "05_logout_with_payload.json",
            name: "LOGOUT with payload bytes, which are ignored",
            bytes: frame(kind::LOGOUT, 4, &[0x00, 0x01]),
            msg: C(Request::Logout),
        },
        DecodeOnly {
            file: "12_join_room_non_minimal_varint.json",
            name: "JOIN_ROOM whose room id 5 is written in three bytes (85 80 00)",
            bytes: frame(kind::JOIN_ROOM, 5, &[0x85, 0x80, 0x00]),
            msg: join,
        },
        DecodeOnly {
            file: "11_list_rooms_without_exact.json",
            name: "LIST_ROOMS from a client that predates the `exact` field: a substring search",
            bytes: frame(kind::LIST_ROOMS, 16, &old_list_rooms),
            msg: C(Request::ListRooms {
                query: "rust".into(),
                offset: 0,
                limit: 50,
                exact: false,
            }),
        },
        DecodeOnly {
            file: "10_create_room_empty_members.json",
            name: "CREATE_ROOM with an explicitly empty `members` list: no initial members (an encoder omits the field)",
            bytes: frame(kind::CREATE_ROOM, 4, &create_no_members),
            msg: C(Request::CreateRoom {
                name: "core-team".into(),
                topic: String::new(),
                visibility: Visibility::Private,
                members: vec![],
            }),
        },
        DecodeOnly {
            file: "40_welcome_with_appended_field.json",
            name: "WELCOME from a newer server with an appended field, which is ignored",
            bytes: frame(kind::WELCOME, 1, &welcome_plus),
            msg: S(welcome),
        },
        DecodeOnly {
            file: "49_history_page_event_with_appended_field.json",
            name: "HISTORY_PAGE whose nested event carries an appended field, which is ignored",
            bytes: frame(kind::HISTORY_PAGE, 10, &page),
            msg: S(ServerMsg::HistoryPage {
                room: RoomId(42),
                has_more: false,
                events: vec![alice_kicks_bob()],
            }),
        },
        DecodeOnly {
            file: "80_event_message_with_appended_field.json",
            name: "EVENT of a known kind with an appended field, which is ignored",
            bytes: frame(kind::EVENT, 0, &event_plus),
            msg: S(ServerMsg::Event(alice_kicks_bob())),
        },
        DecodeOnly {
            file: "83_notification_with_appended_field.json",
            name: "NOTIFICATION whose nested item carries an appended field, which is ignored",
            bytes: frame(kind::NOTIFICATION, 0, &notification_plus),
            msg: S(ServerMsg::Notification(invited_to_core_team())),
        },
    ]
}

pub fn reject() -> Vec<Reject> {
    let mut all = base_reject();
    all.extend(super::rich_set::reject());
    all.extend(super::attach_set::reject());
    all
}

fn base_reject() -> Vec<Reject> {
    const C2S: &str = "client_to_server";
    const S2C: &str = "server_to_client";
    const MAX: u32 = 65_536;
    let r = |file, name, direction, bytes, error_code, detail| Reject {
        file,
        name,
        direction,
        max_frame_len: MAX,
        bytes,
        error_code,
        detail,
    };
    let mut create_room_bad_visibility = encoded_payload(&Msg::Client(Request::CreateRoom {
        name: "x".into(),
        topic: String::new(),
        visibility: Visibility::Public,
        members: vec![],
    }));
    *create_room_bad_visibility
        .last_mut()
        .expect("visibility byte") = 2;
    let mut room_bad_visibility = encoded_payload(&Msg::Server(ServerMsg::Room(core_team())));
    // Byte layout: nested length, id (2 bytes for 300), name, topic, visibility.
    let vis_at = 1 + 2 + 1 + "core-team".len() + 1;
    assert_eq!(
        room_bad_visibility[vis_at], 1,
        "the private visibility byte"
    );
    room_bad_visibility[vis_at] = 7;
    // A direct room's RoomInfo whose appended username (field 10) is cut
    // off: the nested item ends after `direct_user`.
    let mut room_direct_truncated =
        encoded_payload(&Msg::Server(ServerMsg::Room(direct_with_alice())));
    let cut = 1 + "alice".len();
    room_direct_truncated.truncate(room_direct_truncated.len() - cut);
    room_direct_truncated[0] -= cut as u8;
    let mut set_role_bad_role = encoded_payload(&Msg::Client(Request::SetRole {
        room: RoomId(42),
        user: UserId(BOB.0),
        role: Role::Admin,
    }));
    *set_role_bad_role.last_mut().expect("role byte") = 7;
    let mut respond_invite_bad_bool = encoded_payload(&Msg::Client(Request::RespondInvite {
        room: RoomId(300),
        accept: true,
    }));
    *respond_invite_bad_bool.last_mut().expect("accept byte") = 2;
    let mut role_changed_bad_role = encoded_payload(&Msg::Server(ServerMsg::Event(event(
        134,
        NOW,
        ALICE,
        EventBody::RoleChanged {
            target: UserId(BOB.0),
            target_name: BOB.1.into(),
            role: Role::Admin,
        },
    ))));
    *role_changed_bad_role.last_mut().expect("role byte") = 3;
    let mut room_log_bad_presence = encoded_payload(&Msg::Server(ServerMsg::RoomLogList {
        items: vec![RoomLogItem {
            room: rust_cafe(),
            first_joined_at: NOW,
            last_joined_at: NOW,
            left_at: None,
            reason: LeaveReason::Active,
            terminated: false,
        }],
    }));
    // The item ends with left_at's presence byte, reason and terminated.
    let presence_at = room_log_bad_presence.len() - 3;
    assert_eq!(
        room_log_bad_presence[presence_at..],
        [0, 0, 0],
        "left_at absent, reason active, not terminated"
    );
    room_log_bad_presence[presence_at] = 2;
    vec![
        r(
            "length_below_minimum.json",
            "length field 4: smaller than type + request id",
            C2S,
            vec![0x00, 0x00, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00],
            ErrorCode::MalformedFrame,
            "below the minimum",
        ),
        r(
            "length_above_maximum.json",
            "length field 65537 with max_frame_len 65536: rejected from the header alone",
            C2S,
            vec![0x00, 0x01, 0x00, 0x01, 0x15, 0x00, 0x00, 0x00, 0x09],
            ErrorCode::FrameTooLarge,
            "exceeds the maximum",
        ),
        r(
            "unassigned_request_type.json",
            "type 0x3f: request range, unassigned",
            C2S,
            frame(0x3f, 1, &[]),
            ErrorCode::UnknownFrameType,
            "unknown frame type 0x3f",
        ),
        r(
            "type_outside_all_ranges.json",
            "type 0xc0: outside every range",
            C2S,
            frame(0xc0, 1, &[]),
            ErrorCode::UnknownFrameType,
            "unknown frame type 0xc0",
        ),
        r(
            "type_zero.json",
            "type 0x00: outside every range",
            C2S,
            frame(0x00, 1, &[]),
            ErrorCode::UnknownFrameType,
            "unknown frame type 0x00",
        ),
        r(
            "response_type_from_client.json",
            "a client sends ERROR (0x43), a server-only type",
            C2S,
            frame(kind::ERROR, 1, &[0x64, 0x00]),
            ErrorCode::UnexpectedFrame,
            "unknown frame type 0x43",
        ),
        r(
            "event_type_from_client.json",
            "a client sends type 0x80 (EVENT), a server-only type",
            C2S,
            frame(kind::EVENT, 0, &[]),
            ErrorCode::UnexpectedFrame,
            "unknown frame type 0x80",
        ),
        r(
            "bool_out_of_range.json",
            "HELLO whose token presence byte is 2",
            C2S,
            frame(kind::HELLO, 1, &[0x01, 0x00, 0x02]),
            ErrorCode::MalformedFrame,
            "invalid bool value 2",
        ),
        r(
            "truncated_string.json",
            "REGISTER whose username claims 10 bytes but has 3",
            C2S,
            frame(kind::REGISTER, 2, &[0x0a, b'b', b'o', b'b']),
            ErrorCode::MalformedFrame,
            "ended early",
        ),
        r(
            "update_profile_truncated.json",
            "UPDATE_PROFILE whose payload ends after the display name (no bio)",
            C2S,
            frame(kind::UPDATE_PROFILE, 7, &[0x01, 0x03, b'B', b'o', b'b']),
            ErrorCode::MalformedFrame,
            "ended early",
        ),
        r(
            "missing_field.json",
            "JOIN_ROOM with an empty payload",
            C2S,
            frame(kind::JOIN_ROOM, 6, &[]),
            ErrorCode::MalformedFrame,
            "ended early",
        ),
        r(
            "varint_eleven_bytes.json",
            "PING whose nonce varint runs past ten bytes",
            C2S,
            frame(kind::PING, 3, &[0xff; 11]),
            ErrorCode::MalformedFrame,
            "varint longer",
        ),
        r(
            "varint_tenth_byte_overflow.json",
            "PING whose tenth varint byte is 0x02: more than 64 bits",
            C2S,
            frame(
                kind::PING,
                3,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
            ),
            ErrorCode::MalformedFrame,
            "varint longer",
        ),
        r(
            "version_exceeds_u16.json",
            "HELLO whose version 65536 does not fit the 16-bit field",
            C2S,
            frame(kind::HELLO, 1, &[0x80, 0x80, 0x04, 0x00, 0x00, 0x00]),
            ErrorCode::MalformedFrame,
            "varint longer",
        ),
        r(
            "invalid_utf8.json",
            "SEND_MESSAGE whose body is not UTF-8",
            C2S,
            frame(kind::SEND_MESSAGE, 9, &[42, 0x02, 0xc3, 0x28]),
            ErrorCode::MalformedFrame,
            "not valid UTF-8",
        ),
        r(
            "invalid_visibility.json",
            "CREATE_ROOM with visibility 2",
            C2S,
            frame(kind::CREATE_ROOM, 3, &create_room_bad_visibility),
            ErrorCode::MalformedFrame,
            "invalid visibility value 2",
        ),
        r(
            "list_count_exceeds_payload.json",
            "HELLO claiming 1000 resume points with 2 bytes left",
            C2S,
            frame(kind::HELLO, 1, &[0x01, 0x00, 0x00, 0xe8, 0x07, 0x01, 0x02]),
            ErrorCode::MalformedFrame,
            "ended early",
        ),
        r(
            "error_code_exceeds_u16.json",
            "ERROR whose code 70000 does not fit the 16-bit field",
            S2C,
            frame(kind::ERROR, 8, &[0xf0, 0xa2, 0x04, 0x00]),
            ErrorCode::MalformedFrame,
            "varint longer",
        ),
        r(
            "room_invalid_visibility.json",
            "ROOM whose visibility byte is 7",
            S2C,
            frame(kind::ROOM, 3, &room_bad_visibility),
            ErrorCode::MalformedFrame,
            "invalid visibility value 7",
        ),
        r(
            "member_list_invalid_role.json",
            "MEMBER_LIST whose member has role 3",
            S2C,
            frame(
                kind::MEMBER_LIST,
                8,
                &[42, 0x01, 0x06, 17, 0x01, b'a', 0x03, 0x01, 0x00],
            ),
            ErrorCode::MalformedFrame,
            "invalid role value 3",
        ),
        r(
            "set_role_invalid_role.json",
            "SET_ROLE with role 7",
            C2S,
            frame(kind::SET_ROLE, 31, &set_role_bad_role),
            ErrorCode::MalformedFrame,
            "invalid role value 7",
        ),
        r(
            "respond_invite_bool_out_of_range.json",
            "RESPOND_INVITE whose accept byte is 2",
            C2S,
            frame(kind::RESPOND_INVITE, 22, &respond_invite_bad_bool),
            ErrorCode::MalformedFrame,
            "invalid bool value 2",
        ),
        r(
            "invite_truncated_user.json",
            "INVITE whose user reference lacks its username",
            C2S,
            frame(kind::INVITE, 20, &[0xac, 0x02, 0x17]),
            ErrorCode::MalformedFrame,
            "ended early",
        ),
        r(
            "open_direct_truncated_user.json",
            "OPEN_DIRECT whose user reference lacks its username",
            C2S,
            frame(kind::OPEN_DIRECT, 49, &[0x17]),
            ErrorCode::MalformedFrame,
            "ended early",
        ),
        r(
            "room_direct_truncated_username.json",
            "ROOM of a direct room whose direct_username is missing",
            S2C,
            frame(kind::ROOM, 50, &room_direct_truncated),
            ErrorCode::MalformedFrame,
            "ended early",
        ),
        r(
            "event_role_changed_invalid_role.json",
            "EVENT kind 7 ROLE_CHANGED whose role is 3",
            S2C,
            frame(kind::EVENT, 0, &role_changed_bad_role),
            ErrorCode::MalformedFrame,
            "invalid role value 3",
        ),
        r(
            "room_log_list_presence_out_of_range.json",
            "ROOM_LOG_LIST whose item's left_at presence byte is 2",
            S2C,
            frame(kind::ROOM_LOG_LIST, 38, &room_log_bad_presence),
            ErrorCode::MalformedFrame,
            "invalid bool value 2",
        ),
        r(
            "notification_list_count_exceeds_payload.json",
            "NOTIFICATION_LIST claiming 1000 items with 2 bytes left",
            S2C,
            frame(
                kind::NOTIFICATION_LIST,
                35,
                &[0x00, 0x00, 0xe8, 0x07, 0x01, 0x02],
            ),
            ErrorCode::MalformedFrame,
            "ended early",
        ),
    ]
}
