//! The shared store suite (`suite/`) against [`PgStore`], in both batch
//! modes (`unnest::*` and `copy::*`), each test on a database of its own
//! that it creates and drops, so tests run in parallel.
//!
//! Which Postgres: `DATABASE_URL` if set (a server on which that user may
//! create databases; an unreachable one fails the tests). Otherwise, if
//! PostgreSQL's `initdb` and `pg_ctl` are on the PATH or under
//! `/usr/lib/postgresql/*/bin`, a throwaway cluster in a temp dir on a
//! spare port, started once for this test binary (as the `postgres` user
//! when run as root: initdb refuses root) and stopped by a watchdog when
//! the binary exits. Otherwise every test prints that it did not run, and
//! passes.

mod suite;

#[path = "../../tests/common/pg_cluster.rs"]
mod pg_cluster;

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use confab_store::postgres::{PgBatchMode, PgStore, PgStoreOptions};
use confab_store::Store;
use pg_cluster::{say, PgCluster};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};

// ---- which server -----------------------------------------------------------

/// The admin URL of the server the tests use, or why there is none.
fn server() -> &'static Result<String, String> {
    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Ok(url),
        _ => start_throwaway_cluster(),
    })
}

/// A throwaway cluster for this test binary (the same harness the server's
/// fault tests use), kept for the binary's lifetime; its watchdog stops and
/// deletes it when the binary exits.
fn start_throwaway_cluster() -> Result<String, String> {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    // Many tests run at once, each with its own database and pool.
    let cluster = PgCluster::try_start(200).map_err(|why| {
        format!("DATABASE_URL is not set and no throwaway cluster could start: {why}")
    })?;
    say(&format!(
        "postgres suite: throwaway cluster at {}",
        cluster.url()
    ));
    Ok(CLUSTER.get_or_init(|| cluster).url())
}

// ---- a database per test ----------------------------------------------------

/// A fresh database, dropped by [`TestDb::drop_now`].
struct TestDb {
    admin: PgConnectOptions,
    name: String,
    url: String,
}

impl TestDb {
    /// `None` (after saying so) when no Postgres is available.
    async fn create(test: &str) -> Option<TestDb> {
        let admin_url = match server() {
            Ok(url) => url,
            Err(why) => {
                say(&format!("postgres suite: NOT RUN {test} ({why})"));
                return None;
            }
        };
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "confab_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = PgConnectOptions::from_str(admin_url).expect("DATABASE_URL parses");
        let mut conn = admin
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connecting to {admin_url}: {e}"));
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("CREATE DATABASE");
        let _ = conn.close().await;
        let url = {
            let base = admin_url.split('?').next().unwrap_or(admin_url);
            let (server, _db) = base.rsplit_once('/').expect("URL has a database path");
            let query = admin_url.find('?').map_or("", |i| &admin_url[i..]);
            format!("{server}/{name}{query}")
        };
        Some(TestDb { admin, name, url })
    }

    async fn open(&self, mode: PgBatchMode) -> PgStore {
        PgStore::open(
            &self.url,
            PgStoreOptions {
                batch_mode: mode,
                max_connections: 4,
                ..PgStoreOptions::default()
            },
        )
        .await
        .expect("open postgres store")
    }

    async fn drop_now(self) {
        let mut conn = self.admin.connect().await.expect("admin connection");
        conn.execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .await
        .expect("DROP DATABASE");
        let _ = conn.close().await;
    }
}

/// Runs `scenario` on a fresh store; the database is dropped even if the
/// scenario panics (the panic is then re-raised).
async fn with_store<F, Fut>(test: &str, mode: PgBatchMode, scenario: F)
where
    F: FnOnce(Arc<PgStore>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Some(db) = TestDb::create(test).await else {
        return;
    };
    let store = Arc::new(db.open(mode).await);
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

#[tokio::test]
async fn data_survives_reopening() {
    let Some(db) = TestDb::create("data_survives_reopening").await else {
        return;
    };
    let url = db.url.clone();
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
}

/// The readiness probe's round trip: answers while open, fails once closed.
#[tokio::test]
async fn ping_answers_until_the_store_is_closed() {
    let Some(db) = TestDb::create("ping_answers_until_the_store_is_closed").await else {
        return;
    };
    let store = db.open(PgBatchMode::Unnest).await;
    store.ping().await.expect("an open store answers");
    store.close().await;
    assert!(store.ping().await.is_err(), "a closed store does not");
    db.drop_now().await;
}
