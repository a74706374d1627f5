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
                Ok(confab_protocol::EventBody::Message { text, .. }) => Some((e.seq.0, text)),
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

/// The whole history of `room` as HISTORY pages give it, oldest first.
async fn paged_history(c: &Client, room: RoomId) -> Result<Vec<u64>, confab_sdk::Error> {
    let mut seqs = Vec::new();
    let mut before = None;
    loop {
        let page = c.history(room, before, 200).await?;
        seqs.extend(page.events.iter().map(|e| e.seq.0));
        match page.events.last() {
            Some(oldest) if page.has_more => before = Some(oldest.seq),
            _ => break,
        }
    }
    seqs.reverse();
    Ok(seqs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_read_while_the_spool_replays_has_no_hole_and_no_duplicate() {
    let Some(cluster) =
        PgCluster::start("history_read_while_the_spool_replays_has_no_hole_and_no_duplicate")
    else {
        return;
    };
    let cluster = std::sync::Arc::new(cluster);
    let srv = start_server(&cluster, |_| {}).await;
    let spool = spool_file(srv.dir.path());
    let (mut clients, room) = users(&srv, 5).await;
    let reader = clients.pop().expect("a reader");

    // Given four senders, and Postgres stopped under them long enough for
    // the spool to hold far more events than a room's tail keeps by size
    let load = load::start(clients, room, Duration::from_millis(2));
    load.until_acked(100).await;
    pg(&cluster, false).await;
    let acked_before_outage = load.acks();
    load.until_acked(acked_before_outage + 1500).await;
    assert!(file_len(&spool) > 32, "the outage filled the spool");

    // When Postgres comes back, history is read at once and again and again
    // while the spool replays
    pg(&cluster, true).await;
    let mut reads = 0;
    let mut during_replay = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let replaying = file_len(&spool) > 32;
        let acked_so_far = load.acks();
        match paged_history(&reader, room).await {
            Ok(seqs) => {
                // Then every read is 1, 2, 3, … without a hole or a repeat,
                // and holds at least the messages acknowledged before it
                let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
                assert!(
                    seqs == expected,
                    "history read {reads} has a hole or a duplicate: {:?}",
                    first_break(&seqs)
                );
                assert!(
                    seqs.len() >= acked_so_far,
                    "read {reads}: {} events, {acked_so_far} acknowledged before it",
                    seqs.len()
                );
                reads += 1;
                during_replay += replaying as usize;
            }
            Err(e) => assert_eq!(
                e.code(),
                Some(confab_protocol::ErrorCode::StorageUnavailable),
                "a read that cannot be served fails with STORAGE_UNAVAILABLE: {e}"
            ),
        }
        if !replaying && reads > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the spool did not drain in 60 s");
    }
    let outcome = load.stop().await;
    srv.stop().await;
    assert!(during_replay > 0, "no read happened during the replay");
    let events = stored(&cluster, room).await;
    let checked = load::check_stored(&outcome, &events);
    confab_testkit::say(&format!(
        "history during replay: {reads} complete reads ({during_replay} while replaying), {checked} acknowledged messages stored"
    ));
}

/// Where a sequence stops being 1, 2, 3, …: (index, value) and a few
/// around it.
fn first_break(seqs: &[u64]) -> Option<(usize, Vec<u64>)> {
    let i = seqs
        .iter()
        .enumerate()
        .position(|(i, &s)| s != i as u64 + 1)?;
    Some((
        i,
        seqs[i.saturating_sub(2)..(i + 3).min(seqs.len())].to_vec(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_that_need_postgres_while_it_is_down_fail_fast() {
    let Some(cluster) = PgCluster::start("reads_that_need_postgres_while_it_is_down_fail_fast")
    else {
        return;
    };
    let cluster = std::sync::Arc::new(cluster);
    let srv = start_server(&cluster, |c| c.room_tail_events = 16).await;
    let (clients, room) = users(&srv, 1).await;
    let c = &clients[0];
    let token = c.token().expect("a session token");
    // Enough messages that the oldest are only in the database.
    for i in 0..40 {
        c.send_message(room, &format!("m{i}")).await.expect("send");
    }

    // Given Postgres is down and the server has found out (a write, which
    // the spool acknowledges, waits out the pool's timeout once)
    pg(&cluster, false).await;
    c.send_message(room, "during the outage")
        .await
        .expect("acknowledged from the spool");

    // When a read needs the database, it fails at once
    let started = Instant::now();
    let e = c
        .history(room, Some(confab_protocol::Seq(5)), 3)
        .await
        .expect_err("the old events are only in the database");
    assert_eq!(
        e.code(),
        Some(confab_protocol::ErrorCode::StorageUnavailable),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "took {:?}",
        started.elapsed()
    );
    // and HELLO with a token answers ERROR then CLOSE 501 at once
    let mut raw = common::RawClient::connect(srv.addr).await;
    let started = Instant::now();
    let reply = raw.hello(Some(token)).await;
    common::assert_error(&reply, confab_protocol::ErrorCode::StorageUnavailable);
    raw.expect_close(confab_protocol::ErrorCode::StorageUnavailable)
        .await;
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "took {:?}",
        started.elapsed()
    );
    // while recent history is still served from memory, the outage's
    // message included
    let page = c.history(room, None, 5).await.expect("recent history");
    assert_eq!(page.events.len(), 5);

    // Then, with Postgres back, the same read succeeds again (bounded wait
    // for the server to notice)
    pg(&cluster, true).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let page = loop {
        match c.history(room, Some(confab_protocol::Seq(5)), 3).await {
            Ok(page) => break page,
            Err(e) => {
                assert!(Instant::now() < deadline, "still failing 30 s after: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let seqs: Vec<u64> = page.events.iter().map(|e| e.seq.0).collect();
    assert_eq!(seqs, [4, 3, 2]);
    drop(clients);
    srv.stop().await;
}
