//! A pseudo-terminal for driving the full-screen UI as a person would:
//! `confab` runs on the pty's slave side as its controlling terminal, a
//! thread reads the master side into a terminal emulator (vt100), and the
//! test waits on what the screen shows.
//!
//! The only unsafe code of the crate's tests, fenced here: `openpty`, the
//! child's `setsid` + `TIOCSCTTY`, and `TIOCSWINSZ` to resize.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What the reader thread shares with the test.
struct Screen {
    parser: vt100::Parser,
    /// The master side reached end of file (the child and its terminal
    /// are gone).
    closed: bool,
}

/// `confab` running in a pseudo-terminal.
pub struct Pty {
    master: File,
    child: Child,
    screen: Arc<(Mutex<Screen>, Condvar)>,
}

fn winsize(rows: u16, cols: u16) -> libc::winsize {
    libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

impl Pty {
    /// Starts `cmd` on a new `rows` × `cols` terminal.
    pub fn spawn(mut cmd: Command, rows: u16, cols: u16) -> Pty {
        let (mut master, mut slave) = (0, 0);
        let size = winsize(rows, cols);
        // SAFETY: out-pointers to two ints; no name buffer; termios left
        // default; the size read by the call.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: openpty returned two open descriptors that we now own.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let io = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup the pty"));
        cmd.stdin(io(&slave)).stdout(io(&slave)).stderr(io(&slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn in the pty");
        drop(slave);
        let master = File::from(master);
        let screen = Arc::new((
            Mutex::new(Screen {
                parser: vt100::Parser::new(rows, cols, 0),
                closed: false,
            }),
            Condvar::new(),
        ));
        let mut reader = master.try_clone().expect("dup the master");
        let shared = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                let n = reader.read(&mut buf).unwrap_or(0);
                let (lock, changed) = &*shared;
                let mut s = lock.lock().expect("screen lock");
                if n == 0 {
                    s.closed = true;
                    changed.notify_all();
                    return;
                }
                s.parser.process(&buf[..n]);
                changed.notify_all();
            }
        });
        Pty {
            master,
            child,
            screen,
        }
    }

    /// Types `text` (bytes as a terminal sends them: `\r` for Enter).
    pub fn send(&mut self, text: &str) {
        self.master
            .write_all(text.as_bytes())
            .expect("write to the pty");
        self.master.flush().expect("flush the pty");
    }

    /// The screen's text, one row per line.
    pub fn contents(&self) -> String {
        let (lock, _) = &*self.screen;
        lock.lock().expect("screen lock").parser.screen().contents()
    }

    /// Waits until the screen shows `needle`; panics with the screen
    /// after `timeout`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) {
        self.wait_until(timeout, needle, |screen| screen.contains(needle));
    }

    /// Waits until `ok` holds for the screen's text.
    pub fn wait_until(&self, timeout: Duration, what: &str, ok: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        let (lock, changed) = &*self.screen;
        let mut s = lock.lock().expect("screen lock");
        loop {
            let text = s.parser.screen().contents();
            if ok(&text) {
                return;
            }
            let now = Instant::now();
            if now >= deadline || s.closed {
                panic!(
                    "the screen never showed {what:?} (closed: {}); it shows:\n{text}",
                    s.closed
                );
            }
            s = changed
                .wait_timeout(s, deadline - now)
                .expect("screen lock")
                .0;
        }
    }

    /// Resizes the terminal (the kernel signals the child with SIGWINCH).
    pub fn resize(&mut self, rows: u16, cols: u16) {
        let size = winsize(rows, cols);
        {
            let (lock, _) = &*self.screen;
            lock.lock()
                .expect("screen lock")
                .parser
                .set_size(rows, cols);
        }
        // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
        let rc = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ as _, &size) };
        assert_eq!(rc, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    }

    /// Whether the child is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("child status").is_none()
    }

    /// Waits for the child to exit (it must within `timeout`).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                return status;
            }
            assert!(Instant::now() < deadline, "confab did not exit in time");
            // The pty closes when the child exits: wait for that instead
            // of polling blindly.
            let (lock, changed) = &*self.screen;
            let s = lock.lock().expect("screen lock");
            if !s.closed {
                let _ = changed
                    .wait_timeout(s, Duration::from_millis(100))
                    .expect("screen lock");
            }
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
