//! Which shard owns a room, and carrying commands to it.

use std::sync::Arc;

use confab_protocol::{ErrorCode, RoomId};
use tokio::sync::mpsc;

use super::{RoomSlot, Shard, ShardCmd, ShardConfig};
use crate::persist::batch::BatchHandle;

/// Maps rooms to shards and carries commands to them.
#[derive(Clone)]
pub struct Router {
    shards: Arc<[mpsc::Sender<ShardCmd>]>,
    /// Cluster mode: which rooms this node serves; `None` on a single node.
    rooms_here: Option<crate::cluster::RoomsHere>,
}

impl Router {
    /// Sends `cmd` to the shard owning `room`. Waits if that shard is
    /// backlogged (backpressure on the sending connection). In cluster
    /// mode a room this node does not serve goes to `RemoteRooms` instead,
    /// which answers it.
    pub async fn send(&self, room: RoomId, cmd: ShardCmd) -> Result<(), ErrorCode> {
        if let Some(here) = &self.rooms_here {
            if !here.hosted.serves(room) {
                here.remote.forward(room, cmd);
                return Ok(());
            }
        }
        let idx = shard_of(room, self.shards.len());
        self.shards[idx]
            .send(cmd)
            .await
            .map_err(|_| ErrorCode::ShuttingDown)
    }

    /// Sends every shard a `Tick` and waits until each has handled it.
    pub async fn tick_all(&self) {
        self.each_and_wait(|_, done| ShardCmd::Tick(Some(done)))
            .await;
    }

    /// Sends shard `i` the command `make(i, done)` for every shard, then
    /// waits until each has sent `done`.
    async fn each_and_wait(
        &self,
        mut make: impl FnMut(usize, tokio::sync::oneshot::Sender<()>) -> ShardCmd,
    ) {
        let mut waits = Vec::with_capacity(self.shards.len());
        for (i, tx) in self.shards.iter().enumerate() {
            let (done, wait) = tokio::sync::oneshot::channel();
            if tx.send(make(i, done)).await.is_ok() {
                waits.push(wait);
            }
        }
        for wait in waits {
            let _ = wait.await;
        }
    }

    /// Cluster mode: installs rooms loaded from the store in their shards
    /// and waits until every shard holds its share.
    /// `seen`: what this node's connections saw of them before (the
    /// relay's), replayed from as they subscribe.
    pub async fn install(&self, rooms: Vec<RoomSlot>, seen: crate::cluster::routing::SeenRooms) {
        let n = self.shards.len();
        let mut per_shard = by_shard(rooms, n);
        let seen = Arc::new(seen);
        self.each_and_wait(|i, done| ShardCmd::Install {
            slots: std::mem::take(&mut per_shard[i]),
            seen: seen.clone(),
            done,
        })
        .await;
    }

    /// Cluster mode: every shard lets go of the rooms of `partitions` (of
    /// `of`); returns once each has (so every command it applied for them
    /// before has been queued to the batch writer).
    pub async fn evict(&self, partitions: &[u32], of: u32) {
        self.each_and_wait(|_, done| ShardCmd::Evict {
            partitions: partitions.to_vec(),
            of,
            done,
        })
        .await;
    }

    /// Sends a command built by `make` to every shard.
    pub async fn send_all(&self, make: impl Fn() -> ShardCmd) {
        for tx in self.shards.iter() {
            let _ = tx.send(make()).await;
        }
    }
}

/// How often a shard looks for expired typing states: a STOP goes out at
/// most this long after the state's 5 s ran out.
const TICK_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Sends the shard a `Tick` every [`TICK_EVERY`] until it is gone. A tick
/// that finds the shard's queue full is skipped (the next one comes soon).
async fn tick(shard: mpsc::WeakSender<ShardCmd>) {
    let mut every = tokio::time::interval(TICK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(tx) = shard.upgrade() else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(ShardCmd::Tick(None)) {
            return;
        }
    }
}

/// The shard owning `room`: a multiplicative hash, so that sequential ids
/// spread evenly.
pub fn shard_of(room: RoomId, shards: usize) -> usize {
    ((room.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % shards as u64) as usize
}

/// `rooms` split by the shard of `n` each belongs to.
fn by_shard(rooms: Vec<RoomSlot>, n: usize) -> Vec<Vec<RoomSlot>> {
    let mut per_shard: Vec<Vec<RoomSlot>> = (0..n).map(|_| Vec::new()).collect();
    for slot in rooms {
        per_shard[shard_of(slot.id(), n)].push(slot);
    }
    per_shard
}

/// Starts `n` shards, giving each the restored rooms it owns.
pub fn spawn_shards(
    n: usize,
    rooms: Vec<RoomSlot>,
    batch: BatchHandle,
    cfg: ShardConfig,
) -> (Router, Vec<tokio::task::JoinHandle<()>>) {
    let per_shard = by_shard(rooms, n);
    let mut senders = Vec::with_capacity(n);
    let mut tasks = Vec::with_capacity(n);
    for (index, slots) in per_shard.into_iter().enumerate() {
        let (tx, rx) = mpsc::channel(cfg.queue_len);
        let shard = Shard::new(index, slots, batch.clone(), &cfg);
        tasks.push(tokio::spawn(shard.run(rx)));
        tokio::spawn(tick(tx.downgrade()));
        senders.push(tx);
    }
    (
        Router {
            shards: senders.into(),
            rooms_here: cfg.rooms_here,
        },
        tasks,
    )
}
