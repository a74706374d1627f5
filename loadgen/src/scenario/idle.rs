//! `idle`: N authenticated connections, each joined to a room, doing
//! nothing but an occasional PING; measures the server's RSS growth per
//! connection.
//!
//! Users and memberships are created first (on short-lived set-up
//! connections), the server's RSS is read once it settles ([`SETTLE`]),
//! then the idle connections authenticate by token alone and the RSS is
//! read again: the difference is what idle connections cost, not what
//! registration cost.
//!
//! Against NATS (`nats://`) there are no users: each idle connection
//! connects and subscribes to one of the rooms' subjects (`room.<r>`),
//! confirmed by a PING/PONG, and PINGs every 20 s.
//!
//! A process here may hold at most about 20,000 open files (a hard limit),
//! so both sides stay below it: measure at ~19,000 and extrapolate.
//! Connections are spread over several 127.0.0.x source addresses so that
//! set-up and idle connections together do not run out of ephemeral ports.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{Ctx, Receiver};
use crate::nats;
use crate::net::Protocol;
use crate::probe;
use crate::setup;
use crate::stats::IdleReport;
use confab_protocol::{ResumePoint, Seq};

/// How long the server is left alone between the set-up and the reading
/// before the connections. Longer than tokio's keep-alive of idle
/// blocking-pool threads (10 s): the set-up hashes every password on
/// those threads (how many the storm spawned varies from run to run),
/// and with a shorter wait they were still alive at the first reading
/// and exited before the second, so the memory they gave back was
/// subtracted from what the connections cost, a different amount each
/// run (benches/BENCHMARKS.md, "Idle connections: the allocator's share
/// and the spread").
const SETTLE: Duration = Duration::from_secs(12);

pub struct IdleArgs {
    pub connections: usize,
    pub rooms: usize,
    pub hold: Duration,
    pub source_ips: usize,
    /// Resume this many events back in each connection's HELLO (0: none).
    pub resume_missed: u64,
}

pub async fn run(ctx: &Rc<Ctx>, args: &IdleArgs) -> anyhow::Result<IdleReport> {
    let n = args.connections;
    let rooms = args.rooms.clamp(1, n.max(1));
    let nats = ctx.connector.protocol() == Protocol::Nats;
    let mut population_seconds = 0.0;
    let mut users = Vec::new();
    let mut room_ids = Vec::new();
    if !nats {
        ctx.set_phase(format!("idle: creating {n} users in {rooms} rooms"));
        let started = Instant::now();
        let pop = setup::populate(&ctx.connector, &ctx.prefix, n, rooms, n, 0, |done| {
            if done % 1000 == 0 {
                ctx.set_phase(format!("idle: {done}/{n} users ready"));
            }
        })
        .await?;
        population_seconds = started.elapsed().as_secs_f64();
        users = pop.users;
        room_ids = pop.rooms;
    }
    // Where each room stands, for resume points that miss its last events.
    let mut resume_after = Vec::new();
    if args.resume_missed > 0 && !nats {
        ctx.set_phase("idle: reading each room's latest seq");
        for (r, room) in room_ids.iter().enumerate() {
            let last = setup::last_seq(&ctx.connector, &users[r].token, *room, r).await?;
            resume_after.push(Seq(last.0.saturating_sub(args.resume_missed)));
        }
    }
    let (mut replayed_events, mut resume_gaps) = (0u64, 0u64);
    ctx.set_phase("idle: letting the server settle");
    tokio::time::sleep(SETTLE).await;
    let before = ctx.probe.sample().await;

    ctx.set_phase(format!("idle: opening {n} connections"));
    let rec = ctx.recorder("idle");
    let started = Instant::now();
    let mut writers = Vec::with_capacity(n);
    let mut failed = 0;
    // Small read buffers here: idle connections receive almost nothing.
    for chunk_start in (0..n).step_by(1000) {
        let len = (n - chunk_start).min(1000);
        let conn_base = n + writers.len() + failed;
        let opened = if nats {
            let subject = |i: usize| nats::subject((chunk_start + i) % rooms);
            ctx.open_all_nats(len, conn_base, 512, subject)
                .await
                .map(|(conns, _)| {
                    conns
                        .into_iter()
                        .map(|(rd, wr)| (Receiver::Nats(rd), wr))
                        .collect::<Vec<_>>()
                })
        } else {
            let users = &users[chunk_start..chunk_start + len];
            if resume_after.is_empty() {
                ctx.open_all(users, conn_base, 512).await.map(|conns| {
                    conns
                        .into_iter()
                        .map(|(rd, wr)| (Receiver::Confab(rd), wr))
                        .collect()
                })
            } else {
                // User u belongs to room u % rooms (setup::populate).
                let point = |i: usize| {
                    let r = (chunk_start + i) % rooms;
                    vec![ResumePoint {
                        room: room_ids[r],
                        after: resume_after[r],
                    }]
                };
                let expect = args.resume_missed as usize;
                ctx.open_all_resuming(users, conn_base, 512, point, expect)
                    .await
                    .map(|conns| {
                        conns
                            .into_iter()
                            .map(|(rd, wr, replay)| {
                                replayed_events += replay.events as u64;
                                resume_gaps += replay.gaps as u64;
                                (Receiver::Confab(rd), wr)
                            })
                            .collect()
                    })
            }
        };
        match opened {
            Ok(conns) => {
                for (rd, wr) in conns {
                    ctx.spawn_reader(rd, rec.clone());
                    writers.push(wr);
                }
            }
            Err(e) => {
                failed += len;
                eprintln!("idle: a batch of connections failed: {e:#}");
            }
        }
        ctx.set_phase(format!("idle: {}/{n} connections open", writers.len()));
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    ctx.spawn_keepalive(writers, Duration::from_secs(20));
    ctx.set_phase(format!(
        "idle: holding {} connections",
        ctx.connections.get()
    ));
    tokio::time::sleep(args.hold).await;
    let after = ctx.probe.sample().await;
    let open = ctx.connections.get();
    let (rss_before, rss_after) = (
        before.map(|s| s.rss_bytes).unwrap_or(0),
        after.map(|s| s.rss_bytes).unwrap_or(0),
    );
    Ok(IdleReport {
        connections: open,
        failed,
        rooms,
        source_addresses: args.source_ips,
        population_seconds,
        connect_seconds,
        resume_missed: if resume_after.is_empty() {
            0
        } else {
            args.resume_missed
        },
        replayed_events,
        resume_gaps,
        server_rss_before_bytes: rss_before,
        server_rss_after_bytes: rss_after,
        server_rss_per_connection_bytes: if open == 0 {
            0.0
        } else {
            rss_after.saturating_sub(rss_before) as f64 / open as f64
        },
        server_open_fds: after
            .and_then(|s| s.open_fds)
            .or_else(|| probe::fds_of(&ctx.probe)),
        loadgen_rss_bytes: probe::self_sample().rss_bytes,
    })
}
