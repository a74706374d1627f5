//! `confabd`, the Confab chat-room server.
//!
//! Module map, in the order a request travels:
//!
//! - [`server`]: start-up (restore rooms from the store), listeners,
//!   graceful shutdown.
//! - [`transport`]: the seam between byte transports and sessions.
//! - [`net`]: the other doors — TLS (ALPN picks binary or HTTP), WebSocket,
//!   the HTTP JSON API — all ending in `session::serve` or `session::call`.
//! - [`session`]: one connection — handshake, authentication, dispatch; its
//!   writer task coalesces queued frames into few writes.
//! - [`auth`]: username/password rules, argon2id, session tokens.
//! - [`shard`]: the tasks that own rooms; fan-out; the per-room tail.
//! - [`room`]: the room state machine — every room rule, no I/O.
//! - [`outbound`]: per-connection byte-bounded outbound queues.
//! - [`batch`]: the group-commit batch writer in front of the store.
//! - [`spool`]: the on-disk write spool that takes acknowledged batches
//!   while the database is unreachable, and replays them in order.
//! - [`config`]: flags, `CONFAB_*` environment variables, TOML file.
//! - [`metrics`]: every Prometheus metric, the admin listener serving
//!   `/metrics`, and the cheap recording helpers (docs/METRICS.md).
//!
//! Storage lives in the `confab-store` crate; the wire format in
//! `confab-protocol`.

pub mod auth;
pub mod batch;
pub mod clock;
pub mod config;
pub mod history;
pub mod housekeeping;
pub mod metrics;
pub mod net;
pub mod outbound;
pub mod room;
pub mod server;
pub mod session;
pub mod shard;
pub mod spool;
pub mod transport;
pub mod views;
pub mod writer;

pub use config::Config;
pub use server::{start, start_with_store, ServerHandle};
