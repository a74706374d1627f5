//! The write side of a connection: what [`OutboundQueue::flush`] drives.
//!
//! A [`Writer`] owns the transport's [`Sink`] (implemented in `net/`: plain
//! or TLS bytes, protocol frames back to back or one per WebSocket
//! message). Each flush moves what is queued into the sink's staging — one
//! buffer, or rustls' records — and writes it with one non-blocking write.
//! When the socket takes only part of it, the writer is *blocked*: flushes
//! leave the queue alone, and a short-lived drain task waits until the
//! socket is writable and writes on. A connection that never blocks never
//! has a task of its own for writing.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use confab_protocol::{ErrorCode, ServerMsg};

use super::{Ending, Outbound, OutboundQueue};

/// Most bytes staged per write: a slow reader's backlog stays in the
/// bounded queue, not in the staging buffer.
const MAX_STAGE: usize = 256 * 1024;

/// How long a connection that cannot take its final frames is waited for.
const DRAIN_PATIENCE: Duration = Duration::from_secs(5);

/// Resolves when the socket can take more bytes.
pub type Writable = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// A transport's write side, driven by the [`Writer`] under the queue's
/// writer lock. No method may block.
pub trait Sink: Send + 'static {
    /// Encodes `item` into the staging (framing it as the transport wants).
    fn stage(&mut self, item: &Outbound);
    /// Bytes staged and not yet written.
    fn staged(&self) -> usize;
    /// Writes staged bytes without blocking: `Ok(true)` when all are
    /// written, `Ok(false)` when the socket would block first.
    fn write(&mut self) -> io::Result<bool>;
    /// A future that resolves when the socket is writable again.
    fn writable(&self) -> Writable;
    /// Ends the stream: after the last frame (`abortive` false: a graceful
    /// shutdown of the write side), or at once (`abortive` true).
    fn shutdown(&mut self, abortive: bool);
    /// Gives back the staging memory; only called with nothing staged.
    fn release(&mut self);
    /// Whether frames go on the wire exactly as encoded (plain TCP,
    /// frames back to back), so that [`Sink::write_frames`] and
    /// [`Sink::stage_bytes`] may be used instead of staging.
    fn writes_frames_as_is(&self) -> bool {
        false
    }
    /// Writes `frames` straight from their buffers, in one vectored
    /// non-blocking write, with nothing staged: the bytes the socket took
    /// (`WouldBlock` when it took none). Only called when
    /// [`Sink::writes_frames_as_is`].
    fn write_frames(&mut self, _frames: &[io::IoSlice<'_>]) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }
    /// Stages `bytes` as they are (the part of a frame a direct write did
    /// not take). Only called when [`Sink::writes_frames_as_is`].
    fn stage_bytes(&mut self, _bytes: &[u8]) {
        unreachable!("stage_bytes on a sink that stages frames its own way")
    }
}

/// Most frames one direct write takes from the queue.
const DIRECT_FRAMES: usize = 16;

/// What a direct write ([`Writer::write_direct`]) achieved.
enum Direct {
    /// Nothing was queued.
    Empty,
    /// Everything taken from the queue was written.
    Wrote,
    /// The socket took part of it; the rest is staged.
    Partial,
    /// The socket failed.
    Failed,
}

/// What a write achieved.
pub(super) enum Progress {
    /// Everything queued is written.
    Idle,
    /// The socket would block; the drain task writes on (given the future
    /// that says when, if this write is the one that blocked).
    Blocked(Option<Writable>),
    /// The connection is over.
    Done(Ending),
}

/// The writer of one connection.
pub struct Writer {
    sink: Box<dyn Sink>,
    /// The socket took only part of the staging: flushes wait for the
    /// drain task.
    blocked: bool,
    /// A CLOSE is staged: nothing is staged after it, and the transport
    /// shuts once it is written.
    last: Option<Ending>,
    /// The reader is done: shut once everything queued is written.
    shut_when_drained: bool,
    /// What was staged since the last write, for the metrics (at most
    /// one stage's worth: 32 bits, so that the writer, held in every
    /// connection's queue, stays small).
    frames: u32,
    bytes: u32,
    replies: Vec<(u32, Option<ErrorCode>)>,
}

impl Writer {
    pub fn new(sink: impl Sink) -> Writer {
        Writer {
            sink: Box::new(sink),
            blocked: false,
            last: None,
            shut_when_drained: false,
            frames: 0,
            bytes: 0,
            replies: Vec::new(),
        }
    }

    /// Gives back the staging buffer and the reply list if nothing is
    /// staged (a parked connection's writer).
    pub(super) fn release_buffers(&mut self) {
        if !self.blocked && self.sink.staged() == 0 {
            self.sink.release();
            self.replies = Vec::new();
        }
    }

    /// Shut down (without a CLOSE frame, unless one is queued) once what
    /// is queued is written.
    pub(super) fn shut_after_queue(&mut self) {
        self.shut_when_drained = true;
    }

    /// Writes what is queued: stages up to [`MAX_STAGE`] bytes, writes,
    /// and goes on until the queue is empty or the socket would block.
    pub(super) fn write(&mut self, q: &Arc<OutboundQueue>) -> Progress {
        if q.is_aborted() {
            return self.abort(q);
        }
        if self.blocked {
            return Progress::Blocked(None);
        }
        loop {
            if self.last.is_none() && self.sink.staged() == 0 && self.sink.writes_frames_as_is() {
                match self.write_direct(q) {
                    // All of it went out: look for more.
                    Direct::Wrote => continue,
                    Direct::Empty => {
                        if self.shut_when_drained {
                            self.sink.shutdown(false);
                            return Progress::Done(Ending::ClientClosed);
                        }
                        return Progress::Idle;
                    }
                    // The socket took part of it: the rest is staged, and
                    // written (or waited for) below as any staging is.
                    Direct::Partial => {}
                    Direct::Failed => {
                        self.sink.shutdown(true);
                        return Progress::Done(Ending::WriteFailed);
                    }
                }
            }
            self.stage(q);
            if self.sink.staged() > 0 {
                match self.sink.write() {
                    Ok(true) => self.written(q),
                    Ok(false) => {
                        self.blocked = true;
                        return Progress::Blocked(Some(self.sink.writable()));
                    }
                    Err(_) => {
                        self.sink.shutdown(true);
                        return Progress::Done(Ending::WriteFailed);
                    }
                }
            }
            if self.sink.staged() == 0 && (self.last.is_some() || q.items.is_empty()) {
                if self.last.is_some() || self.shut_when_drained {
                    self.sink.shutdown(false);
                    return Progress::Done(self.last.unwrap_or(Ending::ClientClosed));
                }
                return Progress::Idle;
            }
        }
    }

    /// Writes queued frames straight from their shared buffers (no copy
    /// into a staging buffer, no staging memory): up to [`DIRECT_FRAMES`]
    /// frames or [`MAX_STAGE`] bytes, taken from the queue under one lock
    /// and handed to the socket in one vectored write. Whatever the socket
    /// does not take is staged (copied) as before. Only with nothing
    /// staged, no CLOSE staged, and a sink that writes frames as they are.
    fn write_direct(&mut self, q: &OutboundQueue) -> Direct {
        let mut batch: [Option<Outbound>; DIRECT_FRAMES] = Default::default();
        let taken = q.items.pop_into(&mut batch, MAX_STAGE);
        if taken == 0 {
            return Direct::Empty;
        }
        let batch = &batch[..taken];
        let mut slices = [io::IoSlice::new(&[]); DIRECT_FRAMES];
        let mut total = 0;
        for (slot, item) in slices.iter_mut().zip(batch.iter().flatten()) {
            let frame = item.frame();
            *slot = io::IoSlice::new(frame);
            total += frame.len();
            self.frames += 1;
            self.bytes += frame.len() as u32;
            match item {
                Outbound::Reply { req_id, error, .. } => self.replies.push((*req_id, *error)),
                Outbound::Close { code, .. } => self.last = Some(Ending::Server(*code)),
                Outbound::Event(_) | Outbound::Wire(_) => {}
            }
        }
        let wrote = match self.sink.write_frames(&slices[..taken]) {
            Ok(0) if total > 0 => return Direct::Failed,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(_) => return Direct::Failed,
        };
        if wrote == total {
            self.written(q);
            return Direct::Wrote;
        }
        // Stage what the socket did not take, in order.
        let mut skip = wrote;
        for item in batch.iter().flatten() {
            let frame = item.frame();
            if skip >= frame.len() {
                skip -= frame.len();
                continue;
            }
            self.sink.stage_bytes(&frame[skip..]);
            skip = 0;
        }
        Direct::Partial
    }

    /// Moves queued items into the sink's staging, up to the bound; a
    /// staged CLOSE is the last.
    fn stage(&mut self, q: &OutboundQueue) {
        while self.last.is_none() && self.sink.staged() < MAX_STAGE {
            let Some(item) = q.items.pop() else { break };
            self.frames += 1;
            self.bytes += item.frame().len() as u32;
            match item {
                Outbound::Reply { req_id, error, .. } => self.replies.push((req_id, error)),
                Outbound::Close { code, .. } => self.last = Some(Ending::Server(code)),
                Outbound::Event(_) | Outbound::Wire(_) => {}
            }
            self.sink.stage(&item);
        }
    }

    /// Everything staged reached the socket: account for it.
    fn written(&mut self, q: &OutboundQueue) {
        q.written(self.bytes as usize);
        for _ in 0..self.replies.len() {
            q.reply_written();
        }
        crate::metrics::frames_written(
            &q.stats,
            self.frames as usize,
            self.bytes as usize,
            &self.replies,
        );
        crate::metrics::observe_queue(&q.stats, q.queued_bytes());
        self.frames = 0;
        self.bytes = 0;
        self.replies.clear();
        if self.replies.capacity() > 64 {
            self.replies = Vec::new();
        }
    }

    /// The connection is aborted (slow consumer, shutdown): a CLOSE if the
    /// stream is between two frames, then the socket is shut.
    fn abort(&mut self, q: &OutboundQueue) -> Progress {
        q.items.clear();
        let code = q.close_reason().unwrap_or(ErrorCode::Internal);
        if self.sink.staged() == 0 && !self.blocked {
            let close = ServerMsg::Close {
                code: code as u16,
                message: code.default_message().into(),
            };
            self.sink.stage(&Outbound::encode(0, &close));
            let _ = self.sink.write();
        }
        self.sink.shutdown(true);
        Progress::Done(Ending::Server(code))
    }
}

/// Waits while the socket cannot take more, then writes on; ends when the
/// backlog is written (or the connection is over).
pub(super) async fn drain(q: Arc<OutboundQueue>, mut writable: Writable) {
    loop {
        let ready = tokio::select! {
            r = &mut writable => r.is_ok(),
            // An abort (slow consumer) must not wait for a reader that may
            // never read again.
            _ = q.aborting() => true,
            _ = tokio::time::sleep(DRAIN_PATIENCE), if !q.is_open() => false,
        };
        let mut guard = match q.writer.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let Some(w) = guard.as_mut() else { return };
        if !ready {
            w.sink.shutdown(true);
            drop(guard);
            return q.finish(Ending::WriteFailed);
        }
        w.blocked = false;
        let progress = w.write(&q);
        drop(guard);
        match progress {
            Progress::Idle => {
                // Frames pushed while blocked were left queued: write them.
                q.again.store(true, Ordering::SeqCst);
                return q.flush();
            }
            // Blocked again: this task carries on.
            Progress::Blocked(Some(next)) => writable = next,
            Progress::Blocked(None) => {}
            Progress::Done(ending) => return q.finish(ending),
        }
    }
}
