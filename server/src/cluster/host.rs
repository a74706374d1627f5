//! Phase 2: rooms follow the leases. The [`RoomHost`] turns the lease
//! manager's [`LeaseEvent`]s into what the shards hold:
//!
//! - **Gained** `(p, epoch)`: the rooms of partition `p` are loaded from
//!   the store — the same build as a single node's start-up
//!   (`persist::restore`), so each continues its sequence from the last
//!   one stored — and installed in their shards; only then does the
//!   router send their commands to the shards ([`Hosted`] says serving).
//!   The load comes after the database granted the lease, and a previous
//!   owner either committed everything before releasing (drain) or can
//!   commit nothing more (fenced), so what is loaded is final.
//! - **Lost** (expired or taken): `p` stops serving, then the shards let
//!   its rooms go. Writes in flight for them are fenced by the store.
//! - **Release** (rebalance), through [`Handover::drain`] before the
//!   lease manager releases: `p` stops taking new commands (draining),
//!   the shards let its rooms go — each applies what it had queued for
//!   them first — and a barrier through the batch writer waits until
//!   every write queued for them committed or failed. Bounded by the
//!   lease manager (half a lease); the release follows either way, and
//!   the partition stays draining until its loss is handled. A gain and a
//!   drain never interleave (`turns`): a partition being drained is not
//!   loaded again, and one being loaded is drained once it serves.
//!
//! Events are handled one at a time in order, so a partition's gain and
//! loss never overlap. A node's subscribed connections get nothing more
//! from a room it let go (phase 3's cross-node fan-out).

use std::sync::Arc;

use confab_store::{Lease, LeaseStore};
use tokio::sync::broadcast;

use super::hosted::{Hosted, Hosting};
use super::lease::Handover;
use super::ownership::{LeaseEvent, Ownership};
use crate::persist::batch::WeakBatchHandle;
use crate::persist::restore::Restored;
use crate::shard::Router;
use crate::state::DirectRooms;

/// Keeps the shards' rooms in step with the leases (see the module doc).
pub struct RoomHost {
    pub store: Arc<dyn LeaseStore>,
    pub router: Router,
    pub hosted: Arc<Hosted>,
    pub ownership: Arc<Ownership>,
    /// Weak: the host lives as long as the lease manager, which stops
    /// only after the batch writer has.
    pub batch: WeakBatchHandle,
    pub directs: Arc<DirectRooms>,
    /// Recent events loaded per room (`room_tail_events`).
    pub tail: u32,
    /// How long a failed load waits before it is tried again.
    pub retry: std::time::Duration,
    /// Held by a gain and by a drain, so that neither sees the other half
    /// done.
    pub turns: tokio::sync::Mutex<()>,
    /// The relay, which hands over what this node's connections saw of a
    /// gained partition's rooms (`None`: nothing to hand over).
    pub relay: Option<super::RelayHandle>,
}

impl RoomHost {
    /// Handles the events already queued (start-up: the first round's
    /// gains are installed before the doors open).
    pub async fn catch_up(&self, events: &mut broadcast::Receiver<LeaseEvent>) {
        loop {
            match events.try_recv() {
                Ok(event) => self.handle(event).await,
                Err(broadcast::error::TryRecvError::Lagged(_)) => self.resync().await,
                Err(_) => return,
            }
        }
    }

    /// Handles events until the lease manager is gone.
    pub fn spawn(
        self: Arc<Self>,
        mut events: broadcast::Receiver<LeaseEvent>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => self.handle(event).await,
                    Err(broadcast::error::RecvError::Lagged(_)) => self.resync().await,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    }

    async fn handle(&self, event: LeaseEvent) {
        match event {
            LeaseEvent::Gained(lease) => self.gain(lease).await,
            LeaseEvent::Lost(lease) => self.lose(lease.partition).await,
        }
    }

    /// Events were missed: serve exactly what is owned now.
    async fn resync(&self) {
        for partition in 0..self.hosted.partitions() {
            let owned = self.ownership.epoch_of_partition(partition);
            let here = self.hosted.state(partition);
            match owned {
                Some(epoch) if here == Hosting::Off => self.gain(Lease { partition, epoch }).await,
                None if here != Hosting::Off => self.lose(partition).await,
                _ => {}
            }
        }
    }

    /// Loads and installs `lease`'s rooms, then serves them; tried again
    /// after a failed load for as long as the lease is held at that epoch.
    async fn gain(&self, lease: Lease) {
        let p = lease.partition;
        let _turn = self.turns.lock().await;
        // Draining: it is being released, and its loss follows.
        while self.hosted.state(p) == Hosting::Off
            && self.ownership.epoch_of_partition(p) == Some(lease.epoch)
        {
            let loaded = self
                .store
                .load_partitions(self.hosted.partitions(), &[p], self.tail)
                .await
                .map_err(anyhow::Error::from)
                .and_then(Restored::build);
            match loaded {
                Ok(restored) => {
                    let rooms = restored.slots.len();
                    self.directs.learn(restored.pairs);
                    // The relay stops relaying these rooms; the shards
                    // replay each connection from what it saw of them.
                    let seen = match &self.relay {
                        Some(relay) => relay.hand_over(p, self.hosted.partitions()).await,
                        None => Default::default(),
                    };
                    self.router.install(restored.slots, seen).await;
                    self.hosted.set(p, Hosting::Serving);
                    crate::metrics::cluster_handover("gained");
                    tracing::info!(
                        partition = p,
                        epoch = lease.epoch,
                        rooms,
                        "partition served"
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!(partition = p, error = %e, "loading a gained partition failed: retrying");
                    tokio::time::sleep(self.retry).await;
                }
            }
        }
    }

    /// Stops serving `partition` and lets its rooms go.
    async fn lose(&self, partition: u32) {
        let _turn = self.turns.lock().await;
        let was = self.hosted.state(partition) != Hosting::Off;
        self.hosted.set(partition, Hosting::Off);
        self.router
            .evict(&[partition], self.hosted.partitions())
            .await;
        if was {
            crate::metrics::cluster_handover("lost");
            tracing::info!(partition, "partition no longer served");
        }
    }
}

impl Handover for RoomHost {
    fn drain<'a>(
        &'a self,
        partitions: &'a [u32],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(self.drain_partitions(partitions))
    }
}

impl RoomHost {
    /// [`Handover::drain`]: draining, the shards let the rooms go, then a
    /// barrier through the batch writer. The partitions stay draining
    /// (refused, never loaded again) until their loss, which follows.
    async fn drain_partitions(&self, partitions: &[u32]) {
        let _turn = self.turns.lock().await;
        for &p in partitions {
            self.hosted.set(p, Hosting::Draining);
        }
        self.router
            .evict(partitions, self.hosted.partitions())
            .await;
        // Every write the shards queued for these rooms is ahead of this
        // barrier: it resolves once they all committed or failed.
        if let Some(batch) = self.batch.upgrade() {
            let _ = batch.flush().await;
        }
        crate::metrics::cluster_handover("drained");
        tracing::info!(?partitions, "partitions drained for release");
    }
}
