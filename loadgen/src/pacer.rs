//! The open-loop schedule: request `k` is due at `start + k / rate`, and
//! the pacer wakes the sender when it is.
//!
//! How late the sender goes out is part of every latency figure (latency
//! runs from the *intended* time), so the pacer's own lateness is the floor
//! of what a run can show. Tokio's timer has millisecond granularity: with
//! it, a send is up to a millisecond late before any load, which hides a
//! sub-millisecond server. Three ways to wait, chosen by `--pacing`:
//!
//! - `timerfd`: a `timerfd` armed at the exact deadline
//!   (`TFD_TIMER_ABSTIME` on `CLOCK_MONOTONIC`, the clock every timestamp
//!   comes from) and awaited through the event loop like any socket. The
//!   kernel's high-resolution timer wakes the thread; while it sleeps the
//!   core is free, so the load generator's CPU figure stays honest. It is
//!   armed periodic, at the schedule's period in whole nanoseconds, so
//!   that a wait costs no `timerfd_settime` (at 28 k messages/s that call
//!   was 7-10 % of the load generator's profile); when the timer wakes
//!   the pacer with nothing due (its period, rounded down, has run ahead
//!   of the schedule, or an expiry was left from a busy stretch) it is
//!   re-armed at the next deadline. Requests still go out at their own
//!   deadlines, never early: the pacer checks the clock on every wake.
//! - `spin`: the same timer until [`SPIN_NS`] before the deadline, then
//!   yielding to the event loop (which polls the sockets without blocking)
//!   until it passes. Removes the wake-up latency at the price of a busy
//!   core: the CPU figure then counts the spinning too.
//! - `tokio`: `tokio::time::sleep` (millisecond granularity), as before,
//!   for comparison.
//! - `thread` (the default; where a scenario has no sending thread, the
//!   same as `timerfd`): a thread of its own follows the schedule
//!   ([`Pacer::next_blocking`], an absolute `clock_nanosleep` per
//!   deadline) and writes the requests itself (`crate::sender`), so a send
//!   is never late because the event loop was busy reading.
//!
//! With the first three the event loop is single-threaded: a send can also
//! be late because the thread was busy reading. The report's send
//! lateness shows both.

use std::io;
use std::ops::Range;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::clock::{now_ns, timespec};

/// How the `spin` pacer stops sleeping before a deadline.
pub const SPIN_NS: u64 = 200_000;

/// How the pacer waits for a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pacing {
    /// A timerfd at the exact deadline (sub-millisecond, no busy core).
    Timerfd,
    /// Timerfd until 0.2 ms before, then busy-yield (lowest lateness, busy core).
    Spin,
    /// tokio::time::sleep (1 ms granularity).
    Tokio,
    /// A sending thread of its own, sleeping until each deadline
    /// (`fanout` and `big-room` over plain TCP to one server; elsewhere
    /// `timerfd`).
    Thread,
}

/// Requests due now that were not sent yet, and when that was decided.
#[derive(Debug, Clone)]
pub struct Due {
    pub range: Range<u64>,
    pub now: u64,
}

/// An open-loop schedule of `total` requests at `rate` per second, and
/// how far along it is: the part a thread of its own can follow.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Intended time of request 0.
    pub start: u64,
    pub rate: f64,
    pub total: u64,
    /// Requests handed out so far (`0..sent`).
    sent: u64,
}

impl Plan {
    /// When request `k` is due.
    #[inline]
    pub fn intended(&self, k: u64) -> u64 {
        self.start + (k as f64 * 1e9 / self.rate) as u64
    }

    /// Requests due by `now`, not yet sent: `sent..due`.
    fn due(&self, now: u64) -> u64 {
        if now < self.start {
            return self.sent;
        }
        let due = ((now - self.start) as f64 * self.rate / 1e9) as u64 + 1;
        due.min(self.total)
    }

    /// Hands out every request due by `now`, if any is.
    fn take_due(&mut self, now: u64) -> Option<Due> {
        let due = self.due(now);
        if due <= self.sent {
            return None;
        }
        let range = self.sent..due;
        self.sent = due;
        Some(Due { range, now })
    }

    /// [`Pacer::next`] for a thread of its own: sleeps (`clock_nanosleep`
    /// to the absolute deadline on [`now_ns`]'s clock) instead of awaiting
    /// the event loop. It never needs to yield: the thread does nothing
    /// else.
    pub fn next_blocking(&mut self) -> Option<Due> {
        while self.sent < self.total {
            if let Some(due) = self.take_due(now_ns()) {
                return Some(due);
            }
            // Interrupted (EINTR) or not, the loop looks at the clock again.
            let _ = rustix::thread::clock_nanosleep_absolute(
                rustix::thread::ClockId::Monotonic,
                &timespec(self.intended(self.sent)),
            );
        }
        None
    }
}

/// A [`Plan`] followed on the event loop, waiting as `--pacing` says.
pub struct Pacer {
    pub plan: Plan,
    timer: Waiter,
    /// Whether the last [`Pacer::next`] returned without waiting.
    behind: bool,
}

impl Pacer {
    /// `total` requests at `rate` per second, the first 5 ms from now.
    pub fn new(rate: f64, total: u64, pacing: Pacing) -> io::Result<Pacer> {
        Ok(Pacer {
            plan: Plan {
                start: now_ns() + 5_000_000,
                rate,
                total,
                sent: 0,
            },
            timer: Waiter::new(pacing)?,
            behind: false,
        })
    }

    /// When request `k` is due.
    #[inline]
    pub fn intended(&self, k: u64) -> u64 {
        self.plan.intended(k)
    }

    /// Waits until at least one request is due and hands out every request
    /// due by then; `None` once all `total` were handed out.
    pub async fn next(&mut self) -> Option<Due> {
        if self.plan.sent >= self.plan.total {
            return None;
        }
        if self.behind {
            // Sending without ever waiting would starve the readers.
            tokio::task::yield_now().await;
        }
        let mut waited = false;
        loop {
            if let Some(due) = self.plan.take_due(now_ns()) {
                self.behind = !waited;
                return Some(due);
            }
            if waited {
                // Woken with nothing due: the periodic timer's whole
                // nanoseconds ran ahead of the schedule, or the expiry
                // was left from a busy stretch. Re-armed at the deadline.
                self.timer.rearm();
            }
            let period = ((1e9 / self.plan.rate) as u64).max(1);
            self.timer
                .until(self.intended(self.plan.sent), period)
                .await;
            waited = true;
        }
    }
}

/// Sleeps until a deadline of [`now_ns`]'s clock.
enum Waiter {
    /// Armed once as a periodic timer at the schedule's period (`armed`),
    /// so that a wait costs no `timerfd_settime`: re-armed only when it
    /// woke the pacer with nothing due ([`Waiter::rearm`]).
    Timerfd {
        fd: AsyncFd<OwnedFd>,
        armed: bool,
    },
    Spin(AsyncFd<OwnedFd>),
    Tokio,
}

impl Waiter {
    fn new(pacing: Pacing) -> io::Result<Waiter> {
        let timerfd = || -> io::Result<AsyncFd<OwnedFd>> {
            let fd = timerfd_create(
                TimerfdClockId::Monotonic,
                TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
            )?;
            // SAFETY: the AsyncFd takes ownership of the OwnedFd, which
            // stays open, and is the same descriptor, until it is dropped.
            // (tokio's safe `with_interest` is deprecated as unsound.)
            #[allow(unsafe_code)]
            let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE)? };
            Ok(fd)
        };
        Ok(match pacing {
            Pacing::Timerfd | Pacing::Thread => Waiter::Timerfd {
                fd: timerfd()?,
                armed: false,
            },
            Pacing::Spin => Waiter::Spin(timerfd()?),
            Pacing::Tokio => Waiter::Tokio,
        })
    }

    /// The next wait arms the timer afresh at its deadline.
    fn rearm(&mut self) {
        if let Waiter::Timerfd { armed, .. } = self {
            *armed = false;
        }
    }

    /// Sleeps until `deadline`; the deadlines after it follow every
    /// `period` ns (the periodic timer's, which [`Waiter::Timerfd`] waits
    /// for without re-arming: it may wake the caller early or late by its
    /// drift, and the caller checks the clock).
    async fn until(&mut self, deadline: u64, period: u64) {
        match self {
            Waiter::Timerfd { fd, armed } => {
                let ok = if *armed {
                    timerfd_wait(fd).await
                } else {
                    *armed = true;
                    timerfd_until(fd, deadline, period).await
                };
                if ok.is_err() {
                    // Cannot happen with a valid timerfd; never spin on it.
                    *armed = false;
                    tokio_until(deadline).await;
                }
            }
            Waiter::Spin(fd) => {
                let early = deadline.saturating_sub(SPIN_NS);
                if early > now_ns() && timerfd_until(fd, early, 0).await.is_err() {
                    tokio_until(early).await;
                }
                while now_ns() < deadline {
                    tokio::task::yield_now().await;
                }
            }
            Waiter::Tokio => tokio_until(deadline).await,
        }
    }
}

async fn tokio_until(deadline: u64) {
    let now = now_ns();
    if deadline > now {
        tokio::time::sleep(Duration::from_nanos(deadline - now)).await;
    } else {
        tokio::task::yield_now().await;
    }
}

/// Arms the timer at `deadline` (absolute: a deadline already past fires
/// at once), then every `period` ns (0: once), and waits for it to fire.
async fn timerfd_until(fd: &AsyncFd<OwnedFd>, deadline: u64, period: u64) -> io::Result<()> {
    timerfd_settime(
        fd.get_ref(),
        TimerfdTimerFlags::ABSTIME,
        &Itimerspec {
            it_interval: timespec(period),
            it_value: timespec(deadline.max(1)),
        },
    )?;
    timerfd_wait(fd).await
}

/// Waits for the armed timer's next expiry (or one not yet read).
async fn timerfd_wait(fd: &AsyncFd<OwnedFd>) -> io::Result<()> {
    loop {
        let mut guard = fd.readable().await?;
        let mut expirations = [0u8; 8];
        match guard.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut expirations)?)) {
            Ok(read) => {
                read?;
                // Every expiry so far is read: the next one is a new
                // readiness event, so this one can go now instead of
                // costing a read next time.
                guard.clear_ready();
                return Ok(());
            }
            // Readiness left over from an earlier expiry.
            Err(_would_block) => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every request is handed out exactly once, in order, never before
    /// its intended time, with each pacing.
    #[tokio::test]
    async fn every_request_is_handed_out_once_in_order_and_not_early() {
        for pacing in [Pacing::Timerfd, Pacing::Spin, Pacing::Tokio] {
            let mut p = Pacer::new(2000.0, 50, pacing).expect("pacer");
            let mut next = 0;
            while let Some(due) = p.next().await {
                assert_eq!(due.range.start, next, "{pacing:?}");
                assert!(due.range.end > due.range.start);
                for k in due.range.clone() {
                    assert!(p.intended(k) <= due.now, "{pacing:?}: request {k} early");
                }
                next = due.range.end;
            }
            assert_eq!(next, 50, "{pacing:?}");
        }
    }

    /// The thread's pacer keeps the same schedule: every request once, in
    /// order, never early, and a run of `rate` × seconds takes about that
    /// long rather than going out at once.
    #[tokio::test]
    async fn the_blocking_pacer_hands_out_every_request_once_and_not_early() {
        let mut p = Pacer::new(2000.0, 40, Pacing::Thread).expect("pacer").plan;
        let started = now_ns();
        let handed = std::thread::scope(|s| {
            s.spawn(|| {
                let mut next = 0;
                while let Some(due) = p.next_blocking() {
                    assert_eq!(due.range.start, next);
                    assert!(due.range.end > due.range.start);
                    for k in due.range.clone() {
                        assert!(p.intended(k) <= due.now, "request {k} early");
                    }
                    next = due.range.end;
                }
                next
            })
            .join()
            .expect("pacer thread")
        });
        assert_eq!(handed, 40);
        // 40 requests at 2,000/s: the last is due 19.5 ms after the first,
        // which is due 5 ms after the pacer was made.
        assert!(now_ns() - started >= 24_000_000);
    }

    /// A rate whose period is not a whole number of nanoseconds, fast
    /// enough that the periodic timer drifts ahead and is re-armed, and
    /// that sends fall behind and catch up.
    #[tokio::test]
    async fn a_periodic_timer_hands_out_every_request_once_and_never_early() {
        let mut p = Pacer::new(30_000.0, 3_000, Pacing::Timerfd).expect("pacer");
        let mut next = 0;
        while let Some(due) = p.next().await {
            assert_eq!(due.range.start, next);
            for k in due.range.clone() {
                assert!(p.intended(k) <= due.now, "request {k} early");
            }
            next = due.range.end;
        }
        assert_eq!(next, 3_000);
    }

    #[tokio::test]
    async fn a_past_deadline_fires_at_once() {
        let mut w = Waiter::new(Pacing::Timerfd).expect("timerfd");
        let past = now_ns() - 1_000_000;
        tokio::time::timeout(Duration::from_secs(5), w.until(past, 0))
            .await
            .expect("fired");
        // And the timer can be re-armed after firing.
        let soon = now_ns() + 100_000;
        w.rearm();
        tokio::time::timeout(Duration::from_secs(5), w.until(soon, 0))
            .await
            .expect("fired again");
        assert!(now_ns() >= soon);
    }
}
