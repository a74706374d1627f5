//! `confabd` as a child process, for tests that need the real binary:
//! signals, restarts, its log output.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub use confab_testkit::spare_port;

/// A `confabd` child process.
pub struct Confabd {
    child: Child,
    /// The binary protocol's plain TCP listener.
    pub addr: SocketAddr,
    /// The HTTP listener (JSON API and WebSocket).
    pub http: SocketAddr,
    log: PathBuf,
}

impl Confabd {
    /// Starts `confabd` on `data_dir` (and Postgres at `database_url`, if
    /// given) and waits until it accepts connections.
    pub fn start(data_dir: &Path, database_url: Option<&str>) -> Confabd {
        Confabd::start_with(data_dir, database_url, &[])
    }

    /// [`Confabd::start`] with more flags (which come last, so they win);
    /// its HTTP listener is on too, at [`Confabd::http`].
    ///
    /// A spare port may still be taken between choosing and binding it:
    /// a start that fails with "Address already in use" is retried with
    /// fresh ports for the listeners it chooses itself.
    pub fn start_with(data_dir: &Path, database_url: Option<&str>, extra: &[&str]) -> Confabd {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match Confabd::try_start(data_dir, database_url, extra) {
                Ok(server) => return server,
                Err(log) if attempts < 5 && log.contains("Address already in use") => {
                    eprintln!("confabd: a port was taken before it bound, retrying");
                }
                Err(log) => panic!("confabd exited at start-up:\n{log}"),
            }
        }
    }

    /// One start: the log of a process that exited before listening.
    fn try_start(
        data_dir: &Path,
        database_url: Option<&str>,
        extra: &[&str],
    ) -> Result<Confabd, String> {
        let port = spare_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let http: SocketAddr = ([127, 0, 0, 1], spare_port()).into();
        let log = data_dir.join(format!("confabd-{port}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_confabd"));
        // Hermetic: only the flags below configure it.
        for (k, _) in std::env::vars() {
            if k.starts_with("CONFAB_") || k == "DATABASE_URL" {
                cmd.env_remove(k);
            }
        }
        let http_arg = http.to_string();
        let defaults = [
            ("--metrics-listen", "off"),
            ("--http-listen", http_arg.as_str()),
            ("--shards", "2"),
            ("--kdf-memory-kib", "64"),
            ("--kdf-iterations", "1"),
            ("--rate-limit-per-sec", "0"),
        ];
        cmd.arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(data_dir);
        // `extra` overrides a default (flags may not repeat).
        for (flag, value) in defaults {
            if !extra.contains(&flag) {
                cmd.args([flag, value]);
            }
        }
        cmd.env("RUST_LOG", "info,sqlx=warn").stdin(Stdio::null());
        // Logs go to stdout (tracing-subscriber's default); both to one file.
        let file = std::fs::File::create(&log).expect("log file");
        cmd.stdout(file.try_clone().expect("log file")).stderr(file);
        if let Some(url) = database_url {
            cmd.arg("--database-url").arg(url);
        }
        cmd.args(extra);
        let child = cmd.spawn().expect("spawn confabd");
        let mut server = Confabd {
            child,
            addr,
            http,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("({status})\n{}", server.log_text()));
            }
            assert!(
                Instant::now() < deadline,
                "confabd not listening within 60 s:\n{}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("confab://{}", self.addr)
    }

    /// The process id (to read its memory from /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `sig` (`"STOP"`, `"CONT"`, `"TERM"`, …) and returns at once.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{sig}");
    }

    /// Waits (bounded) for the process to exit, after a signal.
    pub fn wait_exit(mut self, within: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                started.elapsed() < within,
                "confabd did not exit within {within:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no shutdown of any kind.
    pub fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (bounded) for the process to exit.
    pub fn terminate(mut self, within: Duration) -> (ExitStatus, Duration, String) {
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status, started.elapsed(), self.log_text());
            }
            if started.elapsed() > within {
                let _ = self.child.kill();
                panic!(
                    "confabd did not exit within {within:?} of SIGTERM:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Confabd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
