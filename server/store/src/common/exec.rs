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

/// One statement of [`Sql::transaction`].
#[derive(Debug, Clone)]
pub(crate) struct Step<'a> {
    pub sql: &'static str,
    pub args: Vec<Arg<'a>>,
    /// Run only if the step at this index returned a row (else this step
    /// is skipped and returns none).
    pub if_row_from: Option<usize>,
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

    /// Runs `steps` in order in one transaction (one commit): each step's
    /// first row, if any (none for a skipped step). Any error rolls back
    /// every step.
    fn transaction<'a>(
        &'a self,
        context: &'static str,
        steps: &'a [Step<'a>],
    ) -> impl Future<Output = StoreResult<Vec<Option<Self::Row>>>> + Send + 'a;
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

    fn transaction<'a>(
        &'a self,
        context: &'static str,
        steps: &'a [Step<'a>],
    ) -> impl Future<Output = StoreResult<Vec<Option<DB::Row>>>> + Send + 'a {
        transaction(self, context, steps)
    }
}

/// [`Sql::transaction`] on a pool.
async fn transaction<'a, DB>(
    pool: &'a Pool<DB>,
    context: &'static str,
    steps: &'a [Step<'a>],
) -> StoreResult<Vec<Option<DB::Row>>>
where
    DB: Dialect,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
{
    let mut tx = pool.begin().await.map_err(|e| DB::error(context, e))?;
    let mut rows: Vec<Option<DB::Row>> = Vec::with_capacity(steps.len());
    for step in steps {
        if let Some(i) = step.if_row_from {
            if rows.get(i).is_none_or(Option::is_none) {
                rows.push(None);
                continue;
            }
        }
        let row = (&mut *tx)
            .fetch_optional(query::<DB>(step.sql, &step.args))
            .await
            .map_err(|e| DB::error(context, e))?;
        rows.push(row);
    }
    tx.commit().await.map_err(|e| DB::error(context, e))?;
    Ok(rows)
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
