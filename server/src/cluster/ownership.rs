//! The partitions this node owns, as the runtime reads them: a table of
//! atomics, one epoch per partition (0: not owned), and the local instant
//! until which the table may be trusted. A lookup is two atomic loads and
//! a clock read; only the lease manager writes.
//!
//! **Why a local deadline.** The database decides expiry, but a node must
//! stop believing it owns a partition *before* the database lets another
//! node take it. Each renewal round is sent at a local instant `t`; the
//! database sets the expiry to its `now()` plus the lease, and its `now()`
//! is later than `t`. So until `t + lease` by this node's monotonic clock
//! the lease cannot have expired (only the clocks' *rates* are assumed to
//! agree, never their readings). Past that, without a newer renewal, every
//! lookup answers "not owned". The store's fence check is what makes
//! writes safe; this deadline keeps the node's own view honest.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use confab_protocol::RoomId;
use confab_store::Lease;

use super::partition_of;

/// A partition gained or lost (released, expired or taken), for the runtime
/// to start or stop running its rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEvent {
    Gained(Lease),
    Lost(Lease),
}

/// What this node owns now (see the module doc).
#[derive(Debug)]
pub struct Ownership {
    /// Per partition, the epoch held, or 0 (epochs start at 1).
    epochs: Box<[AtomicU64]>,
    /// Milliseconds after `base` until which `epochs` may be trusted.
    valid_until: AtomicU64,
    base: Instant,
}

impl Ownership {
    /// Owns nothing, of `partitions` partitions.
    pub fn new(partitions: u32) -> Ownership {
        Ownership {
            epochs: (0..partitions.max(1)).map(|_| AtomicU64::new(0)).collect(),
            valid_until: AtomicU64::new(0),
            base: Instant::now(),
        }
    }

    pub fn partitions(&self) -> u32 {
        self.epochs.len() as u32
    }

    /// The partition of `room`.
    pub fn partition_of(&self, room: RoomId) -> u32 {
        partition_of(room, self.partitions())
    }

    /// The epoch at which this node owns `room` now, if it does.
    pub fn epoch_of(&self, room: RoomId) -> Option<u64> {
        let claim = self.claim(room);
        (claim.epoch != 0).then_some(claim.epoch)
    }

    /// What a write for `room` claims: its partition and the epoch this
    /// node holds it at — 0 when it does not (no lease has epoch 0, so the
    /// store refuses such a write).
    pub fn claim(&self, room: RoomId) -> Lease {
        let partition = self.partition_of(room);
        let epoch = if self.trusted() {
            self.epochs[partition as usize].load(Ordering::Acquire)
        } else {
            0
        };
        Lease { partition, epoch }
    }

    /// The epoch at which this node holds `partition` now, if it does.
    pub fn epoch_of_partition(&self, partition: u32) -> Option<u64> {
        let epoch = match self.epochs.get(partition as usize) {
            Some(e) if self.trusted() => e.load(Ordering::Acquire),
            _ => 0,
        };
        (epoch != 0).then_some(epoch)
    }

    /// Every partition owned now, by partition.
    pub fn owned(&self) -> Vec<Lease> {
        if !self.trusted() {
            return Vec::new();
        }
        self.epochs
            .iter()
            .enumerate()
            .filter_map(|(p, e)| {
                let epoch = e.load(Ordering::Acquire);
                (epoch != 0).then_some(Lease {
                    partition: p as u32,
                    epoch,
                })
            })
            .collect()
    }

    fn trusted(&self) -> bool {
        (self.base.elapsed().as_millis() as u64) < self.valid_until.load(Ordering::Acquire)
    }

    /// Records a lease held (acquired or renewed).
    pub(super) fn hold(&self, lease: Lease) {
        if let Some(slot) = self.epochs.get(lease.partition as usize) {
            slot.store(lease.epoch, Ordering::Release);
        }
    }

    /// Records a partition no longer held.
    pub(super) fn drop_partition(&self, partition: u32) {
        if let Some(slot) = self.epochs.get(partition as usize) {
            slot.store(0, Ordering::Release);
        }
    }

    /// Trusts the table until `until` (a renewal round sent at `until -
    /// lease`), never moving the deadline back.
    pub(super) fn trust_until(&self, until: Instant) {
        let ms = until.saturating_duration_since(self.base).as_millis() as u64;
        self.valid_until.fetch_max(ms, Ordering::AcqRel);
    }

    /// Whether the deadline has passed (the manager then drops every
    /// partition).
    pub(super) fn expired(&self) -> bool {
        !self.trusted()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_lease_counts_only_while_the_local_deadline_holds() {
        let own = Ownership::new(4);
        own.hold(Lease {
            partition: 1,
            epoch: 7,
        });
        assert_eq!(own.epoch_of(RoomId(5)), None, "never renewed: not trusted");
        own.trust_until(Instant::now() + Duration::from_secs(60));
        assert_eq!(own.epoch_of(RoomId(5)), Some(7));
        assert_eq!(own.epoch_of(RoomId(6)), None);
        assert_eq!(
            own.claim(RoomId(6)),
            Lease {
                partition: 2,
                epoch: 0
            }
        );
        assert_eq!(
            own.owned(),
            vec![Lease {
                partition: 1,
                epoch: 7
            }]
        );
        own.drop_partition(1);
        assert_eq!(own.epoch_of(RoomId(5)), None);

        let past = Ownership::new(4);
        past.hold(Lease {
            partition: 0,
            epoch: 1,
        });
        past.trust_until(Instant::now());
        assert!(past.expired());
        assert_eq!(past.claim(RoomId(4)).epoch, 0, "deadline passed");
    }
}
