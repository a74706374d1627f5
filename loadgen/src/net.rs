//! Connections: dialling a server URL and moving frames cheaply.
//!
//! **Invariant:** only this module knows how bytes travel. Everything above
//! sees a [`FrameReader`] that hands out whole frames parsed in place from a
//! large read buffer (no allocation per frame) and a [`FrameWriter`] that
//! writes already-encoded frames. Transports:
//!
//! - `confab://`: plain TCP.
//! - `confabs://`: TLS with ALPN `confab/1` (rustls, ring provider only),
//!   trusting a PEM (`--ca-cert`) or one pinned certificate fingerprint
//!   (`--tls-fingerprint`): the SDK's own client configuration
//!   (`confab_sdk::tls`), so the load generator trusts servers exactly as
//!   clients do.
//! - `ws://…/ws`, `wss://…/ws`: WebSocket (fastwebsockets' client
//!   handshake; `wss` offers ALPN `http/1.1`), one protocol frame per binary
//!   message. Reads stay in place: the raw stream lands in the same large
//!   buffer and each message header is stepped over, so the payload (one
//!   whole frame, length prefix included) is handed out where it lies, with
//!   no copy and no allocation. Writes wrap every frame of an already
//!   coalesced batch as a masked binary message in one reused buffer: one
//!   write, one flush.
//! - `nats://`: plain TCP to a `nats-server`, the comparison target. Only
//!   the dialling and the write side live here; the NATS text protocol is
//!   [`crate::nats`]'s, reading through the same [`ReadBuf`].
//!
//! The server never pings, fragments or sends text on WebSocket; a
//! fragmented or text message is an error here, pings and pongs are skipped,
//! and a close frame ends the stream like EOF.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use confab_protocol::frame::{kind, HEADER_LEN, MAX_SERVER_FRAME_LEN};
use confab_protocol::{Hello, RawFrame, Request, ResumePoint, ServerMsg, PROTOCOL_VERSION};
use confab_sdk::endpoint::{Endpoint, Scheme};
use confab_sdk::tls::{self, TlsTrust, ALPN_CONFAB, ALPN_HTTP1};
use fastwebsockets::{OpCode, Payload};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{tcp, TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::clock::now_ns;

/// What the target server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Confab's binary protocol (any of its transports).
    Confab,
    /// The NATS client protocol (`nats://`): the comparison target.
    Nats,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Confab => "confab",
            Protocol::Nats => "nats",
        }
    }
}

/// Dials the nodes of one server (one address, or the comma-separated
/// nodes of a cluster, which clients are spread over round-robin),
/// optionally from several local source addresses (so that tens of
/// thousands of connections do not exhaust one source address's ephemeral
/// ports).
#[derive(Clone)]
pub struct Connector {
    protocol: Protocol,
    /// The target's nodes, in the order given: at least one.
    nodes: Vec<Node>,
    /// Local addresses to bind before connecting, used round-robin; empty
    /// lets the kernel choose.
    sources: Vec<IpAddr>,
}

/// One node's address, transport and TLS settings.
#[derive(Clone)]
struct Node {
    /// The URL as given (for reports).
    url: String,
    scheme: Scheme,
    addr: SocketAddr,
    /// The endpoint as parsed (WebSocket host header and path).
    ep: Endpoint,
    /// For `confabs://` and `wss://`: the client configuration (with the
    /// ALPN id the scheme needs) and the name the certificate must carry.
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

/// The comma-separated URLs of `urls`, trimmed, empty ones dropped.
pub fn split_urls(urls: &str) -> Vec<&str> {
    urls.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect()
}

impl Connector {
    /// Parses `urls` (one URL, or several separated by commas: the nodes
    /// of one cluster) and resolves them. Refuses anything but loopback
    /// addresses: the load generator never targets another machine.
    /// `trust` is required for `confabs://` and `wss://` (a PEM or a
    /// fingerprint: a loopback server has no publicly trusted certificate)
    /// and ignored otherwise.
    ///
    /// `nats://HOST:PORT` targets a `nats-server` instead (one URL only);
    /// it needs an explicit port, so that a run never lands on a shared
    /// server at NATS's default port by accident.
    pub fn new(
        urls: &str,
        source_ips: usize,
        trust: Option<TlsTrust>,
    ) -> anyhow::Result<Connector> {
        let list = split_urls(urls);
        anyhow::ensure!(!list.is_empty(), "no server URL given");
        let mut nodes = Vec::with_capacity(list.len());
        let mut protocol = None;
        for url in &list {
            let (p, node) = Node::new(url, trust.as_ref())?;
            anyhow::ensure!(
                protocol.is_none_or(|q| q == p),
                "{urls}: every URL must speak the same protocol"
            );
            protocol = Some(p);
            nodes.push(node);
        }
        let protocol = protocol.expect("at least one URL");
        anyhow::ensure!(
            protocol == Protocol::Confab || nodes.len() == 1,
            "{urls}: nats:// takes one URL (the comparison target is one nats-server)"
        );
        let sources = match (nodes[0].addr.ip(), source_ips) {
            (IpAddr::V4(_), n) if n > 1 => (0..n)
                .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % 250) as u8)))
                .collect(),
            _ => Vec::new(),
        };
        Ok(Connector {
            protocol,
            nodes,
            sources,
        })
    }

    /// What the target speaks.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// How many nodes the target has (1 for a single server).
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Node `i`'s URL as given.
    pub fn url_of(&self, node: usize) -> &str {
        &self.nodes[node % self.nodes.len()].url
    }

    /// The node connection number `n` goes to: round-robin.
    pub fn node_for(&self, n: usize) -> usize {
        n % self.nodes.len()
    }

    /// A plain TCP connection number `n` (which picks its source address
    /// and, round-robin, its node), `TCP_NODELAY` set.
    pub async fn tcp(&self, n: usize) -> io::Result<TcpStream> {
        self.tcp_on(self.node_for(n), n).await
    }

    /// [`Connector::tcp`] to node `node`.
    async fn tcp_on(&self, node: usize, n: usize) -> io::Result<TcpStream> {
        let addr = self.nodes[node % self.nodes.len()].addr;
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if !self.sources.is_empty() {
            let ip = self.sources[n % self.sources.len()];
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// Opens connection number `n` (which picks its source address and,
    /// round-robin, its node) with a read buffer of `buf` bytes, for
    /// Confab's frames.
    pub async fn connect(&self, n: usize, buf: usize) -> io::Result<(FrameReader, FrameWriter)> {
        self.connect_on(self.node_for(n), n, buf).await
    }

    /// [`Connector::connect`] to node `node` (modulo the node count).
    pub async fn connect_on(
        &self,
        node: usize,
        n: usize,
        buf: usize,
    ) -> io::Result<(FrameReader, FrameWriter)> {
        if self.protocol != Protocol::Confab {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this target speaks NATS, not Confab's protocol",
            ));
        }
        let stream = self.tcp_on(node, n).await?;
        let node = &self.nodes[node % self.nodes.len()];
        let (rd, wr, ws) = match node.scheme {
            Scheme::Tcp => {
                let (rd, wr) = stream.into_split();
                (ReadHalf::Tcp(rd), WriteHalf::Tcp(wr), false)
            }
            Scheme::Tls => {
                let (rd, wr) = tokio::io::split(node.tls(stream).await?);
                (ReadHalf::Tls(rd), WriteHalf::Tls(wr), false)
            }
            Scheme::Ws => {
                let (rd, wr) = tokio::io::split(node.upgrade(stream).await?);
                (ReadHalf::Ws(rd), WriteHalf::Ws(wr, Vec::new()), true)
            }
            Scheme::Wss => {
                let tls = node.tls(stream).await?;
                let (rd, wr) = tokio::io::split(node.upgrade(tls).await?);
                (ReadHalf::Ws(rd), WriteHalf::Ws(wr, Vec::new()), true)
            }
            // Connector::new refuses every other scheme.
            other => {
                return Err(io::Error::other(format!(
                    "{}:// is not supported here",
                    other.as_str()
                )))
            }
        };
        Ok((FrameReader::new(rd, buf, ws), FrameWriter { wr }))
    }
}

impl Node {
    /// One URL, parsed and resolved (see [`Connector::new`]).
    fn new(url: &str, trust: Option<&TlsTrust>) -> anyhow::Result<(Protocol, Node)> {
        let (protocol, ep) = parse_url(url)?;
        let addr = resolve_loopback(&ep)?;
        let tls = match ep.scheme {
            Scheme::Tcp | Scheme::Ws => None,
            Scheme::Tls | Scheme::Wss => {
                let alpn = if ep.scheme == Scheme::Tls {
                    ALPN_CONFAB
                } else {
                    ALPN_HTTP1
                };
                let trust = match trust {
                    Some(t) if *t != TlsTrust::PublicRoots => t,
                    _ => bail!(
                        "{}:// needs --ca-cert PEM (e.g. DATA_DIR/self-signed-cert.pem) or --tls-fingerprint SHA256",
                        ep.scheme.as_str()
                    ),
                };
                let config = tls::client_config(trust, alpn).context("TLS trust")?;
                let name = ServerName::try_from(ep.host.clone())
                    .map_err(|_| anyhow::anyhow!("{:?} is not a valid TLS server name", ep.host))?;
                Some((TlsConnector::from(Arc::new(config)), name))
            }
            other => bail!("{}:// is not supported here", other.as_str()),
        };
        let node = Node {
            url: url.to_owned(),
            scheme: ep.scheme,
            addr,
            ep,
            tls,
        };
        Ok((protocol, node))
    }

    async fn tls(&self, stream: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        let (connector, name) = self.tls.as_ref().expect("TLS configured for this scheme");
        connector.connect(name.clone(), stream).await.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("TLS handshake with {} failed: {e}", self.ep.host),
            )
        })
    }

    /// The WebSocket upgrade at the endpoint's path.
    async fn upgrade<S>(&self, io: S) -> io::Result<TokioIo<Upgraded>>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let ep = &self.ep;
        let host = if ep.host.contains(':') {
            format!("[{}]:{}", ep.host, ep.port)
        } else {
            format!("{}:{}", ep.host, ep.port)
        };
        let request = hyper::Request::builder()
            .method("GET")
            .uri(ep.path.as_str())
            .header(hyper::header::HOST, host)
            .header(hyper::header::UPGRADE, "websocket")
            .header(hyper::header::CONNECTION, "upgrade")
            .header(
                "Sec-WebSocket-Key",
                fastwebsockets::handshake::generate_key(),
            )
            .header("Sec-WebSocket-Version", "13")
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(|e| io::Error::other(format!("building the upgrade request: {e}")))?;
        let (ws, _) = fastwebsockets::handshake::client(&SpawnExecutor, request, io)
            .await
            .map_err(|e| {
                io::Error::other(format!("WebSocket upgrade at {} failed: {e}", ep.path))
            })?;
        Ok(ws.into_inner())
    }
}

/// hyper's connection task for the upgrade runs on Tokio.
struct SpawnExecutor;

impl<Fut> hyper::rt::Executor<Fut> for SpawnExecutor
where
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    fn execute(&self, fut: Fut) {
        tokio::task::spawn(fut);
    }
}

/// Confab's URLs (the SDK's parser), or `nats://HOST:PORT`.
fn parse_url(url: &str) -> anyhow::Result<(Protocol, Endpoint)> {
    let Some(rest) = url
        .split_once("://")
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("nats"))
        .map(|(_, rest)| rest)
    else {
        let ep = Endpoint::parse(url).map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
        return Ok((Protocol::Confab, ep));
    };
    // Same host:port rules as confab:// (IPv6 brackets, no path, no user
    // information), but the port must be explicit.
    let ep = Endpoint::parse(&format!("confab://{rest}"))
        .map_err(|e| anyhow::anyhow!("{url}: {}", e.to_string().replace("confab://", "nats://")))?;
    let port_given = rest
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && !port.contains(']'));
    anyhow::ensure!(
        port_given,
        "{url}: nats:// needs an explicit port (run the benchmark's own nats-server on a spare port, not the machine's)"
    );
    Ok((Protocol::Nats, ep))
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
    Tls(tokio::io::ReadHalf<TlsStream<TcpStream>>),
    /// The raw upgraded stream: WebSocket headers are parsed in place.
    Ws(tokio::io::ReadHalf<TokioIo<Upgraded>>),
}

impl ReadHalf {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ReadHalf::Tcp(rd) => rd.read(buf).await,
            ReadHalf::Tls(rd) => rd.read(buf).await,
            ReadHalf::Ws(rd) => rd.read(buf).await,
        }
    }
}

/// The sending half of a transport.
pub enum WriteHalf {
    Tcp(tcp::OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<TlsStream<TcpStream>>),
    /// With the reused buffer that batches become WebSocket messages in.
    Ws(tokio::io::WriteHalf<TokioIo<Upgraded>>, Vec<u8>),
    /// NATS over TCP, with the PONGs its reader owes the server (answered
    /// before the next write, so they never split an operation).
    Nats(tcp::OwnedWriteHalf, Rc<Cell<u32>>),
}

/// One large read buffer whose unparsed bytes are parsed where they lie:
/// what [`FrameReader`] and the NATS reader ([`crate::nats`]) share.
pub struct ReadBuf {
    buf: Vec<u8>,
    /// Unparsed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
}

impl ReadBuf {
    pub fn new(capacity: usize) -> ReadBuf {
        ReadBuf {
            buf: vec![0; capacity.max(64)],
            start: 0,
            end: 0,
        }
    }

    /// The bytes not yet parsed.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks `n` bytes as parsed.
    #[inline]
    pub fn consume(&mut self, n: usize) {
        self.start += n;
    }

    /// Whether a read would find no space after the unparsed bytes.
    pub fn is_full(&self) -> bool {
        self.end == self.buf.len() && self.start != self.end
    }

    /// Moves the unparsed bytes (a partial unit) to the front, growing the
    /// buffer if that unit is `need` bytes, more than the buffer holds.
    pub fn make_room(&mut self, need: usize) {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if need > self.buf.len() {
            self.buf.resize(need, 0);
        }
    }

    /// Reads once into the free space (the caller makes room first when
    /// [`ReadBuf::is_full`]); 0 at end of stream.
    pub async fn read_from(&mut self, rd: &mut ReadHalf) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let n = rd.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }
}

/// Reads frames into one large buffer and parses them where they lie.
pub struct FrameReader {
    rd: ReadHalf,
    rb: ReadBuf,
    /// The stream carries WebSocket messages (each wrapping one frame).
    ws: bool,
    /// A WebSocket close frame arrived: the stream has ended.
    closed: bool,
}

/// One frame borrowed from the read buffer.
pub struct Frame<'a> {
    pub kind: u8,
    pub req_id: u32,
    pub payload: &'a [u8],
}

/// What starts the unparsed bytes of the read buffer.
enum Unit {
    /// Not all buffered; `need` is the whole unit's length when known.
    Partial { need: usize },
    /// A protocol frame of `len` bytes at `skip`; `total` bytes make up
    /// the unit (WebSocket header included).
    Frame {
        skip: usize,
        len: usize,
        total: usize,
    },
    /// A WebSocket ping or pong, skipped.
    Control { total: usize },
    /// A WebSocket close frame.
    Close,
}

impl FrameReader {
    fn new(rd: ReadHalf, capacity: usize, ws: bool) -> FrameReader {
        FrameReader {
            rd,
            rb: ReadBuf::new(capacity),
            ws,
            closed: false,
        }
    }

    /// Makes room for a read when the buffer is full of a partial unit.
    fn prepare_read(&mut self) -> io::Result<()> {
        if self.rb.is_full() {
            let need = match self.unit()? {
                Unit::Partial { need } => need,
                _ => 0,
            };
            self.rb.make_room(need);
        }
        Ok(())
    }

    /// Reads once (waiting for data) and calls `f` for every whole frame
    /// now buffered, with the time the read returned ([`now_ns`]).
    /// `Ok(false)` at end of stream.
    pub async fn read_frames(&mut self, mut f: impl FnMut(Frame<'_>, u64)) -> io::Result<bool> {
        if self.closed {
            return Ok(false);
        }
        self.prepare_read()?;
        if self.rb.read_from(&mut self.rd).await? == 0 {
            return Ok(false);
        }
        let now = now_ns();
        loop {
            match self.unit()? {
                Unit::Partial { .. } => return Ok(true),
                Unit::Frame { skip, len, total } => {
                    let b = &self.rb.data()[skip..skip + len];
                    f(
                        Frame {
                            kind: b[4],
                            req_id: u32::from_be_bytes([b[5], b[6], b[7], b[8]]),
                            payload: &b[HEADER_LEN..],
                        },
                        now,
                    );
                    self.rb.consume(total);
                }
                Unit::Control { total } => self.rb.consume(total),
                Unit::Close => {
                    self.closed = true;
                    return Ok(false);
                }
            }
        }
    }

    /// The unit at the start of the unparsed bytes: a whole protocol frame
    /// (TCP, TLS) or one WebSocket message wrapping exactly one.
    #[inline]
    fn unit(&self) -> io::Result<Unit> {
        let b = self.rb.data();
        let avail = b.len();
        if !self.ws {
            if avail < 4 {
                return Ok(Unit::Partial { need: 0 });
            }
            let len = frame_len(b)?;
            return Ok(if avail >= 4 + len {
                Unit::Frame {
                    skip: 0,
                    len: 4 + len,
                    total: 4 + len,
                }
            } else {
                Unit::Partial { need: 4 + len }
            });
        }
        // RFC 6455 §5.2; server frames are unmasked.
        if avail < 2 {
            return Ok(Unit::Partial { need: 0 });
        }
        let (fin, rsv, opcode) = (b[0] & 0x80 != 0, b[0] & 0x70, b[0] & 0x0f);
        if rsv != 0 || b[1] & 0x80 != 0 {
            return Err(bad("WebSocket: reserved bits or a masked server frame"));
        }
        let (skip, plen) = match b[1] & 0x7f {
            126 if avail < 4 => return Ok(Unit::Partial { need: 0 }),
            126 => (4, u16::from_be_bytes([b[2], b[3]]) as u64),
            127 if avail < 10 => return Ok(Unit::Partial { need: 0 }),
            127 => (
                10,
                u64::from_be_bytes([b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9]]),
            ),
            n => (2, n as u64),
        };
        if plen > u64::from(MAX_SERVER_FRAME_LEN) + 4 {
            return Err(bad("WebSocket message larger than one frame may be"));
        }
        let total = skip + plen as usize;
        if avail < total {
            return Ok(Unit::Partial { need: total });
        }
        match opcode {
            0x2 if fin => {
                let p = &b[skip..total];
                if p.len() < 4 || 4 + frame_len(p)? != p.len() {
                    return Err(bad(
                        "a WebSocket message did not hold exactly one protocol frame",
                    ));
                }
                Ok(Unit::Frame {
                    skip,
                    len: p.len(),
                    total,
                })
            }
            0x9 | 0xA => Ok(Unit::Control { total }),
            0x8 => Ok(Unit::Close),
            _ => Err(bad(
                "WebSocket: a text or fragmented message (the server sends neither)",
            )),
        }
    }

    /// The next frame as an owned [`RawFrame`] (for set-up, not hot paths).
    pub async fn next_frame(&mut self) -> io::Result<RawFrame> {
        loop {
            if self.closed {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            match self.unit()? {
                Unit::Frame { skip, len, total } => {
                    let b = &self.rb.data()[skip..skip + len];
                    let frame = RawFrame {
                        kind: b[4],
                        req_id: u32::from_be_bytes([b[5], b[6], b[7], b[8]]),
                        payload: bytes::Bytes::copy_from_slice(&b[HEADER_LEN..]),
                    };
                    self.rb.consume(total);
                    return Ok(frame);
                }
                Unit::Control { total } => {
                    self.rb.consume(total);
                    continue;
                }
                Unit::Close => {
                    self.closed = true;
                    continue;
                }
                Unit::Partial { .. } => {}
            }
            self.prepare_read()?;
            if self.rb.read_from(&mut self.rd).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
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
            if let ServerMsg::Error { code, message, .. } = &msg {
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

/// The length field of the frame starting `b` (at least 4 bytes).
#[inline]
fn frame_len(b: &[u8]) -> io::Result<usize> {
    let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    if !(5..=MAX_SERVER_FRAME_LEN as usize).contains(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("server frame length {len} out of bounds"),
        ));
    }
    Ok(len)
}

fn bad(reason: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
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

/// Writes encoded frames (or, to a NATS target, whole operations).
pub struct FrameWriter {
    wr: WriteHalf,
}

impl FrameWriter {
    /// The writing half of a NATS connection whose reader counts the
    /// server's PINGs into `pongs_owed`.
    pub fn nats(wr: tcp::OwnedWriteHalf, pongs_owed: Rc<Cell<u32>>) -> FrameWriter {
        FrameWriter {
            wr: WriteHalf::Nats(wr, pongs_owed),
        }
    }

    /// A second descriptor of a plain TCP connection's socket (Confab or
    /// NATS), for the sending thread (`crate::sender`); `None` on TLS and
    /// WebSocket, whose writes need their stream's state. On NATS the
    /// PONGs owed so far are written first: the thread writes operations
    /// only.
    pub async fn dup_tcp_socket(&mut self) -> Option<io::Result<std::os::fd::OwnedFd>> {
        if matches!(self.wr, WriteHalf::Nats(..)) {
            if let Err(e) = self.write_all(&[]).await {
                return Some(Err(e));
            }
        }
        let stream = match &self.wr {
            WriteHalf::Tcp(wr) | WriteHalf::Nats(wr, _) => wr.as_ref(),
            WriteHalf::Tls(_) | WriteHalf::Ws(..) => return None,
        };
        Some(rustix::io::dup(stream).map_err(io::Error::from))
    }

    /// Writes `bytes`, whole encoded frames (one or a coalesced batch):
    /// one write (and, with TLS, one flush); on WebSocket each frame
    /// becomes one masked binary message.
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.wr {
            WriteHalf::Tcp(wr) => wr.write_all(bytes).await,
            WriteHalf::Nats(wr, pongs_owed) => {
                for _ in 0..pongs_owed.take() {
                    wr.write_all(b"PONG\r\n").await?;
                }
                wr.write_all(bytes).await
            }
            WriteHalf::Tls(wr) => {
                wr.write_all(bytes).await?;
                wr.flush().await
            }
            WriteHalf::Ws(wr, buf) => {
                buf.clear();
                let mut rest = bytes;
                while !rest.is_empty() {
                    if rest.len() < 4 {
                        return Err(io::ErrorKind::InvalidInput.into());
                    }
                    let len = 4 + u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                    if rest.len() < len {
                        return Err(io::ErrorKind::InvalidInput.into());
                    }
                    push_masked(buf, OpCode::Binary, &rest[..len]);
                    rest = &rest[len..];
                }
                let result = wr.write_all(buf).await;
                if buf.capacity() > 1 << 20 {
                    *buf = Vec::new();
                }
                result?;
                wr.flush().await
            }
        }
    }

    /// Encodes and sends one request.
    pub async fn send(&mut self, req_id: u32, req: &Request) -> io::Result<()> {
        let mut buf = BytesMut::with_capacity(64);
        req.encode(req_id, &mut buf);
        self.write_all(&buf).await
    }
}

/// Appends one masked (client) WebSocket message.
fn push_masked(buf: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    let mask: [u8; 4] = rand::random();
    let mut head = [0u8; 16];
    let n = fastwebsockets::Frame::new(true, opcode, Some(mask), Payload::Borrowed(payload))
        .fmt_head(&mut head);
    buf.extend_from_slice(&head[..n]);
    let start = buf.len();
    buf.extend_from_slice(payload);
    fastwebsockets::unmask(&mut buf[start..], mask);
}

/// Opens a connection and completes HELLO (with `token` if given).
pub async fn open(
    connector: &Connector,
    n: usize,
    buf: usize,
    token: Option<String>,
) -> anyhow::Result<(FrameReader, FrameWriter)> {
    open_on(connector, connector.node_for(n), n, buf, token).await
}

/// [`open`] to node `node` of the target.
pub async fn open_on(
    connector: &Connector,
    node: usize,
    n: usize,
    buf: usize,
    token: Option<String>,
) -> anyhow::Result<(FrameReader, FrameWriter)> {
    let (rd, wr, _) = open_resuming(connector, node, n, buf, token, Vec::new(), 0).await?;
    Ok((rd, wr))
}

/// What a resumed connection received after WELCOME.
#[derive(Debug, Default, Clone, Copy)]
pub struct Replay {
    /// EVENT frames replayed.
    pub events: usize,
    /// RESUME_GAPs received.
    pub gaps: usize,
}

/// Opens connection number `n` to node `node` with HELLO (`token`,
/// `resume` points) and, when resuming, waits for the replay: until
/// `expect_events` EVENT frames or a RESUME_GAP per resume point have
/// arrived.
pub async fn open_resuming(
    connector: &Connector,
    node: usize,
    n: usize,
    buf: usize,
    token: Option<String>,
    resume: Vec<ResumePoint>,
    expect_events: usize,
) -> anyhow::Result<(FrameReader, FrameWriter, Replay)> {
    let (mut rd, mut wr) = connector.connect_on(node, n, buf).await?;
    let points = resume.len();
    let hello = Request::Hello(Hello {
        version: PROTOCOL_VERSION,
        client: concat!("confab-loadgen/", env!("CARGO_PKG_VERSION")).into(),
        token,
        resume,
    });
    wr.send(1, &hello).await?;
    match rd.reply(1).await? {
        ServerMsg::Welcome(_) => {}
        other => bail!("expected WELCOME, got {other:?}"),
    }
    let mut replay = Replay::default();
    while points > 0 && replay.events < expect_events && replay.gaps < points {
        let frame = rd.next_frame().await?;
        match frame.kind {
            kind::EVENT => replay.events += 1,
            kind::RESUME_GAP => replay.gaps += 1,
            kind::CLOSE => bail!("server closed the connection during the replay"),
            _ => {}
        }
    }
    Ok((rd, wr, replay))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_urls_are_the_nodes_connections_go_to_round_robin() {
        let c = Connector::new(
            " confab://127.0.0.1:7400, confab://127.0.0.1:7401,",
            1,
            None,
        )
        .expect("two loopback URLs");
        assert_eq!(c.nodes(), 2);
        assert_eq!(c.url_of(1), "confab://127.0.0.1:7401");
        assert_eq!(
            (0..5).map(|n| c.node_for(n)).collect::<Vec<_>>(),
            [0, 1, 0, 1, 0]
        );
        assert_eq!(split_urls(" , "), Vec::<&str>::new());
        assert!(Connector::new(" , ", 1, None).is_err());
        let remote = Connector::new("confab://127.0.0.1:7400,confab://192.0.2.1:7400", 1, None);
        assert!(remote.is_err(), "every node must be on loopback");
    }

    /// An unmasked (server) WebSocket message.
    fn ws_message(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => out.push(n as u8),
            n if n < 65536 => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    fn frame(kind: u8, req_id: u32, payload_len: usize) -> Vec<u8> {
        let mut f = ((5 + payload_len) as u32).to_be_bytes().to_vec();
        f.push(kind);
        f.extend_from_slice(&req_id.to_be_bytes());
        f.extend(std::iter::repeat_n(0xAB, payload_len));
        f
    }

    /// WebSocket messages parsed in place from a small buffer, whatever
    /// the read boundaries: small, 16-bit and 64-bit lengths, control
    /// frames skipped, a frame larger than the buffer, close ends it.
    #[tokio::test]
    async fn websocket_messages_are_parsed_in_place_across_reads() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sizes = [0usize, 10, 200, 70_000, 3];
        let mut stream = ws_message(0x9, b"ping");
        for (i, n) in sizes.iter().enumerate() {
            stream.extend(ws_message(0x2, &frame(0x81, i as u32, *n)));
            stream.extend(ws_message(0xA, b""));
        }
        stream.extend(ws_message(0x8, &1000u16.to_be_bytes()));
        stream.extend(ws_message(0x2, &frame(0x81, 99, 1)));
        let writer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            for chunk in stream.chunks(7) {
                s.write_all(chunk).await.unwrap();
                s.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let s = TcpStream::connect(addr).await.unwrap();
        let (rd, _wr) = s.into_split();
        let mut reader = FrameReader::new(ReadHalf::Tcp(rd), 64, true);
        let mut seen = Vec::new();
        while reader
            .read_frames(|f, _| seen.push((f.req_id, f.payload.len())))
            .await
            .unwrap()
        {}
        writer.await.unwrap();
        let want: Vec<(u32, usize)> = sizes
            .iter()
            .enumerate()
            .map(|(i, n)| (i as u32, *n))
            .collect();
        assert_eq!(seen, want);
    }

    #[tokio::test]
    async fn a_websocket_message_must_hold_exactly_one_frame() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut two = frame(0x81, 1, 1);
        two.extend(frame(0x81, 2, 1));
        let bytes = ws_message(0x2, &two);
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(&bytes).await.unwrap();
        });
        let (rd, _wr) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut reader = FrameReader::new(ReadHalf::Tcp(rd), 4096, true);
        let err = loop {
            match reader.read_frames(|_, _| {}).await {
                Ok(true) => continue,
                Ok(false) => panic!("no error"),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
