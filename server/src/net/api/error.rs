//! Errors of the JSON API: `{"error": {"code", "name", "message"}}` with the
//! protocol's codes, and the one table that maps a code to an HTTP status.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use confab_protocol::{ErrorCode, ServerMsg};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// One error: the protocol's stable code and name (SPEC.md §6), and a
/// message for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The error code (SPEC.md §6). Programs act on this (or `name`).
    #[schema(example = 300)]
    pub code: u16,
    /// The code's stable name.
    #[schema(example = "ROOM_NOT_FOUND")]
    pub name: String,
    /// Human-readable detail; not for program logic.
    #[schema(example = "no such room")]
    pub message: String,
}

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: u16,
    pub message: String,
}

/// The HTTP status for a protocol code. The one table; codes without a row
/// fall back on their hundreds group.
pub fn status_for(code: u16) -> StatusCode {
    use ErrorCode::*;
    let Some(known) = ErrorCode::from_u16(code) else {
        return match code / 100 {
            1 | 3 | 4 => StatusCode::BAD_REQUEST,
            2 => StatusCode::FORBIDDEN,
            5 | 6 => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
    };
    match known {
        // Over HTTP: a body, path or query that cannot be decoded, or a
        // route/method that does not exist.
        MalformedFrame | UnsupportedVersion | HandshakeRequired | UnexpectedFrame => {
            StatusCode::BAD_REQUEST
        }
        UnknownFrameType => StatusCode::NOT_FOUND,
        FrameTooLarge | MessageTooLong => StatusCode::PAYLOAD_TOO_LARGE,
        HandshakeTimeout | IdleTimeout => StatusCode::REQUEST_TIMEOUT,
        NotAuthenticated | InvalidToken | InvalidCredentials | LoggedOut => {
            StatusCode::UNAUTHORIZED
        }
        UsernameTaken | AlreadyAuthenticated | AlreadyMember => StatusCode::CONFLICT,
        InvalidUsername | InvalidPassword | InvalidRoomName | InvalidTopic | InvalidPaging
        | InvalidRole | MessageEmpty => StatusCode::BAD_REQUEST,
        RoomNotFound => StatusCode::NOT_FOUND,
        NotAMember | RoomPrivate => StatusCode::FORBIDDEN,
        // Governance (SPEC.md §8): not allowed to …
        NotAdmin | NotOwner | Banned | CannotTargetSelf | CannotTargetOwner => {
            StatusCode::FORBIDDEN
        }
        // … the thing acted on does not exist (no such user, invitation,
        // request, ban or member) …
        NoSuchUser | NotInvited | NoSuchRequest | NotBanned | TargetNotMember => {
            StatusCode::NOT_FOUND
        }
        // … it exists already, or the target's state forbids it …
        AlreadyInvited | AlreadyRequested | AlreadyBanned | TargetBanned => StatusCode::CONFLICT,
        // … or the room is gone for good.
        RoomTerminated => StatusCode::GONE,
        RateLimited => StatusCode::TOO_MANY_REQUESTS,
        Internal => StatusCode::INTERNAL_SERVER_ERROR,
        StorageUnavailable | Overloaded | ShuttingDown | SlowConsumer => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        #[allow(unreachable_patterns)] // codes added after this table
        _ => match code / 100 {
            2 | 3 => StatusCode::FORBIDDEN,
            1 | 4 => StatusCode::BAD_REQUEST,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        },
    }
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code as u16,
            message: message.into(),
        }
    }

    /// A protocol error, with the status from [`status_for`].
    pub fn code(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status: status_for(code as u16),
            code: code as u16,
            message: message.into(),
        }
    }

    /// The request could not be decoded (body, path or query).
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::code(ErrorCode::MalformedFrame, message)
    }

    /// A reply that is not the success the handler expected: an ERROR
    /// becomes its status; anything else is a server bug.
    pub fn from_reply(reply: ServerMsg) -> ApiError {
        match reply {
            ServerMsg::Error { code, message } => ApiError {
                status: status_for(code),
                code,
                message,
            },
            other => {
                tracing::error!(reply = ?other, "unexpected reply for an HTTP request");
                ApiError::code(ErrorCode::Internal, "unexpected reply")
            }
        }
    }
}

/// The stable name of a code as SPEC.md §6 spells it (`ROOM_NOT_FOUND`);
/// `CODE_<n>` for codes newer than this build.
pub fn code_name(code: u16) -> String {
    let Some(known) = ErrorCode::from_u16(code) else {
        return format!("CODE_{code}");
    };
    let name = known.name();
    if !name.chars().any(|c| c.is_ascii_lowercase()) {
        return name.to_owned();
    }
    // Some versions of `ErrorCode::name` give the variant (`RoomNotFound`).
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The JSON text of an error body (also used outside axum).
pub fn error_json(code: ErrorCode, message: &str) -> String {
    serde_json::json!({"error": {"code": code as u16, "name": code_name(code as u16), "message": message}})
        .to_string()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let name = code_name(self.code);
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                name,
                message: self.message,
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::code(ErrorCode::FrameTooLarge, "request body too large")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::MalformedFrame,
                "send a JSON body with Content-Type: application/json",
            ),
            _ => ApiError::bad_request(format!("malformed JSON body: {}", r.body_text())),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::bad_request(format!("bad query parameters: {}", r.body_text()))
    }
}

/// An id from a URL path. Ids are stored as signed 64-bit numbers, and the
/// OpenAPI document says so (`format: int64`): a larger number is malformed
/// input, refused like any other undecodable path parameter.
pub fn path_id(v: u64) -> Result<u64, ApiError> {
    if v <= i64::MAX as u64 {
        Ok(v)
    } else {
        Err(ApiError::bad_request(format!(
            "bad path parameter: {v} is larger than the largest id, {}",
            i64::MAX
        )))
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        ApiError::bad_request(format!("bad path parameter: {}", r.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_ids_above_the_int64_range_are_malformed() {
        assert_eq!(path_id(7).ok(), Some(7));
        assert_eq!(path_id(i64::MAX as u64).ok(), Some(i64::MAX as u64));
        assert!(path_id(i64::MAX as u64 + 1).is_err());
    }

    #[test]
    fn names_are_spelled_as_in_the_spec() {
        assert_eq!(code_name(300), "ROOM_NOT_FOUND");
        assert_eq!(code_name(301), "NOT_A_MEMBER");
        assert_eq!(code_name(100), "MALFORMED_FRAME");
        assert_eq!(code_name(9999), "CODE_9999");
    }

    #[test]
    fn every_known_code_has_a_client_or_server_error_status() {
        for &code in ErrorCode::ALL {
            let s = status_for(code as u16);
            assert!(s.is_client_error() || s.is_server_error(), "{code}: {s}");
        }
        assert_eq!(status_for(300), StatusCode::NOT_FOUND);
        assert_eq!(status_for(301), StatusCode::FORBIDDEN);
        assert_eq!(status_for(203), StatusCode::CONFLICT);
        assert_eq!(status_for(201), StatusCode::UNAUTHORIZED);
        assert_eq!(status_for(402), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(status_for(401), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(status_for(501), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status_for(307), StatusCode::FORBIDDEN);
        assert_eq!(status_for(310), StatusCode::NOT_FOUND);
        assert_eq!(status_for(311), StatusCode::NOT_FOUND);
        assert_eq!(status_for(312), StatusCode::GONE);
        assert_eq!(status_for(315), StatusCode::CONFLICT);
        assert_eq!(status_for(320), StatusCode::CONFLICT);
        assert_eq!(status_for(322), StatusCode::BAD_REQUEST);
        assert_eq!(status_for(999), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
