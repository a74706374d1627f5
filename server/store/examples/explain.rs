//! `EXPLAIN ANALYZE` of the Postgres store's read paths on a million
//! messages (issue 4, "Queries and indexes"). Reproducible: it creates a
//! database of its own, fills it server-side with `generate_series`, prints
//! each plan with its timing, and drops the database.
//!
//! ```text
//! cargo run --release -p confab-store --example explain -- --help
//! cargo run --release -p confab-store --example explain -- \
//!     --database-url postgres://postgres@127.0.0.1:5432/confab_bench
//! ```
//!
//! Data: 100 000 users; 20 000 rooms (every fifth private) named after 8
//! topics; 500 000 memberships (5 per user); 1 000 000 events of ~100 bytes,
//! 200 000 of them in room 1 (a busy room) and 40 in each other room.
//! The statements explained are the store's own (`postgres::sql`).

use std::str::FromStr;
use std::time::{Duration, Instant};

use clap::Parser;
use confab_protocol::{RoomId, Seq, UserId};
use confab_store::postgres::{sql, url_with_database, PgStore, PgStoreOptions};
use confab_store::RoomFilter;
use confab_store::RoomReads;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, Row};

#[derive(Parser)]
#[command(about = "EXPLAIN ANALYZE the Postgres store's read paths on a million messages")]
struct Args {
    /// A Postgres server and database where this user may CREATE DATABASE.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/confab_bench"
    )]
    database_url: String,
    /// Keep the database afterwards (its name is printed).
    #[arg(long)]
    keep: bool,
}

/// The data set, built server-side in a few seconds.
const LOAD: &[(&str, &str)] = &[
    (
        "100 000 users",
        "INSERT INTO users (username, password_hash, created_at) \
         SELECT 'user' || g, 'x', 0 FROM generate_series(1, 100000) g",
    ),
    (
        "20 000 rooms",
        "INSERT INTO rooms (id, name, topic, name_folded, topic_folded, visibility, owner_id, \
                            created_at) \
         SELECT g, n, 'talk about ' || t, lower(n), 'talk about ' || t, \
                CASE WHEN g % 5 = 0 THEN 1 ELSE 0 END, (g % 100000) + 1, 0 \
         FROM generate_series(1, 20000) g, \
              LATERAL (SELECT (ARRAY['rust','cooking','gardening','chess','music','films', \
                                     'travel','books'])[g % 8 + 1] AS t) tt, \
              LATERAL (SELECT initcap(t) || ' room ' || g AS n) nn",
    ),
    (
        "500 000 memberships",
        "INSERT INTO memberships (room_id, user_id, role, joined_at) \
         SELECT ((u * 7 + k * 4001) % 20000) + 1, u, 0, k \
         FROM generate_series(1, 100000) u, generate_series(0, 4) k \
         ON CONFLICT DO NOTHING",
    ),
    (
        "200 000 events in room 1",
        "INSERT INTO events (room_id, seq, at, actor_id, actor_name, kind, body) \
         SELECT 1, g, g, (g % 100000) + 1, 'user' || ((g % 100000) + 1), 1, \
                substring(decode(repeat(md5(g::text), 7), 'hex') FROM 1 FOR 100) \
         FROM generate_series(1, 200000) g",
    ),
    (
        "800 000 events in rooms 2..20000",
        "INSERT INTO events (room_id, seq, at, actor_id, actor_name, kind, body) \
         SELECT 2 + (g % 19999), g / 19999 + 1, g, (g % 100000) + 1, \
                'user' || ((g % 100000) + 1), 1, \
                substring(decode(repeat(md5(g::text), 7), 'hex') FROM 1 FOR 100) \
         FROM generate_series(0, 799999) g",
    ),
    (
        "rooms.last_seq",
        "UPDATE rooms r SET last_seq = m.s \
         FROM (SELECT room_id, max(seq) AS s FROM events GROUP BY room_id) m \
         WHERE r.id = m.room_id",
    ),
];

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let admin = PgConnectOptions::from_str(&args.database_url)?;
    let name = format!("confab_explain_{}", std::process::id());
    let mut conn = admin.connect().await?;
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await?;
    let _ = conn.close().await;
    let db = admin.clone().database(&name);
    println!("database {name}");

    let result = run(&url_with_database(&args.database_url, &name), db).await;

    if args.keep {
        println!("kept database {name}");
    } else {
        let mut conn = admin.connect().await?;
        conn.execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .await?;
    }
    result
}

async fn run(url: &str, db: PgConnectOptions) -> Result<(), Box<dyn std::error::Error>> {
    let store = PgStore::open(url, PgStoreOptions::default()).await?;
    // As the store's own connections: no JIT (see postgres.rs).
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(db.options([("jit", "off")]))
        .await?;

    println!("\n## Loading");
    for (what, stmt) in LOAD {
        let t = Instant::now();
        let done = sqlx::query(*stmt).execute(&pool).await?;
        println!(
            "{what}: {} rows in {:.1} s",
            done.rows_affected(),
            t.elapsed().as_secs_f64()
        );
    }
    let t = Instant::now();
    pool.execute("VACUUM ANALYZE").await?;
    println!("VACUUM ANALYZE in {:.1} s", t.elapsed().as_secs_f64());
    let size: String = sqlx::query_scalar(
        "SELECT pg_size_pretty(pg_total_relation_size('events')) || ' (events, with its index)'",
    )
    .fetch_one(&pool)
    .await?;
    println!("{size}");

    // A member of 5 rooms, one of them private, for the search's
    // visibility check.
    let viewer: i64 = sqlx::query_scalar(
        "SELECT m.user_id FROM memberships m JOIN rooms r ON r.id = m.room_id \
         WHERE r.visibility = 1 ORDER BY m.user_id LIMIT 1",
    )
    .fetch_one(&pool)
    .await?;

    println!("\n## history: room and seq (busy room, newest page, then deep)");
    explain(&pool, sql::HISTORY, |q| {
        q.bind(1i64).bind(i64::MAX).bind(50i64)
    })
    .await?;
    explain(&pool, sql::HISTORY, |q| {
        q.bind(1i64).bind(1000i64).bind(50i64)
    })
    .await?;
    timed("store.history(room 1, before 1001, 50)", || async {
        store.history(RoomId(1), Seq(1001), 50).await.map(drop)
    })
    .await?;

    println!("\n## memberships by user");
    explain(&pool, sql::ROOMS_OF_USER, |q| q.bind(viewer)).await?;
    timed("store.rooms_of_user", || async {
        store.rooms_of_user(UserId(viewer as u64)).await.map(drop)
    })
    .await?;

    println!(
        "\n## room search (schema as migrated: trigram indexes if pg_trgm is available): \
         name or topic contains \"chess\" (2 000 visible matches), first page"
    );
    explain(&pool, sql::LIST_ROOMS, |q| {
        q.bind(viewer).bind("%chess%").bind(50i64).bind(0i64)
    })
    .await?;
    timed("store.list_rooms(\"chess\")", || async {
        store
            .list_rooms(UserId(viewer as u64), RoomFilter::Contains("chess"), 0, 50)
            .await
            .map(drop)
    })
    .await?;
    println!("\n## room search: a rare word (\"room 1234\", 1 match)");
    explain(&pool, sql::LIST_ROOMS, |q| {
        q.bind(viewer).bind("%room 1234 %").bind(50i64).bind(0i64)
    })
    .await?;
    timed("store.list_rooms(\"room 1234 \")", || async {
        store
            .list_rooms(
                UserId(viewer as u64),
                RoomFilter::Contains("room 1234 "),
                0,
                50,
            )
            .await
            .map(drop)
    })
    .await?;
    println!("\n## room list: empty query (all 16 000 visible rooms), first page");
    explain(&pool, sql::LIST_ROOMS, |q| {
        q.bind(viewer).bind("%%").bind(50i64).bind(0i64)
    })
    .await?;
    timed("store.list_rooms(\"\")", || async {
        store
            .list_rooms(UserId(viewer as u64), RoomFilter::Contains(""), 0, 50)
            .await
            .map(drop)
    })
    .await?;

    let trigram: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE indexname = 'rooms_name_trgm')",
    )
    .fetch_one(&pool)
    .await?;
    if trigram {
        println!("\n## room search without the trigram indexes, for comparison");
        pool.execute("DROP INDEX rooms_name_trgm; DROP INDEX rooms_topic_trgm; ANALYZE rooms")
            .await?;
        for (word, pattern) in [("chess", "%chess%"), ("room 1234 ", "%room 1234 %")] {
            explain(&pool, sql::LIST_ROOMS, |q| {
                q.bind(viewer).bind(pattern).bind(50i64).bind(0i64)
            })
            .await?;
            timed(
                &format!("store.list_rooms({word:?}) without pg_trgm"),
                || async {
                    store
                        .list_rooms(UserId(viewer as u64), RoomFilter::Contains(word), 0, 50)
                        .await
                        .map(drop)
                },
            )
            .await?;
        }
    } else {
        println!("\n(pg_trgm is not available here: the searches above scanned the table)");
    }

    println!("\n## start-up tail: 256 newest events of every room");
    explain(&pool, sql::RECENT_EVENTS, |q| q.bind(256i64)).await?;

    store.close().await;
    pool.close().await;
    Ok(())
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Prints `EXPLAIN (ANALYZE, BUFFERS)` of `stmt` with the binds `bind` adds.
async fn explain(
    pool: &PgPool,
    stmt: &str,
    bind: impl for<'q> FnOnce(PgQuery<'q>) -> PgQuery<'q>,
) -> Result<(), sqlx::Error> {
    let text = format!("EXPLAIN (ANALYZE, BUFFERS) {stmt}");
    let rows = bind(sqlx::query(sqlx::AssertSqlSafe(text)))
        .fetch_all(pool)
        .await?;
    println!("```");
    for row in rows {
        let line: String = row.try_get(0)?;
        println!("{line}");
    }
    println!("```");
    Ok(())
}

/// The median of 21 calls, as the store makes them (prepared, through the
/// pool).
async fn timed<F, Fut>(what: &str, mut call: F) -> Result<(), Box<dyn std::error::Error>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = confab_store::StoreResult<()>>,
{
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        call().await?;
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "{what}: median {:.3} ms over 21 calls",
        times[10].as_secs_f64() * 1e3
    );
    Ok(())
}
