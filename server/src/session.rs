//! One client connection: handshake, authentication, request dispatch.
//!
//! A session reads frames, answers what it can itself (PING, accounts,
//! store queries) and routes room commands to the owning shard. Requests
//! are pipelined: the session does not wait for a room command's result —
//! the shard or the batch writer pushes the reply into this connection's
//! outbound queue. A separate writer task ([`writer_loop`]) owns the
//! transport's write side.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use confab_protocol::frame::{begin_frame, end_frame, kind};
use confab_protocol::wire::{put_bool, put_varint, Reader};
use confab_protocol::{
    DecodeError, ErrorCode, EventBody, FrameError, Hello, RawFrame, Request, ResumePoint,
    RoomEvent, RoomId, Seq, ServerMsg, SessionUser, UserId, Welcome, PROTOCOL_VERSION,
};
use confab_store::{Store, StoreError, StoredEvent};
use futures_util::{Stream, StreamExt};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::auth::{self, KdfParams};
use crate::clock::now_ms;
use crate::config::Config;
use crate::outbound::{Conn, ConnId, OutboundRx};
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
    let writer = tokio::spawn(writer_loop(sink, rx, conn.clone()));
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
                    history(shared, conn, req_id, user, room, before, limit as usize).await
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
            action: "login".into(),
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

fn storage_error(conn: &Conn, req_id: u32, e: StoreError) {
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

/// Serves HISTORY: recent events from the owning shard's tail (which holds
/// every not-yet-durable event), older ones from the store.
async fn history(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    req_id: u32,
    user: UserId,
    room: RoomId,
    before: Seq,
    limit: usize,
) {
    let (tx, rx) = oneshot::channel();
    let cmd = ShardCmd::Tail {
        room,
        user,
        before,
        limit: limit + 1,
        reply: tx,
    };
    if shared.router.send(room, cmd).await.is_err() {
        conn.error(
            req_id,
            ErrorCode::ShuttingDown,
            ErrorCode::ShuttingDown.default_message(),
        );
        return;
    }
    let slice = match rx.await {
        Ok(Ok(slice)) => slice,
        Ok(Err(code)) => {
            conn.error(req_id, code, code.default_message());
            return;
        }
        Err(_) => {
            conn.error(
                req_id,
                ErrorCode::ShuttingDown,
                ErrorCode::ShuttingDown.default_message(),
            );
            return;
        }
    };
    let mut frames = slice.frames;
    let want = limit + 1;
    if frames.len() < want && slice.floor.0 > 1 {
        let upper = if before.0 == 0 {
            slice.floor
        } else {
            Seq(before.0.min(slice.floor.0))
        };
        let older = shared
            .store
            .history(room, upper, (want - frames.len()) as u32);
        match crate::metrics::query("history", older).await {
            Ok(events) => {
                for ev in events {
                    match event_frame(ev) {
                        Some(f) => frames.push(f),
                        None => {
                            conn.error(
                                req_id,
                                ErrorCode::Internal,
                                "a stored event could not be decoded",
                            );
                            return;
                        }
                    }
                }
            }
            Err(e) => return storage_error(&conn, req_id, e),
        }
    }
    let mut has_more = frames.len() > limit;
    frames.truncate(limit);
    // Stay within the largest frame clients must accept: a page of huge
    // messages ends early and says there is more.
    let mut size = 64;
    if let Some(fit) = frames.iter().position(|f| {
        size += f.len() + 5;
        size > MAX_SERVER_FRAME
    }) {
        frames.truncate(fit.max(1));
        has_more = true;
    }
    conn.push(history_page(req_id, room, has_more, &frames));
}

/// A stored event as an EVENT frame.
fn event_frame(ev: StoredEvent) -> Option<Bytes> {
    let body = EventBody::decode_fields(ev.kind, &mut Reader::new(&ev.body)).ok()?;
    let ev = RoomEvent {
        room: ev.room,
        seq: ev.seq,
        at: ev.at,
        actor: ev.actor,
        actor_name: ev.actor_name,
        body,
    };
    let mut buf = BytesMut::new();
    ev.encode_frame(&mut buf);
    Some(buf.freeze())
}

/// Builds a HISTORY_PAGE from EVENT frames without decoding them: an
/// event's fields are the EVENT frame minus its 9-byte header.
fn history_page(req_id: u32, room: RoomId, has_more: bool, frames: &[Bytes]) -> Bytes {
    let size: usize = frames.iter().map(|f| f.len()).sum();
    let mut buf = BytesMut::with_capacity(32 + size);
    let start = begin_frame(&mut buf, kind::HISTORY_PAGE, req_id);
    put_varint(&mut buf, room.0);
    put_bool(&mut buf, has_more);
    put_varint(&mut buf, frames.len() as u64);
    for f in frames {
        let fields = &f[confab_protocol::frame::HEADER_LEN..];
        put_varint(&mut buf, fields.len() as u64);
        buf.extend_from_slice(fields);
    }
    end_frame(&mut buf, start);
    buf.freeze()
}

/// The largest frame a server sends (SPEC.md: clients accept 16 MiB).
pub const MAX_SERVER_FRAME: usize = 16 * 1024 * 1024;

/// Most frames coalesced into one write.
const MAX_BATCH_FRAMES: usize = 512;
/// Most bytes coalesced into one write.
const MAX_BATCH_BYTES: usize = 256 * 1024;

fn is_close(frame: &Bytes) -> bool {
    frame.len() > 4 && frame[4] == kind::CLOSE
}

/// Drains a connection's outbound queue into its transport, coalescing
/// whatever is queued into one write. Ends after writing CLOSE, on a write
/// error, or at once when the connection is aborted (slow consumer).
pub async fn writer_loop<K: FrameSink>(mut sink: K, mut out: OutboundRx, conn: Arc<Conn>) {
    let mut batch: Vec<Bytes> = Vec::new();
    let mut aborted_mid_write = false;
    let abort = conn.abort_token().clone();
    loop {
        let first = tokio::select! {
            biased;
            _ = abort.cancelled() => break,
            f = out.rx.recv() => match f { Some(f) => f, None => break },
        };
        let mut counted = 0usize;
        let mut closing = is_close(&first);
        if !closing {
            counted += first.len();
        }
        batch.push(first);
        while !closing && batch.len() < MAX_BATCH_FRAMES && counted < MAX_BATCH_BYTES {
            match out.rx.try_recv() {
                Ok(f) => {
                    closing = is_close(&f);
                    if !closing {
                        counted += f.len();
                    }
                    batch.push(f);
                }
                Err(_) => break,
            }
        }
        let result = tokio::select! {
            biased;
            _ = abort.cancelled() => { aborted_mid_write = true; break }
            r = sink.write_frames(&batch) => r,
        };
        conn.written(counted);
        crate::metrics::frames_written(&conn.stats, &batch, counted + conn.queued_bytes());
        batch.clear();
        if batch.capacity() > 64 {
            batch = Vec::new();
        }
        if result.is_err() || closing {
            break;
        }
    }
    if abort.is_cancelled() && !aborted_mid_write {
        if let Some(code) = conn.close_reason() {
            let mut buf = BytesMut::new();
            ServerMsg::Close {
                code: code as u16,
                message: code.default_message().into(),
            }
            .encode(0, &mut buf);
            let _ = tokio::time::timeout(
                Duration::from_millis(500),
                sink.write_frames(&[buf.freeze()]),
            )
            .await;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    conn.finished_token().cancel();
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

    #[test]
    fn history_page_from_event_frames_decodes_to_the_events() {
        let ev = RoomEvent {
            room: RoomId(3),
            seq: Seq(9),
            at: 5,
            actor: UserId(1),
            actor_name: "a".into(),
            body: EventBody::Message { text: "hi".into() },
        };
        let mut buf = BytesMut::new();
        ev.encode_frame(&mut buf);
        let page = history_page(4, RoomId(3), true, &[buf.freeze()]);
        let mut bm = BytesMut::from(&page[..]);
        let raw = confab_protocol::frame::split_frame(&mut bm, 1 << 20)
            .unwrap()
            .unwrap();
        assert_eq!(raw.req_id, 4);
        assert_eq!(
            ServerMsg::decode(&raw).unwrap(),
            ServerMsg::HistoryPage {
                room: RoomId(3),
                events: vec![ev],
                has_more: true
            }
        );
    }
}
