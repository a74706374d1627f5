//! The load generator against a real server (in-process, on an ephemeral
//! port): short runs of each scenario complete, deliver everything and
//! write a JSON report. Bounded by `--max-seconds`. Fan-out also runs over
//! TLS (`confabs://`) and WebSocket (`ws://`, `wss://`), and against a real
//! `nats-server` (the comparison target) started on a spare port.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use confab_server::Config;

/// A server's settings for these runs: two shards, a cheap KDF for the
/// bulk set-up, metrics on an ephemeral port.
fn config(dir: &std::path::Path, rate_limit: u32) -> Config {
    Config {
        shards: 2,
        kdf_memory_kib: 8,
        kdf_iterations: 1,
        rate_limit_per_sec: rate_limit,
        metrics_listen: "127.0.0.1:0".parse().expect("address"),
        ..Config::embedded(dir)
    }
}

async fn server(rate_limit: u32) -> (confab_server::ServerHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(dir.path(), rate_limit);
    let handle = confab_server::start(config).await.expect("server starts");
    (handle, dir)
}

/// A server that also listens for TLS (self-signed) and HTTP/WebSocket, on
/// ephemeral ports.
async fn server_all_transports() -> (confab_server::ServerHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config {
        shards: 2,
        kdf_memory_kib: 8,
        kdf_iterations: 1,
        rate_limit_per_sec: 0,
        tls_listen: "127.0.0.1:0".parse().expect("address"),
        http_listen: "127.0.0.1:0".parse().expect("address"),
        ..Config::embedded(dir.path())
    };
    config.set_tls(confab_server::config::TlsSource::SelfSigned);
    let handle = confab_server::start(config).await.expect("server starts");
    (handle, dir)
}

/// A short fan-out over `url` (with `extra` arguments) that must deliver
/// everything; returns its report.
async fn short_fanout_delivers_everything(url: String, extra: Vec<String>) -> serde_json::Value {
    let report = tokio::task::spawn_blocking(move || {
        let mut args: Vec<&str> = vec![
            "fanout",
            "--rooms",
            "3",
            "--members",
            "4",
            "--rate",
            "300",
            "--warmup",
            "0.5",
            "--duration",
            "1.5",
            "--drain",
            "3",
        ];
        args.extend(extra.iter().map(String::as_str));
        loadgen(&url, &args)
    })
    .await
    .expect("loadgen task");
    let step = &report["steps"][0];
    assert_eq!(step["errors"], 0, "{report:#}");
    assert!(step["sent"].as_u64().unwrap() > 300, "{report:#}");
    assert!(
        step["latency_from_send"]["count"].as_u64().unwrap() > 0,
        "deliveries are timed from the thread's sends: {report:#}"
    );
    assert_eq!(
        step["expected"].as_u64().unwrap(),
        step["sent"].as_u64().unwrap() * 4
    );
    assert_eq!(
        step["delivered"], step["expected"],
        "nothing lost: {report:#}"
    );
    assert!(step["latency"]["p99_ms"].as_f64().unwrap() > 0.0);
    report
}

/// Runs `confab-loadgen ARGS` against `url`; returns its JSON report.
fn loadgen(url: &str, args: &[&str]) -> serde_json::Value {
    loadgen_exporting(url, args, "off")
}

/// [`loadgen`] with its own /metrics at `metrics` (or "off").
fn loadgen_exporting(url: &str, args: &[&str], metrics: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_confab-loadgen"))
        .args(args)
        .args([
            "--url",
            url,
            "--metrics-listen",
            metrics,
            "--max-seconds",
            "60",
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("loadgen runs");
    assert!(
        out.status.success(),
        "loadgen failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&json).expect("report written"))
        .expect("JSON report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_every_message_to_every_member_and_reports_it() {
    let (server, _dir) = server(0).await;
    let url = format!("confab://{}", server.tcp_addr());
    let metrics = server.metrics_addr().expect("metrics listener").to_string();
    let report = tokio::task::spawn_blocking(move || {
        loadgen(
            &url,
            &[
                "fanout",
                "--rooms",
                "3",
                "--members",
                "4",
                "--rate",
                "300",
                "--warmup",
                "0.5",
                "--duration",
                "1.5",
                "--drain",
                "3",
                "--server-metrics",
                &metrics,
            ],
        )
    })
    .await
    .expect("loadgen task");
    // Plain TCP to one server: the default pacing sends from its thread.
    assert_eq!(report["pacing"], "thread", "{report:#}");
    let step = &report["steps"][0];
    assert_eq!(step["errors"], 0, "{report:#}");
    assert!(step["sent"].as_u64().unwrap() > 300, "{report:#}");
    assert!(
        step["latency_from_send"]["count"].as_u64().unwrap() > 0,
        "deliveries are timed from the thread's sends: {report:#}"
    );
    assert_eq!(
        step["expected"].as_u64().unwrap(),
        step["sent"].as_u64().unwrap() * 4
    );
    assert_eq!(
        step["delivered"], step["expected"],
        "nothing lost: {report:#}"
    );
    assert!(step["latency"]["p99_ms"].as_f64().unwrap() > 0.0);
    assert!(
        step["ack_latency"]["count"].as_u64().unwrap() > 0,
        "acks are timed"
    );
    assert!(
        step["server"]["cpu_seconds"].as_f64().unwrap() > 0.0,
        "server usage from /metrics"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_history_and_idle_complete() {
    let (server, _dir) = server(0).await;
    let url = format!("confab://{}", server.tcp_addr());
    let report = tokio::task::spawn_blocking(move || {
        let churn = loadgen(
            &url,
            &[
                "churn",
                "--rate",
                "20",
                "--users",
                "10",
                "--warmup",
                "0.2",
                "--duration",
                "1",
                "--drain",
                "3",
            ],
        );
        let history = loadgen(
            &url,
            &[
                "history",
                "--rate",
                "50",
                "--readers",
                "2",
                "--messages",
                "300",
                "--warmup",
                "0.2",
                "--duration",
                "1",
                "--drain",
                "3",
            ],
        );
        let idle = loadgen(
            &url,
            &[
                "idle",
                "--connections",
                "50",
                "--rooms",
                "5",
                "--hold",
                "0.5",
            ],
        );
        (churn, history, idle)
    })
    .await
    .expect("loadgen task");
    let (churn, history, idle) = report;
    for r in [&churn, &history] {
        let step = &r["steps"][0];
        assert_eq!(step["errors"], 0, "{r:#}");
        assert_eq!(step["delivered"], step["expected"], "{r:#}");
    }
    assert_eq!(idle["idle"]["connections"], 50, "{idle:#}");
    assert_eq!(idle["idle"]["failed"], 0, "{idle:#}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_server_shows_up_as_errors_and_a_note() {
    let (server, _dir) = server(20).await;
    let url = format!("confab://{}", server.tcp_addr());
    let report = tokio::task::spawn_blocking(move || {
        loadgen(
            &url,
            &[
                "fanout",
                "--rooms",
                "1",
                "--members",
                "2",
                "--rate",
                "400",
                "--warmup",
                "0",
                "--duration",
                "1",
                "--drain",
                "2",
            ],
        )
    })
    .await
    .expect("loadgen task");
    assert!(
        report["steps"][0]["error_codes"]["402"].as_u64().unwrap() > 0,
        "{report:#}"
    );
    let notes = report["notes"].to_string();
    assert!(notes.contains("--rate-limit-per-sec 0"), "{notes}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_over_tls_delivers_everything_with_a_pinned_fingerprint() {
    let (server, _dir) = server_all_transports().await;
    let url = format!("confabs://{}", server.tls_addr().expect("TLS listener"));
    let fingerprint = server.tls_fingerprint().expect("fingerprint").to_owned();
    let report =
        short_fanout_delivers_everything(url, vec!["--tls-fingerprint".into(), fingerprint]).await;
    // The default pacing has no sending thread on TLS (nor on WebSocket).
    assert_eq!(
        report["pacing"], "timerfd (no sending thread here)",
        "{report:#}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_over_websocket_delivers_everything_plain_and_over_tls() {
    let (server, _dir) = server_all_transports().await;
    let ws = format!("ws://{}/ws", server.http_addr().expect("HTTP listener"));
    short_fanout_delivers_everything(ws, Vec::new()).await;
    // wss:// trusting the PEM the server wrote (its certificate names
    // localhost, which resolves to loopback).
    let port = server.tls_addr().expect("TLS listener").port();
    let pem = server
        .tls_cert_pem()
        .expect("PEM written")
        .display()
        .to_string();
    let wss = format!("wss://localhost:{port}/ws");
    short_fanout_delivers_everything(wss, vec!["--ca-cert".into(), pem]).await;
    server.shutdown().await;
}

#[test]
fn tls_needs_a_trust_option_and_remote_targets_are_refused() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_confab-loadgen"))
            .args(["fanout", "--metrics-listen", "off", "--max-seconds", "5"])
            .args(args)
            .output()
            .expect("loadgen runs")
    };
    let out = run(&["--url", "confabs://127.0.0.1:1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--tls-fingerprint"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for url in ["wss://192.0.2.1:443/ws", "ws://192.0.2.1:80/ws"] {
        let out = run(&["--url", url, "--tls-fingerprint", &"AB".repeat(32)]);
        assert!(!out.status.success(), "{url}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("not a loopback address"),
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A `nats-server` of the test's own on a spare loopback port (never the
/// machine's shared one), stopped when dropped.
struct NatsServer {
    child: Child,
    port: u16,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `NATS_SERVER` if set (and only that), else Debian's
/// `/usr/sbin/nats-server`, else one on PATH.
fn nats_server_binary() -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        let path = std::path::PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    [std::path::PathBuf::from("/usr/sbin")]
        .into_iter()
        .chain(on_path)
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
}

/// Starts a `nats-server`, or says why not: a missing server fails the test
/// when `CI` or `CONFAB_REQUIRE_NATS` is set, and is reported as skipped
/// otherwise.
fn start_nats_server() -> Option<NatsServer> {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    let Some(bin) = nats_server_binary() else {
        assert!(
            !(set("CI") || set("CONFAB_REQUIRE_NATS")),
            "nats-server is not installed (expected /usr/sbin/nats-server: apt-get install nats-server, \
             or set NATS_SERVER): with CI or CONFAB_REQUIRE_NATS set the NATS comparison must run"
        );
        // Straight to stderr: the harness captures eprintln!, and a test
        // that did not run must say so.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {}: nats-server is not installed (apt-get install nats-server); \
             set CONFAB_REQUIRE_NATS=1 to make this a failure",
            std::thread::current().name().unwrap_or("a NATS test")
        );
        return None;
    };
    // A spare port may be taken between finding and binding it: retry.
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a spare port")
            .port();
        let mut child = Command::new(&bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(NatsServer { child, port });
            }
            if child.try_wait().expect("nats-server status").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("nats-server did not start listening on a spare port in five attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_against_nats_delivers_every_message_to_every_member() {
    let Some(nats) = start_nats_server() else {
        return;
    };
    let url = format!("nats://127.0.0.1:{}", nats.port);
    let pid = nats.child.id().to_string();
    // Every message reaches every member, the publisher's own connection
    // included (NATS echoes it), as on Confab.
    let report =
        short_fanout_delivers_everything(url.clone(), vec!["--server-pid".into(), pid.clone()])
            .await;
    assert_eq!(report["target"], "nats", "{report:#}");
    assert_eq!(report["pacing"], "thread", "{report:#}");
    let step = &report["steps"][0];
    // Sane latencies: measured, ordered, and within what the window and the
    // drain allow (deliveries later than that are not counted at all).
    let lat = &step["latency"];
    let (p50, p99, max) = (
        lat["p50_ms"].as_f64().unwrap(),
        lat["p99_ms"].as_f64().unwrap(),
        lat["max_ms"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{lat:#}");
    assert!(max <= (1.5 + 3.0 + 1.0) * 1000.0, "{lat:#}");
    assert!(
        step["ack_latency"].is_null(),
        "NATS core pub/sub has no acks"
    );
    assert!(step["send_lateness"]["count"].as_u64().unwrap() > 0);
    assert!(
        step["server"]["rss_end_bytes"].as_u64().unwrap() > 0,
        "{report:#}"
    );
    assert!(!step["background"]["cores"].as_array().unwrap().is_empty());
    assert_eq!(report["setup"]["connections"], 12, "{report:#}");
    assert_eq!(report["setup"]["population_seconds"], 0.0);

    let idle = tokio::task::spawn_blocking(move || {
        loadgen(
            &url,
            &[
                "idle",
                "--connections",
                "50",
                "--rooms",
                "5",
                "--hold",
                "0.5",
                "--server-pid",
                &pid,
            ],
        )
    })
    .await
    .expect("loadgen task");
    assert_eq!(idle["idle"]["connections"], 50, "{idle:#}");
    assert_eq!(idle["idle"]["failed"], 0, "{idle:#}");
}

#[test]
fn nats_targets_need_an_explicit_port_and_run_only_pub_sub_scenarios() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_confab-loadgen"))
            .args(args)
            .args(["--metrics-listen", "off", "--max-seconds", "5"])
            .output()
            .expect("loadgen runs")
    };
    let out = run(&["fanout", "--url", "nats://127.0.0.1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("explicit port"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["history", "--url", "nats://127.0.0.1:1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fanout, big-room and idle only"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- several URLs: the nodes of one cluster --------------------------------

/// In-process cluster nodes on one throwaway database and a nats-server of
/// the test's own (4 partitions, leases of 1.5 s), each serving a share of
/// the partitions; `None` (skipped) without Postgres or nats-server, a
/// failure then under `CONFAB_REQUIRE_POSTGRES=1`.
struct Cluster {
    db: confab_testkit::postgres::TestDatabase,
    _nats: NatsServer,
    nodes: Vec<(confab_server::ServerHandle, tempfile::TempDir)>,
}

impl Cluster {
    async fn start(test: &str, count: usize) -> Option<Cluster> {
        let db = confab_testkit::postgres::TestDatabase::create(test).await?;
        let Some(nats) = start_nats_server() else {
            assert!(
                !confab_testkit::postgres::postgres_required(),
                "{test}: no nats-server, and CONFAB_REQUIRE_POSTGRES=1 requires the cluster tests to run"
            );
            return None;
        };
        let mut nodes = Vec::new();
        for i in 0..count {
            let dir = tempfile::tempdir().expect("temp dir");
            let mut config = config(dir.path(), 0);
            config.database_url = db.url().parse().expect("a postgres:// URL");
            config.cluster_nats =
                confab_server::config::Opt(Some(format!("nats://127.0.0.1:{}", nats.port)));
            config.node_id = confab_server::config::Opt(Some(format!("n{i}")));
            config.cluster_partitions = 4;
            config.lease_ms = confab_server::config::Millis(1_500);
            let handle = confab_server::start(config).await.expect("node starts");
            nodes.push((handle, dir));
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let shares: Vec<usize> = nodes
                .iter()
                .map(|(h, _)| h.served_partitions().len())
                .collect();
            if shares.iter().sum::<usize>() == 4 && shares.iter().all(|&n| n >= 1) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "partitions never spread: {shares:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(Cluster {
            db,
            _nats: nats,
            nodes,
        })
    }

    /// The nodes' URLs, comma-separated.
    fn urls(&self) -> String {
        let urls: Vec<String> = self
            .nodes
            .iter()
            .map(|(h, _)| format!("confab://{}", h.tcp_addr()))
            .collect();
        urls.join(",")
    }

    async fn stop(self) {
        for (node, _dir) in self.nodes {
            node.shutdown().await;
        }
        self.db.drop_now().await;
    }
}

/// The connections the report says went to each node.
fn spread(report: &serde_json::Value, field: &str) -> Vec<u64> {
    report["nodes"]
        .as_array()
        .expect("nodes in the report")
        .iter()
        .map(|n| n[field].as_u64().expect("a count"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_spreads_every_rooms_members_over_the_nodes_of_a_cluster() {
    let Some(cluster) = Cluster::start("loadgen_fanout_spreads", 2).await else {
        return;
    };
    // 3 rooms × 4 members: member m of room r on node (r + m) % 2, so
    // each room has two members on each node.
    let report = short_fanout_delivers_everything(cluster.urls(), Vec::new()).await;
    assert_eq!(spread(&report, "connections"), [6, 6], "{report:#}");
    assert_eq!(spread(&report, "disconnected"), [0, 0]);
    assert_eq!(report["url"], cluster.urls());
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_clients_whose_node_stops_reconnect_to_the_next_and_traffic_goes_on() {
    let Some(mut cluster) = Cluster::start("loadgen_fanout_reconnects", 2).await else {
        return;
    };
    let urls = cluster.urls();
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a spare port")
        .to_string();
    let exporter = metrics.clone();
    let run = tokio::task::spawn_blocking(move || {
        loadgen_exporting(
            &urls,
            &[
                "fanout",
                "--rooms",
                "2",
                "--members",
                "4",
                "--rate",
                "200",
                "--warmup",
                "0.5",
                "--duration",
                "6",
                "--drain",
                "3",
            ],
            &exporter,
        )
    });
    // Once messages flow, the second node stops (gracefully: it hands its
    // partitions over and closes its connections).
    let addr: std::net::SocketAddr = metrics.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = confab_metrics_text(addr);
        let received = text
            .lines()
            .find(|l| l.starts_with("confab_loadgen_received_total"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if received > 100.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no traffic: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (second, _dir) = cluster.nodes.pop().expect("two nodes");
    second.shutdown().await;
    let report = run.await.expect("loadgen task");
    // Node 1 had half of the 8 connections; each reopened on node 0.
    assert_eq!(spread(&report, "connections"), [4, 4], "{report:#}");
    assert_eq!(spread(&report, "disconnected"), [0, 4], "{report:#}");
    assert_eq!(spread(&report, "reconnected"), [4, 0], "{report:#}");
    // The rooms' publishers on node 1 send on their new connections: the
    // window delivered most of what it offered, despite the moves.
    let step = &report["steps"][0];
    assert!(
        step["delivered_ratio"].as_f64().unwrap() > 0.5,
        "{report:#}"
    );
    cluster.stop().await;
}

/// GET /metrics of a load generator (empty while it is not listening).
fn confab_metrics_text(addr: std::net::SocketAddr) -> String {
    use std::io::Read;
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn several_urls_must_all_be_confab_and_nats_takes_one() {
    let refused = |urls: &str, why: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_confab-loadgen"))
            .args(["fanout", "--url", urls, "--metrics-listen", "off"])
            .output()
            .expect("loadgen runs");
        assert!(!out.status.success(), "{urls} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{urls}: {err}");
    };
    refused(
        "nats://127.0.0.1:4310,nats://127.0.0.1:4311",
        "nats:// takes one URL",
    );
    refused(
        "confab://127.0.0.1:7400,nats://127.0.0.1:4310",
        "the same protocol",
    );
}
