//! The Confab wire protocol, as specified normatively in `SPEC.md` beside
//! this crate.
//!
//! - [`frame`]: length-prefixed framing and the tokio-util codec.
//! - [`wire`]: primitive encodings (varints, strings, options).
//! - [`msg`]: payload types shared by all frames (rooms, members, events).
//! - [`request`]: typed requests (client → server).
//! - [`reply`]: typed responses and events (server → client).
//! - [`rich`]: formatting spans, the colour palette and stickers, with
//!   the rules a server checks.
//! - [`attach`]: files attached to messages.
//! - [`codes`]: small enumerations with stable numbers and names (roles,
//!   visibility, notification kinds, leave reasons, audit actions).
//! - [`error`]: stable error and close codes.
//! - [`ids`]: newtypes for room ids, user ids and sequence numbers.
//!
//! **Architecture invariant:** this crate knows nothing of sockets, tasks or
//! storage. It turns bytes into typed values and back, and never panics on
//! any input.

#![forbid(unsafe_code)]

pub mod attach;
#[macro_use]
pub mod codes;
pub mod error;
pub mod frame;
pub mod ids;
pub mod msg;
pub mod profile;
pub mod reply;
pub mod request;
pub mod rich;
pub mod secret;
pub mod wire;

pub use attach::Attachment;
pub use codes::{AuditAction, LeaveReason, NotificationKind, Presence};
pub use error::ErrorCode;
pub use frame::{FrameCodec, FrameError, RawFrame};
pub use ids::{Millis, RoomId, Seq, UserId};
pub use msg::*;
pub use profile::{Profile, ProfileUpdate};
pub use reply::*;
pub use request::*;
pub use rich::{Color, Refusal, Span, Sticker, Style};
pub use secret::{Password, Secret, SessionToken};

/// Why a frame's payload could not be decoded. All are protocol errors
/// (`MALFORMED_FRAME`), except [`DecodeError::UnknownFrameType`]
/// (`UNKNOWN_FRAME_TYPE`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("payload ended early")]
    Truncated,
    #[error("varint longer than its type allows")]
    VarintOverflow,
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    #[error("invalid {field} value {value}")]
    InvalidValue { field: &'static str, value: u64 },
    #[error("unknown frame type 0x{0:02x}")]
    UnknownFrameType(u8),
}

impl DecodeError {
    /// The error code a server answers this decode failure with.
    ///
    /// A type in the response (`0x40..=0xBF`) or event range is a frame only
    /// servers send, so a client sending one gets `UNEXPECTED_FRAME` (106),
    /// not `UNKNOWN_FRAME_TYPE` (101): [`Request::decode`] reports both as
    /// [`DecodeError::UnknownFrameType`], and SPEC.md §4 tells them apart by
    /// range.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::UnknownFrameType(t) if frame::kind::is_server_frame(*t) => {
                ErrorCode::UnexpectedFrame
            }
            DecodeError::UnknownFrameType(_) => ErrorCode::UnknownFrameType,
            _ => ErrorCode::MalformedFrame,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_types_map_to_codes_by_range() {
        let code = |t| DecodeError::UnknownFrameType(t).code();
        for t in [0x00, 0x06, 0x3f, 0xc0, 0xff] {
            assert_eq!(code(t), ErrorCode::UnknownFrameType, "type 0x{t:02x}");
        }
        for t in [0x40, 0x43, 0x7f, 0x80, 0x82, 0xbf] {
            assert_eq!(code(t), ErrorCode::UnexpectedFrame, "type 0x{t:02x}");
        }
        assert_eq!(DecodeError::Truncated.code(), ErrorCode::MalformedFrame);
    }
}
