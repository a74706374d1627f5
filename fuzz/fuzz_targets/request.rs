//! Every request decoder (client → server, SPEC.md §5): the frames of a
//! stream, as the server splits them, each through `Request::decode`.
//!
//! Checked for each frame:
//! - a decoded request has the frame's type, re-encodes to a frame of the
//!   same type and request id that decodes to the same request, and that
//!   encoding is canonical (encoding the re-decoded request gives the same
//!   bytes);
//! - a refusal is `UNKNOWN_FRAME_TYPE` exactly for types outside the
//!   request set, with the frame's type, and the error code the server
//!   answers is the one SPEC.md §4 gives for it.

#![no_main]

use bytes::BytesMut;
use confab_protocol::frame::{kind, split_frame, Header, MAX_SERVER_FRAME_LEN};
use confab_protocol::{DecodeError, ErrorCode, RawFrame, Request};
use libfuzzer_sys::fuzz_target;

/// Every request type (SPEC.md §4): the protocol crate's table.
const REQUESTS: &[u8] = kind::REQUESTS;

fn encode(req: &Request, req_id: u32) -> BytesMut {
    let mut out = BytesMut::new();
    req.encode(req_id, &mut out);
    out
}

fn check(frame: &RawFrame) {
    match Request::decode(frame) {
        Ok(req) => {
            assert!(REQUESTS.contains(&frame.kind));
            assert_eq!(req.kind(), frame.kind);
            assert!(!req.name().is_empty());
            let out = encode(&req, frame.req_id);
            let h = Header::peek(&out).expect("a whole header");
            assert_eq!(
                (h.kind, h.req_id, h.frame_len()),
                (frame.kind, frame.req_id, out.len())
            );
            let again = split_frame(&mut out.clone(), u32::MAX)
                .expect("a re-encoded frame splits")
                .expect("a re-encoded frame is whole");
            let redecoded = Request::decode(&again).expect("a re-encoded request decodes");
            assert_eq!(
                redecoded, req,
                "decode → encode → decode changed the request"
            );
            assert_eq!(
                encode(&redecoded, frame.req_id),
                out,
                "encoding is not canonical"
            );
        }
        Err(e) => {
            match e {
                DecodeError::UnknownFrameType(t) => {
                    assert_eq!(t, frame.kind);
                    assert!(!REQUESTS.contains(&t));
                    let want = if kind::is_server_frame(t) {
                        ErrorCode::UnexpectedFrame
                    } else {
                        ErrorCode::UnknownFrameType
                    };
                    assert_eq!(e.code(), want);
                }
                _ => {
                    assert!(
                        REQUESTS.contains(&frame.kind),
                        "{e} for type {}",
                        frame.kind
                    );
                    assert_eq!(e.code(), ErrorCode::MalformedFrame);
                }
            }
            assert!(!e.to_string().is_empty());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // Frames back to back, as on a TCP connection.
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = split_frame(&mut buf, MAX_SERVER_FRAME_LEN) {
        check(&frame);
    }
});
