//! `apply_batch` for Postgres: a batch of [`WriteOp`]s becomes the columns
//! (arrays) of one call of the `confab_apply_batch` SQL function
//! (`migrations/postgres/0002_apply_batch.sql`, which also explains why
//! applying the three groups below one after the other keeps the batch's
//! meaning):
//!
//! - *state ops* (rooms, memberships, bans, invitations, join requests,
//!   room log): one array element per op, applied in batch order by the
//!   function;
//! - *events*: the bulk, either as arrays inserted with
//!   `INSERT … SELECT FROM unnest(…)` ([`PgBatchMode::Unnest`]) or streamed
//!   with `COPY … FROM STDIN (FORMAT binary)` ([`PgBatchMode::Copy`])
//!   straight into `events`, before the call, which then only raises the
//!   rooms' `last_seq` and checks that they exist (`confab_copied_events`,
//!   migration 0014). UNNEST's insert says `ON CONFLICT (room_id, seq) DO
//!   NOTHING`, which keeps replays idempotent; COPY cannot, so a batch
//!   whose COPY breaks the key (a replay, a key twice in the batch) is
//!   rolled back and applied again with its events COPY'd into a
//!   per-connection temporary staging table that the function inserts
//!   from with that `ON CONFLICT` ([`copy_staged`]);
//! - *notifications* and *audit entries*: arrays, inserted in bulk.
//!
//! Round trips per batch: UNNEST mode sends one statement, which commits
//! on its own (autocommit: one statement is one transaction). COPY mode
//! needs an explicit transaction around the COPY and the call: BEGIN,
//! COPY, COPY's end, the call, COMMIT — five. Batches without events take
//! the one-statement path in every mode.

use sqlx::postgres::{PgArguments, PgConnection, PgPool};
use sqlx::Postgres;

use super::copy::EventCopyEncoder;
use super::PgBatchMode;
use crate::common::{to_db, Dialect};
use crate::{Fence, StoreError, StoreResult, StoredEvent, WriteOp};

/// The statement that appends a batch's events in COPY mode
/// ([`EventCopyEncoder`] without `ord`).
const COPY_INTO_EVENTS: &str = "COPY events \
     (room_id, seq, at, actor_id, actor_name, kind, body) FROM STDIN (FORMAT binary)";

/// The statement that fills the staging table (created by
/// [`STAGING_TABLE_DDL`] on every connection in COPY mode), when a batch's
/// events cannot go straight into `events`.
const COPY_EVENTS: &str = "COPY confab_events_staging \
     (ord, room_id, seq, at, actor_id, actor_name, kind, body) FROM STDIN (FORMAT binary)";

/// The per-connection staging table for COPY mode. `ON COMMIT DELETE ROWS`
/// empties it at the end of every batch's transaction; a temporary table
/// writes no WAL.
pub(super) const STAGING_TABLE_DDL: &str =
    "CREATE TEMP TABLE IF NOT EXISTS confab_events_staging (\
     ord integer NOT NULL, room_id bigint NOT NULL, seq bigint NOT NULL, at bigint NOT NULL, \
     actor_id bigint NOT NULL, actor_name text NOT NULL, kind smallint NOT NULL, \
     body bytea NOT NULL) ON COMMIT DELETE ROWS";

const CALL: &str = "SELECT confab_apply_batch(\
     $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
     $12, $13, $14, $15, $16, $17, $18, $19, \
     $20, $21, $22, $23, $24, $25, $26, $27, $28, \
     $29, $30, $31, $32, $33, $34)";

/// [`CALL`] in cluster mode: the same call, behind the fence check
/// (`confab_check_fence`, migration 0011) in the same statement. The
/// materialized CTE is scanned before the call is evaluated for its one
/// row, so a failed check raises before anything is written, and the
/// lease rows it locks FOR SHARE stay locked until the batch's
/// transaction ends. Still one round trip.
const FENCED_CALL: &str = "WITH fence AS MATERIALIZED (\
     SELECT confab_check_fence($35, $36, $37)) \
     SELECT confab_apply_batch(\
     $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
     $12, $13, $14, $15, $16, $17, $18, $19, \
     $20, $21, $22, $23, $24, $25, $26, $27, $28, \
     $29, $30, $31, $32, $33, $34) FROM fence";

/// [`CALL`] after the batch's events were COPY'd into `events`: the
/// batch's other ops, then (the materialized CTE is evaluated first, so
/// after the batch's `CreateRoom`s) the rooms' `last_seq` and their check,
/// from one element per room. Still one round trip.
const CALL_COPIED: &str = "WITH batch AS MATERIALIZED (\
     SELECT confab_apply_batch(\
     $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
     $12, $13, $14, $15, $16, $17, $18, $19, \
     $20, $21, $22, $23, $24, $25, $26, $27, $28, \
     $29, $30, $31, $32, $33, $34)) \
     SELECT confab_copied_events($35, $36) FROM batch";

/// [`CALL_COPIED`] behind the fence check, as [`FENCED_CALL`].
const FENCED_CALL_COPIED: &str = "WITH fence AS MATERIALIZED (\
     SELECT confab_check_fence($37, $38, $39)), \
     batch AS MATERIALIZED (\
     SELECT confab_apply_batch(\
     $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
     $12, $13, $14, $15, $16, $17, $18, $19, \
     $20, $21, $22, $23, $24, $25, $26, $27, $28, \
     $29, $30, $31, $32, $33, $34) FROM fence) \
     SELECT confab_copied_events($35, $36) FROM batch";

/// The SQLSTATE of a broken unique key: a COPY'd event already stored.
const UNIQUE_VIOLATION: &str = "23505";

/// The SQLSTATE `confab_check_fence` raises.
const FENCED: &str = "CF001";

/// A batch's fence as the check's arguments: the owner, and the
/// partitions with their epochs (distinct pairs, sorted).
struct FenceArgs {
    owner: i64,
    parts: Vec<i32>,
    epochs: Vec<i64>,
}

impl FenceArgs {
    /// `None` when there is nothing to check (no fence, or one without
    /// leases: a batch that writes for no room).
    fn build(fence: Option<&Fence>) -> StoreResult<Option<FenceArgs>> {
        let Some(fence) = fence.filter(|f| !f.leases.is_empty()) else {
            return Ok(None);
        };
        let mut leases = fence.leases.clone();
        leases.sort_unstable();
        leases.dedup();
        let mut args = FenceArgs {
            owner: to_db(fence.owner.0, "incarnation")?,
            parts: Vec::with_capacity(leases.len()),
            epochs: Vec::with_capacity(leases.len()),
        };
        for lease in leases {
            args.parts.push(
                i32::try_from(lease.partition)
                    .map_err(|_| StoreError::database("partition out of range"))?,
            );
            args.epochs.push(to_db(lease.epoch, "epoch")?);
        }
        Ok(Some(args))
    }
}

/// The call's failure: [`StoreError::Fenced`] when the fence check
/// refused the batch, as [`Dialect::error`] classifies it otherwise.
fn call_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.code().as_deref() == Some(FENCED) => StoreError::Fenced {
            message: d.message().to_owned(),
        },
        _ => Postgres::error("apply_batch", e),
    }
}

/// Rewritten events (`WriteOp::RewriteEvent`), applied after the batch
/// function in the same transaction: the function appends a batch's
/// events after its state ops, so a rewrite of an event appended in the
/// same batch must come after the whole call. Of two rewrites of one
/// event the later wins.
const REWRITE_EVENTS: &str = "UPDATE events e SET kind = r.kind, body = r.body \
     FROM (SELECT DISTINCT ON (t.room_id, t.seq) t.room_id, t.seq, t.kind, t.body \
           FROM unnest($1::int8[], $2::int8[], $3::int2[], $4::bytea[]) \
                WITH ORDINALITY AS t(room_id, seq, kind, body, ord) \
           ORDER BY t.room_id, t.seq, t.ord DESC) r \
     WHERE e.room_id = r.room_id AND e.seq = r.seq";

/// Direct-room pairs (`WriteOp::SetDirect`, migration 0006), set after
/// the batch function in the same transaction, like the rewrites: the
/// function knows no such op, and a pair needs only its room to exist,
/// which the function's `CreateRoom` guarantees. A replay sets the same
/// pair again; a second room for a pair breaks `rooms_direct_pair`.
const SET_DIRECT: &str = "UPDATE rooms r SET direct_low = t.low, direct_high = t.high \
     FROM unnest($1::int8[], $2::int8[], $3::int8[]) AS t(room_id, low, high) \
     WHERE r.id = t.room_id";

/// Files attached to messages (`WriteOp::AttachFiles`), after the batch
/// function like the rewrites; then released claims and the files of
/// deleted messages, so that a message attached and deleted in one batch
/// ends with its files deleted.
const ATTACH_FILES: &str = "UPDATE files f SET message_seq = t.seq \
     FROM unnest($1::int8[], $2::int8[], $3::int8[]) AS t(id, room_id, seq) \
     WHERE f.id = t.id AND f.room_id = t.room_id AND f.message_seq = 0";
const RELEASE_FILES: &str =
    "UPDATE files SET message_seq = NULL WHERE id = ANY($1::int8[]) AND message_seq = 0";
const DROP_MESSAGE_FILES: &str = "UPDATE files f SET deleted = TRUE \
     FROM unnest($1::int8[], $2::int8[]) AS t(room_id, seq) \
     WHERE f.room_id = t.room_id AND f.message_seq = t.seq AND NOT f.deleted";

/// State op kinds, as numbered in `0002_apply_batch.sql`.
mod kind {
    pub const CREATE_ROOM: i16 = 1;
    pub const ADD_MEMBER: i16 = 2;
    pub const REMOVE_MEMBER: i16 = 3;
    pub const SET_ROLE: i16 = 4;
    pub const UPDATE_ROOM: i16 = 5;
    pub const SET_OWNER: i16 = 6;
    pub const TERMINATE_ROOM: i16 = 7;
    pub const BAN: i16 = 8;
    pub const UNBAN: i16 = 9;
    pub const PUT_INVITE: i16 = 10;
    pub const DELETE_INVITE: i16 = 11;
    pub const PUT_JOIN_REQUEST: i16 = 12;
    pub const DELETE_JOIN_REQUEST: i16 = 13;
    pub const LOG_JOIN: i16 = 14;
    pub const LOG_LEAVE: i16 = 15;
}

/// Applies `ops` atomically, in as few round trips as `mode` allows.
/// With a `fence`, the batch commits only if the fence holds (see
/// [`FENCED_CALL`]); without, the statements are those of a single node.
pub(super) async fn apply(
    pool: &PgPool,
    mode: PgBatchMode,
    ops: &[WriteOp],
    fence: Option<&Fence>,
) -> StoreResult<()> {
    if ops.is_empty() {
        return Ok(());
    }
    let fence = FenceArgs::build(fence)?;
    let copy_events = mode.copies(ops.iter().filter(|op| is_event(op)).count());
    let mut cols = Columns::build(ops, !copy_events)?;
    cols.fence = fence;
    let rewrites = AfterCall::build(ops)?;
    if !copy_events && rewrites.is_empty() {
        return cols
            .call(Events::Arrays)
            .execute(pool)
            .await
            .map(drop)
            .map_err(call_error);
    }
    if !copy_events {
        // Rare (an edit, a delete, a new direct room): BEGIN, the call,
        // the statements after it, COMMIT.
        let mut tx = pool
            .begin()
            .await
            .map_err(|e| Postgres::error("apply_batch begin", e))?;
        cols.call(Events::Arrays)
            .execute(&mut *tx)
            .await
            .map_err(call_error)?;
        rewrites.apply(&mut tx).await?;
        return tx
            .commit()
            .await
            .map_err(|e| Postgres::error("apply_batch commit", e));
    }

    let events = CopiedEvents::build(ops)?;
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| Postgres::error("apply_batch", e))?;
    let direct = Events::Copied(&events.rooms);
    let copied = copy_and_call(
        &mut conn,
        COPY_INTO_EVENTS,
        events.data,
        direct,
        &cols,
        &rewrites,
    )
    .await;
    // A COPY interrupted half-way can leave the connection mid-protocol:
    // never hand it to the next batch.
    if copied.is_err() {
        conn.close_on_drop();
    }
    drop(conn);
    match copied {
        Ok(()) => Ok(()),
        // Some of the events are stored already (a replay) or the batch
        // names a key twice: nothing was written (the transaction rolled
        // back); apply it again through the staging table.
        Err(Copied::Conflict) => copy_staged(pool, ops, &cols, &rewrites).await,
        Err(Copied::Failed(e)) => Err(e),
    }
}

/// COPY mode's path for a batch whose events may be stored already: the
/// events COPY'd into the staging table, which the call inserts from `ON
/// CONFLICT DO NOTHING`.
async fn copy_staged(
    pool: &PgPool,
    ops: &[WriteOp],
    cols: &Columns<'_>,
    rewrites: &AfterCall<'_>,
) -> StoreResult<()> {
    let mut data = EventCopyEncoder::new(true);
    for (ord, ev) in ops.iter().filter_map(as_event).enumerate() {
        data.push(ord, ev)?;
    }
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| Postgres::error("apply_batch", e))?;
    let staged = copy_and_call(
        &mut conn,
        COPY_EVENTS,
        data.finish(),
        Events::Staged,
        cols,
        rewrites,
    )
    .await;
    match staged {
        Ok(()) => Ok(()),
        Err(e) => {
            conn.close_on_drop();
            Err(match e {
                Copied::Failed(e) => e,
                // The staging table has no key.
                Copied::Conflict => {
                    StoreError::database("apply_batch: COPY into the staging table broke a key")
                }
            })
        }
    }
}

/// Why [`copy_and_call`] did not commit.
enum Copied {
    /// The COPY broke `events`' key: apply the batch through the staging
    /// table.
    Conflict,
    Failed(StoreError),
}

impl From<StoreError> for Copied {
    fn from(e: StoreError) -> Copied {
        Copied::Failed(e)
    }
}

/// A batch's events as a COPY payload for the events table, and the rooms
/// they are in: distinct, each with the highest seq the batch writes.
struct CopiedEvents {
    data: Vec<u8>,
    rooms: (Vec<i64>, Vec<i64>),
}

impl CopiedEvents {
    fn build(ops: &[WriteOp]) -> StoreResult<CopiedEvents> {
        let mut data = EventCopyEncoder::new(false);
        let mut rooms = std::collections::BTreeMap::<i64, i64>::new();
        for (ord, ev) in ops.iter().filter_map(as_event).enumerate() {
            data.push(ord, ev)?;
            let seq = to_db(ev.seq.0, "seq")?;
            let max = rooms.entry(to_db(ev.room.0, "room id")?).or_insert(seq);
            *max = (*max).max(seq);
        }
        Ok(CopiedEvents {
            data: data.finish(),
            rooms: rooms.into_iter().unzip(),
        })
    }
}

/// BEGIN, `data` COPY'd by `copy` (into `events`, or into the staging
/// table), the call with `events` saying where they went, the statements
/// after it, COMMIT. A COPY that breaks a unique key (only `events` has
/// one) is [`Copied::Conflict`].
async fn copy_and_call(
    conn: &mut PgConnection,
    copy: &'static str,
    data: Vec<u8>,
    events: Events<'_>,
    cols: &Columns<'_>,
    rewrites: &AfterCall<'_>,
) -> Result<(), Copied> {
    use sqlx::Connection;
    let mut tx = conn
        .begin()
        .await
        .map_err(|e| Postgres::error("apply_batch begin", e))?;
    let copy_error = |e: sqlx::Error| match &e {
        sqlx::Error::Database(d) if d.code().as_deref() == Some(UNIQUE_VIOLATION) => {
            Copied::Conflict
        }
        _ => Copied::Failed(Postgres::error("apply_batch COPY", e)),
    };
    let mut copy = tx.copy_in_raw(copy).await.map_err(copy_error)?;
    copy.send(data).await.map_err(copy_error)?;
    copy.finish().await.map_err(copy_error)?;
    cols.call(events)
        .execute(&mut *tx)
        .await
        .map_err(call_error)?;
    rewrites.apply(&mut tx).await?;
    tx.commit()
        .await
        .map_err(|e| Copied::Failed(Postgres::error("apply_batch commit", e)))
}

fn is_event(op: &WriteOp) -> bool {
    matches!(op, WriteOp::AppendEvent(_))
}

fn as_event(op: &WriteOp) -> Option<&StoredEvent> {
    match op {
        WriteOp::AppendEvent(ev) => Some(ev),
        _ => None,
    }
}

/// What a batch applies after the function's call: its `RewriteEvent`s
/// as the columns of [`REWRITE_EVENTS`], its `SetDirect`s as those of
/// [`SET_DIRECT`], its file ops as those of [`ATTACH_FILES`],
/// [`RELEASE_FILES`] and [`DROP_MESSAGE_FILES`].
#[derive(Default)]
struct AfterCall<'a> {
    room: Vec<i64>,
    seq: Vec<i64>,
    kind: Vec<i16>,
    body: Vec<&'a [u8]>,
    direct_room: Vec<i64>,
    direct_low: Vec<i64>,
    direct_high: Vec<i64>,
    attach_id: Vec<i64>,
    attach_room: Vec<i64>,
    attach_seq: Vec<i64>,
    release_id: Vec<i64>,
    drop_room: Vec<i64>,
    drop_seq: Vec<i64>,
}

impl<'a> AfterCall<'a> {
    fn build(ops: &'a [WriteOp]) -> StoreResult<AfterCall<'a>> {
        let mut r = AfterCall::default();
        for op in ops {
            match op {
                WriteOp::RewriteEvent(ev) => {
                    r.room.push(to_db(ev.room.0, "room id")?);
                    r.seq.push(to_db(ev.seq.0, "seq")?);
                    r.kind.push(i16::from(ev.kind));
                    r.body.push(&ev.body);
                }
                WriteOp::SetDirect { room, low, high } => {
                    r.direct_room.push(to_db(room.0, "room id")?);
                    r.direct_low.push(to_db(low.0, "user id")?);
                    r.direct_high.push(to_db(high.0, "user id")?);
                }
                WriteOp::AttachFiles { room, seq, files } => {
                    for &id in files {
                        r.attach_id.push(to_db(id, "file id")?);
                        r.attach_room.push(to_db(room.0, "room id")?);
                        r.attach_seq.push(to_db(seq.0, "seq")?);
                    }
                }
                WriteOp::ReleaseFiles { files } => {
                    for &id in files {
                        r.release_id.push(to_db(id, "file id")?);
                    }
                }
                WriteOp::DropMessageFiles { room, seq } => {
                    r.drop_room.push(to_db(room.0, "room id")?);
                    r.drop_seq.push(to_db(seq.0, "seq")?);
                }
                _ => {}
            }
        }
        Ok(r)
    }

    fn is_empty(&self) -> bool {
        self.room.is_empty()
            && self.direct_room.is_empty()
            && self.attach_id.is_empty()
            && self.release_id.is_empty()
            && self.drop_room.is_empty()
    }

    async fn apply(&self, tx: &mut sqlx::Transaction<'_, Postgres>) -> StoreResult<()> {
        self.apply_files(tx).await?;
        if !self.direct_room.is_empty() {
            sqlx::query(SET_DIRECT)
                .bind(&self.direct_room)
                .bind(&self.direct_low)
                .bind(&self.direct_high)
                .execute(&mut **tx)
                .await
                .map_err(|e| Postgres::error("SetDirect", e))?;
        }
        if self.room.is_empty() {
            return Ok(());
        }
        sqlx::query(REWRITE_EVENTS)
            .bind(&self.room)
            .bind(&self.seq)
            .bind(&self.kind)
            .bind(&self.body)
            .execute(&mut **tx)
            .await
            .map(drop)
            .map_err(|e| Postgres::error("RewriteEvent", e))
    }

    async fn apply_files(&self, tx: &mut sqlx::Transaction<'_, Postgres>) -> StoreResult<()> {
        if !self.attach_id.is_empty() {
            sqlx::query(ATTACH_FILES)
                .bind(&self.attach_id)
                .bind(&self.attach_room)
                .bind(&self.attach_seq)
                .execute(&mut **tx)
                .await
                .map_err(|e| Postgres::error("AttachFiles", e))?;
        }
        if !self.release_id.is_empty() {
            sqlx::query(RELEASE_FILES)
                .bind(&self.release_id)
                .execute(&mut **tx)
                .await
                .map_err(|e| Postgres::error("ReleaseFiles", e))?;
        }
        if !self.drop_room.is_empty() {
            sqlx::query(DROP_MESSAGE_FILES)
                .bind(&self.drop_room)
                .bind(&self.drop_seq)
                .execute(&mut **tx)
                .await
                .map_err(|e| Postgres::error("DropMessageFiles", e))?;
        }
        Ok(())
    }
}

/// Where the call finds the batch's events.
enum Events<'a> {
    /// In its event columns (empty when the batch has none).
    Arrays,
    /// In the staging table.
    Staged,
    /// Already in `events`: these rooms (distinct), each with the highest
    /// seq the batch wrote for it.
    Copied(&'a (Vec<i64>, Vec<i64>)),
}

/// The batch as the function's parameters: one `Vec` per array argument.
/// State op columns have one element per state op; fields an op does not
/// use hold 0 or "".
#[derive(Default)]
struct Columns<'a> {
    op_kind: Vec<i16>,
    op_pos: Vec<i32>,
    op_room: Vec<i64>,
    op_user: Vec<i64>,
    op_by: Vec<i64>,
    op_at: Vec<i64>,
    op_code: Vec<i16>,
    op_name: Vec<&'a str>,
    op_topic: Vec<&'a str>,
    op_name_folded: Vec<String>,
    op_topic_folded: Vec<String>,
    ev_room: Vec<i64>,
    ev_seq: Vec<i64>,
    ev_at: Vec<i64>,
    ev_actor: Vec<i64>,
    ev_actor_name: Vec<&'a str>,
    ev_kind: Vec<i16>,
    ev_body: Vec<&'a [u8]>,
    nt_id: Vec<i64>,
    nt_user: Vec<i64>,
    nt_kind: Vec<i16>,
    nt_room: Vec<i64>,
    nt_room_name: Vec<&'a str>,
    nt_actor: Vec<i64>,
    nt_actor_name: Vec<&'a str>,
    nt_at: Vec<i64>,
    nt_read: Vec<bool>,
    au_at: Vec<i64>,
    au_actor: Vec<i64>,
    au_action: Vec<&'a str>,
    au_room: Vec<Option<i64>>,
    au_target: Vec<Option<i64>>,
    au_detail: Vec<&'a str>,
    /// Cluster mode's lease check, made by the same statement.
    fence: Option<FenceArgs>,
}

/// One state op's fields, before they are spread over the columns.
struct StateOp<'a> {
    kind: i16,
    room: u64,
    user: u64,
    by: u64,
    at: u64,
    code: i16,
    name: &'a str,
    topic: &'a str,
}

impl<'a> StateOp<'a> {
    fn new(kind: i16, room: u64, user: u64) -> StateOp<'a> {
        StateOp {
            kind,
            room,
            user,
            by: 0,
            at: 0,
            code: 0,
            name: "",
            topic: "",
        }
    }
}

impl<'a> Columns<'a> {
    /// Spreads `ops` over the columns; events go to the arrays only if
    /// `events_as_arrays` (otherwise they are COPY'd).
    fn build(ops: &'a [WriteOp], events_as_arrays: bool) -> StoreResult<Columns<'a>> {
        let mut c = Columns::default();
        for (pos, op) in ops.iter().enumerate() {
            let state = match op {
                WriteOp::AppendEvent(ev) => {
                    if events_as_arrays {
                        c.ev_room.push(to_db(ev.room.0, "room id")?);
                        c.ev_seq.push(to_db(ev.seq.0, "seq")?);
                        c.ev_at.push(to_db(ev.at, "event time")?);
                        c.ev_actor.push(to_db(ev.actor.0, "actor id")?);
                        c.ev_actor_name.push(&ev.actor_name);
                        c.ev_kind.push(i16::from(ev.kind));
                        c.ev_body.push(&ev.body);
                    }
                    continue;
                }
                // Applied after the call (`AfterCall`).
                WriteOp::RewriteEvent(_)
                | WriteOp::SetDirect { .. }
                | WriteOp::AttachFiles { .. }
                | WriteOp::ReleaseFiles { .. }
                | WriteOp::DropMessageFiles { .. } => continue,
                WriteOp::AddNotification(n) => {
                    c.nt_id.push(to_db(n.id, "notification id")?);
                    c.nt_user.push(to_db(n.user.0, "user id")?);
                    c.nt_kind.push(i16::from(n.kind.code()));
                    c.nt_room.push(to_db(n.room.0, "room id")?);
                    c.nt_room_name.push(&n.room_name);
                    c.nt_actor.push(to_db(n.actor.0, "actor id")?);
                    c.nt_actor_name.push(&n.actor_name);
                    c.nt_at.push(to_db(n.at, "notification time")?);
                    c.nt_read.push(n.read);
                    continue;
                }
                WriteOp::Audit(a) => {
                    c.au_at.push(to_db(a.at, "audit time")?);
                    c.au_actor.push(to_db(a.actor.0, "actor id")?);
                    c.au_action.push(a.action.as_str());
                    c.au_room
                        .push(a.room.map(|r| to_db(r.0, "room id")).transpose()?);
                    c.au_target
                        .push(a.target.map(|u| to_db(u.0, "target id")).transpose()?);
                    c.au_detail.push(&a.detail);
                    continue;
                }
                WriteOp::CreateRoom {
                    room,
                    owner,
                    created_at,
                    visibility,
                    name,
                    topic,
                } => StateOp {
                    at: *created_at,
                    code: i16::from(visibility.code()),
                    name,
                    topic,
                    ..StateOp::new(kind::CREATE_ROOM, room.0, owner.0)
                },
                WriteOp::AddMember {
                    room,
                    user,
                    role,
                    joined_at,
                } => StateOp {
                    at: *joined_at,
                    code: i16::from(role.code()),
                    ..StateOp::new(kind::ADD_MEMBER, room.0, user.0)
                },
                WriteOp::RemoveMember { room, user } => {
                    StateOp::new(kind::REMOVE_MEMBER, room.0, user.0)
                }
                WriteOp::SetRole { room, user, role } => StateOp {
                    code: i16::from(role.code()),
                    ..StateOp::new(kind::SET_ROLE, room.0, user.0)
                },
                WriteOp::UpdateRoom { room, name, topic } => StateOp {
                    name,
                    topic,
                    ..StateOp::new(kind::UPDATE_ROOM, room.0, 0)
                },
                WriteOp::SetOwner { room, owner } => StateOp::new(kind::SET_OWNER, room.0, owner.0),
                WriteOp::TerminateRoom { room, at } => StateOp {
                    at: *at,
                    ..StateOp::new(kind::TERMINATE_ROOM, room.0, 0)
                },
                WriteOp::Ban { room, user, by, at } => StateOp {
                    by: by.0,
                    at: *at,
                    ..StateOp::new(kind::BAN, room.0, user.0)
                },
                WriteOp::Unban { room, user } => StateOp::new(kind::UNBAN, room.0, user.0),
                WriteOp::PutInvite { room, user, by, at } => StateOp {
                    by: by.0,
                    at: *at,
                    ..StateOp::new(kind::PUT_INVITE, room.0, user.0)
                },
                WriteOp::DeleteInvite { room, user } => {
                    StateOp::new(kind::DELETE_INVITE, room.0, user.0)
                }
                WriteOp::PutJoinRequest { room, user, at } => StateOp {
                    at: *at,
                    ..StateOp::new(kind::PUT_JOIN_REQUEST, room.0, user.0)
                },
                WriteOp::DeleteJoinRequest { room, user } => {
                    StateOp::new(kind::DELETE_JOIN_REQUEST, room.0, user.0)
                }
                WriteOp::LogJoin { user, room, at } => StateOp {
                    at: *at,
                    ..StateOp::new(kind::LOG_JOIN, room.0, user.0)
                },
                WriteOp::LogLeave {
                    user,
                    room,
                    at,
                    reason,
                } => StateOp {
                    at: *at,
                    code: i16::from(reason.code()),
                    ..StateOp::new(kind::LOG_LEAVE, room.0, user.0)
                },
            };
            c.push_state(pos, state)?;
        }
        Ok(c)
    }

    fn push_state(&mut self, pos: usize, op: StateOp<'a>) -> StoreResult<()> {
        self.op_kind.push(op.kind);
        self.op_pos
            .push(i32::try_from(pos).map_err(|_| {
                StoreError::database(format!("batch of over {pos} ops is too big"))
            })?);
        self.op_room.push(to_db(op.room, "room id")?);
        self.op_user.push(to_db(op.user, "user id")?);
        self.op_by.push(to_db(op.by, "by id")?);
        self.op_at.push(to_db(op.at, "time")?);
        self.op_code.push(op.code);
        self.op_name.push(op.name);
        self.op_topic.push(op.topic);
        // Folded as in SQLite (see the schema): one search, two backends.
        self.op_name_folded.push(op.name.to_lowercase());
        self.op_topic_folded.push(op.topic.to_lowercase());
        Ok(())
    }

    /// The call of `confab_apply_batch` with these columns, the batch's
    /// events sent as `events` says.
    fn call<'q>(&'q self, events: Events<'q>) -> sqlx::query::Query<'q, Postgres, PgArguments> {
        let sql = match (&events, self.fence.is_some()) {
            (Events::Copied(_), false) => CALL_COPIED,
            (Events::Copied(_), true) => FENCED_CALL_COPIED,
            (_, false) => CALL,
            (_, true) => FENCED_CALL,
        };
        let call = sqlx::query(sql)
            .bind(&self.op_kind)
            .bind(&self.op_pos)
            .bind(&self.op_room)
            .bind(&self.op_user)
            .bind(&self.op_by)
            .bind(&self.op_at)
            .bind(&self.op_code)
            .bind(&self.op_name)
            .bind(&self.op_topic)
            .bind(&self.op_name_folded)
            .bind(&self.op_topic_folded)
            .bind(&self.ev_room)
            .bind(&self.ev_seq)
            .bind(&self.ev_at)
            .bind(&self.ev_actor)
            .bind(&self.ev_actor_name)
            .bind(&self.ev_kind)
            .bind(&self.ev_body)
            .bind(matches!(events, Events::Staged))
            .bind(&self.nt_id)
            .bind(&self.nt_user)
            .bind(&self.nt_kind)
            .bind(&self.nt_room)
            .bind(&self.nt_room_name)
            .bind(&self.nt_actor)
            .bind(&self.nt_actor_name)
            .bind(&self.nt_at)
            .bind(&self.nt_read)
            .bind(&self.au_at)
            .bind(&self.au_actor)
            .bind(&self.au_action)
            .bind(&self.au_room)
            .bind(&self.au_target)
            .bind(&self.au_detail);
        let call = match events {
            Events::Copied((rooms, max_seqs)) => call.bind(rooms).bind(max_seqs),
            Events::Arrays | Events::Staged => call,
        };
        match &self.fence {
            Some(f) => call.bind(f.owner).bind(&f.parts).bind(&f.epochs),
            None => call,
        }
    }
}
