//! Mapping between Confab's domain values and Postgres columns.
//!
//! Ids and timestamps are `u64` in Rust and `bigint` (i64) in Postgres;
//! codes (role, visibility, kinds, reasons) are `smallint`. Both
//! directions are checked conversions: a value out of range, or an unknown
//! code read from the database, is a [`StoreError::Database`], never a
//! wrap-around or a panic.

use confab_protocol::{Role, RoomId, RoomInfo, Seq, UserId, Visibility};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row};

use crate::{StoreError, StoreResult, StoredEvent, UserRecord};

// ---- row decoding -------------------------------------------------------

pub(super) fn user_from_row(row: &PgRow) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        id: UserId(get_u64(row, "id")?),
        username: get(row, "username")?,
        password_hash: get(row, "password_hash")?,
        created_at: get_u64(row, "created_at")?,
    })
}

/// A [`RoomInfo`] from the columns `id, name, topic, visibility, owner_id,
/// created_at, last_seq, member_count`.
pub(super) fn room_info_from_row(row: &PgRow) -> StoreResult<RoomInfo> {
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

pub(super) fn event_from_row(row: &PgRow) -> StoreResult<StoredEvent> {
    Ok(StoredEvent {
        room: RoomId(get_u64(row, "room_id")?),
        seq: Seq(get_u64(row, "seq")?),
        at: get_u64(row, "at")?,
        actor: UserId(get_u64(row, "actor_id")?),
        actor_name: get(row, "actor_name")?,
        kind: get_u8(row, "kind")?,
        body: get(row, "body")?,
    })
}

pub(super) fn get<'r, T>(row: &'r PgRow, column: &'static str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(column).map_err(|e| db_err(column, e))
}

pub(super) fn get_u64(row: &PgRow, column: &'static str) -> StoreResult<u64> {
    from_db(get(row, column)?, column)
}

pub(super) fn get_opt_u64(row: &PgRow, column: &'static str) -> StoreResult<Option<u64>> {
    get::<Option<i64>>(row, column)?
        .map(|v| from_db(v, column))
        .transpose()
}

/// A `smallint` code that must fit a `u8` (kinds, reasons).
pub(super) fn get_u8(row: &PgRow, column: &'static str) -> StoreResult<u8> {
    let v: i16 = get(row, column)?;
    u8::try_from(v).map_err(|_| out_of_range(column, i64::from(v)))
}

// ---- value conversions --------------------------------------------------

/// A `u64` id or timestamp as Postgres' `bigint`.
pub(super) fn to_db(v: u64, what: &'static str) -> StoreResult<i64> {
    i64::try_from(v)
        .map_err(|_| StoreError::Database(format!("{what} {v} exceeds Postgres' bigint range")))
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

pub(super) fn role_to_db(role: Role) -> i16 {
    match role {
        Role::Member => 0,
        Role::Admin => 1,
        Role::Owner => 2,
    }
}

pub(super) fn role_from_db(v: i16) -> StoreResult<Role> {
    match v {
        0 => Ok(Role::Member),
        1 => Ok(Role::Admin),
        2 => Ok(Role::Owner),
        v => Err(out_of_range("role", i64::from(v))),
    }
}

pub(super) fn visibility_to_db(v: Visibility) -> i16 {
    match v {
        Visibility::Public => 0,
        Visibility::Private => 1,
    }
}

pub(super) fn visibility_from_db(v: i16) -> StoreResult<Visibility> {
    match v {
        0 => Ok(Visibility::Public),
        1 => Ok(Visibility::Private),
        v => Err(out_of_range("visibility", i64::from(v))),
    }
}

/// `id < before`, with 0 (and anything beyond i64::MAX) meaning no bound,
/// as the inclusive `id <= max` the planner sees as a plain index range.
pub(super) fn max_below(before: u64) -> i64 {
    match to_db_opt(before) {
        Some(b) if b > 0 => b - 1,
        _ => i64::MAX,
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

/// Whether `e` says the database cannot be reached or cannot write now,
/// rather than that the statement is wrong: the batch writer spools such
/// batches instead of refusing them (`confab_server::persist::spool`).
fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| unavailable_sqlstate(&c)),
        _ => false,
    }
}

/// SQLSTATEs of a database that is there but cannot take the write now.
fn unavailable_sqlstate(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || code.starts_with("53") // insufficient resources: disk full, out of memory, too many connections
        || code == "57P01" // admin_shutdown
        || code == "57P02" // crash_shutdown
        || code == "57P03" // cannot_connect_now (starting up, recovering)
        || code == "25006" // read_only_sql_transaction (a standby after a failover)
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
        assert_eq!(max_below(0), i64::MAX);
        assert_eq!(max_below(u64::MAX), i64::MAX);
        assert_eq!(max_below(10), 9);
    }

    #[test]
    fn connection_and_resource_failures_are_unavailable_statement_errors_are_not() {
        for code in [
            "08006", "08001", "57P01", "57P03", "53100", "53300", "25006",
        ] {
            assert!(unavailable_sqlstate(code), "{code}");
        }
        // unique violation, foreign key, syntax, deadlock
        for code in ["23505", "23503", "42601", "40P01"] {
            assert!(!unavailable_sqlstate(code), "{code}");
        }
        assert!(is_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(!is_unavailable(&sqlx::Error::RowNotFound));
    }
}
