//! Rate limits, on `governor`'s GCRA limiters, keyed by user ([`Limits`]:
//! one allowance per user for messages and one for profile changes, shared
//! by all of the user's connections and HTTP requests) or by any other key
//! ([`KeyedLimit`]).
//!
//! Time is monotonic time plus the server [`Clock`]'s advance
//! ([`LimitClock`]), so a test that moves the server's clock forward
//! refills the limits too — no test sleeps for a refill.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use confab_protocol::UserId;
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

/// The limits' time: monotonic time since the limit was made, as the
/// server's clock runs (stopped while it is frozen, plus its advances).
#[derive(Debug, Clone)]
pub struct LimitClock {
    start: std::time::Instant,
    server: crate::clock::Clock,
}

impl LimitClock {
    pub fn new(server: &crate::clock::Clock) -> LimitClock {
        LimitClock {
            start: std::time::Instant::now(),
            server: server.clone(),
        }
    }
}

impl Clock for LimitClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.server.since(self.start)
    }
}

/// `per` per `period` with bursts of `burst` (`burst` 0: `per`); `None`
/// when `per` is 0 (the limit is off).
fn quota(per: u32, period: Duration, burst: u32) -> Option<Quota> {
    let n = NonZeroU32::new(per)?;
    let burst = NonZeroU32::new(burst).unwrap_or(n);
    let every = (period / per).max(Duration::from_nanos(1));
    Some(Quota::with_period(every)?.allow_burst(burst))
}

/// How often a keyed limit forgets keys whose state is as good as new.
pub const FORGET_EVERY: Duration = Duration::from_secs(10);

/// A rate limit per key (user, address, …): each key gets `per` per
/// `period` with bursts of `burst`. Keys idle long enough to be full again
/// are forgotten every [`FORGET_EVERY`] — dropping them changes nothing —
/// so memory is bounded by the keys active within about that long; the
/// table's spare capacity is given back by [`KeyedLimit::shrink`] on the
/// housekeeping pass.
pub struct KeyedLimit<K: Hash + Eq + Clone> {
    limiter: RateLimiter<K, HashMapStateStore<K>, LimitClock, NoOpMiddleware<Duration>>,
    clock: LimitClock,
    /// When keys were last forgotten (nanoseconds on `clock`).
    last_forget: AtomicU64,
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    /// `per_sec` per second; `None` when it is 0 (the limit is off).
    pub fn new(per_sec: u32, burst: u32, clock: &crate::clock::Clock) -> Option<KeyedLimit<K>> {
        KeyedLimit::per(per_sec, Duration::from_secs(1), burst, clock)
    }

    /// `per` per `period`; `None` when `per` is 0 (the limit is off).
    pub fn per(
        per: u32,
        period: Duration,
        burst: u32,
        clock: &crate::clock::Clock,
    ) -> Option<KeyedLimit<K>> {
        let quota = quota(per, period, burst)?;
        let clock = LimitClock::new(clock);
        Some(KeyedLimit {
            limiter: RateLimiter::hashmap_with_clock(quota, clock.clone()),
            clock,
            last_forget: AtomicU64::new(0),
        })
    }

    /// Takes one token from `key`'s allowance; `Err(wait)`: over the limit,
    /// with how long until the next token.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let now = self.clock.now();
        let (nanos, last) = (
            now.as_nanos() as u64,
            self.last_forget.load(Ordering::Relaxed),
        );
        if nanos.saturating_sub(last) >= FORGET_EVERY.as_nanos() as u64
            && self
                .last_forget
                .compare_exchange(last, nanos, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(now))
    }

    /// Forgets every key as good as new and gives the table's spare
    /// capacity back (after a burst of users the map would otherwise keep
    /// its peak size): the housekeeping pass.
    pub fn shrink(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Keys with a remembered state now.
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }
}

/// The per-user abuse limits, shared by every door (SPEC.md §10.1): a
/// user's connections and HTTP requests draw on one allowance each.
pub struct Limits {
    /// SEND_MESSAGE and EDIT_MESSAGE: `rate_limit_per_sec`, bursts of
    /// `rate_limit_burst`, per user.
    pub messages: Option<KeyedLimit<UserId>>,
    /// UPDATE_PROFILE: `profile_changes_per_hour`, bursts of
    /// `profile_changes_burst`, per user.
    pub profile: Option<KeyedLimit<UserId>>,
}

/// Which per-user limit (`confab_rate_limited_total{limit}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Messages,
    Profile,
}

impl Limits {
    pub fn new(cfg: &crate::config::Config, clock: &crate::clock::Clock) -> Limits {
        Limits {
            messages: KeyedLimit::new(cfg.rate_limit_per_sec, cfg.rate_limit_burst, clock),
            profile: KeyedLimit::per(
                cfg.profile_changes_per_hour,
                Duration::from_secs(3600),
                cfg.profile_changes_burst,
                clock,
            ),
        }
    }

    /// Takes one of `user`'s `kind` allowance; `Err(wait)` when it is
    /// spent (counted in `confab_rate_limited_total{limit}`).
    pub fn check(&self, kind: LimitKind, user: UserId) -> Result<(), Duration> {
        let limit = match kind {
            LimitKind::Messages => &self.messages,
            LimitKind::Profile => &self.profile,
        };
        let Some(limit) = limit else { return Ok(()) };
        limit
            .check(&user)
            .inspect_err(|_| crate::metrics::rate_limited(kind))
    }

    /// The housekeeping pass: every limit forgets its idle keys and
    /// shrinks its table.
    pub fn shrink(&self) {
        for limit in [&self.messages, &self.profile].into_iter().flatten() {
            limit.shrink();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock as ServerClock;

    fn taken(l: &KeyedLimit<UserId>, u: UserId) -> bool {
        l.check(&u).is_ok()
    }

    #[test]
    fn each_key_gets_the_burst_then_the_rate() {
        let clock = ServerClock::default();
        clock.freeze();
        let l = KeyedLimit::new(10, 3, &clock).unwrap();
        let (a, b) = (UserId(1), UserId(2));
        assert!((0..3).all(|_| taken(&l, a)), "the burst");
        assert_eq!(
            l.check(&a),
            Err(Duration::from_millis(100)),
            "burst exhausted: the next token in 100 ms"
        );
        assert!(taken(&l, b), "another key has its own allowance");
        clock.advance(Duration::from_millis(100));
        assert!(taken(&l, a), "one token per 100 ms at 10/s");
        assert!(!taken(&l, a));
        assert!(KeyedLimit::<UserId>::new(0, 5, &clock).is_none());
    }

    #[test]
    fn a_limit_per_hour_says_when_to_come_back() {
        let clock = ServerClock::default();
        clock.freeze();
        // 6 an hour: one every 10 minutes, bursts of 2.
        let l = KeyedLimit::per(6, Duration::from_secs(3600), 2, &clock).unwrap();
        let a = UserId(1);
        assert!(taken(&l, a) && taken(&l, a));
        assert_eq!(l.check(&a), Err(Duration::from_secs(600)));
        clock.advance(Duration::from_secs(599));
        assert_eq!(l.check(&a), Err(Duration::from_secs(1)));
        clock.advance(Duration::from_secs(1));
        assert!(taken(&l, a));
    }

    #[test]
    fn idle_keys_are_forgotten_and_busy_ones_kept() {
        let clock = ServerClock::default();
        // Refill time: 4 tokens at 2/s = 2 s.
        let l = KeyedLimit::new(2, 4, &clock).unwrap();
        for u in 1..=100 {
            assert!(taken(&l, UserId(u)));
        }
        assert_eq!(l.tracked(), 100);
        // User 7 keeps posting until it is refused, shortly before the
        // keys are next forgotten.
        clock.advance(FORGET_EVERY - Duration::from_millis(100));
        while taken(&l, UserId(7)) {}
        clock.advance(Duration::from_millis(100));
        // Forgetting drops every key idle past its refill time, not 7's:
        // its emptiness is remembered.
        assert!(!taken(&l, UserId(7)));
        assert_eq!(l.tracked(), 1, "only the busy key is left");
        // A forgotten key starts again with a full allowance — as it would
        // have had anyway.
        assert!((0..4).all(|_| taken(&l, UserId(1))));
        assert!(!taken(&l, UserId(1)));
    }

    #[test]
    fn the_housekeeping_shrink_forgets_idle_keys_at_once() {
        let clock = ServerClock::default();
        let l = KeyedLimit::new(2, 4, &clock).unwrap();
        for u in 1..=1_000 {
            assert!(taken(&l, UserId(u)));
        }
        while taken(&l, UserId(7)) {}
        clock.advance(Duration::from_secs(3));
        l.shrink();
        assert_eq!(l.tracked(), 0, "all as good as new after 3 s");
    }
}
