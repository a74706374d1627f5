//! Connection options.

use std::time::Duration;

use confab_protocol::ResumePoint;

use crate::backoff::ReconnectPolicy;

/// Default bound on the size of a frame accepted from the server (16 MiB).
/// Larger than the server's own 64 KiB request limit because replies such
/// as a page of history can be much bigger than any request.
pub const DEFAULT_MAX_INBOUND_FRAME_LEN: u32 = 16 * 1024 * 1024;

/// How to connect and behave. `ConnectOptions::default()` suits most uses;
/// change fields directly or with the `with_*` builders.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// A session token from an earlier [`crate::Session`]: the connection is
    /// authenticated in HELLO, without LOGIN.
    pub token: Option<String>,
    /// Rooms whose events after the given seq should be replayed right after
    /// WELCOME (from an earlier [`crate::Client::resume_points`]). These rooms
    /// are tracked for duplicate dropping from the start.
    pub resume: Vec<ResumePoint>,
    /// Bound on dialling plus the HELLO/WELCOME handshake. Default 10 s.
    pub connect_timeout: Duration,
    /// Bound on each request's reply. Default 10 s.
    pub request_timeout: Duration,
    /// How often to send PING. `None` (default): half the server's announced
    /// `heartbeat_ms`, or no heartbeat if it announces 0.
    pub heartbeat_interval: Option<Duration>,
    /// Whether to reconnect after the connection drops. Default: disabled.
    pub reconnect: ReconnectPolicy,
    /// Largest frame accepted from the server; a larger one drops the
    /// connection. Default [`DEFAULT_MAX_INBOUND_FRAME_LEN`].
    pub max_inbound_frame_len: u32,
    /// Which certificates `confabs://` and `wss://` accept. Default: those
    /// of the public CAs ([`TlsTrust::PublicRoots`]).
    pub tls_trust: TlsTrust,
}

/// Which server certificates a TLS connection (`confabs://`, `wss://`)
/// accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// Parses a SHA-256 fingerprint written as 64 hex digits, with or
    /// without colons (`AB:CD:…` as openssl and confabd print it).
    pub fn fingerprint(text: &str) -> Result<TlsTrust, crate::Error> {
        let hex: String = text
            .trim()
            .trim_start_matches("sha256:")
            .chars()
            .filter(|c| *c != ':')
            .collect();
        let bad = || {
            crate::Error::Tls(format!(
                "{text:?} is not a SHA-256 fingerprint (64 hex digits)"
            ))
        };
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(TlsTrust::Fingerprint(out))
    }
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            token: None,
            resume: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            heartbeat_interval: None,
            reconnect: ReconnectPolicy::disabled(),
            max_inbound_frame_len: DEFAULT_MAX_INBOUND_FRAME_LEN,
            tls_trust: TlsTrust::PublicRoots,
        }
    }
}

impl ConnectOptions {
    /// Authenticates with a session token in HELLO.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Asks for missed events of these rooms to be replayed.
    pub fn with_resume(mut self, resume: Vec<ResumePoint>) -> Self {
        self.resume = resume;
        self
    }

    /// Sets the per-request timeout.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the connect (dial + handshake) timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sends PING at this interval instead of the server's suggestion.
    pub fn with_heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = Some(interval);
        self
    }

    /// Trusts these PEM certificates (a private CA, or a self-signed server
    /// certificate) for `confabs://` and `wss://`, instead of the public CAs.
    pub fn with_trusted_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_trust = TlsTrust::Pem(pem.into());
        self
    }

    /// Trusts exactly the server certificate with this SHA-256 fingerprint
    /// (`AB:CD:…` or plain hex), for self-signed development servers.
    pub fn with_fingerprint(mut self, fingerprint: &str) -> Result<Self, crate::Error> {
        self.tls_trust = TlsTrust::fingerprint(fingerprint)?;
        Ok(self)
    }

    /// How the transport dials (the part of the options it needs).
    pub(crate) fn dial(&self) -> crate::transport::Dial {
        crate::transport::Dial {
            max_inbound_frame_len: self.max_inbound_frame_len,
            tls_trust: self.tls_trust.clone(),
        }
    }

    /// Sets the reconnect policy.
    pub fn with_reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = policy;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let colons = (0..32)
            .map(|i| format!("{i:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        let plain: String = (0..32).map(|i| format!("{i:02x}")).collect();
        let expected: [u8; 32] = std::array::from_fn(|i| i as u8);
        assert_eq!(
            TlsTrust::fingerprint(&colons).unwrap(),
            TlsTrust::Fingerprint(expected)
        );
        assert_eq!(
            TlsTrust::fingerprint(&plain).unwrap(),
            TlsTrust::Fingerprint(expected)
        );
        assert!(TlsTrust::fingerprint("AB:CD").is_err());
        assert!(TlsTrust::fingerprint(&"zz".repeat(32)).is_err());
    }
}
