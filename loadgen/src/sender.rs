//! The sending thread (`--pacing thread`): the publishers' requests go out
//! from a thread of its own, on time, while the event loop reads.
//!
//! The load generator's event loop is one thread: with every send and
//! every receive on it, a request due while it is reading a burst of
//! deliveries waits for the burst, and that lateness is counted in every
//! latency (latency runs from the *intended* time). A thread that only
//! sleeps until each deadline ([`Plan::next_blocking`]) and then writes
//! is woken by the kernel at the deadline, whatever the event loop is
//! doing.
//!
//! The thread writes to duplicates of the publishers' sockets (`dup`:
//! the same socket, already non-blocking) and hands each request's
//! intended and actual send time to the event loop through a [`SentLog`],
//! which the [`crate::stats::Recorder`] drains: every millisecond, and
//! whenever a delivery arrives whose send it has not seen yet — the
//! thread logs a request before it writes it, so a delivery can never
//! arrive before its send is in the log.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rustix::event::{poll, PollFd, PollFlags};

use crate::clock::timespec;
use crate::pacer::Plan;

/// Sends logged by the thread, not yet taken by the event loop:
/// `(intended, actually sent)` in [`crate::clock::now_ns`] nanoseconds.
#[derive(Default)]
pub struct SentLog {
    sent: Mutex<Vec<(u64, u64)>>,
    done: AtomicBool,
}

impl SentLog {
    /// Moves every logged send into `into` (cleared first).
    pub fn take(&self, into: &mut Vec<(u64, u64)>) {
        into.clear();
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut *sent, into);
    }

    /// Logs one send, as the thread does (tests).
    #[cfg(test)]
    pub fn log(&self, intended: u64, at: u64) {
        self.sent.lock().expect("not poisoned").push((intended, at));
    }

    /// Whether the thread has sent its whole schedule (or stopped).
    pub fn done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }
}

/// A running sending thread.
pub struct Sending {
    pub log: Arc<SentLog>,
    thread: JoinHandle<u64>,
}

impl Sending {
    /// Starts a thread that follows `plan` and, for each request `k` due,
    /// lets `emit(k, intended, out)` append it to `out[i]` (the buffer of
    /// the connection `sockets[i]`), then writes every non-empty buffer
    /// with one write each.
    pub fn spawn(
        mut plan: Plan,
        sockets: Vec<OwnedFd>,
        mut emit: impl FnMut(u64, u64, &mut [Vec<u8>]) + Send + 'static,
    ) -> io::Result<Sending> {
        let log = Arc::new(SentLog::default());
        let thread_log = log.clone();
        let thread = std::thread::Builder::new()
            .name("loadgen-send".into())
            .spawn(move || {
                // A sleeping thread's wake-up may come up to its timer
                // slack late (50 µs by default); a send's deadline should
                // not. (A failure leaves the default: sends a little later.)
                let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
                let mut out = vec![Vec::new(); sockets.len()];
                let mut broken = vec![false; sockets.len()];
                let mut errors = 0;
                while let Some(due) = plan.next_blocking() {
                    {
                        let mut sent = thread_log.sent.lock().unwrap_or_else(|e| e.into_inner());
                        for k in due.range {
                            let intended = plan.intended(k);
                            emit(k, intended, &mut out);
                            sent.push((intended, due.now));
                        }
                    }
                    for ((buf, socket), broken) in out.iter_mut().zip(&sockets).zip(&mut broken) {
                        if !buf.is_empty() && !*broken && write_all(socket, buf).is_err() {
                            // The event loop's reader sees the connection
                            // end and counts it; nothing more goes there.
                            *broken = true;
                            errors += 1;
                        }
                        buf.clear();
                    }
                }
                thread_log.done.store(true, Ordering::Release);
                errors
            })?;
        Ok(Sending { log, thread })
    }

    /// Waits for the thread; the connections it could not write to.
    pub fn join(self) -> u64 {
        self.thread.join().unwrap_or(0)
    }
}

/// How long a write waits for a full socket before giving the connection
/// up: a server that reads nothing for this long has stopped.
const WRITE_STALL_NS: u64 = 5_000_000_000;

/// Writes all of `buf` to the non-blocking `socket`, waiting (poll) while
/// it is full.
fn write_all(socket: &OwnedFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match rustix::io::write(socket, buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => {
                let fd = socket.as_fd();
                let mut fds = [PollFd::new(&fd, PollFlags::OUT)];
                if poll(&mut fds, Some(&timespec(WRITE_STALL_NS)))? == 0 {
                    return Err(io::ErrorKind::TimedOut.into());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacer::{Pacer, Pacing};
    use std::io::Read;

    /// Every request reaches its socket once, whole and in order, and is
    /// logged no later than it was written.
    #[tokio::test]
    async fn the_thread_writes_every_request_once_and_logs_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let clients: Vec<std::net::TcpStream> = (0..2)
            .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
            .collect();
        let mut servers: Vec<std::net::TcpStream> = (0..2)
            .map(|_| listener.accept().expect("accept").0)
            .collect();
        let sockets = clients
            .iter()
            .map(|c| {
                c.set_nonblocking(true).expect("nonblocking");
                rustix::io::dup(c).expect("dup")
            })
            .collect();
        let plan = Pacer::new(5000.0, 20, Pacing::Thread).expect("pacer").plan;
        // Request k goes to connection k % 2 as one byte: k.
        let sending = Sending::spawn(plan.clone(), sockets, |k, _, out| {
            out[(k % 2) as usize].push(k as u8)
        })
        .expect("spawn");
        let log = sending.log.clone();
        assert_eq!(sending.join(), 0, "no write failed");
        assert!(log.done());
        let mut sent = Vec::new();
        log.take(&mut sent);
        assert_eq!(sent.len(), 20);
        for (k, (intended, at)) in sent.iter().enumerate() {
            assert_eq!(*intended, plan.intended(k as u64));
            assert!(at >= intended, "request {k} logged before it was due");
        }
        drop(clients);
        for (i, s) in servers.iter_mut().enumerate() {
            let mut got = Vec::new();
            s.read_to_end(&mut got).expect("read");
            let want: Vec<u8> = (0..20u8).filter(|k| (*k as usize) % 2 == i).collect();
            assert_eq!(got, want, "connection {i}");
        }
    }
}
