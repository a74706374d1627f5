//! Cluster mode, phases 1 to 3: partition leases and write fencing, rooms
//! that follow the leases (loaded on gain, drained before a release),
//! cluster-wide ids, and routing between nodes over NATS (commands to the
//! room's owner and back, its events to every node with members), against
//! a real Postgres (`DATABASE_URL`, else a throwaway cluster; without one
//! each test says it was skipped — or fails under
//! `CONFAB_REQUIRE_POSTGRES=1`) and a nats-server of each test's own
//! (`common::nats`).
//!
//! Lease managers are driven round by round (`LeaseManager::tick`), each
//! with its own pool as separate nodes would be. Expiry is decided by the
//! database's clock, so the tests that need a lease to run out use short
//! leases and poll for the outcome with a bound, never a fixed sleep.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::nats::NatsServer;
use common::{TestServer, Transport};
use confab_protocol::{ErrorCode, RoomId, Seq, UserId, Visibility};
use confab_server::cluster::{JoinError, LeaseConfig, LeaseEvent, LeaseManager};
use confab_server::persist::batch::{self, BatchConfig, WriteRequest};
use confab_server::Config;
use confab_store::postgres::{PgStore, PgStoreOptions};
use confab_store::{AccountStore, BatchSink, Fence, Lease, RoomReads, StoredEvent, WriteOp};
use confab_testkit::postgres::TestDatabase;
use sqlx::Connection;

/// A node's own connection pool to the test's database.
async fn node_store(db: &TestDatabase) -> Arc<PgStore> {
    let options = PgStoreOptions {
        max_connections: 2,
        ..PgStoreOptions::default()
    };
    Arc::new(PgStore::open(db.url(), options).await.expect("store opens"))
}

fn config(node: &str, partitions: u32, lease_ms: u64) -> LeaseConfig {
    LeaseConfig {
        node_id: node.into(),
        partitions,
        lease: Duration::from_millis(lease_ms),
    }
}

async fn join(db: &TestDatabase, node: &str, partitions: u32, lease_ms: u64) -> LeaseManager {
    LeaseManager::join(node_store(db).await, config(node, partitions, lease_ms))
        .await
        .expect("joins")
}

/// Runs rounds of every manager until `done` holds of their partition
/// counts, at most `rounds` rounds (no waiting between them: nothing here
/// needs a lease to expire).
async fn rounds_until(
    managers: &mut [&mut LeaseManager],
    rounds: usize,
    done: impl Fn(&[usize]) -> bool,
) -> Vec<usize> {
    let mut counts = Vec::new();
    for _ in 0..rounds {
        for m in managers.iter_mut() {
            m.tick().await.expect("lease round");
        }
        counts = managers.iter().map(|m| m.held().len()).collect();
        if done(&counts) {
            return counts;
        }
    }
    panic!("no convergence after {rounds} rounds: {counts:?}");
}

/// Every partition is held by exactly one manager.
fn disjoint_and_complete(managers: &[&mut LeaseManager], partitions: u32) {
    let mut all: Vec<u32> = managers
        .iter()
        .flat_map(|m| m.held().into_iter().map(|l| l.partition))
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..partitions).collect::<Vec<_>>());
}

#[tokio::test]
async fn two_then_three_then_four_nodes_split_the_partitions_evenly() {
    let Some(db) = TestDatabase::create("two_then_three_then_four_nodes_split").await else {
        return;
    };
    let long = 60_000; // nothing expires during this test
    let mut a = join(&db, "a", 64, long).await;
    a.tick().await.unwrap();
    assert_eq!(a.held().len(), 64, "a lone node takes every partition");
    assert!(a.held().iter().all(|l| l.epoch == 1));

    let mut b = join(&db, "b", 64, long).await;
    let counts = rounds_until(&mut [&mut a, &mut b], 3, |c| c == [32, 32]).await;
    assert_eq!(counts, [32, 32]);
    disjoint_and_complete(&[&mut a, &mut b], 64);

    let mut c = join(&db, "c", 64, long).await;
    let counts = rounds_until(&mut [&mut a, &mut b, &mut c], 3, |c| {
        c.iter().sum::<usize>() == 64 && c.iter().all(|&n| n == 21 || n == 22)
    })
    .await;
    assert_eq!(
        counts,
        [22, 21, 21],
        "the first node by name takes the rest"
    );
    disjoint_and_complete(&[&mut a, &mut b, &mut c], 64);

    // A fourth node joins: the others give up their extras and it takes
    // them, each at a higher epoch than its previous owner's.
    let before: Vec<Lease> = [&a, &b, &c].iter().flat_map(|m| m.held()).collect();
    let mut d = join(&db, "d", 64, long).await;
    let mut events = d.subscribe();
    let counts = rounds_until(&mut [&mut a, &mut b, &mut c, &mut d], 3, |c| {
        c == [16, 16, 16, 16]
    })
    .await;
    assert_eq!(counts, [16, 16, 16, 16]);
    disjoint_and_complete(&[&mut a, &mut b, &mut c, &mut d], 64);
    for lease in d.held() {
        let old = before
            .iter()
            .find(|l| l.partition == lease.partition)
            .expect("was held");
        assert!(lease.epoch > old.epoch, "{lease:?} after {old:?}");
    }
    let mut gained = 0;
    while let Ok(event) = events.try_recv() {
        assert!(matches!(event, LeaseEvent::Gained(_)), "{event:?}");
        gained += 1;
    }
    assert_eq!(gained, 16);
    // What the runtime reads agrees with the database's answer.
    assert_eq!(d.ownership().owned(), d.held());
    let lease = d.held()[0];
    assert_eq!(
        d.ownership()
            .epoch_of(RoomId(u64::from(lease.partition) + 64)),
        Some(lease.epoch)
    );
    assert_eq!(
        a.ownership().epoch_of(RoomId(u64::from(lease.partition))),
        None
    );
    db.drop_now().await;
}

#[tokio::test]
async fn a_graceful_leave_hands_the_partitions_over_at_once() {
    let Some(db) = TestDatabase::create("a_graceful_leave_hands_over").await else {
        return;
    };
    // Leases of a minute: the other node can take them within this test
    // only because they were released.
    let mut a = join(&db, "a", 8, 60_000).await;
    let mut b = join(&db, "b", 8, 60_000).await;
    rounds_until(&mut [&mut a, &mut b], 3, |c| c == [4, 4]).await;
    let a_had = a.held();
    a.leave().await.expect("leaves");

    b.tick().await.unwrap();
    assert_eq!(b.held().len(), 8, "the next round takes a's partitions");
    for lease in a_had {
        let now = b
            .held()
            .into_iter()
            .find(|l| l.partition == lease.partition)
            .unwrap();
        assert_eq!(now.epoch, lease.epoch + 1);
    }
    db.drop_now().await;
}

#[tokio::test]
async fn a_node_that_stops_renewing_loses_its_partitions_to_a_higher_epoch() {
    let Some(db) = TestDatabase::create("a_node_that_stops_renewing").await else {
        return;
    };
    // a's leases are short (expiry is what this test waits for); b's are
    // long, so that b keeps what it took while the test looks.
    let lease_ms = 1_000;
    let mut a = join(&db, "a", 8, lease_ms).await;
    a.tick().await.unwrap();
    let a_had = a.held();
    assert_eq!(a_had.len(), 8);
    let a_view = a.ownership();
    assert!(a_view.epoch_of(RoomId(3)).is_some());

    // a pauses (no more rounds); b keeps going until a's leases expired
    // by the database's clock and b took them.
    let mut b = join(&db, "b", 8, 60_000).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.held().len() < 8 {
        assert!(
            Instant::now() < deadline,
            "b never took over: {:?}",
            b.held()
        );
        tokio::time::sleep(Duration::from_millis(lease_ms / 3)).await;
        b.tick().await.unwrap();
    }
    for (old, new) in a_had.iter().zip(b.held()) {
        assert_eq!(old.partition, new.partition);
        assert!(new.epoch > old.epoch, "{new:?} after {old:?}");
    }
    // a's own view ran out on its local deadline, without a round.
    assert_eq!(a_view.epoch_of(RoomId(3)), None);
    assert!(a_view.owned().is_empty());

    // When a resumes, its round learns the leases are gone.
    let mut events = a.subscribe();
    a.tick().await.unwrap();
    assert!(a.held().is_empty() || a.held().iter().all(|l| l.epoch > 1));
    let lost = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| matches!(e, LeaseEvent::Lost(_)))
        .count();
    assert_eq!(lost, 8);
    db.drop_now().await;
}

#[tokio::test]
async fn a_node_with_another_partition_count_is_refused() {
    let Some(db) = TestDatabase::create("another_partition_count").await else {
        return;
    };
    join(&db, "a", 64, 5_000).await;
    let err = LeaseManager::join(node_store(&db).await, config("b", 32, 5_000))
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(
            err,
            JoinError::PartitionsDiffer {
                configured: 32,
                stored: 64
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("--cluster-partitions 32") && text.contains("64"),
        "{text}"
    );
    db.drop_now().await;
}

// ---------------------------------------------------------------------------
// Fencing

fn create_room(room: RoomId, owner: UserId) -> WriteOp {
    WriteOp::CreateRoom {
        room,
        name: format!("room {}", room.0),
        topic: String::new(),
        visibility: Visibility::Public,
        owner,
        created_at: 1,
    }
}

fn event(room: RoomId, seq: u64) -> WriteOp {
    WriteOp::AppendEvent(StoredEvent {
        room,
        seq: Seq(seq),
        at: 1,
        actor: UserId(1),
        actor_name: "alice".into(),
        kind: 1,
        body: vec![seq as u8],
    })
}

async fn stored_seqs(store: &PgStore, room: RoomId) -> Vec<u64> {
    let mut seqs: Vec<u64> = store
        .history(room, Seq(0), 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq.0)
        .collect();
    seqs.sort_unstable();
    seqs
}

#[tokio::test]
async fn a_batch_carrying_a_lost_epoch_is_refused_and_commits_nothing() {
    let Some(db) = TestDatabase::create("a_batch_carrying_a_lost_epoch").await else {
        return;
    };
    let lease_ms = 1_000;
    let partitions = 4;
    let store_a = node_store(&db).await;
    let mut a = LeaseManager::join(store_a.clone(), config("a", partitions, lease_ms))
        .await
        .unwrap();
    a.tick().await.unwrap();
    let alice = store_a.create_user("alice", "x", 0).await.unwrap();
    let room = RoomId(5);
    let claim = a.ownership().claim(room);
    assert_eq!((claim.partition, claim.epoch), (1, 1));
    let fence = Fence {
        owner: a.incarnation(),
        leases: vec![claim],
    };
    store_a
        .apply_fenced_batch(&[create_room(room, alice), event(room, 1)], &fence)
        .await
        .expect("the owner's batch commits");

    // a pauses; b takes over once a's leases ran out.
    let mut b = join(&db, "b", partitions, 60_000).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.ownership().epoch_of(room).is_none() {
        assert!(
            Instant::now() < deadline,
            "b never took the room's partition"
        );
        tokio::time::sleep(Duration::from_millis(lease_ms / 3)).await;
        b.tick().await.unwrap();
    }
    assert_eq!(b.ownership().epoch_of(room), Some(2));

    // a wakes up and writes with the epoch it still believes it holds.
    let stale = [
        event(room, 2),
        event(room, 3),
        WriteOp::RemoveMember { room, user: alice },
    ];
    let err = store_a
        .apply_fenced_batch(&stale, &fence)
        .await
        .expect_err("a lost the lease");
    assert!(err.is_fenced(), "{err}");
    assert_eq!(
        stored_seqs(&store_a, room).await,
        [1],
        "nothing of it committed"
    );

    // Through a's batch writer: the request is answered with an error,
    // never acknowledged.
    let (writer, task) = batch::spawn_cluster(store_a.clone(), batch_config(), a.incarnation());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut req = WriteRequest::new(vec![event(room, 2)]);
    req.fence = Some(claim);
    req.notify = Some(tx);
    assert!(writer.submit(req));
    assert_eq!(rx.await.unwrap(), Err(ErrorCode::StorageUnavailable));
    assert_eq!(stored_seqs(&store_a, room).await, [1]);

    // The new owner's write under its own epoch commits.
    let store_b = node_store(&db).await;
    let fence_b = Fence {
        owner: b.incarnation(),
        leases: vec![b.ownership().claim(room)],
    };
    store_b
        .apply_fenced_batch(&[event(room, 2)], &fence_b)
        .await
        .expect("the new owner commits");
    assert_eq!(stored_seqs(&store_a, room).await, [1, 2]);
    drop(writer);
    task.await.unwrap();
    db.drop_now().await;
}

fn batch_config() -> BatchConfig {
    BatchConfig {
        max_items: 100,
        max_items_deep: 100,
        max_delay: Duration::ZERO,
        min_interval: Duration::ZERO,
        window_max: Duration::ZERO,
        lanes: 1,
        deep_parts: 1,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_fenced_request_fails_alone_and_its_batch_neighbours_commit() {
    let Some(db) = TestDatabase::create("a_fenced_request_fails_alone").await else {
        return;
    };
    let store = node_store(&db).await;
    let mut a = LeaseManager::join(store.clone(), config("a", 2, 60_000))
        .await
        .unwrap();
    a.tick().await.unwrap();
    let alice = store.create_user("alice", "x", 0).await.unwrap();
    let (mine, stale) = (RoomId(2), RoomId(3)); // partitions 0 and 1
    let setup = Fence {
        owner: a.incarnation(),
        leases: a.held(),
    };
    store
        .apply_fenced_batch(
            &[create_room(mine, alice), create_room(stale, alice)],
            &setup,
        )
        .await
        .unwrap();

    // One writer, two requests in one batch (this single-threaded runtime
    // runs the writer only once both are queued): one under the lease a
    // holds, one under an epoch of partition 1 that is not a's.
    let (writer, task) = batch::spawn_cluster(store.clone(), batch_config(), a.incarnation());
    let request = |room: RoomId, lease: Lease| {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut req = WriteRequest::new(vec![event(room, 1)]);
        req.fence = Some(lease);
        req.notify = Some(tx);
        (req, rx)
    };
    let (ok, ok_rx) = request(mine, a.ownership().claim(mine));
    let wrong = Lease {
        partition: 1,
        epoch: 7,
    };
    let (bad, bad_rx) = request(stale, wrong);
    assert!(writer.submit(ok) && writer.submit(bad));
    assert_eq!(ok_rx.await.unwrap(), Ok(()));
    assert_eq!(bad_rx.await.unwrap(), Err(ErrorCode::StorageUnavailable));
    assert_eq!(stored_seqs(&store, mine).await, [1]);
    assert!(stored_seqs(&store, stale).await.is_empty());
    drop(writer);
    task.await.unwrap();
    db.drop_now().await;
}

// ---------------------------------------------------------------------------
// The server in cluster mode

#[tokio::test]
async fn cluster_mode_on_sqlite_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::embedded(dir.path());
    cluster_node(&mut config, "a", "nats://127.0.0.1:1");
    let err = start_refused(config).await;
    assert!(
        err.contains("single-node only") && err.contains("--database-url postgres://"),
        "{err}"
    );
    assert!(
        !dir.path().join("confab.db").exists(),
        "refused before opening a store"
    );
}

/// Why the server refuses to start with `config`.
async fn start_refused(config: Config) -> String {
    match confab_server::start(config).await {
        Ok(_) => panic!("started"),
        Err(e) => format!("{e:#}"),
    }
}

/// Makes `config` a cluster node `node` routing over the NATS server at
/// `nats`: 4 partitions, leases of a minute.
fn cluster_node(config: &mut Config, node: &str, nats: &str) {
    config.cluster_nats = confab_server::config::Opt(Some(nats.into()));
    config.node_id = confab_server::config::Opt(Some(node.into()));
    config.cluster_partitions = 4;
    config.lease_ms = confab_server::config::Millis(60_000);
}

async fn stored_events(admin: &mut sqlx::PgConnection, room: RoomId) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE room_id = $1")
        .bind(room.0 as i64)
        .fetch_one(admin)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_cluster_node_acknowledges_writes_it_owns_and_refuses_them_once_the_lease_moved() {
    let Some(nats) = NatsServer::start("a_cluster_node_acknowledges").await else {
        return;
    };
    let Some(mut srv) = TestServer::start_on(
        common::Backend::Postgres,
        "a_cluster_node_acknowledges",
        |c| cluster_node(c, "a", &nats.url()),
    )
    .await
    else {
        return;
    };
    let db = srv.pg_database.take().expect("a Postgres database");
    let mut admin = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let door = srv.door(Transport::Tcp);
    let (alice, _) = door.register("alice").await;
    // The lone node took every partition at start: its writes commit.
    let room = alice
        .create_room("lobby", "", Visibility::Public)
        .await
        .expect("created")
        .id;
    alice
        .send_message(room, "hello")
        .await
        .expect("acknowledged");
    let before = stored_events(&mut admin, room).await;
    assert!(before >= 1);

    // Another node takes the room's partition (as after a's lease ran out).
    let moved = sqlx::query(
        "UPDATE partition_leases SET owner = 999999, owner_node = 'x', epoch = epoch + 1, \
         expires_at = now() + interval '1 hour' WHERE part = $1",
    )
    .bind((room.0 % 4) as i32)
    .execute(&mut admin)
    .await
    .unwrap();
    assert_eq!(moved.rows_affected(), 1);
    let err = alice
        .send_message(room, "too late")
        .await
        .expect_err("never acknowledged");
    assert!(
        matches!(&err, confab_sdk::Error::Server { code, .. } if *code == ErrorCode::StorageUnavailable),
        "{err:?}"
    );
    assert_eq!(
        stored_events(&mut admin, room).await,
        before,
        "nothing stored"
    );

    // Graceful shutdown releases what the node holds and removes it.
    srv.handle.take().expect("running").shutdown().await;
    let held: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM partition_leases WHERE owner_node = 'a' AND expires_at > now()",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(held, 0, "released at shutdown");
    let nodes: i64 = sqlx::query_scalar("SELECT count(*) FROM cluster_nodes")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(nodes, 0, "left the cluster");
    drop(admin);
    db.drop_now().await;
}

#[tokio::test]
async fn copy_mode_batches_are_fenced_the_same() {
    let Some(db) = TestDatabase::create("copy_mode_batches_are_fenced").await else {
        return;
    };
    let options = PgStoreOptions {
        batch_mode: confab_store::postgres::PgBatchMode::Copy,
        max_connections: 2,
        ..PgStoreOptions::default()
    };
    let store = Arc::new(PgStore::open(db.url(), options).await.unwrap());
    let mut a = LeaseManager::join(store.clone(), config("a", 4, 60_000))
        .await
        .unwrap();
    a.tick().await.unwrap();
    let alice = store.create_user("alice", "x", 0).await.unwrap();
    let room = RoomId(1);
    let held = Fence {
        owner: a.incarnation(),
        leases: vec![a.ownership().claim(room)],
    };
    store
        .apply_fenced_batch(&[create_room(room, alice), event(room, 1)], &held)
        .await
        .expect("held: commits");
    let stale = Fence {
        owner: a.incarnation(),
        leases: vec![Lease {
            partition: 1,
            epoch: 2,
        }],
    };
    let err = store
        .apply_fenced_batch(&[event(room, 2), event(room, 3)], &stale)
        .await
        .expect_err("epoch 2 is not held");
    assert!(err.is_fenced(), "{err}");
    assert_eq!(stored_seqs(&store, room).await, [1]);
    db.drop_now().await;
}

#[tokio::test]
async fn a_cluster_node_refuses_to_start_over_a_spool_holding_writes() {
    let Some(db) = TestDatabase::create("refuses_to_start_over_a_spool").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    std::fs::write(spool.join("spool.log"), vec![1u8; 64]).unwrap();
    let mut config = common::test_config(dir.path().to_path_buf());
    config.database_url = db.url().parse().unwrap();
    // Refused before NATS is reached.
    cluster_node(&mut config, "a", "nats://127.0.0.1:1");
    let err = start_refused(config).await;
    assert!(
        err.contains("start this node once without --cluster-nats"),
        "{err}"
    );
    db.drop_now().await;
}

#[tokio::test]
async fn a_cluster_node_that_cannot_reach_nats_refuses_to_start_and_takes_no_lease() {
    let Some(db) = TestDatabase::create("cannot_reach_nats").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config(dir.path().to_path_buf());
    config.database_url = db.url().parse().unwrap();
    cluster_node(&mut config, "a", "nats://127.0.0.1:1");
    let err = start_refused(config).await;
    assert!(
        err.contains("connecting to the cluster's NATS server at nats://127.0.0.1:1"),
        "{err}"
    );
    let mut admin = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM cluster_nodes")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(held, 0, "refused before joining");
    drop(admin);
    db.drop_now().await;
}

#[tokio::test]
async fn a_single_node_on_postgres_never_touches_the_cluster_tables() {
    let Some(mut srv) =
        TestServer::start_on(common::Backend::Postgres, "a_single_node_never", |_| {}).await
    else {
        return;
    };
    let db = srv.pg_database.take().expect("a Postgres database");
    let (alice, _) = srv.door(Transport::Tcp).register("alice").await;
    let room = alice
        .create_room("lobby", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    alice
        .send_message(room, "hello")
        .await
        .expect("acknowledged");
    srv.handle.take().expect("running").shutdown().await;
    let mut admin = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM cluster_settings) + (SELECT count(*) FROM cluster_nodes) \
         + (SELECT count(*) FROM partition_leases) + (SELECT count(*) FROM cluster_id_blocks)",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(
        rows, 0,
        "no lease, node or partition count without --cluster-nats"
    );
    drop(admin);
    db.drop_now().await;
}

// ---- phase 2: rooms follow the leases --------------------------------------

/// A cluster node `node` on `db` in-process, routing over `nats`: 4
/// partitions, leases of `lease_ms`.
async fn cluster_server(
    db: &TestDatabase,
    nats: &NatsServer,
    node: &str,
    lease_ms: u64,
) -> TestServer {
    TestServer::start_with(|c| {
        c.database_url = db.url().parse().expect("a postgres:// URL");
        cluster_node(c, node, &nats.url());
        c.lease_ms = confab_server::config::Millis(lease_ms);
        // Senders post as fast as acknowledgements come back, and commits
        // are paced so that writes are still queued when a lease moves.
        c.rate_limit_per_sec = 0;
        c.batch_min_interval_ms = confab_server::config::Millis(25);
    })
    .await
}

fn served(srv: &TestServer) -> Vec<u32> {
    srv.handle.as_ref().expect("running").served_partitions()
}

/// Polls `check` until it holds, for at most `limit` (no fixed sleep:
/// the outcome depends on lease rounds and, for expiry, the database's
/// clock).
async fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn is_code(err: &confab_sdk::Error, want: ErrorCode) -> bool {
    matches!(err, confab_sdk::Error::Server { code, .. } if *code == want)
}

/// Sends `text` to `room`, retrying while the answer is ROOM_MOVING (a
/// hand-over under way), for at most `limit`.
async fn send_when_served(
    c: &confab_sdk::Client,
    room: RoomId,
    text: &str,
    limit: Duration,
) -> confab_sdk::MessageAck {
    let deadline = Instant::now() + limit;
    loop {
        match c.send_message(room, text).await {
            Ok(ack) => return ack,
            Err(e) if is_code(&e, ErrorCode::RoomMoving) && Instant::now() < deadline => {
                let wait = e.retry_after().expect("ROOM_MOVING carries a retry hint");
                tokio::time::sleep(wait).await;
            }
            Err(e) => panic!("send to {room}: {e:?}"),
        }
    }
}

/// Every event of `room` through `c`'s node, oldest first.
async fn full_history(c: &confab_sdk::Client, room: RoomId) -> Vec<confab_protocol::RoomEvent> {
    let mut events = Vec::new();
    let mut before = None;
    loop {
        let page = c.history(room, before, 200).await.expect("history");
        before = page.events.last().map(|e| e.seq);
        let more = page.has_more;
        events.extend(page.events);
        if !more || before.is_none() {
            break;
        }
    }
    events.reverse();
    events
}

fn message_text(ev: &confab_protocol::RoomEvent) -> Option<&str> {
    match &ev.body {
        confab_protocol::EventBody::Message { text, .. } => Some(text),
        _ => None,
    }
}

/// `n` tasks posting to `room` through `c` until `meanwhile` is done or
/// an error that `ends` accepts (any other error fails the test);
/// together they return every message acknowledged, by seq.
async fn post_until(
    c: &confab_sdk::Client,
    room: RoomId,
    n: usize,
    ends: fn(&confab_sdk::Error) -> bool,
    meanwhile: impl std::future::Future<Output = ()>,
) -> Vec<(Seq, String)> {
    let mut senders = Vec::new();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for t in 0..n {
        let sender = c.clone();
        let done = done.clone();
        senders.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..100_000 {
                if done.load(std::sync::atomic::Ordering::SeqCst) {
                    return acked;
                }
                let text = format!("m {t}/{i}");
                match sender.send_message(room, &text).await {
                    Ok(ack) => acked.push((ack.seq, text)),
                    Err(e) if ends(&e) => return acked,
                    Err(e) => panic!("a message failed: {e:?}"),
                }
            }
            panic!("the senders were never stopped");
        }));
    }
    meanwhile.await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut acked = Vec::new();
    for sending in senders {
        acked.extend(sending.await.expect("sender"));
    }
    acked.sort();
    acked
}

/// `history` (every event of a room, oldest first) runs from seq 1
/// without a gap or a duplicate, and holds each of `acked` at its seq.
fn assert_holds(history: &[confab_protocol::RoomEvent], acked: &[(Seq, String)]) {
    let seqs: Vec<u64> = history.iter().map(|e| e.seq.0).collect();
    let last = seqs.last().copied().unwrap_or(0);
    assert_eq!(
        seqs,
        (1..=last).collect::<Vec<_>>(),
        "gapless, no duplicate"
    );
    for (seq, text) in acked {
        let ev = &history[(seq.0 - 1) as usize];
        assert_eq!(
            message_text(ev),
            Some(text.as_str()),
            "acknowledged {seq:?}"
        );
    }
}

async fn login(srv: &TestServer, name: &str) -> confab_sdk::Client {
    let c = srv.door(Transport::Tcp).connect().await;
    c.login(name, common::TEST_PASSWORD).await.expect("login");
    c
}

#[tokio::test]
async fn rooms_follow_the_leases_and_a_graceful_handover_loses_no_acknowledged_message() {
    let Some(db) = TestDatabase::create("rooms_follow_the_leases").await else {
        return;
    };
    let Some(nats) = NatsServer::start("rooms_follow_the_leases").await else {
        return;
    };
    let mut admin = sqlx::PgConnection::connect(db.url()).await.unwrap();
    // Leases long enough that none expires on a slow machine: every
    // change of owner here is a release.
    let lease = 1_500;
    let a = cluster_server(&db, &nats, "a", lease).await;
    assert_eq!(
        served(&a),
        [0, 1, 2, 3],
        "a lone node serves every partition from the start"
    );
    let (alice, _) = a.door(Transport::Tcp).register("alice").await;
    let mut rooms = Vec::new();
    for i in 0..4 {
        let name = format!("room{i}");
        rooms.push(
            alice
                .create_room(&name, "", Visibility::Public)
                .await
                .unwrap()
                .id,
        );
    }
    // a releases its highest partitions when b joins: 2 and 3.
    let moving = *rooms
        .iter()
        .find(|r| r.0 % 4 == 3)
        .expect("a room in partition 3");
    let staying = *rooms
        .iter()
        .find(|r| r.0 % 4 == 0)
        .expect("a room in partition 0");
    let mut acked: Vec<(Seq, String)> = Vec::new();
    for i in 0..5 {
        let text = format!("before {i}");
        acked.push((alice.send_message(moving, &text).await.unwrap().seq, text));
    }

    // Senders keep posting through a while b joins and a hands
    // partitions 2 and 3 over — several at once, so that writes are in
    // flight when the lease is released: each message is acknowledged
    // (applied by a, or forwarded to b once b serves the room) or refused
    // with ROOM_MOVING (never applied, while the room moves), none fails.
    let mut b = None;
    let during = post_until(
        &alice,
        moving,
        8,
        |e| is_code(e, ErrorCode::RoomMoving),
        async {
            let started = cluster_server(&db, &nats, "b", lease).await;
            eventually(
                "a serves 0 and 1, b serves 2 and 3",
                Duration::from_secs(20),
                || served(&a) == [0, 1] && served(&started) == [2, 3],
            )
            .await;
            b = Some(started);
        },
    )
    .await;
    let b = b.expect("b started");
    acked.extend(during);

    // Each node holds only its partitions' rooms; a command for the
    // other's goes to it over NATS and its answer comes back.
    let alice_b = login(&b, "alice").await;
    assert_eq!(alice.members(staying).await.unwrap().len(), 1);
    assert_eq!(alice.members(moving).await.unwrap().len(), 1, "from b");
    assert_eq!(alice_b.members(staying).await.unwrap().len(), 1, "from a");
    assert_eq!(alice_b.members(moving).await.unwrap().len(), 1);

    // b continues the room's sequence, for its own connections and for
    // a's: nothing lost, in order, no duplicate seq.
    let last = acked.iter().map(|(s, _)| s.0).max().unwrap();
    let next = send_when_served(&alice_b, moving, "after", Duration::from_secs(5)).await;
    assert_eq!(next.seq.0, last + 1, "the sequence continues on b");
    acked.push((next.seq, "after".into()));
    // a's connection, subscribed to the room while a served it, was
    // handed to a's relay when a let the room go: it receives b's events.
    loop {
        match alice.next_event_timeout(common::STEP).await {
            Ok(Some(confab_sdk::Event::Room(ev))) if ev.room == moving && ev.seq == next.seq => {
                assert_eq!(message_text(&ev), Some("after"));
                break;
            }
            Ok(Some(_)) => continue,
            other => panic!("alice on a got nothing of the room b serves now: {other:?}"),
        }
    }
    let through_a = send_when_served(&alice, moving, "through a", Duration::from_secs(5)).await;
    assert_eq!(through_a.seq.0, last + 2, "forwarded to b, applied there");
    acked.push((through_a.seq, "through a".into()));
    assert_eq!(
        stored_events(&mut admin, moving).await,
        last as i64 + 2,
        "b stored what a forwarded"
    );
    assert_holds(&full_history(&alice_b, moving).await, &acked);
    assert_holds(&full_history(&alice, moving).await, &acked);

    // Ids allocated by both nodes never collide: each node's new rooms
    // land in its own partitions, and notifications from both commit.
    let (_bob, bob_id) = b.door(Transport::Tcp).register("bob").await;
    let mut ids: Vec<u64> = rooms.iter().map(|r| r.0).collect();
    for (c, mine) in [(&alice, [0, 1]), (&alice_b, [2, 3])] {
        for i in 0..3 {
            let room = c
                .create_room(&format!("more{i}"), "", Visibility::Private)
                .await
                .unwrap()
                .id;
            assert!(
                mine.contains(&(room.0 % 4)),
                "{room} in a partition of its node"
            );
            c.invite(room, confab_protocol::UserRef::Id(bob_id))
                .await
                .expect("invited");
            ids.push(room.0);
        }
    }
    let distinct: std::collections::BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "room ids {ids:?}");
    let notes: Vec<i64> = sqlx::query_scalar("SELECT id FROM notifications WHERE user_id = $1")
        .bind(bob_id.0 as i64)
        .fetch_all(&mut admin)
        .await
        .unwrap();
    assert_eq!(
        notes.len(),
        6,
        "an invitation notification from each node's rooms"
    );

    a.stop().await;
    b.stop().await;
    drop(admin);
    db.drop_now().await;
}

#[tokio::test]
async fn a_dead_node_s_rooms_are_taken_over_once_its_leases_expire() {
    let Some(db) = TestDatabase::create("a_dead_node_s_rooms").await else {
        return;
    };
    let Some(nats) = NatsServer::start("a_dead_node_s_rooms").await else {
        return;
    };
    let lease = 400;
    let a = cluster_server(&db, &nats, "a", lease).await;
    let (alice, _) = a.door(Transport::Tcp).register("alice").await;
    let b = cluster_server(&db, &nats, "b", lease).await;
    eventually(
        "a and b split the partitions",
        Duration::from_secs(20),
        || served(&a).len() == 2 && served(&b).len() == 2,
    )
    .await;
    let room = loop {
        match alice.create_room("lobby", "", Visibility::Public).await {
            Ok(info) => break info.id,
            Err(e) if is_code(&e, ErrorCode::RoomMoving) => {
                tokio::time::sleep(e.retry_after().unwrap()).await
            }
            Err(e) => panic!("{e:?}"),
        }
    };
    let mut last = Seq(0);
    for i in 0..3 {
        last = send_when_served(&alice, room, &format!("m{i}"), Duration::from_secs(5))
            .await
            .seq;
    }
    let on_a = served(&a);
    assert!(on_a.contains(&((room.0 % 4) as u32)), "{room} is a's");
    // bob, a member, is connected to b, which does not hold the room yet.
    let (bob_a, _) = a.door(Transport::Tcp).register("bob").await;
    bob_a.join_room(room).await.expect("joined through a");
    let bob_b = login(&b, "bob").await;

    // a dies: its leases are neither renewed nor released.
    let TestServer { handle, .. } = a;
    handle.expect("running").crash().await;
    eventually(
        "b takes a's partitions after they expire",
        Duration::from_secs(20),
        || served(&b) == [0, 1, 2, 3],
    )
    .await;
    let alice_b = login(&b, "alice").await;
    let ack = send_when_served(&alice_b, room, "after", Duration::from_secs(5)).await;
    assert_eq!(
        ack.seq.0,
        last.0 + 2,
        "b continues the sequence (after bob's join)"
    );
    // b subscribed bob's connection when it installed the room.
    loop {
        match bob_b.next_event_timeout(common::STEP).await {
            Ok(Some(confab_sdk::Event::Room(ev))) if ev.room == room && ev.seq == ack.seq => {
                assert_eq!(message_text(&ev), Some("after"));
                break;
            }
            Ok(Some(_)) => continue,
            other => panic!("bob on b got no event of the taken-over room: {other:?}"),
        }
    }
    let seqs: Vec<u64> = full_history(&alice_b, room)
        .await
        .iter()
        .map(|e| e.seq.0)
        .collect();
    assert_eq!(seqs, (1..=ack.seq.0).collect::<Vec<_>>());
    b.stop().await;
    db.drop_now().await;
}

#[tokio::test]
async fn a_node_stopped_gracefully_hands_its_rooms_over_with_every_acknowledged_message() {
    let Some(db) = TestDatabase::create("a_node_stopped_gracefully").await else {
        return;
    };
    let Some(nats) = NatsServer::start("a_node_stopped_gracefully").await else {
        return;
    };
    // Leases far longer than the test may take: b can only have taken
    // a's partitions because a released them.
    let lease = 30_000;
    let a = cluster_server(&db, &nats, "a", lease).await;
    let (alice, _) = a.door(Transport::Tcp).register("alice").await;
    let room = alice
        .create_room("lobby", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    let b = cluster_server(&db, &nats, "b", lease).await;
    assert!(
        served(&b).is_empty(),
        "a holds every partition: b loads nothing"
    );

    // Senders post until a's shutdown closes their connection: whatever
    // was acknowledged must be on b afterwards.
    let mut probe = None;
    let stop = async {
        // One more acknowledged while the senders run, then the stop.
        probe = Some(alice.send_message(room, "probe").await.unwrap().seq);
        a.stop().await;
    };
    let mut acked = post_until(&alice, room, 4, |_| true, stop).await;
    acked.push((probe.expect("probe acknowledged"), "probe".into()));
    eventually(
        "b takes the released partitions",
        Duration::from_secs(20),
        || served(&b) == [0, 1, 2, 3],
    )
    .await;
    let alice_b = login(&b, "alice").await;
    let history = full_history(&alice_b, room).await;
    assert_holds(&history, &acked);
    let last = history.last().map_or(0, |e| e.seq.0);
    let next = send_when_served(&alice_b, room, "on b", Duration::from_secs(5)).await;
    assert_eq!(next.seq.0, last + 1, "b continues the sequence");
    b.stop().await;
    db.drop_now().await;
}

// ---- phase 3: routing between nodes over NATS -----------------------------

/// Nodes on one database and one nats-server of their own, each serving
/// a share of the 4 partitions (every node owns rooms).
struct Cluster {
    db: TestDatabase,
    /// Kept running until the cluster stops.
    _nats: NatsServer,
    nodes: Vec<TestServer>,
}

impl Cluster {
    /// Starts nodes `names` for `test` (`None`: skipped, no Postgres or
    /// no nats-server) and waits until each serves a partition.
    async fn start(test: &str, names: &[&str]) -> Option<Cluster> {
        let db = TestDatabase::create(test).await?;
        let nats = NatsServer::start(test).await?;
        let mut nodes = Vec::new();
        for name in names {
            nodes.push(cluster_server(&db, &nats, name, 1_500).await);
        }
        eventually(
            "every node serves a share of the partitions",
            Duration::from_secs(20),
            || {
                let shares: Vec<usize> = nodes.iter().map(|n| served(n).len()).collect();
                shares.iter().sum::<usize>() == 4 && shares.iter().all(|&n| n >= 1)
            },
        )
        .await;
        Some(Cluster {
            db,
            _nats: nats,
            nodes,
        })
    }

    async fn stop(self) {
        for node in self.nodes {
            node.stop().await;
        }
        self.db.drop_now().await;
    }
}

/// A new room of `c`'s node (CREATE_ROOM takes a partition its node
/// serves).
async fn public_room(c: &confab_sdk::Client, name: &str) -> RoomId {
    c.create_room(name, "", Visibility::Public)
        .await
        .expect("created")
        .id
}

/// A raw connection to `srv` of a new user `name` that joined `rooms`:
/// it sees every frame the server sends, duplicates included.
async fn raw_member(srv: &TestServer, name: &str, rooms: &[RoomId]) -> common::RawClient {
    let mut raw = common::RawClient::connect(srv.addr).await;
    raw.hello(None).await;
    raw.register(2, name).await;
    for (i, room) in rooms.iter().enumerate() {
        let req_id = 10 + i as u32;
        raw.send(req_id, &confab_protocol::Request::JoinRoom { room: *room })
            .await;
        let reply = raw.reply_to(req_id).await;
        assert!(
            matches!(reply, confab_protocol::ServerMsg::Room(_)),
            "{name} joins {room}: {reply:?}"
        );
    }
    raw
}

#[tokio::test]
async fn three_nodes_chat_in_shared_rooms_every_member_gets_every_message_once_in_order() {
    let Some(cluster) = Cluster::start("three_nodes_chat", &["a", "b", "c"]).await else {
        return;
    };
    let nodes = &cluster.nodes;
    // One sender per node, each creating a room on its node: every room
    // has an owner, and every sender writes to two rooms owned elsewhere.
    let mut senders = Vec::new();
    let mut rooms = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let (c, _) = node
            .door(Transport::Tcp)
            .register(&format!("sender{i}"))
            .await;
        rooms.push(public_room(&c, &format!("room{i}")).await);
        senders.push(c);
    }
    for (i, c) in senders.iter().enumerate() {
        for (j, room) in rooms.iter().enumerate() {
            if i != j {
                c.join_room(*room)
                    .await
                    .expect("joined through another node");
            }
        }
    }
    // A raw observer on each node, member of every room.
    let mut observers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        observers.push(raw_member(node, &format!("observer{i}"), &rooms).await);
    }

    const EACH: usize = 15;
    let mut sending = Vec::new();
    for (i, c) in senders.iter().enumerate() {
        let (c, rooms) = (c.clone(), rooms.clone());
        sending.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for k in 0..EACH {
                for room in &rooms {
                    let text = format!("{i}:{k}");
                    let ack = c.send_message(*room, &text).await.expect("acknowledged");
                    assert_eq!(ack.room, *room);
                    acked.push((*room, ack.seq, text));
                }
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for s in sending {
        acked.extend(s.await.expect("sender"));
    }
    assert_eq!(acked.len(), 3 * 3 * EACH, "every message acknowledged");

    // Every observer, on every node, gets each room's messages exactly
    // once, in the room's sequence order, at the acknowledged seqs.
    let mut want: Vec<(RoomId, Seq, String)> = acked.clone();
    want.sort();
    for (i, obs) in observers.iter_mut().enumerate() {
        let mut got = Vec::new();
        while got.len() < want.len() {
            let (_, msg) = obs.recv().await;
            if let confab_protocol::ServerMsg::Event(ev) = msg {
                if let Some(text) = message_text(&ev) {
                    got.push((ev.room, ev.seq, text.to_owned()));
                }
            }
        }
        for room in &rooms {
            let seqs: Vec<u64> = got
                .iter()
                .filter(|(r, _, _)| r == room)
                .map(|(_, s, _)| s.0)
                .collect();
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "observer on node {i}: {room} in order, no duplicate: {seqs:?}"
            );
        }
        got.sort();
        assert_eq!(got, want, "observer on node {i}");
    }
    cluster.stop().await;
}

#[tokio::test]
async fn an_admin_on_one_node_kicks_a_member_on_another_who_then_receives_nothing_more() {
    let Some(cluster) = Cluster::start("an_admin_kicks_across_nodes", &["a", "b"]).await else {
        return;
    };
    let nodes = &cluster.nodes;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (alice, _) = a.door(Transport::Tcp).register("alice").await;
    let room = public_room(&alice, "lobby").await;
    assert!(served(a).contains(&((room.0 % 4) as u32)), "a owns it");
    let (bob, bob_id) = b.door(Transport::Tcp).register("bob").await;
    let (carol, _) = b.door(Transport::Tcp).register("carol").await;
    bob.join_room(room).await.expect("bob joins through b");
    carol.join_room(room).await.expect("carol joins through b");
    bob.send_message(room, "hi from b").await.expect("acked");

    alice.kick(room, bob_id).await.expect("kicked");
    // bob's connection on b gets the kick...
    loop {
        match bob.next_event_timeout(common::STEP).await {
            Ok(Some(confab_sdk::Event::Room(ev))) if ev.room == room => {
                if let confab_protocol::EventBody::MemberKicked { target, .. } = ev.body {
                    assert_eq!(target, bob_id);
                    break;
                }
            }
            Ok(Some(_)) => continue,
            other => panic!("bob on b never saw his kick: {other:?}"),
        }
    }
    // ...and nothing more: carol, on the same node, gets the next message
    // (the relay replays a room's ops in order), bob does not.
    let after = alice.send_message(room, "after the kick").await.unwrap();
    loop {
        match carol.next_event_timeout(common::STEP).await {
            Ok(Some(confab_sdk::Event::Room(ev))) if ev.room == room && ev.seq == after.seq => {
                break
            }
            Ok(Some(_)) => continue,
            other => panic!("carol on b never got the message after the kick: {other:?}"),
        }
    }
    while let Ok(Some(event)) = bob.next_event_timeout(Duration::from_millis(200)).await {
        if let confab_sdk::Event::Room(ev) = &event {
            assert_ne!(ev.room, room, "bob got {ev:?} after his kick");
        }
    }
    // What he sends is refused by the owner, and the refusal comes back.
    let err = bob
        .send_message(room, "still here?")
        .await
        .expect_err("kicked");
    assert!(is_code(&err, ErrorCode::NotAMember), "{err:?}");
    cluster.stop().await;
}

#[tokio::test]
async fn a_command_for_a_room_nobody_serves_or_without_nats_gets_room_moving_not_a_hang() {
    let test = "nobody_serves_room_moving";
    let Some(db) = TestDatabase::create(test).await else {
        return;
    };
    let Some(mut nats) = NatsServer::start(test).await else {
        return;
    };
    // Leases of a minute: a's partitions stay unserved after it died.
    let a = cluster_server(&db, &nats, "a", 60_000).await;
    let (alice, _) = a.door(Transport::Tcp).register("alice").await;
    let room = public_room(&alice, "lobby").await;
    // A rebalance (a's next round) would hand b partitions 2 and 3 only:
    // the room stays a's.
    assert!(room.0 % 4 < 2, "{room} in one of the partitions a keeps");
    let b = cluster_server(&db, &nats, "b", 60_000).await;
    let alice_b = login(&b, "alice").await;
    send_when_served(&alice_b, room, "through b", Duration::from_secs(5)).await;

    // a dies holding its leases: nobody serves the room, and nobody
    // answers on its partition's subject.
    let TestServer { handle, .. } = a;
    handle.expect("running").crash().await;
    let asked = Instant::now();
    let err = alice_b
        .send_message(room, "nobody")
        .await
        .expect_err("nobody serves it");
    assert!(is_code(&err, ErrorCode::RoomMoving), "{err:?}");
    assert!(err.retry_after().is_some(), "with a retry hint");
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "no responders is answered at once: {:?}",
        asked.elapsed()
    );
    assert!(is_code(
        &alice_b.members(room).await.expect_err("nobody"),
        ErrorCode::RoomMoving
    ));

    // NATS goes away: a forwarded command is answered ROOM_MOVING after
    // the forwarding timeout, never left hanging.
    nats.kill().await;
    let asked = Instant::now();
    let err = alice_b
        .send_message(room, "no nats")
        .await
        .expect_err("no route");
    assert!(is_code(&err, ErrorCode::RoomMoving), "{err:?}");
    assert!(
        asked.elapsed() < confab_server::cluster::routing::FORWARD_TIMEOUT + Duration::from_secs(5),
        "bounded: {:?}",
        asked.elapsed()
    );
    b.stop().await;
    db.drop_now().await;
}

#[tokio::test]
async fn governance_edits_typing_and_lists_work_from_a_node_that_does_not_own_the_room() {
    let Some(cluster) = Cluster::start("governance_edits_typing_lists", &["a", "b"]).await else {
        return;
    };
    let nodes = &cluster.nodes;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (alice, alice_id) = a.door(Transport::Tcp).register("alice").await;
    let room = public_room(&alice, "lobby").await;
    let (bob, bob_id) = b.door(Transport::Tcp).register("bob").await;
    let (dave, dave_id) = b.door(Transport::Tcp).register("dave").await;
    bob.join_room(room).await.expect("joined");
    dave.join_room(room).await.expect("joined");

    // A role change made on a, used from b: bob, now an admin, bans dave.
    alice
        .set_role(room, bob_id, confab_protocol::Role::Admin)
        .await
        .expect("promoted");
    bob.ban(room, confab_protocol::UserRef::Id(dave_id))
        .await
        .expect("an admin on b bans");
    let bans = bob.bans(room).await.expect("LIST_BANS from b");
    assert_eq!(bans.iter().map(|e| e.user).collect::<Vec<_>>(), [dave_id]);
    let err = dave.join_room(room).await.expect_err("banned");
    assert!(is_code(&err, ErrorCode::Banned), "{err:?}");
    let members = bob.members(room).await.expect("LIST_MEMBERS from b");
    let mut ids: Vec<UserId> = members.iter().map(|m| m.user).collect();
    ids.sort();
    assert_eq!(ids, [alice_id, bob_id]);

    // Edit and delete through b, of a message sent through b.
    let sent = bob.send_message(room, "typo").await.unwrap();
    let edited = bob
        .edit_message(room, sent.seq, "fixed")
        .await
        .expect("edited");
    assert!(edited.seq > sent.seq);
    bob.delete_message(room, sent.seq).await.expect("deleted");
    let history = full_history(&bob, room).await;
    assert!(
        history
            .iter()
            .any(|e| e.seq == sent.seq && message_text(e) != Some("typo")),
        "the stored message was changed: {history:?}"
    );

    // Typing on b reaches alice on a.
    bob.typing_start(room).await.expect("typing");
    loop {
        match alice.next_event_timeout(common::STEP).await {
            Ok(Some(confab_sdk::Event::Typing {
                room: r,
                user,
                typing: true,
                ..
            })) if r == room => {
                assert_eq!(user, bob_id);
                break;
            }
            Ok(Some(_)) => continue,
            other => panic!("alice on a never saw bob typing: {other:?}"),
        }
    }
    cluster.stop().await;
}

#[tokio::test]
async fn pipelined_messages_through_a_node_that_does_not_own_the_room_keep_their_order() {
    let Some(cluster) = Cluster::start("pipelined_forwarded_keep_order", &["a", "b"]).await else {
        return;
    };
    let nodes = &cluster.nodes;
    let (alice, _) = nodes[0].door(Transport::Tcp).register("alice").await;
    let room = public_room(&alice, "lobby").await;
    // A connection on b sends 50 messages to a's room without waiting for
    // any answer (the rate limit is off in these nodes).
    let mut raw = raw_member(&nodes[1], "bob", &[room]).await;
    let ids: Vec<u32> = (100..150).collect();
    for id in &ids {
        let send = confab_protocol::Request::SendMessage {
            room,
            body: format!("m{id}"),
            spans: Vec::new(),
            sticker: None,
            attachments: Vec::new(),
        };
        raw.send(*id, &send).await;
    }
    let replies = raw.replies(&ids).await;
    let seqs: Vec<u64> = ids
        .iter()
        .map(|id| match &replies[id] {
            confab_protocol::ServerMsg::MessageAck { seq, .. } => seq.0,
            other => panic!("request {id}: {other:?}"),
        })
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "sequenced in the order sent: {seqs:?}"
    );
    cluster.stop().await;
}

#[tokio::test]
async fn a_member_connecting_to_a_node_that_does_not_own_the_room_receives_it_from_its_owner() {
    let Some(cluster) = Cluster::start("member_connects_elsewhere", &["a", "b"]).await else {
        return;
    };
    let nodes = &cluster.nodes;
    let (alice, _) = nodes[0].door(Transport::Tcp).register("alice").await;
    let room = public_room(&alice, "lobby").await;
    let (bob_a, _) = nodes[0].door(Transport::Tcp).register("bob").await;
    bob_a.join_room(room).await.expect("joined on the owner");
    // bob connects to b too: at login b reads his rooms and receives this
    // one from a before the login is answered.
    let bob_b = login(&nodes[1], "bob").await;
    let sent = alice.send_message(room, "to both of bob's").await.unwrap();
    for (node, bob) in [("a", &bob_a), ("b", &bob_b)] {
        loop {
            match bob.next_event_timeout(common::STEP).await {
                Ok(Some(confab_sdk::Event::Room(ev))) if ev.room == room && ev.seq == sent.seq => {
                    break
                }
                Ok(Some(_)) => continue,
                other => panic!("bob on {node} never got the message: {other:?}"),
            }
        }
    }
    cluster.stop().await;
}

// ---- per-user pushes across nodes ------------------------------------------

/// The first event of `c` that `pick` accepts, skipping the others, within
/// [`common::STEP`] per event.
async fn until_event<T>(
    c: &confab_sdk::Client,
    what: &str,
    mut pick: impl FnMut(&confab_sdk::Event) -> Option<T>,
) -> T {
    loop {
        match c.next_event_timeout(common::STEP).await {
            Ok(Some(event)) => {
                if let Some(found) = pick(&event) {
                    return found;
                }
            }
            other => panic!("never got {what}: {other:?}"),
        }
    }
}

/// Waits until `c` receives the room event of `room` at `seq`.
async fn until_seq(c: &confab_sdk::Client, who: &str, room: RoomId, seq: Seq) {
    until_event(c, &format!("{who}: {room} at {seq:?}"), |e| match e {
        confab_sdk::Event::Room(ev) if ev.room == room && ev.seq == seq => Some(()),
        _ => None,
    })
    .await
}

/// The room events of `room` that `c` receives up to the one at `last`.
async fn room_events_until(
    c: &confab_sdk::Client,
    who: &str,
    room: RoomId,
    last: Seq,
) -> Vec<confab_protocol::RoomEvent> {
    let mut got = Vec::new();
    while got
        .last()
        .is_none_or(|ev: &confab_protocol::RoomEvent| ev.seq != last)
    {
        let ev = until_event(c, &format!("{who}: {room} up to {last:?}"), |e| match e {
            confab_sdk::Event::Room(ev) if ev.room == room => Some(ev.clone()),
            _ => None,
        })
        .await;
        got.push(ev);
    }
    got
}

/// Every frame `raw` receives until `last` accepts one (that one
/// included), then whatever else arrives while it stays quiet for 300 ms:
/// for counting duplicates.
async fn frames_until(
    raw: &mut common::RawClient,
    mut last: impl FnMut(&confab_protocol::ServerMsg) -> bool,
) -> Vec<confab_protocol::ServerMsg> {
    let mut got = Vec::new();
    loop {
        let (_, msg) = tokio::time::timeout(common::STEP, raw.recv())
            .await
            .expect("the awaited frame");
        let done = last(&msg);
        got.push(msg);
        if done {
            break;
        }
    }
    while let Ok((_, msg)) = tokio::time::timeout(Duration::from_millis(300), raw.recv()).await {
        got.push(msg);
    }
    got
}

#[tokio::test]
async fn a_user_s_connections_on_every_node_get_announcements_notifications_joins_and_read_markers()
{
    use confab_protocol::{NotificationKind, ServerMsg, UserRef};
    let Some(cluster) = Cluster::start("per_user_pushes", &["a", "b", "c"]).await else {
        return;
    };
    let nodes = &cluster.nodes;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let (alice, _) = a.door(Transport::Tcp).register("alice").await;
    // bob: a raw connection on a (the origin: it sees every frame, so a
    // duplicate would show) and the SDK on b.
    let mut bob_a = common::RawClient::connect(a.addr).await;
    bob_a.hello(None).await;
    bob_a.register(2, "bob").await;
    let bob_b = login(b, "bob").await;

    // A group chat created on a with bob as initial member: bob's
    // connection on b is announced it, then receives its messages.
    let team = alice
        .create(
            confab_sdk::NewRoom::new("team")
                .visibility(Visibility::Private)
                .member(UserRef::Name("bob".into())),
        )
        .await
        .expect("created")
        .id;
    assert!(served(a).contains(&((team.0 % 4) as u32)), "a owns it");
    let announced = common::next_announced(&bob_b).await;
    assert_eq!(announced.id, team, "announced on b");
    // A public room created on a is announced to every connection, on
    // every node.
    let lobby = public_room(&alice, "lobby").await;
    assert_eq!(common::next_announced(&bob_b).await.id, lobby);
    let first = alice.send_message(team, "welcome").await.unwrap();
    until_seq(&bob_b, "bob on b", team, first.seq).await;
    // On the origin node bob's connection got the announcement and the
    // message once each.
    let frames = frames_until(
        &mut bob_a,
        |m| matches!(m, ServerMsg::Event(ev) if ev.room == team && ev.seq == first.seq),
    )
    .await;
    let announced = |room: RoomId| {
        frames
            .iter()
            .filter(|m| matches!(m, ServerMsg::RoomAnnounced(info) if info.id == room))
            .count()
    };
    let messages = frames
        .iter()
        .filter(|m| matches!(m, ServerMsg::Event(ev) if ev.room == team && ev.seq == first.seq))
        .count();
    assert_eq!(
        (announced(team), announced(lobby), messages),
        (1, 1, 1),
        "once each on a: {frames:?}"
    );

    // carol, connected to b and to c, is invited on a: both connections
    // get the notification; she accepts through c, and her connection on
    // b (which had no member of the room) receives the room from then on.
    let secret = alice
        .create_room("secret", "", Visibility::Private)
        .await
        .unwrap()
        .id;
    let (carol_b, carol) = b.door(Transport::Tcp).register("carol").await;
    let carol_c = login(c, "carol").await;
    alice
        .invite(secret, UserRef::Name("carol".into()))
        .await
        .expect("invited");
    for (node, carol) in [("b", &carol_b), ("c", &carol_c)] {
        until_event(carol, &format!("the invitation on {node}"), |e| match e {
            confab_sdk::Event::Notification(n)
                if n.room == secret && n.kind == NotificationKind::Invited =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
    }
    carol_c.accept_invite(secret).await.expect("accepted on c");
    let sent = alice.send_message(secret, "hello carol").await.unwrap();
    // Both of her connections get the room from her own MEMBER_JOINED on,
    // every event once and in order — b's included, though b started
    // watching the room only when told of the join.
    for (node, c) in [("b", &carol_b), ("c", &carol_c)] {
        let events = room_events_until(c, &format!("carol on {node}"), secret, sent.seq).await;
        assert!(
            matches!(events[0].body, confab_protocol::EventBody::MemberJoined)
                && events[0].actor == carol,
            "carol on {node} starts at her join: {events:?}"
        );
        let seqs: Vec<u64> = events.iter().map(|e| e.seq.0).collect();
        let want: Vec<u64> = (events[0].seq.0..=sent.seq.0).collect();
        assert_eq!(seqs, want, "carol on {node}: every event once, in order");
    }

    // A read marker set on a reaches bob's connection on b.
    bob_a
        .send(
            30,
            &confab_protocol::Request::SetReadMarker {
                room: team,
                seq: first.seq,
            },
        )
        .await;
    assert!(matches!(bob_a.reply_to(30).await, ServerMsg::ReadMarker(_)));
    let moved = until_event(&bob_b, "READ_MARKER_MOVED on b", |e| match e {
        confab_sdk::Event::ReadMarkerMoved(state) if state.room == team => Some(state.read_seq),
        _ => None,
    })
    .await;
    assert_eq!(moved, first.seq);

    // bob leaves through b: his connection on a (the owner) stops
    // receiving the room, as does the one on b.
    bob_b.leave_room(team).await.expect("left through b");
    let after = alice.send_message(team, "after bob left").await.unwrap();
    let frames = frames_until(&mut bob_a, |m| {
        matches!(m, ServerMsg::Event(ev) if ev.room == team && matches!(ev.body, confab_protocol::EventBody::MemberLeft))
    })
    .await;
    assert!(
        !frames
            .iter()
            .any(|m| matches!(m, ServerMsg::Event(ev) if ev.room == team && ev.seq == after.seq)),
        "bob on a got a message after leaving: {frames:?}"
    );
    while let Ok(Some(event)) = bob_b.next_event_timeout(Duration::from_millis(300)).await {
        if let confab_sdk::Event::Room(ev) = &event {
            assert!(
                !(ev.room == team && ev.seq == after.seq),
                "bob on b got a message after leaving"
            );
        }
    }
    cluster.stop().await;
}

#[tokio::test]
async fn presence_and_profile_changes_reach_members_connected_to_another_node() {
    use confab_protocol::Presence;
    let Some(cluster) = Cluster::start("presence_across_nodes", &["a", "b"]).await else {
        return;
    };
    let nodes = &cluster.nodes;
    let (a, b) = (&nodes[0], &nodes[1]);
    // One room owned by each node; bob (on b) and erin (on a) in both.
    let (owner_a, _) = a.door(Transport::Tcp).register("owner_a").await;
    let (owner_b, _) = b.door(Transport::Tcp).register("owner_b").await;
    let room_a = public_room(&owner_a, "on_a").await;
    let room_b = public_room(&owner_b, "on_b").await;
    assert!(served(a).contains(&((room_a.0 % 4) as u32)));
    assert!(served(b).contains(&((room_b.0 % 4) as u32)));
    let (bob, _) = b.door(Transport::Tcp).register("bob").await;
    let (erin, erin_id) = a.door(Transport::Tcp).register("erin").await;
    for room in [room_a, room_b] {
        bob.join_room(room).await.unwrap();
        erin.join_room(room).await.unwrap();
    }
    // erin goes away on a: bob on b is told in the room a serves (its
    // owner's PRESENCE, relayed) and in the one b serves (b's shards
    // learn of it from a).
    erin.set_away(true).await.unwrap();
    let mut told = std::collections::HashSet::new();
    while told.len() < 2 {
        let room = until_event(&bob, "erin away", |e| match e {
            confab_sdk::Event::Presence {
                room,
                user,
                presence: Presence::Away,
                ..
            } if *user == erin_id => Some(*room),
            _ => None,
        })
        .await;
        told.insert(room);
    }
    assert_eq!(told, std::collections::HashSet::from([room_a, room_b]));
    // b, which serves room_b, lists her as online and away.
    let members = bob.members(room_b).await.expect("listed");
    let erin_listed = members.iter().find(|m| m.user == erin_id).expect("erin");
    assert!(erin_listed.online, "{erin_listed:?}");
    assert_eq!(erin_listed.presence, Some(Presence::Away));

    // Her profile changes on a: bob on b hears it in both rooms too.
    erin.update_profile(confab_protocol::ProfileUpdate {
        display_name: Some("Erin E.".into()),
        bio: String::new(),
        email: None,
    })
    .await
    .expect("updated");
    let mut told = std::collections::HashSet::new();
    while told.len() < 2 {
        let room = until_event(&bob, "erin's profile", |e| match e {
            confab_sdk::Event::ProfileChanged { room, profile }
                if profile.user == erin_id
                    && profile.display_name.as_deref() == Some("Erin E.") =>
            {
                Some(*room)
            }
            _ => None,
        })
        .await;
        told.insert(room);
    }
    assert_eq!(told, std::collections::HashSet::from([room_a, room_b]));
    cluster.stop().await;
}

#[tokio::test]
async fn open_direct_from_both_sides_on_different_nodes_gives_one_room() {
    use confab_protocol::UserRef;
    let Some(cluster) = Cluster::start("open_direct_across_nodes", &["a", "b"]).await else {
        return;
    };
    let nodes = &cluster.nodes;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (ann, _) = a.door(Transport::Tcp).register("ann").await;
    let (ben, _) = b.door(Transport::Tcp).register("ben").await;
    // Both at once, each through their own node: one claim wins.
    let (from_a, from_b) = tokio::join!(
        ann.open_direct(UserRef::Name("ben".into())),
        ben.open_direct(UserRef::Name("ann".into())),
    );
    let (from_a, from_b) = (from_a.expect("ann opens"), from_b.expect("ben opens"));
    assert_eq!(from_a.id, from_b.id, "one room for the pair");
    let room = from_a.id;
    // Again, from fresh connections on the other nodes: the same room.
    let ann_b = login(b, "ann").await;
    let ben_a = login(a, "ben").await;
    for (c, other) in [(&ann_b, "ben"), (&ben_a, "ann")] {
        let again = c
            .open_direct(UserRef::Name(other.into()))
            .await
            .expect("opened again");
        assert_eq!(again.id, room);
    }
    // Messages flow both ways, whichever node owns it.
    let sent = ann.send_message(room, "hi ben").await.unwrap();
    until_seq(&ben, "ben on b", room, sent.seq).await;
    let sent = ben.send_message(room, "hi ann").await.unwrap();
    until_seq(&ann, "ann on a", room, sent.seq).await;
    let mut admin = sqlx::PgConnection::connect(cluster.db.url()).await.unwrap();
    let direct_rooms: i64 =
        sqlx::query_scalar("SELECT count(*) FROM rooms WHERE direct_low IS NOT NULL")
            .fetch_one(&mut admin)
            .await
            .unwrap();
    assert_eq!(direct_rooms, 1, "one stored direct room");
    drop(admin);
    cluster.stop().await;
}

/// `c`'s member list of `room` says `user` is online.
async fn listed_online(c: &confab_sdk::Client, room: RoomId, user: UserId) -> bool {
    let members = c.members(room).await.expect("listed");
    members.iter().any(|m| m.user == user && m.online)
}

#[tokio::test]
async fn a_node_started_later_learns_who_is_connected_elsewhere_and_a_stopped_node_s_users_go_offline(
) {
    let test = "presence_of_late_and_gone_nodes";
    let Some(db) = TestDatabase::create(test).await else {
        return;
    };
    let Some(nats) = NatsServer::start(test).await else {
        return;
    };
    let a = cluster_server(&db, &nats, "a", 1_500).await;
    let (erin, erin_id) = a.door(Transport::Tcp).register("erin").await;
    // b starts after erin connected to a: it never heard her connect.
    let b = cluster_server(&db, &nats, "b", 1_500).await;
    eventually(
        "a and b split the partitions",
        Duration::from_secs(20),
        || !served(&a).is_empty() && !served(&b).is_empty(),
    )
    .await;
    let (bob, _) = b.door(Transport::Tcp).register("bob").await;
    let room = public_room(&bob, "on_b").await;
    assert!(served(&b).contains(&((room.0 % 4) as u32)), "b owns it");
    erin.join_room(room).await.expect("joined through a");
    // a's list of its connected users (every few seconds) tells b.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !listed_online(&bob, room, erin_id).await {
        assert!(Instant::now() < deadline, "b never learnt erin is online");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // a stops: b counts its connections closed.
    a.stop().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while listed_online(&bob, room, erin_id).await {
        assert!(
            Instant::now() < deadline,
            "erin still online on b after a stopped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(erin);
    b.stop().await;
    db.drop_now().await;
}

#[tokio::test]
async fn logout_and_password_change_on_one_node_close_the_sessions_connections_on_another() {
    use confab_protocol::{ErrorCode, Request, ServerMsg};
    let Some(cluster) = Cluster::start("revoke_across_nodes", &["a", "b"]).await else {
        return;
    };
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let (alice, _) = a.door(Transport::Tcp).register("alice").await;
    let first = alice.token().expect("a session token");
    // A connection `with` `token` on `node`, welcomed.
    async fn with(node: &TestServer, token: &str) -> common::RawClient {
        let mut raw = common::RawClient::connect(node.addr).await;
        let welcome = raw.hello(Some(token.to_owned())).await;
        assert!(matches!(welcome, ServerMsg::Welcome(_)), "{welcome:?}");
        raw
    }
    // alice's first session on a and on b; a second session, logged in
    // on b, with one more connection on a.
    let mut first_a = with(a, &first).await;
    let mut first_b = with(b, &first).await;
    let mut second_b = common::RawClient::connect(b.addr).await;
    second_b.hello(None).await;
    let login = Request::Login {
        username: "alice".into(),
        password: common::TEST_PASSWORD.into(),
    };
    second_b.send(2, &login).await;
    let second = match second_b.reply_to(2).await {
        ServerMsg::Session { token, .. } => token,
        reply => panic!("login: {reply:?}"),
    };
    let mut second_a = with(a, second.as_str()).await;

    // CHANGE_PASSWORD from the second session on b ends the first one on
    // both nodes; the second stays.
    let change = Request::ChangePassword(confab_protocol::PasswordChange {
        current: common::TEST_PASSWORD.into(),
        new: "another-password-456".into(),
    });
    second_b.send(3, &change).await;
    assert_eq!(second_b.reply_to(3).await, ServerMsg::Ok);
    first_b.expect_close(ErrorCode::PasswordChanged).await;
    first_a.expect_close(ErrorCode::PasswordChanged).await;
    second_a.send(4, &Request::Ping { nonce: 7 }).await;
    assert_eq!(second_a.reply_to(4).await, ServerMsg::Pong { nonce: 7 });

    // LOGOUT of the second session on a closes its connection on b.
    second_a.send(5, &Request::Logout).await;
    assert_eq!(second_a.reply_to(5).await, ServerMsg::Ok);
    second_a.expect_close(ErrorCode::LoggedOut).await;
    second_b.expect_close(ErrorCode::LoggedOut).await;
    drop(alice);
    cluster.stop().await;
}
