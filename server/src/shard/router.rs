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
}

impl Router {
    /// Sends `cmd` to the shard owning `room`. Waits if that shard is
    /// backlogged (backpressure on the sending connection).
    pub async fn send(&self, room: RoomId, cmd: ShardCmd) -> Result<(), ErrorCode> {
        let idx = shard_of(room, self.shards.len());
        self.shards[idx]
            .send(cmd)
            .await
            .map_err(|_| ErrorCode::ShuttingDown)
    }

    /// Sends every shard a `Tick` and waits until each has handled it.
    pub async fn tick_all(&self) {
        let mut waits = Vec::with_capacity(self.shards.len());
        for tx in self.shards.iter() {
            let (done, wait) = tokio::sync::oneshot::channel();
            if tx.send(ShardCmd::Tick(Some(done))).await.is_ok() {
                waits.push(wait);
            }
        }
        for wait in waits {
            let _ = wait.await;
        }
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

/// Starts `n` shards, giving each the restored rooms it owns.
pub fn spawn_shards(
    n: usize,
    rooms: Vec<RoomSlot>,
    batch: BatchHandle,
    cfg: ShardConfig,
) -> (Router, Vec<tokio::task::JoinHandle<()>>) {
    let mut per_shard: Vec<Vec<RoomSlot>> = (0..n).map(|_| Vec::new()).collect();
    for slot in rooms {
        per_shard[shard_of(slot.id(), n)].push(slot);
    }
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
        },
        tasks,
    )
}
