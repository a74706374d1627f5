//! WebSocket: the upgrade at `GET /ws`, and sessions whose frames travel
//! one per binary message (SPEC.md §1.4).
//!
//! Design constraints (see DESIGN.md, fastwebsockets pitfalls):
//!
//! - **Reads have their own task.** `read_frame` is not cancel-safe, and the
//!   session waits on its frame stream inside `select!` (idle timeout,
//!   shutdown). The reader task turns messages into [`RawFrame`]s and hands
//!   them over a small bounded channel, which the session reads.
//! - **Writes are coalesced.** fastwebsockets' `write_frame` costs one write
//!   per frame; fan-out would pay a syscall per event. [`WsSink`] encodes
//!   every frame of a batch as a WebSocket binary message into one buffer,
//!   writes it once and flushes (TLS needs the flush).
//! - **One writer, server with the reader for control frames.** Pongs and
//!   the close echo the reader owes go through the same [`WsOut`] (a mutex
//!   that is uncontended except for those rare frames).
//! - **Limits before allocation.** A message may hold at most one frame of
//!   `max_frame_len`, so the message limit is `max_frame_len + 4`: larger
//!   messages are refused from their header (fastwebsockets checks the
//!   length first), fragmented ones as soon as the sum passes the limit.
//! - **Origin is ours to check** (fastwebsockets does not): browsers send
//!   it; it must be one of `--allowed-origins` when that list is set.
//!
//! Close codes: a protocol CLOSE frame is sent as a binary message first
//! (so every transport ends the same way), then the WebSocket close frame
//! with a code derived from it ([`ws_close_code`]) and the reason
//! `"NAME: message"`.

use std::io;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::BytesMut;
use confab_protocol::frame::split_frame;
use confab_protocol::{ErrorCode, FrameError, RawFrame, ServerMsg};
use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocketError, WebSocketRead};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Mutex};

use super::api::ApiError;
use super::http::{ConnInfo, HttpState};
use crate::net::frames::FrameSink;
use crate::outbound::Outbound;
use crate::session;
use crate::state::ServerState;

/// RFC 6455 close codes used here.
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const POLICY_VIOLATION: u16 = 1008;
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    pub const INTERNAL_ERROR: u16 = 1011;
}

/// The WebSocket close code that goes with a protocol CLOSE code.
pub fn ws_close_code(code: u16) -> u16 {
    use close_code::*;
    match ErrorCode::from_u16(code) {
        Some(ErrorCode::MalformedFrame) => INVALID_PAYLOAD,
        Some(ErrorCode::FrameTooLarge) => MESSAGE_TOO_BIG,
        Some(ErrorCode::ShuttingDown) => GOING_AWAY,
        Some(ErrorCode::Internal) => INTERNAL_ERROR,
        Some(ErrorCode::SlowConsumer) => POLICY_VIOLATION,
        _ if (100..200).contains(&code) => POLICY_VIOLATION,
        _ => NORMAL,
    }
}

/// Close reasons are at most 123 bytes (a control frame's 125 minus the code).
fn close_reason(code: u16, message: &str) -> String {
    let name = super::api::error::code_name(code);
    let mut reason = format!("{name}: {message}");
    if reason.len() > 123 {
        let mut end = 123;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

/// `GET /ws`: checks the request, answers `101 Switching Protocols` and
/// starts the session once hyper hands the connection over.
pub async fn upgrade(
    State(state): State<HttpState>,
    Extension(conn): Extension<ConnInfo>,
    mut req: Request,
) -> Response {
    if !fastwebsockets::upgrade::is_upgrade_request(&req) {
        return ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            ErrorCode::MalformedFrame,
            "GET /ws is a WebSocket endpoint: send Connection: Upgrade and Upgrade: websocket",
        )
        .into_response();
    }
    if !state.allowed_origins.is_empty() {
        // Browsers always send Origin; other clients may not, and cannot be
        // abused cross-site, so a missing Origin is allowed.
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            if !state.allowed_origins.iter().any(|o| o == origin) {
                tracing::info!(peer = %conn.peer, origin, "WebSocket upgrade from a disallowed origin");
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    ErrorCode::MalformedFrame,
                    format!("origin {origin:?} is not allowed to open WebSocket connections"),
                )
                .into_response();
            }
        }
    }
    let (response, upgrade) = match fastwebsockets::upgrade::upgrade(&mut req) {
        Ok(r) => r,
        Err(e) => {
            let mut resp = ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::MalformedFrame,
                format!("bad WebSocket upgrade: {e}"),
            )
            .into_response();
            if matches!(e, WebSocketError::InvalidSecWebsocketVersion) {
                resp.headers_mut().insert(
                    "sec-websocket-version",
                    header::HeaderValue::from_static("13"),
                );
            }
            return resp;
        }
    };
    let server = state.server.clone();
    state.tracker.spawn(async move {
        match upgrade.await {
            Ok(ws) => serve(server, ws.into_inner(), conn).await,
            Err(e) => tracing::debug!(peer = %conn.peer, error = %e, "WebSocket upgrade failed"),
        }
    });
    response.map(Body::new)
}

/// Runs one protocol session over an upgraded connection.
pub async fn serve(server: Arc<ServerState>, io: TokioIo<Upgraded>, conn: ConnInfo) {
    let _open = crate::metrics::connection_opened(if conn.tls { "wss" } else { "ws" });
    let peer = conn.peer;
    let max_frame_len = server.config.max_frame_len;
    let (read, write) = tokio::io::split(io);
    // Writes go through `WsOut` (coalescing); fastwebsockets' own writer
    // half is not used.
    let (mut ws, _) = fastwebsockets::after_handshake_split(read, tokio::io::sink(), Role::Server);
    // fastwebsockets refuses payloads >= the limit; a whole frame is
    // max_frame_len + 4 bytes, which must pass.
    ws.set_max_message_size(max_message_len(max_frame_len) + 1);
    ws.set_auto_pong(true);
    ws.set_auto_close(true);
    let out = Arc::new(Mutex::new(WsOut::new(write)));
    let (tx, mut rx) = mpsc::channel(16);
    let reader = tokio::spawn(read_messages(ws, out.clone(), tx, max_frame_len));
    let frames = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    session::serve(server, frames, WsSink { out }, peer).await;
    reader.abort();
}

/// The largest WebSocket message: one frame of `max_frame_len`.
fn max_message_len(max_frame_len: u32) -> usize {
    max_frame_len as usize + 4
}

/// The write side of one WebSocket connection.
pub struct WsOut<W> {
    io: W,
    /// Reused across batches; released when it grew large.
    buf: Vec<u8>,
    /// A close frame was sent: nothing more may be.
    closed: bool,
    /// Code and reason for the close frame, from the last protocol CLOSE.
    close: Option<(u16, String)>,
}

/// Largest coalescing buffer kept between batches.
const KEEP_BUF: usize = 16 * 1024;

/// Appends one unmasked (server) WebSocket frame.
fn push_message(buf: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    let mut head = [0u8; 16];
    let n = Frame::new(true, opcode, None, Payload::Borrowed(payload)).fmt_head(&mut head);
    buf.extend_from_slice(&head[..n]);
    buf.extend_from_slice(payload);
}

impl<W: AsyncWrite + Unpin + Send> WsOut<W> {
    pub fn new(io: W) -> WsOut<W> {
        WsOut {
            io,
            buf: Vec::new(),
            closed: false,
            close: None,
        }
    }

    /// Writes each protocol frame as one binary message: one buffer, one
    /// write, one flush.
    async fn write_frames(&mut self, frames: &[Outbound]) -> io::Result<()> {
        if self.closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        self.buf.clear();
        for f in frames {
            if let Outbound::Close { code, message, .. } = f {
                let code = *code as u16;
                self.close = Some((ws_close_code(code), close_reason(code, message)));
            }
            push_message(&mut self.buf, OpCode::Binary, f.frame());
        }
        self.io.write_all(&self.buf).await?;
        if self.buf.capacity() > KEEP_BUF {
            self.buf = Vec::new();
        }
        self.io.flush().await
    }

    /// Sends a control frame the reader owes (pong, close echo).
    async fn control(&mut self, frame: Frame<'_>) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(frame.payload.len() + 16);
        push_message(&mut buf, frame.opcode, &frame.payload);
        self.closed = frame.opcode == OpCode::Close;
        self.io.write_all(&buf).await?;
        self.io.flush().await
    }

    /// Sends the close frame (once) and shuts the stream down.
    async fn close(&mut self, code: u16, reason: &str) {
        if !self.closed {
            self.closed = true;
            let mut payload = code.to_be_bytes().to_vec();
            payload.extend_from_slice(reason.as_bytes());
            let mut buf = Vec::with_capacity(payload.len() + 4);
            push_message(&mut buf, OpCode::Close, &payload);
            let _ = self.io.write_all(&buf).await;
            let _ = self.io.flush().await;
        }
        let _ = self.io.shutdown().await;
    }

    /// Refuses the connection from the reader's side: a protocol CLOSE
    /// (`code`, `message`), then the WebSocket close frame `ws_code`.
    async fn refuse(&mut self, code: ErrorCode, message: &str, ws_code: u16) {
        let close = ServerMsg::Close {
            code: code as u16,
            message: message.into(),
        };
        let _ = self.write_frames(&[Outbound::encode(0, &close)]).await;
        self.close(ws_code, &close_reason(code as u16, message))
            .await;
    }
}

/// The session's [`FrameSink`] over WebSocket.
pub struct WsSink<W> {
    out: Arc<Mutex<WsOut<W>>>,
}

impl<W: AsyncWrite + Unpin + Send + 'static> FrameSink for WsSink<W> {
    async fn write_frames(&mut self, frames: &[Outbound]) -> io::Result<()> {
        self.out.lock().await.write_frames(frames).await
    }

    async fn close(&mut self) {
        let mut out = self.out.lock().await;
        let (code, reason) = out
            .close
            .take()
            .unwrap_or((close_code::NORMAL, String::new()));
        out.close(code, &reason).await;
    }
}

/// The reader task: messages in, frames out to the session. Ends at the
/// peer's close or end of stream, or after refusing a bad message.
async fn read_messages<R, W>(
    mut ws: WebSocketRead<R>,
    out: Arc<Mutex<WsOut<W>>>,
    tx: mpsc::Sender<Result<RawFrame, FrameError>>,
    max_frame_len: u32,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send,
{
    let max_message = max_message_len(max_frame_len);
    // A binary message arriving in fragments.
    let mut partial: Option<BytesMut> = None;
    let send_out = out.clone();
    let mut send = move |frame: Frame<'static>| {
        let out = send_out.clone();
        async move { out.lock().await.control(frame).await }
    };
    loop {
        let (fin, opcode, payload) = match ws.read_frame(&mut send).await {
            Ok(frame) => (frame.fin, frame.opcode, into_bytes(frame.payload)),
            Err(WebSocketError::FrameTooLarge) => {
                let message =
                    format!("a WebSocket message may hold one frame: at most {max_message} bytes");
                out.lock()
                    .await
                    .refuse(
                        ErrorCode::FrameTooLarge,
                        &message,
                        close_code::MESSAGE_TOO_BIG,
                    )
                    .await;
                return;
            }
            Err(
                WebSocketError::UnexpectedEOF
                | WebSocketError::IoError(_)
                | WebSocketError::ConnectionClosed
                | WebSocketError::SendError(_),
            ) => return,
            Err(e) => {
                let message = format!("WebSocket protocol error: {e}");
                out.lock()
                    .await
                    .refuse(
                        ErrorCode::MalformedFrame,
                        &message,
                        close_code::PROTOCOL_ERROR,
                    )
                    .await;
                return;
            }
        };
        let message = match (opcode, partial.take()) {
            (OpCode::Binary, None) if fin => payload,
            (OpCode::Binary, None) => {
                partial = Some(payload);
                continue;
            }
            (OpCode::Continuation, Some(mut started)) => {
                if started.len() + payload.len() > max_message {
                    let message = format!(
                        "a WebSocket message may hold one frame: at most {max_message} bytes"
                    );
                    out.lock()
                        .await
                        .refuse(
                            ErrorCode::FrameTooLarge,
                            &message,
                            close_code::MESSAGE_TOO_BIG,
                        )
                        .await;
                    return;
                }
                started.extend_from_slice(&payload);
                if !fin {
                    partial = Some(started);
                    continue;
                }
                started
            }
            (OpCode::Text, _) => {
                out.lock()
                    .await
                    .refuse(
                        ErrorCode::MalformedFrame,
                        "text messages are not accepted: send each protocol frame as one binary message",
                        close_code::UNSUPPORTED_DATA,
                    )
                    .await;
                return;
            }
            (OpCode::Close, _) => return, // echoed by auto-close
            (OpCode::Ping | OpCode::Pong, started) => {
                partial = started;
                continue;
            }
            (OpCode::Binary | OpCode::Continuation, _) => {
                out.lock()
                    .await
                    .refuse(
                        ErrorCode::MalformedFrame,
                        "WebSocket fragments out of order",
                        close_code::PROTOCOL_ERROR,
                    )
                    .await;
                return;
            }
        };
        let size = message.len();
        let mut buf = message;
        let frame = match split_frame(&mut buf, max_frame_len) {
            Ok(Some(frame)) if buf.is_empty() => Ok(frame),
            // Length violations: the session answers them as on any
            // transport (CLOSE 100 or 102).
            Err(e @ (FrameError::TooLarge { .. } | FrameError::TooShort(_))) => Err(e),
            Ok(Some(_)) | Ok(None) | Err(FrameError::Io(_)) => {
                let message = format!(
                    "a WebSocket message must hold exactly one whole protocol frame; this one ({size} bytes) does not"
                );
                out.lock()
                    .await
                    .refuse(
                        ErrorCode::MalformedFrame,
                        &message,
                        close_code::INVALID_PAYLOAD,
                    )
                    .await;
                return;
            }
        };
        let fatal = frame.is_err();
        if tx.send(frame).await.is_err() || fatal {
            return;
        }
    }
}

fn into_bytes(payload: Payload<'_>) -> BytesMut {
    match payload {
        Payload::Bytes(b) => b,
        other => BytesMut::from(&other[..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_follow_the_protocol_code() {
        assert_eq!(ws_close_code(ErrorCode::FrameTooLarge as u16), 1009);
        assert_eq!(ws_close_code(ErrorCode::MalformedFrame as u16), 1007);
        assert_eq!(ws_close_code(ErrorCode::HandshakeRequired as u16), 1008);
        assert_eq!(ws_close_code(ErrorCode::ShuttingDown as u16), 1001);
        assert_eq!(ws_close_code(ErrorCode::LoggedOut as u16), 1000);
        assert_eq!(ws_close_code(9999), 1000);
    }

    #[test]
    fn close_reasons_fit_a_control_frame_and_keep_utf8_whole() {
        let r = close_reason(602, "bye");
        assert_eq!(r, "LOGGED_OUT: bye");
        let long = close_reason(100, &"é".repeat(100));
        assert!(long.len() <= 123);
        assert!(long.starts_with("MALFORMED_FRAME: é"));
    }

    /// Counts the writes and flushes that reach the socket.
    struct Counting {
        inner: tokio::io::DuplexStream,
        writes: Arc<std::sync::atomic::AtomicUsize>,
        flushes: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl AsyncWrite for Counting {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
        }
        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            self.flushes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::pin::Pin::new(&mut self.inner).poll_flush(cx)
        }
        fn poll_shutdown(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    #[tokio::test]
    async fn fan_out_costs_one_write_and_one_flush_per_batch_not_per_frame() {
        let (_client, server) = tokio::io::duplex(1 << 20);
        let (writes, flushes) = (Arc::default(), Arc::default());
        let counting = Counting {
            inner: server,
            writes: Arc::clone(&writes),
            flushes: Arc::clone(&flushes),
        };
        let mut sink = WsSink {
            out: Arc::new(Mutex::new(WsOut::new(counting))),
        };
        let event = Outbound::Event(bytes::Bytes::from(vec![1u8; 200]));
        let batch: Vec<Outbound> = (0..100).map(|_| event.clone()).collect();
        sink.write_frames(&batch).await.unwrap();
        use std::sync::atomic::Ordering::SeqCst;
        assert_eq!(writes.load(SeqCst), 1, "100 frames, one write");
        assert_eq!(flushes.load(SeqCst), 1, "and one flush (TLS needs it)");
    }

    #[tokio::test]
    async fn a_batch_becomes_binary_messages_in_one_buffer_then_the_close_frame() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let mut sink = WsSink {
            out: Arc::new(Mutex::new(WsOut::new(server))),
        };
        let close = ServerMsg::Close {
            code: ErrorCode::LoggedOut as u16,
            message: "bye".into(),
        };
        let frames = [
            Outbound::encode(7, &ServerMsg::Ok),
            Outbound::Event(bytes::Bytes::from(vec![7u8; 300])),
            Outbound::encode(0, &close),
        ];
        sink.write_frames(&frames).await.unwrap();
        sink.close().await;
        assert!(sink.write_frames(&frames[..1]).await.is_err(), "closed");
        let mut got = Vec::new();
        let mut client = client;
        tokio::io::AsyncReadExt::read_to_end(&mut client, &mut got)
            .await
            .unwrap();
        // 9-byte frame: 2-byte head; 300-byte frame: 4-byte head.
        assert_eq!(&got[..2], &[0x82, 9]);
        assert_eq!(&got[2..11], &frames[0].frame()[..]);
        assert_eq!(&got[11..15], &[0x82, 126, 1, 44]);
        let after = 15 + 300 + 2 + frames[2].frame().len();
        let close_frame = &got[after..];
        assert_eq!(close_frame[0], 0x88, "close opcode, fin");
        assert_eq!(&close_frame[2..4], &1000u16.to_be_bytes());
        assert_eq!(&close_frame[4..], b"LOGGED_OUT: bye");
    }
}
