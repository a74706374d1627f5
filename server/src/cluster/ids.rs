//! Ids a node hands out itself: room ids (sessions, for CREATE_ROOM and
//! OPEN_DIRECT) and notification ids (shards). A single node continues
//! from the highest id stored ([`IdSource::Local`], as always). A cluster
//! node takes them in blocks of [`BLOCK`] from the store
//! ([`LeaseStore::id_block`]: disjoint across nodes, above every id
//! stored), keeping one spare block so a shard, which never waits on
//! I/O, rarely finds none ready.
//!
//! Ids stay unique, not ordered across nodes: two nodes' ids interleave
//! by block, not by time.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use confab_store::{IdKind, LeaseStore, StoreResult};

/// Ids per block taken from the store.
pub const BLOCK: u32 = 1000;

/// Where a node's ids of one kind come from.
pub enum IdSource {
    /// A single node: the next id, from the highest stored + 1.
    Local(AtomicU64),
    /// A cluster node: blocks from the store.
    Blocks(Arc<IdBlocks>),
}

impl std::fmt::Debug for IdSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdSource::Local(next) => write!(f, "IdSource::Local({next:?})"),
            IdSource::Blocks(b) => write!(f, "IdSource::Blocks({:?})", b.kind),
        }
    }
}

impl IdSource {
    pub fn local(next: u64) -> IdSource {
        IdSource::Local(AtomicU64::new(next))
    }

    /// The next id without waiting: `None` only for a cluster node whose
    /// blocks ran out before the spare arrived.
    pub fn take(&self) -> Option<u64> {
        match self {
            IdSource::Local(next) => Some(next.fetch_add(1, Ordering::Relaxed)),
            IdSource::Blocks(blocks) => blocks.take(),
        }
    }

    /// The next id that `fits`, waiting for a block from the store if
    /// none is left; skips (and never hands out) ids that do not fit.
    /// `None` if `fits` refused a whole block, or the store failed.
    pub async fn take_fitting(&self, fits: impl Fn(u64) -> bool) -> Option<u64> {
        match self {
            IdSource::Local(next) => Some(next.fetch_add(1, Ordering::Relaxed)),
            IdSource::Blocks(blocks) => {
                let mut skipped = 0u64;
                while skipped < u64::from(BLOCK) {
                    let id = match blocks.take() {
                        Some(id) => id,
                        None => blocks.refill().await.ok()?,
                    };
                    if fits(id) {
                        return Some(id);
                    }
                    skipped += 1;
                }
                None
            }
        }
    }
}

/// Blocks of one kind of id (see the module doc).
pub struct IdBlocks {
    kind: IdKind,
    store: Arc<dyn LeaseStore>,
    state: Mutex<Blocks>,
}

#[derive(Default)]
struct Blocks {
    current: Range<u64>,
    spare: Option<Range<u64>>,
    /// A task is fetching the spare.
    fetching: bool,
}

impl IdBlocks {
    /// Takes the first block and a spare from the store.
    pub async fn open(store: Arc<dyn LeaseStore>, kind: IdKind) -> StoreResult<Arc<IdBlocks>> {
        let current = store.id_block(kind, BLOCK).await?;
        let spare = store.id_block(kind, BLOCK).await?;
        Ok(Arc::new(IdBlocks {
            kind,
            store,
            state: Mutex::new(Blocks {
                current,
                spare: Some(spare),
                fetching: false,
            }),
        }))
    }

    /// The next id, moving to the spare block when the current one is
    /// used up (and fetching a new spare in the background).
    pub fn take(self: &Arc<Self>) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.current.is_empty() {
            state.current = state.spare.take()?;
            if !state.fetching {
                state.fetching = true;
                let me = self.clone();
                tokio::spawn(async move {
                    let fetched = me.store.id_block(me.kind, BLOCK).await;
                    let mut state = me.state.lock().unwrap_or_else(|e| e.into_inner());
                    state.fetching = false;
                    match fetched {
                        Ok(block) => state.spare = Some(block),
                        Err(e) => tracing::warn!(error = %e, "fetching a block of ids failed"),
                    }
                });
            }
        }
        state.current.next()
    }

    /// Fetches a block now and makes it the current one; returns its
    /// first id (for callers that may wait).
    async fn refill(self: &Arc<Self>) -> StoreResult<u64> {
        let mut block = self.store.id_block(self.kind, BLOCK).await?;
        let first = block.next().expect("blocks are not empty");
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.current.is_empty() {
            state.current = block;
        } else if state.spare.is_none() {
            state.spare = Some(block);
        }
        Ok(first)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    use confab_store::{Incarnation, JoinRefused, Lease, RoomsState};

    use super::*;

    /// Hands out consecutive blocks, as the store's upsert does.
    #[derive(Default)]
    struct Blocks(AtomicU64);

    #[async_trait::async_trait]
    impl LeaseStore for Blocks {
        async fn id_block(&self, _: IdKind, size: u32) -> StoreResult<Range<u64>> {
            let start = 1 + self.0.fetch_add(u64::from(size), Ordering::SeqCst);
            Ok(start..start + u64::from(size))
        }
        async fn join_cluster(
            &self,
            _: &str,
            _: u32,
            _: Duration,
        ) -> StoreResult<Result<Incarnation, JoinRefused>> {
            unreachable!()
        }
        async fn heartbeat(&self, _: &str, _: Incarnation, _: Duration) -> StoreResult<bool> {
            unreachable!()
        }
        async fn live_nodes(&self) -> StoreResult<Vec<String>> {
            unreachable!()
        }
        async fn renew_leases(&self, _: Incarnation, _: Duration) -> StoreResult<Vec<Lease>> {
            unreachable!()
        }
        async fn acquire_leases(
            &self,
            _: &str,
            _: Incarnation,
            _: u32,
            _: Duration,
        ) -> StoreResult<Vec<Lease>> {
            unreachable!()
        }
        async fn release_leases(&self, _: Incarnation, _: &[u32]) -> StoreResult<Vec<u32>> {
            unreachable!()
        }
        async fn leave_cluster(&self, _: &str, _: Incarnation) -> StoreResult<()> {
            unreachable!()
        }
        async fn load_partitions(&self, _: u32, _: &[u32], _: u32) -> StoreResult<RoomsState> {
            unreachable!()
        }
        async fn direct_room(
            &self,
            _: (confab_protocol::UserId, confab_protocol::UserId),
            _: confab_protocol::RoomId,
        ) -> StoreResult<confab_protocol::RoomId> {
            unreachable!()
        }
    }

    #[tokio::test]
    async fn blocks_hand_out_each_id_once_and_only_ids_that_fit() {
        let store: Arc<dyn LeaseStore> = Arc::new(Blocks::default());
        let ids = IdSource::Blocks(IdBlocks::open(store, IdKind::Rooms).await.unwrap());
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..3 * BLOCK {
            let id = match ids.take() {
                Some(id) => id,
                // The spare is on its way: a caller that may wait does.
                None => ids.take_fitting(|_| true).await.unwrap(),
            };
            assert!(seen.insert(id), "{id} twice");
            tokio::task::yield_now().await;
        }
        for _ in 0..10 {
            let id = ids.take_fitting(|id| id % 4 == 3).await.unwrap();
            assert_eq!(id % 4, 3);
            assert!(seen.insert(id), "{id} twice");
        }
        assert_eq!(
            ids.take_fitting(|_| false).await,
            None,
            "no partition served"
        );
        assert_eq!(IdSource::local(7).take(), Some(7));
    }
}
