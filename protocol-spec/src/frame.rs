//! Framing (SPEC.md §2): every frame is
//!
//! ```text
//! +----------------+-----------+----------------+-------------------+
//! | length: u32 BE | type: u8  | request id: u32 BE | payload ...   |
//! +----------------+-----------+----------------+-------------------+
//! ```
//!
//! `length` counts the bytes after itself (type + request id + payload), so
//! it is at least 5. The codec knows nothing of sockets or tasks: it turns
//! bytes into [`RawFrame`]s and back.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Bytes of the fixed header: length (4) + type (1) + request id (4).
pub const HEADER_LEN: usize = 9;
/// The smallest legal value of the length field.
pub const MIN_LENGTH: u32 = 5;
/// Default maximum value of the length field (64 KiB), announced in WELCOME.
/// Servers never announce less (clients send HELLO before they know).
pub const DEFAULT_MAX_FRAME_LEN: u32 = 64 * 1024;
/// Largest length field of a server frame, which clients MUST accept
/// (SPEC.md §10.1); also the most a server may announce as `max_frame_len`.
pub const MAX_SERVER_FRAME_LEN: u32 = 16 * 1024 * 1024;
/// The TLS ALPN protocol name of the binary protocol (SPEC.md §1.4.1).
pub const ALPN_CONFAB: &[u8] = b"confab/1";

/// The fixed header of a frame, read without consuming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The length field: bytes after itself (type + request id + payload).
    pub len: u32,
    pub kind: u8,
    pub req_id: u32,
}

impl Header {
    /// The header at the front of `bytes`, if all nine bytes are there.
    pub fn peek(bytes: &[u8]) -> Option<Header> {
        let h: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Header {
            len: u32::from_be_bytes([h[0], h[1], h[2], h[3]]),
            kind: h[4],
            req_id: u32::from_be_bytes([h[5], h[6], h[7], h[8]]),
        })
    }

    /// Bytes of the whole frame, length field included.
    pub fn frame_len(&self) -> usize {
        4 + self.len as usize
    }
}

/// Frame type numbers (SPEC.md §4). Ranges: `0x01..=0x3F` requests (client →
/// server), `0x40..=0x7F` responses, `0x80..=0xBF` events (request id 0).
pub mod kind {
    pub const HELLO: u8 = 0x01;
    pub const PING: u8 = 0x02;
    pub const REGISTER: u8 = 0x03;
    pub const LOGIN: u8 = 0x04;
    pub const LOGOUT: u8 = 0x05;
    pub const CREATE_ROOM: u8 = 0x10;
    pub const LIST_ROOMS: u8 = 0x11;
    pub const JOIN_ROOM: u8 = 0x12;
    pub const LEAVE_ROOM: u8 = 0x13;
    pub const LIST_MEMBERS: u8 = 0x14;
    pub const SEND_MESSAGE: u8 = 0x15;
    pub const HISTORY: u8 = 0x16;
    pub const MY_ROOMS: u8 = 0x17;
    pub const INVITE: u8 = 0x18;
    pub const RESPOND_INVITE: u8 = 0x19;
    pub const REQUEST_JOIN: u8 = 0x1a;
    pub const DECIDE_REQUEST: u8 = 0x1b;
    pub const KICK: u8 = 0x1c;
    pub const BAN: u8 = 0x1d;
    pub const UNBAN: u8 = 0x1e;
    pub const SET_ROLE: u8 = 0x1f;
    pub const LIST_JOIN_REQUESTS: u8 = 0x20;
    pub const LIST_BANS: u8 = 0x21;
    pub const LIST_NOTIFICATIONS: u8 = 0x22;
    pub const MARK_READ: u8 = 0x23;
    pub const ROOM_LOG: u8 = 0x24;
    pub const ROOM_AUDIT: u8 = 0x25;
    pub const UPDATE_ROOM: u8 = 0x26;
    pub const EDIT_MESSAGE: u8 = 0x27;
    pub const DELETE_MESSAGE: u8 = 0x28;
    pub const TYPING_START: u8 = 0x29;
    pub const TYPING_STOP: u8 = 0x2a;
    pub const SET_READ_MARKER: u8 = 0x2b;
    pub const SET_AWAY: u8 = 0x2c;
    pub const LIST_STICKERS: u8 = 0x2e;

    pub const WELCOME: u8 = 0x40;
    pub const PONG: u8 = 0x41;
    pub const OK: u8 = 0x42;
    pub const ERROR: u8 = 0x43;
    pub const SESSION: u8 = 0x44;
    pub const ROOM: u8 = 0x45;
    pub const ROOM_LIST: u8 = 0x46;
    pub const MEMBER_LIST: u8 = 0x47;
    pub const MESSAGE_ACK: u8 = 0x48;
    pub const HISTORY_PAGE: u8 = 0x49;
    pub const USER_LIST: u8 = 0x4a;
    pub const NOTIFICATION_LIST: u8 = 0x4b;
    pub const UNREAD_COUNT: u8 = 0x4c;
    pub const ROOM_LOG_LIST: u8 = 0x4d;
    pub const AUDIT_PAGE: u8 = 0x4e;
    pub const READ_MARKER: u8 = 0x4f;
    pub const STICKER_LIST: u8 = 0x50;

    pub const EVENT: u8 = 0x80;
    pub const RESUME_GAP: u8 = 0x81;
    pub const CLOSE: u8 = 0x82;
    pub const NOTIFICATION: u8 = 0x83;
    pub const ROOM_ANNOUNCED: u8 = 0x84;
    pub const TYPING: u8 = 0x85;
    pub const READ_MARKER_MOVED: u8 = 0x86;
    pub const PRESENCE: u8 = 0x87;

    /// Every request type of this protocol version (SPEC.md §4), in type
    /// order: the one list the vectors test and the fuzz targets read
    /// (`Request::decode` knows exactly these; a unit test holds it).
    pub const REQUESTS: &[u8] = &[
        HELLO,
        PING,
        REGISTER,
        LOGIN,
        LOGOUT,
        CREATE_ROOM,
        LIST_ROOMS,
        JOIN_ROOM,
        LEAVE_ROOM,
        LIST_MEMBERS,
        SEND_MESSAGE,
        HISTORY,
        MY_ROOMS,
        INVITE,
        RESPOND_INVITE,
        REQUEST_JOIN,
        DECIDE_REQUEST,
        KICK,
        BAN,
        UNBAN,
        SET_ROLE,
        LIST_JOIN_REQUESTS,
        LIST_BANS,
        LIST_NOTIFICATIONS,
        MARK_READ,
        ROOM_LOG,
        ROOM_AUDIT,
        UPDATE_ROOM,
        EDIT_MESSAGE,
        DELETE_MESSAGE,
        TYPING_START,
        TYPING_STOP,
        SET_READ_MARKER,
        SET_AWAY,
        LIST_STICKERS,
    ];

    /// Every type a server sends (responses, then events), in type order
    /// (`ServerMsg::decode` knows exactly these).
    pub const SERVER_FRAMES: &[u8] = &[
        WELCOME,
        PONG,
        OK,
        ERROR,
        SESSION,
        ROOM,
        ROOM_LIST,
        MEMBER_LIST,
        MESSAGE_ACK,
        HISTORY_PAGE,
        USER_LIST,
        NOTIFICATION_LIST,
        UNREAD_COUNT,
        ROOM_LOG_LIST,
        AUDIT_PAGE,
        READ_MARKER,
        STICKER_LIST,
        EVENT,
        RESUME_GAP,
        CLOSE,
        NOTIFICATION,
        ROOM_ANNOUNCED,
        TYPING,
        READ_MARKER_MOVED,
        PRESENCE,
    ];

    /// The highest request type: requests are `0x01..=LAST_REQUEST`.
    pub const LAST_REQUEST: u8 = 0x3f;

    /// Whether `t` lies in the request range.
    pub fn is_request(t: u8) -> bool {
        (0x01..=LAST_REQUEST).contains(&t)
    }

    /// Whether `t` lies in the response range (answers carry the request's
    /// id).
    pub fn is_response(t: u8) -> bool {
        (0x40..=0x7f).contains(&t)
    }

    /// Whether `t` is a type only servers send (a response or an event).
    pub fn is_server_frame(t: u8) -> bool {
        is_response(t) || is_event(t)
    }

    /// Whether `t` lies in the event range (request id 0); clients ignore
    /// event types they do not know.
    pub fn is_event(t: u8) -> bool {
        (0x80..=0xbf).contains(&t)
    }
}

/// One undecoded frame: its type, request id and payload bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub kind: u8,
    pub req_id: u32,
    pub payload: Bytes,
}

/// Why a byte stream could not be split into frames. Every variant is fatal
/// for the connection: framing is lost.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame length {len} exceeds the maximum {max}")]
    TooLarge { len: u32, max: u32 },
    #[error("frame length {0} is below the minimum of 5")]
    TooShort(u32),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// tokio-util codec for [`RawFrame`]s with a maximum frame length.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_len: u32,
}

impl FrameCodec {
    pub fn new(max_len: u32) -> Self {
        FrameCodec { max_len }
    }

    pub fn max_len(&self) -> u32 {
        self.max_len
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new(DEFAULT_MAX_FRAME_LEN)
    }
}

/// Splits one frame off the front of `src` if a whole one is buffered. Shared
/// by the tokio codec and by transports that get whole messages (WebSocket).
pub fn split_frame(src: &mut BytesMut, max_len: u32) -> Result<Option<RawFrame>, FrameError> {
    if src.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]);
    if len < MIN_LENGTH {
        return Err(FrameError::TooShort(len));
    }
    if len > max_len {
        return Err(FrameError::TooLarge { len, max: max_len });
    }
    let total = 4 + len as usize;
    if src.len() < total {
        src.reserve(total - src.len());
        return Ok(None);
    }
    let mut frame = src.split_to(total);
    frame.advance(4);
    let kind = frame.get_u8();
    let req_id = frame.get_u32();
    Ok(Some(RawFrame {
        kind,
        req_id,
        payload: frame.freeze(),
    }))
}

impl Decoder for FrameCodec {
    type Item = RawFrame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<RawFrame>, FrameError> {
        split_frame(src, self.max_len)
    }
}

impl Encoder<RawFrame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, item: RawFrame, dst: &mut BytesMut) -> Result<(), FrameError> {
        let len = MIN_LENGTH as usize + item.payload.len();
        if len > self.max_len as usize {
            return Err(FrameError::TooLarge {
                len: len as u32,
                max: self.max_len,
            });
        }
        dst.reserve(4 + len);
        dst.put_u32(len as u32);
        dst.put_u8(item.kind);
        dst.put_u32(item.req_id);
        dst.put_slice(&item.payload);
        Ok(())
    }
}

/// Starts a frame in `buf`: writes a placeholder length, the type and the
/// request id, and returns the offset to pass to [`end_frame`].
#[inline]
pub fn begin_frame(buf: &mut BytesMut, kind: u8, req_id: u32) -> usize {
    let start = buf.len();
    buf.put_u32(0);
    buf.put_u8(kind);
    buf.put_u32(req_id);
    start
}

/// Back-patches the length of the frame begun at `start`.
#[inline]
pub fn end_frame(buf: &mut BytesMut, start: usize) {
    let len = (buf.len() - start - 4) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    /// The kind tables are exactly what the decoders know: every type in
    /// them decodes (or fails on its payload), every other type is
    /// `UnknownFrameType`.
    #[test]
    fn kind_tables_are_exactly_the_decoders_types() {
        use crate::{DecodeError, RawFrame, Request, ServerMsg};
        for t in 0..=u8::MAX {
            let frame = RawFrame {
                kind: t,
                req_id: if kind::is_event(t) { 0 } else { 1 },
                payload: bytes::Bytes::new(),
            };
            let request_known = !matches!(
                Request::decode(&frame),
                Err(DecodeError::UnknownFrameType(_))
            );
            assert_eq!(
                request_known,
                kind::REQUESTS.contains(&t),
                "request type {t:#04x}"
            );
            let server_known = !matches!(
                ServerMsg::decode(&frame),
                Err(DecodeError::UnknownFrameType(_))
            );
            assert_eq!(
                server_known,
                kind::SERVER_FRAMES.contains(&t),
                "server type {t:#04x}"
            );
        }
        let mut sorted = kind::REQUESTS.to_vec();
        sorted.extend(kind::SERVER_FRAMES);
        assert!(
            sorted.windows(2).all(|w| w[0] < w[1]),
            "tables in type order, no repeats"
        );
    }

    use super::*;

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&[0u8, 0, 0, 6, kind::PING, 0, 0, 0][..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&[7, 0x2a]);
        let f = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(
            (f.kind, f.req_id, &f.payload[..]),
            (kind::PING, 7, &[0x2a][..])
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn header_peek_reads_the_fixed_header_without_consuming() {
        let bytes = [0u8, 0, 0, 6, kind::PONG, 0, 0, 1, 2, 0x2a];
        let h = Header::peek(&bytes).unwrap();
        assert_eq!(
            h,
            Header {
                len: 6,
                kind: kind::PONG,
                req_id: 258
            }
        );
        assert_eq!(h.frame_len(), 10);
        assert_eq!(Header::peek(&bytes[..8]), None);
        assert!(kind::is_response(kind::PONG) && !kind::is_response(kind::EVENT));
        assert!(kind::is_server_frame(kind::CLOSE) && !kind::is_server_frame(kind::PING));
    }

    #[test]
    fn oversize_and_undersize_lengths_are_errors() {
        let mut codec = FrameCodec::new(100);
        let mut big = BytesMut::from(&101u32.to_be_bytes()[..]);
        assert!(matches!(
            codec.decode(&mut big),
            Err(FrameError::TooLarge { len: 101, max: 100 })
        ));
        let mut small = BytesMut::from(&4u32.to_be_bytes()[..]);
        assert!(matches!(
            codec.decode(&mut small),
            Err(FrameError::TooShort(4))
        ));
    }
}
