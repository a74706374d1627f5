//! A throwaway PostgreSQL cluster: `initdb` + `pg_ctl` from the PATH or
//! `/usr/lib/postgresql/*/bin`, as the `postgres` user when run as root
//! (initdb refuses root), data under `/tmp`, a spare loopback port, and a
//! watchdog that stops and deletes the cluster when the test process ends
//! however it ends. Fault tests start one each and stop and start it
//! under load ([`PgCluster::halt`], [`PgCluster::resume`]); the suites
//! that only need *a* Postgres share one per test binary
//! ([`crate::postgres`]). Only such a cluster is ever stopped — never a
//! server the machine runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::postgres::no_postgres;

/// A running throwaway cluster; dropping it stops it and deletes its
/// files.
pub struct PgCluster {
    dir: PathBuf,
    data: PathBuf,
    pg_ctl: PathBuf,
    as_postgres: bool,
    port: u16,
    /// The server's `max_connections` (suites that run many tests at once
    /// on one cluster need more).
    max_connections: u32,
}

fn find_pg_bin(name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin").join(name);
            bin.is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn command(as_postgres: bool, program: &Path) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut cmd: Command, what: &str) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl PgCluster {
    /// A cluster of `test`'s own, or `None` when none can start here —
    /// after [`no_postgres`] had its say (which fails `test` when
    /// `CONFAB_REQUIRE_POSTGRES=1`).
    pub fn start(test: &str) -> Option<PgCluster> {
        match Self::try_start(50) {
            Ok(c) => Some(c),
            Err(why) => {
                no_postgres(test, &format!("no PostgreSQL to stop and start: {why}"));
                None
            }
        }
    }

    /// Creates and starts a cluster allowing `max_connections`, or says why
    /// it cannot.
    pub fn try_start(max_connections: u32) -> Result<PgCluster, String> {
        let (Some(initdb), Some(pg_ctl)) = (find_pg_bin("initdb"), find_pg_bin("pg_ctl")) else {
            return Err("PostgreSQL's initdb/pg_ctl are not installed".into());
        };
        let as_postgres = is_root();
        let mut mktemp = if as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "mktemp"]);
            c
        } else {
            Command::new("mktemp")
        };
        mktemp.args(["-d", "/tmp/confab-pg-fault-XXXXXX"]);
        let dir = PathBuf::from(run(mktemp, "mktemp")?);
        let data = dir.join("data");
        let mut init = command(as_postgres, &initdb);
        init.arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        run(init, "initdb")?;
        let port = crate::spare_port();
        let cluster = PgCluster {
            dir,
            data,
            pg_ctl,
            as_postgres,
            port,
            max_connections,
        };
        // Stop and delete the cluster once this test process is gone.
        let runuser = if as_postgres {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let watchdog = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {runuser}'{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            pg_ctl = cluster.pg_ctl.display(),
            data = cluster.data.display(),
            dir = cluster.dir.display(),
        );
        Command::new("setsid")
            .args(["sh", "-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the cluster's watchdog: {e}"))?;
        cluster.resume()?;
        Ok(cluster)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the (stopped) server and waits until it accepts connections.
    pub fn resume(&self) -> Result<(), String> {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections={}",
            self.port,
            self.dir.display(),
            self.max_connections
        );
        let mut start = command(self.as_postgres, &self.pg_ctl);
        start
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "60", "-o", &opts, "start"]);
        run(start, "pg_ctl start").map(drop)
    }

    /// Stops the server the way an operator would (`-m fast`: sessions
    /// are terminated, the port closes) and waits until it is down.
    pub fn halt(&self) {
        let mut stop = command(self.as_postgres, &self.pg_ctl);
        stop.arg("-D")
            .arg(&self.data)
            .args(["-w", "-t", "60", "-m", "fast", "stop"]);
        run(stop, "pg_ctl stop").expect("stopping the test's own Postgres");
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let mut stop = command(self.as_postgres, &self.pg_ctl);
        stop.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"]);
        let _ = stop
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
