//! The seam between byte transports and sessions.
//!
//! A session reads a stream of [`RawFrame`]s and writes through a
//! [`FrameSink`]; it never knows whether the bytes travel over TCP, TLS or
//! WebSocket. Stream transports use [`StreamSink`] and `FramedRead` with the
//! protocol's `FrameCodec`; message transports (WebSocket) provide their own.

use std::future::Future;
use std::io;

use confab_protocol::FrameCodec;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::FramedRead;

use crate::outbound::Outbound;

/// Writes batches of already-encoded frames.
pub trait FrameSink: Send + 'static {
    /// Writes all `frames`, in order, as few writes as the transport allows,
    /// and flushes.
    fn write_frames(&mut self, frames: &[Outbound]) -> impl Future<Output = io::Result<()>> + Send;
    /// Closes the transport's write side.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

/// A [`FrameSink`] over any byte stream: coalesces a batch of frames into
/// one buffer and one write (a single frame is written without copying).
pub struct StreamSink<W> {
    writer: W,
    /// Reused across batches; released when it grew large, so idle
    /// connections hold no big buffers.
    buf: Vec<u8>,
}

/// Largest coalescing buffer kept between batches.
const KEEP_BUF: usize = 16 * 1024;

impl<W> StreamSink<W> {
    pub fn new(writer: W) -> Self {
        StreamSink {
            writer,
            buf: Vec::new(),
        }
    }
}

impl<W: AsyncWrite + Unpin + Send + 'static> FrameSink for StreamSink<W> {
    async fn write_frames(&mut self, frames: &[Outbound]) -> io::Result<()> {
        if let [one] = frames {
            self.writer.write_all(one.frame()).await?;
        } else {
            self.buf.clear();
            for f in frames {
                self.buf.extend_from_slice(f.frame());
            }
            self.writer.write_all(&self.buf).await?;
            if self.buf.capacity() > KEEP_BUF {
                self.buf = Vec::new();
            }
        }
        self.writer.flush().await
    }

    async fn close(&mut self) {
        let _ = self.writer.shutdown().await;
    }
}

/// Initial read buffer per connection: small, grown only when a large frame
/// arrives (idle connections should cost little memory).
pub const READ_BUF: usize = 256;

/// Frames read from a byte stream with the protocol codec.
pub fn frame_reader<R: AsyncRead>(reader: R, max_frame_len: u32) -> FramedRead<R, FrameCodec> {
    FramedRead::with_capacity(reader, FrameCodec::new(max_frame_len), READ_BUF)
}
