//! `confabd`: parses configuration, sets up logging, runs the server until
//! SIGINT or SIGTERM, then shuts down gracefully.

// Two `unsafe` blocks: the call into mimalloc in `allocator` and the
// `sched_setattr` system call in `slice` below.
#![deny(unsafe_code)]

use std::io::IsTerminal;

use anyhow::Context;
use confab_server::config::{Cli, LogFormat};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: after a connection storm, every
/// connection's handshake task and buffers are freed when it parks, in
/// between what it keeps; glibc keeps those holes resident, mimalloc's
/// size-segregated pages are purged once empty (benches/BENCHMARKS.md,
/// "Idle connections without a task").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc purges (gives back to the kernel) the memory of pages freed
/// at least `purge_delay` (1 s) earlier — but only when the allocator
/// is next called: a server that goes quiet right after a burst (a
/// connection storm, a registration flood) keeps the burst's last second
/// of freed pages resident until the next burst. One collection a second
/// does those purges on time (and frees the empty pages this thread
/// retired), so the resident size follows what is in use.
mod allocator {
    #[allow(unsafe_code)]
    mod ffi {
        unsafe extern "C" {
            // libmimalloc-sys links mimalloc's static library; the
            // `mimalloc` crate does not expose this without its `extended`
            // feature (which needs a crate not in the lockfile).
            fn mi_collect(force: bool);
        }

        /// Collects the calling thread's heap (not forced) and runs the
        /// process-wide purges that fell due.
        pub fn collect() {
            // SAFETY: `mi_collect` takes no pointers and may be called at
            // any time from any thread; `force == false` only frees what
            // is already free.
            unsafe { mi_collect(false) }
        }
    }

    /// How often to collect: `CONFABD_ALLOCATOR_COLLECT_MS` (default
    /// 1000; 0 turns it off, to measure what it changes).
    pub fn period() -> Option<std::time::Duration> {
        period_of(
            std::env::var("CONFABD_ALLOCATOR_COLLECT_MS")
                .ok()
                .as_deref(),
        )
    }

    /// [`period`] for the variable's value (unset or unreadable: 1 s).
    pub(super) fn period_of(value: Option<&str>) -> Option<std::time::Duration> {
        let ms = value
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(1000);
        (ms > 0).then(|| std::time::Duration::from_millis(ms))
    }

    /// One collection now.
    #[cfg(test)]
    pub fn collect_now() {
        ffi::collect();
    }

    /// Runs [`ffi::collect`] every `every` until the runtime ends.
    pub async fn housekeeping(every: std::time::Duration) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            ffi::collect();
        }
    }
}

/// The scheduler slice the runtime's threads ask for (`--runtime-slice-us`).
///
/// Linux's EEVDF scheduler (6.6 on) lets a waking thread preempt the
/// running one only if it is then the most eligible, and since 6.12 lets a
/// thread with a *shorter* slice than the running one's override that
/// one's slice protection (`PREEMPT_SHORT`). With the default slice
/// (0.7 ms × (1 + log2 CPUs): 1.4 ms on 2 cores) the event loop, woken by
/// a publisher's frame while the SQLite writer (or another process) runs on
/// its core, can wait out that thread's slice, and with a 250 Hz tick up
/// to 4 ms, before it is noticed: the delivery tail at 50,000 deliveries/s
/// (benches/BENCHMARKS.md, "Where the 50 k tail comes from"). A 0.1 ms
/// slice makes the event loop preempt at once. Its share of the CPU does
/// not change (that is the nice value's, left as it is).
mod slice {
    /// `struct sched_attr` as of Linux 4.3 (`SCHED_ATTR_SIZE_VER1`); for
    /// `SCHED_OTHER` only `sched_nice` and `sched_runtime` (the slice, in
    /// ns) are read.
    #[repr(C)]
    #[derive(Default)]
    #[allow(dead_code)] // read by the kernel, not by Rust
    struct SchedAttr {
        size: u32,
        sched_policy: u32,
        sched_flags: u64,
        sched_nice: i32,
        sched_priority: u32,
        sched_runtime: u64,
        sched_deadline: u64,
        sched_period: u64,
        sched_util_min: u32,
        sched_util_max: u32,
    }

    /// Asks for a `us`-microsecond slice for the calling thread, keeping
    /// its policy (`SCHED_OTHER`) and nice value. Kernels before 6.12
    /// accept and ignore it; anything else that refuses it is logged once
    /// per thread at debug level and changes nothing.
    pub fn request(us: u32) {
        if us == 0 {
            return;
        }
        if let Err(e) = set(u64::from(us) * 1_000) {
            tracing::debug!(error = %e, "the runtime thread keeps the kernel's default slice");
        }
    }

    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    pub(super) fn set(runtime_ns: u64) -> std::io::Result<()> {
        // The thread's nice value, which sched_setattr would otherwise
        // reset to 0 (getpriority returns it; -1 is also an error's value).
        // SAFETY: plain system calls on the calling thread (who = 0); the
        // attribute is a live, fully initialised repr(C) struct whose size
        // field says how much of it the kernel may read.
        unsafe {
            *libc::__errno_location() = 0;
            let nice = libc::getpriority(libc::PRIO_PROCESS, 0);
            if nice == -1 && *libc::__errno_location() != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let attr = SchedAttr {
                size: std::mem::size_of::<SchedAttr>() as u32,
                sched_policy: libc::SCHED_OTHER as u32,
                sched_nice: nice,
                sched_runtime: runtime_ns,
                ..SchedAttr::default()
            };
            if libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn set(_runtime_ns: u64) -> std::io::Result<()> {
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let config = Cli::parse_args().resolve()?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if config.log_format == LogFormat::Json {
        tracing_subscriber::fmt()
            .json()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .init();
    } else {
        // Colours only on a terminal: a log file gets plain text.
        tracing_subscriber::fmt()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .init();
    }
    let runtime_slice_us = config.runtime_slice_us;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(move || slice::request(runtime_slice_us))
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let server = confab_server::start(config).await?;
        let stop = server.shutdown_token();
        if let Some(every) = allocator::period() {
            tokio::spawn(allocator::housekeeping(every));
        }
        tokio::spawn(async move {
            wait_for_signal().await;
            stop.cancel();
        });
        server.wait().await;
        Ok(())
    })
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("signal received");
}

#[cfg(test)]
mod tests {
    use super::{allocator, slice};
    use std::time::Duration;

    /// The calling thread's nice value.
    #[allow(unsafe_code)]
    fn nice() -> i32 {
        // SAFETY: a plain system call about the calling thread.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
    }

    /// A slice request keeps the thread's nice value (sched_setattr sets
    /// both) and, where the kernel shows slices (EEVDF, 6.12 on), is the
    /// thread's slice afterwards.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_slice_request_keeps_the_nice_value_and_sets_the_slice() {
        std::thread::spawn(|| {
            #[allow(unsafe_code)]
            // SAFETY: raises the calling (test) thread's own nice value.
            let raised = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 5) };
            assert_eq!(raised, 0);
            slice::set(250_000).expect("sched_setattr");
            assert_eq!(nice(), 5, "the nice value survives the slice request");
            let sched = std::fs::read_to_string("/proc/thread-self/sched").expect("sched");
            if let Some(line) = sched.lines().find(|l| l.starts_with("se.slice")) {
                let ns: u64 = line
                    .rsplit(':')
                    .next()
                    .and_then(|v| v.trim().parse().ok())
                    .expect("a number");
                assert_eq!(ns, 250_000, "{line}");
            }
        })
        .join()
        .expect("the test thread");
    }

    #[test]
    fn the_collection_period_defaults_to_a_second_and_0_turns_it_off() {
        assert_eq!(allocator::period_of(None), Some(Duration::from_secs(1)));
        assert_eq!(
            allocator::period_of(Some("250")),
            Some(Duration::from_millis(250))
        );
        assert_eq!(allocator::period_of(Some("0")), None);
        assert_eq!(
            allocator::period_of(Some("soon")),
            Some(Duration::from_secs(1))
        );
    }

    /// The collection itself: callable from a runtime's thread, and the
    /// heap still works after it.
    #[tokio::test]
    async fn a_collection_leaves_the_heap_usable() {
        let kept: Vec<Vec<u8>> = (0..1000).map(|i| vec![i as u8; 100]).collect();
        allocator::collect_now();
        assert!(kept.iter().enumerate().all(|(i, v)| v[99] == i as u8));
    }
}
