//! The seam for commands naming a room this node does not serve: its
//! partition is owned by another node, or is moving. The router hands such
//! a command to [`RemoteRooms::forward`] instead of a shard (and a shard
//! does the same for one that raced a hand-over), so it is never applied
//! here.
//!
//! A cluster node's implementation is [`NatsRemote`](super::routing::NatsRemote)
//! (phase 3): the command goes to the node serving the room over NATS.
//! [`RefuseRemote`] answers every such command with `ROOM_MOVING` and its
//! retry hint (SPEC.md §6), as phase 2 did; the NATS router answers the
//! same when nobody serves the room. A single node has no `RemoteRooms`
//! at all: its router never looks (one branch on an `Option`).

use confab_protocol::{ErrorCode, RoomId};

use crate::persist::batch::WeakBatchHandle;
use crate::shard::ShardCmd;

/// How long a client is asked to wait before retrying a `ROOM_MOVING`
/// request: about a lease round, when a hand-over completes.
pub const ROOM_MOVING_RETRY: std::time::Duration = std::time::Duration::from_millis(200);

/// Where commands for rooms this node does not serve go.
pub trait RemoteRooms: Send + Sync + 'static {
    /// Takes `cmd`, which names `room`. Must not block or await: shards
    /// call it too (phase 3 queues to its NATS task). Whatever it does,
    /// `cmd` is answered exactly once.
    fn forward(&self, room: RoomId, cmd: ShardCmd);
}

/// Refuses every command for a room served elsewhere with `ROOM_MOVING`,
/// giving back any files a refused message had claimed.
pub struct RefuseRemote {
    /// Weak: the router holding this must not keep the batch writer
    /// running at shutdown.
    pub batch: WeakBatchHandle,
}

impl RemoteRooms for RefuseRemote {
    fn forward(&self, room: RoomId, cmd: ShardCmd) {
        tracing::debug!(%room, "command for a room this node does not serve: ROOM_MOVING");
        refuse(cmd, &self.batch);
    }
}

/// Answers `cmd` with `ROOM_MOVING` without applying it, giving back the
/// files a refused message had claimed.
pub(super) fn refuse(cmd: ShardCmd, batch: &WeakBatchHandle) {
    crate::metrics::cluster_room_moving();
    cmd.refuse(ErrorCode::RoomMoving, batch.upgrade().as_ref());
}
