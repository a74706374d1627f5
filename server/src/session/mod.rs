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
pub mod park;
mod profile;
mod reads;
pub(crate) mod validate;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use confab_protocol::frame::kind;
use confab_protocol::{
    ErrorCode, FrameError, Hello, RateLimit, RawFrame, Request, ResumePoint, ServerMsg,
    SessionUser, UserId, Welcome, PROTOCOL_VERSION,
};
use confab_store::StoreError;

use crate::auth;
use crate::outbound::{ConnId, OutboundQueue, Writer};
use crate::shard::ShardCmd;
use crate::state::{ServerState, Ticket};

pub use oneshot::{authenticate, call, check_member};
pub(crate) use profile::announce_profile;

/// Frames in: what a session reads.
pub trait FrameSource: Send + 'static {
    /// The next frame; `None` at the end of the stream. Cancel-safe: all
    /// state lives in `self`. `conn` is the connection's own queue, for
    /// what the transport must answer by itself (TLS alerts, WebSocket
    /// pongs).
    fn next_frame(
        &mut self,
        conn: &Arc<OutboundQueue>,
    ) -> impl Future<Output = Option<Result<RawFrame, FrameError>>> + Send;

    /// Whether part of a frame (or of a message) is buffered: such a
    /// connection does not park, since no socket readiness would say that
    /// the rest is due.
    fn mid_frame(&self) -> bool;

    /// Polls the socket for bytes to read (or the end of the stream, or an
    /// error) without reading: when not ready, `cx`'s waker is woken once
    /// they arrive. What a parked connection waits on
    /// ([`park`](self::park)).
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()>;
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

/// How often a connection that could not park looks again.
const PARK_RETRY: Duration = Duration::from_secs(1);

/// How long the writer is given to send the last frames of a connection.
const CLOSE_PATIENCE: Duration = Duration::from_secs(5);

/// Serves one connection until it closes: reads frames from `frames` on
/// this task; `writer` is the transport's write side, which the
/// connection's outbound queue drives; `open` counts the connection as open
/// until the end. Doors spawn this future as the connection's task itself
/// (not nested in their own): what a connection's task holds while it
/// waits is what a connection that has not parked yet costs. After
/// `park_after_ms` of silence the task ends and the connection waits
/// without one ([`park`]).
pub async fn serve<S: FrameSource>(
    state: Arc<ServerState>,
    mut frames: S,
    writer: Writer,
    peer: SocketAddr,
    open: crate::metrics::ConnectionGuard,
) {
    let id = ConnId(state.next_conn_id.fetch_add(1, Ordering::Relaxed));
    let conn = OutboundQueue::new(id, state.config.outbound_queue_bytes, writer);
    let mut session = Session {
        state,
        conn,
        auth: None,
        one_shot: false,
        peer: peer.ip(),
    };
    tracing::debug!(conn = id.0, %peer, "connection opened");
    // The handshake is boxed: a transient phase must not size the
    // connection's long-lived future.
    let welcomed = Box::pin(session.open(&mut frames)).await;
    session.conn.flush();
    let deadline = Instant::now() + session.state.config.heartbeat() * 3;
    let live = Live {
        session,
        frames,
        port: peer.port(),
        open,
        deadline,
    };
    if welcomed {
        live.session.conn.release_idle();
        // Boxed apart from this future: held inline, the compiler's
        // layout of the two nested state machines costs every connection
        // more than the two boxes together (measured with size_of_val).
        Box::pin(live.run()).await;
    } else {
        Box::pin(live.close()).await;
    }
}

/// What a connection's wait for its client ended with.
enum Next {
    /// The next frame, the end of the stream, or a broken frame.
    Frame(Option<Result<RawFrame, FrameError>>),
    /// Nothing arrived in time (to park, or for the idle deadline).
    Quiet,
}

/// A welcomed connection: its session, what it reads from, and the
/// connection's place in the metrics. What a connection's task runs, and
/// all that a parked connection keeps ([`park`]).
pub(crate) struct Live<S> {
    session: Session,
    frames: S,
    /// The client's port (its address is the session's), for the log.
    port: u16,
    open: crate::metrics::ConnectionGuard,
    /// When the connection is closed with IDLE_TIMEOUT unless a frame
    /// arrives first (3 × `heartbeat_ms` after the last one).
    deadline: Instant,
}

impl<S: FrameSource> Live<S> {
    /// Reads and answers frames until the connection ends — or until it
    /// parks: after `park_after_ms` without a frame, with nothing
    /// half-read and nothing queued, the connection leaves this task
    /// ([`park::park`]); whatever wakes it runs this again on a new task.
    async fn run(mut self) {
        let idle = self.session.state.config.heartbeat() * 3;
        let quiet = self.session.state.config.park_after_ms.get();
        loop {
            // A connection that cannot park now (half a frame read, frames
            // queued behind a full socket) looks again a while later: no
            // spinning when `quiet` is 0.
            let wait = if self.may_park() {
                quiet
            } else {
                quiet.max(PARK_RETRY)
            };
            let conn = &self.session.conn;
            let next = if wait.is_zero() {
                // Parking at once (the default): one look at the socket,
                // and the connection parks if nothing is there — without
                // arming the waits below (a timer and two wake-up
                // registrations), which would be dropped unused.
                if conn.is_finished() {
                    break;
                }
                if self.session.state.shutdown.is_cancelled() {
                    self.session.fatal(
                        ErrorCode::ShuttingDown,
                        ErrorCode::ShuttingDown.default_message(),
                    );
                    break;
                }
                let mut read = std::pin::pin!(self.frames.next_frame(conn));
                match std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await {
                    Poll::Ready(frame) => Next::Frame(frame),
                    Poll::Pending => Next::Quiet,
                }
            } else {
                let park_at = Instant::now() + wait;
                tokio::select! {
                    biased;
                    _ = conn.finished() => break,
                    _ = self.session.state.shutdown.cancelled() => {
                        self.session.fatal(ErrorCode::ShuttingDown, ErrorCode::ShuttingDown.default_message());
                        break;
                    }
                    r = tokio::time::timeout_at(park_at.min(self.deadline), self.frames.next_frame(conn)) => {
                        r.map_or(Next::Quiet, Next::Frame)
                    }
                }
            };
            match next {
                Next::Quiet if Instant::now() >= self.deadline => {
                    self.session.fatal(
                        ErrorCode::IdleTimeout,
                        "nothing received within three heartbeat intervals",
                    );
                    break;
                }
                Next::Quiet => {
                    if self.may_park() {
                        match park::park(self) {
                            Some(back) => self = back,
                            // Parked: this task ends; the connection
                            // lives on in the parker.
                            None => return,
                        }
                    }
                }
                Next::Frame(None) => break,
                Next::Frame(Some(Err(e))) => {
                    self.session.frame_error(e);
                    break;
                }
                Next::Frame(Some(Ok(frame))) => {
                    // Boxed: the dispatch future nests every request's
                    // state; held inline it would make every connection's
                    // long-lived future that large.
                    let go_on = Box::pin(self.session.handle(frame)).await;
                    // What the session answered itself goes out now;
                    // then, if that emptied the queue, its memory goes
                    // back while the client is quiet.
                    self.session.conn.flush();
                    self.session.conn.release_idle();
                    self.deadline = Instant::now() + idle;
                    if !go_on {
                        break;
                    }
                }
            }
        }
        Box::pin(self.close()).await
    }

    /// Whether the connection may leave its task: nothing half-read (no
    /// readiness would announce the rest), nothing queued to write, still
    /// open.
    fn may_park(&self) -> bool {
        let conn = &self.session.conn;
        !self.frames.mid_frame() && conn.is_open() && conn.queued_bytes() == 0
    }

    /// Ends the connection: answers what was asked (where it can),
    /// detaches from the shards and the registry, writes what is queued.
    async fn close(self) {
        let Live {
            mut session,
            frames,
            port,
            open,
            ..
        } = self;
        let peer = SocketAddr::new(session.peer, port);
        drop(frames);
        let conn = session.conn.clone();
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
        tracing::debug!(conn = conn.id.0, %peer, ending = crate::metrics::ending_label(ending), "connection closed");
    }
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
        // Before the token is checked (SessionRegistry, "Revocation races").
        let ticket = self.state.sessions.ticket();
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
            return self.attach(hello.resume.into(), ticket).await;
        }
        true
    }

    /// Registers the authenticated connection and subscribes it to its
    /// rooms on every shard (replaying from its resume points first).
    /// `ticket` was read before the session was checked or created; if a
    /// session was revoked since, the token is checked again, and a token
    /// no longer valid ends the connection (`false`).
    async fn attach(&self, resume: Arc<[ResumePoint]>, mut ticket: Ticket) -> bool {
        let Some(auth) = &self.auth else { return true };
        if self.one_shot {
            return true;
        }
        let sessions = &self.state.sessions;
        while !sessions.register_if(ticket, auth.user, auth.token_hash, self.conn.clone()) {
            ticket = sessions.ticket();
            let lookup = self
                .state
                .store
                .session_user(&auth.token_hash, self.state.clock.now_ms());
            match crate::metrics::query("session_user", lookup).await {
                Ok(Some(user)) if user.id == auth.user => continue,
                Ok(_) => {
                    crate::metrics::auth_failed("invalid_token");
                    let why = "the session ended while this connection authenticated";
                    self.conn.close(ErrorCode::InvalidToken, why);
                    return false;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "session lookup failed");
                    let why = "cannot check the session token now; retry";
                    self.conn.close(ErrorCode::StorageUnavailable, why);
                    return false;
                }
            }
        }
        let (user, conn) = (auth.user, self.conn.clone());
        // Before the shards: they flush this connection (the WELCOME or
        // SESSION queued before this), and once the client has its answer,
        // the remote rooms' events must reach it too.
        self.attach_remote(user, &resume).await;
        self.state
            .router
            .send_all(|| ShardCmd::Attach {
                user,
                conn: conn.clone(),
                resume: resume.clone(),
            })
            .await;
        self.push_unread_notifications(user);
        // Debug, not info: a reconnect storm attaches thousands of sessions
        // a second, and each info line is a formatted write to the log.
        tracing::debug!(
            user = auth.user.0,
            username = auth.username.as_str(),
            conn = self.conn.id.0,
            "session attached"
        );
        true
    }

    /// Cluster mode: subscribes the connection to the user's rooms that
    /// other nodes serve (their events arrive over NATS); returns once
    /// they are subscribed (a room with a resume point is replayed what
    /// the connection missed first, SPEC.md §9). Nothing on a single node.
    async fn attach_remote(&self, user: UserId, resume: &[ResumePoint]) {
        let (Some(relay), Some(hosted)) = (&self.state.relay, &self.state.hosted) else {
            return;
        };
        let rooms = self.state.store.rooms_of_user(user);
        let rooms = match crate::metrics::query("rooms_of_user", rooms).await {
            Ok(rooms) => rooms,
            Err(e) => {
                // The rooms served here are attached; the others reach
                // this connection from the next join or reconnect on.
                tracing::warn!(error = %e, user = user.0, "reading a user's rooms at attach failed");
                Vec::new()
            }
        };
        let remote = rooms
            .into_iter()
            .map(|r| r.id)
            .filter(|r| !hosted.serves(*r))
            .map(|r| (r, resume.iter().find(|p| p.room == r).map(|p| p.after)))
            .collect();
        relay.attach(user, self.conn.clone(), remote).await;
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
        if let Some(relay) = &self.state.relay {
            relay.detach(user, conn);
        }
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
