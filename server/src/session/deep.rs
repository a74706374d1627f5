//! The parker's own epoll set (Linux): what watches deep-parked sockets.
//!
//! A deep-parked connection's socket is deregistered from tokio's reactor
//! (which frees its readiness entry, 256 bytes) and added here, one-shot,
//! with its slot's place as the token. The set's own descriptor is
//! registered with tokio ([`AsyncFd`]), so the parker's one task drains it
//! when any watched socket is ready: no second reactor thread, and the
//! kernel's entry per socket is not the server's memory.
//!
//! The library's only `unsafe` code: four system calls through `libc`
//! (no safe epoll wrapper is among the dependencies), each with its
//! reasons beside it.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Events read per `epoll_wait`.
const BATCH: usize = 64;

pub(super) struct Watch {
    epoll: AsyncFd<OwnedFd>,
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl Watch {
    /// A new, empty set, registered with the current runtime's reactor.
    pub(super) fn new() -> io::Result<Watch> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is
        // a new descriptor that nothing else owns.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` was just created and is owned here alone.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the `OwnedFd` is moved into the `AsyncFd`, so the
        // descriptor stays open, and the same, for as long as it is
        // registered.
        let epoll = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Watch { epoll })
    }

    /// Watches `fd` for bytes, the peer's end or an error, once: the first
    /// event reports `token` and disarms it.
    pub(super) fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32,
            u64: token,
        };
        // SAFETY: both descriptors are open (the caller owns `fd`), and
        // `event` outlives the call, which copies it.
        check(unsafe {
            libc::epoll_ctl(
                self.epoll.get_ref().as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd,
                &mut event,
            )
        })?;
        Ok(())
    }

    /// Stops watching `fd` (before it is registered with tokio again).
    pub(super) fn remove(&self, fd: RawFd) {
        // SAFETY: both descriptors are open; DEL ignores the event pointer
        // (non-null for kernels before 2.6.9).
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        let _ = unsafe {
            libc::epoll_ctl(
                self.epoll.get_ref().as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                &mut event,
            )
        };
    }

    /// Waits until some watched socket is ready, then appends the tokens
    /// of every ready one to `tokens`. Cancel-safe: nothing is read from
    /// the set until it is ready.
    pub(super) async fn ready(&self, tokens: &mut Vec<u64>) -> io::Result<()> {
        let mut guard = self.epoll.readable().await?;
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
        loop {
            // SAFETY: `events` holds BATCH entries for the kernel to fill;
            // a timeout of 0 never blocks.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.get_ref().as_raw_fd(),
                    events.as_mut_ptr(),
                    BATCH as libc::c_int,
                    0,
                )
            };
            let n = match check(n) {
                Ok(n) => n as usize,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            // A copy out of the (packed) event.
            tokens.extend(events[..n].iter().map(|e| ({ *e }).u64));
            if n < BATCH {
                break;
            }
        }
        // Readiness that came after the last read is kept (tokio clears
        // only what this guard saw).
        guard.clear_ready();
        Ok(())
    }
}
