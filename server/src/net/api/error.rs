//! Errors of the JSON API: `{"error": {"code", "name", "message"}}` with the
//! protocol's codes, the one table that maps a code to an HTTP status, and
//! the OpenAPI rows of the errors many endpoints share.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use confab_protocol::{ErrorCode, ServerMsg};
use serde::Serialize;
use utoipa::openapi::{self, RefOr};
use utoipa::{IntoResponses, ToSchema};

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
    /// Which refusal of several one code covers, where the HTTP door
    /// tells them apart (file uploads and downloads, SPEC.md §13): a
    /// stable snake_case word programs may act on.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "type_mismatch")]
    pub reason: Option<&'static str>,
    /// With a 429: milliseconds until the request may succeed (also the
    /// `Retry-After` header, in whole seconds rounded up).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 1500)]
    pub retry_after_ms: Option<u32>,
}

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: u16,
    pub message: String,
    /// Sent as `Retry-After` (whole seconds, rounded up) when set.
    pub retry_after_ms: u32,
    /// [`ErrorDetail::reason`].
    pub reason: Option<&'static str>,
}

/// The HTTP status for a protocol code: the one table. Every code this
/// build knows has its row, and the match has no catch-all, so a code added
/// to the protocol does not compile until it is mapped here. A number this
/// build does not know (a newer peer's) gets its hundreds group's status,
/// [`group_status`].
pub fn status_for(code: u16) -> StatusCode {
    use ErrorCode::*;
    let Some(known) = ErrorCode::from_u16(code) else {
        return group_status(code);
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
        NotAuthenticated | InvalidToken | InvalidCredentials | LoggedOut | PasswordChanged => {
            StatusCode::UNAUTHORIZED
        }
        UsernameTaken | AlreadyAuthenticated | AlreadyMember => StatusCode::CONFLICT,
        InvalidUsername | InvalidPassword | InvalidRoomName | InvalidTopic | InvalidPaging
        | InvalidRole | MessageEmpty | DuplicateMember | TooManyMembers => StatusCode::BAD_REQUEST,
        // Profiles: a value that breaks its rule.
        InvalidDisplayName | InvalidBio | InvalidEmail => StatusCode::BAD_REQUEST,
        RoomNotFound => StatusCode::NOT_FOUND,
        NotAMember | RoomPrivate => StatusCode::FORBIDDEN,
        // Governance (SPEC.md §8): not allowed to …
        NotAdmin | NotOwner | Banned | CannotTargetSelf | CannotTargetOwner | DirectRoom => {
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
        // Messages: the one named does not exist, no longer does, or is
        // someone else's.
        MessageNotFound => StatusCode::NOT_FOUND,
        MessageDeleted => StatusCode::GONE,
        NotYourMessage => StatusCode::FORBIDDEN,
        // A read marker beyond the room's last event: a bad value.
        InvalidReadMarker => StatusCode::BAD_REQUEST,
        // A message's content refused (SPEC.md §5.11, §13.5): bad spans,
        // colour, link or sticker, an edit of a sticker message, or too
        // many files (or one twice).
        InvalidSpans | UnknownColor | InvalidLink | UnknownSticker | StickerMessage
        | InvalidAttachments => StatusCode::BAD_REQUEST,
        // Files (SPEC.md §13): an upload's refusal says its own status by
        // reason (413, 415, else 400); a deleted file answers 410.
        UnknownFile => StatusCode::NOT_FOUND,
        AttachmentNotYours | FileLinkInvalid => StatusCode::FORBIDDEN,
        FileRefused => StatusCode::BAD_REQUEST,
        RateLimited | TooManyAttempts | ProfileRateLimited | UploadRateLimited => {
            StatusCode::TOO_MANY_REQUESTS
        }
        Internal => StatusCode::INTERNAL_SERVER_ERROR,
        StorageUnavailable | Overloaded | ShuttingDown | RoomMoving | SlowConsumer => {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// The status for a code this build does not know, by its hundreds group
/// (SPEC.md §11.4: clients act on the group of an unknown code):
///
/// | group | what the protocol puts there | status |
/// | --- | --- | --- |
/// | 1xx | a request that does not decode | 400 |
/// | 2xx | accounts and authentication: a refusal | 403 |
/// | 3xx | rooms and their governance: a refusal | 403 |
/// | 4xx | a message that is refused | 400 |
/// | 5xx | the server cannot serve now; retry | 503 |
/// | 6xx | the connection is ended; reconnect | 503 |
/// | other | not a protocol code | 500 |
///
/// 2xx and 3xx answer 403: the request was understood and is not allowed
/// as it stands, which is what most of those groups' known codes mean;
/// sending it again unchanged does not help.
pub fn group_status(code: u16) -> StatusCode {
    match code / 100 {
        1 | 4 => StatusCode::BAD_REQUEST,
        2 | 3 => StatusCode::FORBIDDEN,
        5 | 6 => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code as u16,
            message: message.into(),
            retry_after_ms: 0,
            reason: None,
        }
    }

    /// A protocol error, with the status from [`status_for`].
    pub fn code(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status: status_for(code as u16),
            code: code as u16,
            message: message.into(),
            retry_after_ms: 0,
            reason: None,
        }
    }

    /// A refusal one code covers among others, told apart by `reason`
    /// ([`ErrorDetail::reason`]), with its own status.
    pub fn reason(
        status: StatusCode,
        code: ErrorCode,
        reason: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            reason: Some(reason),
            ..ApiError::new(status, code, message)
        }
    }

    /// A limit's refusal, to be tried again after `wait`.
    pub fn retry(
        code: ErrorCode,
        wait: std::time::Duration,
        message: impl Into<String>,
    ) -> ApiError {
        let ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX).max(1);
        ApiError {
            retry_after_ms: ms,
            ..ApiError::code(code, message)
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
            ServerMsg::Error {
                code,
                message,
                retry_after_ms,
            } => ApiError {
                status: status_for(code),
                code,
                message,
                retry_after_ms,
                reason: None,
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
                reason: self.reason,
                retry_after_ms: (self.retry_after_ms > 0).then_some(self.retry_after_ms),
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.retry_after_ms > 0 {
            let secs = self.retry_after_ms.div_ceil(1000);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

// --- the error rows endpoints share in the OpenAPI document ---------------
//
// An endpoint lists its own statuses and adds the sets that apply:
// `responses((status = 200, …), (status = 404, …), RoomErrors, JsonBodyErrors)`.
// An endpoint's own row for a status a set also has must come after the
// set (utoipa keeps the last row per status). These types only describe;
// the errors themselves are `ApiError`s.

/// 503: the store is unavailable or the server is shutting down; any
/// endpoint that reaches the store.
#[derive(IntoResponses)]
#[response(
    status = 503,
    description = "STORAGE_UNAVAILABLE, SHUTTING_DOWN, or (posting a message, creating a room) OVERLOADED: the write backlog is full; see Retry-After."
)]
#[allow(dead_code)] // described, never built
pub struct StoreErrors(ErrorBody);

/// 401: the bearer token is missing, malformed, unknown or ended.
#[derive(IntoResponses)]
#[response(status = 401, description = "Missing or invalid token.")]
#[allow(dead_code)] // described, never built
pub struct TokenErrors(ErrorBody);

/// Every endpoint behind a bearer token: 401 and 503.
pub type AuthedErrors = Both<TokenErrors, StoreErrors>;

/// 410: the room has terminated (SPEC.md §8.6); every request that names
/// a room can get it (SPEC.md §6, code 312).
#[derive(IntoResponses)]
#[response(status = 410, description = "ROOM_TERMINATED.")]
#[allow(dead_code)] // described, never built
pub struct TerminatedErrors(ErrorBody);

/// Every endpoint on a room (`/api/rooms/{id}…`): 401, 503 and 410. Its
/// 400 (bad id) and 404 (ROOM_NOT_FOUND, and what else the endpoint can
/// miss) the endpoint lists itself, in its own words.
pub type RoomErrors = Both<AuthedErrors, TerminatedErrors>;

/// The rows of two sets (`B`'s where both have a status).
#[allow(dead_code)] // described, never built
pub struct Both<A, B>(PhantomData<(A, B)>);

impl<A: IntoResponses, B: IntoResponses> IntoResponses for Both<A, B> {
    fn responses() -> BTreeMap<String, RefOr<openapi::Response>> {
        let mut rows = A::responses();
        rows.extend(B::responses());
        rows
    }
}

/// Every endpoint with a JSON body: 413 over the body limit (a protocol
/// frame), 415 without `Content-Type: application/json`. (Its 400,
/// malformed JSON, the endpoint says with its own 400s.)
#[derive(IntoResponses)]
#[allow(dead_code)] // described, never built
pub enum JsonBodyErrors {
    #[response(status = 413, description = "Body too large.")]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "Not JSON.")]
    NotJson(ErrorBody),
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn unknown_codes_get_their_hundreds_group_status() {
        let unknown = |code: u16| {
            assert_eq!(ErrorCode::from_u16(code), None, "{code} is known");
            status_for(code)
        };
        for (group, want) in [
            (1, StatusCode::BAD_REQUEST),
            (2, StatusCode::FORBIDDEN),
            (3, StatusCode::FORBIDDEN),
            (4, StatusCode::BAD_REQUEST),
            (5, StatusCode::SERVICE_UNAVAILABLE),
            (6, StatusCode::SERVICE_UNAVAILABLE),
        ] {
            assert_eq!(unknown(group * 100 + 99), want, "{group}xx");
            assert_eq!(group_status(group * 100), want, "{group}xx");
        }
        for code in [0, 42, 700, 999, u16::MAX] {
            assert_eq!(unknown(code), StatusCode::INTERNAL_SERVER_ERROR, "{code}");
        }
    }
}
