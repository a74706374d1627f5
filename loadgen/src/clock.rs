//! The one clock every measurement reads.
//!
//! **Invariant:** every timestamp in the load generator — intended send
//! times, send and receive times, the pacer's deadlines — is `CLOCK_MONOTONIC`
//! in nanoseconds, read through [`now_ns`]. Because it is the kernel's own
//! monotonic clock (not an offset from some `Instant`), a deadline can be
//! handed to the kernel as an absolute time (`timerfd` with
//! `TFD_TIMER_ABSTIME`, see [`crate::pacer`]) without conversion. It is read
//! through the vDSO: no system call.

use rustix::time::{clock_gettime, ClockId, Timespec};

/// Nanoseconds of `CLOCK_MONOTONIC` (since boot, not counting suspend).
#[inline]
pub fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// `ns` of [`now_ns`]'s clock as a `timespec`.
pub fn timespec(ns: u64) -> Timespec {
    Timespec {
        tv_sec: (ns / 1_000_000_000) as i64,
        tv_nsec: (ns % 1_000_000_000) as _,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_is_monotonic_and_converts_both_ways() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
        let t = timespec(a);
        assert_eq!(t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64, a);
    }
}
