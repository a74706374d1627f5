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
//!
//! **Deep parking** (Linux, `deep_park_after_ms`): a connection parked that
//! long with nothing queued also gives its socket back from tokio, whose
//! readiness entry (256 bytes) is the largest thing a parked connection
//! still held. The sweep takes the sink out of the connection's writer
//! (under the writer's lock, only with nothing queued, staged or blocked),
//! so that the reader holds the socket's last reference, deregisters it
//! (`into_std`) and watches the bare descriptor in the parker's own epoll
//! set (`deep.rs`: one-shot, the slot's place as the token), which the
//! sweep's task drains. Whatever resumes the slot — that readiness, a push
//! (the writer has no sink, keeps the frame queued and wakes the slot),
//! the writer ending, the idle sweep, shutdown — runs the session, which
//! first registers the socket with tokio again and puts a sink back in the
//! writer, which writes what was queued meanwhile, in order (nothing else
//! could write it). Every door: plain TCP, TLS (the rustls state stays in
//! its `Arc<Mutex>`) and WebSocket (`net/frames.rs`, `Socket`).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[cfg(target_os = "linux")]
use super::deep::Watch;
use super::{FrameSource, Live};

/// Shelves of parked connections, by connection id: parking and resuming
/// lock one shelf, never all.
const SHELVES: usize = 16;
/// Bits of a deep-parked slot's epoll token that name its shelf (the rest
/// is its place on the shelf).
#[cfg(target_os = "linux")]
const SHELF_BITS: u32 = SHELVES.trailing_zeros();

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
    /// How long a connection stays parked before it goes deep (zero: never).
    deep_after: Duration,
    /// Deep-parked connections' sockets (`None`: deep parking is off).
    #[cfg(target_os = "linux")]
    watch: Option<Watch>,
    /// Where the slots' parking times count from.
    epoch: Instant,
    deep: AtomicUsize,
    /// The epoll set failed: nothing goes deep any more.
    watch_failed: AtomicBool,
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
    /// What the sweep does with it at `now` (`clock` in the parker's
    /// milliseconds), when slots go deep after `deep_after` of them (0:
    /// never; `u32::MAX`: deep ones are resumed).
    fn look(&self, now: Instant, clock: u32, deep_after: u32) -> Look;
    /// Resumes it (if nothing has yet).
    fn resume(self: Arc<Self>);
    /// Gives its socket back from tokio (deep parking), if it still may.
    #[cfg(target_os = "linux")]
    fn deepen(&self);
}

/// What the sweep does with a parked connection.
#[derive(PartialEq, Eq)]
enum Look {
    Leave,
    /// Its idle deadline passed (or, `deep_after` being `u32::MAX`, it is
    /// deep-parked and must come back): resume it.
    Resume,
    Deepen,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Parker {
    /// A parker whose resumed sessions run on `tracker`, on the current
    /// runtime; connections parked for `deep_after` go deep (Linux; zero:
    /// never).
    pub fn new(tracker: TaskTracker, deep_after: Duration) -> Parker {
        #[cfg(target_os = "linux")]
        let watch = if deep_after.is_zero() {
            None
        } else {
            Watch::new()
                .inspect_err(|e| tracing::warn!(error = %e, "no epoll set for deep parking"))
                .ok()
        };
        Parker {
            shelves: (0..SHELVES).map(|_| Mutex::default()).collect(),
            tracker,
            runtime: tokio::runtime::Handle::current(),
            parked: AtomicUsize::new(0),
            deep_after,
            #[cfg(target_os = "linux")]
            watch,
            epoch: Instant::now(),
            deep: AtomicUsize::new(0),
            watch_failed: AtomicBool::new(false),
        }
    }

    /// Connections parked now (deep-parked ones included).
    pub fn parked(&self) -> usize {
        self.parked.load(Ordering::Relaxed)
    }

    /// Connections deep-parked now: their sockets off tokio's reactor.
    pub fn deep_parked(&self) -> usize {
        self.deep.load(Ordering::Relaxed)
    }

    /// Milliseconds since the parker started, wrapping (every 49 days:
    /// a slot is parked for less, its idle deadline sees to that).
    fn clock_ms(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.epoch).as_millis() as u32
    }

    /// Milliseconds a slot stays parked before it goes deep; 0: never.
    fn deep_after_ms(&self) -> u32 {
        #[cfg(target_os = "linux")]
        if self.watch.is_some() {
            // At most an hour (the configuration's bound).
            return self.deep_after.as_millis().min(u32::MAX as u128 / 2) as u32;
        }
        0
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
    /// earlier (each closes itself with IDLE_TIMEOUT), and deep-parks those
    /// parked for `deep_after` milliseconds (0: none; `u32::MAX`: resumes
    /// the deep-parked ones instead).
    fn resume_due(&self, now: Instant, deep_after: u32, due: &mut Vec<(Arc<dyn Parked>, Look)>) {
        let clock = self.clock_ms(now);
        for shelf in self.shelves.iter() {
            due.extend(lock(shelf).slots.iter().flatten().filter_map(|p| {
                match p.look(now, clock, deep_after) {
                    Look::Leave => None,
                    look => Some((p.clone(), look)),
                }
            }));
            // Outside the shelf's lock: resuming takes it, and deep
            // parking makes system calls.
            for (p, look) in due.drain(..) {
                match look {
                    Look::Resume => p.resume(),
                    #[cfg(target_os = "linux")]
                    Look::Deepen => p.deepen(),
                    _ => {}
                }
            }
        }
        if due.capacity() > 4096 {
            *due = Vec::new();
        }
    }

    /// Resumes the slot an epoll token names (a deep-parked socket is
    /// ready). A stale token (its slot resumed meanwhile, its place
    /// reused) resumes another connection for nothing: it parks again.
    #[cfg(target_os = "linux")]
    fn wake_token(&self, token: u64) {
        let shelf = (token & (SHELVES as u64 - 1)) as usize;
        let at = (token >> SHELF_BITS) as usize;
        let slot = lock(&self.shelves[shelf]).slots.get(at).cloned().flatten();
        if let Some(slot) = slot {
            slot.resume();
        }
    }

    /// A connection went deep.
    #[cfg(target_os = "linux")]
    fn deepened(&self) {
        self.deep.fetch_add(1, Ordering::Relaxed);
        crate::metrics::get().deep_parked_connections.increment(1.0);
    }

    /// Waits for deep-parked sockets to be ready; their tokens.
    async fn watched(&self, tokens: &mut Vec<u64>) -> std::io::Result<()> {
        #[cfg(target_os = "linux")]
        if let Some(watch) = &self.watch {
            return watch.ready(tokens).await;
        }
        let _ = tokens;
        std::future::pending().await
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
    /// The same task drains the epoll set of deep-parked sockets.
    pub async fn sweep(self: Arc<Self>, shutdown: CancellationToken, tick: Duration) {
        let mut deep_after = self.deep_after_ms();
        let mut ticks = tokio::time::interval(tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut due = Vec::new();
        let mut tokens = Vec::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticks.tick() => {
                    self.resume_due(Instant::now(), deep_after, &mut due);
                }
                ready = self.watched(&mut tokens), if !self.watch_failed.load(Ordering::Relaxed) => {
                    match ready {
                        #[cfg(target_os = "linux")]
                        Ok(()) => {
                            for token in tokens.drain(..) {
                                self.wake_token(token);
                            }
                        }
                        #[cfg(not(target_os = "linux"))]
                        Ok(()) => {}
                        Err(e) => {
                            // Nothing would wake deep-parked sockets:
                            // bring them all back, and park none deep.
                            tracing::error!(error = %e, "the deep-parking epoll set failed");
                            self.watch_failed.store(true, Ordering::Relaxed);
                            deep_after = 0;
                            self.resume_due(Instant::now(), u32::MAX, &mut due);
                        }
                    }
                    if tokens.capacity() > 4096 {
                        tokens = Vec::new();
                    }
                }
            }
        }
        self.resume_all();
    }

    /// The sweep's tick for a heartbeat interval: a quarter of it (and at
    /// most half of `deep_after`, unless that is zero), at most a second
    /// (so an idle timeout is at most that late), at least 10 ms.
    pub fn tick(heartbeat: Duration, deep_after: Duration) -> Duration {
        let mut tick = heartbeat / 4;
        if !deep_after.is_zero() {
            tick = tick.min(deep_after / 2);
        }
        tick.clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

/// The shelf of a connection's slot.
fn shelf_of<S>(live: &Live<S>) -> usize {
    (live.session.conn.id.0 % SHELVES as u64) as usize
}

/// A parked connection: its session's state until something resumes it,
/// and the waker that does.
struct Slot<S: FrameSource> {
    live: Mutex<Option<Live<S>>>,
    /// Its place on its shelf (set under the shelf's lock; the shelf is
    /// the connection id's, [`shelf_of`]).
    at: AtomicU32,
    /// When it parked, in the parker's milliseconds.
    since: u32,
}

impl<S: FrameSource> Slot<S> {
    /// Takes the session's state back, if nothing else has: off the shelf,
    /// and no longer woken by the writer's end.
    fn take(&self) -> Option<Live<S>> {
        let live = lock(&self.live).take()?;
        live.session
            .state
            .parker
            .remove(shelf_of(&live), self.at.load(Ordering::Acquire));
        // Cleared before the session runs again (and so before it can
        // park again and set a waker of its own).
        live.session.conn.wake_on_finish(None);
        Some(live)
    }
}

impl<S: FrameSource> Parked for Slot<S> {
    fn look(&self, now: Instant, clock: u32, deep_after: u32) -> Look {
        // The sweep's look, once a tick: nothing else holds this lock for
        // longer than a readiness poll (or than deep parking).
        let live = lock(&self.live);
        let Some(live) = live.as_ref() else {
            return Look::Leave;
        };
        if live.deadline <= now {
            return Look::Resume;
        }
        #[cfg(target_os = "linux")]
        if deep_after == u32::MAX {
            if live.frames.detached().is_some() {
                return Look::Resume;
            }
        } else if deep_after > 0
            && clock.wrapping_sub(self.since) >= deep_after
            && live.frames.detachable()
        {
            return Look::Deepen;
        }
        let _ = (clock, deep_after);
        Look::Leave
    }

    #[cfg(target_os = "linux")]
    fn deepen(&self) {
        use super::Detach;
        let mut live = lock(&self.live);
        let Some(l) = live.as_mut() else { return };
        let (state, conn) = (l.session.state.clone(), l.session.conn.clone());
        let Some(watch) = state.parker.watch.as_ref() else {
            return;
        };
        if !l.frames.detachable() {
            return;
        }
        // `None` with anything queued, staged, blocked or closing, or
        // while someone writes: it stays as it is until the next tick.
        let Some(sink) = conn.take_sink() else { return };
        match l.frames.detach(sink) {
            Detach::Kept(sink) => conn.restore_sink(Ok(sink)),
            Detach::Lost => conn.restore_sink(Err(std::io::ErrorKind::NotConnected.into())),
            Detach::Detached(fd) => {
                let place = self.at.load(Ordering::Acquire) as u64;
                match watch.add(fd, (place << SHELF_BITS) | shelf_of(l) as u64) {
                    Ok(()) => state.parker.deepened(),
                    Err(e) => {
                        tracing::warn!(error = %e, "watching a deep-parked socket failed");
                        conn.restore_sink(l.frames.attach());
                    }
                }
            }
        }
        drop(live);
        // A push that came while the sink was being taken (its flush found
        // the writer busy and left it queued), or an abort: flushed here,
        // outside the slot's lock, which the wake-up takes.
        if conn.has_queued() || !conn.is_open() {
            conn.flush();
        }
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
    let shelf = shelf_of(&live);
    let slot = Arc::new(Slot {
        live: Mutex::new(Some(live)),
        at: AtomicU32::new(0),
        since: state.parker.clock_ms(Instant::now()),
    });
    if !state.parker.insert(shelf, slot.clone(), &slot.at) {
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

/// A session resuming from deep parking: its socket back on tokio's
/// reactor (off the parker's epoll set), a sink back in its writer, and
/// what was queued meanwhile written. Nothing for a session not deep.
#[cfg(target_os = "linux")]
pub(super) fn attach<S: FrameSource>(live: &mut Live<S>) {
    let Some(fd) = live.frames.detached() else {
        return;
    };
    let parker = &live.session.state.parker;
    if let Some(watch) = &parker.watch {
        watch.remove(fd);
    }
    parker.deep.fetch_sub(1, Ordering::Relaxed);
    crate::metrics::get().deep_parked_connections.decrement(1.0);
    let sink = live.frames.attach();
    live.session.conn.put_sink(sink);
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
        let off = Duration::ZERO;
        assert_eq!(
            Parker::tick(Duration::from_secs(30), off),
            Duration::from_secs(1)
        );
        assert_eq!(
            Parker::tick(Duration::from_millis(200), off),
            Duration::from_millis(50)
        );
        assert_eq!(
            Parker::tick(Duration::from_millis(20), off),
            Duration::from_millis(10)
        );
        // Deep parking: at most half its delay, so it is at most 50 % late.
        assert_eq!(
            Parker::tick(Duration::from_secs(30), Duration::from_secs(3)),
            Duration::from_secs(1)
        );
        assert_eq!(
            Parker::tick(Duration::from_secs(30), Duration::from_millis(100)),
            Duration::from_millis(50)
        );
    }
}
