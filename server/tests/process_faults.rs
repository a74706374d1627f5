//! Fault tests on the real `confabd` binary, run as a child process over
//! a temp data directory: `kill -9` under load then a restart (with the
//! embedded SQLite store, and with Postgres down so that the load is
//! being spooled), and SIGTERM under load (graceful shutdown). In each,
//! every acknowledged message must be stored exactly once, in order.

#[path = "common/confabd.rs"]
mod confabd;
#[path = "common/load.rs"]
mod load;

use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_protocol::RoomId;
use confab_sdk::{Client, ConnectOptions};
use confab_store::postgres::{PgStore, PgStoreOptions};
use confab_store::sqlite::SqliteStore;
use confab_testkit::PgCluster;
use confabd::Confabd;

/// Generous: a request may wait out the server's restart.
fn options() -> ConnectOptions {
    ConnectOptions::default().with_request_timeout(Duration::from_secs(30))
}

async fn connect(url: &str) -> Client {
    Client::connect(url, options()).await.expect("connect")
}

/// `n` users connected to `url`, all in one public room.
async fn users_in_a_room(url: &str, n: usize) -> (Vec<Client>, RoomId) {
    confab_testkit::clients::users_in_a_room(url, &options(), n).await
}

async fn sqlite_events(data_dir: &Path, room: RoomId) -> Vec<confab_store::StoredEvent> {
    let store = SqliteStore::open(&data_dir.join("confab.db"))
        .await
        .expect("open SQLite");
    load::stored_events(&store, room).await
}

/// After a restart the server serves, and numbers new messages after
/// every acknowledged one (an acknowledged number is never reused).
async fn writes_continue_after(url: &str, room: RoomId, outcome: &load::Outcome) {
    let c = connect(url).await;
    c.login("user0", "password123")
        .await
        .expect("login after restart");
    let ack = c
        .send_message(room, "after the restart")
        .await
        .expect("write after restart");
    let max_acked = outcome
        .acked
        .iter()
        .map(|a| a.seq)
        .max()
        .expect("something was acknowledged");
    assert!(
        ack.seq > max_acked,
        "seq {} reused after restart (max acknowledged {max_acked})",
        ack.seq
    );
    c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_then_restart_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Confabd::start(dir.path(), None);
    let (clients, room) = users_in_a_room(&server.url(), 3).await;

    // Given a steady load
    let load = load::start(clients, room, Duration::from_millis(2));
    load.until_acked(200).await;
    // When the server is killed outright
    server.kill_9();
    let outcome = load.stop().await;
    assert!(
        outcome.acked.len() > 50,
        "too little load to mean anything: {}",
        outcome.acked.len()
    );

    // Then it restarts on the same data, serves, and every acknowledged
    // message is stored exactly once, in order
    let server = Confabd::start(dir.path(), None);
    writes_continue_after(&server.url(), room, &outcome).await;
    let (status, _, log) = server.terminate(Duration::from_secs(30));
    assert!(status.success(), "exit {status}:\n{log}");
    let checked = load::check_stored(&outcome, &sqlite_events(dir.path(), room).await);
    confab_testkit::say(&format!(
        "process faults: kill -9 (SQLite): {checked} acknowledged messages checked"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_spooling_then_restart_replays_the_spool() {
    let Some(cluster) = PgCluster::start("kill_9_while_spooling_then_restart_replays_the_spool")
    else {
        return;
    };
    let cluster = Arc::new(cluster);
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Confabd::start(dir.path(), Some(&cluster.url()));
    let (clients, room) = users_in_a_room(&server.url(), 3).await;
    let spool = dir.path().join("spool").join("spool.log");

    // Given a steady load, and Postgres stopping under it
    let load = load::start(clients, room, Duration::from_millis(2));
    load.until_acked(100).await;
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.halt())
        .await
        .expect("halt");
    let down = Instant::now();
    // (the pool gives up on Postgres after 3 s; then the spool takes over)
    tokio::time::sleep(Duration::from_secs(5)).await;
    // When the server is killed while writes are in its spool
    server.kill_9();
    let outcome = load.stop().await;
    let spooled = std::fs::metadata(&spool).map(|m| m.len()).unwrap_or(0);
    assert!(
        spooled > 32,
        "nothing in the spool when the server was killed"
    );
    let during = outcome.acked.iter().filter(|a| a.at > down).count();
    assert!(during > 0, "nothing acknowledged while Postgres was down");

    // Then, Postgres back, the restarted server replays the spool before
    // serving: every acknowledged message is stored exactly once, in order
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.resume())
        .await
        .expect("resume")
        .expect("pg_ctl start");
    let server = Confabd::start(dir.path(), Some(&cluster.url()));
    assert_eq!(
        std::fs::metadata(&spool).map(|m| m.len()).ok(),
        Some(32),
        "spool replayed at start-up"
    );
    writes_continue_after(&server.url(), room, &outcome).await;
    let (status, _, log) = server.terminate(Duration::from_secs(30));
    assert!(status.success(), "exit {status}:\n{log}");
    let store = PgStore::open(&cluster.url(), PgStoreOptions::default())
        .await
        .expect("open Postgres");
    let events = load::stored_events(&store, room).await;
    store.close().await;
    let checked = load::check_stored(&outcome, &events);
    confab_testkit::say(&format!(
        "process faults: kill -9 while spooling: {checked} acknowledged messages checked, {during} spooled"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_every_acknowledged_write_and_exits_zero() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Confabd::start(dir.path(), None);
    let addr = server.addr;
    let (clients, room) = users_in_a_room(&server.url(), 3).await;

    // Given a steady load
    let load = load::start(clients, room, Duration::from_millis(2));
    load.until_acked(200).await;
    // When the server gets SIGTERM
    let (status, took, log) =
        tokio::task::spawn_blocking(move || server.terminate(Duration::from_secs(20)))
            .await
            .expect("terminate");
    let outcome = load.stop().await;

    // Then it exits 0, within the bound, having stopped accepting
    assert!(status.success(), "exit {status} after SIGTERM:\n{log}");
    assert!(
        log.contains("shutdown complete"),
        "no orderly shutdown in the log:\n{log}"
    );
    assert!(
        TcpStream::connect(addr).is_err(),
        "still accepting after exit"
    );
    assert!(
        outcome.acked.len() > 50,
        "too little load to mean anything: {}",
        outcome.acked.len()
    );
    // And every acknowledged message is stored exactly once, in order
    let checked = load::check_stored(&outcome, &sqlite_events(dir.path(), room).await);
    confab_testkit::say(&format!(
        "process faults: SIGTERM: exited 0 in {took:?}; {checked} acknowledged messages checked"
    ));
}
