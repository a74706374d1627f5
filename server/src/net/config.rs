//! Settings of the TLS, HTTP and WebSocket doors.
//!
//! They live apart from the core settings in `config.rs`: [`NetFlags`] is
//! flattened into the command line, and [`NetConfig::resolve`] folds the
//! flags and the TOML file's keys of the same names into [`NetConfig`].

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::{ConfigError, FileConfig};

/// Where the TLS listener's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// A PEM certificate chain and its PEM private key.
    Pem { cert: PathBuf, key: PathBuf },
    /// A certificate for `localhost` and `127.0.0.1` generated at start-up
    /// (development only; its fingerprint is logged).
    SelfSigned,
}

/// What the network doors need at start-up.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// The TLS listener: ALPN `confab/1` speaks the binary protocol,
    /// `http/1.1` or no ALPN speaks HTTP (JSON API and WebSocket upgrades).
    /// Bound only when `tls` is set.
    pub tls_listen: SocketAddr,
    /// The certificate; `None`: no TLS listener.
    pub tls: Option<TlsSource>,
    /// The plain HTTP listener (JSON API, `ws://` upgrades, health checks);
    /// `None`: off. Off in `NetConfig::default()` (embedded servers and
    /// tests); the `confabd` binary defaults to [`DEFAULT_HTTP_LISTEN`].
    pub http_listen: Option<SocketAddr>,
    /// Origins allowed to open WebSocket connections (exact match on the
    /// `Origin` header); empty: any origin. Clients that send no `Origin`
    /// (not browsers) are always allowed.
    pub allowed_origins: Vec<String>,
}

/// Where `confabd` listens for plain HTTP unless told otherwise.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:7480";

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            tls_listen: SocketAddr::from(([127, 0, 0, 1], 7443)),
            tls: None,
            http_listen: None,
            allowed_origins: Vec::new(),
        }
    }
}

/// The doors' command-line flags (each also read from its environment
/// variable, or from the TOML file under the same name with underscores).
#[derive(Debug, Default, clap::Args)]
pub struct NetFlags {
    /// PEM certificate chain for the TLS listener (needs --tls-key).
    #[arg(long, env = "CONFAB_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "CONFAB_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Generate a certificate for localhost and 127.0.0.1 at start-up (for development): its SHA-256 fingerprint is logged and its PEM written to DATA_DIR/self-signed-cert.pem.
    #[arg(long, env = "CONFAB_TLS_SELF_SIGNED")]
    pub tls_self_signed: bool,
    /// Address of the TLS listener; ALPN confab/1 → binary protocol, http/1.1 → HTTP API and WebSocket [default: 127.0.0.1:7443]. Bound only with a certificate.
    #[arg(long, env = "CONFAB_TLS_LISTEN")]
    pub tls_listen: Option<SocketAddr>,
    /// Address of the plain HTTP listener (JSON API, ws:// at /ws, /healthz, /readyz), or "off" [default: 127.0.0.1:7480].
    #[arg(long, env = "CONFAB_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// Comma-separated Origins allowed to open WebSocket connections, e.g. "https://chat.example"; empty allows every origin [default: empty].
    #[arg(long, env = "CONFAB_ALLOWED_ORIGINS")]
    pub allowed_origins: Option<String>,
}

impl NetConfig {
    /// Folds flags over the file's keys over the defaults.
    pub fn resolve(flags: NetFlags, file: &FileConfig) -> Result<NetConfig, ConfigError> {
        let d = NetConfig::default();
        let invalid = |name, reason: String| ConfigError::Invalid { name, reason };
        let self_signed = flags.tls_self_signed || file.tls_self_signed.unwrap_or(false);
        let cert = flags.tls_cert.or_else(|| file.tls_cert.clone());
        let key = flags.tls_key.or_else(|| file.tls_key.clone());
        let tls = match (cert, key, self_signed) {
            (None, None, false) => None,
            (None, None, true) => Some(TlsSource::SelfSigned),
            (Some(cert), Some(key), false) => Some(TlsSource::Pem { cert, key }),
            (Some(_), Some(_), true) => {
                return Err(invalid(
                    "tls_self_signed",
                    "give either --tls-cert/--tls-key or --tls-self-signed, not both".into(),
                ))
            }
            (Some(_), None, _) => {
                return Err(invalid("tls_key", "--tls-cert needs --tls-key".into()))
            }
            (None, Some(_), _) => {
                return Err(invalid("tls_cert", "--tls-key needs --tls-cert".into()))
            }
        };
        let http_listen = match flags
            .http_listen
            .or_else(|| file.http_listen.clone())
            .unwrap_or_else(|| DEFAULT_HTTP_LISTEN.to_owned())
        {
            s if s.eq_ignore_ascii_case("off") => None,
            s => Some(s.parse().map_err(|_| {
                invalid(
                    "http_listen",
                    format!("{s:?} is not an address (host:port) or \"off\""),
                )
            })?),
        };
        let allowed_origins = match flags
            .allowed_origins
            .or_else(|| file.allowed_origins.clone())
        {
            None => d.allowed_origins,
            Some(list) => parse_origins(&list),
        };
        Ok(NetConfig {
            tls_listen: flags.tls_listen.or(file.tls_listen).unwrap_or(d.tls_listen),
            tls,
            http_listen,
            allowed_origins,
        })
    }
}

/// Splits a comma-separated origin list; blanks are dropped and a trailing
/// slash is ignored (browsers send `https://host`, people write `https://host/`).
pub fn parse_origins(list: &str) -> Vec<String> {
    list.split(',')
        .map(|o| o.trim().trim_end_matches('/').to_owned())
        .filter(|o| !o.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(flags: NetFlags) -> Result<NetConfig, ConfigError> {
        NetConfig::resolve(flags, &FileConfig::default())
    }

    #[test]
    fn defaults_have_http_on_7480_and_no_tls() {
        let cfg = resolve(NetFlags::default()).unwrap();
        assert_eq!(
            cfg.http_listen,
            Some("127.0.0.1:7480".parse::<SocketAddr>().unwrap())
        );
        assert_eq!(
            cfg.tls_listen,
            "127.0.0.1:7443".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(cfg.tls, None);
        assert!(cfg.allowed_origins.is_empty());
    }

    #[test]
    fn tls_needs_both_files_or_self_signed_alone() {
        let err = resolve(NetFlags {
            tls_cert: Some("c.pem".into()),
            ..NetFlags::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("--tls-key"), "{err}");
        let err = resolve(NetFlags {
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            tls_self_signed: true,
            ..NetFlags::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
        let cfg = resolve(NetFlags {
            tls_self_signed: true,
            ..NetFlags::default()
        })
        .unwrap();
        assert_eq!(cfg.tls, Some(TlsSource::SelfSigned));
    }

    #[test]
    fn http_can_be_turned_off_and_bad_addresses_are_named() {
        let off = resolve(NetFlags {
            http_listen: Some("off".into()),
            ..NetFlags::default()
        })
        .unwrap();
        assert_eq!(off.http_listen, None);
        let err = resolve(NetFlags {
            http_listen: Some("localhost".into()),
            ..NetFlags::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("http_listen"), "{err}");
    }

    #[test]
    fn origins_are_split_trimmed_and_normalised() {
        assert_eq!(
            parse_origins(" https://a.example/, http://b.example:8080 ,,"),
            vec!["https://a.example", "http://b.example:8080"]
        );
        assert!(parse_origins("").is_empty());
    }
}
