//! Governance reads and housekeeping for [`super::SqliteStore`]: bans,
//! invitations, join requests, notifications, the room log and the audit
//! trail (schema version 2). The trait methods in `sqlite.rs` delegate here.

use confab_protocol::{LeaveReason, NotificationKind, RoomId, UserId};
use sqlx::sqlite::SqliteRow;
use sqlx::SqlitePool;

use super::convert::{db_err, from_db, get, get_u64, out_of_range, room_info_from_row, to_db_opt};
use crate::{
    audit_action, AuditEntry, AuditRecord, BanRecord, InviteRecord, JoinRequestRecord,
    NotificationRecord, RoomLogEntry, StoreResult,
};

/// `id < before`, with 0 (and anything beyond i64::MAX) meaning no bound,
/// as `id <= max`: the planner sees a plain index range.
fn max_id_below(before: u64) -> i64 {
    match to_db_opt(before) {
        Some(b) if b > 0 => b - 1,
        _ => i64::MAX,
    }
}

pub(super) async fn load_bans(readers: &SqlitePool) -> StoreResult<Vec<BanRecord>> {
    let rows = sqlx::query(
        "SELECT b.room_id, b.user_id, u.username, b.by_id, b.at \
         FROM bans b JOIN users u ON u.id = b.user_id \
         ORDER BY b.room_id, b.user_id",
    )
    .fetch_all(readers)
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

pub(super) async fn load_invites(readers: &SqlitePool) -> StoreResult<Vec<InviteRecord>> {
    let rows = sqlx::query(
        "SELECT i.room_id, i.user_id, u.username, i.by_id, i.at \
         FROM invites i JOIN users u ON u.id = i.user_id \
         ORDER BY i.room_id, i.user_id",
    )
    .fetch_all(readers)
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

pub(super) async fn load_join_requests(
    readers: &SqlitePool,
) -> StoreResult<Vec<JoinRequestRecord>> {
    let rows = sqlx::query(
        "SELECT j.room_id, j.user_id, u.username, j.at \
         FROM join_requests j JOIN users u ON u.id = j.user_id \
         ORDER BY j.room_id, j.at, j.user_id",
    )
    .fetch_all(readers)
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

pub(super) async fn max_notification_id(readers: &SqlitePool) -> StoreResult<u64> {
    // The floor remembers ids that housekeeping has since deleted.
    let max: i64 = sqlx::query_scalar(
        "SELECT max((SELECT max_id FROM notification_id_floor WHERE one = 1), \
                    coalesce((SELECT max(id) FROM notifications), 0))",
    )
    .fetch_one(readers)
    .await
    .map_err(|e| db_err("max_notification_id", e))?;
    from_db(max, "notification id")
}

pub(super) async fn notifications(
    readers: &SqlitePool,
    user: UserId,
    before: u64,
    limit: u32,
    unread_only: bool,
) -> StoreResult<Vec<NotificationRecord>> {
    let Some(user) = to_db_opt(user.0) else {
        return Ok(Vec::new());
    };
    // Two literal statements rather than `(?4 = 0 OR read = 0)`, so the
    // unread-only one can use the partial index on unread rows.
    let sql = if unread_only {
        "SELECT id, user_id, kind, room_id, room_name, actor_id, actor_name, at, read \
         FROM notifications WHERE user_id = ?1 AND id <= ?2 AND read = 0 \
         ORDER BY id DESC LIMIT ?3"
    } else {
        "SELECT id, user_id, kind, room_id, room_name, actor_id, actor_name, at, read \
         FROM notifications WHERE user_id = ?1 AND id <= ?2 \
         ORDER BY id DESC LIMIT ?3"
    };
    let rows = sqlx::query(sql)
        .bind(user)
        .bind(max_id_below(before))
        .bind(i64::from(limit))
        .fetch_all(readers)
        .await
        .map_err(|e| db_err("notifications", e))?;
    rows.iter().map(notification_from_row).collect()
}

fn notification_from_row(row: &SqliteRow) -> StoreResult<NotificationRecord> {
    let kind: i64 = get(row, "kind")?;
    let read: i64 = get(row, "read")?;
    Ok(NotificationRecord {
        id: get_u64(row, "id")?,
        user: UserId(get_u64(row, "user_id")?),
        kind: NotificationKind::from_code(
            u8::try_from(kind).map_err(|_| out_of_range("notifications.kind", kind))?,
        ),
        room: RoomId(get_u64(row, "room_id")?),
        room_name: get(row, "room_name")?,
        actor: UserId(get_u64(row, "actor_id")?),
        actor_name: get(row, "actor_name")?,
        at: get_u64(row, "at")?,
        read: read != 0,
    })
}

const UNREAD_COUNT: &str = "SELECT count(*) FROM notifications WHERE user_id = ?1 AND read = 0";

pub(super) async fn unread_count(readers: &SqlitePool, user: UserId) -> StoreResult<u32> {
    let Some(user) = to_db_opt(user.0) else {
        return Ok(0);
    };
    let n: i64 = sqlx::query_scalar(UNREAD_COUNT)
        .bind(user)
        .fetch_one(readers)
        .await
        .map_err(|e| db_err("unread_count", e))?;
    u32::try_from(n).map_err(|_| out_of_range("unread count", n))
}

pub(super) async fn mark_read(writer: &SqlitePool, user: UserId, up_to: u64) -> StoreResult<u32> {
    let Some(user) = to_db_opt(user.0) else {
        return Ok(0);
    };
    // An `up_to` beyond i64::MAX is above every stored id.
    let up_to = to_db_opt(up_to).unwrap_or(i64::MAX);
    // The update and the count in one transaction on the writer, so the
    // count reflects this update and no batch commits in between.
    let mut tx = writer
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|e| db_err("mark_read", e))?;
    sqlx::query("UPDATE notifications SET read = 1 WHERE user_id = ?1 AND id <= ?2 AND read = 0")
        .bind(user)
        .bind(up_to)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_err("mark_read", e))?;
    let n: i64 = sqlx::query_scalar(UNREAD_COUNT)
        .bind(user)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| db_err("mark_read count", e))?;
    tx.commit().await.map_err(|e| db_err("mark_read", e))?;
    u32::try_from(n).map_err(|_| out_of_range("unread count", n))
}

// ---- room log and audit -----------------------------------------------------

pub(super) async fn room_log(readers: &SqlitePool, user: UserId) -> StoreResult<Vec<RoomLogEntry>> {
    let Some(user) = to_db_opt(user.0) else {
        return Ok(Vec::new());
    };
    let rows = sqlx::query(
        "SELECT r.id, r.name, r.topic, r.visibility, r.owner_id, r.created_at, r.last_seq, \
                r.terminated_at, \
                (SELECT count(*) FROM memberships c WHERE c.room_id = r.id) AS member_count, \
                l.first_joined_at, l.last_joined_at, l.left_at, l.reason \
         FROM room_log l JOIN rooms r ON r.id = l.room_id \
         WHERE l.user_id = ?1 \
         ORDER BY l.last_joined_at DESC, l.room_id DESC",
    )
    .bind(user)
    .fetch_all(readers)
    .await
    .map_err(|e| db_err("room_log", e))?;
    rows.iter()
        .map(|row| {
            let reason: i64 = get(row, "reason")?;
            let left_at: Option<i64> = get(row, "left_at")?;
            let terminated_at: Option<i64> = get(row, "terminated_at")?;
            Ok(RoomLogEntry {
                room: room_info_from_row(row)?,
                first_joined_at: get_u64(row, "first_joined_at")?,
                last_joined_at: get_u64(row, "last_joined_at")?,
                left_at: left_at.map(|v| from_db(v, "left_at")).transpose()?,
                reason: LeaveReason::from_code(
                    u8::try_from(reason).map_err(|_| out_of_range("room_log.reason", reason))?,
                ),
                terminated: terminated_at.is_some(),
            })
        })
        .collect()
}

pub(super) async fn audit(
    readers: &SqlitePool,
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
         WHERE a.room_id = ?1 AND a.id <= ?2 \
         ORDER BY a.id DESC LIMIT ?3",
    )
    .bind(room)
    .bind(max_id_below(before))
    .bind(i64::from(limit))
    .fetch_all(readers)
    .await
    .map_err(|e| db_err("audit", e))?;
    rows.iter()
        .map(|row| {
            let room: Option<i64> = get(row, "room_id")?;
            let target: Option<i64> = get(row, "target_id")?;
            Ok(AuditRecord {
                id: get_u64(row, "id")?,
                entry: AuditEntry {
                    at: get_u64(row, "at")?,
                    actor: UserId(get_u64(row, "actor_id")?),
                    action: audit_action(get(row, "action")?)?,
                    room: room
                        .map(|r| from_db(r, "audit.room_id").map(RoomId))
                        .transpose()?,
                    target: target
                        .map(|u| from_db(u, "audit.target_id").map(UserId))
                        .transpose()?,
                    detail: get(row, "detail")?,
                },
                actor_name: get(row, "actor_name")?,
                target_name: get(row, "target_name")?,
            })
        })
        .collect()
}

// ---- housekeeping -----------------------------------------------------------

pub(super) async fn purge_room_log(writer: &SqlitePool, cutoff: u64) -> StoreResult<u64> {
    let cutoff = to_db_opt(cutoff).unwrap_or(i64::MAX);
    let done = sqlx::query(
        "DELETE FROM room_log \
         WHERE left_at IS NOT NULL AND left_at < ?1 \
           AND NOT EXISTS (SELECT 1 FROM bans b \
                           WHERE b.room_id = room_log.room_id AND b.user_id = room_log.user_id)",
    )
    .bind(cutoff)
    .execute(writer)
    .await
    .map_err(|e| db_err("purge_room_log", e))?;
    Ok(done.rows_affected())
}

pub(super) async fn purge_notifications(writer: &SqlitePool, cutoff: u64) -> StoreResult<u64> {
    let cutoff = to_db_opt(cutoff).unwrap_or(i64::MAX);
    let mut tx = writer
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|e| db_err("purge_notifications", e))?;
    // Remember the highest id before it may be deleted (see the schema).
    sqlx::query(
        "UPDATE notification_id_floor \
         SET max_id = max(max_id, coalesce((SELECT max(id) FROM notifications), 0)) \
         WHERE one = 1",
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| db_err("purge_notifications floor", e))?;
    let done = sqlx::query("DELETE FROM notifications WHERE at < ?1")
        .bind(cutoff)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_err("purge_notifications", e))?;
    tx.commit()
        .await
        .map_err(|e| db_err("purge_notifications", e))?;
    Ok(done.rows_affected())
}

pub(super) async fn purge_expired_sessions(writer: &SqlitePool, now: u64) -> StoreResult<u64> {
    let now = to_db_opt(now).unwrap_or(i64::MAX);
    let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= ?1")
        .bind(now)
        .execute(writer)
        .await
        .map_err(|e| db_err("purge_expired_sessions", e))?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_bound_zero_and_huge_mean_unbounded() {
        assert_eq!(max_id_below(0), i64::MAX);
        assert_eq!(max_id_below(u64::MAX), i64::MAX);
        assert_eq!(max_id_below(10), 9);
    }
}
