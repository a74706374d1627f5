//! The room state machine: every rule about a room, with no I/O.
//!
//! `Room::apply(command, now)` checks a command against the room's state,
//! mutates it and returns the [`Effect`]s for the shard to carry out
//! (broadcast and persist events, persist state changes, change fan-out
//! subscriptions, notify users, audit). It knows nothing of sockets, tasks
//! or databases, so every rule is tested here, fast and deterministically,
//! with explicit clocks.
//!
//! The governance rules (SPEC.md §8) in one place:
//! - roles: owner > admin > member; the owner is an admin; only the owner
//!   makes and unmakes admins; admins invite, decide requests, kick, ban;
//! - private rooms are joined only by invitation or approved request;
//!   banned users cannot join, request or be invited;
//! - succession: whenever the owner is gone and members remain, ownership
//!   passes to the earliest-joined admin, else the earliest-joined member;
//! - termination: no member left, or one non-admin member left (who is
//!   removed and notified); a lone admin keeps the room until they leave;
//! - direct rooms (OPEN_DIRECT, SPEC.md §5.3.7): exactly their two users,
//!   no governance (`DIRECT_ROOM`), and never terminated by a leave: a user
//!   who left comes back by opening the room again.
//!
//! **Invariants:** sequence numbers are 1, 2, 3, … without gaps; a live room
//! with members has exactly one owner, who is a member; a terminated room
//! accepts no command.

use confab_protocol::{
    Attachment, AuditAction, DirectWith, ErrorCode, EventBody, LeaveReason, Millis,
    NotificationKind as Notify, Role, RoomEvent, RoomId, RoomInfo, Seq, Span, UserId, Visibility,
};
use confab_store::WriteOp;
use std::collections::{BTreeMap, HashMap};

mod messages;
use messages::MessageIndex;
pub use messages::{Lookup, MessageFacts, Resolved};
pub mod mentions;
pub mod typing;
use typing::{Typing, TypingOutcome};

/// At most this many users are notified of a mention per message (the
/// first distinct members named; SPEC.md §8.13).
pub const MAX_MENTIONS: usize = 20;

/// The actor of system-made changes (succession, termination).
pub const SYSTEM: UserId = UserId(0);

/// What a message carries beside its text (SPEC.md §5.11, §13.5),
/// checked by the session before the room sees it: formatting spans, or
/// the sticker the message is; the files it carries, which the session
/// has claimed for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rich {
    pub spans: Vec<Span>,
    pub sticker: Option<String>,
    pub attachments: Vec<Attachment>,
}

impl Rich {
    /// The ids of the files the message claimed.
    pub fn file_ids(&self) -> Vec<u64> {
        self.attachments.iter().map(|a| a.id).collect()
    }
}

/// One member of a room, in join order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberState {
    pub user: UserId,
    pub username: String,
    pub role: Role,
    pub joined_at: Millis,
}

/// A room's members, found by user in O(1) and kept in join order (for
/// succession and listing): a map from join number to member plus each
/// user's join number. Joining and leaving are O(log n) whatever the
/// room's size; a `Vec` searched and shifted was O(n), 10,000 members
/// made every join and leave walk 10,000 entries.
#[derive(Debug, Clone, Default)]
pub struct Members {
    by_order: BTreeMap<u64, MemberState>,
    order_of: HashMap<UserId, u64>,
    /// Username → user, for mentions.
    by_name: HashMap<String, UserId>,
    next: u64,
}

impl Members {
    pub fn len(&self) -> usize {
        self.by_order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_order.is_empty()
    }

    /// In join order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &MemberState> + '_ {
        self.by_order.values()
    }

    pub fn get(&self, user: UserId) -> Option<&MemberState> {
        self.order_of.get(&user).and_then(|k| self.by_order.get(k))
    }

    /// The member with this (lowercase) username.
    pub fn named(&self, username: &str) -> Option<UserId> {
        self.by_name.get(username).copied()
    }

    fn get_mut(&mut self, user: UserId) -> Option<&mut MemberState> {
        let key = self.order_of.get(&user)?;
        self.by_order.get_mut(key)
    }

    /// The earliest-joined member.
    pub fn first(&self) -> Option<&MemberState> {
        self.by_order.values().next()
    }

    /// Appends `m` as the latest-joined member (the room checks that the
    /// user is not a member already).
    fn push(&mut self, m: MemberState) {
        let key = self.next;
        self.next += 1;
        if let Some(old) = self.order_of.insert(m.user, key) {
            self.by_order.remove(&old);
        }
        self.by_name.insert(m.username.clone(), m.user);
        self.by_order.insert(key, m);
    }

    fn remove(&mut self, user: UserId) -> Option<MemberState> {
        let key = self.order_of.remove(&user)?;
        let m = self.by_order.remove(&key)?;
        self.by_name.remove(&m.username);
        Some(m)
    }
}

impl FromIterator<MemberState> for Members {
    /// Members in join order.
    fn from_iter<I: IntoIterator<Item = MemberState>>(iter: I) -> Members {
        let mut members = Members::default();
        for m in iter {
            members.push(m);
        }
        members
    }
}

impl<'a> IntoIterator for &'a Members {
    type Item = &'a MemberState;
    type IntoIter = std::collections::btree_map::Values<'a, u64, MemberState>;

    fn into_iter(self) -> Self::IntoIter {
        self.by_order.values()
    }
}

/// A user attached to a room by something pending or restrictive: an
/// invitation, a join request or a ban.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUser {
    pub user: UserId,
    pub username: String,
    /// Who invited or banned (the requester themself for a request).
    pub by: UserId,
    pub at: Millis,
}

/// What a shard must do after a command was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A new sequenced event: broadcast it to the room's online members,
    /// keep it in the room's tail and persist it.
    Event(RoomEvent),
    /// A state change to persist, ordered with the events around it.
    Persist(WriteOp),
    /// Start delivering the room's events to this user's connections.
    Subscribe(UserId),
    /// Stop delivering the room's events to this user's connections.
    Unsubscribe(UserId),
    /// Create (persist and deliver) a notification for `user`, made at
    /// `at`.
    Notify {
        user: UserId,
        kind: Notify,
        actor: UserId,
        actor_name: String,
        at: Millis,
    },
    /// The event at `ev.seq`, sent earlier, now reads as `ev` in HISTORY
    /// and on resume (an edited message, a tombstone): replace it in the
    /// room's tail and in the store.
    Rewrite(RoomEvent),
    /// Record an audit-trail entry about this room, made at `at`.
    Audit {
        actor: UserId,
        action: AuditAction,
        target: Option<UserId>,
        detail: String,
        at: Millis,
    },
}

/// The two users of a direct room (SPEC.md §5.3.7), lower id first, with
/// their names: whether or not they are members now, they are the only
/// users the room can ever have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Direct {
    users: [(UserId, String); 2],
}

impl Direct {
    /// The direct room of `a` and `b` (two different users).
    pub fn new(a: (UserId, String), b: (UserId, String)) -> Direct {
        debug_assert!(a.0 != b.0);
        Direct {
            users: if a.0 < b.0 { [a, b] } else { [b, a] },
        }
    }

    /// The key of the pair, lower id first (the store's `direct_low`,
    /// `direct_high`).
    pub fn pair(&self) -> (UserId, UserId) {
        (self.users[0].0, self.users[1].0)
    }

    /// The two users with their names, lower id first.
    pub fn users(&self) -> &[(UserId, String); 2] {
        &self.users
    }

    /// The other user of the pair as `viewer` sees it; `None` if `viewer`
    /// is not one of the two.
    pub fn other(&self, viewer: UserId) -> Option<&(UserId, String)> {
        match &self.users {
            [(a, _), b] if *a == viewer => Some(b),
            [a, (b, _)] if *b == viewer => Some(a),
            _ => None,
        }
    }

    /// The name the room is stored under (and its ROOM_CREATED event
    /// carries): both usernames, lower id first. Each user is shown the
    /// room under the other's name instead.
    pub fn stored_name(&self) -> String {
        format!("{} & {}", self.users[0].1, self.users[1].1)
    }
}

/// A request to change a room, already authenticated (and with target
/// users resolved to ids by the session).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Join {
        user: UserId,
        username: String,
    },
    Leave {
        user: UserId,
    },
    Post {
        user: UserId,
        text: String,
        rich: Rich,
    },
    Invite {
        by: UserId,
        target: UserId,
        target_name: String,
    },
    RespondInvite {
        user: UserId,
        username: String,
        accept: bool,
    },
    RequestJoin {
        user: UserId,
        username: String,
    },
    Decide {
        by: UserId,
        target: UserId,
        approve: bool,
    },
    Kick {
        by: UserId,
        target: UserId,
    },
    Ban {
        by: UserId,
        target: UserId,
        target_name: String,
    },
    Unban {
        by: UserId,
        target: UserId,
    },
    SetRole {
        by: UserId,
        target: UserId,
        role: Role,
    },
    Update {
        by: UserId,
        name: String,
        topic: String,
    },
    /// The sender replaces the text and spans of the message `seq`;
    /// `stored` is what the session read about it, if the room asked (see
    /// `messages`).
    EditMessage {
        user: UserId,
        seq: Seq,
        text: String,
        spans: Vec<Span>,
        stored: Lookup,
    },
    /// The sender or an admin deletes the message `seq`.
    DeleteMessage {
        user: UserId,
        seq: Seq,
        stored: Lookup,
    },
    /// OPEN_DIRECT of an existing direct room by one of its two users:
    /// re-adds them if they had left.
    OpenDirect {
        user: UserId,
        username: String,
    },
}

impl Command {
    /// The governance requests a direct room refuses with `DIRECT_ROOM`
    /// (SPEC.md §5.3.7): every way in but OPEN_DIRECT, and every change of
    /// roles, membership by others, bans and the room itself.
    fn is_governance(&self) -> bool {
        match self {
            Command::Join { .. }
            | Command::Invite { .. }
            | Command::RespondInvite { .. }
            | Command::RequestJoin { .. }
            | Command::Decide { .. }
            | Command::Kick { .. }
            | Command::Ban { .. }
            | Command::Unban { .. }
            | Command::SetRole { .. }
            | Command::Update { .. } => true,
            Command::Leave { .. }
            | Command::Post { .. }
            | Command::EditMessage { .. }
            | Command::DeleteMessage { .. }
            | Command::OpenDirect { .. } => false,
        }
    }
}

/// Everything needed to rebuild a room from the store.
#[derive(Debug, Clone)]
pub struct RoomSnapshot {
    pub id: RoomId,
    pub name: String,
    pub topic: String,
    pub visibility: Visibility,
    pub owner: UserId,
    pub created_at: Millis,
    pub last_seq: Seq,
    pub terminated: bool,
    /// In join order.
    pub members: Vec<MemberState>,
    pub bans: Vec<PendingUser>,
    pub invites: Vec<PendingUser>,
    /// Oldest first.
    pub requests: Vec<PendingUser>,
    /// Set for a direct room.
    pub direct: Option<Direct>,
}

/// A room's state, owned by exactly one shard.
#[derive(Debug, Clone)]
pub struct Room {
    pub id: RoomId,
    pub name: String,
    pub topic: String,
    pub visibility: Visibility,
    pub owner: UserId,
    pub created_at: Millis,
    /// The sequence number of the latest event.
    pub last_seq: Seq,
    pub terminated: bool,
    /// Members in join order.
    members: Members,
    bans: Vec<PendingUser>,
    invites: Vec<PendingUser>,
    /// Pending join requests, oldest first.
    requests: Vec<PendingUser>,
    /// The messages and changes the store may not hold yet.
    messages: MessageIndex,
    /// Who is typing (never stored).
    typing: Typing,
    /// Set for a direct room: its two users.
    direct: Option<Direct>,
}

type Outcome = Result<Vec<Effect>, ErrorCode>;

impl Room {
    /// A new room created by `creator`, who becomes owner and only member.
    pub fn create(
        id: RoomId,
        name: String,
        topic: String,
        visibility: Visibility,
        creator: UserId,
        creator_name: String,
        now: Millis,
    ) -> (Room, Vec<Effect>) {
        Room::create_group(
            id,
            name,
            topic,
            visibility,
            (creator, creator_name),
            Vec::new(),
            now,
        )
    }

    /// A new room created by `creator`, who becomes owner and first member,
    /// with `members` (resolved, distinct, not the creator: the session
    /// checked) added as members in the same write, in the order given
    /// (SPEC.md §5.3.2).
    pub fn create_group(
        id: RoomId,
        name: String,
        topic: String,
        visibility: Visibility,
        (creator, creator_name): (UserId, String),
        members: Vec<(UserId, String)>,
        now: Millis,
    ) -> (Room, Vec<Effect>) {
        let mut room = Room {
            id,
            name: name.clone(),
            topic: topic.clone(),
            visibility,
            owner: creator,
            created_at: now,
            last_seq: Seq(0),
            terminated: false,
            members: [MemberState {
                user: creator,
                username: creator_name.clone(),
                role: Role::Owner,
                joined_at: now,
            }]
            .into_iter()
            .collect(),
            bans: Vec::new(),
            invites: Vec::new(),
            requests: Vec::new(),
            messages: MessageIndex::default(),
            typing: Typing::default(),
            direct: None,
        };
        let mut fx = vec![
            Effect::Persist(WriteOp::CreateRoom {
                room: id,
                name: name.clone(),
                topic: topic.clone(),
                visibility,
                owner: creator,
                created_at: now,
            }),
            Effect::Persist(WriteOp::AddMember {
                room: id,
                user: creator,
                role: Role::Owner,
                joined_at: now,
            }),
            Effect::Persist(WriteOp::LogJoin {
                user: creator,
                room: id,
                at: now,
            }),
            Effect::Subscribe(creator),
        ];
        let ev = room.event(
            creator,
            creator_name,
            now,
            EventBody::RoomCreated { name, topic },
        );
        fx.push(ev);
        fx.push(audit(now, creator, AuditAction::RoomCreated, None, ""));
        for (user, username) in members {
            debug_assert!(user != creator && !room.is_member(user));
            room.add_member(user, username, &mut fx, now);
        }
        (room, fx)
    }

    /// The direct room of `opener` and `other` (two different users),
    /// opened by `opener`: a private room with the two as members, the
    /// opener its owner and `other` added in the same write, marked with
    /// the pair (SPEC.md §5.3.7).
    pub fn create_direct(
        id: RoomId,
        opener: (UserId, String),
        other: (UserId, String),
        now: Millis,
    ) -> (Room, Vec<Effect>) {
        let direct = Direct::new(opener.clone(), other.clone());
        let (mut room, mut fx) = Room::create_group(
            id,
            direct.stored_name(),
            String::new(),
            Visibility::Private,
            opener,
            vec![other],
            now,
        );
        let (low, high) = direct.pair();
        // Right after CreateRoom: the pair is the room's from the start.
        fx.insert(
            1,
            Effect::Persist(WriteOp::SetDirect {
                room: id,
                low,
                high,
            }),
        );
        room.direct = Some(direct);
        (room, fx)
    }

    /// A room reloaded from the store at start-up.
    pub fn restore(s: RoomSnapshot) -> Room {
        Room {
            id: s.id,
            name: s.name,
            topic: s.topic,
            visibility: s.visibility,
            owner: s.owner,
            created_at: s.created_at,
            last_seq: s.last_seq,
            terminated: s.terminated,
            members: s.members.into_iter().collect(),
            bans: s.bans,
            invites: s.invites,
            requests: s.requests,
            messages: MessageIndex::default(),
            typing: Typing::default(),
            direct: s.direct,
        }
    }

    /// In join order.
    pub fn members(&self) -> &Members {
        &self.members
    }

    pub fn member(&self, user: UserId) -> Option<&MemberState> {
        self.members.get(user)
    }

    pub fn is_member(&self, user: UserId) -> bool {
        self.member(user).is_some()
    }

    pub fn is_admin(&self, user: UserId) -> bool {
        self.member(user).is_some_and(|m| m.role.is_admin())
    }

    pub fn is_banned(&self, user: UserId) -> bool {
        self.bans.iter().any(|b| b.user == user)
    }

    pub fn bans(&self) -> &[PendingUser] {
        &self.bans
    }

    pub fn invites(&self) -> &[PendingUser] {
        &self.invites
    }

    pub fn requests(&self) -> &[PendingUser] {
        &self.requests
    }

    /// The room's two users, if it is a direct room.
    pub fn direct(&self) -> Option<&Direct> {
        self.direct.as_ref()
    }

    /// The room as shown to anyone but a direct room's two users (a
    /// direct room under its stored name, without `direct_with`).
    pub fn info(&self) -> RoomInfo {
        self.info_for(SYSTEM)
    }

    /// The room as `viewer` is shown it: a direct room is named after
    /// the other of its two users and says who that is (SPEC.md §5.3.7);
    /// any other room is the same for everyone.
    pub fn info_for(&self, viewer: UserId) -> RoomInfo {
        let direct_with =
            self.direct
                .as_ref()
                .and_then(|d| d.other(viewer))
                .map(|(user, username)| DirectWith {
                    user: *user,
                    username: username.clone(),
                });
        RoomInfo {
            id: self.id,
            name: match &direct_with {
                Some(d) => d.username.clone(),
                None => self.name.clone(),
            },
            topic: self.topic.clone(),
            visibility: self.visibility,
            owner: self.owner,
            member_count: self.members.len() as u32,
            last_seq: self.last_seq,
            created_at: self.created_at,
            direct_with,
        }
    }

    /// The room's name as `viewer` is shown it (a notification's
    /// `room_name`): see [`Room::info_for`].
    pub fn name_for(&self, viewer: UserId) -> &str {
        match self.direct.as_ref().and_then(|d| d.other(viewer)) {
            Some((_, other)) => other,
            None => &self.name,
        }
    }

    /// Checks that `user` may read the room (members of a live room).
    pub fn check_reader(&self, user: UserId) -> Result<(), ErrorCode> {
        self.live()?;
        self.member(user).map(|_| ()).ok_or(ErrorCode::NotAMember)
    }

    /// SET_READ_MARKER: `user` may mark the live room read up to `seq`, a
    /// seq the room has reached (SPEC.md §5.9).
    pub fn check_read_marker(&self, user: UserId, seq: Seq) -> Result<(), ErrorCode> {
        self.check_reader(user)?;
        if seq > self.last_seq {
            return Err(ErrorCode::InvalidReadMarker);
        }
        Ok(())
    }

    /// Checks that `user` administers the live room.
    pub fn check_admin(&self, user: UserId) -> Result<(), ErrorCode> {
        self.admin(user).map(|_| ())
    }

    /// Applies `cmd` at time `now`. On error the room is unchanged.
    pub fn apply(&mut self, cmd: Command, now: Millis) -> Outcome {
        self.live()?;
        if self.direct.is_some() && cmd.is_governance() {
            return Err(ErrorCode::DirectRoom);
        }
        match cmd {
            Command::Join { user, username } => self.join(user, username, now),
            Command::Leave { user } => self.leave(user, now),
            Command::Post { user, text, rich } => self.post(user, text, rich, now),
            Command::Invite {
                by,
                target,
                target_name,
            } => self.invite(by, target, target_name, now),
            Command::RespondInvite {
                user,
                username,
                accept,
            } => self.respond_invite(user, username, accept, now),
            Command::RequestJoin { user, username } => self.request_join(user, username, now),
            Command::Decide {
                by,
                target,
                approve,
            } => self.decide(by, target, approve, now),
            Command::Kick { by, target } => self.kick(by, target, now),
            Command::Ban {
                by,
                target,
                target_name,
            } => self.ban(by, target, target_name, now),
            Command::Unban { by, target } => self.unban(by, target, now),
            Command::SetRole { by, target, role } => self.set_role(by, target, role, now),
            Command::Update { by, name, topic } => self.update(by, name, topic, now),
            Command::EditMessage {
                user,
                seq,
                text,
                spans,
                stored,
            } => self.edit_message(user, seq, (text, spans), &stored, now),
            Command::DeleteMessage { user, seq, stored } => {
                self.delete_message(user, seq, &stored, now)
            }
            Command::OpenDirect { user, username } => self.open_direct(user, username, now),
        }
    }

    /// For an EDIT_MESSAGE or DELETE_MESSAGE that the room can only rule
    /// on with the store's copy of the message: the generation to read it
    /// at (then send the command again with [`Lookup::Read`]). `None` when
    /// `apply` can answer now, with a refusal or the change.
    pub fn needs_stored_message(&self, cmd: &Command) -> Option<u64> {
        let (user, seq, stored) = match cmd {
            Command::EditMessage {
                user, seq, stored, ..
            }
            | Command::DeleteMessage { user, seq, stored } => (*user, *seq, stored),
            _ => return None,
        };
        if self.terminated || !self.is_member(user) {
            return None;
        }
        match self.messages.resolve(seq, self.last_seq, stored) {
            Resolved::NeedStore { generation } => Some(generation),
            Resolved::Known(_) | Resolved::Missing => None,
        }
    }

    /// Forgets the messages and changes the store now holds: every event
    /// up to `stored` is in the database.
    pub fn forget_durable(&mut self, stored: Seq) {
        self.messages.forget_durable(stored);
    }

    /// TYPING_START (`start`) or TYPING_STOP by `user` at `now`: members
    /// of the live room only. Nothing is stored; the outcome says what to
    /// forward to the other members (SPEC.md §5.5.7).
    pub fn typing(
        &mut self,
        user: UserId,
        start: bool,
        now: Millis,
    ) -> Result<TypingOutcome, ErrorCode> {
        self.check_reader(user)?;
        Ok(if start {
            self.typing.start(user, now)
        } else {
            self.typing.stop(user)
        })
    }

    /// The typists whose state expired by `now`, with their usernames:
    /// a STOP is due for each.
    pub fn expire_typing(&mut self, now: Millis) -> Vec<(UserId, String)> {
        self.typing
            .expire(now)
            .into_iter()
            .filter_map(|user| self.member(user).map(|m| (user, m.username.clone())))
            .collect()
    }

    /// Whether the room has typing state that [`Room::expire_typing`]
    /// still has to look at.
    pub fn has_typing(&self) -> bool {
        !self.typing.is_idle()
    }

    fn live(&self) -> Result<(), ErrorCode> {
        if self.terminated {
            Err(ErrorCode::RoomTerminated)
        } else {
            Ok(())
        }
    }

    fn admin(&self, user: UserId) -> Result<&MemberState, ErrorCode> {
        self.live()?;
        let m = self.member(user).ok_or(ErrorCode::NotAMember)?;
        if m.role.is_admin() {
            Ok(m)
        } else {
            Err(ErrorCode::NotAdmin)
        }
    }

    fn join(&mut self, user: UserId, username: String, now: Millis) -> Outcome {
        if self.is_banned(user) {
            return Err(ErrorCode::Banned);
        }
        if self.is_member(user) {
            return Err(ErrorCode::AlreadyMember);
        }
        let invited = self.invites.iter().any(|i| i.user == user);
        if self.visibility == Visibility::Private && !invited {
            return Err(ErrorCode::RoomPrivate);
        }
        let mut fx = Vec::new();
        self.add_member(user, username, &mut fx, now);
        Ok(fx)
    }

    /// OPEN_DIRECT of this (existing) direct room by `user`: nothing to
    /// do for a member; one of the two who had left is added again, as a
    /// join (SPEC.md §5.3.7). Back in a room nobody was left in, they are
    /// its owner (a room with members has one, who is a member).
    fn open_direct(&mut self, user: UserId, username: String, now: Millis) -> Outcome {
        // The session routes OPEN_DIRECT only to the caller's own pair.
        if self.direct.as_ref().and_then(|d| d.other(user)).is_none() {
            return Err(ErrorCode::Internal);
        }
        if self.is_member(user) {
            return Ok(Vec::new());
        }
        let mut fx = Vec::new();
        if self.members.is_empty() {
            self.owner = user;
            fx.push(Effect::Persist(WriteOp::SetOwner {
                room: self.id,
                owner: user,
            }));
            self.add_member_as(user, username, Role::Owner, &mut fx, now);
        } else {
            self.add_member(user, username, &mut fx, now);
        }
        Ok(fx)
    }

    /// Adds a member (clearing their invitation and request) and announces it.
    fn add_member(&mut self, user: UserId, username: String, fx: &mut Vec<Effect>, now: Millis) {
        self.add_member_as(user, username, Role::Member, fx, now);
    }

    /// [`Room::add_member`] with the role `role`.
    fn add_member_as(
        &mut self,
        user: UserId,
        username: String,
        role: Role,
        fx: &mut Vec<Effect>,
        now: Millis,
    ) {
        self.clear_pending(user, fx);
        self.members.push(MemberState {
            user,
            username: username.clone(),
            role,
            joined_at: now,
        });
        fx.push(Effect::Persist(WriteOp::AddMember {
            room: self.id,
            user,
            role,
            joined_at: now,
        }));
        fx.push(Effect::Persist(WriteOp::LogJoin {
            user,
            room: self.id,
            at: now,
        }));
        fx.push(Effect::Subscribe(user));
        let ev = self.event(user, username, now, EventBody::MemberJoined);
        fx.push(ev);
        fx.push(audit(now, user, AuditAction::MemberJoined, None, ""));
    }

    /// Drops `user`'s pending invitation and join request, if any.
    fn clear_pending(&mut self, user: UserId, fx: &mut Vec<Effect>) {
        if let Some(i) = self.invites.iter().position(|i| i.user == user) {
            self.invites.remove(i);
            fx.push(Effect::Persist(WriteOp::DeleteInvite {
                room: self.id,
                user,
            }));
        }
        if let Some(i) = self.requests.iter().position(|r| r.user == user) {
            self.requests.remove(i);
            fx.push(Effect::Persist(WriteOp::DeleteJoinRequest {
                room: self.id,
                user,
            }));
        }
    }

    /// Removes a member; `announce` is the event the room sees (the removed
    /// user's connections still receive it, then nothing more).
    fn remove_member(
        &mut self,
        user: UserId,
        reason: LeaveReason,
        actor: (UserId, String),
        announce: EventBody,
        now: Millis,
    ) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.typing.forget(user);
        if self.members.remove(user).is_some() {
            fx.push(Effect::Persist(WriteOp::RemoveMember {
                room: self.id,
                user,
            }));
            fx.push(Effect::Persist(WriteOp::LogLeave {
                user,
                room: self.id,
                at: now,
                reason,
            }));
        }
        let ev = self.event(actor.0, actor.1, now, announce);
        fx.push(ev);
        fx.push(Effect::Unsubscribe(user));
        fx
    }

    fn leave(&mut self, user: UserId, now: Millis) -> Outcome {
        let name = self
            .member(user)
            .ok_or(ErrorCode::NotAMember)?
            .username
            .clone();
        let mut fx = self.remove_member(
            user,
            LeaveReason::Left,
            (user, name),
            EventBody::MemberLeft,
            now,
        );
        fx.push(audit(now, user, AuditAction::MemberLeft, None, ""));
        self.after_removal(&mut fx, now);
        Ok(fx)
    }

    fn post(&mut self, user: UserId, text: String, rich: Rich, now: Millis) -> Outcome {
        let name = self
            .member(user)
            .ok_or(ErrorCode::NotAMember)?
            .username
            .clone();
        let mentioned = self.mentioned(user, &text);
        let sticker = rich.sticker.is_some();
        let files = rich.file_ids();
        let ev = self.event(
            user,
            name.clone(),
            now,
            EventBody::Message {
                text,
                edited_at: None,
                spans: rich.spans,
                sticker: rich.sticker,
                attachments: rich.attachments.clone(),
            },
        );
        self.messages.posted(
            self.last_seq,
            MessageFacts {
                sender: user,
                sender_name: name.clone(),
                at: now,
                deleted: false,
                sticker,
                attachments: rich.attachments,
            },
        );
        let mut fx = vec![ev];
        if !files.is_empty() {
            // In the message's own batch: the files are its once it is
            // durable, and free again if it never is (SPEC.md §13.5).
            fx.push(Effect::Persist(WriteOp::AttachFiles {
                room: self.id,
                seq: self.last_seq,
                files,
            }));
        }
        fx.extend(mentioned.into_iter().map(|target| Effect::Notify {
            user: target,
            kind: Notify::Mentioned,
            actor: user,
            actor_name: name.clone(),
            at: now,
        }));
        Ok(fx)
    }

    /// The members `sender`'s `text` mentions (SPEC.md §8.13): each named
    /// member once, in the order first named, never the sender, at most
    /// [`MAX_MENTIONS`]. Non-members (banned users among them) and names
    /// nobody has are skipped.
    fn mentioned(&self, sender: UserId, text: &str) -> Vec<UserId> {
        let mut out: Vec<UserId> = Vec::new();
        if !text.contains('@') {
            return out;
        }
        for token in mentions::tokens(text) {
            let found = [token.name, token.fallback]
                .into_iter()
                .flatten()
                .find_map(|n| self.members.named(&n));
            if let Some(target) = found {
                if target != sender && !out.contains(&target) {
                    out.push(target);
                    if out.len() == MAX_MENTIONS {
                        break;
                    }
                }
            }
        }
        out
    }

    /// The message `seq`, if it can be changed at all: it exists and is
    /// not deleted.
    fn changeable(&self, seq: Seq, stored: &Lookup) -> Result<MessageFacts, ErrorCode> {
        match self.messages.resolve(seq, self.last_seq, stored) {
            Resolved::Missing => Err(ErrorCode::MessageNotFound),
            Resolved::Known(f) if f.deleted => Err(ErrorCode::MessageDeleted),
            Resolved::Known(f) => Ok(f),
            // The shard asks `needs_stored_message` first.
            Resolved::NeedStore { .. } => Err(ErrorCode::Internal),
        }
    }

    /// EDIT_MESSAGE: `(text, spans)` replace the message's. A sticker
    /// message cannot be edited (SPEC.md §5.11.3).
    fn edit_message(
        &mut self,
        user: UserId,
        seq: Seq,
        (text, spans): (String, Vec<Span>),
        stored: &Lookup,
        now: Millis,
    ) -> Outcome {
        let name = self
            .member(user)
            .ok_or(ErrorCode::NotAMember)?
            .username
            .clone();
        let facts = self.changeable(seq, stored)?;
        if facts.sender != user {
            return Err(ErrorCode::NotYourMessage);
        }
        if facts.sticker {
            return Err(ErrorCode::StickerMessage);
        }
        let ev = self.event(
            user,
            name,
            now,
            EventBody::MessageEdited {
                target: seq,
                text: text.clone(),
                spans: spans.clone(),
            },
        );
        let rewritten = RoomEvent {
            room: self.id,
            seq,
            at: facts.at,
            actor: facts.sender,
            actor_name: facts.sender_name.clone(),
            body: EventBody::Message {
                text,
                edited_at: Some(now),
                spans,
                sticker: None,
                attachments: facts.attachments.clone(),
            },
        };
        self.messages.changed(seq, facts, self.last_seq);
        Ok(vec![ev, Effect::Rewrite(rewritten)])
    }

    fn delete_message(&mut self, user: UserId, seq: Seq, stored: &Lookup, now: Millis) -> Outcome {
        let member = self.member(user).ok_or(ErrorCode::NotAMember)?;
        let (name, admin) = (member.username.clone(), member.role.is_admin());
        let facts = self.changeable(seq, stored)?;
        if facts.sender != user && !admin {
            return Err(ErrorCode::NotYourMessage);
        }
        let ev = self.event(user, name, now, EventBody::MessageDeleted { target: seq });
        let tombstone = RoomEvent {
            room: self.id,
            seq,
            at: facts.at,
            actor: facts.sender,
            actor_name: facts.sender_name.clone(),
            body: EventBody::Tombstone,
        };
        let sender = facts.sender;
        let had_files = !facts.attachments.is_empty();
        self.messages.changed(
            seq,
            MessageFacts {
                deleted: true,
                ..facts
            },
            self.last_seq,
        );
        let mut fx = vec![ev, Effect::Rewrite(tombstone)];
        if had_files {
            // Its files stop being served at once (SPEC.md §13.5).
            fx.push(Effect::Persist(WriteOp::DropMessageFiles {
                room: self.id,
                seq,
            }));
        }
        if sender != user {
            // An admin's moderation is on the record; a sender deleting
            // their own message is not a governance action.
            fx.push(audit(
                now,
                user,
                AuditAction::MessageDeleted,
                Some(sender),
                &format!("message {seq}"),
            ));
        }
        Ok(fx)
    }

    fn invite(&mut self, by: UserId, target: UserId, target_name: String, now: Millis) -> Outcome {
        let by_name = self.admin(by)?.username.clone();
        if self.is_member(target) {
            return Err(ErrorCode::AlreadyMember);
        }
        if self.is_banned(target) {
            return Err(ErrorCode::TargetBanned);
        }
        if self.invites.iter().any(|i| i.user == target) {
            return Err(ErrorCode::AlreadyInvited);
        }
        self.invites.push(PendingUser {
            user: target,
            username: target_name,
            by,
            at: now,
        });
        Ok(vec![
            Effect::Persist(WriteOp::PutInvite {
                room: self.id,
                user: target,
                by,
                at: now,
            }),
            Effect::Notify {
                user: target,
                kind: Notify::Invited,
                actor: by,
                actor_name: by_name,
                at: now,
            },
            audit(now, by, AuditAction::Invited, Some(target), ""),
        ])
    }

    fn respond_invite(
        &mut self,
        user: UserId,
        username: String,
        accept: bool,
        now: Millis,
    ) -> Outcome {
        if !self.invites.iter().any(|i| i.user == user) {
            return Err(ErrorCode::NotInvited);
        }
        if accept {
            return self.join(user, username, now);
        }
        let mut fx = Vec::new();
        self.clear_pending(user, &mut fx);
        fx.push(audit(now, user, AuditAction::InviteDeclined, None, ""));
        Ok(fx)
    }

    fn request_join(&mut self, user: UserId, username: String, now: Millis) -> Outcome {
        if self.is_banned(user) {
            return Err(ErrorCode::Banned);
        }
        if self.is_member(user) {
            return Err(ErrorCode::AlreadyMember);
        }
        if self.requests.iter().any(|r| r.user == user) {
            return Err(ErrorCode::AlreadyRequested);
        }
        self.requests.push(PendingUser {
            user,
            username: username.clone(),
            by: user,
            at: now,
        });
        let mut fx = vec![Effect::Persist(WriteOp::PutJoinRequest {
            room: self.id,
            user,
            at: now,
        })];
        for admin in self.members.iter().filter(|m| m.role.is_admin()) {
            fx.push(Effect::Notify {
                user: admin.user,
                kind: Notify::JoinRequest,
                actor: user,
                actor_name: username.clone(),
                at: now,
            });
        }
        fx.push(audit(now, user, AuditAction::JoinRequested, None, ""));
        Ok(fx)
    }

    fn decide(&mut self, by: UserId, target: UserId, approve: bool, now: Millis) -> Outcome {
        let by_name = self.admin(by)?.username.clone();
        let idx = self
            .requests
            .iter()
            .position(|r| r.user == target)
            .ok_or(ErrorCode::NoSuchRequest)?;
        let mut fx = Vec::new();
        if approve {
            let username = self.requests[idx].username.clone();
            self.add_member(target, username, &mut fx, now);
            fx.push(Effect::Notify {
                user: target,
                kind: Notify::RequestApproved,
                actor: by,
                actor_name: by_name,
                at: now,
            });
            fx.push(audit(
                now,
                by,
                AuditAction::RequestApproved,
                Some(target),
                "",
            ));
        } else {
            self.clear_pending(target, &mut fx);
            fx.push(Effect::Notify {
                user: target,
                kind: Notify::RequestDenied,
                actor: by,
                actor_name: by_name,
                at: now,
            });
            fx.push(audit(now, by, AuditAction::RequestDenied, Some(target), ""));
        }
        Ok(fx)
    }

    /// Checks that `by` may kick or ban `target` (which need not be a member).
    fn check_power_over(&self, by: UserId, target: UserId) -> Result<String, ErrorCode> {
        let by_member = self.admin(by)?;
        if target == by {
            return Err(ErrorCode::CannotTargetSelf);
        }
        if target == self.owner {
            return Err(ErrorCode::CannotTargetOwner);
        }
        if self.is_admin(target) && by_member.role != Role::Owner {
            return Err(ErrorCode::NotOwner);
        }
        Ok(by_member.username.clone())
    }

    fn kick(&mut self, by: UserId, target: UserId, now: Millis) -> Outcome {
        let by_name = self.check_power_over(by, target)?;
        let target_name = self
            .member(target)
            .ok_or(ErrorCode::TargetNotMember)?
            .username
            .clone();
        let announce = EventBody::MemberKicked {
            target,
            target_name,
        };
        let mut fx = self.remove_member(
            target,
            LeaveReason::Kicked,
            (by, by_name.clone()),
            announce,
            now,
        );
        fx.push(Effect::Notify {
            user: target,
            kind: Notify::Kicked,
            actor: by,
            actor_name: by_name,
            at: now,
        });
        fx.push(audit(now, by, AuditAction::MemberKicked, Some(target), ""));
        self.after_removal(&mut fx, now);
        Ok(fx)
    }

    fn ban(&mut self, by: UserId, target: UserId, target_name: String, now: Millis) -> Outcome {
        let by_name = self.check_power_over(by, target)?;
        if self.is_banned(target) {
            return Err(ErrorCode::AlreadyBanned);
        }
        let mut fx = Vec::new();
        self.clear_pending(target, &mut fx);
        self.bans.push(PendingUser {
            user: target,
            username: target_name.clone(),
            by,
            at: now,
        });
        fx.push(Effect::Persist(WriteOp::Ban {
            room: self.id,
            user: target,
            by,
            at: now,
        }));
        let announce = EventBody::MemberBanned {
            target,
            target_name,
        };
        let was_member = self.is_member(target);
        if was_member {
            fx.extend(self.remove_member(
                target,
                LeaveReason::Banned,
                (by, by_name.clone()),
                announce,
                now,
            ));
        } else {
            let ev = self.event(by, by_name.clone(), now, announce);
            fx.push(ev);
        }
        fx.push(Effect::Notify {
            user: target,
            kind: Notify::Banned,
            actor: by,
            actor_name: by_name,
            at: now,
        });
        fx.push(audit(now, by, AuditAction::MemberBanned, Some(target), ""));
        if was_member {
            self.after_removal(&mut fx, now);
        }
        Ok(fx)
    }

    fn unban(&mut self, by: UserId, target: UserId, now: Millis) -> Outcome {
        let by_name = self.admin(by)?.username.clone();
        let idx = self
            .bans
            .iter()
            .position(|b| b.user == target)
            .ok_or(ErrorCode::NotBanned)?;
        self.bans.remove(idx);
        Ok(vec![
            Effect::Persist(WriteOp::Unban {
                room: self.id,
                user: target,
            }),
            Effect::Notify {
                user: target,
                kind: Notify::Unbanned,
                actor: by,
                actor_name: by_name,
                at: now,
            },
            audit(now, by, AuditAction::MemberUnbanned, Some(target), ""),
        ])
    }

    fn set_role(&mut self, by: UserId, target: UserId, role: Role, now: Millis) -> Outcome {
        let by_member = self.member(by).ok_or(ErrorCode::NotAMember)?;
        if by_member.role != Role::Owner {
            return Err(ErrorCode::NotOwner);
        }
        let by_name = by_member.username.clone();
        if role == Role::Owner {
            return Err(ErrorCode::InvalidRole);
        }
        if target == by {
            return Err(ErrorCode::CannotTargetSelf);
        }
        let member = self
            .members
            .get_mut(target)
            .ok_or(ErrorCode::TargetNotMember)?;
        if member.role == role {
            return Ok(Vec::new());
        }
        member.role = role;
        let target_name = member.username.clone();
        let detail = role.as_str();
        let ev = self.event(
            by,
            by_name.clone(),
            now,
            EventBody::RoleChanged {
                target,
                target_name,
                role,
            },
        );
        Ok(vec![
            Effect::Persist(WriteOp::SetRole {
                room: self.id,
                user: target,
                role,
            }),
            ev,
            Effect::Notify {
                user: target,
                kind: Notify::RoleChanged,
                actor: by,
                actor_name: by_name,
                at: now,
            },
            audit(now, by, AuditAction::RoleChanged, Some(target), detail),
        ])
    }

    fn update(&mut self, by: UserId, name: String, topic: String, now: Millis) -> Outcome {
        let by_name = self.admin(by)?.username.clone();
        self.name = name.clone();
        self.topic = topic.clone();
        let ev = self.event(
            by,
            by_name,
            now,
            EventBody::RoomUpdated {
                name: name.clone(),
                topic: topic.clone(),
            },
        );
        Ok(vec![
            Effect::Persist(WriteOp::UpdateRoom {
                room: self.id,
                name: name.clone(),
                topic,
            }),
            ev,
            audit(now, by, AuditAction::RoomUpdated, None, &name),
        ])
    }

    /// Succession and termination, after a member was removed. A direct
    /// room never terminates: it stays, for the other user or for both to
    /// come back to (SPEC.md §8.6); succession applies while one of the
    /// two is left.
    fn after_removal(&mut self, fx: &mut Vec<Effect>, now: Millis) {
        if self.direct.is_some() {
            if !self.members.is_empty() && !self.is_member(self.owner) {
                self.pass_ownership(fx, now);
            }
            return;
        }
        let lone_non_admin = match self.members.first() {
            Some(m) if self.members.len() == 1 && !m.role.is_admin() => Some(m.user),
            _ => None,
        };
        match self.members.len() {
            0 => self.terminate(fx, now),
            1 if lone_non_admin.is_some() => {
                // The last member is not an admin: they are removed and told
                // that the room terminated.
                let Some(last) = lone_non_admin.and_then(|u| self.members.remove(u)) else {
                    return;
                };
                fx.push(Effect::Persist(WriteOp::RemoveMember {
                    room: self.id,
                    user: last.user,
                }));
                fx.push(Effect::Persist(WriteOp::LogLeave {
                    user: last.user,
                    room: self.id,
                    at: now,
                    reason: LeaveReason::Terminated,
                }));
                fx.push(Effect::Notify {
                    user: last.user,
                    kind: Notify::RoomTerminated,
                    actor: SYSTEM,
                    actor_name: String::new(),
                    at: now,
                });
                self.terminate(fx, now);
                fx.push(Effect::Unsubscribe(last.user));
            }
            _ if !self.is_member(self.owner) => self.pass_ownership(fx, now),
            _ => {}
        }
    }

    /// The owner is gone: the earliest-joined admin, else the earliest-joined
    /// member, becomes owner.
    fn pass_ownership(&mut self, fx: &mut Vec<Effect>, now: Millis) {
        let Some(heir) = self
            .members
            .iter()
            .find(|m| m.role == Role::Admin)
            .or(self.members.first())
            .map(|m| m.user)
        else {
            return;
        };
        let Some(heir) = self.members.get_mut(heir) else {
            return;
        };
        heir.role = Role::Owner;
        let (user, name) = (heir.user, heir.username.clone());
        self.owner = user;
        fx.push(Effect::Persist(WriteOp::SetRole {
            room: self.id,
            user,
            role: Role::Owner,
        }));
        fx.push(Effect::Persist(WriteOp::SetOwner {
            room: self.id,
            owner: user,
        }));
        let ev = self.event(
            SYSTEM,
            String::new(),
            now,
            EventBody::RoleChanged {
                target: user,
                target_name: name,
                role: Role::Owner,
            },
        );
        fx.push(ev);
        fx.push(Effect::Notify {
            user,
            kind: Notify::RoleChanged,
            actor: SYSTEM,
            actor_name: String::new(),
            at: now,
        });
        fx.push(audit(
            now,
            SYSTEM,
            AuditAction::OwnershipTransferred,
            Some(user),
            "owner",
        ));
    }

    fn terminate(&mut self, fx: &mut Vec<Effect>, now: Millis) {
        self.terminated = true;
        self.typing.clear();
        self.invites.clear();
        self.requests.clear();
        let ev = self.event(SYSTEM, String::new(), now, EventBody::RoomTerminated);
        fx.push(ev);
        fx.push(Effect::Persist(WriteOp::TerminateRoom {
            room: self.id,
            at: now,
        }));
        fx.push(audit(now, SYSTEM, AuditAction::RoomTerminated, None, ""));
    }

    /// Numbers the next event of this room.
    fn event(&mut self, actor: UserId, actor_name: String, at: Millis, body: EventBody) -> Effect {
        self.last_seq = Seq(self.last_seq.0 + 1);
        Effect::Event(RoomEvent {
            room: self.id,
            seq: self.last_seq,
            at,
            actor,
            actor_name,
            body,
        })
    }
}

fn audit(
    at: Millis,
    actor: UserId,
    action: AuditAction,
    target: Option<UserId>,
    detail: &str,
) -> Effect {
    Effect::Audit {
        actor,
        action,
        target,
        detail: detail.to_owned(),
        at,
    }
}
#[cfg(test)]
mod direct_tests;
#[cfg(test)]
mod tests;
