//! The batch writer (group commit) on SQLite — and on Postgres when
//! `DATABASE_URL` is set: 1,000 one-message write requests submitted at
//! once, then a flush (one or a few transactions, each fsync'd), and single
//! requests committed one at a time (commit latency).

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_protocol::{RoomId, Seq, UserId, Visibility};
use confab_server::persist::batch::{self, BatchConfig, BatchHandle, WriteRequest};
use confab_store::{Store, StoredEvent, WriteOp};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn message(room: RoomId, seq: u64) -> WriteRequest {
    WriteRequest {
        ops: vec![WriteOp::AppendEvent(StoredEvent {
            room,
            seq: Seq(seq),
            at: 1_700_000_000_000,
            actor: UserId(1),
            actor_name: "bench".into(),
            kind: confab_protocol::event_kind::MESSAGE,
            body: vec![b'x'; 101],
        })],
        stored: None,
        ack: None,
        deliver: Vec::new(),
        notify: None,
        fence: None,
        room: None,
    }
}

/// A store with one user and a new room `room`, and a batch writer in
/// front of it.
async fn writer(store: Arc<dyn Store>, room: RoomId) -> BatchHandle {
    let owner = store
        .create_user(&format!("bench{}", std::process::id()), "x", 0)
        .await
        .expect("user");
    let create = WriteOp::CreateRoom {
        room,
        name: "bench".into(),
        topic: String::new(),
        visibility: Visibility::Public,
        owner,
        created_at: 0,
    };
    store.apply_batch(&[create]).await.expect("room");
    let (handle, _task) = batch::spawn(
        store,
        BatchConfig {
            max_items: 1024,
            max_items_deep: 1024,
            max_delay: Duration::ZERO,
            min_interval: Duration::ZERO,
            window_max: Duration::ZERO,
            lanes: 1,
            deep_parts: 1,
        },
    );
    handle
}

fn run(
    c: &mut Criterion,
    backend: &str,
    rt: &tokio::runtime::Runtime,
    handle: BatchHandle,
    room: RoomId,
) {
    let seq = AtomicU64::new(1);
    let mut g = c.benchmark_group(format!("batch/{backend}"));
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(10);
    for n in [1u64, 1000] {
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::new("messages", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                rt.block_on(async {
                    for _ in 0..iters {
                        for _ in 0..n {
                            handle.submit(message(room, seq.fetch_add(1, Ordering::Relaxed)));
                        }
                        handle.flush().await.expect("commit");
                    }
                });
                start.elapsed()
            })
        });
    }
    g.finish();
}

fn batch_writer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = rt.block_on(async {
        let store = confab_store::sqlite::SqliteStore::open(&dir.path().join("bench.db"))
            .await
            .expect("sqlite store");
        writer(Arc::new(store), RoomId(1)).await
    });
    run(c, "sqlite", &rt, sqlite, RoomId(1));

    if let Ok(url) = std::env::var("DATABASE_URL") {
        // A database outlives the bench: a fresh room id each run, so that
        // appends are inserts, not idempotent replays.
        let room = RoomId(1 << 40 | std::time::UNIX_EPOCH.elapsed().map_or(0, |d| d.as_secs()));
        let pg = rt.block_on(async {
            let options = confab_store::postgres::PgStoreOptions::default();
            let store = confab_store::postgres::PgStore::open(&url, options)
                .await
                .expect("postgres store at DATABASE_URL");
            writer(Arc::new(store), room).await
        });
        run(c, "postgres", &rt, pg, room);
    }
}

criterion_group!(benches, batch_writer);
criterion_main!(benches);
