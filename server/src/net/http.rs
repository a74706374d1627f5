//! One HTTP/1.1 connection, plain or inside TLS, served by hyper with the
//! axum router: `GET /ws` (WebSocket), `/api/*` (JSON API), `/healthz`,
//! `/readyz`, and the web client at `/` (web.rs: embedded files, other
//! extension-less paths answered with its page). Unknown `/api` paths and
//! missing files are a JSON 404.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::task::TaskTracker;
use tower_service::Service;

use super::{api, web, ws};
use crate::state::ServerState;

/// What every handler can reach.
#[derive(Clone)]
pub struct HttpState {
    pub server: Arc<ServerState>,
    /// WebSocket sessions outlive their HTTP request: they run on the
    /// server's tracker so that shutdown waits for them.
    pub tracker: TaskTracker,
    /// `--allowed-origins`; empty: any.
    pub allowed_origins: Arc<[String]>,
    /// The API's per-user message rate limit (`api/limit.rs`); `None` when
    /// `rate_limit_per_sec` is 0.
    pub message_limit: Option<crate::limit::MessageLimit>,
}

impl HttpState {
    pub fn new(server: Arc<ServerState>, tracker: TaskTracker) -> HttpState {
        let allowed_origins = server.config.allowed_origins.0.clone().into();
        let cfg = &server.config;
        let message_limit =
            api::limit::per_user(cfg.rate_limit_per_sec, cfg.rate_limit_burst, &server.clock);
        HttpState {
            server,
            tracker,
            allowed_origins,
            message_limit,
        }
    }
}

/// The connection a request arrived on (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// Whether the connection is TLS (wss:// rather than ws://).
    pub tls: bool,
}

/// The whole HTTP surface.
pub fn router(state: HttpState) -> Router {
    // The API's bodies are small; nothing needs more than a protocol frame.
    let body_limit = state.server.config.max_frame_len as usize;
    Router::new()
        .route("/ws", get(ws::upgrade))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .merge(api::routes())
        .fallback(web::serve)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Serves HTTP/1.1 on `io` until the peer closes, an upgrade takes the
/// connection over, or the server shuts down (in-flight requests finish).
pub async fn serve_connection<I>(server: Arc<ServerState>, router: Router, io: I, conn: ConnInfo)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(conn);
            let mut router = router.clone();
            async move { router.call(req).await }
        });
    let http = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // Slow or silent clients cannot hold a connection open for free.
        .header_read_timeout(server.config.handshake_timeout_ms.get())
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(http);
    let result = tokio::select! {
        r = http.as_mut() => r,
        _ = server.shutdown.cancelled() => {
            http.as_mut().graceful_shutdown();
            http.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(peer = %conn.peer, error = %e, "HTTP connection ended with an error");
    }
}
