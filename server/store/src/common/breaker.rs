//! A circuit breaker in front of a database that may become unreachable.
//!
//! When Postgres stops, every operation waits out the pool's acquire
//! timeout (3 s) before it fails: reads and token checks hang for seconds,
//! and the batch writer holds acknowledgements back as long before it
//! turns to the spool. The breaker remembers that the database is
//! unreachable: while it is *open*, operations fail at once with
//! [`StoreError::Unavailable`], except one *probe* at a time, at most one
//! every [`PROBE_EVERY`], which tries the database for real. The first
//! operation that succeeds — probe or not — closes it.
//!
//! Only errors that say the database could not be *reached* (I/O, TLS,
//! pool timed out or closed) open it. A database that answers but cannot
//! take a write now (out of disk, read-only) still serves reads, so those
//! errors leave it closed.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::exec::{Arg, Sql, Step};
use crate::{StoreError, StoreResult};

/// How often an open breaker lets one operation through to try the
/// database.
pub const PROBE_EVERY: Duration = Duration::from_millis(250);

/// The breaker of one database; shared by everything that uses it.
#[derive(Debug, Default)]
pub struct Breaker {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// When the database was found unreachable (`None`: closed).
    open_since: Option<Instant>,
    /// When the last probe started.
    last_probe: Option<Instant>,
    /// A probe is running.
    probing: bool,
}

/// What [`Breaker::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// Closed: go ahead.
    Go,
    /// Open, and this operation is the probe.
    Probe,
}

impl Breaker {
    /// Whether the breaker is open (the database is thought unreachable).
    #[cfg(test)]
    fn is_open(&self) -> bool {
        self.lock().open_since.is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn admit(&self, now: Instant) -> Result<Admission, StoreError> {
        let mut s = self.lock();
        let Some(since) = s.open_since else {
            return Ok(Admission::Go);
        };
        let due = s.last_probe.is_none_or(|t| now >= t + PROBE_EVERY);
        if !s.probing && due {
            s.probing = true;
            s.last_probe = Some(now);
            return Ok(Admission::Probe);
        }
        Err(StoreError::unavailable(format!(
            "the database has been unreachable for {} ms (not tried again yet)",
            now.saturating_duration_since(since).as_millis()
        )))
    }

    fn record<T>(&self, admission: Admission, result: &StoreResult<T>, now: Instant) {
        let mut s = self.lock();
        if admission == Admission::Probe {
            s.probing = false;
        }
        match result {
            Err(e) if unreachable(e) => {
                if s.open_since.is_none() {
                    tracing::warn!(error = %e, "database unreachable: failing fast until it answers");
                    s.open_since = Some(now);
                    s.last_probe = Some(now);
                }
            }
            _ => {
                if let Some(since) = s.open_since.take() {
                    tracing::info!(
                        after_ms = now.saturating_duration_since(since).as_millis() as u64,
                        "database reachable again"
                    );
                }
            }
        }
    }

    /// Runs `op` if the breaker admits it; records what it says about the
    /// database.
    pub async fn call<T>(&self, op: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        let admission = self.admit(Instant::now())?;
        let result = op.await;
        self.record(admission, &result, Instant::now());
        result
    }
}

/// Whether `e` says the database could not be reached at all.
fn unreachable(e: &StoreError) -> bool {
    let StoreError::Unavailable { source, .. } = e else {
        return false;
    };
    match source
        .as_deref()
        .and_then(|s| s.downcast_ref::<sqlx::Error>())
    {
        Some(sqlx::Error::Io(_))
        | Some(sqlx::Error::Tls(_))
        | Some(sqlx::Error::PoolTimedOut)
        | Some(sqlx::Error::PoolClosed)
        | Some(sqlx::Error::WorkerCrashed) => true,
        // A database error answered: the database is there.
        Some(_) => false,
        // No sqlx source: a store that says so itself.
        None => true,
    }
}

/// A pool behind a breaker: the shared statements run through it.
#[derive(Debug, Clone)]
pub struct Guarded<P> {
    pub(crate) inner: P,
    pub(crate) breaker: Arc<Breaker>,
}

impl<P> Guarded<P> {
    pub(crate) fn new(inner: P) -> Guarded<P> {
        Guarded {
            inner,
            breaker: Arc::new(Breaker::default()),
        }
    }
}

impl<P: Sql> Sql for Guarded<P> {
    type Row = P::Row;

    fn rows<'a>(
        &'a self,
        context: &'static str,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = StoreResult<Vec<Self::Row>>> + Send + 'a {
        self.breaker.call(self.inner.rows(context, sql, args))
    }

    fn row<'a>(
        &'a self,
        context: &'static str,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = StoreResult<Option<Self::Row>>> + Send + 'a {
        self.breaker.call(self.inner.row(context, sql, args))
    }

    fn execute<'a>(
        &'a self,
        context: &'static str,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = StoreResult<u64>> + Send + 'a {
        self.breaker.call(self.inner.execute(context, sql, args))
    }

    fn insert_unique<'a>(
        &'a self,
        context: &'static str,
        key: &'static str,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = StoreResult<Option<Self::Row>>> + Send + 'a {
        self.breaker
            .call(self.inner.insert_unique(context, key, sql, args))
    }

    fn transaction<'a>(
        &'a self,
        context: &'static str,
        steps: &'a [Step<'a>],
    ) -> impl Future<Output = StoreResult<Vec<Option<Self::Row>>>> + Send + 'a {
        self.breaker.call(self.inner.transaction(context, steps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> StoreResult<()> {
        Err(StoreError::Unavailable {
            message: "connect".into(),
            source: Some(Box::new(sqlx::Error::PoolTimedOut)),
        })
    }

    #[test]
    fn an_unreachable_database_opens_it_and_only_one_probe_per_interval_goes_through() {
        let b = Breaker::default();
        let t0 = Instant::now();
        assert_eq!(b.admit(t0).unwrap(), Admission::Go);
        b.record(Admission::Go, &refused(), t0);
        assert!(b.is_open());
        // Fails fast until a probe is due …
        let e = b.admit(t0 + Duration::from_millis(10)).unwrap_err();
        assert!(
            e.is_unavailable() && e.to_string().contains("unreachable for 10 ms"),
            "{e}"
        );
        // … then exactly one operation probes, and others still fail fast
        let due = t0 + PROBE_EVERY;
        assert_eq!(b.admit(due).unwrap(), Admission::Probe);
        assert!(b.admit(due).is_err(), "one probe at a time");
        // A failed probe keeps it open, and the next probe waits again.
        b.record(Admission::Probe, &refused(), due);
        assert!(b.is_open());
        assert!(b.admit(due + Duration::from_millis(1)).is_err());
        let next = due + PROBE_EVERY;
        assert_eq!(b.admit(next).unwrap(), Admission::Probe);
        // A successful probe closes it: everything goes through again.
        b.record(Admission::Probe, &Ok(()), next);
        assert!(!b.is_open());
        assert_eq!(b.admit(next).unwrap(), Admission::Go);
    }

    #[test]
    fn errors_from_a_database_that_answers_do_not_open_it() {
        let b = Breaker::default();
        let now = Instant::now();
        let full: StoreResult<()> = Err(StoreError::Unavailable {
            message: "disk full".into(),
            source: Some(Box::new(sqlx::Error::RowNotFound)),
        });
        b.record(Admission::Go, &full, now);
        b.record(
            Admission::Go,
            &Err::<(), _>(StoreError::database("bad SQL")),
            now,
        );
        assert!(!b.is_open());
    }

    #[tokio::test]
    async fn call_runs_the_operation_only_when_admitted() {
        let b = Breaker::default();
        assert!(b.call(async { refused() }).await.is_err());
        let mut ran = false;
        let r = b
            .call(async {
                ran = true;
                Ok(())
            })
            .await;
        assert!(r.is_err() && !ran, "open: not run, failed at once");
    }
}
