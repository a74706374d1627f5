//! Cluster mode (`--cluster-nats`): which node owns which rooms, and
//! routing between the nodes.
//!
//! Rooms are grouped into a fixed number of partitions ([`partition_of`],
//! the one place that maps a room to its partition). Each partition is
//! owned by one node at a time under a lease kept in the shared Postgres
//! (`confab_store::LeaseStore`), with an epoch that rises on every change
//! of owner: the fencing token every batch of the owner's writes carries
//! and the store checks in the batch's own transaction
//! (`BatchSink::apply_fenced_batch`), so a node that lost a lease — paused,
//! cut off, slow — can never commit for those rooms again.
//!
//! - [`lease`]: the [`LeaseManager`] — joins, renews, acquires, balances
//!   and releases; all decisions by the database's clock.
//! - [`ownership`]: [`Ownership`], the lock-free snapshot the runtime asks
//!   "do I own room R, at which epoch" (the shards stamp each write with
//!   it), and the [`LeaseEvent`]s of gained and lost partitions.
//! - [`host`]: [`RoomHost`], phase 2 — rooms follow the leases: a gained
//!   partition's rooms are loaded from the store and installed in the
//!   shards before they serve it; a lost one's are let go; a released
//!   one is drained first ([`Handover`]).
//! - [`hosted`]: [`Hosted`], which partitions the shards serve now.
//! - [`remote`]: [`RemoteRooms`], where commands for rooms served
//!   elsewhere go ([`RefuseRemote`]: refused with `ROOM_MOVING`).
//! - [`routing`]: phase 3, the requesting side over NATS — [`NatsRemote`]
//!   forwards commands to the room's owner, the relay replays remote
//!   rooms' events on this node's connections, [`Fanout`] is what the
//!   shards publish their rooms' events and per-user pushes through.
//! - `relay`: phase 3, the task that sends forwarded commands and keeps
//!   the remote rooms' members connected here (`remote_table`: that
//!   table, a plain state machine).
//! - [`serve`]: phase 3, the owner's side — commands other nodes forward,
//!   applied in the shards like local ones.
//! - [`wire`]: the versioned payloads nodes send each other.
//! - [`ids`]: [`IdSource`], room and notification ids in blocks that are
//!   unique across nodes.
//!
//! Per-user pushes (notifications, announcements, rooms a user was added
//! to, read markers, presence, profiles) are published once on the
//! user's partition subject and delivered by every other node's relay to
//! its connections of the user ([`wire::UserPush`]). Without `--cluster-nats`
//! none of this runs: no lease task, no NATS connection, shards stamp no
//! fence and publish nothing, and the router never consults [`Hosted`].

pub mod host;
pub mod hosted;
pub mod ids;
pub mod lease;
pub mod ownership;
mod relay;
pub mod remote;
mod remote_presence;
mod remote_table;
pub mod routing;
pub mod serve;
pub mod wire;

pub use host::RoomHost;
pub use hosted::{Hosted, Hosting};
pub use ids::{IdBlocks, IdSource};
pub use lease::{Handover, JoinError, LeaseConfig, LeaseManager, LeaseTask};
pub use ownership::{LeaseEvent, Ownership};
pub use remote::{RefuseRemote, RemoteRooms, ROOM_MOVING_RETRY};
pub use routing::{Fanout, NatsRemote, RelayHandle, Routing, Subjects};

use std::sync::Arc;

use confab_protocol::RoomId;

/// What the router and the shards of a cluster node consult for every
/// room command: whether this node serves the room, and where commands
/// for rooms it does not serve go.
#[derive(Clone)]
pub struct RoomsHere {
    pub hosted: Arc<Hosted>,
    pub remote: Arc<dyn RemoteRooms>,
    /// Where the shards publish their rooms' events for the other nodes
    /// (`None`: nothing is published, as in phase 2's tests).
    pub fanout: Option<Fanout>,
}

impl std::fmt::Debug for RoomsHere {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomsHere")
            .field("hosted", &self.hosted)
            .finish_non_exhaustive()
    }
}

/// The partition of `room` among `partitions`: its id modulo the count.
/// Room ids are handed out in sequence, so consecutive rooms land on
/// consecutive partitions and the partitions fill evenly.
pub fn partition_of(room: RoomId, partitions: u32) -> u32 {
    (room.0 % u64::from(partitions.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_spread_over_the_partitions_by_id() {
        assert_eq!(partition_of(RoomId(0), 64), 0);
        assert_eq!(partition_of(RoomId(65), 64), 1);
        assert_eq!(partition_of(RoomId(u64::MAX), 64), 63);
        let mut count = [0u32; 8];
        for id in 1..=800 {
            count[partition_of(RoomId(id), 8) as usize] += 1;
        }
        assert!(count.iter().all(|&c| c == 100), "{count:?}");
    }
}
