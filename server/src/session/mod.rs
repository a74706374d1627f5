//! One client connection: handshake, authentication, request dispatch.
//!
//! A session reads frames, answers what it can itself (PING, accounts,
//! store reads) and routes room commands to the owning shard. Requests are
//! pipelined: the session does not wait for a room command's result — the
//! shard or the batch writer pushes the reply into this connection's
//! outbound queue, which the connection's writer
//! ([`crate::outbound::writer`]) drains into the transport.
//!
//! - this file: [`serve`] — the connection loop, the handshake, attaching
//!   to and detaching from the shards;
//! - `dispatch`: one table from a decoded request to what handles it;
//! - `accounts`: REGISTER, LOGIN, LOGOUT and session tokens;
//! - `profile`: GET_PROFILE, UPDATE_PROFILE and CHANGE_PASSWORD;
//! - `reads`: requests answered from the store (listings, history,
//!   notifications, room log, audit trail);
//! - `oneshot`: [`call`], one request without a connection (the HTTP API);
//! - `validate`: the shape rules checked before anything is routed.

mod accounts;
mod dispatch;
mod oneshot;
mod profile;
mod reads;
pub(crate) mod validate;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use confab_protocol::frame::kind;
use confab_protocol::{
    ErrorCode, FrameError, Hello, RateLimit, RawFrame, Request, ResumePoint, ServerMsg,
    SessionUser, UserId, Welcome, PROTOCOL_VERSION,
};
use confab_store::StoreError;

use crate::auth;
use crate::outbound::{ConnId, OutboundQueue, Writer};
use crate::shard::ShardCmd;
use crate::state::ServerState;

pub use oneshot::{authenticate, call, check_member};
pub(crate) use profile::announce_profile;

/// Frames in: what a session reads.
pub trait FrameSource: Send {
    /// The next frame; `None` at the end of the stream. Cancel-safe: all
    /// state lives in `self`. `conn` is the connection's own queue, for
    /// what the transport must answer by itself (TLS alerts, WebSocket
    /// pongs).
    fn next_frame(
        &mut self,
        conn: &Arc<OutboundQueue>,
    ) -> impl Future<Output = Option<Result<RawFrame, FrameError>>> + Send;
}

/// The authenticated identity of a session.
pub struct Auth {
    pub user: UserId,
    pub username: String,
    /// SHA-256 of the session token: the key LOGOUT closes connections by.
    token_hash: [u8; 32],
}

/// One connection's (or one-shot call's) session state.
struct Session {
    state: Arc<ServerState>,
    /// Where replies and events for this connection are queued.
    conn: Arc<OutboundQueue>,
    auth: Option<Auth>,
    /// A session of [`call`]: one request, no connection behind it. It is
    /// never attached to the shards — no presence flicker, no live events.
    one_shot: bool,
    /// Where the client connects from (login and registration limits).
    peer: IpAddr,
}

/// How long a connection whose client stopped sending is kept open to
/// answer the requests it had already sent.
const ANSWER_PATIENCE: Duration = Duration::from_secs(5);

/// How long the writer is given to send the last frames of a connection.
const CLOSE_PATIENCE: Duration = Duration::from_secs(5);

/// Serves one connection until it closes: reads frames from `frames` on
/// this task; `writer` is the transport's write side, which the
/// connection's outbound queue drives; `open` counts the connection as open
/// until the end. Doors spawn this future as the connection's task itself
/// (not nested in their own): what a connection's task holds while it
/// waits is what an idle connection costs.
pub async fn serve<S: FrameSource>(
    state: Arc<ServerState>,
    frames: S,
    writer: Writer,
    peer: SocketAddr,
    open: crate::metrics::ConnectionGuard,
) {
    let id = ConnId(state.next_conn_id.fetch_add(1, Ordering::Relaxed));
    let conn = OutboundQueue::new(id, state.config.outbound_queue_bytes, writer);
    let mut session = Session {
        state,
        conn: conn.clone(),
        auth: None,
        one_shot: false,
        peer: peer.ip(),
    };
    tracing::debug!(conn = id.0, %peer, "connection opened");
    // Boxed apart from this future: held inline, the compiler's layout of
    // the two nested state machines costs every connection ~800 bytes
    // more than the two boxes together (measured with size_of_val).
    Box::pin(session.run(frames)).await;
    if conn.is_open() && !conn.is_finished() {
        // The client stopped sending (it closed its side, or went away):
        // what it asked before is still answered, where it can be.
        Box::pin(conn.all_answered(ANSWER_PATIENCE)).await;
    }
    Box::pin(session.detach()).await;
    // Ends once what is queued is written (a CLOSE, if one was sent).
    conn.end_reading();
    if Box::pin(tokio::time::timeout(CLOSE_PATIENCE, conn.finished()))
        .await
        .is_err()
    {
        conn.abort_with(ErrorCode::Internal);
        conn.flush();
    }
    let ending = conn.ending();
    drop(open);
    crate::metrics::connection_ended(&conn.stats, ending);
    tracing::debug!(conn = id.0, %peer, ending = crate::metrics::ending_label(ending), "connection closed");
}

impl Session {
    /// Reads and answers HELLO: whether the client was welcomed.
    async fn open<S: FrameSource>(&mut self, frames: &mut S) -> bool {
        let handshake_timeout = self.state.config.handshake_timeout_ms.get();
        let first = tokio::select! {
            _ = self.conn.finished() => return false,
            r = tokio::time::timeout(handshake_timeout, frames.next_frame(&self.conn)) => r,
        };
        let first = match first {
            Err(_) => {
                return self.fatal_false(
                    ErrorCode::HandshakeTimeout,
                    "no HELLO within the handshake timeout",
                )
            }
            Ok(None) => return false,
            Ok(Some(Err(e))) => {
                self.frame_error(e);
                return false;
            }
            Ok(Some(Ok(f))) => f,
        };
        crate::metrics::hello_received(first.payload.len() + confab_protocol::frame::HEADER_LEN);
        if first.kind != kind::HELLO {
            return self.fatal_false(
                ErrorCode::HandshakeRequired,
                "the first frame must be HELLO",
            );
        }
        let hello = match Request::decode(&first) {
            Ok(Request::Hello(h)) => h,
            Ok(_) => {
                return self.fatal_false(
                    ErrorCode::HandshakeRequired,
                    "the first frame must be HELLO",
                )
            }
            Err(e) => return self.fatal_false(e.code(), &format!("bad HELLO: {e}")),
        };
        self.handshake(first.req_id, hello).await
    }

    async fn run<S: FrameSource>(&mut self, mut frames: S) {
        // The handshake is boxed: a transient phase must not size the
        // connection's long-lived future (what an idle connection costs).
        let welcomed = Box::pin(self.open(&mut frames)).await;
        self.conn.flush();
        if !welcomed {
            return;
        }
        self.conn.release_idle();

        let idle = self.state.config.heartbeat() * 3;
        loop {
            let next = tokio::select! {
                biased;
                _ = self.conn.finished() => return,
                _ = self.state.shutdown.cancelled() => {
                    return self.fatal(ErrorCode::ShuttingDown, ErrorCode::ShuttingDown.default_message());
                }
                r = tokio::time::timeout(idle, frames.next_frame(&self.conn)) => r,
            };
            match next {
                Err(_) => {
                    return self.fatal(
                        ErrorCode::IdleTimeout,
                        "nothing received within three heartbeat intervals",
                    )
                }
                Ok(None) => return,
                Ok(Some(Err(e))) => return self.frame_error(e),
                Ok(Some(Ok(frame))) => {
                    // Boxed: the dispatch future nests every request's
                    // state; held inline it would make every idle
                    // connection's long-lived future that large.
                    let go_on = Box::pin(self.handle(frame)).await;
                    // What the session answered itself goes out now;
                    // then, if that emptied the queue, its memory goes
                    // back while the client is quiet.
                    self.conn.flush();
                    self.conn.release_idle();
                    if !go_on {
                        return;
                    }
                }
            }
        }
    }

    /// [`Session::fatal`], for a caller that answers `false`.
    fn fatal_false(&self, code: ErrorCode, message: &str) -> bool {
        self.fatal(code, message);
        false
    }

    /// Sends a CLOSE with `code`; the writer closes after it.
    fn fatal(&self, code: ErrorCode, message: &str) {
        tracing::debug!(conn = self.conn.id.0, %code, reason = message, "closing connection");
        self.conn.close(code, message);
    }

    fn frame_error(&self, e: FrameError) {
        match e {
            FrameError::TooLarge { len, max } => self.fatal(
                ErrorCode::FrameTooLarge,
                &format!("frame length {len} exceeds the maximum {max}"),
            ),
            FrameError::TooShort(len) => self.fatal(
                ErrorCode::MalformedFrame,
                &format!("frame length {len} is below the minimum 5"),
            ),
            FrameError::Io(_) => {}
        }
    }

    /// Answers a request with a non-fatal error; the connection goes on.
    fn error(&self, req_id: u32, code: ErrorCode) {
        self.conn.error(req_id, code, code.default_message());
    }

    /// Validates HELLO, authenticates by token if given, sends WELCOME and
    /// attaches the connection to its rooms. `false` ends the connection.
    async fn handshake(&mut self, req_id: u32, hello: Hello) -> bool {
        if hello.version != PROTOCOL_VERSION {
            self.fatal(
                ErrorCode::UnsupportedVersion,
                &format!(
                    "protocol version {} is not supported; this server speaks {PROTOCOL_VERSION}",
                    hello.version
                ),
            );
            return false;
        }
        let mut session = None;
        if let Some(token) = &hello.token {
            let hash = auth::token_hash(token);
            let lookup = self
                .state
                .store
                .session_user(&hash, self.state.clock.now_ms());
            match crate::metrics::query("session_user", lookup).await {
                Ok(Some(user)) => {
                    session = Some(SessionUser {
                        user: user.id,
                        username: user.username.clone(),
                    });
                    self.auth = Some(Auth {
                        user: user.id,
                        username: user.username,
                        token_hash: hash,
                    });
                }
                Ok(None) => {
                    crate::metrics::auth_failed("invalid_token");
                    self.error(req_id, ErrorCode::InvalidToken);
                    self.fatal(
                        ErrorCode::InvalidToken,
                        ErrorCode::InvalidToken.default_message(),
                    );
                    return false;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "session lookup failed");
                    let why = "cannot check the session token now; retry";
                    self.conn.error(req_id, ErrorCode::StorageUnavailable, why);
                    self.fatal(ErrorCode::StorageUnavailable, why);
                    return false;
                }
            }
        }
        let cfg = &self.state.config;
        let welcome = Welcome {
            version: PROTOCOL_VERSION,
            server: concat!("confabd/", env!("CARGO_PKG_VERSION")).into(),
            max_frame_len: cfg.max_frame_len,
            max_message_len: cfg.max_message_len,
            heartbeat_ms: u32::try_from(cfg.heartbeat_ms.0).unwrap_or(u32::MAX),
            session,
            rate_limit: Some(RateLimit {
                per_sec: cfg.rate_limit_per_sec,
                burst: cfg.rate_limit_burst,
            }),
        };
        self.conn.reply(req_id, &ServerMsg::Welcome(welcome));
        crate::metrics::handshake_ok(&self.conn.stats);
        if self.auth.is_some() {
            self.attach(hello.resume.into()).await;
        }
        true
    }

    /// Registers the authenticated connection and subscribes it to its
    /// rooms on every shard (replaying from its resume points first).
    async fn attach(&self, resume: Arc<[ResumePoint]>) {
        let Some(auth) = &self.auth else { return };
        if self.one_shot {
            return;
        }
        self.state
            .sessions
            .register(auth.user, auth.token_hash, self.conn.clone());
        let (user, conn) = (auth.user, self.conn.clone());
        self.state
            .router
            .send_all(|| ShardCmd::Attach {
                user,
                conn: conn.clone(),
                resume: resume.clone(),
            })
            .await;
        self.push_unread_notifications(user);
        tracing::info!(
            user = auth.user.0,
            username = auth.username.as_str(),
            conn = self.conn.id.0,
            "session attached"
        );
    }

    /// Undoes [`Session::attach`] when the connection ends.
    async fn detach(&mut self) {
        let Some(auth) = self.auth.take() else { return };
        if self.one_shot {
            return;
        }
        self.state
            .sessions
            .unregister(auth.user, &auth.token_hash, self.conn.id);
        let (user, conn) = (auth.user, self.conn.id);
        self.state
            .router
            .send_all(|| ShardCmd::Detach { user, conn })
            .await;
    }
}

/// Answers `req_id` with STORAGE_UNAVAILABLE after a failed store call.
pub(crate) fn storage_error(conn: &OutboundQueue, req_id: u32, e: StoreError) {
    crate::metrics::query_error();
    tracing::warn!(error = %e, "store request failed");
    conn.error(
        req_id,
        ErrorCode::StorageUnavailable,
        ErrorCode::StorageUnavailable.default_message(),
    );
}
