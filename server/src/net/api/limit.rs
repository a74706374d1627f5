//! The message rate limit of HTTP callers.
//!
//! A connection has its own token bucket (`rate_limit_per_sec`,
//! `rate_limit_burst`); an HTTP request has no connection, so the HTTP door
//! keeps one bucket per **user**, with the same rate and burst, shared by
//! every HTTP request of that user whatever token it carries (logging in
//! again does not buy a fresh bucket). The check itself runs in the
//! session's SEND_MESSAGE dispatch, where a connection's runs, through
//! [`crate::session::MessageLimit`].
//!
//! Buckets of users who stopped posting are evicted: a bucket left alone
//! for `burst / rate` seconds is full again, exactly like a new one, so
//! dropping it changes nothing. Eviction sweeps the map at most every
//! [`SWEEP_EVERY`], so memory is bounded by the users who posted within
//! about that long.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use confab_protocol::UserId;

use crate::session::{MessageLimit, TokenBucket};

/// How often idle buckets are swept out, at most.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Per-user token buckets.
pub struct UserLimiter {
    rate: u32,
    burst: u32,
    /// How long an untouched bucket takes to be full again.
    refill: Duration,
    inner: Mutex<Inner>,
}

struct Inner {
    /// Each user's bucket and when it was last used.
    buckets: HashMap<UserId, (TokenBucket, Instant)>,
    last_sweep: Instant,
}

impl UserLimiter {
    /// `None` when `rate` is 0 (the limit is off, as for connections).
    pub fn new(rate: u32, burst: u32) -> Option<UserLimiter> {
        (rate > 0).then(|| UserLimiter {
            rate,
            burst,
            refill: Duration::from_secs_f64(burst as f64 / rate as f64),
            inner: Mutex::new(Inner {
                buckets: HashMap::new(),
                last_sweep: Instant::now(),
            }),
        })
    }

    /// The limit as the session takes it.
    pub fn into_message_limit(self) -> MessageLimit {
        let this = Arc::new(self);
        Arc::new(move |user| this.try_take(user, Instant::now()))
    }

    /// Takes one token from `user`'s bucket; `false`: over the limit.
    pub fn try_take(&self, user: UserId, now: Instant) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if now.saturating_duration_since(inner.last_sweep) >= SWEEP_EVERY {
            let refill = self.refill;
            inner
                .buckets
                .retain(|_, (_, last)| now.saturating_duration_since(*last) < refill);
            inner.last_sweep = now;
        }
        let (rate, burst) = (self.rate, self.burst);
        let entry = inner.buckets.entry(user).or_insert_with(|| {
            let bucket = TokenBucket::new(rate, burst).expect("rate > 0 checked in new");
            (bucket, now)
        });
        entry.1 = now;
        entry.0.try_take(now)
    }

    /// Users with a bucket now.
    pub fn tracked(&self) -> usize {
        self.inner
            .lock()
            .map(|i| i.buckets.len())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_user_gets_the_burst_then_the_rate() {
        let l = UserLimiter::new(10, 3).unwrap();
        let t0 = Instant::now();
        let (a, b) = (UserId(1), UserId(2));
        assert!((0..3).all(|_| l.try_take(a, t0)), "the burst");
        assert!(!l.try_take(a, t0), "burst exhausted");
        assert!(l.try_take(b, t0), "another user has their own bucket");
        assert!(
            l.try_take(a, t0 + Duration::from_millis(100)),
            "one token per 100 ms at 10/s"
        );
        assert!(!l.try_take(a, t0 + Duration::from_millis(100)));
        assert!(UserLimiter::new(0, 5).is_none(), "0 turns the limit off");
    }

    #[test]
    fn idle_buckets_are_evicted_and_busy_ones_kept() {
        // Refill time: 4 tokens at 2/s = 2 s.
        let l = UserLimiter::new(2, 4).unwrap();
        let t0 = Instant::now();
        for u in 1..=100 {
            assert!(l.try_take(UserId(u), t0));
        }
        assert_eq!(l.tracked(), 100);
        // User 7 keeps posting until its bucket is empty, shortly before a sweep.
        let late = t0 + SWEEP_EVERY - Duration::from_millis(100);
        while l.try_take(UserId(7), late) {}
        // The sweep drops every bucket idle past its refill time, not 7's:
        // its emptiness is remembered.
        assert!(!l.try_take(UserId(7), t0 + SWEEP_EVERY));
        assert_eq!(l.tracked(), 1, "only the busy bucket is left");
        // An evicted user starts again with a full bucket — as they would
        // have had anyway.
        let t1 = t0 + SWEEP_EVERY;
        assert!((0..4).all(|_| l.try_take(UserId(1), t1)));
        assert!(!l.try_take(UserId(1), t1));
    }
}
