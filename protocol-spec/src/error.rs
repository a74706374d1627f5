//! Stable error and close codes (SPEC.md §6).
//!
//! A code never changes meaning once published; new codes are only added.
//! The numeric ranges group codes by who is at fault and what to do next.

/// Defines [`ErrorCode`] with its numeric value, stable name and default
/// human message in one table, so the three can never drift apart.
macro_rules! error_codes {
    ($( $(#[$doc:meta])* $name:ident = $num:literal, $text:literal; )*) => {
        /// A stable numeric error code carried by `ERROR` and `CLOSE` frames.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum ErrorCode {
            $( $(#[$doc])* $name = $num, )*
        }

        impl ErrorCode {
            /// Every code, in numeric order (used by SPEC tests and SDKs).
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name,)*];

            pub fn from_u16(v: u16) -> Option<ErrorCode> {
                match v {
                    $( $num => Some(ErrorCode::$name), )*
                    _ => None,
                }
            }

            /// The code's stable SCREAMING_SNAKE name, as used in the HTTP API
            /// and logs.
            pub fn name(self) -> &'static str {
                match self {
                    $( ErrorCode::$name => stringify!($name), )*
                }
            }

            /// A default human-readable message; servers may send a more
            /// specific one.
            pub fn default_message(self) -> &'static str {
                match self {
                    $( ErrorCode::$name => $text, )*
                }
            }
        }
    };
}

error_codes! {
    // 1xx — protocol violations. The server closes the connection after these.
    /// The frame or its payload could not be decoded.
    MalformedFrame = 100, "malformed frame";
    /// The frame type is not one this server knows.
    UnknownFrameType = 101, "unknown frame type";
    /// The frame's length exceeds the announced maximum.
    FrameTooLarge = 102, "frame exceeds the maximum frame size";
    /// The client's protocol version is not supported.
    UnsupportedVersion = 103, "unsupported protocol version";
    /// A request was sent before HELLO, or HELLO was sent twice.
    HandshakeRequired = 104, "HELLO must be the first frame, exactly once";
    /// HELLO did not arrive in time.
    HandshakeTimeout = 105, "handshake timed out";
    /// The client sent a frame type that only servers send.
    UnexpectedFrame = 106, "frame type not valid from a client";

    // 2xx — authentication and accounts.
    /// The request needs an authenticated session.
    NotAuthenticated = 200, "authentication required";
    /// The session token is unknown, expired or revoked.
    InvalidToken = 201, "invalid or expired session token";
    /// Username or password is wrong.
    InvalidCredentials = 202, "invalid username or password";
    /// Registration with a username that already exists.
    UsernameTaken = 203, "username is already taken";
    /// The username breaks the rules in SPEC.md §5.2.
    InvalidUsername = 204, "username must be 3-32 characters of a-z, 0-9, '_', '-' or '.'";
    /// The password breaks the rules in SPEC.md §5.2.
    InvalidPassword = 205, "password must be 8-256 bytes";
    /// LOGIN or REGISTER on a connection that is already authenticated.
    AlreadyAuthenticated = 206, "connection is already authenticated";

    // 3xx — rooms and membership.
    /// No room with that id exists (or it has terminated).
    RoomNotFound = 300, "room not found";
    /// The action needs membership of the room.
    NotAMember = 301, "you are not a member of this room";
    /// JOIN of a room the user already belongs to.
    AlreadyMember = 302, "you are already a member of this room";
    /// Room name empty, too long or containing control characters.
    InvalidRoomName = 303, "room name must be 1-64 characters without control characters";
    /// Room topic too long or containing control characters.
    InvalidTopic = 304, "room topic must be at most 256 characters without control characters";
    /// JOIN of a private room without an invitation or approved request.
    RoomPrivate = 305, "room is private: join by invitation or approved request";
    /// A paging parameter is out of range.
    InvalidPaging = 306, "limit must be 1-200";

    // 4xx — messages.
    /// Message body is empty or only whitespace.
    MessageEmpty = 400, "message is empty";
    /// Message body exceeds the announced maximum.
    MessageTooLong = 401, "message exceeds the maximum message size";
    /// The sender exceeded the message rate limit; retry later.
    RateLimited = 402, "too many messages: slow down";

    // 5xx — server side. The request may be retried.
    /// An unexpected server error; details are in the server log.
    Internal = 500, "internal server error";
    /// The store could not persist or read the data.
    StorageUnavailable = 501, "storage is unavailable";
    /// The server is overloaded; retry with backoff.
    Overloaded = 502, "server is overloaded";
    /// The server is shutting down.
    ShuttingDown = 503, "server is shutting down";

    // 6xx — close reasons (sent in CLOSE frames).
    /// The connection's outbound queue overflowed: it did not read fast enough.
    SlowConsumer = 600, "connection closed: outbound queue overflowed (slow consumer)";
    /// No frame (not even PING) arrived within the idle timeout.
    IdleTimeout = 601, "connection closed: idle timeout";
    /// The session was ended by LOGOUT (on this or another connection).
    LoggedOut = 602, "connection closed: session logged out";
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), *self as u16)
    }
}

impl ErrorCode {
    /// Whether the server closes the connection after sending this code.
    pub fn is_fatal(self) -> bool {
        let n = self as u16;
        (100..200).contains(&n) || n >= 600
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_sorted_and_unique() {
        let mut last = 0;
        for &c in ErrorCode::ALL {
            assert!(c as u16 > last, "{c} out of order");
            last = c as u16;
            assert_eq!(ErrorCode::from_u16(c as u16), Some(c));
        }
        assert_eq!(ErrorCode::from_u16(999), None);
    }

    #[test]
    fn protocol_and_close_codes_are_fatal_others_are_not() {
        assert!(ErrorCode::MalformedFrame.is_fatal());
        assert!(ErrorCode::SlowConsumer.is_fatal());
        assert!(!ErrorCode::NotAMember.is_fatal());
        assert!(!ErrorCode::RateLimited.is_fatal());
    }
}
