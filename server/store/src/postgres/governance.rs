//! Governance reads and housekeeping for [`super::PgStore`]: bans,
//! invitations, join requests, notifications, the room log and the audit
//! trail. The trait methods in `postgres.rs` delegate here.

use confab_protocol::{LeaveReason, NotificationKind, RoomId, UserId};
use sqlx::postgres::PgRow;
use sqlx::PgPool;

use super::convert::{
    db_err, from_db, get, get_opt_u64, get_u64, get_u8, max_below, out_of_range,
    room_info_from_row, to_db_opt,
};
use crate::{
    audit_action, AuditEntry, AuditRecord, BanRecord, InviteRecord, JoinRequestRecord,
    NotificationRecord, RoomLogEntry, StoreResult,
};

pub(super) async fn load_bans(pool: &PgPool) -> StoreResult<Vec<BanRecord>> {
    let rows = sqlx::query(
        "SELECT b.room_id, b.user_id, u.username, b.by_id, b.at \
         FROM bans b JOIN users u ON u.id = b.user_id \
         ORDER BY b.room_id, b.user_id",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| db_err("load_bans", e))?;
    rows.iter()
        .map(|row| {
            Ok(BanRecord {
                room: RoomId(get_u64(row, "room_id")?),
                user: UserId(get_u64(row, "user_id")?),
                username: get(row, "username")?,
                by: UserId(get_u64(row, "by_id")?),
                at: get_u64(row, "at")?,
            })
        })
        .collect()
}

pub(super) async fn load_invites(pool: &PgPool) -> StoreResult<Vec<InviteRecord>> {
    let rows = sqlx::query(
        "SELECT i.room_id, i.user_id, u.username, i.by_id, i.at \
         FROM invites i JOIN users u ON u.id = i.user_id \
         ORDER BY i.room_id, i.user_id",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| db_err("load_invites", e))?;
    rows.iter()
        .map(|row| {
            Ok(InviteRecord {
                room: RoomId(get_u64(row, "room_id")?),
                user: UserId(get_u64(row, "user_id")?),
                username: get(row, "username")?,
                by: UserId(get_u64(row, "by_id")?),
                at: get_u64(row, "at")?,
            })
        })
        .collect()
}

pub(super) async fn load_join_requests(pool: &PgPool) -> StoreResult<Vec<JoinRequestRecord>> {
    let rows = sqlx::query(
        "SELECT j.room_id, j.user_id, u.username, j.at \
         FROM join_requests j JOIN users u ON u.id = j.user_id \
         ORDER BY j.room_id, j.at, j.user_id",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| db_err("load_join_requests", e))?;
    rows.iter()
        .map(|row| {
            Ok(JoinRequestRecord {
                room: RoomId(get_u64(row, "room_id")?),
                user: UserId(get_u64(row, "user_id")?),
                username: get(row, "username")?,
                at: get_u64(row, "at")?,
            })
        })
        .collect()
}

// ---- notifications ----------------------------------------------------------

pub(super) async fn max_notification_id(pool: &PgPool) -> StoreResult<u64> {
    // The floor remembers ids that housekeeping has since deleted.
    let max: i64 = sqlx::query_scalar(
        "SELECT greatest((SELECT max_id FROM notification_id_floor WHERE one = 1), \
                         coalesce((SELECT max(id) FROM notifications), 0))",
    )
    .fetch_one(pool)
    .await
    .map_err(|e| db_err("max_notification_id", e))?;
    from_db(max, "notification id")
}

pub(super) async fn notifications(
    pool: &PgPool,
    user: UserId,
    before: u64,
    limit: u32,
    unread_only: bool,
) -> StoreResult<Vec<NotificationRecord>> {
    let Some(user) = to_db_opt(user.0) else {
        return Ok(Vec::new());
    };
    // Two literal statements rather than `($4 OR NOT read)`, so that the
    // unread-only one matches the partial index on unread rows.
    let sql = if unread_only {
        "SELECT id, user_id, kind, room_id, room_name, actor_id, actor_name, at, read \
         FROM notifications WHERE user_id = $1 AND id <= $2 AND NOT read \
         ORDER BY id DESC LIMIT $3"
    } else {
        "SELECT id, user_id, kind, room_id, room_name, actor_id, actor_name, at, read \
         FROM notifications WHERE user_id = $1 AND id <= $2 \
         ORDER BY id DESC LIMIT $3"
    };
    let rows = sqlx::query(sql)
        .bind(user)
        .bind(max_below(before))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await
        .map_err(|e| db_err("notifications", e))?;
    rows.iter().map(notification_from_row).collect()
}

fn notification_from_row(row: &PgRow) -> StoreResult<NotificationRecord> {
    Ok(NotificationRecord {
        id: get_u64(row, "id")?,
        user: UserId(get_u64(row, "user_id")?),
        kind: NotificationKind::from_code(get_u8(row, "kind")?),
        room: RoomId(get_u64(row, "room_id")?),
        room_name: get(row, "room_name")?,
        actor: UserId(get_u64(row, "actor_id")?),
        actor_name: get(row, "actor_name")?,
        at: get_u64(row, "at")?,
        read: get(row, "read")?,
    })
}

fn count_to_u32(n: i64) -> StoreResult<u32> {
    u32::try_from(n).map_err(|_| out_of_range("unread count", n))
}

pub(super) async fn unread_count(pool: &PgPool, user: UserId) -> StoreResult<u32> {
    let Some(user) = to_db_opt(user.0) else {
        return Ok(0);
    };
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notifications WHERE user_id = $1 AND NOT read")
            .bind(user)
            .fetch_one(pool)
            .await
            .map_err(|e| db_err("unread_count", e))?;
    count_to_u32(n)
}

pub(super) async fn mark_read(pool: &PgPool, user: UserId, up_to: u64) -> StoreResult<u32> {
    let Some(user) = to_db_opt(user.0) else {
        return Ok(0);
    };
    // An `up_to` beyond i64::MAX is above every stored id.
    let up_to = to_db_opt(up_to).unwrap_or(i64::MAX);
    // One statement: the main query sees the snapshot from before the
    // update, so the count afterwards is the count before minus the rows
    // this update marked.
    let n: i64 = sqlx::query_scalar(
        "WITH marked AS ( \
             UPDATE notifications SET read = true \
             WHERE user_id = $1 AND id <= $2 AND NOT read RETURNING 1) \
         SELECT (SELECT count(*) FROM notifications WHERE user_id = $1 AND NOT read) \
              - (SELECT count(*) FROM marked)",
    )
    .bind(user)
    .bind(up_to)
    .fetch_one(pool)
    .await
    .map_err(|e| db_err("mark_read", e))?;
    count_to_u32(n)
}

// ---- room log and audit -----------------------------------------------------

pub(super) async fn room_log(pool: &PgPool, user: UserId) -> StoreResult<Vec<RoomLogEntry>> {
    let Some(user) = to_db_opt(user.0) else {
        return Ok(Vec::new());
    };
    let rows = sqlx::query(
        "SELECT r.id, r.name, r.topic, r.visibility, r.owner_id, r.created_at, r.last_seq, \
                r.terminated_at, \
                (SELECT count(*) FROM memberships c WHERE c.room_id = r.id) AS member_count, \
                l.first_joined_at, l.last_joined_at, l.left_at, l.reason \
         FROM room_log l JOIN rooms r ON r.id = l.room_id \
         WHERE l.user_id = $1 \
         ORDER BY l.last_joined_at DESC, l.room_id DESC",
    )
    .bind(user)
    .fetch_all(pool)
    .await
    .map_err(|e| db_err("room_log", e))?;
    rows.iter()
        .map(|row| {
            Ok(RoomLogEntry {
                room: room_info_from_row(row)?,
                first_joined_at: get_u64(row, "first_joined_at")?,
                last_joined_at: get_u64(row, "last_joined_at")?,
                left_at: get_opt_u64(row, "left_at")?,
                reason: LeaveReason::from_code(get_u8(row, "reason")?),
                terminated: get_opt_u64(row, "terminated_at")?.is_some(),
            })
        })
        .collect()
}

pub(super) async fn audit(
    pool: &PgPool,
    room: RoomId,
    before: u64,
    limit: u32,
) -> StoreResult<Vec<AuditRecord>> {
    let Some(room) = to_db_opt(room.0) else {
        return Ok(Vec::new());
    };
    let rows = sqlx::query(
        "SELECT a.id, a.at, a.actor_id, a.action, a.room_id, a.target_id, a.detail, \
                coalesce(ua.username, '') AS actor_name, \
                coalesce(ut.username, '') AS target_name \
         FROM audit a \
         LEFT JOIN users ua ON ua.id = a.actor_id \
         LEFT JOIN users ut ON ut.id = a.target_id \
         WHERE a.room_id = $1 AND a.id <= $2 \
         ORDER BY a.id DESC LIMIT $3",
    )
    .bind(room)
    .bind(max_below(before))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(|e| db_err("audit", e))?;
    rows.iter()
        .map(|row| {
            Ok(AuditRecord {
                id: get_u64(row, "id")?,
                entry: AuditEntry {
                    at: get_u64(row, "at")?,
                    actor: UserId(get_u64(row, "actor_id")?),
                    action: audit_action(get(row, "action")?)?,
                    room: get_opt_u64(row, "room_id")?.map(RoomId),
                    target: get_opt_u64(row, "target_id")?.map(UserId),
                    detail: get(row, "detail")?,
                },
                actor_name: get(row, "actor_name")?,
                target_name: get(row, "target_name")?,
            })
        })
        .collect()
}

// ---- housekeeping -----------------------------------------------------------

pub(super) async fn purge_room_log(pool: &PgPool, cutoff: u64) -> StoreResult<u64> {
    let cutoff = to_db_opt(cutoff).unwrap_or(i64::MAX);
    let done = sqlx::query(
        "DELETE FROM room_log l \
         WHERE l.left_at IS NOT NULL AND l.left_at < $1 \
           AND NOT EXISTS (SELECT 1 FROM bans b \
                           WHERE b.room_id = l.room_id AND b.user_id = l.user_id)",
    )
    .bind(cutoff)
    .execute(pool)
    .await
    .map_err(|e| db_err("purge_room_log", e))?;
    Ok(done.rows_affected())
}

pub(super) async fn purge_notifications(pool: &PgPool, cutoff: u64) -> StoreResult<u64> {
    let cutoff = to_db_opt(cutoff).unwrap_or(i64::MAX);
    // One statement, one transaction: the floor remembers the highest id
    // before the delete may remove it (see the schema).
    let deleted: i64 = sqlx::query_scalar(
        "WITH floor AS ( \
             UPDATE notification_id_floor \
             SET max_id = greatest(max_id, coalesce((SELECT max(id) FROM notifications), 0)) \
             WHERE one = 1), \
         gone AS (DELETE FROM notifications WHERE at < $1 RETURNING 1) \
         SELECT count(*) FROM gone",
    )
    .bind(cutoff)
    .fetch_one(pool)
    .await
    .map_err(|e| db_err("purge_notifications", e))?;
    from_db(deleted, "purged notifications")
}

pub(super) async fn purge_expired_sessions(pool: &PgPool, now: u64) -> StoreResult<u64> {
    let now = to_db_opt(now).unwrap_or(i64::MAX);
    let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(pool)
        .await
        .map_err(|e| db_err("purge_expired_sessions", e))?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_beyond_u32_are_errors() {
        assert!(count_to_u32(i64::from(u32::MAX) + 1).is_err());
        assert_eq!(count_to_u32(3).ok(), Some(3));
    }
}
