//! Confab persistence behind one trait (DESIGN.md invariant 7).
//!
//! [`Store`] is the whole contract between the runtime and a database. The
//! runtime never issues SQL itself: reads go through the query methods, and
//! every state change goes through [`Store::apply_batch`], called only by the
//! batch writer (`confab_server::batch`) with operations in the order the shards
//! produced them.
//!
//! **Invariants every backend upholds**
//! - `apply_batch` is atomic: all operations of a batch commit, or none do.
//! - `apply_batch` is idempotent per event: re-applying an `AppendEvent`
//!   with an existing `(room, seq)` changes nothing (replay after a crash or
//!   a retried batch must not store anything twice).
//! - When `apply_batch` returns `Ok`, the batch is durable (fsync'd).

use confab_protocol::{Millis, Role, RoomId, RoomInfo, Seq, UserId, Visibility};

pub mod sqlite;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness constraint was violated (e.g. the username exists).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The database could not be reached or returned an error.
    #[error("database error: {0}")]
    Database(String),
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
}

/// The storage contract. Object-safe so the runtime holds `Arc<dyn Store>`.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
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

    /// Every room, for the shards to load at start-up.
    async fn load_rooms(&self) -> StoreResult<Vec<RoomRecord>>;
    /// Every membership, ordered by room then join order (joined_at, then user id).
    async fn load_members(&self) -> StoreResult<Vec<MemberRecord>>;
    /// Up to `per_room` newest events of every room, in ascending seq order per room.
    async fn load_recent_events(&self, per_room: u32) -> StoreResult<Vec<StoredEvent>>;

    /// Rooms visible to `viewer` — public rooms and rooms `viewer` is a
    /// member of — whose name or topic contains `query` (case-insensitive;
    /// empty matches all), ordered by room id, with `member_count` and
    /// `last_seq` filled in. Returns the page and the total number of matches.
    async fn list_rooms(
        &self,
        viewer: UserId,
        query: &str,
        offset: u32,
        limit: u32,
    ) -> StoreResult<(Vec<RoomInfo>, u32)>;
    /// Rooms `user` is a member of, ordered by room id.
    async fn rooms_of_user(&self, user: UserId) -> StoreResult<Vec<RoomInfo>>;
    /// Up to `limit` events of `room` with `seq < before`, newest first.
    async fn history(&self, room: RoomId, before: Seq, limit: u32)
        -> StoreResult<Vec<StoredEvent>>;

    /// Applies `ops` in order in one transaction and makes them durable.
    async fn apply_batch(&self, ops: &[WriteOp]) -> StoreResult<()>;
}
