//! [`LeaseStore`] for Postgres: the statements of cluster mode's partition
//! leases and node heartbeats (tables and the fence function:
//! `migrations/postgres/0011_cluster.sql`).
//!
//! Each operation is one statement in autocommit, and each takes its time
//! from the database (`now()`): a lease's expiry is compared only with the
//! clock that set it. A lease changes owner only in [`ACQUIRE`], whose
//! `FOR UPDATE SKIP LOCKED` and re-checked condition let exactly one node
//! take a free partition, at the next epoch.

use std::sync::LazyLock;
use std::time::Duration;

use confab_protocol::{RoomId, UserId};
use sqlx::Postgres;

use super::PgStore;
use crate::cluster::{IdKind, Incarnation, JoinRefused, Lease, LeaseStore};
use crate::common::sql::{self as shared, EVENTS_TABLE};
use crate::common::{rows, Arg, Backend, Dialect, Sql};
use crate::{RoomsState, StoreError, StoreResult};

/// The stored partition count; the first node's count is stored.
const SETTINGS: &str = "INSERT INTO cluster_settings (one, partitions) VALUES (1, $1) \
     ON CONFLICT (one) DO UPDATE SET one = 1 RETURNING partitions";
/// One lease row per partition, free.
const LEASE_ROWS: &str = "INSERT INTO partition_leases (part) SELECT generate_series(0, $1 - 1) \
     ON CONFLICT (part) DO NOTHING";
/// A fresh incarnation under `node_id`, unless a live one has the name.
const REGISTER: &str = "INSERT INTO cluster_nodes (node_id, incarnation, expires_at) \
     VALUES ($1, nextval('cluster_incarnations'), now() + make_interval(secs => $2::float8 / 1000)) \
     ON CONFLICT (node_id) DO UPDATE \
         SET incarnation = excluded.incarnation, expires_at = excluded.expires_at \
         WHERE cluster_nodes.expires_at <= now() \
     RETURNING incarnation";
const HEARTBEAT: &str = "UPDATE cluster_nodes \
     SET expires_at = now() + make_interval(secs => $3::float8 / 1000) \
     WHERE node_id = $1 AND incarnation = $2 RETURNING 1";
const LIVE_NODES: &str =
    "SELECT node_id FROM cluster_nodes WHERE expires_at > now() ORDER BY node_id";
const RENEW: &str = "UPDATE partition_leases \
     SET expires_at = now() + make_interval(secs => $2::float8 / 1000) \
     WHERE owner = $1 AND expires_at > now() RETURNING part, epoch";
/// Free partitions (released, expired, never held), lowest first, each at
/// its next epoch. The inner `FOR UPDATE SKIP LOCKED` makes concurrent
/// acquirers take different rows; the outer condition is re-checked on
/// the locked row, so a lease renewed meanwhile is not taken.
const ACQUIRE: &str = "UPDATE partition_leases l \
     SET owner = $1, owner_node = $2, epoch = l.epoch + 1, \
         expires_at = now() + make_interval(secs => $4::float8 / 1000) \
     FROM (SELECT part FROM partition_leases WHERE expires_at <= now() \
           ORDER BY part LIMIT $3 FOR UPDATE SKIP LOCKED) free \
     WHERE l.part = free.part AND l.expires_at <= now() \
     RETURNING l.part, l.epoch";
/// Expiry set to now: free for the next acquirer at once.
const RELEASE: &str = "UPDATE partition_leases SET expires_at = now() \
     WHERE owner = $1 AND part = ANY($2) AND expires_at > now() RETURNING part";
const LEAVE: &str = "DELETE FROM cluster_nodes WHERE node_id = $1 AND incarnation = $2";

/// A block of `$1` room ids: from above every stored room id, or from
/// where the last block ended if that is higher. Returns `start`.
const ROOM_ID_BLOCK: &str = "INSERT INTO cluster_id_blocks AS b (kind, next) \
     SELECT 'rooms', coalesce(max(id), 0) + 1 + $1 FROM rooms \
     ON CONFLICT (kind) DO UPDATE SET next = greatest(b.next, excluded.next - $1) + $1 \
     RETURNING b.next - $1 AS start";
/// [`ROOM_ID_BLOCK`] for notification ids (the floor remembers ids that
/// housekeeping has since deleted, as `MAX_NOTIFICATION_ID` does).
const NOTIFICATION_ID_BLOCK: &str = "INSERT INTO cluster_id_blocks AS b (kind, next) \
     SELECT 'notifications', coalesce(max(m), 0) + 1 + $1 FROM ( \
         SELECT max_id AS m FROM notification_id_floor WHERE one = 1 \
         UNION ALL SELECT max(id) FROM notifications) AS ids \
     ON CONFLICT (kind) DO UPDATE SET next = greatest(b.next, excluded.next - $1) + $1 \
     RETURNING b.next - $1 AS start";

/// Claims a pair's direct room (`migrations/postgres/0013`): the room
/// already stored for the pair, else the fresh id `$3`; a pair already
/// claimed keeps its claim (`DO UPDATE` to a no-op so that the winner's row,
/// committed by another transaction after this statement started, is what
/// comes back — `DO NOTHING` would return nothing then).
const DIRECT_ROOM: &str = "INSERT INTO cluster_direct_pairs AS p (low, high, room) \
     SELECT $1, $2, coalesce( \
         (SELECT id FROM rooms WHERE direct_low = $1 AND direct_high = $2), $3) \
     ON CONFLICT (low, high) DO UPDATE SET room = p.room \
     RETURNING p.room";

/// `all`, one of the start-up loads, kept to the rooms whose `room` column
/// modulo `$1` is in the comma-separated list `$2`, ordered by `order` (the
/// order `all` gives).
fn of_partitions(all: &str, room: &str, order: &str) -> String {
    format!(
        "SELECT q.* FROM ({all}) q \
         WHERE q.{room} % $1 = ANY(string_to_array($2, ',')::bigint[]) ORDER BY {order}"
    )
}

/// The start-up loads of `common/sql.rs`, for some partitions' rooms.
struct PartitionLoads {
    rooms: String,
    members: String,
    bans: String,
    invites: String,
    requests: String,
}

static LOADS: LazyLock<PartitionLoads> = LazyLock::new(|| PartitionLoads {
    rooms: of_partitions(EVENTS_TABLE.load_rooms, "id", "q.id"),
    members: of_partitions(
        shared::LOAD_MEMBERS,
        "room_id",
        "q.room_id, q.joined_at, q.user_id",
    ),
    bans: of_partitions(shared::LOAD_BANS, "room_id", "q.room_id, q.user_id"),
    invites: of_partitions(shared::LOAD_INVITES, "room_id", "q.room_id, q.user_id"),
    requests: of_partitions(
        shared::LOAD_JOIN_REQUESTS,
        "room_id",
        "q.room_id, q.at, q.user_id",
    ),
});

fn all<R, T>(found: Vec<R>, map: impl Fn(&R) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    found.iter().map(map).collect()
}

fn millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

fn incarnation(value: i64) -> StoreResult<Incarnation> {
    u64::try_from(value)
        .map(Incarnation)
        .map_err(|_| StoreError::database(format!("negative incarnation {value}")))
}

fn owner(me: Incarnation) -> StoreResult<i64> {
    i64::try_from(me.0).map_err(|_| StoreError::database("incarnation out of range"))
}

fn leases(rows: Vec<(i32, i64)>) -> StoreResult<Vec<Lease>> {
    let mut out = rows
        .into_iter()
        .map(|(part, epoch)| {
            Ok(Lease {
                partition: u32::try_from(part)
                    .map_err(|_| StoreError::database(format!("partition {part}")))?,
                epoch: u64::try_from(epoch)
                    .map_err(|_| StoreError::database(format!("epoch {epoch}")))?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    out.sort_unstable();
    Ok(out)
}

#[async_trait::async_trait]
impl LeaseStore for PgStore {
    async fn join_cluster(
        &self,
        node: &str,
        partitions: u32,
        ttl: Duration,
    ) -> StoreResult<Result<Incarnation, JoinRefused>> {
        let pool = &self.pool.inner;
        let count = i32::try_from(partitions)
            .map_err(|_| StoreError::database("partition count out of range"))?;
        let stored: i32 = sqlx::query_scalar(SETTINGS)
            .bind(count)
            .fetch_one(pool)
            .await
            .map_err(|e| Postgres::error("cluster settings", e))?;
        if stored != count {
            let stored = u32::try_from(stored).unwrap_or(0);
            return Ok(Err(JoinRefused::PartitionsDiffer { stored }));
        }
        sqlx::query(LEASE_ROWS)
            .bind(count)
            .execute(pool)
            .await
            .map_err(|e| Postgres::error("partition lease rows", e))?;
        let joined: Option<i64> = sqlx::query_scalar(REGISTER)
            .bind(node)
            .bind(millis(ttl))
            .fetch_optional(pool)
            .await
            .map_err(|e| Postgres::error("registering the node", e))?;
        match joined {
            Some(value) => incarnation(value).map(Ok),
            None => Ok(Err(JoinRefused::NodeIdInUse)),
        }
    }

    async fn heartbeat(&self, node: &str, me: Incarnation, ttl: Duration) -> StoreResult<bool> {
        let row: Option<i32> = sqlx::query_scalar(HEARTBEAT)
            .bind(node)
            .bind(owner(me)?)
            .bind(millis(ttl))
            .fetch_optional(&self.pool.inner)
            .await
            .map_err(|e| Postgres::error("node heartbeat", e))?;
        Ok(row.is_some())
    }

    async fn live_nodes(&self) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(LIVE_NODES)
            .fetch_all(&self.pool.inner)
            .await
            .map_err(|e| Postgres::error("live nodes", e))
    }

    async fn renew_leases(&self, me: Incarnation, ttl: Duration) -> StoreResult<Vec<Lease>> {
        let rows = sqlx::query_as(RENEW)
            .bind(owner(me)?)
            .bind(millis(ttl))
            .fetch_all(&self.pool.inner)
            .await
            .map_err(|e| Postgres::error("renewing leases", e))?;
        leases(rows)
    }

    async fn acquire_leases(
        &self,
        node: &str,
        me: Incarnation,
        max: u32,
        ttl: Duration,
    ) -> StoreResult<Vec<Lease>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query_as(ACQUIRE)
            .bind(owner(me)?)
            .bind(node)
            .bind(i64::from(max))
            .bind(millis(ttl))
            .fetch_all(&self.pool.inner)
            .await
            .map_err(|e| Postgres::error("acquiring leases", e))?;
        leases(rows)
    }

    async fn release_leases(&self, me: Incarnation, partitions: &[u32]) -> StoreResult<Vec<u32>> {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let parts: Vec<i32> = partitions
            .iter()
            .map(|&p| i32::try_from(p).map_err(|_| StoreError::database("partition out of range")))
            .collect::<StoreResult<_>>()?;
        let released: Vec<i32> = sqlx::query_scalar(RELEASE)
            .bind(owner(me)?)
            .bind(&parts)
            .fetch_all(&self.pool.inner)
            .await
            .map_err(|e| Postgres::error("releasing leases", e))?;
        Ok(released
            .into_iter()
            .filter_map(|p| u32::try_from(p).ok())
            .collect())
    }

    async fn load_partitions(
        &self,
        partitions: u32,
        parts: &[u32],
        per_room: u32,
    ) -> StoreResult<RoomsState> {
        if parts.is_empty() {
            return Ok(RoomsState::default());
        }
        let list = parts
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let scope = [Arg::Int(i64::from(partitions)), Arg::Text(&list)];
        let loads = &*LOADS;
        let db = self.readers();
        let recent = if per_room == 0 {
            Vec::new()
        } else {
            let args = [
                Arg::Int(i64::from(per_room)),
                Arg::Int(i64::from(partitions)),
                Arg::Text(&list),
            ];
            let sql = super::sql::RECENT_EVENTS_OF_PARTITIONS;
            all(
                db.rows("load_recent_events", sql, &args).await?,
                rows::event,
            )?
        };
        Ok(RoomsState {
            rooms: all(
                db.rows("load_rooms", &loads.rooms, &scope).await?,
                rows::room,
            )?,
            members: all(
                db.rows("load_members", &loads.members, &scope).await?,
                rows::member,
            )?,
            bans: all(db.rows("load_bans", &loads.bans, &scope).await?, rows::ban)?,
            invites: all(
                db.rows("load_invites", &loads.invites, &scope).await?,
                rows::invite,
            )?,
            requests: all(
                db.rows("load_join_requests", &loads.requests, &scope)
                    .await?,
                rows::join_request,
            )?,
            recent,
        })
    }

    async fn direct_room(&self, pair: (UserId, UserId), fresh: RoomId) -> StoreResult<RoomId> {
        let id = |n: u64| {
            i64::try_from(n).map_err(|_| StoreError::database(format!("id {n} out of range")))
        };
        let room: i64 = sqlx::query_scalar(DIRECT_ROOM)
            .bind(id(pair.0 .0)?)
            .bind(id(pair.1 .0)?)
            .bind(id(fresh.0)?)
            .fetch_one(&self.pool.inner)
            .await
            .map_err(|e| Postgres::error("claiming a direct room", e))?;
        u64::try_from(room)
            .map(RoomId)
            .map_err(|_| StoreError::database(format!("direct room {room}")))
    }

    async fn id_block(&self, kind: IdKind, size: u32) -> StoreResult<std::ops::Range<u64>> {
        let sql = match kind {
            IdKind::Rooms => ROOM_ID_BLOCK,
            IdKind::Notifications => NOTIFICATION_ID_BLOCK,
        };
        let start: i64 = sqlx::query_scalar(sql)
            .bind(i64::from(size))
            .fetch_one(&self.pool.inner)
            .await
            .map_err(|e| Postgres::error("taking a block of ids", e))?;
        let start = u64::try_from(start)
            .map_err(|_| StoreError::database(format!("id block starts at {start}")))?;
        Ok(start..start + u64::from(size))
    }

    async fn leave_cluster(&self, node: &str, me: Incarnation) -> StoreResult<()> {
        sqlx::query(LEAVE)
            .bind(node)
            .bind(owner(me)?)
            .execute(&self.pool.inner)
            .await
            .map(drop)
            .map_err(|e| Postgres::error("leaving the cluster", e))
    }
}
