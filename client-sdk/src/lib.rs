//! Rust SDK for the Confab chat server.
//!
//! Connect with [`Client::connect`], call the typed request methods, and
//! read pushed events with [`Client::next_event`] (or a cloned [`Events`]
//! handle in another task):
//!
//! ```no_run
//! use std::time::Duration;
//! use confab_sdk::{Client, ConnectOptions, ErrorCode, Event, EventBody, ReconnectPolicy, Seq, Visibility};
//!
//! # async fn run() -> Result<(), confab_sdk::Error> {
//! let options = ConnectOptions::default()
//!     .with_reconnect(ReconnectPolicy::exponential(Duration::from_millis(200), Duration::from_secs(10)));
//! let client = Client::connect("confab://127.0.0.1:7400", options).await?;
//!
//! match client.register("alice", "secret123").await {
//!     Err(e) if e.code() == Some(ErrorCode::UsernameTaken) => {
//!         client.login("alice", "secret123").await?;
//!     }
//!     other => {
//!         other?;
//!     }
//! }
//! let room = client.create_room("general", "anything goes", Visibility::Public).await?;
//! let ack = client.send_message(room.id, "hello").await?;
//! println!("stored as #{}", ack.seq);
//!
//! let page = client.history(room.id, Seq(0), 20).await?;
//! println!("{} recent events", page.events.len());
//!
//! while let Some(event) = client.next_event().await {
//!     if let Event::Room(ev) = event {
//!         if let EventBody::Message { text } = &ev.body {
//!             println!("[{}] {}: {}", ev.seq, ev.actor_name, text);
//!         }
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # How it works
//!
//! - [`endpoint`]: parses `confab://host:port`, `confabs://host:port` (TLS,
//!   ALPN `confab/1`), `ws://host:port/ws` and `wss://host:port/ws`.
//! - `transport`: the only module that knows how frames travel (TCP, TLS
//!   with rustls/ring, WebSocket with fastwebsockets). Which certificates
//!   TLS trusts is [`ConnectOptions::tls_trust`]: the public CAs by default,
//!   or a PEM certificate, or a SHA-256 fingerprint for self-signed servers.
//! - `connection`: HELLO/WELCOME handshake, then one reader task (reads and
//!   decodes frames) and one writer task (coalesces queued frames into few
//!   writes) per connection.
//! - `supervisor`: one task per client that owns the pending-request table
//!   (request id → reply), the per-room last-seen seq used to drop duplicate
//!   events and to resume, the heartbeat, and reconnection. [`Client`] talks
//!   to it through a queue, so nothing is locked.
//! - [`Client`]: typed request methods, each bounded by the request timeout.
//!
//! # Reconnection
//!
//! Off by default; enable it with [`ConnectOptions::reconnect`]. When the
//! connection drops, requests in flight fail with [`Error::Disconnected`]
//! (they are never resent: a message might have been stored), the stream
//! yields [`Event::Disconnected`], and the client reconnects with backoff,
//! authenticating with the remembered token and asking each tracked room to
//! resume after its last seen seq. [`Event::Reconnected`] follows, then the
//! replayed events (or [`Event::ResumeGap`] where the server cannot replay).
//! It does not reconnect after [`Client::close`], after LOGOUT, or after a
//! CLOSE that ends the session (`LOGGED_OUT`, `INVALID_TOKEN`) or reports a
//! protocol violation.

mod backoff;
mod client;
mod connection;
pub mod endpoint;
mod error;
mod event;
mod options;
mod supervisor;
mod tracker;
mod transport;

pub use backoff::ReconnectPolicy;
pub use client::{AuditPage, Client, HistoryPage, MessageAck, NotificationPage, Session};
pub use endpoint::{Endpoint, Scheme};
pub use error::{Code, Error};
pub use event::{Event, Events};
pub use options::{ConnectOptions, TlsTrust, DEFAULT_MAX_INBOUND_FRAME_LEN};

/// The wire protocol crate, for types not re-exported here.
pub use confab_protocol as protocol;
pub use confab_protocol::{
    AuditAction, AuditItem, ErrorCode, EventBody, LeaveReason, Member, Millis, Notification,
    NotificationKind, Request, ResumePoint, Role, RoomEvent, RoomId, RoomInfo, RoomLogItem, Seq,
    ServerMsg, SessionUser, UserEntry, UserId, UserRef, Visibility, Welcome, PROTOCOL_VERSION,
};

/// The client name this SDK announces in HELLO: `confab-sdk-rust/<version>`.
pub const CLIENT_NAME: &str = supervisor::CLIENT_NAME;
