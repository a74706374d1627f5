//! The Postgres a test runs against, and what happens when there is none.
//!
//! **Which server.** `DATABASE_URL` when it is set (`scripts/test` sets it
//! when the machine's Postgres answers; the user must be allowed to create
//! databases); otherwise a throwaway cluster ([`PgCluster`]) started once
//! for the test binary and stopped when it exits. Each test gets a
//! database of its own ([`TestDatabase`]), so tests run in parallel.
//!
//! **No server.** When `DATABASE_URL` is unset and no cluster can start
//! (PostgreSQL is not installed), or the server does not answer, the
//! test has no Postgres, and [`no_postgres`] decides what that means:
//! with `CONFAB_REQUIRE_POSTGRES=1` (what `.ci/run` sets) the test fails,
//! saying why; otherwise it prints `SKIPPED (no Postgres): <test>` to
//! stderr and returns, so a local run without Postgres still passes but
//! never silently.

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Once, OnceLock};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, PgConnection};

use crate::{say, PgCluster};

/// The variable that makes a missing Postgres fail the tests that need
/// one (set to `1`).
pub const REQUIRE_POSTGRES: &str = "CONFAB_REQUIRE_POSTGRES";

/// Whether `CONFAB_REQUIRE_POSTGRES=1`.
pub fn postgres_required() -> bool {
    std::env::var(REQUIRE_POSTGRES).is_ok_and(|v| v.trim() == "1")
}

/// The policy for `test`, which needs a Postgres and has none (`why`):
/// panics when [`postgres_required`], so the test fails with a message
/// that names it and says why; otherwise prints `SKIPPED (no Postgres):
/// <test>` to stderr (and, once per test binary, why and how to make it a
/// failure), and the caller returns without running the test.
pub fn no_postgres(test: &str, why: &str) {
    if postgres_required() {
        panic!(
            "{}: no Postgres, and {REQUIRE_POSTGRES}=1 requires one: {why}",
            full_name(test)
        );
    }
    static REASON: Once = Once::new();
    REASON.call_once(|| {
        say(&format!(
            "no Postgres for the tests that need one: {why} \
             (with {REQUIRE_POSTGRES}=1 they fail instead)"
        ));
    });
    say(&format!("SKIPPED (no Postgres): {}", full_name(test)));
}

/// `test` as the test harness names it: libtest runs each test on a
/// thread named by the test's path (`tcp_postgres::history_pages…`), which
/// says more than the name a scenario passes in — when it is that test's.
fn full_name(test: &str) -> String {
    match std::thread::current().name() {
        Some(path) if path.ends_with(test) => path.to_owned(),
        _ => test.to_owned(),
    }
}

/// The admin URL of the server the tests create their databases on, or
/// why there is none (see the module doc).
pub fn server() -> Result<&'static str, &'static str> {
    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => Ok(url),
            _ => start_throwaway_cluster(),
        })
        .as_deref()
        .map_err(String::as_str)
}

/// A throwaway cluster for this test binary, kept for its lifetime; its
/// watchdog stops and deletes it when the binary exits.
fn start_throwaway_cluster() -> Result<String, String> {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    // Many tests run at once, each with its own database and pool.
    let cluster = PgCluster::try_start(200).map_err(|why| {
        format!("DATABASE_URL is not set and no throwaway cluster could start: {why}")
    })?;
    say(&format!(
        "Postgres for these tests: throwaway cluster at {}",
        cluster.url()
    ));
    Ok(CLUSTER.get_or_init(|| cluster).url())
}

/// How long a test waits for the server to answer before it counts as
/// missing.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A fresh, empty database on [`server`], for one test.
pub struct TestDatabase {
    admin: PgConnectOptions,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates a database for `test`; `None` when there is no Postgres
    /// (after [`no_postgres`] had its say).
    pub async fn create(test: &str) -> Option<TestDatabase> {
        let admin_url = match server() {
            Ok(url) => url,
            Err(why) => {
                no_postgres(test, why);
                return None;
            }
        };
        let admin = PgConnectOptions::from_str(admin_url)
            .unwrap_or_else(|e| panic!("DATABASE_URL does not parse: {e}"));
        let mut conn = match connect(&admin).await {
            Ok(conn) => conn,
            Err(why) => {
                no_postgres(test, &why);
                return None;
            }
        };
        // The process id alone repeats: a long run (a cold build spawns
        // tens of thousands of processes) wraps the pid space, and a test
        // that panicked leaves its database behind. The start time of this
        // process makes the name unique across runs.
        static NEXT: AtomicU32 = AtomicU32::new(0);
        static STARTED: OnceLock<u128> = OnceLock::new();
        let started = STARTED.get_or_init(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        });
        let name = format!(
            "confab_test_{}_{:x}_{}",
            std::process::id(),
            started,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap_or_else(|e| panic!("{test}: CREATE DATABASE {name}: {e}"));
        let _ = conn.close().await;
        let url = {
            let base = admin_url.split('?').next().unwrap_or(admin_url);
            let (server, _db) = base.rsplit_once('/').expect("the URL names a database");
            let query = admin_url.find('?').map_or("", |i| &admin_url[i..]);
            format!("{server}/{name}{query}")
        };
        Some(TestDatabase { admin, name, url })
    }

    /// The database's URL (the admin URL with this database's name).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database, ending any session still connected to it.
    pub async fn drop_now(self) {
        let mut conn = connect(&self.admin)
            .await
            .unwrap_or_else(|why| panic!("dropping {}: {why}", self.name));
        conn.execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .await
        .unwrap_or_else(|e| panic!("DROP DATABASE {}: {e}", self.name));
        let _ = conn.close().await;
    }
}

/// An admin connection, or why the server does not answer (named by host,
/// port and database: never with a password).
async fn connect(admin: &PgConnectOptions) -> Result<PgConnection, String> {
    let shown = format!(
        "Postgres at {}:{}/{}",
        admin.get_host(),
        admin.get_port(),
        admin.get_database().unwrap_or("")
    );
    match tokio::time::timeout(CONNECT_TIMEOUT, admin.connect()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(format!("{shown} does not answer: {e}")),
        Err(_) => Err(format!(
            "{shown} does not answer within {CONNECT_TIMEOUT:?}"
        )),
    }
}
