//! The server-message decoder (server → client) as the SDK uses it: the
//! frames of a stream split by the codec with the largest server frame
//! (SPEC.md §10.1), each through `ServerMsg::decode`.
//!
//! Checked for each frame:
//! - a decoded message has the frame's type (events carry request id 0
//!   only if sent so: the decoder does not care), re-encodes to a frame of
//!   the same type that decodes to the same message, canonically;
//! - a refusal is `UNKNOWN_FRAME_TYPE` exactly for types this version does
//!   not know, with the frame's type.

#![no_main]

use bytes::BytesMut;
use confab_protocol::frame::{kind, Header, MAX_SERVER_FRAME_LEN};
use confab_protocol::{DecodeError, FrameCodec, RawFrame, ServerMsg};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

/// Every server type (SPEC.md §4): the protocol crate's table.
const KNOWN: &[u8] = kind::SERVER_FRAMES;

fn encode(msg: &ServerMsg, req_id: u32) -> BytesMut {
    let mut out = BytesMut::new();
    msg.encode(req_id, &mut out);
    out
}

fn check(frame: &RawFrame) {
    match ServerMsg::decode(frame) {
        Ok(msg) => {
            assert!(KNOWN.contains(&frame.kind));
            assert_eq!(msg.kind(), frame.kind);
            // Events are encoded with request id 0 whatever they arrived with.
            let req_id = if frame.kind == kind::EVENT {
                0
            } else {
                frame.req_id
            };
            let out = encode(&msg, req_id);
            let h = Header::peek(&out).expect("a whole header");
            assert_eq!(
                (h.kind, h.req_id, h.frame_len()),
                (frame.kind, req_id, out.len())
            );
            let again = FrameCodec::new(u32::MAX)
                .decode(&mut out.clone())
                .expect("a re-encoded frame splits")
                .expect("a re-encoded frame is whole");
            let redecoded = ServerMsg::decode(&again).expect("a re-encoded message decodes");
            assert_eq!(
                redecoded, msg,
                "decode → encode → decode changed the message"
            );
            assert_eq!(encode(&redecoded, req_id), out, "encoding is not canonical");
        }
        Err(DecodeError::UnknownFrameType(t)) => {
            assert_eq!(t, frame.kind);
            assert!(!KNOWN.contains(&t));
        }
        Err(e) => {
            assert!(KNOWN.contains(&frame.kind), "{e} for type {}", frame.kind);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut codec = FrameCodec::new(MAX_SERVER_FRAME_LEN);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        check(&frame);
    }
});
