//! Byte transports that carry frames.
//!
//! **Invariant:** only this module knows how frames travel. The rest of the
//! SDK sees a [`FrameSource`] that yields [`RawFrame`]s and a [`FrameSink`]
//! that takes batches of whole encoded frames. Adding TLS (`confabs://`) is
//! one more arm in [`open`] producing the `Stream` variants; adding
//! WebSocket is a new variant of each enum (one frame per binary message,
//! with reads in their own task, which the reader task already provides).

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use confab_protocol::{FrameCodec, FrameError, RawFrame};

use crate::endpoint::{Endpoint, Scheme};
use crate::Error;

type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// The receiving half of a connection.
pub(crate) enum FrameSource {
    /// Any byte stream (TCP now, TLS later), split by the frame codec.
    Stream(FramedRead<BoxRead, FrameCodec>),
}

impl FrameSource {
    /// The next frame; `None` at a clean end of stream. Cancel-safe for the
    /// `Stream` variant, but the SDK reads only from a dedicated task anyway.
    pub(crate) async fn next_frame(&mut self) -> Option<Result<RawFrame, FrameError>> {
        match self {
            FrameSource::Stream(framed) => framed.next().await,
        }
    }
}

/// The sending half of a connection.
pub(crate) enum FrameSink {
    /// Any byte stream; a batch of frames is written as one buffer.
    Stream { io: BoxWrite, buf: BytesMut },
}

impl FrameSink {
    /// Writes whole encoded frames (length prefix included) and flushes.
    pub(crate) async fn send_batch(&mut self, frames: &[Bytes]) -> std::io::Result<()> {
        match self {
            FrameSink::Stream { io, buf } => {
                if let [one] = frames {
                    io.write_all(one).await?;
                } else {
                    buf.clear();
                    for f in frames {
                        buf.extend_from_slice(f);
                    }
                    io.write_all(buf).await?;
                }
                io.flush().await
            }
        }
    }

    /// Half-closes the connection after everything queued was written.
    pub(crate) async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            FrameSink::Stream { io, .. } => io.shutdown().await,
        }
    }
}

/// Dials `endpoint`. `max_inbound_frame_len` bounds the frames accepted from
/// the server.
pub(crate) async fn open(
    endpoint: &Endpoint,
    max_inbound_frame_len: u32,
) -> Result<(FrameSource, FrameSink), Error> {
    match endpoint.scheme {
        Scheme::Tcp => {
            let stream = TcpStream::connect((endpoint.host.as_str(), endpoint.port)).await?;
            // Requests are small and latency matters more than packet count;
            // the writer task already coalesces what is queued.
            stream.set_nodelay(true)?;
            let (read, write) = stream.into_split();
            Ok(stream_halves(
                Box::new(read),
                Box::new(write),
                max_inbound_frame_len,
            ))
        }
        Scheme::Tls | Scheme::Ws | Scheme::Wss => Err(Error::UnsupportedScheme(
            endpoint.scheme.as_str().to_owned(),
        )),
    }
}

fn stream_halves(read: BoxRead, write: BoxWrite, max_len: u32) -> (FrameSource, FrameSink) {
    // Start small: idle connections should not pin big buffers.
    let source = FrameSource::Stream(FramedRead::with_capacity(
        read,
        FrameCodec::new(max_len),
        4096,
    ));
    let sink = FrameSink::Stream {
        io: write,
        buf: BytesMut::new(),
    };
    (source, sink)
}
