//! `confabd`, the Confab chat-room server.
//!
//! Module map, in the order a request travels:
//!
//! - [`server`]: start-up (restore rooms from the store), listeners,
//!   graceful shutdown.
//! - [`transport`]: the seam between byte transports and sessions.
//! - [`session`]: one connection — handshake, authentication, dispatch; its
//!   writer task coalesces queued frames into few writes.
//! - [`auth`]: username/password rules, argon2id, session tokens.
//! - [`shard`]: the tasks that own rooms; fan-out; the per-room tail.
//! - [`room`]: the room state machine — every room rule, no I/O.
//! - [`outbound`]: per-connection byte-bounded outbound queues.
//! - [`batch`]: the group-commit batch writer in front of the store.
//! - [`config`]: flags, `CONFAB_*` environment variables, TOML file.
//!
//! Storage lives in the `confab-store` crate; the wire format in
//! `confab-protocol`.

pub mod auth;
pub mod batch;
pub mod clock;
pub mod config;
pub mod outbound;
pub mod room;
pub mod server;
pub mod session;
pub mod shard;
pub mod transport;

pub use config::Config;
pub use server::{start, start_with_store, ServerHandle};
