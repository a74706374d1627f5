//! Fault tests against a real PostgreSQL that each test starts for itself
//! (a throwaway cluster on a spare loopback port: `confab_testkit::PgCluster`)
//! and stops in the middle of a steady message load: the server keeps
//! acknowledging writes from its on-disk spool, replays them in order once
//! Postgres is back, and refuses — never acknowledges — what the spool
//! cannot take. Without `initdb`/`pg_ctl` each test prints that it was
//! skipped — or fails, under `CONFAB_REQUIRE_POSTGRES=1` (CI).

mod common;
#[path = "common/load.rs"]
mod load;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{TestServer, Transport};
use confab_protocol::RoomId;
use confab_sdk::Client;
use confab_server::Config;
use confab_store::postgres::{PgStore, PgStoreOptions};
use confab_testkit::clients::users_in_a_room;
use confab_testkit::PgCluster;

/// Generous: the first write after Postgres stops waits out the pool's
/// acquire timeout (3 s) before the writer turns to the spool.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

async fn start_server(pg: &PgCluster, tweak: impl FnOnce(&mut Config)) -> TestServer {
    let url = pg.url();
    TestServer::start_with(move |c| {
        c.database_url = url.parse().expect("a postgres:// URL");
        c.rate_limit_per_sec = 0;
        tweak(c);
    })
    .await
}

/// `n` users connected over TCP, all members of one public room.
async fn users(srv: &TestServer, n: usize) -> (Vec<Client>, RoomId) {
    let door = srv.door(Transport::Tcp);
    let options = door.options.with_request_timeout(REQUEST_TIMEOUT);
    users_in_a_room(&door.url, &options, n).await
}

/// Runs a blocking `pg_ctl` without stalling the runtime.
async fn pg(cluster: &std::sync::Arc<PgCluster>, up: bool) {
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || {
        if up {
            c.resume().expect("restarting the test's own Postgres");
        } else {
            c.halt();
        }
    })
    .await
    .expect("pg_ctl task");
}

fn spool_file(dir: &Path) -> std::path::PathBuf {
    dir.join("spool").join("spool.log")
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Waits until the spool file is back to its bare header (everything
/// replayed and truncated).
async fn spool_drained(path: &Path) {
    tokio::time::timeout(Duration::from_secs(60), async {
        while file_len(path) > 32 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the spool is replayed within 60 s of Postgres coming back");
}

async fn stored(pg: &PgCluster, room: RoomId) -> Vec<confab_store::StoredEvent> {
    let store = PgStore::open(&pg.url(), PgStoreOptions::default())
        .await
        .expect("open the store");
    let events = load::stored_events(&store, room).await;
    store.close().await;
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_mid_load_then_started_loses_no_acknowledged_message() {
    let Some(cluster) =
        PgCluster::start("postgres_stopped_mid_load_then_started_loses_no_acknowledged_message")
    else {
        return;
    };
    let cluster = std::sync::Arc::new(cluster);
    let srv = start_server(&cluster, |_| {}).await;
    let spool = spool_file(srv.dir.path());
    let (clients, room) = users(&srv, 3).await;

    // Given a steady load on a healthy server
    let load = load::start(clients, room, Duration::from_millis(5));
    load.until_acked(100).await;
    // When Postgres stops for a while
    pg(&cluster, false).await;
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let spooled_bytes = file_len(&spool);
    let up = Instant::now();
    pg(&cluster, true).await;
    // and comes back, under the same load
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let outcome = load.stop().await;
    spool_drained(&spool).await;
    srv.stop().await;

    // Then writes went on being acknowledged during the outage, from the spool
    let during = outcome
        .acked
        .iter()
        .filter(|a| a.at > down && a.at < up)
        .count();
    assert!(
        during > 0,
        "no write was acknowledged while Postgres was down"
    );
    assert!(
        spooled_bytes > 32,
        "nothing was spooled while Postgres was down"
    );
    // and none was refused
    assert!(
        outcome.refused.is_empty(),
        "refused: {:?}",
        &outcome.refused[..outcome.refused.len().min(5)]
    );
    // And every acknowledged message is in Postgres exactly once, in order
    let events = stored(&cluster, room).await;
    let checked = load::check_stored(&outcome, &events);
    confab_testkit::say(&format!(
        "durability: {checked} acknowledged messages checked, {during} of them while Postgres was down"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_refuses_writes_with_a_clear_error_instead_of_acknowledging_them() {
    let Some(cluster) = PgCluster::start(
        "a_full_spool_refuses_writes_with_a_clear_error_instead_of_acknowledging_them",
    ) else {
        return;
    };
    let cluster = std::sync::Arc::new(cluster);
    // A spool of 16 KiB: about a hundred single-message batches
    let srv = start_server(&cluster, |c| c.spool_max_bytes = 16 * 1024).await;
    let spool = spool_file(srv.dir.path());
    let (clients, room) = users(&srv, 2).await;
    let last = clients[0].clone();

    // Given Postgres is down
    pg(&cluster, false).await;
    // When the load goes on long enough to fill the spool
    let load = load::start(clients, room, Duration::from_millis(2));
    tokio::time::sleep(Duration::from_secs(6)).await;
    let outcome = load.stop().await;
    // Then the first writes were acknowledged, the later ones refused with
    // STORAGE_UNAVAILABLE saying the spool is full
    assert!(
        !outcome.acked.is_empty(),
        "nothing acknowledged before the spool filled"
    );
    assert!(!outcome.refused.is_empty(), "a full spool refused nothing");
    for r in &outcome.refused {
        assert!(
            r.error.contains("STORAGE_UNAVAILABLE") && r.error.contains("spool is full"),
            "unclear refusal: {}",
            r.error
        );
    }
    assert!(file_len(&spool) <= 32 + 16 * 1024);

    // When Postgres is back, the spool drains and writes are acknowledged again
    pg(&cluster, true).await;
    spool_drained(&spool).await;
    let after = last
        .send_message(room, "after the outage")
        .await
        .expect("write after the replay");
    srv.stop().await;
    // And exactly the acknowledged messages are stored, none refused
    let events = stored(&cluster, room).await;
    load::check_stored(&outcome, &events);
    assert_eq!(events.last().map(|e| e.seq), Some(after.seq));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_spool_refuses_writes_with_a_clear_error_instead_of_acknowledging_them() {
    let Some(cluster) = PgCluster::start(
        "an_unwritable_spool_refuses_writes_with_a_clear_error_instead_of_acknowledging_them",
    ) else {
        return;
    };
    let cluster = std::sync::Arc::new(cluster);
    // The spool's parent is a regular file: no directory can be created
    // there, not even by root.
    let srv = start_server(&cluster, |c| {
        std::fs::write(c.data_dir.join("not-a-dir"), b"x").expect("write file");
        let spool = c.data_dir.join("not-a-dir").join("spool");
        c.spool_dir = confab_server::config::Opt(Some(confab_server::config::Path(spool)));
    })
    .await;
    let (clients, room) = users(&srv, 1).await;
    let c = &clients[0];
    // Given a server that writes fine while Postgres is up
    let before = c
        .send_message(room, "before")
        .await
        .expect("write with Postgres up");

    // When Postgres is down, writes are refused, with the reason
    pg(&cluster, false).await;
    for i in 0..3 {
        let err = c
            .send_message(room, &format!("refused {i}"))
            .await
            .expect_err("no spool, no database: the write must not be acknowledged");
        let msg = err.to_string();
        assert!(
            msg.contains("STORAGE_UNAVAILABLE") && msg.contains("spool is unwritable"),
            "unclear refusal: {msg}"
        );
    }
    // And once Postgres is back, writes are acknowledged again
    pg(&cluster, true).await;
    let after = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(ack) = c.send_message(room, "after").await {
                return ack;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("writes succeed again once Postgres is back");
    srv.stop().await;
    let texts: Vec<(u64, String)> = stored(&cluster, room)
        .await
        .iter()
        .filter_map(|e| {
            match confab_protocol::EventBody::decode_fields(
                e.kind,
                &mut confab_protocol::wire::Reader::new(&e.body),
            ) {
                Ok(confab_protocol::EventBody::Message { text }) => Some((e.seq.0, text)),
                _ => None,
            }
        })
        .collect();
    assert_eq!(texts.first(), Some(&(before.seq.0, "before".to_owned())));
    assert_eq!(texts.last(), Some(&(after.seq.0, "after".to_owned())));
    assert!(
        texts.iter().all(|(_, t)| !t.starts_with("refused")),
        "{texts:?}"
    );
}
