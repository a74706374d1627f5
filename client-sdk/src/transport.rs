//! Byte transports that carry frames.
//!
//! **Invariant:** only this module (and its `tls` and `ws` children) knows
//! how frames travel. The rest of the SDK sees a [`FrameSource`] that yields
//! [`RawFrame`]s and a [`FrameSink`] that takes batches of whole encoded
//! frames.
//!
//! | URL | transport |
//! |---|---|
//! | `confab://host:7400` | TCP, frames back to back |
//! | `confabs://host:7443` | TLS with ALPN `confab/1`, frames back to back |
//! | `ws://host:port/ws` | WebSocket, one frame per binary message |
//! | `wss://host:port/ws` | WebSocket over TLS (ALPN `http/1.1`) |
//!
//! It also opens the byte streams the HTTP API's requests travel on
//! ([`open_http`], for `crate::http`): TCP, or TLS with ALPN `http/1.1`.
//!
//! WebSocket reads are not cancel-safe; the connection's reader task is the
//! only caller of [`FrameSource::next_frame`], so they never sit in a
//! `select!`.

mod tls;
mod ws;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use confab_protocol::{FrameCodec, FrameError, RawFrame};

use crate::endpoint::{Endpoint, Scheme};
use crate::tls::{TlsTrust, ALPN_CONFAB, ALPN_HTTP1};
use crate::Error;

type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// What dialling needs from [`crate::ConnectOptions`].
#[derive(Debug, Clone)]
pub(crate) struct Dial {
    /// Bound on frames accepted from the server.
    pub(crate) max_inbound_frame_len: u32,
    /// Which certificates TLS accepts.
    pub(crate) tls_trust: TlsTrust,
}

/// The receiving half of a connection.
pub(crate) enum FrameSource {
    /// Any byte stream (TCP, TLS), split by the frame codec.
    Stream(FramedRead<BoxRead, FrameCodec>),
    /// WebSocket: one frame per binary message.
    Ws(ws::WsSource),
}

impl FrameSource {
    /// The next frame; `None` at a clean end of stream.
    pub(crate) async fn next_frame(&mut self) -> Option<Result<RawFrame, FrameError>> {
        match self {
            FrameSource::Stream(framed) => framed.next().await,
            FrameSource::Ws(ws) => ws.next_frame().await,
        }
    }
}

/// The sending half of a connection.
pub(crate) enum FrameSink {
    /// Any byte stream; a batch of frames is written as one buffer.
    Stream { io: BoxWrite, buf: BytesMut },
    /// WebSocket: a batch becomes masked binary messages in one buffer.
    Ws(ws::WsSink),
}

impl FrameSink {
    /// Writes whole encoded frames (length prefix included) and flushes
    /// (TLS holds records back until flushed).
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
            FrameSink::Ws(ws) => ws.send_batch(frames).await,
        }
    }

    /// Half-closes the connection after everything queued was written.
    pub(crate) async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            FrameSink::Stream { io, .. } => io.shutdown().await,
            FrameSink::Ws(ws) => ws.shutdown().await,
        }
    }
}

/// Dials `endpoint`.
pub(crate) async fn open(
    endpoint: &Endpoint,
    dial: &Dial,
) -> Result<(FrameSource, FrameSink), Error> {
    let stream = TcpStream::connect((endpoint.host.as_str(), endpoint.port)).await?;
    // Requests are small and latency matters more than packet count; the
    // writer task already coalesces what is queued.
    stream.set_nodelay(true)?;
    let max_len = dial.max_inbound_frame_len;
    match endpoint.scheme {
        Scheme::Tcp => {
            let (read, write) = stream.into_split();
            Ok(stream_halves(Box::new(read), Box::new(write), max_len))
        }
        Scheme::Tls => {
            let tls = tls::connect(stream, &endpoint.host, ALPN_CONFAB, &dial.tls_trust).await?;
            let (read, write) = tokio::io::split(tls);
            Ok(stream_halves(Box::new(read), Box::new(write), max_len))
        }
        Scheme::Ws => ws::open(stream, endpoint, max_len).await,
        Scheme::Wss => {
            let tls = tls::connect(stream, &endpoint.host, ALPN_HTTP1, &dial.tls_trust).await?;
            ws::open(tls, endpoint, max_len).await
        }
    }
}

/// A byte stream an HTTP request can travel on.
pub(crate) trait HttpIo: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> HttpIo for T {}

/// Dials `host:port` for one HTTP request: plain TCP, or with `tls` TLS
/// offering ALPN `http/1.1` and trusting what `trust` says.
pub(crate) async fn open_http(
    host: &str,
    port: u16,
    tls: bool,
    trust: &TlsTrust,
) -> Result<Box<dyn HttpIo>, Error> {
    let stream = TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    if tls {
        Ok(Box::new(
            tls::connect(stream, host, ALPN_HTTP1, trust).await?,
        ))
    } else {
        Ok(Box::new(stream))
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
