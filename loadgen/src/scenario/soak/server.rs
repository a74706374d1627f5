//! The `confabd` the soak starts, restarts and measures: a child process on
//! a fixed loopback port (clients reconnect to the same address after every
//! restart), configured only by flags (the same as `scripts/bench-loadgen`
//! and the server's process-fault tests), its log in the data directory.
//!
//! SIGKILL goes through [`std::process::Child::kill`]; SIGTERM through
//! `kill -TERM` (the load generator has no signal crate). Resource readings
//! come from `/proc/PID` (RSS, open descriptors) and the connection gauge
//! from the server's own `/metrics`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::probe;

/// How long a (re)started server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How `confabd` is started, the same way every time.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    pub bin: PathBuf,
    pub data_dir: PathBuf,
    /// The binary protocol's listener (plain TCP), kept across restarts.
    pub addr: SocketAddr,
    /// The admin listener serving `/metrics`.
    pub metrics: SocketAddr,
    /// More flags, after the soak's own (so they win).
    pub extra: Vec<String>,
}

/// One running `confabd` process. Dropping it kills the process, so a soak
/// that fails half-way leaves no server behind.
pub struct Confabd {
    child: Child,
    pub pid: u32,
    /// Which process of the run this is (0 for the first).
    pub generation: u32,
    pub log: PathBuf,
    pub started: Instant,
}

/// RSS and open descriptors of a process, and its open client connections.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Resources {
    pub rss_bytes: u64,
    pub fds: u64,
    /// `confab_connections`, summed over transports.
    pub connections: u64,
}

impl ServerSpec {
    /// A port for the server outside the ephemeral range (where the
    /// clients' own sockets live, so a reconnect storm can never take it
    /// while the server is down), free right now.
    pub fn spare_port(avoid: u16) -> anyhow::Result<u16> {
        let seed = (crate::clock::now_ns() ^ u64::from(std::process::id())) as u16;
        for i in 0..2000u16 {
            let port = 20_000 + (seed.wrapping_add(i.wrapping_mul(7919)) % 12_000);
            if port != avoid && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
        bail!("no free port in 20000-31999 on 127.0.0.1")
    }

    /// Starts process `generation` and waits until it accepts connections
    /// and serves `/metrics`.
    pub async fn start(&self, generation: u32) -> anyhow::Result<Confabd> {
        let log = self.data_dir.join(format!("confabd-soak-{generation}.log"));
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(&self.bin);
        // Hermetic: the flags below, and only they, configure it.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("CONFAB_") || k == "DATABASE_URL" {
                cmd.env_remove(k);
            }
        }
        cmd.arg("--listen")
            .arg(self.addr.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--metrics-listen")
            .arg(self.metrics.to_string())
            .args(["--http-listen", "off", "--shards", "2"])
            .args(["--rate-limit-per-sec", "0"])
            .args(["--kdf-memory-kib", "8", "--kdf-iterations", "1"])
            .args(&self.extra)
            .env("RUST_LOG", "info,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(file.try_clone().context("log file")?)
            .stderr(file);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        let mut server = Confabd {
            pid: child.id(),
            child,
            generation,
            log,
            started: Instant::now(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let up = tokio::net::TcpStream::connect(self.addr).await.is_ok()
                && probe::http_get(self.metrics, "/metrics").await.is_ok();
            if up {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "confabd (process {generation}) exited at start-up ({status}); its log:\n{}",
                    server.log_tail()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "confabd (process {generation}) not serving within {START_TIMEOUT:?}; its log:\n{}",
                    server.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Open client connections by the server's gauge (`confab_connections`,
    /// every transport).
    pub async fn connections(&self) -> anyhow::Result<u64> {
        let text = tokio::time::timeout(
            Duration::from_secs(5),
            probe::http_get(self.metrics, "/metrics"),
        )
        .await
        .context("scraping /metrics timed out")?
        .context("scraping /metrics")?;
        Ok(connection_gauge(&text))
    }
}

/// The sum of the `confab_connections{transport=…}` series in a Prometheus
/// text exposition (0 when no connection was ever opened).
pub fn connection_gauge(text: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with("confab_connections{") || l.starts_with("confab_connections "))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
        .max(0.0) as u64
}

impl Confabd {
    /// RSS (`VmRSS`) and open descriptors (`/proc/PID/fd`), if the process
    /// is alive.
    pub fn sample(&self) -> Option<(u64, u64)> {
        let s = probe::proc_sample(&self.pid.to_string(), true)?;
        Some((s.rss_bytes, s.open_fds?))
    }

    /// [`Confabd::sample`] and the connection gauge, read back to back.
    pub async fn resources(&self, spec: &ServerSpec) -> anyhow::Result<Resources> {
        let connections = spec.connections().await?;
        let (rss_bytes, fds) = self
            .sample()
            .context("reading /proc of the server: has it exited?")?;
        Ok(Resources {
            rss_bytes,
            fds,
            connections,
        })
    }

    /// Whether the process has exited (and how).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then waits up to `within` for the process to exit; kills it
    /// if it does not. Returns its exit status and how long it took.
    pub async fn terminate(mut self, within: Duration) -> anyhow::Result<(ExitStatus, Duration)> {
        let started = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .context("running kill -TERM")?;
        anyhow::ensure!(sent.success(), "kill -TERM {} failed: {sent}", self.pid);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok((status, started.elapsed()));
            }
            if started.elapsed() > within {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!(
                    "confabd (process {}) did not exit within {within:?} of SIGTERM; its log:\n{}",
                    self.generation,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: no shutdown of any kind. Waits for the process to be gone.
    pub fn kill_9(mut self) -> anyhow::Result<()> {
        self.child.kill().context("SIGKILL")?;
        self.child.wait().context("waiting for the killed server")?;
        Ok(())
    }

    /// The last lines of the process's log, for error messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log, 40)
    }
}

impl Drop for Confabd {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a server process logged at WARN and ERROR level, and whether it
/// panicked.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LogScan {
    pub warnings: u64,
    pub errors: u64,
    pub panics: u64,
    /// The first few ERROR and panic lines.
    pub examples: Vec<String>,
}

/// Reads a `confabd` log (tracing's text format: time, level, target).
pub fn scan_log(path: &Path) -> LogScan {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut scan = LogScan::default();
    for line in text.lines() {
        let level = line.split_whitespace().nth(1);
        let bad = if line.contains("panicked") {
            scan.panics += 1;
            true
        } else if level == Some("ERROR") {
            scan.errors += 1;
            true
        } else {
            if level == Some("WARN") {
                scan.warnings += 1;
            }
            false
        };
        if bad && scan.examples.len() < 5 {
            scan.examples.push(line.chars().take(300).collect());
        }
    }
    scan
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_gauge_sums_every_transport() {
        let text = "# HELP confab_connections Open client connections, by transport.\n\
                    # TYPE confab_connections gauge\n\
                    confab_connections{transport=\"tcp\"} 3\n\
                    confab_connections{transport=\"ws\"} 1\n\
                    confab_connections_opened_total{transport=\"tcp\"} 40\n";
        assert_eq!(connection_gauge(text), 4);
        assert_eq!(connection_gauge("process_open_fds 12\n"), 0);
    }

    #[test]
    fn the_log_scan_counts_warnings_errors_and_panics() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("confabd.log");
        std::fs::write(
            &log,
            "2026-01-01T00:00:00Z  INFO confab_server::app: rooms restored rooms=6\n\
             2026-01-01T00:00:01Z  WARN confab_server::net: slow\n\
             2026-01-01T00:00:02Z ERROR confab_server::persist: commit failed\n\
             thread 'tokio-runtime-worker' panicked at server/src/x.rs:1:1:\n",
        )
        .expect("write");
        let scan = scan_log(&log);
        assert_eq!((scan.warnings, scan.errors, scan.panics), (1, 1, 1));
        assert_eq!(scan.examples.len(), 2);
        assert_eq!(scan_log(&dir.path().join("missing")).errors, 0);
    }
}
