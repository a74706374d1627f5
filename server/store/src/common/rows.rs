//! Rows to records, for both backends: the column names are those of the
//! statements in [`super::sql`] (and of the backends' own statements that
//! return the same shapes).

use confab_protocol::{
    AuditAction, DirectWith, LeaveReason, Millis, NotificationKind, Role, RoomId, RoomInfo, Seq,
    UserId, Visibility,
};
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::convert::{count, from_db, out_of_range};
use crate::{
    AuditEntry, AuditRecord, BanRecord, InviteRecord, JoinRequestRecord, MemberRecord,
    NotificationRecord, RoomLogEntry, RoomRecord, StoreError, StoreResult, StoredEvent, UserRecord,
};

/// A row's columns by name, as the few types the schema uses. Implemented
/// for the row type of every database that decodes them.
pub(crate) trait Columns {
    fn int(&self, column: &'static str) -> StoreResult<i64>;
    fn opt_int(&self, column: &'static str) -> StoreResult<Option<i64>>;
    /// A `smallint` code (SQLite's `INTEGER`, range-checked).
    fn small(&self, column: &'static str) -> StoreResult<i16>;
    fn text(&self, column: &'static str) -> StoreResult<String>;
    fn opt_text(&self, column: &'static str) -> StoreResult<Option<String>>;
    fn bytes(&self, column: &'static str) -> StoreResult<Vec<u8>>;
    /// A boolean (SQLite's 0/1).
    fn flag(&self, column: &'static str) -> StoreResult<bool>;

    /// An id or timestamp.
    fn u64(&self, column: &'static str) -> StoreResult<u64> {
        from_db(self.int(column)?, column)
    }

    fn opt_u64(&self, column: &'static str) -> StoreResult<Option<u64>> {
        self.opt_int(column)?
            .map(|v| from_db(v, column))
            .transpose()
    }

    /// A code that must fit a `u8` (kinds, reasons, roles, visibility).
    fn code(&self, column: &'static str) -> StoreResult<u8> {
        let v = self.small(column)?;
        u8::try_from(v).map_err(|_| out_of_range(column, i64::from(v)))
    }
}

impl<R> Columns for R
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i16: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
{
    fn int(&self, column: &'static str) -> StoreResult<i64> {
        get(self, column)
    }
    fn opt_int(&self, column: &'static str) -> StoreResult<Option<i64>> {
        get(self, column)
    }
    fn small(&self, column: &'static str) -> StoreResult<i16> {
        get(self, column)
    }
    fn text(&self, column: &'static str) -> StoreResult<String> {
        get(self, column)
    }
    fn opt_text(&self, column: &'static str) -> StoreResult<Option<String>> {
        get(self, column)
    }
    fn bytes(&self, column: &'static str) -> StoreResult<Vec<u8>> {
        get(self, column)
    }
    fn flag(&self, column: &'static str) -> StoreResult<bool> {
        get(self, column)
    }
}

/// A column that is missing or does not decode is a [`StoreError::Database`]
/// naming the column, with sqlx's error as its source.
fn get<'r, R, T>(row: &'r R, column: &'static str) -> StoreResult<T>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(column).map_err(|e| StoreError::Database {
        message: format!("{column}: {e}"),
        source: Some(Box::new(e)),
    })
}

// ---- codes ----------------------------------------------------------------

fn role(row: &impl Columns, column: &'static str) -> StoreResult<Role> {
    let code = row.code(column)?;
    Role::from_code(code).ok_or_else(|| out_of_range(column, i64::from(code)))
}

fn visibility(row: &impl Columns, column: &'static str) -> StoreResult<Visibility> {
    let code = row.code(column)?;
    Visibility::from_code(code).ok_or_else(|| out_of_range(column, i64::from(code)))
}

/// A stored audit action name as the enum (a name this version does not
/// know means the row was written by something else).
fn audit_action(name: String) -> StoreResult<AuditAction> {
    AuditAction::from_name(&name)
        .ok_or_else(|| StoreError::database(format!("stored audit action {name:?} is unknown")))
}

// ---- records ----------------------------------------------------------------

/// `id, username, password_hash, created_at`.
pub(crate) fn user(row: &impl Columns) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        id: UserId(row.u64("id")?),
        username: row.text("username")?,
        password_hash: row.text("password_hash")?,
        created_at: row.u64("created_at")?,
    })
}

/// `id, username, display_name, bio, email, avatar_file` (an empty
/// display name or email is none).
pub(crate) fn profile(row: &impl Columns) -> StoreResult<confab_protocol::Profile> {
    let set = |v: String| (!v.is_empty()).then_some(v);
    Ok(confab_protocol::Profile {
        user: UserId(row.u64("id")?),
        username: row.text("username")?,
        display_name: set(row.text("display_name")?),
        bio: row.text("bio")?,
        email: set(row.text("email")?),
        avatar: row.opt_u64("avatar_file")?,
    })
}

/// `id, name, topic, visibility, owner_id, created_at, last_seq,
/// member_count, direct_with, direct_with_name`. A direct room is shown
/// as its viewer sees it: named after the other user (SPEC.md §5.3.7).
pub(crate) fn room_info(row: &impl Columns) -> StoreResult<RoomInfo> {
    let direct_with = match row.opt_u64("direct_with")? {
        Some(user) => Some(DirectWith {
            user: UserId(user),
            username: row.opt_text("direct_with_name")?.unwrap_or_default(),
        }),
        None => None,
    };
    Ok(RoomInfo {
        id: RoomId(row.u64("id")?),
        name: match &direct_with {
            Some(d) => d.username.clone(),
            None => row.text("name")?,
        },
        topic: row.text("topic")?,
        visibility: visibility(row, "visibility")?,
        owner: UserId(row.u64("owner_id")?),
        member_count: count(row.int("member_count")?, "member_count")?,
        last_seq: Seq(row.u64("last_seq")?),
        created_at: row.u64("created_at")?,
        direct_with,
    })
}

/// `id, name, topic, visibility, owner_id, created_at, last_seq,
/// terminated_at`.
pub(crate) fn room(row: &impl Columns) -> StoreResult<RoomRecord> {
    Ok(RoomRecord {
        id: RoomId(row.u64("id")?),
        name: row.text("name")?,
        topic: row.text("topic")?,
        visibility: visibility(row, "visibility")?,
        owner: UserId(row.u64("owner_id")?),
        created_at: row.u64("created_at")?,
        last_seq: Seq(row.u64("last_seq")?),
        terminated_at: row.opt_u64("terminated_at")?,
        direct: match (row.opt_u64("direct_low")?, row.opt_u64("direct_high")?) {
            (Some(low), Some(high)) => Some([
                (
                    UserId(low),
                    row.opt_text("direct_low_name")?.unwrap_or_default(),
                ),
                (
                    UserId(high),
                    row.opt_text("direct_high_name")?.unwrap_or_default(),
                ),
            ]),
            _ => None,
        },
    })
}

/// `room_id, user_id, username, role, joined_at`.
pub(crate) fn member(row: &impl Columns) -> StoreResult<MemberRecord> {
    Ok(MemberRecord {
        room: RoomId(row.u64("room_id")?),
        user: UserId(row.u64("user_id")?),
        username: row.text("username")?,
        role: role(row, "role")?,
        joined_at: row.u64("joined_at")?,
    })
}

/// `room_id, seq, at, actor_id, actor_name, kind, body`.
pub(crate) fn event(row: &impl Columns) -> StoreResult<StoredEvent> {
    Ok(StoredEvent {
        room: RoomId(row.u64("room_id")?),
        seq: Seq(row.u64("seq")?),
        at: row.u64("at")?,
        actor: UserId(row.u64("actor_id")?),
        actor_name: row.text("actor_name")?,
        kind: row.code("kind")?,
        body: row.bytes("body")?,
    })
}

/// A ban or an invitation: `room_id, user_id, username, by_id, at`.
fn granted<T>(
    row: &impl Columns,
    record: impl FnOnce(RoomId, UserId, String, UserId, Millis) -> T,
) -> StoreResult<T> {
    Ok(record(
        RoomId(row.u64("room_id")?),
        UserId(row.u64("user_id")?),
        row.text("username")?,
        UserId(row.u64("by_id")?),
        row.u64("at")?,
    ))
}

pub(crate) fn ban(row: &impl Columns) -> StoreResult<BanRecord> {
    granted(row, |room, user, username, by, at| BanRecord {
        room,
        user,
        username,
        by,
        at,
    })
}

pub(crate) fn invite(row: &impl Columns) -> StoreResult<InviteRecord> {
    granted(row, |room, user, username, by, at| InviteRecord {
        room,
        user,
        username,
        by,
        at,
    })
}

/// `room_id, user_id, username, at`.
pub(crate) fn join_request(row: &impl Columns) -> StoreResult<JoinRequestRecord> {
    Ok(JoinRequestRecord {
        room: RoomId(row.u64("room_id")?),
        user: UserId(row.u64("user_id")?),
        username: row.text("username")?,
        at: row.u64("at")?,
    })
}

/// `id, user_id, kind, room_id, room_name, actor_id, actor_name, at, read`.
pub(crate) fn notification(row: &impl Columns) -> StoreResult<NotificationRecord> {
    Ok(NotificationRecord {
        id: row.u64("id")?,
        user: UserId(row.u64("user_id")?),
        kind: NotificationKind::from_code(row.code("kind")?),
        room: RoomId(row.u64("room_id")?),
        room_name: row.text("room_name")?,
        actor: UserId(row.u64("actor_id")?),
        actor_name: row.text("actor_name")?,
        at: row.u64("at")?,
        read: row.flag("read")?,
    })
}

/// [`room_info`]'s columns and `terminated_at, first_joined_at,
/// last_joined_at, left_at, reason`.
pub(crate) fn room_log_entry(row: &impl Columns) -> StoreResult<RoomLogEntry> {
    Ok(RoomLogEntry {
        room: room_info(row)?,
        first_joined_at: row.u64("first_joined_at")?,
        last_joined_at: row.u64("last_joined_at")?,
        left_at: row.opt_u64("left_at")?,
        reason: LeaveReason::from_code(row.code("reason")?),
        terminated: row.opt_int("terminated_at")?.is_some(),
    })
}

/// `id, at, actor_id, action, room_id, target_id, detail, actor_name,
/// target_name`.
pub(crate) fn audit(row: &impl Columns) -> StoreResult<AuditRecord> {
    Ok(AuditRecord {
        id: row.u64("id")?,
        entry: AuditEntry {
            at: row.u64("at")?,
            actor: UserId(row.u64("actor_id")?),
            action: audit_action(row.text("action")?)?,
            room: row.opt_u64("room_id")?.map(RoomId),
            target: row.opt_u64("target_id")?.map(UserId),
            detail: row.text("detail")?,
        },
        actor_name: row.text("actor_name")?,
        target_name: row.text("target_name")?,
    })
}
