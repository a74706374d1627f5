//! Which partitions' rooms this node's shards hold and accept commands
//! for: a table of atomics, one state per partition, read by the router
//! (on every room command, in cluster mode only) and by the shards, and
//! written only by the [`RoomHost`](super::host::RoomHost).
//!
//! A partition is *serving* only after every shard installed its rooms
//! (loaded from the store after the lease was granted), and stops serving
//! — *draining*, then *off* — before the shards let its rooms go. So a
//! shard never applies a command for a room it has not installed, and
//! whatever it applied before a drain is queued to the batch writer ahead
//! of the drain's barrier.

use std::sync::atomic::{AtomicU8, Ordering};

use confab_protocol::RoomId;

use super::partition_of;

/// What this node does with a partition's rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Hosting {
    /// Not here (owned elsewhere, or not loaded yet): commands go to
    /// [`RemoteRooms`](super::RemoteRooms).
    Off = 0,
    /// Installed in the shards: commands are applied here.
    Serving = 1,
    /// Being handed over: new commands are refused, those already applied
    /// are committed before the lease is released.
    Draining = 2,
}

/// Per partition, its [`Hosting`] (see the module doc).
#[derive(Debug)]
pub struct Hosted {
    states: Box<[AtomicU8]>,
    /// Woken at every change (the NATS side subscribes to the command
    /// subjects of the partitions served, `serve.rs`).
    changed: tokio::sync::Notify,
}

impl Hosted {
    /// Hosts nothing, of `partitions` partitions.
    pub fn new(partitions: u32) -> Hosted {
        Hosted {
            states: (0..partitions.max(1)).map(|_| AtomicU8::new(0)).collect(),
            changed: tokio::sync::Notify::new(),
        }
    }

    pub fn partitions(&self) -> u32 {
        self.states.len() as u32
    }

    /// Whether commands for `room` are applied on this node now.
    pub fn serves(&self, room: RoomId) -> bool {
        self.serves_partition(partition_of(room, self.partitions()))
    }

    pub fn serves_partition(&self, partition: u32) -> bool {
        self.states
            .get(partition as usize)
            .is_some_and(|s| s.load(Ordering::Acquire) == Hosting::Serving as u8)
    }

    /// The partitions served now.
    pub fn serving(&self) -> Vec<u32> {
        (0..self.partitions())
            .filter(|&p| self.serves_partition(p))
            .collect()
    }

    /// What this node does with `partition` now.
    pub fn state(&self, partition: u32) -> Hosting {
        match self
            .states
            .get(partition as usize)
            .map(|s| s.load(Ordering::Acquire))
        {
            Some(1) => Hosting::Serving,
            Some(2) => Hosting::Draining,
            _ => Hosting::Off,
        }
    }

    pub(super) fn set(&self, partition: u32, state: Hosting) {
        if let Some(s) = self.states.get(partition as usize) {
            s.store(state as u8, Ordering::Release);
        }
        self.changed.notify_waiters();
    }

    /// Resolves at the next change after it was created (enable it
    /// before reading the states, so a change in between is not missed).
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_serving_partition_serves() {
        let h = Hosted::new(4);
        assert!(!h.serves(RoomId(5)));
        h.set(1, Hosting::Serving);
        assert!(h.serves(RoomId(5)));
        assert!(!h.serves(RoomId(6)));
        assert_eq!(h.serving(), vec![1]);
        h.set(1, Hosting::Draining);
        assert!(
            !h.serves(RoomId(5)),
            "a draining partition takes nothing new"
        );
        assert!(h.serving().is_empty());
    }
}
