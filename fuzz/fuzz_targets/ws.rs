//! The WebSocket path of the server (server/src/net/ws.rs): the upgrade
//! request's checks, and the reader that turns a client's WebSocket
//! frames into protocol frames.
//!
//! Byte 0 picks the mode (and the configuration); the rest is its input.
//! - *stream* (mode 0): any bytes as a connection's stream after the
//!   upgrade. The reader must find the same events however the bytes are
//!   chunked; whatever it sends back (pongs, the close echo) must be a
//!   well-formed server frame; a protocol frame it accepts must fit the
//!   limits and the input; nothing follows an event that ends the session.
//! - *model* (mode 1): a sequence of well-formed client messages (binary,
//!   fragmented, with pings between fragments, then possibly a close)
//!   encoded here from the RFC; the reader must produce exactly the
//!   events the RFC and SPEC.md §1.4.2 say, in chunks of any size.
//! - *handshake* (mode 2): bytes parsed as an HTTP request (as hyper
//!   does) and put through the upgrade checks: the answer is 101 with the
//!   right `Sec-WebSocket-Accept` exactly when the request is an upgrade
//!   with a key of 16 bytes in base64, version 13 and an allowed origin;
//!   otherwise an error in
//!   the API's JSON shape.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine;
use bytes::BytesMut;
use confab_protocol::frame::split_frame;
use confab_protocol::FrameError;
use confab_server::fuzzing::{ws_upgrade, WsEvent, WsStream};
use libfuzzer_sys::fuzz_target;
use sha1::{Digest, Sha1};

const MALFORMED_FRAME: u16 = 100;
const FRAME_TOO_LARGE: u16 = 102;

fn max_frame_len(pick: u8) -> u32 {
    match pick % 3 {
        0 => 64 * 1024,
        1 => 16,
        _ => 5 + u32::from(pick),
    }
}

/// Feeds `bytes` whole, then in chunks of `chunk`: both must give the
/// same events.
fn run(bytes: &[u8], max: u32, chunk: usize) -> Vec<WsEvent> {
    let mut whole = WsStream::new(max);
    let events = whole.feed(bytes);
    assert!(whole.buffered() <= bytes.len());
    let mut pieces = WsStream::new(max);
    let mut chunked = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        chunked.extend(pieces.feed(piece));
    }
    assert_eq!(events, chunked, "chunking changed the events");
    events
}

fn check_stream(data: &[u8]) {
    let [pick, chunk, bytes @ ..] = data else {
        return;
    };
    let max = max_frame_len(*pick);
    let events = run(bytes, max, 1 + usize::from(*chunk % 64));
    let mut payload_total = 0;
    for (i, e) in events.iter().enumerate() {
        if e.ends() {
            assert_eq!(i, events.len() - 1, "events after the session ended");
        }
        match e {
            WsEvent::Frame { payload, .. } => {
                payload_total += payload.len() + 9;
                assert!(payload.len() + 9 <= max as usize + 4);
            }
            WsEvent::Reply(reply) => check_reply(reply),
            WsEvent::Refused { code, ws_code } => {
                assert!(matches!(
                    (*code, *ws_code),
                    (MALFORMED_FRAME, 1002) | (MALFORMED_FRAME, 1003) | (FRAME_TOO_LARGE, 1009)
                ));
            }
            WsEvent::NotOneFrame { size } => assert!(*size <= bytes.len()),
            WsEvent::End | WsEvent::FrameLength { .. } => {}
        }
    }
    assert!(
        payload_total <= bytes.len(),
        "frames hold more than the input"
    );
}

/// A control frame the server sends: unmasked, FIN, pong or close, at
/// most 125 bytes of payload, the length exact.
fn check_reply(reply: &[u8]) {
    assert!(reply.len() >= 2);
    assert!(
        reply[0] == 0x8A || reply[0] == 0x88,
        "reply opcode {:#x}",
        reply[0]
    );
    assert_eq!(reply[1] & 0x80, 0, "server frames are unmasked");
    let len = usize::from(reply[1]);
    assert!(len <= 125);
    assert_eq!(reply.len(), 2 + len);
    if reply[0] == 0x88 {
        assert!(len == 0 || len == 2, "the close echo is the code alone");
    }
}

#[derive(Arbitrary, Debug)]
struct Message {
    /// The message's payload: a protocol frame (kind, request id,
    /// payload) when `raw` is absent.
    kind: u8,
    req_id: u32,
    payload: Vec<u8>,
    raw: Option<Vec<u8>>,
    /// Where the payload is cut into fragments.
    cuts: Vec<u16>,
    /// Pings sent after the first fragment.
    pings: Vec<Vec<u8>>,
    mask: [u8; 4],
    /// Use the 16-bit (or 64-bit) length form even when shorter would do.
    wide: u8,
}

#[derive(Arbitrary, Debug)]
struct Model {
    pick: u8,
    chunk: u8,
    messages: Vec<Message>,
    close: Option<Option<u16>>,
}

/// A masked client frame, encoded per RFC 6455 §5.2.
fn client_frame(out: &mut Vec<u8>, fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4], wide: u8) {
    out.push(if fin { 0x80 } else { 0 } | opcode);
    let n = payload.len();
    match (n, wide % 3) {
        (0..=125, 0) => out.push(0x80 | n as u8),
        (0..=0xffff, 0 | 1) => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
}

/// What the server must make of one whole message (SPEC.md §1.4.2:
/// exactly one protocol frame per binary message).
fn expected_message(m: &[u8], max: u32) -> WsEvent {
    let mut buf = BytesMut::from(m);
    match split_frame(&mut buf, max) {
        Ok(Some(f)) if buf.is_empty() => WsEvent::Frame {
            kind: f.kind,
            req_id: f.req_id,
            payload: f.payload.to_vec(),
        },
        Err(FrameError::TooLarge { .. }) => WsEvent::FrameLength { too_large: true },
        Err(FrameError::TooShort(_)) => WsEvent::FrameLength { too_large: false },
        _ => WsEvent::NotOneFrame { size: m.len() },
    }
}

fn check_model(model: Model) {
    let max = max_frame_len(model.pick);
    let limit = max as usize + 4;
    let mut bytes = Vec::new();
    let mut expected = Vec::new();
    'messages: for msg in model.messages.into_iter().take(8) {
        let m = match msg.raw {
            Some(raw) => raw,
            None => {
                let mut m = Vec::new();
                m.extend_from_slice(&(5 + msg.payload.len() as u32).to_be_bytes());
                m.push(msg.kind);
                m.extend_from_slice(&msg.req_id.to_be_bytes());
                m.extend_from_slice(&msg.payload);
                m
            }
        };
        let mut cuts: Vec<usize> = msg
            .cuts
            .iter()
            .take(4)
            .map(|&c| usize::from(c) % (m.len() + 1))
            .collect();
        cuts.push(m.len());
        cuts.sort_unstable();
        cuts.dedup();
        let mut from = 0;
        for (i, &to) in cuts.iter().enumerate() {
            let fin = i == cuts.len() - 1;
            let opcode = if i == 0 { 0x2 } else { 0x0 };
            client_frame(&mut bytes, fin, opcode, &m[from..to], msg.mask, msg.wide);
            if to > limit {
                // Refused from the header of the fragment that passes the
                // limit, before its payload.
                expected.push(WsEvent::Refused {
                    code: FRAME_TOO_LARGE,
                    ws_code: 1009,
                });
                break 'messages;
            }
            if i == 0 && !fin {
                for ping in msg.pings.iter().take(3) {
                    let ping = &ping[..ping.len().min(125)];
                    client_frame(&mut bytes, true, 0x9, ping, msg.mask, 0);
                    let mut pong = vec![0x8A, ping.len() as u8];
                    pong.extend_from_slice(ping);
                    expected.push(WsEvent::Reply(pong));
                }
            }
            from = to;
        }
        let event = expected_message(&m, max);
        let ends = event.ends();
        expected.push(event);
        if ends {
            break;
        }
    }
    let ended = expected.last().is_some_and(WsEvent::ends);
    if let (Some(code), false) = (model.close, ended) {
        let payload = code.map(u16::to_be_bytes);
        let payload = payload.as_ref().map_or(&[][..], |c| &c[..]);
        client_frame(&mut bytes, true, 0x8, payload, [7, 7, 7, 7], 0);
        let mut echo = vec![0x88, payload.len() as u8];
        echo.extend_from_slice(payload);
        expected.push(WsEvent::Reply(echo));
        expected.push(WsEvent::End);
    }
    let events = run(&bytes, max, 1 + usize::from(model.chunk));
    assert_eq!(events, expected);
}

const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const ALLOWED: &str = "https://chat.example";

/// Whether a header (any of its lines) lists `token`, comma-separated,
/// case-insensitively (RFC 6455 §4.2.1).
fn lists(headers: &[(&[u8], &[u8])], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .any(|(_, v)| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
}

fn first<'a>(headers: &[(&'a [u8], &'a [u8])], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| *v)
}

fn check_handshake(pick: u8, bytes: &[u8]) {
    let mut parsed = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut parsed);
    let Ok(httparse::Status::Complete(_)) = req.parse(bytes) else {
        return;
    };
    let Some(method) = req.method else { return };
    let headers: Vec<(&[u8], &[u8])> = req
        .headers
        .iter()
        .map(|h| (h.name.as_bytes(), h.value))
        .collect();
    let origins = if pick & 0x10 != 0 {
        vec![ALLOWED.to_owned()]
    } else {
        Vec::new()
    };
    let Some(answer) = ws_upgrade(method, &headers, &origins) else {
        return;
    };

    let upgrade =
        lists(&headers, "connection", "upgrade") && lists(&headers, "upgrade", "websocket");
    let origin_ok =
        origins.is_empty() || first(&headers, "origin").is_none_or(|o| o == ALLOWED.as_bytes());
    let key = first(&headers, "sec-websocket-key");
    // RFC 6455 §4.1: the key is 16 bytes in base64 (a non-zero remainder in
    // the last character's unused bits is still base64 of 16 bytes).
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    let key_ok = key.is_some_and(|k| lenient.decode(k).is_ok_and(|b| b.len() == 16));
    let version_ok = first(&headers, "sec-websocket-version") == Some(&b"13"[..]);
    let want = match (upgrade, origin_ok, key_ok && version_ok) {
        (false, _, _) => 426,
        (true, false, _) => 403,
        (true, true, false) => 400,
        (true, true, true) => 101,
    };
    assert_eq!(answer.status, want, "{answer:?}");
    let header = |name: &str| {
        answer
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    };
    if answer.status == 101 {
        let key = key.expect("a key");
        let accept = base64::engine::general_purpose::STANDARD
            .encode(Sha1::new().chain_update(key).chain_update(GUID).finalize());
        assert_eq!(header("sec-websocket-accept"), Some(accept.as_bytes()));
        assert!(header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case(b"websocket")));
        assert!(header("connection").is_some_and(|v| v.eq_ignore_ascii_case(b"upgrade")));
        assert!(answer.body.is_empty());
    } else {
        // The API's error shape, with MALFORMED_FRAME.
        let body: serde_json::Value =
            serde_json::from_slice(&answer.body).expect("a JSON error body");
        assert_eq!(body["error"]["code"], MALFORMED_FRAME, "{body}");
        assert_eq!(body["error"]["name"], "MALFORMED_FRAME", "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else {
        return;
    };
    match mode % 3 {
        0 => check_stream(rest),
        1 => {
            if let Ok(model) = Model::arbitrary_take_rest(Unstructured::new(rest)) {
                check_model(model);
            }
        }
        _ => check_handshake(*mode, rest),
    }
});
