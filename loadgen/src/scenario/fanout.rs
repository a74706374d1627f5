//! `fanout` and `big-room`: R rooms × M members, every member online on
//! its own connection; the owner of each room publishes into it on an
//! open-loop schedule (messages spread round-robin over the rooms). Every
//! message is delivered to all M members, the sender's own connection
//! included, so one message is M deliveries.
//!
//! Against NATS the same: one subject per room (`room.<r>`), one
//! connection per member subscribed to it, the first connection of each
//! room publishing `PUB`s whose payload is the Confab message body (stamp
//! included); NATS echoes a publisher's own messages, so one message is M
//! deliveries there too, counted and timed by the same recorder.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_protocol::frame::{begin_frame, end_frame, kind};
use confab_protocol::wire::put_varint;
use confab_protocol::RoomId;

use super::{wait_until, Ctx, OpenLoop, Receiver, Redial, Timing};
use crate::nats;
use crate::net::{FrameWriter, Protocol};
use crate::pacer::Pacing;
use crate::setup;
use crate::stats::{stamp, Recorder, SetupReport, StepReport, STAMP_LEN};

/// A prepared fan-out population.
pub struct Fanout {
    pub members: usize,
    /// The owner's connection in each room: the publisher.
    publishers: Vec<FrameWriter>,
    /// A publisher's connection reopened on another node after a
    /// disconnect (several nodes only), taken before the next send.
    reopened: Vec<Rc<RefCell<Option<FrameWriter>>>>,
    /// One encoded publication per room, patched per message (shared
    /// with the sending thread).
    templates: Arc<Vec<Template>>,
    /// Per-room output buffers, reused.
    out: Vec<Vec<u8>>,
    pub rec: Rc<RefCell<Recorder>>,
    /// Messages sent so far over all steps (request ids).
    next_k: u64,
    pub name: &'static str,
    /// Whether the server acknowledges each message (Confab's
    /// MESSAGE_ACK, once durable; NATS core pub/sub has no such thing).
    acked: bool,
    /// How long the population took to set up.
    pub setup: SetupReport,
    /// What the server said it is (NATS's INFO), for the report.
    pub server_version: Option<String>,
    /// Whether a sending thread sent the steps' messages (`--pacing
    /// thread` where it applies).
    pub from_thread: bool,
}

/// One room's publication, encoded once: each message copies it, patches
/// the request id (Confab) and writes the stamp into the body.
struct Template {
    frame: Vec<u8>,
    /// Offset of the body's first byte (the stamp).
    body_at: usize,
    /// Offset of the request id (Confab frames; NATS has none).
    req_id_at: Option<usize>,
}

impl Template {
    /// SEND_MESSAGE to `room` with a `payload`-byte body.
    fn confab(room: RoomId, payload: usize) -> Template {
        let mut buf = bytes::BytesMut::new();
        let start = begin_frame(&mut buf, kind::SEND_MESSAGE, 0);
        put_varint(&mut buf, room.0);
        put_varint(&mut buf, payload as u64);
        let body_at = buf.len();
        buf.extend(std::iter::repeat_n(b'x', payload));
        end_frame(&mut buf, start);
        Template {
            frame: buf.to_vec(),
            body_at,
            req_id_at: Some(5),
        }
    }

    /// `PUB <subject> <payload>` with a `payload`-byte body.
    fn nats(subject: &str, payload: usize) -> Template {
        let mut frame = format!("PUB {subject} {payload}\r\n").into_bytes();
        let body_at = frame.len();
        frame.extend(std::iter::repeat_n(b'x', payload));
        frame.extend_from_slice(b"\r\n");
        Template {
            frame,
            body_at,
            req_id_at: None,
        }
    }

    fn emit(&self, out: &mut Vec<u8>, req_id: u32, intended: u64) {
        let at = out.len();
        out.extend_from_slice(&self.frame);
        if let Some(id_at) = self.req_id_at {
            out[at + id_at..at + id_at + 4].copy_from_slice(&req_id.to_be_bytes());
        }
        stamp(&mut out[at + self.body_at..], intended);
    }
}

impl Fanout {
    /// Sets up `rooms` × `members` connections: on Confab, users and rooms
    /// are created first and every member connects with its token; on
    /// NATS, every member connects and subscribes to its room's subject.
    /// Member `u` is in room `u % rooms`; member `r < rooms` publishes
    /// into room `r` (and receives its own messages, as every member does).
    /// Against several nodes, member `m` of room `r` (user `r + m·rooms`)
    /// connects to node `(r + m) % nodes`: every room has members on every
    /// node (given as many members as nodes) and its publisher on node
    /// `r % nodes`, so most deliveries cross from the room's owner to
    /// another node, and the publishers spread evenly.
    pub async fn prepare(
        ctx: &Rc<Ctx>,
        name: &'static str,
        prefix: &str,
        rooms: usize,
        members: usize,
        payload: usize,
    ) -> anyhow::Result<Fanout> {
        anyhow::ensure!(
            rooms >= 1 && members >= 1,
            "rooms and members must be at least 1"
        );
        anyhow::ensure!(
            payload >= STAMP_LEN,
            "payload must be at least {STAMP_LEN} bytes"
        );
        let n = rooms * members;
        let rec = ctx.recorder(name);
        let mut writers = Vec::with_capacity(n);
        let mut setup = SetupReport {
            connections: n,
            ..SetupReport::default()
        };
        let mut server_version = None;
        let reopened: Vec<_> = (0..rooms).map(|_| Rc::new(RefCell::new(None))).collect();
        let templates: Vec<Template> = match ctx.connector.protocol() {
            Protocol::Confab => {
                ctx.set_phase(format!("{name}: creating {n} users in {rooms} rooms"));
                let started = Instant::now();
                let pop = setup::populate(&ctx.connector, prefix, n, rooms, n, 0, |_| {}).await?;
                setup.population_seconds = started.elapsed().as_secs_f64();
                ctx.set_phase(format!("{name}: opening {n} connections"));
                let started = Instant::now();
                let nodes = ctx.connector.nodes();
                let node = |u: usize| (u % rooms + u / rooms) % nodes;
                let conns = ctx.open_all_on(&pop.users, n, ctx.read_buf, node).await?;
                setup.connect_seconds = started.elapsed().as_secs_f64();
                for (u, (rd, wr)) in conns.into_iter().enumerate() {
                    let redial = Redial {
                        token: pop.users[u].token.clone(),
                        node: node(u),
                        n: n + u,
                        writer: reopened.get(u).cloned(),
                    };
                    ctx.spawn_reader_redialing(Receiver::Confab(rd), rec.clone(), Some(redial));
                    writers.push(wr);
                }
                pop.rooms
                    .iter()
                    .map(|r| Template::confab(*r, payload))
                    .collect()
            }
            Protocol::Nats => {
                ctx.set_phase(format!("{name}: opening {n} connections"));
                let started = Instant::now();
                let subject = |u: usize| nats::subject(u % rooms);
                let (conns, version) = ctx.open_all_nats(n, 0, ctx.read_buf, subject).await?;
                setup.connect_seconds = started.elapsed().as_secs_f64();
                server_version = Some(version);
                for (rd, wr) in conns {
                    ctx.spawn_reader(Receiver::Nats(rd), rec.clone());
                    writers.push(wr);
                }
                (0..rooms)
                    .map(|r| Template::nats(&nats::subject(r), payload))
                    .collect()
            }
        };
        let others = writers.split_off(rooms);
        ctx.spawn_keepalive(others, Duration::from_secs(20));
        Ok(Fanout {
            members,
            publishers: writers,
            reopened,
            templates: Arc::new(templates),
            out: vec![Vec::new(); rooms],
            rec,
            next_k: 1,
            name,
            acked: ctx.connector.protocol() == Protocol::Confab,
            setup,
            server_version,
            from_thread: false,
        })
    }

    /// Publishes `rate` messages per second for `timing`, then reports the
    /// measured window.
    pub async fn step(
        &mut self,
        ctx: &Ctx,
        label: String,
        rate: f64,
        timing: Timing,
    ) -> anyhow::Result<StepReport> {
        let first = self.next_k;
        let mut run = OpenLoop::start(ctx, self.name, &self.rec, rate, &timing, Some(first))?;
        ctx.set_phase(format!(
            "{label}: {rate:.0} msgs/s = {:.0} deliveries/s",
            rate * self.members as f64
        ));
        match self.sockets_for_thread(ctx).await? {
            Some(sockets) => {
                self.from_thread = true;
                let templates = self.templates.clone();
                let failed = run
                    .send_from_thread(ctx, sockets, move |k, intended, out| {
                        emit(&templates, first + k, intended, out)
                    })
                    .await?;
                if failed > 0 {
                    // The readers count the connections that ended.
                    eprintln!("{label}: {failed} publishers' connections could not be written to");
                }
            }
            None => {
                while let Some(due) = run.next(ctx).await {
                    for k in due.range {
                        emit(&self.templates, first + k, run.intended(k), &mut self.out);
                    }
                    for (room, buf) in self.out.iter_mut().enumerate() {
                        if let Some(w) = self.reopened[room].borrow_mut().take() {
                            self.publishers[room] = w;
                        }
                        if !buf.is_empty() {
                            let _ = self.publishers[room].write_all(buf).await;
                            buf.clear();
                        }
                    }
                }
            }
        }
        self.next_k = first + run.total();
        let usage = run.finish(ctx).await;
        ctx.set_phase(format!("{label}: draining"));
        let members = self.members as u64;
        let acked = self.acked;
        let rec = self.rec.clone();
        wait_until(timing.drain, || {
            let r = rec.borrow();
            r.received_in_window >= r.sent_in_window * members
                && (!acked || r.acks_in_window >= r.sent_in_window)
        })
        .await;
        let mut report = usage
            .report(ctx, &label, &self.rec, &timing, members, rate)
            .await;
        report.connections = ctx.connections.get();
        Ok(report)
    }

    /// The publishers' sockets for a sending thread (`--pacing thread`):
    /// only to a single server (several nodes reopen connections, which
    /// the event loop's writers follow) and over plain TCP.
    async fn sockets_for_thread(
        &mut self,
        ctx: &Ctx,
    ) -> anyhow::Result<Option<Vec<std::os::fd::OwnedFd>>> {
        if ctx.pacing != Pacing::Thread || ctx.connector.nodes() > 1 {
            return Ok(None);
        }
        let mut sockets = Vec::with_capacity(self.publishers.len());
        for w in &mut self.publishers {
            match w.dup_tcp_socket().await {
                Some(socket) => sockets.push(socket?),
                None => return Ok(None),
            }
        }
        Ok(Some(sockets))
    }
}

/// Appends message `id` (request id `id`, meant for `intended`) to its
/// room's buffer in `out` — room `id` mod the rooms — and returns the room.
fn emit(templates: &[Template], id: u64, intended: u64, out: &mut [Vec<u8>]) -> usize {
    let room = (id % templates.len() as u64) as usize;
    templates[room].emit(&mut out[room], id as u32, intended);
    room
}

/// Sweep settings: geometric rate steps until two steps in a row miss the
/// bounds (or deliveries fall below the minimum).
#[derive(Debug, Clone, Copy)]
pub struct Sweep {
    pub start: f64,
    pub factor: f64,
    pub max_steps: usize,
    pub p99_ms: f64,
    pub min_delivered: f64,
}

impl Sweep {
    pub fn passes(&self, s: &StepReport) -> bool {
        s.delivered_ratio >= self.min_delivered && s.latency.p99_ms <= self.p99_ms && s.errors == 0
    }
}

/// Runs `sweep` on a prepared population; returns the steps and the best
/// passing one.
pub async fn run_sweep(
    ctx: &Ctx,
    f: &mut Fanout,
    sweep: Sweep,
    timing: Timing,
    notes: &mut Vec<String>,
) -> anyhow::Result<(Vec<StepReport>, Option<StepReport>)> {
    let mut steps = Vec::new();
    let mut best: Option<StepReport> = None;
    let mut rate = sweep.start;
    let mut misses = 0;
    for i in 0..sweep.max_steps {
        let mut s = f.step(ctx, format!("sweep{i}"), rate, timing).await?;
        let pass = sweep.passes(&s);
        s.pass = Some(pass);
        let saturated = s.loadgen.saturated;
        let collapsed = s.delivered_ratio < sweep.min_delivered;
        steps.push(s.clone());
        if pass {
            misses = 0;
            best = Some(s);
        } else {
            // One miss may be noise (a latency spike); two in a row, or
            // losing deliveries, is the limit.
            misses += 1;
            if misses == 2 || collapsed {
                break;
            }
        }
        if saturated {
            notes.push(format!(
                "sweep stopped at {rate:.0} msgs/s: the load generator is saturated (its own CPU), so higher rates would measure it, not the server"
            ));
            break;
        }
        // Let queues empty before the next, higher step.
        tokio::time::sleep(Duration::from_millis(500)).await;
        rate *= sweep.factor;
    }
    Ok((steps, best))
}
