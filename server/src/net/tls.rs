//! TLS: the crypto provider, the certificate, and the TLS port, where ALPN
//! decides what a connection speaks.
//!
//! **One crypto provider: ring.** Every rustls user in the workspace is
//! built without aws-lc-rs (tokio-rustls and rcgen enable it by default), so
//! exactly one provider is compiled in; [`install_crypto_provider`] also
//! makes it the process default at start-up, so a dependency that asks
//! rustls for "the" provider finds it instead of panicking.
//!
//! On the TLS port:
//!
//! | client sends | server does |
//! |---|---|
//! | ClientHello with ALPN `confab/1` | binary protocol ([`session::serve`]) |
//! | ClientHello with ALPN `http/1.1`, or no ALPN | HTTP: JSON API, WebSocket upgrades |
//! | ClientHello with only other ALPN ids | TLS alert `no_application_protocol` (RFC 7301) |
//! | plain HTTP (no TLS) | `400` JSON error: "this port speaks TLS" |
//! | other plain bytes | protocol CLOSE `MALFORMED_FRAME` saying the same |

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use bytes::BytesMut;
use confab_protocol::{ErrorCode, ServerMsg};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

use super::http;
use crate::config::TlsSource;
use crate::net::frames::{Channel, ChannelSink, Framing, ProtocolFrames};
use crate::outbound::Writer;
use crate::session;
use crate::state::ServerState;

use confab_protocol::frame::ALPN_CONFAB;
/// ALPN id of HTTP/1.1 (JSON API and WebSocket upgrades).
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The first byte of every TLS record that starts a handshake.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Makes ring the process-wide rustls provider. Idempotent: a second call
/// (another server in the same process, tests) finds it installed.
pub fn install_crypto_provider() {
    // Err means a provider is already installed: only ring is compiled in,
    // so it is this one.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A loaded certificate, ready to accept.
pub struct TlsSetup {
    pub acceptor: TlsAcceptor,
    /// SHA-256 of the leaf certificate, `AB:CD:…`.
    pub fingerprint: String,
    /// The PEM file written for a self-signed certificate.
    pub self_signed_pem: Option<PathBuf>,
}

impl TlsSetup {
    /// Reads the PEM files, or generates a self-signed certificate for
    /// localhost and writes its PEM into `data_dir` for clients to trust.
    pub fn load(source: &TlsSource, data_dir: &Path) -> anyhow::Result<TlsSetup> {
        let (chain, key, self_signed_pem) = match source {
            TlsSource::Pem { cert, key } => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .with_context(|| format!("reading certificates from {}", cert.display()))?;
                if chain.is_empty() {
                    anyhow::bail!("{} holds no PEM certificate", cert.display());
                }
                let key = PrivateKeyDer::from_pem_file(key)
                    .with_context(|| format!("reading the private key from {}", key.display()))?;
                (chain, key, None)
            }
            TlsSource::SelfSigned => {
                let (cert, key, pem) = self_signed()?;
                std::fs::create_dir_all(data_dir)
                    .with_context(|| format!("creating {}", data_dir.display()))?;
                let path = data_dir.join("self-signed-cert.pem");
                std::fs::write(&path, pem)
                    .with_context(|| format!("writing {}", path.display()))?;
                (vec![cert], key, Some(path))
            }
        };
        let fingerprint = fingerprint(&chain[0]);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .context("the TLS certificate and key do not form a usable pair")?;
        config.alpn_protocols = vec![ALPN_CONFAB.to_vec(), ALPN_HTTP1.to_vec()];
        if let TlsSource::SelfSigned = source {
            tracing::warn!(
                %fingerprint,
                pem = %self_signed_pem.as_deref().map(Path::display).map(|d| d.to_string()).unwrap_or_default(),
                "TLS with a self-signed certificate for localhost: for development only; clients must trust this fingerprint or PEM"
            );
        }
        Ok(TlsSetup {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            fingerprint,
            self_signed_pem,
        })
    }
}

/// A fresh certificate for `localhost` and `127.0.0.1`: DER, key, PEM.
fn self_signed() -> anyhow::Result<(CertificateDer<'static>, PrivateKeyDer<'static>, String)> {
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let certified =
        rcgen::generate_simple_self_signed(names).context("generating a certificate")?;
    let key = PrivateKeyDer::try_from(certified.signing_key.serialize_der())
        .map_err(|e| anyhow::anyhow!("generated key: {e}"))?;
    Ok((certified.cert.der().clone(), key, certified.cert.pem()))
}

/// SHA-256 of a DER certificate as colon-separated upper-case hex, the form
/// `openssl x509 -fingerprint -sha256` prints.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = Sha256::digest(cert.as_ref());
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// Serves one connection on the TLS port.
pub async fn serve_connection(
    server: Arc<ServerState>,
    router: axum::Router,
    acceptor: TlsAcceptor,
    tracker: TaskTracker,
    stream: TcpStream,
    peer: SocketAddr,
) {
    let timeout = server.config.handshake_timeout_ms.get();
    // A client that speaks plaintext to this port gets told so, in the
    // protocol it seems to speak, instead of a TLS alert it cannot read.
    let mut first = [0u8; 1];
    match tokio::time::timeout(timeout, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == TLS_HANDSHAKE_RECORD => {}
        Ok(Ok(1)) => return refuse_plaintext(stream, first[0], peer).await,
        _ => return,
    }
    let tls = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    match alpn.as_deref() {
        Some(ALPN_CONFAB) => {
            let open = crate::metrics::connection_opened("tls");
            // The socket and the rustls connection are taken back from
            // tokio-rustls: the session reads and its queue writes them
            // directly (`net/frames.rs`).
            let (tcp, conn) = tls.into_inner();
            let channel = Channel::tls(tcp, conn);
            let frames = ProtocolFrames::new(channel.clone(), server.config.max_frame_len);
            let writer = Writer::new(ChannelSink::new(channel, Framing::Raw));
            // A task of its own: this handshake task ends, and the
            // session's future is not nested in it (session::serve).
            tracker.spawn(session::serve(server, frames, writer, peer, open));
        }
        // rustls refuses every other id during the handshake.
        _ => {
            http::serve_connection(server, router, tls, http::ConnInfo { peer, tls: true }).await;
        }
    }
}

/// Answers plaintext on the TLS port and closes.
async fn refuse_plaintext(mut stream: TcpStream, first: u8, peer: SocketAddr) {
    const HINT: &str = "this port speaks TLS: use https:// or wss:// (ALPN http/1.1), or confabs:// (ALPN confab/1)";
    tracing::debug!(%peer, first, "plaintext on the TLS port");
    let reply = if first.is_ascii_uppercase() {
        let body = super::api::error_json(ErrorCode::MalformedFrame, HINT);
        format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    } else {
        let mut buf = BytesMut::new();
        ServerMsg::Close {
            code: ErrorCode::MalformedFrame as u16,
            message: HINT.into(),
        }
        .encode(0, &mut buf);
        buf.to_vec()
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        let _ = stream.write_all(&reply).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificates_load_and_have_an_openssl_style_fingerprint() {
        install_crypto_provider();
        install_crypto_provider(); // idempotent
        let dir = tempfile::tempdir().unwrap();
        let setup = TlsSetup::load(&TlsSource::SelfSigned, dir.path()).unwrap();
        assert_eq!(setup.fingerprint.len(), 32 * 3 - 1);
        assert!(setup
            .fingerprint
            .chars()
            .all(|c| c == ':' || c.is_ascii_hexdigit()));
        let pem = std::fs::read(setup.self_signed_pem.unwrap()).unwrap();
        let cert = CertificateDer::from_pem_slice(&pem).unwrap();
        assert_eq!(
            fingerprint(&cert),
            setup.fingerprint,
            "the PEM is the served certificate"
        );
    }

    #[test]
    fn missing_or_mismatched_pem_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = TlsSetup::load(
            &TlsSource::Pem {
                cert: dir.path().join("nope.pem"),
                key: dir.path().join("nope.key"),
            },
            dir.path(),
        )
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("nope.pem"), "{err:#}");
        // A certificate with somebody else's key.
        let names = vec!["localhost".to_owned()];
        let mine = rcgen::generate_simple_self_signed(names.clone()).unwrap();
        let other = rcgen::generate_simple_self_signed(names).unwrap();
        let cert_path = dir.path().join("c.pem");
        let key_path = dir.path().join("k.pem");
        std::fs::write(&cert_path, mine.cert.pem()).unwrap();
        std::fs::write(&key_path, other.signing_key.serialize_pem()).unwrap();
        let err = TlsSetup::load(
            &TlsSource::Pem {
                cert: cert_path,
                key: key_path,
            },
            dir.path(),
        )
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("usable pair"), "{err:#}");
    }
}
