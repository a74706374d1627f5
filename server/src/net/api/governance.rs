//! The governance endpoints (SPEC.md §5.7, §5.8, §8): invitations, join
//! requests, kicks, bans, roles, room updates, the audit trail, and the
//! caller's notifications and room log.
//!
//! Same invariant and the same pieces as the rest of the API (mod.rs): no
//! rule lives here. Each handler builds the protocol request a connection
//! would send and runs it through `session::call`; the room's shard
//! decides, and its ERROR comes back with the status from
//! [`super::error::status_for`].

use axum::http::StatusCode;
use axum::Json;
use confab_protocol::{ErrorCode, Request, RoomId, RoomInfo, ServerMsg};

use super::error::{AuthedErrors, JsonBodyErrors, RoomErrors};
use super::extract::{Caller, JsonBody, QueryParams, RoomPath, RoomUserPath};
use super::types::*;
use super::{no_content, room_body, ApiError, ApiResult, ErrorBody};

/// The reply to LIST_JOIN_REQUESTS and LIST_BANS.
fn user_list(reply: ServerMsg) -> ApiResult<Json<UserListBody>> {
    reply!(reply, ServerMsg::UserList { room, users } => {
        Json(UserListBody { room: room.0, users: list(users) })
    })
}

// --- invitations -------------------------------------------------------------

#[utoipa::path(post, path = "/api/rooms/{id}/invitations", tag = "governance",
    security(("bearer" = [])),
    params(RoomPath),
    request_body = UserRefBody,
    responses(
        (status = 204, description = "Invited, durably; the user is notified (`invited`)."),
        (status = 400, description = "Malformed body or bad room id.", body = ErrorBody),
        (status = 403, description = "NOT_A_MEMBER or NOT_ADMIN, or DIRECT_ROOM (not possible in a direct chat).", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND or NO_SUCH_USER.", body = ErrorBody),
        (status = 409, description = "ALREADY_MEMBER, ALREADY_INVITED or TARGET_BANNED.", body = ErrorBody),
        RoomErrors, JsonBodyErrors,
    ))]
pub(super) async fn invite(
    caller: Caller,
    RoomPath(room): RoomPath,
    JsonBody(who): JsonBody<UserRefBody>,
) -> ApiResult<StatusCode> {
    let user = who.into();
    no_content(caller.call(Request::Invite { room, user }).await)
}

#[utoipa::path(post, path = "/api/rooms/{id}/invitation/accept", tag = "governance",
    security(("bearer" = [])),
    params(RoomPath),
    responses(
        (status = 200, description = "Joined, durably (private rooms too); the invitation is used up.", body = RoomBody),
        (status = 400, description = "Bad room id.", body = ErrorBody),
        (status = 403, description = "DIRECT_ROOM (not possible in a direct chat).", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND or NOT_INVITED (no pending invitation: members and banned users never hold one).", body = ErrorBody),
        RoomErrors,
    ))]
pub(super) async fn accept_invitation(
    caller: Caller,
    RoomPath(room): RoomPath,
) -> ApiResult<Json<RoomBody>> {
    let req = Request::RespondInvite { room, accept: true };
    room_body(caller.call(req).await)
}

#[utoipa::path(post, path = "/api/rooms/{id}/invitation/decline", tag = "governance",
    security(("bearer" = [])),
    params(RoomPath),
    responses(
        (status = 204, description = "Declined; the invitation is gone and nobody is notified."),
        (status = 400, description = "Bad room id.", body = ErrorBody),
        (status = 403, description = "DIRECT_ROOM (not possible in a direct chat).", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND or NOT_INVITED.", body = ErrorBody),
        RoomErrors,
    ))]
pub(super) async fn decline_invitation(
    caller: Caller,
    RoomPath(room): RoomPath,
) -> ApiResult<StatusCode> {
    let req = Request::RespondInvite {
        room,
        accept: false,
    };
    no_content(caller.call(req).await)
}

// --- join requests -----------------------------------------------------------

#[utoipa::path(post, path = "/api/rooms/{id}/join-requests", tag = "governance",
    security(("bearer" = [])),
    params(RoomPath),
    responses(
        (status = 204, description = "Asked, durably; every admin of the room is notified (`join_request`)."),
        (status = 400, description = "Bad room id.", body = ErrorBody),
        (status = 403, description = "BANNED, or DIRECT_ROOM (not possible in a direct chat).", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND.", body = ErrorBody),
        (status = 409, description = "ALREADY_MEMBER or ALREADY_REQUESTED.", body = ErrorBody),
        RoomErrors,
    ))]
pub(super) async fn request_join(
    caller: Caller,
    RoomPath(room): RoomPath,
) -> ApiResult<StatusCode> {
    no_content(caller.call(Request::RequestJoin { room }).await)
}

#[utoipa::path(get, path = "/api/rooms/{id}/join-requests", tag = "governance",
    security(("bearer" = [])),
    params(RoomPath),
    responses(
        (status = 200, description = "The pending join requests, oldest first (`at` = when asked).", body = UserListBody),
        (status = 400, description = "Bad room id.", body = ErrorBody),
        (status = 403, description = "NOT_A_MEMBER or NOT_ADMIN (admins only).", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND.", body = ErrorBody),
        RoomErrors,
    ))]
pub(super) async fn list_join_requests(
    caller: Caller,
    RoomPath(room): RoomPath,
) -> ApiResult<Json<UserListBody>> {
    user_list(caller.call(Request::ListJoinRequests { room }).await)
}

#[utoipa::path(post, path = "/api/rooms/{id}/join-requests/{user_id}/approve", tag = "governance",
    security(("bearer" = [])),
    params(RoomPath, ("user_id" = u64, Path, description = "The user who asked")),
    responses(
        (status = 204, description = "Approved, durably: the user is a member and is notified (`request_approved`)."),
        (status = 400, description = "Bad room or user id.", body = ErrorBody),
        (status = 403, description = "NOT_A_MEMBER or NOT_ADMIN, or DIRECT_ROOM (not possible in a direct chat).", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND or NO_SUCH_REQUEST.", body = ErrorBody),
        RoomErrors,
    ))]
pub(super) async fn approve_request(caller: Caller, path: RoomUserPath) -> ApiResult<StatusCode> {
    decide(caller, path, true).await
}

#[utoipa::path(post, path = "/api/rooms/{id}/join-requests/{user_id}/deny", tag = "governance",
    security(("bearer" = [])),
    params(RoomPath, ("user_id" = u64, Path, description = "The user who asked")),
    responses(
        (status = 204, description = "Denied, durably; the user is notified (`request_denied`)."),
        (status = 400, description = "Bad room or user id.", body = ErrorBody),
        (status = 403, description = "NOT_A_MEMBER or NOT_ADMIN, or DIRECT_ROOM (not possible in a direct chat).", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND or NO_SUCH_REQUEST.", body = ErrorBody),
        RoomErrors,
    ))]
pub(super) async fn deny_request(caller: Caller, path: RoomUserPath) -> ApiResult<StatusCode> {
    decide(caller, path, false).await
}

/// DECIDE_REQUEST: approve or deny a pending join request.
async fn decide(
    caller: Caller,
    RoomUserPath(room, user): RoomUserPath,
    approve: bool,
) -> ApiResult<StatusCode> {
    let req = Request::DecideRequest {
        room,
        user,
        approve,
    };
    no_content(caller.call(req).await)
}

// --- members: kick, roles ----------------------------------------------------

#[utoipa::path(delete, path = "/api/rooms/{id}/members/{user_id}", tag = "governance",
    security(("bearer" = [])),
    params(RoomPath, ("user_id" = u64, Path, description = "The member to remove")),
    responses(
        (status = 204, description = "Kicked, durably; the user is notified (`kicked`) and may come back."),
        (status = 400, description = "Bad room or user id.", body = ErrorBody),
        (status = 403, description = "NOT_A_MEMBER, NOT_ADMIN, NOT_OWNER (to kick an admin), CANNOT_TARGET_SELF or CANNOT_TARGET_OWNER, or DIRECT_ROOM (not possible in a direct chat).", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND or TARGET_NOT_MEMBER.", body = ErrorBody),
        RoomErrors,
    ))]
pub(super) async fn kick(
    caller: Caller,
    RoomUserPath(room, user): RoomUserPath,
) -> ApiResult<StatusCode> {
    no_content(caller.call(Request::Kick { room, user }).await)
}

#[utoipa::path(put, path = "/api/rooms/{id}/members/{user_id}/role", tag = "governance",
    security(("bearer" = [])),
    params(RoomPath, ("user_id" = u64, Path, description = "The member whose role changes")),
    request_body = SetRoleBody,
    responses(
        (status = 204, description = "The member has the role, durably (nothing happens if they had it already); if it changed they are notified (`role_changed`)."),
        (status = 400, description = "Malformed body, bad id or INVALID_ROLE (`owner`).", body = ErrorBody),
        (status = 403, description = "NOT_A_MEMBER, NOT_OWNER (owner only) or CANNOT_TARGET_SELF, or DIRECT_ROOM (not possible in a direct chat).", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND or TARGET_NOT_MEMBER.", body = ErrorBody),
        RoomErrors, JsonBodyErrors,
    ))]
pub(super) async fn set_role(
    caller: Caller,
    RoomUserPath(room, user): RoomUserPath,
    JsonBody(b): JsonBody<SetRoleBody>,
) -> ApiResult<StatusCode> {
    let role = b.role.into();
    no_content(caller.call(Request::SetRole { room, user, role }).await)
}

// --- bans --------------------------------------------------------------------

#[utoipa::path(post, path = "/api/rooms/{id}/bans", tag = "governance",
    security(("bearer" = [])),
    params(RoomPath),
    request_body = UserRefBody,
    responses(
        (status = 204, description = "Banned, durably: removed if a member, pending invitation and request dropped, the room hidden from them; they are notified (`banned`)."),
        (status = 400, description = "Malformed body or bad room id.", body = ErrorBody),
        (status = 403, description = "NOT_A_MEMBER, NOT_ADMIN, NOT_OWNER (to ban an admin), CANNOT_TARGET_SELF or CANNOT_TARGET_OWNER, or DIRECT_ROOM (not possible in a direct chat).", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND or NO_SUCH_USER.", body = ErrorBody),
        (status = 409, description = "ALREADY_BANNED.", body = ErrorBody),
        RoomErrors, JsonBodyErrors,
    ))]
pub(super) async fn ban(
    caller: Caller,
    RoomPath(room): RoomPath,
    JsonBody(who): JsonBody<UserRefBody>,
) -> ApiResult<StatusCode> {
    let user = who.into();
    no_content(caller.call(Request::Ban { room, user }).await)
}

#[utoipa::path(get, path = "/api/rooms/{id}/bans", tag = "governance",
    security(("bearer" = [])),
    params(RoomPath),
    responses(
        (status = 200, description = "The room's bans, in no particular order (`at` = when banned).", body = UserListBody),
        (status = 400, description = "Bad room id.", body = ErrorBody),
        (status = 403, description = "NOT_A_MEMBER or NOT_ADMIN (admins only).", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND.", body = ErrorBody),
        RoomErrors,
    ))]
pub(super) async fn list_bans(
    caller: Caller,
    RoomPath(room): RoomPath,
) -> ApiResult<Json<UserListBody>> {
    user_list(caller.call(Request::ListBans { room }).await)
}

#[utoipa::path(delete, path = "/api/rooms/{id}/bans/{user_id}", tag = "governance",
    security(("bearer" = [])),
    params(RoomPath, ("user_id" = u64, Path, description = "The banned user")),
    responses(
        (status = 204, description = "The ban is lifted, durably (the user does not become a member); they are notified (`unbanned`)."),
        (status = 400, description = "Bad room or user id.", body = ErrorBody),
        (status = 403, description = "NOT_A_MEMBER or NOT_ADMIN, or DIRECT_ROOM (not possible in a direct chat).", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND or NOT_BANNED.", body = ErrorBody),
        RoomErrors,
    ))]
pub(super) async fn unban(
    caller: Caller,
    RoomUserPath(room, user): RoomUserPath,
) -> ApiResult<StatusCode> {
    no_content(caller.call(Request::Unban { room, user }).await)
}

// --- the room itself -----------------------------------------------------------

#[utoipa::path(patch, path = "/api/rooms/{id}", tag = "governance",
    security(("bearer" = [])),
    params(RoomPath),
    request_body = UpdateRoomBody,
    responses(
        (status = 204, description = "Updated, durably; the room emits `room_updated` with both values. A field left out keeps the value the caller last saw (a concurrent change to it may be overwritten)."),
        (status = 400, description = "Malformed body (neither field), bad room id, INVALID_ROOM_NAME or INVALID_TOPIC.", body = ErrorBody),
        (status = 403, description = "NOT_A_MEMBER or NOT_ADMIN, or DIRECT_ROOM (not possible in a direct chat).", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND.", body = ErrorBody),
        RoomErrors, JsonBodyErrors,
    ))]
pub(super) async fn update_room(
    caller: Caller,
    RoomPath(room): RoomPath,
    JsonBody(b): JsonBody<UpdateRoomBody>,
) -> ApiResult<StatusCode> {
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
            let current = current_room(&caller, room).await?;
            (name.unwrap_or(current.name), topic.unwrap_or(current.topic))
        }
    };
    no_content(caller.call(Request::UpdateRoom { room, name, topic }).await)
}

/// The room as the caller sees it among their rooms; when it is not there,
/// the error a member-only request on it gets (not found, terminated, not
/// a member).
async fn current_room(caller: &Caller, room: RoomId) -> ApiResult<RoomInfo> {
    for _ in 0..2 {
        let rooms = reply!(caller.call(Request::MyRooms).await,
            ServerMsg::RoomList { rooms, .. } => rooms)?;
        if let Some(info) = rooms.into_iter().find(|r| r.id == room) {
            return Ok(info);
        }
        // Joined in between: look again.
        reply!(caller.call(Request::ListMembers { room }).await,
            ServerMsg::MemberList { .. } => ())?;
    }
    Err(ApiError::code(
        ErrorCode::NotAMember,
        "your membership of this room changed while updating it; retry",
    ))
}

#[utoipa::path(get, path = "/api/rooms/{id}/audit", tag = "governance",
    security(("bearer" = [])),
    params(RoomPath, PageQuery),
    responses(
        (status = 200, description = "The room's audit trail, newest first.", body = AuditPageBody),
        (status = 400, description = "Bad room id or query, INVALID_PAGING.", body = ErrorBody),
        (status = 403, description = "NOT_A_MEMBER or NOT_ADMIN (admins only).", body = ErrorBody),
        (status = 404, description = "ROOM_NOT_FOUND.", body = ErrorBody),
        RoomErrors,
    ))]
pub(super) async fn audit(
    caller: Caller,
    RoomPath(room): RoomPath,
    QueryParams(page): QueryParams<PageQuery>,
) -> ApiResult<Json<AuditPageBody>> {
    let req = Request::RoomAudit {
        room,
        before: page.before(),
        limit: page.limit.unwrap_or(DEFAULT_LIMIT),
    };
    reply!(caller.call(req).await, ServerMsg::AuditPage { room, has_more, items } => {
        Json(AuditPageBody { room: room.0, has_more, items: list(items) })
    })
}

// --- the caller's own: notifications, room log --------------------------------

#[utoipa::path(get, path = "/api/me/notifications", tag = "notifications",
    security(("bearer" = [])),
    params(PageQuery, UnreadOnlyQuery),
    responses(
        (status = 200, description = "The caller's notifications, newest first, with the unread count.", body = NotificationListBody),
        (status = 400, description = "Bad query or INVALID_PAGING.", body = ErrorBody),
        AuthedErrors,
    ))]
pub(super) async fn notifications(
    caller: Caller,
    QueryParams(page): QueryParams<PageQuery>,
    QueryParams(only): QueryParams<UnreadOnlyQuery>,
) -> ApiResult<Json<NotificationListBody>> {
    let req = Request::ListNotifications {
        before: page.before(),
        limit: page.limit.unwrap_or(DEFAULT_LIMIT),
        unread_only: only.unread_only.unwrap_or(false),
    };
    reply!(caller.call(req).await, ServerMsg::NotificationList { unread, has_more, items } => {
        Json(NotificationListBody { unread, has_more, items: list(items) })
    })
}

#[utoipa::path(post, path = "/api/me/notifications/read", tag = "notifications",
    security(("bearer" = [])),
    request_body = MarkReadBody,
    responses(
        (status = 200, description = "Every notification with id <= `up_to` is read, durably; the unread count afterwards.", body = UnreadCountBody),
        (status = 400, description = "Malformed body.", body = ErrorBody),
        AuthedErrors, JsonBodyErrors,
    ))]
pub(super) async fn mark_read(
    caller: Caller,
    JsonBody(b): JsonBody<MarkReadBody>,
) -> ApiResult<Json<UnreadCountBody>> {
    let req = Request::MarkRead {
        up_to: b.up_to.get(),
    };
    reply!(caller.call(req).await,
        ServerMsg::UnreadCount { unread } => Json(UnreadCountBody { unread }))
}

#[utoipa::path(get, path = "/api/me/room-log", tag = "notifications",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every room the caller has been a member of, most recently joined first, with how their last membership ended.", body = RoomLogBody),
        AuthedErrors,
    ))]
pub(super) async fn room_log(caller: Caller) -> ApiResult<Json<RoomLogBody>> {
    reply!(caller.call(Request::RoomLog).await, ServerMsg::RoomLogList { items } => {
        Json(RoomLogBody { items: list(items) })
    })
}
