//! Request dispatch: decode a frame, then one table from each request to
//! what handles it — the session itself (accounts, PING), the owning shard
//! (every room command: the room state machine decides), or a store read.
//!
//! Shapes (lengths, emptiness, paging, rate) are checked here, before
//! anything is routed (`validate`); rules are the room's. Nothing is routed
//! or stored for a refused request.

use confab_protocol::frame::{kind, HEADER_LEN};
use confab_protocol::rich::sticker_text;
use confab_protocol::wire::Reader;
use confab_protocol::{
    event_kind, DecodeError, ErrorCode, EventBody, RawFrame, Request, RoomId, Seq, ServerMsg, Span,
    UserId,
};
use confab_store::StoredEvent;
use tokio::sync::oneshot;

use super::validate::{self, check_room_name, check_topic};
use super::Session;
use crate::limit::LimitKind;
use crate::room::{Command, Lookup, MessageFacts, Rich};
use crate::shard::{ReplyTo, RosterList, ShardCmd};

/// The retry hint sent with a push-back: about a few commits' time.
const PUSHBACK_RETRY: std::time::Duration = std::time::Duration::from_millis(50);

impl Session {
    /// Handles one frame after the handshake. `false` ends the connection.
    pub(super) async fn handle(&mut self, frame: RawFrame) -> bool {
        match Request::decode(&frame) {
            Ok(req) => {
                if !matches!(req, Request::Hello(_)) {
                    // Every other request is answered exactly once.
                    self.conn.request_received();
                }
                let len = frame.payload.len() + HEADER_LEN;
                crate::metrics::request_received(
                    &self.conn.stats,
                    frame.kind,
                    req.name(),
                    frame.req_id,
                    len,
                );
                self.dispatch(frame.req_id, req).await
            }
            Err(e) => {
                let what = match &e {
                    DecodeError::UnknownFrameType(t) if kind::is_server_frame(*t) => {
                        format!("frame type 0x{t:02x} is sent by servers only")
                    }
                    DecodeError::UnknownFrameType(t) => format!("unknown frame type 0x{t:02x}"),
                    e => format!("malformed frame type 0x{:02x}: {e}", frame.kind),
                };
                self.fatal(e.code(), &what);
                false
            }
        }
    }

    /// Carries out one decoded request. `false` ends the connection.
    pub(super) async fn dispatch(&mut self, req_id: u32, req: Request) -> bool {
        // Before authentication: the handshake's own frames and accounts.
        let req = match req {
            Request::Hello(_) => {
                self.fatal(ErrorCode::HandshakeRequired, "HELLO may be sent only once");
                return false;
            }
            Request::Ping { nonce } => {
                self.conn.reply(req_id, &ServerMsg::Pong { nonce });
                return true;
            }
            Request::Register { username, password } => {
                self.register(req_id, username, password.into_string())
                    .await;
                return true;
            }
            Request::Login { username, password } => {
                self.login(req_id, username, password.into_string()).await;
                return true;
            }
            other => other,
        };
        let Some(auth) = &self.auth else {
            self.error(req_id, ErrorCode::NotAuthenticated);
            return true;
        };
        let (user, username) = (auth.user, auth.username.clone());
        let routed = match req {
            Request::Logout => return self.logout(req_id).await,

            // Rooms: the owning shard applies every rule.
            Request::CreateRoom {
                name,
                topic,
                visibility,
                members,
            } => {
                let name = match check_room_name(&name).and_then(|n| {
                    check_topic(&topic)?;
                    Ok(n)
                }) {
                    Ok(n) => n,
                    Err(code) => return self.reject(req_id, code),
                };
                // Resolved here: a shard never awaits the store.
                let members = match self.initial_members(user, &members).await {
                    Ok(m) => m,
                    Err(code) => return self.reject(req_id, code),
                };
                if self.pushed_back(req_id) {
                    return true;
                }
                let room = match self.fresh_room_id().await {
                    Ok(room) => room,
                    Err(code) => return self.reject(req_id, code),
                };
                let cmd = ShardCmd::Create {
                    room,
                    name,
                    topic,
                    visibility,
                    user,
                    username,
                    members,
                    reply: self.reply_to(req_id),
                };
                self.state.router.send(room, cmd).await
            }
            Request::OpenDirect { user: target } => match self.resolve(&target).await {
                Ok((other, _)) if other == user => Err(ErrorCode::CannotTargetSelf),
                Ok((other, other_name)) => {
                    if self.pushed_back(req_id) {
                        return true;
                    }
                    let pair = if user < other {
                        (user, other)
                    } else {
                        (other, user)
                    };
                    let room = if self.state.hosted.is_none() {
                        let ids = &self.state.room_ids;
                        self.state.directs.room_for(pair, || {
                            RoomId(ids.take().expect("a single node's ids never run out"))
                        })
                    } else {
                        match self.cluster_direct_room(pair).await {
                            Ok(room) => room,
                            Err(code) => return self.reject(req_id, code),
                        }
                    };
                    let cmd = ShardCmd::OpenDirect {
                        room,
                        opener: (user, username),
                        other: (other, other_name),
                        reply: self.reply_to(req_id),
                    };
                    self.state.router.send(room, cmd).await
                }
                Err(code) => Err(code),
            },
            Request::JoinRoom { room } => {
                self.apply(req_id, room, Command::Join { user, username })
                    .await
            }
            Request::LeaveRoom { room } => self.apply(req_id, room, Command::Leave { user }).await,
            Request::SendMessage {
                room,
                body,
                spans,
                sticker,
                attachments,
            } => {
                let content = (&body[..], &spans[..], sticker.as_deref(), &attachments[..]);
                if let Some(go_on) = self.refuse_message(req_id, user, content) {
                    return go_on;
                }
                let (store, batch) = (&*self.state.store, &self.state.batch);
                let attachments =
                    match crate::files::attach::claim(store, batch, room, user, &attachments).await
                    {
                        Ok(files) => files,
                        Err((code, message)) => {
                            self.conn.error(req_id, code, message);
                            return true;
                        }
                    };
                // A sticker message's text is its fallback (SPEC.md §5.11.3).
                let text = sticker.as_deref().map_or(body, sticker_text);
                let rich = Rich {
                    spans,
                    sticker,
                    attachments,
                };
                self.apply(req_id, room, Command::Post { user, text, rich })
                    .await
            }
            Request::Invite { room, user: target } => match self.resolve(&target).await {
                Ok((target, target_name)) => {
                    let cmd = Command::Invite {
                        by: user,
                        target,
                        target_name,
                    };
                    self.apply(req_id, room, cmd).await
                }
                Err(code) => Err(code),
            },
            Request::RespondInvite { room, accept } => {
                let cmd = Command::RespondInvite {
                    user,
                    username,
                    accept,
                };
                self.apply(req_id, room, cmd).await
            }
            Request::RequestJoin { room } => {
                self.apply(req_id, room, Command::RequestJoin { user, username })
                    .await
            }
            Request::DecideRequest {
                room,
                user: target,
                approve,
            } => {
                let cmd = Command::Decide {
                    by: user,
                    target,
                    approve,
                };
                self.apply(req_id, room, cmd).await
            }
            Request::Kick { room, user: target } => {
                self.apply(req_id, room, Command::Kick { by: user, target })
                    .await
            }
            Request::Ban { room, user: target } => match self.resolve(&target).await {
                Ok((target, target_name)) => {
                    let cmd = Command::Ban {
                        by: user,
                        target,
                        target_name,
                    };
                    self.apply(req_id, room, cmd).await
                }
                Err(code) => Err(code),
            },
            Request::Unban { room, user: target } => {
                self.apply(req_id, room, Command::Unban { by: user, target })
                    .await
            }
            Request::SetRole {
                room,
                user: target,
                role,
            } => {
                let cmd = Command::SetRole {
                    by: user,
                    target,
                    role,
                };
                self.apply(req_id, room, cmd).await
            }
            Request::UpdateRoom { room, name, topic } => {
                let name = match check_room_name(&name).and_then(|n| {
                    check_topic(&topic)?;
                    Ok(n)
                }) {
                    Ok(n) => n,
                    Err(code) => return self.reject(req_id, code),
                };
                let cmd = Command::Update {
                    by: user,
                    name,
                    topic,
                };
                self.apply(req_id, room, cmd).await
            }

            Request::EditMessage {
                room,
                seq,
                text,
                spans,
            } => {
                // An edit costs what a message costs: the same checks, the
                // same limit and the same push-back.
                if let Some(go_on) = self.refuse_message(req_id, user, (&text, &spans, None, &[])) {
                    return go_on;
                }
                let cmd = Command::EditMessage {
                    user,
                    seq,
                    text,
                    spans,
                    stored: Lookup::NotRead,
                };
                self.change_message(req_id, room, seq, cmd).await
            }
            Request::DeleteMessage { room, seq } => {
                if self.pushed_back(req_id) {
                    return true;
                }
                let cmd = Command::DeleteMessage {
                    user,
                    seq,
                    stored: Lookup::NotRead,
                };
                self.change_message(req_id, room, seq, cmd).await
            }

            // Typing: the owning shard forwards it (never stored).
            Request::TypingStart { room } => self.typing(req_id, room, user, true).await,
            Request::TypingStop { room } => self.typing(req_id, room, user, false).await,

            // Reads the owning shard answers from memory.
            Request::ListMembers { room } => {
                let cmd = ShardCmd::Members {
                    room,
                    user,
                    reply: self.reply_to(req_id),
                };
                self.state.router.send(room, cmd).await
            }
            Request::ListJoinRequests { room } => {
                self.roster(req_id, room, user, RosterList::JoinRequests)
                    .await
            }
            Request::ListBans { room } => self.roster(req_id, room, user, RosterList::Bans).await,

            // Reads from the store (`reads.rs`).
            Request::ListRooms {
                query,
                offset,
                limit,
                exact,
            } => self.list_rooms(req_id, user, query, exact, offset, limit),
            Request::MyRooms => self.my_rooms(req_id, user),
            Request::History {
                room,
                before,
                limit,
            } => self.history(req_id, user, room, before, limit),
            Request::ListNotifications {
                before,
                limit,
                unread_only,
            } => self.notifications(req_id, user, before, limit, unread_only),
            Request::MarkRead { up_to } => self.mark_read(req_id, user, up_to),
            Request::SetReadMarker { room, seq } => {
                self.set_read_marker(req_id, user, room, seq).await
            }
            Request::RoomLog => self.room_log(req_id, user),
            Request::ListStickers => {
                let stickers = self.state.stickers.list();
                self.conn
                    .reply(req_id, &ServerMsg::StickerList { stickers });
                Ok(())
            }
            // Presence: every shard keeps it (SPEC.md §5.10.1), and in
            // cluster mode every node's.
            Request::SetAway { away } => {
                self.state
                    .router
                    .send_all(|| ShardCmd::SetAway { user, away })
                    .await;
                if let Some(relay) = &self.state.relay {
                    relay.push(crate::cluster::wire::UserPush::Away { user, away });
                }
                self.conn.reply(req_id, &ServerMsg::Ok);
                Ok(())
            }
            Request::RoomAudit {
                room,
                before,
                limit,
            } => self.room_audit(req_id, user, room, before, limit).await,

            // Accounts and profiles (`profile.rs`): account writes.
            Request::ChangePassword(change) => {
                self.change_password(req_id, change).await;
                Ok(())
            }
            Request::GetProfile { user: target } => {
                self.get_profile(req_id, user, target).await;
                Ok(())
            }
            Request::UpdateProfile(update) => {
                self.update_profile(req_id, user, update).await;
                Ok(())
            }

            // Handled above, before authentication.
            Request::Hello(_)
            | Request::Ping { .. }
            | Request::Register { .. }
            | Request::Login { .. } => Ok(()),
        };
        if let Err(code) = routed {
            self.error(req_id, code);
        }
        true
    }

    /// Answers a request with a non-fatal error; the connection goes on.
    pub(super) fn reject(&self, req_id: u32, code: ErrorCode) -> bool {
        self.error(req_id, code);
        true
    }

    /// A new room's id: a single node's next; a cluster node's next in a
    /// partition it serves (`ROOM_MOVING` while it serves none).
    async fn fresh_room_id(&self) -> Result<RoomId, ErrorCode> {
        let hosted = self.state.hosted.as_deref();
        self.state
            .room_ids
            .take_fitting(|id| hosted.is_none_or(|h| h.serves(RoomId(id))))
            .await
            .map(RoomId)
            .ok_or(ErrorCode::RoomMoving)
    }

    /// Cluster mode: the direct room of `pair`. The pair map holds the
    /// direct rooms this node has served or looked up (a pair's room never
    /// changes); any other pair is claimed in the store with a fresh id of
    /// a partition served here, and whichever node's claim came first
    /// decides the room for both (`LeaseStore::direct_room`): the room may
    /// then be another node's, where the OPEN_DIRECT is forwarded.
    async fn cluster_direct_room(&self, pair: (UserId, UserId)) -> Result<RoomId, ErrorCode> {
        if let Some(room) = self.state.directs.get(pair) {
            return Ok(room);
        }
        let store = self
            .state
            .cluster_store
            .as_ref()
            .ok_or(ErrorCode::Internal)?;
        // An id left unused if the pair has its room already.
        let fresh = self.fresh_room_id().await?;
        let claimed = store.direct_room(pair, fresh);
        match crate::metrics::query("direct_room", claimed).await {
            Ok(room) => {
                self.state.directs.learn([(pair, room)]);
                Ok(room)
            }
            Err(e) => {
                crate::metrics::query_error();
                tracing::warn!(error = %e, "claiming a direct room failed");
                Err(ErrorCode::StorageUnavailable)
            }
        }
    }

    /// Where the shard or the batch writer sends this request's answer.
    fn reply_to(&self, req_id: u32) -> ReplyTo {
        ReplyTo {
            conn: self.conn.clone(),
            req_id,
        }
    }

    /// Routes a room command to the room's shard; the answer comes from
    /// the shard (refusals) or the batch writer (after commit).
    async fn apply(&self, req_id: u32, room: RoomId, cmd: Command) -> Result<(), ErrorCode> {
        let cmd = ShardCmd::Apply {
            room,
            cmd,
            reply: self.reply_to(req_id),
        };
        self.state.router.send(room, cmd).await
    }

    /// EDIT_MESSAGE / DELETE_MESSAGE. The shard rules from memory on
    /// messages the store may not hold yet (the usual case: a recent
    /// message); for an older one it asks for the store's copy, which a
    /// task reads and sends back with the command, as often as the room
    /// finds the read too old (`room::messages`).
    async fn change_message(
        &self,
        req_id: u32,
        room: RoomId,
        seq: Seq,
        cmd: Command,
    ) -> Result<(), ErrorCode> {
        /// Reads before giving up on a message changed all the time.
        const MAX_READS: usize = 4;
        let (tx, mut asked) = oneshot::channel();
        let first = ShardCmd::ChangeMessage {
            room,
            cmd: cmd.clone(),
            reply: self.reply_to(req_id),
            need_store: tx,
        };
        self.state.router.send(room, first).await?;
        let (state, conn) = (self.state.clone(), self.conn.clone());
        let reply = self.reply_to(req_id);
        tokio::spawn(async move {
            let mut cmd = cmd;
            for _ in 0..MAX_READS {
                // Dropped unanswered: the shard answered on the connection.
                let Ok(generation) = asked.await else {
                    return;
                };
                let read = state.store.history(room, Seq(seq.0.saturating_add(1)), 1);
                let found = match crate::metrics::query("message", read).await {
                    Ok(events) => events
                        .into_iter()
                        .find(|e| e.seq == seq)
                        .and_then(|e| message_facts(&e)),
                    Err(e) => {
                        super::storage_error(&conn, req_id, e);
                        conn.flush();
                        return;
                    }
                };
                let stored = Lookup::Read { generation, found };
                match &mut cmd {
                    Command::EditMessage { stored: s, .. }
                    | Command::DeleteMessage { stored: s, .. } => *s = stored,
                    _ => return,
                }
                let (tx, rx) = oneshot::channel();
                asked = rx;
                let again = ShardCmd::ChangeMessage {
                    room,
                    cmd: cmd.clone(),
                    reply: ReplyTo {
                        conn: reply.conn.clone(),
                        req_id,
                    },
                    need_store: tx,
                };
                if let Err(code) = state.router.send(room, again).await {
                    conn.error(req_id, code, code.default_message());
                    conn.flush();
                    return;
                }
            }
            if asked.await.is_ok() {
                conn.error(
                    req_id,
                    ErrorCode::Overloaded,
                    "the message changed while it was read; retry",
                );
                conn.flush();
            }
        });
        Ok(())
    }

    /// TYPING_START / TYPING_STOP: the shard answers OK at once and
    /// forwards what the throttle lets through (SPEC.md §5.5.7).
    async fn typing(
        &self,
        req_id: u32,
        room: RoomId,
        user: UserId,
        start: bool,
    ) -> Result<(), ErrorCode> {
        let cmd = ShardCmd::Typing {
            room,
            user,
            start,
            reply: self.reply_to(req_id),
        };
        self.state.router.send(room, cmd).await
    }

    /// LIST_JOIN_REQUESTS / LIST_BANS: the shard answers (admins only).
    async fn roster(
        &self,
        req_id: u32,
        room: RoomId,
        user: UserId,
        which: RosterList,
    ) -> Result<(), ErrorCode> {
        let cmd = ShardCmd::Roster {
            room,
            user,
            which,
            reply: self.reply_to(req_id),
        };
        self.state.router.send(room, cmd).await
    }

    /// The checks a message passes before it is routed (SEND_MESSAGE and
    /// EDIT_MESSAGE alike): its shape — the text, its spans or its sticker
    /// (`content`: text, spans, sticker) —, the sender's rate limit,
    /// push-back. `Some(go_on)` when the request was refused (and
    /// answered); `None` to go on.
    fn refuse_message(
        &mut self,
        req_id: u32,
        user: UserId,
        (text, spans, sticker, files): (&str, &[Span], Option<&str>, &[u64]),
    ) -> Option<bool> {
        let shape = validate::check_content(
            (text, spans, sticker, files),
            self.state.config.max_message_len,
            &self.state.stickers,
        );
        if let Err((code, message)) = shape {
            self.conn.error(req_id, code, message);
            return Some(true);
        }
        if let Err(wait) = self.state.limits.check(LimitKind::Messages, user) {
            self.conn.error_retry(req_id, ErrorCode::RateLimited, wait);
            return Some(true);
        }
        if self.pushed_back(req_id) {
            return Some(true);
        }
        None
    }

    /// Push-back (SPEC §7.5): while more than `write_backlog_max`
    /// operations wait for the batch writer, a write that would add to
    /// them is refused with OVERLOADED and a retry hint, before anything
    /// is applied. Shards never wait on the writer, so the bound is kept
    /// here, where requests enter.
    fn pushed_back(&self, req_id: u32) -> bool {
        let max = self.state.config.write_backlog_max;
        if max == 0 || self.state.batch.backlog() <= max {
            return false;
        }
        crate::metrics::write_pushback();
        self.conn
            .error_retry(req_id, ErrorCode::Overloaded, PUSHBACK_RETRY);
        true
    }
}

/// What the room needs to know about a stored event, if it is a message
/// (a tombstone is a deleted one).
fn message_facts(ev: &StoredEvent) -> Option<MessageFacts> {
    let deleted = match ev.kind {
        event_kind::MESSAGE => false,
        event_kind::TOMBSTONE => true,
        _ => return None,
    };
    // A stored body the server wrote decodes; one that does not cannot be
    // a sticker's, nor carry files.
    let (sticker, attachments) = match EventBody::decode_fields(ev.kind, &mut Reader::new(&ev.body))
    {
        Ok(EventBody::Message {
            sticker,
            attachments,
            ..
        }) => (sticker.is_some(), attachments),
        _ => (false, Vec::new()),
    };
    Some(MessageFacts {
        sender: ev.actor,
        sender_name: ev.actor_name.clone(),
        at: ev.at,
        deleted,
        sticker,
        attachments,
    })
}
