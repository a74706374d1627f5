//! `confab-loadgen soak` against the real `confabd` binary for a minute:
//! mixed traffic with a SIGTERM and a `kill -9` restart under it, and the
//! scenario's own checks (nothing acknowledged lost or duplicated, live
//! events as in history, the last process's RSS, descriptors and
//! connection gauge back) must pass. The checker's ability to fail is
//! unit-tested next to it (`src/scenario/soak/check.rs`).
//!
//! The server binary is `$CONFABD` if set, else `confabd` of this build's
//! profile in the same target directory — built first if it is missing or
//! older than the server's sources, so the soak never runs a stale server.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime};

/// The newest modification time of any file under `path`.
fn newest(path: &Path) -> SystemTime {
    let here = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    if !path.is_dir() {
        return here;
    }
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| newest(&e.path()))
        .fold(here, SystemTime::max)
}

fn confabd() -> PathBuf {
    if let Some(path) = std::env::var_os("CONFABD") {
        return PathBuf::from(path);
    }
    let profile_dir = Path::new(env!("CARGO_BIN_EXE_confab-loadgen"))
        .parent()
        .expect("the binary's directory");
    let bin = profile_dir.join("confabd");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let sources = ["server", "protocol-spec", "Cargo.lock"]
        .iter()
        .map(|p| newest(&root.join(p)))
        .max()
        .expect("sources");
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    if built.is_none_or(|t| t < sources) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .current_dir(root)
            .args(["build", "-p", "confab-server", "--bin", "confabd"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        if let Some(target) = profile_dir.parent() {
            build.env("CARGO_TARGET_DIR", target);
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "building confabd failed: {status}");
    }
    bin
}

#[test]
fn a_minute_of_soak_with_both_kinds_of_restart_loses_nothing_and_leaks_nothing() {
    let bin = confabd();
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("soak.json");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_confab-loadgen"))
        .arg("soak")
        .arg("--confabd")
        .arg(&bin)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--duration", "60s", "--restart-every", "20s"])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("loadgen runs");
    let took = started.elapsed();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the soak failed:\n{text}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("JSON");
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("{v} in {r:#}"));

    // Both kinds of restart happened under load, and the clients came back.
    assert_eq!(r["passed"], true, "{r:#}");
    assert!(n(&r["restarts"]["sigterm"]) >= 1, "{r:#}");
    assert!(n(&r["restarts"]["kill_9"]) >= 1, "{r:#}");
    let c = &r["counters"];
    assert!(n(&c["reconnects"]) > 0, "{r:#}");
    for kind in [
        "resumes",
        "logins",
        "history_reads",
        "joins",
        "leaves",
        "governance",
    ] {
        assert!(n(&c[kind]) > 0, "no {kind}: {r:#}");
    }
    assert!(
        n(&c["acked"]) > 1000,
        "too little traffic to mean anything: {r:#}"
    );
    // Every acknowledged message checked, none lost or duplicated.
    let v = &r["verdict"];
    assert_eq!(n(&v["acked_checked"]), n(&c["acked"]));
    assert_eq!(n(&v["lost"]["count"]), 0);
    assert_eq!(n(&v["duplicates"]["count"]), 0);
    assert!(n(&v["live_checked"]) > 0);
    assert_eq!(n(&r["connections_end"]), 0);
    let last = &r["last_process"];
    assert!(n(&last["baseline"]["at"]["rss_bytes"]) > 0, "{r:#}");
    assert_eq!(n(&last["end"]["connections"]), 0, "{r:#}");
    eprintln!("soak test: {took:?}\n{text}");
}
