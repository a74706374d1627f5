//! `confabd`: parses configuration, sets up logging, runs the server until
//! SIGINT or SIGTERM, then shuts down gracefully.

// One `unsafe` block: the call into mimalloc in `allocator` below.
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
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
    use super::allocator;
    use std::time::Duration;

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
