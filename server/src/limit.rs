//! Rate limits, on `governor`'s GCRA limiters: a connection's message rate
//! ([`TokenBucket`]) and limits keyed by user or address ([`KeyedLimit`]),
//! such as the HTTP door's per-user message rate.
//!
//! Time is monotonic time plus the server [`Clock`]'s advance
//! ([`LimitClock`]), so a test that moves the server's clock forward
//! refills the limits too — no test sleeps for a refill.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use confab_protocol::UserId;
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// The limits' time: monotonic time since the limit was made, plus how
/// far the server's clock has been advanced.
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
        self.start.elapsed() + self.server.ahead()
    }
}

/// `rate` per second with bursts of `burst`; `None` when `rate` is 0 (the
/// limit is off).
fn quota(rate: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(rate)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

/// One connection's message rate limit: `rate` messages per second, with
/// bursts of up to `burst`.
pub struct TokenBucket {
    limiter: RateLimiter<NotKeyed, InMemoryState, LimitClock, NoOpMiddleware<Duration>>,
}

impl TokenBucket {
    /// `None` when `rate` is 0 (unlimited).
    pub fn new(rate: u32, burst: u32, clock: &crate::clock::Clock) -> Option<TokenBucket> {
        let quota = quota(rate, burst)?;
        Some(TokenBucket {
            limiter: RateLimiter::direct_with_clock(quota, LimitClock::new(clock)),
        })
    }

    /// Takes one token; `false`: over the limit.
    pub fn try_take(&mut self) -> bool {
        self.limiter.check().is_ok()
    }
}

/// Decides whether a one-shot caller's user may send one more message now
/// (the HTTP door's per-user limit, `net/api/limit.rs`).
pub type MessageLimit = Arc<dyn Fn(UserId) -> bool + Send + Sync>;

/// How often a keyed limit forgets keys whose state is as good as new.
pub const FORGET_EVERY: Duration = Duration::from_secs(10);

/// A rate limit per key (user, address, …): each key gets `rate` per
/// second with bursts of `burst`. Keys idle long enough to be full again
/// are forgotten every [`FORGET_EVERY`] — dropping them changes nothing —
/// so memory is bounded by the keys active within about that long.
pub struct KeyedLimit<K: Hash + Eq + Clone> {
    limiter: RateLimiter<K, HashMapStateStore<K>, LimitClock, NoOpMiddleware<Duration>>,
    clock: LimitClock,
    /// When keys were last forgotten (nanoseconds on `clock`).
    last_forget: AtomicU64,
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    /// `None` when `rate` is 0 (the limit is off).
    pub fn new(rate: u32, burst: u32, clock: &crate::clock::Clock) -> Option<KeyedLimit<K>> {
        let quota = quota(rate, burst)?;
        let clock = LimitClock::new(clock);
        Some(KeyedLimit {
            limiter: RateLimiter::hashmap_with_clock(quota, clock.clone()),
            clock,
            last_forget: AtomicU64::new(0),
        })
    }

    /// Takes one token from `key`'s allowance; `false`: over the limit.
    pub fn try_take(&self, key: &K) -> bool {
        let now = self.clock.now().as_nanos() as u64;
        let last = self.last_forget.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= FORGET_EVERY.as_nanos() as u64
            && self
                .last_forget
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(key).is_ok()
    }

    /// Keys with a remembered state now.
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock as ServerClock;

    #[test]
    fn a_bucket_allows_the_burst_then_refills_at_the_rate() {
        let clock = ServerClock::default();
        let mut b = TokenBucket::new(10, 3, &clock).unwrap();
        assert!(b.try_take() && b.try_take() && b.try_take());
        assert!(!b.try_take(), "burst exhausted");
        clock.advance(Duration::from_millis(100));
        assert!(b.try_take(), "one token per 100 ms at 10/s");
        assert!(!b.try_take());
        assert!(
            TokenBucket::new(0, 0, &clock).is_none(),
            "0 disables the limit"
        );
    }

    #[test]
    fn each_key_gets_the_burst_then_the_rate() {
        let clock = ServerClock::default();
        let l = KeyedLimit::new(10, 3, &clock).unwrap();
        let (a, b) = (UserId(1), UserId(2));
        assert!((0..3).all(|_| l.try_take(&a)), "the burst");
        assert!(!l.try_take(&a), "burst exhausted");
        assert!(l.try_take(&b), "another key has its own allowance");
        clock.advance(Duration::from_millis(100));
        assert!(l.try_take(&a), "one token per 100 ms at 10/s");
        assert!(!l.try_take(&a));
        assert!(KeyedLimit::<UserId>::new(0, 5, &clock).is_none());
    }

    #[test]
    fn idle_keys_are_forgotten_and_busy_ones_kept() {
        let clock = ServerClock::default();
        // Refill time: 4 tokens at 2/s = 2 s.
        let l = KeyedLimit::new(2, 4, &clock).unwrap();
        for u in 1..=100 {
            assert!(l.try_take(&UserId(u)));
        }
        assert_eq!(l.tracked(), 100);
        // User 7 keeps posting until it is refused, shortly before the
        // keys are next forgotten.
        clock.advance(FORGET_EVERY - Duration::from_millis(100));
        while l.try_take(&UserId(7)) {}
        clock.advance(Duration::from_millis(100));
        // Forgetting drops every key idle past its refill time, not 7's:
        // its emptiness is remembered.
        assert!(!l.try_take(&UserId(7)));
        assert_eq!(l.tracked(), 1, "only the busy key is left");
        // A forgotten key starts again with a full allowance — as it would
        // have had anyway.
        assert!((0..4).all(|_| l.try_take(&UserId(1))));
        assert!(!l.try_take(&UserId(1)));
    }
}
