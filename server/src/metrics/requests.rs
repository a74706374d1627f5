//! Per-connection request timing and results: a request's latency runs
//! from its arrival to the moment the writer wrote its response, and its
//! result is the response's code. Responses are matched by request id
//! from the typed outbound items (`crate::outbound::Outbound`), never by
//! reading frame bytes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use ::metrics::{counter, histogram, Counter, Histogram};
use confab_protocol::frame::kind;
use confab_protocol::ErrorCode;

use super::{get, name};

/// Why a connection ended, for logs and the disconnect metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The client closed its side (end of stream) or went away.
    ClientClosed,
    /// The server closed it with this code (logout, shutdown, a protocol
    /// violation, idle timeout, …).
    Server(ErrorCode),
    /// Writing failed (the socket broke).
    WriteFailed,
}

/// Per-connection bookkeeping for metrics, embedded in `outbound::OutboundQueue`:
/// requests awaiting their response (for latency and result codes), whether
/// the handshake completed, and the queue size this connection last
/// contributed to the global outbound gauge.
#[derive(Default)]
pub struct ConnStats {
    in_flight: Mutex<VecDeque<Pending>>,
    handshaken: AtomicBool,
    /// The backlog last observed (bounded by `outbound_queue_bytes`, a
    /// `u32`): 32 bits keep the queue that embeds this small.
    observed_queue: AtomicU32,
}

/// A request waiting for its response.
struct Pending {
    req_id: u32,
    kind: u8,
    since: Instant,
}

/// Most requests tracked per connection; beyond, requests go untimed (a
/// client pipelining this deep is measuring the server itself).
const MAX_IN_FLIGHT: usize = 4096;

/// The writer observed `queued` bytes in this connection's backlog.
pub fn observe_queue(stats: &ConnStats, queued: usize) {
    stats.observe_queue(queued);
}

impl ConnStats {
    fn observe_queue(&self, queued: usize) {
        let queued = queued.min(u32::MAX as usize) as u32;
        let before = self.observed_queue.swap(queued, Ordering::Relaxed);
        if before != queued {
            get()
                .outbound_queued
                .increment(queued as f64 - before as f64);
        }
    }
}

/// The handshake succeeded (WELCOME queued).
pub fn handshake_ok(stats: &ConnStats) {
    stats.handshaken.store(true, Ordering::Relaxed);
    counter!(name::HANDSHAKES, "result" => "ok").increment(1);
}

/// An authentication attempt failed (`reason`: `invalid_token`,
/// `invalid_credentials`).
pub fn auth_failed(reason: &'static str) {
    counter!(name::AUTH_FAILURES, "reason" => reason).increment(1);
}

/// The connection has ended, and how.
pub fn connection_ended(stats: &ConnStats, ending: Option<Ending>) {
    let reason = ending_label(ending);
    if !stats.handshaken.load(Ordering::Relaxed) {
        counter!(name::HANDSHAKES, "result" => reason).increment(1);
    }
    counter!(name::DISCONNECTS, "reason" => reason).increment(1);
    stats.observe_queue(0);
}

/// The `reason` label of a disconnect: what happened, in a small fixed set.
pub fn ending_label(ending: Option<Ending>) -> &'static str {
    match ending {
        None | Some(Ending::ClientClosed) => "client_closed",
        Some(Ending::WriteFailed) => "write_failed",
        Some(Ending::Server(code)) => match code {
            ErrorCode::SlowConsumer => "slow_consumer",
            ErrorCode::IdleTimeout => "idle_timeout",
            ErrorCode::HandshakeTimeout => "handshake_timeout",
            ErrorCode::ShuttingDown => "shutdown",
            ErrorCode::LoggedOut => "logged_out",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::StorageUnavailable => "storage_unavailable",
            ErrorCode::Internal => "internal",
            code if (code as u16) < 200 => "protocol_error",
            _ => "server_closed",
        },
    }
}

/// Handles of one request kind, created the first time the kind is seen.
struct KindMetrics {
    name: &'static str,
    ok: Counter,
    latency: Histogram,
}

/// Indexed by the request's frame type (`kind::is_request`).
static KINDS: [OnceLock<KindMetrics>; kind::LAST_REQUEST as usize + 1] =
    [const { OnceLock::new() }; kind::LAST_REQUEST as usize + 1];

/// The HELLO frame arrived (it is the handshake, not a request).
pub fn hello_received(len: usize) {
    let m = get();
    m.frames_received.increment(1);
    m.bytes_received.increment(len as u64);
}

/// A request frame of `len` bytes was decoded as `name`; its response will
/// be matched by `req_id` when written (see [`frames_written`]).
pub fn request_received(
    stats: &ConnStats,
    frame_kind: u8,
    name: &'static str,
    req_id: u32,
    len: usize,
) {
    let m = get();
    m.frames_received.increment(1);
    m.bytes_received.increment(len as u64);
    // Only decoded requests get here; anything else shares slot 0 (no
    // request has type 0) rather than indexing out of bounds.
    let slot = if kind::is_request(frame_kind) {
        usize::from(frame_kind)
    } else {
        0
    };
    KINDS[slot].get_or_init(|| KindMetrics {
        name,
        ok: counter!(name::REQUESTS, "kind" => name, "code" => "ok"),
        latency: histogram!(name::REQUEST_DURATION, "kind" => name),
    });
    let mut q = stats.in_flight.lock().unwrap_or_else(|e| e.into_inner());
    if q.len() < MAX_IN_FLIGHT {
        q.push_back(Pending {
            req_id,
            kind: slot as u8,
            since: Instant::now(),
        });
    }
}

/// Writes counted on this thread while a [`WriteTally`] is open, added to
/// the shared metrics when the outermost one closes.
#[derive(Default)]
struct Tally {
    open: u32,
    frames: u64,
    bytes: u64,
    /// Writes by the frames they carried: index `n - 1` for `n` up to its
    /// length (longer writes are recorded at once).
    writes: [u32; TALLY_WRITES],
}

const TALLY_WRITES: usize = 16;

thread_local! {
    static TALLY: std::cell::RefCell<Tally> = std::cell::RefCell::default();
}

/// While one is open on a thread, the frames and bytes that thread's
/// writes carry (and the writes' sizes) are summed there and added to the
/// shared counters and histogram once, when it closes: a shard's or the
/// batch writer's flush of every connection it touched makes many writes
/// in a row, and a shared counter's add is an atomic read-modify-write
/// on a line every thread writes. Request latencies are not deferred.
pub struct WriteTally(());

impl WriteTally {
    pub fn open() -> WriteTally {
        TALLY.with(|t| t.borrow_mut().open += 1);
        WriteTally(())
    }
}

impl Drop for WriteTally {
    fn drop(&mut self) {
        let done = TALLY.with(|t| {
            let mut t = t.borrow_mut();
            t.open -= 1;
            (t.open == 0).then(|| std::mem::take(&mut *t))
        });
        let Some(done) = done else { return };
        if done.frames == 0 {
            return;
        }
        let m = get();
        m.frames_sent.increment(done.frames);
        m.bytes_sent.increment(done.bytes);
        for (i, &n) in done.writes.iter().enumerate() {
            m.write_frames.record_n(i as u64 + 1, u64::from(n));
        }
    }
}

/// One write carried `frames` frames of `bytes` bytes, among them the
/// replies to `replies` (request id, error code if any): counts them and
/// completes those requests.
pub fn frames_written(
    stats: &ConnStats,
    frames: usize,
    bytes: usize,
    replies: &[(u32, Option<ErrorCode>)],
) {
    let tallied = TALLY.with(|t| {
        let mut t = t.borrow_mut();
        if t.open == 0 || frames == 0 || frames > TALLY_WRITES {
            return false;
        }
        t.frames += frames as u64;
        t.bytes += bytes as u64;
        t.writes[frames - 1] += 1;
        true
    });
    let m = get();
    if !tallied {
        m.frames_sent.increment(frames as u64);
        m.bytes_sent.increment(bytes as u64);
        m.write_frames.record_n(frames as u64, 1);
    }
    if replies.is_empty() {
        return;
    }
    let mut q = stats.in_flight.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    for &(req_id, error) in replies {
        // Responses mostly come back in request order: search from the front.
        let Some(pos) = q.iter().position(|p| p.req_id == req_id) else {
            continue;
        };
        let Some(p) = q.remove(pos) else { continue };
        let Some(km) = KINDS[p.kind as usize].get() else {
            continue;
        };
        km.latency.record(now.duration_since(p.since).as_secs_f64());
        match error {
            None => km.ok.increment(1),
            Some(code) => {
                counter!(name::REQUESTS, "kind" => km.name, "code" => code.name()).increment(1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_protocol::frame::kind;

    fn tallied() -> (u32, u64, u64, [u32; TALLY_WRITES]) {
        TALLY.with(|t| {
            let t = t.borrow();
            (t.open, t.frames, t.bytes, t.writes)
        })
    }

    /// Writes made while a tally is open are summed on the thread and
    /// handed on once, when the outermost tally closes; writes made
    /// outside one, or too long to tally, are counted at once.
    #[test]
    fn writes_are_tallied_until_the_outermost_tally_closes() {
        let _ = super::super::install_for_tests();
        let stats = ConnStats::default();
        let outer = WriteTally::open();
        {
            let _inner = WriteTally::open();
            frames_written(&stats, 1, 10, &[]);
            frames_written(&stats, 3, 30, &[]);
        }
        frames_written(&stats, 1, 12, &[]);
        // Longer than the tally keeps: not tallied.
        frames_written(&stats, TALLY_WRITES + 1, 100, &[]);
        let (open, frames, bytes, writes) = tallied();
        assert_eq!(
            (open, frames, bytes),
            (1, 5, 52),
            "still open after the inner one"
        );
        assert_eq!((writes[0], writes[2]), (2, 1));
        drop(outer);
        assert_eq!(
            tallied(),
            (0, 0, 0, [0; TALLY_WRITES]),
            "handed on at the close"
        );
        frames_written(&stats, 2, 20, &[]);
        assert_eq!(tallied().1, 0, "no tally open: counted at once");
    }

    /// The server's own histogram renders as the exporter renders one:
    /// cumulative buckets, `+Inf`, sum and count.
    #[test]
    fn a_count_histogram_renders_cumulative_buckets() {
        let h = super::super::CountHistogram::new(&[1.0, 2.0, 4.0]);
        h.record_n(1, 3);
        h.record_n(3, 2);
        h.record_n(9, 1);
        h.record_n(2, 0);
        let mut text = String::new();
        h.render(&mut text, "x_frames", "Frames.");
        assert_eq!(
            text,
            "# HELP x_frames Frames.\n# TYPE x_frames histogram\n\
             x_frames_bucket{le=\"1\"} 3\nx_frames_bucket{le=\"2\"} 3\n\
             x_frames_bucket{le=\"4\"} 5\nx_frames_bucket{le=\"+Inf\"} 6\n\
             x_frames_sum 18\nx_frames_count 6\n\n"
        );
    }

    #[test]
    fn responses_complete_their_requests_in_any_order() {
        let handle = super::super::install_for_tests();
        let stats = ConnStats::default();
        request_received(&stats, kind::PING, "ping", 7, 10);
        request_received(&stats, kind::PING, "ping", 8, 10);
        request_received(&stats, kind::PING, "ping", 9, 10);
        let replies = [(8, None), (7, Some(ErrorCode::RateLimited)), (99, None)];
        frames_written(&stats, 3, 30, &replies);
        let left: Vec<u32> = stats
            .in_flight
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.req_id)
            .collect();
        assert_eq!(left, vec![9], "7 and 8 answered; 99 was never asked");
        let text = handle.render();
        let line = format!(
            r#"confab_requests_total{{kind="ping",code="{}"}} "#,
            ErrorCode::RateLimited.name()
        );
        assert!(text.contains(&line), "{text}");
    }
}
