//! One client connection: handshake, authentication, request dispatch.
//!
//! A session reads frames, answers what it can itself (PING, accounts,
//! store queries) and routes room commands to the owning shard. Requests
//! are pipelined: the session does not wait for a room command's result —
//! the shard or the batch writer pushes the reply into this connection's
//! outbound queue. A separate writer task ([`crate::writer::writer_loop`]) owns the
//! transport's write side.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use confab_protocol::frame::kind;
use confab_protocol::{
    DecodeError, ErrorCode, FrameError, Hello, RawFrame, Request, ResumePoint, RoomId, ServerMsg,
    SessionUser, UserId, Welcome, PROTOCOL_VERSION,
};
use confab_store::{Store, StoreError};
use futures_util::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::auth::{self, KdfParams};
use crate::clock::now_ms;
use crate::config::Config;
use crate::outbound::{Conn, ConnId};
use crate::room::Command;
use crate::shard::{ReplyTo, Router, ShardCmd};
use crate::transport::FrameSink;

/// Governance requests (invitations, requests, kick/ban, roles,
/// notifications, room log, audit): a child module so that it shares the
/// session's private state without growing this file.
#[path = "session_governance.rs"]
mod governance;

/// State shared by all sessions.
pub struct Shared {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub router: Router,
    /// Next room id to assign (ids are never reused).
    pub next_room_id: AtomicU64,
    pub next_conn_id: AtomicU64,
    /// Authenticated connections by session-token hash, so LOGOUT can close
    /// every connection of a session. Touched only on login and disconnect.
    pub sessions: Mutex<HashMap<[u8; 32], Vec<Arc<Conn>>>>,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
    pub kdf: KdfParams,
    /// Verified against when a login names an unknown user (equal timing).
    pub dummy_hash: String,
    /// For writes that belong to no room (the server-wide audit of logins).
    pub batch: crate::batch::BatchHandle,
}

/// The authenticated identity of a session.
struct Auth {
    user: UserId,
    username: String,
    token_hash: [u8; 32],
}

/// Messages per second per connection.
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(rate: u32, burst: u32) -> Option<TokenBucket> {
        (rate > 0).then(|| TokenBucket {
            rate: rate as f64,
            burst: burst as f64,
            tokens: burst as f64,
            last: Instant::now(),
        })
    }

    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Serves one connection until it closes. `frames` yields decoded frames
/// from the transport; `sink` writes to it.
pub async fn serve<S, K>(shared: Arc<Shared>, frames: S, sink: K, peer: SocketAddr)
where
    S: Stream<Item = Result<RawFrame, FrameError>> + Unpin + Send,
    K: FrameSink,
{
    let id = ConnId(shared.next_conn_id.fetch_add(1, Ordering::Relaxed));
    let (conn, rx) = Conn::new(id, shared.config.outbound_queue_bytes);
    let writer = tokio::spawn(crate::writer::writer_loop(sink, rx, conn.clone()));
    let bucket = TokenBucket::new(
        shared.config.rate_limit_per_sec,
        shared.config.rate_limit_burst,
    );
    let mut session = Session {
        shared,
        conn: conn.clone(),
        auth: None,
        bucket,
        one_shot: false,
        limit: None,
    };
    tracing::debug!(conn = id.0, %peer, "connection opened");
    session.run(frames).await;
    session.cleanup().await;
    if conn.is_open() {
        // The peer went away (or the reader failed): nothing left to say.
        conn.abort_with(ErrorCode::Internal);
    }
    let _ = writer.await;
    crate::metrics::connection_ended(&conn.stats, conn.close_reason());
    tracing::debug!(conn = id.0, %peer, reason = ?conn.close_reason(), "connection closed");
}

/// Runs one request through the same dispatch as a protocol connection and
/// returns its reply — the door for request/response adapters such as the
/// HTTP API. `token` authenticates like HELLO's token; REGISTER and LOGIN
/// work without one. The reply is the frame a connection would get (an
/// `Error` for refusals).
pub async fn call(shared: Arc<Shared>, token: Option<&str>, req: Request) -> ServerMsg {
    call_limited(shared, token, req, None).await
}

/// Decides whether a one-shot caller's user may send one more message now
/// (the HTTP door's per-user token buckets, `net/api/limit.rs`).
pub type MessageLimit = Arc<dyn Fn(UserId) -> bool + Send + Sync>;

/// [`call`], with SEND_MESSAGE subject to `limit` (a connection has its
/// own bucket; one-shot callers share one across their requests).
pub async fn call_limited(
    shared: Arc<Shared>,
    token: Option<&str>,
    req: Request,
    limit: Option<MessageLimit>,
) -> ServerMsg {
    const REQ_ID: u32 = 1;
    let id = ConnId(shared.next_conn_id.fetch_add(1, Ordering::Relaxed));
    let (conn, mut out) = Conn::new(id, usize::MAX / 2);
    let mut session = Session {
        shared: shared.clone(),
        conn: conn.clone(),
        auth: None,
        bucket: None,
        one_shot: true,
        limit,
    };
    if let Some(token) = token {
        let hash = auth::token_hash(token);
        match shared.store.session_user(&hash, now_ms()).await {
            Ok(Some(user)) => {
                session.auth = Some(Auth {
                    user: user.id,
                    username: user.username,
                    token_hash: hash,
                });
            }
            Ok(None) => return error_msg(ErrorCode::InvalidToken),
            Err(e) => {
                tracing::warn!(error = %e, "session lookup failed");
                return error_msg(ErrorCode::StorageUnavailable);
            }
        }
    }
    if matches!(req, Request::Hello(_) | Request::Logout) && session.auth.is_none() {
        return error_msg(if matches!(req, Request::Logout) {
            ErrorCode::NotAuthenticated
        } else {
            ErrorCode::HandshakeRequired
        });
    }
    let frame = {
        let mut buf = BytesMut::new();
        req.encode(REQ_ID, &mut buf);
        let mut buf = buf;
        match confab_protocol::frame::split_frame(&mut buf, u32::MAX) {
            Ok(Some(f)) => f,
            _ => return error_msg(ErrorCode::Internal),
        }
    };
    session.handle(frame).await;
    // A one-shot session is never attached to shards, so the only frames
    // it receives are replies to this request (and, for LOGOUT, a CLOSE).
    let reply = loop {
        match tokio::time::timeout(Duration::from_secs(30), out.rx.recv()).await {
            Ok(Some(bytes)) => {
                let mut buf = BytesMut::from(&bytes[..]);
                match confab_protocol::frame::split_frame(&mut buf, u32::MAX) {
                    Ok(Some(f)) if f.req_id == REQ_ID => match ServerMsg::decode(&f) {
                        Ok(msg) => break msg,
                        Err(_) => break error_msg(ErrorCode::Internal),
                    },
                    _ => continue,
                }
            }
            Ok(None) | Err(_) => break error_msg(ErrorCode::Internal),
        }
    };
    // Nothing to clean up: a one-shot session never attaches (even when
    // REGISTER/LOGIN authenticates it), so it never shows as online.
    reply
}

fn error_msg(code: ErrorCode) -> ServerMsg {
    ServerMsg::Error {
        code: code as u16,
        message: code.default_message().into(),
    }
}

struct Session {
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    auth: Option<Auth>,
    bucket: Option<TokenBucket>,
    /// A session of [`call`]: one request, no connection behind it. It is
    /// never attached to the shards — no presence flicker, no live events.
    one_shot: bool,
    /// For one-shot sessions: the caller's message limit.
    limit: Option<MessageLimit>,
}

impl Session {
    async fn run<S>(&mut self, mut frames: S)
    where
        S: Stream<Item = Result<RawFrame, FrameError>> + Unpin + Send,
    {
        let handshake_timeout = self.shared.config.handshake_timeout;
        let first = tokio::select! {
            _ = self.conn.finished() => return,
            r = tokio::time::timeout(handshake_timeout, frames.next()) => r,
        };
        let first = match first {
            Err(_) => {
                return self.fatal(
                    ErrorCode::HandshakeTimeout,
                    "no HELLO within the handshake timeout",
                )
            }
            Ok(None) => return,
            Ok(Some(Err(e))) => return self.frame_error(e),
            Ok(Some(Ok(f))) => f,
        };
        crate::metrics::hello_received(first.payload.len() + confab_protocol::frame::HEADER_LEN);
        if first.kind != kind::HELLO {
            return self.fatal(
                ErrorCode::HandshakeRequired,
                "the first frame must be HELLO",
            );
        }
        let hello = match Request::decode(&first) {
            Ok(Request::Hello(h)) => h,
            Ok(_) => {
                return self.fatal(
                    ErrorCode::HandshakeRequired,
                    "the first frame must be HELLO",
                )
            }
            Err(e) => return self.fatal(e.code(), &format!("bad HELLO: {e}")),
        };
        if !self.handshake(first.req_id, hello).await {
            return;
        }

        let idle = self.shared.config.heartbeat * 3;
        loop {
            let next = tokio::select! {
                biased;
                _ = self.conn.finished() => return,
                _ = self.shared.shutdown.cancelled() => {
                    return self.fatal(ErrorCode::ShuttingDown, ErrorCode::ShuttingDown.default_message());
                }
                r = tokio::time::timeout(idle, frames.next()) => r,
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
                    if !Box::pin(self.handle(frame)).await {
                        return;
                    }
                }
            }
        }
    }

    /// Sends a CLOSE with `code`; the writer closes after it.
    fn fatal(&self, code: ErrorCode, message: &str) {
        tracing::debug!(conn = self.conn.id.0, %code, message, "closing connection");
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
            let lookup = self.shared.store.session_user(&hash, now_ms());
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
                    self.conn.error(
                        req_id,
                        ErrorCode::InvalidToken,
                        ErrorCode::InvalidToken.default_message(),
                    );
                    self.fatal(
                        ErrorCode::InvalidToken,
                        ErrorCode::InvalidToken.default_message(),
                    );
                    return false;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "session lookup failed");
                    self.fatal(
                        ErrorCode::StorageUnavailable,
                        "cannot check the session token now; retry",
                    );
                    return false;
                }
            }
        }
        let cfg = &self.shared.config;
        let welcome = Welcome {
            version: PROTOCOL_VERSION,
            server: concat!("confabd/", env!("CARGO_PKG_VERSION")).into(),
            max_frame_len: cfg.max_frame_len,
            max_message_len: cfg.max_message_len,
            heartbeat_ms: cfg.heartbeat.as_millis() as u32,
            session,
        };
        self.conn.reply(req_id, &ServerMsg::Welcome(welcome));
        crate::metrics::handshake_ok(&self.conn.stats);
        if self.auth.is_some() {
            self.attach(hello.resume.into()).await;
        }
        true
    }

    /// Registers the authenticated connection and subscribes it to its
    /// rooms on every shard.
    async fn attach(&self, resume: Arc<[ResumePoint]>) {
        let Some(auth) = &self.auth else { return };
        if self.one_shot {
            return;
        }
        if let Ok(mut sessions) = self.shared.sessions.lock() {
            sessions
                .entry(auth.token_hash)
                .or_default()
                .push(self.conn.clone());
        }
        let (user, conn) = (auth.user, self.conn.clone());
        self.shared
            .router
            .send_all(|| ShardCmd::Attach {
                user,
                conn: conn.clone(),
                resume: resume.clone(),
            })
            .await;
        self.push_unread_notifications(user);
        tracing::info!(user = auth.user.0, username = %auth.username, conn = self.conn.id.0, "session attached");
    }

    async fn cleanup(&mut self) {
        let Some(auth) = self.auth.take() else { return };
        if let Ok(mut sessions) = self.shared.sessions.lock() {
            if let Some(list) = sessions.get_mut(&auth.token_hash) {
                list.retain(|c| c.id != self.conn.id);
                if list.is_empty() {
                    sessions.remove(&auth.token_hash);
                }
            }
        }
        let (user, conn) = (auth.user, self.conn.id);
        self.shared
            .router
            .send_all(|| ShardCmd::Detach { user, conn })
            .await;
    }

    /// Handles one frame after the handshake. `false` ends the connection.
    async fn handle(&mut self, frame: RawFrame) -> bool {
        let req_id = frame.req_id;
        let req = match Request::decode(&frame) {
            Ok(r) => {
                let len = frame.payload.len() + confab_protocol::frame::HEADER_LEN;
                crate::metrics::request_received(
                    &self.conn.stats,
                    frame.kind,
                    r.name(),
                    req_id,
                    len,
                );
                r
            }
            Err(DecodeError::UnknownFrameType(t)) => {
                if (0x40..=0xbf).contains(&t) {
                    self.fatal(
                        ErrorCode::UnexpectedFrame,
                        &format!("frame type 0x{t:02x} is sent by servers only"),
                    );
                } else {
                    self.fatal(
                        ErrorCode::UnknownFrameType,
                        &format!("unknown frame type 0x{t:02x}"),
                    );
                }
                return false;
            }
            Err(e) => {
                self.fatal(
                    ErrorCode::MalformedFrame,
                    &format!("malformed frame type 0x{:02x}: {e}", frame.kind),
                );
                return false;
            }
        };
        match req {
            Request::Hello(_) => {
                self.fatal(ErrorCode::HandshakeRequired, "HELLO may be sent only once");
                return false;
            }
            Request::Ping { nonce } => {
                self.conn.reply(req_id, &ServerMsg::Pong { nonce });
            }
            Request::Register { username, password } => {
                self.register(req_id, username, password).await
            }
            Request::Login { username, password } => self.login(req_id, username, password).await,
            other => {
                let Some(auth) = &self.auth else {
                    self.error(req_id, ErrorCode::NotAuthenticated);
                    return true;
                };
                let (user, username) = (auth.user, auth.username.clone());
                return self.authenticated(req_id, user, username, other).await;
            }
        }
        true
    }

    fn error(&self, req_id: u32, code: ErrorCode) {
        self.conn.error(req_id, code, code.default_message());
    }

    async fn authenticated(
        &mut self,
        req_id: u32,
        user: UserId,
        username: String,
        req: Request,
    ) -> bool {
        let reply = |conn: &Arc<Conn>| ReplyTo {
            conn: conn.clone(),
            req_id,
        };
        let router = &self.shared.router;
        let sent = match req {
            Request::Logout => return self.logout(req_id).await,
            Request::CreateRoom {
                name,
                topic,
                visibility,
            } => {
                let name = match check_room_name(&name) {
                    Ok(n) => n,
                    Err(code) => return self.reject(req_id, code),
                };
                if let Err(code) = check_topic(&topic) {
                    return self.reject(req_id, code);
                }
                let room = RoomId(self.shared.next_room_id.fetch_add(1, Ordering::Relaxed));
                let cmd = ShardCmd::Create {
                    room,
                    name,
                    topic,
                    visibility,
                    user,
                    username,
                    reply: reply(&self.conn),
                };
                router.send(room, cmd).await
            }
            Request::JoinRoom { room } => {
                let cmd = Command::Join { user, username };
                router
                    .send(
                        room,
                        ShardCmd::Apply {
                            room,
                            cmd,
                            reply: reply(&self.conn),
                        },
                    )
                    .await
            }
            Request::LeaveRoom { room } => {
                let cmd = Command::Leave { user };
                router
                    .send(
                        room,
                        ShardCmd::Apply {
                            room,
                            cmd,
                            reply: reply(&self.conn),
                        },
                    )
                    .await
            }
            Request::ListMembers { room } => {
                router
                    .send(
                        room,
                        ShardCmd::Members {
                            room,
                            user,
                            reply: reply(&self.conn),
                        },
                    )
                    .await
            }
            Request::SendMessage { room, body } => {
                if body.trim().is_empty() {
                    return self.reject(req_id, ErrorCode::MessageEmpty);
                }
                if body.len() > self.shared.config.max_message_len as usize {
                    let max = self.shared.config.max_message_len;
                    self.conn.error(
                        req_id,
                        ErrorCode::MessageTooLong,
                        format!("message exceeds {max} bytes"),
                    );
                    return true;
                }
                let allowed = match (&mut self.bucket, &self.limit) {
                    (Some(bucket), _) => bucket.try_take(Instant::now()),
                    (None, Some(limit)) => limit(user),
                    (None, None) => true,
                };
                if !allowed {
                    crate::metrics::rate_limited();
                    return self.reject(req_id, ErrorCode::RateLimited);
                }
                let cmd = Command::Post { user, text: body };
                router
                    .send(
                        room,
                        ShardCmd::Apply {
                            room,
                            cmd,
                            reply: reply(&self.conn),
                        },
                    )
                    .await
            }
            Request::ListRooms {
                query,
                offset,
                limit,
            } => {
                if !(1..=200).contains(&limit) {
                    return self.reject(req_id, ErrorCode::InvalidPaging);
                }
                let (store, conn) = (self.shared.store.clone(), self.conn.clone());
                tokio::spawn(async move {
                    let query = store.list_rooms(user, &query, offset, limit);
                    match crate::metrics::query("list_rooms", query).await {
                        Ok((rooms, total)) => {
                            conn.reply(req_id, &ServerMsg::RoomList { rooms, total });
                        }
                        Err(e) => storage_error(&conn, req_id, e),
                    }
                });
                Ok(())
            }
            Request::MyRooms => {
                let (store, conn) = (self.shared.store.clone(), self.conn.clone());
                tokio::spawn(async move {
                    match crate::metrics::query("rooms_of_user", store.rooms_of_user(user)).await {
                        Ok(rooms) => {
                            let total = rooms.len() as u32;
                            conn.reply(req_id, &ServerMsg::RoomList { rooms, total });
                        }
                        Err(e) => storage_error(&conn, req_id, e),
                    }
                });
                Ok(())
            }
            Request::History {
                room,
                before,
                limit,
            } => {
                if !(1..=200).contains(&limit) {
                    return self.reject(req_id, ErrorCode::InvalidPaging);
                }
                let (shared, conn) = (self.shared.clone(), self.conn.clone());
                tokio::spawn(async move {
                    crate::history::history(
                        shared,
                        conn,
                        req_id,
                        user,
                        room,
                        before,
                        limit as usize,
                    )
                    .await
                });
                Ok(())
            }
            Request::Hello(_)
            | Request::Ping { .. }
            | Request::Register { .. }
            | Request::Login { .. } => Ok(()),
            governance => self.governance(req_id, user, username, governance).await,
        };
        if let Err(code) = sent {
            self.error(req_id, code);
        }
        true
    }

    /// Answers a request with a non-fatal error; the connection goes on.
    fn reject(&self, req_id: u32, code: ErrorCode) -> bool {
        self.error(req_id, code);
        true
    }

    async fn register(&mut self, req_id: u32, username: String, password: String) {
        if self.auth.is_some() {
            return self.error(req_id, ErrorCode::AlreadyAuthenticated);
        }
        let username = match auth::normalize_username(&username) {
            Ok(u) => u,
            Err(code) => return self.error(req_id, code),
        };
        if let Err(code) = auth::check_password_rules(&password) {
            return self.error(req_id, code);
        }
        let kdf = self.shared.kdf;
        let hash =
            match tokio::task::spawn_blocking(move || auth::hash_password(&password, kdf)).await {
                Ok(Ok(h)) => h,
                _ => return self.error(req_id, ErrorCode::Internal),
            };
        let create = self.shared.store.create_user(&username, &hash, now_ms());
        match crate::metrics::query("create_user", create).await {
            Ok(user) => {
                tracing::info!(user = user.0, %username, "account registered");
                self.start_session(req_id, user, username).await
            }
            Err(StoreError::Conflict(_)) => self.error(req_id, ErrorCode::UsernameTaken),
            Err(e) => storage_error(&self.conn, req_id, e),
        }
    }

    async fn login(&mut self, req_id: u32, username: String, password: String) {
        if self.auth.is_some() {
            return self.error(req_id, ErrorCode::AlreadyAuthenticated);
        }
        let record = match auth::normalize_username(&username) {
            Ok(name) => {
                match crate::metrics::query("user_by_name", self.shared.store.user_by_name(&name))
                    .await
                {
                    Ok(r) => r,
                    Err(e) => return storage_error(&self.conn, req_id, e),
                }
            }
            Err(_) => None,
        };
        let phc = record
            .as_ref()
            .map(|r| r.password_hash.clone())
            .unwrap_or_else(|| self.shared.dummy_hash.clone());
        let verified = tokio::task::spawn_blocking(move || auth::verify_password(&password, &phc))
            .await
            .unwrap_or(false);
        match record {
            Some(user) if verified => {
                tracing::info!(target: "confab::audit", action = "login", actor = user.id.0, "audit");
                self.audit_login(user.id);
                self.start_session(req_id, user.id, user.username).await
            }
            _ => {
                tracing::info!(username = %username, "login failed");
                crate::metrics::auth_failed("invalid_credentials");
                self.error(req_id, ErrorCode::InvalidCredentials)
            }
        }
    }

    /// Appends a server-wide `login` audit row (no room), through the same
    /// ordered pipeline as every other write.
    fn audit_login(&self, user: UserId) {
        let entry = confab_store::AuditEntry {
            at: now_ms(),
            actor: user,
            action: confab_protocol::AuditAction::Login,
            room: None,
            target: None,
            detail: String::new(),
        };
        let req = crate::batch::WriteRequest {
            ops: vec![confab_store::WriteOp::Audit(entry)],
            durable: None,
            ack: None,
            deliver: Vec::new(),
            notify: None,
        };
        self.shared.batch.submit(req);
    }

    /// Creates a session token, answers SESSION and attaches the connection.
    async fn start_session(&mut self, req_id: u32, user: UserId, username: String) {
        let (token, hash) = auth::new_token();
        let now = now_ms();
        let expires = now + self.shared.config.session_ttl.as_millis() as u64;
        let create = self.shared.store.create_session(&hash, user, now, expires);
        if let Err(e) = crate::metrics::query("create_session", create).await {
            return storage_error(&self.conn, req_id, e);
        }
        self.conn.reply(
            req_id,
            &ServerMsg::Session {
                user,
                username: username.clone(),
                token,
            },
        );
        self.auth = Some(Auth {
            user,
            username,
            token_hash: hash,
        });
        self.attach(Arc::from(Vec::new())).await;
    }

    /// Ends the session everywhere: every connection using its token closes.
    async fn logout(&mut self, req_id: u32) -> bool {
        let Some(auth) = &self.auth else { return true };
        if let Err(e) = self.shared.store.delete_session(&auth.token_hash).await {
            storage_error(&self.conn, req_id, e);
            return true;
        }
        tracing::info!(user = auth.user.0, "logout");
        self.conn.reply(req_id, &ServerMsg::Ok);
        let conns = self
            .shared
            .sessions
            .lock()
            .ok()
            .and_then(|mut s| s.remove(&auth.token_hash))
            .unwrap_or_default();
        for c in conns {
            c.close(ErrorCode::LoggedOut, "the session was logged out");
        }
        self.conn
            .close(ErrorCode::LoggedOut, "the session was logged out");
        // Re-register so cleanup() finds nothing stale; the registry entry is gone.
        false
    }
}

pub(crate) fn storage_error(conn: &Conn, req_id: u32, e: StoreError) {
    crate::metrics::query_error();
    tracing::warn!(error = %e, "store request failed");
    conn.error(
        req_id,
        ErrorCode::StorageUnavailable,
        ErrorCode::StorageUnavailable.default_message(),
    );
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Room names: 1-64 characters after trimming, no control characters.
pub fn check_room_name(name: &str) -> Result<String, ErrorCode> {
    let name = name.trim();
    let n = name.chars().count();
    if n == 0 || n > 64 || has_control(name) {
        return Err(ErrorCode::InvalidRoomName);
    }
    Ok(name.to_owned())
}

/// Topics: at most 256 characters, no control characters.
pub fn check_topic(topic: &str) -> Result<(), ErrorCode> {
    if topic.chars().count() > 256 || has_control(topic) {
        return Err(ErrorCode::InvalidTopic);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_are_trimmed_and_bounded() {
        assert_eq!(check_room_name("  general ").unwrap(), "general");
        assert_eq!(check_room_name("   "), Err(ErrorCode::InvalidRoomName));
        assert_eq!(
            check_room_name(&"x".repeat(65)),
            Err(ErrorCode::InvalidRoomName)
        );
        assert_eq!(check_room_name("a\u{7}b"), Err(ErrorCode::InvalidRoomName));
        assert!(
            check_room_name(&"é".repeat(64)).is_ok(),
            "limit counts characters, not bytes"
        );
    }

    #[test]
    fn topics_are_bounded() {
        assert!(check_topic("").is_ok());
        assert_eq!(check_topic(&"x".repeat(257)), Err(ErrorCode::InvalidTopic));
        assert_eq!(check_topic("line\nbreak"), Err(ErrorCode::InvalidTopic));
    }

    #[test]
    fn token_bucket_allows_burst_then_refills_at_rate() {
        let mut b = TokenBucket::new(10, 3).unwrap();
        let t0 = b.last;
        assert!(b.try_take(t0) && b.try_take(t0) && b.try_take(t0));
        assert!(!b.try_take(t0), "burst exhausted");
        assert!(
            b.try_take(t0 + Duration::from_millis(100)),
            "one token per 100 ms at 10/s"
        );
        assert!(!b.try_take(t0 + Duration::from_millis(100)));
        assert!(TokenBucket::new(0, 0).is_none(), "0 disables the limit");
    }
}
