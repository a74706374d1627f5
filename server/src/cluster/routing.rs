//! Phase 3, the requesting side of routing between nodes over NATS: a
//! command for a room another node serves goes to that node, its answer
//! comes back to the connection that asked, and the room's events reach
//! this node's connections of its members.
//!
//! - [`NatsRemote`] is the [`RemoteRooms`] of a cluster node: `forward`
//!   encodes the command ([`wire::Forwarded`]) and queues it, without
//!   blocking, to the relay (a full queue refuses it with `OVERLOADED`).
//! - The relay task (`relay.rs`) publishes each command, in queue order,
//!   to its partition's subject, which only the serving node subscribes
//!   to (`serve.rs`), with a reply subject in the relay's own inbox; the
//!   answer is pushed to the original connection under its original
//!   request id. No responders (nobody serves the partition now) or no
//!   answer within [`FORWARD_TIMEOUT`] answers `ROOM_MOVING`, so the
//!   client retries.
//! - The owner publishes each room's events once, to the room's subject
//!   ([`Fanout`], called by the shards; [`wire::RoomOps`]: the frames and
//!   the membership changes in the shard's order). The relay subscribes to
//!   the subject of every remote room one of this node's connections
//!   belongs to — the rooms read from the store when a connection
//!   attaches, rooms joined through this node (subscribed *before* the
//!   JOIN is sent, so the join's own event is not missed), rooms this node
//!   stopped serving while members were connected — and replays the ops on
//!   its own table of members, so a kicked member's connections stop
//!   receiving at the op that removed them, as on the owner.
//!
//! - Per-user pushes ([`UserPush`]) — a notification, a room
//!   announcement, a user added to a room, a read marker, a connection
//!   opened or closed, SET_AWAY, a profile — are delivered by the node
//!   that makes them to its own connections and published once on
//!   `confab.user.<p>` ([`Subjects::user`]); every node's relay
//!   subscribes to all of them and delivers to its connections of the
//!   user (no echo: never twice on the origin node).
//!
//! The relay (`relay.rs`) is one task owning its table (no locks);
//! everything reaches it through one channel, in order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_protocol::{ErrorCode, RoomId, Seq, UserId};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::relay::{Outgoing, Relay, ToRelay, Waiter};
use super::remote_presence::{RemotePresence, PRESENT_EVERY, PRESENT_TTL};
use super::wire::{Forwarded, RoomOps, UserPush, What};
use super::{Hosted, RemoteRooms};
use crate::outbound::{ConnId, OutboundQueue};
use crate::persist::batch::WeakBatchHandle;
use crate::room::Command;
use crate::shard::{ReplyTo, Router, ShardCmd};
use crate::state::SessionRegistry;

/// How long a forwarded command waits for the owner's answer before the
/// client is told `ROOM_MOVING`. An answer comes after the owner's
/// commit, so this is well above a commit's time under load.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// Commands queued for the relay at most; more are refused (`OVERLOADED`).
const FORWARD_QUEUE: usize = 16_384;

/// Connection ids at and above this are the owner's stand-ins for
/// connections of other nodes (`serve.rs`): a command carrying one is
/// never forwarded again.
pub const PROXY_CONN: u64 = 1 << 63;

/// NATS subjects of one deployment.
#[derive(Debug, Clone)]
pub struct Subjects {
    prefix: Arc<str>,
}

impl Subjects {
    pub fn new(prefix: &str) -> Subjects {
        Subjects {
            prefix: prefix.into(),
        }
    }

    /// Where commands for the rooms of `partition` go: only the node
    /// serving it subscribes.
    pub fn commands(&self, partition: u32) -> String {
        format!("{}.cmd.{partition}", self.prefix)
    }

    /// Where the owner of `room` publishes its events.
    pub fn room(&self, room: RoomId) -> String {
        format!("{}.room.{}", self.prefix, room.0)
    }

    /// Where per-user pushes for `user` go: one subject per user
    /// partition (`user mod` [`USER_PARTITIONS`]).
    pub fn user(&self, user: UserId) -> String {
        format!("{}.user.{}", self.prefix, user.0 % USER_PARTITIONS)
    }

    /// Where pushes for every connection go (a public room's
    /// announcement).
    pub fn everyone(&self) -> String {
        format!("{}.user.all", self.prefix)
    }

    /// Every user partition's subject and [`Subjects::everyone`]: what
    /// each node's relay subscribes to.
    pub fn all_users(&self) -> String {
        format!("{}.user.*", self.prefix)
    }

    /// A subject nobody subscribes to, for [`round_trip`].
    fn nobody(&self) -> String {
        format!("{}.nobody", self.prefix)
    }
}

/// Returns once the NATS server has processed everything `client` sent
/// before (subscriptions, unsubscriptions), or after `patience` (NATS
/// unreachable). async-nats' `flush` only writes the socket; a request
/// to a subject nobody subscribes to comes back ("no responders") only
/// after the server read everything before it on this connection.
pub async fn round_trip(client: &async_nats::Client, subjects: &Subjects, patience: Duration) {
    let asked = client.request(subjects.nobody(), Bytes::new());
    let _ = tokio::time::timeout(patience, asked).await;
}

/// How many subjects per-user pushes are spread over (`confab.user.<p>`).
/// Every node subscribes to all of them today (see ARCHITECTURE.md); the
/// split lets a node later subscribe only to those of its users.
pub const USER_PARTITIONS: u64 = 64;

/// What the publisher task sends: a room's ops or a per-user push.
pub(super) enum Publish {
    Room(RoomId, Bytes),
    User(UserPush),
}

/// The longest wait between two attempts to reconnect to NATS
/// (async-nats' default grows to 4 s).
pub const RECONNECT_DELAY_MAX: Duration = Duration::from_millis(250);

/// How long a connection's attach waits for NATS to take its remote
/// rooms' subscriptions, and a stopping node for NATS to take its
/// unsubscriptions, before going on without (NATS unreachable).
pub const SYNC_PATIENCE: Duration = Duration::from_secs(1);

/// Connects to NATS as node `node`: no echo (a node never receives what
/// it published itself), reconnects left to async-nats (which subscribes
/// again) but at most [`RECONNECT_DELAY_MAX`] apart, so that commands
/// waiting through a short outage are answered within their timeout.
pub async fn connect(
    url: &str,
    node: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::new()
        .name(format!("confabd {node}"))
        .no_echo()
        .reconnect_delay_callback(|attempts| {
            let exp = u32::try_from(attempts.saturating_sub(1)).unwrap_or(u32::MAX);
            Duration::from_millis(2_u64.saturating_pow(exp)).min(RECONNECT_DELAY_MAX)
        })
        .connection_timeout(Duration::from_secs(5))
        .subscription_capacity(1 << 16)
        .connect(url)
        .await
}

/// Splits a command into what is sent and who hears the answer; `Err`
/// gives back a command that cannot be forwarded.
fn split(cmd: ShardCmd) -> Result<(What, Waiter, Option<UserId>), Box<ShardCmd>> {
    let reply_waiter = |reply: ReplyTo, need_store, files| Waiter::Reply {
        reply,
        need_store,
        files,
    };
    Ok(match cmd {
        ShardCmd::Apply {
            room, cmd, reply, ..
        } => {
            let joining = joins(&cmd);
            let files = match &cmd {
                Command::Post { rich, .. } => Some((room, rich.file_ids())),
                _ => None,
            };
            let what = What::Apply {
                req_id: reply.req_id,
                cmd,
            };
            (what, reply_waiter(reply, None, files), joining)
        }
        ShardCmd::ChangeMessage {
            cmd,
            reply,
            need_store,
            ..
        } => (
            What::ChangeMessage {
                req_id: reply.req_id,
                cmd,
            },
            reply_waiter(reply, Some(need_store), None),
            None,
        ),
        ShardCmd::OpenDirect {
            opener,
            other,
            reply,
            ..
        } => {
            let joining = Some(opener.0);
            let what = What::OpenDirect {
                req_id: reply.req_id,
                opener,
                other,
            };
            (what, reply_waiter(reply, None, None), joining)
        }
        ShardCmd::Members { user, reply, .. } => (
            What::Members {
                req_id: reply.req_id,
                user,
            },
            reply_waiter(reply, None, None),
            None,
        ),
        ShardCmd::Typing {
            user, start, reply, ..
        } => (
            What::Typing {
                req_id: reply.req_id,
                user,
                start,
            },
            reply_waiter(reply, None, None),
            None,
        ),
        ShardCmd::Roster {
            user, which, reply, ..
        } => (
            What::Roster {
                req_id: reply.req_id,
                user,
                which,
            },
            reply_waiter(reply, None, None),
            None,
        ),
        ShardCmd::Tail {
            user,
            before,
            limit,
            reply,
            ..
        } => (
            What::Tail {
                user,
                before,
                limit: u32::try_from(limit).unwrap_or(u32::MAX),
            },
            Waiter::Tail(reply),
            None,
        ),
        ShardCmd::CheckAdmin { user, reply, .. } => {
            (What::CheckAdmin { user }, Waiter::Checked(reply), None)
        }
        ShardCmd::CheckMember { user, reply, .. } => {
            (What::CheckMember { user }, Waiter::Checked(reply), None)
        }
        ShardCmd::CheckReadMarker {
            user, seq, reply, ..
        } => (
            What::CheckReadMarker { user, seq },
            Waiter::Checked(reply),
            None,
        ),
        other => return Err(Box::new(other)),
    })
}

/// The user a command makes a member of its room, if any: this node then
/// receives the room's events from before the command is sent.
fn joins(cmd: &Command) -> Option<UserId> {
    match cmd {
        Command::Join { user, .. }
        | Command::RespondInvite {
            user, accept: true, ..
        }
        | Command::OpenDirect { user, .. } => Some(*user),
        _ => None,
    }
}

/// The [`RemoteRooms`] of a cluster node: commands go to the relay task,
/// which sends them to the room's owner over NATS.
pub struct NatsRemote {
    queue: mpsc::Sender<Outgoing>,
    relay: mpsc::UnboundedSender<ToRelay>,
    /// Weak: see [`super::RefuseRemote::batch`].
    batch: WeakBatchHandle,
}

impl RemoteRooms for NatsRemote {
    fn forward(&self, room: RoomId, cmd: ShardCmd) {
        // The owner's stand-in for another node's connection: a command
        // that raced a hand-over there is not sent on a second hop.
        if cmd.reply_to().is_some_and(|r| r.conn.id.0 >= PROXY_CONN) {
            return super::remote::refuse(cmd, &self.batch);
        }
        if let ShardCmd::ToUser {
            user,
            except,
            frame,
        } = cmd
        {
            // Every node delivers to its own connections of the user.
            let _ = self.relay.send(ToRelay::ToUser {
                user,
                except,
                frame,
            });
            return;
        }
        let (what, waiter, joining) = match split(cmd) {
            Ok(parts) => parts,
            // CREATE_ROOM takes a room of a partition served here; a
            // command without a room never comes here.
            Err(cmd) => return super::remote::refuse(*cmd, &self.batch),
        };
        let payload = Forwarded { room, what }.encode();
        let outgoing = Outgoing {
            room,
            payload,
            waiter,
            joining,
        };
        match self.queue.try_send(outgoing) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(outgoing)) => {
                crate::metrics::cluster_forwarded("overloaded", None);
                outgoing
                    .waiter
                    .refuse(ErrorCode::Overloaded, Some(&self.batch));
            }
            // The relay stopped: the node is shutting down.
            Err(mpsc::error::TrySendError::Closed(outgoing)) => outgoing
                .waiter
                .refuse(ErrorCode::ShuttingDown, Some(&self.batch)),
        }
    }
}

/// What the shards of a cluster node call to publish their rooms' events
/// and to hand the members of a room they let go to the relay. Never
/// blocks: both go through unbounded channels to tasks (the publisher
/// keeps up with NATS's own buffer; a shard never waits).
#[derive(Clone)]
pub struct Fanout {
    publish: mpsc::UnboundedSender<Publish>,
    relay: mpsc::UnboundedSender<ToRelay>,
}

impl Fanout {
    /// Publishes `ops` of `room` (unless empty) for the other nodes.
    pub fn publish(&self, room: RoomId, ops: RoomOps) {
        if !ops.is_empty() {
            let _ = self.publish.send(Publish::Room(room, ops.finish()));
        }
    }

    /// Publishes `push` for the user's connections on the other nodes
    /// (this node's own got theirs from the shard).
    pub fn user(&self, push: UserPush) {
        let _ = self.publish.send(Publish::User(push));
    }

    /// Publishes `pushes` once `committed` says their write is durable
    /// (notifications and announcements carry ids that must never be seen
    /// before they are stored); nothing if it failed.
    pub fn after_commit(
        &self,
        committed: oneshot::Receiver<Result<(), ErrorCode>>,
        pushes: Vec<UserPush>,
    ) {
        let publish = self.publish.clone();
        tokio::spawn(async move {
            if let Ok(Ok(())) = committed.await {
                for push in pushes {
                    let _ = publish.send(Publish::User(push));
                }
            }
        });
    }

    /// This node let `room` go; `users` (its members with connections
    /// here, maybe none) keep receiving it from the next owner, after
    /// `last`, the last event they were sent here.
    pub fn adopt(&self, room: RoomId, users: Vec<UserId>, last: Seq) {
        let _ = self.relay.send(ToRelay::Adopt { room, users, last });
    }
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fanout")
    }
}

/// What sessions call: attach and detach connections to remote rooms.
#[derive(Clone)]
pub struct RelayHandle {
    relay: mpsc::UnboundedSender<ToRelay>,
    publish: mpsc::UnboundedSender<Publish>,
}

impl RelayHandle {
    /// `conn` of `user` receives the remote `rooms` from now on; returns
    /// once NATS has the subscriptions (or after about [`SYNC_PATIENCE`]).
    /// A room with a resume point (`Some(after)`) is first replayed what
    /// the connection missed, from its owner's tail (SPEC.md §9).
    pub async fn attach(
        &self,
        user: UserId,
        conn: Arc<OutboundQueue>,
        rooms: Vec<(RoomId, Option<Seq>)>,
    ) {
        let (done, wait) = oneshot::channel();
        let attach = ToRelay::Attach {
            user,
            conn,
            rooms,
            done,
        };
        if self.relay.send(attach).is_ok() {
            let _ = tokio::time::timeout(FORWARD_TIMEOUT, wait).await;
        }
    }

    pub fn detach(&self, user: UserId, conn: ConnId) {
        let _ = self.relay.send(ToRelay::Detach { user, conn });
    }

    /// Publishes `push` for the other nodes (a READ_MARKER_MOVED, SET_AWAY,
    /// a profile change: what this node delivered or applied itself).
    pub fn push(&self, push: UserPush) {
        let _ = self.publish.send(Publish::User(push));
    }

    /// This node is about to serve `partition` (of `of`): the relay stops
    /// relaying its rooms and says what this node's connections saw of
    /// each, for the shards to replay from (nothing if the relay is gone).
    pub async fn hand_over(&self, partition: u32, of: u32) -> SeenRooms {
        let (reply, seen) = oneshot::channel();
        let ask = ToRelay::HandOver {
            partition,
            of,
            reply,
        };
        if self.relay.send(ask).is_err() {
            return SeenRooms::new();
        }
        seen.await.unwrap_or_default()
    }
}

/// What this node's connections saw of a room another node served, by
/// room: handed from the relay to the shards when this node gains it.
pub type SeenRooms = std::collections::HashMap<RoomId, Seen>;

/// See [`SeenRooms`].
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// The last event the relay delivered to the room's members here.
    pub last: Option<Seq>,
    /// Connections still catching up from a resume point: where each is.
    pub conns: Vec<(ConnId, Seq)>,
}

impl Seen {
    /// Where `conn` is in the room, if known.
    pub fn after(&self, conn: ConnId) -> Option<Seq> {
        self.conns
            .iter()
            .find(|(c, _)| *c == conn)
            .map(|(_, after)| *after)
            .or(self.last)
    }
}

/// A cluster node's routing: the parts to hand to the shards and the
/// sessions, and the tasks to start once the router exists.
pub struct Routing {
    pub remote: Arc<NatsRemote>,
    pub fanout: Fanout,
    pub handle: RelayHandle,
    tasks: Option<RoutingTasks>,
}

struct RoutingTasks {
    queue: mpsc::Receiver<Outgoing>,
    relay: mpsc::UnboundedReceiver<ToRelay>,
    publish: mpsc::UnboundedReceiver<Publish>,
    publish_tx: mpsc::UnboundedSender<Publish>,
    relay_tx: mpsc::UnboundedSender<ToRelay>,
}

impl Routing {
    pub fn new(batch: WeakBatchHandle) -> Routing {
        let (queue_tx, queue) = mpsc::channel(FORWARD_QUEUE);
        let (relay_tx, relay) = mpsc::unbounded_channel();
        let (publish_tx, publish) = mpsc::unbounded_channel();
        Routing {
            remote: Arc::new(NatsRemote {
                queue: queue_tx,
                relay: relay_tx.clone(),
                batch,
            }),
            fanout: Fanout {
                publish: publish_tx.clone(),
                relay: relay_tx.clone(),
            },
            handle: RelayHandle {
                relay: relay_tx.clone(),
                publish: publish_tx.clone(),
            },
            tasks: Some(RoutingTasks {
                queue,
                relay,
                publish,
                publish_tx,
                relay_tx,
            }),
        }
    }

    /// Starts the relay and the publisher on `client`; both end when
    /// `shutdown` is cancelled. `router`: where other nodes' presence and
    /// profile changes go (every shard of this node).
    pub fn spawn(
        &mut self,
        client: async_nats::Client,
        subjects: Subjects,
        hosted: Arc<Hosted>,
        batch: WeakBatchHandle,
        // This node's shards and sessions.
        (router, sessions): (Router, Arc<SessionRegistry>),
        shutdown: CancellationToken,
    ) {
        let Some(tasks) = self.tasks.take() else {
            return;
        };
        tokio::spawn(publish(
            client.clone(),
            subjects.clone(),
            tasks.publish,
            shutdown.clone(),
        ));
        let (shards_tx, shards_rx) = mpsc::unbounded_channel();
        tokio::spawn(to_shards(router, shards_rx, shutdown.clone()));
        let relay = Relay::new(
            client,
            subjects,
            hosted,
            batch,
            tasks.relay_tx,
            (tasks.publish_tx, shards_tx),
            sessions,
        );
        tokio::spawn(relay.run(tasks.queue, tasks.relay, shutdown));
    }
}

/// Publishes what the shards hand over, in their order.
async fn publish(
    client: async_nats::Client,
    subjects: Subjects,
    mut rx: mpsc::UnboundedReceiver<Publish>,
    shutdown: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return,
            next = rx.recv() => next,
        };
        let (subject, payload) = match next {
            None => return,
            Some(Publish::Room(room, payload)) => (subjects.room(room), payload),
            Some(Publish::User(push)) => {
                crate::metrics::cluster_user_push("published");
                let subject = match push.user() {
                    Some(user) => subjects.user(user),
                    None => subjects.everyone(),
                };
                (subject, push.encode())
            }
        };
        crate::metrics::cluster_nats_bytes("published", payload.len());
        if let Err(e) = client.publish(subject, payload).await {
            tracing::warn!(error = %e, "publishing to the other nodes failed");
        }
    }
}

/// Another node's presence and profile changes, applied by every shard
/// here in the order they came (a connection's open before its close;
/// `remote_presence.rs` keeps them per node). A task of its own, so that
/// the relay never waits on a shard's queue.
async fn to_shards(
    router: Router,
    mut rx: mpsc::UnboundedReceiver<UserPush>,
    shutdown: CancellationToken,
) {
    let mut remote = RemotePresence::default();
    let mut expiry = tokio::time::interval(PRESENT_EVERY);
    expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = expiry.tick() => {
                let closed = remote.expire(Instant::now(), PRESENT_TTL);
                count(&router, closed).await;
                continue;
            }
            next = rx.recv() => next,
        };
        match next {
            None => return,
            Some(UserPush::Connection { node, user, open }) => {
                let changed = remote.connection(node, user, open, Instant::now());
                count(&router, changed.into_iter().collect()).await
            }
            Some(UserPush::Present { node, users }) => {
                let changed = remote.present(node, users, Instant::now());
                count(&router, changed).await
            }
            Some(UserPush::Away { user, away }) => {
                router.send_all(|| ShardCmd::SetAway { user, away }).await
            }
            Some(UserPush::Profile(profile)) => {
                let (user, profile) = (profile.user, Arc::new(profile));
                router
                    .send_all(|| ShardCmd::ProfileChanged {
                        user,
                        profile: profile.clone(),
                    })
                    .await
            }
            Some(_) => {}
        }
    }
}

/// Has every shard count `changes` (other nodes' connections opened or
/// closed) in its users' presence.
async fn count(router: &Router, changes: Vec<(UserId, bool)>) {
    for (user, open) in changes {
        router
            .send_all(|| ShardCmd::RemoteConnection { user, open })
            .await;
    }
}

/// Numbers the owner's stand-in connections (`serve.rs`).
pub(super) static NEXT_PROXY: AtomicU64 = AtomicU64::new(PROXY_CONN);

pub(super) fn next_proxy_id() -> ConnId {
    ConnId(NEXT_PROXY.fetch_add(1, Ordering::Relaxed))
}
