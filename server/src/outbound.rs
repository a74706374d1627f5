//! Per-connection outbound queues (DESIGN.md invariants 3 and 4).
//!
//! A [`Conn`] is the handle through which shards, the batch writer and the
//! session push already-encoded frames to one connection. Pushing is
//! lock-free: an unbounded mpsc of reference-counted [`Bytes`] plus an atomic
//! byte counter that bounds the queue. A push that would exceed the bound
//! aborts the connection with `SLOW_CONSUMER` instead of blocking the pusher:
//! a slow reader never slows its shard or its room.
//!
//! The connection's writer task (see `writer::writer_loop`) is the only
//! consumer; it coalesces whatever is queued into few writes.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use confab_protocol::{ErrorCode, ServerMsg};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A process-unique connection number, for logs and registries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

const OPEN: u8 = 0;
/// A CLOSE frame is queued; nothing more is accepted.
const CLOSING: u8 = 1;
/// Aborted: queued frames are dropped; the writer sends CLOSE if it can.
const ABORTED: u8 = 2;

/// The sending side of one connection.
pub struct Conn {
    pub id: ConnId,
    /// Frames waiting for the writer task.
    tx: mpsc::UnboundedSender<Bytes>,
    /// Bytes pushed but not yet written; bounded by `limit`.
    queued: AtomicUsize,
    /// The outbound byte bound (`outbound_queue_bytes`).
    limit: usize,
    state: AtomicU8,
    /// Why the connection was aborted, for the CLOSE frame and logs.
    abort_reason: OnceLock<ErrorCode>,
    /// Cancelled on abort: the writer stops writing queued frames at once.
    abort: CancellationToken,
    /// Cancelled when the writer has finished: the session stops reading.
    finished: CancellationToken,
    /// Requests awaiting responses and other per-connection metric state.
    pub(crate) stats: crate::metrics::ConnStats,
}

/// The receiving side, owned by the writer task.
pub struct OutboundRx {
    pub(crate) rx: mpsc::UnboundedReceiver<Bytes>,
}

impl OutboundRx {
    /// The next queued frame, if one is queued now (benches and tools that
    /// drain a queue without a writer task).
    pub fn try_recv(&mut self) -> Option<Bytes> {
        self.rx.try_recv().ok()
    }
}

impl Conn {
    pub fn new(id: ConnId, limit: usize) -> (std::sync::Arc<Conn>, OutboundRx) {
        let (tx, rx) = mpsc::unbounded_channel();
        let conn = Conn {
            id,
            tx,
            queued: AtomicUsize::new(0),
            limit,
            state: AtomicU8::new(OPEN),
            abort_reason: OnceLock::new(),
            abort: CancellationToken::new(),
            finished: CancellationToken::new(),
            stats: crate::metrics::ConnStats::default(),
        };
        (std::sync::Arc::new(conn), OutboundRx { rx })
    }

    /// Queues an encoded frame. Returns `false` if the connection is closing
    /// or the frame would overflow the queue (which aborts the connection).
    #[inline]
    pub fn push(&self, frame: Bytes) -> bool {
        if self.state.load(Ordering::Acquire) != OPEN {
            return false;
        }
        let len = frame.len();
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before + len > self.limit {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            self.abort_with(ErrorCode::SlowConsumer);
            return false;
        }
        if self.tx.send(frame).is_err() {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Encodes and queues one response.
    pub fn reply(&self, req_id: u32, msg: &ServerMsg) -> bool {
        let mut buf = BytesMut::with_capacity(64);
        msg.encode(req_id, &mut buf);
        self.push(buf.freeze())
    }

    /// Queues an ERROR reply for `req_id`.
    pub fn error(&self, req_id: u32, code: ErrorCode, message: impl Into<String>) -> bool {
        self.reply(
            req_id,
            &ServerMsg::Error {
                code: code as u16,
                message: message.into(),
            },
        )
    }

    /// Queues a CLOSE frame after everything already queued and refuses
    /// further frames; the writer flushes, then closes the socket.
    pub fn close(&self, code: ErrorCode, message: impl Into<String>) {
        if self
            .state
            .compare_exchange(OPEN, CLOSING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let _ = self.abort_reason.set(code);
        let mut buf = BytesMut::with_capacity(64);
        ServerMsg::Close {
            code: code as u16,
            message: message.into(),
        }
        .encode(0, &mut buf);
        // The CLOSE frame bypasses the byte bound: it is small and final.
        let _ = self.tx.send(buf.freeze());
    }

    /// Drops everything queued and closes as soon as possible: used when the
    /// peer cannot keep up, so waiting for the queue to drain is pointless.
    pub fn abort_with(&self, code: ErrorCode) {
        let prev = self.state.swap(ABORTED, Ordering::AcqRel);
        if prev == ABORTED {
            return;
        }
        let _ = self.abort_reason.set(code);
        if code == ErrorCode::SlowConsumer {
            crate::metrics::slow_consumer();
        }
        self.abort.cancel();
    }

    /// The reason given to `close` or `abort_with`, if any.
    pub fn close_reason(&self) -> Option<ErrorCode> {
        self.abort_reason.get().copied()
    }

    pub fn is_open(&self) -> bool {
        self.state.load(Ordering::Acquire) == OPEN
    }

    /// Bytes currently queued.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    pub(crate) fn written(&self, bytes: usize) {
        self.queued.fetch_sub(bytes, Ordering::AcqRel);
    }

    pub(crate) fn abort_token(&self) -> &CancellationToken {
        &self.abort
    }

    pub(crate) fn finished_token(&self) -> &CancellationToken {
        &self.finished
    }

    /// Resolves once the writer has finished (socket closed or failed).
    pub async fn finished(&self) {
        self.finished.cancelled().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_aborts_with_slow_consumer_and_refuses_more() {
        let (conn, mut rx) = Conn::new(ConnId(1), 10);
        assert!(conn.push(Bytes::from_static(b"123456")));
        assert!(
            !conn.push(Bytes::from_static(b"123456")),
            "second push exceeds 10 bytes"
        );
        assert_eq!(conn.close_reason(), Some(ErrorCode::SlowConsumer));
        assert!(conn.abort_token().is_cancelled());
        assert!(!conn.push(Bytes::from_static(b"1")));
        assert_eq!(rx.rx.try_recv().unwrap(), Bytes::from_static(b"123456"));
        assert!(rx.rx.try_recv().is_err());
    }

    #[test]
    fn written_bytes_free_room_in_the_queue() {
        let (conn, _rx) = Conn::new(ConnId(1), 10);
        assert!(conn.push(Bytes::from_static(b"12345678")));
        conn.written(8);
        assert!(conn.push(Bytes::from_static(b"12345678")));
        assert_eq!(conn.queued_bytes(), 8);
    }

    #[test]
    fn close_queues_a_final_close_frame_and_refuses_more() {
        let (conn, mut rx) = Conn::new(ConnId(1), 1000);
        assert!(conn.push(Bytes::from_static(b"x")));
        conn.close(ErrorCode::LoggedOut, "bye");
        assert!(!conn.push(Bytes::from_static(b"y")));
        assert_eq!(rx.rx.try_recv().unwrap(), Bytes::from_static(b"x"));
        let close = rx.rx.try_recv().unwrap();
        assert_eq!(close[4], confab_protocol::frame::kind::CLOSE);
    }
}
