//! Brute-force limits on the account doors: failed logins per source
//! address and per username, and registrations per source address.
//!
//! - **Per address**: after `per_address` failed logins within `window`,
//!   the address may not try again until `window` after its last counted
//!   failure (the cool-down). IPv6 addresses count by their /64.
//! - **Per username**: softer (more failures allowed), and it counts
//!   failures only. When a username's budget is spent, addresses that have
//!   failed against *any* account in the window are refused for it, but an
//!   address with a clean record may still try: the owner logging in from
//!   their own address is not locked out by an attacker's failures.
//! - **Registrations per address** within an hour.
//!
//! Addresses in `exempt` (by default loopback) skip the per-address limits
//! — and are never "clean", so the per-username limit holds them all.
//! Checks run *before* the password is hashed, so a refused attempt costs
//! no KDF time. Counters live in memory (per node) and are bounded: keys
//! whose window has passed are swept, and at most [`MAX_KEYS`] are kept.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::Clock;
use crate::config::Networks;

/// Most keys one counter keeps; beyond it, new keys go uncounted until
/// the next sweep frees room (counted in `confab_auth_untracked_total`).
pub const MAX_KEYS: usize = 100_000;

/// Registrations are counted per this long.
const REGISTRATION_WINDOW: Duration = Duration::from_secs(3600);

/// The limits (0 turns one off).
#[derive(Debug, Clone)]
pub struct GuardLimits {
    pub per_address: u32,
    pub per_username: u32,
    pub window: Duration,
    pub registrations_per_hour: u32,
    pub exempt: Networks,
}

/// Which limit refused an attempt, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub limit: Limit,
    pub retry_after: Duration,
}

/// The limit that refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Address,
    Username,
    Registrations,
}

impl Limit {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Limit::Address => "address",
            Limit::Username => "username",
            Limit::Registrations => "registrations",
        }
    }
}

/// The key an address is counted under: IPv4 as is, IPv6 by its /64 (one
/// host usually holds a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddrKey(u128);

impl From<IpAddr> for AddrKey {
    fn from(ip: IpAddr) -> AddrKey {
        match ip {
            IpAddr::V4(v4) => AddrKey(u32::from(v4) as u128),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddrKey(u32::from(v4) as u128),
                None => AddrKey((u128::from(v6) >> 64) | 1 << 127),
            },
        }
    }
}

pub struct LoginGuard {
    limits: GuardLimits,
    clock: Clock,
    addresses: Mutex<Counter<AddrKey>>,
    usernames: Mutex<Counter<String>>,
    registrations: Mutex<Counter<AddrKey>>,
}

impl LoginGuard {
    pub fn new(limits: GuardLimits, clock: Clock) -> LoginGuard {
        LoginGuard {
            addresses: Mutex::new(Counter::new(limits.per_address, limits.window)),
            usernames: Mutex::new(Counter::new(limits.per_username, limits.window)),
            registrations: Mutex::new(Counter::new(
                limits.registrations_per_hour,
                REGISTRATION_WINDOW,
            )),
            limits,
            clock,
        }
    }

    fn exempt(&self, ip: IpAddr) -> bool {
        self.limits.exempt.contains(ip)
    }

    /// May `ip` try a login for `username` now? Asked before the password
    /// is checked. `None`: a name no account can have (it counts against
    /// the address only).
    pub fn check_login(&self, ip: IpAddr, username: Option<&str>) -> Result<(), Refusal> {
        let now = self.clock.now_ms();
        let addr = AddrKey::from(ip);
        let exempt = self.exempt(ip);
        if !exempt {
            lock(&self.addresses)
                .refused(&addr, now)
                .map_or(Ok(()), |d| Err(refusal(Limit::Address, d)))?;
        }
        let Some(wait) = username.and_then(|u| lock(&self.usernames).refused(u, now)) else {
            return Ok(());
        };
        let clean = !exempt && !lock(&self.addresses).seen(&addr, now);
        if clean {
            Ok(())
        } else {
            Err(refusal(Limit::Username, wait))
        }
    }

    /// Counts a failed login of `ip` for `username`.
    pub fn failed_login(&self, ip: IpAddr, username: Option<&str>) {
        let now = self.clock.now_ms();
        if !self.exempt(ip) {
            lock(&self.addresses).count(AddrKey::from(ip), now);
        }
        if let Some(u) = username {
            lock(&self.usernames).count(u.to_owned(), now);
        }
    }

    /// Counts a registration attempt by `ip`, or refuses it.
    pub fn register(&self, ip: IpAddr) -> Result<(), Refusal> {
        if self.exempt(ip) {
            return Ok(());
        }
        let now = self.clock.now_ms();
        let mut regs = lock(&self.registrations);
        let addr = AddrKey::from(ip);
        if let Some(wait) = regs.refused(&addr, now) {
            return Err(refusal(Limit::Registrations, wait));
        }
        regs.count(addr, now);
        Ok(())
    }

    /// Keys remembered by each counter (addresses, usernames,
    /// registrations): for tests.
    #[cfg(test)]
    fn tracked(&self) -> (usize, usize, usize) {
        (
            lock(&self.addresses).keys.len(),
            lock(&self.usernames).keys.len(),
            lock(&self.registrations).keys.len(),
        )
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn refusal(limit: Limit, retry_after: Duration) -> Refusal {
    crate::metrics::auth_refused(limit.label());
    Refusal { limit, retry_after }
}

/// Counts events per key within a window opened by the key's first event;
/// at `max` events the key is refused for `window` from the last one.
struct Counter<K> {
    max: u32,
    window_ms: u64,
    keys: HashMap<K, Tally>,
    last_sweep: u64,
}

#[derive(Debug, Clone, Copy)]
struct Tally {
    count: u32,
    opened: u64,
    /// Refused until then (ms), once `count` reached the limit.
    locked_until: u64,
}

impl Tally {
    fn expired(&self, now: u64, window_ms: u64) -> bool {
        now >= self.locked_until && now >= self.opened.saturating_add(window_ms)
    }
}

impl<K: Hash + Eq> Counter<K> {
    fn new(max: u32, window: Duration) -> Counter<K> {
        Counter {
            max,
            window_ms: window.as_millis() as u64,
            keys: HashMap::new(),
            last_sweep: 0,
        }
    }

    /// How long `key` is still refused, if it is.
    fn refused<Q>(&self, key: &Q, now: u64) -> Option<Duration>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.max == 0 {
            return None;
        }
        let t = self.keys.get(key)?;
        (t.locked_until > now).then(|| Duration::from_millis(t.locked_until - now))
    }

    /// Whether `key` has events in its current window.
    fn seen(&self, key: &K, now: u64) -> bool {
        self.keys
            .get(key)
            .is_some_and(|t| !t.expired(now, self.window_ms))
    }

    fn count(&mut self, key: K, now: u64) {
        if self.max == 0 {
            return;
        }
        self.sweep(now);
        if self.keys.len() >= MAX_KEYS && !self.keys.contains_key(&key) {
            crate::metrics::auth_untracked();
            return;
        }
        let window_ms = self.window_ms;
        let t = self.keys.entry(key).or_insert(Tally {
            count: 0,
            opened: now,
            locked_until: 0,
        });
        if t.expired(now, window_ms) {
            *t = Tally {
                count: 0,
                opened: now,
                locked_until: 0,
            };
        }
        t.count += 1;
        if t.count >= self.max {
            t.locked_until = now + window_ms;
        }
    }

    /// Forgets expired keys, at most once a second (or when full).
    fn sweep(&mut self, now: u64) {
        if now < self.last_sweep + 1000 && self.keys.len() < MAX_KEYS {
            return;
        }
        self.last_sweep = now;
        let window_ms = self.window_ms;
        self.keys.retain(|_, t| !t.expired(now, window_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guard on `clock`, frozen so that only `advance` moves it (a
    /// running clock made retry-afters read 999 ms instead of 1 s).
    fn guard(clock: &Clock) -> LoginGuard {
        clock.freeze();
        LoginGuard::new(
            GuardLimits {
                per_address: 3,
                per_username: 5,
                window: Duration::from_secs(300),
                registrations_per_hour: 2,
                exempt: "127.0.0.0/8".parse().unwrap(),
            },
            clock.clone(),
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_is_refused_after_its_failures_until_the_cool_down_ends() {
        let clock = Clock::default();
        let g = guard(&clock);
        let a = ip("10.0.0.1");
        for _ in 0..3 {
            assert_eq!(g.check_login(a, Some("alice")), Ok(()));
            g.failed_login(a, Some("alice"));
        }
        let r = g.check_login(a, Some("bob")).unwrap_err();
        assert_eq!(r.limit, Limit::Address, "every username, from that address");
        assert_eq!(r.retry_after, Duration::from_secs(300));
        assert_eq!(
            g.check_login(ip("10.0.0.2"), Some("alice")),
            Ok(()),
            "other addresses are not"
        );
        clock.advance(Duration::from_secs(299));
        assert_eq!(
            g.check_login(a, Some("bob")).unwrap_err().retry_after,
            Duration::from_secs(1)
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(g.check_login(a, Some("bob")), Ok(()), "cooled down");
        g.failed_login(a, Some("bob"));
        assert_eq!(
            g.check_login(a, Some("bob")),
            Ok(()),
            "counting starts again"
        );
    }

    #[test]
    fn a_spent_username_refuses_failing_addresses_but_not_a_clean_one() {
        let clock = Clock::default();
        let g = guard(&clock);
        // Five addresses fail once each against alice: her budget is spent.
        for i in 1..=5 {
            g.failed_login(ip(&format!("10.0.0.{i}")), Some("alice"));
        }
        let r = g.check_login(ip("10.0.0.1"), Some("alice")).unwrap_err();
        assert_eq!(r.limit, Limit::Username);
        assert_eq!(
            g.check_login(ip("10.0.0.1"), Some("bob")),
            Ok(()),
            "other accounts are open"
        );
        assert_eq!(
            g.check_login(ip("192.168.1.9"), Some("alice")),
            Ok(()),
            "an address with no failures may still log in"
        );
        assert!(
            g.check_login(ip("127.0.0.1"), Some("alice")).is_err(),
            "exempt addresses are never clean"
        );
        clock.advance(Duration::from_secs(300));
        assert_eq!(g.check_login(ip("10.0.0.1"), Some("alice")), Ok(()));
    }

    #[test]
    fn exempt_addresses_skip_address_limits() {
        let clock = Clock::default();
        let g = guard(&clock);
        for _ in 0..4 {
            g.failed_login(ip("127.0.0.5"), Some("alice"));
            assert!(g.register(ip("127.0.0.5")).is_ok());
        }
        assert_eq!(g.check_login(ip("127.0.0.5"), Some("bob")), Ok(()));
        assert_eq!(g.tracked().0, 0, "exempt addresses are not counted");
    }

    #[test]
    fn registrations_are_limited_per_address_per_hour() {
        let clock = Clock::default();
        let g = guard(&clock);
        let a = ip("2001:db8::1");
        assert!(g.register(a).is_ok() && g.register(a).is_ok());
        let r = g.register(ip("2001:db8::2")).unwrap_err();
        assert_eq!(r.limit, Limit::Registrations, "the same /64");
        assert!(g.register(ip("2001:db9::1")).is_ok(), "another /64");
        clock.advance(REGISTRATION_WINDOW);
        assert!(g.register(a).is_ok());
    }

    #[test]
    fn v4_mapped_v6_counts_as_the_v4_address() {
        assert_eq!(
            AddrKey::from(ip("::ffff:10.0.0.1")),
            AddrKey::from(ip("10.0.0.1"))
        );
        assert_ne!(AddrKey::from(ip("::a00:1")), AddrKey::from(ip("10.0.0.1")));
    }

    #[test]
    fn expired_keys_are_swept() {
        let clock = Clock::default();
        let g = guard(&clock);
        for i in 0..50 {
            g.failed_login(ip(&format!("10.1.0.{i}")), Some(&format!("user{i}")));
        }
        assert_eq!(g.tracked(), (50, 50, 0));
        clock.advance(Duration::from_secs(301));
        g.failed_login(ip("10.2.0.1"), Some("zed"));
        assert_eq!(g.tracked(), (1, 1, 0));
    }
}
