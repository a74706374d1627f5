//! Mapping between Confab's domain values and SQLite columns.
//!
//! Ids and timestamps are `u64` in Rust and `INTEGER` (i64) in SQLite; both
//! directions are checked conversions, and anything out of range — or an
//! unknown role or visibility code read from disk — is a
//! [`StoreError::Database`], never a wrap-around or a panic.

use confab_protocol::{Role, RoomId, RoomInfo, Seq, UserId, Visibility};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite};

use crate::{StoreError, StoreResult, StoredEvent, UserRecord};

// ---- row decoding -------------------------------------------------------

pub(super) fn user_from_row(row: &SqliteRow) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        id: UserId(get_u64(row, "id")?),
        username: get(row, "username")?,
        password_hash: get(row, "password_hash")?,
        created_at: get_u64(row, "created_at")?,
    })
}

pub(super) fn room_info_from_row(row: &SqliteRow) -> StoreResult<RoomInfo> {
    let member_count: i64 = get(row, "member_count")?;
    Ok(RoomInfo {
        id: RoomId(get_u64(row, "id")?),
        name: get(row, "name")?,
        topic: get(row, "topic")?,
        visibility: visibility_from_db(get(row, "visibility")?)?,
        owner: UserId(get_u64(row, "owner_id")?),
        member_count: u32::try_from(member_count)
            .map_err(|_| out_of_range("member_count", member_count))?,
        last_seq: Seq(get_u64(row, "last_seq")?),
        created_at: get_u64(row, "created_at")?,
    })
}

pub(super) fn event_from_row(row: &SqliteRow) -> StoreResult<StoredEvent> {
    let kind: i64 = get(row, "kind")?;
    Ok(StoredEvent {
        room: RoomId(get_u64(row, "room_id")?),
        seq: Seq(get_u64(row, "seq")?),
        at: get_u64(row, "at")?,
        actor: UserId(get_u64(row, "actor_id")?),
        actor_name: get(row, "actor_name")?,
        kind: u8::try_from(kind).map_err(|_| out_of_range("events.kind", kind))?,
        body: get(row, "body")?,
    })
}

pub(super) fn get<'r, T>(row: &'r SqliteRow, column: &'static str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(column).map_err(|e| db_err(column, e))
}

pub(super) fn get_u64(row: &SqliteRow, column: &'static str) -> StoreResult<u64> {
    from_db(get(row, column)?, column)
}

// ---- value conversions --------------------------------------------------

/// A `u64` id or timestamp as SQLite's signed INTEGER.
pub(super) fn to_db(v: u64, what: &'static str) -> StoreResult<i64> {
    i64::try_from(v)
        .map_err(|_| StoreError::Database(format!("{what} {v} exceeds SQLite's INTEGER range")))
}

/// For lookups: a key beyond i64::MAX cannot have been stored, so it
/// matches nothing (rather than being an error).
pub(super) fn to_db_opt(v: u64) -> Option<i64> {
    i64::try_from(v).ok()
}

pub(super) fn from_db(v: i64, what: &'static str) -> StoreResult<u64> {
    u64::try_from(v).map_err(|_| out_of_range(what, v))
}

pub(super) fn out_of_range(what: &str, v: i64) -> StoreError {
    StoreError::Database(format!("stored {what} {v} is out of range"))
}

pub(super) fn role_to_db(role: Role) -> i64 {
    match role {
        Role::Member => 0,
        Role::Admin => 1,
        Role::Owner => 2,
    }
}

pub(super) fn role_from_db(v: i64) -> StoreResult<Role> {
    match v {
        0 => Ok(Role::Member),
        1 => Ok(Role::Admin),
        2 => Ok(Role::Owner),
        v => Err(out_of_range("role", v)),
    }
}

pub(super) fn visibility_to_db(v: Visibility) -> i64 {
    match v {
        Visibility::Public => 0,
        Visibility::Private => 1,
    }
}

pub(super) fn visibility_from_db(v: i64) -> StoreResult<Visibility> {
    match v {
        0 => Ok(Visibility::Public),
        1 => Ok(Visibility::Private),
        v => Err(out_of_range("visibility", v)),
    }
}

// ---- errors -------------------------------------------------------------

pub(super) fn db_err(context: &str, e: sqlx::Error) -> StoreError {
    if is_unavailable(&e) {
        StoreError::Unavailable(format!("{context}: {e}"))
    } else {
        StoreError::Database(format!("{context}: {e}"))
    }
}

/// Whether `e` says the database file cannot be written now (I/O error,
/// disk full, cannot open, read-only, locked by another process) rather
/// than that the statement is wrong: the batch writer spools such batches
/// (`confab_server::persist::spool`).
fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(unavailable_result_code),
        _ => false,
    }
}

/// SQLite result codes (primary code: the low byte of the extended code)
/// of a database that cannot take the write now.
fn unavailable_result_code(extended: i32) -> bool {
    const BUSY: i32 = 5;
    const READONLY: i32 = 8;
    const IOERR: i32 = 10;
    const FULL: i32 = 13;
    const CANTOPEN: i32 = 14;
    matches!(extended & 0xff, BUSY | READONLY | IOERR | FULL | CANTOPEN)
}

/// A unique-key violation as [`StoreError::Conflict`], anything else as
/// [`StoreError::Database`].
pub(super) fn conflict_or_db(e: sqlx::Error, what: &'static str, context: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(what),
        _ => db_err(context, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_reject_out_of_range_values() {
        assert!(to_db(u64::MAX, "x").is_err());
        assert_eq!(to_db(7, "x").ok(), Some(7));
        assert!(from_db(-1, "x").is_err());
        assert!(role_from_db(3).is_err());
        assert!(visibility_from_db(2).is_err());
        for role in [Role::Member, Role::Admin, Role::Owner] {
            assert_eq!(role_from_db(role_to_db(role)).ok(), Some(role));
        }
    }

    #[test]
    fn io_full_and_lock_failures_are_unavailable_constraint_errors_are_not() {
        // SQLITE_FULL, SQLITE_IOERR_FSYNC (extended), SQLITE_BUSY, SQLITE_CANTOPEN
        for code in [13, 10 | (4 << 8), 5, 14] {
            assert!(unavailable_result_code(code), "{code}");
        }
        // SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_ERROR, SQLITE_MISMATCH
        for code in [19 | (6 << 8), 1, 20] {
            assert!(!unavailable_result_code(code), "{code}");
        }
    }
}
