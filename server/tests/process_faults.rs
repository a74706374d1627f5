//! Fault tests on the real `confabd` binary, run as a child process over
//! a temp data directory: `kill -9` under load then a restart (with the
//! embedded SQLite store, and with Postgres down so that the load is
//! being spooled), and SIGTERM under load (graceful shutdown). In each,
//! every acknowledged message must be stored exactly once, in order.

#[path = "common/load.rs"]
mod load;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_protocol::RoomId;
use confab_sdk::{Client, ConnectOptions};
use confab_store::postgres::{PgStore, PgStoreOptions};
use confab_store::sqlite::SqliteStore;
use confab_testkit::PgCluster;

/// A `confabd` child process.
struct Confabd {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Confabd {
    /// Starts `confabd` on `data_dir` (and Postgres at `database_url`, if
    /// given) and waits until it accepts connections.
    fn start(data_dir: &Path, database_url: Option<&str>) -> Confabd {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("spare port")
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log = data_dir.join(format!("confabd-{port}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_confabd"));
        // Hermetic: only the flags below configure it.
        for (k, _) in std::env::vars() {
            if k.starts_with("CONFAB_") || k == "DATABASE_URL" {
                cmd.env_remove(k);
            }
        }
        cmd.arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .args([
                "--metrics-listen",
                "off",
                "--http-listen",
                "off",
                "--shards",
                "2",
            ])
            .args([
                "--kdf-memory-kib",
                "64",
                "--kdf-iterations",
                "1",
                "--rate-limit-per-sec",
                "0",
            ])
            .env("RUST_LOG", "info,sqlx=warn")
            .stdin(Stdio::null());
        // Logs go to stdout (tracing-subscriber's default); both to one file.
        let file = std::fs::File::create(&log).expect("log file");
        cmd.stdout(file.try_clone().expect("log file")).stderr(file);
        if let Some(url) = database_url {
            cmd.arg("--database-url").arg(url);
        }
        let child = cmd.spawn().expect("spawn confabd");
        let mut server = Confabd { child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "confabd exited at start-up ({status}):\n{}",
                    server.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "confabd not listening within 60 s:\n{}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn url(&self) -> String {
        format!("confab://{}", self.addr)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown of any kind.
    fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (bounded) for the process to exit.
    fn terminate(mut self, within: Duration) -> (ExitStatus, Duration, String) {
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status, started.elapsed(), self.log_text());
            }
            if started.elapsed() > within {
                let _ = self.child.kill();
                panic!(
                    "confabd did not exit within {within:?} of SIGTERM:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Confabd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    tokio::time::sleep(Duration::from_millis(1500)).await;
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
    tokio::time::sleep(Duration::from_millis(500)).await;
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
    tokio::time::sleep(Duration::from_millis(1500)).await;
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
