//! The spool with the batch writer in front of a real SQLite store that a
//! switch makes unreachable (the only stand-in: the fault tests in
//! `server/tests/durability.rs` stop a real Postgres instead).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use confab_protocol::{ErrorCode, Role, RoomId, Seq, UserId, Visibility};
use confab_store::sqlite::SqliteStore;
use confab_store::*;
use tokio::sync::oneshot;

use super::*;
use crate::persist::batch::{self, BatchConfig, BatchHandle, WriteRequest};

/// SQLite, except that `apply_batch` answers `Unavailable` while `down`.
/// Records the event seqs of every batch it commits, in order.
struct Switchable {
    inner: SqliteStore,
    down: AtomicBool,
    committed: Mutex<Vec<Vec<u64>>>,
}

impl Switchable {
    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
    fn committed(&self) -> Vec<Vec<u64>> {
        self.committed.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl BatchSink for Switchable {
    async fn apply_batch(&self, ops: &[WriteOp]) -> StoreResult<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable("switched off"));
        }
        self.inner.apply_batch(ops).await?;
        let seqs = ops
            .iter()
            .filter_map(|op| match op {
                WriteOp::AppendEvent(e) => Some(e.seq.0),
                _ => None,
            })
            .collect();
        self.committed.lock().unwrap().push(seqs);
        Ok(())
    }
}

const ROOM: RoomId = RoomId(1);

/// A store with user 1 and room 1, up.
async fn store(dir: &Path) -> Arc<Switchable> {
    let inner = SqliteStore::open(&dir.join("t.db")).await.unwrap();
    let alice = inner.create_user("alice", "x", 0).await.unwrap();
    inner
        .apply_batch(&[WriteOp::CreateRoom {
            room: ROOM,
            name: "r".into(),
            topic: String::new(),
            visibility: Visibility::Public,
            owner: alice,
            created_at: 0,
        }])
        .await
        .unwrap();
    Arc::new(Switchable {
        inner,
        down: AtomicBool::new(false),
        committed: Mutex::new(Vec::new()),
    })
}

fn event(seq: u64) -> WriteOp {
    WriteOp::AppendEvent(StoredEvent {
        room: ROOM,
        seq: Seq(seq),
        at: seq,
        actor: UserId(1),
        actor_name: "alice".into(),
        kind: 1,
        body: format!("message {seq}").into_bytes(),
    })
}

async fn open(dir: &Path, max_bytes: u64) -> Arc<Spool> {
    Arc::new(
        Spool::open(SpoolConfig {
            dir: dir.join("spool"),
            max_bytes,
        })
        .await
        .unwrap(),
    )
}

fn writer(
    store: &Arc<Switchable>,
    spool: &Arc<Spool>,
) -> (BatchHandle, tokio::task::JoinHandle<()>) {
    batch::spawn_with_spool(
        store.clone(),
        BatchConfig::at_once(100, 100, 1),
        Some(spool.clone()),
    )
}

/// Submits one write and waits for its outcome.
async fn write(batch: &BatchHandle, ops: Vec<WriteOp>) -> Result<(), ErrorCode> {
    let (tx, rx) = oneshot::channel();
    let mut req = WriteRequest::new(ops);
    req.notify = Some(tx);
    assert!(batch.submit(req));
    rx.await.unwrap()
}

async fn stored_seqs(store: &Switchable) -> Vec<u64> {
    stored_seqs_in(store, ROOM).await
}

/// `room`'s stored event seqs, oldest first.
async fn stored_seqs_in(store: &Switchable, room: RoomId) -> Vec<u64> {
    let mut seqs: Vec<u64> = store
        .inner
        .history(room, Seq(0), 1000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq.0)
        .collect();
    seqs.reverse();
    seqs
}

/// Waits (bounded) until the replay task has emptied the spool.
async fn drained(spool: &Spool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while spool.is_active() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the spool drains within 10 s");
}

fn spool_file_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("spool").join(log::FILE_NAME))
        .unwrap()
        .len()
}

#[tokio::test]
async fn writes_are_acknowledged_from_the_spool_while_the_store_is_down_and_replayed_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let spool = open(dir.path(), 1 << 20).await;
    let (batch, task) = writer(&store, &spool);
    assert_eq!(write(&batch, vec![event(1)]).await, Ok(()));

    // Given the store is unreachable
    store.set_down(true);
    // When writes arrive, they are acknowledged (durable in the spool)
    for seq in 2..=20 {
        assert_eq!(write(&batch, vec![event(seq)]).await, Ok(()));
    }
    // Then they are in the spool, not in the store
    assert_eq!(stored_seqs(&store).await, vec![1]);
    assert!(spool.is_active() && spool.pending_bytes().await > 0);
    assert!(spool_file_len(dir.path()) > log::HEADER_LEN);

    // When the store comes back, the replay stores every one, in order,
    // and empties the spool
    store.set_down(false);
    drained(&spool).await;
    assert_eq!(stored_seqs(&store).await, (1..=20).collect::<Vec<_>>());
    assert_eq!(spool.pending_bytes().await, 0);
    assert_eq!(spool_file_len(dir.path()), log::HEADER_LEN);
    // And later writes go straight to the store again
    assert_eq!(write(&batch, vec![event(21)]).await, Ok(()));
    assert_eq!(store.committed().last(), Some(&vec![21]));
    assert!(!spool.is_active());
    drop(batch);
    task.await.unwrap();
}

#[tokio::test]
async fn while_the_spool_holds_batches_new_ones_queue_behind_them_even_with_the_store_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let spool = open(dir.path(), 1 << 20).await;
    let (batch, _task) = writer(&store, &spool);
    store.set_down(true);
    assert_eq!(write(&batch, vec![event(1)]).await, Ok(()));
    // Given the store is back but the replay has not run yet (it waits
    // 100 ms before its first attempt)
    store.set_down(false);
    // When another write arrives
    assert_eq!(write(&batch, vec![event(2)]).await, Ok(()));
    // Then it did not overtake the spooled one: the store has seen
    // neither yet, and then both in order
    assert!(store.committed().is_empty(), "{:?}", store.committed());
    drained(&spool).await;
    assert_eq!(store.committed().concat(), vec![1, 2]);
}

#[tokio::test]
async fn a_full_spool_refuses_writes_and_only_acknowledged_ones_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let spool = open(dir.path(), 1000).await;
    let (batch, _task) = writer(&store, &spool);
    store.set_down(true);
    // When writes arrive until the spool is full
    let mut acked = Vec::new();
    let mut refused = None;
    for seq in 1..=100 {
        match write(&batch, vec![event(seq)]).await {
            Ok(()) => acked.push(seq),
            Err(code) => {
                refused = Some((seq, code));
                break;
            }
        }
    }
    // Then some were acknowledged and the next one refused
    let (refused_seq, code) = refused.expect("a 1000-byte spool fills up");
    assert_eq!(code, ErrorCode::StorageUnavailable);
    assert!(!acked.is_empty());
    let err = spool.append(&[event(999)], &[1]).await.unwrap_err();
    assert!(matches!(err, SpoolError::Full { max: 1000, .. }), "{err}");
    assert!(err.to_string().contains("spool is full"), "{err}");
    assert!(spool_file_len(dir.path()) <= log::HEADER_LEN + 1000);

    // And once the store is back, exactly the acknowledged ones are stored
    store.set_down(false);
    drained(&spool).await;
    assert_eq!(stored_seqs(&store).await, acked);
    assert!(!stored_seqs(&store).await.contains(&refused_seq));
}

#[tokio::test]
async fn an_unwritable_spool_directory_refuses_writes_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    // A regular file where the spool's parent directory should be: even
    // root cannot create a directory inside it.
    std::fs::write(dir.path().join("not-a-dir"), b"x").unwrap();
    let spool = Arc::new(
        Spool::open(SpoolConfig {
            dir: dir.path().join("not-a-dir").join("spool"),
            max_bytes: 1 << 20,
        })
        .await
        .expect("an uncreatable spool directory does not stop the server"),
    );
    let (batch, _task) = writer(&store, &spool);
    // While the store is up, writes do not need the spool
    assert_eq!(write(&batch, vec![event(1)]).await, Ok(()));
    // When it is down, they are refused, not acknowledged
    store.set_down(true);
    assert_eq!(
        write(&batch, vec![event(2)]).await,
        Err(ErrorCode::StorageUnavailable)
    );
    let err = spool.append(&[event(2)], &[1]).await.unwrap_err();
    assert!(err.to_string().contains("spool is unwritable"), "{err}");
    store.set_down(false);
    assert_eq!(write(&batch, vec![event(3)]).await, Ok(()));
    assert_eq!(stored_seqs(&store).await, vec![1, 3]);
}

#[tokio::test]
async fn a_restart_replays_what_a_crash_left_in_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    {
        let spool = open(dir.path(), 1 << 20).await;
        for seq in 1..=5 {
            spool.append(&[event(seq)], &[1]).await.unwrap();
        }
        // The process dies: no replay, no shutdown.
    }
    let spool = open(dir.path(), 1 << 20).await;
    assert!(spool.is_active());
    spool
        .replay_at_startup(store.as_ref(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(stored_seqs(&store).await, vec![1, 2, 3, 4, 5]);
    assert!(!spool.is_active());
    // A second crash-and-restart finds nothing to replay
    drop(spool);
    let spool = open(dir.path(), 1 << 20).await;
    assert!(!spool.is_active());
}

#[tokio::test]
async fn startup_replay_waits_for_an_unavailable_store_then_gives_up_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let spool = open(dir.path(), 1 << 20).await;
    spool.append(&[event(1)], &[1]).await.unwrap();
    store.set_down(true);
    let err = spool
        .replay_at_startup(store.as_ref(), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        matches!(err, replay::ReplayError::StoreUnavailable(_)),
        "{err}"
    );
    assert!(
        spool.is_active(),
        "nothing is dropped when the replay fails"
    );
}

#[tokio::test]
async fn a_request_the_store_refuses_at_replay_is_dropped_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let spool = open(dir.path(), 1 << 20).await;
    // One record of three requests; the middle one names a missing room
    let bad = WriteOp::AddMember {
        room: RoomId(99),
        user: UserId(1),
        role: Role::Member,
        joined_at: 0,
    };
    spool
        .append(&[event(1), bad, event(2)], &[1, 2, 3])
        .await
        .unwrap();
    spool.append(&[event(3)], &[1]).await.unwrap();
    let records = spool
        .replay(store.as_ref(), &tokio_util::sync::CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(records, 2);
    assert_eq!(stored_seqs(&store).await, vec![1, 2, 3]);
    assert!(!spool.is_active());
}

#[tokio::test]
async fn a_replay_interrupted_by_a_crash_stores_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    {
        let spool = open(dir.path(), 1 << 20).await;
        for seq in 1..=3 {
            spool.append(&[event(seq)], &[1]).await.unwrap();
        }
    }
    // The store committed the first two records, then the process died
    // before the checkpoint said so.
    store.apply_batch(&[event(1), event(2)]).await.unwrap();
    let spool = open(dir.path(), 1 << 20).await;
    spool
        .replay_at_startup(store.as_ref(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(stored_seqs(&store).await, vec![1, 2, 3]);
}

/// Submits one write whose event raises `mark` to `seq` once it is in the
/// store, and waits for its acknowledgement.
async fn write_marked(batch: &BatchHandle, seq: u64, mark: &Arc<AtomicU64>) {
    let (tx, rx) = oneshot::channel();
    let mut req = WriteRequest::new(vec![event(seq)]);
    req.notify = Some(tx);
    req.stored = Some((mark.clone(), Seq(seq)));
    assert!(batch.submit(req));
    assert_eq!(rx.await.unwrap(), Ok(()));
}

#[tokio::test]
async fn a_spooled_event_counts_as_stored_only_once_the_replay_has_put_it_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let spool = open(dir.path(), 1 << 20).await;
    let (batch, task) = writer(&store, &spool);
    let mark = Arc::new(AtomicU64::new(0));
    write_marked(&batch, 1, &mark).await;
    assert_eq!(mark.load(Ordering::SeqCst), 1, "committed: stored at once");

    // Given the store is down, writes are acknowledged from the spool …
    store.set_down(true);
    for seq in 2..=5 {
        write_marked(&batch, seq, &mark).await;
    }
    // … but the room's watermark stays where the store is, so its tail
    // keeps those events (history reads the store only below the tail).
    assert_eq!(mark.load(Ordering::SeqCst), 1);

    // When the store is back and the replay has run, it rises to the end.
    store.set_down(false);
    drained(&spool).await;
    assert_eq!(mark.load(Ordering::SeqCst), 5);
    assert_eq!(stored_seqs(&store).await, (1..=5).collect::<Vec<_>>());
    write_marked(&batch, 6, &mark).await;
    assert_eq!(mark.load(Ordering::SeqCst), 6);
    drop(batch);
    task.await.unwrap();
}

/// An event of `room` numbered `seq`.
fn event_in(room: u64, seq: u64) -> WriteOp {
    match event(seq) {
        WriteOp::AppendEvent(mut e) => {
            e.room = RoomId(room);
            WriteOp::AppendEvent(e)
        }
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn a_deep_backlog_in_stripes_is_spooled_and_replayed_in_each_rooms_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    for room in 2..=4 {
        store
            .inner
            .apply_batch(&[WriteOp::CreateRoom {
                room: RoomId(room),
                name: format!("r{room}"),
                topic: String::new(),
                visibility: Visibility::Public,
                owner: UserId(1),
                created_at: 0,
            }])
            .await
            .unwrap();
    }
    let spool = open(dir.path(), 1 << 20).await;
    // Deep from four operations on, in four stripes.
    let (batch, task) = batch::spawn_with_spool(
        store.clone(),
        BatchConfig::at_once(2, 100, 4),
        Some(spool.clone()),
    );
    store.set_down(true);
    let mut acks = Vec::new();
    for round in 0..2 {
        // On this single-threaded runtime the writer takes each forty at
        // once: a deep batch, in stripes.
        for seq in 1..=10 {
            for room in 1..=4 {
                let (tx, rx) = oneshot::channel();
                let mut req = WriteRequest::new(vec![event_in(room, round * 10 + seq)]);
                req.notify = Some(tx);
                assert!(batch.submit(req));
                acks.push(rx);
            }
        }
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }
    // Acknowledged from the spool while the store is down.
    for rx in acks {
        assert_eq!(rx.await.unwrap(), Ok(()));
    }
    assert!(store.committed().is_empty());
    store.set_down(false);
    drained(&spool).await;
    for room in 1..=4 {
        let seqs = stored_seqs_in(&store, RoomId(room)).await;
        assert_eq!(seqs, (1..=20).collect::<Vec<_>>(), "room {room}");
    }
    drop(batch);
    task.await.unwrap();
}
