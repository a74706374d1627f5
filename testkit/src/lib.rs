//! What Confab's test suites share, so that no suite keeps a copy:
//!
//! - [`postgres`]: which Postgres the tests use, a fresh database per test
//!   ([`postgres::TestDatabase`]), and the one policy for a test that
//!   finds none ([`postgres::no_postgres`]: a printed skip locally, a
//!   failure when `CONFAB_REQUIRE_POSTGRES=1`, as in CI);
//! - [`PgCluster`]: a throwaway PostgreSQL cluster a test can stop and
//!   start under load;
//! - `clients` (feature `sdk`): SDK clients set up the way the fault tests
//!   need them;
//! - [`spare_port`]: a port for a child process to listen on.
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

/// A port on 127.0.0.1 that nothing listens on, for a child process
/// (`confabd`, `nats-server`, `postgres`) to bind.
///
/// Chosen below Linux's ephemeral range (32768–60999 by default): a port
/// the kernel handed out for `bind(0)` and freed again is soon given to an
/// outgoing connection as its local port, and the child then fails with
/// "Address already in use" (a CI failure seen while a test restarted
/// nats-server under load). Ports 20000–32767 are never picked by the
/// kernel on its own, so only another test could take one; callers that
/// can see a failed bind still retry.
pub fn spare_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_768;
    // Spread test processes apart: the pid and the clock pick a start,
    // then a per-process counter walks on from it.
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let seed = std::process::id().wrapping_mul(7_919) ^ nanos;
    for _ in 0..SPAN {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = LOW + seed.wrapping_add(step.wrapping_mul(131)) % SPAN;
        let port = port as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no spare port in 20000-32767 on 127.0.0.1");
}
