//! What handlers take from a request: the caller (the server and the
//! bearer token), ids from the path, a JSON body, a query string. Each
//! extractor refuses with an [`ApiError`] in the API's error shape, so a
//! handler gets only what decoded and its signature says what it reads.
//!
//! Decoding failures use the protocol's codes for requests it cannot
//! decode: `MALFORMED_FRAME` (400), `FRAME_TOO_LARGE` (413) for a body over
//! the limit, and 415 (`MALFORMED_FRAME`) for a body that is not JSON; a
//! missing or malformed token is `NOT_AUTHENTICATED` or `INVALID_TOKEN`
//! (401).

use std::fmt;
use std::net::IpAddr;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request as HttpRequest};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::Json;
use confab_protocol::{ErrorCode, Request, RoomId, Seq, ServerMsg, UserId};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::ApiError;
use crate::net::http::{ConnInfo, HttpState};
use crate::session;

/// A number that fits in 63 bits. Ids and sequence numbers are stored as
/// signed 64-bit integers, and the OpenAPI document says so (`format:
/// int64`, minimum 0): a larger number is malformed input, refused like any
/// other value that does not decode. The one place this rule lives: path
/// ids ([`RoomPath`], [`RoomUserPath`]), query cursors and body fields all
/// go through it (as a serde type, it decodes from a number that fits).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "u64")]
pub struct Id63(u64);

impl Id63 {
    /// 2^63 - 1.
    pub const MAX: u64 = i64::MAX as u64;

    pub fn get(self) -> u64 {
        self.0
    }
}

impl TryFrom<u64> for Id63 {
    type Error = TooLarge;

    fn try_from(v: u64) -> Result<Id63, TooLarge> {
        if v <= Id63::MAX {
            Ok(Id63(v))
        } else {
            Err(TooLarge(v))
        }
    }
}

/// A number above [`Id63::MAX`].
#[derive(Debug)]
pub struct TooLarge(u64);

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is larger than the largest id or sequence number, 2^63 - 1 = {}",
            self.0,
            Id63::MAX
        )
    }
}

/// An id from the URL path, held to [`Id63`].
fn path_id(v: u64) -> Result<u64, ApiError> {
    match Id63::try_from(v) {
        Ok(id) => Ok(id.get()),
        Err(e) => Err(ApiError::bad_request(format!("bad path parameter: {e}"))),
    }
}

/// `/api/rooms/{id}/…`: the room.
#[derive(IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
pub struct RoomPath(
    /// Room id
    #[param(value_type = u64)]
    pub RoomId,
);

impl<S: Send + Sync> FromRequestParts<S> for RoomPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<RoomPath, ApiError> {
        let Path(room) = Path::<u64>::from_request_parts(parts, state).await?;
        Ok(RoomPath(RoomId(path_id(room)?)))
    }
}

/// `/api/files/{id}…`: an uploaded file (SPEC.md §13).
#[derive(IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
pub struct FilePath(
    /// File id
    #[param(value_type = u64)]
    pub u64,
);

impl<S: Send + Sync> FromRequestParts<S> for FilePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<FilePath, ApiError> {
        let Path(file) = Path::<u64>::from_request_parts(parts, state).await?;
        Ok(FilePath(path_id(file)?))
    }
}

/// `/api/users/{id}/…`: a user.
#[derive(IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
pub struct UserPath(
    /// User id
    #[param(value_type = u64)]
    pub UserId,
);

impl<S: Send + Sync> FromRequestParts<S> for UserPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<UserPath, ApiError> {
        let Path(user) = Path::<u64>::from_request_parts(parts, state).await?;
        Ok(UserPath(UserId(path_id(user)?)))
    }
}

/// `/api/rooms/{id}/…/{user_id}…`: the room and a user. (Each endpoint
/// says in its own words who `user_id` is.)
pub struct RoomUserPath(pub RoomId, pub UserId);

impl<S: Send + Sync> FromRequestParts<S> for RoomUserPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<RoomUserPath, ApiError> {
        let Path((room, user)) = Path::<(u64, u64)>::from_request_parts(parts, state).await?;
        Ok(RoomUserPath(RoomId(path_id(room)?), UserId(path_id(user)?)))
    }
}

/// `/api/rooms/{id}/messages/{seq}`: the room and one of its messages.
pub struct RoomSeqPath(pub RoomId, pub Seq);

impl<S: Send + Sync> FromRequestParts<S> for RoomSeqPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<RoomSeqPath, ApiError> {
        let Path((room, seq)) = Path::<(u64, u64)>::from_request_parts(parts, state).await?;
        Ok(RoomSeqPath(RoomId(path_id(room)?), Seq(path_id(seq)?)))
    }
}

/// A JSON body (`Content-Type: application/json`).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: HttpRequest, state: &S) -> Result<JsonBody<T>, ApiError> {
        let Json(body) = Json::<T>::from_request(req, state).await?;
        Ok(JsonBody(body))
    }
}

/// The query string's parameters.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<QueryParams<T>, ApiError> {
        let Query(params) = Query::<T>::from_request_parts(parts, state).await?;
        Ok(QueryParams(params))
    }
}

/// The caller of an endpoint behind a bearer token: the session token from
/// `Authorization: Bearer <token>`, and the server to run its requests on.
pub struct Caller {
    state: HttpState,
    token: String,
    peer: IpAddr,
}

impl FromRequestParts<HttpState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Caller, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::code(
                ErrorCode::NotAuthenticated,
                "send Authorization: Bearer <token>, with a token from /api/register or /api/login",
            ));
        };
        let token = value.to_str().ok().and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            let token = token.trim();
            (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
        });
        match token {
            Some(t) => Ok(Caller {
                state: state.clone(),
                token: t.to_owned(),
                peer: peer_of(parts),
            }),
            None => Err(ApiError::code(
                ErrorCode::InvalidToken,
                "the Authorization header must read 'Bearer <token>'",
            )),
        }
    }
}

/// `Option<Caller>`: none without an `Authorization` header (an endpoint
/// that takes another credential too: a signed file link); a malformed
/// header is still refused.
impl axum::extract::OptionalFromRequestParts<HttpState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &HttpState,
    ) -> Result<Option<Caller>, ApiError> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(None);
        }
        <Caller as FromRequestParts<HttpState>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

impl Caller {
    /// The session the token names (for endpoints that are no protocol
    /// request: files).
    pub async fn session(&self) -> Result<session::Auth, ApiError> {
        session::authenticate(&self.state.server, &self.token)
            .await
            .map_err(|code| ApiError::code(code, code.default_message()))
    }

    pub fn server(&self) -> &std::sync::Arc<crate::state::ServerState> {
        &self.state.server
    }

    /// Runs `req` as this caller's session.
    pub async fn call(&self, req: Request) -> ServerMsg {
        call(&self.state, self.peer, Some(&self.token), req).await
    }
}

/// The address a request came from.
pub fn peer_of(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnInfo>()
        .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |c| c.peer.ip())
}

/// The address a request came from (for the account endpoints, whose
/// limits count by address).
pub struct Peer(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Peer, ApiError> {
        Ok(Peer(peer_of(parts)))
    }
}

/// Runs `req` from `peer` through the protocol dispatch (whose per-user
/// limits are the user's connections' own).
pub async fn call(state: &HttpState, peer: IpAddr, token: Option<&str>, req: Request) -> ServerMsg {
    session::call(state.server.clone(), peer, token, req).await
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

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        ApiError::bad_request(format!("bad path parameter: {}", r.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Uri;
    use serde::Deserialize;

    use super::*;

    #[test]
    fn ids_fit_in_63_bits() {
        assert_eq!(Id63::try_from(7).map(Id63::get).ok(), Some(7));
        assert_eq!(
            Id63::try_from(Id63::MAX).map(Id63::get).ok(),
            Some(Id63::MAX)
        );
        assert!(Id63::try_from(Id63::MAX + 1).is_err());
        assert!(Id63::try_from(u64::MAX).is_err());
        assert_eq!(path_id(Id63::MAX).ok(), Some(Id63::MAX));
        let err = path_id(Id63::MAX + 1).unwrap_err();
        assert_eq!(err.code, ErrorCode::MalformedFrame as u16);
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(
            err.message.contains("9223372036854775808"),
            "{}",
            err.message
        );
    }

    #[derive(Debug, Deserialize)]
    struct Cursor {
        before: Option<Id63>,
    }

    /// The same rule holds in query strings and JSON bodies, where serde
    /// reads the number; the refusal is MALFORMED_FRAME (400).
    #[test]
    fn query_and_body_numbers_past_63_bits_are_malformed() {
        let query = |q: &str| {
            let uri: Uri = format!("/x?{q}").parse().unwrap();
            Query::<Cursor>::try_from_uri(&uri).map(|Query(c)| c.before.map(Id63::get))
        };
        assert_eq!(
            query("before=9223372036854775807").ok(),
            Some(Some(Id63::MAX))
        );
        assert_eq!(query("").ok(), Some(None));
        let err = ApiError::from(query("before=9223372036854775808").unwrap_err());
        assert_eq!(
            (err.status, err.code),
            (StatusCode::BAD_REQUEST, ErrorCode::MalformedFrame as u16)
        );
        assert!(err.message.contains("before"), "{}", err.message);

        let body = |b: &str| serde_json::from_str::<Cursor>(b).map(|c| c.before.map(Id63::get));
        assert_eq!(
            body(r#"{"before": 9223372036854775807}"#).ok(),
            Some(Some(Id63::MAX))
        );
        let err = body(r#"{"before": 9223372036854775808}"#).unwrap_err();
        assert!(err.to_string().contains("largest id"), "{err}");
        assert!(body(r#"{"before": -1}"#).is_err());
    }
}
