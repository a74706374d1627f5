//! `chatter`: the ephemeral traffic of one big room — typing indicators and
//! presence — to show what the server's throttling and coalescing cost and
//! save (SPEC.md §5.5.7 and §5.10).
//!
//! One room of `members` users, every member connected. `typists` of them
//! send TYPING_START every `typing_every` (faster than the 2 s the server
//! forwards at most, as a client that sends on every keystroke would);
//! `flappers` toggle SET_AWAY every `flap_every` (faster than the one
//! update per user per second the server pushes at most). Every
//! connection counts the TYPING and PRESENCE frames it receives during
//! the measured window; the report sets them beside what forwarding every
//! request to every other member would have sent, and beside the server's
//! CPU over the same window.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use confab_protocol::frame::kind;
use confab_protocol::Request;
use serde::{Deserialize, Serialize};

use super::{Ctx, StepUsage, Timing};
use crate::net::{FrameReader, FrameWriter};
use crate::setup;
use crate::stats::{Background, ServerUsage};

pub struct ChatterArgs {
    pub prefix: String,
    pub members: usize,
    pub typists: usize,
    pub typing_every: Duration,
    pub flappers: usize,
    pub flap_every: Duration,
    pub timing: Timing,
}

/// What one `chatter` run measured.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ChatterReport {
    pub members: usize,
    pub connections: usize,
    pub seconds: f64,
    /// TYPING_START requests sent per second.
    pub typing_starts_per_s: f64,
    /// SET_AWAY changes sent per second.
    pub away_changes_per_s: f64,
    /// TYPING frames received per second, all connections together.
    pub typing_frames_per_s: f64,
    /// PRESENCE frames received per second, all connections together.
    pub presence_frames_per_s: f64,
    /// Frames per second if every request were forwarded to every other
    /// member at once: (starts + changes) × (members − 1).
    pub uncoalesced_frames_per_s: f64,
    /// Request errors (ERROR replies) in the window.
    pub errors: u64,
    /// Connections that ended during the run.
    pub disconnects: u64,
    pub server: Option<ServerUsage>,
    pub background: Option<Background>,
}

#[derive(Default)]
struct Counts {
    measuring: Cell<bool>,
    typing: Cell<u64>,
    presence: Cell<u64>,
    errors: Cell<u64>,
    disconnects: Cell<u64>,
}

impl Counts {
    fn on_frame(&self, kind_: u8) {
        if !self.measuring.get() {
            return;
        }
        let c = match kind_ {
            kind::TYPING => &self.typing,
            kind::PRESENCE => &self.presence,
            kind::ERROR => &self.errors,
            _ => return,
        };
        c.set(c.get() + 1);
    }
}

pub async fn run(ctx: &Rc<Ctx>, args: &ChatterArgs) -> anyhow::Result<ChatterReport> {
    let n = args.members.max(2);
    anyhow::ensure!(
        args.typists + args.flappers <= n,
        "typists + flappers ({}) exceed members ({n})",
        args.typists + args.flappers
    );
    ctx.set_phase(format!("chatter: creating {n} users in one room"));
    let pop = setup::populate(&ctx.connector, &args.prefix, n, 1, n, 0, |done| {
        if done % 200 == 0 {
            ctx.set_phase(format!("chatter: {done}/{n} users ready"));
        }
    })
    .await?;
    let room = pop.rooms[0];
    ctx.set_phase(format!("chatter: opening {n} connections"));
    let conns = ctx.open_all(&pop.users, n, 4096).await?;
    let counts = Rc::new(Counts::default());
    let mut writers = Vec::with_capacity(n);
    for (rd, wr) in conns {
        spawn_counter(ctx, rd, counts.clone());
        writers.push(wr);
    }
    let quiet = writers.split_off(args.typists + args.flappers);
    ctx.spawn_keepalive(quiet, Duration::from_secs(20));
    let mut flappers = writers.split_off(args.typists);
    let mut typists = writers;

    // Each active member's sends are spread evenly over its period.
    let start = Instant::now();
    let offset = |i: usize, count: usize, every: Duration| every.mul_f64(i as f64 / count as f64);
    let mut next_type: Vec<Duration> = (0..typists.len())
        .map(|i| offset(i, typists.len(), args.typing_every))
        .collect();
    let mut next_flap: Vec<Duration> = (0..flappers.len())
        .map(|i| offset(i, flappers.len(), args.flap_every))
        .collect();
    let mut away = vec![false; flappers.len()];
    let window_from = args.timing.warmup;
    let window_to = window_from + args.timing.duration;
    let (mut starts, mut changes) = (0u64, 0u64);
    let mut usage = None;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    ctx.set_phase("chatter: typing and flapping");
    ctx.set_offered(
        "typing",
        args.typists as f64 / args.typing_every.as_secs_f64(),
    );
    loop {
        tick.tick().await;
        let now = start.elapsed();
        if now >= window_to {
            break;
        }
        if usage.is_none() && now >= window_from {
            usage = Some(StepUsage::start(ctx).await);
            counts.measuring.set(true);
        }
        let measuring = usage.is_some();
        for (i, w) in typists.iter_mut().enumerate() {
            if next_type[i] <= now {
                next_type[i] += args.typing_every;
                send(w, &Request::TypingStart { room }).await?;
                starts += measuring as u64;
            }
        }
        for (i, w) in flappers.iter_mut().enumerate() {
            if next_flap[i] <= now {
                next_flap[i] += args.flap_every;
                away[i] = !away[i];
                send(w, &Request::SetAway { away: away[i] }).await?;
                changes += measuring as u64;
            }
        }
    }
    // Events already on their way when the window closed still count:
    // presence is pushed up to a second late by design.
    tokio::time::sleep(args.timing.drain.min(Duration::from_secs(2))).await;
    counts.measuring.set(false);
    let seconds = args.timing.duration.as_secs_f64();
    let (server, _, background) = match usage {
        Some(u) => u.finish(ctx).await,
        None => (None, Default::default(), None),
    };
    let per_s = |c: u64| c as f64 / seconds;
    Ok(ChatterReport {
        members: n,
        connections: ctx.connections.get(),
        seconds,
        typing_starts_per_s: per_s(starts),
        away_changes_per_s: per_s(changes),
        typing_frames_per_s: per_s(counts.typing.get()),
        presence_frames_per_s: per_s(counts.presence.get()),
        uncoalesced_frames_per_s: per_s(starts + changes) * (n - 1) as f64,
        errors: counts.errors.get(),
        disconnects: counts.disconnects.get(),
        server,
        background,
    })
}

async fn send(w: &mut FrameWriter, req: &Request) -> anyhow::Result<()> {
    // Replies (OK) are not awaited: request ids need not be unique here.
    w.send(1, req).await?;
    Ok(())
}

fn spawn_counter(ctx: &Rc<Ctx>, mut rd: FrameReader, counts: Rc<Counts>) {
    let ctx = ctx.clone();
    tokio::task::spawn_local(async move {
        loop {
            match rd.read_frames(|f, _| counts.on_frame(f.kind)).await {
                Ok(true) => {}
                _ => {
                    if !ctx.stop.get() {
                        counts.disconnects.set(counts.disconnects.get() + 1);
                    }
                    ctx.connections.set(ctx.connections.get().saturating_sub(1));
                    return;
                }
            }
        }
    });
}

impl ChatterReport {
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![
            format!(
                "chatter: {} members, {} connections open, {:.0} s measured",
                self.members, self.connections, self.seconds
            ),
            format!(
                "chatter: sent {:.0} TYPING_START/s and {:.0} away changes/s; received {:.0} TYPING/s and {:.0} PRESENCE/s in all ({:.0} frames/s if every request went to every other member: {:.1}% of that)",
                self.typing_starts_per_s,
                self.away_changes_per_s,
                self.typing_frames_per_s,
                self.presence_frames_per_s,
                self.uncoalesced_frames_per_s,
                100.0 * (self.typing_frames_per_s + self.presence_frames_per_s)
                    / self.uncoalesced_frames_per_s.max(1.0)
            ),
            format!(
                "chatter: {} error replies, {} disconnects",
                self.errors, self.disconnects
            ),
        ];
        if let Some(s) = &self.server {
            out.push(format!(
                "chatter: server CPU {:.1}% of a core over the window and its drain, RSS up to {:.1} MiB",
                100.0 * s.cpu_utilization,
                s.rss_max_bytes as f64 / (1024.0 * 1024.0)
            ));
        }
        if let Some(b) = &self.background {
            out.push(format!("chatter: background {}", b.summary()));
        }
        out
    }
}
