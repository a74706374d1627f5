//! Stable error and close codes (SPEC.md §6).
//!
//! A code never changes meaning once published; new codes are only added.
//! The numeric ranges group codes by who is at fault and what to do next.

/// Defines [`ErrorCode`] with its numeric value, stable SCREAMING_SNAKE name
/// and default human message in one table, so they can never drift apart.
macro_rules! error_codes {
    ($( $(#[$doc:meta])* $name:ident = $num:literal, $snake:literal, $text:literal; )*) => {
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
                    $( ErrorCode::$name => $snake, )*
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
    MalformedFrame = 100, "MALFORMED_FRAME", "malformed frame";
    /// The frame type is not one this server knows.
    UnknownFrameType = 101, "UNKNOWN_FRAME_TYPE", "unknown frame type";
    /// The frame's length exceeds the announced maximum.
    FrameTooLarge = 102, "FRAME_TOO_LARGE", "frame exceeds the maximum frame size";
    /// The client's protocol version is not supported.
    UnsupportedVersion = 103, "UNSUPPORTED_VERSION", "unsupported protocol version";
    /// A request was sent before HELLO, or HELLO was sent twice.
    HandshakeRequired = 104, "HANDSHAKE_REQUIRED", "HELLO must be the first frame, exactly once";
    /// HELLO did not arrive in time.
    HandshakeTimeout = 105, "HANDSHAKE_TIMEOUT", "handshake timed out";
    /// The client sent a frame type that only servers send.
    UnexpectedFrame = 106, "UNEXPECTED_FRAME", "frame type not valid from a client";

    // 2xx — authentication and accounts.
    /// The request needs an authenticated session.
    NotAuthenticated = 200, "NOT_AUTHENTICATED", "authentication required";
    /// The session token is unknown, expired or revoked.
    InvalidToken = 201, "INVALID_TOKEN", "invalid or expired session token";
    /// Username or password is wrong.
    InvalidCredentials = 202, "INVALID_CREDENTIALS", "invalid username or password";
    /// Registration with a username that already exists.
    UsernameTaken = 203, "USERNAME_TAKEN", "username is already taken";
    /// The username breaks the rules in SPEC.md §5.2.
    InvalidUsername = 204, "INVALID_USERNAME", "username must be 3-32 characters of a-z, 0-9, '_', '-' or '.'";
    /// The password breaks the rules in SPEC.md §5.2.
    InvalidPassword = 205, "INVALID_PASSWORD", "password must be 8-256 bytes";
    /// LOGIN or REGISTER on a connection that is already authenticated.
    AlreadyAuthenticated = 206, "ALREADY_AUTHENTICATED", "connection is already authenticated";
    /// Too many failed logins from this address or for this username, or
    /// too many registrations from this address; retry after the ERROR's
    /// `retry_after_ms`.
    TooManyAttempts = 207, "TOO_MANY_ATTEMPTS", "too many attempts: retry later";
    /// UPDATE_PROFILE with a display name that is blank, over 64
    /// characters or holds control characters (SPEC.md §5.2.5).
    InvalidDisplayName = 208, "INVALID_DISPLAY_NAME", "display name must be 1-64 characters without control characters";
    /// UPDATE_PROFILE with a bio over 500 characters or holding control
    /// characters other than line feeds.
    InvalidBio = 209, "INVALID_BIO", "bio must be at most 500 characters without control characters other than line breaks";
    /// UPDATE_PROFILE with an email address that breaks the rule of
    /// SPEC.md §5.2.5.
    InvalidEmail = 210, "INVALID_EMAIL", "email address is not valid";
    /// Too many profile changes by this user; retry after the ERROR's
    /// `retry_after_ms`.
    ProfileRateLimited = 211, "PROFILE_RATE_LIMITED", "too many profile changes: retry later";

    // 3xx — rooms and membership.
    /// No room with that id exists. (A terminated room answers `RoomTerminated`.)
    RoomNotFound = 300, "ROOM_NOT_FOUND", "room not found";
    /// The action needs membership of the room.
    NotAMember = 301, "NOT_A_MEMBER", "you are not a member of this room";
    /// JOIN of a room the user already belongs to.
    AlreadyMember = 302, "ALREADY_MEMBER", "you are already a member of this room";
    /// Room name empty, too long or containing control characters.
    InvalidRoomName = 303, "INVALID_ROOM_NAME", "room name must be 1-64 characters without control characters";
    /// Room topic too long or containing control characters.
    InvalidTopic = 304, "INVALID_TOPIC", "room topic must be at most 256 characters without control characters";
    /// JOIN of a private room without an invitation or approved request.
    RoomPrivate = 305, "ROOM_PRIVATE", "room is private: join by invitation or approved request";
    /// A paging parameter is out of range.
    InvalidPaging = 306, "INVALID_PAGING", "limit must be 1-200";
    /// The action needs the admin (or owner) role in the room.
    NotAdmin = 307, "NOT_ADMIN", "only room admins may do this";
    /// The action needs the owner role in the room.
    NotOwner = 308, "NOT_OWNER", "only the room owner may do this";
    /// The caller is banned from the room.
    Banned = 309, "BANNED", "you are banned from this room";
    /// RESPOND_INVITE without a pending invitation.
    NotInvited = 310, "NOT_INVITED", "you have no pending invitation to this room";
    /// The named or numbered user does not exist.
    NoSuchUser = 311, "NO_SUCH_USER", "no such user";
    /// The room has terminated; nothing can be done in it any more.
    RoomTerminated = 312, "ROOM_TERMINATED", "this room has terminated";
    /// The action cannot target the caller (kick, ban, role change of oneself).
    CannotTargetSelf = 313, "CANNOT_TARGET_SELF", "you cannot do this to yourself";
    /// The room owner cannot be kicked, banned or have their role changed.
    CannotTargetOwner = 314, "CANNOT_TARGET_OWNER", "the room owner cannot be kicked, banned or have their role changed";
    /// The user already has a pending invitation.
    AlreadyInvited = 315, "ALREADY_INVITED", "that user is already invited";
    /// The caller already has a pending join request.
    AlreadyRequested = 316, "ALREADY_REQUESTED", "you have already asked to join this room";
    /// DECIDE_REQUEST for a user with no pending request.
    NoSuchRequest = 317, "NO_SUCH_REQUEST", "that user has no pending join request";
    /// UNBAN of a user who is not banned.
    NotBanned = 318, "NOT_BANNED", "that user is not banned";
    /// The target user is not a member of the room.
    TargetNotMember = 319, "TARGET_NOT_MEMBER", "that user is not a member of this room";
    /// The target user is banned from the room (so cannot be invited).
    TargetBanned = 320, "TARGET_BANNED", "that user is banned from this room";
    /// BAN of a user who is already banned.
    AlreadyBanned = 321, "ALREADY_BANNED", "that user is already banned";
    /// SET_ROLE with a role other than member or admin.
    InvalidRole = 322, "INVALID_ROLE", "role must be member or admin (ownership passes only by succession)";
    /// CREATE_ROOM naming the same user twice among its initial members.
    DuplicateMember = 323, "DUPLICATE_MEMBER", "a user is named twice among the initial members";
    /// CREATE_ROOM naming more initial members than the limit.
    TooManyMembers = 324, "TOO_MANY_MEMBERS", "too many initial members";
    /// A governance request (join, invitation, join request, decision,
    /// kick, ban, unban, role change, room update) naming a direct room,
    /// which has exactly its two users and no governance.
    DirectRoom = 325, "DIRECT_ROOM", "not possible in a direct chat";

    // 4xx — messages.
    /// Message body is empty or only whitespace.
    MessageEmpty = 400, "MESSAGE_EMPTY", "message is empty";
    /// Message body exceeds the announced maximum.
    MessageTooLong = 401, "MESSAGE_TOO_LONG", "message exceeds the maximum message size";
    /// The sender exceeded the message rate limit; retry later.
    RateLimited = 402, "RATE_LIMITED", "too many messages: slow down";
    /// EDIT_MESSAGE / DELETE_MESSAGE naming a seq that is not a message of
    /// the room (no such event, or an event of another kind).
    MessageNotFound = 403, "MESSAGE_NOT_FOUND", "no such message in this room";
    /// EDIT_MESSAGE / DELETE_MESSAGE of a message that was deleted.
    MessageDeleted = 404, "MESSAGE_DELETED", "that message has been deleted";
    /// EDIT_MESSAGE of another user's message, or DELETE_MESSAGE of another
    /// user's message by a member who is not an admin.
    NotYourMessage = 405, "NOT_YOUR_MESSAGE", "that message is not yours";
    /// SET_READ_MARKER beyond the room's last event.
    InvalidReadMarker = 406, "INVALID_READ_MARKER", "the read marker is beyond the room's last event";
    /// A message's formatting spans break SPEC.md §5.11.1: too many, an
    /// unknown kind, a range empty, beyond the text or splitting a
    /// character, or a forbidden overlap.
    InvalidSpans = 407, "INVALID_SPANS", "invalid formatting spans";
    /// A colour span names a colour outside the palette of 16.
    UnknownColor = 408, "UNKNOWN_COLOR", "unknown colour: the palette has 16 colours, 0-15";
    /// A link span's URL is not an http, https or mailto URL (SPEC.md
    /// §5.11.1).
    InvalidLink = 409, "INVALID_LINK", "a link must be an http, https or mailto URL";
    /// SEND_MESSAGE names a sticker the server's catalogue does not hold.
    UnknownSticker = 410, "UNKNOWN_STICKER", "no such sticker";
    /// A sticker message with text or spans of its own, or an EDIT_MESSAGE
    /// of a sticker message (a sticker is sent as it is, or deleted).
    StickerMessage = 411, "STICKER_MESSAGE", "a sticker message carries no text, spans or attachments and cannot be edited";
    /// No file has that id, or it was deleted (its message was, or nothing
    /// referenced it in time). Uploads and downloads: SPEC.md §13.
    UnknownFile = 412, "UNKNOWN_FILE", "no such file";
    /// A message names a file the sender may not attach: another user's
    /// upload, one uploaded to another room, or one already attached.
    AttachmentNotYours = 413, "ATTACHMENT_NOT_YOURS", "that file is not yours to attach here";
    /// An upload was refused: too large, empty, a type not allowed, bytes
    /// that are not the declared type, or a bad file name (the HTTP error
    /// body's `reason` says which; SPEC.md §13.2).
    FileRefused = 414, "FILE_REFUSED", "the upload was refused";
    /// A signed file link has expired or its signature is wrong.
    FileLinkInvalid = 415, "FILE_LINK_INVALID", "the file link has expired or is not valid";
    /// SEND_MESSAGE names more than 10 files, or one file twice (SPEC.md
    /// §13.5).
    InvalidAttachments = 416, "INVALID_ATTACHMENTS", "a message carries at most 10 attachments, each once";
    /// The uploader's hourly upload budget (room files and avatars
    /// together, in bytes) does not cover the upload now; retry after the
    /// error's retry-after (SPEC.md §13.2).
    UploadRateLimited = 417, "UPLOAD_RATE_LIMITED", "too many bytes uploaded this hour: retry later";

    // 5xx — server side. The request may be retried.
    /// An unexpected server error; details are in the server log.
    Internal = 500, "INTERNAL", "internal server error";
    /// The store could not persist or read the data.
    StorageUnavailable = 501, "STORAGE_UNAVAILABLE", "storage is unavailable";
    /// The server is overloaded; retry with backoff.
    Overloaded = 502, "OVERLOADED", "server is overloaded";
    /// The server is shutting down.
    ShuttingDown = 503, "SHUTTING_DOWN", "server is shutting down";
    /// Cluster mode: the room is owned by another node, or is being
    /// handed over between nodes; nothing was applied. Retry after the
    /// error's retry-after (SPEC.md §6).
    RoomMoving = 504, "ROOM_MOVING", "the room is moving between nodes: retry shortly";

    // 6xx — close reasons (sent in CLOSE frames).
    /// The connection's outbound queue overflowed: it did not read fast enough.
    SlowConsumer = 600, "SLOW_CONSUMER", "connection closed: outbound queue overflowed (slow consumer)";
    /// No frame (not even PING) arrived within the idle timeout.
    IdleTimeout = 601, "IDLE_TIMEOUT", "connection closed: idle timeout";
    /// The session was ended by LOGOUT (on this or another connection).
    LoggedOut = 602, "LOGGED_OUT", "connection closed: session logged out";
    /// The user changed their password on another session: every other
    /// session of the user ended.
    PasswordChanged = 603, "PASSWORD_CHANGED", "connection closed: the account's password was changed";
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
    fn names_are_screaming_snake_case() {
        assert_eq!(ErrorCode::LoggedOut.name(), "LOGGED_OUT");
        assert_eq!(ErrorCode::RoomNotFound.name(), "ROOM_NOT_FOUND");
        for &c in ErrorCode::ALL {
            let n = c.name();
            assert!(
                n.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                "{n}"
            );
        }
    }

    #[test]
    fn protocol_and_close_codes_are_fatal_others_are_not() {
        assert!(ErrorCode::MalformedFrame.is_fatal());
        assert!(ErrorCode::SlowConsumer.is_fatal());
        assert!(!ErrorCode::NotAMember.is_fatal());
        assert!(!ErrorCode::RateLimited.is_fatal());
    }
}
