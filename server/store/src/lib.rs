//! Confab persistence behind a few small traits (DESIGN.md invariant 7).
//!
//! The contract between the runtime and a database is split by who needs
//! what, so that a test double implements only the part it stands in for:
//!
//! - [`AccountStore`]: accounts, sessions and read marks — the writes a
//!   session makes itself, and the lookups that authenticate it;
//! - [`RoomReads`]: every read — the start-up loads, room listing and
//!   search, history, notifications, the room log, the audit trail, and
//!   the readiness probe;
//! - [`BatchSink`]: [`BatchSink::apply_batch`], through which every state
//!   change goes, called only by the batch writer (`confab_server::persist::batch`)
//!   and the write spool's replay, with operations in the order the shards
//!   produced them;
//! - [`Housekeeping`]: the periodic purges;
//! - [`FileStore`]: uploaded files' metadata (the bytes are the server's,
//!   under its data directory), written directly by the HTTP door and
//!   housekeeping, each call its own transaction.
//!
//! Cluster mode adds [`LeaseStore`] (partition leases and node
//! heartbeats) and [`BatchSink::apply_fenced_batch`] (a batch that commits
//! only while its writer holds the leases it carries), both only on
//! Postgres and outside [`Store`] (`cluster.rs`).
//!
//! [`Store`] is all five, implemented for anything that implements them,
//! so the runtime keeps holding one `Arc<dyn Store>` (and hands the batch
//! writer that same store as an `Arc<dyn BatchSink>`). The runtime never
//! issues SQL itself.
//!
//! **Layout.** Both backends share their reads (`common/`: the statements,
//! written once with `$N` placeholders, the row mappers and the trait
//! implementations); each backend keeps only its connection set-up, its
//! `apply_batch`, and the few statements that must differ (`sqlite.rs`,
//! `postgres.rs`).
//!
//! **Invariants every backend upholds**
//! - `apply_batch` is atomic: all operations of a batch commit, or none do.
//! - `apply_batch` is idempotent per event: re-applying an `AppendEvent`
//!   with an existing `(room, seq)` changes nothing (replay after a crash or
//!   a retried batch must not store anything twice).
//! - Re-applying a sequence of batches that was already applied, in the
//!   same order, converges on the same state (the spool replays after a
//!   crash, `confab_server::persist::spool`): every insert is an upsert or `ON
//!   CONFLICT DO NOTHING` (rooms by id, events by `(room, seq)`,
//!   notifications by id), every delete tolerates a missing row. Audit
//!   entries are the exception: they have no natural key, so a replayed
//!   batch appends its audit entries again.
//! - When `apply_batch` returns `Ok`, the batch is durable (fsync'd).
//! - A failure that says nothing about the operations — the database is
//!   unreachable or cannot write now — is [`StoreError::Unavailable`].
#![forbid(unsafe_code)]

use confab_protocol::{
    AuditAction, LeaveReason, Millis, NotificationKind, Role, RoomId, RoomInfo, Seq, UserId,
    Visibility,
};

pub mod cluster;
mod common;
pub mod postgres;
mod search;
pub use cluster::{Fence, IdKind, Incarnation, JoinRefused, Lease, LeaseStore};
pub use search::RoomFilter;
pub mod sqlite;
mod views;

/// The error underneath a [`StoreError`]: the database driver's own.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store operation failed.
///
/// `message` says what failed in words and already ends with the driver's
/// error text, so a log line that shows only `Display` loses nothing;
/// [`std::error::Error::source`] gives the driver's error itself (a
/// `sqlx::Error`), e.g. to read its SQLSTATE.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness constraint was violated (e.g. the username exists).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The database returned an error for this operation (or its result
    /// could not be read): retrying the same operation will likely fail
    /// the same way.
    #[error("database error: {message}")]
    Database {
        message: String,
        #[source]
        source: Option<Source>,
    },
    /// The database cannot be reached or cannot take writes right now
    /// (connection refused or lost, pool timed out, server shutting down,
    /// out of disk, I/O error): the operation itself may be fine. The batch
    /// writer spools batches that fail this way (`confab_server::persist::spool`)
    /// instead of refusing them.
    #[error("database unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<Source>,
    },
    /// A fenced batch ([`BatchSink::apply_fenced_batch`]) whose writer no
    /// longer holds the lease of one of its partitions at the epoch it
    /// carried: nothing of the batch was committed, and retrying it
    /// cannot help (another node owns the rooms now).
    #[error("fenced: {message}")]
    Fenced { message: String },
}

impl StoreError {
    /// A [`StoreError::Database`] without an underlying error.
    pub fn database(message: impl Into<String>) -> StoreError {
        StoreError::Database {
            message: message.into(),
            source: None,
        }
    }

    /// A [`StoreError::Unavailable`] without an underlying error (a store
    /// that wraps another and is switched off, say).
    pub fn unavailable(message: impl Into<String>) -> StoreError {
        StoreError::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// True for [`StoreError::Unavailable`].
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }

    /// True for [`StoreError::Fenced`].
    pub fn is_fenced(&self) -> bool {
        matches!(self, StoreError::Fenced { .. })
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A registered account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
    pub username: String,
    /// PHC-format argon2id hash.
    pub password_hash: String,
    pub created_at: Millis,
}

/// A room as loaded at start-up (without members).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRecord {
    pub id: RoomId,
    pub name: String,
    pub topic: String,
    pub visibility: Visibility,
    pub owner: UserId,
    pub created_at: Millis,
    /// Highest event sequence number stored for the room (0 if none).
    pub last_seq: Seq,
    /// When the room terminated, if it did (terminated rooms have no
    /// members and are never listed).
    pub terminated_at: Option<Millis>,
    /// For a direct room (OPEN_DIRECT): its two users with their names,
    /// the lower id first (whether or not they are members now).
    pub direct: Option<[(UserId, String); 2]>,
}

/// The stored state of some rooms, as the shards load it: every room at
/// start-up ([`RoomReads::load_all_rooms`]), or in cluster mode the rooms
/// of the partitions a node owns ([`LeaseStore::load_partitions`]). Each
/// list is ordered as the `RoomReads::load_*` read that fills it.
#[derive(Debug, Default)]
pub struct RoomsState {
    pub rooms: Vec<RoomRecord>,
    pub members: Vec<MemberRecord>,
    pub bans: Vec<BanRecord>,
    pub invites: Vec<InviteRecord>,
    pub requests: Vec<JoinRequestRecord>,
    /// Up to the requested number of newest events per room.
    pub recent: Vec<StoredEvent>,
}

/// A ban: `user` may not join, request or be invited to `room`, and does
/// not see it in listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanRecord {
    pub room: RoomId,
    pub user: UserId,
    pub username: String,
    pub by: UserId,
    pub at: Millis,
}

/// A pending invitation of `user` to `room` by the admin `by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteRecord {
    pub room: RoomId,
    pub user: UserId,
    pub username: String,
    pub by: UserId,
    pub at: Millis,
}

/// A pending request of `user` to join `room`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequestRecord {
    pub room: RoomId,
    pub user: UserId,
    pub username: String,
    pub at: Millis,
}

/// A persistent per-user notification. `kind` is stored as its wire
/// number; the store does not interpret it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRecord {
    /// Assigned by the server, increasing, never reused.
    pub id: u64,
    pub user: UserId,
    pub kind: NotificationKind,
    pub room: RoomId,
    pub room_name: String,
    pub actor: UserId,
    pub actor_name: String,
    pub at: Millis,
    pub read: bool,
}

/// One audit-trail entry to append; the action is stored by its stable
/// snake_case name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: Millis,
    /// `UserId(0)` for the system (succession, termination, housekeeping).
    pub actor: UserId,
    pub action: AuditAction,
    pub room: Option<RoomId>,
    pub target: Option<UserId>,
    /// Free-form human detail (e.g. the new role).
    pub detail: String,
}

/// A stored audit entry, with its id (assigned by the database, increasing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: u64,
    pub entry: AuditEntry,
    /// Usernames resolved at read time (empty for the system or unknown).
    pub actor_name: String,
    pub target_name: String,
}

/// One entry of a user's room log: a room they were active in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomLogEntry {
    /// The room as it is now (member_count 0 once terminated).
    pub room: RoomInfo,
    pub first_joined_at: Millis,
    pub last_joined_at: Millis,
    /// `None` while the user is a member.
    pub left_at: Option<Millis>,
    /// How the last membership ended; [`LeaveReason::Active`] while the
    /// user is a member.
    pub reason: LeaveReason,
    pub terminated: bool,
}

/// A user's read marker in a room (SET_READ_MARKER) and what it leaves
/// unread: the room's messages after it that someone else sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomUnread {
    pub room: RoomId,
    /// The seq of the last event the user has read (0: none).
    pub read_seq: Seq,
    pub unread: u32,
}

/// A room of MY_ROOMS, with the caller's read marker and unread count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MyRoom {
    pub info: RoomInfo,
    pub read_seq: Seq,
    pub unread: u32,
}

/// One membership, as loaded at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub room: RoomId,
    pub user: UserId,
    pub username: String,
    pub role: Role,
    pub joined_at: Millis,
}

/// A sequenced room event as stored. `body` holds the event kind's fields
/// in their wire encoding (`EventBody::encode_fields`), so the store never
/// needs to know event kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub room: RoomId,
    pub seq: Seq,
    pub at: Millis,
    pub actor: UserId,
    pub actor_name: String,
    pub kind: u8,
    pub body: Vec<u8>,
}

/// One state change, produced by a shard and applied by the batch writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    CreateRoom {
        room: RoomId,
        name: String,
        topic: String,
        visibility: Visibility,
        owner: UserId,
        created_at: Millis,
    },
    /// Insert or replace a membership.
    AddMember {
        room: RoomId,
        user: UserId,
        role: Role,
        joined_at: Millis,
    },
    RemoveMember {
        room: RoomId,
        user: UserId,
    },
    SetRole {
        room: RoomId,
        user: UserId,
        role: Role,
    },
    /// Append a sequenced event; also raises the room's stored `last_seq`.
    AppendEvent(StoredEvent),
    /// The stored event at (`room`, `seq`) now reads as this one: its
    /// `kind` and `body` replace the stored ones (its time and actor are
    /// the original's). An edited message, or a deleted message's
    /// tombstone. Applied after the event's own `AppendEvent` when both
    /// are in one batch; a missing event is not an error (it was lost in
    /// a crash before it committed, and so was what it said).
    RewriteEvent(StoredEvent),
    /// Rename a room / change its topic.
    UpdateRoom {
        room: RoomId,
        name: String,
        topic: String,
    },
    SetOwner {
        room: RoomId,
        owner: UserId,
    },
    /// Marks the room terminated and removes its remaining memberships,
    /// invitations and join requests (bans stay).
    TerminateRoom {
        room: RoomId,
        at: Millis,
    },
    /// Insert or replace a ban.
    Ban {
        room: RoomId,
        user: UserId,
        by: UserId,
        at: Millis,
    },
    /// Remove a ban (no error if absent).
    Unban {
        room: RoomId,
        user: UserId,
    },
    /// Insert or replace an invitation.
    PutInvite {
        room: RoomId,
        user: UserId,
        by: UserId,
        at: Millis,
    },
    /// Remove an invitation (no error if absent).
    DeleteInvite {
        room: RoomId,
        user: UserId,
    },
    /// Insert or replace a join request.
    PutJoinRequest {
        room: RoomId,
        user: UserId,
        at: Millis,
    },
    /// Remove a join request (no error if absent).
    DeleteJoinRequest {
        room: RoomId,
        user: UserId,
    },
    /// Insert a notification (idempotent by id).
    AddNotification(NotificationRecord),
    /// Room log: `user` joined `room` at `at` (sets first_joined_at on first
    /// join, last_joined_at always, clears left_at and reason).
    LogJoin {
        user: UserId,
        room: RoomId,
        at: Millis,
    },
    /// Room log: `user`'s association with `room` ended for `reason`.
    LogLeave {
        user: UserId,
        room: RoomId,
        at: Millis,
        reason: LeaveReason,
    },
    /// Append an audit entry.
    Audit(AuditEntry),
    /// Marks `room` (created earlier in the batch, or before) as the
    /// direct room of `low` and `high` (`low < high`). The store keeps at
    /// most one direct room per pair: a second room for a pair fails its
    /// batch (a constraint), a replay of this op changes nothing.
    SetDirect {
        room: RoomId,
        low: UserId,
        high: UserId,
    },
    /// Message `seq` of `room` carries the files `files`, which its sender
    /// claimed for it ([`FileStore::claim_file`]): each is now referenced
    /// by that message. In the batch of the message's own `AppendEvent`.
    /// A file no longer claimed (a replay) is left as it is.
    AttachFiles {
        room: RoomId,
        seq: Seq,
        files: Vec<u64>,
    },
    /// Claims given up: the message that claimed `files` was refused, so
    /// they may be attached again. A file a message references stays so.
    ReleaseFiles {
        files: Vec<u64>,
    },
    /// Message `seq` of `room` was deleted: its files are deleted too (no
    /// longer served; housekeeping removes their bytes).
    DropMessageFiles {
        room: RoomId,
        seq: Seq,
    },
}

impl WriteOp {
    /// The room whose state this operation changes, if any: the writes of
    /// one room must commit in the order they were made, so a batch writer
    /// with several lanes keeps each room on one lane.
    pub fn room(&self) -> Option<RoomId> {
        match self {
            WriteOp::CreateRoom { room, .. }
            | WriteOp::AddMember { room, .. }
            | WriteOp::RemoveMember { room, .. }
            | WriteOp::SetRole { room, .. }
            | WriteOp::UpdateRoom { room, .. }
            | WriteOp::SetOwner { room, .. }
            | WriteOp::TerminateRoom { room, .. }
            | WriteOp::Ban { room, .. }
            | WriteOp::Unban { room, .. }
            | WriteOp::PutInvite { room, .. }
            | WriteOp::DeleteInvite { room, .. }
            | WriteOp::PutJoinRequest { room, .. }
            | WriteOp::DeleteJoinRequest { room, .. }
            | WriteOp::LogJoin { room, .. }
            | WriteOp::LogLeave { room, .. }
            | WriteOp::SetDirect { room, .. }
            | WriteOp::AttachFiles { room, .. }
            | WriteOp::DropMessageFiles { room, .. } => Some(*room),
            WriteOp::AppendEvent(ev) | WriteOp::RewriteEvent(ev) => Some(ev.room),
            WriteOp::AddNotification(n) => Some(n.room),
            WriteOp::Audit(a) => a.room,
            WriteOp::ReleaseFiles { .. } => None,
        }
    }
}

/// Accounts, sessions and read marks: the lookups that authenticate a
/// session and the writes a session makes itself rather than through the
/// batch writer.
#[async_trait::async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Creates an account. `Err(Conflict)` if the username exists
    /// (usernames are stored lowercase; callers normalise).
    async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        now: Millis,
    ) -> StoreResult<UserId>;
    async fn user_by_name(&self, username: &str) -> StoreResult<Option<UserRecord>>;
    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<UserRecord>>;

    /// Stores a session keyed by the SHA-256 of its token.
    async fn create_session(
        &self,
        token_hash: &[u8; 32],
        user: UserId,
        now: Millis,
        expires_at: Millis,
    ) -> StoreResult<()>;
    /// The session's user, if the token hash exists and `now < expires_at`.
    async fn session_user(
        &self,
        token_hash: &[u8; 32],
        now: Millis,
    ) -> StoreResult<Option<UserRecord>>;
    /// Removes a session; removing an unknown one is not an error.
    async fn delete_session(&self, token_hash: &[u8; 32]) -> StoreResult<()>;

    /// `user`'s whole profile, the email included (callers decide who sees
    /// it); `None` for an unknown user.
    async fn profile(&self, user: UserId) -> StoreResult<Option<confab_protocol::Profile>>;

    /// Account writes in one transaction — one durable write for all of
    /// them, so that a storm of registrations and logins commits like
    /// messages do (the server gathers them: `persist::accounts`). Returns
    /// one outcome per write, in order. A registration whose username is
    /// taken (by an existing account or an earlier write of the same call)
    /// is [`AccountOutcome::UsernameTaken`] and creates nothing; the others
    /// still commit. Any other failure fails the whole call and commits
    /// nothing.
    async fn write_accounts(&self, writes: &[AccountWrite]) -> StoreResult<Vec<AccountOutcome>>;

    /// Marks `user`'s notifications with `id <= up_to` read; returns the
    /// unread count afterwards.
    async fn mark_read(&self, user: UserId, up_to: u64) -> StoreResult<u32>;

    /// Raises `user`'s read marker in `room` to `seq`; a marker at or above
    /// `seq` already stays as it is. Returns whether it moved.
    async fn raise_read_marker(&self, user: UserId, room: RoomId, seq: Seq) -> StoreResult<bool>;
}

/// One account write of [`AccountStore::write_accounts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountWrite {
    /// A new account (username normalised by the caller) with its first
    /// session.
    Register {
        username: String,
        password_hash: String,
        token_hash: [u8; 32],
        now: Millis,
        expires_at: Millis,
    },
    /// A session for an existing account (a login).
    Session {
        user: UserId,
        token_hash: [u8; 32],
        now: Millis,
        expires_at: Millis,
    },
    /// CHANGE_PASSWORD: `user`'s new password hash, and every session of
    /// theirs but `keep` (the caller's) deleted, in the same commit.
    ChangePassword {
        user: UserId,
        password_hash: String,
        keep: [u8; 32],
    },
    /// UPDATE_PROFILE: `user`'s profile replaced (values checked by the
    /// caller; `None` clears).
    UpdateProfile {
        user: UserId,
        display_name: Option<String>,
        bio: String,
        email: Option<String>,
    },
    /// `user`'s avatar is now the avatar file `file` (recorded by
    /// [`FileStore::insert_avatar_file`]), or none; their other avatars
    /// are marked deleted in the same commit (housekeeping removes their
    /// bytes).
    SetAvatar { user: UserId, file: Option<u64> },
}

/// What one [`AccountWrite`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountOutcome {
    /// The account and its session exist; the account's id.
    Registered(UserId),
    /// The username was taken: nothing was written for this one.
    UsernameTaken,
    /// The session exists.
    SessionCreated,
    /// The password (or profile, or avatar) was replaced.
    Updated,
    /// A password, profile or avatar change named no account: nothing
    /// written.
    NoSuchUser,
}

/// Every read: what the shards load at start-up, and what sessions read
/// for their clients.
#[async_trait::async_trait]
pub trait RoomReads: Send + Sync + 'static {
    /// Every room, for the shards to load at start-up.
    async fn load_rooms(&self) -> StoreResult<Vec<RoomRecord>>;
    /// Every membership, ordered by room then join order (joined_at, then user id).
    async fn load_members(&self) -> StoreResult<Vec<MemberRecord>>;
    /// Up to `per_room` newest events of every room, in ascending seq order per room.
    async fn load_recent_events(&self, per_room: u32) -> StoreResult<Vec<StoredEvent>>;
    /// Every ban, with the banned user's name.
    async fn load_bans(&self) -> StoreResult<Vec<BanRecord>>;
    /// Every pending invitation, with the invitee's name.
    async fn load_invites(&self) -> StoreResult<Vec<InviteRecord>>;
    /// Every pending join request, oldest first per room, with names.
    async fn load_join_requests(&self) -> StoreResult<Vec<JoinRequestRecord>>;
    /// Every room's state with up to `per_room` recent events: what a
    /// single node loads at start-up.
    async fn load_all_rooms(&self, per_room: u32) -> StoreResult<RoomsState> {
        Ok(RoomsState {
            rooms: self.load_rooms().await?,
            members: self.load_members().await?,
            bans: self.load_bans().await?,
            invites: self.load_invites().await?,
            requests: self.load_join_requests().await?,
            recent: self.load_recent_events(per_room).await?,
        })
    }
    /// Highest notification id stored (0 if none), so the server can keep
    /// assigning increasing ids after a restart.
    async fn max_notification_id(&self) -> StoreResult<u64>;

    /// Rooms visible to `viewer` — public rooms and rooms `viewer` is a
    /// member of, never terminated ones nor rooms `viewer` is banned
    /// from — that `filter` matches, ordered by room id, with
    /// `member_count` and `last_seq` filled in. Returns the page and the
    /// total number of matches.
    async fn list_rooms(
        &self,
        viewer: UserId,
        filter: RoomFilter<'_>,
        offset: u32,
        limit: u32,
    ) -> StoreResult<(Vec<RoomInfo>, u32)>;
    /// Rooms `user` is a member of, ordered by room id.
    async fn rooms_of_user(&self, user: UserId) -> StoreResult<Vec<RoomInfo>>;
    /// [`RoomReads::rooms_of_user`], each room with `user`'s read marker
    /// and unread count (their messages after the marker that others
    /// sent, deleted ones excluded), in one statement.
    async fn my_rooms(&self, user: UserId) -> StoreResult<Vec<MyRoom>>;
    /// `user`'s read marker in `room` and the unread count it leaves.
    async fn room_unread(&self, user: UserId, room: RoomId) -> StoreResult<RoomUnread>;
    /// Up to `limit` events of `room` with `seq < before`, newest first.
    async fn history(&self, room: RoomId, before: Seq, limit: u32)
        -> StoreResult<Vec<StoredEvent>>;

    /// `user`'s notifications with `id < before` (0 = from the newest),
    /// newest first, at most `limit`; only unread ones if `unread_only`.
    async fn notifications(
        &self,
        user: UserId,
        before: u64,
        limit: u32,
        unread_only: bool,
    ) -> StoreResult<Vec<NotificationRecord>>;
    /// Number of `user`'s unread notifications.
    async fn unread_count(&self, user: UserId) -> StoreResult<u32>;
    /// `user`'s room log, most recently joined first.
    async fn room_log(&self, user: UserId) -> StoreResult<Vec<RoomLogEntry>>;
    /// `room`'s audit entries with `id < before` (0 = from the newest),
    /// newest first, at most `limit`.
    async fn audit(&self, room: RoomId, before: u64, limit: u32) -> StoreResult<Vec<AuditRecord>>;

    /// One round trip to the database (readiness probes).
    async fn ping(&self) -> StoreResult<()>;
}

/// Where every state change goes: the batch writer and the spool's replay
/// need nothing else.
#[async_trait::async_trait]
pub trait BatchSink: Send + Sync + 'static {
    /// Applies `ops` in order in one transaction and makes them durable.
    async fn apply_batch(&self, ops: &[WriteOp]) -> StoreResult<()>;

    /// [`BatchSink::apply_batch`] in cluster mode: in the same transaction,
    /// checks that `fence.owner` holds every lease of `fence` unexpired at
    /// its epoch (locking them until the commit, so no takeover can slip
    /// in between), and fails with [`StoreError::Fenced`], committing
    /// nothing, if not. Only a store that keeps leases can check: the
    /// default refuses every fenced batch.
    async fn apply_fenced_batch(&self, ops: &[WriteOp], fence: &Fence) -> StoreResult<()> {
        let _ = (ops, fence);
        Err(StoreError::Fenced {
            message: "this store keeps no partition leases (cluster mode needs Postgres)".into(),
        })
    }

    /// Upkeep the store does between batches, once the acknowledgements
    /// of the last one are out (SQLite folds its event log into `events`
    /// when it is due; `all`: whatever is there, as at start-up). What it
    /// moves stays readable throughout; a failure loses nothing (it is
    /// tried again next time).
    async fn tidy(&self, all: bool) -> StoreResult<()> {
        let _ = all;
        Ok(())
    }

    /// [`BatchSink::tidy`] between batches (`all` false); `idle`: no
    /// request waits for the writer; `budget`: the time until the next
    /// batch may start, if the caller knows it (a tidy that can be cut to
    /// size keeps to about that).
    async fn tidy_between(
        &self,
        idle: bool,
        budget: Option<std::time::Duration>,
    ) -> StoreResult<()> {
        let _ = (idle, budget);
        self.tidy(false).await
    }
}

/// The periodic clean-up (`confab_server::housekeeping`).
#[async_trait::async_trait]
pub trait Housekeeping: Send + Sync + 'static {
    /// Removes room-log entries that ended (`left_at` set) before `cutoff`,
    /// except where the user is banned from the room. Returns how many.
    async fn purge_room_log(&self, cutoff: Millis) -> StoreResult<u64>;
    /// Removes notifications created before `cutoff`. Returns how many.
    async fn purge_notifications(&self, cutoff: Millis) -> StoreResult<u64>;
    /// Removes sessions that expired at or before `now`. Returns how many.
    async fn purge_expired_sessions(&self, now: Millis) -> StoreResult<u64>;
}

/// An upload to record ([`FileStore::insert_file`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    pub room: RoomId,
    pub uploader: UserId,
    /// The file's name as the uploader gave it (checked by the server).
    pub name: String,
    /// The allowlisted type the bytes were sniffed as.
    pub content_type: String,
    pub size: u64,
    /// SHA-256 of the bytes: where they are stored.
    pub sha256: [u8; 32],
    /// An image's size in pixels, from its header.
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub created_at: Millis,
}

/// A stored upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    pub id: u64,
    pub file: NewFile,
    /// The message of `file.room` that references it: `None` while none
    /// does, `Some(Seq(0))` while a message being sent claims it.
    pub message: Option<Seq>,
    /// Its message was deleted, or nothing referenced it in time: no
    /// longer served.
    pub deleted: bool,
    /// An avatar ([`FileStore::insert_avatar_file`]): in no room, read by
    /// any authenticated user, never attached to a message.
    pub avatar: bool,
}

/// Why [`FileStore::claim_file`] did not claim a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimRefused {
    /// No such file, or it is deleted.
    Unknown,
    /// Someone else uploaded it.
    NotUploader,
    /// It was uploaded to another room.
    OtherRoom,
    /// A message references (or is claiming) it already.
    AlreadyAttached,
}

/// Uploaded files' metadata. Each call is its own transaction.
#[async_trait::async_trait]
pub trait FileStore: Send + Sync + 'static {
    /// Records an upload; returns its id (increasing, never reused).
    async fn insert_file(&self, file: &NewFile) -> StoreResult<u64>;
    /// Records an uploaded avatar of `file.uploader` (`file.room` must be
    /// `RoomId(0)`: an avatar is in no room); returns its id. It becomes
    /// the user's avatar with [`AccountWrite::SetAvatar`].
    async fn insert_avatar_file(&self, file: &NewFile) -> StoreResult<u64>;
    /// The file with this id, deleted or not.
    async fn file(&self, id: u64) -> StoreResult<Option<FileRecord>>;
    /// Claims file `id` for a message `uploader` is sending in `room`:
    /// only the uploader, only in the file's room, only a live file that
    /// no message references; returns the file as claimed (in one
    /// statement). Atomic: of two claims one wins. The claim
    /// ends with the message's `WriteOp::AttachFiles`, or its
    /// `WriteOp::ReleaseFiles` when the message is refused.
    async fn claim_file(
        &self,
        id: u64,
        uploader: UserId,
        room: RoomId,
    ) -> StoreResult<Result<FileRecord, ClaimRefused>>;
    /// Housekeeping: marks deleted the files whose message is a tombstone,
    /// those never referenced that were uploaded before `cutoff` (a claim
    /// still held then is one whose message never committed), and avatars
    /// uploaded before `cutoff` that are not their user's avatar.
    /// Returns how many it marked.
    async fn expire_files(&self, cutoff: Millis) -> StoreResult<u64>;
    /// Hashes that only deleted files use: their bytes may go.
    async fn dead_hashes(&self) -> StoreResult<Vec<[u8; 32]>>;
    /// Removes the deleted files of `sha256` (after its bytes went), unless
    /// a live file uses the hash again; returns how many rows it removed.
    async fn forget_files(&self, sha256: &[u8; 32]) -> StoreResult<u64>;
}

/// The whole contract: what the runtime holds, as `Arc<dyn Store>`.
/// Implemented for every type that implements the five parts; a
/// `dyn Store` converts to any of them (`Arc<dyn Store>` to
/// `Arc<dyn BatchSink>`, say).
pub trait Store: AccountStore + RoomReads + BatchSink + Housekeeping + FileStore {}

impl<T: AccountStore + RoomReads + BatchSink + Housekeeping + FileStore> Store for T {}
