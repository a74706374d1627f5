//! Connections: dialling a server URL and moving frames cheaply.
//!
//! **Invariant:** only this module knows how bytes travel. Everything above
//! sees a [`FrameReader`] that hands out whole frames parsed in place from a
//! large read buffer (no allocation per frame) and a [`FrameWriter`] that
//! writes already-encoded frames. Plain TCP (`confab://`) is implemented;
//! TLS and WebSocket are one more variant of [`ReadHalf`]/[`WriteHalf`] each
//! and one more arm in [`Connector::connect`]: a WebSocket read copies each
//! binary message (exactly one frame, length prefix included) into the same
//! buffer, so the frame parsing below serves every transport.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{bail, Context};
use bytes::BytesMut;
use confab_protocol::frame::{kind, HEADER_LEN};
use confab_protocol::{Hello, RawFrame, Request, ServerMsg, PROTOCOL_VERSION};
use confab_sdk::endpoint::{Endpoint, Scheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{tcp, TcpSocket};

use crate::stats::now_ns;

/// Largest server frame accepted (SPEC.md §2.2 recommends 16 MiB).
const MAX_SERVER_FRAME: usize = 16 * 1024 * 1024;

/// Dials one server address, optionally from several local source
/// addresses (so that tens of thousands of connections do not exhaust one
/// source address's ephemeral ports).
#[derive(Clone)]
pub struct Connector {
    scheme: Scheme,
    addr: SocketAddr,
    /// Local addresses to bind before connecting, used round-robin; empty
    /// lets the kernel choose.
    sources: Vec<IpAddr>,
}

impl Connector {
    /// Parses `url` and resolves it. Refuses anything but a loopback
    /// address: the load generator never targets another machine.
    pub fn new(url: &str, source_ips: usize) -> anyhow::Result<Connector> {
        let ep = Endpoint::parse(url).map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
        let addr = resolve_loopback(&ep)?;
        if !matches!(ep.scheme, Scheme::Tcp) {
            bail!(
                "{}:// is not supported by the load generator yet (plain TCP only: confab://)",
                ep.scheme.as_str()
            );
        }
        let sources = match (addr.ip(), source_ips) {
            (IpAddr::V4(_), n) if n > 1 => (0..n)
                .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % 250) as u8)))
                .collect(),
            _ => Vec::new(),
        };
        Ok(Connector {
            scheme: ep.scheme,
            addr,
            sources,
        })
    }

    /// Opens connection number `n` (which picks its source address) with a
    /// read buffer of `buf` bytes.
    pub async fn connect(&self, n: usize, buf: usize) -> io::Result<(FrameReader, FrameWriter)> {
        match self.scheme {
            Scheme::Tcp => {
                let socket = match self.addr {
                    SocketAddr::V4(_) => TcpSocket::new_v4()?,
                    SocketAddr::V6(_) => TcpSocket::new_v6()?,
                };
                if !self.sources.is_empty() {
                    let ip = self.sources[n % self.sources.len()];
                    socket.bind(SocketAddr::new(ip, 0))?;
                }
                let stream = socket.connect(self.addr).await?;
                stream.set_nodelay(true)?;
                let (rd, wr) = stream.into_split();
                Ok((
                    FrameReader::new(ReadHalf::Tcp(rd), buf),
                    FrameWriter {
                        wr: WriteHalf::Tcp(wr),
                    },
                ))
            }
            other => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{}:// not supported yet", other.as_str()),
            )),
        }
    }
}

fn resolve_loopback(ep: &Endpoint) -> anyhow::Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = (ep.host.as_str(), ep.port)
        .to_socket_addrs()
        .with_context(|| format!("resolving {}", ep.host))?
        .collect();
    match addrs.into_iter().find(|a| a.ip().is_loopback()) {
        Some(a) => Ok(a),
        None => bail!(
            "{} is not a loopback address: the load generator only targets this machine",
            ep.host
        ),
    }
}

/// The receiving half of a transport.
pub enum ReadHalf {
    Tcp(tcp::OwnedReadHalf),
}

/// The sending half of a transport.
pub enum WriteHalf {
    Tcp(tcp::OwnedWriteHalf),
}

/// Reads frames into one large buffer and parses them where they lie.
pub struct FrameReader {
    rd: ReadHalf,
    buf: Vec<u8>,
    /// Unparsed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Bytes read so far.
    pub bytes: u64,
}

/// One frame borrowed from the read buffer.
pub struct Frame<'a> {
    pub kind: u8,
    pub req_id: u32,
    pub payload: &'a [u8],
}

impl FrameReader {
    fn new(rd: ReadHalf, capacity: usize) -> FrameReader {
        FrameReader {
            rd,
            buf: vec![0; capacity.max(64)],
            start: 0,
            end: 0,
            bytes: 0,
        }
    }

    /// Reads once (waiting for data) and calls `f` for every whole frame
    /// now buffered, with the time the read returned ([`now_ns`]).
    /// `Ok(false)` at end of stream.
    pub async fn read_frames(&mut self, mut f: impl FnMut(Frame<'_>, u64)) -> io::Result<bool> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.make_room()?;
        }
        let n = match &mut self.rd {
            ReadHalf::Tcp(rd) => rd.read(&mut self.buf[self.end..]).await?,
        };
        if n == 0 {
            return Ok(false);
        }
        self.end += n;
        self.bytes += n as u64;
        let now = now_ns();
        while let Some(total) = self.whole_frame()? {
            let b = &self.buf[self.start..self.start + total];
            f(
                Frame {
                    kind: b[4],
                    req_id: u32::from_be_bytes([b[5], b[6], b[7], b[8]]),
                    payload: &b[HEADER_LEN..],
                },
                now,
            );
            self.start += total;
        }
        Ok(true)
    }

    /// The length of the whole frame at `start`, if it is all buffered.
    fn whole_frame(&self) -> io::Result<Option<usize>> {
        let avail = self.end - self.start;
        if avail < 4 {
            return Ok(None);
        }
        let b = &self.buf[self.start..];
        let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if !(5..=MAX_SERVER_FRAME).contains(&len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("server frame length {len} out of bounds"),
            ));
        }
        Ok((avail >= 4 + len).then_some(4 + len))
    }

    /// Moves the partial frame to the front, growing the buffer if one
    /// frame is larger than it.
    fn make_room(&mut self) -> io::Result<()> {
        let need = match self.whole_frame()? {
            Some(_) => 0,
            None if self.end - self.start >= 4 => {
                let b = &self.buf[self.start..];
                4 + u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
            }
            None => 0,
        };
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if need > self.buf.len() {
            self.buf.resize(need, 0);
        }
        Ok(())
    }

    /// The next frame as an owned [`RawFrame`] (for set-up, not hot paths).
    pub async fn next_frame(&mut self) -> io::Result<RawFrame> {
        loop {
            if let Some(total) = self.whole_frame()? {
                let b = &self.buf[self.start..self.start + total];
                let frame = RawFrame {
                    kind: b[4],
                    req_id: u32::from_be_bytes([b[5], b[6], b[7], b[8]]),
                    payload: bytes::Bytes::copy_from_slice(&b[HEADER_LEN..]),
                };
                self.start += total;
                return Ok(frame);
            }
            if self.end == self.buf.len() {
                self.make_room()?;
            }
            let n = match &mut self.rd {
                ReadHalf::Tcp(rd) => rd.read(&mut self.buf[self.end..]).await?,
            };
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.end += n;
            self.bytes += n as u64;
        }
    }

    /// The response to `req_id`, skipping events; an ERROR or CLOSE becomes
    /// an error.
    pub async fn reply(&mut self, req_id: u32) -> anyhow::Result<ServerMsg> {
        loop {
            let frame = self.next_frame().await?;
            if frame.kind == kind::CLOSE {
                bail!(
                    "server closed the connection: {:?}",
                    ServerMsg::decode(&frame)
                );
            }
            if frame.req_id != req_id || frame.kind >= 0x80 {
                continue;
            }
            let msg = ServerMsg::decode(&frame)?;
            if let ServerMsg::Error { code, message } = &msg {
                return Err(ServerError {
                    code: *code,
                    message: message.clone(),
                }
                .into());
            }
            return Ok(msg);
        }
    }
}

/// An ERROR reply.
#[derive(Debug)]
pub struct ServerError {
    pub code: u16,
    pub message: String,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "server error {}: {}", self.code, self.message)
    }
}

impl std::error::Error for ServerError {}

/// Writes encoded frames.
pub struct FrameWriter {
    wr: WriteHalf,
}

impl FrameWriter {
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.wr {
            WriteHalf::Tcp(wr) => wr.write_all(bytes).await,
        }
    }

    /// Encodes and sends one request.
    pub async fn send(&mut self, req_id: u32, req: &Request) -> io::Result<()> {
        let mut buf = BytesMut::with_capacity(64);
        req.encode(req_id, &mut buf);
        self.write_all(&buf).await
    }
}

/// Opens a connection and completes HELLO (with `token` if given).
pub async fn open(
    connector: &Connector,
    n: usize,
    buf: usize,
    token: Option<String>,
) -> anyhow::Result<(FrameReader, FrameWriter)> {
    let (mut rd, mut wr) = connector.connect(n, buf).await?;
    let hello = Request::Hello(Hello {
        version: PROTOCOL_VERSION,
        client: concat!("confab-loadgen/", env!("CARGO_PKG_VERSION")).into(),
        token,
        resume: Vec::new(),
    });
    wr.send(1, &hello).await?;
    match rd.reply(1).await? {
        ServerMsg::Welcome(_) => Ok((rd, wr)),
        other => bail!("expected WELCOME, got {other:?}"),
    }
}
