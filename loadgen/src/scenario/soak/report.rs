//! What the soak prints: a progress line every five seconds while it runs,
//! and at the end a report (text, and JSON with `--json`) of the traffic,
//! the restarts, each server process's resources, the checks and the
//! machine's load.

use std::cell::{Cell, RefCell};
use std::fmt::Write;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::check::Verdict;
use super::ledger::{Counters, Faults, Ledger};
use super::population::Soak;
use super::server::{Confabd, LogScan, Resources};
use super::SoakArgs;

const MIB: f64 = 1024.0 * 1024.0;

/// The 1, 5 and 15 minute load averages.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct LoadAverage(pub [f64; 3]);

impl LoadAverage {
    pub fn read() -> LoadAverage {
        let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let mut v = [0.0; 3];
        for (slot, field) in v.iter_mut().zip(text.split_whitespace()) {
            *slot = field.parse().unwrap_or(0.0);
        }
        LoadAverage(v)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Load {
    pub start: LoadAverage,
    pub end: LoadAverage,
    /// The 1-minute load average, averaged over the progress lines.
    pub mean_1m: f64,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Restarts {
    pub sigterm: u32,
    pub kill_9: u32,
    /// The kill -9 after the traffic, before history is read.
    pub final_kill_9: u32,
}

/// A server process's resources after its warm-up, under load.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Baseline {
    pub at: Resources,
    /// Descriptors other than client sockets.
    pub fds_without_connections: u64,
    pub seconds_after_start: f64,
}

/// One server process of the run.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessReport {
    pub generation: u32,
    pub pid: u32,
    pub baseline: Option<Baseline>,
    /// Its last reading: before its restart, or (the last process carrying
    /// traffic) after every client disconnected and a settle.
    pub before_restart: Option<Resources>,
    /// How it ended.
    pub ended: String,
    /// How long a SIGTERM took.
    pub shutdown_seconds: Option<f64>,
    pub log_path: std::path::PathBuf,
    /// What it logged, read once it ended.
    pub log: LogScan,
}

impl ProcessReport {
    pub fn new(server: &Confabd) -> ProcessReport {
        ProcessReport {
            generation: server.generation,
            pid: server.pid,
            baseline: None,
            before_restart: None,
            ended: String::new(),
            shutdown_seconds: None,
            log_path: server.log.clone(),
            log: LogScan::default(),
        }
    }

    /// Records how it ended and reads its log.
    pub fn end(&mut self, how: &str) {
        self.ended = how.to_owned();
        self.log = super::server::scan_log(&self.log_path);
    }

    /// Errors and panics in its log.
    pub fn log_failure(&self) -> Option<String> {
        let l = &self.log;
        (l.errors + l.panics > 0).then(|| {
            format!(
                "server process {} logged {} errors and {} panics ({}): {}",
                self.generation,
                l.errors,
                l.panics,
                self.log_path.display(),
                l.examples.join(" | ")
            )
        })
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct LastProcess {
    pub generation: u32,
    pub baseline: Baseline,
    pub end: Resources,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Tolerance {
    pub rss_bytes: u64,
    pub fds: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub passed: bool,
    pub failures: Vec<String>,
    pub params: serde_json::Value,
    pub traffic_seconds: f64,
    pub counters: Counters,
    pub restarts: Restarts,
    pub processes: Vec<ProcessReport>,
    pub verdict: Verdict,
    pub live_conflicts: Faults,
    pub delivery_faults: Faults,
    pub history_faults: Faults,
    pub unexpected: Faults,
    /// The last process that carried traffic: its baseline and its
    /// reading after every client disconnected.
    pub last_process: Option<LastProcess>,
    pub tolerance: Tolerance,
    /// `confab_connections` after every client disconnected.
    pub connections_end: u64,
    pub load: Load,
}

pub fn params(a: &SoakArgs) -> serde_json::Value {
    serde_json::json!({
        "confabd": a.confabd, "duration_s": a.duration.as_secs_f64(),
        "restart_every_s": a.restart_every.as_secs_f64(), "warmup_s": a.warmup.as_secs_f64(),
        "chatters": a.chatters, "rooms": a.rooms, "private_rooms": a.private_rooms,
        "visitors": a.visitors, "rate": a.rate, "server_args": a.server_args,
    })
}

/// The resource checks of the last process: its final reading against
/// its baseline.
pub fn resource_failures(b: &Baseline, end: &Resources, t: &Tolerance) -> Vec<String> {
    let mut out = Vec::new();
    if end.rss_bytes > b.at.rss_bytes + t.rss_bytes {
        out.push(format!(
            "server RSS did not come back: {:.1} MiB at the end, baseline {:.1} MiB (tolerance +{:.1} MiB)",
            end.rss_bytes as f64 / MIB,
            b.at.rss_bytes as f64 / MIB,
            t.rss_bytes as f64 / MIB
        ));
    }
    if end.fds > b.fds_without_connections + t.fds {
        out.push(format!(
            "server descriptors did not come back: {} open at the end, baseline {} without client sockets (tolerance +{})",
            end.fds, b.fds_without_connections, t.fds
        ));
    }
    out
}

/// The faults recorded while the traffic ran.
pub fn ledger_failures(l: &Ledger) -> Vec<String> {
    let mut out = Vec::new();
    for (what, f) in [
        (
            "clients of one server process received different events under one seq",
            &l.live_conflicts,
        ),
        (
            "clients missed or repeated events without a RESUME_GAP",
            &l.delivery_faults,
        ),
        ("history pages with holes", &l.history_faults),
        ("unexpected answers", &l.unexpected),
    ] {
        if !f.is_empty() {
            out.push(format!(
                "{what}: {} (e.g. {})",
                f.count,
                f.examples.join("; ")
            ));
        }
    }
    out
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / MIB)
}

impl SoakReport {
    pub fn text(&self) -> String {
        let c = &self.counters;
        let v = &self.verdict;
        let mut s = String::new();
        let _ = writeln!(s, "soak: {:.0} s of traffic", self.traffic_seconds);
        let _ = writeln!(
            s,
            "  messages    sent {}, acknowledged {}, unknown outcome {}, refused as expected {}",
            c.sent, c.acked, c.unknown, c.refused_expected
        );
        let _ = writeln!(
            s,
            "  restarts    {} SIGTERM, {} kill -9 under load, {} kill -9 before the check",
            self.restarts.sigterm, self.restarts.kill_9, self.restarts.final_kill_9
        );
        let _ = writeln!(
            s,
            "  clients     {} reconnects, {} resumes by new clients, {} RESUME_GAPs ({} after events lost in a kill -9), {} live events; {} own acknowledged messages not received back",
            c.reconnects, c.resumes, c.resume_gaps, c.resume_gaps_after_loss, c.live_events, c.own_not_received
        );
        let _ = writeln!(
            s,
            "  other       {} logins, {} history pages, {} leaves, {} joins, {} governance actions ({} out of step after a restart), {} requests interrupted",
            c.logins, c.history_reads, c.leaves, c.joins, c.governance, c.governance_out_of_step, c.interrupted
        );
        let _ = writeln!(
            s,
            "  history     {} rooms, {} events, {} messages; {} acknowledged checked: lost {}, duplicated {}, misplaced {}, seq faults {}",
            v.rooms, v.history_events, v.history_messages, v.acked_checked, v.lost.count,
            v.duplicates.count, v.misplaced.count, v.seq_faults.count
        );
        let _ = writeln!(
            s,
            "  live        {} (room, seq, process) checked against history: {} differ, {} lost unacknowledged in a kill -9 (allowed)",
            v.live_checked, v.live_mismatched.count, v.live_lost_in_crash
        );
        for p in &self.processes {
            let b = p.baseline.map_or("no baseline".to_owned(), |b| {
                format!(
                    "baseline {} / {} fds ({} client sockets, {} without) at {:.0} s",
                    mib(b.at.rss_bytes),
                    b.at.fds,
                    b.at.connections,
                    b.fds_without_connections,
                    b.seconds_after_start
                )
            });
            let e = p.before_restart.map_or(String::new(), |r| {
                format!(
                    ", last {} / {} fds ({} connections)",
                    mib(r.rss_bytes),
                    r.fds,
                    r.connections
                )
            });
            let _ = writeln!(
                s,
                "  process {} pid {}: {b}{e}; ended by {}; log: {} warnings, {} errors, {} panics",
                p.generation, p.pid, p.ended, p.log.warnings, p.log.errors, p.log.panics
            );
        }
        let _ = writeln!(
            s,
            "  tolerance   RSS +{}, descriptors +{} (over the baseline without client sockets); connections at the end {}",
            mib(self.tolerance.rss_bytes),
            self.tolerance.fds,
            self.connections_end
        );
        let _ = writeln!(
            s,
            "  load        {:.2} {:.2} {:.2} at the start, {:.2} {:.2} {:.2} at the end, 1-minute mean {:.2}",
            self.load.start.0[0], self.load.start.0[1], self.load.start.0[2],
            self.load.end.0[0], self.load.end.0[1], self.load.end.0[2], self.load.mean_1m
        );
        if self.failures.is_empty() {
            let _ = writeln!(s, "PASSED");
        } else {
            let _ = writeln!(s, "FAILED");
            for f in &self.failures {
                let _ = writeln!(s, "  - {f}");
            }
        }
        s
    }
}

/// What the progress line shows besides the ledger's counters.
pub struct Status {
    started: Instant,
    pid: Cell<u32>,
    restarts: Cell<Restarts>,
    stopped: Cell<bool>,
    loads: RefCell<Vec<f64>>,
}

impl Status {
    pub fn new(started: Instant, pid: u32) -> Status {
        Status {
            started,
            pid: Cell::new(pid),
            restarts: Cell::new(Restarts::default()),
            stopped: Cell::new(false),
            loads: RefCell::new(Vec::new()),
        }
    }

    pub fn restarted(&self, pid: u32, restarts: &Restarts) {
        self.pid.set(pid);
        self.restarts.set(*restarts);
    }

    pub fn stop(&self) {
        self.stopped.set(true);
    }

    pub fn mean_load(&self) -> f64 {
        let l = self.loads.borrow();
        l.iter().sum::<f64>() / l.len().max(1) as f64
    }
}

/// A progress line on stderr every five seconds until [`Status::stop`].
pub fn spawn_progress(soak: Rc<Soak>, status: Rc<Status>) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_local(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.tick().await;
        loop {
            tick.tick().await;
            if status.stopped.get() {
                return;
            }
            let load = LoadAverage::read().0[0];
            status.loads.borrow_mut().push(load);
            let pid = status.pid.get();
            let server = crate::probe::proc_sample(&pid.to_string(), true)
                .map_or("down".to_owned(), |p| {
                    format!("{}, {} fds", mib(p.rss_bytes), p.open_fds.unwrap_or(0))
                });
            let r = status.restarts.get();
            let c = soak.ledger.borrow().counters.clone();
            eprintln!(
                "[{:>5.0}s] server {} (pid {pid}): {server} | sent {}, acked {}, unknown {} | restarts {} ({} SIGTERM, {} kill -9) | reconnects {}, resumes {}, gaps {} | logins {}, history {}, governance {} | load {load:.2}",
                status.started.elapsed().as_secs_f64(),
                soak.generation.get(),
                c.sent,
                c.acked,
                c.unknown,
                r.sigterm + r.kill_9,
                r.sigterm,
                r.kill_9,
                c.reconnects,
                c.resumes,
                c.resume_gaps,
                c.logins,
                c.history_reads,
                c.governance
            );
        }
    })
}
