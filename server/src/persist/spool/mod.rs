//! The write spool: where acknowledged writes wait, on local disk, while
//! the database cannot take them.
//!
//! When the store is unreachable (`StoreError::Unavailable`: connection
//! refused or lost, pool timed out, database shutting down or out of
//! disk), the batch writer appends the batch to this spool, fsyncs, and
//! only then acknowledges its requests. A replay task retries the store
//! with backoff and, once it answers, applies the spooled batches in order
//! and empties the spool. A restart replays whatever an earlier run left,
//! before the server loads its state from the store.
//!
//! **Design constraints**
//! - *An acknowledgement means durable* (DESIGN.md invariant 6): a spooled
//!   batch is acknowledged only after its record is written and
//!   `fdatasync`ed. If the record cannot be written (spool full: more than
//!   `spool_max_bytes`; directory or disk unwritable), its requests are
//!   refused with `STORAGE_UNAVAILABLE` and a message saying why — never
//!   acknowledged.
//! - *Order is preserved*: while the spool holds records, every new batch
//!   goes to the spool behind them, even if the store is back; the store
//!   sees the batches in the order the shards produced them. The replay
//!   task empties the spool under the same lock the writer appends under,
//!   so no batch can slip between the last replayed record and the
//!   truncation.
//! - *Replay is idempotent*: a record may be applied twice (a crash after
//!   the store committed it but before the checkpoint recorded that; a
//!   commit whose reply was lost). The store's `apply_batch` upserts,
//!   ignores existing events by `(room, seq)`, and re-applying a sequence
//!   of batches in order converges (`confab_store` contract; tested on
//!   both backends). Audit entries are the exception: they have no key,
//!   and a record applied twice appends its audit entries twice.
//! - *Replay is in batches*: consecutive records are merged into one
//!   `apply_batch` (up to `REPLAY_MAX_OPS` operations), so the replay can
//!   outrun new writes arriving one small batch at a time.
//! - *A record the store refuses is not retried forever*: it was
//!   acknowledged, so refusing it is a loss, reported as an error log and
//!   `confab_spool_dropped_requests_total`; the replay applies the group
//!   request by request, drops only the requests the store still refuses,
//!   and goes on (a stuck spool would refuse every later write).
//! - *Corruption is never skipped*: a torn last record (the append in
//!   flight when the process died, never acknowledged) is cut off at
//!   start-up; any other invalid record makes start-up fail with the file
//!   and offset, rather than silently lose acknowledged writes.
//! - *No schema evolution in rkyv 0.8*: the version, length and checksum
//!   of each record live outside its archive, in a fixed frame.
//!
//! **On-disk layout**: one file, `SPOOL_DIR/spool.log` (`SPOOL_DIR`
//! defaults to `DATA_DIR/spool`): a 32-byte header holding the replay
//! checkpoint (`spool/log.rs`), then the records, back to back. The
//! checkpoint is the offset before which every record is in the store; it
//! advances (and is fsync'd) after each replayed group, so a crash during
//! a replay re-applies at most one group. Once everything is replayed the
//! file is cut back to its header.
//!
//! **Record structure** (`spool/record.rs`): a 16-byte frame — magic
//! `CFSR`, format version, flags, payload length, CRC-32C of the frame
//! fields and payload — then the rkyv archive of one batch: its
//! operations, and where each request's operations end.
//!
//! **Metrics**: `confab_spool_bytes` (not yet replayed), and the counters
//! named in [`name`].

/// Wrappers for `crate::fuzzing`.
pub(crate) mod fuzz;
mod log;
mod record;
mod replay;

/// Whether `dir` holds a spool file with records in it, replayed or not
/// (read from its length alone): cluster mode, which runs without a
/// spool, refuses to start over one.
pub fn holds_records(dir: &std::path::Path) -> bool {
    std::fs::metadata(dir.join(log::FILE_NAME)).is_ok_and(|m| m.len() > log::HEADER_LEN)
}

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use confab_protocol::Seq;
use confab_store::WriteOp;
use tokio::sync::{Mutex, Notify};

use log::{LogError, SpoolFile};

/// Where the spool lives and how big it may grow.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    /// Record bytes the spool file may hold; a batch that would exceed it
    /// is refused.
    pub max_bytes: u64,
}

/// Why the spool could not take a batch, or could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpoolError {
    #[error("the write spool is full ({used} of {max} bytes used)")]
    Full { used: u64, max: u64 },
    #[error("the write spool is unwritable ({0})")]
    Unwritable(String),
    #[error("the write spool is unreadable: {0}")]
    Unreadable(String),
}

/// The spool. One per server; shared by the batch writer (appends) and
/// the replay task.
pub struct Spool {
    config: SpoolConfig,
    /// True while the file holds records, replayed or not: new batches
    /// must queue behind them. Changed only under `state`'s lock; read
    /// without it on the batch writer's fast path.
    active: AtomicBool,
    state: Mutex<State>,
    /// Serialises replays (start-up replay, the replay task, tests).
    replaying: Mutex<()>,
    /// Wakes the replay task when a batch was spooled.
    spooled: Notify,
    /// Watermarks to raise once the replay has put their records in the
    /// store.
    marks: std::sync::Mutex<Marks>,
}

/// A room's "in the database up to" watermark and the seq to raise it to.
pub type StoredMark = (Arc<AtomicU64>, Seq);

/// Records are numbered 1, 2, 3, … in the order this run spooled them
/// (records an earlier run left come first); the replay applies them in
/// that order.
#[derive(Default)]
struct Marks {
    /// Records appended (the last record's number).
    appended: u64,
    /// Records applied to the store by the replay.
    replayed: u64,
    /// Marks waiting for their record, oldest first.
    waiting: VecDeque<(u64, Vec<StoredMark>)>,
}

impl Marks {
    fn raise_replayed(&mut self) {
        while let Some((record, _)) = self.waiting.front() {
            if *record > self.replayed {
                break;
            }
            if let Some((_, marks)) = self.waiting.pop_front() {
                raise(marks);
            }
        }
    }
}

fn raise(marks: Vec<StoredMark>) {
    for (mark, seq) in marks {
        mark.fetch_max(seq.0, Ordering::AcqRel);
    }
}

struct State {
    /// `None` while the file cannot be created (retried on each append)
    /// or after a blocking file task failed (reopened, with recovery).
    file: Option<SpoolFile>,
    /// Why `file` is `None`.
    why_not: String,
}

impl Spool {
    /// Opens the spool, recovering what an earlier run left. A spool file
    /// that exists but cannot be read or is corrupt is an error (it may
    /// hold acknowledged writes). A directory that cannot be created is
    /// not: the server runs, and refuses writes only when it would need
    /// the spool.
    pub async fn open(config: SpoolConfig) -> Result<Spool, SpoolError> {
        let dir = config.dir.clone();
        let existed = dir.join(log::FILE_NAME).exists();
        let opened = tokio::task::spawn_blocking(move || SpoolFile::open(&dir))
            .await
            .map_err(|e| SpoolError::Unreadable(e.to_string()))?;
        let mut left = 0;
        let state = match opened {
            Ok((file, recovery)) => {
                left = recovery.pending_records;
                if recovery.pending_records > 0 {
                    tracing::info!(
                        path = %file.path().display(),
                        records = recovery.pending_records,
                        bytes = file.pending_bytes(),
                        "write spool holds batches from an earlier run"
                    );
                }
                State {
                    file: Some(file),
                    why_not: String::new(),
                }
            }
            Err(e @ LogError::Io { .. }) if !existed => {
                tracing::error!(
                    error = %e,
                    "write spool unwritable: writes will be refused while the database is unreachable"
                );
                State {
                    file: None,
                    why_not: e.to_string(),
                }
            }
            Err(e) => return Err(SpoolError::Unreadable(e.to_string())),
        };
        let spool = Spool {
            config,
            active: AtomicBool::new(false),
            state: Mutex::new(state),
            replaying: Mutex::new(()),
            spooled: Notify::new(),
            marks: std::sync::Mutex::new(Marks {
                appended: left,
                ..Marks::default()
            }),
        };
        spool.publish(&*spool.state.lock().await);
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// Whether the spool holds batches (new batches must go behind them).
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Bytes of spooled batches not yet replayed.
    pub async fn pending_bytes(&self) -> u64 {
        self.state
            .lock()
            .await
            .file
            .as_ref()
            .map_or(0, SpoolFile::pending_bytes)
    }

    /// Appends the requests' operations (`ends`: where each request's
    /// operations end) as one durable record, if the spool already holds
    /// batches: `Ok(Some(record number))`. `Ok(None)` when it is empty —
    /// the caller commits to the store as usual.
    pub async fn append_if_active(
        &self,
        ops: &[WriteOp],
        ends: &[usize],
    ) -> Result<Option<u64>, SpoolError> {
        if !self.is_active() {
            return Ok(None);
        }
        let record = encode(ops, ends)?;
        let mut state = self.state.lock().await;
        // The replay may have emptied the spool while we waited.
        if !self.is_active() {
            return Ok(None);
        }
        self.append_locked(&mut state, record).await.map(Some)
    }

    /// Appends the requests' operations as one durable record (the store
    /// is unreachable). Returns the record's number once it is fsync'd.
    pub async fn append(&self, ops: &[WriteOp], ends: &[usize]) -> Result<u64, SpoolError> {
        let record = encode(ops, ends)?;
        let mut state = self.state.lock().await;
        self.append_locked(&mut state, record).await
    }

    /// Raises `marks` once record `record` is in the store (at once if
    /// the replay has already applied it).
    pub fn defer_marks(&self, record: u64, marks: Vec<StoredMark>) {
        if marks.is_empty() {
            return;
        }
        let mut m = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        if record <= m.replayed {
            raise(marks);
        } else {
            m.waiting.push_back((record, marks));
        }
    }

    /// The replay has applied `n` more records.
    fn replayed(&self, n: usize) {
        let mut m = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        m.replayed += n as u64;
        m.raise_replayed();
    }

    async fn append_locked(&self, state: &mut State, record: Vec<u8>) -> Result<u64, SpoolError> {
        if state.file.is_none() {
            self.reopen(state).await;
        }
        let Some(file) = state.file.as_ref() else {
            return Err(refused(
                "unwritable",
                SpoolError::Unwritable(state.why_not.clone()),
            ));
        };
        let used = file.record_bytes();
        if used + record.len() as u64 > self.config.max_bytes {
            return Err(refused(
                "full",
                SpoolError::Full {
                    used,
                    max: self.config.max_bytes,
                },
            ));
        }
        match with_file(state, move |f| f.append(&record)).await {
            Some(Ok(())) => {
                crate::metrics::spool_recorded();
                let number = {
                    let mut m = self.marks.lock().unwrap_or_else(|e| e.into_inner());
                    m.appended += 1;
                    m.appended
                };
                self.publish(state);
                self.spooled.notify_one();
                Ok(number)
            }
            Some(Err(e)) => {
                tracing::error!(error = %e, dir = %self.config.dir.display(), "write spool append failed");
                Err(refused("unwritable", SpoolError::Unwritable(e.to_string())))
            }
            None => Err(refused(
                "unwritable",
                SpoolError::Unwritable(state.why_not.clone()),
            )),
        }
    }

    /// Tries to (re)open the file after it could not be created, or after
    /// a file task failed.
    async fn reopen(&self, state: &mut State) {
        let dir = self.config.dir.clone();
        match tokio::task::spawn_blocking(move || SpoolFile::open(&dir)).await {
            Ok(Ok((file, _))) => {
                state.file = Some(file);
                state.why_not.clear();
            }
            Ok(Err(e)) => state.why_not = e.to_string(),
            Err(e) => state.why_not = e.to_string(),
        }
    }

    /// Mirrors the file's state into `active` and the bytes gauge.
    fn publish(&self, state: &State) {
        let (records, pending) = state
            .file
            .as_ref()
            .map_or((0, 0), |f| (f.record_bytes(), f.pending_bytes()));
        self.active.store(records > 0, Ordering::Release);
        crate::metrics::spool_bytes(pending);
    }
}

fn encode(ops: &[WriteOp], ends: &[usize]) -> Result<Vec<u8>, SpoolError> {
    record::encode(ops, ends)
        .map_err(|e| refused("unwritable", SpoolError::Unwritable(e.to_string())))
}

fn refused(reason: &'static str, e: SpoolError) -> SpoolError {
    crate::metrics::spool_refused(reason);
    e
}

/// Runs `f` on the file on the blocking pool (fsync must not stall a
/// runtime thread). `None` if there is no file or the task failed; the
/// file is then dropped and reopened (with recovery) on next use.
async fn with_file<T: Send + 'static>(
    state: &mut State,
    f: impl FnOnce(&mut SpoolFile) -> T + Send + 'static,
) -> Option<T> {
    let mut file = state.file.take()?;
    match tokio::task::spawn_blocking(move || {
        let out = f(&mut file);
        (file, out)
    })
    .await
    {
        Ok((file, out)) => {
            state.file = Some(file);
            Some(out)
        }
        Err(e) => {
            state.why_not = format!("spool file task failed: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests;
