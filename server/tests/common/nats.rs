//! A nats-server of the test's own (Debian's package), on a free port of
//! 127.0.0.1, stopped when dropped: cluster tests are hermetic — nodes of
//! different tests never share subjects — and a test may stop it.

use std::process::Stdio;
use std::time::{Duration, Instant};

/// A running nats-server.
pub struct NatsServer {
    child: tokio::process::Child,
    pub port: u16,
}

/// The nats-server binary: on PATH, else Debian's.
fn binary() -> Option<std::path::PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let debian = std::path::PathBuf::from("/usr/sbin/nats-server");
        debian.is_file().then_some(debian)
    })
}

fn spawn(bin: &std::path::Path, port: u16) -> tokio::process::Child {
    tokio::process::Command::new(bin)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("nats-server starts")
}

/// Waits (bounded) until something listens on `port`.
async fn listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "nats-server never listened on {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl NatsServer {
    /// Starts one and waits (bounded) until it takes connections.
    /// Without the binary the test is skipped, or fails under
    /// `CONFAB_REQUIRE_POSTGRES=1` (CI: the cluster tests need both).
    pub async fn start(test: &str) -> Option<NatsServer> {
        let Some(bin) = binary() else {
            let required = std::env::var(confab_testkit::postgres::REQUIRE_POSTGRES);
            assert!(
                required.as_deref() != Ok("1"),
                "{test}: no nats-server binary (Debian's nats-server package), and the cluster \
                 tests need one under {}=1",
                confab_testkit::postgres::REQUIRE_POSTGRES
            );
            eprintln!("SKIPPED (no nats-server): {test}");
            return None;
        };
        let port = confab_testkit::spare_port();
        let child = spawn(&bin, port);
        listening(port).await;
        Some(NatsServer { child, port })
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills it (the nodes lose their NATS connection).
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Starts it again on the same port after [`NatsServer::kill`], and
    /// waits (bounded) until it takes connections.
    pub async fn restart(&mut self) {
        let bin = binary().expect("nats-server binary");
        self.child = spawn(&bin, self.port);
        listening(self.port).await;
    }
}
