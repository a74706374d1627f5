//! [`Client`]: connect, typed requests, events.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch, Mutex, Semaphore};
use tokio::time::Instant;

use confab_protocol::{
    AuditItem, Member, Millis, Notification, ReadState, Request, ResumePoint, Role, RoomEvent,
    RoomId, RoomInfo, RoomLogItem, Seq, ServerMsg, SessionUser, Span, Sticker, UnreadSummary,
    UserEntry, UserId, UserRef, Visibility, Welcome,
};
use confab_protocol::{Profile, ProfileUpdate};

use crate::connection::establish;
use crate::event::{self, Elapsed, Event, Events};
use crate::options::{redacted, ConnectOptions};
use crate::rich::RichText;
use crate::supervisor::{may_reconnect_after, Command, IdGen, State, Supervisor};
use crate::tracker::SeqTracker;
use crate::Error;

/// Capacity of the client → supervisor command queue; callers wait when
/// it is full.
const COMMAND_QUEUE: usize = 1024;

/// An authenticated session, returned by [`Client::register`] and
/// [`Client::login`]. The client remembers the token for reconnects; keep it
/// to authenticate a later connection with [`ConnectOptions::token`].
///
/// `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Session {
    /// The user's id.
    pub user: UserId,
    /// The user's name as the server stored it (lower case).
    pub username: String,
    /// Opaque session token (today 64 hex characters; treat it as opaque).
    pub token: String,
}

impl Session {
    /// A session as the server would return it (for tests and fakes).
    pub fn new(user: UserId, username: impl Into<String>, token: impl Into<String>) -> Session {
        Session {
            user,
            username: username.into(),
            token: token.into(),
        }
    }
}

impl fmt::Debug for Session {
    /// User id and name; the token shows as `<redacted>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .field("username", &self.username)
            .field("token", &redacted())
            .finish()
    }
}

/// The durable acknowledgement of a sent message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageAck {
    /// The room the message went to.
    pub room: RoomId,
    /// The message's sequence number in the room.
    pub seq: Seq,
    /// The server's timestamp (ms since the Unix epoch).
    pub at: Millis,
}

impl MessageAck {
    /// An acknowledgement as the server would send it (for tests and fakes).
    pub fn new(room: RoomId, seq: Seq, at: Millis) -> MessageAck {
        MessageAck { room, seq, at }
    }
}

/// One page of a room's history, from [`Client::history`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HistoryPage {
    /// The room.
    pub room: RoomId,
    /// Newest first.
    pub events: Vec<RoomEvent>,
    /// Whether events older than the last one here exist.
    pub has_more: bool,
}

impl HistoryPage {
    /// A page as the server would send it (for tests and fakes).
    pub fn new(room: RoomId, events: Vec<RoomEvent>, has_more: bool) -> HistoryPage {
        HistoryPage {
            room,
            events,
            has_more,
        }
    }
}

/// One page of a room search, from [`Client::list_rooms`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoomPage {
    /// The rooms on this page, ordered by id.
    pub rooms: Vec<RoomInfo>,
    /// How many rooms match the search in all, across every page.
    pub total: u32,
}

impl RoomPage {
    /// A page as the server would send it (for tests and fakes).
    pub fn new(rooms: Vec<RoomInfo>, total: u32) -> RoomPage {
        RoomPage { rooms, total }
    }
}

/// The value sent for an optional "before" bound: 0 asks for the newest
/// (SPEC.md §5), so "before the first" (0) becomes 1, which no id or seq
/// is below either, since the server never assigns 0.
fn before_on_wire(before: Option<u64>) -> u64 {
    match before {
        None => 0,
        Some(n) => n.max(1),
    }
}

/// A connection to a Confab server.
///
/// Cheap to clone: clones share the connection and the event stream. The
/// connection closes when [`Client::close`] is called or the last clone is
/// dropped. Every request method waits at most
/// [`ConnectOptions::request_timeout`] for its reply.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    /// The way to the supervisor task, which owns the connection.
    commands: mpsc::Sender<Command>,
    /// Welcome, session and token as the supervisor last published them.
    state: watch::Receiver<State>,
    /// The event buffer's receiving end, shared with every [`Events`].
    events: event::Shared,
    request_timeout: Duration,
    /// The HTTP API of the server this client connects to, if its URL
    /// has one ([`Client::http`]); else the URL.
    http: Result<crate::http::HttpApi, String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.state.borrow();
        f.debug_struct("Client")
            .field("server", &state.welcome.server)
            .field("session", &state.session)
            .field("connected", &state.connected)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to `url` (`confab://host:port`), sends HELLO and waits for
    /// WELCOME, all within [`ConnectOptions::connect_timeout`].
    ///
    /// `url` may list several servers, comma-separated (the nodes of one
    /// cluster: `confab://127.0.0.1:7400,confab://127.0.0.1:7401`): they
    /// are tried in order, each within the connect timeout, until one
    /// answers WELCOME; the error is the last one's. After a disconnect the
    /// client reconnects to the same server first and moves on to the next
    /// one (round the list) after each failed attempt. A server's refusal
    /// that no retry can mend (a rejected token) ends the tries at once.
    ///
    /// With [`ConnectOptions::token`] the connection is authenticated at
    /// once; an invalid or expired token fails with [`Error::Server`] code
    /// `INVALID_TOKEN`. Must be called within a Tokio runtime.
    pub async fn connect(url: &str, options: ConnectOptions) -> Result<Client, Error> {
        let mut endpoints = crate::endpoint::parse_list(url)?;
        let mut tracker = SeqTracker::new();
        for p in &options.resume {
            tracker.raise(p.room, p.after);
        }
        let mut ids = IdGen::default();
        let mut tried = Err(Error::Timeout);
        let mut current = 0;
        for (i, endpoint) in endpoints.iter().enumerate() {
            let hello = Supervisor::hello(options.token.clone(), tracker.resume_points());
            let hello_id = ids.next(|_| false);
            tried = tokio::time::timeout(
                options.connect_timeout,
                establish(endpoint, hello, hello_id, options.dial()),
            )
            .await
            .unwrap_or(Err(Error::Timeout));
            current = i;
            match &tried {
                Ok(_) => break,
                Err(e) if e.raw_code().is_some_and(|c| !may_reconnect_after(c)) => break,
                Err(e) => tracing::debug!(%endpoint, error = %e, "connect failed"),
            }
        }
        let live = tried?;
        // The list from the server connected to, which reconnects try first.
        endpoints.rotate_left(current);

        let (state_tx, state) =
            watch::channel(State::new(live.welcome.clone(), options.token.clone()));
        let (commands, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        // Unbounded is a bound nobody reaches: tokio allocates the channel's
        // blocks as they fill, not up front.
        let capacity = options.event_buffer.map_or(Semaphore::MAX_PERMITS, |n| {
            n.get().min(Semaphore::MAX_PERMITS)
        });
        let (events_tx, events_rx) = mpsc::channel(capacity);
        let request_timeout = options.request_timeout;
        let http =
            crate::http::HttpApi::for_endpoint(&endpoints[0], &options).ok_or(url.to_owned());
        let supervisor = Supervisor::new(
            endpoints,
            options,
            commands_rx,
            events_tx,
            state_tx,
            tracker,
            ids,
        );
        tokio::spawn(supervisor.run(live));
        Ok(Client {
            inner: Arc::new(Inner {
                commands,
                state,
                events: Arc::new(Mutex::new(events_rx)),
                request_timeout,
                http,
            }),
        })
    }

    /// WELCOME of the current connection (or the last one, while
    /// disconnected): server name and limits.
    pub fn welcome(&self) -> Welcome {
        self.inner.state.borrow().welcome.clone()
    }

    /// Who this connection is authenticated as, if anyone.
    pub fn session(&self) -> Option<SessionUser> {
        self.inner.state.borrow().session.clone()
    }

    /// The remembered session token (from HELLO, REGISTER or LOGIN), used to
    /// re-authenticate after a reconnect. Cleared by LOGOUT.
    pub fn token(&self) -> Option<String> {
        self.inner.state.borrow().token.clone()
    }

    /// The server's HTTP API — file uploads and downloads, signed links,
    /// avatars — on the same host and port as this client's `ws://`,
    /// `wss://` or `confabs://` URL, trusting the same certificates, as the
    /// user this client is logged in as (its current token). A
    /// `confab://` URL's port serves no HTTP: [`Error::InvalidUrl`]; use
    /// [`crate::HttpApi::new`] with the server's `http(s)://` URL.
    pub fn http(&self) -> Result<crate::HttpApi, Error> {
        let api = self.inner.http.clone().map_err(|url| Error::InvalidUrl {
            url,
            reason: "a confab:// server's HTTP API is on another port: use HttpApi::new with its http(s):// URL",
        })?;
        Ok(match self.token() {
            Some(token) => api.with_token(token),
            None => api,
        })
    }

    /// Whether a connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.inner.state.borrow().connected
    }

    /// Creates an account and authenticates this connection as it.
    pub async fn register(&self, username: &str, password: &str) -> Result<Session, Error> {
        let req = Request::Register {
            username: username.to_owned(),
            password: password.into(),
        };
        match self.request(req).await? {
            ServerMsg::Session {
                user,
                username,
                token,
            } => Ok(Session {
                user,
                username,
                token: token.into_string(),
            }),
            other => Err(unexpected("register", &other)),
        }
    }

    /// Authenticates this connection.
    pub async fn login(&self, username: &str, password: &str) -> Result<Session, Error> {
        let req = Request::Login {
            username: username.to_owned(),
            password: password.into(),
        };
        match self.request(req).await? {
            ServerMsg::Session {
                user,
                username,
                token,
            } => Ok(Session {
                user,
                username,
                token: token.into_string(),
            }),
            other => Err(unexpected("login", &other)),
        }
    }

    /// Ends the session on the server. The server then closes every
    /// connection using it, this one included ([`Event::Closed`] with
    /// `LOGGED_OUT`), and the client does not reconnect.
    pub async fn logout(&self) -> Result<(), Error> {
        match self.request(Request::Logout).await? {
            ServerMsg::Ok => Ok(()),
            other => Err(unexpected("logout", &other)),
        }
    }

    /// Creates a room owned by the caller; resolves once it is durable.
    pub async fn create_room(
        &self,
        name: &str,
        topic: &str,
        visibility: Visibility,
    ) -> Result<RoomInfo, Error> {
        self.create(NewRoom::new(name).topic(topic).visibility(visibility))
            .await
    }

    /// Creates the room `room` describes, owned by the caller, with its
    /// initial members (a group chat) added in the same durable step;
    /// resolves once it is durable. Refused, with nothing created, with
    /// `TOO_MANY_MEMBERS` (over 50), `NO_SUCH_USER`, `CANNOT_TARGET_SELF`
    /// (the caller among the members) or `DUPLICATE_MEMBER`.
    pub async fn create(&self, room: NewRoom) -> Result<RoomInfo, Error> {
        let req = Request::CreateRoom {
            name: room.name,
            topic: room.topic,
            visibility: room.visibility,
            members: room.members,
        };
        match self.request(req).await? {
            ServerMsg::Room(info) => Ok(info),
            other => Err(unexpected("create_room", &other)),
        }
    }

    /// Opens the caller's direct (one-to-one) room with `user`, by id or
    /// username: creates it, or returns the one the two already have
    /// (adding the caller again if they had left it; the history stays).
    /// Resolves once it is durable, with the room as the caller sees it:
    /// named after the other user, who is in [`RoomInfo::direct_with`].
    /// Refused with `NO_SUCH_USER` or `CANNOT_TARGET_SELF`; inside a direct
    /// room, governance requests are refused with `DIRECT_ROOM`.
    pub async fn open_direct(&self, user: UserRef) -> Result<RoomInfo, Error> {
        match self.request(Request::OpenDirect { user }).await? {
            ServerMsg::Room(info) => Ok(info),
            other => Err(unexpected("open_direct", &other)),
        }
    }

    /// Rooms visible to the caller whose name or topic contains `query`
    /// (case-insensitive), ordered by id: the page of up to `limit` (1–200)
    /// rooms starting at `offset`, and the total count.
    pub async fn list_rooms(
        &self,
        query: &str,
        offset: u32,
        limit: u32,
    ) -> Result<RoomPage, Error> {
        self.room_list(query, false, offset, limit).await
    }

    /// Rooms visible to the caller named exactly `name` (case-insensitively,
    /// ignoring white space around it), ordered by id. Room names are not
    /// unique, so there may be several.
    pub async fn rooms_named(
        &self,
        name: &str,
        offset: u32,
        limit: u32,
    ) -> Result<RoomPage, Error> {
        self.room_list(name, true, offset, limit).await
    }

    async fn room_list(
        &self,
        query: &str,
        exact: bool,
        offset: u32,
        limit: u32,
    ) -> Result<RoomPage, Error> {
        let req = Request::ListRooms {
            query: query.to_owned(),
            offset,
            limit,
            exact,
        };
        match self.request(req).await? {
            ServerMsg::RoomList { rooms, total, .. } => Ok(RoomPage { rooms, total }),
            other => Err(unexpected("list_rooms", &other)),
        }
    }

    /// Joins a room; resolves once the membership is durable.
    pub async fn join_room(&self, room: RoomId) -> Result<RoomInfo, Error> {
        match self.request(Request::JoinRoom { room }).await? {
            ServerMsg::Room(info) => Ok(info),
            other => Err(unexpected("join_room", &other)),
        }
    }

    /// Leaves a room; resolves once that is durable.
    pub async fn leave_room(&self, room: RoomId) -> Result<(), Error> {
        match self.request(Request::LeaveRoom { room }).await? {
            ServerMsg::Ok => Ok(()),
            other => Err(unexpected("leave_room", &other)),
        }
    }

    /// Tells the room's other members that you are typing (TYPING_START,
    /// SPEC.md §5.5.7). Send it again every 2–4 s while you type: the
    /// state expires 5 s after the last one, and the server forwards at
    /// most one START per 2 s (a throttled one still answers `Ok`).
    /// Members only (`NOT_A_MEMBER`).
    pub async fn typing_start(&self, room: RoomId) -> Result<(), Error> {
        match self.request(Request::TypingStart { room }).await? {
            ServerMsg::Ok => Ok(()),
            other => Err(unexpected("typing_start", &other)),
        }
    }

    /// Tells the room's other members that you stopped typing
    /// (TYPING_STOP, SPEC.md §5.5.7). Members only (`NOT_A_MEMBER`).
    pub async fn typing_stop(&self, room: RoomId) -> Result<(), Error> {
        match self.request(Request::TypingStop { room }).await? {
            ServerMsg::Ok => Ok(()),
            other => Err(unexpected("typing_stop", &other)),
        }
    }

    /// The room's members in join order (members only).
    pub async fn members(&self, room: RoomId) -> Result<Vec<Member>, Error> {
        match self.request(Request::ListMembers { room }).await? {
            ServerMsg::MemberList { members, .. } => Ok(members),
            other => Err(unexpected("members", &other)),
        }
    }

    /// Sends a message; resolves on the server's durable acknowledgement.
    /// The message's own [`Event::Room`] usually arrives before this returns.
    pub async fn send_message(&self, room: RoomId, text: &str) -> Result<MessageAck, Error> {
        self.post(room, text.to_owned(), Vec::new(), None, Vec::new())
            .await
    }

    /// Sends a formatted message (SPEC.md §5.11.1): the text and spans of
    /// a [`RichText`]. Besides those of [`Client::send_message`], errors:
    /// `INVALID_SPANS`, `UNKNOWN_COLOR`, `INVALID_LINK` — which
    /// [`RichText::check`] finds before sending.
    pub async fn send_rich(&self, room: RoomId, message: &RichText) -> Result<MessageAck, Error> {
        let (text, spans) = message.clone().into_parts();
        self.post(room, text, spans, None, Vec::new()).await
    }

    /// Sends a message that carries files uploaded to `room` by this user
    /// (SPEC.md §13.5; upload them over HTTP first), with `message` as its
    /// text — which may be empty. Everyone receives each file's id, name,
    /// type, size and an image's size in pixels. Besides those of
    /// [`Client::send_rich`], errors: `INVALID_ATTACHMENTS` (more than 10,
    /// or one twice), `UNKNOWN_FILE` (no such file, or deleted),
    /// `ATTACHMENT_NOT_YOURS` (someone else's upload, one to another room,
    /// or one attached already).
    pub async fn send_files(
        &self,
        room: RoomId,
        message: &RichText,
        files: &[u64],
    ) -> Result<MessageAck, Error> {
        let (text, spans) = message.clone().into_parts();
        self.post(room, text, spans, None, files.to_vec()).await
    }

    /// Sends the sticker `id` of the server's catalogue
    /// ([`Client::list_stickers`]) as a message (SPEC.md §5.11.3). Others
    /// receive a message whose `sticker` is `id` and whose text is its
    /// fallback `:id:`. Errors: `UNKNOWN_STICKER`, and those of
    /// [`Client::send_message`] but the text's.
    pub async fn send_sticker(&self, room: RoomId, id: &str) -> Result<MessageAck, Error> {
        let sticker = Some(id.to_owned());
        self.post(room, String::new(), Vec::new(), sticker, Vec::new())
            .await
    }

    /// SEND_MESSAGE.
    async fn post(
        &self,
        room: RoomId,
        body: String,
        spans: Vec<Span>,
        sticker: Option<String>,
        attachments: Vec<u64>,
    ) -> Result<MessageAck, Error> {
        let req = Request::SendMessage {
            room,
            body,
            spans,
            sticker,
            attachments,
        };
        match self.request(req).await? {
            ServerMsg::MessageAck { room, seq, at } => Ok(MessageAck { room, seq, at }),
            other => Err(unexpected("send_message", &other)),
        }
    }

    /// The server's sticker catalogue, in id order (LIST_STICKERS, SPEC.md
    /// §5.11.3): each sticker's id, name and art. Messages carry only the
    /// id, so keep it.
    pub async fn list_stickers(&self) -> Result<Vec<Sticker>, Error> {
        match self.request(Request::ListStickers).await? {
            ServerMsg::StickerList { stickers } => Ok(stickers),
            other => Err(unexpected("list_stickers", &other)),
        }
    }

    /// Replaces the text of your message `seq` (SPEC.md §5.4.5). The room
    /// broadcasts a MESSAGE_EDITED event of its own; the acknowledgement
    /// carries that event's seq and time. Counts against the message rate
    /// limit. Errors: `MESSAGE_NOT_FOUND`, `MESSAGE_DELETED`,
    /// `NOT_YOUR_MESSAGE`, and those of [`Client::send_message`].
    pub async fn edit_message(
        &self,
        room: RoomId,
        seq: Seq,
        text: &str,
    ) -> Result<MessageAck, Error> {
        self.edit(room, seq, text.to_owned(), Vec::new()).await
    }

    /// Replaces the text and formatting of your message `seq` with
    /// `message`'s: as [`Client::edit_message`], and the span errors of
    /// [`Client::send_rich`]. A sticker message cannot be edited
    /// (`STICKER_MESSAGE`).
    pub async fn edit_rich(
        &self,
        room: RoomId,
        seq: Seq,
        message: &RichText,
    ) -> Result<MessageAck, Error> {
        let (text, spans) = message.clone().into_parts();
        self.edit(room, seq, text, spans).await
    }

    /// EDIT_MESSAGE.
    async fn edit(
        &self,
        room: RoomId,
        seq: Seq,
        text: String,
        spans: Vec<Span>,
    ) -> Result<MessageAck, Error> {
        let req = Request::EditMessage {
            room,
            seq,
            text,
            spans,
        };
        match self.request(req).await? {
            ServerMsg::MessageAck { room, seq, at } => Ok(MessageAck { room, seq, at }),
            other => Err(unexpected("edit_message", &other)),
        }
    }

    /// Deletes the message `seq`: yours, or anyone's if you are an admin of
    /// the room (SPEC.md §5.4.5). The room broadcasts a MESSAGE_DELETED
    /// event of its own, whose seq and time the acknowledgement carries;
    /// history then shows a tombstone in the message's place. Errors:
    /// `MESSAGE_NOT_FOUND`, `MESSAGE_DELETED`, `NOT_YOUR_MESSAGE`,
    /// `NOT_A_MEMBER`.
    pub async fn delete_message(&self, room: RoomId, seq: Seq) -> Result<MessageAck, Error> {
        match self.request(Request::DeleteMessage { room, seq }).await? {
            ServerMsg::MessageAck { room, seq, at } => Ok(MessageAck { room, seq, at }),
            other => Err(unexpected("delete_message", &other)),
        }
    }

    /// Up to `limit` (1–200) of the room's events, newest first: the
    /// newest ones with `before = None`, else those with `seq < before`.
    /// To page back, pass the smallest seq of the previous page.
    pub async fn history(
        &self,
        room: RoomId,
        before: Option<Seq>,
        limit: u32,
    ) -> Result<HistoryPage, Error> {
        match self
            .request(Request::History {
                room,
                before: Seq(before_on_wire(before.map(|s| s.0))),
                limit,
            })
            .await?
        {
            ServerMsg::HistoryPage {
                room,
                events,
                has_more,
            } => Ok(HistoryPage {
                room,
                events,
                has_more,
            }),
            other => Err(unexpected("history", &other)),
        }
    }

    /// The rooms the caller is a member of.
    pub async fn my_rooms(&self) -> Result<Vec<RoomInfo>, Error> {
        match self.request(Request::MyRooms).await? {
            ServerMsg::RoomList { rooms, .. } => Ok(rooms),
            other => Err(unexpected("my_rooms", &other)),
        }
    }

    /// Your unread messages: in all your rooms (`total`) and per room
    /// (each with your read marker), from one MY_ROOMS (SPEC.md §5.3.5).
    /// A room's unread count is its messages after your marker that
    /// others sent, deleted ones excluded.
    pub async fn unread(&self) -> Result<UnreadSummary, Error> {
        match self.request(Request::MyRooms).await? {
            ServerMsg::RoomList {
                unread: Some(unread),
                ..
            } => Ok(unread),
            other => Err(unexpected("unread", &other)),
        }
    }

    /// Marks `room` read up to and including `seq` (SET_READ_MARKER,
    /// SPEC.md §5.9); your other connections get
    /// [`crate::Event::ReadMarkerMoved`]. The marker never moves back: a
    /// lower `seq` changes nothing. Returns the marker as it now is, with
    /// the room's unread count. Errors: `INVALID_READ_MARKER` (beyond the
    /// room's last event), `NOT_A_MEMBER`, `ROOM_NOT_FOUND`.
    pub async fn set_read_marker(&self, room: RoomId, seq: Seq) -> Result<ReadState, Error> {
        match self.request(Request::SetReadMarker { room, seq }).await? {
            ServerMsg::ReadMarker(state) => Ok(state),
            other => Err(unexpected("set_read_marker", &other)),
        }
    }

    /// Sets (`true`) or clears your away state, for all of your
    /// connections (SET_AWAY, SPEC.md §5.10.1): while any connection is
    /// open you show as away until you clear it or all of them close.
    /// With no connection open (an HTTP caller) it changes nothing.
    pub async fn set_away(&self, away: bool) -> Result<(), Error> {
        match self.request(Request::SetAway { away }).await? {
            ServerMsg::Ok => Ok(()),
            other => Err(unexpected("set_away", &other)),
        }
    }

    /// Changes your password (CHANGE_PASSWORD, SPEC.md §5.2.4). Every
    /// other session of yours ends: its tokens stop working and its
    /// connections close with `PASSWORD_CHANGED`; this one goes on.
    /// Errors: `INVALID_CREDENTIALS` (the current password is wrong; it
    /// counts as a failed login), `INVALID_PASSWORD` (the new one is not
    /// 8-256 bytes), `TOO_MANY_ATTEMPTS` and `OVERLOADED` with
    /// [`Error::retry_after`].
    pub async fn change_password(&self, current: &str, new: &str) -> Result<(), Error> {
        let req = Request::ChangePassword(confab_protocol::PasswordChange {
            current: current.to_owned(),
            new: new.to_owned(),
        });
        match self.request(req).await? {
            ServerMsg::Ok => Ok(()),
            other => Err(unexpected("change_password", &other)),
        }
    }

    /// `user`'s profile (GET_PROFILE, SPEC.md §5.2.5); its email only if
    /// it is yours. Errors: `NO_SUCH_USER`.
    pub async fn profile(&self, user: UserId) -> Result<Profile, Error> {
        match self.request(Request::GetProfile { user }).await? {
            ServerMsg::Profile(p) => Ok(p),
            other => Err(unexpected("profile", &other)),
        }
    }

    /// Replaces your profile (UPDATE_PROFILE): `None` and an empty bio
    /// clear. Returns it as stored. Your rooms' members get
    /// [`Event::ProfileChanged`]. Errors: `INVALID_DISPLAY_NAME`,
    /// `INVALID_BIO`, `INVALID_EMAIL`, `PROFILE_RATE_LIMITED` (with
    /// [`Error::retry_after`]).
    pub async fn update_profile(&self, update: ProfileUpdate) -> Result<Profile, Error> {
        match self.request(Request::UpdateProfile(update)).await? {
            ServerMsg::Profile(p) => Ok(p),
            other => Err(unexpected("update_profile", &other)),
        }
    }

    /// Sends PING and returns the round-trip time.
    pub async fn ping(&self) -> Result<Duration, Error> {
        let nonce = rand::random::<u64>();
        let start = Instant::now();
        match self.request(Request::Ping { nonce }).await? {
            ServerMsg::Pong { nonce: echoed } if echoed == nonce => Ok(start.elapsed()),
            other => Err(unexpected("ping", &other)),
        }
    }

    /// Sends any wire request and returns the server's reply (an ERROR
    /// reply becomes [`Error::Server`]). The typed methods are built on
    /// this; it is here for tools and tests, and its types follow the wire
    /// protocol crate's versions ([`crate::raw`]). Sending HELLO makes the
    /// server close the connection.
    pub async fn raw_request(
        &self,
        req: crate::raw::Request,
    ) -> Result<crate::raw::ServerMsg, Error> {
        self.request(req).await
    }

    async fn request(&self, req: Request) -> Result<ServerMsg, Error> {
        let deadline = Instant::now() + self.inner.request_timeout;
        let (reply, rx) = oneshot::channel();
        match tokio::time::timeout_at(
            deadline,
            self.inner.commands.send(Command::Request { req, reply }),
        )
        .await
        {
            Err(_) => return Err(Error::Timeout),
            Ok(Err(_)) => return Err(Error::Disconnected),
            Ok(Ok(())) => {}
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Err(_) => Err(Error::Timeout),
            Ok(Err(_)) => Err(Error::Disconnected),
            Ok(Ok(result)) => result,
        }
    }

    /// A handle on the event stream, which every clone of this client and
    /// every handle share: each event goes to one of them.
    pub fn events(&self) -> Events {
        Events::new(self.inner.events.clone())
    }

    /// The next event; `None` once the client has stopped for good.
    /// Cancel-safe.
    pub async fn next_event(&self) -> Option<Event> {
        event::recv(self.inner.events.clone()).await
    }

    /// The next event: `Err(Elapsed)` if none arrives within `timeout`,
    /// `Ok(None)` once the client has stopped for good. Cancel-safe.
    pub async fn next_event_timeout(&self, timeout: Duration) -> Result<Option<Event>, Elapsed> {
        tokio::time::timeout(timeout, self.next_event())
            .await
            .map_err(|_| Elapsed::new(timeout))
    }

    /// Declares that the application has seen `room` up to `seq` (from
    /// [`Client::history`], say): later events at or below it are dropped,
    /// and a reconnect resumes after it. Never lowers what was seen.
    pub async fn track_room(&self, room: RoomId, seq: Seq) {
        let _ = self.inner.commands.send(Command::Track { room, seq }).await;
    }

    /// The last seen seq of every tracked room: what a reconnect would ask
    /// to resume from. Pass them in [`ConnectOptions::resume`] to resume on
    /// a new client. Empty once the client has stopped.
    pub async fn resume_points(&self) -> Vec<ResumePoint> {
        let (reply, rx) = oneshot::channel();
        if self
            .inner
            .commands
            .send(Command::ResumePoints { reply })
            .await
            .is_err()
        {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// The last seen seq of `room`, if the room is tracked.
    pub async fn last_seen(&self, room: RoomId) -> Option<Seq> {
        self.resume_points()
            .await
            .into_iter()
            .find(|p| p.room == room)
            .map(|p| p.after)
    }

    /// Closes the connection and stops reconnecting. Requests in flight fail
    /// with [`Error::Disconnected`]; the event stream ends. Idempotent.
    pub async fn close(&self) {
        let (done, rx) = oneshot::channel();
        if self
            .inner
            .commands
            .send(Command::Close { done })
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
    }
}

/// One page of notifications, from [`Client::notifications`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NotificationPage {
    /// The user's unread count (the badge), whatever the page holds.
    pub unread: u32,
    /// Newest first.
    pub items: Vec<Notification>,
    /// Whether older notifications exist.
    pub has_more: bool,
}

impl NotificationPage {
    /// A page as the server would send it (for tests and fakes).
    pub fn new(unread: u32, items: Vec<Notification>, has_more: bool) -> NotificationPage {
        NotificationPage {
            unread,
            items,
            has_more,
        }
    }
}

/// One page of a room's audit trail, from [`Client::room_audit`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditPage {
    /// The room.
    pub room: RoomId,
    /// Newest first.
    pub items: Vec<AuditItem>,
    /// Whether older entries exist.
    pub has_more: bool,
}

impl AuditPage {
    /// A page as the server would send it (for tests and fakes).
    pub fn new(room: RoomId, items: Vec<AuditItem>, has_more: bool) -> AuditPage {
        AuditPage {
            room,
            items,
            has_more,
        }
    }
}

/// Governance (SPEC.md §8): invitations, join requests, kick and ban,
/// roles, notifications, the room log and the audit trail.
impl Client {
    /// Expects a plain OK for `request`.
    async fn expect_ok(&self, name: &'static str, req: Request) -> Result<(), Error> {
        match self.request(req).await? {
            ServerMsg::Ok => Ok(()),
            other => Err(unexpected(name, &other)),
        }
    }

    /// Invites a user (by id or username) to a room; admins only.
    pub async fn invite(&self, room: RoomId, user: UserRef) -> Result<(), Error> {
        self.expect_ok("invite", Request::Invite { room, user })
            .await
    }

    /// Accepts a pending invitation: joins the room.
    pub async fn accept_invite(&self, room: RoomId) -> Result<RoomInfo, Error> {
        match self
            .request(Request::RespondInvite { room, accept: true })
            .await?
        {
            ServerMsg::Room(info) => Ok(info),
            other => Err(unexpected("accept_invite", &other)),
        }
    }

    /// Declines a pending invitation.
    pub async fn decline_invite(&self, room: RoomId) -> Result<(), Error> {
        self.expect_ok(
            "decline_invite",
            Request::RespondInvite {
                room,
                accept: false,
            },
        )
        .await
    }

    /// Asks the room's admins to let the caller in.
    pub async fn request_join(&self, room: RoomId) -> Result<(), Error> {
        self.expect_ok("request_join", Request::RequestJoin { room })
            .await
    }

    /// Approves or denies a pending join request; admins only.
    pub async fn decide_request(
        &self,
        room: RoomId,
        user: UserId,
        approve: bool,
    ) -> Result<(), Error> {
        self.expect_ok(
            "decide_request",
            Request::DecideRequest {
                room,
                user,
                approve,
            },
        )
        .await
    }

    /// Removes a member from the room; admins only (only the owner may
    /// kick an admin).
    pub async fn kick(&self, room: RoomId, user: UserId) -> Result<(), Error> {
        self.expect_ok("kick", Request::Kick { room, user }).await
    }

    /// Bans a user (by id or username) from the room, removing them if
    /// they are a member; admins only (only the owner may ban an admin).
    pub async fn ban(&self, room: RoomId, user: UserRef) -> Result<(), Error> {
        self.expect_ok("ban", Request::Ban { room, user }).await
    }

    /// Lifts a ban; admins only.
    pub async fn unban(&self, room: RoomId, user: UserId) -> Result<(), Error> {
        self.expect_ok("unban", Request::Unban { room, user }).await
    }

    /// Makes (`Role::Admin`) or unmakes (`Role::Member`) an admin; the owner only.
    pub async fn set_role(&self, room: RoomId, user: UserId, role: Role) -> Result<(), Error> {
        self.expect_ok("set_role", Request::SetRole { room, user, role })
            .await
    }

    /// Renames the room or changes its topic; admins only.
    pub async fn update_room(&self, room: RoomId, name: &str, topic: &str) -> Result<(), Error> {
        let req = Request::UpdateRoom {
            room,
            name: name.to_owned(),
            topic: topic.to_owned(),
        };
        self.expect_ok("update_room", req).await
    }

    async fn user_list(&self, name: &'static str, req: Request) -> Result<Vec<UserEntry>, Error> {
        match self.request(req).await? {
            ServerMsg::UserList { users, .. } => Ok(users),
            other => Err(unexpected(name, &other)),
        }
    }

    /// Pending join requests, oldest first; admins only.
    pub async fn join_requests(&self, room: RoomId) -> Result<Vec<UserEntry>, Error> {
        self.user_list("join_requests", Request::ListJoinRequests { room })
            .await
    }

    /// The room's bans; admins only.
    pub async fn bans(&self, room: RoomId) -> Result<Vec<UserEntry>, Error> {
        self.user_list("bans", Request::ListBans { room }).await
    }

    /// Up to `limit` (1–200) of the caller's notifications (only unread
    /// ones with `unread_only`), newest first: the newest with
    /// `before = None`, else those with `id < before`. To page back, pass
    /// the smallest id of the previous page.
    pub async fn notifications(
        &self,
        before: Option<u64>,
        limit: u32,
        unread_only: bool,
    ) -> Result<NotificationPage, Error> {
        match self
            .request(Request::ListNotifications {
                before: before_on_wire(before),
                limit,
                unread_only,
            })
            .await?
        {
            ServerMsg::NotificationList {
                unread,
                has_more,
                items,
            } => Ok(NotificationPage {
                unread,
                items,
                has_more,
            }),
            other => Err(unexpected("notifications", &other)),
        }
    }

    /// Marks notifications up to `up_to` read; returns the unread count left.
    pub async fn mark_read(&self, up_to: u64) -> Result<u32, Error> {
        match self.request(Request::MarkRead { up_to }).await? {
            ServerMsg::UnreadCount { unread } => Ok(unread),
            other => Err(unexpected("mark_read", &other)),
        }
    }

    /// Every room the caller was active in, most recently joined first.
    pub async fn room_log(&self) -> Result<Vec<RoomLogItem>, Error> {
        match self.request(Request::RoomLog).await? {
            ServerMsg::RoomLogList { items } => Ok(items),
            other => Err(unexpected("room_log", &other)),
        }
    }

    /// Up to `limit` (1–200) entries of the room's audit trail, newest
    /// first: the newest with `before = None`, else those with
    /// `id < before`; admins only. To page back, pass the smallest id of
    /// the previous page.
    pub async fn room_audit(
        &self,
        room: RoomId,
        before: Option<u64>,
        limit: u32,
    ) -> Result<AuditPage, Error> {
        match self
            .request(Request::RoomAudit {
                room,
                before: before_on_wire(before),
                limit,
            })
            .await?
        {
            ServerMsg::AuditPage {
                room,
                has_more,
                items,
            } => Ok(AuditPage {
                room,
                items,
                has_more,
            }),
            other => Err(unexpected("room_audit", &other)),
        }
    }
}

fn unexpected(request: &'static str, reply: &ServerMsg) -> Error {
    Error::UnexpectedReply {
        request,
        kind: reply.kind(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_bounds_have_no_sentinel() {
        assert_eq!(before_on_wire(None), 0, "the wire's 'from the newest'");
        assert_eq!(before_on_wire(Some(0)), 1, "before the first: nothing");
        assert_eq!(before_on_wire(Some(1)), 1);
        assert_eq!(before_on_wire(Some(42)), 42);
    }

    #[test]
    fn session_debug_never_shows_the_token() {
        let token = "0123456789abcdef0123456789abcdef";
        let session = Session::new(UserId(7), "alice", token);
        for shown in [format!("{session:?}"), format!("{session:#?}")] {
            assert!(!shown.contains(token), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
            assert!(shown.contains("alice"), "{shown}");
        }
    }
}

/// A room to create with [`Client::create`]: public, no topic and no
/// members besides the creator unless set.
///
/// ```
/// use confab_sdk::{NewRoom, UserRef, Visibility};
/// let trip = NewRoom::new("weekend trip")
///     .visibility(Visibility::Private)
///     .member(UserRef::name("bob"))
///     .member(UserRef::name("carol"));
/// ```
#[derive(Debug, Clone)]
pub struct NewRoom {
    name: String,
    topic: String,
    visibility: Visibility,
    members: Vec<UserRef>,
}

impl NewRoom {
    /// A public room named `name` (1-64 characters after trimming).
    pub fn new(name: impl Into<String>) -> NewRoom {
        NewRoom {
            name: name.into(),
            topic: String::new(),
            visibility: Visibility::Public,
            members: Vec::new(),
        }
    }

    /// The room's topic (at most 256 characters).
    pub fn topic(mut self, topic: impl Into<String>) -> NewRoom {
        self.topic = topic.into();
        self
    }

    /// Public (the default) or private.
    pub fn visibility(mut self, visibility: Visibility) -> NewRoom {
        self.visibility = visibility;
        self
    }

    /// Adds an initial member (by id or username); each receives
    /// ROOM_ANNOUNCED. At most 50.
    pub fn member(mut self, user: UserRef) -> NewRoom {
        self.members.push(user);
        self
    }

    /// Adds several initial members.
    pub fn members(mut self, users: impl IntoIterator<Item = UserRef>) -> NewRoom {
        self.members.extend(users);
        self
    }
}
