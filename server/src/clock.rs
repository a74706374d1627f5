//! Wall-clock time in protocol units. The room state machine never reads
//! the clock itself: the shard passes `now` in, so tests can step time.

use confab_protocol::Millis;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}
