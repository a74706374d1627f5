//! What Confab's test suites share, so that no suite keeps a copy:
//!
//! - [`postgres`]: which Postgres the tests use, a fresh database per test
//!   ([`postgres::TestDatabase`]), and the one policy for a test that
//!   finds none ([`postgres::no_postgres`]: a printed skip locally, a
//!   failure when `CONFAB_REQUIRE_POSTGRES=1`, as in CI);
//! - [`PgCluster`]: a throwaway PostgreSQL cluster a test can stop and
//!   start under load;
//! - `clients` (feature `sdk`): SDK clients set up the way the fault tests
//!   need them.
//!
//! A dev-dependency only (`publish = false`).
#![forbid(unsafe_code)]

#[cfg(feature = "sdk")]
pub mod clients;
mod pg_cluster;
pub mod postgres;

pub use pg_cluster::PgCluster;

use std::io::Write;

/// Writes `line` straight to stderr: what a test did not run must show
/// even when the test harness captures output.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
