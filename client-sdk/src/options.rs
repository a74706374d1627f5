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

    /// Sets the reconnect policy.
    pub fn with_reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = policy;
        self
    }
}
