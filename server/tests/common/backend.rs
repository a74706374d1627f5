//! Which store a test server runs on. Scenarios that must hold "against
//! both stores" are generated once per [`Backend`]; Postgres runs get a
//! fresh database each, on the server named by `DATABASE_URL` (what
//! `scripts/test` exports when the machine's Postgres answers) or else on a
//! throwaway cluster this test binary starts. With neither, the Postgres
//! variant says plainly that it did not run.

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor};

use super::pg_cluster::{say, PgCluster};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The admin URL of a Postgres server tests may create databases on.
fn admin_url() -> Option<&'static str> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    static CLUSTER: OnceLock<Option<PgCluster>> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            return Some(url);
        }
        let cluster = CLUSTER.get_or_init(|| PgCluster::start("backend"));
        cluster.as_ref().map(|c| c.url())
    })
    .as_deref()
}

/// A fresh, empty Postgres database for one test: `(url, name)`.
pub async fn create_database(test: &str) -> Option<(String, String)> {
    let Some(admin) = admin_url() else {
        say(&format!(
            "{test}: NOT RUN against Postgres (no DATABASE_URL, no initdb/pg_ctl)"
        ));
        return None;
    };
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "confab_e2e_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut conn = PgConnectOptions::from_str(admin)
        .expect("DATABASE_URL parses")
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connecting to Postgres for {test}: {e}"));
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("CREATE DATABASE");
    let base = admin.split('?').next().unwrap_or(admin);
    let (server, _) = base.rsplit_once('/').expect("the URL names a database");
    let query = admin.find('?').map_or("", |i| &admin[i..]);
    Some((format!("{server}/{name}{query}"), name))
}

/// Drops a database made by [`create_database`] (after its server stopped).
pub async fn drop_database(name: &str) {
    let Some(admin) = admin_url() else { return };
    if let Ok(mut conn) = PgConnectOptions::from_str(admin)
        .expect("parses")
        .connect()
        .await
    {
        let _ = conn
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await;
    }
}
