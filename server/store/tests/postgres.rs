//! The shared store suite (`suite/`) against [`PgStore`], in every batch
//! mode (`unnest::*`, `copy::*` and `auto::*`), each test on a database of its own
//! that it creates and drops, so tests run in parallel.
//!
//! Which Postgres, and what a test does without one, is
//! `confab_testkit::postgres`'s: `DATABASE_URL` if set, else a throwaway
//! cluster for this test binary; with neither, each test prints
//! `SKIPPED (no Postgres): <test>` — or fails, under
//! `CONFAB_REQUIRE_POSTGRES=1` (CI).

mod suite;

use std::sync::Arc;

use confab_store::postgres::{PgBatchMode, PgStore, PgStoreOptions};
use confab_store::{AccountStore, BatchSink, RoomReads, Store};
use confab_testkit::postgres::TestDatabase;

async fn open(db: &TestDatabase, mode: PgBatchMode) -> PgStore {
    PgStore::open(
        db.url(),
        PgStoreOptions {
            batch_mode: mode,
            max_connections: 4,
            ..PgStoreOptions::default()
        },
    )
    .await
    .expect("open postgres store")
}

/// Runs `scenario` on a fresh store; the database is dropped even if the
/// scenario panics (the panic is then re-raised).
async fn with_store<F, Fut>(test: &str, mode: PgBatchMode, scenario: F)
where
    F: FnOnce(Arc<PgStore>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Some(db) = TestDatabase::create(test).await else {
        return;
    };
    let store = Arc::new(open(&db, mode).await);
    let outcome = tokio::spawn(scenario(store.clone())).await;
    store.close().await;
    db.drop_now().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

macro_rules! postgres_suite {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let test = concat!(module_path!(), "::", stringify!($name));
            super::with_store(test, MODE, |store| async move {
                crate::suite::$name(&*store).await;
            })
            .await;
        }
    )*};
}

mod unnest {
    const MODE: confab_store::postgres::PgBatchMode = confab_store::postgres::PgBatchMode::Unnest;
    crate::suite::for_each_scenario!(postgres_suite);
}

mod copy {
    const MODE: confab_store::postgres::PgBatchMode = confab_store::postgres::PgBatchMode::Copy;
    crate::suite::for_each_scenario!(postgres_suite);
}

mod auto {
    const MODE: confab_store::postgres::PgBatchMode = confab_store::postgres::PgBatchMode::Auto;
    crate::suite::for_each_scenario!(postgres_suite);
}

#[tokio::test]
async fn data_survives_reopening() {
    let Some(db) = TestDatabase::create("data_survives_reopening").await else {
        return;
    };
    let url = db.url().to_owned();
    let outcome = tokio::spawn(suite::data_survives_reopening(move || {
        let url = url.clone();
        async move {
            let store = PgStore::open(&url, PgStoreOptions::default())
                .await
                .expect("open postgres store");
            Arc::new(store) as Arc<dyn Store>
        }
    }))
    .await;
    db.drop_now().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

// ---- Postgres-specific --------------------------------------------------

/// The check that replaces a per-row foreign key on events: an event for
/// a room that does not exist fails its batch, in both modes.
#[tokio::test]
async fn an_event_for_a_missing_room_fails_the_batch() {
    for mode in [PgBatchMode::Unnest, PgBatchMode::Copy] {
        with_store(
            "an_event_for_a_missing_room_fails_the_batch",
            mode,
            |store| async move {
                let alice = store.create_user("alice", "h", 1).await.expect("user");
                let ok = confab_store::WriteOp::CreateRoom {
                    room: confab_protocol::RoomId(1),
                    name: "r".into(),
                    topic: String::new(),
                    visibility: confab_protocol::Visibility::Public,
                    owner: alice,
                    created_at: 1,
                };
                let event = |room| {
                    confab_store::WriteOp::AppendEvent(confab_store::StoredEvent {
                        room: confab_protocol::RoomId(room),
                        seq: confab_protocol::Seq(1),
                        at: 1,
                        actor: alice,
                        actor_name: "alice".into(),
                        kind: 1,
                        body: vec![1],
                    })
                };
                let result = store.apply_batch(&[ok, event(1), event(42)]).await;
                let err = result.expect_err("room 42 does not exist");
                assert!(err.to_string().contains("room 42"), "{err}");
                // And nothing of the batch is stored
                assert!(store.load_rooms().await.expect("rooms").is_empty());
            },
        )
        .await;
    }
}

/// COPY'd events go into `events` before the batch's call, which raises
/// `last_seq` after the batch's state ops: a room created in the same
/// batch gets its events' highest seq, and a replay of the batch (COPY
/// breaks the key; applied again through the staging table) together with
/// new events stores each event once and never lowers `last_seq`.
#[tokio::test]
async fn copied_events_of_a_room_created_in_their_batch_raise_its_last_seq() {
    use confab_protocol::{RoomId, Seq, Visibility};
    use confab_store::{StoredEvent, WriteOp};
    let big = PgBatchMode::AUTO_COPY_EVENTS as u64;
    for mode in [PgBatchMode::Copy, PgBatchMode::Auto] {
        with_store(
            "copied_events_raise_last_seq",
            mode,
            move |store| async move {
                let alice = store.create_user("alice", "h", 1).await.expect("user");
                let event = |room, seq| {
                    WriteOp::AppendEvent(StoredEvent {
                        room: RoomId(room),
                        seq: Seq(seq),
                        at: seq,
                        actor: alice,
                        actor_name: "alice".into(),
                        kind: 1,
                        body: seq.to_be_bytes().to_vec(),
                    })
                };
                let create = |room| WriteOp::CreateRoom {
                    room: RoomId(room),
                    name: format!("r{room}"),
                    topic: String::new(),
                    visibility: Visibility::Public,
                    owner: alice,
                    created_at: 1,
                };
                // Room 1's events out of order within the batch: last_seq is
                // the highest, not the last.
                let mut first = vec![create(1), create(2)];
                first.extend((1..=big).rev().map(|s| event(1, s)));
                first.extend((1..=10).map(|s| event(2, s)));
                store.apply_batch(&first).await.expect("first batch");

                let mut replay = first[2..].to_vec();
                replay.extend((big + 1..=big + 5).map(|s| event(1, s)));
                replay.push(event(2, 3));
                store.apply_batch(&replay).await.expect("replay");

                let rooms = store.load_rooms().await.expect("rooms");
                let last: Vec<_> = rooms.iter().map(|r| (r.id, r.last_seq)).collect();
                assert_eq!(last, [(RoomId(1), Seq(big + 5)), (RoomId(2), Seq(10))]);
                let one = store
                    .history(RoomId(1), Seq(0), 10_000)
                    .await
                    .expect("history");
                assert_eq!(one.len() as u64, big + 5);
                let two = store
                    .history(RoomId(2), Seq(0), 100)
                    .await
                    .expect("history");
                assert_eq!(two.len(), 10);
            },
        )
        .await;
    }
}

/// Start-up against a database that is not there fails with a message
/// naming it — without its password.
#[tokio::test]
async fn unreachable_database_is_a_clear_error_without_the_password() {
    // Port 1 on loopback: nothing listens there.
    let url = "postgres://confab:hunter2@127.0.0.1:1/confab";
    let err = PgStore::open(url, PgStoreOptions::default())
        .await
        .expect_err("nothing listens on port 1");
    let msg = err.to_string();
    assert!(
        msg.contains("cannot connect to Postgres at postgres://confab:***@127.0.0.1:1/confab"),
        "{msg}"
    );
    assert!(!msg.contains("hunter2"), "{msg}");
    // The driver's error is kept as the source, not only as text
    let source = std::error::Error::source(&err).expect("a source");
    assert!(source.downcast_ref::<sqlx::Error>().is_some(), "{source:?}");
}

/// The readiness probe's round trip: answers while open, fails once closed.
#[tokio::test]
async fn ping_answers_until_the_store_is_closed() {
    let Some(db) = TestDatabase::create("ping_answers_until_the_store_is_closed").await else {
        return;
    };
    let store = open(&db, PgBatchMode::Unnest).await;
    store.ping().await.expect("an open store answers");
    store.close().await;
    assert!(store.ping().await.is_err(), "a closed store does not");
    db.drop_now().await;
}
