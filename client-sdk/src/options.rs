//! Connection options.

use std::fmt;
use std::num::NonZeroUsize;
use std::time::Duration;

use confab_protocol::frame::MAX_SERVER_FRAME_LEN;
use confab_protocol::ResumePoint;

use crate::backoff::ReconnectPolicy;
use crate::error::TlsError;
use crate::tls::TlsTrust;

/// How to connect and behave. [`ConnectOptions::new`] (the same as
/// `ConnectOptions::default()`) suits most uses; change it with the
/// `with_*` builders:
///
/// ```
/// use std::time::Duration;
/// use confab_sdk::{ConnectOptions, ReconnectPolicy};
///
/// let options = ConnectOptions::new()
///     .with_request_timeout(Duration::from_secs(5))
///     .with_event_buffer(1024)
///     .with_reconnect(ReconnectPolicy::exponential(
///         Duration::from_millis(200),
///         Duration::from_secs(10),
///     ));
/// assert_eq!(options.request_timeout, Duration::from_secs(5));
/// ```
///
/// The fields are public to read and assign; the struct is
/// non-exhaustive (later versions may add options), so it cannot be built
/// with a struct literal outside this crate. `Debug` never shows the
/// session token.
#[derive(Clone)]
#[non_exhaustive]
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
    /// connection. Default 16 MiB, the most a server may send (SPEC.md
    /// §10.1). Larger than the server's own 64 KiB request limit because
    /// replies such as a page of history can be much bigger than any request.
    pub max_inbound_frame_len: u32,
    /// Which certificates `confabs://` and `wss://` accept. Default: those
    /// of the public CAs ([`TlsTrust::PublicRoots`]).
    pub tls_trust: TlsTrust,
    /// How many events the client buffers for the application
    /// ([`crate::Events`]). `None` (default): no bound, so an application
    /// that never reads events keeps them all in memory.
    ///
    /// With a bound, a full buffer never holds up the connection (replies
    /// keep arriving, heartbeats keep flowing): events that find it full are
    /// dropped, and the next item the application reads is one
    /// [`crate::Event::Overflow`] that counts them and names, per room, the
    /// last room event dropped, so that the application can reload those
    /// rooms' history. Connection-state events ([`crate::Event::Closed`],
    /// [`crate::Event::Disconnected`], [`crate::Event::Reconnected`]) are
    /// never dropped: they wait, in order, for room in the buffer.
    pub event_buffer: Option<NonZeroUsize>,
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
            max_inbound_frame_len: MAX_SERVER_FRAME_LEN,
            tls_trust: TlsTrust::PublicRoots,
            event_buffer: None,
        }
    }
}

/// Shows `<redacted>` for a secret that is present.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A token as `Debug` may show it: whether there is one, never what it is.
pub(crate) fn redact(token: &Option<String>) -> impl fmt::Debug {
    token.as_ref().map(|_| Redacted)
}

/// A secret that is always present, redacted.
pub(crate) fn redacted() -> impl fmt::Debug {
    Redacted
}

impl fmt::Debug for ConnectOptions {
    /// Every option except the token, which shows as `Some(<redacted>)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("token", &redact(&self.token))
            .field("resume", &self.resume)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("reconnect", &self.reconnect)
            .field("max_inbound_frame_len", &self.max_inbound_frame_len)
            .field("tls_trust", &self.tls_trust)
            .field("event_buffer", &self.event_buffer)
            .finish()
    }
}

impl ConnectOptions {
    /// The defaults: no token, 10 s timeouts, the server's heartbeat, no
    /// reconnection, public CAs, an unbounded event buffer.
    pub fn new() -> Self {
        Self::default()
    }

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

    /// Sets the reconnect policy.
    pub fn with_reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = policy;
        self
    }

    /// Sets the largest frame accepted from the server.
    pub fn with_max_inbound_frame_len(mut self, len: u32) -> Self {
        self.max_inbound_frame_len = len;
        self
    }

    /// Sets which certificates `confabs://` and `wss://` accept.
    pub fn with_tls_trust(mut self, trust: TlsTrust) -> Self {
        self.tls_trust = trust;
        self
    }

    /// Trusts these PEM certificates (a private CA, or a self-signed server
    /// certificate) for `confabs://` and `wss://`, instead of the public CAs.
    pub fn with_trusted_pem(self, pem: impl Into<Vec<u8>>) -> Self {
        self.with_tls_trust(TlsTrust::Pem(pem.into()))
    }

    /// Trusts exactly the server certificate with this SHA-256 fingerprint
    /// (`AB:CD:…` or plain hex), for self-signed development servers.
    pub fn with_fingerprint(self, fingerprint: &str) -> Result<Self, TlsError> {
        Ok(self.with_tls_trust(TlsTrust::fingerprint(fingerprint)?))
    }

    /// Buffers at most `capacity` events for the application; see
    /// [`ConnectOptions::event_buffer`] for what happens when it is full.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    pub fn with_event_buffer(mut self, capacity: usize) -> Self {
        self.event_buffer =
            Some(NonZeroUsize::new(capacity).expect("the event buffer holds at least one event"));
        self
    }

    /// Lets events accumulate without bound until read (the default).
    pub fn with_unbounded_event_buffer(mut self) -> Self {
        self.event_buffer = None;
        self
    }

    /// How the transport dials (the part of the options it needs).
    pub(crate) fn dial(&self) -> crate::transport::Dial {
        crate::transport::Dial {
            max_inbound_frame_len: self.max_inbound_frame_len,
            tls_trust: self.tls_trust.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "5ec7e75ec7e75ec7e75ec7e75ec7e7";

    #[test]
    fn debug_never_shows_the_token() {
        let options = ConnectOptions::new().with_token(TOKEN);
        for shown in [format!("{options:?}"), format!("{options:#?}")] {
            assert!(!shown.contains(TOKEN), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
        }
        let shown = format!("{options:?}");
        assert!(shown.contains("token: Some(<redacted>)"), "{shown}");
        let shown = format!("{:?}", ConnectOptions::new());
        assert!(shown.contains("token: None"), "{shown}");
    }

    #[test]
    fn builders_set_every_option() {
        let o = ConnectOptions::new()
            .with_token("t")
            .with_connect_timeout(Duration::from_secs(1))
            .with_request_timeout(Duration::from_secs(2))
            .with_heartbeat_interval(Duration::from_secs(3))
            .with_max_inbound_frame_len(1000)
            .with_tls_trust(TlsTrust::Fingerprint([9; 32]))
            .with_event_buffer(8);
        assert_eq!(o.token.as_deref(), Some("t"));
        assert_eq!(o.connect_timeout, Duration::from_secs(1));
        assert_eq!(o.request_timeout, Duration::from_secs(2));
        assert_eq!(o.heartbeat_interval, Some(Duration::from_secs(3)));
        assert_eq!(o.max_inbound_frame_len, 1000);
        assert_eq!(o.tls_trust, TlsTrust::Fingerprint([9; 32]));
        assert_eq!(o.event_buffer, NonZeroUsize::new(8));
        assert_eq!(o.with_unbounded_event_buffer().event_buffer, None);
        assert_eq!(
            ConnectOptions::new().max_inbound_frame_len,
            MAX_SERVER_FRAME_LEN
        );
    }

    #[test]
    #[should_panic(expected = "at least one event")]
    fn an_event_buffer_holds_at_least_one_event() {
        let _ = ConnectOptions::new().with_event_buffer(0);
    }
}
