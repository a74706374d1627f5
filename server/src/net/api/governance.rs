//! The governance endpoints (SPEC.md §5.7, §5.8, §8): invitations, join
//! requests, kicks, bans, roles, room updates, the audit trail, and the
//! caller's notifications and room log.
//!
//! Same invariant as the rest of the API: no rule lives here. Each handler
//! builds the protocol request a connection would send and runs it through
//! `session::call`; the room's shard decides, and its ERROR comes back with
//! the status from [`super::error::status_for`].

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use confab_protocol::{ErrorCode, Request, RoomId, RoomInfo, ServerMsg, UserId};

use super::error::path_id;
use super::types::*;
use super::{call, ApiError, ApiResult, Bearer, ErrorBody, DEFAULT_LIMIT};
use crate::net::http::HttpState;

/// A reply that must be OK: 204.
fn no_content(reply: ServerMsg) -> ApiResult<StatusCode> {
    match reply {
        ServerMsg::Ok => Ok(StatusCode::NO_CONTENT),
        other => Err(ApiError::from_reply(other)),
    }
}

fn user_list(reply: ServerMsg) -> ApiResult<Json<UserListBody>> {
    match reply {
        ServerMsg::UserList { room, users } => Ok(Json(UserListBody {
            room: room.0,
            users: users.into_iter().map(UserEntryBody::from).collect(),
        })),
        other => Err(ApiError::from_reply(other)),
    }
}

/// Ids (notification, audit entry) fit in 63 bits, like sequence numbers.
fn id_bound(name: &str, v: Option<u64>) -> ApiResult<u64> {
    let v = v.unwrap_or(0);
    if v > i64::MAX as u64 {
        return Err(ApiError::bad_request(format!(
            "{name} must be at most 2^63 - 1"
        )));
    }
    Ok(v)
}

// --- invitations -------------------------------------------------------------

#[utoipa::path(post, path = "/api/rooms/{id}/invitations", tag = "governance",
    security(("bearer" = [])),
    params(("id" = u64, Path, description = "Room id")),
    request_body = UserRefBody,
    responses(
        (status = 204, description = "Invited, durably; the user is notified (`invited`)."),
        (status = 400, description = "Malformed body or bad room id.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "NOT_A_MEMBER or NOT_ADMIN.", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND or NO_SUCH_USER.", body = ErrorBody),
        (status = 409, description = "ALREADY_MEMBER, ALREADY_INVITED or TARGET_BANNED.", body = ErrorBody),
        (status = 410, description = "ROOM_TERMINATED.", body = ErrorBody),
        (status = 413, description = "Body too large.", body = ErrorBody),
        (status = 415, description = "Not JSON.", body = ErrorBody),
        (status = 503, description = "Storage unavailable or shutting down.", body = ErrorBody),
    ))]
pub(super) async fn invite(
    State(st): State<HttpState>,
    Bearer(token): Bearer,
    id: Result<Path<u64>, PathRejection>,
    body: Result<Json<UserRefBody>, JsonRejection>,
) -> ApiResult<StatusCode> {
    let id = path_id(id?.0)?;
    let Json(who) = body?;
    let req = Request::Invite {
        room: RoomId(id),
        user: who.into(),
    };
    no_content(call(&st, Some(&token), req).await)
}

#[utoipa::path(post, path = "/api/rooms/{id}/invitation/accept", tag = "governance",
    security(("bearer" = [])),
    params(("id" = u64, Path, description = "Room id")),
    responses(
        (status = 200, description = "Joined, durably (private rooms too); the invitation is used up.", body = RoomBody),
        (status = 400, description = "Bad room id.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "BANNED.", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND or NOT_INVITED (no pending invitation).", body = ErrorBody),
        (status = 409, description = "ALREADY_MEMBER.", body = ErrorBody),
        (status = 410, description = "ROOM_TERMINATED.", body = ErrorBody),
        (status = 503, description = "Storage unavailable or shutting down.", body = ErrorBody),
    ))]
pub(super) async fn accept_invitation(
    State(st): State<HttpState>,
    Bearer(token): Bearer,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<Json<RoomBody>> {
    let id = path_id(id?.0)?;
    let req = Request::RespondInvite {
        room: RoomId(id),
        accept: true,
    };
    match call(&st, Some(&token), req).await {
        ServerMsg::Room(info) => Ok(Json(info.into())),
        other => Err(ApiError::from_reply(other)),
    }
}

#[utoipa::path(post, path = "/api/rooms/{id}/invitation/decline", tag = "governance",
    security(("bearer" = [])),
    params(("id" = u64, Path, description = "Room id")),
    responses(
        (status = 204, description = "Declined; the invitation is gone and nobody is notified."),
        (status = 400, description = "Bad room id.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND or NOT_INVITED.", body = ErrorBody),
        (status = 410, description = "ROOM_TERMINATED.", body = ErrorBody),
        (status = 503, description = "Storage unavailable or shutting down.", body = ErrorBody),
    ))]
pub(super) async fn decline_invitation(
    State(st): State<HttpState>,
    Bearer(token): Bearer,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<StatusCode> {
    let id = path_id(id?.0)?;
    let req = Request::RespondInvite {
        room: RoomId(id),
        accept: false,
    };
    no_content(call(&st, Some(&token), req).await)
}

// --- join requests -----------------------------------------------------------

#[utoipa::path(post, path = "/api/rooms/{id}/join-requests", tag = "governance",
    security(("bearer" = [])),
    params(("id" = u64, Path, description = "Room id")),
    responses(
        (status = 204, description = "Asked, durably; every admin of the room is notified (`join_request`)."),
        (status = 400, description = "Bad room id.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "BANNED.", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND.", body = ErrorBody),
        (status = 409, description = "ALREADY_MEMBER or ALREADY_REQUESTED.", body = ErrorBody),
        (status = 410, description = "ROOM_TERMINATED.", body = ErrorBody),
        (status = 503, description = "Storage unavailable or shutting down.", body = ErrorBody),
    ))]
pub(super) async fn request_join(
    State(st): State<HttpState>,
    Bearer(token): Bearer,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<StatusCode> {
    let id = path_id(id?.0)?;
    let req = Request::RequestJoin { room: RoomId(id) };
    no_content(call(&st, Some(&token), req).await)
}

#[utoipa::path(get, path = "/api/rooms/{id}/join-requests", tag = "governance",
    security(("bearer" = [])),
    params(("id" = u64, Path, description = "Room id")),
    responses(
        (status = 200, description = "The pending join requests, oldest first (`at` = when asked).", body = UserListBody),
        (status = 400, description = "Bad room id.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "NOT_A_MEMBER or NOT_ADMIN (admins only).", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND.", body = ErrorBody),
        (status = 410, description = "ROOM_TERMINATED.", body = ErrorBody),
        (status = 503, description = "Storage unavailable or shutting down.", body = ErrorBody),
    ))]
pub(super) async fn list_join_requests(
    State(st): State<HttpState>,
    Bearer(token): Bearer,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<Json<UserListBody>> {
    let id = path_id(id?.0)?;
    let req = Request::ListJoinRequests { room: RoomId(id) };
    user_list(call(&st, Some(&token), req).await)
}

async fn decide(
    st: &HttpState,
    token: &str,
    path: Result<Path<(u64, u64)>, PathRejection>,
    approve: bool,
) -> ApiResult<StatusCode> {
    let Path((id, user)) = path?;
    let (id, user) = (path_id(id)?, path_id(user)?);
    let req = Request::DecideRequest {
        room: RoomId(id),
        user: UserId(user),
        approve,
    };
    no_content(call(st, Some(token), req).await)
}

#[utoipa::path(post, path = "/api/rooms/{id}/join-requests/{user_id}/approve", tag = "governance",
    security(("bearer" = [])),
    params(
        ("id" = u64, Path, description = "Room id"),
        ("user_id" = u64, Path, description = "The user who asked"),
    ),
    responses(
        (status = 204, description = "Approved, durably: the user is a member and is notified (`request_approved`)."),
        (status = 400, description = "Bad room or user id.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "NOT_A_MEMBER or NOT_ADMIN.", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND or NO_SUCH_REQUEST.", body = ErrorBody),
        (status = 410, description = "ROOM_TERMINATED.", body = ErrorBody),
        (status = 503, description = "Storage unavailable or shutting down.", body = ErrorBody),
    ))]
pub(super) async fn approve_request(
    State(st): State<HttpState>,
    Bearer(token): Bearer,
    path: Result<Path<(u64, u64)>, PathRejection>,
) -> ApiResult<StatusCode> {
    decide(&st, &token, path, true).await
}

#[utoipa::path(post, path = "/api/rooms/{id}/join-requests/{user_id}/deny", tag = "governance",
    security(("bearer" = [])),
    params(
        ("id" = u64, Path, description = "Room id"),
        ("user_id" = u64, Path, description = "The user who asked"),
    ),
    responses(
        (status = 204, description = "Denied, durably; the user is notified (`request_denied`)."),
        (status = 400, description = "Bad room or user id.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "NOT_A_MEMBER or NOT_ADMIN.", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND or NO_SUCH_REQUEST.", body = ErrorBody),
        (status = 410, description = "ROOM_TERMINATED.", body = ErrorBody),
        (status = 503, description = "Storage unavailable or shutting down.", body = ErrorBody),
    ))]
pub(super) async fn deny_request(
    State(st): State<HttpState>,
    Bearer(token): Bearer,
    path: Result<Path<(u64, u64)>, PathRejection>,
) -> ApiResult<StatusCode> {
    decide(&st, &token, path, false).await
}

// --- members: kick, roles ----------------------------------------------------

#[utoipa::path(delete, path = "/api/rooms/{id}/members/{user_id}", tag = "governance",
    security(("bearer" = [])),
    params(
        ("id" = u64, Path, description = "Room id"),
        ("user_id" = u64, Path, description = "The member to remove"),
    ),
    responses(
        (status = 204, description = "Kicked, durably; the user is notified (`kicked`) and may come back."),
        (status = 400, description = "Bad room or user id.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "NOT_A_MEMBER, NOT_ADMIN, NOT_OWNER (to kick an admin), CANNOT_TARGET_SELF or CANNOT_TARGET_OWNER.", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND or TARGET_NOT_MEMBER.", body = ErrorBody),
        (status = 410, description = "ROOM_TERMINATED.", body = ErrorBody),
        (status = 503, description = "Storage unavailable or shutting down.", body = ErrorBody),
    ))]
pub(super) async fn kick(
    State(st): State<HttpState>,
    Bearer(token): Bearer,
    path: Result<Path<(u64, u64)>, PathRejection>,
) -> ApiResult<StatusCode> {
    let Path((id, user)) = path?;
    let (id, user) = (path_id(id)?, path_id(user)?);
    let req = Request::Kick {
        room: RoomId(id),
        user: UserId(user),
    };
    no_content(call(&st, Some(&token), req).await)
}

#[utoipa::path(put, path = "/api/rooms/{id}/members/{user_id}/role", tag = "governance",
    security(("bearer" = [])),
    params(
        ("id" = u64, Path, description = "Room id"),
        ("user_id" = u64, Path, description = "The member whose role changes"),
    ),
    request_body = SetRoleBody,
    responses(
        (status = 204, description = "The member has the role, durably (nothing happens if they had it already); if it changed they are notified (`role_changed`)."),
        (status = 400, description = "Malformed body, bad id or INVALID_ROLE (`owner`).", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "NOT_A_MEMBER, NOT_OWNER (owner only) or CANNOT_TARGET_SELF.", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND or TARGET_NOT_MEMBER.", body = ErrorBody),
        (status = 410, description = "ROOM_TERMINATED.", body = ErrorBody),
        (status = 413, description = "Body too large.", body = ErrorBody),
        (status = 415, description = "Not JSON.", body = ErrorBody),
        (status = 503, description = "Storage unavailable or shutting down.", body = ErrorBody),
    ))]
pub(super) async fn set_role(
    State(st): State<HttpState>,
    Bearer(token): Bearer,
    path: Result<Path<(u64, u64)>, PathRejection>,
    body: Result<Json<SetRoleBody>, JsonRejection>,
) -> ApiResult<StatusCode> {
    let Path((id, user)) = path?;
    let (id, user) = (path_id(id)?, path_id(user)?);
    let Json(b) = body?;
    let req = Request::SetRole {
        room: RoomId(id),
        user: UserId(user),
        role: b.role.into(),
    };
    no_content(call(&st, Some(&token), req).await)
}

// --- bans --------------------------------------------------------------------

#[utoipa::path(post, path = "/api/rooms/{id}/bans", tag = "governance",
    security(("bearer" = [])),
    params(("id" = u64, Path, description = "Room id")),
    request_body = UserRefBody,
    responses(
        (status = 204, description = "Banned, durably: removed if a member, pending invitation and request dropped, the room hidden from them; they are notified (`banned`)."),
        (status = 400, description = "Malformed body or bad room id.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "NOT_A_MEMBER, NOT_ADMIN, NOT_OWNER (to ban an admin), CANNOT_TARGET_SELF or CANNOT_TARGET_OWNER.", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND or NO_SUCH_USER.", body = ErrorBody),
        (status = 409, description = "ALREADY_BANNED.", body = ErrorBody),
        (status = 410, description = "ROOM_TERMINATED.", body = ErrorBody),
        (status = 413, description = "Body too large.", body = ErrorBody),
        (status = 415, description = "Not JSON.", body = ErrorBody),
        (status = 503, description = "Storage unavailable or shutting down.", body = ErrorBody),
    ))]
pub(super) async fn ban(
    State(st): State<HttpState>,
    Bearer(token): Bearer,
    id: Result<Path<u64>, PathRejection>,
    body: Result<Json<UserRefBody>, JsonRejection>,
) -> ApiResult<StatusCode> {
    let id = path_id(id?.0)?;
    let Json(who) = body?;
    let req = Request::Ban {
        room: RoomId(id),
        user: who.into(),
    };
    no_content(call(&st, Some(&token), req).await)
}

#[utoipa::path(get, path = "/api/rooms/{id}/bans", tag = "governance",
    security(("bearer" = [])),
    params(("id" = u64, Path, description = "Room id")),
    responses(
        (status = 200, description = "The room's bans, in no particular order (`at` = when banned).", body = UserListBody),
        (status = 400, description = "Bad room id.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "NOT_A_MEMBER or NOT_ADMIN (admins only).", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND.", body = ErrorBody),
        (status = 410, description = "ROOM_TERMINATED.", body = ErrorBody),
        (status = 503, description = "Storage unavailable or shutting down.", body = ErrorBody),
    ))]
pub(super) async fn list_bans(
    State(st): State<HttpState>,
    Bearer(token): Bearer,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<Json<UserListBody>> {
    let id = path_id(id?.0)?;
    let req = Request::ListBans { room: RoomId(id) };
    user_list(call(&st, Some(&token), req).await)
}

#[utoipa::path(delete, path = "/api/rooms/{id}/bans/{user_id}", tag = "governance",
    security(("bearer" = [])),
    params(
        ("id" = u64, Path, description = "Room id"),
        ("user_id" = u64, Path, description = "The banned user"),
    ),
    responses(
        (status = 204, description = "The ban is lifted, durably (the user does not become a member); they are notified (`unbanned`)."),
        (status = 400, description = "Bad room or user id.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "NOT_A_MEMBER or NOT_ADMIN.", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND or NOT_BANNED.", body = ErrorBody),
        (status = 410, description = "ROOM_TERMINATED.", body = ErrorBody),
        (status = 503, description = "Storage unavailable or shutting down.", body = ErrorBody),
    ))]
pub(super) async fn unban(
    State(st): State<HttpState>,
    Bearer(token): Bearer,
    path: Result<Path<(u64, u64)>, PathRejection>,
) -> ApiResult<StatusCode> {
    let Path((id, user)) = path?;
    let (id, user) = (path_id(id)?, path_id(user)?);
    let req = Request::Unban {
        room: RoomId(id),
        user: UserId(user),
    };
    no_content(call(&st, Some(&token), req).await)
}

// --- the room itself -----------------------------------------------------------

#[utoipa::path(patch, path = "/api/rooms/{id}", tag = "governance",
    security(("bearer" = [])),
    params(("id" = u64, Path, description = "Room id")),
    request_body = UpdateRoomBody,
    responses(
        (status = 204, description = "Updated, durably; the room emits `room_updated` with both values. A field left out keeps the value the caller last saw (a concurrent change to it may be overwritten)."),
        (status = 400, description = "Malformed body (neither field), bad room id, INVALID_ROOM_NAME or INVALID_TOPIC.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "NOT_A_MEMBER or NOT_ADMIN.", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND.", body = ErrorBody),
        (status = 410, description = "ROOM_TERMINATED.", body = ErrorBody),
        (status = 413, description = "Body too large.", body = ErrorBody),
        (status = 415, description = "Not JSON.", body = ErrorBody),
        (status = 503, description = "Storage unavailable or shutting down.", body = ErrorBody),
    ))]
pub(super) async fn update_room(
    State(st): State<HttpState>,
    Bearer(token): Bearer,
    id: Result<Path<u64>, PathRejection>,
    body: Result<Json<UpdateRoomBody>, JsonRejection>,
) -> ApiResult<StatusCode> {
    let id = path_id(id?.0)?;
    let Json(b) = body?;
    // UPDATE_ROOM always carries both; PATCH may leave one out, which then
    // keeps its current value.
    let (name, topic) = match (b.name, b.topic) {
        (None, None) => {
            return Err(ApiError::bad_request(
                "give the room's new name, topic or both",
            ))
        }
        (Some(name), Some(topic)) => (name, topic),
        (name, topic) => {
            let current = current_room(&st, &token, RoomId(id)).await?;
            (name.unwrap_or(current.name), topic.unwrap_or(current.topic))
        }
    };
    let req = Request::UpdateRoom {
        room: RoomId(id),
        name,
        topic,
    };
    no_content(call(&st, Some(&token), req).await)
}

/// The room as the caller sees it among their rooms; when it is not there,
/// the error a member-only request on it gets (not found, terminated, not
/// a member).
async fn current_room(st: &HttpState, token: &str, room: RoomId) -> ApiResult<RoomInfo> {
    for _ in 0..2 {
        match call(st, Some(token), Request::MyRooms).await {
            ServerMsg::RoomList { rooms, .. } => {
                if let Some(info) = rooms.into_iter().find(|r| r.id == room) {
                    return Ok(info);
                }
            }
            other => return Err(ApiError::from_reply(other)),
        }
        match call(st, Some(token), Request::ListMembers { room }).await {
            // Joined in between: look again.
            ServerMsg::MemberList { .. } => continue,
            other => return Err(ApiError::from_reply(other)),
        }
    }
    Err(ApiError::code(
        ErrorCode::NotAMember,
        "your membership of this room changed while updating it; retry",
    ))
}

#[utoipa::path(get, path = "/api/rooms/{id}/audit", tag = "governance",
    security(("bearer" = [])),
    params(("id" = u64, Path, description = "Room id"), AuditQuery),
    responses(
        (status = 200, description = "The room's audit trail, newest first.", body = AuditPageBody),
        (status = 400, description = "Bad room id or query, INVALID_PAGING.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "NOT_A_MEMBER or NOT_ADMIN (admins only).", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND.", body = ErrorBody),
        (status = 410, description = "ROOM_TERMINATED.", body = ErrorBody),
        (status = 503, description = "Storage unavailable or shutting down.", body = ErrorBody),
    ))]
pub(super) async fn audit(
    State(st): State<HttpState>,
    Bearer(token): Bearer,
    id: Result<Path<u64>, PathRejection>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> ApiResult<Json<AuditPageBody>> {
    let id = path_id(id?.0)?;
    let Query(q) = query?;
    let req = Request::RoomAudit {
        room: RoomId(id),
        before: id_bound("before", q.before)?,
        limit: q.limit.unwrap_or(DEFAULT_LIMIT),
    };
    match call(&st, Some(&token), req).await {
        ServerMsg::AuditPage {
            room,
            has_more,
            items,
        } => Ok(Json(AuditPageBody {
            room: room.0,
            has_more,
            items: items.into_iter().map(AuditItemBody::from).collect(),
        })),
        other => Err(ApiError::from_reply(other)),
    }
}

// --- the caller's own: notifications, room log --------------------------------

#[utoipa::path(get, path = "/api/me/notifications", tag = "notifications",
    security(("bearer" = [])),
    params(NotificationsQuery),
    responses(
        (status = 200, description = "The caller's notifications, newest first, with the unread count.", body = NotificationListBody),
        (status = 400, description = "Bad query or INVALID_PAGING.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 503, description = "Storage unavailable or shutting down.", body = ErrorBody),
    ))]
pub(super) async fn notifications(
    State(st): State<HttpState>,
    Bearer(token): Bearer,
    query: Result<Query<NotificationsQuery>, QueryRejection>,
) -> ApiResult<Json<NotificationListBody>> {
    let Query(q) = query?;
    let req = Request::ListNotifications {
        before: id_bound("before", q.before)?,
        limit: q.limit.unwrap_or(DEFAULT_LIMIT),
        unread_only: q.unread_only.unwrap_or(false),
    };
    match call(&st, Some(&token), req).await {
        ServerMsg::NotificationList {
            unread,
            has_more,
            items,
        } => Ok(Json(NotificationListBody {
            unread,
            has_more,
            items: items.into_iter().map(NotificationBody::from).collect(),
        })),
        other => Err(ApiError::from_reply(other)),
    }
}

#[utoipa::path(post, path = "/api/me/notifications/read", tag = "notifications",
    security(("bearer" = [])),
    request_body = MarkReadBody,
    responses(
        (status = 200, description = "Every notification with id <= `up_to` is read, durably; the unread count afterwards.", body = UnreadCountBody),
        (status = 400, description = "Malformed body.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 413, description = "Body too large.", body = ErrorBody),
        (status = 415, description = "Not JSON.", body = ErrorBody),
        (status = 503, description = "Storage unavailable or shutting down.", body = ErrorBody),
    ))]
pub(super) async fn mark_read(
    State(st): State<HttpState>,
    Bearer(token): Bearer,
    body: Result<Json<MarkReadBody>, JsonRejection>,
) -> ApiResult<Json<UnreadCountBody>> {
    let Json(b) = body?;
    let req = Request::MarkRead {
        up_to: id_bound("up_to", Some(b.up_to))?,
    };
    match call(&st, Some(&token), req).await {
        ServerMsg::UnreadCount { unread } => Ok(Json(UnreadCountBody { unread })),
        other => Err(ApiError::from_reply(other)),
    }
}

#[utoipa::path(get, path = "/api/me/room-log", tag = "notifications",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every room the caller has been a member of, most recently joined first, with how their last membership ended.", body = RoomLogBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 503, description = "Storage unavailable or shutting down.", body = ErrorBody),
    ))]
pub(super) async fn room_log(
    State(st): State<HttpState>,
    Bearer(token): Bearer,
) -> ApiResult<Json<RoomLogBody>> {
    match call(&st, Some(&token), Request::RoomLog).await {
        ServerMsg::RoomLogList { items } => Ok(Json(RoomLogBody {
            items: items.into_iter().map(RoomLogItemBody::from).collect(),
        })),
        other => Err(ApiError::from_reply(other)),
    }
}
