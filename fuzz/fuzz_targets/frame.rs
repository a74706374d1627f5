//! The binary frame decoder (SPEC.md §2): `split_frame` and the tokio
//! codec built on it, over any byte stream.
//!
//! Input: byte 0 picks the maximum frame length, byte 1 the chunk size the
//! stream arrives in; the rest is the stream. Checked:
//! - the codec fed in chunks finds exactly the frames (and the same error)
//!   that `split_frame` finds in the whole stream;
//! - each frame re-encodes to exactly the bytes it was split from, so no
//!   frame's length exceeds the input and the frames tile its front;
//! - each frame's length field lies in `5..=max`, and an error names a
//!   length outside it that is really there in the input.

#![no_main]

use bytes::BytesMut;
use confab_protocol::frame::{split_frame, Header, DEFAULT_MAX_FRAME_LEN, MIN_LENGTH};
use confab_protocol::{FrameCodec, FrameError, RawFrame};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

/// How a stream of frames ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// More bytes were needed.
    Incomplete,
    TooShort(u32),
    TooLarge(u32),
}

fn end_of(e: FrameError) -> End {
    match e {
        FrameError::TooShort(len) => End::TooShort(len),
        FrameError::TooLarge { len, .. } => End::TooLarge(len),
        FrameError::Io(e) => panic!("no I/O here, yet {e}"),
    }
}

fn whole(input: &[u8], max: u32) -> (Vec<RawFrame>, End) {
    let mut buf = BytesMut::from(input);
    let mut frames = Vec::new();
    loop {
        match split_frame(&mut buf, max) {
            Ok(Some(f)) => frames.push(f),
            Ok(None) => return (frames, End::Incomplete),
            Err(e) => return (frames, end_of(e)),
        }
    }
}

fn chunked(input: &[u8], max: u32, chunk: usize) -> (Vec<RawFrame>, End) {
    let mut codec = FrameCodec::new(max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => return (frames, end_of(e)),
            }
        }
    }
    (frames, End::Incomplete)
}

fuzz_target!(|data: &[u8]| {
    let [pick, chunk, input @ ..] = data else {
        return;
    };
    let max = match pick % 4 {
        0 => DEFAULT_MAX_FRAME_LEN,
        1 => MIN_LENGTH,
        2 => 64,
        _ => MIN_LENGTH + u32::from(*pick),
    };
    let chunk = 1 + usize::from(*chunk % 32);

    let (frames, end) = whole(input, max);
    let (frames_chunked, end_chunked) = chunked(input, max, chunk);
    assert_eq!(frames, frames_chunked, "chunking changed the frames");
    assert_eq!(end, end_chunked, "chunking changed how the stream ended");

    let mut at = 0;
    let mut codec = FrameCodec::new(max);
    for f in &frames {
        let mut out = BytesMut::new();
        codec
            .encode(f.clone(), &mut out)
            .expect("a decoded frame fits its own maximum");
        assert!(at + out.len() <= input.len(), "frame longer than the input");
        assert_eq!(&out[..], &input[at..at + out.len()], "re-encoding differs");
        let h = Header::peek(&out).expect("a whole header");
        assert_eq!((h.kind, h.req_id), (f.kind, f.req_id));
        assert_eq!(h.frame_len(), out.len());
        assert!((MIN_LENGTH..=max).contains(&h.len));
        at += out.len();
    }
    let rest = &input[at..];
    let len_field = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    match end {
        End::Incomplete => {
            if rest.len() >= 4 {
                let len = len_field(rest);
                assert!((MIN_LENGTH..=max).contains(&len));
                assert!(rest.len() < 4 + len as usize, "a whole frame was left");
            }
        }
        End::TooShort(len) => {
            assert!(len < MIN_LENGTH);
            assert_eq!(len, len_field(rest));
        }
        End::TooLarge(len) => {
            assert!(len > max && len >= MIN_LENGTH);
            assert_eq!(len, len_field(rest));
        }
    }
});
