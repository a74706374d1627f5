//! What a small write to one connection costs the kernel, sent the way the
//! server sends today (one `write(2)` per connection per flush) and the way
//! io_uring would let it (one `io_uring_enter` submitting a whole flush's
//! sends): issue 10's "submit many connections' writes in one system call".
//!
//! N loopback TCP pairs; a sender thread (pinned to `--sender-core`) writes
//! one `--frame`-byte frame to each of `--batch` connections in turn, round
//! robin, as fast as it can for `--seconds`; a receiver thread (pinned to
//! `--receiver-core`, the load generator's role) reads everything with
//! epoll. On loopback the sender's write also runs the receiver's TCP input
//! and wake-up, as the server's does. Printed per mode: frames sent, the
//! sender thread's CPU per frame (user and system), and frames refused
//! because a socket buffer was full (not counted as sent).
//!
//! ```sh
//! cargo run --release -p confab-benches --example sends -- --connections 1000 --batch 64 --seconds 5
//! cargo run --release -p confab-benches --example sends -- --connections 1000 --batch 10 --rate 50000
//! ```

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{opcode, types, IoUring};

struct Args {
    connections: usize,
    batch: usize,
    seconds: f64,
    frame: usize,
    sender_core: usize,
    receiver_core: usize,
    rounds: usize,
    /// Frames per second (0: as fast as the sender can): flushes of
    /// `batch` frames paced evenly, the sender sleeping in between as the
    /// server waits for its next message.
    rate: f64,
}

fn parse() -> Args {
    let mut a = Args {
        connections: 1000,
        batch: 64,
        seconds: 5.0,
        frame: 100,
        sender_core: 0,
        receiver_core: 1,
        rounds: 2,
        rate: 0.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| panic!("{flag} needs a value"))
                .parse::<f64>()
                .unwrap_or_else(|e| panic!("{flag}: {e}"))
        };
        match flag.as_str() {
            "--connections" => a.connections = value() as usize,
            "--batch" => a.batch = value() as usize,
            "--seconds" => a.seconds = value(),
            "--frame" => a.frame = value() as usize,
            "--sender-core" => a.sender_core = value() as usize,
            "--receiver-core" => a.receiver_core = value() as usize,
            "--rounds" => a.rounds = value() as usize,
            "--rate" => a.rate = value(),
            other => panic!("unknown flag {other} (see the file's doc comment)"),
        }
    }
    assert!(
        a.batch >= 1 && a.connections >= a.batch,
        "need connections >= batch >= 1"
    );
    a
}

fn pin(core: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; the calls only read it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// This thread's CPU time so far: (user, system).
fn thread_cpu() -> (Duration, Duration) {
    // SAFETY: getrusage fills the struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// Reads and discards everything arriving on `conns` until `stop`.
fn receive(conns: Vec<TcpStream>, core: usize, stop: Arc<AtomicBool>, bytes: Arc<AtomicU64>) {
    pin(core);
    // SAFETY: plain epoll calls on descriptors this thread owns.
    let ep = unsafe { libc::epoll_create1(0) };
    assert!(ep >= 0);
    for (i, c) in conns.iter().enumerate() {
        c.set_nonblocking(true).unwrap();
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        // SAFETY: as above.
        assert_eq!(
            unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, c.as_raw_fd(), &mut ev) },
            0
        );
    }
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `events` has room for its length.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 50) };
        for ev in &events[..n.max(0) as usize] {
            let mut c = &conns[ev.u64 as usize];
            loop {
                match c.read(&mut buf) {
                    Ok(0) => break,
                    Ok(k) => {
                        bytes.fetch_add(k as u64, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("read: {e}"),
                }
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// One `write(2)` per frame.
    Write,
    /// One `io_uring_enter` per batch of sends (`MSG_DONTWAIT`: a full
    /// socket answers at once instead of waiting, as the server's writes do).
    Uring,
}

struct Outcome {
    sent: u64,
    refused: u64,
    user: Duration,
    system: Duration,
    wall: Duration,
    enters: u64,
}

fn send(mode: Mode, conns: &[TcpStream], args: &Args, ring: &mut IoUring) -> Outcome {
    let frame = vec![0x5au8; args.frame];
    let (mut sent, mut refused, mut enters) = (0u64, 0u64, 0u64);
    let mut next = 0usize;
    let (u0, s0) = thread_cpu();
    let started = Instant::now();
    let limit = Duration::from_secs_f64(args.seconds);
    let gap = (args.rate > 0.0).then(|| Duration::from_secs_f64(args.batch as f64 / args.rate));
    let mut due = started;
    while started.elapsed() < limit {
        if let Some(gap) = gap {
            due += gap;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        match mode {
            Mode::Write => {
                for _ in 0..args.batch {
                    let mut c = &conns[next];
                    next = (next + 1) % conns.len();
                    match c.write(&frame) {
                        Ok(k) if k == frame.len() => sent += 1,
                        Ok(_) => panic!("a partial write of a small frame"),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => refused += 1,
                        Err(e) => panic!("write: {e}"),
                    }
                }
                enters += args.batch as u64;
            }
            Mode::Uring => {
                {
                    let mut sq = ring.submission();
                    for i in 0..args.batch {
                        let fd = types::Fd(conns[next].as_raw_fd());
                        next = (next + 1) % conns.len();
                        let e = opcode::Send::new(fd, frame.as_ptr(), frame.len() as u32)
                            .flags(libc::MSG_DONTWAIT)
                            .build()
                            .user_data(i as u64);
                        // SAFETY: `frame` outlives the submission, which
                        // completes before this batch's loop iteration ends
                        // (submit_and_wait below waits for every entry).
                        unsafe { sq.push(&e).expect("the ring holds a batch") };
                    }
                }
                ring.submit_and_wait(args.batch).expect("io_uring_enter");
                enters += 1;
                for cqe in ring.completion() {
                    match cqe.result() {
                        k if k == frame.len() as i32 => sent += 1,
                        k if k == -libc::EAGAIN => refused += 1,
                        k if k >= 0 => panic!("a partial send of a small frame"),
                        k => panic!("send: errno {}", -k),
                    }
                }
            }
        }
    }
    let wall = started.elapsed();
    let (u1, s1) = thread_cpu();
    Outcome {
        sent,
        refused,
        user: u1 - u0,
        system: s1 - s0,
        wall,
        enters,
    }
}

fn main() {
    let args = parse();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (mut senders, mut receivers) = (Vec::new(), Vec::new());
    for _ in 0..args.connections {
        let client = TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nodelay(true).unwrap();
        server.set_nonblocking(true).unwrap();
        senders.push(server);
        receivers.push(client);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let bytes = Arc::new(AtomicU64::new(0));
    let receiver = {
        let (stop, bytes, core) = (stop.clone(), bytes.clone(), args.receiver_core);
        std::thread::spawn(move || receive(receivers, core, stop, bytes))
    };
    pin(args.sender_core);
    let mut ring = IoUring::new(args.batch.next_power_of_two() as u32).expect("io_uring_setup");
    println!(
        "{} loopback connections, {}-byte frames, {} sends per flush, {}, sender on core {}, receiver on core {}",
        args.connections,
        args.frame,
        args.batch,
        if args.rate > 0.0 {
            format!("{} frames/s", args.rate)
        } else {
            "as fast as possible".to_owned()
        },
        args.sender_core,
        args.receiver_core
    );
    println!("\n| mode | frames sent | frames/s | sender CPU per frame (user + system) | system calls per frame | refused (buffer full) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for _ in 0..args.rounds {
        for mode in [Mode::Write, Mode::Uring] {
            let o = send(mode, &senders, &args, &mut ring);
            let per = |d: Duration| d.as_secs_f64() * 1e6 / o.sent.max(1) as f64;
            println!(
                "| {:?} | {} | {:.0} | {:.2} µs ({:.2} + {:.2}) | {:.3} | {} |",
                mode,
                o.sent,
                o.sent as f64 / o.wall.as_secs_f64(),
                per(o.user + o.system),
                per(o.user),
                per(o.system),
                o.enters as f64 / o.sent.max(1) as f64,
                o.refused
            );
            // Let the receiver catch up between modes.
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    stop.store(true, Ordering::Relaxed);
    receiver.join().unwrap();
    println!("\nreceived {} bytes", bytes.load(Ordering::Relaxed));
}
