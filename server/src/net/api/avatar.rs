//! Avatars over HTTP (SPEC.md §5.2.5, §13.6): `PUT /api/me/avatar` sets
//! the caller's avatar from an uploaded image, `DELETE` clears it.
//!
//! An avatar is a file like a room's (the same streaming receive, content
//! sniffing and content-hash storage, `crate::files`), marked as an avatar
//! and in no room, so that any authenticated user may read it. Setting or
//! clearing it is a profile change: it draws on the profile-change limit,
//! goes through the account writer (`AccountWrite::SetAvatar`, which also
//! retires the previous avatar for housekeeping to remove), and is
//! announced with PROFILE_CHANGED like UPDATE_PROFILE.

use axum::body::Body;
use axum::http::{header, HeaderMap};
use axum::Json;
use confab_protocol::{ErrorCode, Profile, UserId};
use confab_store::{AccountOutcome, AccountWrite};

use super::error::{ApiError, AuthedErrors, ErrorBody};
use super::extract::Caller;
use super::files::{not_kept, receive, refused, FileBytes};
use super::types::ProfileBody;
use crate::files::{Kind, Refusal};
use crate::limit::LimitKind;
use crate::session::announce_profile;
use crate::state::ServerState;

type ApiResult<T> = Result<T, ApiError>;

/// The name an avatar file is stored (and served) under.
fn avatar_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Jpeg => "avatar.jpg",
        Kind::Gif => "avatar.gif",
        Kind::Webp => "avatar.webp",
        _ => "avatar.png",
    }
}

fn storage(e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "avatar change: store request failed");
    ApiError::code(
        ErrorCode::StorageUnavailable,
        ErrorCode::StorageUnavailable.default_message(),
    )
}

/// Takes one profile change of `user`'s allowance.
fn profile_change(server: &ServerState, user: UserId) -> ApiResult<()> {
    server
        .limits
        .check(LimitKind::Profile, user)
        .map_err(|wait| {
            ApiError::retry(
                ErrorCode::ProfileRateLimited,
                wait,
                ErrorCode::ProfileRateLimited.default_message(),
            )
        })
}

/// Makes `file` (or none) `user`'s avatar, and tells the members of their
/// rooms; their whole profile as it now is.
async fn set(server: &ServerState, user: UserId, file: Option<u64>) -> ApiResult<Profile> {
    match server
        .accounts
        .write(AccountWrite::SetAvatar { user, file })
        .await
    {
        Ok(AccountOutcome::Updated) => {}
        Ok(_) => return Err(ApiError::code(ErrorCode::InvalidToken, "no such account")),
        Err(e) => return Err(storage(e)),
    }
    match announce_profile(server, user).await {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err(ApiError::code(ErrorCode::InvalidToken, "no such account")),
        Err(e) => Err(storage(e)),
    }
}

#[utoipa::path(put, path = "/api/me/avatar", tag = "accounts",
    security(("bearer" = [])),
    request_body(description = "The image's bytes, raw, with its Content-Type: one of the four image types, which the bytes must be. At most max_avatar_bytes (512 KiB by default) and max_avatar_side pixels wide and high (1024 by default); a larger image is refused, not resized.",
        content(
            (FileBytes = "image/png"), (FileBytes = "image/jpeg"), (FileBytes = "image/gif"),
            (FileBytes = "image/webp"),
        )),
    responses(
        (status = 200, description = "Stored, durably: the caller's profile as it now is, `avatar` the new image's file id (read by any authenticated user at /api/files/{id}). The previous avatar is deleted. Members of the caller's rooms get a PROFILE_CHANGED event, as for PUT /api/me/profile.", body = ProfileBody),
        (status = 400, description = "FILE_REFUSED with reason `empty`, `too_many_pixels` (wider or higher than the limit) or `no_dimensions` (a JPEG whose size is not in its first 256 KiB).", body = ErrorBody),
        AuthedErrors,
        (status = 413, description = "FILE_REFUSED, reason `too_large`: over max_avatar_bytes (by Content-Length, before the body is read; or while it streams).", body = ErrorBody),
        (status = 415, description = "FILE_REFUSED, reason `not_image` (the declared type is none of the four image types) or `type_mismatch` (the bytes are not of the declared type).", body = ErrorBody),
        (status = 429, description = "PROFILE_RATE_LIMITED (an avatar change is a profile change; a refused one counts too) or UPLOAD_RATE_LIMITED (the hourly upload budget); see Retry-After and `retry_after_ms`.", body = ErrorBody),
    ))]
pub async fn set_avatar(
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<ProfileBody>> {
    let me = caller.session().await?;
    let server = caller.server();
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(kind) = Kind::declared(declared).filter(|k| k.is_image()) else {
        return Err(refused(
            Refusal::NotImage,
            "an avatar's Content-Type is image/png, image/jpeg, image/gif or image/webp",
        ));
    };
    profile_change(server, me.user)?;
    let files = &server.files;
    let max = files.avatar_max_bytes;
    let received = receive(server, me.user, &headers, body, kind, max).await?;
    let side = files.avatar_max_side;
    match received.dims {
        None => {
            return Err(refused(
                Refusal::NoDimensions,
                "the image's size in pixels is not in its first 256 KiB",
            ))
        }
        Some((w, h)) if w > side || h > side => {
            return Err(refused(
                Refusal::TooManyPixels,
                format!("the image is {w}x{h}; an avatar is at most {side}x{side} pixels"),
            ))
        }
        Some(_) => {}
    }
    let now = server.clock.now_ms();
    let name = avatar_name(kind).to_owned();
    let kept = files
        .keep(server.store.as_ref(), received, None, me.user, name, now)
        .await
        .map_err(not_kept)?;
    crate::metrics::file_uploaded(kept.file.size, kept.deduplicated);
    let profile = set(server, me.user, Some(kept.id)).await?;
    Ok(Json(profile.into()))
}

#[utoipa::path(delete, path = "/api/me/avatar", tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller has no avatar now: their profile as it is. If they had one, it is deleted and members of their rooms get a PROFILE_CHANGED event; if not, nothing changed (and no profile change was counted).", body = ProfileBody),
        AuthedErrors,
        (status = 429, description = "PROFILE_RATE_LIMITED: too many profile changes; see Retry-After and `retry_after_ms`.", body = ErrorBody),
    ))]
pub async fn clear_avatar(caller: Caller) -> ApiResult<Json<ProfileBody>> {
    let me = caller.session().await?;
    let server = caller.server();
    let read = server.store.profile(me.user);
    let current = match crate::metrics::query("profile", read).await {
        Ok(Some(p)) => p,
        Ok(None) => return Err(ApiError::code(ErrorCode::InvalidToken, "no such account")),
        Err(e) => return Err(storage(e)),
    };
    if current.avatar.is_none() {
        return Ok(Json(current.into()));
    }
    profile_change(server, me.user)?;
    let profile = set(server, me.user, None).await?;
    Ok(Json(profile.into()))
}
