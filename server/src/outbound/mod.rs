//! Per-connection outbound queues and the direct write path (DESIGN.md
//! invariants 3 and 4).
//!
//! An [`OutboundQueue`] is the handle through which shards, the batch
//! writer and the session push already-encoded frames to one connection,
//! as typed [`Outbound`] items — so the writer and the metrics read fields,
//! never bytes at offsets.
//!
//! **Pushing never blocks and never writes.** A push is an atomic add on
//! the connection's byte backlog plus a push of an item holding a
//! reference-counted [`Bytes`] onto the connection's own deque (its lock
//! is held for that push alone, never across staging or I/O): encode once,
//! no global lock, no allocation per delivery. A push that would take the backlog past its bound aborts the
//! connection (`SLOW_CONSUMER`) instead of blocking the pusher: a slow
//! reader never slows its shard or its room.
//!
//! **Writing happens once per batch, from whoever pushed.** A pusher notes
//! every connection it touched in a [`Touched`] list and, when its batch of
//! work is done (a shard's whole command queue, a commit's
//! acknowledgements, a session's reply), flushes each of them once:
//! [`OutboundQueue::flush`] takes the connection's writer (a `try_lock`:
//! whoever holds it writes for everyone), moves every queued frame into one
//! staging buffer and hands it to the socket in one non-blocking write.
//! There is no writer task per connection: only when the socket would block
//! does a short-lived task wait for it to drain ([`writer`]).

pub(crate) mod writer;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Waker;

use bytes::{Bytes, BytesMut};
use confab_protocol::{ErrorCode, ServerMsg};
use tokio::sync::Notify;

/// Why a connection ended: a fact of the metrics' (the disconnect
/// reason), which the outbound queue records.
pub use crate::metrics::Ending;
use writer::Progress;
pub use writer::Writer;

/// A process-unique connection number, for logs and registries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

const OPEN: u8 = 0;
/// A CLOSE frame is queued; nothing more is accepted.
const CLOSING: u8 = 1;
/// Aborted: queued frames are dropped; the writer sends CLOSE if it can.
const ABORTED: u8 = 2;

/// One queued frame, with what the writer and the metrics need to know of
/// it.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A frame with request id 0: a room event, a notification, a room
    /// announcement, a resume notice.
    Event(Bytes),
    /// The response to request `req_id`; `error` is its code when it is
    /// an ERROR.
    Reply {
        req_id: u32,
        error: Option<ErrorCode>,
        frame: Bytes,
    },
    /// CLOSE with `code` and `message`: the last frame the connection
    /// gets. `transport_code`: the transport's own close code when the
    /// reason is the transport's (a broken WebSocket frame); else the
    /// transport derives one from `code`.
    Close {
        code: ErrorCode,
        message: String,
        frame: Bytes,
        transport_code: Option<u16>,
    },
    /// Bytes of the transport itself, written as they are (a WebSocket
    /// control frame: a pong, the close echo).
    Wire(Bytes),
}

impl Outbound {
    /// The encoded frame (or transport bytes).
    pub fn frame(&self) -> &Bytes {
        match self {
            Outbound::Event(frame)
            | Outbound::Reply { frame, .. }
            | Outbound::Close { frame, .. }
            | Outbound::Wire(frame) => frame,
        }
    }

    /// Encodes `msg` as the item it is: the response to `req_id`, or a
    /// push when `req_id` is 0.
    pub fn encode(req_id: u32, msg: &ServerMsg) -> Outbound {
        let mut buf = BytesMut::with_capacity(64);
        msg.encode(req_id, &mut buf);
        let frame = buf.freeze();
        match msg {
            ServerMsg::Close { code, message } => Outbound::Close {
                code: ErrorCode::from_u16(*code).unwrap_or(ErrorCode::Internal),
                message: message.clone(),
                frame,
                transport_code: None,
            },
            _ if req_id == 0 => Outbound::Event(frame),
            ServerMsg::Error { code, .. } => Outbound::Reply {
                req_id,
                error: Some(ErrorCode::from_u16(*code).unwrap_or(ErrorCode::Internal)),
                frame,
            },
            _ => Outbound::Reply {
                req_id,
                error: None,
                frame,
            },
        }
    }
}

/// The writer is done (socket closed or failed): the session stops reading.
const FINISHED: u8 = 1;
/// Aborted: a drain task waiting for the socket gives up waiting.
const ABORTING: u8 = 2;

/// A connection's queued items: a deque behind a lock that is only ever
/// held for one push or one pop (never across staging or I/O; the lock is
/// the connection's own, so pushers for different connections never
/// meet). A busy connection keeps the deque's memory, so a delivery
/// allocates nothing; [`OutboundQueue::release_idle`] gives it back once
/// the connection is quiet, so an idle connection keeps no queue memory
/// (a lock-free segment queue kept its first ~2 KiB block for the
/// connection's life).
///
/// The same lock keeps the waker of a parked session
/// ([`OutboundQueue::wake_on_finish`]): one lock fewer in every
/// connection's queue.
#[derive(Default)]
pub(crate) struct Items(Mutex<Queued>);

#[derive(Default)]
pub(crate) struct Queued {
    pub(crate) deque: VecDeque<Outbound>,
    /// Woken when the writer is done: a parked session (which has no task
    /// waiting on `finished`) is resumed to end the connection.
    on_finish: Option<Waker>,
}

/// Deque slots a drained queue keeps between bursts (8 × 64 bytes).
const KEEP_ITEMS: usize = 8;

impl Items {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queued> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, item: Outbound) {
        self.lock().deque.push_back(item);
    }

    /// The oldest item.
    pub(crate) fn pop(&self) -> Option<Outbound> {
        self.lock().deque.pop_front()
    }

    /// Takes the oldest items into `batch`, in order, under one lock: as
    /// many as it holds, until they reach `max_bytes`, and none after a
    /// CLOSE. Returns how many it took.
    pub(crate) fn pop_into(&self, batch: &mut [Option<Outbound>], max_bytes: usize) -> usize {
        let mut queued = self.lock();
        let (mut taken, mut bytes) = (0, 0);
        while taken < batch.len() && bytes < max_bytes {
            let Some(item) = queued.deque.pop_front() else {
                break;
            };
            bytes += item.frame().len();
            let last = matches!(item, Outbound::Close { .. });
            batch[taken] = Some(item);
            taken += 1;
            if last {
                break;
            }
        }
        taken
    }

    /// Whether nothing is queued; if so, and the deque grew past
    /// [`KEEP_ITEMS`] slots in a burst, it shrinks back to that, so that a
    /// connection that received a burst and then goes quiet without ever
    /// sending does not keep the burst's memory (one reallocation per
    /// bursty flush, never one per delivery). `release`: give all of it
    /// back (a parked connection's).
    fn drained(&self, release: bool) -> bool {
        let mut queued = self.lock();
        let q = &mut queued.deque;
        if !q.is_empty() {
            return false;
        }
        if release {
            if q.capacity() > 0 {
                *q = VecDeque::new();
            }
        } else if q.capacity() > KEEP_ITEMS {
            q.shrink_to(KEEP_ITEMS);
        }
        true
    }

    /// Gives the deque's memory back if nothing is queued.
    fn release_if_empty(&self) {
        let mut queued = self.lock();
        let q = &mut queued.deque;
        if q.is_empty() && q.capacity() > 0 {
            *q = VecDeque::new();
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().deque.is_empty()
    }

    /// Drops everything queued.
    pub(crate) fn clear(&self) {
        let dropped = std::mem::take(&mut self.lock().deque);
        drop(dropped);
    }

    /// Sets the waker of a parked session; returns the one it replaces.
    fn set_on_finish(&self, waker: Option<Waker>) -> Option<Waker> {
        std::mem::replace(&mut self.lock().on_finish, waker)
    }
}

/// The sending side of one connection.
pub struct OutboundQueue {
    pub id: ConnId,
    /// Items waiting to be written.
    items: Items,
    /// Bytes pushed and not yet written (queued or staged in the writer);
    /// bounded by `limit`.
    backlog: AtomicUsize,
    /// The outbound byte bound (`outbound_queue_bytes`, at most
    /// `u32::MAX`).
    limit: u32,
    state: AtomicU8,
    /// Why the connection was aborted or closed, for the CLOSE frame and
    /// logs: an [`ErrorCode`]'s number, 0 until set (set once).
    reason: AtomicU16,
    /// Whether a [`Touched`] list holds this connection for its next flush.
    scheduled: AtomicBool,
    /// A flush was asked for while someone else held the writer: they write
    /// again before letting go.
    again: AtomicBool,
    /// The transport's write side; `None` for a detached queue (one-shot
    /// calls, tests) or once the connection is finished.
    writer: Mutex<Option<Writer>>,
    /// No transport: a receiver takes the items (woken by `notify`).
    detached: bool,
    /// Its session is parked (`wake_on_finish` holds its waker): buffers
    /// go back as soon as they are drained.
    parked: AtomicBool,
    /// Requests received whose reply is not written yet (a client that
    /// half-closes still gets them).
    unanswered: AtomicU32,
    /// One-way flags: [`FINISHED`] and [`ABORTING`].
    fired: AtomicU8,
    /// The one `Notify` that wakes whoever waits for any change (a flag,
    /// the last reply written, a detached queue's push): each waiter
    /// checks its own condition again, so sharing costs a spurious
    /// wake-up at worst, where a `Notify` per condition was ~32 bytes per
    /// connection each (cancellation tokens before them, ~112).
    notify: Notify,
    ending: OnceLock<Ending>,
    /// Requests awaiting responses and other per-connection metric state.
    pub(crate) stats: crate::metrics::ConnStats,
}

/// The receiving side of a detached queue (one-shot calls, tests).
pub struct OutboundRx {
    conn: Arc<OutboundQueue>,
}

impl OutboundRx {
    /// The next queued item, if one is queued now.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        let item = self.conn.items.pop()?;
        self.conn.written(item.frame().len());
        Some(item)
    }

    /// The next item.
    pub async fn recv(&mut self) -> Option<Outbound> {
        let conn = self.conn.clone();
        if !conn.detached {
            return None;
        }
        loop {
            let notified = conn.notify.notified();
            if let Some(item) = self.try_recv() {
                return Some(item);
            }
            notified.await;
        }
    }
}

impl OutboundQueue {
    fn with(id: ConnId, limit: usize, writer: Option<Writer>) -> OutboundQueue {
        OutboundQueue {
            id,
            items: Items::default(),
            backlog: AtomicUsize::new(0),
            limit: limit.min(u32::MAX as usize) as u32,
            state: AtomicU8::new(OPEN),
            reason: AtomicU16::new(0),
            scheduled: AtomicBool::new(false),
            again: AtomicBool::new(false),
            detached: writer.is_none(),
            parked: AtomicBool::new(false),
            writer: Mutex::new(writer),
            unanswered: AtomicU32::new(0),
            fired: AtomicU8::new(0),
            notify: Notify::new(),
            ending: OnceLock::new(),
            stats: crate::metrics::ConnStats::default(),
        }
    }

    /// The queue of a connection whose frames `writer` writes.
    pub fn new(id: ConnId, limit: usize, writer: Writer) -> Arc<OutboundQueue> {
        Arc::new(OutboundQueue::with(id, limit, Some(writer)))
    }

    /// A queue without a transport: its items are read from the returned
    /// receiver (one-shot calls, benches, tests).
    pub fn detached(id: ConnId, limit: usize) -> (Arc<OutboundQueue>, OutboundRx) {
        let conn = Arc::new(OutboundQueue::with(id, limit, None));
        (conn.clone(), OutboundRx { conn })
    }

    /// Queues an encoded frame with request id 0 (an event). Returns
    /// `false` if the connection is closing or the frame would overflow
    /// the backlog (which aborts the connection). Does not write: flush.
    #[inline]
    pub fn push(&self, frame: Bytes) -> bool {
        self.push_item(Outbound::Event(frame))
    }

    /// Queues an encoded success response to `req_id`.
    pub fn push_reply(&self, req_id: u32, frame: Bytes) -> bool {
        self.push_item(Outbound::Reply {
            req_id,
            error: None,
            frame,
        })
    }

    /// Queues a response to `req_id` encoded elsewhere — by the node
    /// serving the room, in cluster mode — whose ERROR code, if it is
    /// one, is `error`.
    pub fn push_encoded_reply(&self, req_id: u32, error: Option<ErrorCode>, frame: Bytes) -> bool {
        self.push_item(Outbound::Reply {
            req_id,
            error,
            frame,
        })
    }

    /// Queues transport bytes (a WebSocket control frame) to be written
    /// as they are, ahead of nothing and behind what is queued.
    pub fn push_wire(&self, bytes: Bytes) -> bool {
        self.push_item(Outbound::Wire(bytes))
    }

    #[inline]
    fn push_item(&self, item: Outbound) -> bool {
        if self.state.load(Ordering::Acquire) != OPEN {
            return false;
        }
        let len = item.frame().len();
        let before = self.backlog.fetch_add(len, Ordering::AcqRel);
        if before + len > self.limit as usize {
            self.backlog.fetch_sub(len, Ordering::AcqRel);
            self.abort_with(ErrorCode::SlowConsumer);
            return false;
        }
        self.items.push(item);
        if self.detached {
            self.changed();
        }
        true
    }

    /// Encodes and queues one server message: the response to `req_id`,
    /// or an event-like push (notification, announcement, resume notice)
    /// when `req_id` is 0. Does not write: flush.
    pub fn reply(&self, req_id: u32, msg: &ServerMsg) -> bool {
        self.push_item(Outbound::encode(req_id, msg))
    }

    /// Queues an ERROR reply for `req_id`. Does not write: flush.
    pub fn error(&self, req_id: u32, code: ErrorCode, message: impl Into<String>) -> bool {
        if code == ErrorCode::RoomMoving {
            // Always with its retry hint (SPEC.md §6), whoever refuses.
            return self.error_retry(req_id, code, crate::cluster::ROOM_MOVING_RETRY);
        }
        self.reply(req_id, &ServerMsg::error(code, message))
    }

    /// Queues an ERROR reply for `req_id` that tells the client when to
    /// try again. Does not write: flush.
    pub fn error_retry(
        &self,
        req_id: u32,
        code: ErrorCode,
        retry_after: std::time::Duration,
    ) -> bool {
        let retry_after_ms = retry_after.as_millis().clamp(1, u32::MAX as u128) as u32;
        self.reply(
            req_id,
            &ServerMsg::Error {
                code: code as u16,
                message: code.default_message().into(),
                retry_after_ms,
            },
        )
    }

    /// [`OutboundQueue::reply`], then a flush: for whoever answers one
    /// request outside a batch (a session, a store read).
    pub fn reply_now(self: &Arc<Self>, req_id: u32, msg: &ServerMsg) -> bool {
        let queued = self.reply(req_id, msg);
        self.flush();
        queued
    }

    /// [`OutboundQueue::error`], then a flush.
    pub fn error_now(self: &Arc<Self>, req_id: u32, code: ErrorCode, message: impl Into<String>) {
        self.error(req_id, code, message);
        self.flush();
    }

    /// Queues a CLOSE frame after everything already queued, refuses
    /// further frames and flushes; the writer shuts the transport down
    /// once CLOSE is written.
    pub fn close(self: &Arc<Self>, code: ErrorCode, message: impl Into<String>) {
        self.close_transport(code, message, None)
    }

    /// [`OutboundQueue::close`], with the transport's own close code (a
    /// WebSocket protocol violation is 1002 whatever the protocol code).
    pub fn close_transport(
        self: &Arc<Self>,
        code: ErrorCode,
        message: impl Into<String>,
        transport_code: Option<u16>,
    ) {
        if self
            .state
            .compare_exchange(OPEN, CLOSING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        self.set_reason(code);
        let close = ServerMsg::Close {
            code: code as u16,
            message: message.into(),
        };
        // The CLOSE frame bypasses the byte bound: it is small and final.
        let mut item = Outbound::encode(0, &close);
        if let Outbound::Close {
            transport_code: t, ..
        } = &mut item
        {
            *t = transport_code;
        }
        self.backlog.fetch_add(item.frame().len(), Ordering::AcqRel);
        self.items.push(item);
        if self.detached {
            self.changed();
        }
        self.flush();
    }

    /// Drops everything queued and closes as soon as possible: used when
    /// the peer cannot keep up, so waiting for the queue to drain is
    /// pointless. The writer sends CLOSE with `code` if it is between two
    /// frames, then shuts the transport down.
    pub fn abort_with(&self, code: ErrorCode) {
        let prev = self.state.swap(ABORTED, Ordering::AcqRel);
        if prev == ABORTED {
            return;
        }
        self.set_reason(code);
        if code == ErrorCode::SlowConsumer {
            crate::metrics::slow_consumer();
        }
        // Whoever writes next (the pusher's flush, or a drain task waiting
        // for the socket, woken here) sees ABORTED and finishes.
        self.again.store(true, Ordering::SeqCst);
        self.fire(ABORTING);
    }

    /// Gives back the queue's memory if nothing is queued: the session
    /// calls this before it waits for the client's next frame, so a
    /// connection that has gone quiet holds no queue memory while one
    /// that is receiving a stream of events keeps it (and allocates
    /// nothing per delivery).
    pub fn release_idle(&self) {
        self.items.release_if_empty();
    }

    /// [`OutboundQueue::release_idle`], and the writer's staging buffer
    /// and reply list too if everything is written (a parked connection's
    /// queue: it may stay quiet for hours). Skipped while someone writes.
    pub(crate) fn release_buffers(&self) {
        self.items.release_if_empty();
        if let Ok(mut w) = self.writer.try_lock() {
            if let Some(w) = w.as_mut() {
                w.release_buffers();
            }
        }
    }

    /// Deque slots held (tests: what a quiet connection keeps).
    #[cfg(test)]
    pub(crate) fn queue_capacity(&self) -> usize {
        self.items.lock().deque.capacity()
    }

    /// Writes what is queued, if the transport takes it now. Cheap when
    /// there is nothing to write or someone else is writing (they write
    /// this connection's frames too before they let go).
    pub fn flush(self: &Arc<Self>) {
        loop {
            let mut guard = match self.writer.try_lock() {
                Ok(g) => g,
                Err(_) => {
                    // Held by another flusher: it looks at `again` after it
                    // lets go, and writes what we queued.
                    self.again.store(true, Ordering::SeqCst);
                    return;
                }
            };
            self.again.store(false, Ordering::SeqCst);
            let Some(w) = guard.as_mut() else { return };
            let progress = w.write(self);
            // Pushes to a parked connection leave no buffers behind them
            // (its writer's now, under the lock already held; its queue's
            // below, if nothing came in meanwhile).
            let parked = matches!(progress, Progress::Idle) && self.parked.load(Ordering::SeqCst);
            if parked {
                w.release_buffers();
            }
            drop(guard);
            match progress {
                Progress::Idle => {
                    if !self.again.load(Ordering::SeqCst) && self.items.drained(parked) {
                        return;
                    }
                }
                // A drain task waits for the socket and writes on.
                Progress::Blocked(Some(writable)) => {
                    tokio::spawn(writer::drain(self.clone(), writable));
                    return;
                }
                Progress::Blocked(None) => return,
                Progress::Done(ending) => return self.finish(ending),
            }
        }
    }

    /// The writer is done for good: drop it (closing the socket once the
    /// reader lets go too) and stop the session.
    fn finish(&self, ending: Ending) {
        let _ = self.ending.set(ending);
        if let Ok(mut w) = self.writer.lock() {
            w.take();
        }
        self.items.clear();
        self.fire(FINISHED);
        let parked = self.items.set_on_finish(None);
        if let Some(waker) = parked {
            waker.wake();
        }
    }

    /// Records why the connection is closed or aborted, unless a reason
    /// is recorded already (the first one stays).
    fn set_reason(&self, code: ErrorCode) {
        let _ = self
            .reason
            .compare_exchange(0, code as u16, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Wakes `waker` when the writer is done (a parked session has no
    /// task waiting on [`OutboundQueue::finished`]); `None` forgets it.
    /// Check [`OutboundQueue::is_finished`] after setting it: a writer
    /// that finished before did not see it.
    pub(crate) fn wake_on_finish(&self, waker: Option<Waker>) {
        self.parked.store(waker.is_some(), Ordering::SeqCst);
        let old = self.items.set_on_finish(waker);
        drop(old); // outside the lock
    }

    /// Ends a connection whose reader is done (end of stream, a read
    /// error): nothing more will be read, so nothing more need be written
    /// once what is queued is out.
    pub fn end_reading(self: &Arc<Self>) {
        let _ = self.ending.set(Ending::ClientClosed);
        self.state
            .compare_exchange(OPEN, CLOSING, Ordering::AcqRel, Ordering::Acquire)
            .ok();
        if self.detached {
            self.fire(FINISHED);
            return;
        }
        if let Ok(mut w) = self.writer.lock() {
            if let Some(w) = w.as_mut() {
                w.shut_after_queue();
            }
        }
        self.flush();
    }

    /// How the connection ended (once it has).
    pub fn ending(&self) -> Option<Ending> {
        self.ending.get().copied().or_else(|| {
            self.close_reason()
                .map(Ending::Server)
                .filter(|_| self.is_finished())
        })
    }

    /// The reason given to `close` or `abort_with`, if any.
    pub fn close_reason(&self) -> Option<ErrorCode> {
        match self.reason.load(Ordering::Acquire) {
            0 => None,
            code => ErrorCode::from_u16(code),
        }
    }

    pub fn is_open(&self) -> bool {
        self.state.load(Ordering::Acquire) == OPEN
    }

    fn is_aborted(&self) -> bool {
        self.state.load(Ordering::Acquire) == ABORTED
    }

    /// Bytes pushed and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.backlog.load(Ordering::Acquire)
    }

    fn written(&self, bytes: usize) {
        self.backlog.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// A request arrived that will be answered.
    pub(crate) fn request_received(&self) {
        self.unanswered.fetch_add(1, Ordering::AcqRel);
    }

    fn reply_written(&self) {
        let left = self
            .unanswered
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if left == Ok(1) {
            self.changed();
        }
    }

    /// Requests received and not answered yet.
    pub fn unanswered(&self) -> u32 {
        self.unanswered.load(Ordering::Acquire)
    }

    /// Waits (at most `patience`) until every request received so far is
    /// answered; `false` if some still are not.
    pub async fn all_answered(&self, patience: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let answered = self.notify.notified();
            if self.unanswered() == 0 {
                return true;
            }
            if self.is_finished() || tokio::time::timeout_at(deadline, answered).await.is_err() {
                return self.unanswered() == 0;
            }
        }
    }

    /// Sets `flag` and wakes every waiter; later waiters return at once.
    fn fire(&self, flag: u8) {
        self.fired.fetch_or(flag, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn is_fired(&self, flag: u8) -> bool {
        self.fired.load(Ordering::SeqCst) & flag != 0
    }

    /// Wakes every waiter to check its condition again.
    fn changed(&self) {
        self.notify.notify_waiters();
    }

    /// Resolves once `ready` holds; `ready` is checked again after every
    /// change. Cancel-safe.
    async fn until(&self, ready: impl Fn() -> bool) {
        loop {
            // Registered before the check, so a change in between is seen.
            let notified = self.notify.notified();
            if ready() {
                return;
            }
            notified.await;
        }
    }

    /// Resolves once the writer has finished (socket closed or failed).
    pub async fn finished(&self) {
        self.until(|| self.is_finished()).await
    }

    pub fn is_finished(&self) -> bool {
        self.is_fired(FINISHED)
    }

    /// Resolves once the connection is aborted (a drain task's cue to
    /// stop waiting for the socket).
    pub(crate) async fn aborting(&self) {
        self.until(|| self.is_fired(ABORTING)).await
    }
}

/// The connections a pusher touched in its current batch of work, each
/// listed once (across pushers too: a connection another pusher already
/// listed is flushed by that one). Flushing writes each once.
///
/// **Push, then note.** A pusher that finds a connection already listed
/// leaves the write to the lister, which clears the flag and then writes
/// everything queued; so a frame must be queued before its pusher notes
/// the connection, or the lister may write just before it arrives and
/// leave it behind.
#[derive(Default)]
pub struct Touched {
    conns: Vec<Arc<OutboundQueue>>,
}

impl Touched {
    /// Notes that frames were pushed to `conn`.
    #[inline]
    pub fn note(&mut self, conn: &Arc<OutboundQueue>) {
        if !conn.scheduled.swap(true, Ordering::AcqRel) {
            self.conns.push(conn.clone());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Writes every noted connection once.
    pub fn flush_all(&mut self) {
        let _tally = crate::metrics::WriteTally::open();
        for conn in self.conns.drain(..) {
            // Cleared before writing: a push after this point is either
            // written now or noted (and flushed) by its own pusher.
            conn.scheduled.store(false, Ordering::Release);
            conn.flush();
        }
        if self.conns.capacity() > 4096 {
            self.conns = Vec::new();
        }
    }
}

impl Drop for Touched {
    fn drop(&mut self) {
        self.flush_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drained_queue_keeps_a_few_slots_and_a_quiet_one_none() {
        let items = Items::default();
        for _ in 0..100 {
            items.push(Outbound::Event(Bytes::from_static(b"x")));
        }
        // Not drained while anything is queued; its memory stays.
        assert!(!items.drained(false));
        assert!(items.lock().deque.capacity() >= 100);
        while items.pop().is_some() {}
        // Drained after a burst: back to a few slots.
        assert!(items.drained(false));
        let kept = items.lock().deque.capacity();
        assert!((1..=KEEP_ITEMS).contains(&kept), "{kept}");
        // Quiet (the session found it empty): nothing at all.
        items.release_if_empty();
        assert_eq!(items.lock().deque.capacity(), 0);
        // A release with something queued keeps it.
        items.push(Outbound::Event(Bytes::from_static(b"y")));
        items.release_if_empty();
        assert_eq!(
            items.pop().map(|i| i.frame().clone()),
            Some(Bytes::from_static(b"y"))
        );
    }

    #[test]
    fn overflow_aborts_with_slow_consumer_and_refuses_more() {
        let (conn, mut rx) = OutboundQueue::detached(ConnId(1), 10);
        assert!(conn.push(Bytes::from_static(b"123456")));
        assert!(
            !conn.push(Bytes::from_static(b"123456")),
            "second push exceeds 10 bytes"
        );
        assert_eq!(conn.close_reason(), Some(ErrorCode::SlowConsumer));
        assert!(!conn.push(Bytes::from_static(b"1")));
        assert_eq!(
            rx.try_recv().unwrap().frame(),
            &Bytes::from_static(b"123456")
        );
        assert!(rx.try_recv().is_none());
    }

    #[test]
    fn taken_bytes_free_room_in_the_backlog() {
        let (conn, mut rx) = OutboundQueue::detached(ConnId(1), 10);
        assert!(conn.push(Bytes::from_static(b"12345678")));
        rx.try_recv();
        assert!(conn.push(Bytes::from_static(b"12345678")));
        assert_eq!(conn.queued_bytes(), 8);
    }

    #[test]
    fn close_queues_a_final_close_frame_and_refuses_more() {
        let (conn, mut rx) = OutboundQueue::detached(ConnId(1), 1000);
        assert!(conn.push(Bytes::from_static(b"x")));
        conn.close(ErrorCode::LoggedOut, "bye");
        assert!(!conn.push(Bytes::from_static(b"y")));
        assert_eq!(rx.try_recv().unwrap().frame(), &Bytes::from_static(b"x"));
        match rx.try_recv().unwrap() {
            Outbound::Close { code, frame, .. } => {
                assert_eq!(code, ErrorCode::LoggedOut);
                let header = confab_protocol::frame::Header::peek(&frame).unwrap();
                assert_eq!(header.kind, confab_protocol::frame::kind::CLOSE);
            }
            other => panic!("expected CLOSE, got {other:?}"),
        }
    }

    #[test]
    fn replies_and_errors_are_typed_by_what_they_answer() {
        let (conn, mut rx) = OutboundQueue::detached(ConnId(1), 1000);
        conn.reply(7, &ServerMsg::Ok);
        conn.error(8, ErrorCode::NotAMember, "no");
        conn.reply(
            0,
            &ServerMsg::ResumeGap {
                room: confab_protocol::RoomId(1),
                last_seq: confab_protocol::Seq(3),
            },
        );
        assert!(matches!(
            rx.try_recv(),
            Some(Outbound::Reply {
                req_id: 7,
                error: None,
                ..
            })
        ));
        assert!(matches!(
            rx.try_recv(),
            Some(Outbound::Reply {
                req_id: 8,
                error: Some(ErrorCode::NotAMember),
                ..
            })
        ));
        assert!(matches!(rx.try_recv(), Some(Outbound::Event(_))));
    }

    /// The close reason is set once: an abort after a CLOSE (the socket
    /// failing under it) does not change why the connection was closed.
    #[test]
    fn the_first_close_reason_stays() {
        let (conn, _rx) = OutboundQueue::detached(ConnId(1), 1 << 16);
        assert_eq!(conn.close_reason(), None);
        conn.close(ErrorCode::LoggedOut, "bye");
        conn.abort_with(ErrorCode::SlowConsumer);
        assert_eq!(conn.close_reason(), Some(ErrorCode::LoggedOut));
    }

    /// Every connection holds one queue for its whole life, parked or not
    /// (benches/BENCHMARKS.md, "Idle connections without a task"). In its
    /// `Arc` (16 bytes more) it must fit mimalloc's 256-byte size class:
    /// at 241 bytes it would take a 320-byte block.
    #[test]
    fn a_queue_stays_small() {
        let size = std::mem::size_of::<OutboundQueue>();
        assert!(size <= 240, "OutboundQueue is {size} bytes");
    }

    #[tokio::test]
    async fn one_notify_wakes_each_waiter_for_its_own_condition() {
        let (conn, mut rx) = OutboundQueue::detached(ConnId(1), 1000);
        let waiting = {
            let conn = conn.clone();
            tokio::spawn(async move { conn.finished().await })
        };
        let receiving = tokio::spawn(async move { rx.recv().await.map(|i| i.frame().clone()) });
        tokio::task::yield_now().await;
        // A push wakes the receiver, and the finish waiter only to check.
        assert!(conn.push(Bytes::from_static(b"x")));
        assert_eq!(receiving.await.unwrap(), Some(Bytes::from_static(b"x")));
        assert!(!waiting.is_finished());
        conn.end_reading();
        waiting.await.unwrap();
        assert!(conn.is_finished());
    }

    #[test]
    fn a_touched_list_holds_each_connection_once() {
        let (a, _ra) = OutboundQueue::detached(ConnId(1), 1000);
        let (b, _rb) = OutboundQueue::detached(ConnId(2), 1000);
        let mut t = Touched::default();
        let mut u = Touched::default();
        t.note(&a);
        t.note(&a);
        u.note(&a);
        t.note(&b);
        assert_eq!(t.conns.len(), 2);
        assert!(u.is_empty(), "listed by another pusher already");
        t.flush_all();
        u.note(&a);
        assert!(!u.is_empty(), "listed again once flushed");
    }
}
