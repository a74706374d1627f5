//! Every door: plain TCP, TLS, HTTP (JSON API) and WebSocket — the only
//! code that opens client sockets.
//!
//! **Invariant: only `net/` knows about TCP listeners, TLS, HTTP and
//! WebSocket.** Every door ends in the same two functions of
//! [`crate::session`]: `serve` for connections that speak frames (TCP, TLS
//! with ALPN `confab/1`, WebSocket) and `call` for one request at a time
//! (the HTTP API). No door has rules of its own.
//!
//! - [`tcp`]: plain TCP connections: frames back to back.
//! - [`frames`]: the seam between byte transports and sessions — a
//!   stream of frames in, a [`frames::FrameSink`] out.
//! - [`tls`]: the crypto provider (ring), certificates (PEM or
//!   self-signed), and the TLS port: ALPN picks the protocol.
//! - [`http`]: one HTTP/1.1 connection (hyper) serving the axum router:
//!   `/ws`, `/api/*`, `/healthz`, `/readyz`, `/` (the web client).
//! - [`ws`]: WebSocket upgrades and sessions: one protocol frame per binary
//!   message; queued frames coalesced into one buffer and one flush.
//! - [`api`]: the JSON API and its OpenAPI document.
//! - [`web`]: the web client (`web/dist`, embedded at compile time) at `/`.
//!
//! Listeners: [`bind`] binds every listener (so that start-up fails early
//! on a busy port or a bad certificate), [`Doors::serve`] starts their
//! accept loops on the server's task tracker, so graceful shutdown waits
//! for their connections too.

pub mod api;
pub mod frames;
pub mod http;
pub mod tcp;
pub mod tls;
pub mod web;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::state::ServerState;

/// Bound but not yet accepting listeners.
pub struct Doors {
    tcp: TcpListener,
    http: Option<TcpListener>,
    tls: Option<(TcpListener, tls::TlsSetup)>,
}

/// Where the doors listen, for [`crate::ServerHandle`].
#[derive(Debug, Clone)]
pub struct Addrs {
    pub tcp: SocketAddr,
    pub http: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
    /// SHA-256 of the TLS certificate (DER), `AB:CD:…` as openssl prints it.
    pub tls_fingerprint: Option<String>,
    /// Where `--tls-self-signed` wrote its certificate (PEM).
    pub tls_cert_pem: Option<std::path::PathBuf>,
}

/// Installs the crypto provider, loads or makes the certificate, and binds
/// the TCP, HTTP and TLS listeners.
pub async fn bind(config: &Config) -> anyhow::Result<Doors> {
    tls::install_crypto_provider();
    let tcp = listen(config.listen)
        .with_context(|| format!("binding the TCP listener to {}", config.listen))?;
    let http = match config.http_listen.addr() {
        Some(addr) => {
            Some(listen(addr).with_context(|| format!("binding the HTTP listener to {addr}"))?)
        }
        None => None,
    };
    let tls = match config.tls() {
        Some(source) => {
            let setup = tls::TlsSetup::load(&source, &config.data_dir)?;
            let listener = listen(config.tls_listen)
                .with_context(|| format!("binding the TLS listener to {}", config.tls_listen))?;
            Some((listener, setup))
        }
        None => None,
    };
    Ok(Doors { tcp, http, tls })
}

/// Connections the kernel holds completed for `accept` (the kernel caps
/// it at `net.core.somaxconn`). tokio's `TcpListener::bind` asks for 128:
/// a reconnect storm of a few hundred clients at once overflowed that
/// queue, and each dropped handshake cost its client a 1 s SYN
/// retransmission (10,000 clients resuming 512 at a time took 7.95 s
/// instead of ~2 s; benches/BENCHMARKS.md, "Connection storms").
const ACCEPT_BACKLOG: u32 = 4096;

/// A listening socket on `addr` with [`ACCEPT_BACKLOG`] (and
/// `SO_REUSEADDR`, as the standard library's bind sets it).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

impl Doors {
    /// Starts accepting. Returns the addresses and the accept loops, which
    /// end when the server shuts down.
    pub fn serve(
        self,
        server: Arc<ServerState>,
        tracker: TaskTracker,
    ) -> anyhow::Result<(Addrs, Vec<JoinHandle<()>>)> {
        let mut addrs = Addrs {
            tcp: self.tcp.local_addr()?,
            http: None,
            tls: None,
            tls_fingerprint: None,
            tls_cert_pem: None,
        };
        tracing::info!(addr = %addrs.tcp, shards = server.config.shards, "listening (plain TCP, binary protocol)");
        let mut tasks = Vec::new();
        {
            let (server, tracker) = (server.clone(), tracker.clone());
            tasks.push(tokio::spawn(accept_loop(
                self.tcp,
                server.clone(),
                move |stream, peer| {
                    tracker.spawn(tcp::serve(server.clone(), stream, peer));
                },
            )));
        }
        let router = http::router(http::HttpState::new(server.clone(), tracker.clone()));
        if let Some(listener) = self.http {
            addrs.http = listener.local_addr().ok();
            if let Some(addr) = addrs.http {
                tracing::info!(%addr, "listening (HTTP: JSON API at /api, WebSocket at /ws)");
            }
            let (server, tracker, router) = (server.clone(), tracker.clone(), router.clone());
            tasks.push(tokio::spawn(accept_loop(
                listener,
                server.clone(),
                move |stream, peer| {
                    let _ = stream.set_nodelay(true);
                    tracker.spawn(http::serve_connection(
                        server.clone(),
                        router.clone(),
                        stream,
                        http::ConnInfo { peer, tls: false },
                    ));
                },
            )));
        }
        if let Some((listener, setup)) = self.tls {
            addrs.tls = listener.local_addr().ok();
            addrs.tls_fingerprint = Some(setup.fingerprint.clone());
            addrs.tls_cert_pem = setup.self_signed_pem.clone();
            if let Some(addr) = addrs.tls {
                tracing::info!(
                    %addr,
                    fingerprint = %setup.fingerprint,
                    "listening (TLS: ALPN confab/1 → binary protocol; http/1.1 → HTTP and WebSocket)"
                );
            }
            let acceptor = setup.acceptor.clone();
            let (server2, tracker2) = (server.clone(), tracker.clone());
            tasks.push(tokio::spawn(accept_loop(
                listener,
                server2.clone(),
                move |stream, peer| {
                    let _ = stream.set_nodelay(true);
                    tracker2.spawn(tls::serve_connection(
                        server2.clone(),
                        router.clone(),
                        acceptor.clone(),
                        tracker2.clone(),
                        stream,
                        peer,
                    ));
                },
            )));
        }
        Ok((addrs, tasks))
    }
}

/// Accepts until shutdown, handing each connection to `on_accept`.
async fn accept_loop(
    listener: TcpListener,
    server: Arc<ServerState>,
    mut on_accept: impl FnMut(tokio::net::TcpStream, SocketAddr) + Send + 'static,
) {
    loop {
        let accepted = tokio::select! {
            _ = server.shutdown.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => on_accept(stream, peer),
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
