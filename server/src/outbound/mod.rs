//! Per-connection outbound queues (DESIGN.md invariants 3 and 4).
//!
//! An [`OutboundQueue`] is the handle through which shards, the batch
//! writer and the session push already-encoded frames to one connection,
//! as typed [`Outbound`] items — so the writer, the WebSocket sink and the
//! metrics read fields, never bytes at offsets. Pushing is lock-free: an
//! unbounded mpsc of items holding reference-counted [`Bytes`], plus an
//! atomic byte counter that bounds the queue. A push that would exceed the
//! bound aborts the connection with `SLOW_CONSUMER` instead of blocking the
//! pusher: a slow reader never slows its shard or its room.
//!
//! The connection's writer task ([`writer`]) is the only consumer; it
//! coalesces whatever is queued into few writes.

pub mod writer;

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

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
    /// gets.
    Close {
        code: ErrorCode,
        message: String,
        frame: Bytes,
    },
}

impl Outbound {
    /// The encoded frame.
    pub fn frame(&self) -> &Bytes {
        match self {
            Outbound::Event(frame)
            | Outbound::Reply { frame, .. }
            | Outbound::Close { frame, .. } => frame,
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

/// The sending side of one connection.
pub struct OutboundQueue {
    pub id: ConnId,
    /// Items waiting for the writer task.
    tx: mpsc::UnboundedSender<Outbound>,
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
    rx: mpsc::UnboundedReceiver<Outbound>,
}

impl OutboundRx {
    /// The next queued item, if one is queued now (also for benches and
    /// tools that drain a queue without a writer task).
    pub fn try_recv(&mut self) -> Option<Outbound> {
        self.rx.try_recv().ok()
    }

    /// The next item; `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<Outbound> {
        self.rx.recv().await
    }
}

impl OutboundQueue {
    pub fn new(id: ConnId, limit: usize) -> (Arc<OutboundQueue>, OutboundRx) {
        let (tx, rx) = mpsc::unbounded_channel();
        let conn = OutboundQueue {
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
        (Arc::new(conn), OutboundRx { rx })
    }

    /// Queues an encoded frame with request id 0 (an event). Returns
    /// `false` if the connection is closing or the frame would overflow
    /// the queue (which aborts the connection).
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

    #[inline]
    fn push_item(&self, item: Outbound) -> bool {
        if self.state.load(Ordering::Acquire) != OPEN {
            return false;
        }
        let len = item.frame().len();
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before + len > self.limit {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            self.abort_with(ErrorCode::SlowConsumer);
            return false;
        }
        if self.tx.send(item).is_err() {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Encodes and queues one server message: the response to `req_id`,
    /// or an event-like push (notification, announcement, resume notice)
    /// when `req_id` is 0.
    pub fn reply(&self, req_id: u32, msg: &ServerMsg) -> bool {
        self.push_item(Outbound::encode(req_id, msg))
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
        let close = ServerMsg::Close {
            code: code as u16,
            message: message.into(),
        };
        // The CLOSE frame bypasses the byte bound: it is small and final.
        let _ = self.tx.send(Outbound::encode(0, &close));
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
        let (conn, mut rx) = OutboundQueue::new(ConnId(1), 10);
        assert!(conn.push(Bytes::from_static(b"123456")));
        assert!(
            !conn.push(Bytes::from_static(b"123456")),
            "second push exceeds 10 bytes"
        );
        assert_eq!(conn.close_reason(), Some(ErrorCode::SlowConsumer));
        assert!(conn.abort_token().is_cancelled());
        assert!(!conn.push(Bytes::from_static(b"1")));
        assert_eq!(
            rx.try_recv().unwrap().frame(),
            &Bytes::from_static(b"123456")
        );
        assert!(rx.try_recv().is_none());
    }

    #[test]
    fn written_bytes_free_room_in_the_queue() {
        let (conn, _rx) = OutboundQueue::new(ConnId(1), 10);
        assert!(conn.push(Bytes::from_static(b"12345678")));
        conn.written(8);
        assert!(conn.push(Bytes::from_static(b"12345678")));
        assert_eq!(conn.queued_bytes(), 8);
    }

    #[test]
    fn close_queues_a_final_close_frame_and_refuses_more() {
        let (conn, mut rx) = OutboundQueue::new(ConnId(1), 1000);
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
        let (conn, mut rx) = OutboundQueue::new(ConnId(1), 1000);
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
}
