//! Thin wrappers around private parsers, for the `cargo fuzz` targets in
//! `fuzz/` at the repository root. Not an API: nothing here is stable,
//! and the server itself never calls it.
//!
//! Each wrapper drives the server's own code (no copy of it) and turns
//! its private types into plain ones a fuzz target can check:
//!
//! - [`spool`]: the write spool's on-disk format — recovery at start-up
//!   and the replay's reads (`persist/spool/`);
//! - [`WsStream`]: the WebSocket frame reader of a session (`net/ws.rs`),
//!   without a socket;
//! - [`ws_upgrade`]: the checks of a WebSocket upgrade request
//!   (`net/ws.rs`), without a connection.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method};
use confab_protocol::FrameError;

use crate::net::http::ConnInfo;
use crate::net::ws::{self, MessageError, Refusal, Step, WsReader};
use crate::outbound::{ConnId, OutboundQueue, OutboundRx};

/// The write spool's file and record format.
pub mod spool {
    pub use crate::persist::spool::fuzz::{
        encode_record, file_header, recover_and_replay, ReadError, Replay, FILE_NAME, HEADER_LEN,
        RECORD_HEADER_LEN,
    };
}

/// What the WebSocket reader made of the bytes fed to it, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsEvent {
    /// A binary message holding exactly one protocol frame.
    Frame {
        kind: u8,
        req_id: u32,
        payload: Vec<u8>,
    },
    /// Bytes the transport answered with by itself (a pong, the close
    /// echo), as written to the socket.
    Reply(Vec<u8>),
    /// The client closed: the session ends.
    End,
    /// The stream was refused: protocol CLOSE code and WebSocket close
    /// code. The session ends.
    Refused { code: u16, ws_code: u16 },
    /// A message whose frame length is out of bounds (the session answers
    /// CLOSE 100 or 102). The session ends.
    FrameLength { too_large: bool },
    /// A message that is not exactly one whole frame. The session ends.
    NotOneFrame { size: usize },
}

impl WsEvent {
    /// Whether the session ends after this event.
    pub fn ends(&self) -> bool {
        !matches!(self, WsEvent::Frame { .. } | WsEvent::Reply(_))
    }
}

/// One WebSocket session's reader, fed bytes as a socket would deliver
/// them.
pub struct WsStream {
    reader: WsReader,
    conn: Arc<OutboundQueue>,
    rx: OutboundRx,
    ended: bool,
}

impl WsStream {
    pub fn new(max_frame_len: u32) -> WsStream {
        let (conn, rx) = OutboundQueue::detached(ConnId(1), 1 << 20);
        WsStream {
            reader: WsReader::new(max_frame_len),
            conn,
            rx,
            ended: false,
        }
    }

    /// Appends `bytes` to what was read and returns what they completed.
    /// Once an event ended the session, nothing more is parsed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<WsEvent> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        self.reader.buf.extend_from_slice(bytes);
        loop {
            let event = match self.reader.parse() {
                Ok(None) => break,
                Err(refusal) => refused(refusal),
                Ok(Some(frame)) => match self.reader.take(frame, &self.conn) {
                    Ok(None) => None,
                    Ok(Some(Step::End)) => Some(WsEvent::End),
                    Ok(Some(Step::Message(m))) => Some(message(m, self.reader.max_frame_len())),
                    Err(refusal) => refused(refusal),
                },
            };
            while let Some(item) = self.rx.try_recv() {
                out.push(WsEvent::Reply(item.frame().to_vec()));
            }
            if let Some(event) = event {
                let ends = event.ends();
                out.push(event);
                if ends {
                    self.ended = true;
                    break;
                }
            }
        }
        out
    }

    /// Bytes read and not yet parsed.
    pub fn buffered(&self) -> usize {
        self.reader.buf.len()
    }
}

fn refused(Refusal(code, ws_code, _): Refusal) -> Option<WsEvent> {
    Some(WsEvent::Refused {
        code: code as u16,
        ws_code,
    })
}

fn message(m: bytes::BytesMut, max_frame_len: u32) -> WsEvent {
    match ws::message_frame(m, max_frame_len) {
        Ok(f) => WsEvent::Frame {
            kind: f.kind,
            req_id: f.req_id,
            payload: f.payload.to_vec(),
        },
        Err(MessageError::Length(e)) => WsEvent::FrameLength {
            too_large: matches!(e, FrameError::TooLarge { .. }),
        },
        Err(MessageError::NotOneFrame(size)) => WsEvent::NotOneFrame { size },
    }
}

/// The answer to a WebSocket upgrade request.
#[derive(Debug, Clone)]
pub struct UpgradeAnswer {
    pub status: u16,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// Runs the upgrade checks of `GET /ws` on a request with `headers`, as
/// the server configured with `allowed_origins` would. `None` if the
/// request cannot be built (an invalid header name or value: hyper would
/// have refused it before routing).
pub fn ws_upgrade(
    method: &str,
    headers: &[(&[u8], &[u8])],
    allowed_origins: &[String],
) -> Option<UpgradeAnswer> {
    let mut req = axum::http::Request::new(Body::empty());
    *req.method_mut() = Method::from_bytes(method.as_bytes()).ok()?;
    *req.uri_mut() = "/ws".parse().ok()?;
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name).ok()?;
        let value = HeaderValue::from_bytes(value).ok()?;
        req.headers_mut().append(name, value);
    }
    let conn = ConnInfo {
        peer: SocketAddr::from(([127, 0, 0, 1], 1)),
        tls: false,
    };
    let response = match ws::accept_upgrade(&mut req, allowed_origins, &conn) {
        Ok((response, _upgrade)) => response,
        Err(refusal) => *refusal,
    };
    let (parts, body) = response.into_parts();
    let body = body_bytes(body);
    Some(UpgradeAnswer {
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect(),
        body,
    })
}

/// The bytes of a body that is already complete (JSON errors, empty 101s):
/// one poll, no runtime.
fn body_bytes(body: Body) -> Vec<u8> {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let mut collect = std::pin::pin!(axum::body::to_bytes(body, 1 << 20));
    match collect
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(Ok(bytes)) => bytes.to_vec(),
        _ => Vec::new(),
    }
}
