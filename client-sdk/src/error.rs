//! The SDK's error type and the stable code carried by ERROR and CLOSE frames.

use std::fmt;

use confab_protocol::{DecodeError, ErrorCode, FrameError};

/// A code from an ERROR or CLOSE frame: one this SDK knows, or the raw number
/// of a code newer than it (codes are only ever added, never changed).
///
/// Compares equal to the matching [`ErrorCode`], so tests can write
/// `assert_eq!(code, ErrorCode::LoggedOut)`.
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

/// Everything that can go wrong talking to a Confab server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server refused the request with an ERROR frame. The connection
    /// stays usable.
    #[error("server error {code}: {message}")]
    Server { code: Code, message: String },
    /// The server sent CLOSE and closed the connection.
    #[error("connection closed by the server, {code}: {message}")]
    Closed { code: Code, message: String },
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
    UnexpectedReply { request: &'static str, kind: u8 },
    /// The request would exceed the frame size the server announced in
    /// WELCOME; it was not sent (the server would have closed the connection).
    #[error("request of {len} bytes exceeds the server's maximum frame length {max}")]
    FrameTooLarge { len: usize, max: u32 },
    /// The connection is gone (dropped, closed by [`crate::Client::close`], or
    /// being re-established). Requests in flight when it dropped fail with
    /// this; they are never resent automatically.
    #[error("disconnected from the server")]
    Disconnected,
    /// TLS could not be set up: the handshake failed (untrusted
    /// certificate, fingerprint mismatch, no common ALPN protocol…) or the
    /// trust options are unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// The WebSocket upgrade was refused or failed, or the server broke
    /// WebSocket framing.
    #[error("WebSocket: {0}")]
    WebSocket(String),
    /// The URL's scheme is not supported by this SDK.
    #[error("unsupported URL scheme {0:?} (supported: confab://, confabs://, ws://, wss://)")]
    UnsupportedScheme(String),
    /// The URL could not be parsed.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: &'static str },
}

impl Error {
    /// The server's code for [`Error::Server`] and [`Error::Closed`] when this
    /// SDK knows it; `None` for every other variant.
    pub fn code(&self) -> Option<ErrorCode> {
        self.raw_code().and_then(Code::known)
    }

    /// The server's code for [`Error::Server`] and [`Error::Closed`], known or
    /// not.
    pub fn raw_code(&self) -> Option<Code> {
        match self {
            Error::Server { code, .. } | Error::Closed { code, .. } => Some(*code),
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
