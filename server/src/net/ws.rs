//! WebSocket: the upgrade at `GET /ws`, and sessions whose frames travel
//! one per binary message (SPEC.md §1.4.2).
//!
//! Design constraints:
//!
//! - **The upgrade is fastwebsockets', the framing is ours.** fastwebsockets
//!   checks the upgrade request and computes the accept key. After the
//!   upgrade the connection's raw socket (and, over TLS, its rustls
//!   connection) is taken back from hyper, and frames are read and written
//!   here: the session's one task reads ([`WsFrames`], cancel-safe, so no
//!   reader task of its own), and its outbound queue writes through the
//!   shared [`ChannelSink`](super::frames::ChannelSink), which puts a batch
//!   of queued frames into one buffer, each as a binary message — one
//!   write per batch, as on TCP (fastwebsockets' writer costs a write per
//!   frame, and its reader is not cancel-safe).
//! - **Strict framing (RFC 6455 §5).** A client frame that is unmasked, has
//!   a reserved bit set, an unknown opcode, or is a fragmented or oversized
//!   (over 125 bytes) control frame closes the connection: protocol CLOSE
//!   100, WebSocket code 1002.
//! - **Limits before allocation.** A message may hold at most one frame of
//!   `max_frame_len`, so the message limit is `max_frame_len + 4`: larger
//!   messages are refused from their frame header, fragmented ones as soon
//!   as the sum passes the limit.
//! - **Origin is ours to check** (fastwebsockets does not): browsers send
//!   it; it must be one of `--allowed-origins` when that list is set.
//!
//! Close codes: a protocol CLOSE frame is sent as a binary message first
//! (so every transport ends the same way), then the WebSocket close frame
//! with a code derived from it ([`ws_close_code`], or the violation's own)
//! and the reason `"NAME: message"`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::{Buf, Bytes, BytesMut};
use confab_protocol::frame::split_frame;
use confab_protocol::{ErrorCode, FrameError, RawFrame};
use fastwebsockets::WebSocketError;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_util::task::TaskTracker;

use super::api::ApiError;
use super::frames::{prepend, Channel, ChannelSink, Framing};
use super::http::{ConnInfo, HttpState};
use crate::outbound::{OutboundQueue, Writer};
use crate::session;
use crate::session::FrameSource;
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
pub fn close_reason(code: u16, message: &str) -> String {
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

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Appends an unmasked frame header with FIN set.
fn put_header(out: &mut Vec<u8>, opcode: u8, len: usize) {
    out.push(0x80 | opcode);
    if len < 126 {
        out.push(len as u8);
    } else if len <= u16::MAX as usize {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// Appends `payload` as one unmasked binary message.
pub fn put_binary_message(out: &mut Vec<u8>, payload: &[u8]) {
    put_header(out, OP_BINARY, payload.len());
    out.extend_from_slice(payload);
}

/// Appends a close frame with `code` and `reason` (at most 123 bytes).
pub fn put_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    put_header(out, OP_CLOSE, 2 + reason.len());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(reason.as_bytes());
}

/// A control frame (pong, close echo) with `payload`.
fn control(opcode: u8, payload: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(payload.len() + 2);
    put_header(&mut out, opcode, payload.len());
    out.extend_from_slice(payload);
    out.into()
}

/// `GET /ws`: checks the request, answers `101 Switching Protocols` and
/// starts the session once hyper hands the connection over.
pub async fn upgrade(
    State(state): State<HttpState>,
    Extension(conn): Extension<ConnInfo>,
    mut req: Request,
) -> Response {
    let (response, upgrade) = match accept_upgrade(&mut req, &state.allowed_origins, &conn) {
        Ok(accepted) => accepted,
        Err(refusal) => return *refusal,
    };
    let server = state.server.clone();
    let tracker = state.tracker.clone();
    state.tracker.spawn(async move {
        match upgrade.await {
            Ok(ws) => serve(server, ws.into_inner(), conn, &tracker),
            Err(e) => tracing::debug!(peer = %conn.peer, error = %e, "WebSocket upgrade failed"),
        }
    });
    response
}

/// The checks of an upgrade request (headers, `Origin`, the key): the
/// `101` response and the upgrade to await, or the refusal to answer.
/// No I/O, so that it can be fuzzed (`crate::fuzzing`).
pub(crate) fn accept_upgrade(
    req: &mut Request,
    allowed_origins: &[String],
    conn: &ConnInfo,
) -> Result<(Response, fastwebsockets::upgrade::UpgradeFut), Box<Response>> {
    if !fastwebsockets::upgrade::is_upgrade_request(req) {
        return Err(Box::new(
            ApiError::new(
                StatusCode::UPGRADE_REQUIRED,
                ErrorCode::MalformedFrame,
                "GET /ws is a WebSocket endpoint: send Connection: Upgrade and Upgrade: websocket",
            )
            .into_response(),
        ));
    }
    if !allowed_origins.is_empty() {
        // Browsers always send Origin; other clients may not, and cannot be
        // abused cross-site, so a missing Origin is allowed.
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            if !allowed_origins.iter().any(|o| o == origin) {
                tracing::info!(peer = %conn.peer, origin, "WebSocket upgrade from a disallowed origin");
                return Err(Box::new(
                    ApiError::new(
                        StatusCode::FORBIDDEN,
                        ErrorCode::MalformedFrame,
                        format!("origin {origin:?} is not allowed to open WebSocket connections"),
                    )
                    .into_response(),
                ));
            }
        }
    }
    if let Some(key) = req.headers().get("sec-websocket-key") {
        if !is_websocket_key(key.as_bytes()) {
            return Err(Box::new(
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::MalformedFrame,
                    "bad WebSocket upgrade: Sec-WebSocket-Key must be 16 bytes in base64 (24 characters, RFC 6455 §4.1)",
                )
                .into_response(),
            ));
        }
    }
    match fastwebsockets::upgrade::upgrade(req) {
        Ok((response, upgrade)) => Ok((response.map(Body::new), upgrade)),
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
            Err(Box::new(resp))
        }
    }
}

/// Whether `key` is what RFC 6455 §4.1 asks a client to send: a 16-byte
/// value in base64, which is 22 characters of the base64 alphabet and `==`.
/// fastwebsockets hashes whatever it is given; a client that sends
/// anything else is not speaking WebSocket.
fn is_websocket_key(key: &[u8]) -> bool {
    let b64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    key.len() == 24 && key[..22].iter().all(b64) && &key[22..] == b"=="
}

/// Runs one protocol session over an upgraded connection: takes the raw
/// socket (and rustls connection) back from hyper.
pub fn serve(
    server: Arc<ServerState>,
    io: TokioIo<Upgraded>,
    conn: ConnInfo,
    tracker: &TaskTracker,
) {
    let upgraded = io.into_inner();
    let (channel, ahead) = match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => (Channel::plain(parts.io.into_inner()), parts.read_buf),
        Err(upgraded) => {
            match upgraded.downcast::<TokioIo<tokio_rustls::server::TlsStream<TcpStream>>>() {
                Ok(parts) => {
                    let (tcp, tls) = parts.io.into_inner().into_inner();
                    (Channel::tls(tcp, tls), parts.read_buf)
                }
                Err(_) => {
                    tracing::error!(peer = %conn.peer, "WebSocket over an unknown transport");
                    return;
                }
            }
        }
    };
    let open = crate::metrics::connection_opened(if conn.tls { "wss" } else { "ws" });
    let mut frames = WsFrames::new(channel.clone(), server.config.max_frame_len);
    prepend(&mut frames.reader.buf, ahead);
    let writer = Writer::new(ChannelSink::new(channel, Framing::WebSocket));
    // A task of its own: the upgrade's task ends, and the session's future
    // is not nested in it (session::serve).
    tracker.spawn(session::serve(server, frames, writer, conn.peer, open));
}

/// The largest WebSocket message: one frame of `max_frame_len`.
fn max_message_len(max_frame_len: u32) -> usize {
    max_frame_len as usize + 4
}

/// Protocol frames read from WebSocket binary messages.
pub struct WsFrames {
    channel: Channel,
    reader: WsReader,
}

/// The WebSocket parsing state of a connection, apart from its socket (so
/// that it can be tested and fuzzed without one).
pub(crate) struct WsReader {
    /// Bytes read and not yet parsed.
    pub(crate) buf: BytesMut,
    /// A binary message arriving in fragments.
    message: Option<BytesMut>,
    max_frame_len: u32,
}

/// One WebSocket frame from a client, unmasked.
pub(crate) struct WsFrame {
    fin: bool,
    opcode: u8,
    payload: BytesMut,
}

/// Why a client's WebSocket stream is refused: the protocol CLOSE code,
/// the WebSocket close code and a message.
pub(crate) struct Refusal(pub ErrorCode, pub u16, pub String);

fn broken(what: &str) -> Refusal {
    Refusal(
        ErrorCode::MalformedFrame,
        close_code::PROTOCOL_ERROR,
        format!("WebSocket protocol error: {what}"),
    )
}

impl WsFrames {
    pub fn new(channel: Channel, max_frame_len: u32) -> WsFrames {
        WsFrames {
            channel,
            reader: WsReader::new(max_frame_len),
        }
    }
}

impl WsReader {
    pub(crate) fn new(max_frame_len: u32) -> WsReader {
        WsReader {
            buf: BytesMut::new(),
            message: None,
            max_frame_len,
        }
    }

    pub(crate) fn max_frame_len(&self) -> u32 {
        self.max_frame_len
    }

    /// The next whole frame in the buffer (`None`: more bytes needed).
    pub(crate) fn parse(&mut self) -> Result<Option<WsFrame>, Refusal> {
        let b = &self.buf[..];
        if b.len() < 2 {
            return Ok(None);
        }
        let (fin, rsv, opcode) = (b[0] & 0x80 != 0, b[0] & 0x70, b[0] & 0x0f);
        let (masked, len7) = (b[1] & 0x80 != 0, (b[1] & 0x7f) as u64);
        if rsv != 0 {
            return Err(broken(
                "reserved bits are set (no extension was negotiated)",
            ));
        }
        if !matches!(
            opcode,
            OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
        ) {
            return Err(broken(&format!("unknown opcode {opcode:#x}")));
        }
        if !masked {
            return Err(broken("client frames must be masked"));
        }
        let control = opcode >= OP_CLOSE;
        if control && !fin {
            return Err(broken("control frames cannot be fragmented"));
        }
        if control && len7 > 125 {
            return Err(broken("control frames carry at most 125 bytes"));
        }
        let (len, at) = match len7 {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as u64, 4),
            127 if b.len() >= 10 => {
                let len = u64::from_be_bytes(b[2..10].try_into().unwrap_or_default());
                if len >> 63 != 0 {
                    return Err(broken("the payload length's top bit is set"));
                }
                (len, 10)
            }
            126 | 127 => return Ok(None),
            n => (n, 2),
        };
        if !control {
            // Refused from the header, before the payload is buffered.
            let max = max_message_len(self.max_frame_len) as u64;
            let so_far = self.message.as_ref().map_or(0, |m| m.len() as u64);
            if so_far + len > max {
                return Err(Refusal(
                    ErrorCode::FrameTooLarge,
                    close_code::MESSAGE_TOO_BIG,
                    format!("a WebSocket message may hold one frame: at most {max} bytes"),
                ));
            }
        }
        let total = at + 4 + len as usize;
        if b.len() < total {
            self.buf.reserve(total - b.len());
            return Ok(None);
        }
        let mask = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        self.buf.advance(at + 4);
        let mut payload = self.buf.split_to(len as usize);
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i & 3];
        }
        Ok(Some(WsFrame {
            fin,
            opcode,
            payload,
        }))
    }

    /// What one WebSocket frame means for the stream: a whole message, or
    /// nothing yet (a fragment, a ping), or the end.
    pub(crate) fn take(
        &mut self,
        frame: WsFrame,
        conn: &Arc<OutboundQueue>,
    ) -> Result<Option<Step>, Refusal> {
        let WsFrame {
            fin,
            opcode,
            payload,
        } = frame;
        match opcode {
            OP_PING => {
                conn.push_wire(control(OP_PONG, &payload));
                conn.flush();
                Ok(None)
            }
            OP_PONG => Ok(None),
            OP_CLOSE => {
                // Echo the code (RFC 6455 §5.5.1); the session then ends.
                let echo = if payload.len() >= 2 {
                    &payload[..2]
                } else {
                    &[][..]
                };
                conn.push_wire(control(OP_CLOSE, echo));
                Ok(Some(Step::End))
            }
            OP_TEXT => Err(Refusal(
                ErrorCode::MalformedFrame,
                close_code::UNSUPPORTED_DATA,
                "text messages are not accepted: send each protocol frame as one binary message"
                    .into(),
            )),
            OP_BINARY if self.message.is_some() => Err(broken(
                "a new message began before the fragmented one ended",
            )),
            OP_BINARY if fin => Ok(Some(Step::Message(payload))),
            OP_BINARY => {
                self.message = Some(payload);
                Ok(None)
            }
            _ => {
                // OP_CONTINUATION
                let Some(mut started) = self.message.take() else {
                    return Err(broken("a continuation frame with no message to continue"));
                };
                started.extend_from_slice(&payload);
                if fin {
                    Ok(Some(Step::Message(started)))
                } else {
                    self.message = Some(started);
                    Ok(None)
                }
            }
        }
    }
}

pub(crate) enum Step {
    Message(BytesMut),
    End,
}

/// Why a whole WebSocket message is not one protocol frame.
#[derive(Debug)]
pub(crate) enum MessageError {
    /// The frame's length field is out of bounds: the session answers it
    /// as on any transport (CLOSE 100 or 102).
    Length(FrameError),
    /// Not exactly one whole frame (bytes short or left over): the
    /// message's size.
    NotOneFrame(usize),
}

/// The protocol frame a whole binary message holds: exactly one.
pub(crate) fn message_frame(
    mut message: BytesMut,
    max_frame_len: u32,
) -> Result<RawFrame, MessageError> {
    let size = message.len();
    match split_frame(&mut message, max_frame_len) {
        Ok(Some(frame)) if message.is_empty() => Ok(frame),
        Err(e @ (FrameError::TooLarge { .. } | FrameError::TooShort(_))) => {
            Err(MessageError::Length(e))
        }
        Ok(Some(_)) | Ok(None) | Err(FrameError::Io(_)) => Err(MessageError::NotOneFrame(size)),
    }
}

impl FrameSource for WsFrames {
    async fn next_frame(
        &mut self,
        conn: &Arc<OutboundQueue>,
    ) -> Option<Result<RawFrame, FrameError>> {
        let reader = &mut self.reader;
        loop {
            let step = match reader.parse() {
                Ok(Some(frame)) => reader.take(frame, conn),
                Ok(None) => match self.channel.read(&mut reader.buf, conn).await {
                    Ok(0) => return None,
                    Ok(_) => continue,
                    Err(e) => return Some(Err(FrameError::Io(e))),
                },
                Err(refusal) => Err(refusal),
            };
            let message = match step {
                Ok(None) => continue,
                Ok(Some(Step::End)) => return None,
                Ok(Some(Step::Message(m))) => m,
                Err(Refusal(code, ws_code, message)) => {
                    tracing::debug!(conn = conn.id.0, %code, ws_code, %message, "WebSocket refused");
                    conn.close_transport(code, message, Some(ws_code));
                    return None;
                }
            };
            if reader.buf.is_empty() {
                // Idle connections keep no read buffer (an empty one may
                // still share the allocation the message came from).
                reader.buf = BytesMut::new();
            }
            return match message_frame(message, reader.max_frame_len) {
                Ok(frame) => Some(Ok(frame)),
                // Length violations: the session answers them as on any
                // transport (CLOSE 100 or 102).
                Err(MessageError::Length(e)) => Some(Err(e)),
                Err(MessageError::NotOneFrame(size)) => {
                    conn.close_transport(
                        ErrorCode::MalformedFrame,
                        format!(
                            "a WebSocket message must hold exactly one whole protocol frame; this one ({size} bytes) does not"
                        ),
                        Some(close_code::INVALID_PAYLOAD),
                    );
                    None
                }
            };
        }
    }

    fn mid_frame(&self) -> bool {
        !self.reader.buf.is_empty() || self.reader.message.is_some()
    }

    fn poll_readable(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.channel.poll_readable(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_websocket_key_is_sixteen_bytes_in_base64() {
        // RFC 6455's own example key, and one with `+` and `/`.
        assert!(is_websocket_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(is_websocket_key(b"AQIDBAUGBwgJCgsMDQ4+/w=="));
        for bad in [
            &b""[..],
            b"dGVzdA==",                  // 4 bytes
            b"dGhlIHNhbXBsZSBub25jZQ",    // no padding
            b"dGhlIHNhbXBsZSBub25jZQ=x",  // bad padding
            b"dGhlIHNhbXBsZSBub25jZ!==",  // not the alphabet
            b"dGhlIHNhbXBsZSBub25jZQ===", // too long
            b"dGhlIHNhbXBsZSBub25jZQ-_=", // base64url
        ] {
            assert!(!is_websocket_key(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

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

    #[test]
    fn server_messages_are_unmasked_binary_with_the_shortest_length() {
        let mut out = Vec::new();
        put_binary_message(&mut out, &[7; 9]);
        assert_eq!(&out[..2], &[0x82, 9]);
        out.clear();
        put_binary_message(&mut out, &[7; 300]);
        assert_eq!(&out[..4], &[0x82, 126, 1, 44]);
        out.clear();
        put_binary_message(&mut out, &vec![7; 70_000]);
        assert_eq!(&out[..2], &[0x82, 127]);
        assert_eq!(&out[2..10], &70_000u64.to_be_bytes());
        out.clear();
        put_close(&mut out, 1000, "LOGGED_OUT: bye");
        assert_eq!(out[0], 0x88, "close opcode, fin");
        assert_eq!(&out[2..4], &1000u16.to_be_bytes());
        assert_eq!(&out[4..], b"LOGGED_OUT: bye");
    }

    /// A masked client frame.
    fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        out
    }

    fn frames_over(bytes: &[u8]) -> WsReader {
        let mut frames = WsReader::new(1024);
        frames.buf.extend_from_slice(bytes);
        frames
    }

    fn refusal_of(bytes: &[u8]) -> (ErrorCode, u16) {
        let mut f = frames_over(bytes);
        match f.parse() {
            Err(Refusal(code, ws, _)) => (code, ws),
            Ok(Some(frame)) => {
                let (conn, _rx) = OutboundQueue::detached(crate::outbound::ConnId(1), 1 << 20);
                match f.take(frame, &conn) {
                    Err(Refusal(code, ws, _)) => (code, ws),
                    _ => panic!("accepted {bytes:02x?}"),
                }
            }
            Ok(None) => panic!("incomplete {bytes:02x?}"),
        }
    }

    #[test]
    fn broken_client_frames_are_refused_with_1002() {
        let ping = client_frame(0x89, b"hi");
        let mut unmasked = ping.clone();
        unmasked[1] &= 0x7f;
        unmasked.drain(2..6);
        assert_eq!(refusal_of(&unmasked), (ErrorCode::MalformedFrame, 1002));
        let mut rsv = ping.clone();
        rsv[0] |= 0x40;
        assert_eq!(refusal_of(&rsv), (ErrorCode::MalformedFrame, 1002));
        assert_eq!(
            refusal_of(&client_frame(0x83, b"x")),
            (ErrorCode::MalformedFrame, 1002),
            "reserved opcode"
        );
        assert_eq!(
            refusal_of(&client_frame(0x09, b"x")),
            (ErrorCode::MalformedFrame, 1002),
            "fragmented ping"
        );
        assert_eq!(
            refusal_of(&client_frame(0x89, &[0; 126])),
            (ErrorCode::MalformedFrame, 1002),
            "a ping over 125 bytes"
        );
        assert_eq!(
            refusal_of(&client_frame(0x80, b"x")),
            (ErrorCode::MalformedFrame, 1002),
            "a continuation of nothing"
        );
        assert_eq!(
            refusal_of(&client_frame(0x81, b"{}")),
            (ErrorCode::MalformedFrame, 1003),
            "text"
        );
        assert_eq!(
            refusal_of(&client_frame(0x82, &[0; 1100])),
            (ErrorCode::FrameTooLarge, 1009),
            "over max_frame_len + 4"
        );
    }

    #[test]
    fn fragments_and_pings_make_one_message() {
        let mut bytes = client_frame(0x02, &[0, 0, 0, 5, 0x02]);
        bytes.extend(client_frame(0x89, b"ping"));
        bytes.extend(client_frame(0x80, &[0, 0, 0, 9]));
        let mut f = frames_over(&bytes);
        let (conn, mut rx) = OutboundQueue::detached(crate::outbound::ConnId(1), 1 << 20);
        let mut got = None;
        while let Ok(Some(frame)) = f.parse() {
            if let Ok(Some(Step::Message(m))) = f.take(frame, &conn) {
                got = Some(m);
            }
        }
        assert_eq!(got.as_deref(), Some(&[0, 0, 0, 5, 2, 0, 0, 0, 9][..]));
        let pong = rx.try_recv().expect("the ping was answered");
        assert_eq!(&pong.frame()[..], &[0x8a, 4, b'p', b'i', b'n', b'g']);
    }
}
