//! The load generator's own `/metrics` (Prometheus text format), so that
//! Grafana shows client-side latency beside the server's.
//!
//! Rendered by hand from the recorders at scrape time: recording a
//! delivery is then one HDR-histogram increment, with no metrics facade on
//! a path that runs millions of times per second.

use std::fmt::Write;
use std::rc::Rc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::probe;
use crate::scenario::Ctx;

/// Bucket bounds in seconds (the server's latency buckets).
const BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// Serves `/metrics` on `addr` (on this thread's `LocalSet`).
pub async fn serve(
    addr: std::net::SocketAddr,
    ctx: Rc<Ctx>,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::task::spawn_local(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let ctx = ctx.clone();
            tokio::task::spawn_local(async move {
                let mut head = [0u8; 2048];
                let mut n = 0;
                while n < head.len() {
                    match tokio::time::timeout(
                        std::time::Duration::from_secs(5),
                        s.read(&mut head[n..]),
                    )
                    .await
                    {
                        Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                        Ok(Ok(k)) => n += k,
                    }
                    if head[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let ok = head[..n].starts_with(b"GET /metrics");
                let (status, body) = if ok {
                    ("200 OK", render(&ctx))
                } else {
                    ("404 Not Found", "not found\n".to_owned())
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    Ok(local)
}

fn render(ctx: &Ctx) -> String {
    let mut o = String::with_capacity(8192);
    let recs = ctx.recorders.borrow();
    let counter =
        |o: &mut String, name: &str, help: &str, get: &dyn Fn(&crate::stats::Recorder) -> u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
            for (traffic, r) in recs.iter() {
                let _ = writeln!(o, "{name}{{traffic=\"{traffic}\"}} {}", get(&r.borrow()));
            }
        };
    counter(
        &mut o,
        "confab_loadgen_sent_total",
        "Messages or requests sent.",
        &|r| r.sent_total,
    );
    counter(
        &mut o,
        "confab_loadgen_received_total",
        "Deliveries or responses received and timed.",
        &|r| r.received_total,
    );
    counter(
        &mut o,
        "confab_loadgen_frames_total",
        "Frames parsed by traffic readers.",
        &|r| r.frames_total,
    );
    counter(
        &mut o,
        "confab_loadgen_errors_total",
        "ERROR and CLOSE frames received and failed cycles.",
        &|r| r.errors_total,
    );
    let name = "confab_loadgen_latency_seconds";
    let _ = writeln!(
        o,
        "# HELP {name} Latency from intended send time to receipt (deliveries, pages, churn cycles).\n# TYPE {name} histogram"
    );
    for (traffic, r) in recs.iter() {
        let r = r.borrow();
        let h = &r.latency_total;
        for le in BUCKETS {
            let le_ns = (le * 1e9) as u64;
            let count = if h.is_empty() {
                0
            } else {
                h.count_between(0, le_ns)
            };
            let _ = writeln!(
                o,
                "{name}_bucket{{traffic=\"{traffic}\",le=\"{le}\"}} {count}"
            );
        }
        let _ = writeln!(
            o,
            "{name}_bucket{{traffic=\"{traffic}\",le=\"+Inf\"}} {}",
            h.len()
        );
        let _ = writeln!(
            o,
            "{name}_sum{{traffic=\"{traffic}\"}} {}",
            h.mean() * h.len() as f64 / 1e9
        );
        let _ = writeln!(o, "{name}_count{{traffic=\"{traffic}\"}} {}", h.len());
    }
    let _ = writeln!(o, "# HELP confab_loadgen_offered_rate Requests per second offered now.\n# TYPE confab_loadgen_offered_rate gauge");
    for (traffic, rate) in ctx.offered.borrow().iter() {
        let _ = writeln!(
            o,
            "confab_loadgen_offered_rate{{traffic=\"{traffic}\"}} {rate}"
        );
    }
    let _ = writeln!(
        o,
        "# HELP confab_loadgen_connections Open measured connections.\n# TYPE confab_loadgen_connections gauge\nconfab_loadgen_connections {}",
        ctx.connections.get()
    );
    let me = probe::proc_sample("self", true).unwrap_or_default();
    let _ = writeln!(
        o,
        "# HELP process_cpu_seconds_total CPU time used by the load generator.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}",
        me.cpu_seconds
    );
    let _ = writeln!(
        o,
        "# HELP process_resident_memory_bytes Resident memory of the load generator.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}",
        me.rss_bytes
    );
    if let Some(fds) = me.open_fds {
        let _ = writeln!(
            o,
            "# HELP process_open_fds Open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds {fds}"
        );
    }
    o
}
