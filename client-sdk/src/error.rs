//! The SDK's error type and the stable code carried by ERROR and CLOSE frames.

use std::fmt;

use confab_protocol::{DecodeError, ErrorCode, FrameError};

/// A code from an ERROR or CLOSE frame: one this SDK knows, or the raw number
/// of a code newer than it (codes are only ever added, never changed).
///
/// Compares equal to the matching [`ErrorCode`], so tests can write
/// `assert_eq!(code, ErrorCode::LoggedOut)`.
///
/// Deliberately exhaustive: every code is either known or not, so these
/// two variants are all there will ever be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// A code listed in [`ErrorCode`].
    Known(ErrorCode),
    /// A code this SDK does not know.
    Unknown(u16),
}

impl Code {
    /// Classifies a raw code from the wire.
    pub fn from_u16(raw: u16) -> Code {
        match ErrorCode::from_u16(raw) {
            Some(c) => Code::Known(c),
            None => Code::Unknown(raw),
        }
    }

    /// The numeric value, as sent on the wire.
    pub fn as_u16(self) -> u16 {
        match self {
            Code::Known(c) => c as u16,
            Code::Unknown(raw) => raw,
        }
    }

    /// The known code, if this SDK knows it.
    pub fn known(self) -> Option<ErrorCode> {
        match self {
            Code::Known(c) => Some(c),
            Code::Unknown(_) => None,
        }
    }
}

impl From<ErrorCode> for Code {
    fn from(c: ErrorCode) -> Code {
        Code::Known(c)
    }
}

impl PartialEq<ErrorCode> for Code {
    fn eq(&self, other: &ErrorCode) -> bool {
        *self == Code::Known(*other)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Code::Known(c) => c.fmt(f),
            Code::Unknown(raw) => write!(f, "UNKNOWN ({raw})"),
        }
    }
}

/// A boxed error, the underlying cause kept by [`TlsError`] and
/// [`WebSocketError`].
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong talking to a Confab server.
///
/// Non-exhaustive: later versions may add variants, so a `match` needs a
/// wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused the request with an ERROR frame. The connection
    /// stays usable.
    #[error("server error {code}: {message}")]
    Server {
        /// The ERROR frame's code.
        code: Code,
        /// The server's explanation, for humans.
        message: String,
        /// When the server says to try again (TOO_MANY_ATTEMPTS,
        /// OVERLOADED, RATE_LIMITED, ROOM_MOVING), if it says.
        retry_after: Option<std::time::Duration>,
    },
    /// The server sent CLOSE and closed the connection.
    #[error("connection closed by the server, {code}: {message}")]
    Closed {
        /// The CLOSE frame's code.
        code: Code,
        /// The server's explanation, for humans.
        message: String,
    },
    /// No reply arrived within the request (or connect) timeout.
    #[error("timed out waiting for the server")]
    Timeout,
    /// A socket error while connecting.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A frame from the server could not be decoded.
    #[error("protocol error: {0}")]
    Protocol(#[from] DecodeError),
    /// The server's byte stream could not be split into frames.
    #[error("framing error: {0}")]
    Framing(#[from] FrameError),
    /// The server answered with a frame of the wrong type for the request.
    #[error("unexpected reply to {request}: frame type 0x{kind:02x}")]
    UnexpectedReply {
        /// The request method that got the reply.
        request: &'static str,
        /// The reply's frame type.
        kind: u8,
    },
    /// The request would exceed the frame size the server announced in
    /// WELCOME; it was not sent (the server would have closed the connection).
    #[error("request of {len} bytes exceeds the server's maximum frame length {max}")]
    FrameTooLarge {
        /// The encoded request's length field.
        len: usize,
        /// The server's announced `max_frame_len`.
        max: u32,
    },
    /// The connection is gone (dropped, closed by [`crate::Client::close`], or
    /// being re-established). Requests in flight when it dropped fail with
    /// this; they are never resent automatically.
    #[error("disconnected from the server")]
    Disconnected,
    /// TLS could not be set up: the handshake failed (untrusted
    /// certificate, fingerprint mismatch, no common ALPN protocol…) or the
    /// trust options are unusable. [`TlsError::kind`] says which;
    /// `source()` is the underlying error (a `rustls::Error`, say).
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The WebSocket upgrade was refused or failed.
    /// [`WebSocketError::kind`] says which; `source()` is the underlying
    /// error, if any.
    #[error(transparent)]
    WebSocket(#[from] WebSocketError),
    /// The HTTP API ([`crate::HttpApi`]) refused a request. When the body
    /// is the API's error shape, `code` is the protocol's code and `reason`
    /// the refusal's stable word where one code covers several (file
    /// uploads: `too_large`, `type_mismatch`, …; SPEC.md §13.2).
    #[error("HTTP {status} from the server, {}: {message}", code.map_or_else(|| "no code".to_owned(), |c| c.to_string()))]
    Http {
        /// The HTTP status.
        status: u16,
        /// The error body's protocol code, if the body had one.
        code: Option<Code>,
        /// The error body's `reason`, if any.
        reason: Option<String>,
        /// The server's explanation, for humans.
        message: String,
        /// When the server says to try again (`retry_after_ms`, else the
        /// Retry-After header), if it says.
        retry_after: Option<std::time::Duration>,
    },
    /// The URL's scheme is not supported by this SDK.
    #[error("unsupported URL scheme {0:?} (supported: confab://, confabs://, ws://, wss://)")]
    UnsupportedScheme(String),
    /// The URL could not be parsed.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// What kind of TLS failure a [`TlsError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsErrorKind {
    /// The trust options are unusable: a PEM that does not parse or holds
    /// no certificate, or text that is not a SHA-256 fingerprint.
    InvalidTrust,
    /// The URL's host cannot be a TLS server name.
    InvalidServerName,
    /// rustls refused the client configuration.
    Config,
    /// The handshake failed: the certificate is not trusted or not the
    /// pinned one, no common ALPN protocol, the connection dropped…
    Handshake,
}

/// A TLS failure: its [`TlsErrorKind`], a message saying what was being
/// done, and the underlying error as [`std::error::Error::source`].
///
/// `Display` shows the message followed by the underlying error.
#[derive(Debug)]
pub struct TlsError {
    kind: TlsErrorKind,
    context: String,
    source: Option<BoxError>,
}

impl TlsError {
    pub(crate) fn new(
        kind: TlsErrorKind,
        context: impl Into<String>,
        source: Option<BoxError>,
    ) -> TlsError {
        TlsError {
            kind,
            context: context.into(),
            source,
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> TlsErrorKind {
        self.kind
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.context)?;
        match &self.source {
            Some(source) => write!(f, ": {source}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// What kind of WebSocket failure a [`WebSocketError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WebSocketErrorKind {
    /// The upgrade request could not be built (an unusable path, say).
    Request,
    /// The server answered the upgrade with an HTTP status other than 101;
    /// [`WebSocketError::status`] has it.
    Refused,
    /// The upgrade failed otherwise: the connection dropped, or the answer
    /// was not a valid upgrade.
    Handshake,
}

/// A WebSocket failure: its [`WebSocketErrorKind`], a message saying what
/// was being done, and the underlying error, if any, as
/// [`std::error::Error::source`].
///
/// `Display` shows the message followed by the underlying error.
#[derive(Debug)]
pub struct WebSocketError {
    kind: WebSocketErrorKind,
    context: String,
    status: Option<u16>,
    source: Option<BoxError>,
}

impl WebSocketError {
    pub(crate) fn new(
        kind: WebSocketErrorKind,
        context: impl Into<String>,
        source: Option<BoxError>,
    ) -> WebSocketError {
        WebSocketError {
            kind,
            context: context.into(),
            status: None,
            source,
        }
    }

    pub(crate) fn refused(status: u16, context: impl Into<String>) -> WebSocketError {
        WebSocketError {
            status: Some(status),
            ..WebSocketError::new(WebSocketErrorKind::Refused, context, None)
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> WebSocketErrorKind {
        self.kind
    }

    /// The HTTP status the server refused the upgrade with
    /// ([`WebSocketErrorKind::Refused`] only).
    pub fn status(&self) -> Option<u16> {
        self.status
    }
}

impl fmt::Display for WebSocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.context)?;
        match &self.source {
            Some(source) => write!(f, ": {source}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for WebSocketError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

impl Error {
    /// The HTTP API's `reason` for [`Error::Http`] (SPEC.md §13.2), if the
    /// error body had one.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Error::Http { reason, .. } => reason.as_deref(),
            _ => None,
        }
    }

    /// The server's code for [`Error::Server`], [`Error::Closed`] and
    /// [`Error::Http`] when this SDK knows it; `None` for every other
    /// variant.
    pub fn code(&self) -> Option<ErrorCode> {
        self.raw_code().and_then(Code::known)
    }

    /// How long the server asked the client to wait before trying again
    /// ([`Error::Server`] with TOO_MANY_ATTEMPTS, OVERLOADED,
    /// RATE_LIMITED or ROOM_MOVING — a cluster node's room being handed
    /// over or owned elsewhere; nothing was applied, so the same request
    /// may be sent again after it —; [`Error::Http`] with a 429 or 503),
    /// when it said.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::Server { retry_after, .. } | Error::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The error an ERROR frame's fields stand for.
    pub(crate) fn server(code: u16, message: String, retry_after_ms: u32) -> Error {
        Error::Server {
            code: Code::from_u16(code),
            message,
            retry_after: (retry_after_ms > 0)
                .then(|| std::time::Duration::from_millis(retry_after_ms.into())),
        }
    }

    /// The raw code of a `Server`, `Closed` or `Http` error, known to this
    /// build or not.
    pub fn raw_code(&self) -> Option<Code> {
        match self {
            Error::Server { code, .. } | Error::Closed { code, .. } => Some(*code),
            Error::Http { code, .. } => *code,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_codes_keep_their_number() {
        assert_eq!(Code::from_u16(203), ErrorCode::UsernameTaken);
        assert_eq!(Code::from_u16(203).as_u16(), 203);
        assert_eq!(Code::from_u16(999), Code::Unknown(999));
        assert_eq!(Code::from_u16(999).known(), None);
    }

    #[test]
    fn error_code_helper_reads_server_and_close_errors_only() {
        let e = Error::Server {
            code: Code::from_u16(302),
            message: "x".into(),
            retry_after: None,
        };
        assert_eq!(e.code(), Some(ErrorCode::AlreadyMember));
        let e = Error::Closed {
            code: Code::from_u16(602),
            message: "x".into(),
        };
        assert_eq!(e.code(), Some(ErrorCode::LoggedOut));
        assert_eq!(Error::Timeout.code(), None);
    }
}
