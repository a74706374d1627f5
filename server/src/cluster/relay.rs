//! The relay: one task per cluster node, owning (no locks) what this node
//! knows of rooms other nodes serve (see `routing.rs` for the whole).
//!
//! - It publishes each forwarded command, in the order they were queued,
//!   to the subject of its room's partition with a reply subject in its
//!   own inbox (`<inbox>.<token>`), and answers the requester with what
//!   comes back there ([`Waiter`]); no responders, an error or no answer
//!   within [`FORWARD_TIMEOUT`] answers `ROOM_MOVING`.
//! - It keeps every attached connection of this node by user and, per
//!   remote room some of them receive, the members connected here and a
//!   subscription to the room's subject, and replays the owner's ops
//!   ([`wire::RoomOp`]) on them in order, each event once by its seq: a
//!   gap (ops NATS lost) is filled from the owner's tail ([`TailFor::Fill`]),
//!   and so is a connection's resume point ([`TailFor::CatchUp`]); after
//!   NATS reconnects every watched room is probed the same way. A room
//!   this node gains is handed to the shards with what its connections
//!   saw ([`ToRelay::HandOver`]).
//! - It delivers READ_MARKER_MOVED-like pushes to a user's connections
//!   here (`ShardCmd::ToUser` for a room served elsewhere).
//! - It receives the other nodes' per-user pushes ([`UserPush`], on every
//!   `confab.user.<p>`): frames for a user's (or every) connection here,
//!   rooms the user was added to elsewhere (watched from then on, the
//!   membership checked with the owner once the subscription took
//!   effect), and presence and profile changes, which go to this node's
//!   shards.
//!
//! Everything reaches it through one channel ([`ToRelay`]), in order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use confab_protocol::{ErrorCode, RoomId, Seq, UserId};
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::remote_presence::PRESENT_EVERY;
use super::remote_table::{Fill, RemoteTable};
use super::routing::{Publish, SeenRooms, Subjects, FORWARD_TIMEOUT};
use super::wire::{self, Answer, Forwarded, UserPush, What};
use super::{partition_of, Hosted};
use crate::outbound::{ConnId, OutboundQueue, Touched};
use crate::persist::batch::WeakBatchHandle;
use crate::shard::{ReplyTo, TailSlice};
use crate::state::{Ended, SessionRegistry};

/// What reaches the relay task.
pub(super) enum ToRelay {
    /// A command to send to the room's owner.
    Forward(Outgoing),
    /// A connection of `user` attached: it receives `rooms` (remote rooms
    /// the user is a member of, with the connection's resume point if it
    /// gave one). `done` hears once NATS has the room subscriptions.
    Attach {
        user: UserId,
        conn: Arc<OutboundQueue>,
        rooms: Vec<(RoomId, Option<Seq>)>,
        done: oneshot::Sender<()>,
    },
    Detach {
        user: UserId,
        conn: ConnId,
    },
    /// A frame for every connection of `user` on this node but `except`.
    ToUser {
        user: UserId,
        except: ConnId,
        frame: Bytes,
    },
    /// This node stopped serving `room`; `users` are its members with
    /// connections here, who keep receiving it from its next owner.
    Adopt {
        room: RoomId,
        users: Vec<UserId>,
        /// The last event they were sent here.
        last: Seq,
    },
    /// This node is about to serve `partition`: stop relaying its rooms
    /// and say what their connections here saw.
    HandOver {
        partition: u32,
        of: u32,
        reply: oneshot::Sender<SeenRooms>,
    },
    /// The NATS connection came back (async-nats subscribed again): ops
    /// published meanwhile are lost, so every watched room is checked
    /// against its owner's tail.
    Reconnected,
    /// The NATS connection is down with forwarded commands unanswered:
    /// their answers would be lost, so they are answered `ROOM_MOVING`
    /// now (maybe applied, as after a timeout).
    Disconnected,
    /// The owner's tail asked for `why` (`attempt`: how many times).
    Tail {
        why: TailFor,
        attempt: u32,
        result: Result<TailSlice, ErrorCode>,
    },
    /// The answer to forwarded command `token` (or NATS's "no
    /// responders" for it).
    Answered {
        token: u64,
        msg: async_nats::Message,
    },
    /// Forwarded command `token` had [`FORWARD_TIMEOUT`] to be answered.
    Expired {
        token: u64,
    },
    /// Ops the owner of `room` published.
    Ops {
        room: RoomId,
        payload: Bytes,
    },
    /// A per-user push another node published.
    User(UserPush),
    /// The owner's answer to whether `user`, added to `room`'s members
    /// here by a `Joined` push, is a member (`Err`: the check's code).
    Verified {
        room: RoomId,
        user: UserId,
        member: Result<(), ErrorCode>,
    },
}

/// Why the relay asked a room's owner for its tail.
#[derive(Debug, Clone, Copy)]
pub(super) enum TailFor {
    /// Events a gap left out.
    Fill(Fill),
    /// A connection's resume.
    CatchUp { room: RoomId, conn: ConnId },
}

/// How many times the relay asks for a tail that could not be had (no
/// node serves the room yet: its owner died and the lease has not
/// expired), [`super::ROOM_MOVING_RETRY`] apart, before it gives up
/// (a gap: RESUME_GAP; a resume: live events only).
const TAIL_ATTEMPTS: u32 = 40;

/// How many events a resume asks the owner's tail for (it holds
/// `room_tail_events`, 256 by default).
const RESUME_LIMIT: u32 = 4096;

/// How often the relay looks whether the NATS connection was made again.
const RECONNECT_CHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// A command on its way to the owner.
pub(super) struct Outgoing {
    pub(super) room: RoomId,
    pub(super) payload: Bytes,
    pub(super) waiter: Waiter,
    /// The user a join-like command makes a member.
    pub(super) joining: Option<UserId>,
}

/// Who hears the answer of a forwarded command.
pub(super) enum Waiter {
    Reply {
        reply: ReplyTo,
        /// EDIT/DELETE: where "ask the store" goes (the session reads).
        need_store: Option<oneshot::Sender<u64>>,
        /// Files a refused message gives back, and its room.
        files: Option<(RoomId, Vec<u64>)>,
    },
    Checked(oneshot::Sender<Result<(), ErrorCode>>),
    Tail(oneshot::Sender<Result<TailSlice, ErrorCode>>),
}

impl Waiter {
    pub(super) fn answer(self, answer: Answer) {
        match (self, answer) {
            (Waiter::Reply { reply, .. }, Answer::Reply { error, frame }) => {
                reply.conn.push_encoded_reply(reply.req_id, error, frame);
                reply.conn.flush();
            }
            (
                Waiter::Reply {
                    need_store: Some(need_store),
                    ..
                },
                Answer::NeedStore(generation),
            ) => {
                let _ = need_store.send(generation);
            }
            (Waiter::Checked(tx), Answer::Checked(result)) => {
                let _ = tx.send(result);
            }
            (Waiter::Tail(tx), Answer::Tail(result)) => {
                let _ = tx.send(result);
            }
            (waiter, Answer::Refused(code)) => waiter.refuse(code, None),
            (waiter, other) => {
                tracing::error!(?other, "an answer of the wrong kind from the room's owner");
                waiter.refuse(ErrorCode::Internal, None);
            }
        }
    }

    /// Answers `code` without the owner; gives back the files of a
    /// message only when `batch` is given (the command surely was not
    /// applied).
    pub(super) fn refuse(self, code: ErrorCode, batch: Option<&WeakBatchHandle>) {
        match self {
            Waiter::Reply { reply, files, .. } => {
                if let (Some(batch), Some((room, files))) = (batch.and_then(|b| b.upgrade()), files)
                {
                    crate::files::attach::release(&batch, room, files);
                }
                reply.conn.error(reply.req_id, code, code.default_message());
                reply.conn.flush();
            }
            Waiter::Checked(tx) => {
                let _ = tx.send(Err(code));
            }
            Waiter::Tail(tx) => {
                let _ = tx.send(Err(code));
            }
        }
    }
}
/// The task carrying a watched room's ops from its NATS subscription to
/// the relay: dropped (with its table entry), it stops, which drops the
/// subscription (unsubscribes).
pub(super) struct Carrier(tokio::task::AbortHandle);

impl Drop for Carrier {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The relay task's state (see the module doc).
pub(super) struct Relay {
    client: async_nats::Client,
    subjects: Subjects,
    hosted: Arc<Hosted>,
    batch: WeakBatchHandle,
    /// Its own channel, for the carriers and the request tasks.
    me: mpsc::UnboundedSender<ToRelay>,
    /// Which connections here receive which remote rooms.
    table: RemoteTable<Carrier>,
    touched: Touched,
    /// Where answers come: `<inbox>.<token>`.
    inbox: String,
    next_token: u64,
    /// Forwarded commands not answered yet, by token.
    pending: HashMap<u64, Pending>,
    /// Other nodes' presence and profile changes, for this node's shards.
    shards: mpsc::UnboundedSender<UserPush>,
    /// The publisher: this node's connections opened and closed, and the
    /// list of them every [`PRESENT_EVERY`], in the order they happened.
    publish: mpsc::UnboundedSender<Publish>,
    /// This node's sessions, for other nodes' revocations.
    sessions: Arc<SessionRegistry>,
    /// This node's number in those pushes, drawn at start.
    node: u64,
}

/// A forwarded command waiting for its answer.
struct Pending {
    room: RoomId,
    waiter: Waiter,
    joining: Option<UserId>,
    started: Instant,
}

impl Relay {
    pub(super) fn new(
        client: async_nats::Client,
        subjects: Subjects,
        hosted: Arc<Hosted>,
        batch: WeakBatchHandle,
        me: mpsc::UnboundedSender<ToRelay>,
        (publish, shards): (
            mpsc::UnboundedSender<Publish>,
            mpsc::UnboundedSender<UserPush>,
        ),
        sessions: Arc<SessionRegistry>,
    ) -> Relay {
        use std::hash::{BuildHasher, Hasher};
        Relay {
            inbox: client.new_inbox(),
            client,
            subjects,
            hosted,
            batch,
            me,
            table: RemoteTable::default(),
            touched: Touched::default(),
            next_token: 0,
            pending: HashMap::new(),
            shards,
            publish,
            sessions,
            node: std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish(),
        }
    }

    pub(super) async fn run(
        mut self,
        mut queue: mpsc::Receiver<Outgoing>,
        mut inbox: mpsc::UnboundedReceiver<ToRelay>,
        shutdown: CancellationToken,
    ) {
        let answers = match self.client.subscribe(format!("{}.*", self.inbox)).await {
            Ok(answers) => Some(self.carry(answers, |msg| {
                let token = msg.subject.rsplit('.').next()?.parse().ok()?;
                Some(ToRelay::Answered { token, msg })
            })),
            Err(e) => {
                tracing::error!(error = %e, "subscribing to this node's answers failed: forwarded commands will time out");
                None
            }
        };
        // Every user partition's pushes (see ARCHITECTURE.md: each node
        // takes them all and keeps those of its own users).
        let users = match self.client.subscribe(self.subjects.all_users()).await {
            Ok(users) => Some(
                self.carry(users, |msg| match UserPush::decode(&msg.payload) {
                    Ok(push) => {
                        crate::metrics::cluster_user_push("received");
                        Some(ToRelay::User(push))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "a per-user push this node cannot read");
                        None
                    }
                }),
            ),
            Err(e) => {
                tracing::error!(error = %e, "subscribing to per-user pushes failed: other nodes' pushes will not reach this node's connections");
                None
            }
        };
        let mut present = tokio::time::interval(PRESENT_EVERY);
        present.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stats = self.client.statistics();
        let mut connects = stats.connects.load(std::sync::atomic::Ordering::Relaxed);
        let mut reconnected = tokio::time::interval(RECONNECT_CHECK);
        reconnected.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let msg = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(msg) = inbox.recv() => msg,
                Some(out) = queue.recv() => ToRelay::Forward(out),
                _ = present.tick() => {
                    let users = self.table.connected();
                    self.tell(UserPush::Present { node: self.node, users });
                    continue;
                }
                _ = reconnected.tick() => {
                    let now = stats.connects.load(std::sync::atomic::Ordering::Relaxed);
                    if now != connects {
                        connects = now;
                        ToRelay::Reconnected
                    } else if !self.pending.is_empty() && !self.connected() {
                        ToRelay::Disconnected
                    } else {
                        continue;
                    }
                }
                else => break,
            };
            self.handle(msg).await;
            self.touched.flush_all();
        }
        // The other nodes count this node's connections closed now rather
        // than after PRESENT_TTL (sent directly: the publisher stops too).
        let bye = UserPush::Present {
            node: self.node,
            users: Vec::new(),
        };
        let said = async {
            let _ = self
                .client
                .publish(self.subjects.everyone(), bye.encode())
                .await;
            let _ = self.client.flush().await;
        };
        let _ = tokio::time::timeout(super::routing::SYNC_PATIENCE, said).await;
        // Whatever is still waiting is answered: the node is going away.
        for (_, pending) in self.pending.drain() {
            pending.waiter.refuse(ErrorCode::ShuttingDown, None);
        }
        // Unsubscribes every room and the answers.
        self.table.clear();
        for carrier in [answers, users].into_iter().flatten() {
            carrier.abort();
        }
    }

    /// A task carrying what `sub` receives to the relay, as `make` turns
    /// it into a message (`None`: dropped); aborting it unsubscribes.
    fn carry(
        &self,
        mut sub: async_nats::Subscriber,
        make: impl Fn(async_nats::Message) -> Option<ToRelay> + Send + 'static,
    ) -> tokio::task::AbortHandle {
        let relay = self.me.clone();
        let carrier = tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                crate::metrics::cluster_nats_bytes("received", msg.payload.len());
                if let Some(msg) = make(msg) {
                    if relay.send(msg).is_err() {
                        return;
                    }
                }
            }
        });
        carrier.abort_handle()
    }

    async fn handle(&mut self, msg: ToRelay) {
        match msg {
            ToRelay::Forward(out) => self.forward(out).await,
            ToRelay::Attach {
                user,
                conn,
                rooms,
                done,
            } => {
                let id = conn.id;
                self.table.attach(user, conn);
                self.tell(UserPush::Connection {
                    node: self.node,
                    user,
                    open: true,
                });
                let mut resumes = Vec::new();
                for (room, after) in rooms {
                    if self.watch(room).await {
                        self.table.add_member(room, user);
                        if let Some(after) = after {
                            self.table.catch_up(room, id, user, after);
                            resumes.push(room);
                        }
                    }
                }
                // Asked after the subscriptions, on the same NATS
                // connection: whatever the owner publishes after it
                // answered reaches this node, and the answer has the rest.
                for room in resumes {
                    self.ask_tail(TailFor::CatchUp { room, conn: id }, 0).await;
                }
                // Once the server has the subscriptions, events published
                // from then on reach this connection; the relay goes on
                // meanwhile.
                let (client, subjects) = (self.client.clone(), self.subjects.clone());
                tokio::spawn(async move {
                    super::routing::round_trip(&client, &subjects, super::routing::SYNC_PATIENCE)
                        .await;
                    let _ = done.send(());
                });
            }
            ToRelay::Detach { user, conn } => {
                if self.table.detach(user, conn) {
                    self.tell(UserPush::Connection {
                        node: self.node,
                        user,
                        open: false,
                    });
                }
            }
            ToRelay::ToUser {
                user,
                except,
                frame,
            } => self
                .table
                .push(user, Some(except), &frame, &mut self.touched),
            ToRelay::Adopt { room, users, last } => {
                // The shard's members are the truth: whatever the relay
                // held for the room from before this node served it (no
                // echo: it saw none of the changes since) goes.
                self.table.clear_members(room);
                if !users.is_empty() && self.watch(room).await {
                    for user in users {
                        self.table.add_member(room, user);
                    }
                    self.table.seen_here(room, last);
                }
                self.table.unwatch_if_idle(room);
            }
            ToRelay::HandOver {
                partition,
                of,
                reply,
            } => {
                let _ = reply.send(self.table.hand_over(partition, of));
            }
            ToRelay::Tail {
                why,
                attempt,
                result,
            } => self.tail_arrived(why, attempt, result).await,
            ToRelay::Disconnected => {
                let tokens: Vec<u64> = self.pending.keys().copied().collect();
                for token in tokens {
                    self.finish(token, Err("connection_lost"));
                }
            }
            ToRelay::Reconnected => {
                let probes = self.table.probe_all();
                tracing::info!(
                    rooms = probes.len(),
                    "NATS connection back: checking the watched rooms for events missed"
                );
                for fill in probes {
                    self.ask_tail(TailFor::Fill(fill), 0).await;
                }
            }
            ToRelay::Answered { token, msg } => {
                let answer = if msg.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
                    Err("no_responders")
                } else {
                    Answer::decode(&msg.payload).map_err(|e| {
                        tracing::warn!(error = %e, "an answer this node cannot read");
                        "unreadable"
                    })
                };
                self.finish(token, answer);
            }
            ToRelay::Expired { token } => self.finish(token, Err("timeout")),
            ToRelay::Ops { room, payload } => {
                if let Some(fill) = self.replay(room, &payload) {
                    tracing::info!(
                        %room,
                        after = fill.after.0,
                        before = fill.before.0,
                        "a gap in a remote room's events: asking its owner"
                    );
                    self.ask_tail(TailFor::Fill(fill), 0).await;
                }
            }
            ToRelay::User(push) => self.user_push(push).await,
            ToRelay::Verified { room, user, member } => {
                if member == Err(ErrorCode::NotAMember) {
                    // Removed before this node's subscription took
                    // effect: its `Unsubscribe` never came here.
                    self.table.leave(room, user);
                }
            }
        }
    }

    /// `user` was added to `room` through another node. A room watched
    /// here with the user among its members needs nothing: its ops add
    /// and remove members in order with its frames. Otherwise the room is
    /// watched and the user added; the subscription is flushed before
    /// anything after this push (the room's announcement, say) reaches
    /// the user. What the owner published before the subscription took
    /// effect never comes — a removal among it included — so once NATS
    /// has the subscription the owner is asked whether the user is a
    /// member, and a "no" removes them here (only removes: an answer
    /// older than the ops that came meanwhile never adds).
    async fn joined(&mut self, user: UserId, room: RoomId, after: Seq) {
        if !self.table.has_user(user) || self.table.is_member(room, user) {
            return;
        }
        let new = !self.table.watches(room);
        if !self.watch(room).await {
            return;
        }
        self.table.add_member(room, user);
        if new {
            // What the owner published after `after` and before NATS had
            // the subscription (the user's own MEMBER_JOINED, say) is
            // fetched from its tail, as for a resume: each connection
            // catches up from `after`, live events held meanwhile.
            let conns = self.table.conn_ids(user);
            for &conn in &conns {
                self.table.catch_up(room, conn, user, after);
            }
            let _ = self.client.flush().await;
            for conn in conns {
                self.ask_tail(TailFor::CatchUp { room, conn }, 0).await;
            }
        }
        let (tx, rx) = oneshot::channel();
        let check = Outgoing {
            room,
            payload: wire::Forwarded {
                room,
                what: wire::What::CheckMember { user },
            }
            .encode(),
            waiter: Waiter::Checked(tx),
            joining: None,
        };
        let (client, subjects, me) = (self.client.clone(), self.subjects.clone(), self.me.clone());
        tokio::spawn(async move {
            super::routing::round_trip(&client, &subjects, super::routing::SYNC_PATIENCE).await;
            if me.send(ToRelay::Forward(check)).is_err() {
                return;
            }
            if let Ok(member) = rx.await {
                let _ = me.send(ToRelay::Verified { room, user, member });
            }
        });
    }

    /// Publishes `push` for the other nodes.
    fn tell(&self, push: UserPush) {
        let _ = self.publish.send(Publish::User(push));
    }

    /// Carries out another node's per-user push on this node.
    async fn user_push(&mut self, push: UserPush) {
        match push {
            UserPush::ToUser { user, frame } => {
                self.table.push(user, None, &frame, &mut self.touched)
            }
            UserPush::ToEveryone { frame } => self.table.push_all(&frame, &mut self.touched),
            UserPush::Joined { user, room, after } => self.joined(user, room, after).await,
            UserPush::Revoke {
                user,
                token_hash,
                others,
            } => {
                // As LOGOUT and CHANGE_PASSWORD do on their own node (the
                // store's delete came first), counted as a revocation
                // here too (`SessionRegistry`, "Revocation races").
                let which = if others { Ended::AllBut } else { Ended::This };
                self.sessions.end(user, &token_hash, which);
            }
            push @ (UserPush::Connection { .. }
            | UserPush::Present { .. }
            | UserPush::Away { .. }
            | UserPush::Profile(_)) => {
                let _ = self.shards.send(push);
            }
        }
    }

    fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Sends `out` to its room's owner; a join first subscribes to the
    /// room, so that its events are not missed. Published here, in the
    /// order the commands were queued (one connection's requests to one
    /// room keep their order, SPEC.md §5.4.1); answered by [`Relay::finish`].
    async fn forward(&mut self, out: Outgoing) {
        let Outgoing {
            room,
            payload,
            waiter,
            joining,
        } = out;
        if joining.is_some() && self.watch(room).await {
            self.table.join_sent(room);
        }
        // While NATS is down nothing is sent (async-nats would hold it
        // until it reconnects, and the answer might come after the
        // timeout): surely not applied, the client retries.
        let down = !self.connected();
        let subject = self
            .subjects
            .commands(partition_of(room, self.hosted.partitions()));
        self.next_token += 1;
        let token = self.next_token;
        self.pending.insert(
            token,
            Pending {
                room,
                waiter,
                joining,
                started: Instant::now(),
            },
        );
        if down {
            return self.finish(token, Err("disconnected"));
        }
        crate::metrics::cluster_nats_bytes("published", payload.len());
        let reply = format!("{}.{token}", self.inbox);
        if let Err(e) = self
            .client
            .publish_with_reply(subject, reply, payload)
            .await
        {
            tracing::debug!(%room, error = %e, "forwarding a command failed");
            return self.finish(token, Err("error"));
        }
        let relay = self.me.clone();
        tokio::spawn(async move {
            tokio::time::sleep(FORWARD_TIMEOUT).await;
            let _ = relay.send(ToRelay::Expired { token });
        });
    }

    /// Answers forwarded command `token` with the owner's `answer`, or
    /// `ROOM_MOVING` for the reason it has none; nothing if it was
    /// answered already (an answer after its timeout is dropped).
    fn finish(&mut self, token: u64, answer: Result<Answer, &'static str>) {
        let Some(Pending {
            room,
            waiter,
            joining,
            started,
        }) = self.pending.remove(&token)
        else {
            return;
        };
        if let Some(user) = joining {
            let joined = matches!(answer, Ok(Answer::Reply { error: None, .. }));
            self.table.join_answered(room, user, joined);
        }
        match answer {
            Ok(answer) => {
                crate::metrics::cluster_forwarded("answered", Some(started));
                waiter.answer(answer);
            }
            Err(result) => {
                crate::metrics::cluster_forwarded(result, Some(started));
                crate::metrics::cluster_room_moving();
                // Only "nobody serves it" and "not sent" surely left it
                // unapplied: then a message's files are given back.
                let sure =
                    matches!(result, "no_responders" | "disconnected").then_some(&self.batch);
                waiter.refuse(ErrorCode::RoomMoving, sure);
            }
        }
    }

    /// Subscribes to `room`'s events unless it already is (or this node
    /// serves it); whether the room is watched now.
    async fn watch(&mut self, room: RoomId) -> bool {
        if self.hosted.serves(room) {
            return false;
        }
        if self.table.watches(room) {
            return true;
        }
        let sub = match self.client.subscribe(self.subjects.room(room)).await {
            Ok(sub) => sub,
            Err(e) => {
                tracing::warn!(%room, error = %e, "subscribing to a room's events failed");
                return false;
            }
        };
        let carrier = self.carry(sub, move |msg| {
            Some(ToRelay::Ops {
                room,
                payload: msg.payload,
            })
        });
        self.table.watch(room, Carrier(carrier));
        true
    }

    /// Replays the owner's ops of `room` on this node's connections;
    /// `Some`: a gap to fill first.
    fn replay(&mut self, room: RoomId, payload: &Bytes) -> Option<Fill> {
        if self.hosted.serves(room) {
            // Served here now: the shards deliver it.
            self.table.forget(room);
            return None;
        }
        match wire::room_ops(payload) {
            Ok(ops) => self.table.replay(room, ops, &mut self.touched),
            Err(e) => {
                tracing::warn!(%room, error = %e, "room events this node cannot read");
                None
            }
        }
    }

    /// Asks the owner of the room for its tail, for `why`; the answer
    /// comes back as [`ToRelay::Tail`].
    async fn ask_tail(&mut self, why: TailFor, attempt: u32) {
        let (room, user, before, limit) = match why {
            TailFor::Fill(fill) if fill.before == Seq(0) => {
                (fill.room, fill.user, fill.before, RESUME_LIMIT)
            }
            TailFor::Fill(fill) => {
                let missing = fill.before.0 - fill.after.0 - 1;
                let limit = u32::try_from(missing).unwrap_or(u32::MAX);
                (fill.room, fill.user, fill.before, limit)
            }
            TailFor::CatchUp { room, conn } => {
                let Some(user) = self.table.catching(room, conn) else {
                    return;
                };
                (room, user, Seq(0), RESUME_LIMIT)
            }
        };
        let (tx, rx) = oneshot::channel();
        let what = What::Tail {
            user,
            before,
            limit,
        };
        let out = Outgoing {
            room,
            payload: Forwarded { room, what }.encode(),
            waiter: Waiter::Tail(tx),
            joining: None,
        };
        self.forward(out).await;
        let relay = self.me.clone();
        tokio::spawn(async move {
            let result = rx.await.unwrap_or(Err(ErrorCode::RoomMoving));
            if result.is_err() {
                tokio::time::sleep(super::ROOM_MOVING_RETRY).await;
            }
            let _ = relay.send(ToRelay::Tail {
                why,
                attempt,
                result,
            });
        });
    }

    /// The owner's tail for `why`: a gap filled or a connection caught up,
    /// or asked again while no node can answer.
    async fn tail_arrived(
        &mut self,
        why: TailFor,
        attempt: u32,
        result: Result<TailSlice, ErrorCode>,
    ) {
        let tail = match result {
            Ok(tail) => Some(tail),
            Err(code) if attempt + 1 < TAIL_ATTEMPTS && code != ErrorCode::ShuttingDown => {
                return self.ask_tail(why, attempt + 1).await;
            }
            Err(code) => {
                tracing::warn!(?why, ?code, "the room's owner could not give its tail");
                None
            }
        };
        match why {
            TailFor::Fill(fill) => {
                if let Some(next) = self.table.filled(fill, tail, &mut self.touched) {
                    self.ask_tail(TailFor::Fill(next), 0).await;
                }
            }
            TailFor::CatchUp { room, conn } => {
                self.table.caught_up(room, conn, tail, &mut self.touched)
            }
        }
    }
}
