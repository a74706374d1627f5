//! Rate limits, on `governor`'s GCRA limiters, keyed by user ([`Limits`]:
//! one allowance per user for messages, one for profile changes and one of
//! upload bytes, shared by all of the user's connections and HTTP
//! requests) or by any other key ([`KeyedLimit`]).
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
    /// How long an empty allowance takes to fill up again.
    refill: Duration,
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
            refill: quota.burst_size_replenished_in(),
            clock,
            last_forget: AtomicU64::new(0),
        })
    }

    /// Takes one token from `key`'s allowance; `Err(wait)`: over the limit,
    /// with how long until the next token.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let now = self.forget_idle();
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(now))
    }

    /// Takes `n` tokens at once from `key`'s allowance, or none;
    /// `Err(wait)`: not that many now, with how long until there are.
    /// More than the whole burst can never be taken: `Err(period)`, the
    /// time the full allowance takes to come back.
    pub fn check_n(&self, key: &K, n: u32) -> Result<(), Duration> {
        let Some(n) = NonZeroU32::new(n) else {
            return Ok(());
        };
        let now = self.forget_idle();
        match self.limiter.check_key_n(key, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(now)),
            Err(_) => Err(self.refill),
        }
    }

    /// The time, after forgetting idle keys if [`FORGET_EVERY`] has passed.
    fn forget_idle(&self) -> Duration {
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
        now
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
    /// Upload bytes (room files and avatars), counted in KiB:
    /// `upload_bytes_per_hour` per user, all of it usable at once.
    pub uploads: Option<KeyedLimit<UserId>>,
}

/// The unit of the upload budget: bytes are drawn in whole KiB, rounded up.
pub const UPLOAD_UNIT: u64 = 1024;

/// Which per-user limit (`confab_rate_limited_total{limit}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Messages,
    Profile,
    Uploads,
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
            uploads: {
                let kib = u32::try_from(cfg.upload_bytes_per_hour.div_ceil(UPLOAD_UNIT))
                    .unwrap_or(u32::MAX);
                KeyedLimit::per(kib, Duration::from_secs(3600), kib, clock)
            },
        }
    }

    /// Takes one of `user`'s `kind` allowance; `Err(wait)` when it is
    /// spent (counted in `confab_rate_limited_total{limit}`).
    pub fn check(&self, kind: LimitKind, user: UserId) -> Result<(), Duration> {
        let limit = match kind {
            LimitKind::Messages => &self.messages,
            LimitKind::Profile => &self.profile,
            LimitKind::Uploads => &self.uploads,
        };
        let Some(limit) = limit else { return Ok(()) };
        limit
            .check(&user)
            .inspect_err(|_| crate::metrics::rate_limited(kind))
    }

    /// A meter of one upload by `user` against their upload budget.
    pub fn upload_meter(&self, user: UserId) -> UploadMeter<'_> {
        UploadMeter {
            limit: self.uploads.as_ref(),
            user,
            drawn: 0,
        }
    }

    /// The housekeeping pass: every limit forgets its idle keys and
    /// shrinks its table.
    pub fn shrink(&self) {
        for limit in [&self.messages, &self.profile, &self.uploads]
            .into_iter()
            .flatten()
        {
            limit.shrink();
        }
    }
}

/// One upload's draw on its uploader's hourly byte budget (SPEC.md
/// §13.2): the budget is drawn in whole KiB as the bytes come — all of a
/// declared Content-Length before the body is read, else chunk by chunk —
/// and what was drawn is not given back if the upload is then refused:
/// receiving the bytes was the cost.
pub struct UploadMeter<'a> {
    limit: Option<&'a KeyedLimit<UserId>>,
    user: UserId,
    /// KiB drawn so far.
    drawn: u64,
}

impl UploadMeter<'_> {
    /// Makes sure the first `bytes` of the upload are paid for, drawing
    /// what is missing; `Err(wait)`: the budget does not cover them now
    /// (counted in `confab_rate_limited_total{limit="uploads"}`).
    pub fn reach(&mut self, bytes: u64) -> Result<(), Duration> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let want = bytes.div_ceil(UPLOAD_UNIT);
        if want <= self.drawn {
            return Ok(());
        }
        let more = u32::try_from(want - self.drawn).unwrap_or(u32::MAX);
        limit
            .check_n(&self.user, more)
            .inspect_err(|_| crate::metrics::rate_limited(LimitKind::Uploads))?;
        self.drawn = want;
        Ok(())
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
    fn an_upload_meter_draws_whole_kib_once_and_says_when_more_come() {
        let clock = ServerClock::default();
        clock.freeze();
        let cfg = crate::config::Config {
            upload_bytes_per_hour: 3600 * 1024, // 1 KiB a second
            ..crate::config::Config::default()
        };
        let limits = Limits::new(&cfg, &clock);
        let a = UserId(1);
        let mut m = limits.upload_meter(a);
        assert_eq!(m.reach(1), Ok(()), "one byte costs one KiB");
        assert_eq!(m.reach(1024), Ok(()), "the same KiB is not drawn twice");
        assert_eq!(m.reach(3000 * 1024), Ok(()));
        // 3000 KiB drawn of 3600: 600 left.
        let mut n = limits.upload_meter(a);
        assert_eq!(n.reach(601 * 1024), Err(Duration::from_secs(1)));
        assert_eq!(n.reach(600 * 1024), Ok(()), "a refusal drew nothing");
        assert_eq!(n.reach(601 * 1024), Err(Duration::from_secs(1)));
        clock.advance(Duration::from_secs(1));
        assert_eq!(n.reach(601 * 1024), Ok(()), "refilled by the clock");
        // More than the whole budget can never pass: come back in an hour.
        let mut big = limits.upload_meter(UserId(2));
        assert_eq!(big.reach(3601 * 1024), Err(Duration::from_secs(3600)));
        // Another user has their own budget; 0 turns the limit off.
        assert_eq!(limits.upload_meter(UserId(3)).reach(3600 * 1024), Ok(()));
        let off = crate::config::Config {
            upload_bytes_per_hour: 0,
            ..cfg
        };
        let limits = Limits::new(&off, &clock);
        assert_eq!(limits.upload_meter(a).reach(u64::MAX), Ok(()));
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
