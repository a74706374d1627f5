//! The batch writer: group commit of every state change (DESIGN.md
//! invariant 6).
//!
//! Shards hand [`WriteRequest`]s to one writer task, in order. The writer
//! takes everything queued (up to `batch_max_items` operations, waiting at
//! most `batch_max_delay` for more — and, while the backlog is deep, what
//! is already queued up to `batch_max_items_deep`), applies it with one
//! `BatchSink::apply_batch` call — one transaction, one fsync — and only then
//! carries out each request's completion: raise the room's stored
//! watermark and send the acknowledgement frame to the requesting
//! connection. An acknowledgement therefore always means durable.
//!
//! A batch that fails is retried with backoff; if it still fails, each of
//! its requests is committed on its own, so one bad operation fails only
//! its own request. A request whose write cannot be committed gets
//! `STORAGE_UNAVAILABLE` instead of an acknowledgement.
//!
//! With a write spool (`spool.rs`), a batch the store cannot take because
//! it is *unreachable* (`StoreError::Unavailable`) is appended to the
//! spool instead and acknowledged once the spool has fsync'd it; while
//! the spool holds batches, every new batch goes behind them, so the
//! store receives them in order when the spool's replay task catches up.
//! A batch the spool cannot take either (full, unwritable) is refused
//! with `STORAGE_UNAVAILABLE` and a message saying so. A spooled batch's
//! stored watermarks are handed to the spool, which raises them once the
//! replay has applied the batch: until then the rooms' tails keep its
//! events, so HISTORY never has a hole between tail and database.
//!
//! **Lanes.** With `lanes` > 1 (Postgres only: it commits transactions
//! concurrently; SQLite has one writer) the writer is that many
//! independent writer loops, each with its own queue and its own store
//! connection, and a request goes to the lane of its room (`room id mod
//! lanes`, room-less requests to lane 0). Every write of a room is made
//! by its one shard in order and goes to its one lane, which commits in
//! order, so a room's writes still commit in the order they were made;
//! writes of different rooms were never ordered with each other. While
//! one lane waits for its commit's fsync the others commit theirs: group
//! commit across connections, which is how Postgres itself scales commits.
//!
//! **A deep backlog commits in parts.** Lanes split every batch, and at
//! chat rates that only adds commits. A writer loop instead splits only
//! while the backlog is deep ([`InParts`]): once a batch holds at least
//! `2 × max_items` operations (and `deep_parts` > 1: Postgres only), the
//! lane's rooms are split into `deep_parts` stripes, each queueing its
//! rooms' requests and committing them in order, one commit landing at a
//! time on its own connection, up to `max_items_deep` operations each —
//! the lane works as that many lanes. When fewer than `max_items`
//! operations wait and every stripe has landed, the rest commits whole
//! and the loop is back to whole batches. A room's writes still commit in
//! order, with no hand-over between connections. A flush marker completes
//! once every stripe has landed what came before it. Each part lands on
//! its own (committed, spooled, or isolated request by request).
//!
//! In cluster mode ([`spawn_cluster`]) each request carries the lease its
//! shard held for the room when it produced the write (`fence`: partition
//! and epoch), and every batch carries its requests' leases to the store,
//! which commits it only if this node still holds every one of them
//! (`BatchSink::apply_fenced_batch`). A fenced batch is not retried (the
//! lease will not come back at that epoch) and not spooled: its requests
//! are committed one by one under their own leases, and those whose lease
//! is gone get `STORAGE_UNAVAILABLE`, never an acknowledgement. Cluster
//! mode runs without a spool: an acknowledgement must never rest on a
//! lease the node may already have lost.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use confab_protocol::{ErrorCode, RoomId, Seq};
use confab_store::{BatchSink, Fence, Incarnation, Lease, WriteOp};
use tokio::sync::{mpsc, oneshot};

use crate::outbound::{OutboundQueue, Touched};
use crate::persist::spool::Spool;

/// The acknowledgement to send once a request's operations are durable.
pub struct Ack {
    pub conn: Arc<OutboundQueue>,
    pub req_id: u32,
    /// The encoded success frame.
    pub frame: Bytes,
}

/// Operations from one shard command, with what to do once they commit.
pub struct WriteRequest {
    pub ops: Vec<WriteOp>,
    /// Raise this room watermark to `Seq` once the events are in the
    /// database (lets the shard drop them from its in-memory tail): at
    /// commit, or — when the batch went to the spool — once the replay
    /// has applied it, not before.
    pub stored: Option<(Arc<AtomicU64>, Seq)>,
    pub ack: Option<Ack>,
    /// Frames to push once the write is durable — notifications and room
    /// announcements carry ids that must never be seen before they are
    /// stored (a crash would hand them out again).
    pub deliver: Vec<(Arc<OutboundQueue>, Bytes)>,
    /// For callers that wait on the commit themselves (tests, shutdown).
    pub notify: Option<oneshot::Sender<Result<(), ErrorCode>>>,
    /// Cluster mode: the lease under which the shard produced these
    /// operations (its room's partition, at the epoch the node held);
    /// the write commits only if the node still holds it. `None` on a
    /// single node, and for writes that belong to no room.
    pub fence: Option<Lease>,
    /// The room these writes go in order with when their operations name
    /// none (a command that wrote nothing, released file claims): its
    /// lane's and stripe's. `None` and no operations: a flush marker,
    /// which waits for every write before it.
    pub room: Option<RoomId>,
}

impl WriteRequest {
    /// A write with no completion actions yet.
    pub fn new(ops: Vec<WriteOp>) -> WriteRequest {
        WriteRequest {
            ops,
            stored: None,
            ack: None,
            deliver: Vec::new(),
            notify: None,
            fence: None,
            room: None,
        }
    }

    /// The room whose writes this one commits in order with: the first
    /// its operations name, else `room`.
    fn routing_room(&self) -> Option<RoomId> {
        self.ops.iter().find_map(WriteOp::room).or(self.room)
    }

    /// A flush marker ([`BatchHandle::flush`]): no operations and no
    /// room; it completes once every write before it has landed.
    fn is_marker(&self) -> bool {
        self.ops.is_empty() && self.room.is_none()
    }
}

/// The handle shards use to submit writes.
#[derive(Clone)]
pub struct BatchHandle {
    /// One queue per lane (see the module doc).
    lanes: Arc<[mpsc::UnboundedSender<WriteRequest>]>,
    /// Operations submitted and not yet taken by the writer: what sessions
    /// compare with `write_backlog_max` to push back on senders.
    backlog: Arc<AtomicUsize>,
}

/// The lane of `room`'s writes among `lanes`.
fn room_lane(room: RoomId, lanes: usize) -> usize {
    (room.0 % lanes.max(1) as u64) as usize
}

/// The lane of a request among `lanes`: its room's, room-less ones on 0.
fn lane_of(req: &WriteRequest, lanes: usize) -> usize {
    if lanes <= 1 {
        return 0;
    }
    req.routing_room().map_or(0, |room| room_lane(room, lanes))
}

impl BatchHandle {
    /// A handle whose writes the caller receives itself instead of a
    /// writer task (tests that drive shards directly).
    #[cfg(test)]
    pub(crate) fn detached() -> (BatchHandle, mpsc::UnboundedReceiver<WriteRequest>) {
        let (handle, mut rxs) = BatchHandle::with_lanes(1);
        (handle, rxs.pop().expect("one lane"))
    }

    /// A handle with `lanes` queues (at least one), and their receivers.
    fn with_lanes(lanes: usize) -> (BatchHandle, Vec<mpsc::UnboundedReceiver<WriteRequest>>) {
        let (txs, rxs): (Vec<_>, Vec<_>) =
            (0..lanes.max(1)).map(|_| mpsc::unbounded_channel()).unzip();
        let handle = BatchHandle {
            lanes: txs.into(),
            backlog: Arc::default(),
        };
        (handle, rxs)
    }

    /// Queues a write. Returns `false` if the writer has stopped. Never
    /// blocks and never refuses for size: shards must not wait, so the
    /// bound is enforced where requests enter (the session's push-back,
    /// [`BatchHandle::backlog`]).
    pub fn submit(&self, req: WriteRequest) -> bool {
        let lane = lane_of(&req, self.lanes.len());
        self.submit_to(lane, req)
    }

    /// Queues a write whose operations name no room but that belongs with
    /// `room`'s writes: it commits in order with them (a refused message's
    /// released file claims, before the room's next writes).
    pub fn submit_for(&self, room: RoomId, mut req: WriteRequest) -> bool {
        req.room = Some(room);
        self.submit_to(room_lane(room, self.lanes.len()), req)
    }

    fn submit_to(&self, lane: usize, req: WriteRequest) -> bool {
        let n = req.ops.len();
        self.backlog.fetch_add(n, Ordering::Relaxed);
        if self.lanes[lane].send(req).is_ok() {
            true
        } else {
            self.backlog.fetch_sub(n, Ordering::Relaxed);
            false
        }
    }

    /// Operations waiting for the writer to take them.
    pub fn backlog(&self) -> usize {
        self.backlog.load(Ordering::Relaxed)
    }

    /// A handle that does not keep the writer running: for parts that live
    /// as long as the server's tasks but must not delay the writer's stop
    /// at shutdown (cluster mode's room host and ROOM_MOVING refusals).
    pub fn downgrade(&self) -> WeakBatchHandle {
        WeakBatchHandle {
            lanes: self.lanes.iter().map(|tx| tx.downgrade()).collect(),
            backlog: self.backlog.clone(),
        }
    }

    /// Resolves once everything submitted before this call has committed
    /// (on every lane).
    pub async fn flush(&self) -> Result<(), ErrorCode> {
        let mut waits = Vec::with_capacity(self.lanes.len());
        for lane in 0..self.lanes.len() {
            let (tx, rx) = oneshot::channel();
            let mut marker = WriteRequest::new(Vec::new());
            marker.notify = Some(tx);
            if !self.submit_to(lane, marker) {
                return Err(ErrorCode::ShuttingDown);
            }
            waits.push(rx);
        }
        for rx in waits {
            rx.await.unwrap_or(Err(ErrorCode::ShuttingDown))?;
        }
        Ok(())
    }
}

/// A [`BatchHandle`] that does not keep the writer running.
#[derive(Clone)]
pub struct WeakBatchHandle {
    lanes: Arc<[mpsc::WeakUnboundedSender<WriteRequest>]>,
    backlog: Arc<AtomicUsize>,
}

impl WeakBatchHandle {
    /// The handle, while the writer still runs.
    pub fn upgrade(&self) -> Option<BatchHandle> {
        let lanes: Option<Vec<_>> = self.lanes.iter().map(|tx| tx.upgrade()).collect();
        Some(BatchHandle {
            lanes: lanes?.into(),
            backlog: self.backlog.clone(),
        })
    }
}

/// Batch limits.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    pub max_items: usize,
    /// The bound while the backlog is deep: once a batch holds `max_items`
    /// operations and more requests are already queued, it takes them too
    /// (without waiting for any) up to this many. A commit costs a fixed
    /// part (an fsync) and a per-row part that falls with the batch's size
    /// (Postgres' COPY), so when the store is the limit, bigger batches
    /// raise the rate it sustains; requests already queued wait for a
    /// commit either way. At chat rates batches never reach `max_items`
    /// and nothing changes. Not above `max_items`: a fixed bound.
    pub max_items_deep: usize,
    pub max_delay: Duration,
    /// Commits start at least this far apart: while commits are frequent,
    /// the next waits out the rest of the interval gathering requests; at
    /// low rates (the last commit long ago) nothing waits. Each commit has
    /// a fixed cost (an fsync, and a page written per room it touches), so
    /// this bounds what persistence costs under load at the price of at
    /// most this much acknowledgement latency.
    pub min_interval: Duration,
    /// How far the interval may widen while commits are frequent *and
    /// small* ([`CommitWindow`]): at a steady low rate each commit would
    /// carry a request or two, and its fixed cost would be most of what
    /// persistence costs per message. Not above `min_interval`: no
    /// widening.
    pub window_max: Duration,
    /// Independent writer loops, each committing the writes of its share
    /// of the rooms (module doc); 1 for SQLite.
    pub lanes: usize,
    /// The most parts a deep batch commits in at once, each for its share
    /// of the batch's rooms, with at least `max_items` operations per part
    /// (module doc); 1 for SQLite.
    pub deep_parts: usize,
}

#[cfg(test)]
impl BatchConfig {
    /// For tests: one lane, commits back to back, batches of `max_items`
    /// (`max_items_deep` while deep) in up to `deep_parts`.
    pub(crate) fn at_once(max_items: usize, max_items_deep: usize, deep_parts: usize) -> Self {
        BatchConfig {
            max_items,
            max_items_deep,
            max_delay: Duration::ZERO,
            min_interval: Duration::ZERO,
            window_max: Duration::ZERO,
            lanes: 1,
            deep_parts,
        }
    }
}

/// Starts the writer task. It runs until every [`BatchHandle`] is dropped,
/// committing whatever is still queued before it returns.
pub fn spawn(
    store: Arc<dyn BatchSink>,
    cfg: BatchConfig,
) -> (BatchHandle, tokio::task::JoinHandle<()>) {
    spawn_with_spool(store, cfg, None)
}

/// [`spawn`], with a write spool for the batches the store cannot take
/// while it is unreachable, and the spool's replay task (stopped once the
/// writer has stopped).
pub fn spawn_with_spool(
    store: Arc<dyn BatchSink>,
    cfg: BatchConfig,
    spool: Option<Arc<Spool>>,
) -> (BatchHandle, tokio::task::JoinHandle<()>) {
    let (handle, rxs) = BatchHandle::with_lanes(cfg.lanes);
    let taken = handle.backlog.clone();
    let task = tokio::spawn(async move {
        let replayer = spool.as_ref().map(|s| s.spawn_replayer(store.clone()));
        run_lanes(store, cfg, spool, rxs, taken, None).await;
        if let Some(replayer) = replayer {
            replayer.stop().await;
        }
    });
    (handle, task)
}

/// [`spawn`] for cluster mode: every batch is fenced by the leases its
/// requests carry, held by `owner` (this process's incarnation). No
/// spool (see the module doc).
pub fn spawn_cluster(
    store: Arc<dyn BatchSink>,
    cfg: BatchConfig,
    owner: Incarnation,
) -> (BatchHandle, tokio::task::JoinHandle<()>) {
    let (handle, rxs) = BatchHandle::with_lanes(cfg.lanes);
    let taken = handle.backlog.clone();
    let task = tokio::spawn(run_lanes(store, cfg, None, rxs, taken, Some(owner)));
    (handle, task)
}

/// Runs one writer loop per lane, each its own task (their commits
/// overlap), until all have stopped.
async fn run_lanes(
    store: Arc<dyn BatchSink>,
    cfg: BatchConfig,
    spool: Option<Arc<Spool>>,
    rxs: Vec<mpsc::UnboundedReceiver<WriteRequest>>,
    backlog: Arc<AtomicUsize>,
    owner: Option<Incarnation>,
) {
    let mut rxs = rxs;
    if rxs.len() == 1 {
        let rx = rxs.pop().expect("one lane");
        return writer_loop(store, cfg, spool, (0, rx), backlog, owner).await;
    }
    let lanes: Vec<_> = rxs
        .into_iter()
        .enumerate()
        .map(|lane| {
            tokio::spawn(writer_loop(
                store.clone(),
                cfg,
                spool.clone(),
                lane,
                backlog.clone(),
                owner,
            ))
        })
        .collect();
    for lane in lanes {
        if let Err(e) = lane.await {
            tracing::error!(error = %e, "a batch writer lane failed");
        }
    }
}

/// The fence of `requests` for `owner`: their leases, distinct.
fn fence_of<'a>(owner: Incarnation, requests: impl Iterator<Item = &'a WriteRequest>) -> Fence {
    let mut leases: Vec<Lease> = requests.filter_map(|r| r.fence).collect();
    leases.sort_unstable();
    leases.dedup();
    Fence { owner, leases }
}

async fn writer_loop(
    store: Arc<dyn BatchSink>,
    cfg: BatchConfig,
    spool: Option<Arc<Spool>>,
    (lane, mut rx): (usize, mpsc::UnboundedReceiver<WriteRequest>),
    backlog: Arc<AtomicUsize>,
    owner: Option<Incarnation>,
) {
    let queued = crate::metrics::batch_lane(lane);
    let mut pending: Vec<WriteRequest> = Vec::new();
    let mut whole = Part::default();
    let landing = Landing {
        store,
        spool,
        owner,
    };
    // The connections a commit's acknowledgements and deliveries went to:
    // written once each when the commit's requests are all completed.
    let mut touched = Touched::default();
    let mut last_start: Option<tokio::time::Instant> = None;
    let mut window = CommitWindow::new(cfg.min_interval, cfg.window_max);
    let window_end = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(window_end);
    loop {
        let Some(first) = rx.recv().await else { break };
        let mut n_ops = first.ops.len();
        pending.push(first);
        let now = tokio::time::Instant::now();
        let mut deadline = now + cfg.max_delay;
        if let Some(last) = last_start {
            deadline = deadline.max(last + window.get());
        }
        // One timer for the whole window, however many requests arrive in
        // it (not one per request).
        let mut armed = false;
        while n_ops < cfg.max_items {
            match rx.try_recv() {
                Ok(req) => {
                    n_ops += req.ops.len();
                    pending.push(req);
                }
                Err(mpsc::error::TryRecvError::Empty) if deadline > now => {
                    if !armed {
                        window_end.as_mut().reset(deadline);
                        armed = true;
                    }
                    tokio::select! {
                        biased;
                        req = rx.recv() => match req {
                            Some(req) => {
                                n_ops += req.ops.len();
                                pending.push(req);
                            }
                            None => break,
                        },
                        _ = window_end.as_mut() => break,
                    }
                }
                Err(_) => break,
            }
        }
        // The backlog is deep: take what is queued already, up to the
        // deeper bound, waiting for nothing.
        if n_ops >= cfg.max_items {
            while n_ops < cfg.max_items_deep {
                let Ok(req) = rx.try_recv() else { break };
                n_ops += req.ops.len();
                pending.push(req);
            }
        }
        let mut waiting = backlog
            .fetch_sub(n_ops, Ordering::Relaxed)
            .saturating_sub(n_ops);
        let mut started = std::time::Instant::now();
        let start = tokio::time::Instant::now();
        // Did this batch's first request come while the window was still
        // open (commits frequent), and how much did the window gather?
        match last_start {
            Some(last) => window.committed(now < last + window.get(), n_ops, start - last),
            None => window.committed(false, n_ops, Duration::ZERO),
        }
        last_start = Some(start);
        // The backlog is deep: commit in parts until it is not (module
        // doc); what is left then is shallow and commits whole below. A
        // flush marker (no operations) goes whole, after everything before.
        let marker = pending.iter().any(WriteRequest::is_marker);
        if !marker && is_deep(n_ops, cfg.max_items, cfg.deep_parts) {
            let parts = InParts {
                cfg: &cfg,
                landing: &landing,
                queued: &queued,
                backlog: &backlog,
            };
            parts.run(&mut pending, &mut rx).await;
            // What is left is taken now.
            started = std::time::Instant::now();
            waiting = backlog.load(Ordering::Relaxed);
        }
        if !pending.is_empty() {
            for req in pending.drain(..) {
                whole.take(req);
            }
            let landed = whole.persist(&landing).await;
            let carried = whole.ops.len();
            crate::metrics::batch_committed(&queued, carried, started.elapsed(), rx.len(), waiting);
            whole.finish(&landing, landed, &mut touched).await;
        }
        touched.flush_all();
        // Upkeep after the acknowledgements are out: it delays only the
        // next batch, which gathers requests meanwhile. Its budget: the
        // time until the window lets the next batch start.
        let budget = (start + window.get()).saturating_duration_since(tokio::time::Instant::now());
        if let Err(e) = landing
            .store
            .tidy_between(rx.is_empty(), Some(budget))
            .await
        {
            tracing::warn!(error = %e, "store upkeep between batches failed");
        }
    }
    tracing::debug!("batch writer stopped");
}

/// What every batch of a writer loop lands through.
#[derive(Clone)]
struct Landing {
    store: Arc<dyn BatchSink>,
    spool: Option<Arc<Spool>>,
    /// Cluster mode: this process's incarnation, which fences each batch.
    owner: Option<Incarnation>,
}

/// The writer while the backlog is deep (module doc, "A deep backlog
/// commits in parts"): the lane's rooms split into `deep_parts` stripes, each
/// with its own waiting requests and at most one commit landing, started
/// whenever it has requests and its last commit has landed — as if the
/// lane were that many lanes while the backlog lasts.
struct InParts<'a> {
    cfg: &'a BatchConfig,
    landing: &'a Landing,
    queued: &'a metrics::Gauge,
    backlog: &'a AtomicUsize,
}

/// One stripe of the rooms while the backlog is deep.
#[derive(Default)]
struct Stripe {
    waiting: std::collections::VecDeque<WriteRequest>,
    ops: usize,
    /// A part of it is being committed.
    committing: bool,
}

impl InParts<'_> {
    /// Commits `pending` (a deep batch) and what follows it in stripes
    /// until the backlog is shallow again (fewer than `max_items`
    /// operations waiting) and every stripe's commit has landed; what is
    /// left waiting is handed back in `pending`, in order, to commit
    /// whole. A flush marker waits for every stripe to land, and what
    /// comes after it waits for the marker.
    async fn run(
        &self,
        pending: &mut Vec<WriteRequest>,
        rx: &mut mpsc::UnboundedReceiver<WriteRequest>,
    ) {
        let count = self.cfg.deep_parts.max(1);
        let mut stripes: Vec<Stripe> = (0..count).map(|_| Stripe::default()).collect();
        let mut held: Vec<WriteRequest> = Vec::new();
        let mut marker: Option<WriteRequest> = None;
        let route = |stripes: &mut Vec<Stripe>, req: WriteRequest| {
            let stripe = &mut stripes[part_of(&req, self.cfg.lanes, count)];
            stripe.ops += req.ops.len();
            stripe.waiting.push_back(req);
        };
        // A request that arrives: held behind a marker waiting for the
        // stripes, the marker itself, or routed to its stripe.
        let admit = |stripes: &mut Vec<Stripe>,
                     marker: &mut Option<WriteRequest>,
                     held: &mut Vec<WriteRequest>,
                     req: WriteRequest| {
            if marker.is_some() {
                held.push(req);
            } else if req.is_marker() {
                *marker = Some(req);
            } else {
                route(stripes, req);
            }
        };
        // Taken requests wait again: counted in the backlog (which pushes
        // back on senders) until their part starts, like the channel's.
        let taken: usize = pending.iter().map(|r| r.ops.len()).sum();
        self.backlog.fetch_add(taken, Ordering::Relaxed);
        for req in pending.drain(..) {
            route(&mut stripes, req);
        }
        // Received at most this far ahead of the stripes' commits; the
        // rest waits in the channel.
        let ahead = count * self.cfg.max_items_deep.max(self.cfg.max_items).max(1);
        let mut commits = tokio::task::JoinSet::new();
        let mut slots = std::collections::HashMap::new();
        let mut open = true;
        let mut received = Vec::new();
        loop {
            let waiting: usize = stripes.iter().map(|s| s.ops).sum();
            // Deep, or a marker waiting for what is before it: start every
            // free stripe that has requests.
            if waiting >= self.cfg.max_items || marker.is_some() {
                for (i, stripe) in stripes.iter_mut().enumerate() {
                    if stripe.committing || stripe.waiting.is_empty() {
                        continue;
                    }
                    let mut part = Part::default();
                    while part.ops.len() < self.cfg.max_items_deep.max(1) {
                        let Some(req) = stripe.waiting.pop_front() else {
                            break;
                        };
                        stripe.ops -= req.ops.len();
                        part.take(req);
                    }
                    self.backlog.fetch_sub(part.ops.len(), Ordering::Relaxed);
                    stripe.committing = true;
                    let task = commits.spawn(self.land(part, rx.len()));
                    slots.insert(task.id(), i);
                }
            }
            if commits.is_empty() {
                let Some(flushed) = marker.take() else { break };
                // Everything before the marker has landed: it completes,
                // and what came after it is routed.
                let mut touched = Touched::default();
                complete(flushed, Ok(()), &mut touched);
                touched.flush_all();
                for req in std::mem::take(&mut held) {
                    admit(&mut stripes, &mut marker, &mut held, req);
                }
                continue;
            }
            let held_ops: usize = held.iter().map(|r| r.ops.len()).sum();
            let room = waiting + held_ops < ahead;
            tokio::select! {
                biased;
                done = commits.join_next_with_id() => match done {
                    Some(Ok((id, ()))) => {
                        let i = slots.remove(&id).expect("a started stripe");
                        stripes[i].committing = false;
                    }
                    // A panic stops the writer, as it did the whole loop:
                    // the part's requests can no longer be completed, and
                    // the room's later writes must not commit past them.
                    Some(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Some(Err(e)) => {
                        tracing::error!(error = %e, "a batch writer part failed");
                        let i = slots.remove(&e.id()).expect("a started stripe");
                        stripes[i].committing = false;
                    }
                    None => {}
                },
                n = rx.recv_many(&mut received, 4096), if open && room => {
                    if n == 0 {
                        open = false;
                    }
                    for req in received.drain(..) {
                        admit(&mut stripes, &mut marker, &mut held, req);
                    }
                }
            }
        }
        // Shallow, and every stripe landed: the rest commits whole, in
        // each room's order.
        for stripe in stripes {
            pending.extend(stripe.waiting);
        }
        pending.append(&mut held);
        let left: usize = pending.iter().map(|r| r.ops.len()).sum();
        self.backlog.fetch_sub(left, Ordering::Relaxed);
    }

    /// Lands one stripe's part and completes its requests.
    fn land(&self, part: Part, queue: usize) -> impl std::future::Future<Output = ()> + 'static {
        let landing = self.landing.clone();
        let (lane, backlog) = (self.queued.clone(), self.backlog.load(Ordering::Relaxed));
        async move {
            let began = std::time::Instant::now();
            let landed = part.persist(&landing).await;
            let (ops, took) = (part.ops.len(), began.elapsed());
            crate::metrics::batch_committed(&lane, ops, took, queue, backlog);
            let mut part = part;
            let mut touched = Touched::default();
            part.finish(&landing, landed, &mut touched).await;
            touched.flush_all();
        }
    }
}

/// Requests committed together as one transaction: their operations
/// moved into one batch, remembering where each request's end so that a
/// failed batch can be split without copies.
#[derive(Default)]
struct Part {
    pending: Vec<WriteRequest>,
    ops: Vec<WriteOp>,
    ends: Vec<usize>,
}

impl Part {
    fn take(&mut self, mut req: WriteRequest) {
        self.ops.append(&mut req.ops);
        self.ends.push(self.ops.len());
        self.pending.push(req);
    }

    /// Makes the batch durable: committed, or spooled (see [`persist`]).
    async fn persist(&self, landing: &Landing) -> Result<Landed, Failure> {
        let fence = landing.owner.map(|o| fence_of(o, self.pending.iter()));
        persist(
            landing.store.as_ref(),
            landing.spool.as_deref(),
            &self.ops,
            &self.ends,
            RETRIES,
            fence.as_ref(),
        )
        .await
    }

    /// Completes every request once the batch has `landed` (or not), and
    /// empties the part for the next batch: a batch that failed in the
    /// store is committed request by request, so one bad request fails
    /// alone.
    async fn finish(
        &mut self,
        landing: &Landing,
        landed: Result<Landed, Failure>,
        touched: &mut Touched,
    ) {
        let (spool, pending) = (landing.spool.as_deref(), &mut self.pending);
        let result = landed.clone().map(|_| ());
        if let (Ok(Landed::Spool(record)), Some(spool)) = (&landed, spool) {
            // Durable, not yet in the database: the rooms' tails keep the
            // events (history reads the database below the tail) until the
            // replay has put this record there.
            let marks = pending.iter_mut().filter_map(|r| r.stored.take()).collect();
            spool.defer_marks(*record, marks);
        }
        let isolate = matches!(result, Err(Failure::Store | Failure::Fenced));
        if isolate && pending.len() > 1 {
            // Isolate the failure: one bad request must not cost every other
            // request of the batch its write. Commit each on its own, once
            // (the batch already spent the retries).
            tracing::warn!(
                requests = pending.len(),
                "batch failed: committing its requests one by one"
            );
            let mut start = 0;
            for (req, &end) in pending.drain(..).zip(&self.ends) {
                let one = &self.ops[start..end];
                // Only without a spool, or with the store reachable: a
                // request that lands in the spool here keeps its mark
                // until replayed, like a whole spooled batch.
                let fence = landing.owner.map(|o| fence_of(o, std::iter::once(&req)));
                let one_end = [end - start];
                start = end;
                let result = match persist(
                    landing.store.as_ref(),
                    spool,
                    one,
                    &one_end,
                    1,
                    fence.as_ref(),
                )
                .await
                {
                    Ok(Landed::Spool(record)) => {
                        let mut req = req;
                        if let (Some(mark), Some(spool)) = (req.stored.take(), spool) {
                            spool.defer_marks(record, vec![mark]);
                        }
                        complete(req, Ok(()), touched);
                        continue;
                    }
                    other => other.map(|_| ()),
                };
                complete(req, result, touched);
            }
        } else {
            for req in pending.drain(..) {
                complete(req, result.clone(), touched);
            }
        }
        self.ops.clear();
        self.ends.clear();
    }
}

/// The stripe `req` goes to among `parts` while the backlog is deep, in a
/// lane that holds every `lanes`-th room: its room's (counted among the
/// lane's rooms, so that they spread over every stripe), room-less ones
/// to 0.
fn part_of(req: &WriteRequest, lanes: usize, parts: usize) -> usize {
    req.routing_room().map_or(0, |room| {
        room_lane(RoomId(room.0 / lanes.max(1) as u64), parts)
    })
}

/// Whether a batch of `ops` operations is deep enough to commit in
/// parts: at least two full batches (`max_items` each), with more than
/// one part allowed.
fn is_deep(ops: usize, max_items: usize, deep_parts: usize) -> bool {
    deep_parts > 1 && ops >= 2 * max_items.max(1)
}

/// Operations a commit should carry for its fixed cost (a round trip to
/// the store's thread, an fsync) not to be most of what persisting them
/// costs: while commits are frequent and smaller than this, the window
/// widens.
const SMALL_BATCH: u32 = 8;

/// The interval between the starts of two frequent commits. At least
/// `floor` (`min_interval`); while commits are frequent (a batch's first
/// request came before the window closed), as wide as it takes to gather
/// [`SMALL_BATCH`] operations at the rate the last interval saw, up to
/// `max` (`window_max`). So at a low steady rate, where each commit would
/// carry a request or two, commits are fewer and fuller; at a high rate
/// batches fill within `floor` and the window stays there (it would only
/// add latency); after a pause a request commits at once. A request waits
/// at most `max`, plus a commit, for its acknowledgement.
#[derive(Debug, Clone, Copy)]
struct CommitWindow {
    floor: Duration,
    max: Duration,
    now: Duration,
}

impl CommitWindow {
    fn new(floor: Duration, max: Duration) -> CommitWindow {
        CommitWindow {
            floor,
            max: max.max(floor),
            now: floor,
        }
    }

    /// How long after the last commit's start the next may start.
    fn get(&self) -> Duration {
        self.now
    }

    /// A batch of `ops` operations is being committed, `since` after the
    /// previous commit started; its first request came while the window
    /// was open (`frequent`) or not.
    fn committed(&mut self, frequent: bool, ops: usize, since: Duration) {
        self.now = match u32::try_from(ops) {
            Ok(n) if frequent && n > 0 => (since * SMALL_BATCH / n).clamp(self.floor, self.max),
            _ => self.floor,
        };
    }
}

/// Attempts per batch before its requests are tried one by one.
const RETRIES: u32 = 4;

/// Why a request's write is not durable.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// The store did not commit it (refused it, or — without a spool —
    /// could not be reached). Worth isolating: commit requests one by one.
    Store,
    /// The store is unreachable and the spool could not take it either.
    Spool(String),
    /// Cluster mode: the node no longer holds the lease of a room the
    /// write is for (another node owns it now).
    Fenced,
}

impl Failure {
    fn message(&self) -> String {
        match self {
            Failure::Store => ErrorCode::StorageUnavailable.default_message().to_owned(),
            Failure::Spool(why) => {
                format!("the database is unreachable and {why}: the write was not stored")
            }
            Failure::Fenced => "this node no longer owns the room (its partition's lease has \
                                moved): the write was not stored"
                .to_owned(),
        }
    }
}

/// Where a durable write is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Landed {
    /// Committed to the store.
    Store,
    /// In the spool as this record (its number counts every record ever
    /// spooled by this run), waiting for the replay.
    Spool(u64),
}

/// Makes `ops` (requests ending at `ends`) durable: committed to the
/// store — or, with a spool, appended to it when it already holds earlier
/// batches (they must reach the store first) or when the store is
/// unreachable.
async fn persist(
    store: &dyn BatchSink,
    spool: Option<&Spool>,
    ops: &[WriteOp],
    ends: &[usize],
    attempts: u32,
    fence: Option<&Fence>,
) -> Result<Landed, Failure> {
    if ops.is_empty() {
        return Ok(Landed::Store);
    }
    let refused = |e: crate::persist::spool::SpoolError| Failure::Spool(e.to_string());
    if let Some(spool) = spool {
        if let Some(record) = spool.append_if_active(ops, ends).await.map_err(refused)? {
            return Ok(Landed::Spool(record));
        }
    }
    match (
        commit(store, ops, attempts, spool.is_some(), fence).await,
        spool,
    ) {
        (Ok(()), _) => Ok(Landed::Store),
        (Err(NotCommitted::Fenced), _) => Err(Failure::Fenced),
        (Err(NotCommitted::Unreachable), Some(spool)) => spool
            .append(ops, ends)
            .await
            .map(Landed::Spool)
            .map_err(refused),
        (Err(_), _) => Err(Failure::Store),
    }
}

/// Why the store did not commit the batch.
enum NotCommitted {
    /// It could not be reached (so nothing says the operations are bad).
    Unreachable,
    /// The fence did not hold: a lease moved to another node.
    Fenced,
    /// It refused the batch, or stayed unreachable through the retries.
    Failed,
}

async fn commit(
    store: &dyn BatchSink,
    ops: &[WriteOp],
    attempts: u32,
    spool_takes_unreachable: bool,
    fence: Option<&Fence>,
) -> Result<(), NotCommitted> {
    let mut delay = Duration::from_millis(10);
    for attempt in 1..=attempts {
        let applied = match fence {
            Some(fence) => store.apply_fenced_batch(ops, fence).await,
            None => store.apply_batch(ops).await,
        };
        match applied {
            Ok(()) => return Ok(()),
            Err(e) => {
                crate::metrics::batch_error();
                // The lease will not come back at that epoch: no retry.
                if e.is_fenced() {
                    crate::metrics::cluster_fenced_batch();
                    tracing::warn!(ops = ops.len(), error = %e, "batch fenced: not committed");
                    return Err(NotCommitted::Fenced);
                }
                tracing::warn!(attempt, ops = ops.len(), error = %e, "batch commit failed");
                // The spool is the retry for an unreachable store: waiting
                // here would hold every acknowledgement back.
                if spool_takes_unreachable && e.is_unavailable() {
                    return Err(NotCommitted::Unreachable);
                }
                if attempt < attempts {
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
    Err(NotCommitted::Failed)
}

fn complete(req: WriteRequest, result: Result<(), Failure>, touched: &mut Touched) {
    if result.is_ok() {
        if let Some((mark, seq)) = req.stored {
            mark.fetch_max(seq.0, Ordering::AcqRel);
        }
        for (conn, frame) in req.deliver {
            conn.push(frame);
            touched.note(&conn);
        }
    }
    if let Some(ack) = req.ack {
        match result {
            Ok(()) => {
                ack.conn.push_reply(ack.req_id, ack.frame);
            }
            Err(ref failure) => {
                ack.conn
                    .error(ack.req_id, ErrorCode::StorageUnavailable, failure.message());
            }
        }
        // Noted after the push, never before: a connection another pusher
        // has noted is written by that pusher after it clears the flag, so
        // only a frame already queued when we see the flag set is sure to
        // go out (noting first left a reply queued and unwritten when the
        // other pusher flushed in between).
        touched.note(&ack.conn);
    }
    if let Some(tx) = req.notify {
        let _ = tx.send(result.map_err(|_| ErrorCode::StorageUnavailable));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_protocol::{Role, RoomId, UserId, Visibility};
    use confab_store::sqlite::SqliteStore;
    use confab_store::{Store, StoredEvent};

    fn event(room: RoomId, seq: u64) -> WriteOp {
        WriteOp::AppendEvent(StoredEvent {
            room,
            seq: Seq(seq),
            at: 1,
            actor: UserId(1),
            actor_name: "alice".into(),
            kind: 1,
            body: vec![0],
        })
    }

    fn request(ops: Vec<WriteOp>) -> (WriteRequest, oneshot::Receiver<Result<(), ErrorCode>>) {
        let (tx, rx) = oneshot::channel();
        (
            WriteRequest {
                notify: Some(tx),
                ..WriteRequest::new(ops)
            },
            rx,
        )
    }

    #[tokio::test]
    async fn a_bad_request_fails_alone_and_its_batch_neighbours_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("t.db")).await.unwrap());
        let alice = store.create_user("alice", "x", 0).await.unwrap();
        let room = RoomId(1);
        let create = WriteOp::CreateRoom {
            room,
            name: "r".into(),
            topic: String::new(),
            visibility: Visibility::Public,
            owner: alice,
            created_at: 0,
        };
        store.apply_batch(&[create]).await.unwrap();

        let (batch, task) = spawn(
            store.clone(),
            BatchConfig {
                max_items: 100,
                max_items_deep: 100,
                max_delay: Duration::ZERO,
                min_interval: Duration::ZERO,
                window_max: Duration::ZERO,
                lanes: 1,
                deep_parts: 1,
            },
        );
        // On this single-threaded runtime the writer cannot run before all
        // three are queued, so they share one batch.
        let (a, a_rx) = request(vec![event(room, 1)]);
        let bad_member = WriteOp::AddMember {
            room: RoomId(99),
            user: alice,
            role: Role::Member,
            joined_at: 0,
        };
        let (b, b_rx) = request(vec![bad_member]);
        let (c, c_rx) = request(vec![event(room, 2)]);
        assert!(batch.submit(a) && batch.submit(b) && batch.submit(c));
        assert_eq!(a_rx.await.unwrap(), Ok(()));
        assert_eq!(b_rx.await.unwrap(), Err(ErrorCode::StorageUnavailable));
        assert_eq!(c_rx.await.unwrap(), Ok(()));
        let stored: Vec<_> = store
            .history(room, Seq(0), 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(stored, vec![Seq(2), Seq(1)]);
        drop(batch);
        task.await.unwrap();
    }

    #[test]
    fn a_request_goes_to_its_rooms_lane() {
        let at = |ops: Vec<WriteOp>, lanes| lane_of(&WriteRequest::new(ops), lanes);
        assert_eq!(at(vec![event(RoomId(7), 1)], 1), 0);
        assert_eq!(at(vec![event(RoomId(7), 1)], 4), 3);
        assert_eq!(at(vec![event(RoomId(8), 1)], 4), 0);
        // The first op naming a room decides; room-less requests go to 0.
        let release = WriteOp::ReleaseFiles { files: vec![1] };
        assert_eq!(at(vec![release.clone(), event(RoomId(6), 1)], 4), 2);
        assert_eq!(at(vec![release], 4), 0);
        assert_eq!(at(Vec::new(), 4), 0);
    }

    /// Every request of a room reaches one lane's queue, in the order it
    /// was submitted, whatever else is submitted in between.
    #[test]
    fn a_rooms_requests_queue_on_one_lane_in_order() {
        let (batch, mut lanes) = BatchHandle::with_lanes(4);
        for seq in 1..=5 {
            for room in 1..=7 {
                assert!(batch.submit(WriteRequest::new(vec![event(RoomId(room), seq)])));
            }
        }
        // A write that names no room but belongs with room 3's goes behind
        // room 3's writes on its lane.
        let release = WriteOp::ReleaseFiles { files: vec![1] };
        assert!(batch.submit_for(RoomId(3), WriteRequest::new(vec![release])));
        let mut seen: std::collections::HashMap<u64, (usize, Vec<u64>)> = Default::default();
        for (lane, rx) in lanes.iter_mut().enumerate() {
            while let Ok(req) = rx.try_recv() {
                let WriteOp::AppendEvent(ev) = &req.ops[0] else {
                    // The release, last on room 3's lane.
                    assert_eq!(lane, 3);
                    assert!(rx.is_empty());
                    assert_eq!(seen[&3].1.len(), 5);
                    continue;
                };
                let entry = seen.entry(ev.room.0).or_insert((lane, Vec::new()));
                assert_eq!(entry.0, lane, "room {} on two lanes", ev.room.0);
                entry.1.push(ev.seq.0);
            }
        }
        assert_eq!(seen.len(), 7);
        assert!(seen.values().all(|(_, seqs)| *seqs == [1, 2, 3, 4, 5]));
        assert_eq!(batch.backlog(), 36);
    }

    /// Four lanes on a real Postgres commit concurrently: each room's
    /// writes are separate requests that depend on the ones before (the
    /// room must exist, the member must have joined), submitted without
    /// waiting and interleaved across rooms; all commit, and each room
    /// ends as its writes, in order, leave it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lanes_keep_each_rooms_writes_in_order_on_postgres() {
        const TEST: &str = "lanes_keep_each_rooms_writes_in_order_on_postgres";
        each_rooms_writes_commit_in_order_on_postgres(TEST, 4, 4, 4, 1).await;
    }

    /// The same with one lane whose deep batches commit in four parts at
    /// once (`max_items` 4: a backlog of 16 operations or more splits).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deep_parts_keep_each_rooms_writes_in_order_on_postgres() {
        const TEST: &str = "deep_parts_keep_each_rooms_writes_in_order_on_postgres";
        each_rooms_writes_commit_in_order_on_postgres(TEST, 1, 4, 256, 4).await;
    }

    async fn each_rooms_writes_commit_in_order_on_postgres(
        test: &str,
        lanes: usize,
        max_items: usize,
        max_items_deep: usize,
        deep_parts: usize,
    ) {
        use confab_store::postgres::{PgStore, PgStoreOptions};
        let Some(db) = confab_testkit::postgres::TestDatabase::create(test).await else {
            return;
        };
        let pg = PgStore::open(db.url(), PgStoreOptions::default())
            .await
            .unwrap();
        let store: Arc<dyn Store> = Arc::new(pg.clone());
        let alice = store.create_user("alice", "x", 0).await.unwrap();
        let bob = store.create_user("bob", "x", 0).await.unwrap();
        let (batch, task) = spawn(
            store.clone(),
            BatchConfig {
                lanes,
                ..BatchConfig::at_once(max_items, max_items_deep, deep_parts)
            },
        );
        let rooms: Vec<RoomId> = (1..=13).map(RoomId).collect();
        let mut waits = Vec::new();
        let mut submit = |ops| {
            let (req, rx) = request(ops);
            assert!(batch.submit(req));
            waits.push(rx);
        };
        for &room in &rooms {
            submit(vec![WriteOp::CreateRoom {
                room,
                name: format!("r{}", room.0),
                topic: String::new(),
                visibility: Visibility::Public,
                owner: alice,
                created_at: 0,
            }]);
        }
        for &room in &rooms {
            submit(vec![WriteOp::AddMember {
                room,
                user: bob,
                role: Role::Member,
                joined_at: 1,
            }]);
        }
        for seq in 1..=30 {
            for &room in &rooms {
                submit(vec![event(room, seq)]);
            }
        }
        for &room in &rooms {
            submit(vec![WriteOp::RemoveMember { room, user: bob }]);
        }
        for rx in waits {
            assert_eq!(rx.await.unwrap(), Ok(()));
        }
        batch.flush().await.unwrap();
        for &room in &rooms {
            let seqs: Vec<u64> = store
                .history(room, Seq(0), 100)
                .await
                .unwrap()
                .iter()
                .map(|e| e.seq.0)
                .collect();
            assert_eq!(seqs, (1..=30).rev().collect::<Vec<_>>(), "room {}", room.0);
        }
        // Every leave committed after its join.
        assert_eq!(store.rooms_of_user(bob).await.unwrap().len(), 0);
        drop(batch);
        task.await.unwrap();
        pg.close().await;
        db.drop_now().await;
    }

    #[tokio::test]
    async fn the_stored_watermark_rises_only_after_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("t.db")).await.unwrap());
        let (batch, _task) = spawn(
            store,
            BatchConfig {
                max_items: 100,
                max_items_deep: 100,
                max_delay: Duration::ZERO,
                min_interval: Duration::ZERO,
                window_max: Duration::ZERO,
                lanes: 1,
                deep_parts: 1,
            },
        );
        let mark = Arc::new(AtomicU64::new(0));
        // An op that cannot commit (no such room) must not raise the mark.
        let (mut req, rx) = request(vec![event(RoomId(5), 3)]);
        req.stored = Some((mark.clone(), Seq(3)));
        assert!(batch.submit(req));
        assert!(rx.await.unwrap().is_err());
        assert_eq!(mark.load(Ordering::Acquire), 0);
        assert_eq!(batch.flush().await, Ok(()));
    }

    /// Records the size of every batch it is given.
    #[derive(Default)]
    struct Recording(std::sync::Mutex<Vec<usize>>);

    #[async_trait::async_trait]
    impl BatchSink for Recording {
        async fn apply_batch(&self, ops: &[WriteOp]) -> confab_store::StoreResult<()> {
            self.0.lock().unwrap().push(ops.len());
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn frequent_commits_start_min_interval_apart_and_gather_meanwhile() {
        let sink = Arc::new(Recording::default());
        let interval = Duration::from_millis(10);
        let (batch, task) = spawn(
            sink.clone(),
            BatchConfig {
                max_items: 100,
                max_items_deep: 100,
                max_delay: Duration::ZERO,
                min_interval: interval,
                window_max: Duration::ZERO,
                lanes: 1,
                deep_parts: 1,
            },
        );
        let start = tokio::time::Instant::now();
        let (a, a_rx) = request(vec![event(RoomId(1), 1)]);
        assert!(batch.submit(a));
        assert_eq!(a_rx.await.unwrap(), Ok(()));
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "the first commit waits for nothing"
        );

        // Right after a commit, the next one waits out the interval and
        // takes what arrives meanwhile.
        let (b, b_rx) = request(vec![event(RoomId(1), 2)]);
        assert!(batch.submit(b));
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
        let (c, c_rx) = request(vec![event(RoomId(1), 3)]);
        assert!(batch.submit(c));
        assert_eq!(b_rx.await.unwrap(), Ok(()));
        assert_eq!(c_rx.await.unwrap(), Ok(()));
        assert_eq!(start.elapsed(), interval);
        assert_eq!(*sink.0.lock().unwrap(), vec![1, 2]);

        // Long after the last commit, a request commits at once.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let later = tokio::time::Instant::now();
        let (d, d_rx) = request(vec![event(RoomId(1), 4)]);
        assert!(batch.submit(d));
        assert_eq!(d_rx.await.unwrap(), Ok(()));
        assert_eq!(later.elapsed(), Duration::ZERO);
        assert_eq!(*sink.0.lock().unwrap(), vec![1, 2, 1]);
        drop(batch);
        task.await.unwrap();
    }

    /// Ten one-op requests queued before the writer runs, with
    /// `max_items` 2: batch sizes.
    async fn batches_of_a_deep_backlog(max_items_deep: usize) -> Vec<usize> {
        let sink = Arc::new(Recording::default());
        let (batch, task) = spawn(
            sink.clone(),
            BatchConfig {
                max_items: 2,
                max_items_deep,
                max_delay: Duration::ZERO,
                min_interval: Duration::ZERO,
                window_max: Duration::ZERO,
                lanes: 1,
                deep_parts: 1,
            },
        );
        // On this single-threaded runtime the writer cannot run before all
        // ten are queued.
        let mut acks = Vec::new();
        for seq in 1..=10 {
            let (req, rx) = request(vec![event(RoomId(1), seq)]);
            assert!(batch.submit(req));
            acks.push(rx);
        }
        for rx in acks {
            assert_eq!(rx.await.unwrap(), Ok(()));
        }
        drop(batch);
        task.await.unwrap();
        let sizes = sink.0.lock().unwrap().clone();
        sizes
    }

    #[tokio::test]
    async fn a_deep_backlog_commits_in_batches_up_to_the_deep_bound() {
        assert_eq!(batches_of_a_deep_backlog(4).await, [4, 4, 2]);
        assert_eq!(batches_of_a_deep_backlog(100).await, [10]);
        // Not above max_items: a fixed bound.
        assert_eq!(batches_of_a_deep_backlog(2).await, [2, 2, 2, 2, 2]);
        assert_eq!(batches_of_a_deep_backlog(0).await, [2, 2, 2, 2, 2]);
    }

    #[test]
    fn a_batch_splits_only_when_it_holds_two_full_batches() {
        assert!(!is_deep(0, 1024, 4));
        assert!(!is_deep(2047, 1024, 4));
        assert!(is_deep(2048, 1024, 4));
        assert!(is_deep(16_384, 1024, 2));
        assert!(!is_deep(16_384, 1024, 1));
        assert!(!is_deep(16_384, 1024, 0));
        assert!(is_deep(2, 0, 4));
    }

    #[test]
    fn a_lanes_rooms_spread_over_every_part() {
        let part =
            |room: u64, lanes| part_of(&WriteRequest::new(vec![event(RoomId(room), 1)]), lanes, 4);
        // One lane: room id mod parts.
        assert_eq!(
            (1..=5).map(|r| part(r, 1)).collect::<Vec<_>>(),
            [1, 2, 3, 0, 1]
        );
        // Lane 1 of 4 holds rooms 1, 5, 9, 13: one in each part.
        assert_eq!([1, 5, 9, 13].map(|r| part(r, 4)), [0, 1, 2, 3]);
        // Room-less writes to part 0, unless they go with a room's
        // (`submit_for`, a command that wrote nothing): to its part, and
        // not a flush marker.
        let none = WriteRequest::new(vec![WriteOp::ReleaseFiles { files: vec![] }]);
        assert_eq!(part_of(&none, 1, 4), 0);
        let with_room = |ops| WriteRequest {
            room: Some(RoomId(7)),
            ..WriteRequest::new(ops)
        };
        let release = with_room(vec![WriteOp::ReleaseFiles { files: vec![] }]);
        assert_eq!((part_of(&release, 1, 4), lane_of(&release, 2)), (3, 1));
        let nothing = with_room(vec![]);
        assert_eq!(part_of(&nothing, 1, 4), 3);
        assert!(!nothing.is_marker());
        assert!(WriteRequest::new(vec![]).is_marker());
    }

    /// Forty one-event requests over rooms 1-4 (`deep(4)`: one deep
    /// batch), then `yields` turns for the writer, twice; room 1's
    /// batches take 100 ms. The sink, the writer, and every request's
    /// result.
    async fn two_rounds_with_room_one_slow(
        yields: usize,
    ) -> (
        Arc<Overlapping>,
        BatchHandle,
        tokio::task::JoinHandle<()>,
        Vec<oneshot::Receiver<Result<(), ErrorCode>>>,
    ) {
        let sink = Arc::new(Overlapping {
            slow_room: Some(1),
            ..Overlapping::default()
        });
        let (batch, task) = spawn(sink.clone(), deep(4));
        let mut acks = Vec::new();
        for round in 0..2 {
            for seq in 1..=10 {
                for room in 1..=4 {
                    let (req, rx) = request(vec![event(RoomId(room), round * 10 + seq)]);
                    assert!(batch.submit(req));
                    acks.push(rx);
                }
            }
            // The writer takes the forty as one deep batch and starts its
            // parts before the next forty come.
            for _ in 0..yields {
                tokio::task::yield_now().await;
            }
        }
        (sink, batch, task, acks)
    }

    /// While stripes commit, what waits in them counts in the backlog
    /// that pushes back on senders, as it did in the queue.
    #[tokio::test(start_paused = true)]
    async fn requests_waiting_in_a_stripe_count_in_the_backlog() {
        let (sink, batch, task, acks) = two_rounds_with_room_one_slow(50).await;
        // Rooms 2-4 of both forties have landed; room 1's second ten wait
        // behind its stripe's slow commit of the first ten.
        assert_eq!(sink.landed().len(), 60);
        assert_eq!(batch.backlog(), 10);
        for rx in acks {
            assert_eq!(rx.await.unwrap(), Ok(()));
        }
        assert_eq!(batch.backlog(), 0);
        drop(batch);
        task.await.unwrap();
    }

    /// Records every batch it is given (each event's room and seq) and
    /// how many were being applied at once; refuses a batch that holds
    /// the poisoned event.
    #[derive(Default)]
    struct Overlapping {
        batches: std::sync::Mutex<Vec<Vec<(u64, u64)>>>,
        in_flight: AtomicUsize,
        most_at_once: AtomicUsize,
        poison: Option<(u64, u64)>,
        /// Batches of this room take 100 ms.
        slow_room: Option<u64>,
    }

    impl Overlapping {
        /// Every event landed so far, batch after batch.
        fn landed(&self) -> Vec<(u64, u64)> {
            self.batches
                .lock()
                .unwrap()
                .iter()
                .flatten()
                .copied()
                .collect()
        }
    }

    #[async_trait::async_trait]
    impl BatchSink for Overlapping {
        async fn apply_batch(&self, ops: &[WriteOp]) -> confab_store::StoreResult<()> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_at_once.fetch_max(now, Ordering::SeqCst);
            // Let any other part start before this one ends.
            for _ in 0..8 {
                tokio::task::yield_now().await;
            }
            let events: Vec<(u64, u64)> = ops
                .iter()
                .map(|op| match op {
                    WriteOp::AppendEvent(ev) => (ev.room.0, ev.seq.0),
                    _ => unreachable!("events only"),
                })
                .collect();
            if self
                .slow_room
                .is_some_and(|room| events.iter().any(|e| e.0 == room))
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if self.poison.is_some_and(|p| events.contains(&p)) {
                return Err(confab_store::StoreError::Database {
                    message: "refused".into(),
                    source: None,
                });
            }
            self.batches.lock().unwrap().push(events);
            Ok(())
        }
    }

    /// One lane, commits back to back, `max_items` 2 (a batch of 4 or more
    /// operations is deep), up to 100 per batch, in up to `deep_parts`.
    fn deep(deep_parts: usize) -> BatchConfig {
        BatchConfig::at_once(2, 100, deep_parts)
    }

    /// Ten events in each of rooms 1-4, queued before the writer runs
    /// (`max_items` 2, one deep batch of all 40), committed with
    /// `deep_parts`: every request's result, in submission order.
    async fn a_deep_batch_in_parts(
        sink: Arc<Overlapping>,
        deep_parts: usize,
    ) -> Vec<Result<(), ErrorCode>> {
        let (batch, task) = spawn(sink, deep(deep_parts));
        // On this single-threaded runtime the writer cannot run before all
        // forty are queued.
        let mut acks = Vec::new();
        for seq in 1..=10 {
            for room in 1..=4 {
                let (req, rx) = request(vec![event(RoomId(room), seq)]);
                assert!(batch.submit(req));
                acks.push(rx);
            }
        }
        let mut results = Vec::new();
        for rx in acks {
            results.push(rx.await.unwrap());
        }
        drop(batch);
        task.await.unwrap();
        results
    }

    /// Room `room`'s ten events, in order.
    fn rooms_events(room: u64) -> Vec<(u64, u64)> {
        (1..=10).map(|seq| (room, seq)).collect()
    }

    #[tokio::test]
    async fn a_deep_batch_commits_its_rooms_shares_at_once() {
        let sink = Arc::new(Overlapping::default());
        let results = a_deep_batch_in_parts(sink.clone(), 4).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let mut batches = sink.batches.lock().unwrap().clone();
        batches.sort();
        // Four parts, one room each, its events in order; all four
        // applied at once.
        assert_eq!(batches, (1..=4).map(rooms_events).collect::<Vec<_>>());
        assert_eq!(sink.most_at_once.load(Ordering::SeqCst), 4);

        // With one part: the same forty events in one batch.
        let sink = Arc::new(Overlapping::default());
        let results = a_deep_batch_in_parts(sink.clone(), 1).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let batches = sink.batches.lock().unwrap().clone();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].len(), 40);
        assert_eq!(sink.most_at_once.load(Ordering::SeqCst), 1);
    }

    /// A part of the next deep batch starts as soon as the same part of the
    /// last one has landed, while a slow part still commits; every room's
    /// batches still land in order.
    #[tokio::test(start_paused = true)]
    async fn the_next_deep_batch_overtakes_a_slow_part_of_the_last_on_other_rooms() {
        let (sink, batch, task, acks) = two_rounds_with_room_one_slow(4).await;
        for rx in acks {
            assert_eq!(rx.await.unwrap(), Ok(()));
        }
        drop(batch);
        task.await.unwrap();
        let batches = sink.batches.lock().unwrap().clone();
        let first_of = |room, seq| batches.iter().position(|b| b[0] == (room, seq)).unwrap();
        // Rooms 2-4 (parts 2, 3 and 0) of the second batch landed before
        // room 1 (part 1) of the first.
        for room in [2, 3, 4] {
            assert!(first_of(room, 11) < first_of(1, 1), "{batches:?}");
        }
        // Each room's batches in order, each its ten events.
        for room in 1..=4 {
            assert!(first_of(room, 1) < first_of(room, 11), "{batches:?}");
            let events: Vec<_> = batches
                .iter()
                .filter(|b| b[0].0 == room)
                .flatten()
                .copied()
                .collect();
            assert_eq!(events, (1..=20).map(|seq| (room, seq)).collect::<Vec<_>>());
        }
    }

    /// A flush while the backlog is deep returns once everything submitted
    /// before it has landed in every stripe (a slow one included), and
    /// what comes after it still lands.
    #[tokio::test(start_paused = true)]
    async fn a_flush_while_deep_waits_for_every_stripe() {
        let sink = Arc::new(Overlapping {
            slow_room: Some(1),
            ..Overlapping::default()
        });
        let (batch, task) = spawn(sink.clone(), deep(4));
        let mut acks = Vec::new();
        let mut submit = |room, seq| {
            let (req, rx) = request(vec![event(RoomId(room), seq)]);
            assert!(batch.submit(req));
            acks.push(rx);
        };
        for seq in 1..=10 {
            for room in 1..=4 {
                submit(room, seq);
            }
        }
        // The writer takes the forty and starts its stripes.
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        for seq in 11..=20 {
            for room in 1..=4 {
                submit(room, seq);
            }
        }
        let flusher = batch.clone();
        let flushed = tokio::spawn(async move { flusher.flush().await });
        tokio::task::yield_now().await;
        for room in 1..=4 {
            submit(room, 21);
        }
        // A second flush, queued behind the first: it too waits for
        // everything before it, in every stripe.
        let flusher = batch.clone();
        let flushed_again = tokio::spawn(async move { flusher.flush().await });
        tokio::task::yield_now().await;
        for room in 1..=4 {
            submit(room, 22);
        }
        assert_eq!(flushed.await.unwrap(), Ok(()));
        let landed = sink.landed();
        for room in 1..=4 {
            for seq in 1..=20 {
                assert!(
                    landed.contains(&(room, seq)),
                    "({room}, {seq}) before the flush: {landed:?}"
                );
            }
        }
        assert_eq!(flushed_again.await.unwrap(), Ok(()));
        let landed = sink.landed();
        for room in 1..=4 {
            assert!(
                landed.contains(&(room, 21)),
                "({room}, 21) before the second flush: {landed:?}"
            );
        }
        for rx in acks {
            assert_eq!(rx.await.unwrap(), Ok(()));
        }
        drop(batch);
        task.await.unwrap();
        let landed = sink.landed();
        for room in 1..=4 {
            let seqs: Vec<u64> = landed.iter().filter(|e| e.0 == room).map(|e| e.1).collect();
            assert_eq!(seqs, (1..=22).collect::<Vec<_>>(), "room {room}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_part_fails_alone_and_the_other_parts_commit_whole() {
        let sink = Arc::new(Overlapping {
            poison: Some((3, 5)),
            ..Overlapping::default()
        });
        let results = a_deep_batch_in_parts(sink.clone(), 4).await;
        // Only the poisoned request failed (room 3's fifth event).
        for (i, result) in results.iter().enumerate() {
            let (seq, room) = (i / 4 + 1, i % 4 + 1);
            let expected = if (room, seq) == (3, 5) {
                Err(ErrorCode::StorageUnavailable)
            } else {
                Ok(())
            };
            assert_eq!(*result, expected, "room {room} seq {seq}");
        }
        let batches = sink.batches.lock().unwrap().clone();
        // Rooms 1, 2 and 4 committed whole, room 3 one event at a time.
        for room in [1, 2, 4] {
            assert!(
                batches.contains(&rooms_events(room)),
                "room {room}: {batches:?}"
            );
        }
        let room3: Vec<_> = batches.iter().filter(|b| b[0].0 == 3).cloned().collect();
        let mut singles = rooms_events(3);
        singles.retain(|&e| e != (3, 5));
        assert_eq!(
            room3,
            singles.into_iter().map(|e| vec![e]).collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_window_widens_only_while_commits_are_frequent_and_small() {
        let ms = Duration::from_millis;
        let mut w = CommitWindow::new(ms(2), ms(4));
        assert_eq!(w.get(), ms(2));
        // 2 ops in 2 ms while the window was open: 8 ops would take 8 ms,
        // more than the bound.
        w.committed(true, 2, ms(2));
        assert_eq!(w.get(), ms(4));
        // 4 in 4 ms: still small, the window stays at its bound.
        w.committed(true, 4, ms(4));
        assert_eq!(w.get(), ms(4));
        // 12 in 4 ms: 8 take 2.67 ms.
        w.committed(true, 12, ms(4));
        assert_eq!(
            w.get(),
            Duration::from_micros(2666) + Duration::from_nanos(666)
        );
        // 24 in 4 ms: a high rate fills batches by itself.
        w.committed(true, 24, ms(4));
        assert_eq!(w.get(), ms(2));
        // 5 in 2 ms: 8 would take 3.2 ms.
        w.committed(true, 5, ms(2));
        assert_eq!(w.get(), Duration::from_micros(3200));
        // A request after a pause (the window had closed): back to the
        // floor, however small the batch.
        w.committed(false, 1, ms(900));
        assert_eq!(w.get(), ms(2));
        // A flush marker carries no ops.
        w.committed(true, 0, ms(1));
        assert_eq!(w.get(), ms(2));
        // A bound below the floor never widens it.
        let mut fixed = CommitWindow::new(ms(2), ms(1));
        fixed.committed(true, 1, ms(2));
        assert_eq!(fixed.get(), ms(2));
    }

    #[tokio::test(start_paused = true)]
    async fn at_a_low_steady_rate_commits_gather_more_within_the_bound() {
        let sink = Arc::new(Recording::default());
        let ms = Duration::from_millis;
        let (batch, task) = spawn(
            sink.clone(),
            BatchConfig {
                max_items: 100,
                max_items_deep: 100,
                max_delay: Duration::ZERO,
                min_interval: ms(2),
                window_max: ms(4),
                lanes: 1,
                deep_parts: 1,
            },
        );
        // A request every 0.9 ms (never on a window's edge), each
        // acknowledgement timed when it arrives.
        let start = tokio::time::Instant::now();
        let mut acks = Vec::new();
        for i in 0..20u32 {
            tokio::time::sleep_until(start + Duration::from_micros(900) * i).await;
            let (req, rx) = request(vec![event(RoomId(1), u64::from(i) + 1)]);
            assert!(batch.submit(req));
            let sent = tokio::time::Instant::now();
            acks.push(tokio::spawn(async move {
                assert_eq!(rx.await.unwrap(), Ok(()));
                sent.elapsed()
            }));
        }
        let mut latest = Duration::ZERO;
        for ack in acks {
            latest = latest.max(ack.await.unwrap());
        }
        let sizes = sink.0.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 20);
        // The first commits at once, the next 2 ms later (two requests),
        // then every 4 ms (four or five each) instead of every 2 ms (two).
        assert_eq!(sizes, [1, 2, 4, 5, 4, 4]);
        assert!(latest <= ms(4), "an acknowledgement waited {latest:?}");
        drop(batch);
        task.await.unwrap();
    }
}
