//! TLS client configuration for `confabs://` and `wss://`, public so that
//! tools speaking the protocol themselves (the load generator, say) trust
//! servers exactly as the SDK does.
//!
//! rustls with the ring provider, passed explicitly: a library does not
//! install process-wide defaults. The types here are rustls 0.23's
//! (re-exported as [`rustls`]).
//!
//! ```
//! use confab_sdk::tls::{self, TlsTrust, ALPN_CONFAB};
//!
//! // A self-signed server's certificate, pinned by its SHA-256 fingerprint.
//! let trust = TlsTrust::fingerprint(&format!("{}CD", "AB:".repeat(31)))?;
//! let config = tls::client_config(&trust, ALPN_CONFAB)?;
//! assert_eq!(config.alpn_protocols, vec![b"confab/1".to_vec()]);
//! # Ok::<(), confab_sdk::TlsError>(())
//! ```

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms,
};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use crate::error::{TlsError, TlsErrorKind};

pub use confab_protocol::frame::ALPN_CONFAB;
/// The rustls version this module's types come from.
pub use rustls;

/// ALPN id for HTTP/1.1, which carries the WebSocket upgrade (`wss://`).
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Which server certificates a TLS connection (`confabs://`, `wss://`)
/// accepts.
///
/// Non-exhaustive: later versions may add ways to trust a server.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsTrust {
    /// Certificates of the public certificate authorities (the Mozilla root
    /// program, built in); the host name must match.
    #[default]
    PublicRoots,
    /// Certificates issued by (or equal to) these PEM certificates instead:
    /// a private CA, or a server's self-signed certificate such as the one
    /// `confabd --tls-self-signed` writes. The host name must match.
    Pem(Vec<u8>),
    /// Exactly the certificate whose DER has this SHA-256 digest (the
    /// fingerprint `confabd --tls-self-signed` logs). No CA and no host name
    /// are checked: the pin is the identity.
    Fingerprint([u8; 32]),
}

impl TlsTrust {
    /// Trusts exactly the certificate with this SHA-256 fingerprint,
    /// written as [`parse_fingerprint`] reads it.
    pub fn fingerprint(text: &str) -> Result<TlsTrust, TlsError> {
        parse_fingerprint(text).map(TlsTrust::Fingerprint)
    }
}

impl fmt::Debug for TlsTrust {
    /// PEM bytes are summarised, fingerprints written as hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsTrust::PublicRoots => f.write_str("PublicRoots"),
            TlsTrust::Pem(pem) => write!(f, "Pem(<{} bytes>)", pem.len()),
            TlsTrust::Fingerprint(fp) => write!(f, "Fingerprint({})", format_fingerprint(fp)),
        }
    }
}

/// Parses a SHA-256 fingerprint written as 64 hex digits, with or without
/// colons (`AB:CD:…` as openssl and confabd print it) and an optional
/// `sha256:` prefix.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], TlsError> {
    let trimmed = text.trim();
    let digits: String = trimmed
        .strip_prefix("sha256:")
        .unwrap_or(trimmed)
        .chars()
        .filter(|c| *c != ':')
        .collect();
    let mut out = [0u8; 32];
    hex::decode_to_slice(&digits, &mut out).map_err(|e| {
        TlsError::new(
            TlsErrorKind::InvalidTrust,
            format!("{text:?} is not a SHA-256 fingerprint (64 hex digits)"),
            Some(Box::new(e)),
        )
    })?;
    Ok(out)
}

/// Writes a fingerprint as upper-case hex pairs joined by colons
/// (`AB:CD:…`), the form confabd logs and [`parse_fingerprint`] reads.
pub fn format_fingerprint(fingerprint: &[u8; 32]) -> String {
    let digits = hex::encode_upper(fingerprint);
    let mut out = String::with_capacity(digits.len() * 3 / 2);
    for (i, pair) in digits.as_bytes().chunks(2).enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.extend(pair.iter().map(|&b| char::from(b)));
    }
    out
}

/// The SHA-256 fingerprint of a DER-encoded certificate.
pub fn fingerprint_of(cert_der: &[u8]) -> [u8; 32] {
    Sha256::digest(cert_der).into()
}

/// A rustls client configuration (ring provider, safe default protocol
/// versions, no client certificate) that trusts servers as `trust` says
/// and offers exactly the ALPN id `alpn` ([`ALPN_CONFAB`] for the binary
/// protocol, [`ALPN_HTTP1`] for WebSocket).
pub fn client_config(trust: &TlsTrust, alpn: &[u8]) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            TlsError::new(
                TlsErrorKind::Config,
                "rustls refused the protocol versions",
                Some(Box::new(e)),
            )
        })?;
    let invalid = |context: &str, source: Option<crate::error::BoxError>| {
        TlsError::new(TlsErrorKind::InvalidTrust, context, source)
    };
    let mut config = match trust {
        TlsTrust::PublicRoots => {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsTrust::Pem(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| invalid("reading the trusted PEM", Some(e.into())))?;
                roots
                    .add(cert)
                    .map_err(|e| invalid("adding a trusted PEM certificate", Some(Box::new(e))))?;
            }
            if roots.is_empty() {
                return Err(invalid("the trusted PEM holds no certificate", None));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsTrust::Fingerprint(fingerprint) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCertificate::with_provider(
                *fingerprint,
                &provider,
            )))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

/// The TLS server name for `host`.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(host.to_owned()).map_err(|e| {
        TlsError::new(
            TlsErrorKind::InvalidServerName,
            format!("{host:?} is not a valid TLS server name"),
            Some(Box::new(e)),
        )
    })
}

/// A rustls certificate verifier that accepts exactly one certificate, by
/// its SHA-256 digest. No CA and no host name are checked, but the
/// handshake signatures still are, so the server must hold the key.
#[derive(Debug)]
pub struct PinnedCertificate {
    fingerprint: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedCertificate {
    /// Pins `fingerprint`, verifying signatures with the ring provider.
    pub fn new(fingerprint: [u8; 32]) -> PinnedCertificate {
        Self::with_provider(fingerprint, &rustls::crypto::ring::default_provider())
    }

    /// Pins `fingerprint`, verifying signatures with `provider`'s algorithms.
    pub fn with_provider(fingerprint: [u8; 32], provider: &CryptoProvider) -> PinnedCertificate {
        PinnedCertificate {
            fingerprint,
            algorithms: provider.signature_verification_algorithms,
        }
    }

    /// The pinned fingerprint.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let digest = fingerprint_of(end_entity.as_ref());
        if digest == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server certificate's SHA-256 fingerprint {} is not the trusted one",
                format_fingerprint(&digest)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let expected: [u8; 32] = std::array::from_fn(|i| i as u8);
        let colons = format_fingerprint(&expected);
        assert!(colons.starts_with("00:01:02:"), "{colons}");
        assert_eq!(colons.len(), 32 * 3 - 1);
        let plain = hex::encode(expected);
        for text in [colons.clone(), plain.clone(), format!("sha256:{plain}")] {
            assert_eq!(
                TlsTrust::fingerprint(&text).unwrap(),
                TlsTrust::Fingerprint(expected),
                "{text}"
            );
        }
        assert_eq!(parse_fingerprint(&colons.to_lowercase()).unwrap(), expected);
    }

    #[test]
    fn bad_fingerprints_say_why_and_keep_the_hex_error() {
        for text in ["AB:CD".to_owned(), "zz".repeat(32), "é".repeat(32)] {
            let err = parse_fingerprint(&text).unwrap_err();
            assert_eq!(err.kind(), TlsErrorKind::InvalidTrust);
            assert!(
                err.to_string().contains("not a SHA-256 fingerprint"),
                "{err}"
            );
            let source = err.source().expect("a source");
            assert!(source.downcast_ref::<hex::FromHexError>().is_some());
        }
    }

    #[test]
    fn configs_offer_exactly_the_given_alpn() {
        let c = client_config(&TlsTrust::PublicRoots, ALPN_CONFAB).unwrap();
        assert_eq!(c.alpn_protocols, vec![b"confab/1".to_vec()]);
        let c = client_config(&TlsTrust::Fingerprint([1; 32]), ALPN_HTTP1).unwrap();
        assert_eq!(c.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn unusable_pem_is_invalid_trust() {
        let err = client_config(&TlsTrust::Pem(b"not a pem".to_vec()), ALPN_CONFAB).unwrap_err();
        assert_eq!(err.kind(), TlsErrorKind::InvalidTrust);
    }

    #[test]
    fn pinned_certificate_accepts_only_its_fingerprint() {
        let cert = CertificateDer::from(b"any certificate bytes".to_vec());
        let name = ServerName::try_from("localhost").unwrap();
        let now = UnixTime::now();
        let good = PinnedCertificate::new(fingerprint_of(cert.as_ref()));
        assert!(good.verify_server_cert(&cert, &[], &name, &[], now).is_ok());
        let bad = PinnedCertificate::new([0; 32]);
        let err = bad
            .verify_server_cert(&cert, &[], &name, &[], now)
            .unwrap_err();
        let shown = format_fingerprint(&fingerprint_of(cert.as_ref()));
        assert!(err.to_string().contains(&shown), "{err}");
    }

    #[test]
    fn trust_debug_is_short() {
        let pem = TlsTrust::Pem(vec![b'x'; 2000]);
        assert_eq!(format!("{pem:?}"), "Pem(<2000 bytes>)");
        let fp = format!("{:?}", TlsTrust::Fingerprint([0xab; 32]));
        assert!(fp.starts_with("Fingerprint(AB:AB:"), "{fp}");
    }
}
