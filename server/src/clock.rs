//! Wall-clock time in protocol units (milliseconds since the Unix epoch).
//!
//! The server reads the time through one [`Clock`] shared by its sessions,
//! shards and housekeeping, so that a test can move the server's time
//! forward (an expired session, an old notification) instead of sleeping.
//! The room state machine never reads a clock at all: the shard passes
//! `now` in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use confab_protocol::Millis;

/// The system's time, plus an offset that only ever grows.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Milliseconds added to the system time ([`Clock::advance`]).
    ahead_ms: Arc<AtomicU64>,
    /// When frozen ([`Clock::freeze`]): the system time it stopped at;
    /// 0 while running.
    frozen_at: Arc<AtomicU64>,
    /// When frozen: the monotonic instant it stopped at (rate limits).
    frozen_mono: Arc<OnceLock<Instant>>,
}

impl Clock {
    /// Milliseconds since the Unix epoch, as this clock reads them.
    pub fn now_ms(&self) -> Millis {
        let base = match self.frozen_at.load(Ordering::Relaxed) {
            0 => now_ms(),
            at => at,
        };
        base.saturating_add(self.ahead_ms.load(Ordering::Relaxed))
    }

    /// Stops this clock where it is: from now on only [`Clock::advance`]
    /// moves it, so a test's steps, not how long its requests take, decide
    /// which interval an action falls in.
    pub fn freeze(&self) {
        self.frozen_mono.get_or_init(Instant::now);
        let _ = self.frozen_at.compare_exchange(
            0,
            now_ms().max(1),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Moves this clock (and every server part reading it: session
    /// expiry, rate limits, housekeeping) `by` forward.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.ahead_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Monotonic time since `start` as this clock runs: stopped while
    /// frozen, plus every advance (the rate limits' time).
    pub fn since(&self, start: Instant) -> Duration {
        let end = self.frozen_mono.get().copied().unwrap_or_else(Instant::now);
        end.saturating_duration_since(start) + self.ahead()
    }

    /// How far [`Clock::advance`] has moved this clock.
    pub fn ahead(&self) -> Duration {
        Duration::from_millis(self.ahead_ms.load(Ordering::Relaxed))
    }
}

/// Milliseconds since the Unix epoch, by the system's clock.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frozen_clock_moves_only_when_advanced() {
        let clock = Clock::default();
        clock.freeze();
        let t = clock.now_ms();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.now_ms(), t);
        clock.advance(Duration::from_millis(1_100));
        assert_eq!(clock.now_ms(), t + 1_100);
    }

    #[test]
    fn an_advanced_clock_runs_ahead_of_the_system_by_exactly_the_advance() {
        let clock = Clock::default();
        let copy = clock.clone();
        clock.advance(Duration::from_secs(3600));
        let ahead = copy.now_ms() - now_ms();
        assert!((3_599_000..=3_600_000).contains(&ahead), "{ahead}");
    }
}
