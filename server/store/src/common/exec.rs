//! Running a shared statement on either backend's pool: [`Sql`], written
//! once for every sqlx pool whose database can bind and decode Confab's
//! column types, so the shared code needs no sqlx bounds of its own.

use std::future::Future;

use sqlx::database::Database;
use sqlx::{Encode, Executor, IntoArguments, Pool, Type};

use super::{Columns, Dialect};
use crate::StoreResult;

/// A bind parameter of a shared statement.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Int(i64),
    Text(&'a str),
    Bytes(&'a [u8]),
}

/// A pool the shared statements run on. Each method binds `args` to
/// `$1`, `$2`, … of `sql` in order, and reports a failure with `context`
/// in front of it ([`Dialect::error`]).
pub(crate) trait Sql: Send + Sync {
    type Row: Columns + Send;

    /// Every row.
    fn rows<'a>(
        &'a self,
        context: &'static str,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = StoreResult<Vec<Self::Row>>> + Send + 'a;

    /// The first row, if any.
    fn row<'a>(
        &'a self,
        context: &'static str,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = StoreResult<Option<Self::Row>>> + Send + 'a;

    /// Runs a statement; returns the number of rows it changed.
    fn execute<'a>(
        &'a self,
        context: &'static str,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = StoreResult<u64>> + Send + 'a;

    /// Runs an insert whose unique key `key` may already exist
    /// ([`StoreError::Conflict`](crate::StoreError::Conflict) then);
    /// returns the row of its `RETURNING` clause, if it has one.
    fn insert_unique<'a>(
        &'a self,
        context: &'static str,
        key: &'static str,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = StoreResult<Option<Self::Row>>> + Send + 'a;
}

impl<DB> Sql for Pool<DB>
where
    DB: Dialect,
    DB::Row: Columns,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
{
    type Row = DB::Row;

    fn rows<'a>(
        &'a self,
        context: &'static str,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = StoreResult<Vec<DB::Row>>> + Send + 'a {
        // The executor's future is boxed and `Send`; the query is moved
        // into it before anything is awaited.
        let run = self.fetch_all(query::<DB>(sql, args));
        async move { run.await.map_err(|e| DB::error(context, e)) }
    }

    fn row<'a>(
        &'a self,
        context: &'static str,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = StoreResult<Option<DB::Row>>> + Send + 'a {
        let run = self.fetch_optional(query::<DB>(sql, args));
        async move { run.await.map_err(|e| DB::error(context, e)) }
    }

    fn execute<'a>(
        &'a self,
        context: &'static str,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = StoreResult<u64>> + Send + 'a {
        let run = Executor::execute(self, query::<DB>(sql, args));
        async move {
            run.await
                .map(|done| DB::rows_affected(&done))
                .map_err(|e| DB::error(context, e))
        }
    }

    fn insert_unique<'a>(
        &'a self,
        context: &'static str,
        key: &'static str,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = StoreResult<Option<DB::Row>>> + Send + 'a {
        let run = self.fetch_optional(query::<DB>(sql, args));
        async move {
            run.await
                .map_err(|e| DB::conflict_or_error(e, key, context))
        }
    }
}

/// `sql` with `args` bound in order.
fn query<'a, DB>(
    sql: &'static str,
    args: &[Arg<'a>],
) -> sqlx::query::Query<'a, DB, <DB as Database>::Arguments>
where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
{
    args.iter().fold(sqlx::query(sql), |query, arg| match *arg {
        Arg::Int(v) => query.bind(v),
        Arg::Text(v) => query.bind(v),
        Arg::Bytes(v) => query.bind(v),
    })
}
