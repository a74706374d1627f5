//! `confab-loadgen`: measures a Confab server under load — and, with the
//! same workload, schedule and latency accounting, a `nats-server`
//! (`nats://`), the reference every figure is read against.
//!
//! - [`net`]: dialling (TCP, TLS, WebSocket; plain TCP for NATS) and
//!   in-place frame parsing from large read buffers.
//! - [`nats`]: the NATS client protocol, as much as the scenarios need.
//! - [`setup`]: bulk users (register or reuse) and rooms.
//! - [`scenario`]: `fanout`/`big-room` (with `--sweep`), `idle`, `churn`,
//!   `history`, `mixed`; `soak`, which runs its own `confabd` and restarts
//!   it under mixed traffic.
//! - [`pacer`]: the open-loop schedule and sub-millisecond waits.
//! - [`clock`]: the monotonic nanosecond clock every timestamp comes from.
//! - [`stats`]: intended-time latency into HDR histograms; the report.
//! - [`probe`]: server and self CPU/RSS from `/proc` or `/metrics`; the
//!   machine's background load from `/proc/stat`.
//! - [`compare`]: two reports side by side with their ratios.
//! - [`exporter`]: the load generator's own `/metrics`.
//! - [`capacity`]: `blast` + `capacity`, the receive-speed self-test.
//!
//! Everything runs on one thread; every run is bounded by `--max-seconds`
//! and targets loopback addresses only.

// One `unsafe` block, allowed where it is (`pacer.rs`: registering the
// timerfd with tokio's reactor); none anywhere else.
#![deny(unsafe_code)]

mod capacity;
mod clock;
mod compare;
mod exporter;
mod nats;
mod net;
mod pacer;
mod probe;
mod scenario;
mod sender;
mod setup;
mod stats;

use std::cell::{Cell, RefCell};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use scenario::fanout::{Fanout, Sweep};
use scenario::{Ctx, Timing};
use stats::{RunReport, StepReport};

#[derive(Parser)]
#[command(
    name = "confab-loadgen",
    version,
    about = "Load generator for the Confab chat server (loopback targets only)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct Common {
    /// Server URL (loopback only): confab://, confabs:// (TLS), ws://HOST:PORT/ws or wss://HOST:PORT/ws; or nats://HOST:PORT, a nats-server to compare with (fanout, big-room, idle). Several Confab URLs, comma-separated (the nodes of one cluster): measured clients are spread over them round-robin (fanout and big-room: the members of each room over every node, so senders and receivers land on different nodes), and a client whose connection ends reopens it on the next node.
    #[arg(long, default_value = "confab://127.0.0.1:7400")]
    url: String,
    /// How the open-loop pacer waits for a send's time.
    #[arg(long, value_enum, default_value_t = pacer::Pacing::Thread)]
    pacing: pacer::Pacing,
    /// confabs:// and wss://: trust this PEM certificate (e.g. the server's DATA_DIR/self-signed-cert.pem).
    #[arg(long, conflicts_with = "tls_fingerprint")]
    ca_cert: Option<std::path::PathBuf>,
    /// confabs:// and wss://: trust exactly the certificate with this SHA-256 fingerprint (64 hex digits, colons optional).
    #[arg(long)]
    tls_fingerprint: Option<String>,
    /// The server's process id: its CPU and RSS are read from /proc (exact). A cluster's nodes: their ids, comma-separated (summed, and each node's CPU reported on its own).
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// The server's admin address (host:port): CPU and RSS are scraped from /metrics when no --server-pid is given.
    #[arg(long)]
    server_metrics: Option<SocketAddr>,
    /// This load generator's own /metrics listener, or "off".
    #[arg(long, default_value = "127.0.0.1:9465")]
    metrics_listen: String,
    /// Write the JSON report here ("-" for stdout).
    #[arg(long)]
    json: Option<String>,
    /// Usernames are PREFIX-N; users are reused across runs against the same server.
    #[arg(long, default_value = "lg")]
    prefix: String,
    /// Read buffer per receiving connection, in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    read_buf: usize,
    /// Measured connections opened at once (each a full connect, HELLO and, with resume points, replay): a reconnect storm has many in flight.
    #[arg(long, default_value_t = crate::setup::SETUP_CONCURRENCY)]
    connect_concurrency: usize,
    /// Spread connections over this many source addresses 127.0.0.1, 127.0.0.2, …
    #[arg(long, default_value_t = 1)]
    source_ips: usize,
    /// Hard bound on the whole run, set-up included.
    #[arg(long, default_value_t = 900)]
    max_seconds: u64,
}

#[derive(Args, Clone, Copy)]
struct Window {
    /// Seconds of traffic before the measured window.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Most seconds to wait for late deliveries after the window.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
}

impl Window {
    fn timing(&self) -> Timing {
        let secs = |s: f64| Duration::from_secs_f64(s.clamp(0.0, 3600.0));
        Timing {
            warmup: secs(self.warmup),
            duration: secs(self.duration.max(0.1)),
            drain: secs(self.drain),
        }
    }
}

#[derive(Args, Clone, Copy)]
struct SweepArgs {
    /// Sweep: raise the rate geometrically until a step misses the bounds; report the highest passing rate.
    #[arg(long)]
    sweep: bool,
    /// First sweep rate (messages per second).
    #[arg(long, default_value_t = 1000.0)]
    sweep_start: f64,
    /// Rate multiplier between sweep steps.
    #[arg(long, default_value_t = 1.5)]
    sweep_factor: f64,
    /// Most sweep steps.
    #[arg(long, default_value_t = 12)]
    sweep_steps: usize,
    /// p99 bound of a passing step, in milliseconds.
    #[arg(long, default_value_t = 100.0)]
    p99_ms: f64,
    /// Smallest delivered fraction of a passing step.
    #[arg(long, default_value_t = 0.95)]
    min_delivered: f64,
}

#[derive(Args, Clone, Copy)]
struct FanoutArgs {
    /// Rooms.
    #[arg(long, default_value_t = 100)]
    rooms: usize,
    /// Members per room (each on its own connection).
    #[arg(long, default_value_t = 10)]
    members: usize,
    /// Messages per second over all rooms (each is `members` deliveries).
    #[arg(long, default_value_t = 5000.0)]
    rate: f64,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 100)]
    payload: usize,
}

#[derive(Subcommand)]
enum Cmd {
    /// R rooms × M members, open-loop publishing at a fixed rate.
    Fanout {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        fanout: FanoutArgs,
        #[command(flatten)]
        window: Window,
        #[command(flatten)]
        sweep: SweepArgs,
    },
    /// One big room (defaults: 1 room × 1,000 members, 100 msgs/s).
    BigRoom {
        #[command(flatten)]
        common: Common,
        /// Members of the room.
        #[arg(long, default_value_t = 1000)]
        members: usize,
        /// Messages per second.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Message body size in bytes.
        #[arg(long, default_value_t = 100)]
        payload: usize,
        #[command(flatten)]
        window: Window,
        #[command(flatten)]
        sweep: SweepArgs,
    },
    /// N idle authenticated connections joined to rooms; server RSS per connection.
    Idle {
        #[command(flatten)]
        common: Common,
        /// Idle connections (a process here may hold at most ~20,000 open files).
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        /// Rooms the connections' users are spread over.
        #[arg(long, default_value_t = 100)]
        rooms: usize,
        /// Seconds to hold the connections before measuring.
        #[arg(long, default_value_t = 10.0)]
        hold: f64,
        /// Reconnect storm: each connection's HELLO carries a resume point
        /// for its room this many events before the room's latest, and it
        /// counts as open only once those events (or a RESUME_GAP) arrived.
        /// 0: HELLO with the token alone. Confab only.
        #[arg(long, default_value_t = 0)]
        resume_missed: u64,
    },
    /// Typing and presence in one big room: what the server forwards of them, against what forwarding every request would send, and its CPU.
    Chatter {
        #[command(flatten)]
        common: Common,
        /// Members of the room, all connected.
        #[arg(long, default_value_t = 1000)]
        members: usize,
        /// Members sending TYPING_START every --typing-every-ms.
        #[arg(long, default_value_t = 100)]
        typists: usize,
        #[arg(long, default_value_t = 500)]
        typing_every_ms: u64,
        /// Members toggling SET_AWAY every --flap-every-ms.
        #[arg(long, default_value_t = 100)]
        flappers: usize,
        #[arg(long, default_value_t = 300)]
        flap_every_ms: u64,
        #[command(flatten)]
        window: Window,
    },
    /// Connect → authenticate → join → leave → disconnect cycles per second.
    Churn {
        #[command(flatten)]
        common: Common,
        /// Cycles per second.
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
        /// Users taking turns (each in at most one cycle at a time).
        #[arg(long, default_value_t = 200)]
        users: usize,
        #[command(flatten)]
        window: Window,
    },
    /// Paged history reads per second.
    History {
        #[command(flatten)]
        common: Common,
        /// HISTORY requests per second.
        #[arg(long, default_value_t = 500.0)]
        rate: f64,
        /// Reader connections.
        #[arg(long, default_value_t = 10)]
        readers: usize,
        /// Messages stored in the room first.
        #[arg(long, default_value_t = 2000)]
        messages: usize,
        /// Events per page (1-200).
        #[arg(long, default_value_t = 50)]
        page: u32,
        #[command(flatten)]
        window: Window,
    },
    /// Fan-out, churn and history at once.
    Mixed {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        fanout: FanoutArgs,
        /// Churn cycles per second.
        #[arg(long, default_value_t = 20.0)]
        churn_rate: f64,
        /// History requests per second.
        #[arg(long, default_value_t = 100.0)]
        history_rate: f64,
        #[command(flatten)]
        window: Window,
    },
    /// Mixed traffic against a confabd it starts and restarts (SIGTERM, kill -9), then checks nothing acknowledged was lost or duplicated, live events match history, and the last server's RSS, descriptors and connection gauge came back.
    Soak(scenario::soak::SoakArgs),
    /// A stand-in server that floods connections with EVENT frames (for `capacity`).
    Blast {
        /// Loopback address to listen on.
        #[arg(long, default_value = "127.0.0.1:7499")]
        listen: SocketAddr,
        /// Message body size in bytes.
        #[arg(long, default_value_t = 100)]
        payload: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
    /// Two JSON reports of one scenario side by side, with ratios first/second (e.g. Confab/NATS).
    Compare {
        /// The first report (e.g. target/bench/fanout-confab.json).
        first: std::path::PathBuf,
        /// The second report, the reference (e.g. target/bench/fanout-nats.json).
        second: std::path::PathBuf,
        /// Write the combined JSON here.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// Output style.
        #[arg(long, value_enum, default_value_t = compare::Format::Text)]
        format: compare::Format,
    },
    /// How many frames per second this load generator receives from a `blast`.
    Capacity {
        #[command(flatten)]
        common: Common,
        /// Connections to the blast.
        #[arg(long, default_value_t = 8)]
        connections: usize,
        /// Seconds measured.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
}

/// The pacing a run used, for its report: `--pacing thread` sends from a
/// thread of its own only in `fanout` and `big-room` over plain TCP to one
/// server, and elsewhere waits on a timerfd in the event loop.
fn pacing_name(pacing: pacer::Pacing, from_thread: bool) -> String {
    match pacing {
        pacer::Pacing::Thread if !from_thread => "timerfd (no sending thread here)".into(),
        p => format!("{p:?}").to_lowercase(),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Cmd::Soak(args) = cli.cmd {
        return scenario::soak::main(args);
    }
    if let Cmd::Blast {
        listen,
        payload,
        seconds,
    } = cli.cmd
    {
        return capacity::blast(listen, payload, seconds.min(3600));
    }
    if let Cmd::Compare {
        first,
        second,
        json,
        format,
    } = &cli.cmd
    {
        let read = |p: &std::path::Path| -> anyhow::Result<RunReport> {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
        };
        let c = compare::compare(read(first)?, read(second)?)?;
        print!("{}", c.render(*format));
        if let Some(path) = json {
            std::fs::write(path, serde_json::to_string_pretty(&c)? + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
        }
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let local = tokio::task::LocalSet::new();
    let common = match &cli.cmd {
        Cmd::Fanout { common, .. }
        | Cmd::BigRoom { common, .. }
        | Cmd::Idle { common, .. }
        | Cmd::Chatter { common, .. }
        | Cmd::Churn { common, .. }
        | Cmd::History { common, .. }
        | Cmd::Mixed { common, .. }
        | Cmd::Capacity { common, .. } => common.clone(),
        Cmd::Blast { .. } | Cmd::Compare { .. } | Cmd::Soak(_) => unreachable!("handled above"),
    };
    let limit = Duration::from_secs(common.max_seconds.max(10));
    let report = local.block_on(&rt, async move {
        match tokio::time::timeout(limit, run(cli.cmd, &common)).await {
            Ok(r) => r,
            Err(_) => anyhow::bail!("the run exceeded --max-seconds {}", limit.as_secs()),
        }
    })?;
    drop(local);
    drop(rt);
    if let Some(report) = report {
        print!("{}", report.0.table());
        if let Some(path) = report.1 {
            let json = serde_json::to_string_pretty(&report.0)?;
            if path == "-" {
                println!("{json}");
            } else {
                std::fs::write(&path, json + "\n").with_context(|| format!("writing {path}"))?;
            }
        }
    }
    Ok(())
}

type Output = Option<(RunReport, Option<String>)>;

/// `--ca-cert` or `--tls-fingerprint`, if given.
fn tls_trust(common: &Common) -> anyhow::Result<Option<confab_sdk::TlsTrust>> {
    Ok(match (&common.ca_cert, &common.tls_fingerprint) {
        (Some(path), _) => Some(confab_sdk::TlsTrust::Pem(
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )),
        (None, Some(hex)) => Some(
            confab_sdk::TlsTrust::fingerprint(hex)
                .map_err(|e| anyhow::anyhow!("--tls-fingerprint: {e}"))?,
        ),
        (None, None) => None,
    })
}

async fn run(cmd: Cmd, common: &Common) -> anyhow::Result<Output> {
    let probe = match (common.server_pid.is_empty(), common.server_metrics) {
        (false, _) => probe::ServerProbe::Pids(common.server_pid.clone()),
        (true, Some(addr)) => {
            anyhow::ensure!(
                addr.ip().is_loopback(),
                "--server-metrics must be a loopback address"
            );
            probe::ServerProbe::Metrics(addr)
        }
        _ => probe::ServerProbe::None,
    };
    let source_ips = match &cmd {
        Cmd::Idle { .. } => common.source_ips.max(4),
        _ => common.source_ips,
    };
    let connector = net::Connector::new(&common.url, source_ips, tls_trust(common)?)?;
    let target = connector.protocol();
    if target == net::Protocol::Nats {
        anyhow::ensure!(
            matches!(cmd, Cmd::Fanout { .. } | Cmd::BigRoom { .. } | Cmd::Idle { .. }),
            "nats:// runs fanout, big-room and idle only (NATS has no accounts, history or rooms to join)"
        );
    }
    let system_start = probe::system_sample();
    let server_start = probe.sample().await;
    let self_start = probe::self_sample();
    let spread = (0..connector.nodes())
        .map(|i| scenario::NodeSpread {
            url: connector.url_of(i).to_owned(),
            ..Default::default()
        })
        .collect();
    let ctx = Rc::new(Ctx {
        connector,
        probe,
        prefix: common.prefix.clone(),
        read_buf: common.read_buf.clamp(4096, 16 << 20),
        connect_concurrency: common.connect_concurrency.clamp(1, 10_000),
        pacing: common.pacing,
        recorders: RefCell::new(Vec::new()),
        connections: Cell::new(0),
        offered: RefCell::new(Vec::new()),
        phase: RefCell::new("starting".into()),
        stop: Cell::new(false),
        spread: RefCell::new(spread),
        late_writers: RefCell::new(Vec::new()),
    });
    if !common.metrics_listen.eq_ignore_ascii_case("off") {
        let addr: SocketAddr = common
            .metrics_listen
            .parse()
            .context("--metrics-listen must be host:port or off")?;
        let bound = exporter::serve(addr, ctx.clone())
            .await
            .with_context(|| format!("binding --metrics-listen {addr}"))?;
        eprintln!("confab-loadgen: metrics at http://{bound}/metrics");
    }
    let progress = spawn_progress(ctx.clone());
    let mut notes = match target {
        net::Protocol::Confab => vec![
            "users are registered through the server's argon2id: for large populations run confabd with --kdf-memory-kib 8 --kdf-iterations 1 (set-up only; measured connections authenticate by token)".to_owned(),
        ],
        net::Protocol::Nats => Vec::new(),
    };
    if common.pacing == pacer::Pacing::Spin {
        notes.push("--pacing spin keeps the load generator's core busy by design: its CPU figure includes the spinning and does not mark it saturated".into());
    }
    let url = common.url.clone();
    let out =
        |scenario: &str, params: serde_json::Value, steps: Vec<StepReport>, best, idle, notes| {
            RunReport {
                scenario: scenario.into(),
                url: url.clone(),
                target: target.as_str().into(),
                pacing: pacing_name(common.pacing, false),
                params,
                steps,
                best_passing: best,
                idle,
                notes,
                ..RunReport::default()
            }
        };
    let mut setup = None;
    let report = match cmd {
        Cmd::Fanout {
            fanout,
            window,
            sweep,
            ..
        } => {
            let params = serde_json::json!({"rooms": fanout.rooms, "members": fanout.members, "rate": fanout.rate, "payload": fanout.payload, "warmup": window.warmup, "duration": window.duration, "sweep": sweep.sweep});
            let mut f = Fanout::prepare(
                &ctx,
                "fanout",
                &common.prefix,
                fanout.rooms,
                fanout.members,
                fanout.payload,
            )
            .await?;
            let (steps, best) =
                fan_steps(&ctx, &mut f, fanout.rate, window, sweep, &mut notes).await?;
            setup = Some(f.setup.clone());
            notes.extend(
                f.server_version
                    .as_ref()
                    .map(|v| format!("nats-server {v}")),
            );
            let mut r = out("fanout", params, steps, best, None, notes);
            r.pacing = pacing_name(common.pacing, f.from_thread);
            r
        }
        Cmd::BigRoom {
            members,
            rate,
            payload,
            window,
            sweep,
            ..
        } => {
            let params = serde_json::json!({"rooms": 1, "members": members, "rate": rate, "payload": payload, "warmup": window.warmup, "duration": window.duration, "sweep": sweep.sweep});
            let prefix = format!("{}-big", common.prefix);
            let mut f = Fanout::prepare(&ctx, "big-room", &prefix, 1, members, payload).await?;
            let (steps, best) = fan_steps(&ctx, &mut f, rate, window, sweep, &mut notes).await?;
            setup = Some(f.setup.clone());
            notes.extend(
                f.server_version
                    .as_ref()
                    .map(|v| format!("nats-server {v}")),
            );
            let mut r = out("big-room", params, steps, best, None, notes);
            r.pacing = pacing_name(common.pacing, f.from_thread);
            r
        }
        Cmd::Idle {
            connections,
            rooms,
            hold,
            resume_missed,
            ..
        } => {
            let params = serde_json::json!({"connections": connections, "rooms": rooms, "hold": hold, "source_ips": source_ips, "resume_missed": resume_missed});
            if connections > 19_000 {
                notes.push("more than 19,000 connections: a process here may hold at most ~20,000 open files, so this may fail; measure at ~19,000 and extrapolate".into());
            }
            let idle = scenario::idle::run(
                &ctx,
                &scenario::idle::IdleArgs {
                    connections,
                    rooms,
                    hold: Duration::from_secs_f64(hold.clamp(0.0, 600.0)),
                    source_ips,
                    resume_missed,
                },
            )
            .await?;
            out("idle", params, Vec::new(), None, Some(idle), notes)
        }
        Cmd::Chatter {
            members,
            typists,
            typing_every_ms,
            flappers,
            flap_every_ms,
            window,
            ..
        } => {
            let params = serde_json::json!({"members": members, "typists": typists, "typing_every_ms": typing_every_ms, "flappers": flappers, "flap_every_ms": flap_every_ms, "warmup": window.warmup, "duration": window.duration});
            let chatter = scenario::chatter::run(
                &ctx,
                &scenario::chatter::ChatterArgs {
                    prefix: format!("{}-chat", common.prefix),
                    members,
                    typists,
                    typing_every: Duration::from_millis(typing_every_ms.max(1)),
                    flappers,
                    flap_every: Duration::from_millis(flap_every_ms.max(1)),
                    timing: window.timing(),
                },
            )
            .await?;
            let mut r = out("chatter", params, Vec::new(), None, None, notes);
            r.chatter = Some(chatter);
            r
        }
        Cmd::Churn {
            rate,
            users,
            window,
            ..
        } => {
            let params = serde_json::json!({"rate": rate, "users": users, "warmup": window.warmup, "duration": window.duration});
            let prefix = format!("{}-churn", common.prefix);
            let mut c = scenario::churn::Churn::prepare(&ctx, &prefix, users.max(1)).await?;
            let step = c.step(&ctx, "churn".into(), rate, window.timing()).await?;
            out("churn", params, vec![step], None, None, notes)
        }
        Cmd::History {
            rate,
            readers,
            messages,
            page,
            window,
            ..
        } => {
            let params = serde_json::json!({"rate": rate, "readers": readers, "messages": messages, "page": page, "warmup": window.warmup, "duration": window.duration});
            let prefix = format!("{}-hist", common.prefix);
            let mut h = scenario::history::History::prepare(
                &ctx,
                &prefix,
                readers,
                messages,
                page.clamp(1, 200),
            )
            .await?;
            let step = h
                .step(&ctx, "history".into(), rate, window.timing())
                .await?;
            out("history", params, vec![step], None, None, notes)
        }
        Cmd::Mixed {
            fanout,
            churn_rate,
            history_rate,
            window,
            ..
        } => {
            let params = serde_json::json!({"rooms": fanout.rooms, "members": fanout.members, "rate": fanout.rate, "payload": fanout.payload, "churn_rate": churn_rate, "history_rate": history_rate, "warmup": window.warmup, "duration": window.duration});
            let p = &common.prefix;
            let mut f = Fanout::prepare(
                &ctx,
                "fanout",
                p,
                fanout.rooms,
                fanout.members,
                fanout.payload,
            )
            .await?;
            let mut c = scenario::churn::Churn::prepare(&ctx, &format!("{p}-churn"), 100).await?;
            let mut h =
                scenario::history::History::prepare(&ctx, &format!("{p}-hist"), 10, 300, 50)
                    .await?;
            let t = window.timing();
            let (a, b, d) = tokio::join!(
                f.step(&ctx, "fanout".into(), fanout.rate, t),
                c.step(&ctx, "churn".into(), churn_rate, t),
                h.step(&ctx, "history".into(), history_rate, t)
            );
            out("mixed", params, vec![a?, b?, d?], None, None, notes)
        }
        Cmd::Capacity {
            connections,
            seconds,
            ..
        } => {
            let (fps, cpu) =
                capacity::capacity(&ctx, connections.max(1), seconds.clamp(1, 600)).await?;
            let mut step = StepReport {
                name: "capacity".into(),
                seconds: seconds as f64,
                delivered: (fps * seconds as f64) as u64,
                delivered_per_s: fps,
                connections,
                ..StepReport::default()
            };
            step.loadgen.cpu_utilization = cpu;
            step.loadgen.saturated = cpu >= 0.9;
            notes.clear();
            notes.push(format!(
                "received {fps:.0} frames/s at {:.0}% of one core = {:.0} frames per load-generator CPU-second",
                cpu * 100.0,
                fps / cpu.max(0.01)
            ));
            out(
                "capacity",
                serde_json::json!({"connections": connections, "seconds": seconds}),
                vec![step],
                None,
                None,
                notes,
            )
        }
        Cmd::Blast { .. } | Cmd::Compare { .. } | Cmd::Soak(_) => {
            unreachable!("handled in main")
        }
    };
    ctx.stop.set(true);
    progress.finish_and_clear();
    let mut report = report;
    report.setup = setup;
    report.nodes = ctx.spread.borrow().clone();
    report.per_node_efficiency();
    if let (Some(start), Some(end)) = (system_start, probe::system_sample()) {
        let server_cpu = match (server_start, ctx.probe.sample().await) {
            (Some(s), Some(e)) => Some(e.cpu_seconds - s.cpu_seconds),
            _ => None,
        };
        let self_cpu = probe::self_sample().cpu_seconds - self_start.cpu_seconds;
        report.background = Some(probe::background(
            &start,
            &end,
            &scenario::ours(&ctx, server_cpu, self_cpu),
        ));
    }
    finish_notes(&mut report);
    Ok(Some((report, common.json.clone())))
}

/// One fixed-rate step, or a sweep.
async fn fan_steps(
    ctx: &Rc<Ctx>,
    f: &mut Fanout,
    rate: f64,
    window: Window,
    sweep: SweepArgs,
    notes: &mut Vec<String>,
) -> anyhow::Result<(Vec<StepReport>, Option<StepReport>)> {
    if sweep.sweep {
        let s = Sweep {
            start: sweep.sweep_start.max(1.0),
            factor: sweep.sweep_factor.max(1.05),
            max_steps: sweep.sweep_steps.clamp(1, 50),
            p99_ms: sweep.p99_ms,
            min_delivered: sweep.min_delivered,
        };
        scenario::fanout::run_sweep(ctx, f, s, window.timing(), notes).await
    } else {
        let step = f.step(ctx, "run".into(), rate, window.timing()).await?;
        Ok((vec![step], None))
    }
}

/// Notes that follow from the numbers.
fn finish_notes(report: &mut RunReport) {
    for s in &report.steps {
        if s.error_codes.contains_key(&402) {
            report.notes.push(format!(
                "step {}: the server rate-limited messages (402): run confabd with --rate-limit-per-sec 0 for benchmarks",
                s.name
            ));
        }
        if s.loadgen.saturated {
            report.notes.push(format!(
                "step {}: the load generator was saturated ({:.0}% of its core): the results are a lower bound for the server",
                s.name,
                s.loadgen.cpu_utilization * 100.0
            ));
        }
        if s.server.is_none() && report.scenario != "capacity" {
            report.notes.push(format!(
                "step {}: no server CPU/RSS (pass --server-pid or --server-metrics)",
                s.name
            ));
        }
    }
}

/// A progress line on stderr (a spinner on terminals, a plain line every
/// five seconds otherwise).
fn spawn_progress(ctx: Rc<Ctx>) -> indicatif::ProgressBar {
    let tty = std::io::stderr().is_terminal();
    let bar = if tty {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::hidden()
    };
    let b = bar.clone();
    tokio::task::spawn_local(async move {
        let start = std::time::Instant::now();
        let mut last = (
            0u64,
            0u64,
            probe::self_sample().cpu_seconds,
            std::time::Instant::now(),
        );
        let mut ticks = 0u64;
        while !ctx.stop.get() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            ticks += 1;
            let (sent, recv) = ctx
                .recorders
                .borrow()
                .iter()
                .fold((0, 0), |(s, r), (_, rec)| {
                    let rec = rec.borrow();
                    (s + rec.sent_total, r + rec.received_total)
                });
            let now = std::time::Instant::now();
            let cpu = probe::self_sample().cpu_seconds;
            let dt = now.duration_since(last.3).as_secs_f64().max(1e-3);
            let line = format!(
                "[{:>4.0}s] {} | conns {} | sent {}/s | received {}/s | loadgen cpu {:.0}%",
                start.elapsed().as_secs_f64(),
                ctx.phase.borrow(),
                ctx.connections.get(),
                ((sent - last.0) as f64 / dt) as u64,
                ((recv - last.1) as f64 / dt) as u64,
                (cpu - last.2) / dt * 100.0
            );
            last = (sent, recv, cpu, now);
            if tty {
                b.set_message(line);
                b.tick();
            } else if ticks.is_multiple_of(10) {
                eprintln!("{line}");
            }
        }
    });
    bar
}
