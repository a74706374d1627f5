//! The embedded SQLite backend of [`Store`] (the zero-set-up default).
//!
//! **Design constraints**
//! - *An acknowledgement means durable* (DESIGN.md invariant 6): when
//!   [`Store::apply_batch`] returns `Ok`, the batch's transaction has been
//!   fsync'd. Hence `synchronous = FULL` (in WAL mode, `NORMAL` would let
//!   the last commits vanish on power loss).
//! - *One writer.* All writes — the batch writer's `apply_batch` and the
//!   account/session writes — go through a pool of exactly one connection,
//!   so writes never contend for SQLite's single write lock inside the
//!   process, and a transaction can never fail with `SQLITE_BUSY` because
//!   another of our own connections upgraded first. Batches begin with
//!   `BEGIN IMMEDIATE` so that, should another *process* (an operator's
//!   `sqlite3` shell) hold the lock, we wait on the busy timeout up front
//!   instead of failing mid-batch.
//! - *Readers never wait for the writer.* A second pool of
//!   [`READER_CONNECTIONS`] connections serves the query methods; WAL mode
//!   gives each read a consistent snapshot while a batch commits.
//!   Reader connections run with `query_only = ON`, so a write issued
//!   through the wrong pool fails loudly instead of racing the writer.
//! - *The store knows no event kinds*: an event body is an opaque blob in
//!   its wire encoding.
//! - *No panics on anything read from disk*: ids and timestamps are `u64` in
//!   Rust and `INTEGER` (i64) in SQLite; both directions use checked
//!   conversions, and a value out of range (or an unknown role/visibility)
//!   is a [`StoreError::Database`], never a wrap-around or a panic
//!   (`sqlite/convert.rs`).
//!
//! **PRAGMAs** (set on every connection by [`SqliteConnectOptions`])
//! - `journal_mode = WAL` (writer only; the mode is persistent in the file):
//!   concurrent readers during writes, and one fsync per commit.
//! - `synchronous = FULL`: durability of every commit (see above).
//! - `foreign_keys = ON`: memberships, events and sessions must point at
//!   rows that exist; a shard bug surfaces as a failed batch, not as orphans.
//! - `busy_timeout` = [`BUSY_TIMEOUT`]: wait, don't fail, when another
//!   process holds a lock or a checkpoint is running.
//! - `query_only = ON` (readers only): see above.
//!
//! **Schema** (`migrations/sqlite/`, version 1; governance in version 2)
//! - `users(id INTEGER PRIMARY KEY AUTOINCREMENT, username UNIQUE,
//!   password_hash, created_at)` — AUTOINCREMENT so ids are never reused.
//! - `sessions(token_hash BLOB PK, user_id → users, created_at, expires_at)`.
//! - `rooms(id INTEGER PK (server-assigned), name, topic, name_folded,
//!   topic_folded, visibility, owner_id → users, created_at, last_seq)`.
//!   The `*_folded` columns hold the Unicode-lowercased name/topic, because
//!   SQLite's `lower()` folds ASCII only and the room search promises to be
//!   case-insensitive. The search is a `LIKE '%q%'` full scan over `rooms`
//!   (no index can serve an infix match); that is fine at the scale of one
//!   node's room count, and an FTS5 trigram table is the upgrade path.
//! - `memberships(room_id → rooms, user_id → users, role, joined_at,
//!   PK(room_id, user_id))` plus an index on `(user_id, room_id)`.
//! - `events(room_id → rooms, seq, at, actor_id, actor_name, kind, body,
//!   PK(room_id, seq)) WITHOUT ROWID` — the table is the `(room_id, seq)`
//!   B-tree, so history pages and the start-up tail are primary-key range
//!   scans.
//! - Version 2 (room governance): `rooms.terminated_at` (NULL while the
//!   room lives; terminated rooms keep their row so ids stay unique and
//!   former members keep their room log); `bans`, `invites` and
//!   `join_requests`, each keyed `(room_id, user_id)`; `notifications`
//!   (id assigned by the server, so the live notification and the stored
//!   one share it and re-applying is a no-op) with indexes for a user's
//!   list and for the unread badge (partial, unread rows only);
//!   `notification_id_floor`, one row remembering the highest id ever
//!   stored so that housekeeping deleting the newest notifications cannot
//!   make `max_notification_id` go back (and ids be reused after a
//!   restart); `room_log(user_id, room_id, first_joined_at,
//!   last_joined_at, left_at, reason)`, back-filled from the memberships
//!   that existed before the migration; `audit(id AUTOINCREMENT, …)` with
//!   a `(room_id, id)` index for a room's trail; an index on
//!   `sessions.expires_at` for housekeeping. `LogLeave` only updates an
//!   existing room-log row: ending an association that was never logged
//!   (a ban of a non-member) creates none.
//!
//! **Migrations.** The SQL files are embedded with `include_str!` and run by
//! sqlx's own [`Migrator`] (built with [`Migrator::with_migrations`]), not by
//! the `sqlx::migrate!` macro: that macro needs sqlx's `macros` feature,
//! which would add the proc-macro crates (and their SQLite driver build) to
//! every crate of the workspace on a two-core machine, for one directory
//! listing. The result is the same as `migrate!`: the same
//! `_sqlx_migrations` table, the same version (from the file name's prefix)
//! and the same SHA-384 checksum, so `sqlx-cli` and a later switch to the
//! macro see an identical history. A new migration is one more entry in
//! `migrator()`.

mod convert;
mod governance;
mod write;

use std::path::Path;
use std::time::Duration;

use confab_protocol::{Millis, RoomId, RoomInfo, Seq, UserId};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::SqlSafeStr;

use crate::search::like_contains_pattern;
use crate::{
    AuditRecord, BanRecord, InviteRecord, JoinRequestRecord, MemberRecord, NotificationRecord,
    RoomLogEntry, RoomRecord, Store, StoreError, StoreResult, StoredEvent, UserRecord, WriteOp,
};
use convert::{
    conflict_or_db, db_err, event_from_row, from_db, get, get_u64, out_of_range, role_from_db,
    room_info_from_row, to_db, to_db_opt, user_from_row, visibility_from_db,
};

/// How long a statement waits for a lock held by another connection or
/// process before failing with `SQLITE_BUSY`.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections in the read pool. Two cores; reads are short.
pub const READER_CONNECTIONS: u32 = 3;

/// The SQLite implementation of [`Store`]. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Exactly one connection: every write goes through it, in order.
    writer: SqlitePool,
    /// `query_only` connections for the query methods.
    readers: SqlitePool,
}

/// The embedded migrations, in version order. See the module doc for why
/// this is not `sqlx::migrate!`.
fn migrator() -> Migrator {
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            "initial schema".into(),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0001_initial_schema.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            "governance".into(),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0002_governance.sql").into_sql_str(),
            false,
        ),
    ])
}

impl SqliteStore {
    /// Opens (creating if missing, with its parent directories) the database
    /// file at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> StoreResult<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(|e| {
                StoreError::Database(format!("creating directory {}: {e}", dir.display()))
            })?;
        }

        let base = SqliteConnectOptions::new()
            .filename(path)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);

        // The writer opens (and creates) the file and switches it to WAL
        // before any reader connects; readers leave journal_mode alone
        // because changing it needs an exclusive lock.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(
                base.clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal),
            )
            .await
            .map_err(|e| db_err(&format!("opening {}", path.display()), e))?;

        migrator()
            .run(&writer)
            .await
            .map_err(|e| StoreError::Database(format!("migrating {}: {e}", path.display())))?;

        let readers = SqlitePoolOptions::new()
            .max_connections(READER_CONNECTIONS)
            .connect_with(base.pragma("query_only", "ON"))
            .await
            .map_err(|e| db_err(&format!("opening {} for reading", path.display()), e))?;

        tracing::info!(path = %path.display(), "sqlite store open");
        Ok(SqliteStore { writer, readers })
    }

    /// Closes both pools, waiting for connections in use to be returned.
    /// Dropping the store also closes them, without waiting.
    pub async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        now: Millis,
    ) -> StoreResult<UserId> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (username, password_hash, created_at) VALUES (?1, ?2, ?3) \
             RETURNING id",
        )
        .bind(username)
        .bind(password_hash)
        .bind(to_db(now, "created_at")?)
        .fetch_one(&self.writer)
        .await
        .map_err(|e| conflict_or_db(e, "username", "create_user"))?;
        Ok(UserId(from_db(id, "users.id")?))
    }

    async fn user_by_name(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        sqlx::query("SELECT id, username, password_hash, created_at FROM users WHERE username = ?1")
            .bind(username)
            .fetch_optional(&self.readers)
            .await
            .map_err(|e| db_err("user_by_name", e))?
            .map(|row| user_from_row(&row))
            .transpose()
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        let Some(id) = to_db_opt(id.0) else {
            return Ok(None);
        };
        sqlx::query("SELECT id, username, password_hash, created_at FROM users WHERE id = ?1")
            .bind(id)
            .fetch_optional(&self.readers)
            .await
            .map_err(|e| db_err("user_by_id", e))?
            .map(|row| user_from_row(&row))
            .transpose()
    }

    async fn create_session(
        &self,
        token_hash: &[u8; 32],
        user: UserId,
        now: Millis,
        expires_at: Millis,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(&token_hash[..])
        .bind(to_db(user.0, "user id")?)
        .bind(to_db(now, "created_at")?)
        .bind(to_db(expires_at, "expires_at")?)
        .execute(&self.writer)
        .await
        .map_err(|e| conflict_or_db(e, "session token", "create_session"))?;
        Ok(())
    }

    async fn session_user(
        &self,
        token_hash: &[u8; 32],
        now: Millis,
    ) -> StoreResult<Option<UserRecord>> {
        // A `now` beyond i64::MAX is past every storable expiry.
        let Some(now) = to_db_opt(now) else {
            return Ok(None);
        };
        sqlx::query(
            "SELECT u.id, u.username, u.password_hash, u.created_at \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = ?1 AND s.expires_at > ?2",
        )
        .bind(&token_hash[..])
        .bind(now)
        .fetch_optional(&self.readers)
        .await
        .map_err(|e| db_err("session_user", e))?
        .map(|row| user_from_row(&row))
        .transpose()
    }

    async fn delete_session(&self, token_hash: &[u8; 32]) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?1")
            .bind(&token_hash[..])
            .execute(&self.writer)
            .await
            .map_err(|e| db_err("delete_session", e))?;
        Ok(())
    }

    async fn load_rooms(&self) -> StoreResult<Vec<RoomRecord>> {
        let rows = sqlx::query(
            "SELECT id, name, topic, visibility, owner_id, created_at, last_seq, terminated_at \
             FROM rooms ORDER BY id",
        )
        .fetch_all(&self.readers)
        .await
        .map_err(|e| db_err("load_rooms", e))?;
        rows.iter()
            .map(|row| {
                let terminated_at: Option<i64> = get(row, "terminated_at")?;
                Ok(RoomRecord {
                    id: RoomId(get_u64(row, "id")?),
                    name: get(row, "name")?,
                    topic: get(row, "topic")?,
                    visibility: visibility_from_db(get(row, "visibility")?)?,
                    owner: UserId(get_u64(row, "owner_id")?),
                    created_at: get_u64(row, "created_at")?,
                    last_seq: Seq(get_u64(row, "last_seq")?),
                    terminated_at: terminated_at
                        .map(|v| from_db(v, "terminated_at"))
                        .transpose()?,
                })
            })
            .collect()
    }

    async fn load_members(&self) -> StoreResult<Vec<MemberRecord>> {
        let rows = sqlx::query(
            "SELECT m.room_id, m.user_id, u.username, m.role, m.joined_at \
             FROM memberships m JOIN users u ON u.id = m.user_id \
             ORDER BY m.room_id, m.joined_at, m.user_id",
        )
        .fetch_all(&self.readers)
        .await
        .map_err(|e| db_err("load_members", e))?;
        rows.iter()
            .map(|row| {
                Ok(MemberRecord {
                    room: RoomId(get_u64(row, "room_id")?),
                    user: UserId(get_u64(row, "user_id")?),
                    username: get(row, "username")?,
                    role: role_from_db(get(row, "role")?)?,
                    joined_at: get_u64(row, "joined_at")?,
                })
            })
            .collect()
    }

    async fn load_recent_events(&self, per_room: u32) -> StoreResult<Vec<StoredEvent>> {
        if per_room == 0 {
            return Ok(Vec::new());
        }
        // For each room, the subquery walks the primary key backwards to the
        // per_room-th newest seq, and the events of the room are then one
        // primary-key range scan from there: O(rooms × per_room), not
        // O(all events) as a ROW_NUMBER() window over the table would be.
        // CROSS JOIN pins rooms as the outer loop (SQLite never reorders
        // it); left free, the planner scans every event and runs the
        // subquery per event. Measured on 200 rooms × 2000 events, 100 per
        // room: 2 ms here, 0.4 s with ROW_NUMBER(), 1 s with a plain JOIN.
        let rows = sqlx::query(
            "SELECT e.room_id, e.seq, e.at, e.actor_id, e.actor_name, e.kind, e.body \
             FROM rooms r CROSS JOIN events e ON e.room_id = r.id \
             WHERE e.seq >= coalesce( \
                 (SELECT x.seq FROM events x WHERE x.room_id = r.id \
                  ORDER BY x.seq DESC LIMIT 1 OFFSET ?1), 0) \
             ORDER BY r.id, e.seq",
        )
        .bind(i64::from(per_room) - 1)
        .fetch_all(&self.readers)
        .await
        .map_err(|e| db_err("load_recent_events", e))?;
        rows.iter().map(event_from_row).collect()
    }

    async fn list_rooms(
        &self,
        viewer: UserId,
        query: &str,
        offset: u32,
        limit: u32,
    ) -> StoreResult<(Vec<RoomInfo>, u32)> {
        // An unrepresentable viewer id belongs to no room: public rooms only.
        let viewer = to_db_opt(viewer.0).unwrap_or(-1);
        let pattern = like_contains_pattern(query);

        // Count and page from one snapshot, so `total` matches the page.
        let mut tx = self
            .readers
            .begin()
            .await
            .map_err(|e| db_err("list_rooms", e))?;

        let total: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM rooms r \
             WHERE r.terminated_at IS NULL \
               AND (r.visibility = 0 OR EXISTS (SELECT 1 FROM memberships m \
                    WHERE m.room_id = r.id AND m.user_id = ?1)) \
               AND NOT EXISTS (SELECT 1 FROM bans b WHERE b.room_id = r.id AND b.user_id = ?1) \
               AND (r.name_folded LIKE ?2 ESCAPE '\\' OR r.topic_folded LIKE ?2 ESCAPE '\\')",
        )
        .bind(viewer)
        .bind(&pattern)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| db_err("list_rooms count", e))?;

        let rows = sqlx::query(
            "SELECT r.id, r.name, r.topic, r.visibility, r.owner_id, r.created_at, r.last_seq, \
                    (SELECT count(*) FROM memberships c WHERE c.room_id = r.id) AS member_count \
             FROM rooms r \
             WHERE r.terminated_at IS NULL \
               AND (r.visibility = 0 OR EXISTS (SELECT 1 FROM memberships m \
                    WHERE m.room_id = r.id AND m.user_id = ?1)) \
               AND NOT EXISTS (SELECT 1 FROM bans b WHERE b.room_id = r.id AND b.user_id = ?1) \
               AND (r.name_folded LIKE ?2 ESCAPE '\\' OR r.topic_folded LIKE ?2 ESCAPE '\\') \
             ORDER BY r.id LIMIT ?3 OFFSET ?4",
        )
        .bind(viewer)
        .bind(&pattern)
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| db_err("list_rooms", e))?;

        tx.commit().await.map_err(|e| db_err("list_rooms", e))?;

        let rooms = rows
            .iter()
            .map(room_info_from_row)
            .collect::<StoreResult<_>>()?;
        let total = u32::try_from(total).map_err(|_| out_of_range("room count", total))?;
        Ok((rooms, total))
    }

    async fn rooms_of_user(&self, user: UserId) -> StoreResult<Vec<RoomInfo>> {
        let Some(user) = to_db_opt(user.0) else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT r.id, r.name, r.topic, r.visibility, r.owner_id, r.created_at, r.last_seq, \
                    (SELECT count(*) FROM memberships c WHERE c.room_id = r.id) AS member_count \
             FROM memberships m JOIN rooms r ON r.id = m.room_id \
             WHERE m.user_id = ?1 \
             ORDER BY m.room_id", // = r.id, in memberships_by_user order: no sort
        )
        .bind(user)
        .fetch_all(&self.readers)
        .await
        .map_err(|e| db_err("rooms_of_user", e))?;
        rows.iter().map(room_info_from_row).collect()
    }

    async fn history(
        &self,
        room: RoomId,
        before: Seq,
        limit: u32,
    ) -> StoreResult<Vec<StoredEvent>> {
        let Some(room) = to_db_opt(room.0) else {
            return Ok(Vec::new());
        };
        // `seq <= before - 1` rather than `seq < before` with a special case
        // in SQL, so the planner sees a plain primary-key range. `before`
        // of 0 (no bound) or beyond i64::MAX (above every stored seq) both
        // mean "up to the newest".
        let max_seq = match to_db_opt(before.0) {
            Some(b) if b > 0 => b - 1,
            _ => i64::MAX,
        };
        let rows = sqlx::query(
            "SELECT room_id, seq, at, actor_id, actor_name, kind, body FROM events \
             WHERE room_id = ?1 AND seq <= ?2 \
             ORDER BY seq DESC LIMIT ?3",
        )
        .bind(room)
        .bind(max_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await
        .map_err(|e| db_err("history", e))?;
        rows.iter().map(event_from_row).collect()
    }

    async fn apply_batch(&self, ops: &[WriteOp]) -> StoreResult<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| db_err("apply_batch begin", e))?;
        let mut i = 0;
        while i < ops.len() {
            // A run of consecutive events goes in as multi-row INSERTs
            // (write::append_events): the bulk of every batch.
            let run = ops[i..]
                .iter()
                .take_while(|op| matches!(op, WriteOp::AppendEvent(_)))
                .count();
            let applied = if run > 1 {
                write::append_events(&mut tx, &ops[i..i + run]).await
            } else {
                write::apply_op(&mut tx, &ops[i]).await
            };
            applied.map_err(|e| match e {
                StoreError::Database(msg) => {
                    StoreError::Database(format!("apply_batch op {i}: {msg}"))
                }
                other => other,
            })?;
            i += run.max(1);
        }
        // Dropping `tx` on any error above rolls the whole batch back.
        tx.commit()
            .await
            .map_err(|e| db_err("apply_batch commit", e))
    }

    async fn load_bans(&self) -> StoreResult<Vec<BanRecord>> {
        governance::load_bans(&self.readers).await
    }

    async fn load_invites(&self) -> StoreResult<Vec<InviteRecord>> {
        governance::load_invites(&self.readers).await
    }

    async fn load_join_requests(&self) -> StoreResult<Vec<JoinRequestRecord>> {
        governance::load_join_requests(&self.readers).await
    }

    async fn max_notification_id(&self) -> StoreResult<u64> {
        governance::max_notification_id(&self.readers).await
    }

    async fn notifications(
        &self,
        user: UserId,
        before: u64,
        limit: u32,
        unread_only: bool,
    ) -> StoreResult<Vec<NotificationRecord>> {
        governance::notifications(&self.readers, user, before, limit, unread_only).await
    }

    async fn unread_count(&self, user: UserId) -> StoreResult<u32> {
        governance::unread_count(&self.readers, user).await
    }

    async fn mark_read(&self, user: UserId, up_to: u64) -> StoreResult<u32> {
        governance::mark_read(&self.writer, user, up_to).await
    }

    async fn room_log(&self, user: UserId) -> StoreResult<Vec<RoomLogEntry>> {
        governance::room_log(&self.readers, user).await
    }

    async fn audit(&self, room: RoomId, before: u64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        governance::audit(&self.readers, room, before, limit).await
    }

    async fn purge_room_log(&self, cutoff: Millis) -> StoreResult<u64> {
        governance::purge_room_log(&self.writer, cutoff).await
    }

    async fn purge_notifications(&self, cutoff: Millis) -> StoreResult<u64> {
        governance::purge_notifications(&self.writer, cutoff).await
    }

    async fn purge_expired_sessions(&self, now: Millis) -> StoreResult<u64> {
        governance::purge_expired_sessions(&self.writer, now).await
    }

    async fn ping(&self) -> StoreResult<()> {
        // Reads the schema page, so the database file must be readable
        // (a bare SELECT 1 would not touch it).
        sqlx::query("SELECT 1 FROM sqlite_master LIMIT 1")
            .fetch_optional(&self.readers)
            .await
            .map(|_| ())
            .map_err(|e| db_err("ping", e))
    }
}
