//! The task that owns a client's connection state across reconnects.
//!
//! It is the single owner of the pending-request table, the request id
//! counter, the per-room seq tracker and the remembered token, so none of
//! them needs a lock. [`crate::Client`] talks to it through a command queue;
//! the connection's reader and writer tasks talk to it through
//! [`Live::inbound`].

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use confab_protocol::frame::kind::{self, is_event};
use confab_protocol::{
    DecodeError, ErrorCode, EventBody, Hello, Request, ResumePoint, RoomEvent, RoomId, Seq,
    ServerMsg, SessionUser, Welcome, PROTOCOL_VERSION,
};

use crate::connection::{establish, Inbound, Live};
use crate::endpoint::Endpoint;
use crate::error::Code;
use crate::event::{Event, Overflow};
use crate::options::ConnectOptions;
use crate::tracker::SeqTracker;
use crate::Error;

/// The client name sent in HELLO.
pub(crate) const CLIENT_NAME: &str = concat!("confab-sdk-rust/", env!("CARGO_PKG_VERSION"));

/// How long a closing client waits for queued frames to be written.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Lower bound on the heartbeat interval, whatever the server announces.
const MIN_HEARTBEAT: Duration = Duration::from_millis(50);

/// What [`crate::Client`] asks of the supervisor.
pub(crate) enum Command {
    Request {
        req: Request,
        reply: oneshot::Sender<Result<ServerMsg, Error>>,
    },
    Track {
        room: RoomId,
        seq: Seq,
    },
    ResumePoints {
        reply: oneshot::Sender<Vec<ResumePoint>>,
    },
    Close {
        done: oneshot::Sender<()>,
    },
}

/// What clients can read without asking the supervisor. Not `Debug`: it
/// holds the token.
#[derive(Clone)]
pub(crate) struct State {
    /// WELCOME of the current (or last) connection.
    pub(crate) welcome: Welcome,
    /// Who the connection is authenticated as.
    pub(crate) session: Option<SessionUser>,
    /// The token used to re-authenticate after a reconnect.
    pub(crate) token: Option<String>,
    pub(crate) connected: bool,
}

impl State {
    pub(crate) fn new(welcome: Welcome, token: Option<String>) -> State {
        let session = welcome.session.clone();
        // A token the server did not accept would have failed the handshake.
        let token = token.filter(|_| session.is_some());
        State {
            welcome,
            session,
            token,
            connected: true,
        }
    }
}

/// A request waiting for its reply.
enum Pending {
    Caller {
        kind: u8,
        reply: oneshot::Sender<Result<ServerMsg, Error>>,
    },
    /// A PING sent by the heartbeat; its PONG needs no delivery.
    Heartbeat,
}

impl Pending {
    /// The caller stopped waiting (timed out or was cancelled).
    fn abandoned(&self) -> bool {
        match self {
            Pending::Caller { reply, .. } => reply.is_closed(),
            Pending::Heartbeat => false,
        }
    }
}

/// Request ids: `u32`, never 0 (0 marks events), never one still pending.
#[derive(Debug)]
pub(crate) struct IdGen {
    next: u32,
}

impl Default for IdGen {
    fn default() -> Self {
        IdGen { next: 1 }
    }
}

impl IdGen {
    pub(crate) fn next(&mut self, in_use: impl Fn(u32) -> bool) -> u32 {
        loop {
            let id = self.next;
            self.next = self.next.wrapping_add(1);
            if id != 0 && !in_use(id) {
                return id;
            }
        }
    }
}

/// Why the supervisor stops without a connection.
enum Stop {
    /// [`crate::Client::close`] was called, or every `Client` was dropped.
    ByClient,
    /// Out of reconnect attempts, or the reconnect was refused for good.
    GaveUp,
}

/// Why a connection's drive loop ended.
enum End {
    /// Every `Client` handle was dropped.
    ClientGone,
    CloseRequested(oneshot::Sender<()>),
    ServerClosed {
        code: Code,
        message: String,
    },
    Lost(String),
}

/// Whether a connection closed with `code` is worth re-establishing.
/// Not after a logout or a rejected token (the session is gone), nor after a
/// protocol violation (client and server disagree; retrying repeats it),
/// except a handshake timeout, which a slow network can cause.
pub(crate) fn may_reconnect_after(code: Code) -> bool {
    match code.known() {
        Some(ErrorCode::LoggedOut | ErrorCode::PasswordChanged | ErrorCode::InvalidToken) => false,
        Some(ErrorCode::HandshakeTimeout) => true,
        Some(c) => !(100..200).contains(&(c as u16)),
        None => true,
    }
}

pub(crate) struct Supervisor {
    /// The servers to connect to, in order (several: the nodes of one
    /// cluster), the first the one connected to at the start; `current` is
    /// the one connected to or tried next.
    endpoints: Vec<Endpoint>,
    current: usize,
    options: ConnectOptions,
    commands: mpsc::Receiver<Command>,
    /// The event buffer the application reads ([`crate::Events`]).
    events: mpsc::Sender<Event>,
    /// Events waiting for room in a full event buffer, in order: dropped
    /// events merged into [`Event::Overflow`] items, and connection-state
    /// events, which are never dropped. Small: at most one overflow between
    /// two connection-state events, and those come a few per reconnect.
    held: VecDeque<Event>,
    state: watch::Sender<State>,
    tracker: SeqTracker,
    ids: IdGen,
    pending: HashMap<u32, Pending>,
    /// Cleared by LOGOUT and by a CLOSE that ends the session.
    may_reconnect: bool,
}

impl Supervisor {
    pub(crate) fn new(
        endpoints: Vec<Endpoint>,
        options: ConnectOptions,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<Event>,
        state: watch::Sender<State>,
        tracker: SeqTracker,
        ids: IdGen,
    ) -> Self {
        Supervisor {
            endpoints,
            current: 0,
            options,
            commands,
            events,
            held: VecDeque::new(),
            state,
            tracker,
            ids,
            pending: HashMap::new(),
            may_reconnect: true,
        }
    }

    /// The HELLO for a (re)connection: current token and resume points.
    pub(crate) fn hello(token: Option<String>, resume: Vec<ResumePoint>) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            client: CLIENT_NAME.to_owned(),
            token,
            resume,
        }
    }

    /// Runs until the client is closed or dropped, or the connection is lost
    /// for good.
    pub(crate) async fn run(mut self, mut live: Live) {
        loop {
            let end = self.drive(&mut live).await;
            self.state.send_modify(|s| s.connected = false);
            match end {
                End::ClientGone => {
                    live.close(CLOSE_GRACE).await;
                    self.fail_pending(|| Error::Disconnected);
                    return;
                }
                End::CloseRequested(done) => {
                    live.close(CLOSE_GRACE).await;
                    self.fail_pending(|| Error::Disconnected);
                    let _ = done.send(());
                    return;
                }
                End::ServerClosed { code, message } => {
                    tracing::debug!(%code, %message, "server closed the connection");
                    drop(live);
                    self.fail_pending(|| Error::Closed {
                        code,
                        message: message.clone(),
                    });
                    if !may_reconnect_after(code) {
                        self.may_reconnect = false;
                    }
                    self.emit(Event::Closed { code, message });
                    self.emit(Event::Disconnected);
                }
                End::Lost(reason) => {
                    tracing::debug!(%reason, "connection lost");
                    drop(live);
                    self.fail_pending(|| Error::Disconnected);
                    self.emit(Event::Disconnected);
                }
            }
            if !(self.options.reconnect.enabled && self.may_reconnect) {
                self.drain().await;
                return;
            }
            match self.reconnect().await {
                Ok(new) => {
                    live = new;
                    let welcome = live.welcome.clone();
                    self.state.send_modify(|s| {
                        s.session = welcome.session.clone();
                        s.welcome = welcome;
                        s.connected = true;
                    });
                    self.emit(Event::Reconnected);
                }
                Err(Stop::ByClient) => return,
                Err(Stop::GaveUp) => {
                    self.drain().await;
                    return;
                }
            }
        }
    }

    /// Serves one connection until it ends.
    async fn drive(&mut self, live: &mut Live) -> End {
        for inbound in std::mem::take(&mut live.early) {
            if let Some(end) = self.on_inbound(inbound) {
                return end;
            }
        }
        let (mut heartbeat, dead_after) = self.heartbeat_schedule(&live.welcome);
        let mut last_rx = Instant::now();
        loop {
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    None => return End::ClientGone,
                    Some(Command::Close { done }) => return End::CloseRequested(done),
                    Some(Command::Request { req, reply }) => self.send_request(live, req, reply),
                    Some(other) => self.on_local(other),
                },
                () = deliver_held(&self.events, &mut self.held), if !self.held.is_empty() => {}
                inbound = live.inbound.recv() => {
                    let Some(inbound) = inbound else {
                        return End::Lost("connection tasks stopped".to_owned());
                    };
                    last_rx = Instant::now();
                    if let Some(end) = self.on_inbound(inbound) {
                        return end;
                    }
                }
                _ = tick(&mut heartbeat) => {
                    if last_rx.elapsed() >= dead_after {
                        return End::Lost(format!("nothing received for {dead_after:?}"));
                    }
                    self.send_heartbeat(live);
                    self.pending.retain(|_, p| !p.abandoned());
                }
            }
        }
    }

    /// The PING interval and how long silence may last before the
    /// connection is presumed dead: three intervals, and never less than the
    /// request timeout (so a busy machine does not cause reconnect storms).
    fn heartbeat_schedule(&self, welcome: &Welcome) -> (Option<Interval>, Duration) {
        let period = match self.options.heartbeat_interval {
            Some(p) => Some(p),
            None if welcome.heartbeat_ms == 0 => None,
            None => Some(Duration::from_millis(u64::from(welcome.heartbeat_ms) / 2)),
        };
        let Some(period) = period.map(|p| p.max(MIN_HEARTBEAT)) else {
            return (None, Duration::MAX);
        };
        let mut interval = tokio::time::interval_at(Instant::now() + period, period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        (
            Some(interval),
            period.saturating_mul(3).max(self.options.request_timeout),
        )
    }

    fn send_heartbeat(&mut self, live: &Live) {
        let pending = &self.pending;
        let id = self.ids.next(|id| pending.contains_key(&id));
        let mut buf = BytesMut::new();
        Request::Ping {
            nonce: u64::from(id),
        }
        .encode(id, &mut buf);
        if live.send(buf.freeze()) {
            self.pending.insert(id, Pending::Heartbeat);
        }
    }

    fn send_request(
        &mut self,
        live: &Live,
        req: Request,
        reply: oneshot::Sender<Result<ServerMsg, Error>>,
    ) {
        if reply.is_closed() {
            return; // The caller already gave up.
        }
        let pending = &self.pending;
        let id = self.ids.next(|id| pending.contains_key(&id));
        let mut buf = BytesMut::new();
        req.encode(id, &mut buf);
        let len = buf.len().saturating_sub(4);
        let max = self.state.borrow().welcome.max_frame_len;
        if len > max as usize {
            let _ = reply.send(Err(Error::FrameTooLarge { len, max }));
            return;
        }
        if !live.send(buf.freeze()) {
            let _ = reply.send(Err(Error::Disconnected));
            return;
        }
        self.pending.insert(
            id,
            Pending::Caller {
                kind: req.kind(),
                reply,
            },
        );
    }

    /// Commands that do not need a connection.
    fn on_local(&mut self, cmd: Command) {
        match cmd {
            Command::Track { room, seq } => self.tracker.raise(room, seq),
            Command::ResumePoints { reply } => {
                let _ = reply.send(self.tracker.resume_points());
            }
            // Handled by the callers, which know the connection state.
            Command::Request { reply, .. } => {
                let _ = reply.send(Err(Error::Disconnected));
            }
            Command::Close { done } => {
                let _ = done.send(());
            }
        }
    }

    fn on_inbound(&mut self, inbound: Inbound) -> Option<End> {
        let (req_id, frame_kind, msg) = match inbound {
            Inbound::Lost(reason) => return Some(End::Lost(reason)),
            Inbound::Frame { req_id, kind, msg } => (req_id, kind, msg),
        };
        match msg {
            Ok(ServerMsg::Event(ev)) => self.on_room_event(ev),
            Ok(ServerMsg::ResumeGap { room, last_seq }) => {
                // Live events continue after `last_seq`; the application
                // reloads what came before from history. `last_seq` may be
                // below what we saw (events lost in a server crash before
                // they committed; their numbers are reused), so set, not raise.
                self.tracker.set(room, last_seq);
                self.emit(Event::ResumeGap { room, last_seq });
            }
            Ok(ServerMsg::Notification(n)) => self.emit(Event::Notification(n)),
            Ok(ServerMsg::RoomAnnounced(room)) => self.emit(Event::RoomAnnounced(room)),
            Ok(ServerMsg::ReadMarkerMoved(state)) => self.emit(Event::ReadMarkerMoved(state)),
            // One frame lists every change of a coalescing tick in the
            // room: one event per entry, in the frame's order.
            Ok(ServerMsg::Presence { room, changes }) => {
                for c in changes {
                    self.emit(Event::Presence {
                        room,
                        user: c.user,
                        username: c.username,
                        presence: c.presence,
                    });
                }
            }
            // As PRESENCE: one event per profile listed.
            Ok(ServerMsg::ProfileChanged { room, changes }) => {
                for profile in changes {
                    self.emit(Event::ProfileChanged { room, profile });
                }
            }
            Ok(ServerMsg::Typing {
                room,
                user,
                username,
                typing,
            }) => self.emit(Event::Typing {
                room,
                user,
                username,
                typing,
            }),
            Ok(ServerMsg::Close { code, message }) => {
                return Some(End::ServerClosed {
                    code: Code::from_u16(code),
                    message,
                })
            }
            Ok(reply) => self.on_reply(req_id, reply),
            Err(DecodeError::UnknownFrameType(k)) if is_event(k) => {
                tracing::trace!(kind = k, "ignoring unknown event frame type");
            }
            Err(e) => match self.pending.remove(&req_id).filter(|_| req_id != 0) {
                Some(Pending::Caller { reply, .. }) => {
                    let _ = reply.send(Err(Error::Protocol(e)));
                }
                _ => {
                    tracing::warn!(kind = frame_kind, req_id, error = %e, "dropping undecodable frame")
                }
            },
        }
        None
    }

    fn on_room_event(&mut self, ev: RoomEvent) {
        if !self.tracker.observe(ev.room, ev.seq) {
            tracing::trace!(room = %ev.room, seq = %ev.seq, "dropping duplicate event");
            return;
        }
        let me = self.state.borrow().session.as_ref().map(|s| s.user);
        let gone = match &ev.body {
            EventBody::MemberLeft => Some(ev.actor) == me,
            EventBody::MemberKicked { target, .. } | EventBody::MemberBanned { target, .. } => {
                Some(*target) == me
            }
            EventBody::RoomTerminated => true,
            _ => false,
        };
        if gone {
            // We get nothing more from this room; do not ask to resume it.
            self.tracker.forget(ev.room);
        }
        self.emit(Event::Room(ev));
    }

    fn on_reply(&mut self, req_id: u32, msg: ServerMsg) {
        let Some(pending) = self.pending.remove(&req_id) else {
            tracing::debug!(
                req_id,
                kind = msg.kind(),
                "reply to no pending request (timed out?)"
            );
            return;
        };
        let Pending::Caller {
            kind: req_kind,
            reply,
        } = pending
        else {
            return; // A heartbeat PONG.
        };
        let result = match msg {
            ServerMsg::Error {
                code,
                message,
                retry_after_ms,
            } => Err(Error::server(code, message, retry_after_ms)),
            msg => {
                self.learn(req_kind, &msg);
                Ok(msg)
            }
        };
        let _ = reply.send(result);
    }

    /// Remembers what a successful reply changes about the session.
    fn learn(&mut self, req_kind: u8, msg: &ServerMsg) {
        match (req_kind, msg) {
            (
                kind::REGISTER | kind::LOGIN,
                ServerMsg::Session {
                    user,
                    username,
                    token,
                },
            ) => {
                self.state.send_modify(|s| {
                    s.token = Some(token.as_str().to_owned());
                    s.session = Some(SessionUser {
                        user: *user,
                        username: username.clone(),
                    });
                });
            }
            (kind::LOGOUT, ServerMsg::Ok) => {
                self.may_reconnect = false;
                self.state.send_modify(|s| {
                    s.token = None;
                    s.session = None;
                });
            }
            _ => {}
        }
    }

    fn fail_pending(&mut self, error: impl Fn() -> Error) {
        for (_, pending) in self.pending.drain() {
            if let Pending::Caller { reply, .. } = pending {
                let _ = reply.send(Err(error()));
            }
        }
    }

    /// Hands `event` to the application, or holds it back (merged into an
    /// [`Event::Overflow`] if it may be dropped) while the buffer is full
    /// or earlier events are held back.
    fn emit(&mut self, event: Event) {
        let event = if self.held.is_empty() {
            match self.events.try_send(event) {
                Ok(()) => return,
                // Nobody listening means every handle is gone; we are stopping.
                Err(mpsc::error::TrySendError::Closed(_)) => return,
                Err(mpsc::error::TrySendError::Full(event)) => event,
            }
        } else {
            event
        };
        if !event.droppable() {
            self.held.push_back(event);
            return;
        }
        tracing::debug!("event buffer full: dropping an event");
        match self.held.back_mut() {
            Some(Event::Overflow(overflow)) => overflow.absorb(&event),
            _ => {
                let mut overflow = Overflow::new();
                overflow.absorb(&event);
                self.held.push_back(Event::Overflow(overflow));
            }
        }
    }

    /// Before stopping on its own: waits until every held-back event is in
    /// the buffer, answering commands as a disconnected client would,
    /// unless the client is closed or dropped meanwhile.
    async fn drain(&mut self) {
        while !self.held.is_empty() && self.serve_down().await {}
    }

    /// Re-establishes the connection with backoff, or says why not.
    async fn reconnect(&mut self) -> Result<Live, Stop> {
        let policy = self.options.reconnect.clone();
        let mut attempt = 0u32;
        loop {
            if policy.max_attempts.is_some_and(|max| attempt >= max) {
                tracing::debug!(attempt, "giving up reconnecting");
                return Err(Stop::GaveUp);
            }
            let delay = policy.jittered_delay(attempt);
            attempt = attempt.saturating_add(1);
            self.while_down(tokio::time::sleep(delay))
                .await
                .ok_or(Stop::ByClient)?;

            let endpoint = self.endpoints[self.current].clone();
            let hello = Self::hello(
                self.state.borrow().token.clone(),
                self.tracker.resume_points(),
            );
            let hello_id = self.ids.next(|_| false);
            let (timeout, dial) = (self.options.connect_timeout, self.options.dial());
            let attempt_fut = async move {
                tokio::time::timeout(timeout, establish(&endpoint, hello, hello_id, dial)).await
            };
            match self.while_down(attempt_fut).await.ok_or(Stop::ByClient)? {
                Ok(Ok(live)) => return Ok(live),
                Ok(Err(e)) => {
                    if let Some(code) = e.raw_code().filter(|&c| !may_reconnect_after(c)) {
                        let message = match e {
                            Error::Server { message, .. } | Error::Closed { message, .. } => {
                                message
                            }
                            _ => String::new(),
                        };
                        if code == ErrorCode::InvalidToken {
                            self.state.send_modify(|s| s.token = None);
                        }
                        self.emit(Event::Closed { code, message });
                        return Err(Stop::GaveUp);
                    }
                    tracing::debug!(attempt, error = %e, "reconnect failed");
                }
                Err(_elapsed) => tracing::debug!(attempt, "reconnect timed out"),
            }
            // The next attempt goes to the next server of the list.
            self.current = (self.current + 1) % self.endpoints.len();
        }
    }

    /// Runs `fut` while answering commands as a disconnected client would
    /// (requests fail at once with [`Error::Disconnected`]) and handing
    /// held-back events over as room appears. `None` if the client was
    /// closed or dropped meanwhile.
    async fn while_down<F: Future>(&mut self, fut: F) -> Option<F::Output> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                out = &mut fut => return Some(out),
                alive = self.serve_down() => if !alive {
                    return None;
                },
            }
        }
    }

    /// Does one thing a client without a connection does: hands a held-back
    /// event over once the buffer has room, or answers a command. `false`
    /// if the client was closed or dropped. Cancel-safe.
    async fn serve_down(&mut self) -> bool {
        tokio::select! {
            () = deliver_held(&self.events, &mut self.held), if !self.held.is_empty() => true,
            cmd = self.commands.recv() => match cmd {
                None => false,
                Some(Command::Close { done }) => {
                    let _ = done.send(());
                    false
                }
                Some(other) => {
                    self.on_local(other);
                    true
                }
            },
        }
    }
}

/// Hands the oldest held-back event over once the buffer has room.
/// Cancel-safe: nothing is taken from `held` before there is room.
async fn deliver_held(events: &mpsc::Sender<Event>, held: &mut VecDeque<Event>) {
    match events.reserve().await {
        Ok(permit) => {
            if let Some(event) = held.pop_front() {
                permit.send(event);
            }
        }
        // Every handle is gone: nobody will read them.
        Err(_) => held.clear(),
    }
}

/// Waits for the next heartbeat tick, or forever without a heartbeat.
async fn tick(heartbeat: &mut Option<Interval>) {
    match heartbeat {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_skip_zero_and_ids_in_use() {
        let mut ids = IdGen { next: u32::MAX - 1 };
        assert_eq!(ids.next(|_| false), u32::MAX - 1);
        assert_eq!(ids.next(|_| false), u32::MAX);
        assert_eq!(ids.next(|_| false), 1, "wraps past 0");
        assert_eq!(ids.next(|id| id == 2 || id == 3), 4);
    }

    #[test]
    fn sessions_ending_and_protocol_violations_stop_reconnects() {
        for c in [
            ErrorCode::LoggedOut,
            ErrorCode::PasswordChanged,
            ErrorCode::InvalidToken,
            ErrorCode::MalformedFrame,
            ErrorCode::UnsupportedVersion,
        ] {
            assert!(!may_reconnect_after(c.into()), "{c}");
        }
        for c in [
            ErrorCode::SlowConsumer,
            ErrorCode::IdleTimeout,
            ErrorCode::ShuttingDown,
            ErrorCode::HandshakeTimeout,
        ] {
            assert!(may_reconnect_after(c.into()), "{c}");
        }
        assert!(may_reconnect_after(Code::Unknown(650)));
    }
}
