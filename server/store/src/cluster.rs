//! What cluster mode needs from the store: partition leases with fencing
//! epochs, the nodes' heartbeats, and the fence a batch carries. Only the
//! Postgres backend implements [`LeaseStore`] and
//! [`BatchSink::apply_fenced_batch`](crate::BatchSink::apply_fenced_batch);
//! cluster mode on SQLite is refused at start-up.
//!
//! Every decision is taken by the database's clock inside one conditional
//! statement (`migrations/postgres/0011_cluster.sql`), so the nodes' clocks
//! never matter and two nodes can never both hold a partition.

use std::time::Duration;

use confab_protocol::{RoomId, UserId};

use crate::{RoomsState, StoreResult};

/// One process's membership of the cluster: a number the database hands
/// out at each join, so a node restarted under the same name never holds
/// its predecessor's leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Incarnation(pub u64);

/// A partition held at an epoch (the fencing token: it rises on every
/// acquisition, so a later owner always holds a higher one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lease {
    pub partition: u32,
    pub epoch: u64,
}

/// What a batch written in cluster mode claims: that `owner` holds every
/// one of `leases` (distinct partitions) now. The store checks it in the
/// batch's own transaction and commits nothing if it does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub owner: Incarnation,
    pub leases: Vec<Lease>,
}

/// The ids a cluster node hands out itself, in blocks
/// ([`LeaseStore::id_block`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    Rooms,
    Notifications,
}

/// Why [`LeaseStore::join_cluster`] refused a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinRefused {
    /// The deployment was started with another partition count.
    PartitionsDiffer { stored: u32 },
    /// A live node (heartbeat not yet expired) already has this name.
    NodeIdInUse,
}

/// Partition leases and node heartbeats ([`crate::postgres::PgStore`]).
/// Each call is one statement (the join, three), timed by the database.
#[async_trait::async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// Stores `partitions` if no count is stored yet (and creates the
    /// partitions' lease rows), refuses another count, and registers
    /// `node` live for `ttl` under a fresh incarnation — unless a live
    /// node already has that name.
    async fn join_cluster(
        &self,
        node: &str,
        partitions: u32,
        ttl: Duration,
    ) -> StoreResult<Result<Incarnation, JoinRefused>>;
    /// Keeps `node` live for `ttl` more; `false` if another incarnation
    /// has taken the name (this one's heartbeat had expired).
    async fn heartbeat(&self, node: &str, me: Incarnation, ttl: Duration) -> StoreResult<bool>;
    /// The names of the nodes whose heartbeat has not expired.
    async fn live_nodes(&self) -> StoreResult<Vec<String>>;
    /// Extends every unexpired lease `me` holds by `ttl` from now; returns
    /// them. A lease that expired is not renewed (it may be acquired again,
    /// at a higher epoch).
    async fn renew_leases(&self, me: Incarnation, ttl: Duration) -> StoreResult<Vec<Lease>>;
    /// Takes up to `max` partitions that are free (released or expired),
    /// each at its epoch + 1, for `ttl`; returns those taken.
    async fn acquire_leases(
        &self,
        node: &str,
        me: Incarnation,
        max: u32,
        ttl: Duration,
    ) -> StoreResult<Vec<Lease>>;
    /// Ends `me`'s leases of `partitions` now, so that other nodes may take
    /// them at once; returns the partitions released.
    async fn release_leases(&self, me: Incarnation, partitions: &[u32]) -> StoreResult<Vec<u32>>;
    /// Removes `node`'s heartbeat (graceful shutdown, after its leases
    /// were released).
    async fn leave_cluster(&self, node: &str, me: Incarnation) -> StoreResult<()>;
    /// The stored state of the rooms in `parts` of `partitions` (room id
    /// modulo `partitions`), with up to `per_room` recent events each: what
    /// a node loads for the partitions it gained.
    async fn load_partitions(
        &self,
        partitions: u32,
        parts: &[u32],
        per_room: u32,
    ) -> StoreResult<RoomsState>;
    /// The next `size` ids of `kind` no node has had: above every id of
    /// that kind stored, and disjoint from every block handed out before.
    async fn id_block(&self, kind: IdKind, size: u32) -> StoreResult<std::ops::Range<u64>>;
    /// The direct room of `pair` (lower user id first): the room it has
    /// (claimed before, or stored), else `fresh`, claimed for it now. Of
    /// two nodes claiming one pair at once, one claim wins and both get
    /// its room.
    async fn direct_room(&self, pair: (UserId, UserId), fresh: RoomId) -> StoreResult<RoomId>;
}
