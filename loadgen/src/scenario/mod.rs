//! Scenarios. Each prepares its population (users, rooms, connections) and
//! then runs measured steps. Everything runs on one thread (a
//! current-thread runtime with a `LocalSet`), so tasks share recorders
//! through `Rc<RefCell<_>>` without atomics, and the load generator's cost
//! is one core, which its report checks.

pub mod churn;
pub mod fanout;
pub mod history;
pub mod idle;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use crate::clock::now_ns;
use crate::net::{self, Connector, FrameReader, FrameWriter};
use crate::probe::{self, ServerProbe, UsageWindow};
use crate::setup::User;
use crate::stats::{Recorder, SelfUsage, ServerUsage};

/// Recorders by traffic kind (`fanout`, `churn`, …).
pub type Recorders = Vec<(&'static str, Rc<RefCell<Recorder>>)>;

/// What every scenario needs.
pub struct Ctx {
    pub connector: Connector,
    pub probe: ServerProbe,
    pub prefix: String,
    /// Read buffer per receiving connection.
    pub read_buf: usize,
    /// Recorders shown by the progress line and `/metrics`, by traffic kind.
    pub recorders: RefCell<Recorders>,
    /// Open measured connections (for `/metrics` and reports).
    pub connections: Cell<usize>,
    /// Current offered rate per traffic kind (for `/metrics`).
    pub offered: RefCell<Vec<(&'static str, f64)>>,
    /// What the run is doing now (progress line).
    pub phase: RefCell<String>,
    /// Set when the run ends: reader and keep-alive tasks stop.
    pub stop: Cell<bool>,
}

impl Ctx {
    pub fn recorder(&self, name: &'static str) -> Rc<RefCell<Recorder>> {
        let r = Rc::new(RefCell::new(Recorder::default()));
        self.recorders.borrow_mut().push((name, r.clone()));
        r
    }

    pub fn set_phase(&self, s: impl Into<String>) {
        *self.phase.borrow_mut() = s.into();
    }

    pub fn set_offered(&self, name: &'static str, rate: f64) {
        let mut o = self.offered.borrow_mut();
        match o.iter_mut().find(|(n, _)| *n == name) {
            Some(e) => e.1 = rate,
            None => o.push((name, rate)),
        }
    }

    /// Opens one authenticated connection per user (HELLO with the user's
    /// token), `concurrency` at a time.
    pub async fn open_all(
        self: &Rc<Self>,
        users: &[User],
        conn_base: usize,
        buf: usize,
    ) -> anyhow::Result<Vec<(FrameReader, FrameWriter)>> {
        use futures_util::StreamExt;
        let mut out = Vec::with_capacity(users.len());
        let mut s = futures_util::stream::iter(users.iter().enumerate())
            .map(|(i, u)| {
                let c = self.connector.clone();
                let token = u.token.clone();
                async move {
                    tokio::time::timeout(
                        Duration::from_secs(30),
                        net::open(&c, conn_base + i, buf, Some(token)),
                    )
                    .await
                    .unwrap_or_else(|_| anyhow::bail!("connect timed out"))
                }
            })
            .buffered(crate::setup::SETUP_CONCURRENCY);
        while let Some(c) = s.next().await {
            out.push(c?);
            self.connections.set(self.connections.get() + 1);
        }
        Ok(out)
    }

    /// Spawns a task that feeds `rd`'s frames to `rec` until the run stops
    /// or the connection ends.
    pub fn spawn_reader(self: &Rc<Self>, mut rd: FrameReader, rec: Rc<RefCell<Recorder>>) {
        let ctx = self.clone();
        tokio::task::spawn_local(async move {
            loop {
                let more = rd
                    .read_frames(|f, now| rec.borrow_mut().on_traffic_frame(f, now))
                    .await;
                match more {
                    Ok(true) => {}
                    _ => {
                        if !ctx.stop.get() {
                            rec.borrow_mut().disconnects += 1;
                        }
                        ctx.connections.set(ctx.connections.get().saturating_sub(1));
                        return;
                    }
                }
            }
        });
    }

    /// Spawns a task that PINGs on every writer every `every`, so that
    /// connections with nothing to send are not closed as idle.
    pub fn spawn_keepalive(self: &Rc<Self>, mut writers: Vec<FrameWriter>, every: Duration) {
        let ctx = self.clone();
        tokio::task::spawn_local(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            let mut ping = bytes::BytesMut::new();
            confab_protocol::Request::Ping { nonce: 0 }.encode(0x7fff_fff0, &mut ping);
            while !ctx.stop.get() {
                tick.tick().await;
                for w in writers.iter_mut() {
                    let _ = w.write_all(&ping).await;
                }
            }
        });
    }
}

/// Measures the server and the load generator over one step.
pub struct StepUsage {
    server: UsageWindow,
    self_start: probe::Sample,
    started: std::time::Instant,
    pub max_lag_ns: u64,
}

impl StepUsage {
    pub async fn start(ctx: &Ctx) -> StepUsage {
        StepUsage {
            server: UsageWindow::start(&ctx.probe).await,
            self_start: probe::self_sample(),
            started: std::time::Instant::now(),
            max_lag_ns: 0,
        }
    }

    pub async fn tick(&mut self, ctx: &Ctx) {
        self.server.tick(&ctx.probe).await;
    }

    pub fn lag(&mut self, intended: u64, now: u64) {
        self.max_lag_ns = self.max_lag_ns.max(now.saturating_sub(intended));
    }

    pub async fn finish(self, ctx: &Ctx) -> (Option<ServerUsage>, SelfUsage) {
        let wall = self.started.elapsed().as_secs_f64();
        let me = probe::self_sample();
        let util = (me.cpu_seconds - self.self_start.cpu_seconds) / wall;
        let server = self.server.finish(&ctx.probe).await;
        (
            server,
            SelfUsage {
                cpu_utilization: util,
                saturated: util >= 0.9,
                max_send_lag_ms: self.max_lag_ns as f64 / 1e6,
            },
        )
    }
}

/// Timing of one measured step.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Traffic before the window, not measured.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Most time to wait after the window for its last deliveries.
    pub drain: Duration,
}

/// An open-loop schedule: request `k` (from 0) is due at `start + k / rate`.
pub struct Pacer {
    pub start: u64,
    pub rate: f64,
    pub total: u64,
    pub sent: u64,
}

impl Pacer {
    pub fn new(rate: f64, timing: &Timing) -> Pacer {
        let secs = (timing.warmup + timing.duration).as_secs_f64();
        Pacer {
            start: now_ns() + 5_000_000,
            rate,
            total: (secs * rate).ceil() as u64,
            sent: 0,
        }
    }

    /// The measured window in intended time.
    pub fn window(&self, timing: &Timing) -> (u64, u64) {
        let from = self.start + timing.warmup.as_nanos() as u64;
        (from, from + timing.duration.as_nanos() as u64)
    }

    pub fn intended(&self, k: u64) -> u64 {
        self.start + (k as f64 * 1e9 / self.rate) as u64
    }

    /// Requests due by `now`, not yet sent: `sent..due`.
    pub fn due(&self, now: u64) -> u64 {
        if now < self.start {
            return self.sent;
        }
        let due = ((now - self.start) as f64 * self.rate / 1e9) as u64 + 1;
        due.min(self.total)
    }

    pub fn done(&self) -> bool {
        self.sent >= self.total
    }

    /// Sleeps until the next request is due (at most 1 ms early batches
    /// arrive anyway: tokio's timer has millisecond resolution).
    pub async fn wait(&self) {
        let next = self.intended(self.sent);
        let now = now_ns();
        if next > now {
            tokio::time::sleep(Duration::from_nanos(next - now)).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}

/// Waits until `done()` or `limit` passes, polling every 10 ms.
pub async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
