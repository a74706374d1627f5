//! Replaying the spool into the store: at start-up, before the server
//! loads its state, and in a background task whenever batches were spooled.

use std::sync::Arc;
use std::time::Duration;

use confab_store::{BatchSink, StoreError, WriteOp};
use tokio_util::sync::CancellationToken;

use super::log::ReadRecord;
use super::{with_file, Spool};

/// Operations merged into one `apply_batch` when replaying.
const REPLAY_MAX_OPS: usize = 4096;
/// Record bytes read per replay group.
const REPLAY_MAX_BYTES: u64 = 8 * 1024 * 1024;
/// Backoff between replay attempts while the store is unavailable.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Attempts at a group the store refuses (not unavailable) before it is
/// applied request by request: transient errors (deadlocks, serialization
/// failures) deserve a retry.
const REFUSED_ATTEMPTS: u32 = 3;

/// Why a replay stopped before the spool was empty.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("the store is unavailable: {0}")]
    StoreUnavailable(String),
    #[error("{0}")]
    Spool(String),
    #[error("stopped")]
    Stopped,
}

impl Spool {
    /// Applies every spooled batch to `store`, in order, then empties the
    /// spool. Returns how many records were replayed, or why it stopped
    /// (the spool keeps what was not replayed; calling again resumes).
    ///
    /// Groups are applied without the spool's lock, so the batch writer
    /// keeps appending (and acknowledging) meanwhile — except the last
    /// group once the store has answered in this call: that one is applied
    /// under the lock, so that no append can slip between it and the
    /// truncation, and a replay under a steady write load still finishes.
    /// The first attempt never holds the lock: against a dead store it
    /// would stall every acknowledgement for the store's timeout.
    pub async fn replay(
        &self,
        store: &dyn BatchSink,
        stop: &CancellationToken,
    ) -> Result<u64, ReplayError> {
        let _one_at_a_time = self.replaying.lock().await;
        let mut replayed = 0u64;
        let mut store_answered = false;
        loop {
            if stop.is_cancelled() {
                return Err(ReplayError::Stopped);
            }
            let mut state = self.state.lock().await;
            if state.file.is_none() {
                self.reopen(&mut state).await;
                self.publish(&state);
            }
            let Some(file) = state.file.as_ref() else {
                return match self.is_active() {
                    true => Err(ReplayError::Spool(state.why_not.clone())),
                    // Never opened: nothing was spooled.
                    false => Ok(replayed),
                };
            };
            let end = file.end();
            let group = with_file(&mut state, |f| {
                f.read_pending(REPLAY_MAX_OPS, REPLAY_MAX_BYTES)
            })
            .await
            .ok_or_else(|| ReplayError::Spool(state.why_not.clone()))?
            .map_err(|e| ReplayError::Spool(e.to_string()))?;
            let Some(group_end) = group.last().map(|r| r.end) else {
                // Everything is in the store: empty the file.
                if state.file.as_ref().is_some_and(|f| f.record_bytes() > 0) {
                    with_file(&mut state, |f| f.truncate())
                        .await
                        .ok_or_else(|| ReplayError::Spool(state.why_not.clone()))?
                        .map_err(|e| ReplayError::Spool(format!("truncating: {e}")))?;
                    crate::metrics::spool_emptied();
                }
                self.publish(&state);
                return Ok(replayed);
            };
            let last = group_end == end && store_answered;
            let mut state = if last {
                apply_group(store, &group).await?;
                state
            } else {
                drop(state);
                apply_group(store, &group).await?;
                self.state.lock().await
            };
            store_answered = true;
            with_file(&mut state, move |f| f.checkpoint(group_end))
                .await
                .ok_or_else(|| ReplayError::Spool(state.why_not.clone()))?
                .map_err(|e| ReplayError::Spool(format!("checkpoint: {e}")))?;
            replayed += group.len() as u64;
            crate::metrics::spool_replayed(group.len());
            self.replayed(group.len());
            self.publish(&state);
            // The last group: empty the file before the writer, waiting
            // for this lock, can append.
            if last {
                with_file(&mut state, |f| f.truncate())
                    .await
                    .ok_or_else(|| ReplayError::Spool(state.why_not.clone()))?
                    .map_err(|e| ReplayError::Spool(format!("truncating: {e}")))?;
                crate::metrics::spool_emptied();
                self.publish(&state);
                return Ok(replayed);
            }
        }
    }

    /// Replays what an earlier run left, before the server loads its
    /// state from the store (rooms, ids and sequence numbers must include
    /// the spooled batches). Retries while the store is unavailable, for
    /// at most `patience`.
    pub async fn replay_at_startup(
        &self,
        store: &dyn BatchSink,
        patience: Duration,
    ) -> Result<(), ReplayError> {
        if !self.is_active() {
            return Ok(());
        }
        let pending = self.pending_bytes().await;
        tracing::info!(bytes = pending, "replaying the write spool before serving");
        let deadline = tokio::time::Instant::now() + patience;
        let never = CancellationToken::new();
        let mut delay = RETRY_MIN;
        loop {
            match self.replay(store, &never).await {
                Ok(records) => {
                    tracing::info!(records, "write spool replayed");
                    return Ok(());
                }
                Err(ReplayError::StoreUnavailable(e))
                    if tokio::time::Instant::now() + delay < deadline =>
                {
                    tracing::warn!(error = %e, retry_in = ?delay, "write spool replay: store unavailable");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Starts the task that replays the spool whenever it holds batches,
    /// retrying with backoff while the store is unavailable.
    pub fn spawn_replayer(self: &Arc<Self>, store: Arc<dyn BatchSink>) -> Replayer {
        let stop = CancellationToken::new();
        let task = tokio::spawn(replay_loop(self.clone(), store, stop.clone()));
        Replayer { stop, task }
    }
}

/// The background replay task; [`Replayer::stop`] ends it (between
/// groups: a spool left non-empty is replayed at the next start-up).
pub struct Replayer {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Replayer {
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn replay_loop(spool: Arc<Spool>, store: Arc<dyn BatchSink>, stop: CancellationToken) {
    loop {
        while !spool.is_active() {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = spool.spooled.notified() => {}
            }
        }
        let mut delay = RETRY_MIN;
        let mut failures = 0u32;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            match spool.replay(store.as_ref(), &stop).await {
                Ok(records) => {
                    tracing::info!(
                        records,
                        "write spool replayed: the store has every spooled batch"
                    );
                    break;
                }
                Err(ReplayError::Stopped) => return,
                Err(e) => {
                    failures += 1;
                    if failures == 1 || delay == RETRY_MAX {
                        tracing::warn!(error = %e, failures, retry_in = ?delay, "write spool replay failed");
                    }
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
    }
}

/// Applies a group of records: merged into one batch, or — if the store
/// refuses that — request by request, dropping (loudly) the requests the
/// store still refuses.
async fn apply_group(store: &dyn BatchSink, group: &[ReadRecord]) -> Result<(), ReplayError> {
    let merged: Vec<WriteOp> = group
        .iter()
        .flat_map(|r| r.requests.iter().flatten().cloned())
        .collect();
    let Err(refusal) = apply(store, &merged).await? else {
        return Ok(());
    };
    tracing::warn!(error = %refusal, ops = merged.len(), "spool replay: the store refused a group; applying request by request");
    for request in group.iter().flat_map(|r| r.requests.iter()) {
        if let Err(refusal) = apply(store, request).await? {
            crate::metrics::spool_dropped();
            tracing::error!(
                error = %refusal,
                ops = ?request,
                "spool replay: the store refused an acknowledged write; it is lost"
            );
        }
    }
    Ok(())
}

/// `Ok(Ok(()))` applied; `Ok(Err(e))` refused by the store (after
/// retries); `Err` the store is unavailable.
async fn apply(
    store: &dyn BatchSink,
    ops: &[WriteOp],
) -> Result<Result<(), StoreError>, ReplayError> {
    let mut delay = Duration::from_millis(50);
    let mut attempt = 1;
    loop {
        match store.apply_batch(ops).await {
            Ok(()) => return Ok(Ok(())),
            Err(StoreError::Unavailable { message, .. }) => {
                return Err(ReplayError::StoreUnavailable(message))
            }
            Err(e) if attempt >= REFUSED_ATTEMPTS => return Ok(Err(e)),
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay *= 4;
                attempt += 1;
            }
        }
    }
}
