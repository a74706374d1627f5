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
//!   (`common/`).
//! - *Shared reads*: every read, the account and session writes and the
//!   purges are `common/`'s, the same statements as Postgres'; this file
//!   holds the connection set-up, the few statements whose best SQLite
//!   form differs ([`Backend`] below) and the error classification, and
//!   `sqlite/write.rs` the write path, `apply_batch`.
//!
//! **PRAGMAs** (set on every connection by [`SqliteConnectOptions`])
//! - `journal_mode = WAL` (writer only; the mode is persistent in the file):
//!   concurrent readers during writes, and one fsync per commit.
//! - `synchronous = FULL`: durability of every commit (see above). The
//!   one exception: a fold of the event log between batches commits with
//!   `NORMAL` (it only moves events that are already durable; the next
//!   batch's commit syncs the WAL past it), on the writer connection held
//!   until `FULL` is back (`SqliteStore::fold_log`).
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
//! - Version 4: `event_log`, where new events land before they are folded
//!   into `events` (`sqlite/write.rs`, "The event log"); reads
//!   take both (`common::sql::EVENTS_AND_LOG`). `rooms.last_seq` is no
//!   longer raised per event: a room's last seq is its newest event in
//!   either table, the column only the floor for a room without events.
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
//! - Version 6 (direct rooms): `rooms.direct_low`, `rooms.direct_high`,
//!   the pair of a direct room (lower user id first; NULL for other
//!   rooms), with a partial unique index: one direct room per pair.
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

mod write;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteQueryResult, SqliteSynchronous,
};
use sqlx::Sqlite;

use crate::common::{self, sql, Backend, Dialect};
use crate::{BatchSink, StoreError, StoreResult, WriteOp};

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
    /// Events written to the event log since it was last folded
    /// (`sqlite/write.rs`, "The event log").
    log_rows: Arc<AtomicU64>,
    /// When and how much a tidy folds.
    fold: FoldPolicy,
    /// Where the next key-order chunk starts.
    fold_from: Arc<std::sync::Mutex<(i64, i64)>>,
}

/// When and how much of the event log a tidy between batches folds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FoldPolicy {
    /// Fold once the log holds this many events.
    pub start: u64,
    /// Events per fold; 0: the whole log.
    pub chunk: u64,
    /// The whole log once it holds this many, whatever else.
    pub backstop: u64,
    /// Only while no request waits for the writer (backstop aside).
    pub idle_only: bool,
    /// Chunks in `(room_id, seq)` order from a cursor (slices of rooms)
    /// rather than the oldest events.
    pub by_key: bool,
    /// Commit folds without an fsync of their own (the next batch's
    /// commit syncs the WAL up to and past them).
    pub no_sync: bool,
}

/// What one tidy folds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fold {
    Nothing,
    Chunk(u64),
    All,
}

impl FoldPolicy {
    /// The built-in policy (chunks of [`write::FOLD_CHUNK`] in key order
    /// once the log holds [`write::FOLD_ROWS`], no fsync of their own, the
    /// whole log past [`write::FOLD_BACKSTOP`]), or as changed by the
    /// experiment switch `CONFAB_SQLITE_FOLD` (`start=N,chunk=N,
    /// backstop=N,idle=0|1,order=id|key,sync=0|1`; benches/BENCHMARKS.md,
    /// "Folding in chunks or when idle, measured").
    fn from_env() -> FoldPolicy {
        let mut p = FoldPolicy {
            start: write::FOLD_ROWS,
            chunk: write::FOLD_CHUNK,
            backstop: write::FOLD_BACKSTOP,
            idle_only: false,
            by_key: true,
            no_sync: true,
        };
        if let Ok(spec) = std::env::var("CONFAB_SQLITE_FOLD") {
            for kv in spec.split(',') {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                let n = v.parse::<u64>().unwrap_or(0);
                match k {
                    "start" => p.start = n,
                    "chunk" => p.chunk = n,
                    "backstop" => p.backstop = n,
                    "idle" => p.idle_only = n != 0,
                    "order" => p.by_key = v == "key",
                    "sync" => p.no_sync = n == 0,
                    _ => {}
                }
            }
            tracing::info!(?p, "fold policy");
        }
        p
    }

    /// What a tidy between batches folds with `pending` events logged,
    /// `idle` when no request waits for the writer.
    pub(crate) fn plan(&self, pending: u64, idle: bool) -> Fold {
        if pending >= self.backstop {
            Fold::All
        } else if pending < self.start || (self.idle_only && !idle) {
            Fold::Nothing
        } else if self.chunk == 0 {
            Fold::All
        } else {
            Fold::Chunk(self.chunk)
        }
    }
}

/// The embedded migrations, in version order. See the module doc for why
/// this is not `sqlx::migrate!`.
fn migrator() -> Migrator {
    common::migrator(&[
        (
            1,
            "initial schema",
            include_str!("../migrations/sqlite/0001_initial_schema.sql"),
        ),
        (
            2,
            "governance",
            include_str!("../migrations/sqlite/0002_governance.sql"),
        ),
        (
            3,
            "read marks",
            include_str!("../migrations/sqlite/0003_read_marks.sql"),
        ),
        (
            4,
            "event log",
            include_str!("../migrations/sqlite/0004_event_log.sql"),
        ),
        (
            5,
            "room read markers",
            include_str!("../migrations/sqlite/0005_room_read_markers.sql"),
        ),
        (
            6,
            "direct rooms",
            include_str!("../migrations/sqlite/0006_direct_rooms.sql"),
        ),
        (
            8,
            "profiles",
            include_str!("../migrations/sqlite/0008_profiles.sql"),
        ),
        (
            9,
            "files",
            include_str!("../migrations/sqlite/0009_files.sql"),
        ),
        (
            10,
            "avatars",
            include_str!("../migrations/sqlite/0010_avatars.sql"),
        ),
    ])
}

impl SqliteStore {
    /// Opens (creating if missing, with its parent directories) the database
    /// file at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> StoreResult<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| StoreError::Database {
                    message: format!("creating directory {}: {e}", dir.display()),
                    source: Some(Box::new(e)),
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
        // No ping before each acquire (sqlx's default): the database is in
        // this process, and a ping is a round trip to the connection's
        // worker thread — two context switches per batch for nothing.
        let writer = SqlitePoolOptions::new()
            .test_before_acquire(false)
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
            .map_err(|e| Sqlite::error(&format!("opening {}", path.display()), e))?;

        migrator()
            .run(&writer)
            .await
            .map_err(|e| StoreError::Database {
                message: format!("migrating {}: {e}", path.display()),
                source: Some(Box::new(e)),
            })?;

        let readers = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(READER_CONNECTIONS)
            .connect_with(base.pragma("query_only", "ON"))
            .await
            .map_err(|e| Sqlite::error(&format!("opening {} for reading", path.display()), e))?;

        let store = SqliteStore {
            writer,
            readers,
            log_rows: Arc::default(),
            fold: FoldPolicy::from_env(),
            fold_from: Arc::default(),
        };
        store.tidy(true).await?;
        tracing::info!(path = %path.display(), "sqlite store open");
        Ok(store)
    }

    /// Closes both pools, waiting for connections in use to be returned.
    /// Dropping the store also closes them, without waiting.
    pub async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }
}

impl Dialect for Sqlite {
    /// SQLite result codes (primary code: the low byte of the extended
    /// code) of a database file that cannot be written now: busy (locked
    /// by another process), read-only, I/O error, full, cannot open.
    fn unavailable_code(code: &str) -> bool {
        const BUSY: i32 = 5;
        const READONLY: i32 = 8;
        const IOERR: i32 = 10;
        const FULL: i32 = 13;
        const CANTOPEN: i32 = 14;
        code.parse::<i32>().is_ok_and(|extended| {
            matches!(extended & 0xff, BUSY | READONLY | IOERR | FULL | CANTOPEN)
        })
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }
}

/// The newest `$1` events of each room in `$table` (see `RECENT_EVENTS`).
macro_rules! recent_in {
    ($table:literal) => {
        concat!(
            "SELECT e.room_id, e.seq, e.at, e.actor_id, e.actor_name, e.kind, e.body \
             FROM rooms r CROSS JOIN ",
            $table,
            " e ON e.room_id = r.id \
             WHERE e.seq >= coalesce( \
                 (SELECT x.seq FROM ",
            $table,
            " x WHERE x.room_id = r.id \
                  ORDER BY x.seq DESC LIMIT 1 OFFSET $1 - 1), 0)"
        )
    };
}

impl Backend for SqliteStore {
    type Pool = SqlitePool;

    /// Events are in `events` and the not-yet-folded `event_log`.
    const ROOM_SQL: &'static sql::RoomSql = &sql::EVENTS_AND_LOG;

    /// For each room, the subquery walks the primary key backwards to the
    /// `$1`-th newest seq, and the events of the room are then one
    /// primary-key range scan from there: O(rooms × per_room), not O(all
    /// events) as a ROW_NUMBER() window over the table would be. CROSS
    /// JOIN pins rooms as the outer loop (SQLite never reorders it); left
    /// free, the planner scans every event and runs the subquery per
    /// event. Measured on 200 rooms × 2000 events, 100 per room: 2 ms
    /// here, 0.4 s with ROW_NUMBER(), 1 s with a plain JOIN. The same is
    /// done on the event log's key index, and a window keeps the newest
    /// `$1` of the two (at most 2 × `$1` rows per room).
    const RECENT_EVENTS: &'static str = concat!(
        "SELECT room_id, seq, at, actor_id, actor_name, kind, body FROM ( \
             SELECT u.*, row_number() OVER (PARTITION BY room_id ORDER BY seq DESC) AS rn \
             FROM (",
        recent_in!("events"),
        " UNION ALL ",
        recent_in!("event_log"),
        ") u) WHERE rn <= $1 ORDER BY room_id, seq"
    );
    /// `read = 0`, literally the predicate of the `notifications_unread`
    /// partial index: SQLite uses a partial index only for a query whose
    /// terms contain the index's (`NOT read` would not do).
    const UNREAD_NOTIFICATIONS: &'static str =
        sql::notifications_page!(" AND read = 0 AND id > (SELECT coalesce(max(k.up_to), 0) FROM notification_marks k WHERE k.user_id = $1)");
    const UNREAD_COUNT: &'static str = sql::unread_count!("read = 0");
    /// Reads the schema page, so the database file must be readable (a
    /// bare `SELECT 1` would not touch it).
    const PING: &'static str = "SELECT 1 FROM sqlite_master LIMIT 1";

    fn readers(&self) -> &SqlitePool {
        &self.readers
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    async fn mark_read_then_count(&self, user: i64, up_to: i64) -> StoreResult<i64> {
        let err = |e| Sqlite::error("mark_read", e);
        // The mark and the count in one transaction on the writer, so the
        // count reflects this mark and no batch commits in between. The
        // mark never moves back.
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(err)?;
        sqlx::query(
            "INSERT INTO notification_marks (user_id, up_to) VALUES ($1, $2) \
             ON CONFLICT (user_id) DO UPDATE SET up_to = max(up_to, excluded.up_to)",
        )
        .bind(user)
        .bind(up_to)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        let n: i64 = sqlx::query_scalar(Self::UNREAD_COUNT)
            .bind(user)
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(n)
    }

    async fn purge_notifications_before(&self, cutoff: i64) -> StoreResult<u64> {
        let err = |e| Sqlite::error("purge_notifications", e);
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(err)?;
        // Remember the highest id before it may be deleted (see the schema).
        sqlx::query(
            "UPDATE notification_id_floor \
             SET max_id = max(max_id, coalesce((SELECT max(id) FROM notifications), 0)) \
             WHERE one = 1",
        )
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        let done = sqlx::query("DELETE FROM notifications WHERE at < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(done.rows_affected())
    }
}

#[async_trait::async_trait]
impl BatchSink for SqliteStore {
    async fn apply_batch(&self, ops: &[WriteOp]) -> StoreResult<()> {
        write::apply_batch(&self.writer, ops).await?;
        let events = ops
            .iter()
            .filter(|op| matches!(op, WriteOp::AppendEvent(_)))
            .count();
        self.log_rows.fetch_add(events as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn tidy(&self, all: bool) -> StoreResult<()> {
        if all {
            return self.fold_log(Fold::All).await;
        }
        self.tidy_between(true).await
    }

    async fn tidy_between(&self, idle: bool) -> StoreResult<()> {
        let plan = self.fold.plan(self.log_rows.load(Ordering::Relaxed), idle);
        self.fold_log(plan).await
    }
}

impl SqliteStore {
    async fn fold_log(&self, fold: Fold) -> StoreResult<()> {
        if fold == Fold::Nothing {
            return Ok(());
        }
        // The writer connection held throughout: no other write may run
        // on it while its commits skip the fsync.
        let mut conn = self
            .writer
            .acquire()
            .await
            .map_err(|e| Sqlite::error("fold acquire", e))?;
        if !self.fold.no_sync {
            return self.fold_now(&mut conn, fold).await;
        }
        let sync = |value: &'static str| format!("PRAGMA synchronous = {value}");
        let err = |e| Sqlite::error("fold synchronous", e);
        sqlx::query(sqlx::AssertSqlSafe(sync("NORMAL")))
            .execute(&mut *conn)
            .await
            .map_err(err)?;
        let folded = self.fold_now(&mut conn, fold).await;
        // Every batch after this must be durable at its commit again: a
        // connection that cannot say so is closed (the pool opens a new
        // one, `FULL` from its options).
        if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sync("FULL")))
            .execute(&mut *conn)
            .await
        {
            conn.close_on_drop();
            return Err(err(e));
        }
        folded
    }

    async fn fold_now(&self, conn: &mut SqliteConnection, fold: Fold) -> StoreResult<()> {
        let pending = self.log_rows.load(Ordering::Relaxed);
        let t = std::time::Instant::now();
        match fold {
            Fold::Nothing => return Ok(()),
            Fold::All => {
                let moved = write::fold_log(conn).await?;
                // Events logged meanwhile (by a concurrent replay) were
                // folded too but stay counted: the next fold merely comes
                // a little early.
                self.log_rows.fetch_sub(pending, Ordering::Relaxed);
                tracing::debug!(
                    moved,
                    us = t.elapsed().as_micros() as u64,
                    "event log folded"
                );
            }
            Fold::Chunk(rows) => {
                let left = if self.fold.by_key {
                    let from = *self.fold_from.lock().unwrap_or_else(|p| p.into_inner());
                    let (left, next) = write::fold_keys(conn, rows, from).await?;
                    *self.fold_from.lock().unwrap_or_else(|p| p.into_inner()) = next;
                    left
                } else {
                    write::fold_oldest(conn, rows).await?
                };
                // The count is of events written; some of them may not
                // have entered the log (replays): an empty chunk clears it.
                let less = if left == 0 {
                    pending
                } else {
                    left.min(pending)
                };
                self.log_rows.fetch_sub(less, Ordering::Relaxed);
                tracing::debug!(
                    left,
                    us = t.elapsed().as_micros() as u64,
                    "event log chunk folded"
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_full_and_lock_failures_are_unavailable_constraint_errors_are_not() {
        // SQLITE_FULL, SQLITE_IOERR_FSYNC (extended), SQLITE_BUSY, SQLITE_CANTOPEN
        for code in [13, 10 | (4 << 8), 5, 14] {
            assert!(Sqlite::unavailable_code(&code.to_string()), "{code}");
        }
        // SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_ERROR, SQLITE_MISMATCH
        for code in [19 | (6 << 8), 1, 20] {
            assert!(!Sqlite::unavailable_code(&code.to_string()), "{code}");
        }
        assert!(!Sqlite::unavailable_code("not a number"));
    }

    #[test]
    fn folds_wait_for_the_start_and_idleness_but_never_past_the_backstop() {
        let p = FoldPolicy {
            start: 100,
            chunk: 10,
            backstop: 1_000,
            idle_only: true,
            by_key: false,
            no_sync: false,
        };
        assert_eq!(p.plan(99, true), Fold::Nothing);
        assert_eq!(p.plan(100, true), Fold::Chunk(10));
        assert_eq!(p.plan(999, false), Fold::Nothing);
        assert_eq!(p.plan(1_000, false), Fold::All);
        assert_eq!(p.plan(1_000, true), Fold::All);
        let busy_too = FoldPolicy {
            idle_only: false,
            ..p
        };
        assert_eq!(busy_too.plan(500, false), Fold::Chunk(10));
        let bulk = FoldPolicy { chunk: 0, ..p };
        assert_eq!(bulk.plan(100, true), Fold::All);
    }

    /// Chunked folds, in either order, move the log a part at a time:
    /// every event stays readable exactly once throughout, and repeated
    /// chunks empty the log.
    #[tokio::test]
    async fn chunked_folds_keep_every_event_readable_once_and_empty_the_log() {
        use crate::{AccountStore, RoomReads, StoredEvent};
        use confab_protocol::{RoomId, Seq, Visibility};
        for by_key in [false, true] {
            let dir = tempfile::tempdir().expect("temp dir");
            let mut store = SqliteStore::open(&dir.path().join("c.db"))
                .await
                .expect("open");
            store.fold = FoldPolicy {
                start: 1,
                chunk: 7,
                backstop: u64::MAX,
                idle_only: false,
                by_key,
                no_sync: by_key,
            };
            let alice = store.create_user("alice", "h", 1).await.expect("user");
            let rooms: Vec<WriteOp> = (1..=3)
                .map(|r| WriteOp::CreateRoom {
                    room: RoomId(r),
                    name: format!("r{r}"),
                    topic: String::new(),
                    visibility: Visibility::Public,
                    owner: alice,
                    created_at: 1,
                })
                .collect();
            store.apply_batch(&rooms).await.expect("rooms");
            let mut written = 0;
            let log_len = |store: &SqliteStore| {
                let readers = store.readers.clone();
                async move {
                    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM event_log")
                        .fetch_one(&readers)
                        .await
                        .expect("count")
                }
            };
            for round in 1..=12u64 {
                // Rounds of events in all three rooms, interleaved, then a
                // tidy: the log gains 9 and loses at most 7 each time.
                let ops: Vec<WriteOp> = (1..=3)
                    .flat_map(|seq| {
                        (1..=3).map(move |r| {
                            WriteOp::AppendEvent(StoredEvent {
                                room: RoomId(r),
                                seq: Seq((round - 1) * 3 + seq),
                                at: 1,
                                actor: alice,
                                actor_name: "alice".into(),
                                kind: 1,
                                body: vec![r as u8],
                            })
                        })
                    })
                    .collect();
                store.apply_batch(&ops).await.expect("events");
                written += 3;
                let before = log_len(&store).await;
                store.tidy_between(true).await.expect("tidy");
                let after = log_len(&store).await;
                assert!(
                    before - after == 7 || (after == 0 && before < 7) || (by_key && after < before),
                    "{by_key} {round}: {before} -> {after}"
                );
                for r in 1..=3 {
                    let h = store
                        .history(RoomId(r), Seq(0), 1_000)
                        .await
                        .expect("history");
                    let seqs: Vec<u64> = h.iter().map(|e| e.seq.0).collect();
                    let all: Vec<u64> = (1..=written).rev().collect();
                    assert_eq!(seqs, all, "{by_key} round {round} room {r}");
                }
            }
            for _ in 0..20 {
                store.tidy_between(true).await.expect("tidy");
            }
            assert_eq!(log_len(&store).await, 0, "{by_key}: the log empties");
            let h = store
                .history(RoomId(2), Seq(0), 1_000)
                .await
                .expect("history");
            assert_eq!(h.len() as u64, written, "{by_key}");
        }
    }

    /// The shared statements (`common::sql`) use `$N`; sqlx's SQLite
    /// driver must bind the N-th argument to it — by number, not by order
    /// of appearance — and bind a repeated `$N` once.
    #[tokio::test]
    async fn dollar_placeholders_bind_by_number_on_sqlite() {
        let pool = SqlitePool::connect("sqlite::memory:").await.expect("pool");
        let (second, first, again): (String, i64, String) = sqlx::query_as("SELECT $2, $1, $2")
            .bind(7i64)
            .bind("two")
            .fetch_one(&pool)
            .await
            .expect("query");
        assert_eq!((second.as_str(), first, again.as_str()), ("two", 7, "two"));
    }
}
