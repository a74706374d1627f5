//! `confabd`, the Confab chat-room server.
//!
//! Module map, in the order a request travels:
//!
//! - [`net`]: every door — plain TCP, TLS (ALPN picks binary or HTTP),
//!   WebSocket, the HTTP JSON API — all ending in `session::serve` or
//!   `session::call`; the only code that opens client sockets.
//! - [`session`]: one connection — handshake, authentication, request
//!   dispatch (one table), accounts, store reads, one-shot calls.
//! - [`auth`]: username/password rules, argon2id, session tokens.
//! - [`limit`]: rate limits (governor) on `LimitClock`: monotonic time plus
//!   the server clock's advance, so tests step it.
//! - [`shard`]: the tasks that own rooms; the router; fan-out; the
//!   per-room tail that serves resume and recent history.
//! - [`room`]: the room state machine — every room rule, no I/O.
//! - [`outbound`]: per-connection byte-bounded outbound queues of typed
//!   items and the writer that drains them into the transport.
//! - [`persist`]: the group-commit batch writer, the on-disk spool that
//!   takes acknowledged batches while the database is unreachable, and
//!   periodic housekeeping.
//! - [`files`]: uploaded files — their bytes on disk by content hash, the
//!   type allowlist checked against the bytes, image sizes, signed links.
//! - [`metrics`]: every Prometheus metric name and handle, per-request
//!   timing, and the admin listener serving `/metrics`.
//! - [`stickers`]: the sticker catalogue (built in, overridable from a
//!   directory).
//! - [`state`]: what every session and door shares ([`state::ServerState`]).
//! - [`app`]: start-up (restore rooms from the store), the
//!   [`ServerHandle`], graceful shutdown — the wiring of everything above.
//! - [`config`]: flags, `CONFAB_*` environment variables, TOML file.
//! - [`clock`]: wall-clock time in protocol units.
//!
//! Storage lives in the `confab-store` crate; the wire format in
//! `confab-protocol`.

#![forbid(unsafe_code)]

// Public: what embedding programs, tests and benches use. The rest is
// the server's own.
pub mod app;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod outbound;
pub mod persist;
pub mod room;

/// Wrappers for the fuzz targets in `fuzz/`; not an API.
#[doc(hidden)]
pub mod fuzzing;

mod auth;
mod files;
mod limit;
mod metrics;
mod net;
mod session;
mod shard;
mod state;
mod stickers;

pub use app::{start, start_with_store, ServerHandle};
pub use config::Config;
