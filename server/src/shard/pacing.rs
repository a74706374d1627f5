//! Flush pacing: when a shard is busy, it writes to its connections less
//! often, so each write carries more frames (ARCHITECTURE.md,
//! "Connections"; benches/BENCHMARKS.md, "Flush pacing").
//!
//! A write to a socket costs the kernel a fixed amount (the system call,
//! a TCP segment, the receiver's wake-up — on loopback, the receiver's
//! whole input path too) plus a little per byte. A shard that writes each
//! connection once per pass of its command queue pays the fixed cost once
//! per pass; when the shard is idle that is what keeps latency at its
//! floor, but when it is busy the fixed costs are most of what it does,
//! and queueing, not the write, decides latency. So the shard measures
//! the share of wall time it spends working, and while that share is high
//! it *lingers*: after a pass it keeps taking commands for up to
//! `linger` before it writes, so one write carries every frame of the
//! interval. The linger doubles (from 1 ms) while the shard stays busy,
//! up to a bound, and halves back to zero once it is not: an idle or
//! lightly loaded shard writes after every pass, exactly as before.
//!
//! Time here is the runtime's (`tokio::time::Instant`): paused test
//! runtimes see no work time, and never linger.

use std::time::Duration;

use tokio::time::Instant;

/// How long the shard's work share is measured before the linger changes.
const WINDOW: Duration = Duration::from_millis(50);
/// A work share at or above this lengthens the linger.
const BUSY: f64 = 0.80;
/// A work share below this shortens it.
const RELAXED: f64 = 0.50;
/// The first linger of a busy shard (tokio's timers tick in milliseconds).
const FIRST: Duration = Duration::from_millis(1);

/// One shard's pacing state.
#[derive(Debug)]
pub struct Pacing {
    max: Duration,
    linger: Duration,
    window_start: Instant,
    worked: Duration,
    /// When the frames pushed since the last write must be written.
    due: Option<Instant>,
}

impl Pacing {
    /// Pacing that lingers at most `max` (zero: never).
    pub fn new(max: Duration) -> Pacing {
        Pacing {
            max,
            linger: Duration::ZERO,
            window_start: Instant::now(),
            worked: Duration::ZERO,
            due: None,
        }
    }

    /// The current linger (zero while the shard is not busy).
    pub fn linger(&self) -> Duration {
        self.linger
    }

    /// When the pending writes are due, if the shard is holding any back.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// A pass that pushed frames ended at `now`: true when the shard
    /// should write now, false when it may take more commands first (until
    /// [`Pacing::due`]).
    pub fn write_now(&mut self, now: Instant) -> bool {
        if self.linger.is_zero() {
            self.due = None;
            return true;
        }
        let due = *self.due.get_or_insert(now + self.linger);
        if now >= due {
            self.due = None;
            true
        } else {
            false
        }
    }

    /// The shard wrote (everything pending is out).
    pub fn wrote(&mut self) {
        self.due = None;
    }

    /// The shard worked from `started` to `now` (a pass, its writes);
    /// at the end of each window the linger follows the work share.
    pub fn worked(&mut self, started: Instant, now: Instant) {
        self.worked += now.saturating_duration_since(started);
        let span = now.saturating_duration_since(self.window_start);
        if span < WINDOW {
            return;
        }
        let share = self.worked.as_secs_f64() / span.as_secs_f64();
        self.linger = next_linger(self.linger, share, self.max);
        self.window_start = now;
        self.worked = Duration::ZERO;
    }
}

/// The linger after a window in which the shard worked `share` of the
/// time: doubled (from [`FIRST`]) when busy, halved (to zero below
/// [`FIRST`]) when relaxed, kept in between, never above `max`.
fn next_linger(linger: Duration, share: f64, max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    if share >= BUSY {
        (linger * 2).clamp(FIRST, max)
    } else if share < RELAXED {
        let half = linger / 2;
        if half < FIRST {
            Duration::ZERO
        } else {
            half
        }
    } else {
        linger
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_millis(8);

    #[test]
    fn a_busy_shard_lingers_longer_up_to_the_bound_and_a_relaxed_one_stops() {
        let mut l = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..6 {
            l = next_linger(l, 0.95, MAX);
            seen.push(l.as_millis());
        }
        assert_eq!(seen, [1, 2, 4, 8, 8, 8]);
        // Between the thresholds it holds.
        assert_eq!(next_linger(l, 0.6, MAX), l);
        let mut seen = Vec::new();
        for _ in 0..5 {
            l = next_linger(l, 0.1, MAX);
            seen.push(l.as_millis());
        }
        assert_eq!(seen, [4, 2, 1, 0, 0]);
        // A bound of zero never lingers, however busy.
        assert_eq!(
            next_linger(Duration::ZERO, 1.0, Duration::ZERO),
            Duration::ZERO
        );
    }

    #[test]
    fn writes_are_held_back_only_while_lingering_and_only_until_due() {
        let mut p = Pacing::new(MAX);
        let t0 = Instant::now();
        // Not busy: every pass writes.
        assert!(p.write_now(t0));
        assert_eq!(p.due(), None);
        // A window of solid work: the next passes linger 1 ms.
        p.worked(t0, t0 + WINDOW);
        assert_eq!(p.linger(), FIRST);
        let t1 = t0 + WINDOW;
        assert!(!p.write_now(t1));
        assert_eq!(p.due(), Some(t1 + FIRST));
        // A later pass inside the linger keeps the first deadline.
        assert!(!p.write_now(t1 + Duration::from_micros(400)));
        assert_eq!(p.due(), Some(t1 + FIRST));
        // At the deadline it writes, and the next pass starts a new one.
        assert!(p.write_now(t1 + FIRST));
        assert_eq!(p.due(), None);
        assert!(!p.write_now(t1 + FIRST * 2));
        p.wrote();
        assert_eq!(p.due(), None);
        // A quiet window (5 % work) brings the linger back to zero.
        let t2 = t1 + FIRST * 2;
        p.worked(t2, t2 + WINDOW / 20);
        p.worked(t2 + WINDOW, t2 + WINDOW);
        assert_eq!(p.linger(), Duration::ZERO);
        assert!(p.write_now(t2 + WINDOW));
    }
}
