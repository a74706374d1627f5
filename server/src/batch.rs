//! The batch writer: group commit of every state change (DESIGN.md
//! invariant 6).
//!
//! Shards hand [`WriteRequest`]s to one writer task, in order. The writer
//! takes everything queued (up to `batch_max_items` operations, waiting at
//! most `batch_max_delay` for more), applies it with one
//! `Store::apply_batch` call — one transaction, one fsync — and only then
//! carries out each request's completion: raise the room's durable
//! watermark and send the acknowledgement frame to the requesting
//! connection. An acknowledgement therefore always means durable.
//!
//! A batch that fails is retried with backoff; if it still fails, its
//! requesters get `STORAGE_UNAVAILABLE` instead of an acknowledgement.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use confab_protocol::{ErrorCode, Seq};
use confab_store::{Store, WriteOp};
use tokio::sync::{mpsc, oneshot};

use crate::outbound::Conn;

/// The acknowledgement to send once a request's operations are durable.
pub struct Ack {
    pub conn: Arc<Conn>,
    pub req_id: u32,
    /// The encoded success frame.
    pub frame: Bytes,
}

/// Operations from one shard command, with what to do once they commit.
pub struct WriteRequest {
    pub ops: Vec<WriteOp>,
    /// Raise this room watermark to `Seq` after commit (lets the shard
    /// drop durable events from its in-memory tail).
    pub durable: Option<(Arc<AtomicU64>, Seq)>,
    pub ack: Option<Ack>,
    /// For callers that wait on the commit themselves (tests, shutdown).
    pub notify: Option<oneshot::Sender<Result<(), ErrorCode>>>,
}

/// The handle shards use to submit writes.
#[derive(Clone)]
pub struct BatchHandle {
    tx: mpsc::UnboundedSender<WriteRequest>,
}

impl BatchHandle {
    /// Queues a write. Returns `false` if the writer has stopped.
    pub fn submit(&self, req: WriteRequest) -> bool {
        self.tx.send(req).is_ok()
    }

    /// Resolves once everything submitted before this call has committed.
    pub async fn flush(&self) -> Result<(), ErrorCode> {
        let (tx, rx) = oneshot::channel();
        let req = WriteRequest {
            ops: Vec::new(),
            durable: None,
            ack: None,
            notify: Some(tx),
        };
        if !self.submit(req) {
            return Err(ErrorCode::ShuttingDown);
        }
        rx.await.unwrap_or(Err(ErrorCode::ShuttingDown))
    }
}

/// Batch limits.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    pub max_items: usize,
    pub max_delay: Duration,
}

/// Starts the writer task. It runs until every [`BatchHandle`] is dropped,
/// committing whatever is still queued before it returns.
pub fn spawn(
    store: Arc<dyn Store>,
    cfg: BatchConfig,
) -> (BatchHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(writer_loop(store, cfg, rx));
    (BatchHandle { tx }, task)
}

async fn writer_loop(
    store: Arc<dyn Store>,
    cfg: BatchConfig,
    mut rx: mpsc::UnboundedReceiver<WriteRequest>,
) {
    let mut pending: Vec<WriteRequest> = Vec::new();
    let mut ops: Vec<WriteOp> = Vec::new();
    loop {
        let Some(first) = rx.recv().await else { break };
        let mut n_ops = first.ops.len();
        pending.push(first);
        let deadline = tokio::time::Instant::now() + cfg.max_delay;
        while n_ops < cfg.max_items {
            match rx.try_recv() {
                Ok(req) => {
                    n_ops += req.ops.len();
                    pending.push(req);
                }
                Err(mpsc::error::TryRecvError::Empty) if !cfg.max_delay.is_zero() => {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(req)) => {
                            n_ops += req.ops.len();
                            pending.push(req);
                        }
                        _ => break,
                    }
                }
                Err(_) => break,
            }
        }
        for req in pending.iter_mut() {
            ops.append(&mut req.ops);
        }
        let result = commit_with_retry(store.as_ref(), &ops).await;
        ops.clear();
        for req in pending.drain(..) {
            complete(req, result);
        }
    }
    tracing::debug!("batch writer stopped");
}

async fn commit_with_retry(store: &dyn Store, ops: &[WriteOp]) -> Result<(), ErrorCode> {
    if ops.is_empty() {
        return Ok(());
    }
    let mut delay = Duration::from_millis(10);
    for attempt in 1..=4 {
        match store.apply_batch(ops).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!(attempt, ops = ops.len(), error = %e, "batch commit failed");
                if attempt < 4 {
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                }
            }
        }
    }
    tracing::error!(
        ops = ops.len(),
        "batch dropped after retries: requesters get STORAGE_UNAVAILABLE"
    );
    Err(ErrorCode::StorageUnavailable)
}

fn complete(req: WriteRequest, result: Result<(), ErrorCode>) {
    if result.is_ok() {
        if let Some((mark, seq)) = req.durable {
            mark.fetch_max(seq.0, Ordering::AcqRel);
        }
    }
    if let Some(ack) = req.ack {
        match result {
            Ok(()) => {
                ack.conn.push(ack.frame);
            }
            Err(code) => {
                ack.conn.error(ack.req_id, code, code.default_message());
            }
        }
    }
    if let Some(tx) = req.notify {
        let _ = tx.send(result);
    }
}
