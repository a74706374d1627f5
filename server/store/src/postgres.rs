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
//!   conversions as SQLite (`postgres/convert.rs`).
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
mod convert;
mod copy;
mod governance;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use confab_protocol::{Millis, RoomId, RoomInfo, Seq, UserId};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor, SqlSafeStr};

use crate::search::like_contains_pattern;
use crate::{
    AuditRecord, BanRecord, InviteRecord, JoinRequestRecord, MemberRecord, NotificationRecord,
    RoomLogEntry, RoomRecord, Store, StoreError, StoreResult, StoredEvent, UserRecord, WriteOp,
};
use convert::{
    conflict_or_db, db_err, event_from_row, from_db, get, get_opt_u64, get_u64, out_of_range,
    role_from_db, room_info_from_row, to_db, to_db_opt, user_from_row, visibility_from_db,
};

/// How `apply_batch` sends a batch's events (see `postgres/batch.rs`).
/// Both are idempotent and atomic; they differ only in speed, measured in
/// `benches/BENCHMARKS.md` ("Storage").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PgBatchMode {
    /// Events as arrays in the batch function's one call:
    /// `INSERT … SELECT FROM unnest(…)`. One round trip per batch.
    #[default]
    Unnest,
    /// Events streamed with `COPY … FROM STDIN (FORMAT binary)` into a
    /// temporary staging table, then inserted by the batch function with
    /// `ON CONFLICT DO NOTHING`. Five round trips per batch.
    Copy,
}

impl FromStr for PgBatchMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "unnest" => Ok(PgBatchMode::Unnest),
            "copy" => Ok(PgBatchMode::Copy),
            _ => Err(format!("{s:?} is not a batch mode (unnest or copy)")),
        }
    }
}

impl fmt::Display for PgBatchMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PgBatchMode::Unnest => "unnest",
            PgBatchMode::Copy => "copy",
        })
    }
}

/// Settings of [`PgStore::open`].
#[derive(Debug, Clone)]
pub struct PgStoreOptions {
    pub batch_mode: PgBatchMode,
    /// Connections in the pool (reads run concurrently; the batch writer
    /// uses one at a time).
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
    pool: PgPool,
    batch_mode: PgBatchMode,
}

/// The embedded migrations, in version order.
fn migrator() -> Migrator {
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            "schema".into(),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0001_schema.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            "apply batch".into(),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0002_apply_batch.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            3,
            "room search trigram indexes".into(),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0003_room_search_trgm.sql").into_sql_str(),
            false,
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
            .map_err(|e| StoreError::Database(format!("invalid database URL {shown}: {e}")))?
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
            StoreError::Database(format!(
                "cannot connect to Postgres at {shown}: no answer within {:?}",
                options.connect_timeout
            ))
        })?
        .map_err(|e| StoreError::Database(format!("cannot connect to Postgres at {shown}: {e}")))?;

        let fsync: String = sqlx::query_scalar("SHOW fsync")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| db_err(&format!("checking {shown}"), e))?;
        if fsync != "on" {
            tracing::warn!(
                database = %shown,
                "Postgres runs with fsync = {fsync}: a crash of the database host can lose \
                 acknowledged messages"
            );
        }
        let _ = conn.close().await;

        let copy = options.batch_mode == PgBatchMode::Copy;
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
            .map_err(|e| {
                StoreError::Database(format!("cannot connect to Postgres at {shown}: {e}"))
            })?;
        migrator()
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(format!("migrating {shown}: {e}")))?;

        tracing::info!(database = %shown, batch_mode = %options.batch_mode, "postgres store open");
        Ok(PgStore {
            pool,
            batch_mode: options.batch_mode,
        })
    }

    pub fn batch_mode(&self) -> PgBatchMode {
        self.batch_mode
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
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

/// The statements of the main read paths, public (but hidden) so that
/// `examples/explain.rs` shows the plans of exactly what the store runs.
#[doc(hidden)]
pub mod sql {
    /// `$1` room, `$2` highest seq wanted (inclusive), `$3` limit.
    pub const HISTORY: &str =
        "SELECT room_id, seq, at, actor_id, actor_name, kind, body FROM events \
     WHERE room_id = $1 AND seq <= $2 \
     ORDER BY seq DESC LIMIT $3";

    /// `$1` viewer, `$2` LIKE pattern, `$3` limit, `$4` offset. One
    /// statement, hence one snapshot: `total` matches the page. The page
    /// is LEFT JOINed so that the total comes back (with NULL room
    /// columns) even when the page is empty.
    pub const LIST_ROOMS: &str = "WITH matches AS ( \
         SELECT r.id, r.name, r.topic, r.visibility, r.owner_id, r.created_at, \
                r.last_seq \
         FROM rooms r \
         WHERE r.terminated_at IS NULL \
           AND (r.visibility = 0 OR EXISTS (SELECT 1 FROM memberships m \
                WHERE m.room_id = r.id AND m.user_id = $1)) \
           AND NOT EXISTS (SELECT 1 FROM bans b \
                WHERE b.room_id = r.id AND b.user_id = $1) \
           AND (r.name_folded LIKE $2 ESCAPE E'\\\\' \
                OR r.topic_folded LIKE $2 ESCAPE E'\\\\')) \
     SELECT t.total, p.* \
     FROM (SELECT count(*) AS total FROM matches) t \
     LEFT JOIN LATERAL ( \
         SELECT x.*, \
                (SELECT count(*) FROM memberships c WHERE c.room_id = x.id) \
                    AS member_count \
         FROM matches x ORDER BY x.id LIMIT $3 OFFSET $4) p ON true \
     ORDER BY p.id";

    /// `$1` user.
    pub const ROOMS_OF_USER: &str =
        "SELECT r.id, r.name, r.topic, r.visibility, r.owner_id, r.created_at, r.last_seq, \
            (SELECT count(*) FROM memberships c WHERE c.room_id = r.id) AS member_count \
     FROM memberships m JOIN rooms r ON r.id = m.room_id \
     WHERE m.user_id = $1 \
     ORDER BY m.room_id";

    /// `$1` events per room. Per room, a backward scan of the primary key
    /// stopping after `$1` rows: O(rooms × per_room), whatever the
    /// table's size. Ordered by `r.id` (not `e.room_id`) so that the
    /// planner sees the rooms' index order and sorts each room's few rows
    /// (incremental sort) instead of the whole result.
    pub const RECENT_EVENTS: &str =
        "SELECT e.room_id, e.seq, e.at, e.actor_id, e.actor_name, e.kind, e.body \
     FROM rooms r CROSS JOIN LATERAL ( \
         SELECT x.room_id, x.seq, x.at, x.actor_id, x.actor_name, x.kind, x.body \
         FROM events x WHERE x.room_id = r.id \
         ORDER BY x.seq DESC LIMIT $1) e \
     ORDER BY r.id, e.seq";
}

#[async_trait::async_trait]
impl Store for PgStore {
    async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        now: Millis,
    ) -> StoreResult<UserId> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (username, password_hash, created_at) VALUES ($1, $2, $3) \
             RETURNING id",
        )
        .bind(username)
        .bind(password_hash)
        .bind(to_db(now, "created_at")?)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| conflict_or_db(e, "username", "create_user"))?;
        Ok(UserId(from_db(id, "users.id")?))
    }

    async fn user_by_name(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        sqlx::query("SELECT id, username, password_hash, created_at FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_err("user_by_name", e))?
            .map(|row| user_from_row(&row))
            .transpose()
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        let Some(id) = to_db_opt(id.0) else {
            return Ok(None);
        };
        sqlx::query("SELECT id, username, password_hash, created_at FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
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
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&token_hash[..])
        .bind(to_db(user.0, "user id")?)
        .bind(to_db(now, "created_at")?)
        .bind(to_db(expires_at, "expires_at")?)
        .execute(&self.pool)
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
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(&token_hash[..])
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db_err("session_user", e))?
        .map(|row| user_from_row(&row))
        .transpose()
    }

    async fn delete_session(&self, token_hash: &[u8; 32]) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(&token_hash[..])
            .execute(&self.pool)
            .await
            .map_err(|e| db_err("delete_session", e))?;
        Ok(())
    }

    async fn load_rooms(&self) -> StoreResult<Vec<RoomRecord>> {
        let rows = sqlx::query(
            "SELECT id, name, topic, visibility, owner_id, created_at, last_seq, terminated_at \
             FROM rooms ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_err("load_rooms", e))?;
        rows.iter()
            .map(|row| {
                Ok(RoomRecord {
                    id: RoomId(get_u64(row, "id")?),
                    name: get(row, "name")?,
                    topic: get(row, "topic")?,
                    visibility: visibility_from_db(get(row, "visibility")?)?,
                    owner: UserId(get_u64(row, "owner_id")?),
                    created_at: get_u64(row, "created_at")?,
                    last_seq: Seq(get_u64(row, "last_seq")?),
                    terminated_at: get_opt_u64(row, "terminated_at")?,
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
        .fetch_all(&self.pool)
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
        let rows = sqlx::query(sql::RECENT_EVENTS)
            .bind(i64::from(per_room))
            .fetch_all(&self.pool)
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
        let rows = sqlx::query(sql::LIST_ROOMS)
            .bind(viewer)
            .bind(&pattern)
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_err("list_rooms", e))?;

        let mut total = 0;
        let mut rooms = Vec::with_capacity(rows.len());
        for row in &rows {
            total = get::<i64>(row, "total")?;
            if get::<Option<i64>>(row, "id")?.is_some() {
                rooms.push(room_info_from_row(row)?);
            }
        }
        let total = u32::try_from(total).map_err(|_| out_of_range("room count", total))?;
        Ok((rooms, total))
    }

    async fn rooms_of_user(&self, user: UserId) -> StoreResult<Vec<RoomInfo>> {
        let Some(user) = to_db_opt(user.0) else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(sql::ROOMS_OF_USER)
            .bind(user)
            .fetch_all(&self.pool)
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
        let rows = sqlx::query(sql::HISTORY)
            .bind(room)
            .bind(convert::max_below(before.0))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_err("history", e))?;
        rows.iter().map(event_from_row).collect()
    }

    async fn apply_batch(&self, ops: &[WriteOp]) -> StoreResult<()> {
        batch::apply(&self.pool, self.batch_mode, ops).await
    }

    async fn load_bans(&self) -> StoreResult<Vec<BanRecord>> {
        governance::load_bans(&self.pool).await
    }

    async fn load_invites(&self) -> StoreResult<Vec<InviteRecord>> {
        governance::load_invites(&self.pool).await
    }

    async fn load_join_requests(&self) -> StoreResult<Vec<JoinRequestRecord>> {
        governance::load_join_requests(&self.pool).await
    }

    async fn max_notification_id(&self) -> StoreResult<u64> {
        governance::max_notification_id(&self.pool).await
    }

    async fn notifications(
        &self,
        user: UserId,
        before: u64,
        limit: u32,
        unread_only: bool,
    ) -> StoreResult<Vec<NotificationRecord>> {
        governance::notifications(&self.pool, user, before, limit, unread_only).await
    }

    async fn unread_count(&self, user: UserId) -> StoreResult<u32> {
        governance::unread_count(&self.pool, user).await
    }

    async fn mark_read(&self, user: UserId, up_to: u64) -> StoreResult<u32> {
        governance::mark_read(&self.pool, user, up_to).await
    }

    async fn room_log(&self, user: UserId) -> StoreResult<Vec<RoomLogEntry>> {
        governance::room_log(&self.pool, user).await
    }

    async fn audit(&self, room: RoomId, before: u64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        governance::audit(&self.pool, room, before, limit).await
    }

    async fn purge_room_log(&self, cutoff: Millis) -> StoreResult<u64> {
        governance::purge_room_log(&self.pool, cutoff).await
    }

    async fn purge_notifications(&self, cutoff: Millis) -> StoreResult<u64> {
        governance::purge_notifications(&self.pool, cutoff).await
    }

    async fn purge_expired_sessions(&self, now: Millis) -> StoreResult<u64> {
        governance::purge_expired_sessions(&self.pool, now).await
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| db_err("ping", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!("bulk".parse::<PgBatchMode>().is_err());
        assert_eq!(PgBatchMode::Copy.to_string(), "copy");
    }
}
