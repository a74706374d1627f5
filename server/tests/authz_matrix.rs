//! The authorization matrix (issue 11): for every request of the protocol
//! and every route of the HTTP JSON API, every actor and every room state,
//! the exact answer — and, for every answer that is not a successful write,
//! that the room is exactly as it was before.
//!
//! **One table.** [`table`] has one [`Row`] per action: the request it
//! sends, what a success looks like, and `expect`, the answer SPEC.md gives
//! each actor in each room state (§5.3, §5.7, §6 and §8; where §6 or §5.7
//! allow several codes — a request that breaks several rules at once,
//! LIST_MEMBERS/HISTORY of a room that does not exist — the row says "one
//! of"). Every case is generated from it, over both doors: the binary
//! protocol (the ERROR's code) and the HTTP API (the route [`http_of`] maps
//! the same request to: its status and the error's code and name).
//!
//! **Adding a request forces adding its row.** [`rows_of`] is an exhaustive
//! `match` over `confab_protocol::Request` (no wildcard arm) naming the rows
//! that cover each variant, and [`http_of`] another one giving its HTTP
//! routes: a new variant does not compile until it is listed in both, and
//! `the_table_covers_every_request` fails until the rows it lists exist and
//! every request type the decoder knows is some row's. On the HTTP side,
//! every operation of `/api/openapi.json` must be some row's route.
//!
//! **Actors** ([`Actor`]): no session, stranger, invited (a pending
//! invitation), requested (a pending join request), member, admin, owner,
//! kicked (was a member, got kicked), banned (was a member, got banned).
//! Thirteen accounts play them and the targets of the actions ([`USERS`]);
//! every fixture room gives each the same part.
//!
//! **Room states** ([`State`]): public, private, terminated (built like the
//! public room, then left by everyone), missing (an id no room has), and
//! direct (the owner's direct chat with the member: every other account is
//! a stranger to it, and every governance request is `DIRECT_ROOM`).
//!
//! **How it runs, fast.** Phase 1: one shared room per door and state takes
//! every case that must not change it (refusals, reads, listings), one
//! after the other; after each, the room's observable state — through the
//! owner's session (room info, members with roles, bans, join requests,
//! history, audit trail) and straight from the server's store (the room's
//! row with its last seq, members, bans, invitations, join requests, audit
//! rows) — must equal the state before. The eight sweeps, and the rows that
//! name no room, run concurrently. Phase 2: every successful write gets a
//! fresh room of its own, built concurrently with the others.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use common::http::api;
use common::{TestServer, Transport};
use confab_protocol::{
    AuditItem, DecodeError, ErrorCode as E, Hello, Millis, RawFrame, Request, Role, RoomEvent,
    RoomId, RoomInfo, Seq, ServerMsg, UserId, UserRef, Visibility, PROTOCOL_VERSION,
};
use confab_sdk::{Client, ConnectOptions};
use confab_store::sqlite::SqliteStore;
use confab_store::{
    AuditRecord, BanRecord, InviteRecord, JoinRequestRecord, MemberRecord, RoomReads, RoomRecord,
};
use futures_util::future::{join_all, try_join_all, BoxFuture};
use futures_util::{FutureExt, StreamExt};
use serde_json::{json, Value};

use Actor::*;

// --- actors, room states, the accounts that play them -------------------------

/// Who sends the request, by their relation to the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Actor {
    /// A connection that never authenticated (over HTTP: no bearer token).
    NoSession,
    Stranger,
    Invited,
    Requested,
    Member,
    Admin,
    Owner,
    Kicked,
    Banned,
}

impl Actor {
    const ALL: [Actor; 9] = [
        NoSession, Stranger, Invited, Requested, Member, Admin, Owner, Kicked, Banned,
    ];

    /// The account that plays this actor.
    fn user(self) -> Option<&'static str> {
        Some(match self {
            NoSession => return None,
            Stranger => "stranger",
            Invited => "invited",
            Requested => "requested",
            Member => "member",
            Admin => "admin",
            Owner => "owner",
            Kicked => "kicked",
            Banned => "banned",
        })
    }

    fn is_member(self) -> bool {
        matches!(self, Member | Admin | Owner)
    }

    /// Has been a member of the room at some time (has a room-log item for it).
    fn joined_once(self) -> bool {
        matches!(self, Member | Admin | Owner | Kicked | Banned)
    }
}

/// The room a case runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum State {
    Public,
    Private,
    /// Built like the public room, then every member left (§8.6).
    Terminated,
    /// An id no room has (§6: ROOM_NOT_FOUND).
    Missing,
    /// The owner's direct chat with the member (§5.3.7, `build_direct`):
    /// the owner and the member are its two users, every other account a
    /// stranger to it.
    Direct,
}

impl State {
    const ALL: [State; 5] = [
        State::Public,
        State::Private,
        State::Terminated,
        State::Missing,
        State::Direct,
    ];
}

/// Who an actor is to the direct chat: the owner and the member are its
/// two users; everyone else has nothing to do with it.
fn in_direct(a: Actor) -> Actor {
    match a {
        NoSession | Owner | Member => a,
        _ => Stranger,
    }
}

/// The accounts, and what each is to every fixture room.
const USERS: [&str; 13] = [
    "owner",     // created the room
    "admin",     // made admin by the owner
    "deputy",    // a second admin: the target of KICK, BAN and SET_ROLE of an admin
    "member",    // joined (public) or accepted an invitation (private)
    "bystander", // a plain member: the target of KICK, BAN and SET_ROLE of a member
    "invited",   // holds a pending invitation
    "requested", // has a pending join request
    "asker",     // has a pending join request: the target of DECIDE_REQUEST
    "kicked",    // was a member, got kicked
    "banned",    // was a member, got banned
    "pariah",    // banned without ever being a member: the target of UNBAN
    "stranger",  // nothing to do with the room
    "outsider",  // nothing to do with the room: the target of INVITE and of BAN of a non-member
];

const PASSWORD: &str = "password123";

/// The "self" of the no-session actor (KICK/BAN/SET_ROLE of oneself): no account has it.
const NOBODY: UserId = UserId(999_999);

/// The missing room's id: far above any id the server hands out here.
const MISSING: RoomId = RoomId(1 << 40);

/// What a row's request is built from.
struct Ctx<'a> {
    room: RoomId,
    /// The room's name (unique on the server: LIST_ROOMS looks it up).
    name: &'a str,
    ids: &'a HashMap<&'static str, UserId>,
}

impl Ctx<'_> {
    fn id(&self, who: &str) -> UserId {
        self.ids[who]
    }
}

// --- the table -----------------------------------------------------------------

/// A row's key: a request, or one form of it (its target, its flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Act {
    Hello,
    Ping,
    Register,
    Login,
    Logout,
    CreateRoom,
    ListNotifications,
    MarkRead,
    ListRooms,
    MyRooms,
    RoomLog,
    JoinRoom,
    LeaveRoom,
    ListMembers,
    SendMessage,
    SendSticker,
    History,
    Invite(Of),
    AcceptInvite,
    DeclineInvite,
    RequestJoin,
    Approve(Of),
    Deny(Of),
    Kick(Of),
    Ban(Of),
    Unban(Of),
    SetRole(Change),
    ListJoinRequests,
    ListBans,
    RoomAudit,
    UpdateRoom,
    EditMessage(Msg),
    DeleteMessage(Msg),
    TypingStart,
    TypingStop,
    SetAway,
    ListStickers,
    SetReadMarker(Mark),
    OpenDirect(Of),
    ChangePassword,
    GetProfile,
    UpdateProfile,
}

/// Where SET_READ_MARKER puts the caller's marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Mark {
    /// On the fixture rooms' first message: an event the room has.
    Read,
    /// Beyond the room's last event (INVALID_READ_MARKER).
    Beyond,
}

/// SET_READ_MARKER: a member, up to the room's last seq (§5.9).
fn mark_of(a: Actor, m: Mark) -> Outcome {
    match (a.is_member(), m) {
        (false, _) => no(&[E::NotAMember]),
        (true, Mark::Read) => Done,
        (true, Mark::Beyond) => no(&[E::InvalidReadMarker]),
    }
}

/// Which message EDIT_MESSAGE / DELETE_MESSAGE names: every live fixture
/// room has the same ones at the same seqs (`build_room`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Msg {
    /// Sent by "member".
    Members,
    /// Sent by "bystander".
    Bystanders,
    /// Seq 1: ROOM_CREATED, not a message.
    NotAMessage,
}

impl Msg {
    fn seq(self) -> Seq {
        match self {
            Msg::Members => MEMBERS_MESSAGE,
            Msg::Bystanders => BYSTANDERS_MESSAGE,
            Msg::NotAMessage => Seq(1),
        }
    }
}

/// The seqs of the fixture rooms' two messages: after the 12 events of the
/// set-up (creation, 6 joins, the pariah's ban, 2 role changes, a kick, a
/// ban), "member" posts, then "bystander" (`build_room` checks).
const MEMBERS_MESSAGE: Seq = Seq(13);
const BYSTANDERS_MESSAGE: Seq = Seq(14);

/// EDIT_MESSAGE of `m`: only its sender, a member (§5.4.5).
fn edit_of(a: Actor, m: Msg) -> Outcome {
    match (a, m) {
        (_, _) if !a.is_member() => no(&[E::NotAMember]),
        (_, Msg::NotAMessage) => no(&[E::MessageNotFound]),
        (Member, Msg::Members) => Done,
        _ => no(&[E::NotYourMessage]),
    }
}

/// DELETE_MESSAGE of `m`: its sender or an admin (§5.4.5).
fn delete_of(a: Actor, m: Msg) -> Outcome {
    match (a, m) {
        (_, _) if !a.is_member() => no(&[E::NotAMember]),
        (_, Msg::NotAMessage) => no(&[E::MessageNotFound]),
        (Admin | Owner, _) | (Member, Msg::Members) => Done,
        _ => no(&[E::NotYourMessage]),
    }
}

/// Whom a request names (INVITE, DECIDE_REQUEST, KICK, BAN, UNBAN): the
/// account of [`USERS`] it names, by what that account is to the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Of {
    /// A plain member ("bystander").
    Bystander,
    /// Another admin ("deputy").
    Deputy,
    TheOwner,
    /// The caller.
    Themself,
    /// A user with nothing to do with the room ("outsider").
    Outsider,
    /// A banned user who never was a member ("pariah").
    Pariah,
    /// A user with a pending invitation ("invited").
    Invitee,
    /// A user with a pending join request ("asker").
    Asker,
    /// A username no account has.
    Ghost,
}

/// What a SET_ROLE asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Change {
    /// A member to admin.
    Promote,
    /// An admin to member.
    Demote,
    /// A member to owner (never allowed: INVALID_ROLE).
    ToOwner,
    /// The caller's own role, to admin.
    OwnRole,
    /// A member to member: the role it has (OK, and nothing happens).
    Same,
    /// A user who is not a member, to admin.
    NonMember,
}

/// Which rows cover each protocol request. Exhaustive, without a wildcard
/// arm: a request added to the protocol does not compile until it is
/// listed here (and in [`http_of`]), and `the_table_covers_every_request`
/// fails until [`table`] has the rows listed.
fn rows_of(req: &Request) -> &'static [Act] {
    use Change::*;
    use Of::*;
    match req {
        Request::Hello(_) => &[Act::Hello],
        Request::Ping { .. } => &[Act::Ping],
        Request::Register { .. } => &[Act::Register],
        Request::Login { .. } => &[Act::Login],
        Request::Logout => &[Act::Logout],
        Request::CreateRoom { .. } => &[Act::CreateRoom],
        Request::ListRooms { .. } => &[Act::ListRooms],
        Request::JoinRoom { .. } => &[Act::JoinRoom],
        Request::LeaveRoom { .. } => &[Act::LeaveRoom],
        Request::ListMembers { .. } => &[Act::ListMembers],
        Request::SendMessage { .. } => &[Act::SendMessage, Act::SendSticker],
        Request::History { .. } => &[Act::History],
        Request::MyRooms => &[Act::MyRooms],
        Request::Invite { .. } => &[
            Act::Invite(Outsider),
            Act::Invite(Bystander),
            Act::Invite(Pariah),
            Act::Invite(Invitee),
            Act::Invite(Ghost),
        ],
        Request::RespondInvite { .. } => &[Act::AcceptInvite, Act::DeclineInvite],
        Request::RequestJoin { .. } => &[Act::RequestJoin],
        Request::DecideRequest { .. } => &[
            Act::Approve(Asker),
            Act::Deny(Asker),
            Act::Approve(Outsider),
        ],
        Request::Kick { .. } => &[
            Act::Kick(Bystander),
            Act::Kick(Deputy),
            Act::Kick(TheOwner),
            Act::Kick(Themself),
            Act::Kick(Outsider),
        ],
        Request::Ban { .. } => &[
            Act::Ban(Bystander),
            Act::Ban(Outsider),
            Act::Ban(Deputy),
            Act::Ban(TheOwner),
            Act::Ban(Themself),
            Act::Ban(Pariah),
            Act::Ban(Ghost),
        ],
        Request::Unban { .. } => &[Act::Unban(Pariah), Act::Unban(Outsider)],
        Request::SetRole { .. } => &[
            Act::SetRole(Promote),
            Act::SetRole(Demote),
            Act::SetRole(ToOwner),
            Act::SetRole(OwnRole),
            Act::SetRole(Same),
            Act::SetRole(NonMember),
        ],
        Request::ListJoinRequests { .. } => &[Act::ListJoinRequests],
        Request::ListBans { .. } => &[Act::ListBans],
        Request::ListNotifications { .. } => &[Act::ListNotifications],
        Request::MarkRead { .. } => &[Act::MarkRead],
        Request::SetAway { .. } => &[Act::SetAway],
        Request::ListStickers => &[Act::ListStickers],
        Request::ChangePassword(_) => &[Act::ChangePassword],
        Request::GetProfile { .. } => &[Act::GetProfile],
        Request::UpdateProfile(_) => &[Act::UpdateProfile],
        Request::RoomLog => &[Act::RoomLog],
        Request::RoomAudit { .. } => &[Act::RoomAudit],
        Request::UpdateRoom { .. } => &[Act::UpdateRoom],
        Request::EditMessage { .. } => &[
            Act::EditMessage(Msg::Members),
            Act::EditMessage(Msg::NotAMessage),
        ],
        Request::DeleteMessage { .. } => &[
            Act::DeleteMessage(Msg::Members),
            Act::DeleteMessage(Msg::Bystanders),
            Act::DeleteMessage(Msg::NotAMessage),
        ],
        Request::TypingStart { .. } => &[Act::TypingStart],
        Request::TypingStop { .. } => &[Act::TypingStop],
        Request::SetReadMarker { .. } => &[
            Act::SetReadMarker(Mark::Read),
            Act::SetReadMarker(Mark::Beyond),
        ],
        Request::OpenDirect { .. } => &[
            Act::OpenDirect(Outsider),
            Act::OpenDirect(Themself),
            Act::OpenDirect(Ghost),
        ],
    }
}

/// One action of the matrix.
struct Row {
    act: Act,
    /// Where SPEC.md says it.
    spec: &'static str,
    scope: Scope,
    /// The request, for a room (`Ctx`) and a caller (their own id, for the
    /// rows that target the caller).
    request: fn(&Ctx<'_>, UserId) -> Request,
    /// What a success looks like over the binary protocol. (A listing's
    /// answer, `Outcome::Lists`, is checked by [`listed`] instead.)
    done: fn(&ServerMsg, &Ctx<'_>) -> bool,
    /// The answer SPEC.md gives `Actor` in `State`.
    expect: fn(Actor, State) -> Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// About the room: run in every room state. A successful write gets a
    /// fresh room of its own; everything else must leave the room as it was.
    Room { writes: bool },
    /// Names no room, so no room authorizes it; `why` says what does. Run
    /// once per actor (`expect` gets `State::Missing`: no room in play).
    Account { why: &'static str },
}

/// An expected answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// The row's success reply (over HTTP, its route's success status).
    Done,
    /// A listing (LIST_ROOMS, MY_ROOMS, ROOM_LOG) that shows the room, or not.
    Lists(bool),
    /// An ERROR with one of these codes.
    No(Vec<E>),
    /// Deliberately not run, and why.
    NotRun(&'static str),
}

use Outcome::{Done, Lists};

fn no(codes: &[E]) -> Outcome {
    Outcome::No(codes.to_vec())
}

const NOT_FOUND: &[E] = &[E::RoomNotFound];
/// §6, notes: for a room that does not exist, LIST_MEMBERS and HISTORY may
/// answer 300 or 301.
const NOT_FOUND_OR_NOT_MEMBER: &[E] = &[E::RoomNotFound, E::NotAMember];

/// A request that names a room: NOT_AUTHENTICATED without a session (§7.3);
/// ROOM_TERMINATED in a terminated room, whoever asks (§6 notes, §8.6);
/// `missing` for a room that does not exist; else what `live` says.
fn room(a: Actor, s: State, missing: &[E], live: fn(Actor, Visibility) -> Outcome) -> Outcome {
    if a == NoSession {
        return no(&[E::NotAuthenticated]);
    }
    match s {
        State::Public => live(a, Visibility::Public),
        State::Private => live(a, Visibility::Private),
        State::Terminated => no(&[E::RoomTerminated]),
        State::Missing => no(missing),
        // A private room of two (§5.3.7): the other rules as for one.
        State::Direct => live(in_direct(a), Visibility::Private),
    }
}

/// A governance request (§5.3.7: joins, invitations, join requests and
/// their decisions, kicks, bans, unbans, role changes, room updates):
/// `DIRECT_ROOM` in a direct chat, whoever asks; else as [`room`].
fn governance(
    a: Actor,
    s: State,
    missing: &[E],
    live: fn(Actor, Visibility) -> Outcome,
) -> Outcome {
    match (a, s) {
        (NoSession, _) => no(&[E::NotAuthenticated]),
        (_, State::Direct) => no(&[E::DirectRoom]),
        _ => room(a, s, missing, live),
    }
}

/// LEAVE_ROOM, LIST_MEMBERS, SEND_MESSAGE, HISTORY: "a member" (§8.1).
fn member(a: Actor) -> Outcome {
    if a.is_member() {
        Done
    } else {
        no(&[E::NotAMember])
    }
}

/// INVITE, DECIDE_REQUEST, UNBAN, LIST_JOIN_REQUESTS, LIST_BANS,
/// UPDATE_ROOM, ROOM_AUDIT, KICK, BAN: "an admin" (§8.1, §5.7).
fn admin(a: Actor) -> Outcome {
    match a {
        Owner | Admin => Done,
        Member => no(&[E::NotAdmin]),
        _ => no(&[E::NotAMember]),
    }
}

/// SET_ROLE: "the owner" (§8.1, §5.7.9).
fn owner(a: Actor) -> Outcome {
    match a {
        Owner => Done,
        Admin | Member => no(&[E::NotOwner]),
        _ => no(&[E::NotAMember]),
    }
}

/// A request whose target breaks a rule (`codes`): refused with those codes
/// when the caller has the authority `auth` asks for, and with either the
/// caller's or the target's code when not (§5.7: when a request breaks
/// several rules, which of the applicable codes comes is not specified).
fn and_target(auth: Outcome, codes: &[E]) -> Outcome {
    match auth {
        Done => no(codes),
        Outcome::No(mut c) => {
            c.extend_from_slice(codes);
            Outcome::No(c)
        }
        other => other,
    }
}

/// A username no account has.
const GHOST: &str = "nobody-at-all";

/// INVITE or BAN of a username no account has: NO_SUCH_USER (§5.7.1),
/// which may also come instead of whatever else the request breaks —
/// the caller's authority, even the room's state (§5.7: which of several
/// applicable codes comes is not specified). Never before authentication.
fn no_such_user(a: Actor, s: State) -> Outcome {
    let rest = governance(a, s, NOT_FOUND, |a, _| admin(a));
    match a {
        NoSession => rest,
        _ => and_target(rest, &[E::NoSuchUser]),
    }
}

/// THE table.
fn table() -> Vec<Row> {
    use Change::*;
    use Of::*;
    let room_w = Scope::Room { writes: true };
    let room_r = Scope::Room { writes: false };
    vec![
        // --- requests that name no room --------------------------------------------
        Row {
            act: Act::Hello,
            spec: "§5.1.1, §7.2",
            scope: Scope::Account {
                why: "the handshake itself, not a request of a session",
            },
            request: |_, _| {
                Request::Hello(Hello {
                    version: PROTOCOL_VERSION,
                    client: "authz".into(),
                    token: None,
                    resume: vec![],
                })
            },
            done: |_, _| false,
            expect: |_, _| {
                Outcome::NotRun(
                    "every connection of the matrix opened with HELLO; a second one is \
                     CLOSE 104 (tests/bad_input.rs)",
                )
            },
        },
        Row {
            act: Act::Ping,
            spec: "§5.5.5, §7.3",
            scope: Scope::Account {
                why: "the connection's heartbeat: allowed before authentication",
            },
            request: |_, _| Request::Ping { nonce: 7 },
            done: |m, _| matches!(m, ServerMsg::Pong { nonce: 7 }),
            expect: |_, _| Done,
        },
        Row {
            act: Act::Register,
            spec: "§5.2.1, §7.3, §6 (206)",
            scope: Scope::Account {
                why: "creates an account; only before authentication",
            },
            request: |_, _| Request::Register {
                username: format!("fresh{}", FRESH.fetch_add(1, Ordering::Relaxed)),
                password: PASSWORD.into(),
            },
            done: |m, _| matches!(m, ServerMsg::Session { .. }),
            expect: |a, _| match a {
                NoSession => Done,
                _ => no(&[E::AlreadyAuthenticated]),
            },
        },
        Row {
            act: Act::Login,
            spec: "§5.2.1, §7.3, §6 (206)",
            scope: Scope::Account {
                why: "authenticates the connection; only before authentication",
            },
            request: |_, _| Request::Login {
                username: "stranger".into(),
                password: PASSWORD.into(),
            },
            done: |m, _| matches!(m, ServerMsg::Session { .. }),
            expect: |a, _| match a {
                NoSession => Done,
                _ => no(&[E::AlreadyAuthenticated]),
            },
        },
        Row {
            act: Act::Logout,
            spec: "§5.2.3, §7.8",
            scope: Scope::Account {
                why: "ends the caller's own session: any session may",
            },
            request: |_, _| Request::Logout,
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, _| match a {
                NoSession => no(&[E::NotAuthenticated]),
                _ => Outcome::NotRun(
                    "would end the session the rest of the matrix runs on (LOGOUT: \
                     tests/e2e.rs, tests/doors.rs)",
                ),
            },
        },
        Row {
            act: Act::CreateRoom,
            spec: "§5.3.2, §8.1",
            scope: Scope::Account {
                why: "makes a new room, owned by the caller: any authenticated user",
            },
            request: |_, me| Request::CreateRoom {
                name: format!("made by {}", me.0),
                topic: String::new(),
                visibility: Visibility::Private,
                members: Vec::new(),
            },
            done: |m, _| matches!(m, ServerMsg::Room(_)),
            expect: |a, _| match a {
                NoSession => no(&[E::NotAuthenticated]),
                _ => Done,
            },
        },
        Row {
            act: Act::ListNotifications,
            spec: "§5.8.2",
            scope: Scope::Account {
                why: "the caller's own notifications",
            },
            request: |_, _| Request::ListNotifications {
                before: 0,
                limit: 10,
                unread_only: false,
            },
            done: |m, _| matches!(m, ServerMsg::NotificationList { .. }),
            expect: |a, _| match a {
                NoSession => no(&[E::NotAuthenticated]),
                _ => Done,
            },
        },
        Row {
            act: Act::MarkRead,
            spec: "§5.8.3",
            scope: Scope::Account {
                why: "the caller's own read mark",
            },
            request: |_, _| Request::MarkRead { up_to: 1 },
            done: |m, _| matches!(m, ServerMsg::UnreadCount { .. }),
            expect: |a, _| match a {
                NoSession => no(&[E::NotAuthenticated]),
                _ => Done,
            },
        },
        Row {
            act: Act::SetAway,
            spec: "§5.10.1",
            scope: Scope::Account {
                why: "the caller's own presence",
            },
            request: |_, _| Request::SetAway { away: false },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, _| match a {
                NoSession => no(&[E::NotAuthenticated]),
                _ => Done,
            },
        },
        Row {
            act: Act::ListStickers,
            spec: "§5.11.3",
            scope: Scope::Account {
                why: "the server's catalogue, the same for every user",
            },
            request: |_, _| Request::ListStickers,
            done: |m, _| matches!(m, ServerMsg::StickerList { .. }),
            expect: |a, _| match a {
                NoSession => no(&[E::NotAuthenticated]),
                _ => Done,
            },
        },
        // --- direct chats (§5.3.7): name a user, not a room ----------------------
        Row {
            act: Act::OpenDirect(Outsider),
            spec: "§5.3.7",
            scope: Scope::Account {
                why: "the caller's own direct chat with another user: any authenticated user",
            },
            request: |_, _| Request::OpenDirect {
                user: UserRef::name("outsider"),
            },
            done: |m, c| {
                matches!(m, ServerMsg::Room(i)
                    if i.direct_with.as_ref().map(|d| d.user) == Some(c.id("outsider")))
            },
            expect: |a, _| match a {
                NoSession => no(&[E::NotAuthenticated]),
                _ => Done,
            },
        },
        // A wrong current password: a successful change would end the
        // actor's other sessions, which the matrix runs on. Authorized or
        // not, nobody changes anything with it.
        Row {
            act: Act::ChangePassword,
            spec: "§5.2.4",
            scope: Scope::Account {
                why: "the caller's own password",
            },
            request: |_, _| {
                Request::ChangePassword(confab_protocol::PasswordChange {
                    current: "not-the-password".into(),
                    new: "another-password".into(),
                })
            },
            done: |_, _| false,
            expect: |a, _| match a {
                NoSession => no(&[E::NotAuthenticated]),
                _ => no(&[E::InvalidCredentials]),
            },
        },
        Row {
            act: Act::GetProfile,
            spec: "§5.2.5",
            scope: Scope::Account {
                why: "any authenticated user reads any profile",
            },
            request: |c, _| Request::GetProfile {
                user: c.id("owner"),
            },
            done: |m, c| matches!(m, ServerMsg::Profile(p) if p.user == c.id("owner")),
            expect: |a, _| match a {
                NoSession => no(&[E::NotAuthenticated]),
                _ => Done,
            },
        },
        Row {
            act: Act::OpenDirect(Themself),
            spec: "§5.3.7, §6 (313)",
            scope: Scope::Account {
                why: "names the caller: refused for everyone",
            },
            request: |_, me| Request::OpenDirect {
                user: UserRef::id(me),
            },
            done: |_, _| false,
            expect: |a, _| match a {
                NoSession => no(&[E::NotAuthenticated]),
                _ => no(&[E::CannotTargetSelf]),
            },
        },
        Row {
            act: Act::OpenDirect(Ghost),
            spec: "§5.3.7, §6 (311)",
            scope: Scope::Account {
                why: "names no account: refused for everyone",
            },
            request: |_, _| Request::OpenDirect {
                user: UserRef::name(GHOST),
            },
            done: |_, _| false,
            expect: |a, _| match a {
                NoSession => no(&[E::NotAuthenticated]),
                _ => no(&[E::NoSuchUser]),
            },
        },
        Row {
            act: Act::UpdateProfile,
            spec: "§5.2.5",
            scope: Scope::Account {
                why: "the caller's own profile",
            },
            request: |_, _| {
                Request::UpdateProfile(confab_protocol::ProfileUpdate {
                    display_name: Some("Matrix".into()),
                    bio: String::new(),
                    email: None,
                })
            },
            done: |m, _| matches!(m, ServerMsg::Profile(p) if p.display_name.as_deref() == Some("Matrix")),
            expect: |a, _| match a {
                NoSession => no(&[E::NotAuthenticated]),
                _ => Done,
            },
        },
        // --- listings: they name no room, but must show it only to whom SPEC lets see it
        Row {
            act: Act::ListRooms,
            spec: "§5.3.3, §8.4, §8.6",
            scope: room_r,
            request: |c, _| Request::ListRooms {
                query: c.name.into(),
                offset: 0,
                limit: 200,
                exact: true,
            },
            done: |_, _| false,
            expect: |a, s| match (a, s) {
                (NoSession, _) => no(&[E::NotAuthenticated]),
                // Public rooms to everyone not banned from them; private
                // ones to their members; never a terminated room.
                (_, State::Public) => Lists(a != Banned),
                (_, State::Private) => Lists(a.is_member()),
                // Never a direct chat (§5.3.7), not even to its two users.
                (_, State::Terminated | State::Missing | State::Direct) => Lists(false),
            },
        },
        Row {
            act: Act::MyRooms,
            spec: "§5.3.5",
            scope: room_r,
            request: |_, _| Request::MyRooms,
            done: |_, _| false,
            expect: |a, s| match (a, s) {
                (NoSession, _) => no(&[E::NotAuthenticated]),
                (_, State::Public | State::Private) => Lists(a.is_member()),
                (_, State::Direct) => Lists(in_direct(a).is_member()),
                (_, State::Terminated | State::Missing) => Lists(false),
            },
        },
        Row {
            act: Act::RoomLog,
            spec: "§5.8.5, §8.7, §8.10",
            scope: room_r,
            request: |_, _| Request::RoomLog,
            done: |_, _| false,
            expect: |a, s| match (a, s) {
                (NoSession, _) => no(&[E::NotAuthenticated]),
                // One item per room the user has been a member of, a
                // terminated one included.
                (_, State::Public | State::Private | State::Terminated) => Lists(a.joined_once()),
                (_, State::Direct) => Lists(in_direct(a).is_member()),
                (_, State::Missing) => Lists(false),
            },
        },
        // --- membership and messages (§5.3.4, §5.4) ---------------------------------
        Row {
            act: Act::JoinRoom,
            spec: "§5.3.4, §8.3, §8.4",
            scope: room_w,
            request: |c, _| Request::JoinRoom { room: c.room },
            done: |m, c| matches!(m, ServerMsg::Room(i) if i.id == c.room),
            expect: |a, s| {
                governance(a, s, NOT_FOUND, |a, vis| match a {
                    Owner | Admin | Member => no(&[E::AlreadyMember]),
                    Banned => no(&[E::Banned]),
                    _ if vis == Visibility::Public => Done,
                    // A private room only with a pending invitation.
                    Invited => Done,
                    _ => no(&[E::RoomPrivate]),
                })
            },
        },
        Row {
            act: Act::LeaveRoom,
            spec: "§5.3.4, §8.1",
            scope: room_w,
            request: |c, _| Request::LeaveRoom { room: c.room },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| room(a, s, NOT_FOUND, |a, _| member(a)),
        },
        Row {
            act: Act::ListMembers,
            spec: "§5.3.4, §8.7, §6 notes",
            scope: room_r,
            request: |c, _| Request::ListMembers { room: c.room },
            done: |m, c| matches!(m, ServerMsg::MemberList { room, .. } if *room == c.room),
            expect: |a, s| room(a, s, NOT_FOUND_OR_NOT_MEMBER, |a, _| member(a)),
        },
        Row {
            act: Act::SendMessage,
            spec: "§5.4.1, §8.1",
            scope: room_w,
            request: |c, _| Request::SendMessage {
                room: c.room,
                body: "hello".into(),
                spans: vec![],
                sticker: None,
                attachments: Vec::new(),
            },
            done: |m, c| matches!(m, ServerMsg::MessageAck { room, .. } if *room == c.room),
            expect: |a, s| room(a, s, NOT_FOUND, |a, _| member(a)),
        },
        Row {
            act: Act::SendSticker,
            spec: "§5.11.3, §5.4.1, §8.1",
            scope: room_w,
            request: |c, _| Request::SendMessage {
                room: c.room,
                body: String::new(),
                spans: vec![],
                sticker: Some("shrug".into()),
                attachments: Vec::new(),
            },
            done: |m, c| matches!(m, ServerMsg::MessageAck { room, .. } if *room == c.room),
            expect: |a, s| room(a, s, NOT_FOUND, |a, _| member(a)),
        },
        Row {
            act: Act::History,
            spec: "§5.4.3, §8.7, §6 notes",
            scope: room_r,
            request: |c, _| Request::History {
                room: c.room,
                before: Seq(0),
                limit: 50,
            },
            done: |m, c| matches!(m, ServerMsg::HistoryPage { room, .. } if *room == c.room),
            expect: |a, s| room(a, s, NOT_FOUND_OR_NOT_MEMBER, |a, _| member(a)),
        },
        // --- invitations and join requests (§5.7.2-5, §8.3) -------------------------
        Row {
            act: Act::Invite(Outsider),
            spec: "§5.7.2, §8.1, §8.3",
            scope: room_w,
            request: |c, _| Request::Invite {
                room: c.room,
                user: UserRef::id(c.id("outsider")),
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| governance(a, s, NOT_FOUND, |a, _| admin(a)),
        },
        Row {
            act: Act::Invite(Bystander),
            spec: "§5.7.2, §8.3 (a member cannot be invited)",
            scope: room_w,
            request: |c, _| Request::Invite {
                room: c.room,
                user: UserRef::id(c.id("bystander")),
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| {
                governance(a, s, NOT_FOUND, |a, _| {
                    and_target(admin(a), &[E::AlreadyMember])
                })
            },
        },
        Row {
            act: Act::Invite(Pariah),
            spec: "§5.7.2, §8.3, §8.4 (nor can a banned user)",
            scope: room_w,
            request: |c, _| Request::Invite {
                room: c.room,
                user: UserRef::name("pariah"),
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| {
                governance(a, s, NOT_FOUND, |a, _| {
                    and_target(admin(a), &[E::TargetBanned])
                })
            },
        },
        Row {
            act: Act::Invite(Invitee),
            spec: "§5.7.2, §8.3 (at most one pending invitation)",
            scope: room_w,
            request: |c, _| Request::Invite {
                room: c.room,
                user: UserRef::id(c.id("invited")),
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| {
                governance(a, s, NOT_FOUND, |a, _| {
                    and_target(admin(a), &[E::AlreadyInvited])
                })
            },
        },
        Row {
            act: Act::Invite(Ghost),
            spec: "§5.7.1, §5.7.2 (NO_SUCH_USER)",
            scope: room_w,
            request: |c, _| Request::Invite {
                room: c.room,
                user: UserRef::name(GHOST),
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| no_such_user(a, s),
        },
        Row {
            act: Act::AcceptInvite,
            spec: "§5.7.3, §8.3",
            scope: room_w,
            request: |c, _| Request::RespondInvite {
                room: c.room,
                accept: true,
            },
            done: |m, c| matches!(m, ServerMsg::Room(i) if i.id == c.room),
            expect: |a, s| {
                governance(a, s, NOT_FOUND, |a, _| match a {
                    Invited => Done,
                    _ => no(&[E::NotInvited]),
                })
            },
        },
        Row {
            act: Act::DeclineInvite,
            spec: "§5.7.3, §8.3",
            scope: room_w,
            request: |c, _| Request::RespondInvite {
                room: c.room,
                accept: false,
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| {
                governance(a, s, NOT_FOUND, |a, _| match a {
                    Invited => Done,
                    _ => no(&[E::NotInvited]),
                })
            },
        },
        Row {
            act: Act::RequestJoin,
            spec: "§5.7.4, §8.3, §8.4",
            scope: room_w,
            request: |c, _| Request::RequestJoin { room: c.room },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| {
                governance(a, s, NOT_FOUND, |a, _| match a {
                    Owner | Admin | Member => no(&[E::AlreadyMember]),
                    Banned => no(&[E::Banned]),
                    Requested => no(&[E::AlreadyRequested]),
                    _ => Done,
                })
            },
        },
        Row {
            act: Act::Approve(Asker),
            spec: "§5.7.5, §8.1",
            scope: room_w,
            request: |c, _| Request::DecideRequest {
                room: c.room,
                user: c.id("asker"),
                approve: true,
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| governance(a, s, NOT_FOUND, |a, _| admin(a)),
        },
        Row {
            act: Act::Deny(Asker),
            spec: "§5.7.5, §8.1",
            scope: room_w,
            request: |c, _| Request::DecideRequest {
                room: c.room,
                user: c.id("asker"),
                approve: false,
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| governance(a, s, NOT_FOUND, |a, _| admin(a)),
        },
        Row {
            act: Act::Approve(Outsider),
            spec: "§5.7.5 (NO_SUCH_REQUEST)",
            scope: room_w,
            request: |c, _| Request::DecideRequest {
                room: c.room,
                user: c.id("outsider"),
                approve: true,
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| {
                governance(a, s, NOT_FOUND, |a, _| {
                    and_target(admin(a), &[E::NoSuchRequest])
                })
            },
        },
        // --- kicks (§5.7.6, §8.1: an admin; of another admin, only the owner; never
        // of the owner or oneself) ----------------------------------------------------
        Row {
            act: Act::Kick(Bystander),
            spec: "§5.7.6, §8.1",
            scope: room_w,
            request: |c, _| Request::Kick {
                room: c.room,
                user: c.id("bystander"),
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| governance(a, s, NOT_FOUND, |a, _| admin(a)),
        },
        Row {
            act: Act::Kick(Deputy),
            spec: "§5.7.6, §8.1",
            scope: room_w,
            request: |c, _| Request::Kick {
                room: c.room,
                user: c.id("deputy"),
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| {
                governance(a, s, NOT_FOUND, |a, _| match a {
                    Owner => Done,
                    Admin => no(&[E::NotOwner]),
                    _ => and_target(admin(a), &[E::NotOwner]),
                })
            },
        },
        Row {
            act: Act::Kick(TheOwner),
            spec: "§5.7.6, §8.1",
            scope: room_w,
            request: |c, _| Request::Kick {
                room: c.room,
                user: c.id("owner"),
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| {
                governance(a, s, NOT_FOUND, |a, _| match a {
                    Owner => no(&[E::CannotTargetSelf, E::CannotTargetOwner]),
                    _ => and_target(admin(a), &[E::CannotTargetOwner]),
                })
            },
        },
        Row {
            act: Act::Kick(Themself),
            spec: "§5.7.6, §8.1",
            scope: room_w,
            request: |c, me| Request::Kick {
                room: c.room,
                user: me,
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| {
                governance(a, s, NOT_FOUND, |a, _| match a {
                    Owner => no(&[E::CannotTargetSelf, E::CannotTargetOwner]),
                    _ if a.is_member() => and_target(admin(a), &[E::CannotTargetSelf]),
                    _ => and_target(admin(a), &[E::CannotTargetSelf, E::TargetNotMember]),
                })
            },
        },
        Row {
            act: Act::Kick(Outsider),
            spec: "§5.7.6 (TARGET_NOT_MEMBER)",
            scope: room_w,
            request: |c, _| Request::Kick {
                room: c.room,
                user: c.id("outsider"),
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| {
                governance(a, s, NOT_FOUND, |a, _| {
                    and_target(admin(a), &[E::TargetNotMember])
                })
            },
        },
        // --- bans (§5.7.7-8, §8.1, §8.4) ------------------------------------------------
        Row {
            act: Act::Ban(Bystander),
            spec: "§5.7.7, §8.1, §8.4",
            scope: room_w,
            request: |c, _| Request::Ban {
                room: c.room,
                user: UserRef::id(c.id("bystander")),
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| governance(a, s, NOT_FOUND, |a, _| admin(a)),
        },
        Row {
            act: Act::Ban(Outsider),
            spec: "§5.7.7, §8.4 (any user, by id or username)",
            scope: room_w,
            request: |c, _| Request::Ban {
                room: c.room,
                user: UserRef::name("OutSider"),
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| governance(a, s, NOT_FOUND, |a, _| admin(a)),
        },
        Row {
            act: Act::Ban(Deputy),
            spec: "§5.7.7, §8.1",
            scope: room_w,
            request: |c, _| Request::Ban {
                room: c.room,
                user: UserRef::id(c.id("deputy")),
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| {
                governance(a, s, NOT_FOUND, |a, _| match a {
                    Owner => Done,
                    Admin => no(&[E::NotOwner]),
                    _ => and_target(admin(a), &[E::NotOwner]),
                })
            },
        },
        Row {
            act: Act::Ban(TheOwner),
            spec: "§5.7.7, §8.1",
            scope: room_w,
            request: |c, _| Request::Ban {
                room: c.room,
                user: UserRef::id(c.id("owner")),
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| {
                governance(a, s, NOT_FOUND, |a, _| match a {
                    Owner => no(&[E::CannotTargetSelf, E::CannotTargetOwner]),
                    _ => and_target(admin(a), &[E::CannotTargetOwner]),
                })
            },
        },
        Row {
            act: Act::Ban(Themself),
            spec: "§5.7.7, §8.1",
            scope: room_w,
            request: |c, me| Request::Ban {
                room: c.room,
                user: UserRef::id(me),
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| {
                governance(a, s, NOT_FOUND, |a, _| match a {
                    Owner => no(&[E::CannotTargetSelf, E::CannotTargetOwner]),
                    Banned => and_target(admin(a), &[E::CannotTargetSelf, E::AlreadyBanned]),
                    _ => and_target(admin(a), &[E::CannotTargetSelf]),
                })
            },
        },
        Row {
            act: Act::Ban(Pariah),
            spec: "§5.7.7 (ALREADY_BANNED)",
            scope: room_w,
            request: |c, _| Request::Ban {
                room: c.room,
                user: UserRef::id(c.id("pariah")),
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| {
                governance(a, s, NOT_FOUND, |a, _| {
                    and_target(admin(a), &[E::AlreadyBanned])
                })
            },
        },
        Row {
            act: Act::Ban(Ghost),
            spec: "§5.7.1, §5.7.7 (NO_SUCH_USER)",
            scope: room_w,
            request: |c, _| Request::Ban {
                room: c.room,
                user: UserRef::name(GHOST),
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| no_such_user(a, s),
        },
        Row {
            act: Act::Unban(Pariah),
            spec: "§5.7.8, §8.1",
            scope: room_w,
            request: |c, _| Request::Unban {
                room: c.room,
                user: c.id("pariah"),
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| governance(a, s, NOT_FOUND, |a, _| admin(a)),
        },
        Row {
            act: Act::Unban(Outsider),
            spec: "§5.7.8 (NOT_BANNED)",
            scope: room_w,
            request: |c, _| Request::Unban {
                room: c.room,
                user: c.id("outsider"),
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| {
                governance(a, s, NOT_FOUND, |a, _| {
                    and_target(admin(a), &[E::NotBanned])
                })
            },
        },
        // --- roles (§5.7.9, §8.1: the owner; only of another member, only to member or
        // admin) ------------------------------------------------------------------------
        Row {
            act: Act::SetRole(Promote),
            spec: "§5.7.9, §8.1",
            scope: room_w,
            request: |c, _| Request::SetRole {
                room: c.room,
                user: c.id("bystander"),
                role: Role::Admin,
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| governance(a, s, NOT_FOUND, |a, _| owner(a)),
        },
        Row {
            act: Act::SetRole(Demote),
            spec: "§5.7.9, §8.1",
            scope: room_w,
            request: |c, _| Request::SetRole {
                room: c.room,
                user: c.id("deputy"),
                role: Role::Member,
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| governance(a, s, NOT_FOUND, |a, _| owner(a)),
        },
        Row {
            act: Act::SetRole(ToOwner),
            spec: "§5.7.9, §8.1, §8.5",
            scope: room_w,
            request: |c, _| Request::SetRole {
                room: c.room,
                user: c.id("bystander"),
                role: Role::Owner,
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| {
                governance(a, s, NOT_FOUND, |a, _| {
                    and_target(owner(a), &[E::InvalidRole])
                })
            },
        },
        Row {
            act: Act::SetRole(OwnRole),
            spec: "§5.7.9, §8.1",
            scope: room_w,
            request: |c, me| Request::SetRole {
                room: c.room,
                user: me,
                role: Role::Admin,
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| {
                governance(a, s, NOT_FOUND, |a, _| {
                    if a.is_member() {
                        and_target(owner(a), &[E::CannotTargetSelf])
                    } else {
                        and_target(owner(a), &[E::CannotTargetSelf, E::TargetNotMember])
                    }
                })
            },
        },
        Row {
            act: Act::SetRole(Same),
            spec: "§5.7.9 (already has the role: OK, nothing happens)",
            // Even its success must leave the room as it was.
            scope: room_r,
            request: |c, _| Request::SetRole {
                room: c.room,
                user: c.id("bystander"),
                role: Role::Member,
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| governance(a, s, NOT_FOUND, |a, _| owner(a)),
        },
        Row {
            act: Act::SetRole(NonMember),
            spec: "§5.7.9 (TARGET_NOT_MEMBER)",
            scope: room_w,
            request: |c, _| Request::SetRole {
                room: c.room,
                user: c.id("outsider"),
                role: Role::Admin,
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| {
                governance(a, s, NOT_FOUND, |a, _| {
                    and_target(owner(a), &[E::TargetNotMember])
                })
            },
        },
        // --- admins' reads and the room itself (§5.7.10-11, §5.8.6) ----------------
        Row {
            act: Act::ListJoinRequests,
            spec: "§5.7.11, §8.1",
            scope: room_r,
            request: |c, _| Request::ListJoinRequests { room: c.room },
            done: |m, c| matches!(m, ServerMsg::UserList { room, .. } if *room == c.room),
            expect: |a, s| room(a, s, NOT_FOUND, |a, _| admin(a)),
        },
        Row {
            act: Act::ListBans,
            spec: "§5.7.11, §8.1",
            scope: room_r,
            request: |c, _| Request::ListBans { room: c.room },
            done: |m, c| matches!(m, ServerMsg::UserList { room, .. } if *room == c.room),
            expect: |a, s| room(a, s, NOT_FOUND, |a, _| admin(a)),
        },
        Row {
            act: Act::RoomAudit,
            spec: "§5.8.6, §8.7, §8.11",
            scope: room_r,
            request: |c, _| Request::RoomAudit {
                room: c.room,
                before: 0,
                limit: 50,
            },
            done: |m, c| matches!(m, ServerMsg::AuditPage { room, .. } if *room == c.room),
            expect: |a, s| room(a, s, NOT_FOUND, |a, _| admin(a)),
        },
        Row {
            act: Act::UpdateRoom,
            spec: "§5.7.10, §8.1, §8.8",
            scope: room_w,
            request: |c, _| Request::UpdateRoom {
                room: c.room,
                name: c.name.into(),
                topic: "after".into(),
            },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| match (s, in_direct(a)) {
                // Over HTTP a PATCH of one field first reads the room as a
                // member would: a stranger to a direct chat breaks that rule
                // too (§6 notes: either code).
                (State::Direct, Stranger) => no(&[E::DirectRoom, E::NotAMember]),
                _ => governance(a, s, NOT_FOUND, |a, _| admin(a)),
            },
        },
        // --- editing and deleting messages (§5.4.5) -----------------------------------
        Row {
            act: Act::EditMessage(Msg::Members),
            spec: "§5.4.5, §8.1",
            scope: room_w,
            request: |c, _| Request::EditMessage {
                room: c.room,
                seq: Msg::Members.seq(),
                text: "edited".into(),
                spans: vec![],
            },
            done: |m, c| matches!(m, ServerMsg::MessageAck { room, .. } if *room == c.room),
            expect: |a, s| room(a, s, NOT_FOUND, |a, _| edit_of(a, Msg::Members)),
        },
        Row {
            act: Act::EditMessage(Msg::NotAMessage),
            spec: "§5.4.5, §8.1",
            scope: room_w,
            request: |c, _| Request::EditMessage {
                room: c.room,
                seq: Msg::NotAMessage.seq(),
                text: "edited".into(),
                spans: vec![],
            },
            done: |m, c| matches!(m, ServerMsg::MessageAck { room, .. } if *room == c.room),
            expect: |a, s| room(a, s, NOT_FOUND, |a, _| edit_of(a, Msg::NotAMessage)),
        },
        Row {
            act: Act::DeleteMessage(Msg::Members),
            spec: "§5.4.5, §8.1",
            scope: room_w,
            request: |c, _| Request::DeleteMessage {
                room: c.room,
                seq: Msg::Members.seq(),
            },
            done: |m, c| matches!(m, ServerMsg::MessageAck { room, .. } if *room == c.room),
            expect: |a, s| room(a, s, NOT_FOUND, |a, _| delete_of(a, Msg::Members)),
        },
        Row {
            act: Act::DeleteMessage(Msg::Bystanders),
            spec: "§5.4.5, §8.1",
            scope: room_w,
            request: |c, _| Request::DeleteMessage {
                room: c.room,
                seq: Msg::Bystanders.seq(),
            },
            done: |m, c| matches!(m, ServerMsg::MessageAck { room, .. } if *room == c.room),
            expect: |a, s| room(a, s, NOT_FOUND, |a, _| delete_of(a, Msg::Bystanders)),
        },
        Row {
            act: Act::DeleteMessage(Msg::NotAMessage),
            spec: "§5.4.5, §8.1",
            scope: room_w,
            request: |c, _| Request::DeleteMessage {
                room: c.room,
                seq: Msg::NotAMessage.seq(),
            },
            done: |m, c| matches!(m, ServerMsg::MessageAck { room, .. } if *room == c.room),
            expect: |a, s| room(a, s, NOT_FOUND, |a, _| delete_of(a, Msg::NotAMessage)),
        },
        // --- typing indicators (§5.5.7): never stored, so reads -------------------
        Row {
            act: Act::TypingStart,
            spec: "§5.5.7, §8.1",
            scope: room_r,
            request: |c, _| Request::TypingStart { room: c.room },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| room(a, s, NOT_FOUND, |a, _| member(a)),
        },
        Row {
            act: Act::TypingStop,
            spec: "§5.5.7, §8.1",
            scope: room_r,
            request: |c, _| Request::TypingStop { room: c.room },
            done: |m, _| matches!(m, ServerMsg::Ok),
            expect: |a, s| room(a, s, NOT_FOUND, |a, _| member(a)),
        },
        // --- read markers (§5.9): the caller's own, so the room is unchanged --------
        Row {
            act: Act::SetReadMarker(Mark::Read),
            spec: "§5.9, §8.1",
            scope: room_r,
            request: |c, _| Request::SetReadMarker {
                room: c.room,
                seq: MEMBERS_MESSAGE,
            },
            done: |m, c| matches!(m, ServerMsg::ReadMarker(s) if s.room == c.room),
            expect: |a, s| room(a, s, NOT_FOUND, |a, _| mark_of(a, Mark::Read)),
        },
        Row {
            act: Act::SetReadMarker(Mark::Beyond),
            spec: "§5.9, §6 (406)",
            scope: room_r,
            request: |c, _| Request::SetReadMarker {
                room: c.room,
                seq: Seq(1_000_000),
            },
            done: |m, c| matches!(m, ServerMsg::ReadMarker(s) if s.room == c.room),
            expect: |a, s| room(a, s, NOT_FOUND, |a, _| mark_of(a, Mark::Beyond)),
        },
    ]
}

/// Distinct usernames for REGISTER.
static FRESH: AtomicU64 = AtomicU64::new(1);

// --- the HTTP form of each request ---------------------------------------------

/// One HTTP call.
#[derive(Debug, Clone)]
struct Http {
    method: &'static str,
    /// The route as the OpenAPI document writes it.
    route: &'static str,
    path: String,
    body: Option<Value>,
    /// Whether the route takes a bearer token (REGISTER and LOGIN do not:
    /// over HTTP every caller of theirs is anonymous).
    token: bool,
    /// The success status.
    ok: u16,
}

impl Http {
    fn new(
        method: &'static str,
        route: &'static str,
        path: String,
        body: Option<Value>,
        ok: u16,
    ) -> Http {
        Http {
            method,
            route,
            path,
            body,
            token: true,
            ok,
        }
    }
}

/// The HTTP routes that send `req` (server/src/net/api). Exhaustive, like
/// [`rows_of`].
fn http_of(req: &Request) -> Vec<Http> {
    let at = |room: &RoomId, tail: &str| format!("/api/rooms/{}{tail}", room.0);
    let user_ref = |u: &UserRef| match u {
        UserRef::Id(id) => json!({ "user_id": id.0 }),
        UserRef::Name(name) => json!({ "username": name }),
    };
    let page = |before: u64, limit: u32| match before {
        0 => format!("?limit={limit}"),
        b => format!("?before={b}&limit={limit}"),
    };
    match req {
        // A connection's own: no HTTP form.
        Request::Hello(_) | Request::Ping { .. } => vec![],
        Request::Register { username, password } => vec![Http {
            token: false,
            ..Http::new(
                "POST",
                "/api/register",
                "/api/register".into(),
                Some(json!({ "username": username, "password": password.as_str() })),
                201,
            )
        }],
        Request::Login { username, password } => vec![Http {
            token: false,
            ..Http::new(
                "POST",
                "/api/login",
                "/api/login".into(),
                Some(json!({ "username": username, "password": password.as_str() })),
                200,
            )
        }],
        Request::Logout => vec![Http::new(
            "POST",
            "/api/logout",
            "/api/logout".into(),
            None,
            204,
        )],
        Request::CreateRoom {
            name,
            topic,
            visibility,
            members,
        } => vec![Http::new(
            "POST",
            "/api/rooms",
            "/api/rooms".into(),
            Some(json!({
                "name": name,
                "topic": topic,
                "visibility": visibility.as_str(),
                "members": members.iter().map(user_ref).collect::<Vec<_>>(),
            })),
            201,
        )],
        Request::ListRooms {
            query,
            offset,
            limit,
            exact,
        } => vec![Http::new(
            "GET",
            "/api/rooms",
            format!("/api/rooms?q={query}&exact={exact}&offset={offset}&limit={limit}"),
            None,
            200,
        )],
        Request::MyRooms => vec![Http::new(
            "GET",
            "/api/me/rooms",
            "/api/me/rooms".into(),
            None,
            200,
        )],
        Request::JoinRoom { room } => vec![Http::new(
            "POST",
            "/api/rooms/{id}/join",
            at(room, "/join"),
            None,
            200,
        )],
        Request::LeaveRoom { room } => vec![Http::new(
            "POST",
            "/api/rooms/{id}/leave",
            at(room, "/leave"),
            None,
            204,
        )],
        Request::ListMembers { room } => vec![Http::new(
            "GET",
            "/api/rooms/{id}/members",
            at(room, "/members"),
            None,
            200,
        )],
        Request::SendMessage {
            room,
            body,
            spans,
            sticker,
            attachments,
        } => {
            assert!(spans.is_empty(), "the matrix sends no spans");
            // Files are tested by tests/attachments.rs, uploads first.
            assert!(attachments.is_empty(), "the matrix attaches no files");
            let body = match sticker {
                Some(id) => json!({ "text": body, "sticker": id }),
                None => json!({ "text": body }),
            };
            vec![Http::new(
                "POST",
                "/api/rooms/{id}/messages",
                at(room, "/messages"),
                Some(body),
                201,
            )]
        }
        Request::History {
            room,
            before,
            limit,
        } => vec![Http::new(
            "GET",
            "/api/rooms/{id}/messages",
            at(room, &format!("/messages{}", page(before.0, *limit))),
            None,
            200,
        )],
        Request::Invite { room, user } => vec![Http::new(
            "POST",
            "/api/rooms/{id}/invitations",
            at(room, "/invitations"),
            Some(user_ref(user)),
            204,
        )],
        Request::RespondInvite { room, accept: true } => vec![Http::new(
            "POST",
            "/api/rooms/{id}/invitation/accept",
            at(room, "/invitation/accept"),
            None,
            200,
        )],
        Request::RespondInvite {
            room,
            accept: false,
        } => vec![Http::new(
            "POST",
            "/api/rooms/{id}/invitation/decline",
            at(room, "/invitation/decline"),
            None,
            204,
        )],
        Request::RequestJoin { room } => vec![Http::new(
            "POST",
            "/api/rooms/{id}/join-requests",
            at(room, "/join-requests"),
            None,
            204,
        )],
        Request::DecideRequest {
            room,
            user,
            approve: true,
        } => vec![Http::new(
            "POST",
            "/api/rooms/{id}/join-requests/{user_id}/approve",
            at(room, &format!("/join-requests/{}/approve", user.0)),
            None,
            204,
        )],
        Request::DecideRequest {
            room,
            user,
            approve: false,
        } => vec![Http::new(
            "POST",
            "/api/rooms/{id}/join-requests/{user_id}/deny",
            at(room, &format!("/join-requests/{}/deny", user.0)),
            None,
            204,
        )],
        Request::Kick { room, user } => vec![Http::new(
            "DELETE",
            "/api/rooms/{id}/members/{user_id}",
            at(room, &format!("/members/{}", user.0)),
            None,
            204,
        )],
        Request::Ban { room, user } => vec![Http::new(
            "POST",
            "/api/rooms/{id}/bans",
            at(room, "/bans"),
            Some(user_ref(user)),
            204,
        )],
        Request::Unban { room, user } => vec![Http::new(
            "DELETE",
            "/api/rooms/{id}/bans/{user_id}",
            at(room, &format!("/bans/{}", user.0)),
            None,
            204,
        )],
        Request::SetRole { room, user, role } => vec![Http::new(
            "PUT",
            "/api/rooms/{id}/members/{user_id}/role",
            at(room, &format!("/members/{}/role", user.0)),
            Some(json!({ "role": role.as_str() })),
            204,
        )],
        Request::ListJoinRequests { room } => vec![Http::new(
            "GET",
            "/api/rooms/{id}/join-requests",
            at(room, "/join-requests"),
            None,
            200,
        )],
        Request::ListBans { room } => vec![Http::new(
            "GET",
            "/api/rooms/{id}/bans",
            at(room, "/bans"),
            None,
            200,
        )],
        Request::ListNotifications {
            before,
            limit,
            unread_only,
        } => vec![Http::new(
            "GET",
            "/api/me/notifications",
            format!(
                "/api/me/notifications{}&unread_only={unread_only}",
                page(*before, *limit)
            ),
            None,
            200,
        )],
        Request::ListStickers => vec![Http::new(
            "GET",
            "/api/stickers",
            "/api/stickers".into(),
            None,
            200,
        )],
        Request::OpenDirect { user } => vec![Http::new(
            "POST",
            "/api/direct",
            "/api/direct".into(),
            Some(user_ref(user)),
            200,
        )],
        Request::SetAway { away } => vec![Http::new(
            "PUT",
            "/api/me/presence",
            "/api/me/presence".into(),
            Some(json!({ "away": away })),
            204,
        )],
        Request::ChangePassword(c) => vec![Http::new(
            "POST",
            "/api/me/password",
            "/api/me/password".into(),
            Some(json!({ "current_password": c.current, "new_password": c.new })),
            204,
        )],
        Request::GetProfile { user } => vec![Http::new(
            "GET",
            "/api/users/{id}/profile",
            format!("/api/users/{}/profile", user.0),
            None,
            200,
        )],
        Request::UpdateProfile(p) => vec![Http::new(
            "PUT",
            "/api/me/profile",
            "/api/me/profile".into(),
            Some(json!({ "display_name": p.display_name, "bio": p.bio, "email": p.email })),
            200,
        )],
        Request::MarkRead { up_to } => vec![Http::new(
            "POST",
            "/api/me/notifications/read",
            "/api/me/notifications/read".into(),
            Some(json!({ "up_to": up_to })),
            200,
        )],
        Request::RoomLog => vec![Http::new(
            "GET",
            "/api/me/room-log",
            "/api/me/room-log".into(),
            None,
            200,
        )],
        Request::RoomAudit {
            room,
            before,
            limit,
        } => vec![Http::new(
            "GET",
            "/api/rooms/{id}/audit",
            at(room, &format!("/audit{}", page(*before, *limit))),
            None,
            200,
        )],
        // PATCH with both fields is UPDATE_ROOM as it is; with one, the
        // API first reads the room as the caller sees it (MY_ROOMS, then
        // LIST_MEMBERS for the error), which must refuse the same way.
        Request::UpdateRoom { room, name, topic } => vec![
            Http::new(
                "PATCH",
                "/api/rooms/{id}",
                at(room, ""),
                Some(json!({ "name": name, "topic": topic })),
                204,
            ),
            Http::new(
                "PATCH",
                "/api/rooms/{id}",
                at(room, ""),
                Some(json!({ "topic": topic })),
                204,
            ),
        ],
        Request::EditMessage {
            room, seq, text, ..
        } => vec![Http::new(
            "PATCH",
            "/api/rooms/{id}/messages/{seq}",
            at(room, &format!("/messages/{}", seq.0)),
            Some(json!({ "text": text })),
            200,
        )],
        Request::DeleteMessage { room, seq } => vec![Http::new(
            "DELETE",
            "/api/rooms/{id}/messages/{seq}",
            at(room, &format!("/messages/{}", seq.0)),
            None,
            200,
        )],
        Request::TypingStart { room } => vec![Http::new(
            "POST",
            "/api/rooms/{id}/typing",
            at(room, "/typing"),
            Some(json!({ "typing": true })),
            204,
        )],
        Request::TypingStop { room } => vec![Http::new(
            "POST",
            "/api/rooms/{id}/typing",
            at(room, "/typing"),
            Some(json!({ "typing": false })),
            204,
        )],
        Request::SetReadMarker { room, seq } => vec![Http::new(
            "PUT",
            "/api/rooms/{id}/read-marker",
            at(room, "/read-marker"),
            Some(json!({ "seq": seq.0 })),
            200,
        )],
    }
}

/// The HTTP status of each error code the matrix expects, as the OpenAPI
/// document lists them per route (the test's own copy: a change to the
/// server's table must show here).
fn http_status(code: E) -> u16 {
    match code {
        E::InvalidRole | E::InvalidReadMarker => 400,
        E::NotAuthenticated | E::InvalidCredentials => 401,
        E::NotAMember
        | E::NotAdmin
        | E::NotOwner
        | E::RoomPrivate
        | E::Banned
        | E::CannotTargetSelf
        | E::CannotTargetOwner
        | E::NotYourMessage
        | E::DirectRoom => 403,
        E::MessageNotFound
        | E::RoomNotFound
        | E::NotInvited
        | E::TargetNotMember
        | E::NoSuchUser
        | E::NoSuchRequest
        | E::NotBanned => 404,
        E::AlreadyMember
        | E::AlreadyRequested
        | E::AlreadyBanned
        | E::AlreadyInvited
        | E::TargetBanned
        | E::AlreadyAuthenticated => 409,
        E::RoomTerminated | E::MessageDeleted => 410,
        other => panic!("the matrix expects no {other} over HTTP: add its status here"),
    }
}

// --- the server, the accounts, the rooms ----------------------------------------

struct Player {
    id: UserId,
    token: String,
    client: Client,
}

struct Env {
    players: HashMap<&'static str, Player>,
    ids: HashMap<&'static str, UserId>,
    /// The no-session actor's connection.
    anon: Client,
    url: String,
    http: SocketAddr,
    /// The server's own store, opened beside it (read only here).
    store: SqliteStore,
}

impl Env {
    async fn gather(url: String, http: SocketAddr, store: SqliteStore) -> Env {
        let players = join_all(USERS.iter().map(|&name| {
            let url = url.clone();
            async move {
                let client = Client::connect(&url, ConnectOptions::default())
                    .await
                    .expect("connect");
                let s = client.register(name, PASSWORD).await.expect("register");
                (
                    name,
                    Player {
                        id: s.user,
                        token: s.token,
                        client,
                    },
                )
            }
        }))
        .await
        .into_iter()
        .collect::<HashMap<_, _>>();
        let ids = players.iter().map(|(n, p)| (*n, p.id)).collect();
        let anon = Client::connect(&url, ConnectOptions::default())
            .await
            .expect("connect");
        Env {
            players,
            ids,
            anon,
            url,
            http,
            store,
        }
    }

    fn client(&self, who: &str) -> &Client {
        &self.players[who].client
    }

    fn actor_client(&self, a: Actor) -> &Client {
        a.user().map_or(&self.anon, |u| self.client(u))
    }

    fn token(&self, a: Actor) -> Option<&str> {
        a.user().map(|u| self.players[u].token.as_str())
    }

    fn me(&self, a: Actor) -> UserId {
        a.user().map_or(NOBODY, |u| self.ids[u])
    }

    fn ctx<'a>(&'a self, room: RoomId, name: &'a str) -> Ctx<'a> {
        Ctx {
            room,
            name,
            ids: &self.ids,
        }
    }
}

type Step<'a> = BoxFuture<'a, Result<(), confab_sdk::Error>>;

/// A room in which every account of [`USERS`] plays its part; with
/// `terminate`, every member then leaves (the owner last), which
/// terminates it.
async fn build_room(env: &Env, name: &str, vis: Visibility, terminate: bool) -> RoomId {
    const JOINERS: [&str; 6] = ["admin", "deputy", "member", "bystander", "kicked", "banned"];
    let c = |who| env.client(who);
    let id = |who| env.ids[who];
    let fail =
        |what: &str, e: confab_sdk::Error| -> RoomId { panic!("building {name}: {what}: {e}") };
    let owner = c("owner");
    let room = match owner.create_room(name, "before", vis).await {
        Ok(info) => info.id,
        Err(e) => return fail("CREATE_ROOM", e),
    };
    let mut first: Vec<Step<'_>> = vec![
        owner.invite(room, UserRef::id(id("invited"))).boxed(),
        c("requested").request_join(room).boxed(),
        c("asker").request_join(room).boxed(),
        owner.ban(room, UserRef::id(id("pariah"))).boxed(),
    ];
    for who in JOINERS {
        first.push(match vis {
            Visibility::Public => c(who).join_room(room).map(|r| r.map(drop)).boxed(),
            Visibility::Private => owner.invite(room, UserRef::id(id(who))).boxed(),
        });
    }
    if let Err(e) = try_join_all(first).await {
        return fail("joins, invitations, requests", e);
    }
    if vis == Visibility::Private {
        let accepts = JOINERS.map(|who| c(who).accept_invite(room).map(|r| r.map(drop)));
        if let Err(e) = try_join_all(accepts).await {
            return fail("accepting invitations", e);
        }
    }
    let roles: Vec<Step<'_>> = vec![
        owner.set_role(room, id("admin"), Role::Admin).boxed(),
        owner.set_role(room, id("deputy"), Role::Admin).boxed(),
        owner.kick(room, id("kicked")).boxed(),
        owner.ban(room, UserRef::id(id("banned"))).boxed(),
    ];
    if let Err(e) = try_join_all(roles).await {
        return fail("roles, kick, ban", e);
    }
    for (who, want) in [
        ("member", MEMBERS_MESSAGE),
        ("bystander", BYSTANDERS_MESSAGE),
    ] {
        match c(who).send_message(room, "to be edited or deleted").await {
            Ok(ack) => assert_eq!(ack.seq, want, "building {name}: {who}'s message"),
            Err(e) => return fail("messages", e),
        }
    }
    if terminate {
        for who in ["bystander", "member", "deputy", "admin", "owner"] {
            if let Err(e) = c(who).leave_room(room).await {
                return fail("leaving", e);
            }
        }
    }
    room
}

/// The owner's direct chat with the member (§5.3.7), with the fixture
/// rooms' messages at their seqs: after ROOM_CREATED and the member's
/// MEMBER_JOINED, the owner posts until the member's message is
/// [`MEMBERS_MESSAGE`]; then the owner's own is [`BYSTANDERS_MESSAGE`]
/// (posted by the owner: the member may delete neither that nor any other
/// message but their own, as a plain member elsewhere).
async fn build_direct(env: &Env) -> RoomId {
    let owner = env.client("owner");
    let member = env.client("member");
    let room = owner
        .open_direct(UserRef::name("member"))
        .await
        .expect("building the direct chat")
        .id;
    for _ in 3..MEMBERS_MESSAGE.0 {
        owner.send_message(room, "filler").await.expect("filler");
    }
    for (who, want) in [(member, MEMBERS_MESSAGE), (owner, BYSTANDERS_MESSAGE)] {
        let ack = who
            .send_message(room, "to be edited or deleted")
            .await
            .expect("the direct chat's messages");
        assert_eq!(ack.seq, want, "building the direct chat");
    }
    room
}

// --- observable state -------------------------------------------------------------

/// What can be seen of a room: through its owner's session (live rooms) and
/// in the server's store.
#[derive(Debug, PartialEq)]
struct Snapshot {
    owner: Option<OwnerView>,
    store: StoreView,
}

type Seen<T> = Result<T, String>;

#[derive(Debug, PartialEq)]
struct OwnerView {
    /// From MY_ROOMS.
    info: Seen<Option<RoomInfo>>,
    /// (user, username, role, joined_at); presence left out.
    members: Seen<Vec<(UserId, String, Role, Millis)>>,
    /// (user, at), sorted (bans come in no specified order).
    bans: Seen<Vec<(UserId, Millis)>>,
    requests: Seen<Vec<(UserId, Millis)>>,
    history: Seen<Vec<RoomEvent>>,
    audit: Seen<Vec<AuditItem>>,
}

#[derive(Debug, PartialEq)]
struct StoreView {
    /// With `last_seq` and `terminated_at`.
    room: Option<RoomRecord>,
    members: Vec<MemberRecord>,
    bans: Vec<BanRecord>,
    invites: Vec<InviteRecord>,
    requests: Vec<JoinRequestRecord>,
    audit: Vec<AuditRecord>,
}

/// A reply to the owner's read, or what went wrong.
fn seen<T>(
    reply: Result<ServerMsg, confab_sdk::Error>,
    pick: impl FnOnce(&ServerMsg) -> Option<T>,
) -> Seen<T> {
    match reply {
        Ok(m) => pick(&m).ok_or_else(|| clip(&format!("{m:?}"))),
        Err(e) => Err(e.to_string()),
    }
}

async fn snapshot(env: &Env, state: State, room: RoomId) -> Snapshot {
    let owner = match state {
        State::Public | State::Private | State::Direct => Some(owner_view(env, room).await),
        State::Terminated | State::Missing => None,
    };
    Snapshot {
        owner,
        store: store_view(&env.store, room).await,
    }
}

async fn owner_view(env: &Env, room: RoomId) -> OwnerView {
    let c = env.client("owner");
    let (mine, members, bans, requests, history, audit) = tokio::join!(
        c.raw_request(Request::MyRooms),
        c.raw_request(Request::ListMembers { room }),
        c.raw_request(Request::ListBans { room }),
        c.raw_request(Request::ListJoinRequests { room }),
        c.raw_request(Request::History {
            room,
            before: Seq(0),
            limit: 200,
        }),
        c.raw_request(Request::RoomAudit {
            room,
            before: 0,
            limit: 200,
        }),
    );
    let users = |m: &ServerMsg| match m {
        ServerMsg::UserList { users, .. } => {
            let mut v: Vec<_> = users.iter().map(|u| (u.user, u.at)).collect();
            v.sort();
            Some(v)
        }
        _ => None,
    };
    OwnerView {
        info: seen(mine, |m| match m {
            ServerMsg::RoomList { rooms, .. } => Some(rooms.iter().find(|r| r.id == room).cloned()),
            _ => None,
        }),
        members: seen(members, |m| match m {
            ServerMsg::MemberList { members, .. } => Some(
                members
                    .iter()
                    .map(|m| (m.user, m.username.clone(), m.role, m.joined_at))
                    .collect(),
            ),
            _ => None,
        }),
        bans: seen(bans, users),
        requests: seen(requests, users),
        history: seen(history, |m| match m {
            ServerMsg::HistoryPage { events, .. } => Some(events.clone()),
            _ => None,
        }),
        audit: seen(audit, |m| match m {
            ServerMsg::AuditPage { items, .. } => Some(items.clone()),
            _ => None,
        }),
    }
}

async fn store_view(store: &SqliteStore, room: RoomId) -> StoreView {
    let (rooms, members, bans, invites, requests, audit) = tokio::join!(
        store.load_rooms(),
        store.load_members(),
        store.load_bans(),
        store.load_invites(),
        store.load_join_requests(),
        store.audit(room, 0, 200),
    );
    let read = "the server's store reads";
    let mut bans: Vec<_> = bans
        .expect(read)
        .into_iter()
        .filter(|b| b.room == room)
        .collect();
    bans.sort_by_key(|b| b.user);
    let mut invites: Vec<_> = invites
        .expect(read)
        .into_iter()
        .filter(|i| i.room == room)
        .collect();
    invites.sort_by_key(|i| i.user);
    let mut requests: Vec<_> = requests
        .expect(read)
        .into_iter()
        .filter(|r| r.room == room)
        .collect();
    requests.sort_by_key(|r| r.user);
    StoreView {
        room: rooms.expect(read).into_iter().find(|r| r.id == room),
        members: members
            .expect(read)
            .into_iter()
            .filter(|m| m.room == room)
            .collect(),
        bans,
        invites,
        requests,
        audit: audit.expect(read),
    }
}

/// The parts of two snapshots that differ: what each lost and gained.
fn diff(before: &Snapshot, after: &Snapshot) -> String {
    fn items<T: std::fmt::Debug>(v: &[T]) -> Vec<String> {
        v.iter().map(|x| format!("{x:?}")).collect()
    }
    fn seen<T: std::fmt::Debug>(v: Option<&Seen<Vec<T>>>) -> Vec<String> {
        match v {
            None => vec![],
            Some(Ok(v)) => items(v),
            Some(Err(e)) => vec![format!("ERROR {e}")],
        }
    }
    fn parts(s: &Snapshot) -> Vec<(&'static str, Vec<String>)> {
        let o = s.owner.as_ref();
        vec![
            (
                "owner's MY_ROOMS",
                o.map(|o| vec![format!("{:?}", o.info)]).unwrap_or_default(),
            ),
            ("owner's LIST_MEMBERS", seen(o.map(|o| &o.members))),
            ("owner's LIST_BANS", seen(o.map(|o| &o.bans))),
            ("owner's LIST_JOIN_REQUESTS", seen(o.map(|o| &o.requests))),
            ("owner's HISTORY", seen(o.map(|o| &o.history))),
            ("owner's ROOM_AUDIT", seen(o.map(|o| &o.audit))),
            ("stored room", vec![format!("{:?}", s.store.room)]),
            ("stored members", items(&s.store.members)),
            ("stored bans", items(&s.store.bans)),
            ("stored invitations", items(&s.store.invites)),
            ("stored join requests", items(&s.store.requests)),
            ("stored audit", items(&s.store.audit)),
        ]
    }
    let mut out = String::new();
    for ((what, b), (_, a)) in parts(before).into_iter().zip(parts(after)) {
        for gone in b.iter().filter(|x| !a.contains(x)) {
            out.push_str(&format!("\n      {what}: - {}", clip(gone)));
        }
        for new in a.iter().filter(|x| !b.contains(x)) {
            out.push_str(&format!("\n      {what}: + {}", clip(new)));
        }
    }
    out
}

fn clip(s: &str) -> String {
    const MAX: usize = 300;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

// --- running and judging one case ----------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Door {
    Binary,
    Http,
}

/// One call a case makes: the request over the binary protocol, or one of
/// its HTTP routes.
enum Call {
    Binary(Request),
    Http(Http),
}

impl Call {
    fn label(&self) -> String {
        match self {
            Call::Binary(req) => req.name().to_owned(),
            Call::Http(h) => format!("{} {}", h.method, h.path),
        }
    }
}

/// The calls a case makes through `door`. Over HTTP, a route that takes no
/// bearer token has no actor but the anonymous one.
fn calls(door: Door, actor: Actor, req: &Request) -> Vec<Call> {
    match door {
        Door::Binary => vec![Call::Binary(req.clone())],
        Door::Http => http_of(req)
            .into_iter()
            .filter(|h| h.token || actor == NoSession)
            .map(Call::Http)
            .collect(),
    }
}

/// Makes `call` as `actor` and checks the answer against `want`.
async fn perform(
    env: &Env,
    row: &Row,
    ctx: &Ctx<'_>,
    actor: Actor,
    call: &Call,
    want: &Outcome,
) -> Result<(), String> {
    match call {
        Call::Binary(req) => {
            // An anonymous success (REGISTER, LOGIN) authenticates its
            // connection: such rows get a connection of their own.
            let own = matches!(row.scope, Scope::Account { .. }) && actor == NoSession;
            let got = if own {
                let c = Client::connect(&env.url, ConnectOptions::default())
                    .await
                    .expect("connect");
                let got = c.raw_request(req.clone()).await;
                c.close().await;
                got
            } else {
                env.actor_client(actor).raw_request(req.clone()).await
            };
            let ok = match (want, &got) {
                (Done, Ok(m)) => (row.done)(m, ctx),
                (Lists(shown), Ok(m)) => listed(m, ctx.room) == Some(*shown),
                (Outcome::No(codes), Err(e)) => e.code().is_some_and(|c| codes.contains(&c)),
                _ => false,
            };
            if ok {
                return Ok(());
            }
            let got = match got {
                Ok(m) => clip(&format!("{m:?}")),
                Err(e) => format!("{e}"),
            };
            Err(format!("want {}, got {got}", show(want)))
        }
        Call::Http(h) => {
            let token = if h.token { env.token(actor) } else { None };
            let (status, v) = api(env.http, h.method, &h.path, token, h.body.clone()).await;
            let ok = match want {
                Done => status == h.ok,
                Lists(shown) => status == 200 && listed_json(&v, ctx.room) == Some(*shown),
                Outcome::No(codes) => {
                    let code = v["error"]["code"]
                        .as_u64()
                        .and_then(|c| u16::try_from(c).ok())
                        .and_then(E::from_u16);
                    code.is_some_and(|c| {
                        codes.contains(&c)
                            && status == http_status(c)
                            && v["error"]["name"] == c.name()
                    })
                }
                Outcome::NotRun(_) => false,
            };
            if ok {
                return Ok(());
            }
            let want = match want {
                Done => format!("{} (success)", h.ok),
                Outcome::No(codes) => codes
                    .iter()
                    .map(|c| format!("{} {}", http_status(*c), c.name()))
                    .collect::<Vec<_>>()
                    .join(" or "),
                other => show(other),
            };
            Err(format!(
                "want {want}, got {status} {}",
                clip(&v.to_string())
            ))
        }
    }
}

fn show(want: &Outcome) -> String {
    match want {
        Done => "success".into(),
        Lists(true) => "a listing that shows the room".into(),
        Lists(false) => "a listing without the room".into(),
        Outcome::No(codes) => format!(
            "ERROR {}",
            codes
                .iter()
                .map(|c| format!("{} ({})", c.name(), *c as u16))
                .collect::<Vec<_>>()
                .join(" or ")
        ),
        Outcome::NotRun(why) => format!("not run: {why}"),
    }
}

/// Whether a listing reply shows `room`; `None` if it is no listing.
fn listed(m: &ServerMsg, room: RoomId) -> Option<bool> {
    match m {
        ServerMsg::RoomList { rooms, .. } => Some(rooms.iter().any(|r| r.id == room)),
        ServerMsg::RoomLogList { items } => Some(items.iter().any(|i| i.room.id == room)),
        _ => None,
    }
}

fn listed_json(v: &Value, room: RoomId) -> Option<bool> {
    if let Some(rooms) = v["rooms"].as_array() {
        return Some(rooms.iter().any(|r| r["id"] == room.0));
    }
    let items = v["items"].as_array()?;
    Some(items.iter().any(|i| i["room"]["id"] == room.0))
}

/// What a group of cases did.
#[derive(Default)]
struct Tally {
    cases: usize,
    /// Cases by expected answer: successes, listings, refusals.
    done: usize,
    lists: usize,
    refused: usize,
    not_run: usize,
    failures: Vec<String>,
}

impl Tally {
    fn count(&mut self, want: &Outcome) {
        self.cases += 1;
        match want {
            Done => self.done += 1,
            Lists(_) => self.lists += 1,
            Outcome::No(_) => self.refused += 1,
            Outcome::NotRun(_) => {}
        }
    }

    fn add(&mut self, other: Tally) {
        self.cases += other.cases;
        self.done += other.done;
        self.lists += other.lists;
        self.refused += other.refused;
        self.not_run += other.not_run;
        self.failures.extend(other.failures);
    }
}

/// Whether a case changes its room when it answers as expected: it then
/// gets a fresh room (phase 2) instead of the shared one.
fn writes(row: &Row, want: &Outcome) -> bool {
    *want == Done && row.scope == (Scope::Room { writes: true })
}

// --- phase 1: everything that must leave the room as it was ---------------------

/// Every case of `door` in `state` that must not change the room, one
/// after the other, each followed by a look at the room.
async fn sweep(
    env: &Env,
    rows: &[Row],
    door: Door,
    state: State,
    room: RoomId,
    name: &str,
) -> Tally {
    let ctx = env.ctx(room, name);
    let mut tally = Tally::default();
    let mut before = snapshot(env, state, room).await;
    for row in rows
        .iter()
        .filter(|r| matches!(r.scope, Scope::Room { .. }))
    {
        for actor in Actor::ALL {
            let want = (row.expect)(actor, state);
            if let Outcome::NotRun(_) = want {
                tally.not_run += 1;
                continue;
            }
            if writes(row, &want) {
                continue;
            }
            let req = (row.request)(&ctx, env.me(actor));
            for call in calls(door, actor, &req) {
                tally.count(&want);
                let at = format!(
                    "{state:?} room, {:?} by {actor:?}: {}",
                    row.act,
                    call.label()
                );
                if let Err(e) = perform(env, row, &ctx, actor, &call, &want).await {
                    tally.failures.push(format!("{at} ({}): {e}", row.spec));
                }
                let after = snapshot(env, state, room).await;
                if after != before {
                    tally.failures.push(format!(
                        "{at}: answered {} but changed the room:{}",
                        show(&want),
                        diff(&before, &after)
                    ));
                    before = after;
                }
            }
        }
    }
    tally
}

/// The rows that name no room, once per actor and door.
async fn account_rows(env: &Env, rows: &[Row], door: Door) -> Tally {
    let ctx = env.ctx(MISSING, "authz-missing");
    let cases = rows
        .iter()
        .filter(|r| matches!(r.scope, Scope::Account { .. }))
        .flat_map(|row| Actor::ALL.map(|a| (row, a)));
    let results = join_all(cases.map(|(row, actor)| {
        let ctx = &ctx;
        async move {
            let mut tally = Tally::default();
            let want = (row.expect)(actor, State::Missing);
            if let Outcome::NotRun(_) = want {
                tally.not_run += 1;
                return tally;
            }
            let req = (row.request)(ctx, env.me(actor));
            for call in calls(door, actor, &req) {
                tally.count(&want);
                if let Err(e) = perform(env, row, ctx, actor, &call, &want).await {
                    tally.failures.push(format!(
                        "no room, {:?} by {actor:?}: {} ({}): {e}",
                        row.act,
                        call.label(),
                        row.spec
                    ));
                }
            }
            tally
        }
    }))
    .await;
    let mut tally = Tally::default();
    results.into_iter().for_each(|t| tally.add(t));
    tally
}

// --- phase 2: every successful write, in a room of its own -----------------------

/// One successful write: which row, actor and call (by index: the calls of
/// a request do not depend on its room).
struct WriteCase {
    door: Door,
    state: State,
    row: usize,
    actor: Actor,
    call: usize,
}

fn write_cases(env: &Env, rows: &[Row]) -> Vec<WriteCase> {
    let ctx = env.ctx(MISSING, "authz-missing");
    let mut out = vec![];
    for door in [Door::Binary, Door::Http] {
        // A pair has one direct chat, so no fresh one can be built per
        // write: the writes of its two users (leave, messages, the
        // reopening) are tests/direct_chats.rs's.
        for state in State::ALL.into_iter().filter(|s| *s != State::Direct) {
            for (i, row) in rows.iter().enumerate() {
                for actor in Actor::ALL {
                    if !writes(row, &(row.expect)(actor, state)) {
                        continue;
                    }
                    let n = calls(door, actor, &(row.request)(&ctx, env.me(actor))).len();
                    out.extend((0..n).map(|call| WriteCase {
                        door,
                        state,
                        row: i,
                        actor,
                        call,
                    }));
                }
            }
        }
    }
    out
}

async fn run_write(env: &Env, rows: &[Row], case: WriteCase, n: usize) -> Tally {
    let row = &rows[case.row];
    let vis = match case.state {
        State::Public => Visibility::Public,
        State::Private => Visibility::Private,
        other => panic!("no successful write in a {other:?} room"),
    };
    let name = format!("authz-write-{n}");
    let room = build_room(env, &name, vis, false).await;
    let ctx = env.ctx(room, &name);
    let req = (row.request)(&ctx, env.me(case.actor));
    let call = calls(case.door, case.actor, &req).swap_remove(case.call);
    let mut tally = Tally::default();
    tally.count(&Done);
    if let Err(e) = perform(env, row, &ctx, case.actor, &call, &Done).await {
        tally.failures.push(format!(
            "{:?} room, {:?} by {:?}: {} ({}): {e}",
            case.state,
            row.act,
            case.actor,
            call.label(),
            row.spec
        ));
    }
    tally
}

// --- the tests ---------------------------------------------------------------------

/// The request types the decoder knows: every type of the request range
/// that is not refused as unknown (an empty payload is enough to tell).
fn known_request_kinds() -> BTreeSet<u8> {
    (0x01..=0x3f)
        .filter(|&kind| {
            let frame = RawFrame {
                kind,
                req_id: 1,
                payload: Bytes::new(),
            };
            !matches!(
                Request::decode(&frame),
                Err(DecodeError::UnknownFrameType(_))
            )
        })
        .collect()
}

/// The table is complete and consistent: every request the protocol has is
/// some row's, every row `rows_of` names exists exactly once, and each
/// row's request is of the kind its row says.
#[test]
fn the_table_covers_every_request() {
    let rows = table();
    let ids: HashMap<&'static str, UserId> = USERS
        .iter()
        .enumerate()
        .map(|(i, u)| (*u, UserId(i as u64 + 1)))
        .collect();
    let ctx = Ctx {
        room: RoomId(1),
        name: "r",
        ids: &ids,
    };
    let mut acts = std::collections::HashSet::new();
    let mut kinds = BTreeSet::new();
    for row in &rows {
        assert!(acts.insert(row.act), "{:?} has two rows", row.act);
        let req = (row.request)(&ctx, UserId(5));
        kinds.insert(req.kind());
        assert!(
            rows_of(&req).contains(&row.act),
            "row {:?} sends {}, whose rows (rows_of) do not include it",
            row.act,
            req.name()
        );
        for act in rows_of(&req) {
            assert!(
                rows.iter().any(|r| r.act == *act),
                "rows_of({}) names {act:?}, which has no row in table()",
                req.name()
            );
        }
    }
    assert_eq!(
        kinds,
        known_request_kinds(),
        "every request type the decoder knows has a row, and no other"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_matrix() {
    let started = Instant::now();
    // Every fixture room gets two messages from the same two accounts, all
    // rooms built at once: no per-connection message limit here (the limit
    // has tests of its own).
    let srv = TestServer::start_with(|c| c.rate_limit_per_sec = 0).await;
    let http = srv.addr_for(Transport::Ws);
    let store = SqliteStore::open(&srv.dir.path().join("confab.db"))
        .await
        .expect("the server's store, opened beside it");
    let env = Env::gather(srv.url(), http, store).await;
    let rows = table();

    // Every operation of the HTTP API is some row's route.
    let (status, doc) = api(http, "GET", "/api/openapi.json", None, None).await;
    assert_eq!(status, 200);
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("operations").keys() {
            documented.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    let ctx = env.ctx(MISSING, "authz-missing");
    // Not protocol requests: the health checks, and the file routes (SPEC.md
    // §13), whose member / non-member / signed-link cases tests/files.rs
    // covers on both stores, and the avatar's (the caller's own; any
    // authenticated user, or a link, reads it), which tests/avatars.rs
    // covers.
    let mut routed: BTreeSet<String> = [
        "GET /healthz",
        "GET /readyz",
        "POST /api/rooms/{id}/files",
        "GET /api/files/{id}",
        "GET /api/files/{id}/url",
        "PUT /api/me/avatar",
        "DELETE /api/me/avatar",
    ]
    .map(String::from)
    .into();
    for row in &rows {
        for h in http_of(&(row.request)(&ctx, NOBODY)) {
            routed.insert(format!("{} {}", h.method, h.route));
        }
    }
    assert_eq!(
        routed, documented,
        "every route of the OpenAPI document is some row's (or a health check or a file route)"
    );

    // Phase 1: one shared room per door and state, and the rows that name
    // no room, all at once.
    let shared = [
        ("authz-public-bin", Door::Binary, State::Public),
        ("authz-public-http", Door::Http, State::Public),
        ("authz-private-bin", Door::Binary, State::Private),
        ("authz-private-http", Door::Http, State::Private),
        ("authz-terminated-bin", Door::Binary, State::Terminated),
        ("authz-terminated-http", Door::Http, State::Terminated),
    ];
    let built = join_all(shared.iter().map(|(name, _, state)| {
        let (vis, terminate) = match state {
            State::Private => (Visibility::Private, false),
            State::Terminated => (Visibility::Public, true),
            _ => (Visibility::Public, false),
        };
        build_room(&env, name, vis, terminate)
    }))
    .await;
    let mut sweeps: Vec<BoxFuture<'_, (Door, bool, Tally)>> = vec![];
    for ((name, door, state), room) in shared.iter().zip(built) {
        let door = *door;
        let sweep = sweep(&env, &rows, door, *state, room, name);
        sweeps.push(sweep.map(move |t| (door, true, t)).boxed());
    }
    // One direct chat for both doors (a pair has one): nothing of phase
    // 1 changes it, so the two sweeps may share it. Its ListRooms lookup is
    // by the name the owner sees it under.
    let direct = build_direct(&env).await;
    for door in [Door::Binary, Door::Http] {
        let sweep = sweep(&env, &rows, door, State::Direct, direct, "member");
        sweeps.push(sweep.map(move |t| (door, true, t)).boxed());
    }
    for door in [Door::Binary, Door::Http] {
        let missing = sweep(&env, &rows, door, State::Missing, MISSING, "authz-missing");
        sweeps.push(missing.map(move |t| (door, true, t)).boxed());
        let accounts = account_rows(&env, &rows, door);
        sweeps.push(accounts.map(move |t| (door, false, t)).boxed());
    }
    // Per door: phase 1's cases in shared rooms and naming no room, then
    // phase 2's.
    let mut tallies: HashMap<Door, (Tally, Tally, Tally)> = HashMap::new();
    for (door, in_room, t) in join_all(sweeps).await {
        let tally = tallies.entry(door).or_default();
        match in_room {
            true => tally.0.add(t),
            false => tally.1.add(t),
        }
    }
    let phase1 = started.elapsed();

    // Phase 2: every successful write in a fresh room.
    let cases = write_cases(&env, &rows);
    let written = futures_util::stream::iter(cases.into_iter().enumerate())
        .map(|(n, case)| {
            let door = case.door;
            run_write(&env, &rows, case, n).map(move |t| (door, t))
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    for (door, t) in written {
        tallies.entry(door).or_default().2.add(t);
    }

    let room_rows = rows
        .iter()
        .filter(|r| matches!(r.scope, Scope::Room { .. }))
        .count();
    println!(
        "authorization matrix: {} rows ({room_rows} about a room, {} naming none) × {} actors × \
         {} room states; phase 1 {phase1:.1?}, total {:.1?}",
        rows.len(),
        rows.len() - room_rows,
        Actor::ALL.len(),
        State::ALL.len(),
        started.elapsed(),
    );
    let mut failures = vec![];
    for door in [Door::Binary, Door::Http] {
        let (shared, accounts, writes) = tallies.remove(&door).unwrap_or_default();
        println!(
            "  {door:?}: {} cases: {} in shared rooms, each followed by a look at the room \
             ({} successes, {} listings, {} refusals); {} successful writes in rooms of their \
             own; {} naming no room ({} not run by design)",
            shared.cases + accounts.cases + writes.cases,
            shared.cases,
            shared.done,
            shared.lists,
            shared.refused,
            writes.cases,
            accounts.cases,
            accounts.not_run,
        );
        failures.extend(shared.failures);
        failures.extend(accounts.failures);
        failures.extend(writes.failures);
    }
    drop(env);
    srv.stop().await;
    assert!(
        failures.is_empty(),
        "{} case(s) of the authorization matrix failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}
