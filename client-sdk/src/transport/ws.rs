//! WebSocket for `ws://` and `wss://`: the upgrade (fastwebsockets' client
//! handshake on hyper), then one protocol frame per binary message.
//!
//! Writes are ours, not fastwebsockets': a batch of frames becomes masked
//! binary messages in one buffer, one write and one flush. The reader owes
//! the server pongs and the close echo; it sends them through the same
//! writer (a mutex, contended only by those rare frames).

use std::future::Future;
use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use confab_protocol::frame::split_frame;
use confab_protocol::{FrameError, RawFrame};
use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocketError as WsError, WebSocketRead};
use http_body_util::Empty;
use hyper::header::{CONNECTION, HOST, UPGRADE};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::Mutex;

use super::{FrameSink, FrameSource};
use crate::endpoint::Endpoint;
use crate::error::{WebSocketError, WebSocketErrorKind};
use crate::Error;

type Io = TokioIo<Upgraded>;

/// Upgrades `io` to WebSocket at the endpoint's path.
pub(crate) async fn open<S>(
    io: S,
    endpoint: &Endpoint,
    max_inbound_frame_len: u32,
) -> Result<(FrameSource, FrameSink), Error>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let host = if endpoint.host.contains(':') {
        format!("[{}]:{}", endpoint.host, endpoint.port)
    } else {
        format!("{}:{}", endpoint.host, endpoint.port)
    };
    let request = hyper::Request::builder()
        .method("GET")
        .uri(endpoint.path.as_str())
        .header(HOST, host)
        .header(UPGRADE, "websocket")
        .header(CONNECTION, "upgrade")
        .header(
            "Sec-WebSocket-Key",
            fastwebsockets::handshake::generate_key(),
        )
        .header("Sec-WebSocket-Version", "13")
        .body(Empty::<Bytes>::new())
        .map_err(|e| {
            WebSocketError::new(
                WebSocketErrorKind::Request,
                format!(
                    "building the WebSocket upgrade request for {}",
                    endpoint.path
                ),
                Some(Box::new(e)),
            )
        })?;
    let (ws, _) = fastwebsockets::handshake::client(&SpawnExecutor, request, io)
        .await
        .map_err(|e| match e {
            WsError::InvalidStatusCode(status) => WebSocketError::refused(
                status,
                format!(
                    "the server refused the WebSocket upgrade at {} with HTTP {status}",
                    endpoint.path
                ),
            ),
            other => WebSocketError::new(
                WebSocketErrorKind::Handshake,
                format!("the WebSocket upgrade at {} failed", endpoint.path),
                Some(Box::new(other)),
            ),
        })?;
    let (read, write) = tokio::io::split(ws.into_inner());
    let (mut read, _) =
        fastwebsockets::after_handshake_split(read, tokio::io::sink(), Role::Client);
    let max_message = max_inbound_frame_len as usize + 4;
    // fastwebsockets refuses payloads >= the limit.
    read.set_max_message_size(max_message + 1);
    read.set_auto_pong(true);
    read.set_auto_close(true);
    let out = Arc::new(Mutex::new(WsOut {
        io: write,
        buf: Vec::new(),
        closed: false,
    }));
    let source = WsSource {
        read,
        out: out.clone(),
        max_frame_len: max_inbound_frame_len,
        max_message,
    };
    Ok((FrameSource::Ws(source), FrameSink::Ws(WsSink { out })))
}

/// hyper's connection task for the upgrade runs on Tokio.
struct SpawnExecutor;

impl<Fut> hyper::rt::Executor<Fut> for SpawnExecutor
where
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    fn execute(&self, fut: Fut) {
        tokio::task::spawn(fut);
    }
}

struct WsOut {
    io: WriteHalf<Io>,
    buf: Vec<u8>,
    closed: bool,
}

/// Appends one masked (client) message.
fn push_masked(buf: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    let mask: [u8; 4] = rand::random();
    let mut head = [0u8; 16];
    let n = Frame::new(true, opcode, Some(mask), Payload::Borrowed(payload)).fmt_head(&mut head);
    buf.extend_from_slice(&head[..n]);
    let start = buf.len();
    buf.extend_from_slice(payload);
    fastwebsockets::unmask(&mut buf[start..], mask);
}

impl WsOut {
    async fn write(&mut self) -> io::Result<()> {
        self.io.write_all(&self.buf).await?;
        self.io.flush().await
    }
}

pub(crate) struct WsSink {
    out: Arc<Mutex<WsOut>>,
}

impl WsSink {
    pub(crate) async fn send_batch(&mut self, frames: &[Bytes]) -> io::Result<()> {
        let mut out = self.out.lock().await;
        if out.closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        out.buf.clear();
        for f in frames {
            push_masked(&mut out.buf, OpCode::Binary, f);
        }
        let result = out.write().await;
        if out.buf.capacity() > 64 * 1024 {
            out.buf = Vec::new();
        }
        result
    }

    /// Sends a normal close (1000) and shuts the stream down.
    pub(crate) async fn shutdown(&mut self) -> io::Result<()> {
        let mut out = self.out.lock().await;
        if !out.closed {
            out.closed = true;
            out.buf.clear();
            push_masked(&mut out.buf, OpCode::Close, &1000u16.to_be_bytes());
            let _ = out.write().await;
        }
        out.io.shutdown().await
    }
}

pub(crate) struct WsSource {
    read: WebSocketRead<ReadHalf<Io>>,
    out: Arc<Mutex<WsOut>>,
    max_frame_len: u32,
    max_message: usize,
}

fn broken(reason: String) -> FrameError {
    FrameError::Io(io::Error::new(io::ErrorKind::InvalidData, reason))
}

impl WsSource {
    /// The next frame. `None` when the server closes (its CLOSE frame, if
    /// any, came before) or the stream ends.
    pub(crate) async fn next_frame(&mut self) -> Option<Result<RawFrame, FrameError>> {
        let out = self.out.clone();
        let mut send = move |frame: Frame<'static>| {
            let out = out.clone();
            async move {
                let mut out = out.lock().await;
                if out.closed {
                    return Ok::<(), io::Error>(());
                }
                out.closed = frame.opcode == OpCode::Close;
                out.buf.clear();
                push_masked(&mut out.buf, frame.opcode, &frame.payload);
                out.write().await
            }
        };
        let mut partial: Option<BytesMut> = None;
        loop {
            let frame = match self.read.read_frame(&mut send).await {
                Ok(frame) => frame,
                Err(WsError::UnexpectedEOF | WsError::ConnectionClosed) => return None,
                Err(WsError::IoError(e)) => return Some(Err(FrameError::Io(e))),
                Err(e) => return Some(Err(broken(format!("WebSocket: {e}")))),
            };
            let payload = match frame.payload {
                Payload::Bytes(b) => b,
                other => BytesMut::from(&other[..]),
            };
            let message = match (frame.opcode, partial.take()) {
                (OpCode::Binary, None) if frame.fin => payload,
                (OpCode::Binary, None) => {
                    partial = Some(payload);
                    continue;
                }
                (OpCode::Continuation, Some(mut started)) => {
                    if started.len() + payload.len() > self.max_message {
                        return Some(Err(broken(format!(
                            "WebSocket message larger than {} bytes",
                            self.max_message
                        ))));
                    }
                    started.extend_from_slice(&payload);
                    if !frame.fin {
                        partial = Some(started);
                        continue;
                    }
                    started
                }
                (OpCode::Close, _) => return None,
                (OpCode::Ping | OpCode::Pong, started) => {
                    partial = started;
                    continue;
                }
                (OpCode::Text, _) => {
                    return Some(Err(broken("the server sent a text message".into())))
                }
                (OpCode::Binary | OpCode::Continuation, _) => {
                    return Some(Err(broken("WebSocket fragments out of order".into())))
                }
            };
            let mut buf = message;
            return Some(match split_frame(&mut buf, self.max_frame_len) {
                Ok(Some(frame)) if buf.is_empty() => Ok(frame),
                Err(e) => Err(e),
                Ok(_) => Err(broken(
                    "a WebSocket message did not hold exactly one protocol frame".into(),
                )),
            });
        }
    }
}
