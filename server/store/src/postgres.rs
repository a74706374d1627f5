//! The Postgres backend of [`Store`] (production).
//!
//! **Design constraints**
//! - *Same contract as SQLite*: the suite in `tests/suite/` runs unchanged
//!   against both backends (`tests/sqlite.rs`, `tests/postgres.rs`).
//! - *An acknowledgement means durable* (DESIGN.md invariant 6): every
//!   connection sets `synchronous_commit = on` in its start-up packet, so a
//!   server or database default of `off` cannot make a commit return
//!   before its WAL is flushed. [`PgStore::open`] warns if the server runs
//!   with `fsync = off`, which no client setting can fix.
//! - *No JIT*: every connection sets `jit = off`. The store's statements
//!   are short OLTP reads and writes, but a plan whose cost estimate
//!   crosses `jit_above_cost` (the room search's sequential scan does at a
//!   few tens of thousands of rooms, the start-up tail load does) would
//!   compile machine code on every execution: 80-125 ms measured, for
//!   queries that run in 1-30 ms (`examples/explain.rs`).
//! - *A batch is one round trip* where possible: see `postgres/batch.rs`
//!   and [`PgBatchMode`]. The batch's ops go in as arrays to one SQL
//!   function, `confab_apply_batch` (`migrations/postgres/0002`), which
//!   applies the state changes in order and appends the events in bulk;
//!   Postgres allows at most 65 535 bind parameters per statement, and
//!   arrays (or COPY) are how a batch of any size fits in one.
//! - *The search matches SQLite's*: name and topic are stored folded by
//!   Rust (`search.rs`), not by Postgres' `lower()`.
//! - *No panics on anything read from the database*: the same checked
//!   conversions as SQLite (`common/`).
//! - *Shared reads*: every read, the account and session writes and the
//!   purges are `common/`'s, the same statements as SQLite's; this file
//!   holds the connection set-up, the few statements whose best Postgres
//!   form differs ([`Backend`] below) and the error classification, and
//!   `postgres/batch.rs` the write path, `apply_batch`.
//! - *Startup errors name the database without its password*
//!   ([`redact_url`]).
//!
//! **Schema** (`migrations/postgres/`): the same tables, columns and keys
//! as SQLite's versions 1 and 2, with these differences:
//! - `bigint`/`smallint`/`boolean`/`bytea` instead of SQLite's `INTEGER`
//!   and `BLOB`; user and audit ids are identity columns.
//! - `events` has no foreign key to `rooms`: a foreign key is a trigger
//!   per inserted row, which made bulk inserts 1.8x slower; the batch
//!   function checks instead, once per room per batch, that each event's
//!   room exists.
//! - Trigram (`pg_trgm`) GIN indexes on the folded name and topic, where
//!   the extension is available (`0003`): the search is an infix `LIKE`,
//!   which a B-tree cannot serve.
//! - One pool serves reads and writes: Postgres has no single-writer lock,
//!   and only the batch writer calls `apply_batch`.
//!
//! **Migrations** are embedded and run by sqlx's [`Migrator`], as for
//! SQLite (see `sqlite.rs` for why not `sqlx::migrate!`); Postgres'
//! migrator holds an advisory lock, so several nodes starting at once
//! migrate once.

mod batch;
mod cluster;
mod copy;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgQueryResult};
use sqlx::{Connection, Executor, Postgres};

use crate::common::breaker::Guarded;
use crate::common::{self, sql as shared, Arg, Backend, Columns, Dialect, Sql};
use crate::{BatchSink, Fence, StoreError, StoreResult, WriteOp};

/// How `apply_batch` sends a batch's events (see `postgres/batch.rs`).
/// All are idempotent and atomic; they differ only in speed, measured in
/// `benches/BENCHMARKS.md` ("Storage", "COPY straight into events").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PgBatchMode {
    /// Events as arrays in the batch function's one call:
    /// `INSERT … SELECT FROM unnest(…)`. One round trip per batch.
    Unnest,
    /// Events streamed with `COPY … FROM STDIN (FORMAT binary)` straight
    /// into `events`, then the batch function's call; a batch whose events
    /// are partly stored already (a replay) is rolled back and applied
    /// again through a temporary staging table, inserted from with `ON
    /// CONFLICT DO NOTHING`. Five round trips per batch.
    Copy,
    /// UNNEST for batches of fewer than [`PgBatchMode::AUTO_COPY_EVENTS`]
    /// events, COPY for bigger ones: the one round trip where a batch is
    /// small (chat rates: the server commits at most `batch_max_items`,
    /// 1 024 by default), COPY's cheaper rows where it is big (a deep
    /// backlog, `batch_max_items_deep`).
    #[default]
    Auto,
}

impl PgBatchMode {
    /// The events per batch from which [`PgBatchMode::Auto`] COPYs.
    pub const AUTO_COPY_EVENTS: usize = 2_048;

    /// Whether a batch of `events` events goes by COPY.
    pub(crate) fn copies(self, events: usize) -> bool {
        match self {
            PgBatchMode::Unnest => false,
            PgBatchMode::Copy => events > 0,
            PgBatchMode::Auto => events >= PgBatchMode::AUTO_COPY_EVENTS,
        }
    }
}

impl FromStr for PgBatchMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "unnest" => Ok(PgBatchMode::Unnest),
            "copy" => Ok(PgBatchMode::Copy),
            "auto" => Ok(PgBatchMode::Auto),
            _ => Err(format!("{s:?} is not a batch mode (unnest, copy or auto)")),
        }
    }
}

impl fmt::Display for PgBatchMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PgBatchMode::Unnest => "unnest",
            PgBatchMode::Copy => "copy",
            PgBatchMode::Auto => "auto",
        })
    }
}

/// Settings of [`PgStore::open`].
#[derive(Debug, Clone)]
pub struct PgStoreOptions {
    pub batch_mode: PgBatchMode,
    /// Connections in the pool (reads run concurrently; the batch writer
    /// uses one per commit it has landing: one per lane, and one per
    /// stripe while its backlog is deep — the server sizes it so).
    pub max_connections: u32,
    /// How long to wait for the database at start-up.
    pub connect_timeout: Duration,
    /// How long an operation waits for a pooled connection once running.
    /// Past it the operation fails as [`StoreError::Unavailable`], and the
    /// batch writer spools the batch instead of holding every
    /// acknowledgement back (a stopped database refuses connections, which
    /// the pool retries until this timeout).
    pub acquire_timeout: Duration,
}

impl Default for PgStoreOptions {
    fn default() -> Self {
        PgStoreOptions {
            batch_mode: PgBatchMode::default(),
            max_connections: 8,
            connect_timeout: Duration::from_secs(10),
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// The Postgres implementation of [`Store`]. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct PgStore {
    /// Behind a breaker: while Postgres is unreachable, operations fail
    /// at once instead of each waiting out the acquire timeout
    /// (`common/breaker.rs`).
    pool: Guarded<PgPool>,
    batch_mode: PgBatchMode,
}

/// The embedded migrations, in version order.
fn migrator() -> Migrator {
    common::migrator(&[
        (
            1,
            "schema",
            include_str!("../migrations/postgres/0001_schema.sql"),
        ),
        (
            2,
            "apply batch",
            include_str!("../migrations/postgres/0002_apply_batch.sql"),
        ),
        (
            3,
            "room search trigram indexes",
            include_str!("../migrations/postgres/0003_room_search_trgm.sql"),
        ),
        (
            4,
            "read marks",
            include_str!("../migrations/postgres/0004_read_marks.sql"),
        ),
        (
            5,
            "room read markers",
            include_str!("../migrations/postgres/0005_room_read_markers.sql"),
        ),
        (
            6,
            "direct rooms",
            include_str!("../migrations/postgres/0006_direct_rooms.sql"),
        ),
        (
            8,
            "profiles",
            include_str!("../migrations/postgres/0008_profiles.sql"),
        ),
        (
            9,
            "files",
            include_str!("../migrations/postgres/0009_files.sql"),
        ),
        (
            10,
            "avatars",
            include_str!("../migrations/postgres/0010_avatars.sql"),
        ),
        (
            11,
            "cluster leases",
            include_str!("../migrations/postgres/0011_cluster.sql"),
        ),
        (
            12,
            "cluster id blocks",
            include_str!("../migrations/postgres/0012_cluster_ids.sql"),
        ),
        (
            13,
            "cluster direct pairs",
            include_str!("../migrations/postgres/0013_cluster_direct_pairs.sql"),
        ),
        (
            14,
            "copied events",
            include_str!("../migrations/postgres/0014_copied_events.sql"),
        ),
    ])
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:
    /// port/database?…`), brings its schema up to date and opens the pool.
    /// Errors name the URL without its password.
    pub async fn open(url: &str, options: PgStoreOptions) -> StoreResult<PgStore> {
        let shown = redact_url(url);
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| Postgres::error(&format!("invalid database URL {shown}"), e))?
            .application_name("confabd")
            .options([("synchronous_commit", "on"), ("jit", "off")]);

        // One connection first, for a clear error if the database is not
        // there (the pool would retry until its timeout and report only
        // that it timed out).
        let mut conn = tokio::time::timeout(
            options.connect_timeout,
            PgConnection::connect_with(&connect),
        )
        .await
        .map_err(|_| {
            StoreError::database(format!(
                "cannot connect to Postgres at {shown}: no answer within {:?}",
                options.connect_timeout
            ))
        })?
        .map_err(|e| cannot_connect(&shown, e))?;

        let fsync: String = sqlx::query_scalar("SHOW fsync")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| Postgres::error(&format!("checking {shown}"), e))?;
        if fsync != "on" {
            tracing::warn!(
                database = %shown,
                "Postgres runs with fsync = {fsync}: a crash of the database host can lose \
                 acknowledged messages"
            );
        }
        let _ = conn.close().await;

        let copy = options.batch_mode != PgBatchMode::Unnest;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if copy {
                        conn.execute(batch::STAGING_TABLE_DDL).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(connect)
            .await
            .map_err(|e| cannot_connect(&shown, e))?;
        migrator()
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database {
                message: format!("migrating {shown}: {e}"),
                source: Some(Box::new(e)),
            })?;

        tracing::info!(database = %shown, batch_mode = %options.batch_mode, "postgres store open");
        Ok(PgStore {
            pool: Guarded::new(pool),
            batch_mode: options.batch_mode,
        })
    }

    pub fn batch_mode(&self) -> PgBatchMode {
        self.batch_mode
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.inner.close().await;
    }
}

/// A Postgres connection URL, which may hold a password: `Debug` and
/// `Display` show it redacted ([`redact_url`]), so a configuration can be
/// logged whole.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// `Some` if `url` names a Postgres database (`postgres://` or
    /// `postgresql://`).
    pub fn postgres(url: &str) -> Option<DatabaseUrl> {
        let scheme = url.split_once("://")?.0;
        (scheme.eq_ignore_ascii_case("postgres") || scheme.eq_ignore_ascii_case("postgresql"))
            .then(|| DatabaseUrl(url.to_owned()))
    }

    /// The URL itself, password included.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({:?})", redact_url(&self.0))
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

/// `url` with its database replaced by `name`, its query kept: the URL
/// of another database on the same server (the benches' and tools'
/// throwaway databases).
pub fn url_with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
    match query {
        "" => format!("{server}/{name}"),
        q => format!("{server}/{name}?{q}"),
    }
}

/// `url` with its password (in the user-info part or a `password=` query
/// parameter) replaced by `***`, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let start = scheme_end + 3;
        let authority_end = out[start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| start + i);
        if let Some(at) = out[start..authority_end].rfind('@') {
            let userinfo = &out[start..start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(start + colon + 1..start + at, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q + 1);
        let redacted: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{base}{}", redacted.join("&"));
    }
    out
}

/// Start-up failed to connect: the message names the database without
/// its password.
fn cannot_connect(shown: &str, e: sqlx::Error) -> StoreError {
    StoreError::Database {
        message: format!("cannot connect to Postgres at {shown}: {e}"),
        source: Some(Box::new(e)),
    }
}

/// The statements of the main read paths, public (but hidden) so that
/// `examples/explain.rs` shows the plans of exactly what the store runs.
/// All but the start-up tail are shared with SQLite (`common/sql.rs`).
/// The newest `$1` events of each room of `rooms r` that `$where`
/// (empty, or a `WHERE` clause on `r`) keeps (see `sql::RECENT_EVENTS`).
macro_rules! recent_events {
    ($where:literal) => {
        concat!(
            "SELECT e.room_id, e.seq, e.at, e.actor_id, e.actor_name, e.kind, e.body \
     FROM rooms r CROSS JOIN LATERAL ( \
         SELECT x.room_id, x.seq, x.at, x.actor_id, x.actor_name, x.kind, x.body \
         FROM events x WHERE x.room_id = r.id \
         ORDER BY x.seq DESC LIMIT $1) e ",
            $where,
            "ORDER BY r.id, e.seq"
        )
    };
}

#[doc(hidden)]
pub mod sql {
    use crate::common::sql::EVENTS_TABLE;

    /// The statements Postgres runs for these reads (`common/sql.rs`).
    pub const HISTORY: &str = EVENTS_TABLE.history;
    pub const LIST_ROOMS: &str = EVENTS_TABLE.list_rooms;
    pub const ROOMS_OF_USER: &str = EVENTS_TABLE.rooms_of_user;

    /// `$1` events per room. Per room, a backward scan of the primary key
    /// stopping after `$1` rows: O(rooms × per_room), whatever the
    /// table's size. Ordered by `r.id` (not `e.room_id`) so that the
    /// planner sees the rooms' index order and sorts each room's few rows
    /// (incremental sort) instead of the whole result.
    pub const RECENT_EVENTS: &str = recent_events!("");
    /// [`RECENT_EVENTS`] of the rooms in partitions `$3` (a comma-separated
    /// list) of `$2` (cluster mode: a partition's rooms on takeover).
    pub const RECENT_EVENTS_OF_PARTITIONS: &str =
        recent_events!("WHERE r.id % $2 = ANY(string_to_array($3, ',')::bigint[]) ");
}

impl Dialect for Postgres {
    /// SQLSTATEs of a database that is there but cannot take the
    /// operation now.
    fn unavailable_code(code: &str) -> bool {
        code.starts_with("08") // connection exception
            || code.starts_with("53") // insufficient resources: disk full, out of memory, too many connections
            || code == "57P01" // admin_shutdown
            || code == "57P02" // crash_shutdown
            || code == "57P03" // cannot_connect_now (starting up, recovering)
            || code == "25006" // read_only_sql_transaction (a standby after a failover)
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }
}

impl Backend for PgStore {
    type Pool = Guarded<PgPool>;

    const RECENT_EVENTS: &'static str = sql::RECENT_EVENTS;
    /// `NOT read`, the predicate of the `notifications_unread` partial index.
    const UNREAD_NOTIFICATIONS: &'static str = shared::notifications_page!(
        " AND NOT read AND id > coalesce((SELECT k.up_to FROM notification_marks k WHERE k.user_id = $1), 0)"
    );
    const UNREAD_COUNT: &'static str = shared::unread_count!("NOT read");
    const PING: &'static str = "SELECT 1";

    /// One pool serves reads and writes (the default `writer`): Postgres
    /// has no single-writer lock, and only the batch writer calls
    /// `apply_batch`.
    fn readers(&self) -> &Guarded<PgPool> {
        &self.pool
    }

    /// One statement: the main query sees the snapshot from before the
    /// upsert, so it counts against the mark the upsert returns (which
    /// never moves back).
    async fn mark_read_then_count(&self, user: i64, up_to: i64) -> StoreResult<i64> {
        const MARK_READ: &str = "WITH mark AS ( \
                 INSERT INTO notification_marks (user_id, up_to) VALUES ($1, $2) \
                 ON CONFLICT (user_id) DO UPDATE \
                     SET up_to = greatest(notification_marks.up_to, excluded.up_to) \
                 RETURNING up_to) \
             SELECT count(*) AS n FROM notifications \
             WHERE user_id = $1 AND NOT read AND id > (SELECT up_to FROM mark)";
        let args = [Arg::Int(user), Arg::Int(up_to)];
        match self.pool.row("mark_read", MARK_READ, &args).await? {
            Some(row) => row.int("n"),
            None => Ok(0),
        }
    }

    /// One statement, one transaction: the floor remembers the highest id
    /// before the delete may remove it (see the schema).
    async fn purge_notifications_before(&self, cutoff: i64) -> StoreResult<u64> {
        const PURGE: &str = "WITH floor AS ( \
                 UPDATE notification_id_floor \
                 SET max_id = greatest(max_id, coalesce((SELECT max(id) FROM notifications), 0)) \
                 WHERE one = 1), \
             gone AS (DELETE FROM notifications WHERE at < $1 RETURNING 1) \
             SELECT count(*) AS n FROM gone";
        let args = [Arg::Int(cutoff)];
        match self.pool.row("purge_notifications", PURGE, &args).await? {
            Some(row) => row.u64("n"),
            None => Ok(0),
        }
    }
}

#[async_trait::async_trait]
impl BatchSink for PgStore {
    async fn apply_batch(&self, ops: &[WriteOp]) -> StoreResult<()> {
        let apply = batch::apply(&self.pool.inner, self.batch_mode, ops, None);
        self.pool.breaker.call(apply).await
    }

    async fn apply_fenced_batch(&self, ops: &[WriteOp], fence: &Fence) -> StoreResult<()> {
        let apply = batch::apply(&self.pool.inner, self.batch_mode, ops, Some(fence));
        self.pool.breaker.call(apply).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_and_resource_failures_are_unavailable_statement_errors_are_not() {
        for code in [
            "08006", "08001", "57P01", "57P03", "53100", "53300", "25006",
        ] {
            assert!(Postgres::unavailable_code(code), "{code}");
        }
        // unique violation, foreign key, syntax, deadlock
        for code in ["23505", "23503", "42601", "40P01"] {
            assert!(!Postgres::unavailable_code(code), "{code}");
        }
        assert!(Postgres::error("x", sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(!Postgres::error("x", sqlx::Error::RowNotFound).is_unavailable());
    }

    #[test]
    fn url_with_database_replaces_only_the_database() {
        assert_eq!(
            url_with_database("postgres://u:p@h:5432/test", "other"),
            "postgres://u:p@h:5432/other"
        );
        assert_eq!(
            url_with_database("postgres://u@h/test?sslmode=disable", "other"),
            "postgres://u@h/other?sslmode=disable"
        );
    }

    #[test]
    fn redact_url_hides_passwords_only() {
        assert_eq!(
            redact_url("postgres://confab:s3cr%40t@db.example:5432/confab"),
            "postgres://confab:***@db.example:5432/confab"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/test"
        );
        assert_eq!(
            redact_url("postgresql://u:p@h/db?sslmode=disable&password=x&user=u"),
            "postgresql://u:***@h/db?sslmode=disable&password=***&user=u"
        );
        // An '@' in the path or query is not user info
        assert_eq!(
            redact_url("postgres://h/db?application_name=a@b"),
            "postgres://h/db?application_name=a@b"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn database_url_accepts_postgres_schemes_and_hides_the_password() {
        let url = DatabaseUrl::postgres("postgres://u:pw@h/db").expect("postgres URL");
        assert_eq!(url.expose(), "postgres://u:pw@h/db");
        assert_eq!(url.to_string(), "postgres://u:***@h/db");
        assert!(!format!("{url:?}").contains("pw"));
        assert!(DatabaseUrl::postgres("PostgreSQL://h/db").is_some());
        assert!(DatabaseUrl::postgres("sqlite://confab.db").is_none());
        assert!(DatabaseUrl::postgres("postgres").is_none());
    }

    #[test]
    fn batch_mode_parses_case_insensitively() {
        assert_eq!("COPY".parse(), Ok(PgBatchMode::Copy));
        assert_eq!("unnest".parse(), Ok(PgBatchMode::Unnest));
        assert_eq!("Auto".parse(), Ok(PgBatchMode::Auto));
        assert!("bulk".parse::<PgBatchMode>().is_err());
        assert_eq!(PgBatchMode::Copy.to_string(), "copy");
        assert_eq!(PgBatchMode::Auto.to_string(), "auto");
    }

    #[test]
    fn auto_copies_only_big_batches() {
        let big = PgBatchMode::AUTO_COPY_EVENTS;
        assert!(!PgBatchMode::Auto.copies(big - 1));
        assert!(PgBatchMode::Auto.copies(big));
        assert!(PgBatchMode::Copy.copies(1));
        assert!(!PgBatchMode::Copy.copies(0), "no events: nothing to COPY");
        assert!(!PgBatchMode::Unnest.copies(big * 10));
    }
}
