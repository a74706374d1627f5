//! [`WriteOp`]s as SQLite statements, applied inside the batch's
//! transaction (one at a time, in order; see `apply_batch`).
//!
//! Every "insert or replace" op is an `INSERT … ON CONFLICT (key) DO
//! UPDATE`, and every "remove (no error if absent)" op a plain `DELETE`,
//! so replaying a batch after a crash converges on the same state.
//!
//! **The event log.** Events go into `event_log`, not `events`. SQLite
//! writes every page a transaction dirtied, whole, to the WAL at commit;
//! `events` is clustered by `(room_id, seq)`, so a commit of one message
//! in each of 100 rooms dirties 100 leaf pages (400 KiB of WAL for 15 KiB
//! of messages), and a steady load paid that at every commit. The log is
//! clustered by arrival, so a commit's events share a few pages, and its
//! `(room_id, seq)` index only holds the rows not yet folded, a few pages
//! in all. Once the log holds [`FOLD_ROWS`] events, every tidy between
//! batches (`BatchSink::tidy`, after the batch writer has sent the
//! acknowledgements of a batch) copies the next [`FOLD_CHUNK`] of them in
//! `(room_id, seq)` order into `events` ([`fold_keys`]: a slice of the
//! rooms, each room's run a page or two, the slices taken round the rooms
//! by a cursor), committed without an fsync of its own (the next batch's
//! commit syncs the WAL past it; a crash before rolls the chunk back
//! whole). **Lazy deletion**: a chunk does not delete what it copied (the
//! log is in arrival order, so a room slice's rows sit on log pages all
//! over, and deleting them dirtied most of the log); it raises its rooms'
//! fold bounds (`event_log_folded`, in the same transaction), and reads
//! skip the log's rows at or below their room's bound. Folded rows leave
//! the log [`TRUNCATE_ROWS`] oldest at a time ([`truncate_folded`]: a
//! range of whole pages), a tidy of its own. A bulk fold of the whole log
//! ([`fold_log`], which also empties it and the bounds) runs at start-up
//! and once the log holds [`FOLD_BACKSTOP`] unfolded events. One bulk
//! fold of 4,096 events stalled the writer for 25-75 ms, five times a
//! second at 20,000 messages/s (benches/BENCHMARKS.md). Reads take both
//! tables (`common::sql::EVENTS_AND_LOG`); an event is in exactly one of
//! `events` and the log above its room's bound: the log skips events
//! already in `events`, and a fold copies and raises the bound in one
//! transaction (a crash rolls both back, or neither).

use confab_protocol::LeaveReason;
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};

use crate::common::{sql, to_db, Dialect};
use crate::{StoreError, StoreResult, WriteOp};

/// Applies `ops` in order in one `BEGIN IMMEDIATE` transaction on the
/// writer connection.
pub(super) async fn apply_batch(writer: &SqlitePool, ops: &[WriteOp]) -> StoreResult<()> {
    if ops.is_empty() {
        return Ok(());
    }
    // The common batch at chat rates: a few events, one statement. A
    // single statement is atomic and durable on its own (autocommit, with
    // the connection's `synchronous = FULL`), so it needs no BEGIN and no
    // COMMIT: each of those is a round trip to sqlx's worker thread, two
    // context switches, on the core the shards run on.
    if ops.iter().all(|op| matches!(op, WriteOp::AppendEvent(_)))
        && chunk_len(ops.len()) == ops.len()
    {
        let mut conn = writer
            .acquire()
            .await
            .map_err(|e| Sqlite::error("apply_batch acquire", e))?;
        return append_events(&mut conn, ops).await;
    }
    let mut tx = writer
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|e| Sqlite::error("apply_batch begin", e))?;
    let mut i = 0;
    while i < ops.len() {
        // A run of consecutive events goes in as multi-row INSERTs
        // (append_events): the bulk of every batch.
        let run = ops[i..]
            .iter()
            .take_while(|op| matches!(op, WriteOp::AppendEvent(_)))
            .count();
        let applied = if run > 0 {
            append_events(&mut tx, &ops[i..i + run]).await
        } else {
            apply_op(&mut tx, &ops[i]).await
        };
        applied.map_err(|e| match e {
            StoreError::Database { message, source } => StoreError::Database {
                message: format!("apply_batch op {i}: {message}"),
                source,
            },
            other => other,
        })?;
        i += run.max(1);
    }
    // Dropping `tx` on any error above rolls the whole batch back.
    tx.commit()
        .await
        .map_err(|e| Sqlite::error("apply_batch commit", e))
}

const REWRITE_EVENT: &str =
    "UPDATE events SET kind = ?1, body = ?2 WHERE room_id = ?3 AND seq = ?4";
const REWRITE_LOGGED_EVENT: &str =
    "UPDATE event_log SET kind = ?1, body = ?2 WHERE room_id = ?3 AND seq = ?4";

/// Applies one operation inside the batch's transaction.
async fn apply_op(tx: &mut Transaction<'static, Sqlite>, op: &WriteOp) -> StoreResult<()> {
    match op {
        WriteOp::CreateRoom {
            room,
            name,
            topic,
            visibility,
            owner,
            created_at,
        } => {
            // Room ids are never reused, so a conflict is a replay of this
            // very op (spool, crash): keep the row, whose later changes
            // (rename, owner, termination) are replayed after it.
            sqlx::query(
                "INSERT INTO rooms (id, name, topic, name_folded, topic_folded, visibility, \
                                    owner_id, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(to_db(room.0, "room id")?)
            .bind(name)
            .bind(topic)
            .bind(name.to_lowercase())
            .bind(topic.to_lowercase())
            .bind(i64::from(visibility.code()))
            .bind(to_db(owner.0, "owner id")?)
            .bind(to_db(*created_at, "created_at")?)
            .execute(&mut **tx)
            .await
            .map_err(|e| Sqlite::error("CreateRoom", e))?;
        }
        WriteOp::AddMember {
            room,
            user,
            role,
            joined_at,
        } => {
            sqlx::query(
                "INSERT INTO memberships (room_id, user_id, role, joined_at) \
                 VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (room_id, user_id) \
                 DO UPDATE SET role = excluded.role, joined_at = excluded.joined_at",
            )
            .bind(to_db(room.0, "room id")?)
            .bind(to_db(user.0, "user id")?)
            .bind(i64::from(role.code()))
            .bind(to_db(*joined_at, "joined_at")?)
            .execute(&mut **tx)
            .await
            .map_err(|e| Sqlite::error("AddMember", e))?;
        }
        WriteOp::RemoveMember { room, user } => {
            delete_pair(tx, "memberships", room.0, user.0, "RemoveMember").await?;
        }
        WriteOp::SetRole { room, user, role } => {
            sqlx::query("UPDATE memberships SET role = ?3 WHERE room_id = ?1 AND user_id = ?2")
                .bind(to_db(room.0, "room id")?)
                .bind(to_db(user.0, "user id")?)
                .bind(i64::from(role.code()))
                .execute(&mut **tx)
                .await
                .map_err(|e| Sqlite::error("SetRole", e))?;
        }
        WriteOp::AppendEvent(_) => append_events(tx, std::slice::from_ref(op)).await?,
        WriteOp::RewriteEvent(ev) => {
            // The event is in exactly one of the two tables.
            for table in [REWRITE_EVENT, REWRITE_LOGGED_EVENT] {
                sqlx::query(table)
                    .bind(i64::from(ev.kind))
                    .bind(&ev.body[..])
                    .bind(to_db(ev.room.0, "room id")?)
                    .bind(to_db(ev.seq.0, "seq")?)
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| Sqlite::error("RewriteEvent", e))?;
            }
        }
        WriteOp::UpdateRoom { room, name, topic } => {
            // The folded copies change in the same statement (schema v1).
            sqlx::query(
                "UPDATE rooms SET name = ?2, topic = ?3, name_folded = ?4, topic_folded = ?5 \
                 WHERE id = ?1",
            )
            .bind(to_db(room.0, "room id")?)
            .bind(name)
            .bind(topic)
            .bind(name.to_lowercase())
            .bind(topic.to_lowercase())
            .execute(&mut **tx)
            .await
            .map_err(|e| Sqlite::error("UpdateRoom", e))?;
        }
        WriteOp::SetOwner { room, owner } => {
            sqlx::query("UPDATE rooms SET owner_id = ?2 WHERE id = ?1")
                .bind(to_db(room.0, "room id")?)
                .bind(to_db(owner.0, "owner id")?)
                .execute(&mut **tx)
                .await
                .map_err(|e| Sqlite::error("SetOwner", e))?;
        }
        WriteOp::TerminateRoom { room, at } => {
            let room = to_db(room.0, "room id")?;
            // coalesce: a replayed termination keeps the first time.
            sqlx::query(
                "UPDATE rooms SET terminated_at = coalesce(terminated_at, ?2) WHERE id = ?1",
            )
            .bind(room)
            .bind(to_db(*at, "terminated_at")?)
            .execute(&mut **tx)
            .await
            .map_err(|e| Sqlite::error("TerminateRoom", e))?;
            // Bans stay: a banned user must not see a room come back.
            for table in ["memberships", "invites", "join_requests"] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE room_id = ?1"
                )))
                .bind(room)
                .execute(&mut **tx)
                .await
                .map_err(|e| Sqlite::error("TerminateRoom", e))?;
            }
        }
        WriteOp::Ban { room, user, by, at } => {
            put_pair(tx, "bans", room.0, user.0, Some(by.0), *at, "Ban").await?;
        }
        WriteOp::Unban { room, user } => {
            delete_pair(tx, "bans", room.0, user.0, "Unban").await?;
        }
        WriteOp::PutInvite { room, user, by, at } => {
            put_pair(tx, "invites", room.0, user.0, Some(by.0), *at, "PutInvite").await?;
        }
        WriteOp::DeleteInvite { room, user } => {
            delete_pair(tx, "invites", room.0, user.0, "DeleteInvite").await?;
        }
        WriteOp::PutJoinRequest { room, user, at } => {
            put_pair(
                tx,
                "join_requests",
                room.0,
                user.0,
                None,
                *at,
                "PutJoinRequest",
            )
            .await?;
        }
        WriteOp::DeleteJoinRequest { room, user } => {
            delete_pair(tx, "join_requests", room.0, user.0, "DeleteJoinRequest").await?;
        }
        WriteOp::AddNotification(n) => {
            // Idempotent by id: a replayed batch stores nothing twice, and
            // the first write (its read flag included) wins.
            sqlx::query(
                "INSERT INTO notifications \
                     (id, user_id, kind, room_id, room_name, actor_id, actor_name, at, read) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(to_db(n.id, "notification id")?)
            .bind(to_db(n.user.0, "user id")?)
            .bind(i64::from(n.kind.code()))
            .bind(to_db(n.room.0, "room id")?)
            .bind(&n.room_name)
            .bind(to_db(n.actor.0, "actor id")?)
            .bind(&n.actor_name)
            .bind(to_db(n.at, "notification time")?)
            .bind(i64::from(n.read))
            .execute(&mut **tx)
            .await
            .map_err(|e| Sqlite::error("AddNotification", e))?;
        }
        WriteOp::LogJoin { user, room, at } => {
            sqlx::query(
                "INSERT INTO room_log \
                     (user_id, room_id, first_joined_at, last_joined_at, left_at, reason) \
                 VALUES (?1, ?2, ?3, ?3, NULL, ?4) \
                 ON CONFLICT (user_id, room_id) DO UPDATE SET \
                     last_joined_at = excluded.last_joined_at, left_at = NULL, \
                     reason = excluded.reason",
            )
            .bind(to_db(user.0, "user id")?)
            .bind(to_db(room.0, "room id")?)
            .bind(to_db(*at, "joined_at")?)
            .bind(i64::from(LeaveReason::Active.code()))
            .execute(&mut **tx)
            .await
            .map_err(|e| Sqlite::error("LogJoin", e))?;
        }
        WriteOp::LogLeave {
            user,
            room,
            at,
            reason,
        } => {
            // An update only: an association that was never logged as a
            // join has nothing to end (a ban of a non-member logs nothing).
            sqlx::query(
                "UPDATE room_log SET left_at = ?3, reason = ?4 \
                 WHERE user_id = ?1 AND room_id = ?2",
            )
            .bind(to_db(user.0, "user id")?)
            .bind(to_db(room.0, "room id")?)
            .bind(to_db(*at, "left_at")?)
            .bind(i64::from(reason.code()))
            .execute(&mut **tx)
            .await
            .map_err(|e| Sqlite::error("LogLeave", e))?;
        }
        WriteOp::Audit(a) => {
            sqlx::query(
                "INSERT INTO audit (at, actor_id, action, room_id, target_id, detail) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .bind(to_db(a.at, "audit time")?)
            .bind(to_db(a.actor.0, "actor id")?)
            .bind(a.action.as_str())
            .bind(a.room.map(|r| to_db(r.0, "room id")).transpose()?)
            .bind(a.target.map(|u| to_db(u.0, "target id")).transpose()?)
            .bind(&a.detail)
            .execute(&mut **tx)
            .await
            .map_err(|e| Sqlite::error("Audit", e))?;
        }
        WriteOp::SetDirect { room, low, high } => {
            // A replay sets the same pair again; a second room for a pair
            // breaks the unique index `rooms_direct_pair` and fails.
            sqlx::query("UPDATE rooms SET direct_low = ?2, direct_high = ?3 WHERE id = ?1")
                .bind(to_db(room.0, "room id")?)
                .bind(to_db(low.0, "user id")?)
                .bind(to_db(high.0, "user id")?)
                .execute(&mut **tx)
                .await
                .map_err(|e| Sqlite::error("SetDirect", e))?;
        }
        WriteOp::AttachFiles { room, seq, files } => {
            for &id in files {
                sqlx::query(sql::ATTACH_FILE)
                    .bind(to_db(id, "file id")?)
                    .bind(to_db(room.0, "room id")?)
                    .bind(to_db(seq.0, "seq")?)
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| Sqlite::error("AttachFiles", e))?;
            }
        }
        WriteOp::ReleaseFiles { files } => {
            for &id in files {
                sqlx::query(sql::RELEASE_FILE)
                    .bind(to_db(id, "file id")?)
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| Sqlite::error("ReleaseFiles", e))?;
            }
        }
        WriteOp::DropMessageFiles { room, seq } => {
            sqlx::query(sql::DROP_MESSAGE_FILES)
                .bind(to_db(room.0, "room id")?)
                .bind(to_db(seq.0, "seq")?)
                .execute(&mut **tx)
                .await
                .map_err(|e| Sqlite::error("DropMessageFiles", e))?;
        }
    }
    Ok(())
}

/// Rows per multi-row statement, largest first: a run of events is cut
/// into chunks: a run of at most [`SMALL_RUN`] events is one statement of
/// exactly that many rows, a longer one is cut into the largest of
/// [`EVENT_CHUNKS`] that fit, then the rest. So a batch takes few
/// statements (each a round trip to sqlx's worker thread), and only 20
/// distinct statements reach sqlx's per-connection statement cache (100).
/// 7 binds per row stays far below SQLite's limit of 32 766 binds per
/// statement.
const EVENT_CHUNKS: [usize; 4] = [256, 128, 64, 32];
const SMALL_RUN: usize = 16;

/// How many of `rest` events the next statement takes.
fn chunk_len(rest: usize) -> usize {
    if rest <= SMALL_RUN {
        return rest;
    }
    EVENT_CHUNKS
        .into_iter()
        .find(|&n| n <= rest)
        .unwrap_or(SMALL_RUN)
}

/// Appends a run of consecutive `AppendEvent`s (anything else in `ops` is
/// a bug of the caller and is refused) to the event log: multi-row
/// `INSERT … ON CONFLICT DO NOTHING`, rows in batch order so the first of
/// two events with the same `(room, seq)` wins, a statement per 256
/// events. No `rooms.last_seq` update: a room's last seq is its newest
/// event (`common::sql::EVENTS_AND_LOG`).
async fn append_events(conn: &mut SqliteConnection, ops: &[WriteOp]) -> StoreResult<()> {
    let mut events = Vec::with_capacity(ops.len());
    for op in ops {
        match op {
            WriteOp::AppendEvent(ev) => events.push(ev),
            _ => return Err(StoreError::database("append_events: not an event")),
        }
    }

    let mut rest = &events[..];
    while !rest.is_empty() {
        let n = chunk_len(rest.len());
        let (chunk, tail) = rest.split_at(n);
        // Into the log (see "The event log" above), skipping an event
        // that is already in `events` (a replayed batch folded earlier) or
        // in the log: so each event is in exactly one of the two.
        let mut sql = String::from(
            "INSERT INTO event_log (room_id, seq, at, actor_id, actor_name, kind, body) \
             SELECT * FROM (VALUES ",
        );
        for i in 0..n {
            sql.push_str(if i == 0 {
                "(?,?,?,?,?,?,?)"
            } else {
                ",(?,?,?,?,?,?,?)"
            });
        }
        // ON CONFLICT on the key only, not `INSERT OR IGNORE`: OR IGNORE
        // would also silently drop rows that break a CHECK or NOT NULL
        // constraint, turning a bug into lost data.
        sql.push_str(
            ") AS v WHERE NOT EXISTS (SELECT 1 FROM events e \
                 WHERE e.room_id = v.column1 AND e.seq = v.column2) \
             ON CONFLICT (room_id, seq) DO NOTHING",
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for ev in chunk {
            query = query
                .bind(to_db(ev.room.0, "room id")?)
                .bind(to_db(ev.seq.0, "seq")?)
                .bind(to_db(ev.at, "event time")?)
                .bind(to_db(ev.actor.0, "actor id")?)
                .bind(&ev.actor_name)
                .bind(i64::from(ev.kind))
                .bind(&ev.body[..]);
        }
        query
            .execute(&mut *conn)
            .await
            .map_err(|e| Sqlite::error("AppendEvent", e))?;
        rest = tail;
    }

    Ok(())
}

/// Inserts or replaces a `(room_id, user_id)` row of `table` (bans,
/// invites: with `by_id`; join requests: without).
async fn put_pair(
    tx: &mut Transaction<'static, Sqlite>,
    table: &'static str,
    room: u64,
    user: u64,
    by: Option<u64>,
    at: u64,
    context: &'static str,
) -> StoreResult<()> {
    let sql = match by {
        Some(_) => format!(
            "INSERT INTO {table} (room_id, user_id, at, by_id) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (room_id, user_id) DO UPDATE SET at = excluded.at, by_id = excluded.by_id"
        ),
        None => format!(
            "INSERT INTO {table} (room_id, user_id, at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (room_id, user_id) DO UPDATE SET at = excluded.at"
        ),
    };
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(to_db(room, "room id")?)
        .bind(to_db(user, "user id")?)
        .bind(to_db(at, "time")?);
    if let Some(by) = by {
        query = query.bind(to_db(by, "by id")?);
    }
    query
        .execute(&mut **tx)
        .await
        .map_err(|e| Sqlite::error(context, e))?;
    Ok(())
}

/// Deletes the `(room_id, user_id)` row of `table`, if any.
async fn delete_pair(
    tx: &mut Transaction<'static, Sqlite>,
    table: &'static str,
    room: u64,
    user: u64,
    context: &'static str,
) -> StoreResult<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {table} WHERE room_id = ?1 AND user_id = ?2"
    )))
    .bind(to_db(room, "room id")?)
    .bind(to_db(user, "user id")?)
    .execute(&mut **tx)
    .await
    .map_err(|e| Sqlite::error(context, e))?;
    Ok(())
}

/// Unfolded events the log may hold before folds are due.
pub(super) const FOLD_ROWS: u64 = 4096;

/// Events one fold between batches copies at most: the next this many
/// unfolded in `(room_id, seq)` order, a slice of the rooms
/// ([`fold_keys`]). A chunk is sized to the time until the next batch is
/// due plus [`FIT_SLACK_US`], up to this.
pub(super) const FOLD_CHUNK: u64 = 256;

/// Past this many unfolded events the whole log is folded at once, so
/// that it cannot grow without bound when chunks fall behind.
pub(super) const FOLD_BACKSTOP: u64 = 65_536;

/// Folded rows the log may keep before the oldest of them are deleted
/// ([`truncate_folded`]), and how many one deletion takes: 1,024 took
/// 0.6 ms at the median, 4,096 took 2.3-2.6 ms (benches/BENCHMARKS.md,
/// "Lazy deletion from the event log").
pub(super) const TRUNCATE_ROWS: u64 = 1024;

/// How long past the time the next batch is due a chunk sized to its
/// budget may run, in microseconds.
pub(super) const FIT_SLACK_US: u64 = 500;

/// A log row's room's fold bound: rows at or below it are copies of
/// events in `events` (migration 14).
const BOUND: &str =
    "coalesce((SELECT f.seq FROM event_log_folded f WHERE f.room_id = l.room_id), 0)";

/// Moves every event of the log into `events` and empties the log and the
/// fold bounds, in one transaction; returns how many it copied.
pub(super) async fn fold_log(conn: &mut SqliteConnection) -> StoreResult<u64> {
    let mut tx = sqlx::Connection::begin_with(conn, "BEGIN IMMEDIATE")
        .await
        .map_err(|e| Sqlite::error("fold_log begin", e))?;
    let moved = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO events (room_id, seq, at, actor_id, actor_name, kind, body) \
         SELECT room_id, seq, at, actor_id, actor_name, kind, body FROM event_log l \
         WHERE l.seq > {BOUND} ORDER BY room_id, seq \
         ON CONFLICT (room_id, seq) DO NOTHING"
    )))
    .execute(&mut *tx)
    .await
    .map_err(|e| Sqlite::error("fold_log insert", e))?
    .rows_affected();
    for (sql, context) in [
        ("DELETE FROM event_log", "fold_log delete"),
        ("DELETE FROM event_log_folded", "fold_log bounds"),
    ] {
        sqlx::query(sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| Sqlite::error(context, e))?;
    }
    tx.commit()
        .await
        .map_err(|e| Sqlite::error("fold_log commit", e))?;
    Ok(moved)
}

/// Copies the log's next `rows` unfolded events in `(room_id, seq)` order
/// from room `from` (whole rooms' runs, a slice of the rooms) into
/// `events` and raises their rooms' fold bounds over them, in one
/// transaction; the log rows stay (lazy deletion: [`truncate_folded`]).
/// Returns how many it copied and the room the next chunk starts at (0
/// after the last room).
pub(super) async fn fold_keys(
    conn: &mut SqliteConnection,
    rows: u64,
    from: i64,
) -> StoreResult<(u64, i64)> {
    let rows = to_db(rows.max(1), "fold rows")?;
    let mut tx = sqlx::Connection::begin_with(conn, "BEGIN IMMEDIATE")
        .await
        .map_err(|e| Sqlite::error("fold_keys begin", e))?;
    // Where the chunk ends: the first unfolded key after `rows` of them.
    let end: Option<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT room_id, seq FROM event_log l WHERE room_id >= ?1 AND l.seq > {BOUND} \
         ORDER BY room_id, seq LIMIT 1 OFFSET ?2"
    )))
    .bind(from)
    .bind(rows)
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| Sqlite::error("fold_keys end", e))?;
    let (to, next) = match end {
        Some(end) => (end, end.0),
        None => ((i64::MAX, i64::MAX), 0),
    };
    let range = "room_id >= ?1 AND (room_id, seq) < (?2, ?3)";
    // The copy: the range's rows above their bounds. Then the bounds: each
    // room's highest seq in the range (every row of the range is folded
    // now); a bound never goes down.
    let copy = format!(
        "INSERT INTO events (room_id, seq, at, actor_id, actor_name, kind, body) \
         SELECT room_id, seq, at, actor_id, actor_name, kind, body FROM event_log l \
         WHERE {range} AND l.seq > {BOUND} ORDER BY room_id, seq \
         ON CONFLICT (room_id, seq) DO NOTHING"
    );
    let bounds = format!(
        "INSERT INTO event_log_folded (room_id, seq) \
         SELECT room_id, max(seq) FROM event_log WHERE {range} GROUP BY room_id \
         ON CONFLICT (room_id) DO UPDATE SET seq = max(seq, excluded.seq)"
    );
    let copied = exec_range(&mut tx, copy, "fold copy", from, to).await?;
    exec_range(&mut tx, bounds, "fold bounds", from, to).await?;
    tx.commit()
        .await
        .map_err(|e| Sqlite::error("fold_keys commit", e))?;
    Ok((copied, next))
}

/// Runs one of [`fold_keys`]' statements over the key range from room
/// `from` up to (not including) `to`; returns the rows it changed.
async fn exec_range(
    conn: &mut SqliteConnection,
    sql: String,
    context: &'static str,
    from: i64,
    to: (i64, i64),
) -> StoreResult<u64> {
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(from)
        .bind(to.0)
        .bind(to.1)
        .execute(conn)
        .await
        .map_err(|e| Sqlite::error(context, e))?;
    Ok(done.rows_affected())
}

/// Deletes the folded rows among the log's `rows` oldest (by arrival, so
/// a range of whole pages); returns how many left. The unfolded rows of
/// the range stay (a room the chunks have not reached yet).
pub(super) async fn truncate_folded(conn: &mut SqliteConnection, rows: u64) -> StoreResult<u64> {
    let rows = to_db(rows.max(1), "truncate rows")?;
    let deleted = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM event_log AS l WHERE l.id <= coalesce((SELECT id FROM event_log \
             ORDER BY id LIMIT 1 OFFSET ?1 - 1), 9223372036854775807) \
         AND l.seq <= {BOUND}"
    )))
    .bind(rows)
    .execute(&mut *conn)
    .await
    .map_err(|e| Sqlite::error("truncate_folded", e))?
    .rows_affected();
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_events_takes_few_statements_of_few_shapes() {
        let mut shapes = std::collections::BTreeSet::new();
        for len in 1..=2_000 {
            let (mut rest, mut statements) = (len, 0);
            while rest > 0 {
                let n = chunk_len(rest);
                assert!((1..=rest).contains(&n), "{len}: took {n} of {rest}");
                shapes.insert(n);
                rest -= n;
                statements += 1;
            }
            // A small batch is one statement; a large one about one per
            // 256 events plus at most four for its tail.
            let most = if len <= SMALL_RUN { 1 } else { len / 256 + 5 };
            assert!(
                statements <= most,
                "{len} events took {statements} statements"
            );
        }
        // Every shape is a cached statement: 1..=16 rows, 32, 64, 128, 256.
        assert_eq!(shapes.len(), SMALL_RUN + EVENT_CHUNKS.len());
    }
}
