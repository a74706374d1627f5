//! The TLS handshake for `confabs://` and `wss://`; the configuration is
//! [`crate::tls`]'s.

use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::{BoxError, TlsError, TlsErrorKind};
use crate::tls::{client_config, server_name, TlsTrust};

/// Performs the TLS handshake, offering exactly `alpn`.
pub(crate) async fn connect(
    stream: TcpStream,
    host: &str,
    alpn: &[u8],
    trust: &TlsTrust,
) -> Result<TlsStream<TcpStream>, TlsError> {
    let config = client_config(trust, alpn)?;
    let name = server_name(host)?;
    TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
        .map_err(|e| {
            // tokio-rustls wraps the rustls::Error in an io::Error; keep the
            // rustls error itself as the source when there is one.
            let source: BoxError = match e.get_ref() {
                Some(inner) if inner.is::<rustls::Error>() => {
                    e.into_inner().expect("an inner error was just seen")
                }
                _ => Box::new(e),
            };
            TlsError::new(
                TlsErrorKind::Handshake,
                format!("TLS handshake with {host} failed"),
                Some(source),
            )
        })
}
