//! Scenarios. Each prepares its population (users, rooms, connections) and
//! then runs measured steps; `fanout`, `big-room` and `idle` also run
//! against a NATS server (`nats://`), the comparison target. Scheduled
//! scenarios share one open-loop driver ([`OpenLoop`] around
//! [`crate::pacer::Pacer`]). Everything runs on one thread (a
//! current-thread runtime with a `LocalSet`), so tasks share recorders
//! through `Rc<RefCell<_>>` without atomics, and the load generator's cost
//! is one core, which its report checks.

pub mod chatter;
pub mod churn;
pub mod fanout;
pub mod history;
pub mod idle;
pub mod soak;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use crate::clock::now_ns;
use crate::nats::{self, NatsReader};
use crate::net::{self, Connector, FrameReader, FrameWriter, Protocol};
use crate::pacer::{Due, Pacer, Pacing};
use crate::probe::{self, Ours, ServerProbe, SystemSample, UsageWindow};
use crate::setup::User;
use crate::stats::{Recorder, Schedule, SelfUsage, ServerUsage, StepReport};
use confab_protocol::ResumePoint;

/// Recorders by traffic kind (`fanout`, `churn`, …).
pub type Recorders = Vec<(&'static str, Rc<RefCell<Recorder>>)>;

/// What every scenario needs.
pub struct Ctx {
    pub connector: Connector,
    pub probe: ServerProbe,
    pub prefix: String,
    /// Read buffer per receiving connection.
    pub read_buf: usize,
    /// Measured connections opened at once (`--connect-concurrency`).
    pub connect_concurrency: usize,
    /// How the open-loop pacers wait (`--pacing`).
    pub pacing: Pacing,
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
    /// Measured connections per node of the target (one entry per URL).
    pub spread: RefCell<Vec<NodeSpread>>,
    /// Writers of connections reopened after a disconnect, for the
    /// keep-alive task to adopt.
    pub late_writers: RefCell<Vec<FrameWriter>>,
}

/// How a run's measured connections were spread over one node.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct NodeSpread {
    pub url: String,
    /// Measured connections opened to it at set-up.
    pub connections: usize,
    /// Connections to it that ended while the run went on.
    pub disconnected: u64,
    /// Connections reopened on it after a disconnect from another (or,
    /// when every other refused, the same) node.
    pub reconnected: u64,
}

/// What a reader needs to reopen its connection on the next node after a
/// disconnect (a target of several nodes only).
pub struct Redial {
    /// The user's session token (valid on every node of a cluster).
    pub token: String,
    /// The node the connection is on now.
    pub node: usize,
    /// The connection's number (its source address).
    pub n: usize,
    /// A publisher's slot: the reopened writer goes there, for the sending
    /// loop to take; `None` hands it to the keep-alive task.
    pub writer: Option<Rc<RefCell<Option<FrameWriter>>>>,
}

/// The receiving side of a measured connection, whatever the target speaks.
pub enum Receiver {
    Confab(FrameReader),
    Nats(NatsReader),
}

impl Receiver {
    /// Reads once and records the room traffic that arrived; `Ok(false)`
    /// at end of stream.
    async fn record(&mut self, rec: &RefCell<Recorder>) -> std::io::Result<bool> {
        match self {
            Receiver::Confab(rd) => {
                rd.read_frames(|f, now| rec.borrow_mut().on_traffic_frame(f, now))
                    .await
            }
            Receiver::Nats(rd) => {
                rd.read_ops(|op, now| rec.borrow_mut().on_nats_op(op, now))
                    .await
            }
        }
    }
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
    /// token), `connect_concurrency` at a time.
    pub async fn open_all(
        self: &Rc<Self>,
        users: &[User],
        conn_base: usize,
        buf: usize,
    ) -> anyhow::Result<Vec<(FrameReader, FrameWriter)>> {
        let c = &self.connector;
        self.open_all_on(users, conn_base, buf, |i| c.node_for(conn_base + i))
            .await
    }

    /// [`Ctx::open_all`], user `i` on node `node(i)` of the target.
    pub async fn open_all_on(
        self: &Rc<Self>,
        users: &[User],
        conn_base: usize,
        buf: usize,
        node: impl Fn(usize) -> usize,
    ) -> anyhow::Result<Vec<(FrameReader, FrameWriter)>> {
        let node = &node;
        self.open_many(users.len(), node, |i| {
            let c = self.connector.clone();
            let token = users[i].token.clone();
            async move { net::open_on(&c, node(i), conn_base + i, buf, Some(token)).await }
        })
        .await
    }

    /// [`Ctx::open_all`] with resume points: connection `i` resumes
    /// `resume(i)` and waits for `expect_events` replayed events (or a
    /// RESUME_GAP per point).
    pub async fn open_all_resuming(
        self: &Rc<Self>,
        users: &[User],
        conn_base: usize,
        buf: usize,
        resume: impl Fn(usize) -> Vec<ResumePoint>,
        expect_events: usize,
    ) -> anyhow::Result<Vec<(FrameReader, FrameWriter, net::Replay)>> {
        let c = &self.connector;
        let node = |i: usize| c.node_for(conn_base + i);
        self.open_many(users.len(), node, |i| {
            let c = self.connector.clone();
            let token = users[i].token.clone();
            let points = resume(i);
            async move {
                let n = conn_base + i;
                net::open_resuming(&c, node(i), n, buf, Some(token), points, expect_events).await
            }
        })
        .await
    }

    /// Opens `count` NATS connections, connection `i` subscribed to
    /// `subject(i)`, `connect_concurrency` at a time; also
    /// returns the server's version.
    pub async fn open_all_nats(
        self: &Rc<Self>,
        count: usize,
        conn_base: usize,
        buf: usize,
        subject: impl Fn(usize) -> String,
    ) -> anyhow::Result<(Vec<(NatsReader, FrameWriter)>, String)> {
        let mut version = String::new();
        let conns = self
            .open_many(
                count,
                |_| 0,
                |i| {
                    let c = self.connector.clone();
                    let subjects = [subject(i)];
                    async move { nats::open(&c, conn_base + i, buf, &subjects).await }
                },
            )
            .await?
            .into_iter()
            .map(|c| {
                version = c.server_version;
                (c.rd, c.wr)
            })
            .collect();
        Ok((conns, version))
    }

    /// Runs `open(i)` for `0..count`, `connect_concurrency`
    /// at a time, each within 30 s, counting open connections (connection
    /// `i` on node `node(i)`).
    async fn open_many<T, F>(
        &self,
        count: usize,
        node: impl Fn(usize) -> usize,
        open: impl Fn(usize) -> F,
    ) -> anyhow::Result<Vec<T>>
    where
        F: std::future::Future<Output = anyhow::Result<T>>,
    {
        use futures_util::StreamExt;
        let mut out = Vec::with_capacity(count);
        let mut s = futures_util::stream::iter(0..count)
            .map(|i| {
                let f = open(i);
                async move {
                    let c = tokio::time::timeout(Duration::from_secs(30), f)
                        .await
                        .unwrap_or_else(|_| anyhow::bail!("connect timed out"));
                    (i, c)
                }
            })
            .buffered(self.connect_concurrency);
        while let Some((i, c)) = s.next().await {
            out.push(c?);
            self.connections.set(self.connections.get() + 1);
            self.node_counts(node(i), |n| n.connections += 1);
        }
        Ok(out)
    }

    /// Changes node `node`'s counts.
    pub fn node_counts(&self, node: usize, f: impl FnOnce(&mut NodeSpread)) {
        let mut spread = self.spread.borrow_mut();
        let len = spread.len().max(1);
        if let Some(n) = spread.get_mut(node % len) {
            f(n);
        }
    }

    /// Spawns a task that feeds `rd`'s traffic to `rec` until the run
    /// stops or the connection ends.
    pub fn spawn_reader(self: &Rc<Self>, rd: Receiver, rec: Rc<RefCell<Recorder>>) {
        self.spawn_reader_redialing(rd, rec, None);
    }

    /// [`Ctx::spawn_reader`] that, on a target of several nodes, reopens
    /// a connection that ended on the next node (then the one after, each
    /// try within 5 s, at most three rounds over the nodes) and reads on.
    pub fn spawn_reader_redialing(
        self: &Rc<Self>,
        mut rd: Receiver,
        rec: Rc<RefCell<Recorder>>,
        mut redial: Option<Redial>,
    ) {
        if self.connector.nodes() < 2 {
            redial = None;
        }
        let ctx = self.clone();
        tokio::task::spawn_local(async move {
            loop {
                match rd.record(&rec).await {
                    Ok(true) => continue,
                    _ if ctx.stop.get() => {}
                    _ => {
                        rec.borrow_mut().disconnects += 1;
                        if let Some(r) = redial.as_mut() {
                            ctx.node_counts(r.node, |n| n.disconnected += 1);
                            if let Some(next) = ctx.redial(r).await {
                                rd = next;
                                continue;
                            }
                        }
                    }
                }
                ctx.connections.set(ctx.connections.get().saturating_sub(1));
                return;
            }
        });
    }

    /// Reopens `r`'s connection on the nodes after its own, in turn;
    /// `None` once every try failed or the run stopped.
    async fn redial(&self, r: &mut Redial) -> Option<Receiver> {
        let nodes = self.connector.nodes();
        for attempt in 1..=3 * nodes {
            if self.stop.get() {
                return None;
            }
            let node = (r.node + attempt) % nodes;
            let token = Some(r.token.clone());
            let open = net::open_on(&self.connector, node, r.n, self.read_buf, token);
            match tokio::time::timeout(Duration::from_secs(5), open).await {
                Ok(Ok((rd, wr))) => {
                    r.node = node;
                    self.node_counts(node, |n| n.reconnected += 1);
                    match &r.writer {
                        Some(slot) => *slot.borrow_mut() = Some(wr),
                        None => self.late_writers.borrow_mut().push(wr),
                    }
                    return Some(Receiver::Confab(rd));
                }
                // A node that is down refuses at once: pause a little
                // before the next, more after each full round.
                _ => {
                    tokio::time::sleep(Duration::from_millis(50 * (attempt / nodes + 1) as u64))
                        .await
                }
            }
        }
        None
    }

    /// Spawns a task that PINGs on every writer every `every`, so that
    /// connections with nothing to send are not closed as idle (and, on
    /// NATS, so that the server's PINGs get their PONGs).
    pub fn spawn_keepalive(self: &Rc<Self>, mut writers: Vec<FrameWriter>, every: Duration) {
        let ctx = self.clone();
        let ping = match self.connector.protocol() {
            Protocol::Confab => {
                let mut ping = bytes::BytesMut::new();
                confab_protocol::Request::Ping { nonce: 0 }.encode(0x7fff_fff0, &mut ping);
                ping.to_vec()
            }
            Protocol::Nats => nats::PING.to_vec(),
        };
        tokio::task::spawn_local(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            while !ctx.stop.get() {
                tick.tick().await;
                writers.extend(ctx.late_writers.borrow_mut().drain(..));
                for w in writers.iter_mut() {
                    let _ = w.write_all(&ping).await;
                }
            }
        });
    }
}

/// Measures the server, the load generator and the rest of the machine
/// over one step.
pub struct StepUsage {
    server: UsageWindow,
    self_start: probe::Sample,
    system_start: Option<SystemSample>,
    started: std::time::Instant,
    pub max_lag_ns: u64,
}

impl StepUsage {
    pub async fn start(ctx: &Ctx) -> StepUsage {
        StepUsage {
            server: UsageWindow::start(&ctx.probe).await,
            self_start: probe::self_sample(),
            system_start: probe::system_sample(),
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

    async fn finish(
        self,
        ctx: &Ctx,
    ) -> (
        Option<ServerUsage>,
        SelfUsage,
        Option<crate::stats::Background>,
    ) {
        let wall = self.started.elapsed().as_secs_f64();
        let me = probe::self_sample();
        let self_cpu = me.cpu_seconds - self.self_start.cpu_seconds;
        let util = self_cpu / wall;
        let server = self.server.finish(&ctx.probe).await;
        let background = match (self.system_start, probe::system_sample()) {
            (Some(start), Some(end)) => Some(probe::background(
                &start,
                &end,
                &ours(ctx, server.as_ref().map(|s| s.cpu_seconds), self_cpu),
            )),
            _ => None,
        };
        (
            server,
            SelfUsage {
                cpu_utilization: util,
                saturated: util >= 0.9 && ctx.pacing != Pacing::Spin,
                max_send_lag_ms: self.max_lag_ns as f64 / 1e6,
            },
            background,
        )
    }

    /// The step's report from its recorder: `fanout` deliveries expected
    /// per request sent, `rate` requests per second offered.
    pub async fn report(
        self,
        ctx: &Ctx,
        label: &str,
        rec: &RefCell<Recorder>,
        timing: &Timing,
        fanout: u64,
        rate: f64,
    ) -> StepReport {
        let (server, me, background) = self.finish(ctx).await;
        let mut report =
            StepReport::from_recorder(label, &rec.borrow(), timing.duration.as_secs_f64(), fanout);
        report.offered_per_s = rate;
        report.offered_deliveries_per_s = rate * fanout as f64;
        report.loadgen = me;
        report.background = background;
        report.with_server(server)
    }
}

/// This run's own processes, for telling background load apart: the
/// server (if probed by pid) and this load generator.
pub fn ours(ctx: &Ctx, server_cpu: Option<f64>, self_cpu: f64) -> Vec<Ours> {
    let mut ours = vec![Ours {
        name: "loadgen",
        cpu_seconds: self_cpu,
        core: probe::pinned_core("self"),
    }];
    if let (ServerProbe::Pids(pids), Some(cpu)) = (&ctx.probe, server_cpu) {
        // Several nodes: their CPU together, on the core they are all
        // pinned to (none if they differ).
        let cores: Vec<Option<usize>> = pids
            .iter()
            .map(|p| probe::pinned_core(&p.to_string()))
            .collect();
        let core = cores[0].filter(|c| cores.iter().all(|d| *d == Some(*c)));
        ours.push(Ours {
            name: "server",
            cpu_seconds: cpu,
            core,
        });
    }
    ours
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

/// One open-loop step as every scheduled scenario runs it: the pacer, the
/// recorder's measured window, the sends' lateness, and the server's and
/// the machine's usage from the start of the window.
pub struct OpenLoop {
    pacer: Pacer,
    rec: Rc<RefCell<Recorder>>,
    window: (u64, u64),
    usage: Option<StepUsage>,
    last_tick: u64,
}

impl OpenLoop {
    /// Starts a step of `rate` requests per second for `timing`'s warm-up
    /// and duration. `first` is the request id of request 0 when replies
    /// name their request (acknowledgements, history pages), so that they
    /// map back to intended times.
    pub fn start(
        ctx: &Ctx,
        name: &'static str,
        rec: &Rc<RefCell<Recorder>>,
        rate: f64,
        timing: &Timing,
        first: Option<u64>,
    ) -> anyhow::Result<OpenLoop> {
        let secs = (timing.warmup + timing.duration).as_secs_f64();
        let total = (secs * rate).ceil() as u64;
        let pacer = Pacer::new(rate, total, ctx.pacing)?;
        let from = pacer.plan.start + timing.warmup.as_nanos() as u64;
        let window = (from, from + timing.duration.as_nanos() as u64);
        rec.borrow_mut().start_window(
            window.0,
            window.1,
            first.map(|first| Schedule {
                start_ns: pacer.plan.start,
                first,
                rate,
            }),
        );
        ctx.set_offered(name, rate);
        Ok(OpenLoop {
            pacer,
            rec: rec.clone(),
            window,
            usage: None,
            last_tick: now_ns(),
        })
    }

    /// Waits for the next requests due and records them as sent now (the
    /// caller sends them at once); `None` when the schedule is done.
    pub async fn next(&mut self, ctx: &Ctx) -> Option<Due> {
        let due = self.pacer.next().await?;
        self.measure(ctx, due.now).await;
        if let Some(u) = self.usage.as_mut() {
            u.lag(self.pacer.intended(due.range.start), due.now);
        }
        let mut rec = self.rec.borrow_mut();
        for k in due.range.clone() {
            rec.sent(self.pacer.intended(k), due.now);
        }
        Some(due)
    }

    /// Starts measuring the server and the machine once the window has
    /// begun (`now`), and samples the server once a second.
    async fn measure(&mut self, ctx: &Ctx, now: u64) {
        if self.usage.is_none() && now >= self.window.0 {
            self.usage = Some(StepUsage::start(ctx).await);
        }
        if let Some(u) = self.usage.as_mut() {
            if now - self.last_tick > 1_000_000_000 {
                self.last_tick = now;
                u.tick(ctx).await;
            }
        }
    }

    /// Runs the whole schedule on a sending thread (`--pacing thread`,
    /// `crate::sender`): `emit(k, intended, out)` appends request `k` to
    /// the buffer of the socket it goes to and returns that socket's
    /// index. Meanwhile the event loop records the thread's sends (every millisecond, and on a delivery
    /// whose send it has not taken yet) and measures the server and the
    /// machine as [`OpenLoop::next`] does. Returns how many sockets the
    /// thread could not write to.
    pub async fn send_from_thread(
        &mut self,
        ctx: &Ctx,
        sockets: Vec<std::os::fd::OwnedFd>,
        emit: impl FnMut(u64, u64, &mut [Vec<u8>]) -> usize + Send + 'static,
    ) -> std::io::Result<u64> {
        let sending = crate::sender::Sending::spawn(self.pacer.plan.clone(), sockets, emit)?;
        self.rec.borrow_mut().sends = Some(sending.log.clone());
        loop {
            let done = sending.log.done();
            self.rec.borrow_mut().take_sent();
            self.measure(ctx, now_ns()).await;
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // The thread has logged its last send: this join does not wait.
        let errors = sending.join();
        let mut rec = self.rec.borrow_mut();
        rec.take_sent();
        rec.sends = None;
        if let Some(u) = self.usage.as_mut() {
            // The window's sends, as `next` would have seen them.
            u.max_lag_ns = u.max_lag_ns.max(rec.send_lateness.max());
        }
        Ok(errors)
    }

    /// When request `k` is due.
    #[inline]
    pub fn intended(&self, k: u64) -> u64 {
        self.pacer.intended(k)
    }

    /// Requests in the whole step.
    pub fn total(&self) -> u64 {
        self.pacer.plan.total
    }

    /// The usage measured since the window began.
    pub async fn finish(self, ctx: &Ctx) -> StepUsage {
        match self.usage {
            Some(u) => u,
            None => StepUsage::start(ctx).await,
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
