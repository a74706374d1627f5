//! The doors besides plain TCP: TLS, HTTP (JSON API) and WebSocket.
//!
//! **Invariant: only `net/` knows about TLS, HTTP and WebSocket.** Every door
//! ends in the same two functions of [`crate::session`]: `serve` for
//! connections that speak frames (TLS with ALPN `confab/1`, WebSocket) and
//! `call` for one request at a time (the HTTP API). No door has rules of
//! its own.
//!
//! - [`config`]: the doors' settings (`--tls-*`, `--http-listen`,
//!   `--allowed-origins`).
//! - [`tls`]: the crypto provider (ring), certificates (PEM or
//!   self-signed), and the TLS port: ALPN picks the protocol.
//! - [`http`]: one HTTP/1.1 connection (hyper) serving the axum router:
//!   `/ws`, `/api/*`, `/healthz`, `/readyz`.
//! - [`ws`]: WebSocket upgrades and sessions: one protocol frame per binary
//!   message; queued frames coalesced into one buffer and one flush.
//! - [`api`]: the JSON API and its OpenAPI document.
//!
//! Listeners: [`bind`] binds the HTTP and TLS listeners (so that start-up
//! fails early on a busy port or a bad certificate), [`Doors::serve`]
//! starts their accept loops on the server's task tracker, so graceful
//! shutdown waits for their connections too.

pub mod api;
pub mod config;
pub mod http;
pub mod tls;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

pub use config::{NetConfig, NetFlags, TlsSource};

use crate::config::Config;
use crate::server::ServerHandle;
use crate::session::Shared;

/// Bound but not yet accepting listeners.
pub struct Doors {
    http: Option<TcpListener>,
    tls: Option<(TcpListener, tls::TlsSetup)>,
}

/// Where the doors listen, for [`ServerHandle`].
#[derive(Debug, Clone, Default)]
pub struct Addrs {
    pub http: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
    /// SHA-256 of the TLS certificate (DER), `AB:CD:…` as openssl prints it.
    pub tls_fingerprint: Option<String>,
    /// Where `--tls-self-signed` wrote its certificate (PEM).
    pub tls_cert_pem: Option<std::path::PathBuf>,
}

/// Installs the crypto provider, loads or makes the certificate, and binds
/// the HTTP and TLS listeners.
pub async fn bind(config: &Config) -> anyhow::Result<Doors> {
    tls::install_crypto_provider();
    let net = &config.net;
    let http = match net.http_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the HTTP listener to {addr}"))?,
        ),
        None => None,
    };
    let tls = match &net.tls {
        Some(source) => {
            let setup = tls::TlsSetup::load(source, &config.data_dir)?;
            let listener = TcpListener::bind(net.tls_listen)
                .await
                .with_context(|| format!("binding the TLS listener to {}", net.tls_listen))?;
            Some((listener, setup))
        }
        None => None,
    };
    Ok(Doors { http, tls })
}

impl Doors {
    /// Starts accepting. Returns the addresses and the accept loops, which
    /// end when the server shuts down.
    pub fn serve(self, shared: Arc<Shared>, tracker: TaskTracker) -> (Addrs, Vec<JoinHandle<()>>) {
        let mut addrs = Addrs::default();
        let mut tasks = Vec::new();
        let router = http::router(http::HttpState::new(shared.clone(), tracker.clone()));
        if let Some(listener) = self.http {
            addrs.http = listener.local_addr().ok();
            if let Some(addr) = addrs.http {
                tracing::info!(%addr, "listening (HTTP: JSON API at /api, WebSocket at /ws)");
            }
            let (shared, tracker, router) = (shared.clone(), tracker.clone(), router.clone());
            tasks.push(tokio::spawn(accept_loop(
                listener,
                shared.clone(),
                move |stream, peer| {
                    let _ = stream.set_nodelay(true);
                    tracker.spawn(http::serve_connection(
                        shared.clone(),
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
            let (shared2, tracker2) = (shared.clone(), tracker.clone());
            tasks.push(tokio::spawn(accept_loop(
                listener,
                shared2.clone(),
                move |stream, peer| {
                    let _ = stream.set_nodelay(true);
                    tracker2.spawn(tls::serve_connection(
                        shared2.clone(),
                        router.clone(),
                        acceptor.clone(),
                        stream,
                        peer,
                    ));
                },
            )));
        }
        (addrs, tasks)
    }
}

/// Accepts until shutdown, handing each connection to `on_accept`.
async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut on_accept: impl FnMut(tokio::net::TcpStream, SocketAddr) + Send + 'static,
) {
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
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

impl ServerHandle {
    /// The plain HTTP listener's address (JSON API, `ws://…/ws`), if enabled.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.net.http
    }

    /// The TLS listener's address, if a certificate is configured.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.net.tls
    }

    /// SHA-256 fingerprint of the TLS certificate, `AB:CD:…`.
    pub fn tls_fingerprint(&self) -> Option<&str> {
        self.net.tls_fingerprint.as_deref()
    }

    /// The PEM file `--tls-self-signed` wrote, for clients to trust.
    pub fn tls_cert_pem(&self) -> Option<&std::path::Path> {
        self.net.tls_cert_pem.as_deref()
    }
}
