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

use crate::clock::{now_ns, timespec};
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
    /// the connection `sockets[i]`) and return `i`; then writes every
    /// non-empty buffer with one write each, logging its requests as sent
    /// just before that write.
    pub fn spawn(
        mut plan: Plan,
        sockets: Vec<OwnedFd>,
        mut emit: impl FnMut(u64, u64, &mut [Vec<u8>]) -> usize + Send + 'static,
    ) -> io::Result<Sending> {
        let log = Arc::new(SentLog::default());
        let thread_log = log.clone();
        let thread = std::thread::Builder::new()
            .name("loadgen-send".into())
            .spawn(move || {
                // Whatever ends the thread (a panic too), the event loop
                // must see it done, or it would wait for it forever.
                let _done = Done(&thread_log);
                // A sleeping thread's wake-up may come up to its timer
                // slack late (50 µs by default); a send's deadline should
                // not. (A failure leaves the default: sends a little later.)
                let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
                let mut out = vec![Vec::new(); sockets.len()];
                // The intended times of what each buffer holds.
                let mut held: Vec<Vec<u64>> = vec![Vec::new(); sockets.len()];
                let mut broken = vec![false; sockets.len()];
                let mut errors = 0;
                while let Some(due) = plan.next_blocking() {
                    for k in due.range {
                        let intended = plan.intended(k);
                        let i = emit(k, intended, &mut out);
                        held[i].push(intended);
                    }
                    for (i, socket) in sockets.iter().enumerate() {
                        if out[i].is_empty() {
                            continue;
                        }
                        if !broken[i] {
                            // Logged before the write: a delivery cannot
                            // arrive before its send is in the log.
                            let now = now_ns();
                            let mut sent =
                                thread_log.sent.lock().unwrap_or_else(|e| e.into_inner());
                            sent.extend(held[i].iter().map(|&intended| (intended, now)));
                            drop(sent);
                            if write_all(socket, &out[i]).is_err() {
                                // Part of a frame may be on the wire: end
                                // the connection, so that its reader sees
                                // it end and counts it, and send nothing
                                // more there (nor log it as sent).
                                let _ = rustix::net::shutdown(socket, rustix::net::Shutdown::Both);
                                broken[i] = true;
                                errors += 1;
                            }
                        }
                        out[i].clear();
                        held[i].clear();
                    }
                }
                errors
            })?;
        Ok(Sending { log, thread })
    }

    /// Waits for the thread; the connections it could not write to.
    pub fn join(self) -> u64 {
        match self.thread.join() {
            Ok(errors) => errors,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// Marks the log done when the sending thread ends, however it ends.
struct Done<'a>(&'a SentLog);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.done.store(true, Ordering::Release);
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
            let i = (k % 2) as usize;
            out[i].push(k as u8);
            i
        })
        .expect("spawn");
        let log = sending.log.clone();
        assert_eq!(sending.join(), 0, "no write failed");
        assert!(log.done());
        let mut sent = Vec::new();
        log.take(&mut sent);
        assert_eq!(sent.len(), 20);
        // Logged socket by socket: requests due together are in the log by
        // connection, not by schedule (the recorder's log takes either).
        sent.sort_unstable();
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

    /// A connection the server reset: the failed write ends it (so its
    /// reader would see it end), counts once, and nothing more is sent
    /// there or logged as sent.
    #[tokio::test]
    async fn a_reset_connection_is_shut_counted_once_and_sent_nothing_more() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        rustix::net::sockopt::set_socket_linger(&server, Some(std::time::Duration::ZERO))
            .expect("linger");
        drop(server); // an RST, not a FIN
        client.set_nonblocking(true).expect("nonblocking");
        let socket = rustix::io::dup(&client).expect("dup");
        let plan = Pacer::new(2000.0, 3, Pacing::Thread).expect("pacer").plan;
        let sending = Sending::spawn(plan, vec![socket], |k, _, out| {
            out[0].push(k as u8);
            0
        })
        .expect("spawn");
        let log = sending.log.clone();
        assert_eq!(sending.join(), 1, "one connection failed");
        let mut sent = Vec::new();
        log.take(&mut sent);
        assert_eq!(
            sent.len(),
            1,
            "only the request of the failed write: {sent:?}"
        );
    }

    /// However the thread ends, the log says it is done (the event loop
    /// waits for that), and a panic reaches whoever joins it.
    #[tokio::test]
    async fn a_panicking_thread_is_done_and_its_panic_reaches_the_join() {
        let plan = Pacer::new(1000.0, 3, Pacing::Thread).expect("pacer").plan;
        let sending =
            Sending::spawn(plan, Vec::new(), |_, _, _| panic!("emit failed")).expect("spawn");
        let log = sending.log.clone();
        let joined = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sending.join()));
        assert!(joined.is_err(), "the panic is not swallowed");
        assert!(log.done());
    }
}
