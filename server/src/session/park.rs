//! Parked connections: quiet connections without a task of their own.
//!
//! A connection's task is most of what an idle connection costs (its
//! future, a timer, the waits on "writer finished" and "shutting down",
//! tokio's task header). So a session that has waited `park_after_ms`
//! for its client's next frame, with nothing half-read and nothing queued,
//! ends its task and leaves its state ([`Live`]) in a [`Slot`] here. The
//! slot is its own waker, registered in three places, and whichever fires
//! first takes the state out and spawns the session again:
//!
//! - the socket's read readiness (`poll_read_ready`: tokio keeps the waker
//!   in the socket's readiness entry, no future needed) — bytes, the end
//!   of the stream, an error;
//! - the outbound queue's writer finishing (a write failed, a CLOSE went
//!   out — LOGOUT, a slow consumer's abort): pushes to a parked connection
//!   are written by their pushers as to any other (`outbound/`), so only
//!   the end of the writer concerns the session;
//! - the [`Parker`]: one coarse sweep for every parked connection's idle
//!   deadline (instead of a timer per connection), and shutdown, which
//!   resumes them all so that they close as running sessions do.
//!
//! The resumed session finds out for itself what happened (it reads, sees
//! the writer finished, the deadline passed or the server shutting down),
//! so a wake-up for nothing costs one spawn and one parking again.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{FrameSource, Live};

/// Shelves of parked connections, by connection id: parking and resuming
/// lock one shelf, never all.
const SHELVES: usize = 16;

/// Where parked connections wait, and what resumes them when nothing
/// else does: their idle deadlines and shutdown.
pub struct Parker {
    shelves: Box<[Mutex<Shelf>]>,
    /// Resumed sessions run on the server's task tracker, so that
    /// shutdown waits for them as for any connection.
    tracker: TaskTracker,
    /// Where they run: wake-ups may come from any thread.
    runtime: tokio::runtime::Handle,
    parked: AtomicUsize,
}

/// One shelf: a slab of parked connections.
#[derive(Default)]
struct Shelf {
    slots: Vec<Option<Arc<dyn Parked>>>,
    /// Free places in `slots`.
    free: Vec<u32>,
    /// Shutdown: nothing parks any more.
    closed: bool,
}

/// A parked connection, as the parker sees it.
trait Parked: Send + Sync {
    /// When its idle timeout falls due (`None`: resumed already).
    fn deadline(&self) -> Option<Instant>;
    /// Resumes it (if nothing has yet).
    fn resume(self: Arc<Self>);
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Parker {
    /// A parker whose resumed sessions run on `tracker`, on the current
    /// runtime.
    pub fn new(tracker: TaskTracker) -> Parker {
        Parker {
            shelves: (0..SHELVES).map(|_| Mutex::default()).collect(),
            tracker,
            runtime: tokio::runtime::Handle::current(),
            parked: AtomicUsize::new(0),
        }
    }

    /// Connections parked now.
    pub fn parked(&self) -> usize {
        self.parked.load(Ordering::Relaxed)
    }

    /// Puts `slot` on shelf `shelf`; `false` once the server is shutting
    /// down.
    fn insert(&self, shelf: usize, slot: Arc<dyn Parked>, at: &AtomicU32) -> bool {
        let mut s = lock(&self.shelves[shelf]);
        if s.closed {
            return false;
        }
        let i = match s.free.pop() {
            Some(i) => {
                s.slots[i as usize] = Some(slot);
                i
            }
            None => {
                s.slots.push(Some(slot));
                (s.slots.len() - 1) as u32
            }
        };
        // Set under the shelf's lock: whoever takes the slot from the
        // shelf (the sweep) sees its place.
        at.store(i, Ordering::Release);
        drop(s);
        self.parked.fetch_add(1, Ordering::Relaxed);
        crate::metrics::get().parked_connections.increment(1.0);
        true
    }

    /// Takes place `i` of shelf `shelf` off it.
    fn remove(&self, shelf: usize, i: u32) {
        let mut s = lock(&self.shelves[shelf]);
        if let Some(place) = s.slots.get_mut(i as usize) {
            if place.take().is_some() {
                s.free.push(i);
                drop(s);
                self.parked.fetch_sub(1, Ordering::Relaxed);
                crate::metrics::get().parked_connections.decrement(1.0);
            }
        }
    }

    /// Resumes every parked connection whose idle deadline is `now` or
    /// earlier (each closes itself with IDLE_TIMEOUT).
    fn resume_due(&self, now: Instant, due: &mut Vec<Arc<dyn Parked>>) {
        for shelf in self.shelves.iter() {
            due.extend(
                lock(shelf)
                    .slots
                    .iter()
                    .flatten()
                    .filter(|p| p.deadline().is_some_and(|d| d <= now))
                    .cloned(),
            );
            // Outside the shelf's lock: resuming takes it.
            for p in due.drain(..) {
                p.resume();
            }
        }
    }

    /// Closes every shelf and resumes everything on them (shutdown).
    fn resume_all(&self) {
        for shelf in self.shelves.iter() {
            let taken: Vec<_> = {
                let mut s = lock(shelf);
                s.closed = true;
                s.slots.iter().flatten().cloned().collect()
            };
            for p in taken {
                p.resume();
            }
        }
    }

    /// The parker's one task: every `tick`, resumes the connections whose
    /// idle deadline passed; at shutdown, resumes them all and ends. Runs
    /// on the server's task tracker, so shutdown's wait for connections
    /// cannot end before the parked ones are running again.
    pub async fn sweep(self: Arc<Self>, shutdown: CancellationToken, tick: Duration) {
        let mut ticks = tokio::time::interval(tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut due = Vec::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticks.tick() => self.resume_due(Instant::now(), &mut due),
            }
        }
        self.resume_all();
    }

    /// The sweep's tick for a heartbeat interval: a quarter of it, at most
    /// a second (so an idle timeout is at most that late), at least 10 ms.
    pub fn tick(heartbeat: Duration) -> Duration {
        (heartbeat / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

/// A parked connection: its session's state until something resumes it,
/// and the waker that does.
struct Slot<S: FrameSource> {
    live: Mutex<Option<Live<S>>>,
    shelf: u32,
    /// Its place on the shelf (set under the shelf's lock).
    at: AtomicU32,
}

impl<S: FrameSource> Slot<S> {
    /// Takes the session's state back, if nothing else has: off the shelf,
    /// and no longer woken by the writer's end.
    fn take(&self) -> Option<Live<S>> {
        let live = lock(&self.live).take()?;
        live.session
            .state
            .parker
            .remove(self.shelf as usize, self.at.load(Ordering::Acquire));
        // Cleared before the session runs again (and so before it can
        // park again and set a waker of its own).
        live.session.conn.wake_on_finish(None);
        Some(live)
    }
}

impl<S: FrameSource> Parked for Slot<S> {
    fn deadline(&self) -> Option<Instant> {
        // The sweep's look, once a tick: nothing else holds this lock for
        // longer than a readiness poll.
        lock(&self.live).as_ref().map(|live| live.deadline)
    }

    fn resume(self: Arc<Self>) {
        if let Some(live) = self.take() {
            let parker = &live.session.state.parker;
            let (tracker, runtime) = (parker.tracker.clone(), parker.runtime.clone());
            tracker.spawn_on(live.run(), &runtime);
        }
    }
}

impl<S: FrameSource> Wake for Slot<S> {
    fn wake(self: Arc<Self>) {
        Parked::resume(self)
    }
}

/// Parks `live`: its task may end. `Some` gives it back when it cannot
/// park (shutting down, its writer finished, bytes already waiting): the
/// caller goes on reading.
pub(super) fn park<S: FrameSource>(live: Live<S>) -> Option<Live<S>> {
    let state = live.session.state.clone();
    let conn = live.session.conn.clone();
    let shelf = (conn.id.0 % SHELVES as u64) as u32;
    let slot = Arc::new(Slot {
        live: Mutex::new(Some(live)),
        shelf,
        at: AtomicU32::new(0),
    });
    if !state.parker.insert(shelf as usize, slot.clone(), &slot.at) {
        return lock(&slot.live).take();
    }
    let waker = Waker::from(slot.clone());
    let ready = {
        // Under the slot's lock: a wake-up that took the state already
        // (the sweep, shutdown) is not undone by a waker set after it.
        let live = lock(&slot.live);
        match live.as_ref() {
            None => false,
            Some(live) => {
                // Registered before the checks: whatever happens after
                // them wakes the slot.
                conn.wake_on_finish(Some(waker.clone()));
                // Parked: no buffers kept (nothing is queued: `may_park`).
                conn.release_buffers();
                conn.is_finished()
                    || state.shutdown.is_cancelled()
                    || live
                        .frames
                        .poll_readable(&mut Context::from_waker(&waker))
                        .is_ready()
            }
        }
    };
    if ready {
        // Taken back here, unless a wake-up took it first (then that one
        // runs it on a task of its own, and this task ends).
        return slot.take();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parked connection's slot is what replaced its task (~1.2 KiB with
    /// the session's boxed future): it must stay small.
    #[test]
    fn a_parked_session_is_small() {
        let size = std::mem::size_of::<Slot<crate::net::frames::ProtocolFrames>>();
        assert!(size <= 208, "a parked TCP session is {size} bytes");
    }

    #[test]
    fn the_sweep_ticks_a_quarter_heartbeat_within_bounds() {
        assert_eq!(
            Parker::tick(Duration::from_secs(30)),
            Duration::from_secs(1)
        );
        assert_eq!(
            Parker::tick(Duration::from_millis(200)),
            Duration::from_millis(50)
        );
        assert_eq!(
            Parker::tick(Duration::from_millis(20)),
            Duration::from_millis(10)
        );
    }
}
