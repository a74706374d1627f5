//! Persistence throughput and commit latency of the stores (issue 4,
//! "Measure"): the batch writer's loop, alone — one `apply_batch` at a
//! time, each one durable before the next starts — for a range of batch
//! sizes, against SQLite and against Postgres in both batch modes.
//!
//! ```text
//! cargo run --release -p confab-store --example store_bench -- --help
//! cargo run --release -p confab-store --example store_bench
//! ```
//!
//! Each backend/mode gets a fresh database (a temp-dir SQLite file; a
//! Postgres database created on `--database-url`'s server and dropped at
//! the end). For each batch size the stores take turns in short slices, so
//! that load from elsewhere on the machine falls on all of them alike.
//! messages/s is per second spent in `apply_batch`: the rate of a batch
//! writer that always has a full batch waiting. Output is Markdown, ready
//! for benches/BENCHMARKS.md.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use confab_protocol::{Role, RoomId, Seq, UserId, Visibility};
use confab_store::postgres::{url_with_database, PgBatchMode, PgStore, PgStoreOptions};
use confab_store::sqlite::SqliteStore;
use confab_store::{AuditEntry, Store, StoredEvent, WriteOp};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};

#[derive(Parser)]
#[command(
    about = "Sustained persisted messages/s and commit latency per batch size, \
                   for SQLite and Postgres (UNNEST and COPY)"
)]
struct Args {
    /// Which stores to measure.
    #[arg(long, value_enum, default_value = "all")]
    backend: Backend,
    /// Postgres server (and a database this user can CREATE DATABASE from).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/confab_bench"
    )]
    database_url: String,
    /// Postgres batch modes to measure.
    #[arg(long, value_enum, default_value = "both")]
    pg_batch_mode: Modes,
    /// Batch sizes (operations per apply_batch), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000,5000")]
    batch_sizes: Vec<usize>,
    /// Seconds measured per batch size and store, split into `rounds`
    /// slices; the stores take turns slice by slice, so that they share
    /// the machine's other load alike.
    #[arg(long, default_value_t = 6.0)]
    seconds: f64,
    /// Slices per batch size and store.
    #[arg(long, default_value_t = 6)]
    rounds: usize,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 100)]
    body_bytes: usize,
    /// Rooms the messages are spread over (round robin).
    #[arg(long, default_value_t = 100)]
    rooms: u64,
    /// What a batch holds: chat messages only, or joins (each join is 4
    /// ops: AddMember, LogJoin, the MEMBER_JOINED event and an audit entry).
    #[arg(long, value_enum, default_value = "messages")]
    workload: Workload,
    /// Directory for the SQLite file (a temp dir inside it; default: the
    /// system temp dir — use the disk you mean to measure, not a tmpfs).
    #[arg(long)]
    sqlite_dir: Option<std::path::PathBuf>,
    /// Rows of the raw `COPY` baseline on Postgres (0: none): the same
    /// message rows copied into a fresh table in one transaction, committed
    /// once — in text and binary format, with and without the events
    /// table's key — the ceiling the batch modes are compared with (issue
    /// 10: sustained acknowledged writes ≥ 75 % of it).
    #[arg(long, default_value_t = 200_000)]
    raw_copy_rows: usize,
    /// Prefix of the databases the bench creates (and drops) on
    /// `--database-url`'s server.
    #[arg(long, default_value = "confab_bench")]
    database_prefix: String,
    /// Concurrent writers per store, each committing its own batches for
    /// its own share of the rooms (room id mod writers) on its own
    /// connection: what a batch writer with several lanes, each owning a
    /// set of rooms, could sustain. With more than one, messages/s is per
    /// second of wall time across all writers.
    #[arg(long, default_value_t = 1)]
    writers: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
    All,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Modes {
    Unnest,
    Copy,
    Auto,
    Both,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Workload {
    Messages,
    Joins,
}

impl Workload {
    fn ops_per_message(self) -> usize {
        match self {
            Workload::Messages => 1,
            Workload::Joins => 4,
        }
    }
}

/// Generates the operations, with per-room sequence numbers.
struct Generator {
    /// The ids of the rooms this generator posts in, round robin.
    rooms: Vec<u64>,
    users: Vec<UserId>,
    body: Vec<u8>,
    next_seq: Vec<u64>,
    n: u64,
    workload: Workload,
}

impl Generator {
    fn batch(&mut self, size: usize) -> Vec<WriteOp> {
        let mut ops = Vec::with_capacity(size);
        while ops.len() < size {
            let at = (self.n % self.rooms.len() as u64) as usize;
            let room = self.rooms[at] - 1;
            let user = self.users[(self.n % self.users.len() as u64) as usize];
            self.n += 1;
            self.next_seq[at] += 1;
            let seq = self.next_seq[at];
            let event = WriteOp::AppendEvent(StoredEvent {
                room: RoomId(room + 1),
                seq: Seq(seq),
                at: 1_700_000_000_000 + self.n,
                actor: user,
                actor_name: format!("user{}", user.0),
                kind: 1,
                body: self.body.clone(),
            });
            match self.workload {
                Workload::Messages => ops.push(event),
                Workload::Joins => ops.extend([
                    WriteOp::AddMember {
                        room: RoomId(room + 1),
                        user,
                        role: Role::Member,
                        joined_at: self.n,
                    },
                    WriteOp::LogJoin {
                        user,
                        room: RoomId(room + 1),
                        at: self.n,
                    },
                    event,
                    WriteOp::Audit(AuditEntry {
                        at: self.n,
                        actor: user,
                        action: confab_protocol::AuditAction::MemberJoined,
                        room: Some(RoomId(room + 1)),
                        target: None,
                        detail: String::new(),
                    }),
                ]),
            }
        }
        ops
    }
}

/// Rooms and the users that post in them.
async fn prepare(store: &dyn Store, rooms: u64) -> Result<Vec<UserId>, Box<dyn std::error::Error>> {
    let mut users = Vec::new();
    for i in 0..50 {
        users.push(store.create_user(&format!("user{i}"), "x", 0).await?);
    }
    let ops: Vec<WriteOp> = (1..=rooms)
        .map(|id| WriteOp::CreateRoom {
            room: RoomId(id),
            name: format!("room {id}"),
            topic: String::new(),
            visibility: Visibility::Public,
            owner: users[0],
            created_at: 0,
        })
        .collect();
    store.apply_batch(&ops).await?;
    Ok(users)
}

/// One store under test, with its own operation streams (one per writer).
struct Subject {
    label: String,
    store: Arc<dyn Store>,
    gens: Vec<Generator>,
}

/// Latencies of one subject at one batch size, over all rounds.
#[derive(Default)]
struct Samples {
    latencies: Vec<Duration>,
    busy: Duration,
}

/// `apply_batch` in a loop for `seconds`; appends to `samples`.
async fn writer(
    store: &dyn Store,
    gen: &mut Generator,
    units: usize,
    seconds: f64,
    samples: &mut Samples,
) -> Result<(), confab_store::StoreError> {
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds {
        let ops = gen.batch(units);
        let t = Instant::now();
        store.apply_batch(&ops).await?;
        let took = t.elapsed();
        samples.latencies.push(took);
        // The upkeep the batch writer runs between batches (SQLite folds
        // its event log) is the writer's time too.
        store.tidy(false).await?;
        samples.busy += t.elapsed();
    }
    Ok(())
}

/// One slice of `seconds`: the subject's writers run at once, each on its
/// own stream; appends to `samples`. With several writers the slice's
/// wall time is what counts as busy (they overlap).
async fn slice(
    subject: &mut Subject,
    units: usize,
    seconds: f64,
    samples: &mut Samples,
) -> Result<(), Box<dyn std::error::Error>> {
    if let [gen] = subject.gens.as_mut_slice() {
        return Ok(writer(subject.store.as_ref(), gen, units, seconds, samples).await?);
    }
    let started = Instant::now();
    let tasks: Vec<_> = std::mem::take(&mut subject.gens)
        .into_iter()
        .map(|mut gen| {
            let store = subject.store.clone();
            tokio::spawn(async move {
                let mut own = Samples::default();
                let done = writer(store.as_ref(), &mut gen, units, seconds, &mut own).await;
                (gen, own, done)
            })
        })
        .collect();
    for task in tasks {
        let (gen, own, done) = task.await?;
        done?;
        subject.gens.push(gen);
        samples.latencies.extend(own.latencies);
    }
    samples.busy += started.elapsed();
    Ok(())
}

/// Messages per second spent in the writer loop at `batch` per batch.
fn messages_per_second(batch: usize, samples: &Samples) -> f64 {
    (samples.latencies.len() * batch) as f64 / samples.busy.as_secs_f64()
}

/// The tables and formats of the raw `COPY` baseline.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Baseline {
    /// Text format, five columns (room, seq, time, sender, body), no
    /// index: the 2026-11-28 baseline.
    TextPlain,
    /// The same with the events table's key `(room_id, seq)`.
    TextKeyed,
    /// Binary format, a table `LIKE events` (its seven columns and `NOT
    /// NULL`s, no key): the rows the store writes, in the format it writes.
    BinaryPlain,
    /// Binary format, a table `LIKE events INCLUDING ALL`: the events table
    /// itself (key and `CHECK`s), empty.
    BinaryEvents,
}

impl Baseline {
    const ALL: [Baseline; 4] = [
        Baseline::TextPlain,
        Baseline::TextKeyed,
        Baseline::BinaryPlain,
        Baseline::BinaryEvents,
    ];

    fn keyed(self) -> bool {
        matches!(self, Baseline::TextKeyed | Baseline::BinaryEvents)
    }

    fn describe(self) -> &'static str {
        match self {
            Baseline::TextPlain => "text, 5 columns, no index",
            Baseline::TextKeyed => "text, 5 columns, key (room_id, seq)",
            Baseline::BinaryPlain => "binary, LIKE events (7 columns), no index",
            Baseline::BinaryEvents => "binary, LIKE events INCLUDING ALL (key, CHECKs)",
        }
    }
}

/// Copies `rows` message rows into a fresh table shaped as `baseline`
/// says, in one transaction, and commits: rows per second (the payload
/// is built before the clock starts). The rows are the bench's own: the
/// same rooms round robin, 100-byte bodies, per-room seqs.
async fn raw_copy(
    url: &str,
    rows: usize,
    rooms: u64,
    body_bytes: usize,
    baseline: Baseline,
) -> Result<f64, Box<dyn std::error::Error>> {
    let mut conn = PgConnectOptions::from_str(url)?.connect().await?;
    let rooms = rooms.max(1) as usize;
    let body: Vec<u8> = (0..body_bytes).map(|i| (i * 31 % 251) as u8).collect();
    let (ddl, copy, data) = match baseline {
        Baseline::TextPlain | Baseline::TextKeyed => {
            let key = if baseline.keyed() {
                ", PRIMARY KEY (room_id, seq)"
            } else {
                ""
            };
            let hex: String = body.iter().map(|b| format!("{b:02x}")).collect();
            let mut data = String::with_capacity(rows * (hex.len() + 48));
            for n in 0..rows {
                use std::fmt::Write;
                let _ = writeln!(
                    data,
                    "{}\t{}\t{}\t1\t\\\\x{hex}",
                    n % rooms,
                    n / rooms + 1,
                    n
                );
            }
            (
                format!(
                    "CREATE TABLE raw_copy_baseline (room_id bigint, seq bigint, at bigint, \
                     actor_id bigint, body bytea{key})"
                ),
                "COPY raw_copy_baseline (room_id, seq, at, actor_id, body) FROM STDIN",
                data.into_bytes(),
            )
        }
        Baseline::BinaryPlain | Baseline::BinaryEvents => {
            let like = if baseline.keyed() {
                "LIKE events INCLUDING ALL"
            } else {
                "LIKE events"
            };
            let mut data = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
            let field = |data: &mut Vec<u8>, v: &[u8]| {
                data.extend_from_slice(&(v.len() as i32).to_be_bytes());
                data.extend_from_slice(v);
            };
            for n in 0..rows {
                data.extend_from_slice(&7i16.to_be_bytes());
                field(&mut data, &((n % rooms) as i64).to_be_bytes());
                field(&mut data, &((n / rooms + 1) as i64).to_be_bytes());
                field(&mut data, &(n as i64).to_be_bytes());
                field(&mut data, &1i64.to_be_bytes());
                field(&mut data, format!("user{}", n % 50).as_bytes());
                field(&mut data, &1i16.to_be_bytes());
                field(&mut data, &body);
            }
            data.extend_from_slice(&(-1i16).to_be_bytes());
            (
                format!("CREATE TABLE raw_copy_baseline ({like})"),
                "COPY raw_copy_baseline (room_id, seq, at, actor_id, actor_name, kind, body) \
                 FROM STDIN (FORMAT binary)",
                data,
            )
        }
    };
    conn.execute(sqlx::AssertSqlSafe(ddl)).await?;
    let started = Instant::now();
    let mut tx = conn.begin().await?;
    let mut copy = tx.copy_in_raw(copy).await?;
    copy.send(data).await?;
    copy.finish().await?;
    tx.commit().await?;
    let secs = started.elapsed().as_secs_f64();
    conn.execute("DROP TABLE raw_copy_baseline").await?;
    let _ = conn.close().await;
    Ok(rows as f64 / secs)
}

/// Raw COPY rates per baseline, over rounds.
#[derive(Default)]
struct Baselines {
    rates: Vec<(Baseline, f64)>,
}

impl Baselines {
    /// One round: each baseline once.
    async fn round(&mut self, url: &str, args: &Args) -> Result<(), Box<dyn std::error::Error>> {
        for baseline in Baseline::ALL {
            let rate = raw_copy(
                url,
                args.raw_copy_rows,
                args.rooms,
                args.body_bytes,
                baseline,
            )
            .await?;
            self.rates.push((baseline, rate));
        }
        Ok(())
    }

    fn of(&self, baseline: Baseline) -> Vec<f64> {
        let mut r: Vec<f64> = self
            .rates
            .iter()
            .filter(|(b, _)| *b == baseline)
            .map(|(_, r)| *r)
            .collect();
        r.sort_by(f64::total_cmp);
        r
    }

    /// The median round of `baseline`.
    fn median(&self, baseline: Baseline) -> f64 {
        let r = self.of(baseline);
        r.get(r.len() / 2).copied().unwrap_or(f64::NAN)
    }

    /// The fastest round of the fastest keyed (or index-free) baseline:
    /// the ceiling a store is compared with.
    fn best(&self, keyed: bool) -> (Baseline, f64) {
        self.rates
            .iter()
            .filter(|(b, _)| b.keyed() == keyed)
            .copied()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((Baseline::TextPlain, f64::NAN))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn print_table(label: &str, workload: Workload, body: usize, rows: &[(usize, Samples)]) {
    let ops_per_message = workload.ops_per_message();
    println!("\n### {label} — {workload:?}, {body}-byte bodies\n");
    println!("| batch size | batches | messages/s | ops/s | commit p50 | commit p99 | max |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for (batch, samples) in rows {
        let mut l = samples.latencies.clone();
        l.sort();
        let pct = |p: f64| l[((l.len() - 1) as f64 * p).round() as usize];
        // Throughput of the writer loop: messages per second of time spent
        // committing (the loop does nothing else).
        let messages = (l.len() * batch) as f64;
        let secs = samples.busy.as_secs_f64();
        debug_assert_eq!(messages / secs, messages_per_second(*batch, samples));
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms |",
            batch,
            l.len(),
            messages / secs,
            messages * ops_per_message as f64 / secs,
            ms(pct(0.5)),
            ms(pct(0.99)),
            ms(*l.last().unwrap_or(&Duration::ZERO)),
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.batch_sizes.contains(&0) || args.rounds == 0 {
        return Err("batch sizes and rounds must be at least 1".into());
    }
    if args.writers == 0 || args.writers as u64 > args.rooms {
        return Err("--writers must be between 1 and --rooms".into());
    }

    let mut subjects = Vec::new();
    let mut sqlite_dir = None;
    let mut sqlite = None;
    if matches!(args.backend, Backend::Sqlite | Backend::All) {
        let base = args.sqlite_dir.clone().unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::tempdir_in(&base)?;
        let store = SqliteStore::open(&dir.path().join("bench.db")).await?;
        let label = format!("SQLite (WAL, synchronous=FULL, file in {})", base.display());
        subjects.push(subject(label, Arc::new(store.clone()), &args).await?);
        sqlite_dir = Some(dir);
        sqlite = Some(store);
    }

    let mut pg_databases = Vec::new();
    let mut pg_stores = Vec::new();
    let admin = PgConnectOptions::from_str(&args.database_url)?;
    if matches!(args.backend, Backend::Postgres | Backend::All) {
        let modes: &[PgBatchMode] = match args.pg_batch_mode {
            Modes::Unnest => &[PgBatchMode::Unnest],
            Modes::Copy => &[PgBatchMode::Copy],
            Modes::Auto => &[PgBatchMode::Auto],
            Modes::Both => &[PgBatchMode::Unnest, PgBatchMode::Copy],
        };
        let mut conn = admin.connect().await?;
        let version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&mut conn)
            .await?;
        let fsync: String = sqlx::query_scalar("SHOW fsync")
            .fetch_one(&mut conn)
            .await?;
        let via = if args.database_url.contains("host=/") || args.database_url.contains("@%2F") {
            "Unix socket"
        } else {
            "TCP"
        };
        for &mode in modes {
            let name = format!("{}_{}_{mode}", args.database_prefix, std::process::id());
            conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await?;
            pg_databases.push(name.clone());
            let options = PgStoreOptions {
                batch_mode: mode,
                ..PgStoreOptions::default()
            };
            let store =
                PgStore::open(&url_with_database(&args.database_url, &name), options).await?;
            let label =
                format!("Postgres {version} ({mode}, {via}, synchronous_commit=on, fsync={fsync})");
            subjects.push(subject(label, Arc::new(store.clone()), &args).await?);
            pg_stores.push(store);
        }
        let _ = conn.close().await;
    }

    // Raw COPY rounds (every baseline table once each) before the stores
    // and after each batch size: interleaved with them, so that the
    // machine's other load falls on both alike.
    let mut baselines = Baselines::default();
    let baseline_url = match (pg_databases.first(), args.raw_copy_rows > 0) {
        (Some(db), true) => Some(url_with_database(&args.database_url, db)),
        _ => None,
    };
    if let Some(url) = &baseline_url {
        baselines.round(url, &args).await?;
    }

    // Each batch size: a warm-up, then `rounds` slices per subject, the
    // subjects taking turns, so that they share whatever else the machine
    // is doing at the time.
    let units = args.workload.ops_per_message();
    let slice_secs = args.seconds / args.rounds as f64;
    let mut results: Vec<Vec<(usize, Samples)>> = subjects.iter().map(|_| Vec::new()).collect();
    for &batch in &args.batch_sizes {
        for subject in subjects.iter_mut() {
            slice(
                subject,
                batch * units,
                slice_secs / 2.0,
                &mut Samples::default(),
            )
            .await?;
        }
        let mut samples: Vec<Samples> = subjects.iter().map(|_| Samples::default()).collect();
        for _ in 0..args.rounds {
            for (subject, samples) in subjects.iter_mut().zip(samples.iter_mut()) {
                slice(subject, batch * units, slice_secs, samples).await?;
            }
        }
        for (result, samples) in results.iter_mut().zip(samples) {
            result.push((batch, samples));
        }
        if let Some(url) = &baseline_url {
            baselines.round(url, &args).await?;
        }
    }
    for (subject, rows) in subjects.iter().zip(&results) {
        print_table(&subject.label, args.workload, args.body_bytes, rows);
    }
    if baseline_url.is_some() {
        println!(
            "\n### Raw COPY baseline — {} message rows, one transaction, {} rounds \
             (before the stores and after each batch size)\n",
            args.raw_copy_rows,
            args.batch_sizes.len() + 1
        );
        println!("| table and format | rows/s min | median | max |");
        println!("|---|---:|---:|---:|");
        for baseline in Baseline::ALL {
            let r = baselines.of(baseline);
            if let (Some(min), Some(max)) = (r.first(), r.last()) {
                println!(
                    "| {} | {min:.0} | {:.0} | {max:.0} |",
                    baseline.describe(),
                    r[r.len() / 2]
                );
            }
        }
        let (plain, copied) = baselines.best(false);
        let (key, keyed) = baselines.best(true);
        let keyed_median = baselines.median(key);
        println!(
            "\nKeyed against index-free (best rounds): {keyed:.0} / {copied:.0} = {:.0} %",
            100.0 * keyed / copied
        );
        println!(
            "\nAgainst the fastest keyed and index-free baselines ({} / {}):\n",
            key.describe(),
            plain.describe()
        );
        println!(
            "| store | best sustained messages/s | batch size | of keyed COPY, median round \
             | of keyed COPY, best round | of index-free COPY, best round |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        for (subject, rows) in subjects.iter().zip(&results) {
            if let Some((batch, rate)) = rows
                .iter()
                .map(|(batch, samples)| (*batch, messages_per_second(*batch, samples)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
            {
                println!(
                    "| {} | {rate:.0} | {batch} | {:.0} % | {:.0} % | {:.0} % |",
                    subject.label,
                    100.0 * rate / keyed_median,
                    100.0 * rate / keyed,
                    100.0 * rate / copied
                );
            }
        }
    }

    drop(subjects);
    if let Some(store) = sqlite {
        store.close().await;
    }
    drop(sqlite_dir);
    for store in pg_stores {
        store.close().await;
    }
    if !pg_databases.is_empty() {
        let mut conn = admin.connect().await?;
        for name in pg_databases {
            conn.execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE {name} WITH (FORCE)"
            )))
            .await?;
        }
    }
    Ok(())
}

async fn subject(
    label: String,
    store: Arc<dyn Store>,
    args: &Args,
) -> Result<Subject, Box<dyn std::error::Error>> {
    let users = prepare(store.as_ref(), args.rooms).await?;
    let writers = args.writers.max(1) as u64;
    let gens = (0..writers)
        .map(|w| {
            let rooms: Vec<u64> = (1..=args.rooms).filter(|r| r % writers == w).collect();
            Generator {
                next_seq: vec![0; rooms.len()],
                rooms,
                users: users.clone(),
                body: (0..args.body_bytes).map(|i| (i * 31 % 251) as u8).collect(),
                n: 0,
                workload: args.workload,
            }
        })
        .collect();
    let label = if writers > 1 {
        format!("{label}, {writers} concurrent writers")
    } else {
        label
    };
    Ok(Subject { label, store, gens })
}
