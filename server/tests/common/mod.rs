//! Test harness: starts the real server on ephemeral ports with a real
//! SQLite file in a temp dir — plain TCP, TLS (self-signed) and HTTP/WebSocket
//! — and a raw protocol client that speaks bytes over any of them.
#![allow(dead_code)]

pub mod backend;
pub mod doors;
pub mod files;
pub mod http;
pub mod nats;
pub mod sdk;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use bytes::BytesMut;
use confab_protocol::{
    FrameCodec, FrameError, Hello, RawFrame, Request, ServerMsg, PROTOCOL_VERSION,
};
use confab_sdk::{Client, ConnectOptions};
use confab_server::config::TlsSource;
use confab_server::{Config, ServerHandle};
use confab_testkit::postgres::TestDatabase;
use futures_util::{Stream, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

pub use backend::Backend;
pub use doors::Transport;

/// A server running on 127.0.0.1:0 over a temp data dir.
pub struct TestServer {
    pub handle: Option<ServerHandle>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config: Config,
    /// The Postgres database created for this server, dropped by `stop`.
    pub pg_database: Option<TestDatabase>,
}

/// Fast settings for tests: cheap KDF (the real parameters are tested in
/// unit tests), two shards so cross-shard paths run.
pub fn test_config(data_dir: PathBuf) -> Config {
    let mut config = Config {
        shards: 2,
        kdf_memory_kib: 64,
        kdf_iterations: 1,
        tls_listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::embedded(data_dir)
    };
    config.set_tls(TlsSource::SelfSigned);
    config
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(dir.path().to_path_buf());
        tweak(&mut config);
        let handle = confab_server::start(config.clone())
            .await
            .expect("server starts");
        let addr = handle.tcp_addr();
        TestServer {
            handle: Some(handle),
            addr,
            dir,
            config,
            pg_database: None,
        }
    }

    /// A server on `backend`; `None` when that backend is not available
    /// here (after `confab_testkit::postgres::no_postgres` had its say:
    /// `test` is skipped, or fails under `CONFAB_REQUIRE_POSTGRES=1`).
    pub async fn start_on(
        backend: Backend,
        test: &str,
        tweak: impl FnOnce(&mut Config),
    ) -> Option<TestServer> {
        match backend {
            Backend::Sqlite => Some(Self::start_with(tweak).await),
            Backend::Postgres => {
                let db = TestDatabase::create(test).await?;
                let mut srv = Self::start_with(|c| {
                    c.database_url = db.url().parse().expect("a postgres:// URL");
                    tweak(c);
                })
                .await;
                srv.pg_database = Some(db);
                Some(srv)
            }
        }
    }

    pub fn url(&self) -> String {
        format!("confab://{}", self.addr)
    }

    fn handle(&self) -> &ServerHandle {
        self.handle.as_ref().expect("server running")
    }

    /// The listener that serves `transport`.
    pub fn addr_for(&self, transport: Transport) -> SocketAddr {
        let h = self.handle();
        match transport {
            Transport::Tcp => self.addr,
            Transport::Tls | Transport::Wss => h.tls_addr().expect("TLS listener"),
            Transport::Ws => h.http_addr().expect("HTTP listener"),
        }
    }

    /// The SDK URL for `transport`.
    pub fn url_for(&self, transport: Transport) -> String {
        transport.url(self.addr_for(transport))
    }

    /// SDK options that trust this server's self-signed certificate (by
    /// fingerprint) — harmless for plain transports.
    pub fn options_for(&self, _transport: Transport) -> ConnectOptions {
        let fingerprint = self.handle().tls_fingerprint().expect("TLS fingerprint");
        ConnectOptions::default()
            .with_fingerprint(fingerprint)
            .expect("fingerprint parses")
    }

    /// URL and options for `transport`, ready to connect.
    pub fn door(&self, transport: Transport) -> Door {
        Door {
            url: self.url_for(transport),
            options: self.options_for(transport),
            transport,
        }
    }

    /// The same door reached through `addr` (a proxy in front of it).
    pub fn door_via(&self, transport: Transport, addr: SocketAddr) -> Door {
        Door {
            url: transport.url(addr),
            options: self.options_for(transport),
            transport,
        }
    }

    /// The self-signed certificate's PEM, for clients that trust a file.
    pub fn tls_cert_pem(&self) -> PathBuf {
        self.handle()
            .tls_cert_pem()
            .expect("self-signed PEM")
            .to_path_buf()
    }

    /// Stops the server gracefully and starts it again on the same data
    /// directory (a new port).
    pub async fn restart(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
        let handle = confab_server::start(self.config.clone())
            .await
            .expect("server restarts");
        self.addr = handle.tcp_addr();
        self.handle = Some(handle);
    }

    pub async fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
        if let Some(db) = self.pg_database.take() {
            db.drop_now().await;
        }
    }
}

/// One way into the server, as the SDK sees it.
#[derive(Clone)]
pub struct Door {
    pub url: String,
    pub options: ConnectOptions,
    pub transport: Transport,
}

impl Door {
    pub async fn connect(&self) -> Client {
        self.connect_with(|o| o).await.expect("connect")
    }

    pub async fn connect_with(
        &self,
        tweak: impl FnOnce(ConnectOptions) -> ConnectOptions,
    ) -> Result<Client, confab_sdk::Error> {
        Client::connect(&self.url, tweak(self.options.clone())).await
    }

    /// A new account `name` (password [`TEST_PASSWORD`]) registered
    /// through this door: its client and its id.
    pub async fn register(&self, name: &str) -> (Client, confab_protocol::UserId) {
        let c = self.connect().await;
        let session = c.register(name, TEST_PASSWORD).await.expect("register");
        (c, session.user)
    }
}

/// The password of the accounts [`Door::register`] makes.
pub const TEST_PASSWORD: &str = "password123";

/// The first ROOM_ANNOUNCED `c` receives, skipping other events.
pub async fn next_announced(c: &Client) -> confab_protocol::RoomInfo {
    loop {
        match c.next_event_timeout(STEP).await.ok().flatten() {
            Some(confab_sdk::Event::RoomAnnounced(info)) => return info,
            Some(_) => continue,
            None => panic!("no ROOM_ANNOUNCED within {STEP:?}"),
        }
    }
}

/// Decoded frames from any transport.
pub type FrameStream = Pin<Box<dyn Stream<Item = Result<RawFrame, FrameError>> + Send>>;

/// A client that writes raw bytes and reads decoded server frames.
pub struct RawClient {
    pub write: doors::RawWrite,
    pub read: FrameStream,
}

pub const STEP: Duration = Duration::from_secs(5);

impl RawClient {
    /// Plain TCP, the binary protocol's own port.
    pub async fn connect(addr: SocketAddr) -> RawClient {
        Self::connect_from(addr, None).await
    }

    /// Plain TCP from a given source address (any of 127.0.0.0/8).
    pub async fn connect_from(addr: SocketAddr, from: Option<std::net::IpAddr>) -> RawClient {
        let stream = http::connect_from(addr, from).await;
        let (r, w) = stream.into_split();
        RawClient {
            write: doors::RawWrite::Stream(Box::new(w)),
            read: Box::pin(FramedRead::new(r, FrameCodec::new(1 << 24))),
        }
    }

    /// Any transport of `srv`: frames on TCP and TLS (ALPN confab/1), one
    /// frame per binary message on WebSocket.
    pub async fn connect_via(srv: &TestServer, transport: Transport) -> RawClient {
        doors::raw_connect(srv, transport, srv.addr_for(transport)).await
    }

    /// Bytes as they are: on a stream, appended to it; on WebSocket, one
    /// binary message.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.write.send(bytes).await.expect("write");
    }

    pub async fn send(&mut self, req_id: u32, req: &Request) {
        let mut buf = BytesMut::new();
        req.encode(req_id, &mut buf);
        self.send_bytes(&buf).await;
    }

    pub async fn hello(&mut self, token: Option<String>) -> ServerMsg {
        let hello = Hello {
            version: PROTOCOL_VERSION,
            client: "raw-test".into(),
            token,
            resume: vec![],
        };
        self.send(1, &Request::Hello(hello)).await;
        self.recv().await.1
    }

    /// The next frame, decoded. Panics if none arrives within [`STEP`].
    pub async fn recv(&mut self) -> (u32, ServerMsg) {
        let frame = self.recv_raw().await.expect("a frame, not end of stream");
        (
            frame.req_id,
            ServerMsg::decode(&frame).expect("server frames decode"),
        )
    }

    pub async fn recv_raw(&mut self) -> Option<RawFrame> {
        match tokio::time::timeout(STEP, self.read.next()).await {
            Ok(Some(Ok(f))) => Some(f),
            Ok(Some(Err(e))) => panic!("framing error from server: {e}"),
            Ok(None) => None,
            Err(_) => panic!("no frame from server within {STEP:?}"),
        }
    }

    /// Reads until a frame with `req_id` arrives, skipping events.
    pub async fn reply_to(&mut self, req_id: u32) -> ServerMsg {
        loop {
            let (id, msg) = self.recv().await;
            if id == req_id && !matches!(msg, ServerMsg::Event(_)) {
                return msg;
            }
        }
    }

    /// Collects the replies to `ids`, in whatever order they arrive
    /// (responses to pipelined requests may be reordered), skipping events.
    pub async fn replies(&mut self, ids: &[u32]) -> std::collections::HashMap<u32, ServerMsg> {
        let mut out = std::collections::HashMap::new();
        while out.len() < ids.len() {
            let (id, msg) = self.recv().await;
            if ids.contains(&id) && !matches!(msg, ServerMsg::Event(_)) {
                out.insert(id, msg);
            }
        }
        out
    }

    /// Asserts that the server sends CLOSE with `code` and then closes.
    pub async fn expect_close(&mut self, code: confab_protocol::ErrorCode) {
        loop {
            let (_, msg) = self.recv().await;
            match msg {
                ServerMsg::Close { code: c, .. } => {
                    assert_eq!(c, code as u16, "close code");
                    break;
                }
                ServerMsg::Event(_) | ServerMsg::Error { .. } => continue,
                other => panic!("expected CLOSE {code}, got {other:?}"),
            }
        }
        assert!(self.recv_raw().await.is_none(), "socket closes after CLOSE");
    }

    /// Registers (which also authenticates this connection).
    pub async fn register(&mut self, req_id: u32, user: &str) -> ServerMsg {
        self.send(
            req_id,
            &Request::Register {
                username: user.into(),
                password: "password123".into(),
            },
        )
        .await;
        self.reply_to(req_id).await
    }
}

/// Asserts that `msg` is an ERROR with `code`.
pub fn assert_error(msg: &ServerMsg, code: confab_protocol::ErrorCode) {
    match msg {
        ServerMsg::Error {
            code: c, message, ..
        } => {
            assert_eq!(*c, code as u16, "expected {code}, got {c}: {message}");
            assert!(!message.is_empty(), "errors carry a human message");
        }
        other => panic!("expected ERROR {code}, got {other:?}"),
    }
}

/// A loopback TCP proxy in front of the server whose live connections the
/// test can cut, to drop a client's connection for real.
pub struct CutProxy {
    pub addr: SocketAddr,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accepting: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    pub async fn start(upstream: SocketAddr) -> CutProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr");
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let accepting = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (c2, a2) = (conns.clone(), accepting.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                if !a2.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(down);
                    continue;
                }
                let handle = tokio::spawn(async move {
                    if let Ok(mut up) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                c2.lock().unwrap().push(handle.abort_handle());
            }
        });
        CutProxy {
            addr,
            conns,
            accepting,
            task,
        }
    }

    /// Drops every live connection through the proxy.
    pub fn cut(&self) {
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }

    /// While false, new connections are accepted and dropped at once.
    pub fn set_accepting(&self, on: bool) {
        self.accepting
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

/// Runs each scenario `async fn(Backend)` of a test file once per store:
/// one module of `#[tokio::test]`s per store (`sqlite`, `postgres`).
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await })*
        }
    };
}

/// A server on `backend` (`None`: not available here) with its clock
/// frozen: only the test's steps move coalescing intervals, windows, rate
/// limits and housekeeping's idea of now.
pub async fn start_frozen(
    backend: Backend,
    test: &str,
    tweak: impl FnOnce(&mut Config),
) -> Option<(TestServer, confab_server::clock::Clock)> {
    let srv = TestServer::start_on(backend, test, tweak).await?;
    let clock = srv.handle.as_ref()?.clock().clone();
    clock.freeze();
    Some((srv, clock))
}

/// Runs each scenario `async fn(Transport, Backend)` of a test file over
/// TCP, TLS and WebSocket on SQLite and over TCP on Postgres: one module of
/// `#[tokio::test]`s per door (`tcp`, `tls`, `ws`, `tcp_postgres`).
#[macro_export]
macro_rules! over_transports {
    ($($scenario:ident),* $(,)?) => {
        $crate::over_transports!(@suite tcp, Transport::Tcp, Backend::Sqlite, $($scenario),*);
        $crate::over_transports!(@suite tls, Transport::Tls, Backend::Sqlite, $($scenario),*);
        $crate::over_transports!(@suite ws, Transport::Ws, Backend::Sqlite, $($scenario),*);
        $crate::over_transports!(@suite tcp_postgres, Transport::Tcp, Backend::Postgres, $($scenario),*);
    };
    (@suite $name:ident, $transport:expr, $backend:expr, $($scenario:ident),*) => {
        mod $name {
            use super::*;
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario($transport, $backend).await
                }
            )*
        }
    };
}
