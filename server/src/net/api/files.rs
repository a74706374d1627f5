//! Files over HTTP (SPEC.md §13): upload to a room, download, signed links.
//!
//! These routes are no protocol request: the bytes never pass through a
//! session. What is the room's (may this user upload to it, read its
//! files?) is still asked of the room's shard ([`session::check_member`]),
//! and what is the file's — allowlist, size, hash, placement — is
//! `crate::files`'. Refusals use the protocol's file codes (412-415) with
//! a `reason` in the error body where one code covers several cases, and
//! 417 when the uploader's hourly byte budget is spent ([`receive`], shared
//! with avatars, `avatar.rs`).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use confab_protocol::{ErrorCode, UserId};
use confab_store::FileRecord;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncSeekExt, ReadBuf};
use utoipa::openapi::{self, RefOr};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, AuthedErrors, ErrorBody, RoomErrors, StoreErrors};
use super::extract::{Caller, FilePath, Id63, QueryParams, RoomPath};
use crate::files::{name, KeepError, Kind, LinkRefused, ReceiveError, Received, Refusal};
use crate::net::http::HttpState;
use crate::session;
use crate::state::ServerState;

type ApiResult<T> = Result<T, ApiError>;

/// A stored file as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileBody {
    /// The file's id: what a message attaches and `/api/files/{id}` serves.
    pub id: u64,
    /// The room it was uploaded to; only its members may read it.
    pub room: u64,
    pub uploader: u64,
    pub name: String,
    /// The allowlisted type its bytes were checked to be.
    #[schema(example = "image/png")]
    pub content_type: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256 of the bytes, hex (also the download's ETag).
    pub sha256: String,
    /// Pixels, for images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Unix milliseconds.
    pub created_at: u64,
    /// A signed link to the bytes (relative to the server), valid until
    /// `url_expires`, for clients that cannot send a token (`<img src>`).
    pub url: String,
    /// Unix seconds.
    pub url_expires: u64,
}

/// A signed link.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileLinkBody {
    /// `/api/files/{id}?expires=…&sig=…`, relative to the server.
    pub url: String,
    /// Unix seconds.
    pub expires: u64,
}

/// `POST /api/rooms/{id}/files?name=…`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The file's name (1-255 bytes, no '/', '\\' or control characters);
    /// else the Content-Disposition header's `filename`.
    pub name: Option<String>,
}

/// `GET /api/files/{id}`: a signed link's parameters (else a bearer token).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkQuery {
    /// Unix seconds until which the link is valid.
    #[param(value_type = Option<i64>, minimum = 0)]
    pub expires: Option<Id63>,
    /// Hex HMAC-SHA256 over "<id>:<expires>" (SPEC.md §13.4).
    pub sig: Option<String>,
}

/// The 200 and 206 of a download: the bytes, in each allowlisted type
/// (the rows are made from the allowlist itself).
#[allow(dead_code)] // described, never built
pub struct ServedFile;

impl utoipa::IntoResponses for ServedFile {
    fn responses() -> BTreeMap<String, RefOr<openapi::Response>> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        let bytes = ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .build();
        let rows = [
            ("200", "The bytes, to a member of the file's room (bearer token) or to the holder of a signed link. Content-Disposition is inline for images, attachment for everything else; X-Content-Type-Options: nosniff; ETag is the SHA-256."),
            ("206", "The asked range, with Content-Range."),
        ];
        rows.into_iter()
            .map(|(status, description)| {
                let mut row = openapi::ResponseBuilder::new().description(description);
                for kind in Kind::ALL {
                    let content = openapi::ContentBuilder::new()
                        .schema(Some(bytes.clone()))
                        .build();
                    row = row.content(kind.essence(), content);
                }
                (status.to_owned(), RefOr::T(row.build()))
            })
            .collect()
    }
}

/// 404 and 410 of every route that names a file.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // described, never built
pub enum FileErrors {
    #[response(status = 404, description = "UNKNOWN_FILE, or ROOM_NOT_FOUND.")]
    Unknown(ErrorBody),
    #[response(
        status = 410,
        description = "UNKNOWN_FILE with reason `deleted`, or ROOM_TERMINATED."
    )]
    Deleted(ErrorBody),
}

/// The raw bytes of a file (documents only).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // described, never built
pub struct FileBytes(Vec<u8>);

pub(super) fn refused(r: Refusal, message: impl Into<String>) -> ApiError {
    crate::metrics::file_refused(r.reason());
    let status = StatusCode::from_u16(r.status()).unwrap_or(StatusCode::BAD_REQUEST);
    ApiError::reason(status, ErrorCode::FileRefused, r.reason(), message)
}

fn deleted() -> ApiError {
    ApiError::reason(
        StatusCode::GONE,
        ErrorCode::UnknownFile,
        "deleted",
        "the file was deleted (its message was, or no message referenced it in time)",
    )
}

fn link_of(id: u64, expires: u64, sig: &str) -> String {
    format!("/api/files/{id}?expires={expires}&sig={sig}")
}

fn file_body(st: &HttpState, id: u64, f: &confab_store::NewFile) -> FileBody {
    let (url_expires, sig) = st.server.files.sign(id, st.server.clock.now_ms());
    FileBody {
        id,
        room: f.room.0,
        uploader: f.uploader.0,
        name: f.name.clone(),
        content_type: f.content_type.clone(),
        size: f.size,
        sha256: hex::encode(f.sha256),
        width: f.width,
        height: f.height,
        created_at: f.created_at,
        url: link_of(id, url_expires, &sig),
        url_expires,
    }
}

/// The upload's name: `?name=`, else Content-Disposition's.
fn upload_name(q: UploadQuery, headers: &HeaderMap) -> ApiResult<String> {
    let name = q.name.or_else(|| {
        let v = headers.get(header::CONTENT_DISPOSITION)?.to_str().ok()?;
        name::from_disposition(v)
    });
    let name = name.unwrap_or_default();
    name::check(&name).map_err(|bad| refused(Refusal::Name(bad), bad.message()))?;
    Ok(name)
}

#[utoipa::path(post, path = "/api/rooms/{id}/files", tag = "files",
    security(("bearer" = [])),
    params(RoomPath, UploadQuery),
    request_body(description = "The file's bytes, raw, with its Content-Type (one of the allowlisted types; the bytes must be of that type). Name it with ?name= or Content-Disposition.",
        content(
            (FileBytes = "image/png"), (FileBytes = "image/jpeg"), (FileBytes = "image/gif"),
            (FileBytes = "image/webp"), (FileBytes = "application/pdf"),
            (FileBytes = "application/zip"), (FileBytes = "text/plain"),
        )),
    responses(
        (status = 201, description = "Stored (its bytes once per content hash), with a signed link. Attach it to a message by its id within a day, or housekeeping deletes it.", body = FileBody),
        (status = 400, description = "Bad room id or query; FILE_REFUSED with reason `empty`, `name_missing`, `name_too_long`, `name_has_path` or `name_invalid`.", body = ErrorBody),
        (status = 403, description = "NOT_A_MEMBER.", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND.", body = ErrorBody),
        RoomErrors,
        (status = 413, description = "FILE_REFUSED, reason `too_large`: over the server's upload limit (by Content-Length, before the body is read; or while it streams).", body = ErrorBody),
        (status = 415, description = "FILE_REFUSED, reason `type_not_allowed` (the declared type is not allowlisted) or `type_mismatch` (the bytes are not of the declared type).", body = ErrorBody),
        (status = 429, description = "UPLOAD_RATE_LIMITED: the caller's hourly upload budget does not cover the file (by Content-Length before the body is read, or while it streams); see Retry-After and `retry_after_ms`.", body = ErrorBody),
    ))]
pub async fn upload(
    caller: Caller,
    RoomPath(room): RoomPath,
    QueryParams(q): QueryParams<UploadQuery>,
    State(st): State<HttpState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<FileBody>)> {
    let me = caller.session().await?;
    let server = caller.server();
    if let Err(code) = session::check_member(server, room, me.user).await {
        if code == ErrorCode::NotAMember {
            crate::metrics::file_refused("not_member");
        }
        return Err(ApiError::code(code, code.default_message()));
    }
    let name = upload_name(q, &headers)?;
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(kind) = Kind::declared(declared) else {
        return Err(refused(
            Refusal::TypeNotAllowed,
            "the Content-Type is not one of image/png, image/jpeg, image/gif, image/webp, application/pdf, application/zip, text/plain",
        ));
    };
    let files = &server.files;
    let received = receive(server, me.user, &headers, body, kind, files.max_bytes).await?;
    let now = server.clock.now_ms();
    let kept = files
        .keep(
            server.store.as_ref(),
            received,
            Some(room),
            me.user,
            name,
            now,
        )
        .await
        .map_err(not_kept)?;
    crate::metrics::file_uploaded(kept.file.size, kept.deduplicated);
    Ok((
        StatusCode::CREATED,
        Json(file_body(&st, kept.id, &kept.file)),
    ))
}

/// An upload's body received for `user`: refused by its Content-Length
/// if that is over `max` or over what the user's hourly budget has left
/// (before a byte is read), else streamed in, counted against the budget
/// and checked to be `kind` ([`crate::files::Files::receive`]).
pub(super) async fn receive(
    server: &ServerState,
    user: UserId,
    headers: &HeaderMap,
    body: Body,
    kind: Kind,
    max: u64,
) -> ApiResult<Received> {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|n| n > max) {
        // Refused before a byte of the body is read; hyper closes the
        // connection rather than read what the client still sends.
        return Err(refused(
            Refusal::TooLarge,
            format!("the file is larger than {max} bytes"),
        ));
    }
    let mut meter = server.limits.upload_meter(user);
    if let Some(n) = length {
        meter.reach(n).map_err(over_budget)?;
    }
    match server.files.receive(body, kind, max, &mut meter).await {
        Ok(r) => Ok(r),
        Err(ReceiveError::Refused(r, message)) => Err(refused(r, message)),
        Err(ReceiveError::OverBudget(wait)) => Err(over_budget(wait)),
        Err(ReceiveError::Body(e)) => {
            Err(ApiError::bad_request(format!("the body broke off: {e}")))
        }
        Err(ReceiveError::Disk(e)) => {
            tracing::error!(error = %e, "cannot write an upload");
            Err(ApiError::code(
                ErrorCode::StorageUnavailable,
                "the upload could not be written",
            ))
        }
    }
}

fn over_budget(wait: std::time::Duration) -> ApiError {
    ApiError::retry(
        ErrorCode::UploadRateLimited,
        wait,
        "your upload budget for this hour is spent; see Retry-After",
    )
}

/// A received upload that could not be kept.
pub(super) fn not_kept(e: KeepError) -> ApiError {
    tracing::error!(error = %e, "cannot keep an upload");
    ApiError::code(
        ErrorCode::StorageUnavailable,
        "the upload could not be stored",
    )
}

/// The file, if it exists and is not deleted.
async fn live_file(st: &HttpState, id: u64) -> ApiResult<FileRecord> {
    let lookup = st.server.store.file(id);
    match crate::metrics::query("file", lookup).await {
        Ok(Some(f)) if f.deleted => Err(deleted()),
        Ok(Some(f)) => Ok(f),
        Ok(None) => Err(ApiError::code(
            ErrorCode::UnknownFile,
            format!("no file {id}"),
        )),
        Err(e) => {
            tracing::warn!(error = %e, "file lookup failed");
            Err(ApiError::code(
                ErrorCode::StorageUnavailable,
                "the store does not answer",
            ))
        }
    }
}

/// A file the bearer token's user may read: a member of its room, or
/// anyone for an avatar (any authenticated user may read any profile).
async fn readable_file(caller: &Caller, st: &HttpState, id: u64) -> ApiResult<FileRecord> {
    let me = caller.session().await?;
    let f = live_file(st, id).await?;
    if f.avatar {
        return Ok(f);
    }
    session::check_member(caller.server(), f.file.room, me.user)
        .await
        .map_err(|code| ApiError::code(code, code.default_message()))?;
    Ok(f)
}

#[utoipa::path(get, path = "/api/files/{id}/url", tag = "files",
    security(("bearer" = [])),
    params(FilePath),
    responses(
        (status = 200, description = "A signed link to the file, for the caller to hand to a browser.", body = FileLinkBody),
        (status = 400, description = "Bad file id.", body = ErrorBody),
        (status = 403, description = "NOT_A_MEMBER of the file's room (an avatar: any authenticated user may read it).", body = ErrorBody),
        FileErrors,
        AuthedErrors,
    ))]
pub async fn file_url(
    caller: Caller,
    State(st): State<HttpState>,
    FilePath(id): FilePath,
) -> ApiResult<Json<FileLinkBody>> {
    let f = readable_file(&caller, &st, id).await?;
    let (expires, sig) = st.server.files.sign(f.id, st.server.clock.now_ms());
    Ok(Json(FileLinkBody {
        url: link_of(f.id, expires, &sig),
        expires,
    }))
}

#[utoipa::path(get, path = "/api/files/{id}", tag = "files",
    security((), ("bearer" = [])),
    params(FilePath, LinkQuery,
        ("Range" = Option<String>, Header, description = "One byte range: bytes=a-b, bytes=a- or bytes=-n.")),
    responses(
        ServedFile,
        (status = 304, description = "Not modified (If-None-Match named the ETag)."),
        (status = 400, description = "Bad file id or query.", body = ErrorBody),
        (status = 401, description = "Neither a token nor a signed link; or an invalid token.", body = ErrorBody),
        (status = 403, description = "NOT_A_MEMBER of the file's room (an avatar: any authenticated user may read it), or FILE_LINK_INVALID (reason `expired` or `bad_signature`).", body = ErrorBody),
        FileErrors,
        (status = 416, description = "The range starts past the end (Content-Range: bytes */size).", body = ErrorBody),
        StoreErrors,
    ))]
pub async fn download(
    State(st): State<HttpState>,
    FilePath(id): FilePath,
    QueryParams(q): QueryParams<LinkQuery>,
    headers: HeaderMap,
    caller: Option<Caller>,
) -> ApiResult<Response> {
    let by_link = q.sig.is_some() || q.expires.is_some();
    let f = if by_link {
        let (Some(expires), Some(sig)) = (q.expires, q.sig.as_deref()) else {
            return Err(link_refused(LinkRefused::BadSignature));
        };
        let now = st.server.clock.now_ms();
        st.server
            .files
            .verify(id, expires.get(), sig, now)
            .map_err(link_refused)?;
        live_file(&st, id).await?
    } else {
        let Some(caller) = caller else {
            return Err(ApiError::code(
                ErrorCode::NotAuthenticated,
                "send Authorization: Bearer <token>, or use a signed link (GET /api/files/{id}/url)",
            ));
        };
        readable_file(&caller, &st, id).await?
    };
    serve(&st, &f, &headers, by_link).await
}

fn link_refused(r: LinkRefused) -> ApiError {
    let (reason, message) = match r {
        LinkRefused::Expired => ("expired", "the link has expired; ask for a new one"),
        LinkRefused::BadSignature => ("bad_signature", "the link's signature is not valid"),
    };
    ApiError::reason(
        StatusCode::FORBIDDEN,
        ErrorCode::FileLinkInvalid,
        reason,
        message,
    )
}

/// A `Range` header's one range over `size` bytes: `Ok(None)` to serve
/// the whole file (no header, several ranges, or one that does not parse:
/// RFC 9110 lets a server ignore those), `Err` when it starts past the end.
fn range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((start, end)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (start, end) = (start.trim(), end.trim());
    let parsed = match (start.parse::<u64>().ok(), end.parse::<u64>().ok()) {
        // bytes=-n: the last n bytes.
        (None, Some(n)) if start.is_empty() => {
            if n == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size - 1)
        }
        (Some(a), None) if end.is_empty() => (a, size.saturating_sub(1)),
        (Some(a), Some(b)) if a <= b => (a, b.min(size.saturating_sub(1))),
        _ => return Ok(None),
    };
    if parsed.0 >= size {
        return Err(());
    }
    Ok(Some(parsed))
}

fn header(v: &str) -> HeaderValue {
    HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

async fn serve(
    st: &HttpState,
    f: &FileRecord,
    headers: &HeaderMap,
    by_link: bool,
) -> ApiResult<Response> {
    let size = f.file.size;
    let etag = format!("\"{}\"", hex::encode(f.file.sha256));
    let inline = Kind::declared(&f.file.content_type).is_some_and(Kind::is_image);
    let mut out = HeaderMap::new();
    out.insert(header::CONTENT_TYPE, header(&f.file.content_type));
    out.insert(
        header::CONTENT_DISPOSITION,
        header(&name::disposition(&f.file.name, inline)),
    );
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    out.insert(header::ETAG, header(&etag));
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if not_modified {
        return Ok((StatusCode::NOT_MODIFIED, out).into_response());
    }
    let (status, start, len) = match range(headers, size) {
        Ok(None) => (StatusCode::OK, 0, size),
        Ok(Some((a, b))) => {
            out.insert(
                header::CONTENT_RANGE,
                header(&format!("bytes {a}-{b}/{size}")),
            );
            (StatusCode::PARTIAL_CONTENT, a, b - a + 1)
        }
        Err(()) => {
            let mut e = ApiError::reason(
                StatusCode::RANGE_NOT_SATISFIABLE,
                ErrorCode::MalformedFrame,
                "range_not_satisfiable",
                format!("the range starts past the end of the file ({size} bytes)"),
            )
            .into_response();
            e.headers_mut()
                .insert(header::CONTENT_RANGE, header(&format!("bytes */{size}")));
            return Ok(e);
        }
    };
    let path = st.server.files.blob_path(&f.file.sha256);
    let mut file = tokio::fs::File::open(&path).await.map_err(|e| {
        tracing::error!(error = %e, path = %path.display(), "a file's bytes are missing");
        ApiError::code(
            ErrorCode::StorageUnavailable,
            "the file's bytes cannot be read",
        )
    })?;
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|_| {
                ApiError::code(ErrorCode::StorageUnavailable, "the file cannot be read")
            })?;
    }
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    crate::metrics::file_downloaded(by_link, status == StatusCode::PARTIAL_CONTENT, len);
    let body = Body::new(BlobBody { file, left: len });
    Ok((status, out, body).into_response())
}

/// A file's bytes as a response body, read a chunk at a time.
struct BlobBody {
    file: tokio::fs::File,
    left: u64,
}

/// Read size of a download's chunks.
const CHUNK: usize = 64 * 1024;

impl HttpBody for BlobBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let want = CHUNK.min(usize::try_from(self.left).unwrap_or(CHUNK));
        let mut buf = vec![0u8; want];
        let mut read = ReadBuf::new(&mut buf);
        match Pin::new(&mut self.file).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => {
                let n = read.filled().len();
                if n == 0 {
                    return Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file is shorter than its record",
                    ))));
                }
                buf.truncate(n);
                self.left -= n as u64;
                Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(buf)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_range(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn one_range_is_served_and_others_are_ignored_or_unsatisfiable() {
        let r = |v: &str| range(&with_range(v), 100);
        assert_eq!(range(&HeaderMap::new(), 100), Ok(None));
        assert_eq!(r("bytes=0-9"), Ok(Some((0, 9))));
        assert_eq!(r("bytes=90-"), Ok(Some((90, 99))));
        assert_eq!(r("bytes=-10"), Ok(Some((90, 99))));
        assert_eq!(r("bytes=-1000"), Ok(Some((0, 99))));
        assert_eq!(r("bytes=50-1000"), Ok(Some((50, 99))));
        assert_eq!(r("bytes=100-"), Err(()));
        assert_eq!(r("bytes=200-300"), Err(()));
        assert_eq!(r("bytes=-0"), Err(()));
        assert_eq!(r("bytes=0-1,5-6"), Ok(None));
        assert_eq!(r("bytes=9-1"), Ok(None));
        assert_eq!(r("items=0-1"), Ok(None));
        assert_eq!(r("bytes=x-y"), Ok(None));
    }
}
