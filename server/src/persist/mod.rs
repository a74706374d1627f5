//! Persistence in front of the store: everything that makes a write
//! durable, in the order the shards produced it.
//!
//! - [`batch`]: the group-commit batch writer — one transaction per batch,
//!   the acknowledgement only after commit.
//! - [`spool`]: the fsync'd on-disk spool that takes batches while the
//!   database is unreachable, and replays them in order.
//! - [`housekeeping`]: the periodic clean-up of old notifications, ended
//!   room-log entries and expired sessions.
//! - [`accounts`]: group commit for registrations and logins (accounts
//!   and session tokens, which belong to no room).
//! - [`restore`]: rooms as the shards hold them, built from their stored
//!   state (every room at start-up; in cluster mode, a gained partition's).

pub mod accounts;
pub mod batch;
pub(crate) mod housekeeping;
pub(crate) mod restore;
pub(crate) mod spool;
