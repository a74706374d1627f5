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
//!   until `FULL` is back (`SqliteStore::fold_step`).
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
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
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
    /// Events written to the event log and not folded yet
    /// (`sqlite/write.rs`, "The event log").
    log_rows: Arc<AtomicU64>,
    /// Folded events still in the log (lazy deletion).
    log_folded: Arc<AtomicU64>,
    /// When and how much a tidy folds.
    fold: FoldPolicy,
    /// The room the next key-order chunk starts at.
    fold_from: Arc<AtomicI64>,
    /// What a chunk has been costing, per event, in nanoseconds (an
    /// average of the last chunks'; sizes a chunk to a time budget).
    fold_ns_per_row: Arc<AtomicU64>,
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
    /// Commit folds without an fsync of their own (the next batch's
    /// commit syncs the WAL up to and past them).
    pub no_sync: bool,
    /// Folded rows the log keeps before a tidy deletes that many of the
    /// oldest (0: never between batches; start-up empties the log).
    pub truncate: u64,
    /// Size a chunk to the time before the next batch is due plus this
    /// many microseconds (when the batch writer says when that is);
    /// `None`: always `chunk` events.
    pub fit_slack_us: Option<u64>,
}

/// What one tidy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fold {
    Nothing,
    /// Copy this many unfolded events (`write::fold_keys`).
    Chunk(u64),
    /// Delete the folded among this many oldest log rows
    /// (`write::truncate_folded`).
    Truncate(u64),
    /// Fold and empty the whole log (`write::fold_log`).
    All,
}

/// The fewest events a chunk sized to a time budget copies; a budget too
/// small for them folds nothing (unless the log is far behind).
const FIT_MIN_ROWS: u64 = 16;

/// A chunk's fixed cost (its transaction and statements' round trips to
/// the connection's thread), assumed when sizing one to a budget.
const FIT_FIXED_NS: u64 = 150_000;

/// What a chunk is assumed to cost per event before one has been timed.
const FIT_FIRST_NS_PER_ROW: u64 = 8_000;

impl FoldPolicy {
    /// The built-in policy (chunks of up to [`write::FOLD_CHUNK`] in key
    /// order once the log holds [`write::FOLD_ROWS`] unfolded events, each
    /// sized to the time before the next batch is due plus
    /// [`write::FIT_SLACK_US`], no fsync of their own, the whole log past
    /// [`write::FOLD_BACKSTOP`], folded rows deleted
    /// [`write::TRUNCATE_ROWS`] at a time), or as changed by
    /// the experiment switch `CONFAB_SQLITE_FOLD` (`start=N,chunk=N,
    /// backstop=N,idle=0|1,sync=0|1,trunc=N,fit=SLACK_US|off`;
    /// benches/BENCHMARKS.md, "Folding in chunks or when idle, measured"
    /// and "Lazy deletion from the event log").
    fn from_env() -> FoldPolicy {
        let mut p = FoldPolicy {
            start: write::FOLD_ROWS,
            chunk: write::FOLD_CHUNK,
            backstop: write::FOLD_BACKSTOP,
            idle_only: false,
            no_sync: true,
            truncate: write::TRUNCATE_ROWS,
            fit_slack_us: Some(write::FIT_SLACK_US),
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
                    "sync" => p.no_sync = n == 0,
                    "trunc" => p.truncate = n,
                    "fit" => p.fit_slack_us = v.parse().ok(),
                    _ => {}
                }
            }
            tracing::info!(?p, "fold policy");
        }
        p
    }

    /// What a tidy between batches does with `pending` unfolded events
    /// and `folded` folded ones in the log, `idle` when no request waits
    /// for the writer, `budget` the time before the next batch is due (if
    /// known), a chunk costing about `ns_per_row` per event.
    pub(crate) fn plan(
        &self,
        pending: u64,
        folded: u64,
        idle: bool,
        budget: Option<Duration>,
        ns_per_row: u64,
    ) -> Fold {
        if pending >= self.backstop {
            return Fold::All;
        }
        if self.truncate > 0 && folded >= self.truncate {
            return Fold::Truncate(self.truncate);
        }
        if pending < self.start || (self.idle_only && !idle) {
            return Fold::Nothing;
        }
        if self.chunk == 0 {
            return Fold::All;
        }
        let (Some(slack), Some(budget)) = (self.fit_slack_us, budget) else {
            return Fold::Chunk(self.chunk);
        };
        // Far behind (four times the start): a whole chunk whatever the
        // budget, so the log never drifts to the backstop's bulk fold.
        if pending >= self.start.saturating_mul(4) {
            return Fold::Chunk(self.chunk);
        }
        let allowed = u64::try_from(budget.as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_add(slack.saturating_mul(1_000))
            .saturating_sub(FIT_FIXED_NS);
        let rows = (allowed / ns_per_row.max(1)).min(self.chunk);
        if rows < FIT_MIN_ROWS {
            Fold::Nothing
        } else {
            Fold::Chunk(rows)
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
        // 11-13 are Postgres' own (cluster).
        (
            14,
            "event log folded",
            include_str!("../migrations/sqlite/0014_event_log_folded.sql"),
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
            log_folded: Arc::default(),
            fold: FoldPolicy::from_env(),
            fold_from: Arc::default(),
            fold_ns_per_row: Arc::new(AtomicU64::new(FIT_FIRST_NS_PER_ROW)),
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

/// The newest `$1` events of each room in `$table` above `$floor` (an
/// expression on room `r`; see `RECENT_EVENTS`).
macro_rules! recent_in {
    ($table:literal, $floor:literal) => {
        concat!(
            "SELECT e.room_id, e.seq, e.at, e.actor_id, e.actor_name, e.kind, e.body \
             FROM rooms r CROSS JOIN ",
            $table,
            " e ON e.room_id = r.id \
             WHERE e.seq > ",
            $floor,
            " AND e.seq >= coalesce( \
                 (SELECT x.seq FROM ",
            $table,
            " x WHERE x.room_id = r.id AND x.seq > ",
            $floor,
            " ORDER BY x.seq DESC LIMIT 1 OFFSET $1 - 1), 0)"
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
        recent_in!("events", "0"),
        " UNION ALL ",
        // The log's rows above the room's fold bound (the rest are copies).
        recent_in!(
            "event_log",
            "coalesce((SELECT f.seq FROM event_log_folded f WHERE f.room_id = r.id), 0)"
        ),
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
            return self.fold_step(Fold::All).await;
        }
        self.tidy_between(true, None).await
    }

    async fn tidy_between(&self, idle: bool, budget: Option<Duration>) -> StoreResult<()> {
        let plan = self.fold.plan(
            self.log_rows.load(Ordering::Relaxed),
            self.log_folded.load(Ordering::Relaxed),
            idle,
            budget,
            self.fold_ns_per_row.load(Ordering::Relaxed),
        );
        self.fold_step(plan).await
    }
}

impl SqliteStore {
    /// One tidy's fold step (`fold`), on the writer connection.
    async fn fold_step(&self, fold: Fold) -> StoreResult<()> {
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
                self.log_folded.store(0, Ordering::Relaxed);
                tracing::debug!(
                    moved,
                    us = t.elapsed().as_micros() as u64,
                    "event log folded"
                );
            }
            Fold::Truncate(rows) => {
                let deleted = write::truncate_folded(conn, rows).await?;
                // Fewer than asked (unfolded rows among the oldest, or the
                // count off after a replay): the count is what is left
                // when nothing was, so it cannot stick above the mark.
                let left = if deleted == 0 {
                    0
                } else {
                    self.log_folded
                        .load(Ordering::Relaxed)
                        .saturating_sub(deleted)
                };
                self.log_folded.store(left, Ordering::Relaxed);
                tracing::debug!(
                    deleted,
                    us = t.elapsed().as_micros() as u64,
                    "event log truncated"
                );
            }
            Fold::Chunk(rows) => {
                let from = self.fold_from.load(Ordering::Relaxed);
                let (mut copied, mut next) = write::fold_keys(conn, rows, from).await?;
                if copied == 0 && from != 0 {
                    // Past the last room: round to the first at once.
                    (copied, next) = write::fold_keys(conn, rows, 0).await?;
                }
                self.fold_from.store(next, Ordering::Relaxed);
                // The count is of events written; some of them may not
                // have entered the log (replays): an empty chunk clears it.
                let less = if copied == 0 {
                    pending
                } else {
                    copied.min(pending)
                };
                self.log_rows.fetch_sub(less, Ordering::Relaxed);
                self.log_folded.fetch_add(copied, Ordering::Relaxed);
                let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
                if copied >= FIT_MIN_ROWS {
                    // A moving average (1/4 weight to the newest).
                    let this = ns.saturating_sub(FIT_FIXED_NS) / copied;
                    let old = self.fold_ns_per_row.load(Ordering::Relaxed);
                    self.fold_ns_per_row
                        .store((old * 3 + this) / 4, Ordering::Relaxed);
                }
                tracing::debug!(copied, us = ns / 1_000, "event log chunk folded");
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
            no_sync: false,
            truncate: 50,
            fit_slack_us: None,
        };
        let plan = |p: &FoldPolicy, pending, folded, idle| p.plan(pending, folded, idle, None, 1);
        assert_eq!(plan(&p, 99, 0, true), Fold::Nothing);
        assert_eq!(plan(&p, 100, 0, true), Fold::Chunk(10));
        assert_eq!(plan(&p, 999, 0, false), Fold::Nothing);
        assert_eq!(plan(&p, 1_000, 0, false), Fold::All);
        assert_eq!(plan(&p, 1_000, 60, true), Fold::All);
        // Folded rows past the mark go first, busy or not.
        assert_eq!(plan(&p, 100, 50, true), Fold::Truncate(50));
        assert_eq!(plan(&p, 0, 50, false), Fold::Truncate(50));
        let never = FoldPolicy { truncate: 0, ..p };
        assert_eq!(plan(&never, 100, 5_000, true), Fold::Chunk(10));
        let busy_too = FoldPolicy {
            idle_only: false,
            ..p
        };
        assert_eq!(plan(&busy_too, 500, 0, false), Fold::Chunk(10));
        let bulk = FoldPolicy { chunk: 0, ..p };
        assert_eq!(plan(&bulk, 100, 0, true), Fold::All);
    }

    #[test]
    fn a_fitted_chunk_takes_what_the_budget_pays_for() {
        let p = FoldPolicy {
            start: 100,
            chunk: 256,
            backstop: 10_000,
            idle_only: false,
            no_sync: true,
            truncate: 0,
            fit_slack_us: Some(500),
        };
        let ms = Duration::from_millis;
        // 1 ms + 0.5 ms slack - the fixed cost, at 10 µs an event.
        let rows = (1_500_000 - FIT_FIXED_NS) / 10_000;
        assert_eq!(
            p.plan(100, 0, false, Some(ms(1)), 10_000),
            Fold::Chunk(rows)
        );
        // Capped at a chunk; nothing when the budget pays for too few.
        assert_eq!(
            p.plan(100, 0, false, Some(ms(100)), 10_000),
            Fold::Chunk(256)
        );
        assert_eq!(p.plan(100, 0, false, Some(ms(0)), 50_000), Fold::Nothing);
        // Far behind: a whole chunk whatever the budget; no budget known:
        // a whole chunk too.
        assert_eq!(p.plan(400, 0, false, Some(ms(0)), 50_000), Fold::Chunk(256));
        assert_eq!(p.plan(100, 0, false, None, 50_000), Fold::Chunk(256));
        let fixed = FoldPolicy {
            fit_slack_us: None,
            ..p
        };
        assert_eq!(
            fixed.plan(100, 0, false, Some(ms(0)), 50_000),
            Fold::Chunk(256)
        );
    }

    /// Three rooms, `per_room` events each in `round` (seqs continuing the
    /// earlier rounds), interleaved as they would arrive.
    fn round_of_events(alice: confab_protocol::UserId, round: u64, per_room: u64) -> Vec<WriteOp> {
        use crate::StoredEvent;
        use confab_protocol::{RoomId, Seq};
        (1..=per_room)
            .flat_map(|seq| {
                (1..=3).map(move |r| {
                    WriteOp::AppendEvent(StoredEvent {
                        room: RoomId(r),
                        seq: Seq((round - 1) * per_room + seq),
                        at: 1,
                        actor: alice,
                        actor_name: "alice".into(),
                        kind: 1,
                        body: vec![r as u8],
                    })
                })
            })
            .collect()
    }

    /// A store at `path` with three rooms and the user who made them.
    async fn three_rooms(path: &Path) -> (SqliteStore, confab_protocol::UserId) {
        use crate::AccountStore;
        use confab_protocol::{RoomId, Visibility};
        let store = SqliteStore::open(path).await.expect("open");
        let alice = match store.user_by_name("alice").await.expect("user") {
            Some(u) => u.id,
            None => store.create_user("alice", "h", 1).await.expect("user"),
        };
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
        (store, alice)
    }

    /// Every room's history is exactly seqs `written..=1`, once each; so
    /// are the start-up tails, and the unread counts see each event once.
    async fn assert_every_event_once(store: &SqliteStore, written: u64, what: &str) {
        use crate::RoomReads;
        use confab_protocol::{RoomId, Seq};
        let all: Vec<u64> = (1..=written).rev().collect();
        for r in 1..=3 {
            let h = store
                .history(RoomId(r), Seq(u64::MAX >> 2), 1_000)
                .await
                .expect("history");
            let seqs: Vec<u64> = h.iter().map(|e| e.seq.0).collect();
            assert_eq!(seqs, all, "{what}: room {r}");
        }
        let tails = store.load_recent_events(1_000).await.expect("tails");
        for r in 1..=3 {
            let seqs: Vec<u64> = tails
                .iter()
                .filter(|e| e.room == RoomId(r))
                .map(|e| e.seq.0)
                .collect();
            let ascending: Vec<u64> = (1..=written).collect();
            assert_eq!(seqs, ascending, "{what}: tail of room {r}");
        }
        let last = store.load_rooms().await.expect("rooms");
        assert!(
            last.iter().all(|r| r.last_seq.0 == written),
            "{what}: last seqs"
        );
    }

    async fn count(store: &SqliteStore, sql: &'static str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&store.readers)
            .await
            .expect("count")
    }

    /// Chunked folds copy the log a part at a time and leave what they
    /// copied in it (lazy deletion): every event stays readable exactly
    /// once throughout, truncation removes only folded rows, and a replay
    /// of events already folded (still in the log, or deleted from it)
    /// stores nothing twice.
    #[tokio::test]
    async fn chunked_folds_keep_every_event_readable_once_and_truncate_only_folded_rows() {
        for no_sync in [false, true] {
            let dir = tempfile::tempdir().expect("temp dir");
            let (mut store, alice) = three_rooms(&dir.path().join("c.db")).await;
            store.fold = FoldPolicy {
                start: 1,
                chunk: 7,
                backstop: u64::MAX,
                idle_only: false,
                no_sync,
                truncate: 20,
                fit_slack_us: None,
            };
            let unfolded = "SELECT count(*) FROM event_log l WHERE l.seq > coalesce( \
                 (SELECT f.seq FROM event_log_folded f WHERE f.room_id = l.room_id), 0)";
            let mut written = 0;
            let (mut truncated, mut folded) = (false, false);
            for round in 1..=12u64 {
                // Rounds of events in all three rooms, then two tidies:
                // each folds at most 7 or deletes folded rows only.
                let ops = round_of_events(alice, round, 3);
                store.apply_batch(&ops).await.expect("events");
                written += 3;
                for _ in 0..2 {
                    let (before, log_before) = (
                        count(&store, unfolded).await,
                        count(&store, "SELECT count(*) FROM event_log").await,
                    );
                    store.tidy_between(true, None).await.expect("tidy");
                    let (after, log_after) = (
                        count(&store, unfolded).await,
                        count(&store, "SELECT count(*) FROM event_log").await,
                    );
                    let what =
                        format!("{no_sync} {round}: {before}/{log_before} -> {after}/{log_after}");
                    if log_after < log_before {
                        truncated = true;
                        assert_eq!(after, before, "{what}: a truncation folds nothing");
                    } else {
                        folded |= after < before;
                        assert_eq!(log_after, log_before, "{what}: a chunk deletes nothing");
                        assert!(after <= before && before - after <= 7, "{what}");
                    }
                }
                assert_every_event_once(&store, written, &format!("{no_sync} round {round}")).await;
                // A replay of the whole round: nothing stored twice.
                store.apply_batch(&ops).await.expect("replay");
                assert_every_event_once(&store, written, "after a replay").await;
            }
            assert!(folded, "{no_sync}: chunks folded");
            assert!(truncated, "{no_sync}: folded rows were deleted");
            for _ in 0..20 {
                store.tidy_between(true, None).await.expect("tidy");
            }
            assert_eq!(count(&store, unfolded).await, 0, "{no_sync}: all folded");
            assert!(
                count(&store, "SELECT count(*) FROM event_log").await < 20,
                "{no_sync}: fewer folded rows left than a truncation takes"
            );
            assert_every_event_once(&store, written, "at the end").await;
            store.tidy(true).await.expect("fold all");
            assert_eq!(count(&store, "SELECT count(*) FROM event_log").await, 0);
            assert_eq!(
                count(&store, "SELECT count(*) FROM event_log_folded").await,
                0
            );
            assert_every_event_once(&store, written, "after the bulk fold").await;
        }
    }

    /// The database as a crash would leave it: its files copied while the
    /// store is open between two of its transactions.
    fn crash_copy(from: &Path, to: &Path) {
        for ext in ["", "-wal"] {
            let src = format!("{}{ext}", from.display());
            if Path::new(&src).exists() {
                std::fs::copy(&src, format!("{}{ext}", to.display())).expect("copy");
            }
        }
    }

    /// A crash after a fold chunk committed (without its fsync) and before
    /// its rows were deleted from the log, or one that rolled the chunk
    /// back (the state before it): either way the reopened store reads
    /// every event exactly once, its log folded and emptied at start-up,
    /// and takes a replay of the last batch without storing it twice.
    #[tokio::test]
    async fn a_crash_between_fold_and_truncate_loses_and_repeats_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("live.db");
        let (mut store, alice) = three_rooms(&path).await;
        store.fold = FoldPolicy {
            start: 1,
            chunk: 5,
            backstop: u64::MAX,
            idle_only: false,
            no_sync: true,
            truncate: 0,
            fit_slack_us: None,
        };
        let mut written = 0;
        let mut last = Vec::new();
        for round in 1..=4 {
            last = round_of_events(alice, round, 4);
            store.apply_batch(&last).await.expect("events");
            written += 4;
            store.tidy_between(true, None).await.expect("tidy");
        }
        let before_fold = dir.path().join("before.db");
        crash_copy(&path, &before_fold);
        store.tidy_between(true, None).await.expect("tidy");
        let after_fold = dir.path().join("after.db");
        crash_copy(&path, &after_fold);
        // Folded rows are in the log and below their bounds: the state a
        // crash before the truncation leaves.
        let folded = count(&store, "SELECT count(*) FROM event_log_folded").await;
        assert!(folded > 0, "bounds raised");
        assert_eq!(
            count(&store, "SELECT count(*) FROM event_log").await,
            (3 * written) as i64,
            "nothing deleted from the log yet"
        );
        assert_every_event_once(&store, written, "live").await;
        store.close().await;
        for copy in [before_fold, after_fold] {
            let (reopened, _) = three_rooms(&copy).await;
            let what = copy.display().to_string();
            assert_every_event_once(&reopened, written, &what).await;
            assert_eq!(count(&reopened, "SELECT count(*) FROM event_log").await, 0);
            reopened.apply_batch(&last).await.expect("replay");
            assert_every_event_once(&reopened, written, &what).await;
            reopened.close().await;
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
