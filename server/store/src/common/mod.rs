//! What the SQLite and Postgres backends share: every read, the account
//! and session writes and the housekeeping purges — the statements
//! ([`sql`], written once with `$N` placeholders), the mapping of rows to
//! records ([`rows`]), and the implementations of [`AccountStore`],
//! [`RoomReads`] and [`Housekeeping`] (`store.rs`) for any [`Backend`].
//!
//! A backend brings only what must differ (`sqlite.rs`, `postgres.rs`):
//! its connection set-up, its [`BatchSink`] (the write path), its
//! [`Dialect`] (which errors mean "unavailable"), and the statements or
//! procedures whose best form differs — the start-up tail (a lateral join
//! in Postgres, a correlated subquery SQLite plans well), the unread
//! predicate (`NOT read` on Postgres' boolean, `read = 0` to match
//! SQLite's partial index), the read-and-mark of notifications and the
//! notification purge (one data-modifying CTE in Postgres, a transaction
//! in SQLite, which has no such CTEs), and the ping.
//!
//! **Placeholders.** The shared statements use Postgres' `$N`. sqlx's
//! SQLite driver binds a parameter named `$N` to the N-th bound argument
//! (as `?N`), so the same text and the same binds serve both; the unit
//! test `dollar_placeholders_bind_by_number_on_sqlite` holds that.
//!
//! **Types.** Ids, timestamps and counts are 64-bit integers in both
//! databases; codes (roles, visibility, kinds, reasons) are read as
//! `i16` (Postgres' `smallint`; sqlx range-checks SQLite's `INTEGER`
//! into it) and flags as `bool` (SQLite's 0/1). Every conversion to or
//! from Confab's `u64`/`u8` is checked: a value out of range is a
//! [`StoreError::Database`], never a wrap-around or a panic.
//!
//! [`AccountStore`]: crate::AccountStore
//! [`RoomReads`]: crate::RoomReads
//! [`Housekeeping`]: crate::Housekeeping
//! [`BatchSink`]: crate::BatchSink

pub mod breaker;
mod convert;
mod exec;
mod files;
pub(crate) mod rows;
pub mod sql;
mod store;

use std::future::Future;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::SqlSafeStr;

use crate::{StoreError, StoreResult};

pub(crate) use convert::{max_below, to_db, to_db_opt};
pub(crate) use exec::{Arg, Sql, Step};
pub(crate) use rows::Columns;

/// A migrator for a backend's embedded migrations: `(version, description,
/// SQL)` in version order. Built with [`Migrator::with_migrations`] rather
/// than the `sqlx::migrate!` macro (see `sqlite.rs`); the history it
/// records (`_sqlx_migrations`: version, description, SHA-384 checksum) is
/// the one `migrate!` and `sqlx-cli` would record.
pub(crate) fn migrator(migrations: &[(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// What sets one database's errors apart (implemented for `sqlx::Sqlite`
/// and `sqlx::Postgres`).
pub(crate) trait Dialect: sqlx::Database {
    /// Whether a database error code (SQLite's result code, Postgres'
    /// SQLSTATE) says the database cannot take the operation *now* —
    /// full, read-only, shutting down, busy — rather than that the
    /// statement is wrong.
    fn unavailable_code(code: &str) -> bool;

    /// How many rows a statement changed.
    fn rows_affected(done: &Self::QueryResult) -> u64;

    /// `e` as a [`StoreError`], with `context` in front of its message
    /// and `e` itself as the source: [`StoreError::Unavailable`] when the
    /// database cannot be reached or cannot take the operation now (the
    /// batch writer spools such batches, `confab_server::persist::spool`),
    /// [`StoreError::Database`] otherwise.
    fn error(context: &str, e: sqlx::Error) -> StoreError {
        let message = format!("{context}: {e}");
        let unavailable = is_unavailable::<Self>(&e);
        let source = Some(Box::new(e) as crate::Source);
        if unavailable {
            StoreError::Unavailable { message, source }
        } else {
            StoreError::Database { message, source }
        }
    }

    /// A unique-key violation as [`StoreError::Conflict`] (`what` is the
    /// key: "username"), anything else as [`Dialect::error`].
    fn conflict_or_error(e: sqlx::Error, what: &'static str, context: &str) -> StoreError {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(what),
            _ => Self::error(context, e),
        }
    }
}

/// Whether `e` says the database cannot be reached or cannot take the
/// operation now.
pub(crate) fn is_unavailable<D: Dialect>(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| D::unavailable_code(&c)),
        _ => false,
    }
}

/// A backend as the shared code sees it: its pools, and the statements
/// and procedures that differ between databases. Implementing it (and
/// [`BatchSink`](crate::BatchSink)) makes a backend a
/// [`Store`](crate::Store).
pub(crate) trait Backend: Send + Sync + 'static {
    type Pool: Sql;

    /// The start-up tail: `$1` events per room, the newest of each room,
    /// ordered by room then seq, columns as [`rows::event`] reads them.
    const RECENT_EVENTS: &'static str;
    /// [`sql::NOTIFICATIONS`] restricted to unread rows, written so that
    /// the database's partial index on unread rows serves it.
    const UNREAD_NOTIFICATIONS: &'static str;
    /// `$1` user: the number of their unread notifications, as `n`.
    const UNREAD_COUNT: &'static str;
    /// The cheapest statement that proves the database answers.
    const PING: &'static str;
    /// The statements that read events and rooms' last seqs, as this
    /// backend stores events.
    const ROOM_SQL: &'static sql::RoomSql = &sql::EVENTS_TABLE;

    /// Where reads go (SQLite: the `query_only` pool).
    fn readers(&self) -> &Self::Pool;
    /// Where writes outside `apply_batch` go — accounts, sessions,
    /// purges. SQLite: its one writer connection; by default, the one
    /// pool of a backend that needs no separate writer (Postgres).
    fn writer(&self) -> &Self::Pool {
        self.readers()
    }

    /// Marks user `user`'s notifications with `id <= up_to` read and
    /// returns how many stay unread, both from one snapshot.
    fn mark_read_then_count(
        &self,
        user: i64,
        up_to: i64,
    ) -> impl Future<Output = StoreResult<i64>> + Send;
    /// Deletes notifications older than `cutoff`, first raising the id
    /// floor (`notification_id_floor`) to the highest id stored, in one
    /// transaction; returns how many it deleted.
    fn purge_notifications_before(
        &self,
        cutoff: i64,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_message_and_their_source() {
        let e = <sqlx::Sqlite as Dialect>::error("load_rooms", sqlx::Error::PoolTimedOut);
        assert!(e.is_unavailable());
        assert!(e.to_string().contains("load_rooms: pool timed out"), "{e}");
        let source = std::error::Error::source(&e).expect("a source");
        assert!(matches!(
            source.downcast_ref::<sqlx::Error>(),
            Some(sqlx::Error::PoolTimedOut)
        ));

        let e = <sqlx::Postgres as Dialect>::error("history", sqlx::Error::RowNotFound);
        assert!(matches!(e, StoreError::Database { .. }), "{e:?}");
        assert!(std::error::Error::source(&e).is_some());
    }
}
