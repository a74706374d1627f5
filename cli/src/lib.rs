//! `confab`: the terminal client for Confab.
//!
//! - With no command: the full-screen UI ([`tui`]), after logging in if
//!   no session is stored.
//! - With a command: one scriptable action ([`script`]) whose exit code
//!   says how it went ([`exit::Kind`]).
//!
//! Module map: [`connect`] (URL, TLS trust, stored session, naming rooms),
//! [`session`] (the token file), [`show`] (events as lines and JSON),
//! [`tui`] (state machine, rendering, and the loop that joins them to the
//! SDK and the terminal).

#![forbid(unsafe_code)]

pub mod connect;
pub mod exit;
pub mod files;
pub mod script;
pub mod session;
pub mod show;
pub mod tui;
