//! The shared store suite (`suite/`) against [`SqliteStore`], each test on a
//! fresh database file in its own temporary directory.

mod suite;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use confab_store::sqlite::SqliteStore;
use confab_store::{AccountStore, BatchSink, RoomReads, Store};

/// A fresh store in a new temp dir, in a subdirectory that does not exist
/// yet (so every test also checks that `open` creates it). The dir must
/// outlive the store.
async fn fresh() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&db_path(dir.path())).await;
    (dir, store)
}

fn db_path(dir: &Path) -> PathBuf {
    dir.join("data").join("confab.db")
}

async fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path).await.expect("open sqlite store")
}

macro_rules! sqlite_suite {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let (_dir, store) = fresh().await;
            suite::$name(&store).await;
        }
    )*};
}

suite::for_each_scenario!(sqlite_suite);

#[tokio::test]
async fn data_survives_reopening() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = db_path(dir.path());
    suite::data_survives_reopening(|| {
        let path = path.clone();
        async move {
            let store = open(&path).await;
            Arc::new(store) as Arc<dyn Store>
        }
    })
    .await;
}

/// SQLite-specific: the file is in WAL mode with foreign keys enforced, and
/// opening an up-to-date file again runs no migration twice.
#[tokio::test]
async fn reopening_keeps_schema_and_enforces_foreign_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = db_path(dir.path());
    drop(open(&path).await);
    let store = open(&path).await;

    // A membership for a room that does not exist is refused
    let alice = store
        .create_user("alice", "h", 1)
        .await
        .expect("create_user");
    let orphan = confab_store::WriteOp::AddMember {
        room: confab_protocol::RoomId(42),
        user: alice,
        role: confab_protocol::Role::Member,
        joined_at: 1,
    };
    assert!(store.apply_batch(&[orphan]).await.is_err());
    assert!(store.load_members().await.expect("load_members").is_empty());

    // The WAL file sits beside the database
    assert!(path.with_extension("db-wal").exists(), "WAL journal in use");
}

/// The readiness probe's round trip: answers while open, fails once closed.
#[tokio::test]
async fn ping_answers_until_the_store_is_closed() {
    let (_dir, store) = fresh().await;
    store.ping().await.expect("an open store answers");
    store.close().await;
    assert!(store.ping().await.is_err(), "a closed store does not");
}
