//! The transports the tests speak, built from the same crates as the server
//! but driven by hand: TLS with a chosen ALPN, raw WebSocket messages.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use confab_protocol::frame::split_frame;
use confab_protocol::{FrameCodec, FrameError, RawFrame};
use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocketRead, WebSocketWrite};
use http_body_util::Empty;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;

use super::{RawClient, TestServer};

/// The transports a scenario can run over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `confab://`
    Tcp,
    /// `confabs://` (ALPN confab/1)
    Tls,
    /// `ws://…/ws`
    Ws,
    /// `wss://…/ws`
    Wss,
}

impl Transport {
    pub fn url(self, addr: SocketAddr) -> String {
        match self {
            Transport::Tcp => format!("confab://{addr}"),
            Transport::Tls => format!("confabs://{addr}"),
            Transport::Ws => format!("ws://{addr}/ws"),
            Transport::Wss => format!("wss://{addr}/ws"),
        }
    }
}

/// A TLS client config that trusts exactly the PEM certificate at `pem`
/// and offers `alpn` (none if empty).
pub fn tls_config(pem: &Path, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pem).expect("PEM file") {
        roots
            .add(cert.expect("PEM certificate"))
            .expect("trust anchor");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Arc::new(config)
}

/// A TLS handshake with the server's TLS port offering `alpn`.
pub async fn tls_connect(
    srv: &TestServer,
    addr: SocketAddr,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(tls_config(&srv.tls_cert_pem(), alpn));
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    connector.connect(name, tcp).await
}

/// Sends an upgrade request for `path` with extra headers; the server's
/// refusal comes back as `Err(status)`.
pub async fn ws_upgrade<S>(
    io: S,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<TokioIo<Upgraded>, String>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let mut req = hyper::Request::builder()
        .method("GET")
        .uri(path)
        .header("host", "127.0.0.1")
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header(
            "sec-websocket-key",
            fastwebsockets::handshake::generate_key(),
        )
        .header("sec-websocket-version", "13");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Empty::<Bytes>::new()).expect("request");
    match fastwebsockets::handshake::client(&SpawnExecutor, req, io).await {
        Ok((ws, _)) => Ok(ws.into_inner()),
        Err(e) => Err(e.to_string()),
    }
}

pub struct SpawnExecutor;

impl<F> hyper::rt::Executor<F> for SpawnExecutor
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        tokio::spawn(fut);
    }
}

/// How the server closed a WebSocket: code and reason.
pub type WsClose = Arc<Mutex<Option<(u16, String)>>>;

/// A raw WebSocket client: messages as they are, the server's close frame
/// recorded.
pub struct RawWs {
    pub write: WebSocketWrite<WriteHalf<TokioIo<Upgraded>>>,
    /// Binary messages from the server, in order; ends at close.
    pub messages: mpsc::Receiver<Bytes>,
    pub closed: WsClose,
}

impl RawWs {
    pub fn new(io: TokioIo<Upgraded>) -> RawWs {
        let (r, w) = tokio::io::split(io);
        let (mut read, write) = fastwebsockets::after_handshake_split(r, w, Role::Client);
        // The tests' server frames can be large (history pages).
        read.set_max_message_size(64 << 20);
        let closed: WsClose = Arc::default();
        // Capacity 1: a test that stops reading makes the task stop reading
        // the socket too, as a slow client would.
        let (tx, messages) = mpsc::channel(1);
        tokio::spawn(read_messages(read, tx, closed.clone()));
        RawWs {
            write,
            messages,
            closed,
        }
    }

    /// Sends one message.
    pub async fn send(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), String> {
        let frame = Frame::new(true, opcode, None, Payload::Owned(payload.to_vec()));
        self.write
            .write_frame(frame)
            .await
            .map_err(|e| e.to_string())?;
        self.write.flush().await.map_err(|e| e.to_string())
    }

    /// Sends one message in fragments of `chunk` bytes.
    pub async fn send_fragmented(&mut self, payload: &[u8], chunk: usize) -> Result<(), String> {
        let parts: Vec<&[u8]> = payload.chunks(chunk).collect();
        for (i, part) in parts.iter().enumerate() {
            let opcode = if i == 0 {
                OpCode::Binary
            } else {
                OpCode::Continuation
            };
            let frame = Frame::new(
                i + 1 == parts.len(),
                opcode,
                None,
                Payload::Owned(part.to_vec()),
            );
            self.write
                .write_frame(frame)
                .await
                .map_err(|e| e.to_string())?;
        }
        self.write.flush().await.map_err(|e| e.to_string())
    }

    /// Waits for the server's close frame (after any messages).
    pub async fn close_frame(&mut self) -> Option<(u16, String)> {
        let deadline = tokio::time::Instant::now() + super::STEP;
        while tokio::time::timeout_at(deadline, self.messages.recv())
            .await
            .ok()
            .flatten()
            .is_some()
        {}
        self.closed.lock().expect("lock").clone()
    }
}

async fn read_messages(
    mut read: WebSocketRead<tokio::io::ReadHalf<TokioIo<Upgraded>>>,
    tx: mpsc::Sender<Bytes>,
    closed: WsClose,
) {
    let mut ignore = |_: Frame<'static>| async { Ok::<(), std::io::Error>(()) };
    let mut partial = BytesMut::new();
    loop {
        let frame = match read.read_frame(&mut ignore).await {
            Ok(f) => f,
            Err(_) => return,
        };
        match frame.opcode {
            OpCode::Close => {
                let p = &frame.payload[..];
                let close = if p.len() >= 2 {
                    let code = u16::from_be_bytes([p[0], p[1]]);
                    (code, String::from_utf8_lossy(&p[2..]).into_owned())
                } else {
                    (1005, String::new())
                };
                *closed.lock().expect("lock") = Some(close);
                return;
            }
            OpCode::Binary | OpCode::Continuation => {
                partial.extend_from_slice(&frame.payload);
                if frame.fin && tx.send(partial.split().freeze()).await.is_err() {
                    return;
                }
            }
            _ => {}
        }
    }
}

/// The writing side of a [`RawClient`].
pub enum RawWrite {
    Stream(Box<dyn AsyncWrite + Send + Unpin>),
    Ws(Box<RawWs>),
}

impl RawWrite {
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        match self {
            RawWrite::Stream(w) => w.write_all(bytes).await.map_err(|e| e.to_string()),
            RawWrite::Ws(ws) => ws.send(OpCode::Binary, bytes).await,
        }
    }
}

/// A [`RawClient`] over `transport`, reaching the server at `addr`.
pub async fn raw_connect(srv: &TestServer, transport: Transport, addr: SocketAddr) -> RawClient {
    match transport {
        Transport::Tcp => RawClient::connect(addr).await,
        Transport::Tls => {
            let tls = tls_connect(srv, addr, &[b"confab/1"]).await.expect("TLS");
            let (r, w) = tokio::io::split(tls);
            RawClient {
                write: RawWrite::Stream(Box::new(w)),
                read: Box::pin(FramedRead::new(r, FrameCodec::new(1 << 24))),
            }
        }
        Transport::Ws => {
            let tcp = TcpStream::connect(addr).await.expect("connect");
            ws_raw_client(ws_upgrade(tcp, "/ws", &[]).await.expect("upgrade"))
        }
        Transport::Wss => {
            let tls = tls_connect(srv, addr, &[b"http/1.1"]).await.expect("TLS");
            ws_raw_client(ws_upgrade(tls, "/ws", &[]).await.expect("upgrade"))
        }
    }
}

fn ws_raw_client(io: TokioIo<Upgraded>) -> RawClient {
    let mut ws = RawWs::new(io);
    let messages = std::mem::replace(&mut ws.messages, mpsc::channel(1).1);
    let read = futures_util::stream::unfold(messages, |mut rx| async move {
        let message = rx.recv().await?;
        let mut buf = BytesMut::from(&message[..]);
        let frame: Result<RawFrame, FrameError> = match split_frame(&mut buf, 1 << 24) {
            Ok(Some(f)) if buf.is_empty() => Ok(f),
            Ok(_) => Err(FrameError::Io(std::io::Error::other(
                "a server message did not hold exactly one frame",
            ))),
            Err(e) => Err(e),
        };
        Some((frame, rx))
    });
    RawClient {
        write: RawWrite::Ws(Box::new(ws)),
        read: Box::pin(read),
    }
}
