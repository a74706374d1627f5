//! Resource use of the server and of the load generator itself, read from
//! `/proc/<pid>` (exact; preferred) or from the server's Prometheus
//! `/metrics` (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_open_fds`).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Linux reports CPU times in clock ticks of `USER_HZ`, which is 100 on
/// every architecture Linux supports today.
const TICKS_PER_SECOND: f64 = 100.0;

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    pub open_fds: Option<u64>,
}

/// Where to read the server's usage from.
#[derive(Debug, Clone)]
pub enum ServerProbe {
    /// The server's process ids: one, or a cluster's nodes (summed; each
    /// also on its own in [`UsageWindow::finish`]).
    Pids(Vec<u32>),
    Metrics(SocketAddr),
    None,
}

impl ServerProbe {
    pub async fn sample(&self) -> Option<Sample> {
        match self {
            ServerProbe::Pids(pids) if !pids.is_empty() => sum(&self.sample_each()),
            ServerProbe::Pids(_) => None,
            ServerProbe::Metrics(addr) => metrics_sample(*addr).await,
            ServerProbe::None => None,
        }
    }

    /// Each probed process on its own (several `--server-pid`s: a
    /// cluster's nodes); empty unless probed by pid.
    pub fn sample_each(&self) -> Vec<Option<Sample>> {
        match self {
            ServerProbe::Pids(pids) => pids
                .iter()
                .map(|pid| proc_sample(&pid.to_string(), false))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The processes' CPU and RSS together; `None` if any could not be read.
fn sum(samples: &[Option<Sample>]) -> Option<Sample> {
    samples.iter().try_fold(Sample::default(), |acc, s| {
        let s = (*s)?;
        Some(Sample {
            cpu_seconds: acc.cpu_seconds + s.cpu_seconds,
            rss_bytes: acc.rss_bytes + s.rss_bytes,
            open_fds: None,
        })
    })
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`, and counts `fd/`
/// if `fds` (slow with many thousands of descriptors: not in hot loops).
pub fn proc_sample(pid: &str, fds: bool) -> Option<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let open_fds = fds
        .then(|| std::fs::read_dir(format!("/proc/{pid}/fd")).ok())
        .flatten()
        .map(|d| d.count() as u64);
    Some(Sample {
        cpu_seconds: (utime + stime) / TICKS_PER_SECOND,
        rss_bytes: rss_kib * 1024,
        open_fds,
    })
}

/// This process (CPU and RSS only).
pub fn self_sample() -> Sample {
    proc_sample("self", false).unwrap_or_default()
}

/// Open descriptors of a probed server, for end-of-run reports.
pub fn fds_of(probe: &ServerProbe) -> Option<u64> {
    match probe {
        ServerProbe::Pids(pids) => pids.iter().try_fold(0, |acc, pid| {
            Some(acc + proc_sample(&pid.to_string(), true)?.open_fds?)
        }),
        _ => None,
    }
}

/// Scrapes a Prometheus text endpoint for the standard process metrics.
async fn metrics_sample(addr: SocketAddr) -> Option<Sample> {
    let text = tokio::time::timeout(Duration::from_secs(5), http_get(addr, "/metrics"))
        .await
        .ok()?
        .ok()?;
    let value = |name: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))?
            .rsplit(' ')
            .next()?
            .parse()
            .ok()
    };
    Some(Sample {
        cpu_seconds: value("process_cpu_seconds_total")?,
        rss_bytes: value("process_resident_memory_bytes")? as u64,
        open_fds: value("process_open_fds").map(|v| v as u64),
    })
}

/// A minimal HTTP/1.1 GET returning the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default())
}

/// Samples a process at the start and end of a window, tracking its peak
/// RSS in between.
pub struct UsageWindow {
    start: Option<Sample>,
    /// Each process's start, when several are probed.
    start_each: Vec<Option<Sample>>,
    started: std::time::Instant,
    rss_max: u64,
}

impl UsageWindow {
    pub async fn start(probe: &ServerProbe) -> UsageWindow {
        let start_each = probe.sample_each();
        let start = probe.sample().await;
        UsageWindow {
            rss_max: start.map(|s| s.rss_bytes).unwrap_or(0),
            start,
            start_each,
            started: std::time::Instant::now(),
        }
    }

    pub async fn tick(&mut self, probe: &ServerProbe) {
        if let Some(s) = probe.sample().await {
            self.rss_max = self.rss_max.max(s.rss_bytes);
        }
    }

    pub async fn finish(self, probe: &ServerProbe) -> Option<crate::stats::ServerUsage> {
        let start = self.start?;
        let end_each = probe.sample_each();
        let mut end = probe.sample().await?;
        let node_cpu_seconds = match (self.start_each.len(), end_each.len()) {
            (a, b) if a > 1 && a == b => self
                .start_each
                .iter()
                .zip(&end_each)
                .map(|(s, e)| match (s, e) {
                    (Some(s), Some(e)) => e.cpu_seconds - s.cpu_seconds,
                    _ => 0.0,
                })
                .collect(),
            _ => Vec::new(),
        };
        end.open_fds = end.open_fds.or_else(|| fds_of(probe));
        let wall = self.started.elapsed().as_secs_f64();
        let cpu = end.cpu_seconds - start.cpu_seconds;
        Some(crate::stats::ServerUsage {
            cpu_seconds: cpu,
            cpu_utilization: cpu / wall,
            rss_start_bytes: start.rss_bytes,
            rss_end_bytes: end.rss_bytes,
            rss_max_bytes: self.rss_max.max(end.rss_bytes),
            open_fds: end.open_fds,
            node_cpu_seconds,
        })
    }
}

/// Per-core CPU time from `/proc/stat` and the 1-minute load average: the
/// machine's background load around a measurement.
#[derive(Debug, Clone)]
pub struct SystemSample {
    at: std::time::Instant,
    pub loadavg_1m: f64,
    pub cores: Vec<CoreTimes>,
    /// Pressure stall totals (`/proc/pressure/*`, microseconds), where the
    /// kernel has them.
    pub pressure: Pressure,
}

/// Cumulative stall time: some runnable task waiting for a CPU; some, and
/// all, non-idle tasks waiting for I/O (a disk shared with other builds
/// stalls Confab's commits, never NATS's pub/sub).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pressure {
    pub cpu_some_us: Option<u64>,
    pub io_some_us: Option<u64>,
    pub io_full_us: Option<u64>,
}

impl Pressure {
    fn read() -> Pressure {
        let total = |path: &str, kind: &str| -> Option<u64> {
            parse_pressure(&std::fs::read_to_string(path).ok()?, kind)
        };
        Pressure {
            cpu_some_us: total("/proc/pressure/cpu", "some"),
            io_some_us: total("/proc/pressure/io", "some"),
            io_full_us: total("/proc/pressure/io", "full"),
        }
    }
}

/// The `total=` of the `kind` ("some", "full") line of a PSI file.
pub fn parse_pressure(text: &str, kind: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(kind))?
        .split_whitespace()
        .find_map(|f| f.strip_prefix("total="))?
        .parse()
        .ok()
}

/// One core's `/proc/stat` line, in seconds.
///
/// A process's own CPU time (`/proc/<pid>/stat`) includes the interrupts
/// and softirqs that ran while it was on the core — on loopback, much of
/// the network stack, the receiver's side included — while `/proc/stat`
/// books them apart; so `busy` counts them, and busy minus our processes'
/// time is what everything else used.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CoreTimes {
    pub cpu: usize,
    /// user + nice + system + irq + softirq.
    pub busy: f64,
    /// irq + softirq (part of `busy`).
    pub irq: f64,
    /// Time the hypervisor gave to someone else.
    pub steal: f64,
    /// idle (without iowait).
    pub idle: f64,
    /// Idle while some task waited for I/O.
    pub iowait: f64,
}

/// Reads the machine's per-core times and load average (Linux only).
pub fn system_sample() -> Option<SystemSample> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let loadavg = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(SystemSample {
        at: std::time::Instant::now(),
        loadavg_1m: loadavg.split_whitespace().next()?.parse().ok()?,
        cores: parse_proc_stat(&stat),
        pressure: Pressure::read(),
    })
}

/// The `cpuN` lines of `/proc/stat`.
pub fn parse_proc_stat(text: &str) -> Vec<CoreTimes> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let cpu = fields.next()?.strip_prefix("cpu")?.parse().ok()?;
            let t: Vec<f64> = fields
                .map(|f| f.parse::<f64>().map(|v| v / TICKS_PER_SECOND))
                .collect::<Result<_, _>>()
                .ok()?;
            let at = |i: usize| t.get(i).copied().unwrap_or(0.0);
            // user nice system idle iowait irq softirq steal (guest time is
            // already inside user).
            Some(CoreTimes {
                cpu,
                busy: at(0) + at(1) + at(2) + at(5) + at(6),
                irq: at(5) + at(6),
                steal: at(7),
                idle: at(3),
                iowait: at(4),
            })
        })
        .collect()
}

/// The one core process `pid` ("self" for this one) may run on, if it is
/// pinned to exactly one (`taskset -c N`).
pub fn pinned_core(pid: &str) -> Option<usize> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
        .trim();
    list.parse().ok()
}

/// A process of this run whose CPU time is not background load.
pub struct Ours {
    pub name: &'static str,
    pub cpu_seconds: f64,
    /// The core it is pinned to, if exactly one.
    pub core: Option<usize>,
}

/// What the rest of the machine did between two samples: each core's busy
/// time minus that of `ours` pinned to it.
pub fn background(
    start: &SystemSample,
    end: &SystemSample,
    ours: &[Ours],
) -> crate::stats::Background {
    let seconds = end.at.duration_since(start.at).as_secs_f64().max(1e-3);
    let mut cores = Vec::new();
    let mut busy_total = 0.0;
    for e in &end.cores {
        let Some(s) = start.cores.iter().find(|s| s.cpu == e.cpu) else {
            continue;
        };
        let busy = (e.busy - s.busy).max(0.0);
        busy_total += busy;
        let here: Vec<&Ours> = ours.iter().filter(|o| o.core == Some(e.cpu)).collect();
        let ours_s: f64 = here.iter().map(|o| o.cpu_seconds).sum();
        cores.push(crate::stats::CoreLoad {
            cpu: e.cpu,
            pinned: here.iter().map(|o| o.name.to_owned()).collect(),
            busy_seconds: busy,
            ours_seconds: ours_s,
            other_seconds: (busy - ours_s).max(0.0),
            other_share: (busy - ours_s).max(0.0) / seconds,
            irq_seconds: (e.irq - s.irq).max(0.0),
            iowait_seconds: (e.iowait - s.iowait).max(0.0),
            steal_seconds: (e.steal - s.steal).max(0.0),
        });
    }
    let ours_total: f64 = ours.iter().map(|o| o.cpu_seconds).sum();
    let share = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 1e6 / seconds),
        _ => None,
    };
    let (ps, pe) = (&start.pressure, &end.pressure);
    crate::stats::Background {
        seconds,
        cpu_pressure: share(ps.cpu_some_us, pe.cpu_some_us),
        io_pressure: share(ps.io_some_us, pe.io_some_us),
        io_pressure_full: share(ps.io_full_us, pe.io_full_us),
        loadavg_1m_start: start.loadavg_1m,
        loadavg_1m_end: end.loadavg_1m,
        other_cpu_seconds: (busy_total - ours_total).max(0.0),
        cores,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_cores_are_parsed_in_seconds() {
        let text = "cpu  300 0 100 900 10 0 5 2 0 0\n\
                    cpu0 100 0 50 500 5 1 2 1 0 0\n\
                    cpu1 200 0 50 400 5 0 2 1 0 0\n\
                    intr 1 2 3\n";
        let cores = parse_proc_stat(text);
        assert_eq!(cores.len(), 2, "the aggregate line is not a core");
        assert_eq!(cores[0].cpu, 0);
        assert!((cores[0].busy - 1.53).abs() < 1e-9);
        assert!((cores[0].irq - 0.03).abs() < 1e-9);
        assert!((cores[1].idle - 4.0).abs() < 1e-9);
        assert!((cores[1].iowait - 0.05).abs() < 1e-9);
    }

    #[test]
    fn pressure_totals_are_read_from_psi_lines() {
        let text = "some avg10=0.03 avg60=1.77 avg300=1.80 total=1709709599\n\
                    full avg10=0.02 avg60=1.10 avg300=0.83 total=1189011795\n";
        assert_eq!(parse_pressure(text, "some"), Some(1_709_709_599));
        assert_eq!(parse_pressure(text, "full"), Some(1_189_011_795));
        assert_eq!(parse_pressure("", "some"), None);
    }

    #[test]
    fn background_is_busy_time_minus_ours_on_each_core() {
        let sample = |busy0: f64, busy1: f64, load: f64| SystemSample {
            at: std::time::Instant::now(),
            loadavg_1m: load,
            pressure: Pressure::default(),
            cores: vec![
                CoreTimes {
                    cpu: 0,
                    busy: busy0,
                    ..CoreTimes::default()
                },
                CoreTimes {
                    cpu: 1,
                    busy: busy1,
                    ..CoreTimes::default()
                },
            ],
        };
        let start = sample(10.0, 20.0, 0.5);
        let end = sample(12.0, 21.0, 1.5);
        let ours = [
            Ours {
                name: "server",
                cpu_seconds: 1.5,
                core: Some(0),
            },
            Ours {
                name: "loadgen",
                cpu_seconds: 0.25,
                core: Some(1),
            },
        ];
        let b = background(&start, &end, &ours);
        assert!((b.cores[0].other_seconds - 0.5).abs() < 1e-9);
        assert!((b.cores[1].other_seconds - 0.75).abs() < 1e-9);
        assert_eq!(b.cores[0].pinned, vec!["server".to_owned()]);
        assert!((b.other_cpu_seconds - 1.25).abs() < 1e-9);
        assert_eq!((b.loadavg_1m_start, b.loadavg_1m_end), (0.5, 1.5));
    }
}
