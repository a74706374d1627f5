//! Shards: the tasks that own rooms (DESIGN.md invariants 2-5).
//!
//! Room `r` lives on shard `shard_of(r)`, and only that shard's task ever
//! touches it, one command at a time — no locks. For every command the shard
//! runs the room state machine (`crate::room`), then carries out its
//! effects: each event is encoded **once** into `Bytes` and a clone is
//! pushed into each subscribed connection's bounded outbound queue; the
//! room's tail keeps recent event frames for resume and history; state
//! changes go to the batch writer, which sends the acknowledgement after
//! commit.
//!
//! **Architecture invariant:** a shard never awaits I/O. Its only awaits are
//! on its own command channel; replies are pushed, writes are queued.

pub mod coalesce;
mod pacing;
pub mod presence;
mod router;
mod subscribers;
pub mod tail;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use confab_protocol::{
    ErrorCode, PresenceChange, ResumePoint, RoomEvent, RoomId, Seq, ServerMsg, UserEntry, UserId,
    Visibility,
};
use confab_store::{AuditEntry, NotificationRecord, StoredEvent, WriteOp};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::clock::Clock;
use crate::cluster::wire::{RoomOp, RoomOps, UserPush};
use crate::outbound::{ConnId, OutboundQueue, Touched};
use crate::persist::batch::{Ack, BatchHandle, WriteRequest};
use crate::room::typing::TypingOutcome;
use crate::room::{Command, Effect, Room};

pub use router::{spawn_shards, Router};

use subscribers::Subscribers;
pub use tail::TailSlice;
use tail::{Resume, Tail, TailEntry};

/// Where a shard sends the answer to a request.
pub struct ReplyTo {
    pub conn: Arc<OutboundQueue>,
    pub req_id: u32,
}

impl ShardCmd {
    /// Where the command's answer goes, if it has one on a connection.
    pub(crate) fn reply_to(&self) -> Option<&ReplyTo> {
        match self {
            ShardCmd::Create { reply, .. }
            | ShardCmd::OpenDirect { reply, .. }
            | ShardCmd::Apply { reply, .. }
            | ShardCmd::ChangeMessage { reply, .. }
            | ShardCmd::Members { reply, .. }
            | ShardCmd::Typing { reply, .. }
            | ShardCmd::Roster { reply, .. } => Some(reply),
            ShardCmd::Tail { .. }
            | ShardCmd::Tick(_)
            | ShardCmd::SetAway { .. }
            | ShardCmd::RemoteConnection { .. }
            | ShardCmd::ProfileChanged { .. }
            | ShardCmd::CheckReadMarker { .. }
            | ShardCmd::ToUser { .. }
            | ShardCmd::Attach { .. }
            | ShardCmd::Detach { .. }
            | ShardCmd::CheckAdmin { .. }
            | ShardCmd::CheckMember { .. }
            | ShardCmd::Install { .. }
            | ShardCmd::Evict { .. }
            | ShardCmd::Stop => None,
        }
    }

    /// The room a command names: the commands that cluster mode applies
    /// only on the node serving the room (`cluster::Hosted`).
    pub fn room(&self) -> Option<RoomId> {
        match self {
            ShardCmd::Create { room, .. }
            | ShardCmd::OpenDirect { room, .. }
            | ShardCmd::Apply { room, .. }
            | ShardCmd::ChangeMessage { room, .. }
            | ShardCmd::Members { room, .. }
            | ShardCmd::Tail { room, .. }
            | ShardCmd::Roster { room, .. }
            | ShardCmd::CheckAdmin { room, .. }
            | ShardCmd::CheckMember { room, .. }
            | ShardCmd::Typing { room, .. }
            | ShardCmd::CheckReadMarker { room, .. } => Some(*room),
            ShardCmd::Attach { .. }
            | ShardCmd::Detach { .. }
            | ShardCmd::Tick(_)
            | ShardCmd::SetAway { .. }
            | ShardCmd::RemoteConnection { .. }
            | ShardCmd::ProfileChanged { .. }
            | ShardCmd::ToUser { .. }
            | ShardCmd::Install { .. }
            | ShardCmd::Evict { .. }
            | ShardCmd::Stop => None,
        }
    }

    /// Answers the command with `code` without applying it (cluster mode:
    /// a room this node does not serve), giving back the files a refused
    /// message had claimed.
    pub fn refuse(self, code: ErrorCode, batch: Option<&BatchHandle>) {
        if let (
            ShardCmd::Apply {
                room,
                cmd: Command::Post { rich, .. },
                ..
            },
            Some(batch),
        ) = (&self, batch)
        {
            crate::files::attach::release(batch, *room, rich.file_ids());
        }
        if let Some(reply) = self.reply_to() {
            reply.conn.error(reply.req_id, code, code.default_message());
            reply.conn.flush();
            return;
        }
        match self {
            ShardCmd::Tail { reply, .. } => {
                let _ = reply.send(Err(code));
            }
            ShardCmd::CheckAdmin { reply, .. }
            | ShardCmd::CheckMember { reply, .. }
            | ShardCmd::CheckReadMarker { reply, .. } => {
                let _ = reply.send(Err(code));
            }
            _ => {}
        }
    }
}

/// A command for a shard.
pub enum ShardCmd {
    Create {
        room: RoomId,
        name: String,
        topic: String,
        visibility: Visibility,
        user: UserId,
        username: String,
        /// Initial members besides the creator, resolved by the session.
        members: Vec<(UserId, String)>,
        reply: ReplyTo,
    },
    /// OPEN_DIRECT: creates the direct room `room` of `opener` and
    /// `other` if this shard does not have it yet, else opens it again for
    /// `opener` (`Command::OpenDirect`). The session took `room` from the
    /// server's pair map, so both users' requests name the same room and
    /// whichever arrives first creates it. ROOM is sent after commit.
    OpenDirect {
        room: RoomId,
        opener: (UserId, String),
        other: (UserId, String),
        reply: ReplyTo,
    },
    /// Apply a room command; the reply is sent after the write commits.
    Apply {
        room: RoomId,
        cmd: Command,
        reply: ReplyTo,
    },
    /// EDIT_MESSAGE / DELETE_MESSAGE: applied like `Apply`, unless the
    /// room can rule only with the store's copy of the message; then the
    /// room's change generation goes to `need_store` and nothing is
    /// answered on the connection (the session reads the message and
    /// sends the command again with what it read).
    ChangeMessage {
        room: RoomId,
        cmd: Command,
        reply: ReplyTo,
        need_store: oneshot::Sender<u64>,
    },
    Members {
        room: RoomId,
        user: UserId,
        reply: ReplyTo,
    },
    Tail {
        room: RoomId,
        user: UserId,
        before: Seq,
        limit: usize,
        reply: oneshot::Sender<Result<TailSlice, ErrorCode>>,
    },
    /// A connection of `user` is authenticated: deliver its rooms' events,
    /// replaying from the resume points first.
    Attach {
        user: UserId,
        conn: Arc<OutboundQueue>,
        resume: Arc<[ResumePoint]>,
    },
    /// The connection has gone.
    Detach { user: UserId, conn: ConnId },
    /// Admins list a room's pending join requests or bans (USER_LIST).
    Roster {
        room: RoomId,
        user: UserId,
        which: RosterList,
        reply: ReplyTo,
    },
    /// Answers whether `user` administers the live `room` (for reads the
    /// session then does against the store, like the audit trail).
    CheckAdmin {
        room: RoomId,
        user: UserId,
        reply: oneshot::Sender<Result<(), ErrorCode>>,
    },
    /// Answers whether `user` is a member of the live `room` (files:
    /// uploads to the room and downloads of its files, SPEC.md §13).
    CheckMember {
        room: RoomId,
        user: UserId,
        reply: oneshot::Sender<Result<(), ErrorCode>>,
    },
    /// TYPING_START (`start`) or TYPING_STOP: answered OK at once (nothing
    /// is stored); forwarded to the room's other members unless throttled.
    Typing {
        room: RoomId,
        user: UserId,
        start: bool,
        reply: ReplyTo,
    },
    /// Time passed: send the STOPs of typing states that expired and the
    /// presence updates whose interval is over. `done`, if given, hears
    /// when the tick has been handled ([`crate::app::ServerHandle::tick_shards`]).
    Tick(Option<tokio::sync::oneshot::Sender<()>>),
    /// SET_AWAY by `user` (every shard hears it, as every shard hears
    /// every connection; SPEC.md §5.10).
    SetAway { user: UserId, away: bool },
    /// Cluster mode: a connection of `user` opened (`open`) or closed on
    /// another node — it counts for the user's presence as this node's
    /// own connections do (every shard hears it).
    RemoteConnection { user: UserId, open: bool },
    /// `user` updated their profile (every shard hears it and tells the
    /// rooms it owns, coalesced on the tick; SPEC.md §5.2.5). `profile`
    /// is the public one: no email.
    ProfileChanged {
        user: UserId,
        profile: Arc<confab_protocol::Profile>,
    },
    /// SET_READ_MARKER: whether `user` may mark the live `room` read up
    /// to `seq` (a member, `seq` at most the room's last seq).
    CheckReadMarker {
        room: RoomId,
        user: UserId,
        seq: Seq,
        reply: oneshot::Sender<Result<(), ErrorCode>>,
    },
    /// Pushes `frame` (an event) to every connection of `user` but
    /// `except` (every shard knows every connection).
    ToUser {
        user: UserId,
        except: ConnId,
        frame: Bytes,
    },
    /// Cluster mode: rooms of a partition this node gained, loaded from
    /// the store, to hold from now on (replacing any copy held). `done`
    /// hears when they are installed.
    Install {
        slots: Vec<RoomSlot>,
        /// What this node's connections saw of these rooms while another
        /// node served them: replayed from there as they subscribe.
        seen: Arc<crate::cluster::routing::SeenRooms>,
        done: oneshot::Sender<()>,
    },
    /// Cluster mode: let go of every room of `partitions` (of `of`
    /// partitions). Commands for them that arrive later are refused. `done`
    /// hears when they are gone; everything applied before has been queued
    /// to the batch writer.
    Evict {
        partitions: Vec<u32>,
        of: u32,
        done: oneshot::Sender<()>,
    },
    /// Finish: the shard task returns after this.
    Stop,
}

/// Which user list LIST_JOIN_REQUESTS / LIST_BANS asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RosterList {
    JoinRequests,
    Bans,
}

/// A room and its runtime state on the shard.
pub struct RoomSlot {
    room: Room,
    /// Connections receiving this room's events.
    subscribers: Subscribers,
    /// Recent events. Always holds every event not yet in the database.
    tail: Tail,
    /// Highest seq known to be in the database (raised by the batch
    /// writer at commit, or by the spool's replay).
    stored: Arc<AtomicU64>,
}

impl RoomSlot {
    /// A slot for a room loaded from the store, with its recent events
    /// (ascending seq, all in the database).
    pub fn restored(room: Room, recent: Vec<RoomEvent>) -> RoomSlot {
        let stored = Arc::new(AtomicU64::new(room.last_seq.0));
        let tail = Tail::from_entries(recent.into_iter().map(|ev| TailEntry {
            seq: ev.seq,
            frame: encode_event(&ev),
        }));
        RoomSlot {
            room,
            subscribers: Subscribers::default(),
            tail,
            stored,
        }
    }

    pub fn id(&self) -> RoomId {
        self.room.id
    }
}

fn encode_event(ev: &RoomEvent) -> Bytes {
    let mut buf = BytesMut::with_capacity(48 + ev.actor_name.len());
    ev.encode_frame(&mut buf);
    buf.freeze()
}

/// Shard settings.
#[derive(Debug, Clone)]
pub struct ShardConfig {
    pub tail_cap: usize,
    pub queue_len: usize,
    /// Notification ids (shared by every shard).
    pub notification_ids: Arc<crate::cluster::IdSource>,
    /// The server's clock: the `now` of every room command.
    pub clock: Clock,
    /// Presence updates are pushed only in rooms of at most this many
    /// members (SPEC.md §5.10.2).
    pub presence_max_members: usize,
    /// Cluster mode: the partitions this node owns, whose lease every
    /// write is stamped with (`None` on a single node: no stamp).
    /// Longest a busy shard holds its writes back (flush pacing,
    /// `pacing.rs`); zero: it writes after every pass.
    pub flush_linger_max: std::time::Duration,
    pub ownership: Option<Arc<crate::cluster::Ownership>>,
    /// Cluster mode: which partitions' rooms this node serves, and where
    /// commands for the others go (`None` on a single node).
    pub rooms_here: Option<crate::cluster::RoomsHere>,
}

/// Most commands a shard applies before it writes to the connections they
/// touched: bounds the delay a long backlog adds to the first of them.
const MAX_PASS: usize = 4096;

/// One shard's state. Owned by its task alone.
struct Shard {
    index: usize,
    rooms: HashMap<RoomId, RoomSlot>,
    /// The rooms of this shard each user belongs to.
    user_rooms: HashMap<UserId, Vec<RoomId>>,
    /// Every authenticated connection, by user (all shards know all).
    online: HashMap<UserId, Vec<Arc<OutboundQueue>>>,
    batch: BatchHandle,
    tail_cap: usize,
    /// Notification ids, shared by all shards (ids are global).
    notification_ids: Arc<crate::cluster::IdSource>,
    clock: Clock,
    /// The connections this batch of commands pushed frames to, written
    /// once each when the batch is done.
    touched: Touched,
    /// Rooms with typing state for `Tick` to look at.
    typing_rooms: HashSet<RoomId>,
    /// Every user's presence and its coalesced updates (every shard
    /// keeps the same, and pushes to the rooms it owns).
    presence: presence::Presences,
    presence_max_members: usize,
    /// Profile changes waiting for their user's interval (every shard
    /// keeps the same, and pushes to the rooms it owns).
    profiles: coalesce::Coalescer<Arc<confab_protocol::Profile>>,
    /// Cluster mode: what this node owns (see [`ShardConfig::ownership`]).
    /// When the connections this shard touched are written.
    pacing: pacing::Pacing,
    ownership: Option<Arc<crate::cluster::Ownership>>,
    /// Cluster mode: see [`ShardConfig::rooms_here`].
    rooms_here: Option<crate::cluster::RoomsHere>,
}

impl Shard {
    fn new(index: usize, slots: Vec<RoomSlot>, batch: BatchHandle, cfg: &ShardConfig) -> Shard {
        let mut rooms = HashMap::with_capacity(slots.len());
        let mut user_rooms: HashMap<UserId, Vec<RoomId>> = HashMap::new();
        for slot in slots {
            for m in slot.room.members() {
                user_rooms.entry(m.user).or_default().push(slot.room.id);
            }
            rooms.insert(slot.room.id, slot);
        }
        let live = rooms
            .values()
            .filter(|s: &&RoomSlot| !s.room.terminated)
            .count();
        crate::metrics::restored(live, user_rooms.values().map(Vec::len).sum());
        Shard {
            index,
            rooms,
            user_rooms,
            online: HashMap::new(),
            batch,
            tail_cap: cfg.tail_cap,
            notification_ids: cfg.notification_ids.clone(),
            clock: cfg.clock.clone(),
            touched: Touched::default(),
            typing_rooms: HashSet::new(),
            presence: presence::Presences::default(),
            presence_max_members: cfg.presence_max_members,
            profiles: coalesce::Coalescer::new(None),
            pacing: pacing::Pacing::new(cfg.flush_linger_max),
            ownership: cfg.ownership.clone(),
            rooms_here: cfg.rooms_here.clone(),
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<ShardCmd>) {
        tracing::debug!(
            shard = self.index,
            rooms = self.rooms.len(),
            "shard started"
        );
        // Each pass takes every command queued (up to a bound), then
        // writes each connection it touched once: under load a pass grows,
        // and so does what one write to a connection carries.
        // While the shard is busy, flush pacing (`pacing.rs`) lets it take
        // further passes before it writes, up to the pacing's deadline.
        'run: loop {
            let first = match self.pacing.due() {
                None => rx.recv().await,
                Some(due) => match tokio::time::timeout_at(due, rx.recv()).await {
                    Ok(next) => next,
                    Err(_) => {
                        let started = Instant::now();
                        self.touched.flush_all();
                        self.pacing.wrote();
                        self.pacing.worked(started, Instant::now());
                        continue;
                    }
                },
            };
            let Some(mut cmd) = first else { break };
            let started = Instant::now();
            let mut taken = 0;
            loop {
                if let ShardCmd::Stop = cmd {
                    self.touched.flush_all();
                    break 'run;
                }
                self.handle(cmd);
                taken += 1;
                if taken == MAX_PASS {
                    break;
                }
                match rx.try_recv() {
                    Ok(next) => cmd = next,
                    Err(_) => break,
                }
            }
            crate::metrics::shard_pass(self.index, taken, rx.len());
            if self.touched.is_empty() {
                self.pacing.wrote();
            } else if self.pacing.write_now(Instant::now()) {
                self.touched.flush_all();
            }
            let linger = self.pacing.linger();
            self.pacing.worked(started, Instant::now());
            if linger != self.pacing.linger() {
                crate::metrics::shard_linger(self.index, self.pacing.linger());
            }
        }
        self.touched.flush_all();
        tracing::debug!(shard = self.index, "shard stopped");
    }

    fn handle(&mut self, cmd: ShardCmd) {
        // The requester is flushed with the batch whether the shard
        // answers now (an error, a list) or the batch writer does later
        // (then there is nothing to write yet, which costs nothing). It is
        // noted after the command pushed its answer, never before: a
        // connection another pusher has noted is written by that pusher
        // after it clears the flag, so noting first could leave this
        // answer queued and unwritten (see `Touched`).
        let requester = cmd.reply_to().map(|reply| reply.conn.clone());
        self.apply_command(cmd);
        if let Some(conn) = requester {
            self.touched.note(&conn);
        }
    }

    fn apply_command(&mut self, cmd: ShardCmd) {
        // Cluster mode: a room whose partition this node does not serve
        // (a command that raced a hand-over) is never applied here.
        if let Some(here) = &self.rooms_here {
            if let Some(room) = cmd.room() {
                if !here.hosted.serves(room) {
                    here.remote.forward(room, cmd);
                    return;
                }
            }
        }
        match cmd {
            ShardCmd::Create {
                room,
                name,
                topic,
                visibility,
                user,
                username,
                members,
                reply,
            } => {
                // A private room concerns its creator and initial members.
                let mut concerned = Vec::with_capacity(members.len() + 1);
                concerned.push(user);
                concerned.extend(members.iter().map(|(id, _)| *id));
                let (new_room, effects) = Room::create_group(
                    room,
                    name,
                    topic,
                    visibility,
                    (user, username),
                    members,
                    self.clock.now_ms(),
                );
                // new_chat_room: a public room concerns everyone connected,
                // a private one only its creator (their other connections)
                // and its initial members.
                let announce = encode_reply(0, &ServerMsg::RoomAnnounced(new_room.info()));
                let audience: Vec<Arc<OutboundQueue>> = if visibility == Visibility::Public {
                    self.online.values().flatten().cloned().collect()
                } else {
                    concerned
                        .iter()
                        .filter_map(|u| self.online.get(u))
                        .flatten()
                        .cloned()
                        .collect()
                };
                // The other nodes' connections, through NATS.
                let remote = match self.fanout() {
                    None => Vec::new(),
                    Some(_) if visibility == Visibility::Public => vec![UserPush::ToEveryone {
                        frame: announce.clone(),
                    }],
                    Some(_) => concerned
                        .iter()
                        .map(|&user| UserPush::ToUser {
                            user,
                            frame: announce.clone(),
                        })
                        .collect(),
                };
                let deliver = audience
                    .into_iter()
                    .map(|c| (c, announce.clone()))
                    .collect();
                self.install(new_room, effects, reply, user, (deliver, remote));
            }
            ShardCmd::OpenDirect {
                room,
                opener,
                other,
                reply,
            } => {
                if self.rooms.contains_key(&room) {
                    let cmd = Command::OpenDirect {
                        user: opener.0,
                        username: opener.1,
                    };
                    self.apply(room, cmd, reply);
                    return;
                }
                let viewers = [opener.0, other.0];
                let (new_room, effects) =
                    Room::create_direct(room, opener, other, self.clock.now_ms());
                // Each of the two is announced the room as they see it:
                // named after the other.
                let mut deliver = Vec::new();
                let mut remote = Vec::new();
                let clustered = self.fanout().is_some();
                for viewer in viewers {
                    let announce =
                        encode_reply(0, &ServerMsg::RoomAnnounced(new_room.info_for(viewer)));
                    for conn in self.online.get(&viewer).into_iter().flatten() {
                        deliver.push((conn.clone(), announce.clone()));
                    }
                    if clustered {
                        remote.push(UserPush::ToUser {
                            user: viewer,
                            frame: announce,
                        });
                    }
                }
                self.install(new_room, effects, reply, viewers[0], (deliver, remote));
            }
            ShardCmd::Apply { room, cmd, reply } => self.apply(room, cmd, reply),
            ShardCmd::ChangeMessage {
                room,
                cmd,
                reply,
                need_store,
            } => {
                let generation = self
                    .rooms
                    .get(&room)
                    .and_then(|slot| slot.room.needs_stored_message(&cmd));
                match generation {
                    Some(generation) => {
                        let _ = need_store.send(generation);
                    }
                    None => self.apply(room, cmd, reply),
                }
            }
            ShardCmd::Members { room, user, reply } => match self.readable(room, user) {
                Err(code) => {
                    reply.conn.error(reply.req_id, code, code.default_message());
                }
                Ok(slot) => {
                    let members = slot
                        .room
                        .members()
                        .iter()
                        .map(|m| {
                            // Presence counts every connection (in cluster
                            // mode, the other nodes' too): online unless
                            // offline.
                            let presence = self.presence.state(m.user);
                            confab_protocol::Member {
                                user: m.user,
                                username: m.username.clone(),
                                role: m.role,
                                online: presence != confab_protocol::Presence::Offline,
                                joined_at: m.joined_at,
                                presence: Some(presence),
                            }
                        })
                        .collect();
                    reply
                        .conn
                        .reply(reply.req_id, &ServerMsg::MemberList { room, members });
                }
            },
            ShardCmd::Tail {
                room,
                user,
                before,
                limit,
                reply,
            } => {
                let _ = reply.send(self.tail(room, user, before, limit));
            }
            ShardCmd::Roster {
                room,
                user,
                which,
                reply,
            } => {
                let listed = self
                    .rooms
                    .get(&room)
                    .ok_or(ErrorCode::RoomNotFound)
                    .and_then(|slot| {
                        slot.room.check_admin(user)?;
                        let marks = match which {
                            RosterList::JoinRequests => slot.room.requests(),
                            RosterList::Bans => slot.room.bans(),
                        };
                        Ok(marks
                            .iter()
                            .map(|m| UserEntry {
                                user: m.user,
                                username: m.username.clone(),
                                at: m.at,
                            })
                            .collect())
                    });
                match listed {
                    Ok(users) => reply
                        .conn
                        .reply(reply.req_id, &ServerMsg::UserList { room, users }),
                    Err(code) => reply.conn.error(reply.req_id, code, code.default_message()),
                };
            }
            ShardCmd::CheckAdmin { room, user, reply } => {
                let checked = self
                    .rooms
                    .get(&room)
                    .ok_or(ErrorCode::RoomNotFound)
                    .and_then(|s| s.room.check_admin(user));
                let _ = reply.send(checked);
            }
            ShardCmd::CheckMember { room, user, reply } => {
                let checked = self
                    .rooms
                    .get(&room)
                    .ok_or(ErrorCode::RoomNotFound)
                    .and_then(|s| s.room.check_reader(user));
                let _ = reply.send(checked);
            }
            ShardCmd::Typing {
                room,
                user,
                start,
                reply,
            } => self.typing(room, user, start, reply),
            ShardCmd::Tick(done) => {
                self.expire_typing();
                self.push_presence();
                self.push_profiles();
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            // Pushed on the next Tick, with the other changes of the tick.
            ShardCmd::SetAway { user, away } => self.presence.set_away(user, away),
            ShardCmd::RemoteConnection { user, open: true } => self.presence.connect(user),
            ShardCmd::RemoteConnection { user, open: false } => self.presence.disconnect(user),
            ShardCmd::ProfileChanged { user, profile } => self.profiles.change(user, profile),
            ShardCmd::CheckReadMarker {
                room,
                user,
                seq,
                reply,
            } => {
                let checked = self
                    .rooms
                    .get(&room)
                    .ok_or(ErrorCode::RoomNotFound)
                    .and_then(|s| s.room.check_read_marker(user, seq));
                let _ = reply.send(checked);
            }
            ShardCmd::ToUser {
                user,
                except,
                frame,
            } => {
                for conn in self.online.get(&user).into_iter().flatten() {
                    if conn.id != except {
                        conn.push(frame.clone());
                        self.touched.note(conn);
                    }
                }
            }
            ShardCmd::Install { slots, seen, done } => {
                self.install_rooms(slots, &seen);
                let _ = done.send(());
            }
            ShardCmd::Evict {
                partitions,
                of,
                done,
            } => {
                self.evict(&partitions, of);
                let _ = done.send(());
            }
            ShardCmd::Attach { user, conn, resume } => self.attach(user, conn, &resume),
            ShardCmd::Detach { user, conn } => self.detach(user, conn),
            ShardCmd::Stop => {}
        }
    }

    /// Cluster mode: where this shard publishes for the other nodes.
    fn fanout(&self) -> Option<&crate::cluster::Fanout> {
        self.rooms_here.as_ref().and_then(|h| h.fanout.as_ref())
    }

    /// Puts a room just created on this shard and carries out the
    /// effects of its creation: ROOM (as `requester` sees it) goes to the
    /// requester and `deliver` (its announcements: to connections here,
    /// and in cluster mode for the other nodes') once the room is durable
    /// — its id must never be seen before it is stored.
    fn install(
        &mut self,
        new_room: Room,
        effects: Vec<Effect>,
        reply: ReplyTo,
        requester: UserId,
        deliver: (Vec<(Arc<OutboundQueue>, Bytes)>, Vec<UserPush>),
    ) {
        let room = new_room.id;
        let slot = RoomSlot {
            room: new_room,
            subscribers: Subscribers::default(),
            tail: Tail::default(),
            stored: Arc::new(AtomicU64::new(0)),
        };
        self.rooms.insert(room, slot);
        crate::metrics::get().rooms.increment(1.0);
        self.carry_out(room, effects, reply, AckKind::Room(requester), deliver);
    }

    /// Holds rooms loaded after start-up (cluster mode: a gained
    /// partition's), replacing any copy held, and subscribes the
    /// connections of their members that are online here — each first
    /// replayed what it missed after what it saw of the room from its
    /// previous owner (`seen`, from the relay), as a resume would.
    fn install_rooms(&mut self, slots: Vec<RoomSlot>, seen: &crate::cluster::routing::SeenRooms) {
        let (mut live, mut memberships) = (0, 0);
        for mut slot in slots {
            let id = slot.room.id;
            if let Some(old) = self.rooms.remove(&id) {
                self.forget_room(&old);
            }
            live += usize::from(!slot.room.terminated);
            let seen = seen.get(&id);
            for m in slot.room.members() {
                memberships += 1;
                self.user_rooms.entry(m.user).or_default().push(id);
                for conn in self.online.get(&m.user).into_iter().flatten() {
                    if let Some(after) = seen.and_then(|s| s.after(conn.id)) {
                        replay(&slot, conn, after);
                        self.touched.note(conn);
                    }
                    slot.subscribers.add(conn);
                }
            }
            self.rooms.insert(id, slot);
        }
        crate::metrics::restored(live, memberships);
    }

    /// Lets go of every room of `partitions` (of `of`): cluster mode, the
    /// partitions were lost or are being handed over.
    fn evict(&mut self, partitions: &[u32], of: u32) {
        let gone: Vec<RoomId> = self
            .rooms
            .keys()
            .filter(|r| partitions.contains(&crate::cluster::partition_of(**r, of)))
            .copied()
            .collect();
        let fanout = self.rooms_here.as_ref().and_then(|h| h.fanout.clone());
        for id in gone {
            if let Some(slot) = self.rooms.remove(&id) {
                if let Some(fanout) = &fanout {
                    // Its members connected here receive it from its next
                    // owner from now on.
                    let here = slot.room.members().iter().map(|m| m.user);
                    let here = here.filter(|u| self.online.contains_key(u)).collect();
                    fanout.adopt(id, here, slot.room.last_seq);
                }
                self.forget_room(&slot);
            }
        }
    }

    /// Drops what refers to a room just removed from `rooms`.
    fn forget_room(&mut self, slot: &RoomSlot) {
        let id = slot.room.id;
        for m in slot.room.members() {
            if let Some(list) = self.user_rooms.get_mut(&m.user) {
                list.retain(|r| *r != id);
                if list.is_empty() {
                    self.user_rooms.remove(&m.user);
                }
            }
        }
        self.typing_rooms.remove(&id);
        let m = crate::metrics::get();
        if !slot.room.terminated {
            m.rooms.decrement(1.0);
        }
        m.memberships.decrement(slot.room.members().len() as f64);
    }

    /// Applies a room command; refusals are answered at once, successes
    /// after their write commits.
    fn apply(&mut self, room: RoomId, cmd: Command, reply: ReplyTo) {
        let ack = match cmd {
            Command::Join { user, .. }
            | Command::RespondInvite {
                user, accept: true, ..
            }
            | Command::OpenDirect { user, .. } => AckKind::Room(user),
            Command::Post { .. } | Command::EditMessage { .. } | Command::DeleteMessage { .. } => {
                AckKind::Message
            }
            _ => AckKind::Ok,
        };
        // A refused message gives back the files its session claimed.
        let claimed = match &cmd {
            Command::Post { rich, .. } => rich.file_ids(),
            _ => Vec::new(),
        };
        let Some(slot) = self.rooms.get_mut(&room) else {
            crate::files::attach::release(&self.batch, room, claimed);
            reply.conn.error(
                reply.req_id,
                ErrorCode::RoomNotFound,
                format!("room {room} does not exist"),
            );
            return;
        };
        match slot.room.apply(cmd, self.clock.now_ms()) {
            Ok(effects) => {
                if slot.room.terminated {
                    // Only a live room accepts commands, so this one
                    // terminated just now.
                    crate::metrics::get().rooms.decrement(1.0);
                }
                self.carry_out(room, effects, reply, ack, (Vec::new(), Vec::new()))
            }
            Err(code) => {
                crate::files::attach::release(&self.batch, room, claimed);
                reply.conn.error(reply.req_id, code, code.default_message());
            }
        }
    }

    /// Carries out a room's effects in order and queues its writes with the
    /// acknowledgement to send after commit. `deliver`: frames to push
    /// after commit to connections here and (cluster mode) per-user pushes
    /// to publish after commit for the other nodes.
    fn carry_out(
        &mut self,
        room: RoomId,
        effects: Vec<Effect>,
        reply: ReplyTo,
        ack_kind: AckKind,
        (mut deliver, mut remote_after): (Vec<(Arc<OutboundQueue>, Bytes)>, Vec<UserPush>),
    ) {
        let Shard {
            rooms,
            user_rooms,
            online,
            batch,
            tail_cap,
            notification_ids,
            clock,
            touched,
            ownership,
            rooms_here,
            ..
        } = self;
        let Some(slot) = rooms.get_mut(&room) else {
            return;
        };
        // Cluster mode: the same steps, published once for the other
        // nodes' connections of the room's members.
        let fanout = rooms_here.as_ref().and_then(|h| h.fanout.as_ref());
        let mut remote = fanout.map(|_| {
            // Receivers tell a new owner's events from a fenced one's.
            let mut ops = RoomOps::default();
            let epoch = ownership.as_ref().map_or(0, |o| o.claim(room).epoch);
            ops.push(&RoomOp::Epoch(epoch));
            ops
        });
        let mut ops = Vec::with_capacity(effects.len());
        let mut last_event: Option<(Seq, u64)> = None;
        // Cluster mode: users just subscribed, told to the other nodes
        // with the event before the next one (the first they receive).
        let mut joined: Vec<UserId> = Vec::new();
        for effect in effects {
            match effect {
                Effect::Persist(op) => ops.push(op),
                Effect::Event(ev) => {
                    if let Some(fanout) = fanout {
                        let after = Seq(ev.seq.0.saturating_sub(1));
                        for user in joined.drain(..) {
                            fanout.user(UserPush::Joined { user, room, after });
                        }
                    }
                    let frame = encode_event(&ev);
                    let started = std::time::Instant::now();
                    for conn in &slot.subscribers {
                        conn.push(frame.clone());
                        touched.note(conn);
                    }
                    crate::metrics::broadcast(slot.subscribers.len(), started);
                    if let Some(remote) = &mut remote {
                        remote.push(&RoomOp::Event(ev.seq, frame.clone()));
                    }
                    last_event = Some((ev.seq, ev.at));
                    // HISTORY and resume keep some events in another form
                    // than the live one (an edit without its text).
                    let (kept, kept_frame) = match ev.kept_form() {
                        Some(kept) => {
                            let f = encode_event(&kept);
                            (kept, f)
                        }
                        None => (ev, frame),
                    };
                    slot.tail.push(kept.seq, kept_frame);
                    ops.push(WriteOp::AppendEvent(StoredEvent::from_event(kept)));
                }
                Effect::Rewrite(ev) => {
                    slot.tail.replace(ev.seq, encode_event(&ev));
                    ops.push(WriteOp::RewriteEvent(StoredEvent::from_event(ev)));
                }
                Effect::Subscribe(user) => {
                    if let Some(remote) = &mut remote {
                        remote.push(&RoomOp::Subscribe(user));
                        // The user's connections on nodes that do not
                        // receive this room yet (UserPush::Joined, above
                        // and below).
                        joined.push(user);
                    }
                    crate::metrics::get().memberships.increment(1.0);
                    if let Some(conns) = online.get(&user) {
                        for conn in conns {
                            slot.subscribers.add(conn);
                        }
                    }
                    let list = user_rooms.entry(user).or_default();
                    if !list.contains(&room) {
                        list.push(room);
                    }
                }
                Effect::Notify {
                    user,
                    kind,
                    actor,
                    actor_name,
                    at,
                } => {
                    let Some(id) = notification_ids.take() else {
                        // Cluster mode, the id blocks ran dry faster than
                        // one could be fetched: a shard never waits.
                        tracing::error!(%room, user = user.0, "no notification id ready: notification dropped");
                        continue;
                    };
                    let note = NotificationRecord {
                        id,
                        user,
                        kind,
                        room,
                        room_name: slot.room.name_for(user).to_owned(),
                        actor,
                        actor_name,
                        at,
                        read: false,
                    };
                    // Delivered after commit: an id seen before it is stored
                    // could be handed out again after a crash.
                    let here = online.get(&user);
                    if here.is_some() || fanout.is_some() {
                        let frame = encode_reply(0, &ServerMsg::Notification((&note).into()));
                        for conn in here.into_iter().flatten() {
                            deliver.push((conn.clone(), frame.clone()));
                        }
                        if fanout.is_some() {
                            remote_after.push(UserPush::ToUser { user, frame });
                        }
                    }
                    ops.push(WriteOp::AddNotification(note));
                }
                Effect::Audit {
                    actor,
                    action,
                    target,
                    detail,
                    at,
                } => {
                    tracing::info!(
                        target: "confab::audit",
                        action = action.as_str(),
                        room = room.0,
                        actor = actor.0,
                        target = target.map(|t| t.0),
                        detail = %detail,
                        "audit"
                    );
                    ops.push(WriteOp::Audit(AuditEntry {
                        at,
                        actor,
                        action,
                        room: Some(room),
                        target,
                        detail,
                    }));
                }
                Effect::Unsubscribe(user) => {
                    if let Some(remote) = &mut remote {
                        remote.push(&RoomOp::Unsubscribe(user));
                    }
                    crate::metrics::get().memberships.decrement(1.0);
                    if let Some(conns) = online.get(&user) {
                        for conn in conns {
                            slot.subscribers.remove(conn.id);
                        }
                    }
                    if let Some(list) = user_rooms.get_mut(&user) {
                        list.retain(|r| *r != room);
                        if list.is_empty() {
                            user_rooms.remove(&user);
                        }
                    }
                }
            }
        }
        if let Some(fanout) = fanout {
            let after = slot.room.last_seq;
            for user in joined {
                fanout.user(UserPush::Joined { user, room, after });
            }
        }
        if let (Some(fanout), Some(remote)) = (fanout, remote) {
            fanout.publish(room, remote);
        }
        let stored_seq = Seq(slot.stored.load(Ordering::Acquire));
        slot.tail.trim(*tail_cap, stored_seq);
        slot.room.forget_durable(stored_seq);
        let frame = match ack_kind {
            AckKind::Room(viewer) => {
                encode_reply(reply.req_id, &ServerMsg::Room(slot.room.info_for(viewer)))
            }
            AckKind::Ok => encode_reply(reply.req_id, &ServerMsg::Ok),
            AckKind::Message => {
                let (seq, at) = last_event.unwrap_or((slot.room.last_seq, clock.now_ms()));
                encode_reply(reply.req_id, &ServerMsg::MessageAck { room, seq, at })
            }
        };
        let stored = last_event.map(|(seq, _)| (slot.stored.clone(), seq));
        // Cluster mode: what the other nodes' connections get after
        // commit, published once the batch writer says it is durable.
        let notify = match fanout {
            Some(fanout) if !remote_after.is_empty() => {
                let (committed, rx) = oneshot::channel();
                fanout.after_commit(rx, remote_after);
                Some(committed)
            }
            _ => None,
        };
        let ack = Ack {
            conn: reply.conn,
            req_id: reply.req_id,
            frame,
        };
        if !batch.submit(WriteRequest {
            ops,
            stored,
            ack: Some(ack),
            deliver,
            notify,
            fence: ownership.as_ref().map(|o| o.claim(room)),
            // A command that wrote nothing still answers in order with the
            // room's writes.
            room: Some(room),
        }) {
            tracing::error!(%room, "batch writer is gone; write not persisted");
        }
    }

    /// TYPING_START / TYPING_STOP (SPEC.md §5.5.7).
    fn typing(&mut self, room: RoomId, user: UserId, start: bool, reply: ReplyTo) {
        let now = self.clock.now_ms();
        let Some(slot) = self.rooms.get_mut(&room) else {
            let code = ErrorCode::RoomNotFound;
            reply.conn.error(reply.req_id, code, code.default_message());
            return;
        };
        match slot.room.typing(user, start, now) {
            Err(code) => {
                reply.conn.error(reply.req_id, code, code.default_message());
                return;
            }
            Ok(TypingOutcome::Forward(typing)) => {
                let username = slot
                    .room
                    .member(user)
                    .map(|m| m.username.clone())
                    .unwrap_or_default();
                let own = self.online.get(&user);
                let fanout = self.rooms_here.as_ref().and_then(|h| h.fanout.as_ref());
                let touched = &mut self.touched;
                let sent = forward_typing(slot, own, touched, fanout, (user, username), typing);
                let why = if typing {
                    crate::metrics::TypingForward::Start
                } else {
                    crate::metrics::TypingForward::Stop
                };
                crate::metrics::typing_forwarded(why, sent);
            }
            Ok(TypingOutcome::Suppressed) => crate::metrics::typing_suppressed(),
            Ok(TypingOutcome::Unchanged) => {}
        }
        if slot.room.has_typing() {
            self.typing_rooms.insert(room);
        }
        reply.conn.reply(reply.req_id, &ServerMsg::Ok);
    }

    /// Sends a STOP for every typing state that expired (the server
    /// clock's `now`), on the typists' behalf.
    fn expire_typing(&mut self) {
        if self.typing_rooms.is_empty() {
            return;
        }
        let now = self.clock.now_ms();
        let Shard {
            rooms,
            online,
            touched,
            typing_rooms,
            rooms_here,
            ..
        } = self;
        let fanout = rooms_here.as_ref().and_then(|h| h.fanout.as_ref());
        typing_rooms.retain(|room| {
            let Some(slot) = rooms.get_mut(room) else {
                return false;
            };
            for (user, username) in slot.room.expire_typing(now) {
                let own = online.get(&user);
                let sent = forward_typing(slot, own, touched, fanout, (user, username), false);
                crate::metrics::typing_forwarded(crate::metrics::TypingForward::Expired, sent);
            }
            slot.room.has_typing()
        });
    }

    /// The room, if `user` may read it (a member of the live room).
    fn readable(&self, room: RoomId, user: UserId) -> Result<&RoomSlot, ErrorCode> {
        let slot = self.rooms.get(&room).ok_or(ErrorCode::RoomNotFound)?;
        slot.room.check_reader(user)?;
        Ok(slot)
    }

    fn tail(
        &self,
        room: RoomId,
        user: UserId,
        before: Seq,
        limit: usize,
    ) -> Result<TailSlice, ErrorCode> {
        let slot = self.readable(room, user)?;
        Ok(slot.tail.slice(before, limit, slot.room.last_seq))
    }

    fn attach(&mut self, user: UserId, conn: Arc<OutboundQueue>, resume: &[ResumePoint]) {
        // Pushed on the next Tick, with the other changes of the tick.
        self.presence.connect(user);
        // Most users have one connection: no room reserved for more.
        let conns = self
            .online
            .entry(user)
            .or_insert_with(|| Vec::with_capacity(1));
        if conns.is_empty() && self.index == 0 {
            crate::metrics::get().online_users.increment(1.0);
        }
        conns.push(conn.clone());
        if let Some(room_ids) = self.user_rooms.get(&user) {
            for room_id in room_ids {
                let Some(slot) = self.rooms.get_mut(room_id) else {
                    continue;
                };
                if let Some(point) = resume.iter().find(|p| p.room == *room_id) {
                    replay(slot, &conn, point.after);
                }
                slot.subscribers.add(&conn);
            }
        }
        // Replayed events and resume notices go out with this batch: noted
        // after they were pushed (see `Touched`).
        self.touched.note(&conn);
    }

    fn detach(&mut self, user: UserId, conn_id: ConnId) {
        if let Some(conns) = self.online.get_mut(&user) {
            let before = conns.len();
            conns.retain(|c| c.id != conn_id);
            if conns.len() < before {
                self.presence.disconnect(user);
            }
            if conns.is_empty() {
                self.online.remove(&user);
                if self.index == 0 {
                    crate::metrics::get().online_users.decrement(1.0);
                }
            }
        }
        if let Some(room_ids) = self.user_rooms.get(&user) {
            for room_id in room_ids {
                if let Some(slot) = self.rooms.get_mut(room_id) {
                    slot.subscribers.remove(conn_id);
                }
            }
        }
    }

    /// Pushes the presence updates that are due (SPEC.md §5.10.2), on the
    /// coalescing tick: the changes due are grouped by room of this shard
    /// (the user a member, the room live and of at most
    /// `presence_max_members` members), and each room gets one PRESENCE
    /// frame listing them all, encoded once and queued to every connection
    /// receiving the room (split only past the frame size limit).
    fn push_presence(&mut self) {
        if !self.presence.has_pending() {
            return;
        }
        let due = self.presence.due(self.clock.now_ms());
        // Every shard coalesces the same changes: count them once.
        if self.index == 0 {
            let coalesced = due.updates.iter().map(|u| u.coalesced).sum::<u32>();
            crate::metrics::presence_suppressed(
                crate::metrics::PresenceSuppressed::Coalesced,
                u64::from(coalesced + due.flapped),
            );
        }
        let presence_max_members = self.presence_max_members;
        let (large_room, pushed) = self.push_by_room(
            &due.updates,
            |u| u.user,
            |u, username| PresenceChange {
                user: u.user,
                username: username.to_owned(),
                presence: u.presence,
            },
            presence_max_members,
            |room, changes| ServerMsg::Presence { room, changes },
        );
        crate::metrics::presence_suppressed(
            crate::metrics::PresenceSuppressed::LargeRoom,
            large_room,
        );
        for (carried, sent) in pushed {
            crate::metrics::presence_pushed(carried, sent);
        }
    }

    /// Pushes the profile changes that are due (SPEC.md §5.2.5) on the
    /// coalescing tick, as presence: one PROFILE_CHANGED per room of this
    /// shard listing every member whose change is due, whatever the
    /// room's size.
    fn push_profiles(&mut self) {
        if !self.profiles.has_pending() {
            return;
        }
        let due = self.profiles.due(self.clock.now_ms(), |_| false);
        if self.index == 0 {
            let coalesced = due.updates.iter().map(|u| u.coalesced).sum::<u32>();
            crate::metrics::profile_coalesced(u64::from(coalesced + due.flapped));
        }
        let (_, pushed) = self.push_by_room(
            &due.updates,
            |u| u.user,
            |u, _| confab_protocol::Profile::clone(&u.value),
            usize::MAX,
            |room, changes| ServerMsg::ProfileChanged { room, changes },
        );
        for (_, sent) in pushed {
            crate::metrics::profile_pushed(sent);
        }
    }

    /// Groups `updates` by the live rooms of this shard their users are
    /// members of (skipping rooms of more than `max_members`, counted in
    /// the first number returned) and queues each room's frame — `frame`
    /// of the entries `entry` makes, encoded once — to every connection
    /// receiving the room, split only past the frame size limit. Returns
    /// the rooms skipped for size and, per frame, (entries, recipients).
    fn push_by_room<U, E: coalesce::ListEntry>(
        &mut self,
        updates: &[U],
        user_of: impl Fn(&U) -> UserId,
        entry: impl Fn(&U, &str) -> E,
        max_members: usize,
        frame: impl Fn(RoomId, Vec<E>) -> ServerMsg,
    ) -> (u64, Vec<(usize, usize)>) {
        let mut batches = coalesce::RoomBatches::default();
        let mut large_room = 0;
        for update in updates {
            let user = user_of(update);
            let Some(room_ids) = self.user_rooms.get(&user) else {
                continue;
            };
            for room_id in room_ids {
                let Some(slot) = self.rooms.get(room_id) else {
                    continue;
                };
                if slot.room.terminated {
                    continue;
                }
                if slot.room.members().len() > max_members {
                    large_room += 1;
                    continue;
                }
                let Some(member) = slot.room.member(user) else {
                    continue;
                };
                batches.add(*room_id, entry(update, &member.username));
            }
        }
        let mut pushed = Vec::new();
        let fanout = self.rooms_here.as_ref().and_then(|h| h.fanout.as_ref());
        for (room_id, entries) in batches.into_frames(presence::MAX_FRAME_PAYLOAD) {
            let Some(slot) = self.rooms.get(&room_id) else {
                continue;
            };
            let carried = entries.len();
            let bytes = encode_reply(0, &frame(room_id, entries));
            let mut sent = 0;
            for conn in &slot.subscribers {
                conn.push(bytes.clone());
                self.touched.note(conn);
                sent += 1;
            }
            // Cluster mode: the room's members on the other nodes get the
            // same frame, as one of the room's events.
            if let Some(fanout) = fanout {
                let mut ops = RoomOps::default();
                ops.push(&RoomOp::Frame(bytes));
                fanout.publish(room_id, ops);
            }
            pushed.push((carried, sent));
        }
        (large_room, pushed)
    }
}

#[derive(Clone, Copy)]
enum AckKind {
    /// ROOM, as this user sees the room.
    Room(UserId),
    Ok,
    Message,
}

/// Queues a TYPING event about `user` to every connection receiving the
/// room except `own` (the typist's connections); returns how many. In
/// cluster mode the same frame goes to `fanout`, for the other nodes'
/// connections but the typist's.
fn forward_typing(
    slot: &RoomSlot,
    own: Option<&Vec<Arc<OutboundQueue>>>,
    touched: &mut Touched,
    fanout: Option<&crate::cluster::Fanout>,
    (user, username): (UserId, String),
    typing: bool,
) -> usize {
    let frame = encode_reply(
        0,
        &ServerMsg::Typing {
            room: slot.room.id,
            user,
            username,
            typing,
        },
    );
    let mut sent = 0;
    for conn in &slot.subscribers {
        if own.is_some_and(|own| own.iter().any(|c| c.id == conn.id)) {
            continue;
        }
        conn.push(frame.clone());
        touched.note(conn);
        sent += 1;
    }
    if let Some(fanout) = fanout {
        let mut ops = RoomOps::default();
        ops.push(&RoomOp::FrameExcept(user, frame));
        fanout.publish(slot.room.id, ops);
    }
    sent
}

fn encode_reply(req_id: u32, msg: &ServerMsg) -> Bytes {
    let mut buf = BytesMut::with_capacity(32);
    msg.encode(req_id, &mut buf);
    buf.freeze()
}

/// Sends `conn` the events after `after`, or RESUME_GAP if the tail no
/// longer holds all of them (or `after` lies beyond the last event). Runs
/// before `conn` subscribes, on the shard, so replayed and live events
/// neither overlap nor leave a gap.
fn replay(slot: &RoomSlot, conn: &OutboundQueue, after: Seq) {
    let last = slot.room.last_seq;
    match slot.tail.resume(after, last) {
        Resume::UpToDate => {}
        Resume::Replay(frames) => {
            for frame in frames {
                conn.push(frame);
            }
        }
        Resume::Gap => {
            conn.reply(
                0,
                &ServerMsg::ResumeGap {
                    room: slot.room.id,
                    last_seq: last,
                },
            );
        }
    }
}
