//! The admin listener: `GET /metrics` (Prometheus text format) on its own
//! address, through axum.
//!
//! Separate from the client-facing doors (`net/`) on purpose: loopback by
//! default, served even when the HTTP API is off, and not subject to the
//! API's limits. The exporter's own listener is not used because it would
//! own the process-global recorder, which servers started in one test
//! process share.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Binds the admin listener and serves it until `shutdown`. Returns the
/// bound address.
pub async fn serve(addr: SocketAddr, shutdown: CancellationToken) -> std::io::Result<SocketAddr> {
    super::install();
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let collector = metrics_process::Collector::default();
    collector.describe();
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/", get(|| async { "confabd admin: see /metrics\n" }))
        .with_state(Arc::new(collector));
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "metrics listener failed");
        }
    });
    Ok(local)
}

async fn metrics(State(collector): State<Arc<metrics_process::Collector>>) -> impl IntoResponse {
    collector.collect();
    let body = super::render();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn admin_listener_serves_metrics_and_nothing_else() {
        let stop = CancellationToken::new();
        let addr = serve("127.0.0.1:0".parse().unwrap(), stop.clone())
            .await
            .unwrap();
        super::super::broadcast(10, std::time::Instant::now());
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let metrics = get("/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200 OK"), "{metrics}");
        assert!(
            metrics.contains("confab_broadcast_recipients_bucket"),
            "histograms have buckets"
        );
        assert!(
            metrics.contains("process_cpu_seconds_total"),
            "process metrics"
        );
        assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
        stop.cancel();
    }
}
