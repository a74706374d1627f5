//! Rust SDK for the Confab chat server.
//!
//! Connect with [`Client::connect`], call the typed request methods, and
//! read pushed events with [`Client::next_event`] or from an [`Events`]
//! handle, a [`futures_util::Stream`] (in another task, say):
//!
//! ```no_run
//! use std::time::Duration;
//! use confab_sdk::{Client, ConnectOptions, ErrorCode, Event, EventBody, ReconnectPolicy, Visibility};
//!
//! # async fn run() -> Result<(), confab_sdk::Error> {
//! let options = ConnectOptions::new()
//!     .with_event_buffer(4096)
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
//! let page = client.history(room.id, None, 20).await?; // the newest 20
//! println!("{} recent events", page.events.len());
//!
//! let mut events = client.events();
//! while let Some(event) = events.next().await {
//!     match event {
//!         Event::Room(ev) => {
//!             if let EventBody::Message { text, .. } = &ev.body {
//!                 println!("[{}] {}: {}", ev.seq, ev.actor_name, text);
//!             }
//!         }
//!         Event::Overflow(lost) => println!("fell behind: {} events dropped", lost.dropped),
//!         _ => {}
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
//! - [`tls`]: the rustls client configuration behind that, public for tools
//!   that speak the protocol themselves.
//! - `connection`: HELLO/WELCOME handshake, then one reader task (reads and
//!   decodes frames) and one writer task (coalesces queued frames into few
//!   writes) per connection.
//! - `supervisor`: one task per client that owns the pending-request table
//!   (request id → reply), the per-room last-seen seq used to drop duplicate
//!   events and to resume, the heartbeat, and reconnection. [`Client`] talks
//!   to it through a queue, so nothing is locked.
//! - [`Client`]: typed request methods, each bounded by the request timeout.
//! - [`raw`]: the wire-level escape hatch ([`Client::raw_request`]), whose
//!   types follow the protocol crate rather than this SDK's semver.
//!
//! # Events
//!
//! Events wait in a buffer until read, unbounded by default.
//! [`ConnectOptions::with_event_buffer`] bounds it: when the application
//! falls that far behind, further events are dropped (the connection keeps
//! being read, so replies are never held up) and the next item read is an
//! [`Event::Overflow`] that says which rooms to reload. Connection-state
//! events are never dropped.
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
//! CLOSE that ends the session (`LOGGED_OUT`, `PASSWORD_CHANGED`,
//! `INVALID_TOKEN`) or reports a
//! protocol violation.
//!
//! # Stability
//!
//! The SDK's own public enums and structs with public fields are
//! `#[non_exhaustive]`: later versions may add variants, fields and
//! options without breaking callers. Build options with
//! [`ConnectOptions::new`] and its `with_*` builders. The domain types
//! re-exported here (`RoomInfo`, `Member`, `Role`, `ErrorCode`, …) come
//! from the wire protocol crate and are *not* `#[non_exhaustive]`: the
//! server matches on them exhaustively, so that a new error code or role
//! cannot compile until every table handles it. They change only with the
//! protocol: SPEC §11.1 lets a version append fields and codes, and the
//! SDK's version moves with the protocol crate's, so match them with a
//! `..` rest pattern and a wildcard arm to stay source-compatible. The
//! wire messages themselves are only in [`raw`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backoff;
mod client;
mod connection;
pub mod endpoint;
mod error;
mod event;
mod options;
mod rich;
mod supervisor;
pub mod tls;
mod tracker;
mod transport;

pub use backoff::ReconnectPolicy;
pub use client::{
    AuditPage, Client, HistoryPage, MessageAck, NewRoom, NotificationPage, RoomPage, Session,
};
pub use endpoint::{Endpoint, Scheme};
pub use error::{Code, Error, TlsError, TlsErrorKind, WebSocketError, WebSocketErrorKind};
pub use event::{Elapsed, Empty, Event, Events, Overflow};
pub use options::ConnectOptions;
pub use rich::RichText;
pub use tls::TlsTrust;

pub use confab_protocol::{
    Attachment, AuditAction, AuditItem, Color, DirectWith, ErrorCode, EventBody, LeaveReason,
    Member, Millis, Notification, NotificationKind, Presence, Profile, ProfileUpdate, RateLimit,
    ReadState, Refusal, ResumePoint, Role, RoomEvent, RoomId, RoomInfo, RoomLogItem, Seq,
    SessionUser, Span, Sticker, Style, UnreadSummary, UserEntry, UserId, UserRef, Visibility,
    Welcome, PROTOCOL_VERSION,
};

/// The wire-level escape hatch: raw requests and replies for
/// [`Client::raw_request`], and the whole wire protocol crate.
///
/// These types follow the `confab-protocol` crate's versions, not this
/// SDK's: a new protocol message may change them in a release where the
/// typed API above does not change. Prefer the typed [`Client`] methods.
pub mod raw {
    pub use confab_protocol::{Request, ServerMsg};

    /// The wire protocol crate (`confab-protocol`), for every type and
    /// constant not re-exported elsewhere.
    pub use confab_protocol as protocol;
}

/// The client name this SDK announces in HELLO: `confab-sdk-rust/<version>`.
pub const CLIENT_NAME: &str = supervisor::CLIENT_NAME;

/// The workspace README, whose "Use the SDK" snippet is compiled as a
/// doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
