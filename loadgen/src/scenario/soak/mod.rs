//! `soak`: mixed traffic for a long while against a `confabd` this load
//! generator starts itself and restarts at intervals — alternately a
//! graceful SIGTERM and a `kill -9` — while its clients reconnect, resume
//! and carry on. Then it checks what a long run can break:
//!
//! - no acknowledged message lost or duplicated, no gap in any room's seqs,
//!   and every event received live the same as history (read after a final
//!   restart) — [`check`];
//! - clients never missed events without being told (RESUME_GAP) —
//!   [`ledger::Follow`];
//! - the last server process's RSS and open descriptors, once every client
//!   has gone, back within a tolerance of its baseline (measured after its
//!   warm-up, under load, not counting the client sockets open then), and
//!   its connection gauge back to 0.
//!
//! Any failure makes the run exit non-zero, saying which. Modules:
//! [`server`] (the child process), [`population`] (users, rooms, clients),
//! [`traffic`] (the loops), [`ledger`] (what clients saw), [`check`] (the
//! verdict), [`report`] (what is printed).

mod check;
mod ledger;
mod population;
mod report;
mod server;
mod traffic;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Context;
use confab_sdk::{Client, RoomEvent, RoomId, Seq};

use ledger::{Generation, Tag};
use population::{Shape, Soak};
use report::{Baseline, LoadAverage, ProcessReport, Restarts, SoakReport};
use server::{Confabd, Resources, ServerSpec};

/// `confab-loadgen soak` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct SoakArgs {
    /// The confabd binary: the soak starts, restarts and finally stops it.
    #[arg(long)]
    pub confabd: PathBuf,
    /// The server's data directory (created if missing; its users are reused by later runs, rooms are new each run).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// How long the traffic runs (e.g. 60s, 30m).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Restart the server this often, alternately with SIGTERM and kill -9.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub restart_every: Duration,
    /// The last server process carries traffic at least this long (its resources are checked); default: --restart-every.
    #[arg(long, value_parser = parse_duration)]
    pub final_segment: Option<Duration>,
    /// Time after the last server process starts before its baseline RSS and descriptors are read.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Wait after every client has disconnected before the final reading.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub settle: Duration,
    /// Users that chat (each on its own connection, in two public rooms).
    #[arg(long, default_value_t = 12)]
    pub chatters: usize,
    /// Public rooms (joined and left by the chatters).
    #[arg(long, default_value_t = 4)]
    pub rooms: usize,
    /// Private rooms, each with a guest invited, kicked, banned and unbanned in turn.
    #[arg(long, default_value_t = 2)]
    pub private_rooms: usize,
    /// Users that log in with their password for short sessions.
    #[arg(long, default_value_t = 4)]
    pub visitors: usize,
    /// Messages per second offered by the chatters together.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// A chatter leaves a public room and rejoins it about this often.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub churn_every: Duration,
    /// A chatter's client is replaced by one that resumes about this often.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub resume_every: Duration,
    /// A visitor logs in for a short session about this often.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub login_every: Duration,
    /// A chatter reads a page of history about this often.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub history_every: Duration,
    /// Each private room's governance loop takes a step about this often.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub governance_every: Duration,
    /// The final RSS may exceed the baseline by at most this many MiB.
    #[arg(long, default_value_t = 8.0)]
    pub rss_tolerance_mib: f64,
    /// The final descriptor count may exceed the baseline (without client sockets) by at most this many.
    #[arg(long, default_value_t = 4)]
    pub fd_tolerance: u64,
    /// Usernames are PREFIX-c0, PREFIX-g0, PREFIX-v0, …
    #[arg(long, default_value = "soak")]
    pub prefix: String,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// One more confabd flag (repeatable), after the soak's own: --server-arg=--shards=4.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
}

/// `90`, `90s`, `500ms`, `30m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, unit) = t
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((t, "s"), |i| t.split_at(i));
    let n: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (like 90s, 500ms, 30m, 1h)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{text:?}: the unit must be ms, s, m or h")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{text:?}: {e}"))
}

/// Runs the soak (on this thread) and prints its report; an error names
/// every check that failed.
pub fn main(args: SoakArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let local = tokio::task::LocalSet::new();
    let limit = args.duration + Duration::from_secs(600);
    // Leaving early drops the run and with it the server, which kills it.
    let report = local.block_on(&rt, async {
        tokio::select! {
            r = tokio::time::timeout(limit, run(&args)) => {
                r.unwrap_or_else(|_| anyhow::bail!("the soak exceeded {limit:?}"))
            }
            signal = interrupted() => anyhow::bail!("interrupted by {signal}; the server was stopped"),
        }
    })?;
    print!("{}", report.text());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    anyhow::ensure!(
        report.failures.is_empty(),
        "soak failed:\n  - {}",
        report.failures.join("\n  - ")
    );
    Ok(())
}

/// Waits for SIGINT or SIGTERM.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        _ => std::future::pending().await,
    }
}

/// When the restarts happen, from the start of traffic: every
/// `restart_every`, as long as the process after it still has the final
/// segment (and twice the warm-up) before the end.
fn restart_times(args: &SoakArgs) -> Vec<Duration> {
    let every = args.restart_every.max(Duration::from_secs(1));
    let last = args.final_segment.unwrap_or(every).max(args.warmup * 2);
    (1u32..)
        .map(|k| every * k)
        .take_while(|&t| t + last <= args.duration)
        .collect()
}

async fn run(args: &SoakArgs) -> anyhow::Result<SoakReport> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let port = ServerSpec::spare_port(0)?;
    let spec = ServerSpec {
        bin: args.confabd.clone(),
        data_dir: args.data_dir.canonicalize()?,
        addr: ([127, 0, 0, 1], port).into(),
        metrics: ([127, 0, 0, 1], ServerSpec::spare_port(port)?).into(),
        extra: args.server_args.clone(),
    };
    let load_start = LoadAverage::read();
    let mut server = spec.start(0).await?;
    let url = format!("confab://{}", spec.addr);
    eprintln!(
        "soak: confabd pid {} at {url}, metrics at http://{}/metrics, data in {}",
        server.pid,
        spec.metrics,
        spec.data_dir.display()
    );
    let shape = Shape {
        chatters: args.chatters,
        public_rooms: args.rooms,
        private_rooms: args.private_rooms,
        visitors: args.visitors,
    };
    let soak = population::populate(&url, &args.prefix, shape, Tag::random()).await?;
    let started = Instant::now();
    let workers = spawn_traffic(&soak, args);
    let status = Rc::new(report::Status::new(started, server.pid));
    let progress = report::spawn_progress(soak.clone(), status.clone());

    let mut failures = Vec::new();
    let mut processes = Vec::new();
    let mut killed: BTreeSet<Generation> = BTreeSet::new();
    let mut restarts = Restarts::default();
    for (k, at) in restart_times(args).into_iter().enumerate() {
        let mut p = ProcessReport::new(&server);
        if server.started + args.warmup < started + at {
            sleep_until(server.started + args.warmup).await;
            p.baseline = Some(baseline(&spec, &server).await?);
        }
        sleep_until(started + at).await;
        p.before_restart = server.resources(&spec).await.ok();
        let generation = server.generation;
        if let Some(exit) = server.exited() {
            failures.push(format!(
                "server process {generation} exited on its own ({exit}); its log:\n{}",
                server.log_tail()
            ));
            killed.insert(generation);
            p.end("exiting on its own");
        } else if k % 2 == 0 {
            let (exit, took) = server.terminate(Duration::from_secs(30)).await?;
            p.shutdown_seconds = Some(took.as_secs_f64());
            if !exit.success() {
                failures.push(format!(
                    "server process {generation} exited with {exit} after SIGTERM"
                ));
            }
            restarts.sigterm += 1;
            p.end("SIGTERM");
        } else {
            server.kill_9()?;
            killed.insert(generation);
            restarts.kill_9 += 1;
            p.end("kill -9");
        }
        processes.push(p);
        soak.generation.set(generation + 1);
        server = spec.start(generation + 1).await?;
        status.restarted(server.pid, &restarts);
    }

    // The last process: its baseline after the warm-up, then the rest of
    // the traffic.
    let mut last = ProcessReport::new(&server);
    if server.started + args.warmup < started + args.duration {
        sleep_until(server.started + args.warmup).await;
        last.baseline = Some(baseline(&spec, &server).await?);
    } else {
        failures.push(format!(
            "the last server process ran less than --warmup {:?}: no baseline",
            args.warmup
        ));
    }
    sleep_until(started + args.duration).await;
    if let Some(exit) = server.exited() {
        anyhow::bail!(
            "server process {} exited on its own ({exit}); its log:\n{}",
            server.generation,
            server.log_tail()
        );
    }
    let traffic_seconds = started.elapsed().as_secs_f64();
    eprintln!("soak: traffic stops; waiting for answers in flight, then disconnecting");
    soak.stop.set(true);
    for w in workers {
        let _ = w.await;
    }
    for u in soak.chatters.iter().chain(&soak.guests) {
        population::disconnect(u).await;
    }
    status.stop();
    let _ = progress.await;

    // Every client gone: the gauge must reach 0, then RSS and descriptors
    // are read after a short settle.
    let gauge_deadline = Instant::now() + Duration::from_secs(15);
    let mut open = spec.connections().await?;
    while open > 0 && Instant::now() < gauge_deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        open = spec.connections().await?;
    }
    if open > 0 {
        failures.push(format!(
            "connections leaked: confab_connections is {open} 15 s after every client disconnected"
        ));
    }
    tokio::time::sleep(args.settle).await;
    let end = server.resources(&spec).await?;
    last.before_restart = Some(end);
    let tolerance = report::Tolerance {
        rss_bytes: (args.rss_tolerance_mib * 1024.0 * 1024.0) as u64,
        fds: args.fd_tolerance,
    };
    let last_process = last.baseline.map(|baseline| report::LastProcess {
        generation: last.generation,
        baseline,
        end,
    });
    if let Some(l) = &last_process {
        failures.extend(report::resource_failures(&l.baseline, &end, &tolerance));
    }

    // A final kill -9 with nothing in flight: everything acknowledged must
    // be on disk. Then history from the restarted server.
    let generation = server.generation;
    server.kill_9()?;
    restarts.final_kill_9 = 1;
    last.end("kill -9 (after the traffic, before the check)");
    processes.push(last);
    soak.generation.set(generation + 1);
    let server = spec.start(generation + 1).await?;
    let mut checker = ProcessReport::new(&server);
    eprintln!("soak: reading every room's history from the restarted server");
    let histories = read_histories(&soak).await?;
    let verdict = {
        let ledger = soak.ledger.borrow();
        check::check(&ledger, &histories, &killed, &soak.tag)
    };
    failures.extend(verdict.failures());
    failures.extend(report::ledger_failures(&soak.ledger.borrow()));
    let (exit, took) = server.terminate(Duration::from_secs(30)).await?;
    if !exit.success() {
        failures.push(format!("the final server exited with {exit} after SIGTERM"));
    }
    checker.shutdown_seconds = Some(took.as_secs_f64());
    checker.end("SIGTERM (after history was read)");
    processes.push(checker);
    failures.extend(processes.iter().filter_map(ProcessReport::log_failure));
    let mut ledger = soak.ledger.borrow_mut();
    ledger.counters.own_not_received = ledger.own_waiting.len() as u64;
    Ok(SoakReport {
        passed: failures.is_empty(),
        failures,
        params: report::params(args),
        traffic_seconds,
        counters: ledger.counters.clone(),
        restarts,
        processes,
        verdict,
        live_conflicts: ledger.live_conflicts.clone(),
        delivery_faults: ledger.delivery_faults.clone(),
        history_faults: ledger.history_faults.clone(),
        unexpected: ledger.unexpected.clone(),
        last_process,
        tolerance,
        connections_end: open,
        load: report::Load {
            start: load_start,
            end: LoadAverage::read(),
            mean_1m: status.mean_load(),
        },
    })
}

fn spawn_traffic(soak: &Rc<Soak>, args: &SoakArgs) -> Vec<tokio::task::JoinHandle<()>> {
    use tokio::task::spawn_local as spawn;
    let mut tasks = Vec::new();
    let period = Duration::from_secs_f64(soak.chatters.len() as f64 / args.rate.max(0.1));
    for u in &soak.chatters {
        tasks.push(spawn(traffic::chat(soak.clone(), u.clone(), period)));
    }
    tasks.push(spawn(traffic::churn(soak.clone(), args.churn_every)));
    tasks.push(spawn(traffic::resume(soak.clone(), args.resume_every)));
    tasks.push(spawn(traffic::visits(soak.clone(), args.login_every)));
    tasks.push(spawn(traffic::history(soak.clone(), args.history_every)));
    for p in 0..soak.private.len() {
        tasks.push(spawn(traffic::governance(
            soak.clone(),
            p,
            args.governance_every,
        )));
    }
    tasks
}

async fn sleep_until(at: Instant) {
    tokio::time::sleep_until(at.into()).await;
}

/// The server's resources after its warm-up, under load: RSS and
/// descriptors, and the descriptors not counting client sockets (the
/// least of three readings, as a socket may be open before it is counted).
async fn baseline(spec: &ServerSpec, server: &Confabd) -> anyhow::Result<Baseline> {
    let mut readings = Vec::new();
    for i in 0..3 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        readings.push(server.resources(spec).await?);
    }
    let at = readings[readings.len() - 1];
    let without = readings
        .iter()
        .map(|r: &Resources| r.fds.saturating_sub(r.connections))
        .min()
        .unwrap_or(at.fds);
    Ok(Baseline {
        at,
        fds_without_connections: without,
        seconds_after_start: server.started.elapsed().as_secs_f64(),
    })
}

/// Every room's whole history, oldest first, read by its owner.
async fn read_histories(soak: &Soak) -> anyhow::Result<BTreeMap<RoomId, Vec<RoomEvent>>> {
    let mut owners: Vec<(RoomId, &str)> = Vec::new();
    for u in &soak.chatters {
        for &room in u.owns.borrow().iter() {
            owners.push((room, &u.token));
        }
    }
    let mut out = BTreeMap::new();
    for (room, token) in owners {
        let c = Client::connect(
            &soak.url,
            population::short_options().with_token(token.to_owned()),
        )
        .await
        .context("connecting to read history")?;
        let mut events = Vec::new();
        let mut before: Option<Seq> = None;
        loop {
            let page = c
                .history(room, before, 200)
                .await
                .with_context(|| format!("reading room {room}'s history"))?;
            before = page.events.last().map(|e| e.seq);
            let more = page.has_more && before.is_some();
            events.extend(page.events);
            if !more {
                break;
            }
        }
        c.close().await;
        events.reverse();
        out.insert(room, events);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        soak: SoakArgs,
    }

    fn args(extra: &[&str]) -> SoakArgs {
        let base = ["soak", "--confabd", "confabd", "--data-dir", "d"];
        Cli::parse_from(base.iter().chain(extra)).soak
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn restarts_leave_the_last_process_its_final_segment() {
        let secs =
            |a: &SoakArgs| -> Vec<u64> { restart_times(a).iter().map(Duration::as_secs).collect() };
        let a = args(&["--duration", "60s", "--restart-every", "20s"]);
        assert_eq!(secs(&a), [20, 40]);
        let a = args(&[
            "--duration",
            "30m",
            "--restart-every",
            "1m",
            "--final-segment",
            "10m",
        ]);
        assert_eq!(secs(&a).len(), 20);
        assert_eq!(secs(&a).last(), Some(&1200));
        let a = args(&["--duration", "8s", "--restart-every", "20s"]);
        assert!(restart_times(&a).is_empty());
    }
}
