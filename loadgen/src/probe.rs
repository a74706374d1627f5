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
    Pid(u32),
    Metrics(SocketAddr),
    None,
}

impl ServerProbe {
    pub async fn sample(&self) -> Option<Sample> {
        match self {
            ServerProbe::Pid(pid) => proc_sample(&pid.to_string(), false),
            ServerProbe::Metrics(addr) => metrics_sample(*addr).await,
            ServerProbe::None => None,
        }
    }
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
        ServerProbe::Pid(pid) => proc_sample(&pid.to_string(), true)?.open_fds,
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
    started: std::time::Instant,
    rss_max: u64,
}

impl UsageWindow {
    pub async fn start(probe: &ServerProbe) -> UsageWindow {
        let start = probe.sample().await;
        UsageWindow {
            rss_max: start.map(|s| s.rss_bytes).unwrap_or(0),
            start,
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
        let mut end = probe.sample().await?;
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
        })
    }
}
