//! The lease manager: this node's side of partition ownership.
//!
//! Every third of a lease (`--lease-ms`, default 5 s) it runs one round
//! ([`LeaseManager::tick`]), each step one statement whose time is the
//! database's:
//!
//! 1. **Heartbeat**: keeps this node live for one lease.
//! 2. **Renew** every lease it holds and has not let expire. A lease
//!    missing from the answer was lost (it expired, and may already be
//!    someone else's): dropped at once.
//! 3. **Balance**: with `live` nodes, each aims at its share: ⌈P/live⌉
//!    for the first `P mod live` nodes by name, ⌊P/live⌋ for the others
//!    ([`share`]). Below it, it **acquires** free partitions (released or
//!    expired, each at its epoch + 1); above it — a node joined — it
//!    **releases** its highest extras, expiry set to now, so the newcomer
//!    takes them on its next round without waiting. The shares add up to
//!    `P`, so once every live node has had a round with the same view of
//!    who is live, every partition is owned and no two nodes differ by
//!    more than one.
//!
//! **Graceful shutdown** ([`LeaseTask::stop`], after the batch writer has
//! committed what was queued) releases every lease and removes the node's
//! heartbeat: the other nodes take its partitions on their next round
//! instead of after the lease. A node that stops without it (killed,
//! paused, cut off from the database) loses its leases when they expire;
//! its writes are fenced from the moment they do.
//!
//! **Drain, then release.** With a [`Handover`] set (cluster mode's
//! runtime), a partition released to balance is drained first: its rooms
//! take no new commands and what they queued commits under the lease
//! still held. At shutdown the batch writer has already committed
//! everything before [`LeaseTask::stop`] releases.
//!
//! A partition is forgotten in [`Ownership`] *before* it is released, and
//! is recorded there only after the database granted it: the snapshot
//! never claims more than the database grants.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_store::{Incarnation, JoinRefused, Lease, LeaseStore, StoreError, StoreResult};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::ownership::{LeaseEvent, Ownership};

/// What the lease manager needs to know.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// This node's name (unique among live nodes).
    pub node_id: String,
    /// Partitions rooms are grouped into; the same on every node.
    pub partitions: u32,
    /// How long a lease lasts without renewal; renewed every third.
    pub lease: Duration,
}

/// What must happen before partitions are released to balance: the
/// runtime stops taking commands for their rooms and waits until what it
/// applied is committed ([`RoomHost`](super::RoomHost)), so a hand-over
/// fails no write. Bounded by the lease manager to half a lease.
pub trait Handover: Send + Sync + 'static {
    fn drain<'a>(
        &'a self,
        partitions: &'a [u32],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;
}

/// Why a node could not join the cluster.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(
        "this node is configured with --cluster-partitions {configured}, but the deployment \
         was started with {stored}: the partition count is fixed per deployment"
    )]
    PartitionsDiffer { configured: u32, stored: u32 },
    #[error("node id {0:?} is in use by a live node (its heartbeat has not expired)")]
    NodeIdInUse(String),
    #[error("joining the cluster: {0}")]
    Store(#[from] StoreError),
}

/// Why a partition stopped being this node's (the label of
/// `confab_cluster_lease_losses_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loss {
    /// Not renewed in time: it expired, and another node may hold it.
    Expired,
    /// Given up: to balance, or at shutdown.
    Released,
}

impl Loss {
    fn label(self) -> &'static str {
        match self {
            Loss::Expired => "expired",
            Loss::Released => "released",
        }
    }
}

/// One node's leases (see the module doc).
pub struct LeaseManager {
    store: Arc<dyn LeaseStore>,
    cfg: LeaseConfig,
    me: Incarnation,
    ownership: Arc<Ownership>,
    events: broadcast::Sender<LeaseEvent>,
    /// Partition → epoch, as the database last confirmed.
    held: BTreeMap<u32, u64>,
    /// Drains partitions before they are released to balance.
    handover: Option<Arc<dyn Handover>>,
}

impl LeaseManager {
    /// Joins the cluster: fixes (or checks) the partition count and
    /// registers this node. A node restarted right after a crash finds its
    /// name still held by its predecessor's heartbeat, and waits up to two
    /// leases for it to expire.
    pub async fn join(
        store: Arc<dyn LeaseStore>,
        cfg: LeaseConfig,
    ) -> Result<LeaseManager, JoinError> {
        let give_up = Instant::now() + 2 * cfg.lease;
        let me = loop {
            match store
                .join_cluster(&cfg.node_id, cfg.partitions, cfg.lease)
                .await?
            {
                Ok(me) => break me,
                Err(JoinRefused::PartitionsDiffer { stored }) => {
                    return Err(JoinError::PartitionsDiffer {
                        configured: cfg.partitions,
                        stored,
                    })
                }
                Err(JoinRefused::NodeIdInUse) if Instant::now() < give_up => {
                    tokio::time::sleep(cfg.lease / 4).await;
                }
                Err(JoinRefused::NodeIdInUse) => return Err(JoinError::NodeIdInUse(cfg.node_id)),
            }
        };
        tracing::info!(
            node = cfg.node_id.as_str(),
            incarnation = me.0,
            "joined the cluster"
        );
        let (events, _) = broadcast::channel(1024);
        Ok(LeaseManager {
            store,
            ownership: Arc::new(Ownership::new(cfg.partitions)),
            cfg,
            me,
            events,
            held: BTreeMap::new(),
            handover: None,
        })
    }

    /// Drains partitions with `handover` before releasing them to
    /// balance (see [`Handover`]).
    pub fn set_handover(&mut self, handover: Arc<dyn Handover>) {
        self.handover = Some(handover);
    }

    /// This process's incarnation: the owner every fence names.
    pub fn incarnation(&self) -> Incarnation {
        self.me
    }

    /// The snapshot the runtime reads.
    pub fn ownership(&self) -> Arc<Ownership> {
        self.ownership.clone()
    }

    /// Partitions gained and lost from now on. A receiver that lags
    /// behind (1,024 events) resynchronises from [`Ownership::owned`].
    pub fn subscribe(&self) -> broadcast::Receiver<LeaseEvent> {
        self.events.subscribe()
    }

    /// The partitions held, as the database last confirmed.
    pub fn held(&self) -> Vec<Lease> {
        self.held
            .iter()
            .map(|(&partition, &epoch)| Lease { partition, epoch })
            .collect()
    }

    /// One round: heartbeat, renew, balance (see the module doc). On a
    /// failure the leases stay held until the local deadline passes, then
    /// they are all dropped.
    pub async fn tick(&mut self) -> StoreResult<()> {
        let sent = Instant::now();
        let result = self.round(sent).await;
        if result.is_err() && self.ownership.expired() && !self.held.is_empty() {
            tracing::warn!(
                partitions = self.held.len(),
                "leases not renewed in time: dropping every partition"
            );
            let all: Vec<u32> = self.held.keys().copied().collect();
            self.forget(&all, Loss::Expired);
        }
        result
    }

    async fn round(&mut self, sent: Instant) -> StoreResult<()> {
        let lease = self.cfg.lease;
        let node_id = self.cfg.node_id.clone();
        let node = node_id.as_str();
        if !self.store.heartbeat(node, self.me, lease).await? {
            // Our heartbeat expired and a new process took the name: it
            // is the node now. Hand everything over.
            tracing::error!(node, "another process joined under this node id: leaving");
            let all: Vec<u32> = self.held.keys().copied().collect();
            self.forget(&all, Loss::Released);
            let _ = self.store.release_leases(self.me, &all).await;
            return Err(StoreError::database(
                "node id taken over by another process",
            ));
        }
        let renewed = self.store.renew_leases(self.me, lease).await?;
        self.ownership.trust_until(sent + lease);
        crate::metrics::cluster_leases_renewed(renewed.len());
        let still: BTreeMap<u32, u64> = renewed.iter().map(|l| (l.partition, l.epoch)).collect();
        let lost: Vec<u32> = self
            .held
            .iter()
            .filter(|&(p, e)| still.get(p) != Some(e))
            .map(|(&p, _)| p)
            .collect();
        if !lost.is_empty() {
            tracing::warn!(node, partitions = ?lost, "leases expired before renewal");
            self.forget(&lost, Loss::Expired);
        }
        // The database's word wins: a lease granted to a round whose
        // answer was lost (a timeout) shows up here.
        for lease in renewed {
            if self.held.get(&lease.partition) != Some(&lease.epoch) {
                self.gain(lease);
            }
        }

        let live = self.store.live_nodes().await?;
        crate::metrics::cluster_live_nodes(live.len() as u32);
        let target = share(self.cfg.partitions, &live, node);
        let held = self.held.len();
        if held < target {
            let want = (target - held) as u32;
            let gained = self
                .store
                .acquire_leases(node, self.me, want, lease)
                .await?;
            if !gained.is_empty() {
                let partitions: Vec<u32> = gained.iter().map(|l| l.partition).collect();
                let epochs: Vec<u64> = gained.iter().map(|l| l.epoch).collect();
                tracing::info!(node, ?partitions, ?epochs, "leases acquired");
            }
            for lease in gained {
                self.gain(lease);
            }
        } else if held > target {
            let extra: Vec<u32> = self
                .held
                .keys()
                .rev()
                .take(held - target)
                .copied()
                .collect();
            tracing::info!(node, live = live.len(), partitions = ?extra, "releasing leases to balance");
            // Drain first: the rooms stop taking commands and what they
            // queued commits, still under these leases (renewed at the
            // start of this round, so they hold for a lease from then).
            if let Some(handover) = &self.handover {
                if tokio::time::timeout(lease / 2, handover.drain(&extra))
                    .await
                    .is_err()
                {
                    crate::metrics::cluster_handover("drain_timeout");
                    tracing::warn!(node, partitions = ?extra, "draining took over half a lease: releasing anyway");
                }
            }
            self.forget(&extra, Loss::Released);
            self.store.release_leases(self.me, &extra).await?;
        }
        Ok(())
    }

    /// Releases every lease and leaves (graceful shutdown): the other
    /// nodes take the partitions on their next round.
    pub async fn leave(mut self) -> StoreResult<()> {
        let all: Vec<u32> = self.held.keys().copied().collect();
        self.forget(&all, Loss::Released);
        self.store.release_leases(self.me, &all).await?;
        self.store.leave_cluster(&self.cfg.node_id, self.me).await?;
        tracing::info!(
            node = self.cfg.node_id.as_str(),
            released = all.len(),
            "left the cluster"
        );
        Ok(())
    }

    /// Runs a round every third of a lease until [`LeaseTask::stop`].
    pub fn spawn(mut self) -> LeaseTask {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let every = self.cfg.lease / 3;
        let task = tokio::spawn(async move {
            let mut rounds = tokio::time::interval(every);
            rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = rounds.tick() => {}
                }
                // A round stuck on the network must not keep the snapshot
                // alive: past the lease, `tick`'s failure path drops it.
                let result = match tokio::time::timeout(self.cfg.lease, self.tick()).await {
                    Ok(result) => result,
                    Err(_) => Err(StoreError::unavailable("lease round timed out")),
                };
                if let Err(e) = result {
                    tracing::warn!(error = %e, "lease round failed");
                }
            }
            if let Err(e) = self.leave().await {
                tracing::warn!(error = %e, "releasing the leases at shutdown failed: they expire");
            }
        });
        LeaseTask { stop, task }
    }

    fn gain(&mut self, lease: Lease) {
        self.held.insert(lease.partition, lease.epoch);
        self.ownership.hold(lease);
        crate::metrics::cluster_lease_acquired();
        crate::metrics::cluster_partitions_owned(self.held.len());
        let _ = self.events.send(LeaseEvent::Gained(lease));
    }

    fn forget(&mut self, partitions: &[u32], why: Loss) {
        for &partition in partitions {
            self.ownership.drop_partition(partition);
            if let Some(epoch) = self.held.remove(&partition) {
                crate::metrics::cluster_lease_lost(why.label());
                let _ = self
                    .events
                    .send(LeaseEvent::Lost(Lease { partition, epoch }));
            }
        }
        crate::metrics::cluster_partitions_owned(self.held.len());
    }
}

/// How many of `partitions` `node` aims at among the `live` nodes (sorted
/// by name): `P / live`, plus one for the first `P % live` nodes by name,
/// so the shares add up to exactly `P` and no two differ by more than one
/// (a plain `ceil(P / live)` each would leave 64 partitions on 3 nodes as
/// 22, 22 and 20). A node missing from the list (its heartbeat raced the
/// read) counts as one more, last.
fn share(partitions: u32, live: &[String], node: &str) -> usize {
    let rank = live.iter().position(|n| n == node).unwrap_or(live.len());
    let count = live.len().max(rank + 1);
    let (base, rest) = (partitions as usize / count, partitions as usize % count);
    base + usize::from(rank < rest)
}

/// The running lease manager.
pub struct LeaseTask {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl LeaseTask {
    /// Stops the rounds, releases every lease and leaves the cluster.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }

    /// Stops the rounds at once without releasing anything, as a crash
    /// would: the leases expire and other nodes take them then.
    pub fn abandon(self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn shares_add_up_to_every_partition_and_differ_by_one_at_most() {
        let nodes = |n: usize| (0..n).map(|i| format!("n{i}")).collect::<Vec<_>>();
        for (p, n) in [
            (64, 1),
            (64, 2),
            (64, 3),
            (64, 4),
            (5, 8),
            (1, 3),
            (4096, 7),
        ] {
            let live = nodes(n);
            let shares: Vec<usize> = live.iter().map(|node| share(p, &live, node)).collect();
            assert_eq!(shares.iter().sum::<usize>(), p as usize, "{p} over {n}");
            let (min, max) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
            assert!(max - min <= 1, "{p} over {n}: {shares:?}");
        }
        let live = nodes(3);
        assert_eq!(share(64, &live, "n0"), 22);
        assert_eq!(share(64, &live, "n2"), 21);
        assert_eq!(
            share(64, &live, "late"),
            16,
            "not yet listed: one more node, last"
        );
    }
}
