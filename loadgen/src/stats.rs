//! What a run measures: latency histograms, counters and the report.
//!
//! Latency is always measured from a message's **intended** send time (its
//! slot in the open-loop schedule), which the message carries in its body,
//! to the moment the frame is parsed — so a loaded server or a loaded load
//! generator shows up as latency instead of silently lowering the offered
//! rate (no coordinated omission).

use std::collections::BTreeMap;
use std::sync::Arc;

use confab_protocol::frame::kind;
use confab_protocol::wire::Reader;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::nats::Op;
use crate::net::Frame;
use crate::sender::SentLog;

/// Bytes of a message body that carry its intended send time (hex).
pub const STAMP_LEN: usize = 16;

/// Writes a message body of `len` bytes (at least [`STAMP_LEN`]) carrying
/// `intended_ns`.
pub fn stamp(body: &mut [u8], intended_ns: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in body[..STAMP_LEN].iter_mut().enumerate() {
        *b = HEX[((intended_ns >> (60 - 4 * i)) & 0xf) as usize];
    }
}

/// The intended send time stamped into a MESSAGE event, parsed in place.
#[inline]
pub fn event_stamp(payload: &[u8]) -> Option<u64> {
    let mut r = Reader::new(payload);
    r.varint().ok()?; // room
    r.varint().ok()?; // seq
    r.varint().ok()?; // at
    r.varint().ok()?; // actor
    let name_len = r.varint().ok()? as usize;
    r.bytes(name_len).ok()?;
    if r.u8().ok()? != confab_protocol::event_kind::MESSAGE {
        return None;
    }
    let text_len = r.varint().ok()? as usize;
    let text = r.bytes(text_len).ok()?;
    parse_stamp(text)
}

/// The stamp at the start of a message body.
#[inline]
pub fn parse_stamp(text: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &c in text.get(..STAMP_LEN)? {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | d as u64;
    }
    Some(v)
}

/// When each request of a window was actually sent, by its intended time:
/// one lookup per delivery. The load generator sends in schedule order,
/// so the entries are appended in order and lie evenly spaced: a lookup
/// interpolates the position and lands on the entry or next to it, and
/// reads memory in the order deliveries arrive. (A `HashMap` with SipHash
/// here was the largest item of the load generator's own code in its
/// profile at 280 k deliveries/s: a hash and a cache miss per delivery.)
#[derive(Debug, Default)]
pub struct SendTimes {
    /// `(intended, sent)`, by intended time.
    v: Vec<(u64, u64)>,
}

impl SendTimes {
    pub fn clear(&mut self) {
        self.v.clear();
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.v.is_empty()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.v.len()
    }

    /// Records that the request meant for `intended` went out at `sent`
    /// (in order: appended; out of order: put in its place; again: the
    /// later send counts).
    pub fn insert(&mut self, intended: u64, sent: u64) {
        match self.v.last() {
            Some(&(last, _)) if last >= intended => {
                let i = self.v.partition_point(|e| e.0 < intended);
                match self.v.get_mut(i) {
                    Some(e) if e.0 == intended => e.1 = sent,
                    _ => self.v.insert(i, (intended, sent)),
                }
            }
            _ => self.v.push((intended, sent)),
        }
    }

    /// When the request meant for `intended` went out.
    #[inline]
    pub fn get(&self, intended: u64) -> Option<u64> {
        let v = &self.v;
        let (&(lo, _), &(hi, _)) = (v.first()?, v.last()?);
        if intended < lo || intended > hi {
            return None;
        }
        let last = v.len() - 1;
        let mut i = if hi == lo {
            0
        } else {
            let at = (intended - lo) as f64 * (last as f64 / (hi - lo) as f64);
            (at as usize).min(last)
        };
        for _ in 0..4 {
            match v[i].0.cmp(&intended) {
                std::cmp::Ordering::Equal => return Some(v[i].1),
                std::cmp::Ordering::Less if i < last => i += 1,
                std::cmp::Ordering::Greater if i > 0 => i -= 1,
                _ => return None,
            }
        }
        // Not evenly spaced after all: search.
        v.binary_search_by_key(&intended, |e| e.0)
            .ok()
            .map(|i| v[i].1)
    }
}

fn new_hist() -> Histogram<u64> {
    // 1 ns .. 100 s at 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("static histogram bounds")
}

/// Maps a request id to the time its request was meant to go out.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// Intended time of request number `first`.
    pub start_ns: u64,
    pub first: u64,
    /// Requests per second.
    pub rate: f64,
}

impl Schedule {
    pub fn intended(&self, k: u64) -> u64 {
        self.start_ns + ((k - self.first) as f64 * 1e9 / self.rate) as u64
    }
}

/// Counters and histograms of one traffic kind (deliveries, history pages,
/// churn cycles). Shared by the tasks of one runtime thread.
pub struct Recorder {
    /// Intended-time window being measured, `[from, to)`.
    pub window: (u64, u64),
    /// Latency of deliveries/responses whose intended time is in the window.
    pub latency: Histogram<u64>,
    /// Latency of acknowledgements (MESSAGE_ACK) in the window.
    pub ack_latency: Histogram<u64>,
    /// How late the load generator itself sent requests (actual − intended
    /// send time): its timer resolution and its own load, included in
    /// `latency`.
    pub send_lateness: Histogram<u64>,
    /// Every latency since start (for the /metrics endpoint).
    pub latency_total: Histogram<u64>,
    /// When each request of the window whose intended time is the key
    /// was actually sent, so that a delivery can also be timed from its
    /// send: `latency` without the load generator's send lateness.
    pub sent_at: SendTimes,
    /// Latency of the window's deliveries from their actual send.
    pub latency_from_send: Histogram<u64>,
    pub received_in_window: u64,
    pub received_total: u64,
    pub sent_in_window: u64,
    pub sent_total: u64,
    pub acks_in_window: u64,
    /// ERROR replies by code.
    pub errors: BTreeMap<u16, u64>,
    /// CLOSE frames by code, and connections that ended without one.
    pub closes: BTreeMap<u16, u64>,
    pub disconnects: u64,
    /// Every error since start (for the /metrics endpoint).
    pub errors_total: u64,
    pub frames_total: u64,
    /// The schedule that request ids of acknowledgements refer to.
    pub schedule: Option<Schedule>,
    /// While a sending thread runs (`--pacing thread`): the sends it
    /// logged, which [`Recorder::take_sent`] records.
    pub sends: Option<Arc<SentLog>>,
    /// [`Recorder::take_sent`]'s buffer, kept between takes.
    taken: Vec<(u64, u64)>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            window: (u64::MAX, u64::MAX),
            latency: new_hist(),
            ack_latency: new_hist(),
            send_lateness: new_hist(),
            latency_total: new_hist(),
            sent_at: SendTimes::default(),
            latency_from_send: new_hist(),
            received_in_window: 0,
            received_total: 0,
            sent_in_window: 0,
            sent_total: 0,
            acks_in_window: 0,
            errors: BTreeMap::new(),
            closes: BTreeMap::new(),
            disconnects: 0,
            errors_total: 0,
            frames_total: 0,
            schedule: None,
            sends: None,
            taken: Vec::new(),
        }
    }
}

impl Recorder {
    /// Starts measuring a new window; cumulative totals are kept.
    pub fn start_window(&mut self, from: u64, to: u64, schedule: Option<Schedule>) {
        self.window = (from, to);
        self.latency.reset();
        self.latency_from_send.reset();
        self.sent_at.clear();
        self.ack_latency.reset();
        self.send_lateness.reset();
        self.received_in_window = 0;
        self.sent_in_window = 0;
        self.acks_in_window = 0;
        self.errors.clear();
        self.closes.clear();
        self.disconnects = 0;
        self.schedule = schedule;
    }

    #[inline]
    pub fn in_window(&self, t: u64) -> bool {
        t >= self.window.0 && t < self.window.1
    }

    /// A request or message meant for `intended` was sent at `now`.
    #[inline]
    pub fn sent(&mut self, intended: u64, now: u64) {
        self.sent_total += 1;
        if self.in_window(intended) {
            self.sent_in_window += 1;
            self.sent_at.insert(intended, now);
            self.send_lateness
                .saturating_record(now.saturating_sub(intended).max(1));
        }
    }

    /// Records the sends the sending thread logged since the last take.
    pub fn take_sent(&mut self) {
        let Some(log) = self.sends.clone() else {
            return;
        };
        let mut taken = std::mem::take(&mut self.taken);
        log.take(&mut taken);
        for &(intended, at) in &taken {
            self.sent(intended, at);
        }
        self.taken = taken;
    }

    /// Something meant for `intended` arrived at `now`.
    #[inline]
    pub fn received(&mut self, intended: u64, now: u64) {
        let lat = now.saturating_sub(intended).max(1);
        self.received_total += 1;
        self.latency_total.saturating_record(lat);
        if self.in_window(intended) {
            self.received_in_window += 1;
            self.latency.saturating_record(lat);
            let mut sent = self.sent_at.get(intended);
            if sent.is_none() && self.sends.is_some() {
                // Sent by the sending thread and not taken yet: it logs
                // a send before it writes it, so the log has it now.
                self.take_sent();
                sent = self.sent_at.get(intended);
            }
            if let Some(sent) = sent {
                self.latency_from_send
                    .saturating_record(now.saturating_sub(sent).max(1));
            }
        }
    }

    /// Counts an ERROR or CLOSE frame.
    pub fn failure(&mut self, frame: &Frame<'_>) {
        let code = Reader::new(frame.payload).varint().unwrap_or(0) as u16;
        if frame.kind == kind::CLOSE {
            self.errors_total += 1;
            *self.closes.entry(code).or_default() += 1;
        } else {
            self.error(code);
        }
    }

    /// Counts an error with `code` (0: a client-side failure or timeout).
    pub fn error(&mut self, code: u16) {
        self.errors_total += 1;
        *self.errors.entry(code).or_default() += 1;
    }

    /// Handles one frame on a connection receiving room traffic: EVENT
    /// deliveries, MESSAGE_ACKs for the current schedule, errors.
    #[inline]
    pub fn on_traffic_frame(&mut self, frame: Frame<'_>, now: u64) {
        self.frames_total += 1;
        match frame.kind {
            kind::EVENT => {
                if let Some(t) = event_stamp(frame.payload) {
                    self.received(t, now);
                }
            }
            kind::MESSAGE_ACK => {
                if let Some(s) = self.schedule {
                    let k = frame.req_id as u64;
                    if k >= s.first {
                        let t = s.intended(k);
                        if self.in_window(t) {
                            self.acks_in_window += 1;
                            self.ack_latency
                                .saturating_record(now.saturating_sub(t).max(1));
                        }
                    }
                }
            }
            kind::ERROR | kind::CLOSE => self.failure(&frame),
            _ => {}
        }
    }

    /// Handles one NATS operation on a connection receiving room traffic:
    /// MSG deliveries (the payload starts with the stamp, as a Confab
    /// message body does), `-ERR`s.
    #[inline]
    pub fn on_nats_op(&mut self, op: Op<'_>, now: u64) {
        self.frames_total += 1;
        match op {
            Op::Msg { payload } => {
                if let Some(t) = parse_stamp(payload) {
                    self.received(t, now);
                }
            }
            Op::Err(_) => self.error(0),
            _ => {}
        }
    }

    pub fn total_errors(&self) -> u64 {
        self.errors.values().sum::<u64>() + self.closes.values().sum::<u64>()
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |ns: u64| ns as f64 / 1e6;
        Percentiles {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p90_ms: ms(h.value_at_quantile(0.9)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// The load generator's own CPU use over a window.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SelfUsage {
    /// CPU seconds per wall second (1.0 = one core busy).
    pub cpu_utilization: f64,
    /// Whether the load generator itself was the bottleneck (≥ 90 % of a
    /// core, or it fell behind its send schedule). Results are then a lower
    /// bound on what the server can do.
    pub saturated: bool,
    /// Largest delay of a send behind its intended time, in ms.
    pub max_send_lag_ms: f64,
}

/// The server's resource use over a window.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ServerUsage {
    pub cpu_seconds: f64,
    /// CPU seconds per wall second.
    pub cpu_utilization: f64,
    pub rss_start_bytes: u64,
    pub rss_end_bytes: u64,
    pub rss_max_bytes: u64,
    pub open_fds: Option<u64>,
    /// Several server processes (a cluster's nodes, `--server-pid A,B,…`):
    /// each one's CPU seconds, in the order given; `cpu_seconds` is their
    /// sum.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_cpu_seconds: Vec<f64>,
}

/// One measured window of one traffic kind.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct StepReport {
    pub name: String,
    pub seconds: f64,
    /// Requests (messages, pages, cycles) per second offered.
    pub offered_per_s: f64,
    /// Deliveries per second offered (messages × recipients).
    pub offered_deliveries_per_s: f64,
    pub sent: u64,
    pub expected: u64,
    pub delivered: u64,
    pub delivered_per_s: f64,
    pub delivered_ratio: f64,
    pub lost: u64,
    pub errors: u64,
    pub error_codes: BTreeMap<u16, u64>,
    pub close_codes: BTreeMap<u16, u64>,
    pub latency: Percentiles,
    pub ack_latency: Option<Percentiles>,
    /// Delivery latency from each message's actual send (scenarios with a
    /// schedule): `latency` less the load generator's send lateness.
    pub latency_from_send: Option<Percentiles>,
    /// How late the load generator sent (part of `latency`).
    pub send_lateness: Percentiles,
    pub server: Option<ServerUsage>,
    /// Deliveries per server CPU-second.
    pub deliveries_per_server_cpu_s: Option<f64>,
    /// Several server processes (a cluster's nodes): deliveries per CPU
    /// second of each, counting as its deliveries its share of the
    /// measured connections (the deliveries it made when everything was
    /// delivered), in the order of `--server-pid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_deliveries_per_server_cpu_s: Vec<f64>,
    pub connections: usize,
    /// Server RSS per open connection at the end of the window.
    pub server_rss_per_connection_bytes: Option<f64>,
    pub loadgen: SelfUsage,
    /// Whether the step met the sweep's bounds (sweeps only).
    pub pass: Option<bool>,
    /// The machine's load during the measured window.
    pub background: Option<Background>,
}

impl StepReport {
    /// Fills the delivery figures from a recorder after its window closed.
    pub fn from_recorder(name: &str, r: &Recorder, seconds: f64, fanout: u64) -> StepReport {
        let expected = r.sent_in_window * fanout;
        let delivered = r.received_in_window;
        StepReport {
            name: name.to_owned(),
            seconds,
            sent: r.sent_in_window,
            expected,
            delivered,
            delivered_per_s: delivered as f64 / seconds,
            delivered_ratio: if expected == 0 {
                0.0
            } else {
                delivered as f64 / expected as f64
            },
            lost: expected.saturating_sub(delivered),
            errors: r.total_errors(),
            error_codes: r.errors.clone(),
            close_codes: r.closes.clone(),
            latency: Percentiles::of(&r.latency),
            ack_latency: (!r.ack_latency.is_empty()).then(|| Percentiles::of(&r.ack_latency)),
            latency_from_send: (!r.latency_from_send.is_empty())
                .then(|| Percentiles::of(&r.latency_from_send)),
            send_lateness: Percentiles::of(&r.send_lateness),
            ..StepReport::default()
        }
    }

    /// Adds server usage and what follows from it.
    pub fn with_server(mut self, server: Option<ServerUsage>) -> StepReport {
        if let Some(s) = &server {
            if s.cpu_seconds > 0.0 {
                self.deliveries_per_server_cpu_s = Some(self.delivered as f64 / s.cpu_seconds);
            }
            if self.connections > 0 {
                self.server_rss_per_connection_bytes =
                    Some(s.rss_end_bytes as f64 / self.connections as f64);
            }
        }
        self.server = server;
        self
    }
}

/// A whole run: its parameters and every measured step.
#[derive(Debug, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RunReport {
    pub scenario: String,
    pub url: String,
    /// What the target speaks: "confab" or "nats".
    pub target: String,
    /// How the load generator paced its sends (`--pacing`).
    pub pacing: String,
    pub params: serde_json::Value,
    pub steps: Vec<StepReport>,
    /// Sweeps: the highest offered rate whose step passed.
    pub best_passing: Option<StepReport>,
    /// Idle runs: server RSS growth per idle connection.
    pub idle: Option<IdleReport>,
    /// How the measured connections were spread over the target's nodes
    /// (one entry per URL given), with their disconnects and reconnects.
    pub nodes: Vec<crate::scenario::NodeSpread>,
    /// Chatter runs: typing and presence forwarded, and their cost.
    pub chatter: Option<crate::scenario::chatter::ChatterReport>,
    /// How long the measured connections took to set up.
    pub setup: Option<SetupReport>,
    /// The machine's load over the whole run, set-up included.
    pub background: Option<Background>,
    pub notes: Vec<String>,
}

/// Setting up the measured population.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SetupReport {
    pub connections: usize,
    /// Confab: registering (or logging in) every user and creating or
    /// joining its room, on short-lived connections. NATS: nothing (0).
    pub population_seconds: f64,
    /// Opening the measured connections: Confab HELLO with a session
    /// token; NATS CONNECT, SUB and a PING answered by PONG (so the
    /// subscription is in force).
    pub connect_seconds: f64,
}

impl SetupReport {
    pub fn total_seconds(&self) -> f64 {
        self.population_seconds + self.connect_seconds
    }
}

/// The machine's background load over a window: what other processes
/// did, so that a quiet run can be told from a noisy one.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Background {
    pub seconds: f64,
    pub loadavg_1m_start: f64,
    pub loadavg_1m_end: f64,
    /// CPU-seconds of processes other than this run's server and load
    /// generator, over all cores.
    pub other_cpu_seconds: f64,
    pub cores: Vec<CoreLoad>,
    /// Share of the window in which some runnable task waited for a CPU
    /// (Linux PSI; ours included).
    pub cpu_pressure: Option<f64>,
    /// Share of the window in which some task waited for I/O (PSI): a disk
    /// busy with other builds stalls Confab's commits.
    pub io_pressure: Option<f64>,
    /// ... and in which every non-idle task did.
    pub io_pressure_full: Option<f64>,
}

/// One core over a window (CPU-seconds, from `/proc/stat`).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct CoreLoad {
    pub cpu: usize,
    /// This run's processes pinned to this core ("server", "loadgen").
    pub pinned: Vec<String>,
    /// user + nice + system + irq + softirq.
    pub busy_seconds: f64,
    /// ... of which the processes in `pinned`.
    pub ours_seconds: f64,
    /// ... of which everything else: the background load.
    pub other_seconds: f64,
    /// `other_seconds` per wall second.
    pub other_share: f64,
    /// Interrupt and softirq time, part of `busy_seconds` (loopback
    /// networking; a process's own CPU time includes what ran on its
    /// watch).
    pub irq_seconds: f64,
    /// Time the hypervisor took.
    pub steal_seconds: f64,
    /// Idle time with some task waiting for I/O.
    pub iowait_seconds: f64,
}

impl Background {
    /// One line: load average and each core's other-process share.
    pub fn summary(&self) -> String {
        let cores: Vec<String> = self
            .cores
            .iter()
            .map(|c| {
                let pinned = if c.pinned.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", c.pinned.join("+"))
                };
                format!(
                    "core {}{pinned} {:.0}% other, {:.0}% irq, {:.0}% steal",
                    c.cpu,
                    c.other_share * 100.0,
                    c.irq_seconds / self.seconds * 100.0,
                    c.steal_seconds / self.seconds * 100.0
                )
            })
            .collect();
        let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.0}%", v * 100.0));
        format!(
            "loadavg {:.2} -> {:.2}; other processes {:.2} CPU-s in {:.1} s; {}; pressure: cpu {}, io {} (full {})",
            self.loadavg_1m_start,
            self.loadavg_1m_end,
            self.other_cpu_seconds,
            self.seconds,
            cores.join("; "),
            pct(self.cpu_pressure),
            pct(self.io_pressure),
            pct(self.io_pressure_full)
        )
    }
}

/// Memory cost of idle authenticated connections.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct IdleReport {
    pub connections: usize,
    pub failed: usize,
    pub rooms: usize,
    pub source_addresses: usize,
    /// Creating the users and memberships (Confab; 0 on NATS).
    pub population_seconds: f64,
    /// Opening the idle connections (HELLO with a token; NATS CONNECT,
    /// SUB, PING/PONG), with their replays when resuming.
    pub connect_seconds: f64,
    /// Events each connection asked to have replayed (`--resume-missed`).
    pub resume_missed: u64,
    /// EVENT frames and RESUME_GAPs the connections received in all
    /// before they counted as open.
    pub replayed_events: u64,
    pub resume_gaps: u64,
    pub server_rss_before_bytes: u64,
    pub server_rss_after_bytes: u64,
    pub server_rss_per_connection_bytes: f64,
    pub server_open_fds: Option<u64>,
    pub loadgen_rss_bytes: u64,
}

fn kib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

impl RunReport {
    /// Fills each step's deliveries per CPU second of every node from the
    /// spread of the connections (`nodes`) and the nodes' CPU seconds.
    pub fn per_node_efficiency(&mut self) {
        let conns: Vec<usize> = self.nodes.iter().map(|n| n.connections).collect();
        let total: usize = conns.iter().sum();
        let steps = self.steps.iter_mut().chain(self.best_passing.as_mut());
        for s in steps {
            let Some(u) = &s.server else { continue };
            if u.node_cpu_seconds.len() != conns.len() || total == 0 {
                continue;
            }
            s.node_deliveries_per_server_cpu_s = u
                .node_cpu_seconds
                .iter()
                .zip(&conns)
                .map(|(cpu, c)| s.delivered as f64 * *c as f64 / total as f64 / cpu.max(1e-9))
                .collect();
        }
    }

    /// A readable table of the run.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "scenario {} against {} ({}, pacing {})",
            self.scenario, self.url, self.target, self.pacing
        );
        let _ = writeln!(
            out,
            "{:<10} {:>10} {:>11} {:>11} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10} {:>6} {:>5}",
            "step", "offer/s", "offer dl/s", "deliv/s", "deliv%", "errors", "p50 ms", "p90 ms",
            "p99 ms", "p99.9ms", "max ms", "srv cpu%", "dl/srvCPUs", "lg cpu", "pass"
        );
        for s in &self.steps {
            let srv = s
                .server
                .as_ref()
                .map(|u| format!("{:.0}", u.cpu_utilization * 100.0))
                .unwrap_or_else(|| "-".into());
            let eff = s
                .deliveries_per_server_cpu_s
                .map(|e| format!("{:.0}", e))
                .unwrap_or_else(|| "-".into());
            let lg = format!(
                "{:.0}%{}",
                s.loadgen.cpu_utilization * 100.0,
                if s.loadgen.saturated { "!" } else { "" }
            );
            let pass = match s.pass {
                Some(true) => "yes",
                Some(false) => "no",
                None => "",
            };
            let _ = writeln!(
                out,
                "{:<10} {:>10.0} {:>11.0} {:>11.0} {:>7.2} {:>7} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>9} {:>10} {:>6} {:>5}",
                s.name,
                s.offered_per_s,
                s.offered_deliveries_per_s,
                s.delivered_per_s,
                s.delivered_ratio * 100.0,
                s.errors,
                s.latency.p50_ms,
                s.latency.p90_ms,
                s.latency.p99_ms,
                s.latency.p999_ms,
                s.latency.max_ms,
                srv,
                eff,
                lg,
                pass
            );
            if let Some(a) = &s.ack_latency {
                let _ = writeln!(
                    out,
                    "{:<10} ack (durable) latency p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                    "", a.p50_ms, a.p99_ms, a.max_ms
                );
            }
            if s.send_lateness.count > 0 {
                let l = &s.send_lateness;
                let _ = writeln!(
                    out,
                    "{:<10} load generator send lateness (included above) p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                    "", l.p50_ms, l.p99_ms, l.max_ms
                );
            }
            if let Some(l) = &s.latency_from_send {
                let _ = writeln!(
                    out,
                    "{:<10} from the actual send (lateness left out) p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
                    "", l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms
                );
            }
            if let Some(u) = &s.server {
                let per_conn = s
                    .server_rss_per_connection_bytes
                    .map(|b| format!(", {:.0} B RSS per connection", b))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{:<10} server: {:.2} CPU-s, RSS {} -> {} (max {}){}; lost {}",
                    "",
                    u.cpu_seconds,
                    kib(u.rss_start_bytes),
                    kib(u.rss_end_bytes),
                    kib(u.rss_max_bytes),
                    per_conn,
                    s.lost
                );
                if !u.node_cpu_seconds.is_empty() {
                    let cpu: Vec<String> = u
                        .node_cpu_seconds
                        .iter()
                        .map(|c| format!("{c:.2}"))
                        .collect();
                    let eff: Vec<String> = s
                        .node_deliveries_per_server_cpu_s
                        .iter()
                        .map(|e| format!("{e:.0}"))
                        .collect();
                    let _ = writeln!(
                        out,
                        "{:<10} per node: CPU-s [{}]; deliveries per CPU-s [{}] (each node's share of the connections)",
                        "",
                        cpu.join(", "),
                        eff.join(", ")
                    );
                }
            }
            if let Some(b) = &s.background {
                let _ = writeln!(out, "{:<10} background: {}", "", b.summary());
            }
            if !s.error_codes.is_empty() || !s.close_codes.is_empty() {
                let _ = writeln!(
                    out,
                    "{:<10} error codes {:?}, close codes {:?}",
                    "", s.error_codes, s.close_codes
                );
            }
        }
        if self.nodes.len() > 1 {
            let spread: Vec<String> = self
                .nodes
                .iter()
                .map(|n| {
                    format!(
                        "{} {} (disconnected {}, reconnected {})",
                        n.url, n.connections, n.disconnected, n.reconnected
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "clients spread over {} nodes: {}",
                self.nodes.len(),
                spread.join("; ")
            );
        }
        if let Some(setup) = &self.setup {
            let _ = writeln!(
                out,
                "set-up: {} connections in {:.2} s (population {:.2} s, connecting {:.2} s)",
                setup.connections,
                setup.total_seconds(),
                setup.population_seconds,
                setup.connect_seconds
            );
        }
        if let Some(b) = &self.best_passing {
            let _ = writeln!(
                out,
                "highest passing rate: {:.0} msgs/s = {:.0} deliveries/s offered, {:.0} delivered/s, p99 {:.3} ms{}",
                b.offered_per_s,
                b.offered_deliveries_per_s,
                b.delivered_per_s,
                b.latency.p99_ms,
                b.deliveries_per_server_cpu_s
                    .map(|e| format!(", {:.0} deliveries per server CPU-second", e))
                    .unwrap_or_default()
            );
        }
        if let Some(i) = &self.idle {
            let _ = writeln!(
                out,
                "idle: {} connections ({} failed) in {} rooms from {} source addresses, opened in {:.1} s",
                i.connections, i.failed, i.rooms, i.source_addresses, i.connect_seconds
            );
            if i.resume_missed > 0 {
                let _ = writeln!(
                    out,
                    "idle: each HELLO resumed {} events back: {} events replayed, {} RESUME_GAPs, all within the {:.2} s above",
                    i.resume_missed, i.replayed_events, i.resume_gaps, i.connect_seconds
                );
            }
            let _ = writeln!(
                out,
                "idle: server RSS {} -> {}: {:.0} bytes ({:.2} KiB) per idle connection; server fds {:?}; loadgen RSS {}",
                kib(i.server_rss_before_bytes),
                kib(i.server_rss_after_bytes),
                i.server_rss_per_connection_bytes,
                i.server_rss_per_connection_bytes / 1024.0,
                i.server_open_fds,
                kib(i.loadgen_rss_bytes)
            );
        }
        for line in self.chatter.iter().flat_map(|c| c.lines()) {
            let _ = writeln!(out, "{line}");
        }
        if let Some(b) = &self.background {
            let _ = writeln!(out, "background over the whole run: {}", b.summary());
        }
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use confab_protocol::{EventBody, RoomEvent, RoomId, Seq, UserId};

    /// A delivery is timed from its intended send (lateness included) and
    /// from its actual send (lateness left out); outside the window, not
    /// at all.
    #[test]
    fn deliveries_are_timed_from_the_intended_and_from_the_actual_send() {
        let mut r = Recorder::default();
        r.start_window(1_000, 2_000, None);
        r.sent(1_000, 1_400); // 0.4 µs late
        r.sent(3_000, 3_000); // outside the window
        r.received(1_000, 1_900);
        r.received(3_000, 3_500);
        let s = StepReport::from_recorder("t", &r, 1.0, 1);
        assert_eq!(s.latency.count, 1);
        assert_eq!(s.latency.max_ms, 900.0 / 1e6);
        let from_send = s.latency_from_send.expect("timed from the send");
        assert_eq!(from_send.count, 1);
        assert_eq!(from_send.max_ms, 500.0 / 1e6);
        r.start_window(2_000, 3_000, None);
        assert!(r.sent_at.is_empty(), "a new window forgets the old sends");
    }

    /// With a sending thread, a delivery whose send the recorder has not
    /// taken from the thread's log yet takes it then: it is still timed
    /// from its send, and the send is counted once.
    #[test]
    fn a_delivery_takes_its_send_from_the_sending_threads_log() {
        let mut r = Recorder::default();
        r.start_window(1_000, 2_000, None);
        let log = Arc::new(SentLog::default());
        r.sends = Some(log.clone());
        log.log(1_000, 1_300);
        log.log(1_500, 1_500);
        r.received(1_000, 1_900);
        assert_eq!(r.sent_in_window, 2, "both logged sends were taken");
        r.take_sent();
        assert_eq!(r.sent_in_window, 2, "and not counted again");
        r.received(1_500, 1_700);
        let s = StepReport::from_recorder("t", &r, 1.0, 1);
        let from_send = s.latency_from_send.expect("timed from the send");
        assert_eq!(from_send.count, 2);
        assert_eq!(from_send.max_ms, 600.0 / 1e6);
        assert_eq!(s.send_lateness.max_ms, 300.0 / 1e6);
    }

    /// Sends are found by their intended time whether the schedule's
    /// times are evenly spaced, uneven, or recorded out of order; times
    /// never sent are not found.
    #[test]
    fn the_send_log_finds_every_send_by_its_intended_time() {
        let mut log = SendTimes::default();
        assert_eq!(log.get(5), None);
        // A schedule's times: 1e9 / 3 ns apart, rounded down.
        let times: Vec<u64> = (0..1_000u64).map(|k| 7 + k * 1_000_000_000 / 3).collect();
        for &t in &times {
            log.insert(t, t + 11);
        }
        for &t in &times {
            assert_eq!(log.get(t), Some(t + 11));
            assert_eq!(log.get(t + 1), None);
        }
        assert_eq!(log.get(6), None);
        assert_eq!(log.get(times[999] + 1), None);
        // Uneven (squares), inserted backwards, one sent twice.
        let mut log = SendTimes::default();
        for k in (0..500u64).rev() {
            log.insert(k * k, k);
        }
        log.insert(49, 1_000);
        assert_eq!(log.len(), 500);
        for k in 0..500u64 {
            assert_eq!(log.get(k * k), Some(if k == 7 { 1_000 } else { k }));
        }
        assert_eq!(log.get(50), None);
    }

    #[test]
    fn each_nodes_deliveries_per_cpu_second_follow_its_share_of_the_connections() {
        let node = |connections| crate::scenario::NodeSpread {
            connections,
            ..Default::default()
        };
        let mut r = RunReport {
            nodes: vec![node(30), node(10)],
            steps: vec![StepReport {
                delivered: 4000,
                server: Some(ServerUsage {
                    cpu_seconds: 3.0,
                    node_cpu_seconds: vec![2.0, 1.0],
                    ..ServerUsage::default()
                }),
                ..StepReport::default()
            }],
            ..RunReport::default()
        };
        r.per_node_efficiency();
        // 3,000 deliveries on 2 CPU-s, 1,000 on 1 CPU-s.
        assert_eq!(
            r.steps[0].node_deliveries_per_server_cpu_s,
            [1500.0, 1000.0]
        );
        assert!(r
            .table()
            .contains("per node: CPU-s [2.00, 1.00]; deliveries per CPU-s [1500, 1000]"));
        assert!(r.table().contains("clients spread over 2 nodes"));
    }

    #[test]
    fn a_stamp_survives_the_event_encoding() {
        let mut body = vec![b'x'; 100];
        stamp(&mut body, 0x0123_4567_89ab_cdef);
        let ev = RoomEvent {
            room: RoomId(300),
            seq: Seq(70_000),
            at: 1_700_000_000_000,
            actor: UserId(5),
            actor_name: "lg-5".into(),
            body: EventBody::text(String::from_utf8(body).unwrap()),
        };
        let mut buf = BytesMut::new();
        ev.encode_frame(&mut buf);
        assert_eq!(event_stamp(&buf[9..]), Some(0x0123_4567_89ab_cdef));
        let joined = RoomEvent {
            body: EventBody::MemberJoined,
            ..ev
        };
        let mut buf = BytesMut::new();
        joined.encode_frame(&mut buf);
        assert_eq!(event_stamp(&buf[9..]), None, "only messages carry stamps");
    }

    #[test]
    fn only_the_window_counts_towards_the_step() {
        let mut r = Recorder::default();
        r.start_window(100, 200, None);
        r.sent(50, 60);
        r.sent(150, 160);
        r.received(50, 1_000);
        r.received(150, 1_000);
        assert_eq!((r.sent_in_window, r.received_in_window), (1, 1));
        assert_eq!((r.sent_total, r.received_total), (2, 2));
        assert_eq!(r.latency.max(), 850);
    }
}
