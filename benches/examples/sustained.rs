//! Sustained acknowledged writes through the server's own batch writer on
//! Postgres: one-message write requests over `--rooms` rooms submitted as
//! fast as the writer acknowledges them, with at most `--backlog`
//! operations waiting (the server's `write_backlog_max`, past which it
//! refuses senders), for `--seconds` after a one-second warm-up. Prints
//! the acknowledged messages per second for each `--deep-parts` setting,
//! the settings taking turns for `--rounds` rounds, each on a fresh
//! database (created on `--database-url`'s server and dropped after).
//!
//! The batch writer runs with the server's defaults (`batch_max_items`
//! 1 024, `batch_max_items_deep` 16 384, commits at least 2 ms apart,
//! `--pg-batch-mode auto`), so this is what a server whose fan-out is not
//! the limit would acknowledge. Compare it with `store_bench`'s raw
//! `COPY` baseline run in the same minutes (BENCHMARKS.md, "A deep batch
//! in parts").
//!
//! ```sh
//! cargo run --release -p confab-benches --example sustained -- \
//!     --database-url postgres://postgres@127.0.0.1:5432/test --deep-parts 1,4 --rounds 3
//! ```

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_protocol::{RoomId, Seq, Visibility};
use confab_server::persist::batch::{self, BatchConfig, WriteRequest};
use confab_store::postgres::{url_with_database, PgStore, PgStoreOptions};
use confab_store::{Store, StoredEvent, WriteOp};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};

struct Args {
    database_url: String,
    rooms: u64,
    seconds: f64,
    backlog: u64,
    rounds: usize,
    deep_parts: Vec<usize>,
    lanes: usize,
    max_items_deep: usize,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        database_url: "postgres://postgres@127.0.0.1:5432/test".into(),
        rooms: 100,
        seconds: 5.0,
        backlog: 65_536,
        rounds: 3,
        deep_parts: vec![1, 4],
        lanes: 1,
        max_items_deep: 16_384,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--database-url" => args.database_url = value,
            "--rooms" => args.rooms = value.parse().map_err(|e| bad(&e))?,
            "--seconds" => args.seconds = value.parse().map_err(|e| bad(&e))?,
            "--backlog" => args.backlog = value.parse().map_err(|e| bad(&e))?,
            "--rounds" => args.rounds = value.parse().map_err(|e| bad(&e))?,
            "--lanes" => args.lanes = value.parse().map_err(|e| bad(&e))?,
            "--max-items-deep" => args.max_items_deep = value.parse().map_err(|e| bad(&e))?,
            "--deep-parts" => {
                args.deep_parts = value
                    .split(',')
                    .map(|p| p.parse().map_err(|e| bad(&e)))
                    .collect::<Result<_, _>>()?
            }
            _ => {
                return Err(format!(
                    "unknown flag {flag} (--database-url, --rooms, --seconds, --backlog, \
                     --rounds, --lanes, --deep-parts, --max-items-deep)"
                ))
            }
        }
    }
    if args.rooms == 0 || args.seconds <= 0.0 || args.backlog == 0 || args.rounds == 0 {
        return Err("--rooms, --seconds, --backlog and --rounds must be above 0".into());
    }
    Ok(args)
}

/// One run: a fresh database, the rooms, a batch writer with `deep_parts`,
/// and requests submitted as fast as they are acknowledged. Acknowledged
/// messages per second over the measured window.
async fn run(args: &Args, deep_parts: usize) -> Result<f64, Box<dyn std::error::Error>> {
    let name = format!("confab_sustained_{}_{deep_parts}", std::process::id());
    let mut admin = PgConnectOptions::from_str(&args.database_url)?
        .connect()
        .await?;
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await?;
    let result = measure(
        args,
        deep_parts,
        &url_with_database(&args.database_url, &name),
    )
    .await;
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .await?;
    let _ = admin.close().await;
    result
}

async fn measure(
    args: &Args,
    deep_parts: usize,
    url: &str,
) -> Result<f64, Box<dyn std::error::Error>> {
    let pg = PgStore::open(url, PgStoreOptions::default()).await?;
    let store: Arc<dyn Store> = Arc::new(pg.clone());
    let owner = store.create_user("bench", "x", 0).await?;
    let rooms: Vec<WriteOp> = (1..=args.rooms)
        .map(|id| WriteOp::CreateRoom {
            room: RoomId(id),
            name: format!("room {id}"),
            topic: String::new(),
            visibility: Visibility::Public,
            owner,
            created_at: 0,
        })
        .collect();
    store.apply_batch(&rooms).await?;
    let (handle, task) = batch::spawn(
        store.clone(),
        BatchConfig {
            max_items: 1024,
            max_items_deep: args.max_items_deep,
            max_delay: Duration::ZERO,
            min_interval: Duration::from_millis(2),
            window_max: Duration::from_millis(4),
            lanes: args.lanes,
            deep_parts,
        },
    );
    // Each room's stored watermark: what has been acknowledged.
    let marks: Vec<Arc<AtomicU64>> = (0..args.rooms)
        .map(|_| Arc::new(AtomicU64::new(0)))
        .collect();
    let acked = || marks.iter().map(|m| m.load(Ordering::Relaxed)).sum::<u64>();
    let mut next_seq = vec![0u64; args.rooms as usize];
    let (mut submitted, mut n) = (0u64, 0u64);
    let body = vec![b'x'; 100];
    let started = Instant::now();
    let warm_up = Duration::from_secs(1);
    let window = Duration::from_secs_f64(args.seconds);
    let mut from: Option<(Instant, u64)> = None;
    loop {
        let now = Instant::now();
        let done = acked();
        if from.is_none() && now - started >= warm_up {
            from = Some((now, done));
        }
        if let Some((at, base)) = from {
            if now - at >= window {
                let rate = (done - base) as f64 / (now - at).as_secs_f64();
                drop(handle);
                task.await?;
                pg.close().await;
                return Ok(rate);
            }
        }
        if submitted - done >= args.backlog {
            tokio::time::sleep(Duration::from_micros(200)).await;
            continue;
        }
        for _ in 0..256 {
            let at = (n % args.rooms) as usize;
            n += 1;
            next_seq[at] += 1;
            let room = RoomId(at as u64 + 1);
            let mut req = WriteRequest::new(vec![WriteOp::AppendEvent(StoredEvent {
                room,
                seq: Seq(next_seq[at]),
                at: 1_700_000_000_000 + n,
                actor: owner,
                actor_name: "bench".into(),
                kind: confab_protocol::event_kind::MESSAGE,
                body: body.clone(),
            })]);
            req.stored = Some((marks[at].clone(), Seq(next_seq[at])));
            handle.submit(req);
            submitted += 1;
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse().map_err(|e| -> Box<dyn std::error::Error> { e.into() })?;
    println!(
        "| round | deep parts | acknowledged messages/s | lanes {} · {} rooms · backlog ≤ {} · {} s |",
        args.lanes, args.rooms, args.backlog, args.seconds
    );
    println!("|---:|---:|---:|---|");
    for round in 1..=args.rounds {
        for &parts in &args.deep_parts {
            let rate = run(&args, parts).await?;
            println!("| {round} | {parts} | {rate:.0} | |");
        }
    }
    Ok(())
}
